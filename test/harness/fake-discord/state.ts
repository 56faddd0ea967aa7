/**
 * The fake's world: users, guilds, channels, threads, members, roles, emojis, messages, reactions,
 * webhooks and uploaded files, and the gateway events each change causes. Both sides change it:
 * REST handlers on behalf of the bot, and test helpers on behalf of humans ("alice typed this").
 * Nothing here knows about HTTP or sockets; events go out through an {@link EventSink}.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  ApplicationFlags, AuditLogEvent, ChannelType, PermissionFlagsBits as P, StickerType, type APIAuditLogEntry, type APISticker,
  type StickerFormatType, GatewayDispatchEvents as E, GatewayIntentBits as I, GuildDefaultMessageNotifications,
  GuildExplicitContentFilter, GuildMFALevel, GuildNSFWLevel, GuildPremiumTier, GuildSystemChannelFlags,
  GuildVerificationLevel, Locale, MessageFlags, MessageReferenceType, MessageType, ThreadAutoArchiveDuration, WebhookType,
  type APIAttachment, type APIEmbed, type APIEmoji, type APIGuild, type APIGuildCategoryChannel, type APIGuildMember,
  type APIMessage, type APIMessageTopLevelComponent, type APIOverwrite, type APIPoll, type APINewsChannel, type APIPartialEmoji, type APIReaction,
  type APIRole, type APITextChannel, type APIThreadChannel, type APIUser, type APIWebhook, type ChannelFlags, type GuildMemberFlags,
  type RoleFlags, type UserFlags,
  type GatewayGuildCreateDispatchData, type GatewayMessageCreateDispatchData, type ThreadChannelType,
  ActivityType, type GatewayActivity, type GatewayPresenceUpdate, type GatewayPresenceUpdateDispatchData, type PresenceUpdateReceiveStatus,
} from 'discord-api-types/v10';
import { ApiError, type EventSink, type FakeSettings, type UploadedFile } from './common.js';
import { SnowflakeFactory } from './snowflake.js';

export type GuildThread = APIThreadChannel & { guild_id: string };
export type GuildChannel = ((APITextChannel | APINewsChannel | APIGuildCategoryChannel) & { guild_id: string }) | GuildThread;
export type ChannelKind = ChannelType.GuildText | ChannelType.GuildAnnouncement | ChannelType.GuildCategory | ThreadChannelType;

/** A member's new presence, for {@link World.presence}. */
export interface PresenceChange {
  status: `${PresenceUpdateReceiveStatus}`;
  /** Text of a custom status (an activity of type Custom). */
  customStatus?: string;
  customEmoji?: { name: string; id?: string; animated?: boolean };
  /** Other activities (games, music...), as Discord sends them. */
  activities?: GatewayActivity[];
  /** Which client the member is on (client_status); default desktop. */
  platform?: 'desktop' | 'mobile' | 'web';
}

export interface GuildRecord {
  /** Roles and emojis live in `guild.roles` / `guild.emojis`. */
  guild: APIGuild;
  channelIds: Set<string>;
  members: Map<string, APIGuildMember>;
  /** Banned user id → the ban's reason. */
  bans: Map<string, { user: APIUser; reason: string | null }>;
  /** Oldest first. */
  auditLog: APIAuditLogEntry[];
  /** Members whose status is not offline → their last presence (GUILD_CREATE lists only these, as Discord does). */
  presences: Map<string, GatewayPresenceUpdate>;
}

/** Who did a moderation action and why (the `X-Audit-Log-Reason` of a REST request). */
export interface ModAction { by?: string; reason?: string }

export interface StoredMessage {
  msg: APIMessage;
  guildId: string | undefined;
  /** Emoji key (unicode text, or custom emoji id) → who reacted. */
  reactions: Map<string, { emoji: APIPartialEmoji; users: Set<string> }>;
}

export type StoredWebhook = APIWebhook & { token: string; channel_id: string };

export interface NewMessage {
  channelId: string;
  author: APIUser;
  content?: string;
  embeds?: APIEmbed[];
  components?: APIMessageTopLevelComponent[];
  files?: UploadedFile[];
  /** Per-file metadata from the request's `attachments` (matched to files by index id). */
  attachmentMeta?: { id: string | number; description?: string }[];
  webhookId?: string;
  replyTo?: string;
  nonce?: string | number;
  /** Ids of stickers (of the guild, see addSticker) the message holds. */
  stickerIds?: string[];
  poll?: APIPoll;
  /** A message type other than Default/Reply (e.g. a poll's result), with the message it refers to. */
  system?: { type: MessageType; refersTo: string };
  /** A forward: the message (of any channel) whose snapshot this one carries, content-less itself. */
  forwardOf?: string;
}

const EVERYONE_PERMISSIONS = '1071698660929'; // view, send, read history, reactions, embeds, attach, ...
const ALL_PERMISSIONS = (1n << 53n) - 1n;
const MAX_WEBHOOKS_PER_CHANNEL = 15;

export class World {
  readonly ids = new SnowflakeFactory();
  readonly users = new Map<string, APIUser>();
  readonly guilds = new Map<string, GuildRecord>();
  readonly channels = new Map<string, GuildChannel>();
  readonly messages = new Map<string, StoredMessage>();
  readonly webhooks = new Map<string, StoredWebhook>();
  /** CDN path (without extension for avatars/emojis) → bytes. */
  readonly files = new Map<string, { data: Buffer; contentType: string }>();
  readonly bot: APIUser;
  /** Set by the server on start; attachment URLs are built from it. */
  cdnUrl = '';
  /** Set by the server on start; webhook URLs are built from it. */
  apiUrl = '';

