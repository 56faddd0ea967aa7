/**
 * Discord → Matrix: what happens in bridged channels (messages with their attachments and stickers,
 * edits, deletions, reactions, members' departures) reported through core's sink, one channel at a time in
 * arrival order. The bridge's own messages (its webhooks, its bot user) are never reported back.
 */
import { durationWords, KeyedSerial, type NetworkContext, type RemoteMembership, type RemoteMessagePart, type RemoteSender } from '@trestle/core';
import {
  Events, MessageReferenceType, MessageType, type Channel, type Client, type Guild, type GuildMember, type Message, type MessageReaction, type PartialGuildMember,
  type PartialMessage, type PartialMessageReaction, type PartialUser, type Typing, type User,
} from 'discord.js';
import type { DiscordConfig } from './config.js';
import { customEmojisIn, discordToMatrix, embedText, pollResultText, pollText, reactionKeyToMatrix, textContent, type DiscordToMatrixResolver } from './convert/index.js';
import { aliasLocalpart, channelChat, discordUser, messageRef, parseChat, threadChat, webhookUser } from './ids.js';
import { attachmentPart, messageLink, type EmojiBridge, type StickerBridge } from './media.js';
import type { DiscordStore } from './store.js';
import type { WebhookPool } from './webhooks.js';

export interface FromDiscordDeps {
  ctx: NetworkContext;
  cfg: DiscordConfig;
  /** `networks.<id>`, for messages to admins. */
  configKey: string;
  aliasPrefix: string;
  webhooks: WebhookPool;
  emojis: EmojiBridge;
  stickers: StickerBridge;
  store: DiscordStore;
  /** Messages the bridge deleted itself (their MESSAGE_DELETE is an echo). */
  deletedByUs(messageId: string): boolean;
  /** A new session's catch-up on missed messages is over (done or failed): what else it missed may be looked at. */
  caughtUp?(client: Client): void;
}

/** Where an event of a channel goes: the chat it is reported in, and the message ids' point of view. */
interface Route {
  chat: string;
  /** The channel or thread the event happened in. */
  where: string;
  /** The thread root, when a thread is shown as a Matrix thread of its channel's room. */
  threadRoot?: string;
}

const AVATAR = { extension: 'png', size: 256 } as const;
const BLANK_REPORT_EVERY_MS = 6 * 3600_000;
/** How long one TYPING_START means someone is typing: Discord sends another every ~8 s while they go on. */
export const TYPING_LASTS_MS = 10_000;
/** Most messages bridged per channel when catching up after a new gateway session; the rest are counted and the rooms told. */
export const CATCH_UP_LIMIT = 500;
/** Messages per page of a channel's history (Discord's most). */
const PAGE = 100;
/** Most messages counted past {@link CATCH_UP_LIMIT} (pages fetched only to count): past it, the rooms are told "or more". */
const COUNT_PAST_LIMIT = 1000;
/** How long after the last of a burst of messages too old to bridge its rooms are told about them, in one notice. */
const TOO_OLD_NOTICE_AFTER_MS = 2000;

const newerId = (a: string, b: string | undefined): boolean => b === undefined || BigInt(a) > BigInt(b);
const powerKey = (chat: string, userId: string): string => `${chat}\u0000${userId}`;

/** `$DISPLAY`, `$USERNAME` and `$ID` in a display name template. */
export function fillTemplate(template: string, vars: { display: string; username: string; id: string }): string {
  return template.replace(/\$(DISPLAY|USERNAME|ID)/g, (_m, v: string) => (v === 'DISPLAY' ? vars.display : v === 'USERNAME' ? vars.username : vars.id));
}

/** "1 message", "3 messages", "1000 or more messages". */
function messages(count: number, orMore = false): string {
  return `${count}${orMore ? ' or more' : ''} message${count === 1 && !orMore ? '' : 's'}`;
}

/** Whether a message is too old to bridge (e.g. replayed after an outage). */
export function tooOld(createdMs: number, nowMs: number, maxAgeSeconds: number): boolean {
  return maxAgeSeconds > 0 && nowMs - createdMs > maxAgeSeconds * 1000;
}

/**
 * Whether a MESSAGE_UPDATE is an edit worth bridging: Discord also sends one when it adds link
 * previews (embeds) or pins a message, without an edit timestamp and with the content unchanged.
 */
export function isRealEdit(before: { content: string | null; partial: boolean }, after: { content: string; editedTimestamp: number | null }): boolean {
  if (!after.editedTimestamp) return false;
  return before.partial || before.content !== after.content;
}

