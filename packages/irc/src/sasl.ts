/** Which SASL mechanisms a Matrix user's connection tries, in order (pure: unit-tested). */

export type SaslMechanism = 'EXTERNAL' | 'PLAIN';

/**
 * The mechanisms to try, best first: EXTERNAL when the connection presents a client certificate
 * (nothing secret crosses the wire, and a changed password does not break it), then PLAIN when a
 * password is stored, so a certificate not (yet) known to services falls back to the password.
 * `offered` is the value of the server's `sasl` capability: undefined when there is no SASL, empty
 * when the server does not list its mechanisms (CAP 301), else a comma-separated list (CAP 302).
 */
export function saslMechanisms(have: { cert: boolean; password: boolean }, offered: string | undefined): SaslMechanism[] {
  if (offered === undefined) return [];
  const listed = offered === '' ? undefined : new Set(offered.toUpperCase().split(',').filter(Boolean));
  const out: SaslMechanism[] = [];
  if (have.cert && (!listed || listed.has('EXTERNAL'))) out.push('EXTERNAL');
  if (have.password && (!listed || listed.has('PLAIN'))) out.push('PLAIN');
  return out;
}

/**
 * One connection attempt's SASL login, as the lines to send (the connection writes them): the
 * mechanisms of {@link saslMechanisms} tried in turn, PLAIN's credentials base64-encoded in
 * 400-byte chunks (an empty `+` after an exact multiple, as the spec asks).
 */
export class SaslLogin {
  private readonly queue: SaslMechanism[];
  /** The server said 903: logged in (no NickServ IDENTIFY needed). */
  loggedIn = false;

  constructor(private readonly credentials: { account: string; password: string } | undefined, cert: boolean, offered: string | undefined) {
    this.queue = saslMechanisms({ cert, password: credentials !== undefined }, offered);
  }

  /** There is a mechanism to try (so the `sasl` capability is worth asking for). */
  get wanted(): boolean { return this.queue.length > 0; }

  /** `sasl` acknowledged: the line that starts the first mechanism. */
  begin(): string { return `AUTHENTICATE ${this.queue[0]}`; }

  /**
   * The lines that answer the server's `AUTHENTICATE <arg>`; undefined for a challenge this login
   * has no answer to (PLAIN and EXTERNAL expect only `+`): unanswered, the server would wait for
   * the answer and the connection for the server until registration timed out, again at every
   * reconnect, so the caller aborts the login (`AUTHENTICATE *`) and goes on without it.
   */
  answer(arg: string): string[] | undefined {
    if (arg !== '+') return undefined;
    // EXTERNAL: the certificate presented in the TLS handshake is the credential; no authorization identity
    if (this.queue[0] === 'EXTERNAL') return ['AUTHENTICATE +'];
    if (this.queue[0] !== 'PLAIN' || !this.credentials) return undefined;
    const { account, password } = this.credentials;
    const payload = Buffer.from(`${account}\0${account}\0${password}`).toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < payload.length; i += 400) lines.push(`AUTHENTICATE ${payload.slice(i, i + 400)}`);
    if (payload.length % 400 === 0) lines.push('AUTHENTICATE +');
    return lines;
  }

  /** The mechanism tried failed (904/905): the next one and the line that starts it, if one is left (EXTERNAL refused → PLAIN). */
  next(): { failed?: SaslMechanism; next: SaslMechanism; line: string } | undefined {
    const failed = this.queue.shift();
    const next = this.queue[0];
    return next ? { ...(failed ? { failed } : {}), next, line: `AUTHENTICATE ${next}` } : undefined;
  }
}
