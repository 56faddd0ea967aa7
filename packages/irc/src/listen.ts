/**
 * IRC → Matrix: what the bridge's listening connection sees in the channels it sits in, reported
 * to core. Messages, reactions, redactions, joins, parts, kicks, quits (netsplits held back, see
 * netsplit.ts), nick changes, topics, channel modes (ranks and room settings, see modes.ts), and
 * with `presence` on, away status (presence.ts). What was said while it was away is fetched back on
 * rejoining, its live events held meanwhile (channelHistory.ts); the event wiring stays here.
 */
import type { NetworkContext, RemoteMembership } from '@trestle/core';
import { channelChat, ircLower, ircUser, isChannel, moveChannel } from './ids.js';
import { ChannelModes, type ModeChange, type RoomSettingsChange, type ServerModeInfo } from './modes.js';
import { NetsplitDetector } from './netsplit.js';
import { joinMultiline } from './convert/index.js';
import { ChannelHistory } from './channelHistory.js';
import { historyReaction, isHistoryBatch, type HistoryItem } from './history.js';
import { parseLine, parseRawLine, type IrcLine } from './ircline.js';
import { IrcPresence } from './presence.js';
import { currentChannel, noteRename } from './renames.js';
import type { IrcServer } from './server.js';
import type { IrcStore } from './store.js';

interface IrcMessageEvent {
  nick: string; target: string; message: string; tags: Record<string, string>; time?: number; batch?: { type?: string };
  /** `@` or `+` for a message to a channel's ops or voiced only (STATUSMSG: `@#chan`). */
  group?: string;
}

/** A batch as irc-framework hands it over once it is complete: its lines, not yet dispatched. */
interface IrcBatch { id: string; params: string[]; commands: { command: string; nick: string; params: string[]; tags: Record<string, string> }[] }

