/**
 * CTCP requests sent to a bridged user's nick (or the bridge's own), answered as an IRC client
 * would: `VERSION`, `PING` (echoed back, the way IRC users measure lag), `TIME` and `CLIENTINFO`.
 * Channel-wide CTCPs are not answered: every Matrix user's connection would answer at once. Replies
 * are rate-limited per connection, so a CTCP flood cannot make the server drop one of ours for
 * flooding in return.
 *
 * DCC offers (`DCC SEND`, `DCC CHAT`: a direct connection to the sender's client) cannot cross the
 * bridge; rather than drop one in silence, both sides are told ({@link dccOffer}).
 */
import { formatSize } from './convert/size.js';

export const CTCP_VERSION = 'Trestle IRC bridge';
const KNOWN = ['ACTION', 'CLIENTINFO', 'PING', 'TIME', 'VERSION'];

/** The reply (without its \x01 framing) to a CTCP request `verb args`, or undefined for none. */
export function ctcpReply(verb: string, args: string, now: Date): string | undefined {
  switch (verb.toUpperCase()) {
    case 'VERSION': return `VERSION ${CTCP_VERSION}`;
    // the token is the requester's to read back (usually a timestamp): bounded, and with no \x01 to end the CTCP early
    case 'PING': return `PING ${args.replace(/\x01/g, '').slice(0, 64)}`.trimEnd();
    case 'TIME': return `TIME ${now.toUTCString()}`;
    case 'CLIENTINFO': return `CLIENTINFO ${KNOWN.join(' ')}`;
    default: return undefined;
  }
}

/**
 * A DCC offer (the CTCP's text after `DCC `) in words: for the Matrix user (`said`, shown as the
 * sender's notice in the private chat) and for the IRC sender (`answer`). Undefined for anything
 * but a SEND or a CHAT. The file name is the sender's: flattened, without controls, capped.
 */
export function dccOffer(args: string): { said: string; answer: string } | undefined {
  const m = /^(SEND|CHAT)\s+("[^"]*"|\S+)(?:\s+\S+\s+\S+(?:\s+(\d+))?)?/i.exec(args.trim());
  if (!m) return undefined;
  const answer = 'DCC does not cross the Matrix bridge: share a link instead (or just talk here).';
  if (m[1]!.toUpperCase() === 'CHAT') {
    return { said: '(offered a DCC chat, a direct connection the bridge cannot make: answer here instead)', answer };
  }
  const name = [...m[2]!.replace(/^"|"$/g, '').replace(/[\x00-\x1F\x7F]/g, '').trim()].slice(0, 100).join('') || 'a file';
  const size = m[3] !== undefined ? ` (${formatSize(Number(m[3]))})` : '';
  return { said: `(offered the file ${name}${size} by DCC, which the bridge cannot receive: ask for a link instead)`, answer };
}

/**
 * A private PRIVMSG or NOTICE as the Matrix user gets it (`show`), and what goes back to its sender
 * (`answer`, a NOTICE's text, sent only if the rate limit allows): plain text as it is; a CTCP
 * ACTION as an emote; a DCC offer (a PRIVMSG) as a notice in words, answered; any other CTCP
 * request (a PRIVMSG) answered and not shown; a CTCP reply (a NOTICE) neither shown nor answered.
 */
export function privateMessage(command: 'PRIVMSG' | 'NOTICE', text: string, now: Date): {
  show?: { type: 'privmsg' | 'notice' | 'action'; text: string }; answer?: string;
} {
  if (!text.startsWith('\x01')) return { show: { type: command === 'NOTICE' ? 'notice' : 'privmsg', text } };
  const ctcp = text.replace(/^\x01|\x01$/g, '');
  const [verb = ''] = ctcp.split(' ', 1);
  if (verb === 'ACTION') return { show: { type: 'action', text: ctcp.slice(7) } };
  if (command !== 'PRIVMSG') return {};
  if (verb === 'DCC') {
    const offer = dccOffer(ctcp.slice(4));
    return offer ? { show: { type: 'notice', text: offer.said }, answer: offer.answer } : {};
  }
  const reply = ctcpReply(verb, ctcp.slice(verb.length + 1), now);
  return reply ? { answer: `\x01${reply}\x01` } : {};
}

/** At most one reply per `intervalMs` for one connection; requests past that are dropped. */
export class CtcpLimiter {
  private last = -Infinity;
  constructor(private readonly intervalMs = 1000) {}
  allow(now: number): boolean {
    if (now - this.last < this.intervalMs) return false;
    this.last = now;
    return true;
  }
}