  constructor(private readonly settings: FakeSettings, private readonly events: EventSink, botUsername: string) {
    this.bot = this.addUser({ username: botUsername, bot: true });
  }

  /** READY's `application`: the flags say which privileged intents the portal allows (as real Discord does). */
  application(): { id: string; flags: ApplicationFlags } {
    let flags = 0;
    if (this.settings.messageContentIntent) flags |= ApplicationFlags.GatewayMessageContentLimited;
    if (this.settings.guildMembersIntent) flags |= ApplicationFlags.GatewayGuildMembersLimited;
    if (this.settings.presenceIntent) flags |= ApplicationFlags.GatewayPresenceLimited;
    return { id: this.bot.id, flags };
  }

  // ---------- setup ----------

  addUser(opts: { username: string; globalName?: string | null; bot?: boolean; avatar?: UploadedFile; id?: string }): APIUser {
    const id = opts.id ?? this.ids.next();
    const user: APIUser = {
      id, username: opts.username, discriminator: '0', global_name: opts.globalName ?? null,
      avatar: opts.avatar ? this.storeImage((hash) => `/avatars/${id}/${hash}`, opts.avatar) : null, public_flags: 0 as UserFlags, flags: 0 as UserFlags,
      ...(opts.bot ? { bot: true } : {}),
    };
    this.users.set(id, user);
    return user;
  }

  /** A guild the bot is in (with an @everyone role whose id is the guild id, and an admin role for the bot). */
  addGuild(opts: { name: string; ownerId?: string; id?: string }): GuildRecord {
    const id = opts.id ?? this.ids.next();
    const guild: APIGuild = {
      id, name: opts.name, icon: null, splash: null, discovery_splash: null, banner: null, description: null,
      owner_id: opts.ownerId ?? this.bot.id, afk_channel_id: null, afk_timeout: 300, widget_enabled: false,
      verification_level: GuildVerificationLevel.None, default_message_notifications: GuildDefaultMessageNotifications.AllMessages,
      explicit_content_filter: GuildExplicitContentFilter.Disabled, mfa_level: GuildMFALevel.None, nsfw_level: GuildNSFWLevel.Default,
      features: [], application_id: null, system_channel_id: null, system_channel_flags: GuildSystemChannelFlags.SuppressJoinNotifications,
      rules_channel_id: null, vanity_url_code: null, premium_tier: GuildPremiumTier.None, premium_subscription_count: 0,
      preferred_locale: Locale.EnglishUS, public_updates_channel_id: null, premium_progress_bar_enabled: false, hub_type: null,
      safety_alerts_channel_id: null, incidents_data: null, stickers: [], emojis: [],
      roles: [makeRole(id, '@everyone', 0, EVERYONE_PERMISSIONS)],
    };
    const rec: GuildRecord = { guild, channelIds: new Set(), members: new Map(), bans: new Map(), auditLog: [], presences: new Map() };
    this.guilds.set(id, rec);
    const botRole = makeRole(this.ids.next(), 'bridge-bot', 1, '8'); // Administrator: permission checks pass
    guild.roles.push(botRole);
    this.putMember(rec, this.bot.id, { roles: [botRole.id] });
    this.events.dispatch(E.GuildCreate, this.guildCreatePayload(rec, 0), 0, (_d, intents, large) => this.guildCreatePayload(rec, intents, large));
    return rec;
  }

  addMember(guildId: string, userId: string, opts: { roles?: string[]; nick?: string | null } = {}): APIGuildMember {
    const rec = this.guildRecord(guildId);
    const member = this.putMember(rec, userId, opts);
    this.events.dispatch(E.GuildMemberAdd, { ...member, guild_id: guildId }, I.GuildMembers);
    return member;
  }

  /** A member's roles or nickname change (a moderator gives or takes a role): GUILD_MEMBER_UPDATE with the whole member. */
  updateMember(guildId: string, userId: string, patch: { roles?: string[]; nick?: string | null }): APIGuildMember {
    const rec = this.guildRecord(guildId);
    const member = rec.members.get(userId);
    if (!member) throw new ApiError(404, 10007, 'Unknown Member', userId);
    if (patch.roles !== undefined) {
      const unknown = patch.roles.find((id) => !rec.guild.roles.some((r) => r.id === id));
      if (unknown) throw new ApiError(404, 10011, 'Unknown Role', unknown);
      member.roles = [...patch.roles];
    }
    if (patch.nick !== undefined) member.nick = patch.nick;
    this.events.dispatch(E.GuildMemberUpdate, { ...member, user: member.user!, avatar: member.avatar ?? null, banner: member.banner ?? null, joined_at: member.joined_at ?? null, guild_id: guildId }, I.GuildMembers);
    return member;
  }

  addRole(guildId: string, opts: { name: string; permissions?: string; color?: number; mentionable?: boolean }): APIRole {
    const rec = this.guildRecord(guildId);
    const role = makeRole(this.ids.next(), opts.name, rec.guild.roles.length, opts.permissions ?? '0', opts.color, opts.mentionable);
    rec.guild.roles.push(role);
    this.events.dispatch(E.GuildRoleCreate, { guild_id: guildId, role }, I.Guilds);
    return role;
  }

  addEmoji(guildId: string, opts: { name: string; animated?: boolean; image?: UploadedFile }): APIEmoji {
    const rec = this.guildRecord(guildId);
    const id = this.ids.next();
    const emoji: APIEmoji = { id, name: opts.name, animated: opts.animated ?? false, roles: [], require_colons: true,
      managed: false, available: true };
    if (opts.image) this.storeImage(() => `/emojis/${id}`, opts.image);
    rec.guild.emojis.push(emoji);
    this.events.dispatch(E.GuildEmojisUpdate, { guild_id: guildId, emojis: rec.guild.emojis }, I.GuildExpressions);
    return emoji;
  }

