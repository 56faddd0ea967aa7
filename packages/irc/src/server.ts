/**
 * One IRC server: the bridge's listening connection (joins every bridged channel and reports
 * what happens there) and the pool of Matrix users' own connections (one per user, opened lazily,
 * least-recently-active evicted past maxClients, optionally closed when idle).
 */
import type { Logger, NetworkContext, RemoteSender } from '@trestle/core';
import { ircToMatrix } from './convert/index.js';
import type { IrcServerConfig } from './config.js';
import { IrcConnection, ReconnectLimiter } from './connection.js';
import { LeanConnection } from './lean.js';
import { channelChat, ircLower, ircUser, isChannel, parseChat, pmChat } from './ids.js';
import { fillTemplate, sanitiseNick, sanitiseUsername } from './nicks.js';
import type { IrcStore } from './store.js';

interface IrcMessageEvent {
  nick: string; ident?: string; hostname?: string; target: string; message: string;
  tags: Record<string, string>; time?: number; type?: string;
}

const NETSPLIT_RE = /^[\w.-]+\.[\w-]+ [\w.-]+\.[\w-]+$/;
let localIdSeq = 0;

export class IrcServer {
  readonly listener: IrcConnection;
  readonly clients = new Map<string, LeanConnection>();
  private readonly limiter: ReconnectLimiter;
  /** Channels each IRC nick is in, as the listener sees it (for QUIT and NICK, which name no channel). */
  private readonly nickChannels = new Map<string, Set<string>>();
  /** Quits that look like a netsplit, held back in case the nick returns. */
  private readonly heldQuits = new Map<string, NodeJS.Timeout>();
  private idleTimer?: NodeJS.Timeout;
  /** Set at stop: events still arriving from connections being closed are ignored. */
  private stopped = false;

  constructor(readonly key: string, readonly cfg: IrcServerConfig, private readonly ctx: NetworkContext, private readonly store: IrcStore) {
    this.limiter = new ReconnectLimiter(cfg.reconnect.maxConcurrent);
    this.listener = this.newConnection(cfg.botNick, 'trestle', 'Trestle bridge', ctx.log.child({ server: key, conn: 'listener' }));
    this.wireListener();
  }

  get displayName(): string { return this.cfg.name ?? this.key; }

  private newConnection(nick: string, username: string, realname: string, log: Logger): IrcConnection {
    return new IrcConnection({
      host: this.cfg.host, port: this.cfg.port, tls: this.cfg.tls, nick, username, realname,
      ...(this.cfg.password ? { password: this.cfg.password } : {}),
      reconnect: this.cfg.reconnect, limiter: this.limiter, log, version: 'Trestle IRC bridge',
    });
  }