/** The Matrix power level of a member: the highest that `rolePowers` gives one of their roles (by id or name). */
export function powerOfRoles(roles: { id: string; name: string }[], rolePowers: Record<string, number>): number {
  let level = 0;
  for (const r of roles) level = Math.max(level, rolePowers[r.id] ?? rolePowers[r.name] ?? 0);
  return level;
}

export class FromDiscord {
  private readonly serial = new KeyedSerial();
  private readonly blankReported = new Map<string, number>();
  /** Who is shown typing (chat and Discord user) and when that ends unless Discord says it again. */
  private readonly typing = new Map<string, { user: RemoteSender; timer: NodeJS.Timeout }>();
  /**
   * Power levels reported per chat and Discord user since this process started, so only changes are
   * sent. A level not in it is not known (see {@link syncPower}), which is not the same as 0.
   */
  private readonly powers = new Map<string, number>();
  private client?: Client;
  /**
   * Per channel, the first message that could be neither bridged nor told about (its rooms could not
   * be reached through core): the checkpoint stays before it, so the next catch-up tries it again.
   */
  private readonly held = new Map<string, string>();
  /** Live messages too old to bridge, per chat, until their rooms are told (one notice per burst). */
  private readonly tooOldSkipped = new Map<string, { count: number; first: Message; timer: NodeJS.Timeout }>();

  constructor(private readonly d: FromDiscordDeps) {}

  /** Listen to a (new) client's events. */
  attach(client: Client): void {
    this.client = client;
    const { log } = this.d.ctx;
    const guard = <A extends unknown[]>(what: string, fn: (...args: A) => Route | undefined, task: (route: Route, ...args: A) => Promise<void>) =>
      (...args: A): void => {
        let route: Route | undefined;
        try { route = fn(...args); } catch (err) { log.warn(`could not route a Discord ${what}`, { err: err as Error }); return; }
        if (!route) return;
        const r = route;
        void this.serial.run(r.chat, () => task(r, ...args), (err) => log.warn(`could not bridge a Discord ${what}`, { chat: r.chat, err: err as Error }));
      };
    client.on(Events.MessageCreate, guard('message', (m: Message) => this.routeOf(m.channel, m.guildId), (r, m) => this.onMessage(r, m)));
    // A new session (first login, or one that could not resume) missed what happened meanwhile: fetch it.
    client.on(Events.ShardReady, () => {
      void this.catchUp(client).catch((err: unknown) => log.warn('catching up on Discord messages failed', { err: err as Error }))
        .then(() => this.d.caughtUp?.(client));
    });
    client.on(Events.MessageUpdate, guard('edit', (_o: Message | PartialMessage, n: Message | PartialMessage) => this.routeOfId(n.channelId, n.guildId),
      (r, o, n) => this.onEdit(r, o, n)));
    client.on(Events.MessageDelete, guard('deletion', (m: Message | PartialMessage) => this.routeOfId(m.channelId, m.guildId), (r, m) => this.onDelete(r, m)));
    client.on(Events.MessageBulkDelete, (messages) => {
      for (const m of messages.values()) {
        const r = this.routeOfId(m.channelId, m.guildId);
        if (r) void this.serial.run(r.chat, () => this.onDelete(r, m), (err) => log.warn('could not bridge a Discord deletion', { err: err as Error }));
      }
    });
    const reaction = (remove: boolean) => guard('reaction', (rx: MessageReaction | PartialMessageReaction, _user: User | PartialUser) => this.routeOfId(rx.message.channelId, rx.message.guildId),
      (r, rx, user: User | PartialUser) => this.onReaction(r, rx, user, remove));
    client.on(Events.MessageReactionAdd, reaction(false));
    client.on(Events.MessageReactionRemove, reaction(true));
    client.on(Events.TypingStart, (t) => { void this.onTyping(t).catch((err: unknown) => log.debug('typing not bridged', { err: err as Error })); });
    // roles → power levels, lowered as well as raised: a member's roles changed (GUILD_MEMBER_UPDATE, with
    // the Server Members intent; without it a change is seen when they next speak), they left, or a role
    // was renamed (rolePowers may name it) or deleted (its members lost it without an event of their own)
    client.on(Events.GuildMemberUpdate, (before, after) => {
      if (before.partial || !sameRoles(before, after)) this.memberPowerChanged(after.guild.id, after.id, this.memberPower(after));
    });
    client.on(Events.GuildMemberRemove, (member) => this.memberPowerChanged(member.guild.id, member.id, 0));
    client.on(Events.GuildRoleUpdate, (before, after) => { if (before.name !== after.name) this.membersPowerChanged(after.guild, after.members.values()); });
    client.on(Events.GuildRoleDelete, (role) => this.membersPowerChanged(role.guild, role.guild.members.cache.values()));
  }

