/**
 * CTCP requests sent to a bridged user's nick (or the bridge's own), answered as an IRC client
 * would: `VERSION`, `PING` (echoed back, the way IRC users measure lag), `TIME` and `CLIENTINFO`.
 * Channel-wide CTCPs are not answered: every Matrix user's connection would answer at once. Replies
 * are rate-limited per connection, so a CTCP flood cannot make the server drop one of ours for
 * flooding in return.
 */

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