  /** A guild sticker; `image` (PNG/APNG/GIF formats) is served at `${cdnUrl}/stickers/<id>.<any extension>`. */
  addSticker(guildId: string, opts: { name: string; formatType: StickerFormatType; image?: UploadedFile }): APISticker {
    const rec = this.guildRecord(guildId);
    const id = this.ids.next();
    const sticker: APISticker = { id, name: opts.name, description: null, tags: opts.name, type: StickerType.Guild,
      format_type: opts.formatType, available: true, guild_id: guildId };
    if (opts.image) this.storeImage(() => `/stickers/${id}`, opts.image);
    rec.guild.stickers = [...(rec.guild.stickers ?? []), sticker];
    this.events.dispatch(E.GuildStickersUpdate, { guild_id: guildId, stickers: rec.guild.stickers }, I.GuildExpressions);
    return sticker;
  }

  /** The guild's name or icon changes (an icon is stored under its hash, as Discord's CDN serves it): GUILD_UPDATE. */
  updateGuild(guildId: string, patch: { name?: string; icon?: UploadedFile | null }): APIGuild {
    const { guild } = this.guildRecord(guildId);
    if (patch.name !== undefined) guild.name = patch.name;
    if (patch.icon !== undefined) guild.icon = patch.icon ? this.storeImage((hash) => `/icons/${guildId}/${hash}`, patch.icon) : null;
    this.events.dispatch(E.GuildUpdate, guild, I.Guilds);
    return guild;
  }

  /** A role's permissions (or name) change: GUILD_ROLE_UPDATE. */
  updateRole(guildId: string, roleId: string, patch: { name?: string; permissions?: string }): APIRole {
    const role = this.guildRecord(guildId).guild.roles.find((r) => r.id === roleId);
    if (!role) throw new ApiError(404, 10011, 'Unknown Role', roleId);
    if (patch.name !== undefined) role.name = patch.name;
    if (patch.permissions !== undefined) role.permissions = patch.permissions;
    this.events.dispatch(E.GuildRoleUpdate, { guild_id: guildId, role }, I.Guilds);
    return role;
  }

  /** A member's guild permissions: everything for the owner or an Administrator, else the union of their roles'. */
  permissions(guildId: string, userId: string): bigint {
    const rec = this.guildRecord(guildId);
    if (rec.guild.owner_id === userId) return ALL_PERMISSIONS;
    const member = rec.members.get(userId);
    if (!member) return 0n;
    let bits = 0n;
    for (const r of rec.guild.roles) if (r.id === guildId || member.roles.includes(r.id)) bits |= BigInt(r.permissions);
    return bits & P.Administrator ? ALL_PERMISSIONS : bits;
  }

  /** Throws Discord's 403 Missing Permissions unless `userId` has `bit` in the guild. */
  requirePermission(guildId: string, userId: string, bit: bigint): void {
    if (!(this.permissions(guildId, userId) & bit)) throw new ApiError(403, 50013, 'Missing Permissions');
  }

  /**
   * A member leaves, is kicked or is banned, with the gateway events in Discord's order: GUILD_BAN_ADD
   * (a ban), GUILD_MEMBER_REMOVE, then the audit-log entry of a kick or ban (sent only to bots that
   * may view the audit log). A ban needs no membership (users can be banned ahead of time).
   */
  removeMember(guildId: string, userId: string, how: 'leave' | 'kick' | 'ban', act: ModAction = {}): void {
    const rec = this.guildRecord(guildId);
    const user = this.user(userId);
    const member = rec.members.get(userId);
    if (how !== 'ban' && !member) throw new ApiError(404, 10007, 'Unknown Member', userId);
    if (how === 'ban') {
      rec.bans.set(userId, { user, reason: act.reason ?? null });
      this.events.dispatch(E.GuildBanAdd, { guild_id: guildId, user }, I.GuildModeration);
    }
    if (member) {
      rec.members.delete(userId);
      rec.presences.delete(userId);
      this.events.dispatch(E.GuildMemberRemove, { guild_id: guildId, user }, I.GuildMembers);
    }
    if (how === 'kick') this.audit(guildId, AuditLogEvent.MemberKick, userId, act);
    if (how === 'ban') this.audit(guildId, AuditLogEvent.MemberBanAdd, userId, act);
  }

  /** A ban is lifted: GUILD_BAN_REMOVE and its audit-log entry. */
  unban(guildId: string, userId: string, act: ModAction = {}): void {
    const rec = this.guildRecord(guildId);
    const ban = rec.bans.get(userId);
    if (!ban) throw new ApiError(404, 10026, 'Unknown Ban', userId);
    rec.bans.delete(userId);
    this.events.dispatch(E.GuildBanRemove, { guild_id: guildId, user: ban.user }, I.GuildModeration);
    this.audit(guildId, AuditLogEvent.MemberBanRemove, userId, act);
  }

  private audit(guildId: string, action: AuditLogEvent, targetId: string, act: ModAction): void {
    const entry: APIAuditLogEntry = { id: this.ids.next(), action_type: action, target_id: targetId, user_id: act.by ?? null, changes: [],
      ...(act.reason ? { reason: act.reason } : {}) };
    this.guildRecord(guildId).auditLog.push(entry);
    if (!(this.permissions(guildId, this.bot.id) & P.ViewAuditLog)) return; // Discord sends it only to those who may see the log
    this.events.dispatch(E.GuildAuditLogEntryCreate, { ...entry, guild_id: guildId }, I.GuildModeration);
  }