  /**
   * Report a membership change of a Discord user's ghost in the rooms of `chats`, in each chat's
   * order with its messages (channel names, topics and icons are guilds.ts's business).
   */
  reportMembership(chats: string[], change: Omit<RemoteMembership, 'chat'>): Promise<void> {
    return Promise.all(chats.map((chat) => this.inOrder(chat, 'a membership change', () => this.d.ctx.remote.membership({ chat, ...change }))))
      .then(() => undefined);
  }

  /** Report something about a chat after what was reported of it before (a failure is logged). */
  inOrder(chat: string, what: string, task: () => Promise<void>): Promise<void> {
    return this.serial.run(chat, task, (err) => this.d.ctx.log.warn(`could not bridge ${what}`, { chat, err: err as Error }));
  }

  /** Wait for everything reported so far (tests, shutdown). */
  idle(): Promise<void> { return this.serial.idle(); }

  /** Tell now what waits to be told (messages too old to bridge): before a shutdown. */
  flushNotices(): void {
    for (const [chat, s] of this.tooOldSkipped) {
      clearTimeout(s.timer);
      this.tellTooOld(chat);
    }
  }

  /** Forget who is typing (shutdown): core's typing timeout ends what is shown. */
  stopTyping(): void {
    for (const t of this.typing.values()) clearTimeout(t.timer);
    this.typing.clear();
  }

  // ------------------------------------------------------------------ routing

  private hasPortals(chat: string): boolean {
    return this.d.ctx.portals.forChat(chat).length > 0;
  }

  private routeOfId(channelId: string, guildId: string | null): Route | undefined {
    const channel = this.client?.channels.cache.get(channelId);
    if (channel) return this.routeOf(channel, guildId);
    return guildId && this.hasPortals(channelChat(channelId)) ? { chat: channelChat(channelId), where: channelId } : undefined;
  }

  private routeOf(channel: Channel, guildId: string | null): Route | undefined {
    if (!guildId) return undefined; // direct messages to the bot are not bridged
    if (channel.isThread()) {
      const parent = channel.parentId;
      if (!parent) return undefined;
      const own = threadChat(parent, channel.id);
      if (this.hasPortals(own)) return { chat: own, where: channel.id };
      return this.hasPortals(channelChat(parent)) ? { chat: channelChat(parent), where: channel.id, threadRoot: channel.id } : undefined;
    }
    return this.hasPortals(channelChat(channel.id)) ? { chat: channelChat(channel.id), where: channel.id } : undefined;
  }

  // ------------------------------------------------------------------ who

  /** A Discord user as core sees them (their ghost's name and avatar). */
  userSender(user: User | PartialUser, member: GuildMember | PartialGuildMember | null | undefined): RemoteSender {
    const username = user.username ?? user.id;
    const display = member?.nickname ?? user.globalName ?? username;
    const avatar = (member && !member.partial ? member.avatarURL(AVATAR) : null) ?? user.avatarURL(AVATAR);
    return {
      id: discordUser(user.id),
      displayName: fillTemplate(this.d.cfg.displayNameTemplate, { display, username, id: user.id }),
      ...(avatar ? { avatarUrl: avatar } : {}),
    };
  }

  /** The sender of a message, or undefined for the bridge's own messages. */
  private messageSender(m: Message): RemoteSender | undefined {
    if (m.webhookId) {
      if (this.d.webhooks.isOurs(m.webhookId)) return undefined;
      const name = m.author.username;
      const avatar = m.author.avatarURL(AVATAR);
      return {
        id: webhookUser(m.webhookId, name),
        displayName: fillTemplate(this.d.cfg.displayNameTemplate, { display: name, username: name, id: m.webhookId }),
        ...(avatar ? { avatarUrl: avatar } : {}),
      };
    }
    if (m.author.id === this.client?.user?.id) return undefined;
    return this.userSender(m.author, m.member ?? m.guild?.members.cache.get(m.author.id));
  }

  private async memberSender(guild: Guild | null, user: User | PartialUser): Promise<RemoteSender> {
    let member = guild?.members.cache.get(user.id);
    if (!member && guild) member = await guild.members.fetch(user.id).catch(() => undefined);
    const u = user.partial ? await user.fetch().catch(() => user) : user;
    return this.userSender(u, member);
  }

  // ------------------------------------------------------------------ roles → power levels

  private memberPower(member: GuildMember): number {
    return powerOfRoles([...member.roles.cache.values()].map((r) => ({ id: r.id, name: r.name })), this.d.cfg.rolePowers);
  }

