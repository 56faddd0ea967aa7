/**
 * One IRC connection (irc-framework underneath): registration with nick collision handling,
 * channel joins that report why they failed, an ordered send queue that holds lines while the
 * connection is down and delivers them in order once it is back, reconnection with exponential
 * backoff and jitter through a shared limiter, and IRCv3 echo-message/labeled-response so each
 * sent message learns its server msgid.
 */
import { EventEmitter } from 'node:events';
import IRC from 'irc-framework';
import { DeliveryError, type Logger } from '@trestle/core';
import { ircLower } from './ids.js';
import { nextNick } from './nicks.js';

export interface ConnectionOptions {
  host: string;
  port: number;
  tls: boolean;
  password?: string;
  nick: string;
  username: string;
  realname: string;
  sasl?: { account: string; password: string };
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  limiter: ReconnectLimiter;
  log: Logger;
  /** Rejoin these after a reconnect (the connection adds channels it joined itself). */
  version?: string;
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

interface PendingLine {
  /** REDACT is its own kind: it is labeled, so a refusal (FAIL) reaches the caller. */
  command: 'PRIVMSG' | 'NOTICE' | 'ACTION' | 'TAGMSG' | 'REDACT' | 'RAW';
  target: string;
  text: string;
  tags: Record<string, string>;
  resolve: (msgid: string | undefined) => void;
  reject: (err: Error) => void;
}

const JOIN_ERRORS: Record<string, string> = {
  channel_is_full: 'the channel is full',
  invite_only_channel: 'the channel is invite-only',
  banned_from_channel: 'you are banned from the channel',
  bad_channel_key: 'the channel needs a key',
  too_many_channels: 'you joined too many channels',
};

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export class IrcConnection extends EventEmitter {
  readonly client: InstanceType<typeof IRC.Client>;
  state: ConnectionState = 'idle';
  nick: string;
  readonly channels = new Map<string, string | undefined>(); // lower-cased channel → key
  lastActive = Date.now();
  private queue: PendingLine[] = [];
  private pumping = false;
  private attempts = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private labelSeq = 0;
  private readonly awaitingEcho = new Map<string, (msgid: string | undefined, refusal?: string) => void>();
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private intentionalQuit = false;

  constructor(private readonly opts: ConnectionOptions) {
    super();
    this.nick = opts.nick;
    this.client = new IRC.Client(IrcConnection.clientOptions);
    for (const cap of ['labeled-response', 'draft/message-redaction', 'draft/multiline', 'draft/reply', 'typing']) this.client.requestCap(cap);
    this.wire();
  }

  /** irc-framework replaces its options on every connect(), so these go to both. */
  private static readonly clientOptions = { auto_reconnect: false, enable_echomessage: true, enable_chghost: true, message_max_length: 4096 };

  get caps(): Set<string> {
    return new Set<string>((this.client.network.cap.enabled as string[] | undefined) ?? []);
  }

  private wire(): void {
    const c = this.client;
    let nickAttempt = 0;
    c.on('registered', (e: { nick: string }) => {
      this.nick = e.nick; // the real nick from RPL_WELCOME
      this.state = 'connected';
      this.attempts = 0;
      nickAttempt = 0;
      this.opts.log.info('IRC connection registered', { nick: e.nick });
      for (const [channel, key] of this.channels) c.join(channel, key);
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      this.emit('registered', e.nick);
      void this.pump();
    });
    c.on('nick in use', (e: { nick: string }) => {
      if (this.state === 'connected') { this.emit('nick error', `${e.nick} is already in use`); return; }
      nickAttempt++;
      const nick = nextNick(this.opts.nick, nickAttempt, Number(c.network.options['NICKLEN'] ?? 30));
      this.opts.log.info('nick in use; trying another', { wanted: e.nick, next: nick });
      c.changeNick(nick);
    });
    c.on('nick invalid', (e: { nick: string; reason: string }) => {
      if (this.state === 'connected') { this.emit('nick error', `${e.nick}: ${e.reason}`); return; }
      c.changeNick(`M${Date.now().toString(36)}`);
    });
    c.on('join', (e: { nick: string; channel: string }) => {
      if (ircLower(e.nick) === ircLower(this.nick)) this.joined.add(ircLower(e.channel));
    });
    c.on('part', (e: { nick: string; channel: string }) => {
      if (ircLower(e.nick) === ircLower(this.nick)) this.joined.delete(ircLower(e.channel));
    });
    c.on('kick', (e: { kicked: string; channel: string; reason?: string; nick: string }) => {
      if (ircLower(e.kicked) === ircLower(this.nick)) {
        this.joined.delete(ircLower(e.channel));
        this.channels.delete(ircLower(e.channel));
        this.emit('kicked', e);
      }
    });
    c.on('nick', (e: { nick: string; new_nick: string }) => {
      if (ircLower(e.nick) === ircLower(this.nick)) { this.nick = e.new_nick; this.emit('own nick', e.new_nick); }
    });
    c.on('privmsg', (e: { nick: string; tags: Record<string, string>; target: string }) => this.onEcho(e));
    c.on('notice', (e: { nick: string; tags: Record<string, string>; target: string }) => this.onEcho(e));
    c.on('action', (e: { nick: string; tags: Record<string, string>; target: string }) => this.onEcho(e));
    c.on('tagmsg', (e: { nick: string; tags: Record<string, string>; target: string }) => this.onEcho(e));
    c.on('unknown command', (cmd: { command: string; params: string[]; nick?: string; tags?: Record<string, string> }) => {
      const label = cmd.tags?.['label'];
      if (cmd.command === 'FAIL') {
        // IRCv3 standard replies: the server refused something we sent (e.g. REDACT_FORBIDDEN)
        this.opts.log.warn('the IRC server refused a command', { reply: cmd.params.join(' ') });
        const done = label ? this.awaitingEcho.get(label) : undefined;
        if (done) { this.awaitingEcho.delete(label!); done(undefined, cmd.params[cmd.params.length - 1] ?? 'refused'); }
      } else if (cmd.command === 'REDACT' || cmd.command === 'ACK') {
        const done = label ? this.awaitingEcho.get(label) : undefined;
        if (done) { this.awaitingEcho.delete(label!); done(undefined); }
      }
    });
    c.on('close', () => this.onClosed());
    c.on('socket close', () => this.onClosed());
    c.on('irc error', (e: { error: string; channel?: string; reason?: string }) => this.emit('irc error', e));
  }

  private onEcho(e: { nick: string; tags: Record<string, string> }): void {
    if (ircLower(e.nick) !== ircLower(this.nick)) return;
    const label = e.tags?.['label'];
    if (label) {
      const done = this.awaitingEcho.get(label);
      if (done) { this.awaitingEcho.delete(label); done(e.tags['msgid']); }
    }
  }

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
    this.client.connect({
      ...IrcConnection.clientOptions,
      host: o.host, port: o.port, tls: o.tls, nick: this.opts.nick, username: o.username, gecos: o.realname,
      ...(o.password ? { password: o.password } : {}),
      ...(o.sasl ? { account: { account: o.sasl.account, password: o.sasl.password } } : {}),
      ...(o.version ? { version: o.version } : {}),
    });
  }