  /**
   * `permissionOverwrites`: the channel's own allow/deny per role or member, as Discord keeps them on the
   * channel object (`permission_overwrites`; the @everyone role's id is the guild id). The fake's own
   * permission checks (the bot's REST calls) look at guild permissions only; clients compute the rest.
   */
  addChannel(guildId: string, opts: { name: string; type?: ChannelKind; parentId?: string | null; topic?: string | null;
    ownerId?: string; id?: string; permissionOverwrites?: APIOverwrite[] }): GuildChannel {
    const rec = this.guildRecord(guildId);
    const type = opts.type ?? ChannelType.GuildText;
    if (isThreadType(type)) {
      if (!opts.parentId) throw new Error('fake-discord: a thread needs parentId');
      return this.createThread({ parentId: opts.parentId, name: opts.name, type, ownerId: opts.ownerId ?? this.bot.id, id: opts.id });
    }
    const base = { id: opts.id ?? this.ids.next(), guild_id: guildId, name: opts.name, position: rec.channelIds.size,
      permission_overwrites: opts.permissionOverwrites ?? [], flags: 0 as ChannelFlags };
    let channel: Exclude<GuildChannel, GuildThread>;
    if (type === ChannelType.GuildCategory) {
      channel = { ...base, type, parent_id: null } satisfies APIGuildCategoryChannel;
    } else {
      channel = { ...base, type, parent_id: opts.parentId ?? null, topic: opts.topic ?? null, nsfw: false,
        last_message_id: null, rate_limit_per_user: 0 } satisfies APITextChannel | APINewsChannel;
    }
    rec.channelIds.add(channel.id);
    this.channels.set(channel.id, channel);
    this.events.dispatch(E.ChannelCreate, channel, I.Guilds);
    return channel;
  }

  /** A thread under `parentId`; with `fromMessage` it takes that message's id, as Discord does. */
  createThread(opts: { parentId: string; name: string; type?: ThreadChannelType; ownerId: string; fromMessage?: StoredMessage;
    autoArchive?: ThreadAutoArchiveDuration; id?: string | undefined }): GuildThread {
    const parent = this.channel(opts.parentId);
    if (parent.type !== ChannelType.GuildText && parent.type !== ChannelType.GuildAnnouncement) {
      throw new ApiError(400, 50024, 'Cannot execute action on this channel type', parent.id);
    }
    if (opts.fromMessage?.msg.thread) throw new ApiError(400, 160004, 'A thread has already been created for this message');
    const guildId = parent.guild_id as string;
    const now = new Date().toISOString();
    const type = opts.type ?? (parent.type === ChannelType.GuildAnnouncement ? ChannelType.AnnouncementThread : ChannelType.PublicThread);
    const thread: GuildThread = {
      id: opts.fromMessage?.msg.id ?? opts.id ?? this.ids.next(), type, guild_id: guildId, parent_id: parent.id, name: opts.name,
      owner_id: opts.ownerId, last_message_id: null, rate_limit_per_user: 0, flags: 0 as ChannelFlags, message_count: 0, member_count: 1,
      total_message_sent: 0,
      thread_metadata: { archived: false, locked: false, auto_archive_duration: opts.autoArchive ?? ThreadAutoArchiveDuration.OneDay,
        archive_timestamp: now, create_timestamp: now, ...(type === ChannelType.PrivateThread ? { invitable: true } : {}) },
    };
    this.guildRecord(guildId).channelIds.add(thread.id);
    this.channels.set(thread.id, thread);
    if (opts.fromMessage) {
      opts.fromMessage.msg.thread = thread;
      opts.fromMessage.msg.flags = (opts.fromMessage.msg.flags ?? 0) | MessageFlags.HasThread;
    }
    const member = opts.ownerId === this.bot.id ? { member: { id: thread.id, user_id: this.bot.id, join_timestamp: now, flags: 0 } } : {};
    this.events.dispatch(E.ThreadCreate, { ...thread, ...member, newly_created: true }, I.Guilds);
    return thread;
  }

  updateChannel(channel: GuildChannel, patch: { name?: string; topic?: string | null; nsfw?: boolean; parent_id?: string | null;
    archived?: boolean; locked?: boolean }): GuildChannel {
    if (patch.name !== undefined) channel.name = patch.name;
    if (channel.type === ChannelType.GuildText || channel.type === ChannelType.GuildAnnouncement) {
      if (patch.topic !== undefined) channel.topic = patch.topic;
      if (patch.nsfw !== undefined) channel.nsfw = patch.nsfw;
      if (patch.parent_id !== undefined) channel.parent_id = patch.parent_id;
    }
    if (isThread(channel)) {
      const md = channel.thread_metadata;
      if (md && patch.archived !== undefined) { md.archived = patch.archived; md.archive_timestamp = new Date().toISOString(); }
      if (md && patch.locked !== undefined) md.locked = patch.locked;
      this.events.dispatch(E.ThreadUpdate, channel, I.Guilds);
    } else {
      this.events.dispatch(E.ChannelUpdate, channel, I.Guilds);
    }
    return channel;
  }