  async start(): Promise<void> {
    await this.listener.connect();
    const channels = new Set<string>();
    for (const p of this.ctx.portals.all()) {
      const c = parseChat(p.remoteChat);
      if (c?.kind === 'channel' && c.server === this.key) channels.add(c.channel);
    }
    for (const ch of Object.keys(this.cfg.mappings)) channels.add(ircLower(ch));
    await Promise.all([...channels].map((ch) => this.listener.join(ch).catch((err: Error) =>
      this.ctx.log.warn('listener could not join a bridged channel', { server: this.key, channel: ch, err }))));
    if (this.cfg.idleTimeoutMinutes > 0) {
      this.idleTimer = setInterval(() => this.closeIdle(), 60_000);
      this.idleTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    for (const t of this.heldQuits.values()) clearTimeout(t);
    for (const c of this.clients.values()) c.quit('Bridge shutting down');
    this.listener.quit('Bridge shutting down');
  }

  /** Is this nick one of ours (the listener or a Matrix user's connection)? Their messages are not bridged back. */
  isOwnNick(nick: string): boolean {
    const lc = ircLower(nick);
    if (ircLower(this.listener.nick) === lc) return true;
    for (const c of this.clients.values()) if (ircLower(c.nick) === lc) return true;
    return false;
  }

  matrixUserOfNick(nick: string): string | undefined {
    const lc = ircLower(nick);
    for (const [userId, c] of this.clients) if (ircLower(c.nick) === lc) return userId;
    return undefined;
  }

  // ------------------------------------------------------------------ Matrix users' connections

  /** The connection of a Matrix user, created (not yet connected) if needed. */
  clientFor(userId: string, displayName: string): LeanConnection {
    let c = this.clients.get(userId);
    if (c && c.state !== 'closed') return c;
    this.evictIfFull();
    const saved = this.store.user(userId, this.key);
    const vars = { userId, displayName };
    const nicklen = Number(this.listener.client.network.options['NICKLEN'] ?? 30) || 30;
    const nick = saved.nick ?? sanitiseNick(fillTemplate(this.cfg.nickTemplate, vars), nicklen);
    const username = saved.username ?? sanitiseUsername(fillTemplate(this.cfg.usernameTemplate, vars));
    const log = this.ctx.log.child({ server: this.key, user: userId });
    const sasl = saved.password ? { account: saved.nick ?? nick, password: saved.password } : undefined;
    c = new LeanConnection({
      host: this.cfg.host, port: this.cfg.port, tls: this.cfg.tls, nick, username, realname: fillTemplate(this.cfg.realnameTemplate, vars),
      ...(this.cfg.password ? { password: this.cfg.password } : {}), ...(sasl ? { sasl } : {}),
      reconnect: this.cfg.reconnect, limiter: this.limiter, log,
    });
    this.wireClient(userId, c);
    this.clients.set(userId, c);
    return c;
  }

  private evictIfFull(): void {
    if (this.clients.size < this.cfg.maxClients) return;
    const [oldest] = [...this.clients.entries()].sort((a, b) => a[1].lastActive - b[1].lastActive);
    if (!oldest) return;
    this.ctx.log.info('closing the least recently active IRC connection (maxClients reached)', { server: this.key, user: oldest[0] });
    oldest[1].quit('Idle');
    this.clients.delete(oldest[0]);
  }

  private closeIdle(): void {
    const cutoff = Date.now() - this.cfg.idleTimeoutMinutes * 60_000;
    for (const [userId, c] of this.clients) {
      const inPlumbed = [...c.channels.keys()].some((ch) => this.ctx.portals.forChat(channelChat(this.key, ch)).some((p) => p.kind === 'plumbed'));
      if (c.lastActive < cutoff && !inPlumbed) {
        this.ctx.log.info('closing an idle IRC connection', { server: this.key, user: userId });
        c.quit('Idle');
        this.clients.delete(userId);
      }
    }
  }

  /** Private messages and CTCP to a Matrix user's connection. */
  private wireClient(userId: string, c: LeanConnection): void {
    c.on('registered', (nick: string) => this.store.setNick(userId, this.key, nick));
    c.on('own nick', (nick: string) => this.store.setNick(userId, this.key, nick));
    const onPm = (type: 'm.text' | 'm.notice' | 'm.emote') => (e: IrcMessageEvent): void => {
      if (isChannel(e.target) || ircLower(e.nick) === ircLower(c.nick) || !e.nick || e.nick.includes('.')) return;
      void this.privateMessage(userId, e, type).catch((err: Error) => this.ctx.log.warn('could not bridge a private message', { server: this.key, err }));
    };
    const handlers = { privmsg: onPm('m.text'), notice: onPm('m.notice'), action: onPm('m.emote') };
    c.on('pm', (e: IrcMessageEvent & { type: keyof typeof handlers }) => { if (!this.stopped) handlers[e.type](e); });
    c.on('kicked', (e: { channel: string; nick: string; reason?: string }) => {
      void this.ctx.notifyUser(userId, `You were kicked from ${e.channel} on ${this.displayName} by ${e.nick}${e.reason ? `: ${e.reason}` : ''}.`).catch(() => undefined);
    });
  }

  private async privateMessage(userId: string, e: IrcMessageEvent, msgtype: string): Promise<void> {
    const sender = this.senderFor(e.nick);
    const chat = pmChat(this.key, userId, e.nick);
    await this.ctx.openDirectChat({ chat, matrixUser: userId, remoteUser: sender });
    await this.ctx.remote.message({
      chat, id: e.tags['msgid'] ?? this.localId(), sender, parts: [{ content: this.content(e.message, msgtype) }],
      ...(e.time ? { timestamp: e.time } : {}),
    });
  }

  // ------------------------------------------------------------------ the listener: IRC → Matrix

  senderFor(nick: string): RemoteSender {
    return { id: ircUser(this.key, this.store.ghostKey(this.key, nick)), displayName: nick };
  }

  private localId(): string { return `local-${Date.now().toString(36)}-${(localIdSeq++).toString(36)}`; }

  private content(text: string, msgtype: string): Record<string, unknown> {
    const conv = ircToMatrix(text, {
      mentions: (word) => {
        const userId = this.matrixUserOfNick(word);
        if (userId) return { userId, displayName: word };
        if (!this.nickChannels.has(ircLower(word))) return undefined;
        return { userId: this.ctx.ghostUserId(this.senderFor(word).id), displayName: word };
      },
    });
    return { msgtype, body: conv.body, ...(conv.formattedBody ? { format: 'org.matrix.custom.html', formatted_body: conv.formattedBody } : {}) };
  }

  /** Channel → nick → membership modes that map to power (o, v...), as the listener sees them. */
  private readonly modes = new Map<string, Map<string, Set<string>>>();

  private userModes(channel: string, nick: string): Set<string> {
    const ch = ircLower(channel);
    const byNick = this.modes.get(ch) ?? new Map<string, Set<string>>();
    this.modes.set(ch, byNick);
    const set = byNick.get(ircLower(nick)) ?? new Set<string>();
    byNick.set(ircLower(nick), set);
    return set;
  }

  /** One power-levels change for these nicks: each gets the highest level of their modes. */
  private reportPowers(channel: string, nicks: string[], report: (p: Promise<void>) => void): void {
    const users: Record<string, number> = {};
    for (const nick of nicks) {
      if (this.isOwnNick(nick)) continue;
      const levels = [...this.userModes(channel, nick)].map((m) => this.cfg.modePowers[m] ?? 0);
      users[this.senderFor(nick).id] = Math.max(0, ...levels);
    }
    if (Object.keys(users).length) report(this.ctx.remote.powerLevels({ chat: channelChat(this.key, channel), users }));
  }

  private track(nick: string, channel: string, present: boolean): void {
    const lc = ircLower(nick);
    const set = this.nickChannels.get(lc) ?? new Set<string>();
    if (present) set.add(ircLower(channel)); else set.delete(ircLower(channel));
    if (set.size) this.nickChannels.set(lc, set); else this.nickChannels.delete(lc);
  }

  private wireListener(): void {
    const client = this.listener.client;
    const l = { on: <E>(event: string, fn: (e: E) => void): void => { client.on(event, (e: E) => { if (!this.stopped) fn(e); }); } };
    const report = (p: Promise<void>): void => { p.catch((err: Error) => this.ctx.log.warn('could not report an IRC event', { server: this.key, err })); };
    const onMessage = (msgtype: string) => (e: IrcMessageEvent): void => {
      if (!isChannel(e.target) || this.isOwnNick(e.nick) || !e.nick) return;
      const chat = channelChat(this.key, e.target);
      const reply = e.tags['+draft/reply'] ?? e.tags['+reply'];
      report(this.ctx.remote.message({
        chat, id: e.tags['msgid'] ?? this.localId(), sender: this.senderFor(e.nick),
        parts: [{ content: this.content(e.message, msgtype) }],
        ...(reply ? { replyTo: reply } : {}), ...(e.time ? { timestamp: e.time } : {}),
      }));
    };
    l.on('privmsg', onMessage('m.text'));
    l.on('notice', onMessage('m.notice'));
    l.on('action', onMessage('m.emote'));
    l.on('tagmsg', (e: { nick: string; target: string; tags: Record<string, string> }) => {
      const react = e.tags['+draft/react'] ?? e.tags['+react'];
      const target = e.tags['+draft/reply'] ?? e.tags['+reply'];
      if (!react || !target || !isChannel(e.target) || this.isOwnNick(e.nick)) return;
      report(this.ctx.remote.reaction({ chat: channelChat(this.key, e.target), target, sender: this.senderFor(e.nick), key: react }));
    });
    l.on('join', (e: { nick: string; channel: string }) => {
      this.track(e.nick, e.channel, true);
      const held = this.heldQuits.get(ircLower(e.nick));
      if (held) { clearTimeout(held); this.heldQuits.delete(ircLower(e.nick)); }
      if (this.isOwnNick(e.nick)) return;
      report(this.ctx.remote.membership({ chat: channelChat(this.key, e.channel), user: this.senderFor(e.nick), membership: 'join' }));
    });
    l.on('part', (e: { nick: string; channel: string; message?: string }) => {
      this.track(e.nick, e.channel, false);
      if (this.isOwnNick(e.nick)) return;
      report(this.ctx.remote.membership({ chat: channelChat(this.key, e.channel), user: this.senderFor(e.nick), membership: 'leave', ...(e.message ? { reason: e.message } : {}) }));
    });
    l.on('kick', (e: { kicked: string; nick: string; channel: string; message?: string }) => {
      this.track(e.kicked, e.channel, false);
      if (this.isOwnNick(e.kicked)) return;
      report(this.ctx.remote.membership({
        chat: channelChat(this.key, e.channel), user: this.senderFor(e.kicked), membership: 'kick', by: this.senderFor(e.nick),
        ...(e.message ? { reason: e.message } : {}),
      }));
    });
    l.on('quit', (e: { nick: string; message?: string }) => {
      const lc = ircLower(e.nick);
      const channels = [...(this.nickChannels.get(lc) ?? [])];
      this.nickChannels.delete(lc);
      if (this.isOwnNick(e.nick)) return;
      const leave = (): void => {
        this.heldQuits.delete(lc);
        for (const ch of channels) {
          report(this.ctx.remote.membership({ chat: channelChat(this.key, ch), user: this.senderFor(e.nick), membership: 'leave', ...(e.message ? { reason: e.message } : {}) }));
        }
      };
      if (e.message && NETSPLIT_RE.test(e.message)) {
        // a netsplit: hold the leave back; if the nick comes back within the window, nothing is shown
        this.heldQuits.set(lc, setTimeout(leave, 60_000));
      } else leave();
    });
    l.on('nick', (e: { nick: string; new_nick: string }) => {
      const channels = this.nickChannels.get(ircLower(e.nick));
      this.nickChannels.delete(ircLower(e.nick));
      if (channels) this.nickChannels.set(ircLower(e.new_nick), channels);
      if (this.isOwnNick(e.new_nick) || this.isOwnNick(e.nick)) return;
      const key = this.store.renameGhost(this.key, e.nick, e.new_nick);
      report(this.ctx.remote.profile({ id: ircUser(this.key, key), displayName: e.new_nick }));
    });
    l.on('userlist', (e: { channel: string; users: { nick: string; modes?: string[] }[] }) => {
      const ranked: string[] = [];
      for (const u of e.users) {
        this.track(u.nick, e.channel, true);
        const modes = this.userModes(e.channel, u.nick);
        modes.clear();
        for (const m of u.modes ?? []) if (m in this.cfg.modePowers) modes.add(m);
        if (modes.size && !this.isOwnNick(u.nick)) ranked.push(u.nick);
        if (this.isOwnNick(u.nick)) continue;
        report(this.ctx.remote.membership({ chat: channelChat(this.key, e.channel), user: this.senderFor(u.nick), membership: 'join' }));
      }
      if (ranked.length) this.reportPowers(e.channel, ranked, report);
    });
    l.on('mode', (e: { target: string; modes: { mode: string; param?: string }[] }) => {
      if (!isChannel(e.target)) return;
      const touched = new Set<string>();
      for (const m of e.modes) {
        const letter = m.mode.slice(1);
        if (!m.param || !(letter in this.cfg.modePowers)) continue;
        const modes = this.userModes(e.target, m.param);
        if (m.mode.startsWith('+')) modes.add(letter); else modes.delete(letter);
        touched.add(m.param);
      }
      if (touched.size) this.reportPowers(e.target, [...touched], report);
    });
    l.on('unknown command', (cmd: { command: string; params: string[]; nick?: string }) => {
      // IRCv3 draft/message-redaction: REDACT <target> <msgid> [:reason]
      if (cmd.command !== 'REDACT' || !cmd.params[0] || !cmd.params[1] || !isChannel(cmd.params[0])) return;
      if (cmd.nick && this.isOwnNick(cmd.nick)) return;
      report(this.ctx.remote.delete({ chat: channelChat(this.key, cmd.params[0]), target: cmd.params[1], ...(cmd.params[2] ? { reason: cmd.params[2] } : {}) }));
    });
    l.on('topic', (e: { channel: string; topic: string; nick?: string }) => {
      if (e.nick && this.isOwnNick(e.nick)) return;
      report(this.ctx.remote.chatInfo({ chat: channelChat(this.key, e.channel), topic: e.topic ?? '' }));
    });
  }
}