  private onClosed(): void {
    if (this.state === 'closed' || this.state === 'reconnecting') return;
    const wasConnected = this.state === 'connected';
    this.joined.clear();
    for (const [, done] of this.awaitingEcho) done(undefined);
    this.awaitingEcho.clear();
    if (this.intentionalQuit) {
      this.state = 'closed';
      for (const w of this.readyWaiters.splice(0)) w.reject(new DeliveryError('the IRC connection was closed'));
      return;
    }
    this.state = 'reconnecting';
    this.attempts++;
    const base = Math.min(this.opts.reconnect.maxDelayMs, this.opts.reconnect.initialDelayMs * 2 ** Math.min(this.attempts - 1, 16));
    const delay = Math.round(base * (0.5 + Math.random()));
    this.opts.log.warn('IRC connection lost; reconnecting', { wasConnected, attempt: this.attempts, delayMs: delay, queued: this.queue.length });
    this.emit('disconnected');
    this.reconnectTimer = setTimeout(() => {
      void this.opts.limiter.run(async () => {
        if (this.intentionalQuit) return;
        this.state = 'connecting';
        const registered = new Promise<void>((resolve) => {
          const done = (): void => { this.off('registered', done); this.off('disconnected', done); resolve(); };
          this.once('registered', done);
          this.once('disconnected', done);
        });
        this.open();
        await registered;
      });
    }, delay);
  }

