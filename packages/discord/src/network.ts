/**
 * The Discord network: the bot's connection, Matrix → Discord delivery (Matrix users speak through
 * a webhook per channel, under their own name), portal rooms on demand and plumbing with the
 * channel's approval. Discord → Matrix lives in fromDiscord.ts; servers as spaces, names and topics
 * in guilds.ts; members leaving, kicked and banned in members.ts; the approval flow in approvals.ts.
 */
import {
  DeliveryError, type AliasCapable, type CommandCapable, type CommandInvocation, type EditCapable, type MatrixEdit, type MatrixMembership,
  type MatrixMessage, type MatrixReaction, type MatrixRedaction, type MatrixRoomMeta, type MatrixTyping, type MembershipCapable,
  type NetworkCommand, type NetworkConnector, type NetworkContext, type PortalInfo, type PortalLinkAware, type ProvisioningCapable,
  type ReactionCapable, type RedactionCapable, type RoomMetadataCapable, type SendResult, type TypingCapable,
} from '@trestle/core';
import {
  ChannelType, PermissionFlagsBits, Routes, type APIMessage, type Client, type Guild, type GuildMember, type GuildTextBasedChannel,
  type PartialGuildMember, type RawFile, type User,
} from 'discord.js';
import { LinkApprovals, type LinkAsk } from './approvals.js';
import { createClient, DiscordLoginError, login } from './client.js';
import { discordConfigSchema, type DiscordConfig } from './config.js';
import {
  allowedMentions, emote, escapeDiscordMarkdown, matrixToDiscord, replyQuote, splitMessage, userMention, webhookUsername, type DiscordText,
} from './convert/index.js';
import { toDeliveryError } from './errors.js';
import { FromDiscord } from './fromDiscord.js';
import { GuildSync, portalRoomName } from './guilds.js';
import {
  aliasLocalpart, channelChat, ghostLocalpart, messageRef, parseAliasLocalpart, parseChat, parseLinkTarget, parseMessageRef,
  parseReactionRef, parseUser, reactionRef, type ParsedChat,
} from './ids.js';
import { MatrixApi } from './matrix.js';
import { download, EmojiBridge, formatSize, StickerBridge } from './media.js';
import { applyMatrixRemoval, departureReason, Departures, type Departure } from './members.js';
import { DiscordStore, discordMigrations } from './store.js';
import { discordCode, discordStatus, UNKNOWN_MESSAGE, WebhookPool, type WebhookMessageBody } from './webhooks.js';

export { toDeliveryError };

const TYPING_EVERY_MS = 8000;
const UNKNOWN_EMOJI = 10014;
/** How long a member's departure from a server waits for the audit-log entry that says it was a kick. */
const DEPARTURE_GRACE_MS = 1500;
const EVERYONE = /(^|[^\w.])@(everyone|here)\b/;

