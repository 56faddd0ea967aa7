/**
 * The bridge's listening IRC connection (irc-framework underneath, for its rich channel events):
 * registration with nick collision handling, channel joins that report why they failed, and
 * reconnection with exponential backoff and jitter through a shared limiter. It only reads, plus
 * the odd raw command (NAMES, KICK when the Matrix user has no connection); Matrix users' own
 * connections are the lean ones in lean.ts, which share the reconnect policy defined here.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import IRC from 'irc-framework';
import { transportWithFallback } from './transport.js';
import { CtcpLimiter, ctcpReply } from './ctcp.js';
import { joinLines } from './flood.js';
import { DeliveryError, type Logger } from '@trestle/core';
import { pemCertificates, untrustedChain } from './certs.js';
import type { IdentRegistry } from './identd.js';
import { ircLower, isChannel, moveChannel } from './ids.js';
import { capEntries } from './ircline.js';
import { JoinWaits } from './joins.js';
import { nextNick, NickRegain } from './nicks.js';
import { joinErrorByName } from './numerics.js';
import type { Route, StsPolicy } from './sts.js';

export interface ConnectionOptions {
  host: string;
  port: number;
  tls: boolean;
  /** PEM certificates trusted for the server instead of the system's authorities (config `tlsCa`). */
  tlsCa?: string;
  password?: string;
  nick: string;
  username: string;
  realname: string;
  sasl?: { account: string; password: string };
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  /** `registerMs`: how long a connection may take to register before it is dropped and tried again. */
  timeouts: { registerMs: number };
  limiter: ReconnectLimiter;
  log: Logger;
  /**
   * Lines to drop before irc-framework parses them (it costs tens of microseconds a line): the
   * listener hears every message the bridge's own connections send, and has no use for them.
   */
  dropLine?: (line: string) => boolean;
  /** The ident server, told about the socket once connected, before NICK and USER (config `ident`). */
  ident?: IdentRegistry;
  /** How lines that are not UTF-8 are read (config `encodingFallback`; none: as UTF-8, with U+FFFD). */
  encodingFallback?: string;
  /** The server's IRCv3 STS state (config `sts`): where each connection goes, told what the server offers (sts.ts). */
  sts?: StsPolicy;
}

/**
 * A connection was lost without being closed on purpose: say so (`disconnected`, a warning) and
 * reconnect it after the backoff for `attempt` (exponential, with jitter), taking a place in
 * `limiter` for the attempt. The place is released once the attempt ends, whichever way: the
 * connection registers (`registered`), drops again (`disconnected`; a connection drops itself when
 * the server does not register it in time) or is closed on purpose (`closed`: idle, evicted, the
 * bridge stopping). A place never released would be lost for good: `maxConcurrent` of them and no
 * connection of the server would reconnect again.
 * Shared by the listening and the lean connections; returns the timer, to cancel on quit.
 */
export function reconnectAfterLoss(opts: {
  conn: EventEmitter; attempt: number; policy: { initialDelayMs: number; maxDelayMs: number };
  limiter: ReconnectLimiter; open: () => void; cancelled: () => boolean; log: Logger; fields: Record<string, unknown>;
  /** Closed on purpose to open again with TLS (the server's STS policy): no loss, no delay. */
  upgrade?: boolean;
}): NodeJS.Timeout {
  opts.conn.emit('disconnected');
  const base = Math.min(opts.policy.maxDelayMs, opts.policy.initialDelayMs * 2 ** Math.min(opts.attempt - 1, 16));
  const delayMs = opts.upgrade ? 0 : Math.round(base * (0.5 + Math.random()));
  const timer = setTimeout(() => {
    void opts.limiter.run(async () => {
      if (opts.cancelled()) return;
      const settled = new Promise<void>((resolve) => {
        const ends = ['registered', 'disconnected', 'closed'];
        const done = (): void => { for (const e of ends) opts.conn.off(e, done); resolve(); };
        for (const e of ends) opts.conn.once(e, done);
      });
      opts.open();
      await settled;
    });
  }, delayMs);
  if (opts.upgrade) opts.log.debug('connecting again with TLS, as the IRC server asks (STS)', opts.fields);
  else opts.log.warn('IRC connection lost; reconnecting', { ...opts.fields, attempt: opts.attempt, delayMs });
  return timer;
}

/**
 * A connection (connected or still connecting) that the server has not registered within `ms` is
 * dropped by `drop`, as a lost connection: so it is tried again, and its reconnect attempt gives back
 * its limiter place. The caller clears the timer on registration and on close.
 */
