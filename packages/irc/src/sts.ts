/**
 * IRCv3 Strict Transport Security (the `sts` capability): a server that asks for TLS gets it.
 *
 * - On a plaintext connection, `sts=port=N` (an *upgrade* policy): the connection is closed at
 *   once, before any login is sent, and opened again with TLS on port N. From then on every
 *   connection of that server (the bridge's own and each Matrix user's) uses TLS on N.
 * - On a TLS connection, `sts=duration=S` (a *persistence* policy): stored by host name
 *   (`irc_sts`), so that for S seconds, across restarts, the bridge connects to that host with
 *   TLS only, whatever the config says. A TLS connection that fails (a certificate that does not
 *   verify, a closed port) is retried with TLS, never in plaintext. `duration=0` withdraws the
 *   policy. Each TLS connection that hears the policy, and each one that closes, starts its
 *   S seconds again (the spec's rescheduling on disconnect).
 *
 * A policy is heard in `CAP LS` and also in a later `CAP NEW` (a server that turns STS on, or changes
 * its duration, while connections are up): a registered plaintext connection then moves to TLS at
 * once, as one that is told at registration does. `CAP DEL sts` is ignored (the spec forbids it).
 *
 * Certificates are checked as with `tls: true`: the system's authorities, or the server's `tlsCa`.
 * A server configured with `tls: true` is already secure: policies change nothing there.
 * Config `sts: false` ignores policies (for a server whose certificate cannot be verified).
 */
import type { Logger } from '@trestle/core';

/** Where a connection goes: the configured port and transport, or the TLS port a policy names. */
export interface Route { port: number; tls: boolean }

/** A stored persistence policy: the TLS port, the duration last heard, and when it runs out (ms since the epoch). */
export interface StoredSts { port: number; durationS: number; expiresAt: number }

/** Where policies are kept (the IRC store, keyed by lower-cased host name). */
export interface StsStore {
  stsPolicy(host: string): StoredSts | undefined;
  setStsPolicy(host: string, policy: StoredSts): void;
  dropStsPolicy(host: string): void;
}

/**
 * The keys of an `sts` capability value that mean something (`port=6697,duration=2592000`);
 * unknown keys and malformed values are ignored, as the spec asks.
 */
export function parseSts(value: string): { port?: number; durationS?: number } {
  const out: { port?: number; durationS?: number } = {};
  for (const token of value.split(',')) {
    const eq = token.indexOf('=');
    const key = eq < 0 ? token : token.slice(0, eq);
    const v = eq < 0 ? '' : token.slice(eq + 1);
    if (key === 'port' && /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535) out.port = Number(v);
    if (key === 'duration' && /^\d{1,11}$/.test(v)) out.durationS = Number(v);
  }
  return out;
}

/** How often one host's expiry is written again when many connections hear or close the same policy. */
const REWRITE_MS = 60_000;

/** One configured server's STS state: the route its connections take, and what they heard. */
export class StsPolicy {
  /** The TLS port this run was sent to by an upgrade policy (until the bridge stops). */
  private upgradedTo?: number;
  private lastWrite = 0;
  /** The bridge is stopping (the store may be closed before the last sockets are): nothing more is written. */
  private stopped = false;
  private readonly hostKey: string;

  constructor(
    host: string, private readonly configured: Route, private readonly store: StsStore, private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.hostKey = host.toLowerCase();
  }

  /** Where the next connection goes. */
  route(): Route {
    if (this.configured.tls) return this.configured;
    const stored = this.store.stsPolicy(this.hostKey);
    if (stored && stored.expiresAt > this.now()) return { port: stored.port, tls: true };
    if (this.upgradedTo !== undefined) return { port: this.upgradedTo, tls: true };
    return this.configured;
  }