  private get powersOn(): boolean { return Object.keys(this.d.cfg.rolePowers).length > 0; }

  /**
   * Report a member's power level in a chat if it changed; run in the chat's order. A level not known
   * (nothing reported for them since the bridge started) is reported when it is above 0; a 0 only when
   * a room of the chat gives their ghost a level (raised before a restart, and demoted since): a member
   * who never had one is not reported. A room that cannot be read leaves the level unknown, to be
   * asked again the next time.
   */
  private async syncPower(chat: string, userId: string, level: number): Promise<void> {
    const key = powerKey(chat, userId);
    const known = this.powers.get(key);
    if (known === level) return;
    if (known === undefined && level === 0) {
      const raised = await this.raisedInRooms(chat, userId);
      if (raised !== true) {
        if (raised === false) this.powers.set(key, 0);
        return;
      }
    }
    await this.d.ctx.remote.powerLevels({ chat, users: { [discordUser(userId)]: level } });
    this.powers.set(key, level);
  }

  /** Whether a room of the chat gives the user's ghost a power level above 0; undefined when one cannot be read. */
  private async raisedInRooms(chat: string, userId: string): Promise<boolean | undefined> {
    const { ctx } = this.d;
    const ghost = ctx.ghostUserId(discordUser(userId));
    try {
      for (const p of ctx.portals.forChat(chat)) if (await ctx.matrix.powerLevel(p.roomId, ghost) > 0) return true;
      return false;
    } catch (err) {
      ctx.log.debug('could not read the power level of a ghost', { chat, userId, err: err as Error });
      return undefined;
    }
  }

  /** The chats (channels and threads) of a server that are bridged. */
  private chatsOfGuild(guildId: string): string[] {
    const chats = new Set<string>();
    for (const p of this.d.ctx.portals.all()) {
      const c = parseChat(p.remoteChat);
      const ch = c ? this.client?.channels.cache.get(c.channelId) : undefined;
      if (ch && !ch.isDMBased() && ch.guildId === guildId) chats.add(p.remoteChat);
    }
    return [...chats];
  }

  /** One member's level changed (their roles, or 0: they left the server): reported in each bridged chat of the server, in its order. */
  private memberPowerChanged(guildId: string, userId: string, level: number): void {
    if (!this.powersOn || userId === this.client?.user?.id) return;
    for (const chat of this.chatsOfGuild(guildId)) void this.inOrder(chat, 'a power level', () => this.syncPower(chat, userId, level));
  }

  /**
   * Many members' levels may have changed (a role renamed or deleted): one change per bridged chat of
   * the server, in its order, with the members whose level changed or is not known. Core compares it
   * with each room and changes only what differs there.
   */
  private membersPowerChanged(guild: Guild, members: Iterable<GuildMember>): void {
    if (!this.powersOn) return;
    const levels = [...members].filter((m) => m.id !== this.client?.user?.id).map((m): [string, number] => [m.id, this.memberPower(m)]);
    if (levels.length === 0) return;
    for (const chat of this.chatsOfGuild(guild.id)) {
      void this.inOrder(chat, 'power levels', async () => {
        const users: Record<string, number> = {};
        for (const [id, level] of levels) if (this.powers.get(powerKey(chat, id)) !== level) users[discordUser(id)] = level;
        if (Object.keys(users).length === 0) return;
        await this.d.ctx.remote.powerLevels({ chat, users });
        for (const [id, level] of Object.entries(users)) this.powers.set(powerKey(chat, id), level);
      });
    }
  }

  /** Report the power levels of every known member of a chat's guild (after a link). */
  async syncPowers(chat: string, guild: Guild): Promise<void> {
    if (!this.powersOn) return;
    const users: Record<string, number> = {};
    for (const m of guild.members.cache.values()) {
      if (m.id === this.client?.user?.id) continue;
      const level = this.memberPower(m);
      if (level > 0) users[discordUser(m.id)] = level;
    }
    if (Object.keys(users).length === 0) return;
    await this.serial.run(chat, async () => {
      await this.d.ctx.remote.powerLevels({ chat, users });
      for (const [id, level] of Object.entries(users)) this.powers.set(powerKey(chat, id), level);
    }, (err) => this.d.ctx.log.warn('could not report power levels', { chat, err: err as Error }));
  }

  // ------------------------------------------------------------------ content