  /**
   * A channel or thread is deleted: CHANNEL_DELETE with the channel object (THREAD_DELETE with the
   * thread's ids, for a thread). Its threads, messages and webhooks go with it; Discord sends nothing
   * more for those (clients drop a deleted channel's threads themselves). Not modelled: the channels of
   * a deleted category, which Discord moves out of it (a CHANNEL_UPDATE each).
   */
  deleteChannel(channelId: string): void {
    const channel = this.channel(channelId);
    const guildId = channel.guild_id;
    const gone = new Set([channel.id]);
    if (!isThread(channel)) for (const c of this.channels.values()) if (isThread(c) && c.parent_id === channel.id) gone.add(c.id);
    for (const id of gone) {
      this.channels.delete(id);
      this.guilds.get(guildId)?.channelIds.delete(id);
    }
    for (const [id, m] of this.messages) if (gone.has(m.msg.channel_id)) this.messages.delete(id);
    for (const [id, w] of this.webhooks) if (gone.has(w.channel_id)) this.webhooks.delete(id);
    if (isThread(channel)) {
      this.events.dispatch(E.ThreadDelete, { id: channel.id, guild_id: guildId, parent_id: channel.parent_id as string, type: channel.type }, I.Guilds);
    } else {
      this.events.dispatch(E.ChannelDelete, channel, I.Guilds);
    }
  }

  /**
   * The bot is removed from a guild (kicked by its owner; or the guild is deleted): GUILD_DELETE without
   * `unavailable`, which is how Discord tells a removal from an outage. The guild stays for its other
   * members, but a new session's READY no longer lists it.
   */
  removeBot(guildId: string): void {
    const rec = this.guildRecord(guildId);
    rec.members.delete(this.bot.id);
    rec.presences.delete(this.bot.id);
    this.events.dispatch(E.GuildDelete, { id: guildId }, I.Guilds);
  }

  /**
   * A guild is down for a while (a Discord outage): GUILD_DELETE with `unavailable: true`; `false` ends it
   * with the guild's GUILD_CREATE, as Discord sends it when the guild is back. Only the gateway events:
   * REST keeps answering.
   */
  setGuildUnavailable(guildId: string, unavailable: boolean): void {
    const rec = this.guildRecord(guildId);
    if (unavailable) this.events.dispatch(E.GuildDelete, { id: guildId, unavailable: true }, I.Guilds);
    else this.events.dispatch(E.GuildCreate, this.guildCreatePayload(rec, 0), I.Guilds, (_d, intents, large) => this.guildCreatePayload(rec, intents, large));
  }

  // ---------- lookups (throwing Discord's errors) ----------

  guildRecord(id: string): GuildRecord {
    const rec = this.guilds.get(id);
    if (!rec) throw new ApiError(404, 10004, 'Unknown Guild', id);
    return rec;
  }

  channel(id: string): GuildChannel {
    const c = this.channels.get(id);
    if (!c) throw new ApiError(404, 10003, 'Unknown Channel', id);
    return c;
  }

  user(id: string): APIUser {
    const u = this.users.get(id);
    if (!u) throw new ApiError(404, 10013, 'Unknown User', id);
    return u;
  }

  message(id: string, channelId?: string): StoredMessage {
    const m = this.messages.get(id);
    if (!m || (channelId !== undefined && m.msg.channel_id !== channelId)) throw new ApiError(404, 10008, 'Unknown Message', id);
    return m;
  }

  webhook(id: string, token?: string): StoredWebhook {
    const w = this.webhooks.get(id);
    if (!w) throw new ApiError(404, 10015, 'Unknown Webhook', id);
    if (token !== undefined && token !== w.token) throw new ApiError(401, 50027, 'Invalid Webhook Token');
    return w;
  }

  /** Resolve an emoji as the reaction routes name it: unicode text, or `name:id` (optionally `a:name:id`). */
  emoji(text: string, guildId: string | undefined): APIPartialEmoji {
    const custom = /^(?:a:)?([\w~]+):(\d{17,19})$/.exec(text);
    if (!custom) {
      if (!text || /^[\w\s:]+$/.test(text)) throw new ApiError(400, 10014, 'Unknown Emoji', text);
      return { id: null, name: text };
    }
    const found = guildId ? this.guilds.get(guildId)?.guild.emojis.find((e) => e.id === custom[2]) : undefined;
    if (!found) throw new ApiError(400, 10014, 'Unknown Emoji', text);
    return { id: found.id, name: found.name, animated: found.animated ?? false };
  }

  // ---------- messages ----------

  private stickerItem(id: string, guildId: string | undefined): { id: string; name: string; format_type: StickerFormatType } {
    const st = guildId ? this.guilds.get(guildId)?.guild.stickers?.find((x) => x.id === id) : undefined;
    if (!st) throw new ApiError(400, 10060, 'Unknown Sticker', id);
    return { id: st.id, name: st.name, format_type: st.format_type };
  }

  /** A forward's reference (type FORWARD) and its snapshot of the original, as Discord sends them. */
  private forwardFields(id: string): Pick<APIMessage, 'message_reference' | 'message_snapshots'> {
    const { msg: o, guildId } = this.message(id);
    return {
      message_reference: { type: MessageReferenceType.Forward, message_id: o.id, channel_id: o.channel_id, ...(guildId ? { guild_id: guildId } : {}) },
      message_snapshots: [{ message: {
        type: o.type, content: o.content, embeds: o.embeds, attachments: o.attachments, timestamp: o.timestamp, edited_timestamp: o.edited_timestamp,
        flags: o.flags ?? (0 as MessageFlags), mentions: o.mentions, mention_roles: o.mention_roles, ...(o.sticker_items ? { sticker_items: o.sticker_items } : {}),
      } }],
    };
  }

