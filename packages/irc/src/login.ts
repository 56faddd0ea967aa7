/**
 * Waiting for a NickServ login (lean.ts): a connection that logs in with `IDENTIFY` after
 * registration holds its JOINs and its send queue until the login is answered, since channels
 * that let only logged-in users in (+r, a quiet on unidentified users) refuse, for good, what
 * comes before it. SASL needs none of this: it is over before registration.
 *
 * The answer is the server's 900 (RPL_LOGGEDIN), or NickServ's notice (services differ in the
 * words: Atheme, Anope, ergo), or a failure (902/904, a wrong password, an unregistered account:
 * the connection goes on without the login, as before), or nothing within the wait: it goes on,
 * with a warning.
 */
import type { Logger } from '@trestle/core';
import { stripFormatting } from './convert/index.js';
import type { IrcLine } from './ircline.js';
import type { LeanOptions } from './leanOptions.js';

/** How long an IDENTIFY is waited for when LeanOptions.identify does not say. */
export const IDENTIFY_WAIT_MS = 10_000;

/** NickServ saying the login worked (Atheme: "You are now identified for", Anope: "Password accepted", ergo: "You're now logged in as"). */
const LOGGED_IN = /\bnow (?:identified|recognized|logged in)\b|\bpassword accepted\b|\balready (?:identified|logged in)\b/i;
/**
 * NickServ saying it did not (Atheme: "Invalid password for", "is not registered", Anope: "Password
 * incorrect", "isn't registered", ergo: "Could not login with your TLS certificate or supplied
 * username/password"). Not a bare "failed": Atheme's success says "N failed logins since last login".
 */
const REFUSED = /\b(?:invalid|incorrect|wrong) password\b|\bpassword (?:is )?(?:incorrect|invalid|wrong)\b|\bauthentication failed\b|\bcould not log ?in\b|\b(?:is not|isn't) (?:a )?registered\b/i;
/** Numerics of a failed login: ERR_NICKLOCKED, ERR_SASLFAIL, ERR_SASLTOOLONG. */
const FAILED = new Set(['902', '904', '905']);

/**
 * What a line says about an IDENTIFY sent to `services` (config `nickserv.nick`, perhaps
 * `NickServ@services.example`): logged in, refused, or nothing (most lines). Pure.
 */
export function identifyAnswer(l: IrcLine, services: string): 'in' | 'refused' | undefined {
  if (l.command === '900') return 'in';
  if (FAILED.has(l.command)) return 'refused';
  // a notice, or a PRIVMSG for services set to message their users that way
  if ((l.command !== 'NOTICE' && l.command !== 'PRIVMSG') || l.nick.toLowerCase() !== services.split('@')[0]!.toLowerCase()) return undefined;
  const text = stripFormatting(l.params[l.params.length - 1] ?? '');
  if (LOGGED_IN.test(text)) return 'in';
  return REFUSED.test(text) ? 'refused' : undefined;
}

/**
 * One connection's NickServ login: after registration, `IDENTIFY` with the stored password when
 * SASL did not log in (not offered, failed, or not wanted: `identify.mode`), then `go` (the JOINs,
 * connect(), the send queue) once, at the answer or after the wait. NickServ's notice also goes
 * to the user as a private message, as before.
 */
export class NickServLogin {
  private timer?: NodeJS.Timeout;
  private waiting = false;

  constructor(
    private readonly opts: Pick<LeanOptions, 'sasl' | 'identify' | 'log'>,
    private readonly write: (line: string) => void,
    private readonly go: () => void,
    /** The login was refused (a wrong password, an unregistered account): the server's words. */
    private readonly refused: (why: string) => void = () => undefined,
  ) {}

  /** An IDENTIFY is unanswered: what needs the login waits. */
  get holding(): boolean { return this.waiting; }

  /** Registered (001): IDENTIFY if needed, and hold until its answer. `go` is the caller's when nothing is held. */
  registered(saslLoggedIn: boolean): void {
    this.drop();
    const { sasl, identify, log } = this.opts;
    if (!sasl || saslLoggedIn || !identify || identify.mode === 'off') return;
    log.info('logging in through NickServ IDENTIFY', { to: identify.nick, why: identify.mode === 'only' ? 'configured' : 'no SASL login' });
    this.write(`PRIVMSG ${identify.nick} :IDENTIFY ${sasl.account} ${sasl.password}`);
    this.waiting = true;
    const waitMs = identify.waitMs ?? IDENTIFY_WAIT_MS;
    this.timer = setTimeout(() => {
      log.warn('NickServ did not answer the IDENTIFY in time; joining and sending without waiting longer', { to: identify.nick, waitMs });
      this.release();
    }, waitMs);
  }

  /** A line from the server, while holding: the answer to the IDENTIFY releases the hold. */
  heard(l: IrcLine): void {
    const answer = identifyAnswer(l, this.opts.identify?.nick ?? 'NickServ');
    if (!answer) return;
    if (answer === 'in') this.opts.log.info('logged in through NickServ', { reply: l.command });
    else {
      const why = stripFormatting(l.params[l.params.length - 1] ?? '');
      this.opts.log.warn('the NickServ login failed; going on without it', { reply: l.params.slice(1).join(' ') });
      this.refused(why);
    }
    this.release();
  }

  /** The connection closed or quit: nothing to release (the next registration identifies again). */
  drop(): void {
    clearTimeout(this.timer);
    this.waiting = false;
  }

  private release(): void {
    this.drop();
    this.go();
  }
}