  private resolver(guild: Guild | null, mentioned?: Message['mentions']): DiscordToMatrixResolver {
    const client = this.client;
    const { ctx, cfg } = this.d;
    return {
      user: (id) => {
        const member = guild?.members.cache.get(id) ?? mentioned?.members?.get(id);
        const user = member?.user ?? mentioned?.users.get(id) ?? client?.users.cache.get(id);
        if (!user) return undefined;
        if (id === client?.user?.id) return { name: member?.displayName ?? user.username };
        return { userId: ctx.ghostUserId(discordUser(id)), name: this.userSender(user, member).displayName };
      },
      role: (id) => {
        const role = guild?.roles.cache.get(id);
        return role ? { name: role.name, ...(role.color ? { color: role.color } : {}) } : undefined;
      },
      channel: (id) => {
        const ch = client?.channels.cache.get(id);
        if (!ch || !('name' in ch) || typeof ch.name !== 'string') return undefined;
        const bridged = ctx.portals.forChat(channelChat(id));
        const room = bridged.find((p) => p.kind === 'portal')?.roomId ?? bridged[0]?.roomId;
        if (room) return { name: ch.name, room };
        // not bridged yet: its alias opens a portal room on demand
        const guildId = 'guildId' in ch ? ch.guildId : undefined;
        const allowed = guildId && (cfg.guilds.length === 0 || cfg.guilds.includes(guildId)) && !ch.isThread();
        return { name: ch.name, ...(allowed ? { room: `#${aliasLocalpart(this.d.aliasPrefix, guildId, id)}:${ctx.domain}` } : {}) };
      },
      emoji: (e) => this.d.emojis.known(e.id),
    };
  }

  /** Upload the custom emojis a text uses, so the converter finds them. */
  private async prepareEmojis(text: string): Promise<void> {
    await Promise.all(customEmojisIn(text).map((e) => this.d.emojis.mxc(e)));
  }

  private async textOf(m: Pick<Message, 'content' | 'poll' | 'embeds'>): Promise<string> {
    let text = m.content;
    // a poll has no content of its own: its question and answers are the message (votes stay on Discord)
    if (m.poll) text = text ? `${text}\n${pollText(m.poll)}` : pollText(m.poll);
    const result = m.embeds.find((e) => e.data.type === 'poll_result');
    if (!text && result) text = pollResultText(result.fields);
    if (!text && m.embeds.length) text = m.embeds.map((e) => embedText(e)).filter(Boolean).join('\n\n');
    else if (text && !result) {
      // a bot's or webhook's own embeds (type rich) say things the text does not; link previews
      // (Discord's embeds of the links in the text) would only repeat it
      const rich = m.embeds.filter((e) => e.data.type === 'rich').map((e) => embedText(e)).filter(Boolean);
      if (rich.length) text = [text, ...rich].join('\n\n');
    }
    await this.prepareEmojis(text);
    return text;
  }

  // ------------------------------------------------------------------ catching up

  /**
   * The newest message of a channel the bridge has handled (bridged, or given up and told about), kept
   * across restarts: the next catch-up starts after it. Not moved past a message {@link held} back.
   */
  private checkpoint(r: Route, messageId: string): void {
    if (r.where !== r.chat) return; // threads are not caught up on
    const held = this.held.get(r.chat);
    if (held !== undefined && BigInt(messageId) >= BigInt(held)) return;
    const key = `last:${r.chat}`;
    if (newerId(messageId, this.d.ctx.kv.get(key))) this.d.ctx.kv.set(key, messageId);
  }

  /**
   * Bridge the messages each bridged channel received since the last one the bridge handled (Discord
   * replays nothing to a new session), however old: they were missed while the bridge was away, and
   * go to Matrix with the times they were said. Messages bridged already are left out. Past
   * {@link CATCH_UP_LIMIT} in a channel they are counted instead, and its rooms told how many were
   * not bridged and where on Discord they start.
   */
  private async catchUp(client: Client): Promise<void> {
    const { ctx } = this.d;
    const chats = new Set(ctx.portals.all().map((p) => p.remoteChat));
    const runs: Promise<void>[] = [];
    for (const chat of chats) {
      const after = ctx.kv.get(`last:${chat}`);
      const channel = client.channels.cache.get(chat);
      if (!after || !channel || !channel.isTextBased() || channel.isDMBased() || channel.isThread()) continue;
      // one task in the channel's queue, queued at once: live messages arriving meanwhile wait behind the older ones
      runs.push(this.serial.run(chat, async () => {
        this.held.delete(chat); // fetched again now, from the checkpoint before it
        const r: Route = { chat, where: chat };
        let cursor = after;
        let handled = 0;
        let fetched = 0;
        const past: { count: number; first?: Message; newest?: string; more: boolean } = { count: 0, more: false };
        for (;;) {
          const batch = [...(await channel.messages.fetch({ after: cursor, limit: PAGE })).values()]
            .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
          if (batch.length === 0) break;
          fetched += batch.length;
          for (const m of batch) {
            if (ctx.bridged(chat, messageRef(chat, chat, m.id))) { this.checkpoint(r, m.id); continue; }
            if (handled >= CATCH_UP_LIMIT) {
              past.count++;
              past.first ??= m;
              past.newest = m.id;
              continue;
            }
            handled++;
            // one message that cannot be bridged must not cost the ones after it: the loop goes on (it is told, or held)
            await this.onMessage(r, m, true).catch((err: unknown) =>
              ctx.log.warn('could not bridge a Discord message while catching up; going on with the next', { chat, messageId: m.id, err: err as Error }));
          }
          cursor = batch[batch.length - 1]!.id;
          if (batch.length < PAGE) break;
          if (past.count >= COUNT_PAST_LIMIT) { past.more = true; break; }
        }
        if (fetched) ctx.log.info('caught up on Discord messages from while the bridge was away', { chat, fetched, bridged: handled, notBridged: past.count });
        if (past.first && past.newest) await this.tellNotFetched(r, `#${channel.name}`, { count: past.count, first: past.first, newest: past.newest, more: past.more });
      }, (err) => ctx.log.warn('could not catch up on a Discord channel', { chat, err: err as Error })));
    }
    await Promise.all(runs);
  }