  createMessage(m: NewMessage): StoredMessage {
    const channel = this.channel(m.channelId);
    if (channel.type === ChannelType.GuildCategory) throw new ApiError(400, 50008, 'Cannot send messages in a non-text channel');
    const content = m.content ?? '';
    const ref = m.replyTo ? this.message(m.replyTo) : undefined;
    const msg: APIMessage = {
      id: this.ids.next(), type: m.system?.type ?? (ref ? MessageType.Reply : MessageType.Default), channel_id: channel.id, author: m.author, content,
      timestamp: new Date().toISOString(), edited_timestamp: null, tts: false, mention_everyone: /@(everyone|here)\b/.test(content),
      mentions: this.mentionedUsers(content), mention_roles: [...content.matchAll(/<@&(\d{17,19})>/g)].map((x) => x[1] as string),
      attachments: this.storeAttachments(channel.id, m.files ?? [], m.attachmentMeta), embeds: m.embeds ?? [], pinned: false,
      flags: 0 as MessageFlags, components: m.components ?? [],
      ...(m.webhookId ? { webhook_id: m.webhookId } : {}),
      ...(m.nonce !== undefined ? { nonce: m.nonce } : {}),
      ...(m.stickerIds?.length ? { sticker_items: m.stickerIds.map((id) => this.stickerItem(id, channel.guild_id)) } : {}),
      ...(m.poll ? { poll: m.poll } : {}),
      ...(m.forwardOf ? this.forwardFields(m.forwardOf) : {}),
      ...(m.system ? { message_reference: { type: MessageReferenceType.Default, message_id: m.system.refersTo, channel_id: channel.id,
        ...(channel.guild_id ? { guild_id: channel.guild_id } : {}) } } : {}),
      ...(ref ? { message_reference: { type: MessageReferenceType.Default, message_id: ref.msg.id, channel_id: ref.msg.channel_id,
        ...(ref.guildId ? { guild_id: ref.guildId } : {}) }, referenced_message: this.wireMessage(ref) } : {}),
    };
    const stored: StoredMessage = { msg, guildId: channel.guild_id, reactions: new Map() };
    this.messages.set(msg.id, stored);
    if (isThread(channel)) {
      channel.message_count = (channel.message_count ?? 0) + 1;
      channel.total_message_sent = (channel.total_message_sent ?? 0) + 1;
    }
    channel.last_message_id = msg.id;
    this.events.dispatch(E.MessageCreate, this.gatewayMessage(stored), I.GuildMessages, (d, intents) => this.redact(d, intents));
    return stored;
  }

  editMessage(stored: StoredMessage, patch: { content?: string | null; embeds?: APIEmbed[] | null; flags?: number | null;
    components?: APIMessageTopLevelComponent[] | null; attachments?: { id: string | number }[] | null }, files: UploadedFile[] = []): StoredMessage {
    const msg = stored.msg;
    if (patch.content !== undefined) msg.content = patch.content ?? '';
    if (patch.embeds !== undefined) msg.embeds = patch.embeds ?? [];
    if (patch.components !== undefined) msg.components = patch.components ?? [];
    if (patch.flags !== undefined && patch.flags !== null) msg.flags = patch.flags;
    if (patch.attachments) {
      // Existing attachments not listed are removed; listed entries that are not existing ids describe new files.
      const keep = new Set(patch.attachments.map((a) => String(a.id)));
      msg.attachments = msg.attachments.filter((a) => keep.has(a.id));
    }
    if (files.length) msg.attachments.push(...this.storeAttachments(msg.channel_id, files, patch.attachments ?? undefined));
    msg.edited_timestamp = new Date().toISOString();
    msg.mentions = this.mentionedUsers(msg.content);
    this.events.dispatch(E.MessageUpdate, this.gatewayMessage(stored), I.GuildMessages, (d, intents) => this.redact(d, intents));
    return stored;
  }

  deleteMessage(stored: StoredMessage): void {
    this.messages.delete(stored.msg.id);
    this.events.dispatch(E.MessageDelete, { id: stored.msg.id, channel_id: stored.msg.channel_id,
      ...(stored.guildId ? { guild_id: stored.guildId } : {}) }, I.GuildMessages);
  }

  /** Returns false (and sends nothing) if the user had already reacted with this emoji. */
  addReaction(stored: StoredMessage, userId: string, emoji: APIPartialEmoji): boolean {
    const key = emoji.id ?? (emoji.name as string);
    const r = stored.reactions.get(key) ?? { emoji, users: new Set<string>() };
    stored.reactions.set(key, r);
    if (r.users.has(userId)) return false;
    r.users.add(userId);
    const member = stored.guildId ? this.guilds.get(stored.guildId)?.members.get(userId) : undefined;
    this.events.dispatch(E.MessageReactionAdd, {
      user_id: userId, channel_id: stored.msg.channel_id, message_id: stored.msg.id, emoji,
      message_author_id: stored.msg.author.id, burst: false, type: 0,
      ...(stored.guildId ? { guild_id: stored.guildId } : {}), ...(member ? { member } : {}),
    }, I.GuildMessageReactions);
    return true;
  }

  removeReaction(stored: StoredMessage, userId: string, emoji: APIPartialEmoji): boolean {
    const key = emoji.id ?? (emoji.name as string);
    const r = stored.reactions.get(key);
    if (!r?.users.delete(userId)) return false;
    if (r.users.size === 0) stored.reactions.delete(key);
    this.events.dispatch(E.MessageReactionRemove, {
      user_id: userId, channel_id: stored.msg.channel_id, message_id: stored.msg.id, emoji, burst: false, type: 0,
      ...(stored.guildId ? { guild_id: stored.guildId } : {}),
    }, I.GuildMessageReactions);
    return true;
  }

  typing(channelId: string, userId: string): void {
    const channel = this.channel(channelId);
    const member = channel.guild_id ? this.guilds.get(channel.guild_id)?.members.get(userId) : undefined;
    this.events.dispatch(E.TypingStart, { channel_id: channelId, user_id: userId, timestamp: Math.floor(Date.now() / 1000),
      ...(channel.guild_id ? { guild_id: channel.guild_id } : {}), ...(member ? { member } : {}) }, I.GuildMessageTyping);
  }