  /** Join a channel and wait until the server confirms, or fail with the reason. */
  async join(channel: string, key?: string): Promise<void> {
    const lc = ircLower(channel);
    if (this.state === 'connected' && this.joined.has(lc)) return;
    this.channels.set(lc, key);
    await this.connect();
    if (this.joined.has(lc)) return;
    await new Promise<void>((resolve, reject) => {
      const onJoin = (e: { nick: string; channel: string }): void => {
        if (ircLower(e.nick) === ircLower(this.nick) && ircLower(e.channel) === lc) { cleanup(); resolve(); }
      };
      const onErr = (e: { error: string; channel?: string; reason?: string }): void => {
        if (e.channel && ircLower(e.channel) === lc && JOIN_ERRORS[e.error]) {
          cleanup();
          this.channels.delete(lc);
          reject(new DeliveryError(`cannot join ${channel}: ${JOIN_ERRORS[e.error]}`, true));
        }
      };
      const timer = setTimeout(() => { cleanup(); reject(new DeliveryError(`joining ${channel} timed out`)); }, 15_000);
      const cleanup = (): void => { clearTimeout(timer); this.client.off('join', onJoin); this.off('irc error', onErr); };
      this.client.on('join', onJoin);
      this.on('irc error', onErr);
      this.client.join(channel, key);
    });
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
   * Queue a line; resolves with the server msgid (when the server echoes with one) once sent.
   * Lines wait while the connection is down and go out in order when it is back.
   */
  send(command: PendingLine['command'], target: string, text: string, tags: Record<string, string> = {}): Promise<string | undefined> {
    this.lastActive = Date.now();
    return new Promise((resolve, reject) => {
      this.queue.push({ command, target, text, tags, resolve, reject });
      if (this.state === 'idle' || this.state === 'closed') this.connect().catch(reject);
      void this.pump();
    });
  }

  /** Write queued lines in order. Echoes (msgids) are awaited per line, not before writing the next. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length && this.state === 'connected') {
        const line = this.queue.shift()!;
        try {
          this.write(line).then(line.resolve, line.reject);
        } catch (err) {
          line.reject(err as Error);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private write(line: PendingLine): Promise<string | undefined> {
    const c = this.client;
    const caps = this.caps;
    const tags = { ...line.tags };
    const wantsEcho = caps.has('labeled-response') && (line.command === 'REDACT' || (caps.has('echo-message') && line.command !== 'RAW'));
    let label: string | undefined;
    if (wantsEcho) { label = `t${++this.labelSeq}`; tags['label'] = label; }
    const echoed = label
      ? new Promise<string | undefined>((resolve, reject) => {
        const t = setTimeout(() => { this.awaitingEcho.delete(label!); resolve(undefined); }, 10_000);
        this.awaitingEcho.set(label!, (id, refusal) => {
          clearTimeout(t);
          if (refusal) reject(new DeliveryError(`the IRC server refused it: ${refusal}`, true));
          else resolve(id);
        });
      })
      : Promise.resolve(undefined);
    const clientTags = Object.fromEntries(Object.entries(tags).filter(([k]) => caps.has('message-tags') || k === 'label'));
    switch (line.command) {
      case 'PRIVMSG': c.say(line.target, line.text, clientTags); break;
      case 'NOTICE': c.notice(line.target, line.text, clientTags); break;
      case 'ACTION': {
        const msg = new c.Message('PRIVMSG', line.target, `\x01ACTION ${line.text}\x01`);
        msg.tags = clientTags;
        c.raw(msg);
        break;
      }
      case 'TAGMSG': c.tagmsg(line.target, clientTags); break;
      case 'REDACT': {
        const msg = new c.Message('REDACT', line.target, ...line.text.split(' ', 1), ...(line.text.includes(' ') ? [line.text.slice(line.text.indexOf(' ') + 1)] : []));
        msg.tags = clientTags;
        c.raw(msg);
        break;
      }
      case 'RAW': c.raw(line.text); break;
    }
    return echoed;
  }

  /** Close for good (quit message sent if connected); queued lines fail. */
  quit(message = 'Bye'): void {
    this.intentionalQuit = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const l of this.queue.splice(0)) l.reject(new DeliveryError('the IRC connection was closed'));
    if (this.state === 'connected' || this.state === 'connecting') this.client.quit(message);
    this.state = 'closed';
    for (const w of this.readyWaiters.splice(0)) w.reject(new DeliveryError('the IRC connection was closed'));
  }

  /** Drop the connection and reconnect (the `reconnect` command). */
  reconnect(): void {
    if (this.state === 'connected') {
      this.attempts = 0;
      this.client.connection.end?.();
      (this.client as unknown as { connection: { transport?: { socket?: { destroy(): void } } } }).connection.transport?.socket?.destroy();
    }
  }
}