  /**
   * More was said in a channel while the bridge was away than it catches up on: its rooms are told how
   * much was not bridged and where on Discord it starts, and the checkpoint moves past it (given up,
   * and told). Not told: held back, so the next catch-up tries again.
   */
  private async tellNotFetched(r: Route, name: string, past: { count: number; first: Message; newest: string; more: boolean }): Promise<void> {
    const { ctx } = this.d;
    const text = `ℹ ${messages(past.count, past.more)} said in ${name} on Discord while the bridge was away ${past.count === 1 && !past.more ? 'was' : 'were'} ` +
      `not bridged: it catches up on at most ${CATCH_UP_LIMIT} per channel. Read ${past.count === 1 && !past.more ? 'it' : 'them'} on Discord, ` +
      `from ${messageLink(past.first)}`;
    ctx.log.warn('more was said in a Discord channel while the bridge was away than it catches up on; the rooms are told', { chat: r.chat, notBridged: past.count, more: past.more });
    try {
      await ctx.remote.notice({ chat: r.chat, text });
    } catch (err) {
      if (!this.held.has(r.chat)) this.held.set(r.chat, past.first.id);
      throw err;
    }
    this.checkpoint(r, past.newest);
  }

  // ------------------------------------------------------------------ events

  /**
   * A message from Discord: bridged, live or fetched while catching up (`backfill`: with the time it was
   * said). One that cannot be bridged is given up, and its rooms told where to read it on Discord; the
   * checkpoint then moves past it. When they cannot be told either, the checkpoint stays before it (it
   * is {@link held}), and the next catch-up tries it again.
   */
  private async onMessage(r: Route, m: Message, backfill = false): Promise<void> {
    try {
      await this.bridgeMessage(r, m, backfill);
    } catch (err) {
      this.d.ctx.log.warn('could not bridge a Discord message; telling its rooms', { chat: r.chat, messageId: m.id, err: err as Error });
      const text = `⚠ A message from ${m.author.username} on Discord could not be bridged (${err instanceof Error ? err.message : String(err)}). ` +
        `Read it on Discord: ${messageLink(m)}`;
      try {
        await this.d.ctx.remote.notice({ chat: r.chat, text });
      } catch {
        if (r.where === r.chat && !this.held.has(r.chat)) this.held.set(r.chat, m.id);
        throw err;
      }
    }
    this.checkpoint(r, m.id);
  }

  /**
   * A live message older than maxMessageAgeSeconds (e.g. replayed after the gateway was away long):
   * not bridged, and counted; its rooms are told in one notice once such messages stop coming.
   */
  private skipTooOld(r: Route, m: Message): void {
    const skipped = this.tooOldSkipped.get(r.chat);
    if (skipped) {
      skipped.count++;
      skipped.timer.refresh();
      return;
    }
    const timer = setTimeout(() => this.tellTooOld(r.chat), TOO_OLD_NOTICE_AFTER_MS);
    timer.unref();
    this.tooOldSkipped.set(r.chat, { count: 1, first: m, timer });
  }