export class DiscordNetwork implements NetworkConnector, EditCapable, RedactionCapable, ReactionCapable, TypingCapable, AliasCapable,
  ProvisioningCapable, PortalLinkAware, CommandCapable, RoomMetadataCapable, MembershipCapable {
  readonly identity;
  readonly commands: NetworkCommand[];
  /** Set once logged in; REST works through gateway reconnects, so it stays set. */
  client?: Client;
  ctx?: NetworkContext;
  store?: DiscordStore;
  webhooks?: WebhookPool;
  emojis?: EmojiBridge;
  fromDiscord?: FromDiscord;
  /** The homeserver, reached directly (`networks.<id>.matrix`) for what core does not do for networks yet. */
  matrix?: MatrixApi;
  guilds?: GuildSync;
  approvals?: LinkApprovals;
  departures?: Departures;
  /** Messages the bridge deleted (their MESSAGE_DELETE echo is not reported back), with when. */
  private readonly deleted = new Map<string, number>();
  private readonly typingAt = new Map<string, number>();
  /** Parts already sent of long Matrix messages whose sending failed part-way (event and chat → ids). */
  private readonly partlySent = new Map<string, string[]>();
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(readonly id: string, readonly cfg: DiscordConfig) {
    this.identity = { id, displayName: 'Discord', userPrefix: `${id}_`, aliasPrefix: `${id}_`, ghostLocalpart };
    this.commands = [{
      name: 'channels', permission: 'user', help: 'List the Discord channels the bridge can open, with their room aliases',
      run: async () => this.listChannels(),
    }, {
      name: 'link', args: ['...channel'], roomPower: 50, permission: 'user',
      help: 'Link this room to a Discord channel (<server id> <channel id>) once a member with Manage Webhooks approves there (power level 50 needed)',
      run: async (inv) => this.linkCommand(inv),
    }];
  }

  private get configKey(): string { return `networks.${this.id}`; }

  // ------------------------------------------------------------------ lifecycle

  async start(ctx: NetworkContext): Promise<void> {
    this.ctx = ctx;
    this.stopped = false;
    ctx.migrate(discordMigrations);
    const store = new DiscordStore(ctx.db);
    this.store = store;
    for (const [channelId, rooms] of Object.entries(this.cfg.mappings)) {
      for (const roomId of rooms) ctx.portals.link(roomId, channelChat(channelId), { kind: 'plumbed' });
    }
    this.webhooks = new WebhookPool(store, () => this.requireClient().rest, () => this.client?.user?.id, this.cfg.webhookName, ctx.log);
    this.emojis = new EmojiBridge(store, ctx, (id, animated) => this.requireClient().rest.cdn.emoji(id, { extension: animated ? 'gif' : 'png' }), ctx.log);
    this.fromDiscord = new FromDiscord({
      ctx, cfg: this.cfg, configKey: this.configKey, aliasPrefix: this.identity.aliasPrefix, webhooks: this.webhooks,
      emojis: this.emojis, stickers: new StickerBridge(store, ctx, ctx.log), store, deletedByUs: (id) => this.deleted.has(id),
    });
    const m = this.cfg.matrix;
    this.matrix = m ? new MatrixApi(m.homeserverUrl, m.registration, ctx.domain) : undefined;
    if (!this.matrix) {
      ctx.log.warn(`${this.configKey}.matrix is not set: no Discord server spaces, and @everyone / @here from Matrix ` +
        (this.cfg.everyoneMentionPower === 0 ? 'ping for everyone (everyoneMentionPower is 0)' : 'are always defused'));
    }
    const fromDiscord = this.fromDiscord;
    this.guilds = new GuildSync({
      ctx, store, matrix: this.matrix, spaces: this.cfg.spaces, log: ctx.log, inOrder: (chat, what, task) => fromDiscord.inOrder(chat, what, task),
    });
    this.approvals = new LinkApprovals({
      log: ctx.log, timeoutSeconds: () => this.cfg.linkApproval.timeoutSeconds, link: (ask, approver) => this.linkApproved(ask, approver),
    });
    this.departures = new Departures({
      graceMs: DEPARTURE_GRACE_MS, report: (guild, user, member, d) => this.reportDeparture(guild, user, member, d),
      unbanned: (guild, userId) => this.unbanGhost(guild, userId),
      onError: (err) => ctx.log.warn('could not bridge a departure from a Discord server', { err: err as Error }),
    });
    await this.connect(true, this.cfg.reconnect.initialDelayMs);
  }

  /**
   * Log in. A refused token or refused intents make the first attempt (start) throw with what to do;
   * Discord being unreachable is retried in the background with growing pauses, as a state, not a crash.
   */
  private async connect(first: boolean, delay: number): Promise<void> {
    const ctx = this.ctx!;
    const client = createClient(this.cfg);
    this.fromDiscord!.attach(client);
    this.guilds!.attach(client);
    this.approvals!.attach(client);
    this.departures!.attach(client);
    client.on('shardDisconnect', (e, shard) => ctx.log.warn('Discord gateway closed', { shard, code: e.code }));
    client.on('shardResume', (shard, replayed) => ctx.log.info('Discord gateway resumed', { shard, replayed }));
    client.on('error', (err) => ctx.log.warn('Discord client error', { err }));
    try {
      await login(client, this.cfg.token, this.configKey);
    } catch (err) {
      await client.destroy().catch(() => undefined);
      if (err instanceof DiscordLoginError) {
        if (first) throw err;
        ctx.log.error(err.message);
        return;
      }
      if (this.stopped) return;
      // loud the first time, then quieter while it keeps failing
      (first ? ctx.log.error : ctx.log.warn).call(ctx.log, 'could not connect to Discord; will keep trying', { err: err as Error, retryInMs: delay });
      this.retryTimer = setTimeout(() => { void this.connect(false, Math.min(delay * 2, this.cfg.reconnect.maxDelayMs)); }, delay);
      return;
    }
    if (this.stopped) { await client.destroy(); return; }
    this.client = client;
    ctx.log.info('connected to Discord', { user: client.user?.tag, guilds: client.guilds.cache.size });
    void this.guilds!.reconcile(client).catch((err: unknown) => ctx.log.warn('could not bring the server spaces up to date', { err: err as Error }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.approvals?.stop();
    this.departures?.flush();
    await this.guilds?.idle();
    await this.fromDiscord?.idle();
    await this.client?.destroy();
    this.client = undefined;
  }

  async connectMatrixUser(): Promise<void> {
    // Matrix users need nothing on Discord: they speak through the channel's webhook.
  }

  private requireClient(): Client {
    if (!this.client) throw new DeliveryError('the bridge is not connected to Discord right now', false);
    return this.client;
  }

  // ------------------------------------------------------------------ helpers

  private chatOf(remoteChat: string): ParsedChat {
    const c = parseChat(remoteChat);
    if (!c) throw new DeliveryError(`not a Discord chat id: ${remoteChat}`, true);
    return c;
  }

  private textChannel(channelId: string): GuildTextBasedChannel {
    const ch = this.requireClient().channels.cache.get(channelId);
    if (!ch || ch.isDMBased() || !ch.isTextBased()) throw new DeliveryError('the Discord channel is gone or the bot cannot see it', true);
    return ch;
  }

  /** Lower-cased names of the guild's members: a Matrix user may not speak under one of them. */
  private memberNames(guild: Guild): Set<string> {
    const names = new Set<string>();
    for (const m of guild.members.cache.values()) {
      if (m.id === this.client?.user?.id) continue;
      for (const n of [m.nickname, m.user.globalName, m.user.username]) if (n) names.add(n.toLowerCase());
    }
    return names;
  }

  /**
   * The Discord user or webhook author a Matrix user id is the ghost of. Core knows the ghosts it
   * registered; a user's ghost id also says it (`@discord_<id>:domain`), registered or not.
   */
  private remoteUserOf(mxid: string): ReturnType<typeof parseUser> {
    const known = this.ctx!.remoteUserOf(mxid);
    if (known) return parseUser(known);
    const local = `@${this.identity.userPrefix}`;
    const suffix = `:${this.ctx!.domain}`;
    if (!mxid.startsWith(local) || !mxid.endsWith(suffix)) return undefined;
    const id = mxid.slice(local.length, -suffix.length);
    return /^\d{1,20}$/.test(id) ? { kind: 'user', userId: id } : undefined;
  }

  private toDiscord(body: string, formattedBody: string | undefined, guild: Guild, allowEveryone: boolean): DiscordText {
    const ctx = this.ctx!;
    return matrixToDiscord({ body, ...(formattedBody !== undefined ? { formattedBody } : {}) }, {
      user: (mxid) => {
        const p = this.remoteUserOf(mxid);
        return p?.kind === 'user' ? p.userId : undefined;
      },
      room: (room) => {
        if (!room.startsWith('!')) {
          const alias = parseAliasLocalpart(room.slice(1).split(':')[0] ?? '', this.identity.aliasPrefix);
          return alias?.channelId;
        }
        const chat = ctx.portals.forRoom(room).map((p) => parseChat(p.remoteChat)).find((c) => c && !c.threadId);
        return chat?.channelId;
      },
      emoji: (mxc) => this.emojis!.byMxc(mxc),
      mediaUrl: (mxc) => ctx.mediaUrl(mxc),
      roles: [...guild.roles.cache.values()].map((r) => ({ id: r.id, name: r.name, mentionable: r.mentionable })),
      allowEveryone,
    });
  }

  /**
   * Whether a Matrix user may ping @everyone / @here on Discord: their power level in the room must
   * reach everyoneMentionPower. Asked of the homeserver only when the text has one of the words.
   */
  private async mayPingEveryone(roomId: string, userId: string, body: string, formattedBody: string | undefined): Promise<boolean> {
    if (!EVERYONE.test(body) && !(formattedBody !== undefined && EVERYONE.test(formattedBody))) return false;
    const needed = this.cfg.everyoneMentionPower;
    if (needed <= 0) return true;
    if (!this.matrix) return false;
    try {
      return (await this.matrix.powerLevel(roomId, userId)) >= needed;
    } catch (err) {
      // fail closed: a ping nobody meant to allow is worse than a defused one
      this.ctx!.log.warn('could not read power levels for an @everyone; sent defused', { roomId, err: err as Error });
      return false;
    }
  }

  /** The thread a Matrix thread reply goes to: the Discord thread on its root message, started if needed. */
  private async threadFor(msg: MatrixMessage): Promise<string | undefined> {
    const rootId = msg.threadRoot?.remoteId;
    const root = rootId ? parseMessageRef(msg.portal.remoteChat, rootId) : undefined;
    if (!root) return undefined;
    if (root.threadId) return root.threadId;
    const client = this.requireClient();
    if (client.channels.cache.get(root.messageId)?.isThread()) return root.messageId;
    // Discord threads have names: the start of the root message's text
    const rootMsg = await client.rest.get(Routes.channelMessage(root.channelId, root.messageId)).catch(() => undefined) as APIMessage | undefined;
    const name = [...(rootMsg?.content ?? '').replace(/\s+/g, ' ').trim()].slice(0, 90).join('') || 'Thread from Matrix';
    try {
      const thread = await client.rest.post(Routes.threads(root.channelId, root.messageId), { body: { name } }) as { id: string };
      return thread.id;
    } catch (err) {
      this.ctx!.log.warn('could not start a Discord thread for a Matrix thread; sending to the channel', { err: err as Error });
      return undefined;
    }
  }

  private replyPrefix(msg: MatrixMessage, guild: Guild): string {
    const r = msg.replyTo;
    if (!r) return '';
    const target = r.remoteId ? parseMessageRef(msg.portal.remoteChat, r.remoteId) : undefined;
    const p = r.sender ? this.remoteUserOf(r.sender) : undefined;
    const author = p?.kind === 'user' ? userMention(p.userId) : p?.kind === 'webhook' ? p.name : (r.sender ?? 'someone');
    return replyQuote({
      author, ...(r.body !== undefined ? { snippet: r.body } : {}),
      ...(target ? { jumpUrl: `https://discord.com/channels/${guild.id}/${target.channelId}/${target.messageId}` } : {}),
    });
  }

  private noteDeleted(messageId: string): void {
    const now = Date.now();
    for (const [id, at] of this.deleted) if (now - at > 10 * 60_000) this.deleted.delete(id);
    this.deleted.set(messageId, now);
  }

  // ------------------------------------------------------------------ Matrix → Discord

  async handleMatrixMessage(msg: MatrixMessage): Promise<SendResult> {
    const chat = this.chatOf(msg.portal.remoteChat);
    const channel = this.textChannel(chat.channelId);
    const guild = channel.guild;
    const ctx = this.ctx!;
    const threadId = chat.threadId ?? await this.threadFor(msg);
    const identity: WebhookMessageBody = {
      username: webhookUsername(msg.sender, this.memberNames(guild)),
    };
    const avatar = msg.sender.avatarMxc ? ctx.mediaUrl(msg.sender.avatarMxc) : undefined;
    if (avatar && /^https?:\/\//.test(avatar)) identity.avatar_url = avatar;
    let files: RawFile[] = [];
    let text: DiscordText;
    if (msg.media) {
      const m = msg.media;
      const filename = m.filename ?? msg.body ?? 'file';
      // a caption is a body that is not just the file name
      text = msg.body && msg.body !== filename
        ? this.toDiscord(msg.body, msg.formattedBody, guild, await this.mayPingEveryone(msg.portal.roomId, msg.sender.userId, msg.body, msg.formattedBody))
        : { content: '', users: [], roles: [], everyone: false };
      const file = await this.fetchMedia(m.url, m.size);
      if (file) {
        files = [{ name: filename, data: file, ...(m.mimetype ? { contentType: m.mimetype } : {}) }];
      } else {
        const size = m.size !== undefined ? ` (${formatSize(m.size)})` : '';
        const link = `📎 ${escapeDiscordMarkdown(filename)}${size}, too big to upload to Discord: ${m.url}`;
        text = { ...text, content: text.content ? `${text.content}\n${link}` : link };
      }
    } else {
      text = this.toDiscord(msg.body, msg.formattedBody, guild, await this.mayPingEveryone(msg.portal.roomId, msg.sender.userId, msg.body, msg.formattedBody));
    }
    const quote = this.replyPrefix(msg, guild);
    const content = quote + (msg.msgtype === 'm.emote' ? emote(text.content) : text.content);
    const chunks = splitMessage(content);
    if (chunks.length === 0 && files.length === 0) return {};
    const mentions = allowedMentions(text);
    const where = threadId ?? chat.channelId;
    // a retry after a failure part-way through a long message goes on from the part that failed
    const key = `${msg.eventId}\u0000${msg.portal.remoteChat}`;
    const ids: string[] = this.partlySent.get(key) ?? [];
    this.partlySent.delete(key);
    try {
      for (let i = ids.length; i < Math.max(chunks.length, 1); i++) {
        const first = i === 0 && files.length > 0;
        const sent: APIMessage = await this.webhooks!.execute(chat.channelId, threadId, {
          ...identity, allowed_mentions: mentions, ...(chunks[i] ? { content: chunks[i] } : {}),
          ...(first ? { attachments: files.map((f, k) => ({ id: k, filename: f.name })) } : {}),
        }, first ? files : []);
        ids.push(messageRef(msg.portal.remoteChat, where, sent.id));
        if (i === 0 && quote) this.store!.setReplyQuote(msg.portal.remoteChat, ids[0]!, quote);
      }
    } catch (err) {
      if (ids.length) {
        this.partlySent.set(key, ids);
        ctx.log.warn('a long Matrix message reached Discord only in part; a retry sends the rest', { eventId: msg.eventId, sent: ids.length, of: chunks.length });
      }
      throw toDeliveryError(err, 'message');
    }
    return { remoteIds: ids };
  }

  /** The file behind a Matrix media URL, or undefined when it is bigger than Discord takes. */
  private async fetchMedia(url: string, size: number | undefined): Promise<Buffer | undefined> {
    const limit = this.cfg.uploadLimitBytes;
    if (size !== undefined && size > limit) return undefined;
    try {
      const got = await download(url, limit);
      return 'tooBig' in got ? undefined : got.data;
    } catch (err) {
      throw new DeliveryError(`could not fetch the file from the Matrix media repository: ${(err as Error).message}`, false, { cause: err });
    }
  }

  async handleMatrixEdit(edit: MatrixEdit): Promise<void> {
    const chat = this.chatOf(edit.portal.remoteChat);
    const guild = this.textChannel(chat.channelId).guild;
    const targets = edit.target.remoteIds.filter((id) => !parseReactionRef(id)).map((id) => parseMessageRef(edit.portal.remoteChat, id));
    if (targets.length === 0 || targets.some((t) => !t)) return;
    const text = this.toDiscord(edit.body, edit.formattedBody, guild,
      await this.mayPingEveryone(edit.portal.roomId, edit.sender.userId, edit.body, edit.formattedBody));
    if (text.content.trim() === '') return; // Discord has no empty messages; a redaction removes one
    // a reply keeps the quote it was sent with
    const first = edit.target.remoteIds.find((id) => !parseReactionRef(id));
    const quote = first ? this.store!.replyQuote(edit.portal.remoteChat, first) ?? '' : '';
    const chunks = splitMessage(quote + text.content);
    const mentions = allowedMentions(text);
    try {
      for (const [i, t] of targets.entries()) {
        if (!t) continue;
        if (i < chunks.length) {
          // the message keeps its number of parts: the last one takes what is left, cut with a mark if too long
          const rest = i === targets.length - 1 ? chunks.slice(i).join('\n') : chunks[i]!;
          const content = rest.length > 2000 ? `${rest.slice(0, 1999)}…` : rest;
          await this.webhooks!.edit(t.parentId, t.threadId, t.messageId, { content, allowed_mentions: mentions });
        } else {
          this.noteDeleted(t.messageId);
          await this.webhooks!.delete(t.parentId, t.threadId, t.messageId);
        }
      }
    } catch (err) {
      if (discordCode(err) === UNKNOWN_MESSAGE) {
        throw new DeliveryError('the Discord message can no longer be edited (it was deleted, or sent before its webhook was replaced)', true, { cause: err });
      }
      throw toDeliveryError(err, 'edit');
    }
  }

  async handleMatrixRedaction(r: MatrixRedaction): Promise<void> {
    const client = this.requireClient();
    for (const id of r.target.remoteIds) {
      const reaction = parseReactionRef(id);
      if (reaction) {
        await this.removeReaction(r.portal.remoteChat, r.target.eventId, reaction.message, reaction.emoji);
        continue;
      }
      const t = parseMessageRef(r.portal.remoteChat, id);
      if (!t) continue;
      this.noteDeleted(t.messageId);
      try {
        await this.webhooks!.delete(t.parentId, t.threadId, t.messageId);
      } catch (err) {
        if (discordCode(err) !== UNKNOWN_MESSAGE) throw toDeliveryError(err, 'deletion');
        // not from the current webhook: the bot may delete it if one of the bridge's older webhooks posted it
        const m = await client.rest.get(Routes.channelMessage(t.channelId, t.messageId)).catch(() => undefined) as APIMessage | undefined;
        if (!m) continue; // already gone
        if (!this.webhooks!.isOurs(m.webhook_id)) {
          throw new DeliveryError('only messages sent from Matrix can be deleted on Discord from here', true);
        }
        await client.rest.delete(Routes.channelMessage(t.channelId, t.messageId)).catch((e: unknown) => { throw toDeliveryError(e, 'deletion'); });
      }
    }
  }

  async handleMatrixReaction(reaction: MatrixReaction): Promise<SendResult> {
    const client = this.requireClient();
    const targetId = reaction.target.remoteIds.find((id) => !parseReactionRef(id));
    const t = targetId ? parseMessageRef(reaction.portal.remoteChat, targetId) : undefined;
    if (!targetId || !t) return {};
    let emoji = reaction.key;
    if (emoji.startsWith('mxc://')) {
      const e = this.emojis!.byMxc(emoji);
      if (!e) return {}; // a Matrix custom emoji Discord does not have
      emoji = `${e.animated ? 'a:' : ''}${e.name}:${e.id}`;
    }
    try {
      await client.rest.put(Routes.channelMessageOwnReaction(t.channelId, t.messageId, encodeURIComponent(emoji)));
    } catch (err) {
      // reactions are decoration: one Discord cannot show is logged, not reported as a failed delivery
      if (discordCode(err) === UNKNOWN_EMOJI || discordCode(err) === UNKNOWN_MESSAGE) {
        this.ctx!.log.info('Matrix reaction not bridged: Discord does not know the emoji or the message', { key: reaction.key, code: discordCode(err) });
        return {};
      }
      throw toDeliveryError(err, 'reaction');
    }
    this.store!.addReaction(reaction.eventId, reaction.portal.remoteChat, targetId, emoji);
    return { remoteIds: [reactionRef(targetId, emoji)] };
  }

  private async removeReaction(chat: string, eventId: string, target: string, emoji: string): Promise<void> {
    const remaining = this.store!.removeReaction(eventId, chat, target, emoji);
    if (remaining > 0) return; // other Matrix users still react with it: the bot's reaction stays
    const t = parseMessageRef(chat, target);
    if (!t) return;
    try {
      await this.requireClient().rest.delete(Routes.channelMessageOwnReaction(t.channelId, t.messageId, encodeURIComponent(emoji)));
    } catch (err) {
      if (discordCode(err) !== UNKNOWN_MESSAGE) throw toDeliveryError(err, 'reaction removal');
    }
  }

  async handleMatrixTyping(typing: MatrixTyping): Promise<void> {
    if (!typing.typing || !this.client) return;
    const chat = parseChat(typing.portal.remoteChat);
    if (!chat) return;
    const where = chat.threadId ?? chat.channelId;
    const last = this.typingAt.get(where) ?? 0;
    if (Date.now() - last < TYPING_EVERY_MS) return;
    this.typingAt.set(where, Date.now());
    await this.client.rest.post(Routes.channelTyping(where));
  }

  // ------------------------------------------------------------------ portals and links

  /** The bridgeable text channel `channelId` of guild `guildId`, or an error saying why not. */
  private bridgeableChannel(guildId: string, channelId: string): GuildTextBasedChannel {
    const client = this.client;
    if (!client) throw new Error('the bridge is not connected to Discord right now; try again in a minute');
    if (this.cfg.guilds.length && !this.cfg.guilds.includes(guildId)) throw new Error('that Discord server is not enabled in the bridge config');
    const guild = client.guilds.cache.get(guildId);
    if (!guild) throw new Error('the bridge bot is not in that Discord server (invite it first)');
    const ch = guild.channels.cache.get(channelId);
    if (!ch || (ch.type !== ChannelType.GuildText && ch.type !== ChannelType.GuildAnnouncement)) {
      throw new Error('that server has no text channel with that id');
    }
    const me = guild.members.me;
    const perms = me ? ch.permissionsFor(me) : null;
    if (!perms?.has(PermissionFlagsBits.ViewChannel)) throw new Error(`the bridge bot cannot see #${ch.name}`);
    if (!perms.has(PermissionFlagsBits.ManageWebhooks)) {
      throw new Error(`the bridge bot needs the Manage Webhooks permission in #${ch.name} to speak for Matrix users`);
    }
    return ch;
  }

  private withinRoomLimit(chat: string): boolean {
    if (!this.cfg.roomLimit) return true;
    const chats = new Set(this.ctx!.portals.all().map((p) => p.remoteChat));
    return chats.has(chat) || chats.size < this.cfg.roomLimit;
  }

  /** Check a link request (`<server id> <channel id>`) and build it; throws what the Matrix user should hear. */
  private async prepareAsk(roomId: string, target: string, userId: string, answer: (text: string) => Promise<void>): Promise<LinkAsk> {
    const t = parseLinkTarget(target);
    if (!t) throw new Error('say which server and channel, like <server id> <channel id> (Discord ids: enable Developer Mode, right-click → Copy ID)');
    const channel = this.bridgeableChannel(t.guildId, t.channelId);
    const chat = channelChat(channel.id);
    if (this.ctx!.portals.forRoom(roomId).some((p) => p.remoteChat === chat)) throw new Error(`this room is already linked to #${channel.name}`);
    if (this.approvals!.waiting(roomId, channel.id)) throw new Error(`this room already waits for #${channel.name} to approve`);
    if (!this.withinRoomLimit(chat)) throw new Error(`the bridge already bridges its limit of ${this.cfg.roomLimit} Discord channels`);
    return { channel, roomId, roomLabel: await this.roomLabel(roomId), userId, answer };
  }

  /** How a room is called on Discord: its name or alias when the bridge can read them, else its id. */
  private async roomLabel(roomId: string): Promise<string> {
    const m = this.matrix;
    if (!m) return roomId;
    const name = await m.getState<{ name?: string }>(roomId, 'm.room.name').catch(() => undefined);
    const alias = await m.getState<{ alias?: string }>(roomId, 'm.room.canonical_alias').catch(() => undefined);
    return [name?.name, alias?.alias].filter(Boolean).join(' ') || roomId;
  }

  /** `!discord link <server> <channel>`: ask the channel; the room is linked when someone there approves. */
  private async linkCommand(inv: CommandInvocation): Promise<string> {
    return this.approvals!.ask(await this.prepareAsk(inv.roomId, inv.args['channel']!, inv.sender, inv.reply));
  }

  /**
   * `!trestle link discord ...` and the provisioning API: Discord channels are linked only with their
   * approval, so this asks the channel and refuses the immediate link, saying so; the room is linked
   * when they approve (and the requester told in the room, or in their admin room).
   */
  async provisionLink(req: { roomId: string; remoteChat: string; userId: string }): Promise<{ remoteChat: string; name?: string }> {
    const ask = await this.prepareAsk(req.roomId, req.remoteChat, req.userId, (text) => this.announce(req.roomId, req.userId, text));
    const said = await this.approvals!.ask(ask);
    throw new Error(`the Discord channel has to approve first. ${said} This room is linked when they do.`);
  }

  /** Link an approved request; returns what to tell the Matrix side. */
  private async linkApproved(ask: LinkAsk, approver: string): Promise<string> {
    const ctx = this.ctx!;
    const chat = channelChat(ask.channel.id);
    if (!this.withinRoomLimit(chat)) throw new Error(`the bridge already bridges its limit of ${this.cfg.roomLimit} Discord channels`);
    // asked through the provisioning API, the bot may not be in the room yet
    await this.matrix?.join(ask.roomId).catch((err: unknown) => ctx.log.info('could not join a newly linked room', { roomId: ask.roomId, err: err as Error }));
    const portal = ctx.portals.link(ask.roomId, chat, { kind: 'plumbed', name: `#${ask.channel.name}` });
    this.store!.setLinkedBy(ask.roomId, chat, ask.userId);
    await this.portalLinked(portal).catch((err: unknown) => ctx.log.warn('could not sync a new link', { chat, err: err as Error }));
    ctx.log.info('linked a room to a Discord channel after approval', { roomId: ask.roomId, chat, approver });
    return `Linked this room to discord ${chat} (#${ask.channel.name} in ${ask.channel.guild.name}), approved on Discord by ${approver}.`;
  }

  /** Say something in a room (a notice from the bot), or to the user in their admin room when the bridge cannot reach rooms itself. */
  private async announce(roomId: string, userId: string, text: string): Promise<void> {
    if (this.matrix) await this.matrix.notice(roomId, text);
    else await this.ctx!.notifyUser(userId, text);
  }

  /** A room was linked: members' power levels (from their roles) reach it at once; a portal room joins its server's space. */
  async portalLinked(portal: PortalInfo): Promise<void> {
    const chat = parseChat(portal.remoteChat);
    const ch = chat ? this.client?.channels.cache.get(chat.channelId) : undefined;
    if (!ch || ch.isDMBased()) return;
    await this.fromDiscord!.syncPowers(portal.remoteChat, ch.guild);
    await this.guilds!.portalLinked(ch.guild, portal);
  }

  async provisionUnlink(req: { roomId: string; remoteChat: string }): Promise<void> {
    this.store!.removeLink(req.roomId, req.remoteChat);
  }

  async portalForAlias(localpart: string): Promise<{ remoteChat: string; name?: string; topic?: string } | undefined> {
    const p = parseAliasLocalpart(localpart, this.identity.aliasPrefix);
    if (!p) return undefined;
    let ch: GuildTextBasedChannel;
    try {
      ch = this.bridgeableChannel(p.guildId, p.channelId);
    } catch (err) {
      this.ctx!.log.info('no portal for an alias', { localpart, why: (err as Error).message });
      return undefined;
    }
    const chat = channelChat(ch.id);
    if (!this.withinRoomLimit(chat)) return undefined;
    const topic = 'topic' in ch && typeof ch.topic === 'string' && ch.topic ? ch.topic : undefined;
    return { remoteChat: chat, name: portalRoomName(ch.name, ch.guild.name), ...(topic ? { topic } : {}) };
  }

  private listChannels(): string {
    const client = this.client;
    if (!client) return 'The bridge is not connected to Discord right now.';
    const lines: string[] = [];
    for (const guild of client.guilds.cache.values()) {
      if (this.cfg.guilds.length && !this.cfg.guilds.includes(guild.id)) continue;
      lines.push(`${guild.name} (${guild.id}):`);
      for (const ch of guild.channels.cache.values()) {
        if (ch.type !== ChannelType.GuildText && ch.type !== ChannelType.GuildAnnouncement) continue;
        lines.push(`  #${ch.name}: #${aliasLocalpart(this.identity.aliasPrefix, guild.id, ch.id)}:${this.ctx!.domain}`);
        if (lines.length >= 60) return [...lines, '  …'].join('\n');
      }
    }
    return lines.length ? lines.join('\n') : 'The bridge bot is in no Discord server yet.';
  }

  // ------------------------------------------------------------------ room metadata and members

  async handleMatrixRoomMeta(meta: MatrixRoomMeta): Promise<void> {
    await this.guilds!.roomMetaFromMatrix(meta);
  }

  /**
   * A Matrix user joining a portal room is invited to its server's space; a Matrix kick or ban of a
   * Discord user's ghost kicks or bans them on Discord where the bot may (else they are told why not).
   */
  async handleMatrixMembership(change: MatrixMembership): Promise<void> {
    const c = parseChat(change.portal.remoteChat);
    const ch = c ? this.client?.channels.cache.get(c.channelId) : undefined;
    if (!ch || ch.isDMBased()) return;
    const guild = ch.guild;
    if (change.membership === 'join') {
      if (change.portal.kind === 'portal' && !change.target.ghostOf) await this.guilds!.inviteToSpace(guild, change.target.userId);
      return;
    }
    if (change.membership !== 'kick' && change.membership !== 'ban') return;
    const target = this.remoteUserOf(change.target.userId);
    if (!target) return; // a Matrix user: nobody on Discord to remove
    if (target.kind === 'webhook') {
      throw new DeliveryError(`${target.name} posts through a webhook on Discord: there is no member to ${change.membership}`, true);
    }
    // gone from this chat's rooms already: Discord's echo of the kick or ban reaches only the server's other chats
    this.store!.removeChatMember(change.portal.remoteChat, target.userId);
    await applyMatrixRemoval(guild, target.userId, change);
  }

  /** A member left a server, or was kicked or banned: their ghost leaves, or is kicked or banned from, the rooms it is in. */
  private async reportDeparture(guild: Guild, user: User, member: GuildMember | PartialGuildMember | undefined, d: Departure): Promise<void> {
    const client = this.client;
    if (!client || user.id === client.user?.id) return;
    const chats = this.store!.chatsOfMember(user.id).filter((chat) => {
      const c = parseChat(chat);
      const ch = c ? client.channels.cache.get(c.channelId) : undefined;
      return ch !== undefined && !ch.isDMBased() && ch.guild.id === guild.id;
    });
    if (chats.length === 0) return;
    for (const chat of chats) this.store!.removeChatMember(chat, user.id);
    let executor: string | undefined;
    if (d.executorId) {
      executor = guild.members.cache.get(d.executorId)?.displayName
        ?? (await client.users.fetch(d.executorId).then((u) => u.globalName ?? u.username, () => undefined));
    }
    const reason = departureReason(d, executor);
    await this.fromDiscord!.reportMembership(chats, { user: this.fromDiscord!.userSender(user, member), membership: d.kind, ...(reason ? { reason } : {}) });
    if (d.kind === 'ban') this.ctx!.kv.set(`banned:${guild.id}:${user.id}`, JSON.stringify(chats));
  }

  /** A ban was lifted on Discord: lift the ghost's bans from the rooms it was banned in (needs the matrix section). */
  private async unbanGhost(guild: Guild, userId: string): Promise<void> {
    const ctx = this.ctx!;
    const key = `banned:${guild.id}:${userId}`;
    const chats = JSON.parse(ctx.kv.get(key) ?? '[]') as string[];
    if (chats.length === 0) return;
    if (!this.matrix) {
      ctx.log.info('a Discord ban was lifted; the ghost stays banned on Matrix (no matrix section to unban it with)', { guildId: guild.id, userId });
      return;
    }
    const ghost = ctx.ghostUserId(userId);
    for (const chat of chats) for (const p of ctx.portals.forChat(chat)) await this.matrix.unban(p.roomId, ghost).catch((err: unknown) => ctx.log.warn('could not unban a ghost', { roomId: p.roomId, err: err as Error }));
    ctx.kv.delete(key);
  }
}

export { discordConfigSchema };