export function registerDeadline(ms: number, log: Logger, drop: () => void): NodeJS.Timeout {
  return setTimeout(() => {
    log.warn('the IRC server did not register the connection in time; dropping it', { afterMs: ms });
    drop();
  }, ms);
}

/**
 * How long the listener waits before joining again a channel it was kicked from, for the `attempt`th
 * time in a row (kicked again soon after coming back, or the join refused): 3 s, doubling, at most
 * 10 minutes. Soon enough for a kick by mistake; an operator who means it does not see it loop.
 */
export function rejoinDelayMs(attempt: number): number {
  return Math.min(600_000, 3_000 * 2 ** Math.min(Math.max(attempt, 1) - 1, 16));
}

/** Caps how many connections reconnect at once, so a server restart does not cause a stampede. */
export class ReconnectLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try { return await fn(); } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** `CAP <nick> NEW :<caps>` (tags and prefix optional; the raw line may still end in CR LF), capturing the caps. */
const CAP_NEW = /^(?:@\S+ )?(?::\S+ )?CAP \S+ NEW :?([^\r\n]*)/;

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export class IrcConnection extends EventEmitter {
  readonly client: InstanceType<typeof IRC.Client>;
  state: ConnectionState = 'idle';
  nick: string;
  readonly channels = new Map<string, string | undefined>(); // lower-cased channel → key
  private attempts = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private registerTimer?: NodeJS.Timeout;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private intentionalQuit = false;
  /** Where the current connection went: as configured, or TLS under an STS policy. */
  private route: Route;
  /** The server asked this plaintext connection to use TLS (STS): it opens again at once, with TLS. */
  private upgrading = false;

  /** irc-framework's transport, reading lines that are not UTF-8 with the fallback encoding. */
  private readonly transport: ReturnType<typeof transportWithFallback>;

  constructor(private readonly opts: ConnectionOptions) {
    super();
    this.nick = opts.nick;
    this.route = { port: opts.port, tls: opts.tls };
    this.transport = transportWithFallback(opts.encodingFallback, opts.sts !== undefined, opts.log);
    this.client = new IRC.Client(IrcConnection.clientOptions);
    // join() listens for the outcome of each pending join: the listener joins every bridged channel at once
    this.setMaxListeners(0);
    // draft/chathistory: what was said while the listener was away is fetched back on rejoin (history.ts);
    // draft/event-playback: joins and quits in that history come as themselves, not as ergo's HistServ lines
    // draft/channel-rename: a channel renamed on the server is followed (RENAME), not seen as a PART and a JOIN
    for (const cap of ['draft/message-redaction', 'typing', 'draft/multiline', 'draft/chathistory', 'draft/event-playback', 'draft/channel-rename']) this.client.requestCap(cap);
    // Every line the server sends comes through here. irc-framework's handlers take what a numeric
    // or command should carry for granted (`:srv 311 bridge`, a bare `:srv PRIVMSG`: params[1] of
    // nothing), and a throw there would leave the socket's data handler and end the whole process:
    // one bad line from one server would stop every network. Such a line is logged and skipped.
    const drop = opts.dropLine;
    const conn = this.client.connection as unknown as { addReadBuffer(line: string): void };
    const parse = conn.addReadBuffer.bind(conn);
    conn.addReadBuffer = (line: string) => {
      try {
        if (!drop?.(line)) parse(line);
      } catch (err) {
        opts.log.warn('skipped an IRC line that could not be handled', { line: line.slice(0, 80).trimEnd(), err: err as Error });
      }
    };
    this.wire();
  }

  /** irc-framework replaces its options on every connect(), so these go to both. */
  // version '': irc-framework would answer every CTCP VERSION itself, channel-wide ones included and
  // without a limit (a few clones asking #chan over and over get the listener killed for flooding);
  // the 'ctcp request' handler below answers it instead, to the bridge's own nick only, rate-limited
  private static readonly clientOptions = { auto_reconnect: false, enable_chghost: true, message_max_length: 4096, version: '' };

  private wire(): void {
    const c = this.client;
    let nickAttempt = 0;
    // registered under a fallback nick, the configured one taken (by the bridge's own connection from
    // before a crash, say): watched with IRCv3 MONITOR and taken back once the server says it is free
    const regain = new NickRegain();
    c.on('registered', (e: { nick: string }) => {
      this.nick = e.nick; // the real nick from RPL_WELCOME
      clearTimeout(this.registerTimer);
      this.state = 'connected';
      this.attempts = 0;
      regain.registered(this.opts.nick, e.nick);
      nickAttempt = 0;
      this.opts.log.info('IRC connection registered', { nick: e.nick });
      // as few JOIN lines as fit (a few hundred channels in one line each would be an excess flood,
      // and irc-framework paces nothing); their answers are the JOIN events, channel by channel
      for (const line of joinLines(this.channels)) c.raw(line);
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      this.emit('registered', e.nick);
    });
    // registering, a nick refused goes on to the next: `inUse` (433) is someone's, and is watched to
    // be taken back; one held by the server (436/437: a nick delay after a netsplit) is not
    const nextNickPlease = (wanted: string, inUse: boolean): void => {
      nickAttempt++;
      regain.refused(inUse);
      const nick = nextNick(this.opts.nick, nickAttempt, Number(c.network.options['NICKLEN'] ?? 30));
      this.opts.log.info(inUse ? 'nick in use; trying another' : 'nick unavailable for now; trying another', { wanted, next: nick });
      c.changeNick(nick);
    };
    c.on('nick in use', (e: { nick: string }) => {
      if (this.state === 'connected') { this.emit('nick error', `${e.nick} is already in use`); return; }
      nextNickPlease(e.nick, true);
    });
    c.on('nick invalid', (e: { nick: string; reason: string }) => {
      if (this.state === 'connected') { this.emit('nick error', `${e.nick}: ${e.reason}`); return; }
      regain.refused(false);
      c.changeNick(`M${Date.now().toString(36)}`);
    });
    c.on('join', (e: { nick: string; channel: string }) => {
      if (ircLower(e.nick) !== ircLower(this.nick)) return;
      this.joined.add(ircLower(e.channel));
      this.joinWaits.answered(ircLower(e.channel));
    });
    c.on('part', (e: { nick: string; channel: string }) => {
      if (ircLower(e.nick) === ircLower(this.nick)) this.joined.delete(ircLower(e.channel));
    });
    c.on('kick', (e: { kicked: string; channel: string; message?: string; nick: string }) => {
      if (ircLower(e.kicked) === ircLower(this.nick)) {
        // out until joined again (server.ts rejoins a bridged channel after a wait), not at a reconnect meanwhile; the key goes with the event
        const key = this.channels.get(ircLower(e.channel));
        this.joined.delete(ircLower(e.channel));
        this.channels.delete(ircLower(e.channel));
        this.emit('kicked', { ...e, ...(key !== undefined ? { key } : {}) });
      }
    });
    c.on('server options', (e: { options: Record<string, unknown> }) => {
      if (e.options['MONITOR'] !== undefined) for (const line of regain.monitorOffered()) c.raw(line);
    });
    c.on('users offline', (e: { nicks: string[] }) => {
      const free = regain.offline(e.nicks);
      if (!free) return;
      this.opts.log.info('the configured nick is free again; taking it back', { nick: free });
      c.changeNick(free);
    });
    c.on('nick', (e: { nick: string; new_nick: string }) => {
      if (ircLower(e.nick) !== ircLower(this.nick)) return;
      this.nick = e.new_nick;
      for (const line of regain.nickChanged()) c.raw(line);
      this.emit('own nick', e.new_nick);
    });
    // (TLS may also come from an STS policy: the check looks at every TLS socket)
    if (this.opts.tlsCa) this.checkServerCertificate(this.opts.tlsCa);
    // IRCv3 STS: asked to use TLS, a plaintext connection closes before its CAP ACK (and any SASL
    // login) is read, and opens again with TLS (sts.ts)
    const stsOffered = (sts: string | undefined): void => {
      if (sts === undefined || this.opts.sts?.offered(sts, this.route) === undefined) return;
      this.upgrading = true;
      c.connection.end(undefined, true);
    };
    c.on('cap ls', (e: { capabilities: Record<string, string> }) => stsOffered(e.capabilities['sts'] ?? e.capabilities['draft/sts']));
    // a policy announced later (CAP NEW, which irc-framework does not report) is acted on likewise:
    // refreshed or withdrawn over TLS, and in plaintext the connection moves to TLS now
    if (this.opts.sts) {
      c.on('raw', (e: { line: string; from_server: boolean }) => {
        const m = e.from_server ? CAP_NEW.exec(e.line) : null;
        if (!m) return;
        for (const [name, value] of capEntries(m[1] ?? '')) if (name === 'sts' || name === 'draft/sts') stsOffered(value);
      });
    }
    // irc-framework's "raw socket connected" comes with the TCP connection, before TLS and registration
    const ident = this.opts.ident;
    if (ident) c.on('raw socket connected', (sock: Socket) => ident.register(sock, this.opts.username));
    // the CTCPs a client answers (VERSION, PING, TIME...; ctcp.ts), here: irc-framework's own VERSION answer is off (clientOptions)
    const ctcpLimit = new CtcpLimiter();
    c.on('ctcp request', (e: { nick?: string; target: string; type: string | null; message: string }) => {
      if (!e.nick || ircLower(e.target) !== ircLower(this.nick)) return; // to a channel: not ours to answer
      const reply = ctcpReply(e.type ?? '', e.message.slice((e.type ?? '').length + 1), new Date());
      if (reply && ctcpLimit.allow(Date.now())) c.raw(`NOTICE ${e.nick} :\x01${reply}\x01`);
    });
    c.on('unknown command', (cmd: { command: string; params: string[] }) => {
      // 403, 437, 476, 477: refusals of a JOIN that irc-framework has no name for (numerics.ts); taken
      // only when a JOIN to the channel they name waits, as they answer other commands too
      if (this.joinWaits.refusal(cmd.command, cmd.params)) return;
      // 436/437 (irc-framework has no name for them) refusing the nick while registering: without
      // this the registration timed out and came back with the same nick, again and again
      const refusedNick = cmd.params[1];
      if ((cmd.command === '437' || cmd.command === '436') && this.state !== 'connected' && refusedNick && !isChannel(refusedNick)) {
        nextNickPlease(refusedNick, false);
        return;
      }
      const [from, to, reason] = cmd.params;
      if (cmd.command === 'RENAME' && from && to) {
        moveChannel(this.channels, from, to);
        moveChannel(this.joined, from, to);
        this.emit('renamed', { from, to, ...(reason ? { reason } : {}) });
        return;
      }
      if (cmd.command === 'FAIL' && cmd.params[1] === 'ACCOUNT_REQUIRED' && this.state !== 'connected') {
        // it reconnects (with backoff) all the same: the account may be registered, or the server's rule relaxed, meanwhile
        this.opts.log.error('the IRC server lets only logged-in users in: give the bridge\'s own connection an account (botPassword)', { reply: cmd.params.join(' ') });
        return;
      }
      // (a refused CHATHISTORY is the listener's, which logs and handles it: see listen.ts)
      if (cmd.command === 'FAIL' && cmd.params[0] !== 'CHATHISTORY') this.opts.log.warn('the IRC server refused a command', { reply: cmd.params.join(' ') });
    });
    c.on('close', () => this.onClosed());
    c.on('socket close', () => this.onClosed());
    // a TLS failure is worth a warning: the certificate, or a TLS port (an STS policy's) that does not answer
    c.on('socket error', (err: Error) => {
      if (this.route.tls && this.state !== 'connected') this.opts.log.warn('could not connect with TLS', { port: this.route.port, err: err.message });
    });
    c.on('irc error', (e: { error: string; channel?: string; reason?: string }) => {
      const refused = e.channel ? joinErrorByName(e.error) : undefined;
      if (refused) this.joinWaits.answered(ircLower(e.channel!), refused);
      this.emit('irc error', e);
    });
  }

  /** JOINs waiting for the server's answer (see joins.ts). */
  private readonly joinWaits = new JoinWaits();

  /**
   * irc-framework gives tls.connect no `ca`, so with `tlsCa` it connects without Node's check
   * (rejectUnauthorized false, see open()) and the chain is checked here instead: the TLS socket's
   * handshake is watched from the moment it exists, and this check runs before irc-framework's
   * own handler writes a line (the server password among them); an untrusted server's socket is
   * destroyed, so nothing is sent to it, and the connection is retried like any lost one.
   */
  private checkServerCertificate(caPem: string): void {
    const trusted = pemCertificates(caPem);
    this.client.on('raw socket connected', (sock: unknown) => {
      if (!(sock instanceof TLSSocket)) return;
      sock.prependOnceListener('secureConnect', () => {
        const chain: X509Certificate[] = [];
        const seen = new Set<string>();
        for (let c: PeerCertificate | undefined = sock.getPeerCertificate(true); c?.raw && !seen.has(c.fingerprint256); c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate) {
          seen.add(c.fingerprint256);
          chain.push(new X509Certificate(c.raw));
        }
        const why = untrustedChain(chain, trusted, this.opts.host);
        if (!why) return;
        this.opts.log.error('refusing the IRC server\'s TLS certificate', { host: this.opts.host, reason: why });
        sock.destroy();
      });
    });
  }

  /** The transport of the current connection: TLS or not, and the port (TLS may be an STS policy's, not the config's). */
  get via(): Route { return this.route; }

  /** Connect (once) and resolve when registered. */
  connect(): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    if (this.state === 'idle' || this.state === 'closed') {
      this.intentionalQuit = false;
      this.state = 'connecting';
      this.open();
    }
    return p;
  }

  private open(): void {
    const o = this.opts;
    this.upgrading = false;
    const route = this.route = o.sts?.route() ?? { port: o.port, tls: o.tls };
    clearTimeout(this.registerTimer);
    this.registerTimer = registerDeadline(o.timeouts.registerMs, o.log, () => this.client.connection.end(undefined, true));
    this.client.connect({
      ...IrcConnection.clientOptions, transport: this.transport,
      host: o.host, port: route.port, tls: route.tls, nick: this.opts.nick, username: o.username, gecos: o.realname,
      ...(route.tls && o.tlsCa ? { rejectUnauthorized: false } : {}), // checked by checkServerCertificate()
      ...(o.password ? { password: o.password } : {}),
      ...(o.sasl ? { account: { account: o.sasl.account, password: o.sasl.password } } : {}),
    });
  }

  private onClosed(): void {
    clearTimeout(this.registerTimer);
    if (this.state === 'closed' || this.state === 'reconnecting') return;
    this.opts.sts?.closed(this.route);
    const wasConnected = this.state === 'connected';
    this.joined.clear();
    if (this.intentionalQuit) {
      this.state = 'closed';
      for (const w of this.readyWaiters.splice(0)) w.reject(new DeliveryError('the IRC connection was closed'));
      return;
    }
    this.state = 'reconnecting';
    this.reconnectTimer = reconnectAfterLoss({
      conn: this, attempt: this.upgrading ? this.attempts : ++this.attempts, upgrade: this.upgrading, policy: this.opts.reconnect, limiter: this.opts.limiter, log: this.opts.log, fields: { wasConnected },
      open: () => { this.state = 'connecting'; this.open(); }, cancelled: () => this.intentionalQuit,
    });
  }

  /** Join a channel and wait until the server confirms, or fail with the reason. */
  async join(channel: string, key?: string): Promise<void> {
    const lc = ircLower(channel);
    if (this.state === 'connected' && this.joined.has(lc)) return;
    this.channels.set(lc, key);
    await this.connect();
    if (this.joined.has(lc)) return;
    await this.joinWaits.join(lc, channel, () => this.client.join(channel, key), () => this.channels.delete(lc));
  }

  /** Channels the connection is in right now (from its own JOIN/PART/KICK; emptied on disconnect). */
  private readonly joined = new Set<string>();

  isIn(channel: string): boolean { return this.joined.has(ircLower(channel)); }

  part(channel: string, reason?: string): void {
    const lc = ircLower(channel);
    this.channels.delete(lc);
    this.joined.delete(lc);
    if (this.state === 'connected') this.client.part(channel, reason);
  }

  /**
   * Ask the server who a nick is: irc-framework's answer (its `whois` event, with `error` set when
   * there is no such nick), or a rejection when not connected or when no answer comes within
   * `timeoutMs`. Not irc-framework's whois(): it waits, and keeps its listener, for good when no
   * answer naming the nick comes (the connection down or lost, a server that folds the nick otherwise).
   */
  whois(nick: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    if (this.state !== 'connected') return Promise.reject(new DeliveryError('the bridge is not connected to the IRC server right now'));
    return new Promise((resolve, reject) => {
      const done = (): void => { clearTimeout(timer); this.client.off('whois', answered); };
      const answered = (e: Record<string, unknown>): void => {
        if (typeof e['nick'] !== 'string' || ircLower(e['nick']) !== ircLower(nick)) return;
        done();
        resolve(e);
      };
      const timer = setTimeout(() => {
        done();
        reject(new DeliveryError(`no answer from the IRC server to WHOIS ${nick} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.client.on('whois', answered);
      this.client.raw('WHOIS', nick);
    });
  }

  /** Write a raw command now if connected (dropped when not: the listener sends nothing that must wait). */
  raw(line: string): boolean {
    if (this.state !== 'connected') return false;
    this.client.raw(line.replace(/[\r\n\0]/g, ''));
    return true;
  }

  /** Close for good (quit message sent if connected). */
  quit(message = 'Bye'): void {
    this.intentionalQuit = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    clearTimeout(this.registerTimer);
    if (this.state === 'connected' || this.state === 'connecting') this.client.quit(message);
    this.state = 'closed';
    for (const w of this.readyWaiters.splice(0)) w.reject(new DeliveryError('the IRC connection was closed'));
    this.emit('closed'); // ends a reconnect attempt in progress (its limiter place)
  }
}