  private tellTooOld(chat: string): void {
    const skipped = this.tooOldSkipped.get(chat);
    if (!skipped) return;
    this.tooOldSkipped.delete(chat);
    const { ctx, cfg, configKey } = this.d;
    const m = skipped.first;
    const one = skipped.count === 1;
    const text = `ℹ ${messages(skipped.count)} from Discord reached the bridge more than ${durationWords(cfg.maxMessageAgeSeconds)} after ` +
      `${one ? 'it was' : 'they were'} said, and ${one ? 'was' : 'were'} not bridged (${configKey}.maxMessageAgeSeconds). Read ` +
      `${one ? 'it' : 'them'} on Discord, from ${messageLink(m)}`;
    void this.inOrder(chat, 'a notice of messages too old to bridge', () => ctx.remote.notice({ chat, text }));
  }

  private async bridgeMessage(r: Route, m: Message, backfill: boolean): Promise<void> {
    // system messages (joins, pins, boosts...) are not bridged, except the end of a poll: its result
    if (m.system && m.type !== MessageType.PollResult) return;
    const sender = this.messageSender(m);
    if (!sender) return;
    const { ctx, cfg } = this.d;
    // a message fetched while catching up is old because the bridge was away: that is what backfill is for
    if (!backfill && tooOld(m.createdTimestamp, Date.now(), cfg.maxMessageAgeSeconds)) {
      ctx.log.info('Discord message older than maxMessageAgeSeconds; not bridged, its rooms are told', { chat: r.chat, messageId: m.id });
      this.skipTooOld(r, m);
      return;
    }
    // a forwarded message has no content of its own: what it forwards is in its snapshots
    const forwarded = m.reference?.type === MessageReferenceType.Forward ? [...m.messageSnapshots.values()] : [];
    let text = await this.textOf(m);
    for (const snap of forwarded) text = [text, forwardedText(await this.textOf(snap))].filter(Boolean).join('\n');
    const attachments = [m, ...forwarded].flatMap((x) => [...x.attachments.values()]);
    const stickers = [m, ...forwarded].flatMap((x) => [...x.stickers.values()]);
    if (!text && attachments.length === 0 && stickers.length === 0) {
      if (!cfg.messageContentIntent) await this.reportBlank(r.chat, m);
      return;
    }
    const parts: RemoteMessagePart[] = [];
    if (text) parts.push({ content: textContent(discordToMatrix(text, this.resolver(m.guild, m.mentions))) });
    for (const att of attachments) parts.push(await attachmentPart(att, cfg.maxAttachmentBytes, ctx, ctx.log, m));
    for (const sticker of stickers) parts.push(await this.d.stickers.part(sticker));
    // a reply's reference (a forward's names the message forwarded, perhaps elsewhere: not a reply)
    const replied = m.reference?.type === MessageReferenceType.Forward ? undefined : m.reference;
    const ref = replied?.messageId && replied.channelId ? messageRef(r.chat, replied.channelId, replied.messageId) : undefined;
    if (!m.webhookId && m.member && this.powersOn) await this.syncPower(r.chat, m.member.id, this.memberPower(m.member));
    if (!m.webhookId) this.d.store.addChatMember(r.chat, m.author.id);
    if (!m.webhookId) this.typingEnded(r.chat, m.author.id);
    await ctx.remote.message({
      chat: r.chat, id: messageRef(r.chat, r.where, m.id), sender, parts, timestamp: m.createdTimestamp,
      ...(backfill ? { backfill: true } : {}), ...(ref ? { replyTo: ref } : {}),
      // the root of a thread shown as a Matrix thread is the channel message it was started from (same id)
      ...(r.threadRoot ? { threadRoot: messageRef(r.chat, r.chat, r.threadRoot) } : {}),
    });
  }

  private async onEdit(r: Route, before: Message | PartialMessage, after: Message | PartialMessage): Promise<void> {
    const m = after.partial ? await after.fetch().catch(() => undefined) : after;
    if (!m || !isRealEdit(before, m)) return;
    const sender = this.messageSender(m);
    if (!sender) return;
    if (!before.partial && !before.content && before.attachments.size > 0) {
      // the first Matrix event of this message is a file, which an edit cannot turn into text
      this.d.ctx.log.info('text added to a Discord file message by an edit; not bridged', { chat: r.chat, messageId: m.id });
      return;
    }
    await this.prepareEmojis(m.content);
    const target = messageRef(r.chat, r.where, m.id);
    await this.d.ctx.remote.edit({
      chat: r.chat, target, id: `${target}:edit:${m.editedTimestamp}`, sender,
      content: textContent(discordToMatrix(m.content, this.resolver(m.guild, m.mentions))),
    });
  }