  /**
   * A member's status or activities changed: PRESENCE_UPDATE as Discord sends it (a partial user, the guild,
   * status, activities, client_status), only to sessions with the GuildPresences intent. A custom status is
   * an activity of type Custom (4) with the text in `state`. The guild remembers it for the GUILD_CREATE of
   * sessions that start later.
   */
  presence(guildId: string, userId: string, p: PresenceChange): void {
    const rec = this.guildRecord(guildId);
    if (!rec.members.has(userId)) throw new Error(`user ${userId} is not a member of guild ${guildId}`);
    const activities: GatewayActivity[] = [...(p.activities ?? [])];
    if (p.customStatus !== undefined || p.customEmoji !== undefined) {
      activities.unshift({
        id: 'custom', name: 'Custom Status', type: ActivityType.Custom, created_at: Date.now(),
        ...(p.customStatus !== undefined ? { state: p.customStatus } : {}), ...(p.customEmoji ? { emoji: p.customEmoji } : {}),
      });
    }
    const offline = p.status === 'offline';
    const d: GatewayPresenceUpdateDispatchData = {
      user: { id: userId }, guild_id: guildId, status: p.status as PresenceUpdateReceiveStatus,
      activities: offline ? [] : activities, // Discord shows nothing of someone offline
      client_status: offline ? {} : { [p.platform ?? 'desktop']: p.status },
    };
    if (offline) rec.presences.delete(userId);
    else rec.presences.set(userId, d);
    this.events.dispatch(E.PresenceUpdate, d, I.GuildPresences);
  }

  // ---------- webhooks ----------

  createWebhook(channelId: string, name: string, avatarDataUri?: string | null): StoredWebhook {
    const channel = this.channel(channelId);
    if ([...this.webhooks.values()].filter((w) => w.channel_id === channelId).length >= MAX_WEBHOOKS_PER_CHANNEL) {
      throw new ApiError(400, 30007, `Maximum number of webhooks reached (${MAX_WEBHOOKS_PER_CHANNEL})`);
    }
    const id = this.ids.next();
    const hook: StoredWebhook = {
      id, type: WebhookType.Incoming, guild_id: channel.guild_id ?? null, channel_id: channelId, name,
      avatar: avatarDataUri ? this.storeImage((hash) => `/avatars/${id}/${hash}`, decodeDataUri(avatarDataUri)) : null,
      // 68 characters like Discord's; discord.js's webhook-URL regex wants [\w-]{68}.
      token: randomBytes(51).toString('base64url'), application_id: null, user: this.bot,
    };
    this.webhooks.set(id, hook);
    this.webhooksUpdated(hook);
    return hook;
  }

  deleteWebhook(hook: StoredWebhook): void {
    this.webhooks.delete(hook.id);
    this.webhooksUpdated(hook);
  }

  /** The webhook as REST returns it (the token and URL only for whoever may know them). */
  webhookPayload(hook: StoredWebhook, withToken: boolean): APIWebhook {
    const { token, ...rest } = hook;
    return withToken ? { ...rest, token, url: `${this.apiUrl}/webhooks/${hook.id}/${token}` } : rest;
  }

  private webhooksUpdated(hook: StoredWebhook): void {
    if (hook.guild_id) this.events.dispatch(E.WebhooksUpdate, { guild_id: hook.guild_id, channel_id: hook.channel_id }, I.GuildWebhooks);
  }

  // ---------- payloads ----------

  /**
   * GUILD_CREATE as the gateway sends it when a session starts or the bot joins, to a session with `intents`:
   * `presences` holds the members who are not offline, and only for a session with the GuildPresences intent.
   * A guild of more members than the session's `largeThreshold` (IDENTIFY's `large_threshold`; discord.js
   * asks for 50) is `large`: its `members` leave the offline ones out (all but the bot, for a session
   * without the GuildPresences intent), so a member who went offline while no session was open is in
   * neither list.
   */
  guildCreatePayload(rec: GuildRecord, intents: number, largeThreshold = 50): GatewayGuildCreateDispatchData {
    const channels: GatewayGuildCreateDispatchData['channels'] = [];
    const threads: GatewayGuildCreateDispatchData['threads'] = [];
    for (const id of rec.channelIds) {
      const c = this.channels.get(id);
      if (!c) continue;
      if (isThread(c)) { if (!c.thread_metadata?.archived) threads.push(c); } else channels.push(withoutGuildId(c));
    }
    const large = rec.members.size > largeThreshold;
    const withPresences = (intents & I.GuildPresences) !== 0;
    const members = [...rec.members.values()]
      .filter((m) => !large || m.user.id === this.bot.id || (withPresences && rec.presences.has(m.user.id)));
    return {
      ...rec.guild, unavailable: false, large, joined_at: rec.members.get(this.bot.id)?.joined_at ?? new Date().toISOString(),
      member_count: rec.members.size, members, channels, threads,
      presences: intents & I.GuildPresences ? [...rec.presences.values()] : [], voice_states: [],
      stage_instances: [], guild_scheduled_events: [], soundboard_sounds: [],
    };
  }

  /** A stored message as REST returns it (reactions summarised, `me` from the bot's point of view). */
  wireMessage(stored: StoredMessage): APIMessage {
    const reactions: APIReaction[] = [...stored.reactions.values()].map((r) => ({
      emoji: r.emoji, count: r.users.size, count_details: { normal: r.users.size, burst: 0 }, me: r.users.has(this.bot.id),
      me_burst: false, burst_colors: [],
    }));
    return { ...stored.msg, ...(reactions.length ? { reactions } : {}) };
  }

