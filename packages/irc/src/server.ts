/**
 * One IRC server: the bridge's listening connection (joins every bridged channel; what it sees is
 * reported by listen.ts) and the pool of Matrix users' own connections (one per user, opened
 * lazily, least-recently-active closed past maxClients, optionally closed when idle: pool.ts).
 */
import { readFileSync } from 'node:fs';
import type { Logger, NetworkContext, RemoteSender } from '@trestle/core';
import { parseBlock, usableCount, type AddressBlock } from './addresses.js';
import { pemCertificates } from './certs.js';
import { ircToMatrix } from './convert/index.js';
import type { IrcServerConfig } from './config.js';
import { IrcConnection, ReconnectLimiter, rejoinDelayMs } from './connection.js';
import { currentChannel } from './renames.js';
import type { IdentRegistry } from './identd.js';
import { LeanConnection } from './lean.js';
import { ChannelEvents, kickReason } from './listen.js';
import { channelChat, ircLower, ircUser, isChannel, parseChat, pmChat } from './ids.js';
import { fillTemplate, sanitiseNick, sanitiseUsername, templateNick } from './nicks.js';
import { toCloseIdle, toEvict, type PooledConnection } from './pool.js';
import { RecentLines } from './replies.js';
import type { IrcStore, StoredIrcUser, UnreadableSecret } from './store.js';
import { StsPolicy } from './sts.js';

interface IrcMessageEvent {
  nick: string; ident?: string; hostname?: string; target: string; message: string;
  tags: Record<string, string>; time?: number; type?: string;
}

/** The PEM certificates of a server's `tlsCa` file, or a clear error naming the server and the file. */
function readTlsCa(server: string, file: string): string {
  let pem: string;
  try { pem = readFileSync(file, 'utf8'); } catch (err) {
    throw new Error(`networks.irc.servers.${server}.tlsCa: cannot read ${file}: ${(err as Error).message}`);
  }
  let n = 0;
  try { n = pemCertificates(pem).length; } catch (err) {
    throw new Error(`networks.irc.servers.${server}.tlsCa: ${file} holds a certificate that cannot be parsed: ${(err as Error).message}`);
  }
  if (n === 0) throw new Error(`networks.irc.servers.${server}.tlsCa: ${file} holds no PEM certificate`);
  return pem;
}