  /**
   * Someone started typing in a bridged channel (TYPING_START): their ghost types in the rooms until
   * they send their message or Discord stops repeating it. Typing is shown at once, not queued.
   */
  private async onTyping(t: Typing): Promise<void> {
    if (t.user.id === this.client?.user?.id || t.user.bot) return; // the bot types for Matrix users; other bots are not people
    const r = this.routeOf(t.channel, t.guild?.id ?? null);
    if (!r) return;
    const key = `${r.chat}\u0000${t.user.id}`;
    const shown = this.typing.get(key);
    if (shown) clearTimeout(shown.timer);
    const user = shown?.user ?? this.userSender(t.user, t.member ?? t.guild?.members.cache.get(t.user.id));
    const timer = setTimeout(() => this.typingEnded(r.chat, t.user.id), TYPING_LASTS_MS);
    timer.unref();
    this.typing.set(key, { user, timer });
    this.d.store.addChatMember(r.chat, t.user.id); // typing brings the ghost into the rooms
    // said again at each repeat, so someone typing for long stays shown past the homeserver's typing timeout
    await this.d.ctx.remote.typing({ chat: r.chat, user, typing: true });
  }

  /** A Discord user stopped typing (they sent their message, or the typing ran out). */
  private typingEnded(chat: string, userId: string): void {
    const key = `${chat}\u0000${userId}`;
    const shown = this.typing.get(key);
    if (!shown) return;
    clearTimeout(shown.timer);
    this.typing.delete(key);
    void this.d.ctx.remote.typing({ chat, user: shown.user, typing: false })
      .catch((err: unknown) => this.d.ctx.log.debug('typing not bridged', { chat, err: err as Error }));
  }

  private async onDelete(r: Route, m: Message | PartialMessage): Promise<void> {
    if (this.d.deletedByUs(m.id)) return;
    await this.d.ctx.remote.delete({ chat: r.chat, target: messageRef(r.chat, r.where, m.id) });
  }

  private async onReaction(r: Route, rx: MessageReaction | PartialMessageReaction, user: User | PartialUser, remove: boolean): Promise<void> {
    if (user.id === this.client?.user?.id) return; // the bot reacts for Matrix users
    const e = rx.emoji;
    let key: string | undefined;
    if (e.id) {
      const mxc = await this.d.emojis.mxc({ id: e.id, name: e.name ?? 'emoji', animated: e.animated ?? false });
      key = mxc ?? `:${e.name ?? 'emoji'}:`;
    } else {
      key = e.name ? reactionKeyToMatrix(e.name) : undefined;
    }
    if (!key) return;
    const sender = await this.memberSender(rx.message.guild, user);
    this.d.store.addChatMember(r.chat, user.id);
    await this.d.ctx.remote.reaction({ chat: r.chat, target: messageRef(r.chat, r.where, rx.message.id), sender, key, ...(remove ? { remove: true } : {}) });
  }

  /**
   * A message came without content while the bridge runs without the Message Content intent:
   * say so loudly (log) and tell whoever linked the channel, at most every few hours.
   */
  private async reportBlank(chat: string, m: Message): Promise<void> {
    const last = this.blankReported.get(chat) ?? 0;
    if (Date.now() - last < BLANK_REPORT_EVERY_MS) return;
    this.blankReported.set(chat, Date.now());
    const where = 'name' in m.channel ? `#${m.channel.name}${m.guild ? ` (${m.guild.name})` : ''}` : chat;
    const text = `Discord sends the bridge blank messages in ${where}, so they are not bridged: the bridge runs without the ` +
      'Message Content intent. Enable "Message Content Intent" for the bot in the Discord developer portal (Bot → Privileged ' +
      `Gateway Intents), set ${this.d.configKey}.messageContentIntent: true and restart the bridge.`;
    this.d.ctx.log.error('Discord message without content: the Message Content intent is off', { chat, messageId: m.id });
    for (const link of this.d.store.linkedBy(chat)) {
      await this.d.ctx.notifyUser(link.userId, text).catch((err: unknown) =>
        this.d.ctx.log.warn('could not tell the user who linked the channel', { user: link.userId, err: err as Error }));
    }
  }
}

/** Whether a member update left their roles as they were (a nickname or avatar changed). */
function sameRoles(before: GuildMember | PartialGuildMember, after: GuildMember): boolean {
  const a = before.roles.cache;
  const b = after.roles.cache;
  return a.size === b.size && [...a.keys()].every((id) => b.has(id));
}

/** What a forwarded message says, marked as forwarded and quoted (Discord markdown); `*Forwarded*` alone for files. */
function forwardedText(text: string): string {
  return text ? `*Forwarded:*\n${text.split('\n').map((l) => `> ${l}`).join('\n')}` : '*Forwarded*';
}
