/**
 * Discord → Matrix: what happens in bridged channels (messages with their attachments and stickers,
 * edits, deletions, reactions, members' departures) reported through core's sink, one channel at a time in
 * arrival order. The bridge's own messages (its webhooks, its bot user) are never reported back.
 */
import { KeyedSerial, type NetworkContext, type RemoteMembership, type RemoteMessagePart, type RemoteSender } from '@trestle/core';
import {
  Events, MessageReferenceType, MessageType, type Channel, type Client, type Guild, type GuildMember, type Message, type MessageReaction, type PartialGuildMember,
  type PartialMessage, type PartialMessageReaction, type PartialUser, type Typing, type User,
} from 'discord.js';
import type { DiscordConfig } from './config.js';
import { customEmojisIn, discordToMatrix, embedText, pollResultText, pollText, reactionKeyToMatrix, textContent, type DiscordToMatrixResolver } from './convert/index.js';
import { aliasLocalpart, channelChat, discordUser, messageRef, threadChat, webhookUser } from './ids.js';
import { attachmentPart, type EmojiBridge, type StickerBridge } from './media.js';
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
/** Most messages fetched per channel when catching up after a new gateway session. */
const CATCH_UP_LIMIT = 500;

const newerId = (a: string, b: string | undefined): boolean => b === undefined || BigInt(a) > BigInt(b);

/** `$DISPLAY`, `$USERNAME` and `$ID` in a display name template. */
export function fillTemplate(template: string, vars: { display: string; username: string; id: string }): string {
  return template.replace(/\$(DISPLAY|USERNAME|ID)/g, (_m, v: string) => (v === 'DISPLAY' ? vars.display : v === 'USERNAME' ? vars.username : vars.id));
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
  /** Power levels reported per chat and Discord user, so only changes are sent. */
  private readonly powers = new Map<string, number>();
  private client?: Client;

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

  /** Report a member's power level in a chat if it changed (members' roles are seen when they speak). */
  private async syncPower(chat: string, member: GuildMember | null | undefined): Promise<void> {
    if (!member || Object.keys(this.d.cfg.rolePowers).length === 0) return;
    const level = this.memberPower(member);
    const key = `${chat}\u0000${member.id}`;
    if ((this.powers.get(key) ?? 0) === level) return;
    await this.d.ctx.remote.powerLevels({ chat, users: { [discordUser(member.id)]: level } });
    this.powers.set(key, level);
  }

  /** Report the power levels of every known member of a chat's guild (after a link). */
  async syncPowers(chat: string, guild: Guild): Promise<void> {
    if (Object.keys(this.d.cfg.rolePowers).length === 0) return;
    const users: Record<string, number> = {};
    for (const m of guild.members.cache.values()) {
      if (m.id === this.client?.user?.id) continue;
      const level = this.memberPower(m);
      if (level > 0) users[discordUser(m.id)] = level;
    }
    if (Object.keys(users).length === 0) return;
    await this.serial.run(chat, async () => {
      await this.d.ctx.remote.powerLevels({ chat, users });
      for (const [id, level] of Object.entries(users)) this.powers.set(`${chat}\u0000${id}`, level);
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

  /** The newest message of a channel the bridge has handled, kept across restarts. */
  private checkpoint(r: Route, m: Message): void {
    if (r.where !== r.chat) return; // threads are not caught up on
    const key = `last:${r.chat}`;
    if (newerId(m.id, this.d.ctx.kv.get(key))) this.d.ctx.kv.set(key, m.id);
  }

  /**
   * Bridge the messages each bridged channel received since the last one the bridge handled
   * (Discord replays nothing to a new session); those older than maxMessageAgeSeconds are skipped
   * as usual, and messages already bridged are recognised by core.
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
        let cursor = after;
        let count = 0;
        while (count < CATCH_UP_LIMIT) {
          const batch = [...(await channel.messages.fetch({ after: cursor, limit: 100 })).values()]
            .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
          if (batch.length === 0) break;
          for (const m of batch) {
            // one message that cannot be bridged must not cost the ones after it: the loop goes on
            await this.onMessage({ chat, where: chat }, m).catch((err: unknown) =>
              ctx.log.warn('could not bridge a Discord message while catching up; going on with the next', { chat, messageId: m.id, err: err as Error }));
          }
          cursor = batch[batch.length - 1]!.id;
          count += batch.length;
          if (batch.length < 100) break;
        }
        if (count) ctx.log.info('caught up on Discord messages from while the bridge was away', { chat, fetched: count });
      }, (err) => ctx.log.warn('could not catch up on a Discord channel', { chat, err: err as Error })));
    }
    await Promise.all(runs);
  }

  // ------------------------------------------------------------------ events

  private async onMessage(r: Route, m: Message): Promise<void> {
    try {
      await this.bridgeMessage(r, m);
    } finally {
      this.checkpoint(r, m);
    }
  }

  private async bridgeMessage(r: Route, m: Message): Promise<void> {
    // system messages (joins, pins, boosts...) are not bridged, except the end of a poll: its result
    if (m.system && m.type !== MessageType.PollResult) return;
    const sender = this.messageSender(m);
    if (!sender) return;
    const { ctx, cfg } = this.d;
    if (tooOld(m.createdTimestamp, Date.now(), cfg.maxMessageAgeSeconds)) {
      ctx.log.info('Discord message older than maxMessageAgeSeconds; not bridged', { chat: r.chat, messageId: m.id });
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
    for (const att of attachments) parts.push(await attachmentPart(att, cfg.maxAttachmentBytes, ctx, ctx.log));
    for (const sticker of stickers) parts.push(await this.d.stickers.part(sticker));
    // a reply's reference (a forward's names the message forwarded, perhaps elsewhere: not a reply)
    const replied = m.reference?.type === MessageReferenceType.Forward ? undefined : m.reference;
    const ref = replied?.messageId && replied.channelId ? messageRef(r.chat, replied.channelId, replied.messageId) : undefined;
    if (!m.webhookId) await this.syncPower(r.chat, m.member);
    if (!m.webhookId) this.d.store.addChatMember(r.chat, m.author.id);
    if (!m.webhookId) this.typingEnded(r.chat, m.author.id);
    await ctx.remote.message({
      chat: r.chat, id: messageRef(r.chat, r.where, m.id), sender, parts, timestamp: m.createdTimestamp,
      ...(ref ? { replyTo: ref } : {}),
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

/** What a forwarded message says, marked as forwarded and quoted (Discord markdown); `*Forwarded*` alone for files. */
function forwardedText(text: string): string {
  return text ? `*Forwarded:*\n${text.split('\n').map((l) => `> ${l}`).join('\n')}` : '*Forwarded*';
}