  /**
   * The server offered `sts=<value>` on a connection that went `on`. Returns the TLS port when that
   * connection must close now and open again there (an upgrade policy on plaintext).
   */
  offered(value: string, on: Route): number | undefined {
    if (this.stopped) return undefined;
    const { port, durationS } = parseSts(value);
    if (!on.tls) {
      if (port === undefined) return undefined; // a duration heard in plaintext means nothing (anyone could have said it)
      if (this.upgradedTo !== port) {
        this.log.info('the IRC server asks for TLS (STS): connecting again with TLS', { host: this.hostKey, port });
      }
      this.upgradedTo = port;
      return port;
    }
    if (durationS === undefined || this.configured.tls) return undefined;
    const stored = this.store.stsPolicy(this.hostKey);
    if (durationS === 0) {
      if (stored) {
        this.store.dropStsPolicy(this.hostKey);
        this.log.info('the IRC server withdrew its STS policy: back to the configured connection from the next one', { host: this.hostKey });
      }
      return undefined;
    }
    const t = this.now();
    if (!stored || stored.port !== on.port || stored.durationS !== durationS || t - this.lastWrite >= REWRITE_MS) {
      if (!stored) this.log.info('stored the IRC server\'s STS policy: TLS only for this host', { host: this.hostKey, port: on.port, durationS });
      this.store.setStsPolicy(this.hostKey, { port: on.port, durationS, expiresAt: t + durationS * 1000 });
      this.lastWrite = t;
    }
    return undefined;
  }

  /** A connection that went `on` closed: a policy it was under runs its whole duration again from now. */
  closed(on: Route, force = false): void {
    if (!on.tls || this.configured.tls || this.stopped) return;
    const t = this.now();
    if (!force && t - this.lastWrite < REWRITE_MS) return;
    const stored = this.store.stsPolicy(this.hostKey);
    if (!stored || stored.expiresAt <= t) return;
    this.store.setStsPolicy(this.hostKey, { ...stored, expiresAt: t + stored.durationS * 1000 });
    this.lastWrite = t;
  }

  /** The bridge stops, its connections (which went `on`) with it: the policy is rescheduled once, and nothing is written after. */
  stop(on: Route): void {
    this.closed(on, true);
    this.stopped = true;
  }
}

/** How long a held login waits for a server that says nothing at all to `CAP LS`. */
export const LOGIN_HOLD_MS = 5_000;

/**
 * The login of a plaintext connection that carries a server password, held until the server has
 * answered `CAP LS`: a server that asks for TLS there (an upgrade policy) gets the connection closed
 * with the password unsaid, and hears it again over TLS. `PASS` must come before `NICK` and `USER`
 * (a server without CAP negotiation registers on those two), so all three wait. Released by the last
 * `CAP LS` line (no upgrade asked), by a server that does not know CAP (it answers 421 or 451), or
 * after `LOGIN_HOLD_MS`; dropped when the connection closes.
 */
export class LoginHold {
  private held?: (() => void)[];
  private timer?: NodeJS.Timeout;

  constructor(private readonly holdMs = LOGIN_HOLD_MS) {}

  /** A new connection: from now on, what `hold` is given waits. */
  begin(): void {
    this.drop();
    this.held = [];
    this.timer = setTimeout(() => this.release(), this.holdMs);
  }

  get holding(): boolean { return this.held !== undefined; }

  /** Keep `send` for the release; false when nothing is held (the caller sends now). */
  hold(send: () => void): boolean {
    if (!this.held) return false;
    this.held.push(send);
    return true;
  }

  /** Send what was held, in order; nothing more is held. */
  release(): void {
    const held = this.held ?? [];
    this.drop();
    for (const send of held) send();
  }

  /** The connection closed: what was held is never sent. */
  drop(): void {
    clearTimeout(this.timer);
    this.held = undefined;
  }
}

/** The answers of a server that does not know `CAP`, to a held login: 421 (unknown command), 451 (not registered). */
export const NO_CAP_REPLIES: ReadonlySet<string> = new Set(['421', '451']);
