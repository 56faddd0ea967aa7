/**
 * What a lean connection (lean.ts: a Matrix user's own IRC connection) is opened with: where and
 * as whom it connects, how it logs in, and the server's state it shares with the bridge's other
 * connections (reconnect limits, STS policy, ident).
 */
import type { Logger } from '@trestle/core';
import type { ReconnectLimiter } from './connection.js';
import type { FloodSettings } from './flood.js';
import type { IdentRegistry } from './identd.js';
import type { StsPolicy } from './sts.js';

export interface LeanOptions {
  host: string; port: number; tls: boolean; password?: string;
  nick: string; username: string; realname: string;
  /** How lines that are not UTF-8 are read (config `encodingFallback`). */
  encodingFallback?: string;
  /**
   * The server's NICKLEN as the bridge already knows it (its own connection's ISUPPORT). A nick
   * refused during registration is answered before this connection sees ISUPPORT itself, and the
   * next nick tried must fit the server's limit, not a guess. Default 30.
   */
  nickLen?: number;
  sasl?: { account: string; password: string };
  /**
   * Logging in with `sasl`'s credentials through NickServ: when SASL is not offered or fails, always,
   * or never. JOINs and messages wait for NickServ's answer (login.ts), at most `waitMs` (default 10 s).
   */
  identify?: { mode: 'fallback' | 'only' | 'off'; nick: string; waitMs?: number };
  /** A client certificate (PEM) presented over TLS, for SASL EXTERNAL (tried before PLAIN). */
  clientCert?: { cert: string; key: string };
  /** PEM certificates trusted for the server instead of the system's authorities (config `tlsCa`). */
  tlsCa?: string;
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  /**
   * `registerMs`: how long the server may take to register a connection before it is dropped and
   * tried again. `answerMs`: how long a labeled line waits for its answer before the connection is
   * checked, and how long the check waits (see {@link LeanConnection.suspect}).
   */
  timeouts: { registerMs: number; answerMs: number };
  /**
   * Client-side flood control (config `flood`; flood.ts): the send queue goes out at most
   * `burstLines` at once, then `linesPerSecond`, in order. Unset or disabled: all at once.
   */
  flood?: FloodSettings;
  limiter: ReconnectLimiter;
  log: Logger;
  /** The ident server, told about each socket once connected, before NICK and USER (config `ident`). */
  ident?: IdentRegistry;
  /**
   * The source address of the socket (from the server's `addressBlock`); unset: the host's
   * default. An address the host cannot use (EADDRNOTAVAIL: the block is not routed here) fails
   * the connection for good, like a ban, with 'address unavailable' emitted.
   */
  localAddress?: string;
  /** Why the connection cannot be opened at all (no free address in the block): it fails at once, for good, with this. */
  cannotOpen?: string;
  /** User modes set on itself once registered (config `userModes`, e.g. `+R`). */
  userModes?: string;
  /**
   * The server's IRCv3 STS state (config `sts`): each connection goes where it routes (`host`'s
   * TLS port under a policy, else `port`/`tls`), and tells it what the server offered.
   */
  sts?: StsPolicy;
}