let localIdSeq = 0;
/** `[@tags ]:nick!user@host PRIVMSG|NOTICE|TAGMSG #channel`, capturing the nick. */
const OWN_CHATTER = /^(?:@\S+ )?:([^!\s]+)\S* (?:PRIVMSG|NOTICE|TAGMSG) [#&+!]/;

/** A kick of the listener this soon after the one before it from the same channel makes the next rejoin wait longer. */
const KICKED_AGAIN_MS = 10 * 60_000;

/** The listener's way back into a bridged channel it was kicked from (see {@link IrcServer.listenerKicked}). */
interface Rejoin {
  /** Kicks soon after each other and refused joins, in a row: how long the next wait is (rejoinDelayMs). */
  attempt: number;
  kickedAt: number;
  timer?: NodeJS.Timeout;
  /** The rooms were told a rejoin failed: once is enough, the later tries are logged. */
  toldFailure: boolean;
}

/** The key of the shared relay connection in {@link IrcServer.clients} (no Matrix user id looks like it). */
export const RELAY_ID = 'relay';

export class IrcServer {
  readonly listener: IrcConnection;
  readonly clients = new Map<string, LeanConnection>();
  /** Lines said and joins seen in each channel: whether a Matrix reply may quote (replies.ts). */
  readonly recent = new RecentLines();
  /** The listener's view of the channels: members, modes, netsplits. */
  readonly events: ChannelEvents;
  private readonly limiter: ReconnectLimiter;
  private idleTimer?: NodeJS.Timeout;
  /** Set at stop: events still arriving from connections being closed are ignored. */
  stopped = false;
  /** Connections of this server lost without being closed on purpose (each is reconnected): for metrics. */
  reconnects = 0;
  /** A Matrix user's connection joined a channel (set by the network: their power level becomes a mode). */
  onClientJoined?: (userId: string, channel: string) => void;
  /** A channel became secret or private (`+s`/`+p`), or stopped being; also told at each first mode sync after a join. */
  onSecrecy?: (channel: string, secret: boolean) => void;
  /** Someone (not of ours) sent the bridge's own connection a private message. */
  onBridgeMessage?: (nick: string, text: string) => void;
  /** An IRC user invited a Matrix user's connection into a channel. */
  onClientInvited?: (userId: string, byNick: string, channel: string) => void;

  /** The PEM text of the server's `tlsCa` file, read once at start. */
  private readonly tlsCa?: string;
  /** `excludedUsers`, each regex anchored to the whole user id. */
  private readonly exclusions: { re: RegExp; kickReason?: string }[];
  /** `relay.users`, likewise. */
  private readonly relayUsers: RegExp[];
  /** `addressBlock`, parsed: each Matrix user's connection has a source address of its own from it. */
  private readonly block?: AddressBlock;
  /** The server's IRCv3 STS state: where connections go (TLS under a policy), shared by all of them. */
  private readonly sts?: StsPolicy;
  /** Address trouble already logged as an error (the block used up; an address the host cannot use): once each. */
  private readonly addressTroubleLogged = new Set<'full' | 'unavailable'>();

  constructor(
    readonly key: string, readonly cfg: IrcServerConfig, private readonly ctx: NetworkContext, private readonly store: IrcStore,
    /** The network's ident server, if `ident` is enabled: every connection of this server registers with it. */
    private readonly ident?: IdentRegistry,
  ) {
    if (cfg.tlsCa) this.tlsCa = readTlsCa(key, cfg.tlsCa);
    if (cfg.sts) this.sts = new StsPolicy(cfg.host, { port: cfg.port, tls: cfg.tls }, store, ctx.log.child({ server: key }));
    if (cfg.addressBlock) this.block = parseBlock(cfg.addressBlock);
    this.relayUsers = cfg.relay.users.map((r) => new RegExp(`^(?:${r})$`));
    this.exclusions = cfg.excludedUsers.map((x) => ({ re: new RegExp(`^(?:${x.regex})$`), ...(x.kickReason ? { kickReason: x.kickReason } : {}) }));
    this.limiter = new ReconnectLimiter(cfg.reconnect.maxConcurrent);
    this.listener = this.newConnection(cfg.botNick, 'trestle', 'Trestle bridge', ctx.log.child({ server: key, conn: 'listener' }),
      (line) => this.events.takeLine(line)); // a history batch first, then Matrix users' own lines (see takeLine)
    this.listener.on('disconnected', () => { this.reconnects++; });
    this.listener.on('kicked', (e: { channel: string; nick: string; kicked: string; message?: string; key?: string }) => { if (!this.stopped) this.listenerKicked(e); });
    this.events = new ChannelEvents(this, ctx, store);
    this.events.wire();
  }

  get displayName(): string { return this.cfg.name ?? this.key; }

  /** Do connections to this server use TLS: configured, or asked for by its STS policy? */
  usesTls(): boolean { return this.cfg.tls || (this.sts?.route().tls ?? false); }

  /** Does this Matrix user speak through the shared relay connection (`relay.users`) rather than their own? */
  relayed(userId: string): boolean {
    return this.relayUsers.some((re) => re.test(userId));
  }

  /** The shared connection relayed users speak through, with the configured nick (created, not yet connected, if need be). */
  relayClient(): LeanConnection {
    return this.clientFor(RELAY_ID, this.cfg.relay.nick, { nick: this.cfg.relay.nick, username: 'relay', realname: 'Trestle: relays Matrix users' });
  }

  /** The `excludedUsers` entry a Matrix user matches: they never appear on this server. */
  excluded(userId: string): { kickReason?: string } | undefined {
    return this.exclusions.find((x) => x.re.test(userId));
  }

  private newConnection(nick: string, username: string, realname: string, log: Logger, dropLine?: (line: string) => boolean): IrcConnection {
    return new IrcConnection({
      host: this.cfg.host, port: this.cfg.port, tls: this.cfg.tls, nick, username, realname, ...(dropLine ? { dropLine } : {}),
      ...(this.tlsCa ? { tlsCa: this.tlsCa } : {}),
      ...(this.cfg.password ? { password: this.cfg.password } : {}),
      ...(this.cfg.botPassword ? { sasl: { account: this.cfg.botNick, password: this.cfg.botPassword } } : {}),
      reconnect: this.cfg.reconnect, timeouts: this.cfg.timeouts, limiter: this.limiter, log,
      ...(this.ident ? { ident: this.ident } : {}), encodingFallback: this.cfg.encodingFallback,
      ...(this.sts ? { sts: this.sts } : {}),
    });
  }

  async start(): Promise<void> {
    await this.listener.connect();
    const channels = new Set<string>();
    for (const p of this.ctx.portals.all()) {
      const c = parseChat(p.remoteChat);
      if (c?.kind === 'channel' && c.server === this.key) channels.add(c.channel);
    }
    for (const ch of Object.keys(this.cfg.mappings)) channels.add(ircLower(currentChannel(this.ctx.kv, this.key, ch)));
    this.events.bridgedChannels(channels);
    await Promise.all([...channels].map((ch) => this.listener.join(ch).catch((err: Error) => this.cannotJoin(ch, err))));
    if (this.cfg.idleTimeoutMinutes > 0) {
      this.idleTimer = setInterval(() => this.closeIdle(), Math.min(60_000, this.cfg.idleTimeoutMinutes * 30_000));
      this.idleTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.events.stop();
    for (const r of this.rejoins.values()) clearTimeout(r.timer);
    for (const c of this.clients.values()) c.quit('Bridge shutting down');
    this.listener.quit('Bridge shutting down');
    // the sockets close later, after the store: the policy's expiry is rescheduled now, for all of them
    this.sts?.stop(this.listener.via);
  }

  /** Kicks sent to IRC for a Matrix kick or ban: `channel\0nick` → when to stop expecting them. */
  private readonly expectedKicks = new Map<string, number>();

  /** A kick about to be sent for a Matrix kick or ban: when IRC echoes it, it is not bridged back. */
  expectKick(channel: string, nick: string): void {
    const now = Date.now();
    for (const [k, until] of this.expectedKicks) if (until < now) this.expectedKicks.delete(k);
    this.expectedKicks.set(`${ircLower(channel)}\0${ircLower(nick)}`, now + 30_000);
  }

  /** Was this kick sent for a Matrix kick or ban (and so already done in Matrix)? Answers once. */
  takeExpectedKick(channel: string, nick: string): boolean {
    const key = `${ircLower(channel)}\0${ircLower(nick)}`;
    const until = this.expectedKicks.get(key);
    this.expectedKicks.delete(key);
    return until !== undefined && until >= Date.now();
  }

  /** Is this nick one of ours (the listener or a Matrix user's connection)? Their messages are not bridged back. */
  isOwnNick(nick: string): boolean {
    const lc = ircLower(nick);
    if (ircLower(this.listener.nick) === lc || this.nicks().has(lc)) return true;
    const until = this.departing.get(lc);
    if (until !== undefined && until < Date.now()) this.departing.delete(lc);
    return until !== undefined && until >= Date.now();
  }

  /**
   * Nicks of connections the bridge closed (idle, evicted, quit), folded, until their QUIT is seen:
   * the listener sees that QUIT after the connection has left {@link clients}, and it is ours, not
   * an IRC user leaving (bridging it made a ghost of the Matrix user's own nick "leave" a room it
   * was never in, retried and then reported as a failure). Kept a minute at most, in case no QUIT
   * comes (a connection that was already down), so the nick is free for anyone after that.
   */
  private readonly departing = new Map<string, number>();

  /** The QUIT of a nick of ours was seen: a connection the bridge closed has gone. */
  departed(nick: string): void {
    this.departing.delete(ircLower(nick));
  }

  /** A channel message, notice or tag message sent by one of the Matrix users' connections (the listener ignores those). */
  isOwnChatter(line: string): boolean {
    const m = OWN_CHATTER.exec(line);
    return m !== null && this.nicks().has(ircLower(m[1]!));
  }

  /** Folded nick → username of each connection this bridge had before this process (read at first use): see {@link isLeftover}. */
  private earlierNicks?: Map<string, string>;
  /** Folded nicks of leftover connections seen in channels, until their QUIT. */
  private readonly leftovers = new Set<string>();

  /**
   * Is this nick (with the username the server shows, `~` or not) a connection of this bridge from
   * before a crash, which the server has not timed out yet? Its nick is the one a Matrix user's
   * connection last had (or the relay's, or the listener's), its username the one the bridge gives
   * that connection, and, without an addressBlock, its host the listener's (`ownHost`). It is
   * nobody on IRC: no ghost is made of it, and its QUIT is no one leaving. Once seen, the nick counts
   * as one until {@link leftoverGone}.
   */
  isLeftover(nick: string, username?: string, host?: string, ownHost?: string): boolean {
    const lc = ircLower(nick);
    if (this.isOwnNick(nick)) { this.leftovers.delete(lc); return false; }
    if (this.leftovers.has(lc)) return true;
    if (!username) return false;
    if (!this.block && (!host || host !== ownHost)) return false;
    if (!this.earlierNicks) {
      const m = new Map<string, string>([[ircLower(this.cfg.botNick), 'trestle'], [ircLower(this.cfg.relay.nick), 'relay']]);
      for (const u of this.store.storedNicks(this.key)) {
        if (u.userId === RELAY_ID) continue;
        m.set(ircLower(u.nick), sanitiseUsername(u.username ?? fillTemplate(this.cfg.usernameTemplate, { userId: u.userId, displayName: '' })));
      }
      this.earlierNicks = m;
    }
    if (this.earlierNicks.get(lc) !== username.replace(/^~/, '')) return false;
    this.leftovers.add(lc);
    this.ctx.log.info('a connection of this bridge from before its last stop is still on the server; it is not bridged', { server: this.key, nick });
    return true;
  }

  /** The QUIT (or a JOIN, which no dead connection makes) of a nick: true if it was a leftover connection of ours. */
  leftoverGone(nick: string): boolean { return this.leftovers.delete(ircLower(nick)); }

  matrixUserOfNick(nick: string): string | undefined {
    const userId = this.nicks().get(ircLower(nick));
    return userId === RELAY_ID ? undefined : userId;
  }

  /** Folded nick → Matrix user of the connections; asked on every channel line, rebuilt only after a change. */
  private nickIndex?: Map<string, string>;
  private readonly nicksChanged = (): void => { this.nickIndex = undefined; };
  private nicks(): Map<string, string> {
    if (!this.nickIndex) {
      this.nickIndex = new Map();
      for (const [userId, c] of this.clients) {
        const lc = ircLower(c.nick);
        if (!this.nickIndex.has(lc)) this.nickIndex.set(lc, userId);
      }
    }
    return this.nickIndex;
  }

  // ------------------------------------------------------------------ Matrix users' connections

  /**
   * The connection of a Matrix user, created (not yet connected) if needed; `fixed` names the
   * relay connection, which no template makes.
   */
  clientFor(userId: string, displayName: string, fixed?: { nick: string; username: string; realname: string }): LeanConnection {
    let c = this.clients.get(userId);
    // asked for to send or join: the user is active now, not the least recently active to evict for the next one
    if (c && c.state !== 'closed') { c.lastActive = Date.now(); return c; }
    this.evictIfFull(userId);
    const saved = this.store.user(userId, this.key);
    const vars = { userId, displayName };
    const nicklen = this.nickLen();
    const log = this.ctx.log.child({ server: this.key, user: userId });
    if (saved.unreadable && !fixed) this.unreadableSecrets(userId, saved.unreadable, log);
    // a password the key no longer opens still pins the nick: the user is asked to store it again
    const hasPassword = saved.password !== undefined || saved.unreadable?.includes('password') === true;
    const { nick, from } = fixed ? { nick: sanitiseNick(fixed.nick, nicklen), from: null } : this.wantedNick(userId, displayName, saved, hasPassword, nicklen);
    this.nickFrom.set(userId, from);
    // (a stored one sanitised too: one set before the `username` command checked its input)
    const username = fixed?.username ?? sanitiseUsername(saved.username ?? fillTemplate(this.cfg.usernameTemplate, vars));
    // the account is the one stored with the password, never the nick held last (a fallback, a services rename);
    // a password stored before this user had a nick here logs in as the nick they want now, from now on
    let account = saved.account;
    if (saved.password && account === undefined && !fixed) {
      account = nick;
      this.store.setAccount(userId, this.key, account);
    }
    const sasl = saved.password ? { account: account ?? nick, password: saved.password } : undefined;
    // (presented only over TLS: configured, or asked for by the server's STS policy)
    if (saved.cert && !this.usesTls() && !this.certWithoutTls.has(userId)) {
      this.certWithoutTls.add(userId);
      log.warn('a client certificate is stored for this user, but the server is not configured with tls: connecting without it');
    }
    const clientCert = saved.cert;
    const source = this.sourceAddress(userId, log);
    c = new LeanConnection({
      host: this.cfg.host, port: this.cfg.port, tls: this.cfg.tls, nick, nickLen: nicklen, username, realname: fixed?.realname ?? fillTemplate(this.cfg.realnameTemplate, vars),
      ...(this.cfg.password ? { password: this.cfg.password } : {}), ...(sasl ? { sasl } : {}), ...(clientCert ? { clientCert } : {}),
      ...(this.tlsCa ? { tlsCa: this.tlsCa } : {}),
      identify: { mode: this.cfg.nickserv.identify, nick: this.cfg.nickserv.nick },
      reconnect: this.cfg.reconnect, timeouts: this.cfg.timeouts, flood: this.cfg.flood, limiter: this.limiter, log,
      ...(this.ident ? { ident: this.ident } : {}), ...source, encodingFallback: this.cfg.encodingFallback,
      ...(this.cfg.userModes ? { userModes: this.cfg.userModes } : {}), ...(this.sts ? { sts: this.sts } : {}),
    });
    c.on('address unavailable', (address: string, err: Error) => this.addressUnavailable(address, err));
    this.wireClient(userId, c);
    c.onNickChange = this.nicksChanged;
    this.clients.set(userId, c);
    this.nicksChanged();
    return c;
  }

  /**
   * The nick a user's connection asks for: the one they want, chosen (the `nick` command) or made by
   * the nick template, never a fallback a connection was given instead (that one is only the nick
   * last held, see {@link isLeftover}). A template nick made from an older display name is made
   * again from the current one (the user renamed while not connected), unless a stored password
   * pins it (see {@link nickFollowsName}); one not stored yet (or from before migration 10) is made
   * and stored.
   */
  private wantedNick(userId: string, displayName: string, saved: StoredIrcUser, hasPassword: boolean, nicklen: number): { nick: string; from: string | null } {
    const follows = this.nickFollowsName(hasPassword);
    if (saved.wantedNick !== undefined && (saved.nickFrom === undefined || saved.nickFrom === displayName || !follows)) {
      return { nick: saved.wantedNick, from: saved.nickFrom ?? null };
    }
    const from = saved.nickFrom !== undefined && !follows ? saved.nickFrom : displayName;
    const nick = templateNick(this.cfg.nickTemplate, { userId, displayName: from }, nicklen);
    this.store.setWantedNick(userId, this.key, nick, from);
    return { nick, from };
  }

  /** Users told this run that the server refused their stored password (until they store another). */
  private readonly refusalTold = new Set<string>();

  /**
   * The server (SASL) or NickServ refused the user's stored password: they connect without the
   * login, and are told once (not at every reconnect) what was said and how to put it right.
   */
  private loginRefused(userId: string, why: string): void {
    if (this.refusalTold.has(userId)) return;
    this.refusalTold.add(userId);
    const text = `${this.displayName} refused the login with your stored password ("${why}"), so you are connected without it. ` +
      `Store the right one with: storepass ${this.key} <password>, or forget it with: removepass ${this.key}.`;
    void this.ctx.notifyUser(userId, text).catch((err: Error) => this.ctx.log.warn('could not tell a user their login was refused', { server: this.key, user: userId, err }));
  }

  /** A new password was stored (or the old one removed): a refusal of it is news again. */
  passwordChanged(userId: string): void { this.refusalTold.delete(userId); }

  /** Users already told (and logged) this run that a stored secret of theirs cannot be decrypted. */
  private readonly unreadableTold = new Set<string>();

  /**
   * Stored secrets of a user that the key file does not open (another key put in its place, a
   * damaged row): their connection goes without them (IrcStore.user leaves them out). Logged as an
   * error and told to the user, once a run; the sealed rows stay, so the right key brings them back.
   */
  private unreadableSecrets(userId: string, secrets: readonly UnreadableSecret[], log: Logger): void {
    if (this.unreadableTold.has(userId)) return;
    this.unreadableTold.add(userId);
    log.error('a stored secret of this user cannot be decrypted with the key in passwordKeyFile (not the key it was sealed with, ' +
      'or a damaged row): connecting without it, and the user is asked to store it again', { secrets, keyFile: this.store.keyFile });
    const what: string[] = [];
    if (secrets.includes('password')) what.push(`Your stored password for ${this.displayName} can no longer be read by the bridge, so you connect without it. Store it again: storepass ${this.key} <password>.`);
    if (secrets.includes('certificate key')) {
      what.push(`Your client certificate for ${this.displayName} can no longer be used by the bridge, so it is not presented. ` +
        `Make a new one: removecert ${this.key}, then certfp ${this.key}, and add its fingerprint to your account.`);
    }
    void this.ctx.notifyUser(userId, what.join('\n')).catch((err: Error) => log.warn('could not tell a user their stored secret is unreadable', { err }));
  }

  /**
   * The source address of a user's connection from `addressBlock` (stored, so the same one each
   * time), or why there is none: every address of the block is held by a user connected now. A
   * block otherwise used up passes on the address of a user not connected (the least recently
   * used). Nothing without a block.
   */
  private sourceAddress(userId: string, log: Logger): { localAddress?: string; cannotOpen?: string } {
    if (!this.block) return {};
    const inUse = (u: string): boolean => (this.clients.get(u)?.state ?? 'closed') !== 'closed';
    const got = this.store.address(this.key, userId, this.block, inUse);
    if (got?.takenFrom !== undefined) {
      log.info('addressBlock is used up: this user takes the address of one not connected now, who gets another when they next connect',
        { address: got.address, from: got.takenFrom });
    }
    if (got) return { localAddress: got.address };
    if (!this.addressTroubleLogged.has('full')) {
      this.addressTroubleLogged.add('full');
      this.ctx.log.error('every address of addressBlock is taken: Matrix users without one are not connected to this server until it is larger',
        { server: this.key, addressBlock: this.block.text, addresses: usableCount(this.block).toString() });
    }
    log.warn('no free address in addressBlock for this user; not connecting');
    return { cannotOpen: `the bridge has no free address for your connection to ${this.displayName} (its address block is used up); tell the bridge's administrator` };
  }

  /** A connection could not take its source address: the block is not routed to this host. Logged once. */
  private addressUnavailable(address: string, err: Error): void {
    if (this.addressTroubleLogged.has('unavailable')) return;
    this.addressTroubleLogged.add('unavailable');
    // Linux binds an IPv4 address of a `local` route; an IPv6 one only with ip_nonlocal_bind too (kernel 4.3+)
    const route = this.block!.family === 6
      ? `ip -6 route add local ${this.block!.text} dev lo\` and \`sysctl -w net.ipv6.ip_nonlocal_bind=1`
      : `ip route add local ${this.block!.text} dev lo`;
    this.ctx.log.error(`this host cannot use addresses of addressBlock as source addresses (make them local to it, e.g. \`${route}\`); ` +
      'Matrix users\' connections to this server fail until then', { server: this.key, addressBlock: this.block!.text, address, err });
  }

  private nickLen(): number { return Number(this.listener.client.network.options['NICKLEN'] ?? 30) || 30; }

  /**
   * The display name each connection's nick was made from by the nick template, or null for a nick
   * the user chose (the `nick` command): stored with the nick, so a rename can be followed.
   */
  private readonly nickFrom = new Map<string, string | null>();

  /**
   * May a nick made from the template follow the display name? Not when a password is stored: on
   * networks that hold a registered nick for its account, a nick made from a new name would not be.
   */
  private nickFollowsName(hasPassword: boolean): boolean {
    return this.cfg.nickTemplate.includes('$DISPLAY') && !hasPassword;
  }

  /**
   * A Matrix user changed their display name: their nick follows if it was made from the old one by
   * the nick template (as in the reference bridge, a nick they chose stays). Only a registered
   * connection is renamed; any other takes the new name when it next opens. Not awaited by the
   * room: a nick the server refuses (taken, say) is logged and the old one stays.
   */
  followDisplayName(userId: string, displayName: string): void {
    const c = this.clients.get(userId);
    const from = this.nickFrom.get(userId);
    if (!c || c.state !== 'connected' || from === undefined || from === null || from === displayName) return;
    if (!this.nickFollowsName(this.store.hasPassword(userId, this.key))) return;
    this.nickFrom.set(userId, displayName);
    const wanted = templateNick(this.cfg.nickTemplate, { userId, displayName }, this.nickLen());
    if (ircLower(wanted) === ircLower(c.nick)) { this.store.setWantedNick(userId, this.key, wanted, displayName); return; }
    // stored once the server gives it: one refused (taken, say) is made again from the new name at the next connection
    void this.changeNick(c, wanted).then((r) => {
      if ('why' in r) this.ctx.log.info('a Matrix user renamed, but their nick could not follow', { server: this.key, user: userId, wanted, why: r.why });
      else {
        if (this.nickFrom.get(userId) === displayName) this.store.setWantedNick(userId, this.key, wanted, displayName);
        this.ctx.log.debug('a Matrix user renamed; their nick followed', { server: this.key, user: userId, nick: r.nick });
      }
    });
  }

  /** The user chose their nick (the `nick` command): no display name change replaces it from now on. */
  nickChosen(userId: string, nick: string): void {
    this.nickFrom.set(userId, null);
    this.store.setWantedNick(userId, this.key, nick, null);
    this.store.setHeldNick(userId, this.key, nick);
  }

  /** Ask the server for a new nick on a registered connection: the nick it gives, or why not. */
  changeNick(c: LeanConnection, wanted: string): Promise<{ nick: string } | { why: string }> {
    return new Promise((resolve) => {
      const done = (r: { nick: string } | { why: string }): void => { clearTimeout(t); c.off('own nick', ok); c.off('nick error', bad); resolve(r); };
      const ok = (nick: string): void => done({ nick });
      const bad = (why: string): void => done({ why });
      const t = setTimeout(() => done({ why: 'the server did not answer the nick change' }), 10_000);
      c.on('own nick', ok);
      c.on('nick error', bad);
      c.send('RAW', '', `NICK ${wanted}`).catch((err: Error) => done({ why: err.message }));
    });
  }

  /** Users whose stored certificate could not be used (no TLS), told once in the log. */
  private readonly certWithoutTls = new Set<string>();

  /** Close a Matrix user's connection for good (it opens again at their next message). */
  closeClient(userId: string, reason: string): boolean {
    const c = this.clients.get(userId);
    if (!c) return false;
    c.quit(reason);
    const now = Date.now();
    for (const [nick, until] of this.departing) if (until < now) this.departing.delete(nick);
    if (c.nick) this.departing.set(ircLower(c.nick), now + 60_000);
    this.clients.delete(userId);
    this.nicksChanged();
    return true;
  }

  /** Is the connection in a channel that a plumbed room is linked to? */
  private inPlumbed(c: LeanConnection): boolean {
    return [...c.channels.keys()].some((ch) => this.ctx.portals.forChat(channelChat(this.key, ch)).some((p) => p.kind === 'plumbed'));
  }

  private pooled(): PooledConnection[] {
    // the relay connection is never closed for idleness or room: it carries many users
    return [...this.clients].filter(([userId]) => userId !== RELAY_ID).map(([userId, c]) => ({ userId, lastActive: c.lastActive, inPlumbed: this.inPlumbed(c) }));
  }

  /**
   * Make room for one more connection past `maxClients`: the least recently active are closed, and
   * their users told (they left every channel on IRC, and PMs to their nick now bounce) and how
   * to come back. Told each time: a user is only closed again after their own next message.
   */
  private evictIfFull(keep: string): void {
    for (const userId of toEvict(this.pooled(), this.cfg.maxClients, keep)) {
      this.ctx.log.info('closing the least recently active IRC connection (maxClients reached)', { server: this.key, user: userId });
      const channels = [...(this.clients.get(userId)?.channels.keys() ?? [])];
      this.closeClient(userId, 'Idle');
      const away = channels.length ? `you are not in ${channels.join(', ')} on IRC, and ` : '';
      void this.ctx.notifyUser(userId, `Your connection to ${this.displayName} was closed to make room for another user (the bridge keeps at most ` +
        `${this.cfg.maxClients} IRC connections there, and yours was the least recently used). Meanwhile ${away}private messages to your ` +
        'nick are not delivered; your next message or command connects you again.')
        .catch((err: unknown) => this.ctx.log.warn('could not tell a user their connection was closed', { server: this.key, user: userId, err: err as Error }));
    }
  }

  /** Close the connections idle for `idleTimeoutMinutes` (run every minute; `now` for tests). Returns whose. */
  closeIdle(now = Date.now()): string[] {
    const idle = toCloseIdle(this.pooled(), this.cfg.idleTimeoutMinutes, now, this.cfg.idleInPlumbedRooms);
    for (const userId of idle) {
      this.ctx.log.info('closing an idle IRC connection', { server: this.key, user: userId });
      this.closeClient(userId, 'Idle');
    }
    return idle;
  }

  /**
   * A Matrix user's connection was kicked from a channel: they are out of its rooms too (the bot
   * kicks them, with who did it and why), as a kick on IRC means; where the bot may not, and in
   * any case, they are told in their admin room.
   */
  private async kickedOnIrc(userId: string, e: { channel: string; nick: string; reason?: string }): Promise<void> {
    const why = `Kicked from ${e.channel} on ${this.displayName} by ${e.nick}${e.reason ? `: ${e.reason}` : ''}`;
    const { kept } = await this.outOfRooms(userId, e.channel, why);
    const note = kept.length ? ` I could not take you out of ${kept.join(', ')} (my power level is too low there): your next message there joins ${e.channel} again.` : '';
    await this.ctx.notifyUser(userId, `${why}.${note}`);
  }

  /**
   * Take a Matrix user out of the rooms bridged to a channel they left on IRC (the bot kicks them,
   * with `reason`): staying in one, their next message there would join the channel again.
   * `left`: the rooms they were taken out of; `kept`: those where the bot may not kick.
   */
  async outOfRooms(userId: string, channel: string, reason: string): Promise<{ left: string[]; kept: string[] }> {
    const left: string[] = [];
    const kept: string[] = [];
    for (const p of this.ctx.portals.forChat(channelChat(this.key, channel))) {
      const member = await this.ctx.matrix.getState<{ membership?: string }>(p.roomId, 'm.room.member', userId).catch(() => undefined);
      if (member?.membership !== 'join') continue;
      await this.ctx.matrix.kick(p.roomId, userId, reason).then(() => left.push(p.roomId), () => kept.push(p.roomId));
    }
    return { left, kept };
  }

  /**
   * The bridge's own connection cannot join a bridged channel (invite-only, banned, a key it lacks):
   * nothing said there reaches the channel's rooms, so they are told, with what would fix it.
   */
  private async cannotJoin(channel: string, err: Error): Promise<void> {
    this.ctx.log.warn('listener could not join a bridged channel', { server: this.key, channel, err });
    const text = `⚠ The bridge cannot join ${channel} on ${this.displayName} (${err.message.replace(/^cannot join \S+: /, '')}), so nothing said ` +
      `there reaches this room. A channel operator can let it in: /invite ${this.listener.nick} ${channel}.`;
    await this.noticeRooms(channel, text);
  }

  /** A notice from the bot in each room linked to a channel: the bridge's own trouble there, which no ghost can tell. */
  private async noticeRooms(channel: string, text: string): Promise<void> {
    for (const p of this.ctx.portals.forChat(channelChat(this.key, channel))) {
      await this.ctx.matrix.notice(p.roomId, text).catch(() => undefined);
    }
  }

  /** Bridged channels the listener was kicked from, by folded name (entries stay a while: a kick soon after is "again"). */
  private readonly rejoins = new Map<string, Rejoin>();

  /**
   * The listening connection was kicked from a channel: nothing said there reaches the linked rooms
   * until it is back. They are told, and it joins again after a wait, longer each time it is kicked
   * again soon after coming back (rejoinDelayMs). A refused rejoin (banned, invite-only) is told the
   * rooms once (cannotJoin) and tried again, waiting longer each time, as long as the channel is bridged.
   */
  private listenerKicked(e: { channel: string; nick: string; kicked: string; message?: string; key?: string }): void {
    if (this.ctx.portals.forChat(channelChat(this.key, e.channel)).length === 0) return; // not bridged (a link request's channel): nothing to rejoin
    const lc = ircLower(e.channel), now = Date.now();
    for (const [ch, r] of this.rejoins) if (!r.timer && now - r.kickedAt >= KICKED_AGAIN_MS) this.rejoins.delete(ch);
    const prev = this.rejoins.get(lc);
    clearTimeout(prev?.timer);
    const r: Rejoin = { attempt: prev && now - prev.kickedAt < KICKED_AGAIN_MS ? prev.attempt + 1 : 1, kickedAt: now, toldFailure: false };
    this.rejoins.set(lc, r);
    const reason = kickReason(e), delayMs = rejoinDelayMs(r.attempt);
    this.ctx.log.warn('the bridge was kicked from a bridged channel; it joins again after a wait', { server: this.key, channel: e.channel, by: e.nick, reason, delayMs });
    void this.noticeRooms(e.channel, `⚠ The bridge was kicked from ${e.channel} on ${this.displayName} by ${e.nick}${reason ? ` (${reason})` : ''}, ` +
      `so nothing said there reaches this room until it is back. It joins again in ${Math.round(delayMs / 1000)} s.`);
    this.rejoinLater(e.channel, e.key, r, delayMs);
  }

  private rejoinLater(channel: string, key: string | undefined, r: Rejoin, delayMs: number): void {
    r.timer = setTimeout(() => {
      r.timer = undefined;
      if (this.stopped || this.ctx.portals.forChat(channelChat(this.key, channel)).length === 0) return; // unlinked meanwhile
      this.listener.join(channel, key).then(() => {
        this.ctx.log.info('back in a channel the bridge was kicked from', { server: this.key, channel });
      }, (err: Error) => {
        if (this.stopped || this.rejoins.get(ircLower(channel)) !== r) return; // kicked again since: that kick's rejoin goes on
        r.attempt++;
        if (!r.toldFailure) { r.toldFailure = true; void this.cannotJoin(channel, err); }
        else this.ctx.log.warn('listener still cannot join a bridged channel it was kicked from', { server: this.key, channel, err, attempt: r.attempt });
        this.rejoinLater(channel, key, r, rejoinDelayMs(r.attempt));
      });
    }, delayMs);
    r.timer.unref();
  }

  /** Private messages, CTCP, joins and kicks of a Matrix user's connection. */
  private wireClient(userId: string, c: LeanConnection): void {
    // the nick held, perhaps a fallback: what a connection left over after a crash is known by, not what the next one asks for
    c.on('registered', (nick: string) => this.store.setHeldNick(userId, this.key, nick));
    c.on('disconnected', () => { this.reconnects++; });
    c.on('own nick', (nick: string) => this.store.setHeldNick(userId, this.key, nick));
    if (userId === RELAY_ID) { this.wireRelay(c); return; }
    c.on('login refused', (why: string) => this.loginRefused(userId, why));
    c.on('joined', (channel: string) => { if (!this.stopped) this.onClientJoined?.(userId, channel); });
    const onPm = (type: 'm.text' | 'm.notice' | 'm.emote') => (e: IrcMessageEvent): void => {
      if (isChannel(e.target) || ircLower(e.nick) === ircLower(c.nick) || !e.nick || e.nick.includes('.')) return;
      void this.privateMessage(userId, e, type).catch((err: Error) => this.ctx.log.warn('could not bridge a private message', { server: this.key, err }));
    };
    const handlers = { privmsg: onPm('m.text'), notice: onPm('m.notice'), action: onPm('m.emote') };
    c.on('pm', (e: IrcMessageEvent & { type: keyof typeof handlers }) => { if (!this.stopped) handlers[e.type](e); });
    c.on('invited', (e: { nick: string; channel: string }) => { if (!this.stopped) this.onClientInvited?.(userId, e.nick, e.channel); });
    c.on('kicked', (e: { channel: string; nick: string; reason?: string }) => {
      if (this.stopped) return;
      void this.kickedOnIrc(userId, e).catch((err: Error) => this.ctx.log.warn('could not mirror an IRC kick of a Matrix user', { server: this.key, user: userId, err }));
    });
  }

  /** The relay connection speaks for no one in particular: a private message to it is answered, not bridged. */
  private wireRelay(c: LeanConnection): void {
    c.on('pm', (e: IrcMessageEvent & { type: string }) => {
      if (this.stopped || e.type === 'notice' || !e.nick || e.nick.includes('.') || ircLower(e.nick) === ircLower(c.nick)) return; // never answer a notice (no loops)
      void c.send('NOTICE', e.nick, 'I relay messages from Matrix users to this network; private messages to me go nowhere. ' +
        'Address them by name in the channel.').catch(() => undefined);
    });
  }

  /** A private message to a Matrix user: to their chat with the sender's ghost (one room, whatever nick the sender has now). */
  private async privateMessage(userId: string, e: IrcMessageEvent, msgtype: string): Promise<void> {
    const { key, sender } = this.ghostOf(e.nick);
    const chat = pmChat(this.key, userId, key);
    await this.ctx.openDirectChat({ chat, matrixUser: userId, remoteUser: sender });
    await this.ctx.remote.message({
      chat, id: e.tags['msgid'] ?? this.localId(), sender, parts: [{ content: this.content(e.message, msgtype) }],
      ...(e.time ? { timestamp: e.time } : {}),
    });
  }

  // ------------------------------------------------------------------ shared by both directions

  /**
   * The account each nick was last seen with in this run ('' = none), so a message costs no query
   * unless that changes.
   */
  private readonly accountNicks = new Map<string, string>();

  /**
   * The server says who is logged in as what (account-tag on a message, extended-join): a nick
   * logged in gets its account's ghost, and one not logged in stops standing for an account's
   * ghost (someone else may hold the nick now). Call before {@link senderFor} for that nick.
   */
  noteAccount(nick: string, account: string | undefined): void {
    const acct = account && account !== '*' ? account : '';
    // without account-tag the server says nothing either way: nicks keep what they had
    if (!acct && !this.listener.client.network.cap.isEnabled('account-tag')) return;
    const lc = ircLower(nick);
    if (this.accountNicks.get(lc) === acct) return;
    if (this.accountNicks.size >= 10_000) this.accountNicks.clear();
    this.accountNicks.set(lc, acct);
    if (acct) this.store.accountNick(this.key, nick, acct);
    else if (this.store.releaseAccountNick(this.key, nick)) this.ctx.log.info('a nick used by an account is now used by someone not logged in: a ghost of its own', { server: this.key, nick });
  }

  /** A ghost's display name for a nick (`ghostDisplayName`). */
  ghostName(nick: string): string {
    const t = this.cfg.ghostDisplayName;
    return t === '$NICK' ? nick : t.replace(/\$NICK/g, nick).replace(/\$SERVER/g, this.displayName);
  }

  /** The ghost of a nick seen now (which it goes by from now on: IrcStore.ghostKey), as a sender. */
  senderFor(nick: string): RemoteSender {
    return this.ghostOf(nick).sender;
  }

  private ghostOf(nick: string): { key: string; sender: RemoteSender } {
    const key = this.store.ghostKey(this.key, nick);
    return { key, sender: { id: ircUser(this.key, key), displayName: this.ghostName(nick) } };
  }

  /** A message id for IRC messages without an IRCv3 msgid, unique within this process. */
  localId(): string { return `local-${Date.now().toString(36)}-${(localIdSeq++).toString(36)}`; }

  /** IRC text → Matrix content; nicks of Matrix users and of people in bridged channels become mentions. */
  content(text: string, msgtype: string): Record<string, unknown> {
    const conv = ircToMatrix(text, {
      mentions: (word) => {
        const userId = this.matrixUserOfNick(word);
        if (userId) return { userId, displayName: word };
        if (!this.events.knowsNick(word)) return undefined;
        return { userId: this.ctx.ghostUserId(this.senderFor(word).id), displayName: word };
      },
    });
    return { msgtype, body: conv.body, ...(conv.formattedBody ? { format: 'org.matrix.custom.html', formatted_body: conv.formattedBody } : {}) };
  }
}