  /** MESSAGE_CREATE/UPDATE: the REST shape plus guild_id, the author's member and mentioned users' members. */
  gatewayMessage(stored: StoredMessage): GatewayMessageCreateDispatchData {
    const out: GatewayMessageCreateDispatchData = { ...this.wireMessage(stored) };
    const rec = stored.guildId ? this.guilds.get(stored.guildId) : undefined;
    if (!rec) return out;
    out.guild_id = rec.guild.id;
    const author = stored.msg.webhook_id ? undefined : rec.members.get(stored.msg.author.id);
    if (author) out.member = withoutUser(author);
    out.mentions = stored.msg.mentions.map((u) => {
      const m = rec.members.get(u.id);
      return m ? { ...u, member: withoutUser(m) } : u;
    });
    return out;
  }

  /**
   * What a reader without the MessageContent intent sees, as on real Discord: content, embeds, attachments
   * and components blanked, except in messages the bot wrote or that mention it.
   */
  redact<M extends APIMessage | GatewayMessageCreateDispatchData>(msg: M, intents: number): M {
    if (intents & I.MessageContent) return msg;
    if (msg.author.id === this.bot.id || msg.mentions.some((u) => u.id === this.bot.id)) return msg;
    return { ...msg, content: '', embeds: [], attachments: [], components: [] };
  }

  // ---------- files ----------

  storeAttachments(channelId: string, files: UploadedFile[], meta?: { id: string | number; description?: string }[]): APIAttachment[] {
    return files.map((f, i) => {
      const id = this.ids.next();
      const path = `/attachments/${channelId}/${id}/${encodeURIComponent(f.name)}`;
      const contentType = f.contentType && f.contentType !== 'application/octet-stream' ? f.contentType : guessContentType(f.name);
      this.files.set(path, { data: f.data, contentType });
      const description = meta?.find((a) => String(a.id) === String(i))?.description;
      const url = `${this.cdnUrl}${path}`;
      return { id, filename: f.name, size: f.data.length, url, proxy_url: url, content_type: contentType,
        ...(description ? { description } : {}) };
    });
  }

  /** Store an image at the CDN path `pathFor(hash)` (served whatever extension is asked for); returns its hash. */
  private storeImage(pathFor: (hash: string) => string, file: UploadedFile): string {
    const hash = createHash('md5').update(file.data).digest('hex');
    this.files.set(pathFor(hash), { data: file.data, contentType: file.contentType || 'image/png' });
    return hash;
  }

  private putMember(rec: GuildRecord, userId: string, opts: { roles?: string[]; nick?: string | null }): APIGuildMember {
    const member: APIGuildMember = {
      user: this.user(userId), nick: opts.nick ?? null, avatar: null, roles: opts.roles ?? [], joined_at: new Date().toISOString(),
      premium_since: null, deaf: false, mute: false, flags: 0 as GuildMemberFlags, pending: false, communication_disabled_until: null,
    };
    rec.members.set(userId, member);
    return member;
  }

  private mentionedUsers(content: string): APIUser[] {
    const ids = new Set([...content.matchAll(/<@!?(\d{17,19})>/g)].map((x) => x[1] as string));
    return [...ids].flatMap((id) => this.users.get(id) ?? []);
  }
}

export function isThreadType(type: ChannelType): type is ThreadChannelType {
  return type === ChannelType.PublicThread || type === ChannelType.PrivateThread || type === ChannelType.AnnouncementThread;
}

export function isThread(c: GuildChannel): c is GuildThread {
  return isThreadType(c.type);
}

function makeRole(id: string, name: string, position: number, permissions: string, color = 0, mentionable = false): APIRole {
  return { id, name, color, colors: { primary_color: color, secondary_color: null, tertiary_color: null }, hoist: false, icon: null,
    unicode_emoji: null, position, permissions, managed: false, mentionable, flags: 0 as RoleFlags };
}

function withoutUser(m: APIGuildMember): Omit<APIGuildMember, 'user'> & { joined_at: string } {
  const { user: _user, ...rest } = m;
  return { ...rest, joined_at: m.joined_at ?? new Date().toISOString() };
}

/** GUILD_CREATE's channels carry no guild_id. */
function withoutGuildId<C extends GuildChannel>(c: C): C {
  const { guild_id: _g, ...rest } = c;
  return rest as C;
}

/** Discord sets an attachment's content_type itself; clients (discord.js) send octet-stream unless they sniff a type. */
const CONTENT_TYPES: Record<string, string> = {
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', mp4: 'video/mp4',
  webm: 'video/webm', mov: 'video/quicktime', mp3: 'audio/mpeg', ogg: 'audio/ogg', wav: 'audio/wav', pdf: 'application/pdf',
  txt: 'text/plain; charset=utf-8', json: 'application/json; charset=utf-8', zip: 'application/zip',
};

function guessContentType(name: string): string {
  return CONTENT_TYPES[/\.([a-z0-9]+)$/i.exec(name)?.[1]?.toLowerCase() ?? ''] ?? 'application/octet-stream';
}

function decodeDataUri(uri: string): UploadedFile {
  const m = /^data:([^;,]+)?(;base64)?,(.*)$/s.exec(uri);
  if (!m) throw new ApiError(400, 50035, 'Invalid Form Body', 'avatar is not a data URI');
  const data = m[2] ? Buffer.from(m[3] ?? '', 'base64') : Buffer.from(decodeURIComponent(m[3] ?? ''));
  return { name: 'avatar', data, contentType: m[1] ?? 'image/png' };
}
