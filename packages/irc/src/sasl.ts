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