/** `[@tags ]:nick[!user@host] PRIVMSG|NOTICE <channel> `: a line {@link ChannelEvents.takeLine} may take. */
const PLAIN_CHANNEL_MESSAGE = /^(?:@\S+ )?:[^!\s]+\S* (?:PRIVMSG|NOTICE) [#&+!]/;

/**
 * A channel PRIVMSG or NOTICE, or a CTCP ACTION, outside any batch: the event irc-framework would
 * make of the line, with its msgtype. Undefined for anything else: other CTCP, lines in a batch,
 * STATUSMSG targets (`@#chan`), every other command.
 */
export function plainChannelMessage(line: string): (IrcMessageEvent & { msgtype: string }) | undefined {
  if (!PLAIN_CHANNEL_MESSAGE.test(line)) return undefined;
  const l = parseRawLine(line);
  if (!l || l.tags['batch'] !== undefined) return undefined;
  return channelMessageOf(l);
}

/** A parsed PRIVMSG or NOTICE (or CTCP ACTION) as a channel message event with its msgtype; undefined for anything else. */
export function channelMessageOf(l: IrcLine): (IrcMessageEvent & { msgtype: string }) | undefined {
  if ((l.command !== 'PRIVMSG' && l.command !== 'NOTICE') || l.params.length !== 2 || !isChannel(l.params[0]!)) return undefined;
  let message = l.params[1]!;
  let msgtype = l.command === 'NOTICE' ? 'm.notice' : 'm.text';
  if (message.charCodeAt(0) === 1) {
    if (l.command !== 'PRIVMSG' || !message.startsWith('\x01ACTION ') || !message.endsWith('\x01')) return undefined;
    message = message.slice(8, -1);
    msgtype = 'm.emote';
  }
  const time = l.tags['time'] ? Date.parse(l.tags['time']) : NaN;
  return { msgtype, nick: l.nick, target: l.params[0]!, message, tags: l.tags, ...(time ? { time } : {}) };
}

/**
 * Ergo's stand-in sender of joins, parts and quits in a channel's history, for clients without
 * draft/event-playback (the listener asks for it; a server may not offer it): not someone talking.
 */
const HISTSERV = 'HistServ';

/**
 * The server's mode letters as irc-framework parsed them from ISUPPORT (its own PREFIX default,
 * `~&@%+` for `qaohv`, stands in until the server sends one) and RPL_YOURHOST.
 */
function serverModeInfo(network: { ircd?: string; options: Record<string, unknown> }): ServerModeInfo {
  const prefix = network.options['PREFIX'];
  const chanmodes = network.options['CHANMODES'];
  return {
    ...(Array.isArray(prefix) ? { prefix: prefix.map((p: { mode?: string }) => p.mode ?? '') } : {}),
    ...(Array.isArray(chanmodes) ? { chanmodes: chanmodes.map(String) } : {}),
    ...(network.ircd ? { software: network.ircd } : {}),
  };
}

/**
 * The reason of a PART, if the line has one. irc-framework takes `message` from the last parameter
 * whatever it is, so a PART without a reason (`:alice PART #a`, as ergo and solanum send it) comes
 * with the channel as its reason. (A reason that is the channel's very name is lost with it: the
 * event does not tell them apart.)
 */
export function partReason(e: { channel: string; message?: string }): string | undefined {
  return e.message && e.message !== e.channel ? e.message : undefined;
}

/** The reason of a KICK, if the line has one: without one (`KICK #b bob`), irc-framework gives the kicked nick (see {@link partReason}). */
export function kickReason(e: { kicked: string; message?: string }): string | undefined {
  return e.message && e.message !== e.kicked ? e.message : undefined;
}

/** How long a nick that left holding a rank may take to get one again, when back, before its ghost's level follows. */
const RANK_RECHECK_MS = 3_000;

/** A quit held back because it looks like a netsplit: who, the channels they were in, why. */
interface HeldQuit { nick: string; channels: string[]; reason?: string }

export class ChannelEvents {
  readonly modes: ChannelModes;
  /** Away status → ghost presence; set when the server's `presence` is on. */
  readonly presence?: IrcPresence;
  /** Channels each IRC nick is in, as the listener sees it (for QUIT and NICK, which name no channel). */
  private readonly nickChannels = new Map<string, Set<string>>();
  private readonly splits = new NetsplitDetector<HeldQuit>();
  private splitTimer?: NodeJS.Timeout;
  /** What was said while the listener was away, fetched on rejoining, and where it left each channel (channelHistory.ts). */
  private readonly history: ChannelHistory;
  /**
   * Ids of `chathistory` batches irc-framework is replaying (which HistoryBatches should have
   * taken: a safety net): their lines are old, not live, and nothing of them is reported.
   */
  private readonly replaying = new Set<string>();
  /** Prunes after a NAMES, waiting for the channel's modes (see `whenNamesKnown`). */
  private readonly awaitingModes = new Map<string, () => void>();
  /** Channels whose NAMES the listener has had since it joined them, and who waits for one (see `named`). */
  private readonly namesIn = new Set<string>();
  private readonly namesWaiters = new Map<string, (() => void)[]>();

  constructor(private readonly server: IrcServer, private readonly ctx: NetworkContext, private readonly store: IrcStore) {
    this.modes = new ChannelModes(server.cfg.modePowers, () => serverModeInfo(server.listener.client.network));
    this.history = new ChannelHistory(server, ctx, { backfill: (channel, items) => this.backfill(channel, items), report: (p) => this.report(p) });
    if (server.cfg.presence) {
      this.presence = new IrcPresence({
        inChannel: (nick) => this.knowsNick(nick), isOwn: (nick) => server.isOwnNick(nick), userOf: (nick) => server.senderFor(nick).id,
        setPresence: (user, presence, statusMsg) => ctx.matrix.setPresence(user, presence, statusMsg),
        refreshSeconds: server.cfg.presenceRefreshSeconds, log: ctx.log.child({ server: server.key }),
      });
    }
  }

  /** Is this nick in one of the bridged channels (for turning words into mentions)? */
  knowsNick(nick: string): boolean { return this.nickChannels.has(ircLower(nick)); }

  /** The listener is about to join these channels (folded), the bridged ones: marks of any other are dropped. */
  bridgedChannels(channels: ReadonlySet<string>): void {
    this.history.keepOnly(channels);
  }

  /** Quits held back as a possible netsplit, waiting for their nicks to return. */
  get heldQuits(): number { return this.splits.heldCount; }

  /** The channel's operators (`o` and up) as the listener sees them, lower-cased; the bridge's own connections left out. */
  operators(channel: string): string[] {
    const lc = ircLower(channel);
    return [...this.nickChannels].filter(([nick, set]) => set.has(lc) && !this.server.isOwnNick(nick) && this.modes.isOperator(channel, nick))
      .map(([nick]) => nick);
  }

  /** Resolves once the listener has had the channel's NAMES (who is in it, and their ranks), or after `timeoutMs`. */
  named(channel: string, timeoutMs = 5000): Promise<void> {
    const lc = ircLower(channel);
    if (this.namesIn.has(lc)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.namesWaiters.set(lc, [...(this.namesWaiters.get(lc) ?? []), () => { clearTimeout(timer); resolve(); }]);
    });
  }

  /** Is this nick in this channel, as the listener sees it? */
  inChannel(nick: string, channel: string): boolean { return this.nickChannels.get(ircLower(nick))?.has(ircLower(channel)) ?? false; }

  stop(): void {
    if (this.splitTimer) clearTimeout(this.splitTimer);
    for (const t of this.rankChecks.values()) clearTimeout(t);
    this.rankChecks.clear();
    this.history.stop();
    this.splits.clear();
    void this.presence?.stop();
  }

  private get key(): string { return this.server.key; }

  private report(p: Promise<void>): void {
    p.catch((err: Error) => this.ctx.log.warn('could not report an IRC event', { server: this.key, err }));
  }

  /** Forget who is in a channel (a whole NAMES list follows). */
  private untrackChannel(channel: string): void {
    const lc = ircLower(channel);
    for (const [nick, set] of this.nickChannels) if (set.delete(lc) && set.size === 0) this.nickChannels.delete(nick);
  }

  /** The remote ids of everyone in a channel as the listener sees it now, a quit held as a netsplit still counted in. */
  private membersNow(channel: string): string[] {
    const lc = ircLower(channel);
    const nicks = [...this.nickChannels].filter(([, set]) => set.has(lc)).map(([nick]) => nick);
    for (const q of this.splits.holding()) if (q.channels.includes(lc)) nicks.push(q.nick);
    return nicks.filter((nick) => !this.server.isOwnNick(nick)).map((nick) => this.server.senderFor(nick).id);
  }

  private track(nick: string, channel: string, present: boolean): void {
    const lc = ircLower(nick);
    const set = this.nickChannels.get(lc) ?? new Set<string>();
    if (present) set.add(ircLower(channel)); else set.delete(ircLower(channel));
    if (set.size) this.nickChannels.set(lc, set); else this.nickChannels.delete(lc);
  }

  /** Ghost levels for these nicks (Matrix users' own connections are left out): the highest of their modes. */
  private levels(channel: string, nicks: readonly string[]): Record<string, number> {
    const users: Record<string, number> = {};
    for (const nick of nicks) if (!this.server.isOwnNick(nick)) users[this.server.senderFor(nick).id] = this.modes.levelOf(channel, nick);
    return users;
  }

  /** Ranks and room settings from one MODE line (or NAMES, or RPL_CHANNELMODEIS), as one change. */
  private reportModes(channel: string, ranked: readonly string[], settings: RoomSettingsChange | undefined): void {
    const chat = channelChat(this.key, channel);
    const users = this.levels(channel, ranked);
    const hasUsers = Object.keys(users).length > 0;
    // secrecy is not a room setting: it decides whether the portal is listed in the directory
    const { secret, ...room } = settings ?? {};
    if (secret !== undefined) this.server.onSecrecy?.(channel, secret);
    if (Object.keys(room).length) this.report(this.ctx.remote.roomSettings({ chat, ...(hasUsers ? { users } : {}), ...room }));
    else if (hasUsers) this.report(this.ctx.remote.powerLevels({ chat, users }));
  }

  /** Rank checks waiting (see {@link recheckRank}), by folded channel and nick. */
  private readonly rankChecks = new Map<string, NodeJS.Timeout>();

  /**
   * A nick that left holding a rank is back. Its ghost's power level still shows that rank: after a
   * few seconds (time for a services bot's auto-op, or a server's MODE after a netsplit, so that a
   * returning operator does not flip to 0 and back) it is set to the rank the nick has then.
   */
  private recheckRank(channel: string, nick: string): void {
    const k = `${ircLower(channel)} ${ircLower(nick)}`;
    clearTimeout(this.rankChecks.get(k));
    const t = setTimeout(() => {
      this.rankChecks.delete(k);
      if (this.inChannel(nick, channel)) this.reportModes(channel, [nick], undefined);
    }, RANK_RECHECK_MS);
    t.unref();
    this.rankChecks.set(k, t);
  }

  /**
   * A quit that stands (at once, or a netsplit's once its hold ran out, never before: the nick may
   * come back): the ghost leaves the rooms, and a nick that stood for it only while its holder had
   * it stops doing so (IrcStore.nickGone), so whoever takes it next is not them.
   */
  private leave(q: HeldQuit): void {
    for (const ch of q.channels) this.membership(ch, { user: this.server.senderFor(q.nick), membership: 'leave', ...(q.reason ? { reason: q.reason } : {}) });
    if (this.store.nickGone(this.key, q.nick)) this.ctx.log.debug('a nick changed to was quit with: no longer its ghost\'s', { server: this.key, nick: q.nick });
  }

  /**
   * A nick whose quit is held as a netsplit joined a channel: if it was in it before the quit, it is
   * back there, and its ghost, which never left that channel's rooms, stays (true: no join to
   * report). Its other channels stay held, released as leaves if it does not come back to them.
   */
  private splitReturn(nick: string, channel: string): boolean {
    const key = ircLower(nick), lc = ircLower(channel);
    const q = this.splits.peek(key);
    if (!q?.channels.includes(lc)) return false;
    q.channels = q.channels.filter((ch) => ch !== lc);
    if (q.channels.length === 0) this.splits.returned(key);
    return true;
  }

  /** Release held quits whose time is up, and wake again for the next one. */
  private scheduleSplitRelease(): void {
    if (this.splitTimer) clearTimeout(this.splitTimer);
    this.splitTimer = undefined;
    const next = this.splits.nextExpiry();
    if (next === undefined) return;
    this.splitTimer = setTimeout(() => {
      for (const q of this.splits.expired(Date.now())) this.leave(q);
      this.scheduleSplitRelease();
    }, Math.max(0, next - Date.now()));
    this.splitTimer.unref();
  }

  /** A message, notice or emote in a channel, from someone not of ours: to the room. */
  private message(msgtype: string, e: IrcMessageEvent): void {
    if (!isChannel(e.target) || this.server.isOwnNick(e.nick) || !e.nick) return;
    // to a channel's ops or voiced only (STATUSMSG, `@#chan`: irc-framework reports the channel and the
    // `group`): never to the whole Matrix room, where everyone, the person it is about too, would read it
    if (e.group) return;
    if (e.batch?.type === 'draft/multiline') return; // the batch was reported whole (see multiline())
    if (this.history.held(e.target, () => this.message(msgtype, e))) return;
    this.deliver(e.target, e.nick, e.message, msgtype, e.tags, e.time);
  }

  /** To the room: one channel message (a multiline one joined), live or fetched back from the channel's history. */
  private deliver(channel: string, nick: string, text: string, msgtype: string, tags: Record<string, string>, time: number | undefined, backfill = false): void {
    const reply = tags['+draft/reply'] ?? tags['+reply'];
    const msgid = tags['msgid'];
    const id = msgid ?? this.server.localId();
    this.server.recent.said(channel, [id], backfill && time ? time : Date.now());
    // said while the bridge was away: who joined since is not known, so a reply never quotes it (replies.ts)
    if (backfill) this.server.recent.joined(channel);
    this.server.noteAccount(nick, tags['account']);
    this.reportSeen(channel, this.ctx.remote.message({
      chat: channelChat(this.key, channel), id, sender: this.server.senderFor(nick),
      parts: [{ content: this.server.content(text, msgtype) }],
      ...(reply ? { replyTo: reply } : {}), ...(time ? { timestamp: time } : {}), ...(backfill ? { backfill } : {}),
    }), time, msgid);
  }

  /** To the room: an IRCv3 reaction (`key` to the message `target`), live or fetched back from the channel's history. */
  private react(channel: string, nick: string, target: string, key: string, tags: Record<string, string>, time: number | undefined, backfill = false): void {
    this.reportSeen(channel, this.ctx.remote.reaction({
      chat: channelChat(this.key, channel), target, sender: this.server.senderFor(nick), key,
      // (a REDACT of the TAGMSG takes the reaction back)
      ...(tags['msgid'] ? { id: tags['msgid'] } : {}),
      ...(backfill ? { backfill, ...(time ? { timestamp: time } : {}) } : {}),
    }), time, tags['msgid']);
  }

  /** The channel's mark moves once what was said is durable in core's queue: a crash before that fetches it again. */
  private reportSeen(channel: string, reported: Promise<void>, time: number | undefined, msgid: string | undefined): void {
    this.report(reported);
    if (time) this.history.markAfter(channel, reported, time, msgid);
  }

  /**
   * Is this irc-framework event a line of a history batch (its `batch`, or for events without one,
   * the batch tag)? HistoryBatches takes those off the raw lines; one that got through anyway is old
   * and must not be reported as if said now.
   */
  private replayed(e: unknown): boolean {
    if (!e || typeof e !== 'object') return false;
    const { batch, tags } = e as { batch?: { type?: string }; tags?: Record<string, string> };
    if (isHistoryBatch(batch?.type)) return true;
    const id = tags?.['batch'];
    return id !== undefined && this.replaying.has(id);
  }

  /**
   * A join, leave or kick in a channel, to its rooms: in order with its live messages, so one made
   * while the channel's history is fetched waits with them (a leave sent first, the ghost would be
   * joined again by a line of theirs held till then). Who it is, is settled now (a nick given up
   * next is someone else's).
   */
  private membership(channel: string, m: Omit<RemoteMembership, 'chat'>): void {
    const send = (): void => this.report(this.ctx.remote.membership({ chat: channelChat(this.key, channel), ...m }));
    if (!this.history.held(channel, send)) send();
  }

  /**
   * The listener is out of a channel: who is in it (nobody is seen leaving it any more: knowsNick and
   * inChannel would answer for people long gone), its modes, a prune waiting for them and its NAMES go.
   */
  private forgetChannel(channel: string): void {
    this.untrackChannel(channel);
    this.modes.forget(channel);
    this.awaitingModes.delete(ircLower(channel));
    this.namesIn.delete(ircLower(channel));
  }

  /**
   * Take a NAMES for everyone in the channel (`prune`) once its modes are known, which come after it
   * on joining (the MODE asked then): not at all in auditorium mode, where NAMES shows the unvoiced
   * only some of the others (InspIRCd lists them only themselves) and everyone else's ghost would leave.
   */
  private whenNamesKnown(channel: string, prune: () => void): void {
    const complete = this.modes.namesComplete(channel);
    if (complete === undefined) this.awaitingModes.set(ircLower(channel), prune);
    else if (complete) prune();
    else this.ctx.log.debug('auditorium channel: its NAMES is not everyone, and nobody is taken out', { server: this.key, channel });
  }

  /**
   * Items of a fetched page of a channel's history (channelHistory.ts), said before the listener
   * joined: each message (and reaction) not bridged yet goes to the room, in order, with its
   * original time. Left out: lines of ours (the bridge's connections), lines already in the message
   * map (delivered before, or sent from Matrix: after a restart the nicks of Matrix users'
   * connections no longer look like ours, but their msgids are mapped), lines without a msgid or
   * time (nothing to tell them from another). Answers how many went.
   */
  private backfill(channel: string, items: HistoryItem[]): number {
    const chat = channelChat(this.key, channel);
    let delivered = 0;
    for (const item of items) {
      const m = historyMessage(item) ?? historyReaction(item);
      if (!m || m.target && ircLower(m.target) !== ircLower(channel) || m.nick === HISTSERV) continue;
      const id = m.tags['msgid'];
      const time = Date.parse(m.tags['time'] ?? '');
      if (!id || !Number.isFinite(time) || !m.nick || this.server.isOwnNick(m.nick) || this.ctx.bridged(chat, id)) continue;
      if ('key' in m) this.react(channel, m.nick, m.replyTo, m.key, m.tags, time, true);
      else this.deliver(channel, m.nick, m.text, m.msgtype, m.tags, time, true);
      delivered++;
    }
    return delivered;
  }

  /**
   * The listener's fast path, asked for each line before irc-framework parses it: a plain channel
   * message is most of what the listener reads, so it is parsed and reported here, as irc-framework
   * would have reported it. Anything else answers false and goes to irc-framework.
   */
  takeLine(line: string): boolean {
    if (this.history.take(line)) return true; // a fetched history batch (channelHistory.ts); before the own lines, which it counts
    if (this.server.isOwnChatter(line)) { if (!this.server.stopped) this.history.ownChatter(line); return true; }
    const m = plainChannelMessage(line);
    if (!m) return false;
    if (!this.server.stopped) this.message(m.msgtype, m);
    return true;
  }

  wire(): void {
    const listener = this.server.listener;
    const client = listener.client;
    // (an event of a history batch irc-framework replays is old: nothing of it is reported, see replayed())
    const l = { on: <E>(event: string, fn: (e: E) => void): void => { client.on(event, (e: E) => { if (!this.server.stopped && !this.replayed(e)) fn(e); }); } };
    client.on('batch start', (b: { id: string; type?: string; params?: string[] }) => {
      if (!isHistoryBatch(b.type)) return;
      this.replaying.add(b.id);
      this.ctx.log.warn('a CHATHISTORY batch reached irc-framework; its lines are ignored', { server: this.key, target: b.params?.[0] });
    });
    client.on('batch end', (b: { id: string }) => { this.replaying.delete(b.id); });
    const isListener = (nick: string): boolean => ircLower(nick) === ircLower(listener.nick);
    listener.on('disconnected', () => {
      this.modes.forgetAll();
      this.awaitingModes.clear();
      this.namesIn.clear();
      this.presence?.lost();
      this.replaying.clear();
      this.history.disconnected();
    });
    listener.on('renamed', (e: { from: string; to: string; reason?: string }) => { if (!this.server.stopped) this.renamed(e.from, e.to, e.reason); });

    const onMessage = (msgtype: string) => (e: IrcMessageEvent): void => this.message(msgtype, e);
    // draft/multiline: the opening BATCH line carries the msgid (and reply tag), which irc-framework does not keep
    const batchTags = new Map<string, Record<string, string>>();
    listener.on('disconnected', () => batchTags.clear());
    client.on('raw', (e: { line: string; from_server: boolean }) => {
      if (!e.from_server || !e.line.includes(' BATCH +') || !e.line.includes('draft/multiline')) return;
      const line = parseLine(e.line);
      if (line?.command === 'BATCH' && line.params[1] === 'draft/multiline') batchTags.set(line.params[0]!.slice(1), line.tags);
    });
    l.on('batch start draft/multiline', (b: IrcBatch) => {
      const tags = batchTags.get(b.id) ?? {};
      batchTags.delete(b.id);
      this.multiline(b, tags);
    });
    l.on('privmsg', onMessage('m.text'));
    // a private message to the bridge's own connection (a channel operator answering a link request)
    l.on('privmsg', (e: IrcMessageEvent) => {
      if (!isChannel(e.target) && e.nick && isListener(e.target) && !this.server.isOwnNick(e.nick)) this.server.onBridgeMessage?.(e.nick, e.message);
    });
    l.on('notice', onMessage('m.notice'));
    l.on('action', onMessage('m.emote'));
    l.on('tagmsg', (e: { nick: string; target: string; tags: Record<string, string>; time?: number }) => this.liveReaction(e));

    l.on('join', (e: { nick: string; channel: string; time?: number; account?: string | false; tags?: Record<string, string> }) => {
      this.server.leftoverGone(e.nick); // someone live has the nick now
      // in no channel the listener shares, nor away in a netsplit: the listener did not see where they
      // came from, and a nick that stood for a ghost only while its last holder had it is not theirs
      const fromNowhere = !this.nickChannels.has(ircLower(e.nick)) && this.splits.peek(ircLower(e.nick)) === undefined;
      this.track(e.nick, e.channel, true);
      this.server.recent.joined(e.channel); // a later joiner: older lines are not quoted to them
      // (the listener's own join is where its fetch starts from the mark: it does not move it)
      if (!isListener(e.nick)) this.history.passed(e.channel, e.time, e.tags?.['msgid']);
      if (isListener(e.nick)) {
        const msgid = e.tags?.['msgid'];
        this.history.fetch(e.channel, { ...(msgid ? { msgid } : {}), ...(e.time ? { time: e.time } : {}) });
        listener.raw(`MODE ${e.channel}`); // its flags, for the room settings
        listener.raw(`MODE ${e.channel} +b`); // its bans, so a Matrix unban can lift them
        if (this.presence) listener.raw(`WHO ${e.channel}`); // who is away already (H/G), for their ghosts' presence
      }
      if (!isListener(e.nick) && this.modes.rankLeftWith(e.channel, e.nick)) this.recheckRank(e.channel, e.nick);
      if (this.splitReturn(e.nick, e.channel)) { this.presence?.sync(e.nick); return; }
      if (this.server.isOwnNick(e.nick)) return;
      // extended-join says whether they are logged in; a plain JOIN says nothing
      if (e.account !== undefined) this.server.noteAccount(e.nick, typeof e.account === 'string' ? e.account : undefined);
      if (fromNowhere && this.store.nickGone(this.key, e.nick)) this.ctx.log.debug('a nick changed to was taken by someone new: a ghost of their own', { server: this.key, nick: e.nick });
      this.membership(e.channel, { user: this.server.senderFor(e.nick), membership: 'join' });
      this.presence?.sync(e.nick);
    });
    l.on('part', (e: { nick: string; channel: string; message?: string; time?: number; tags?: Record<string, string> }) => {
      this.history.passed(e.channel, e.time, e.tags?.['msgid']);
      this.track(e.nick, e.channel, false);
      if (isListener(e.nick)) this.forgetChannel(e.channel); else this.modes.left(e.channel, e.nick);
      if (this.server.isOwnNick(e.nick)) return;
      this.presence?.sync(e.nick); // offline if that was their last bridged channel
      const reason = partReason(e);
      this.membership(e.channel, { user: this.server.senderFor(e.nick), membership: 'leave', ...(reason ? { reason } : {}) });
    });
    l.on('kick', (e: { kicked: string; nick: string; channel: string; message?: string; time?: number; tags?: Record<string, string> }) => {
      this.history.passed(e.channel, e.time, e.tags?.['msgid']);
      this.track(e.kicked, e.channel, false);
      if (isListener(e.kicked)) this.forgetChannel(e.channel); else this.modes.left(e.channel, e.kicked);
      if (this.server.isOwnNick(e.kicked) || this.server.isLeftover(e.kicked)) return;
      this.presence?.sync(e.kicked); // offline if that was their last bridged channel
      const user = this.server.senderFor(e.kicked), reason = kickReason(e);
      if (this.server.takeExpectedKick(e.channel, e.kicked)) {
        // done for a Matrix kick or ban in one of the channel's rooms, which has it already; the
        // others linked to the channel have not. A leave, not a kick: in the room that did it the
        // ghost is gone, and a leave of a ghost not in a room is nothing, where the bot's kick of a
        // ghost banned there would lift the ban
        this.membership(e.channel, { user, membership: 'leave', reason: `Kicked by ${e.nick}${reason ? `: ${reason}` : ''}` });
        return;
      }
      this.membership(e.channel, { user, membership: 'kick', by: this.server.senderFor(e.nick), ...(reason ? { reason } : {}) });
    });
    l.on('quit', (e: { nick: string; message?: string; batch?: { type?: string }; time?: number; tags?: Record<string, string> }) => {
      const lc = ircLower(e.nick);
      const channels = [...(this.nickChannels.get(lc) ?? [])];
      for (const ch of channels) this.history.passed(ch, e.time, e.tags?.['msgid']);
      this.nickChannels.delete(lc);
      this.modes.quit(e.nick);
      if (this.server.isOwnNick(e.nick)) { this.server.departed(e.nick); return; }
      if (this.server.leftoverGone(e.nick)) return;
      this.presence?.sync(e.nick); // offline: in no channel any more
      const q: HeldQuit = { nick: e.nick, channels, ...(e.message ? { reason: e.message } : {}) };
      const sign = this.splits.quit({ key: lc, ...(e.message ? { reason: e.message } : {}), ...(e.batch?.type ? { batch: e.batch.type } : {}) }, q, Date.now());
      if (!sign) { this.leave(q); return; }
      this.ctx.log.debug('holding a quit that looks like a netsplit', { server: this.key, nick: e.nick, sign });
      this.scheduleSplitRelease();
    });
    l.on('nick', (e: { nick: string; new_nick: string; time?: number; tags?: Record<string, string> }) => {
      const channels = this.nickChannels.get(ircLower(e.nick));
      for (const ch of channels ?? []) this.history.passed(ch, e.time, e.tags?.['msgid']);
      this.nickChannels.delete(ircLower(e.nick));
      if (channels) this.nickChannels.set(ircLower(e.new_nick), channels);
      this.modes.renamed(e.nick, e.new_nick);
      this.presence?.renamed(e.nick, e.new_nick);
      if (this.server.isOwnNick(e.new_nick) || this.server.isOwnNick(e.nick)) return;
      const key = this.store.renameGhost(this.key, e.nick, e.new_nick);
      this.report(this.ctx.remote.profile({ id: ircUser(this.key, key), displayName: this.server.ghostName(e.new_nick) }));
    });

    l.on('userlist', (e: { channel: string; users: { nick: string; ident?: string; hostname?: string; modes?: string[] }[] }) => {
      this.server.recent.joined(e.channel); // members of unknown standing
      const chat = channelChat(this.key, e.channel);
      // from inside the channel the list is whole (outside it, a server lists only the visible): it
      // replaces what the listener knew, which misses what happened while it was away
      const me = e.users.find((u) => isListener(u.nick));
      const whole = me !== undefined;
      if (whole) this.untrackChannel(e.channel);
      // a connection of ours from before a crash, not timed out yet, is nobody: no ghost, no rank
      const users = e.users.filter((u) => !this.server.isLeftover(u.nick, u.ident, u.hostname, me?.hostname));
      for (const u of users) {
        this.track(u.nick, e.channel, true);
        if (this.server.isOwnNick(u.nick)) continue;
        this.report(this.ctx.remote.membership({ chat, user: this.server.senderFor(u.nick), membership: 'join' }));
        this.presence?.sync(u.nick);
      }
      // the ghosts of those who left (or were renamed) while the bridge was away leave the rooms: after
      // the history being fetched, whose lines may be theirs, and with who is in the channel by then
      const prune = (): void => this.whenNamesKnown(e.channel, () => {
        this.report(this.ctx.remote.memberList({ chat, users: this.membersNow(e.channel), reason: 'left the channel while the bridge was away' }));
      });
      if (whole && !this.history.held(e.channel, prune)) prune();
      const ranked = this.modes.names(e.channel, users);
      // on joining, everyone listed: a rank taken while the bridge was away comes off the ghost too
      // (core changes only the levels that differ)
      const report = whole ? users.filter((u) => !this.server.isOwnNick(u.nick)).map((u) => u.nick) : ranked;
      if (report.length) this.reportModes(e.channel, report, undefined);
      if (whole) {
        this.namesIn.add(ircLower(e.channel));
        for (const w of this.namesWaiters.get(ircLower(e.channel)) ?? []) w();
        this.namesWaiters.delete(ircLower(e.channel));
      }
    });
    l.on('mode', (e: { target: string; nick?: string; modes: ModeChange[]; time?: number; tags?: Record<string, string> }) => {
      if (!isChannel(e.target)) return;
      this.history.passed(e.target, e.time, e.tags?.['msgid']);
      const { ranked, settings } = this.modes.apply(e.target, e.modes);
      if (ranked.length || settings) this.reportModes(e.target, ranked, settings);
    });
    l.on('channel info', (e: { channel: string; modes?: ModeChange[] }) => {
      if (!e.modes) return; // RPL_CREATIONTIME and friends come under the same name
      const settings = this.modes.replace(e.channel, e.modes);
      if (settings) this.reportModes(e.channel, [], settings);
      const prune = this.awaitingModes.get(ircLower(e.channel));
      this.awaitingModes.delete(ircLower(e.channel));
      if (prune) this.whenNamesKnown(e.channel, prune);
    });

    if (this.presence) {
      const presence = this.presence;
      // IRCv3 away-notify (irc-framework asks for it): AWAY from those sharing a channel with the listener
      l.on('away', (e: { nick: string; message: string; self: boolean }) => { if (!e.self) presence.setAway(e.nick, e.message); });
      l.on('back', (e: { nick: string; self: boolean }) => { if (!e.self) presence.setBack(e.nick); });
      l.on('wholist', (e: { users: { nick: string; away?: boolean }[] }) => presence.who(e.users.map((u) => ({ nick: u.nick, away: u.away === true }))));
    }

    l.on('banlist', (e: { channel: string; bans: { banned: string }[] }) => this.modes.banList(e.channel, e.bans.map((b) => b.banned)));
    l.on('unknown command', (cmd: { command: string; params: string[]; nick?: string }) => {
      if (cmd.command === 'FAIL' && cmd.params[0] === 'CHATHISTORY') { this.history.refused(cmd.params); return; }
      // IRCv3 draft/message-redaction: REDACT <target> <msgid> [:reason]
      if (cmd.command !== 'REDACT' || !cmd.params[0] || !cmd.params[1] || !isChannel(cmd.params[0])) return;
      if (cmd.nick && this.server.isOwnNick(cmd.nick)) return;
      const [channel, target, reason] = cmd.params as [string, string, string | undefined];
      const redact = (): void => this.report(this.ctx.remote.delete({ chat: channelChat(this.key, channel), target, ...(reason ? { reason } : {}) }));
      // after the messages held while the channel's history is fetched: else it comes before the
      // message it deletes, finds nothing, and the message then stays in the room
      if (!this.history.held(channel, redact)) redact();
    });
    l.on('topic', (e: { channel: string; topic: string; nick?: string; time?: number; tags?: Record<string, string> }) => {
      if (e.nick) this.history.passed(e.channel, e.time, e.tags?.['msgid']); // a TOPIC (the numerics on joining have no nick)
      if (e.nick && this.server.isOwnNick(e.nick)) return;
      this.report(this.ctx.remote.chatInfo({ chat: channelChat(this.key, e.channel), topic: e.topic ?? '' }));
    });
  }

  /**
   * A bridged channel renamed on the server (IRCv3 `draft/channel-rename`; ergo's RENAME): its rooms
   * follow it. Their links move to the new name (bridge info with them), a portal room takes the
   * new name, what is known of the channel (who is in it, modes and ranks, recent lines, the
   * history mark) moves too, and each room is told. The old portal alias stays; the new one finds
   * the same room. (Matrix users' connections, in the channel, are moved by the server: lean.ts.)
   */
  private renamed(from: string, to: string, reason: string | undefined): void {
    const oldChat = channelChat(this.key, from), newChat = channelChat(this.key, to);
    const portals = this.ctx.portals.forChat(oldChat);
    this.ctx.log.info('a channel was renamed on IRC; its rooms follow it', { server: this.key, from, to, reason, rooms: portals.length });
    // a channel of the config's static mappings: remembered, so that the next start follows it too (renames.ts)
    const configured = Object.keys(this.server.cfg.mappings).find((ch) => ircLower(currentChannel(this.ctx.kv, this.key, ch)) === ircLower(from));
    if (configured !== undefined) {
      noteRename(this.ctx.kv, this.key, from, to);
      if (ircLower(configured) !== ircLower(to)) {
        this.ctx.log.warn('a channel in the config\'s mappings was renamed on IRC: its rooms follow the new name, also after a restart; ' +
          'update the config', { server: this.key, configured, now: to });
      }
    }
    for (const set of this.nickChannels.values()) moveChannel(set, from, to);
    this.moveChannelState(ircLower(from), ircLower(to));
    this.modes.channelRenamed(from, to);
    this.server.recent.channelRenamed(from, to);
    this.history.channelRenamed(from, to);
    // (a new case of the same name is the same chat: the links stay); the message map moves with
    // the links, or IRC replies, reactions and deletions of older lines would find nothing
    if (newChat !== oldChat) this.ctx.portals.moveChat(oldChat, newChat, { name: to });
    if (portals.length === 0) return;
    this.report(this.ctx.remote.chatInfo({ chat: newChat, name: to }));
    this.report(this.ctx.remote.notice({ chat: newChat, text: `ℹ ${from} was renamed to ${to} on IRC${reason ? ` (${reason})` : ''}: this room now follows ${to}.` }));
  }

  /**
   * What waits on a channel by its folded name moves to its new one: quits held as a netsplit (their
   * leaves go to the rooms, which follow the new name), a NAMES known or awaited, a prune waiting
   * for the modes. (A history fetch and the request behind it move with the mark: ChannelHistory.)
   */
  private moveChannelState(from: string, to: string): void {
    if (from === to) return;
    for (const m of [this.awaitingModes, this.namesWaiters] as Map<string, unknown>[]) {
      if (m.has(from)) { m.set(to, m.get(from)); m.delete(from); }
    }
    if (this.namesIn.delete(from)) this.namesIn.add(to);
    for (const q of this.splits.heldPayloads()) q.channels = q.channels.map((ch) => (ch === from ? to : ch));
  }

  /** An IRCv3 reaction in a channel (a TAGMSG with `+draft/react` and the msgid it answers); it waits behind a fetch as messages do. */
  private liveReaction(e: { nick: string; target: string; tags: Record<string, string>; time?: number }): void {
    const react = e.tags['+draft/react'] ?? e.tags['+react'];
    const target = e.tags['+draft/reply'] ?? e.tags['+reply'];
    if (!isChannel(e.target)) return;
    if (!react || !target || this.server.isOwnNick(e.nick)) { this.history.passed(e.target, e.time, e.tags['msgid']); return; }
    if (this.history.held(e.target, () => this.liveReaction(e))) return;
    this.react(e.target, e.nick, target, react, e.tags, e.time);
  }

  /** An IRCv3 `draft/multiline` batch in a channel: one Matrix message, as the sender meant it. */
  private multiline(b: IrcBatch, tags: Record<string, string>): void {
    const target = b.params[0];
    const lines = b.commands.filter((c) => c.command === 'PRIVMSG' || c.command === 'NOTICE');
    const nick = lines[0]?.nick;
    const time = tags['time'] ? Date.parse(tags['time']) : NaN;
    if (!target || !isChannel(target)) return;
    // (a Matrix user's own: its lines were dropped as theirs, see takeLine)
    if (!nick || this.server.isOwnNick(nick)) { this.history.passed(target, time, tags['msgid']); return; }
    if (this.history.held(target, () => this.multiline(b, tags))) return;
    this.deliver(target, nick, joinLines(lines), lines[0]!.command === 'NOTICE' ? 'm.notice' : 'm.text', tags, Number.isFinite(time) ? time : undefined);
  }
}

/** The text of a multiline message's lines, joined as the sender meant (draft/multiline-concat). */
function joinLines(lines: readonly { params: string[]; tags: Record<string, string> }[]): string {
  return joinMultiline(lines.map((c) => ({ text: c.params[c.params.length - 1] ?? '', concat: 'draft/multiline-concat' in c.tags })));
}

/** A message of a fetched history batch: who said what, where, of which msgtype, with its tags (msgid, time, reply). */
export function historyMessage(item: HistoryItem): { nick: string; target?: string; text: string; msgtype: string; tags: Record<string, string> } | undefined {
  if (item.kind === 'line') {
    const m = channelMessageOf(item.line);
    return m && { nick: m.nick, target: m.target, text: m.message, msgtype: m.msgtype, tags: m.tags };
  }
  const lines = item.lines.filter((c) => c.command === 'PRIVMSG' || c.command === 'NOTICE');
  if (!lines.length) return undefined;
  return { nick: item.nick, ...(lines[0]!.params[0] ? { target: lines[0]!.params[0] } : {}), text: joinLines(lines), msgtype: lines[0]!.command === 'NOTICE' ? 'm.notice' : 'm.text', tags: item.tags };
}
