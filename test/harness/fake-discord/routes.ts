/**
 * The REST endpoints (API v10) a bridge's discord.js client uses, as a table: method, path pattern
 * (`:name` matches one decoded segment), whether `Authorization: Bot <token>` is required, and a
 * synchronous handler. Handlers are synchronous on purpose: REST holds back the gateway events a
 * handler causes (the 'http-first' echo order) by running it inside `gateway.hold()`.
 */
import { createHash } from 'node:crypto';
import {
  ChannelType, PermissionFlagsBits, type APIApplication, type APIGuildMember, type APIMessage, type APIUser, type RESTGetAPIGatewayBotResult,
  type RESTPatchAPIChannelJSONBody, type RESTPatchAPIChannelMessageJSONBody, type RESTPatchAPIWebhookJSONBody,
  type RESTPostAPIChannelMessageJSONBody, type RESTPostAPIChannelMessagesThreadsJSONBody, type RESTPostAPIChannelThreadsJSONBody,
  type RESTPostAPIChannelWebhookJSONBody, type RESTPostAPIWebhookWithTokenJSONBody, type ThreadChannelType,
} from 'discord-api-types/v10';
import { ApiError, formError, type FakeSettings, type UploadedFile } from './common.js';
import { isThread, type StoredMessage, type World } from './state.js';

export interface RouteContext {
  params: string[];
  query: URLSearchParams;
  /** The JSON body (or a multipart request's `payload_json`); `{}` when there was none. */
  body: Record<string, unknown>;
  files: UploadedFile[];
  /** The `X-Audit-Log-Reason` header (discord.js sends a moderation reason there, URI-encoded). */
  reason?: string;
}

export interface Reply {
  status?: number;
  body?: unknown;
}

export interface Route {
  method: string;
  pattern: string;
  /** Needs `Authorization: Bot <token>`. Webhook-token routes do not (discord.js sends none there). */
  auth: boolean;
  handle(ctx: RouteContext): Reply;
}

/** One webhook execution as the bridge asked for it (including the avatar URL, which Discord hides behind a hash). */
export interface WebhookExecution {
  webhookId: string;
  channelId: string;
  threadId: string | null;
  messageId: string;
  username: string | null;
  avatarUrl: string | null;
  content: string;
  wait: boolean;
  at: number;
}

const MAX_CONTENT = 2000;

export function discordRoutes(world: World, settings: FakeSettings, webhookExecutions: WebhookExecution[], gatewayUrl: () => string): Route[] {
  const routes: Route[] = [];
  const on = (method: string, pattern: string, handle: Route['handle'], auth = true): void => {
    routes.push({ method, pattern, auth, handle });
  };
  /** REST reads of other people's messages are blanked when the portal switch is off, as on real Discord. */
  const readable = (m: StoredMessage): APIMessage => (settings.messageContentIntent ? world.wireMessage(m) : world.redact(world.wireMessage(m), 0));
  const ok = (body: unknown): Reply => ({ body });
  const noContent: Reply = { status: 204 };

  // ---------- gateway, users, application ----------
  on('GET', '/gateway', () => ok({ url: gatewayUrl() }), false);
  on('GET', '/gateway/bot', () => ok({
    url: gatewayUrl(), shards: 1,
    session_start_limit: { total: 1000, remaining: 999, reset_after: 86_400_000, max_concurrency: 1 },
  } satisfies RESTGetAPIGatewayBotResult));
  on('GET', '/users/@me', () => ok(world.bot));
  on('GET', '/users/:user', ({ params: [id] }) => ok(world.user(id as string)));
  on('GET', '/applications/@me', () => ok({ ...world.application(), name: world.bot.username, description: '', icon: null,
    bot_public: false, bot_require_code_grant: false, verify_key: '0'.repeat(64), team: null, bot: world.bot } satisfies Partial<APIApplication>));

  // ---------- guilds ----------
  on('GET', '/guilds/:guild', ({ params: [id], query }) => {
    const rec = world.guildRecord(id as string);
    const counts = query.get('with_counts') === 'true' ? { approximate_member_count: rec.members.size, approximate_presence_count: 0 } : {};
    return ok({ ...rec.guild, ...counts });
  });
  on('GET', '/guilds/:guild/channels', ({ params: [id] }) => ok([...world.guildRecord(id as string).channelIds]
    .flatMap((cid) => world.channels.get(cid) ?? []).filter((c) => !isThread(c))));
  on('GET', '/guilds/:guild/threads/active', ({ params: [id] }) => ok({ members: [], threads: [...world.guildRecord(id as string).channelIds]
    .flatMap((cid) => world.channels.get(cid) ?? []).filter((c) => isThread(c) && !c.thread_metadata?.archived) }));
  on('GET', '/guilds/:guild/members', ({ params: [id], query }) => {
    const limit = clamp(Number(query.get('limit') ?? 1), 1, 1000);
    const after = BigInt(query.get('after') ?? 0);
    const sorted = [...world.guildRecord(id as string).members.values()].sort((a, b) => cmpId(a.user.id, b.user.id));
    return ok(sorted.filter((m) => BigInt(m.user.id) > after).slice(0, limit));
  });
  on('GET', '/guilds/:guild/members/search', ({ params: [id], query }) => {
    const q = (query.get('query') ?? '').toLowerCase();
    const match = (m: APIGuildMember): boolean => [m.user.username, m.user.global_name, m.nick].some((n) => n?.toLowerCase().startsWith(q));
    return ok([...world.guildRecord(id as string).members.values()].filter(match).slice(0, clamp(Number(query.get('limit') ?? 1), 1, 1000)));
  });
  on('GET', '/guilds/:guild/members/:user', ({ params: [gid, uid] }) => {
    const m = world.guildRecord(gid as string).members.get(uid as string);
    if (!m) throw new ApiError(404, 10007, 'Unknown Member', uid);
    return ok(m);
  });
  on('GET', '/guilds/:guild/roles', ({ params: [id] }) => ok(world.guildRecord(id as string).guild.roles));
  on('GET', '/guilds/:guild/emojis', ({ params: [id] }) => ok(world.guildRecord(id as string).guild.emojis));
  on('GET', '/guilds/:guild/emojis/:emoji', ({ params: [gid, eid] }) => {
    const e = world.guildRecord(gid as string).guild.emojis.find((x) => x.id === eid);
    if (!e) throw new ApiError(404, 10014, 'Unknown Emoji', eid);
    return ok(e);
  });
  // ---------- moderation (the bot is the moderator: it needs the permission) ----------
  const asBot = (reason: string | undefined) => ({ by: world.bot.id, ...(reason ? { reason } : {}) });
  on('DELETE', '/guilds/:guild/members/:user', ({ params: [gid, uid], reason }) => {
    world.requirePermission(gid as string, world.bot.id, PermissionFlagsBits.KickMembers);
    world.removeMember(gid as string, uid as string, 'kick', asBot(reason));
    return noContent;
  });
  on('PUT', '/guilds/:guild/bans/:user', ({ params: [gid, uid], reason }) => {
    world.requirePermission(gid as string, world.bot.id, PermissionFlagsBits.BanMembers);
    world.removeMember(gid as string, uid as string, 'ban', asBot(reason));
    return noContent;
  });
  on('DELETE', '/guilds/:guild/bans/:user', ({ params: [gid, uid], reason }) => {
    world.requirePermission(gid as string, world.bot.id, PermissionFlagsBits.BanMembers);
    world.unban(gid as string, uid as string, asBot(reason));
    return noContent;
  });
  on('GET', '/guilds/:guild/bans', ({ params: [gid] }) => {
    world.requirePermission(gid as string, world.bot.id, PermissionFlagsBits.BanMembers);
    return ok([...world.guildRecord(gid as string).bans.values()]);
  });
  on('GET', '/guilds/:guild/bans/:user', ({ params: [gid, uid] }) => {
    world.requirePermission(gid as string, world.bot.id, PermissionFlagsBits.BanMembers);
    const ban = world.guildRecord(gid as string).bans.get(uid as string);
    if (!ban) throw new ApiError(404, 10026, 'Unknown Ban', uid);
    return ok(ban);
  });
  on('GET', '/guilds/:guild/audit-logs', ({ params: [gid], query }) => {
    world.requirePermission(gid as string, world.bot.id, PermissionFlagsBits.ViewAuditLog);
    const type = query.get('action_type');
    const entries = world.guildRecord(gid as string).auditLog.filter((e) => !type || String(e.action_type) === type).reverse(); // newest first
    const users = [...new Set(entries.flatMap((e) => [e.user_id, e.target_id]))].flatMap((id) => (id && world.users.get(id)) || []);
    return ok({ audit_log_entries: entries.slice(0, clamp(Number(query.get('limit') ?? 50), 1, 100)), users, webhooks: [],
      integrations: [], threads: [], application_commands: [], auto_moderation_rules: [], guild_scheduled_events: [] });
  });
  on('GET', '/guilds/:guild/webhooks', ({ params: [id] }) => ok([...world.webhooks.values()]
    .filter((w) => w.guild_id === id).map((w) => world.webhookPayload(w, true))));

  // ---------- channels ----------
  on('GET', '/channels/:channel', ({ params: [id] }) => ok(world.channel(id as string)));
  on('PATCH', '/channels/:channel', ({ params: [id], body }) => {
    const b = body as RESTPatchAPIChannelJSONBody;
    if (b.name !== undefined && (typeof b.name !== 'string' || b.name.length < 1 || b.name.length > 100)) {
      throw formError('name', 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
    }
    return ok(world.updateChannel(world.channel(id as string), b as Parameters<World['updateChannel']>[1]));
  });
  on('POST', '/channels/:channel/typing', ({ params: [id] }) => {
    world.typing(world.channel(id as string).id, world.bot.id); // Discord tells the bot of its own typing too
    return noContent;
  });
  on('PUT', '/channels/:channel/thread-members/@me', ({ params: [id] }) => {
    if (!isThread(world.channel(id as string))) throw new ApiError(400, 50024, 'Cannot execute action on this channel type');
    return noContent;
  });

  // ---------- messages ----------
  on('GET', '/channels/:channel/messages', ({ params: [id], query }) => {
    world.channel(id as string);
    const limit = clamp(Number(query.get('limit') ?? 50), 1, 100);
    const before = query.get('before');
    const after = query.get('after');
    let list = [...world.messages.values()].filter((m) => m.msg.channel_id === id); // oldest first
    if (after) list = list.filter((m) => cmpId(m.msg.id, after) > 0).slice(0, limit);
    else list = (before ? list.filter((m) => cmpId(m.msg.id, before) < 0) : list).slice(-limit);
    return ok(list.reverse().map(readable)); // newest first, like Discord
  });
  on('GET', '/channels/:channel/messages/:message', ({ params: [cid, mid] }) => ok(readable(world.message(mid as string, cid as string))));
  on('POST', '/channels/:channel/messages', ({ params: [id], body, files }) => {
    const b = body as RESTPostAPIChannelMessageJSONBody;
    checkMessageBody(b, files);
    const replyTo = b.message_reference?.message_id;
    if (replyTo && !world.messages.has(replyTo) && b.message_reference?.fail_if_not_exists !== false) {
      throw formError('message_reference', 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', 'Unknown message');
    }
    const stored = world.createMessage({
      channelId: id as string, author: world.bot, content: b.content ?? '', embeds: b.embeds ?? [], components: b.components ?? [],
      files, attachmentMeta: b.attachments, nonce: b.nonce, replyTo: replyTo && world.messages.has(replyTo) ? replyTo : undefined,
    });
    return ok(world.wireMessage(stored));
  });
  on('PATCH', '/channels/:channel/messages/:message', ({ params: [cid, mid], body, files }) => {
    const stored = world.message(mid as string, cid as string);
    if (stored.msg.author.id !== world.bot.id) throw new ApiError(403, 50005, 'Cannot edit a message authored by another user');
    const b = body as RESTPatchAPIChannelMessageJSONBody;
    checkContentLength(b.content);
    return ok(world.wireMessage(world.editMessage(stored, b, files)));
  });
  on('DELETE', '/channels/:channel/messages/:message', ({ params: [cid, mid] }) => {
    world.deleteMessage(world.message(mid as string, cid as string));
    return noContent;
  });

  // ---------- reactions ----------
  const reactionTarget = (cid: string | undefined, mid: string | undefined, emoji: string | undefined) => {
    const stored = world.message(mid as string, cid as string);
    return { stored, emoji: world.emoji(emoji ?? '', stored.guildId) };
  };
  on('PUT', '/channels/:channel/messages/:message/reactions/:emoji/@me', ({ params: [cid, mid, e] }) => {
    const { stored, emoji } = reactionTarget(cid, mid, e);
    world.addReaction(stored, world.bot.id, emoji);
    return noContent;
  });
  on('DELETE', '/channels/:channel/messages/:message/reactions/:emoji/@me', ({ params: [cid, mid, e] }) => {
    const { stored, emoji } = reactionTarget(cid, mid, e);
    world.removeReaction(stored, world.bot.id, emoji);
    return noContent;
  });
  on('DELETE', '/channels/:channel/messages/:message/reactions/:emoji/:user', ({ params: [cid, mid, e, uid] }) => {
    const { stored, emoji } = reactionTarget(cid, mid, e);
    world.removeReaction(stored, uid as string, emoji);
    return noContent;
  });
  on('GET', '/channels/:channel/messages/:message/reactions/:emoji', ({ params: [cid, mid, e] }) => {
    const { stored, emoji } = reactionTarget(cid, mid, e);
    const users = stored.reactions.get(emoji.id ?? (emoji.name as string))?.users ?? new Set<string>();
    return ok([...users].flatMap((u) => world.users.get(u) ?? []));
  });

  // ---------- threads ----------
  on('POST', '/channels/:channel/messages/:message/threads', ({ params: [cid, mid], body }) => {
    const b = body as unknown as RESTPostAPIChannelMessagesThreadsJSONBody;
    checkThreadName(b.name);
    return ok(world.createThread({ parentId: cid as string, name: b.name, ownerId: world.bot.id,
      fromMessage: world.message(mid as string, cid as string), autoArchive: b.auto_archive_duration }));
  });
  on('POST', '/channels/:channel/threads', ({ params: [cid], body }) => {
    const b = body as unknown as RESTPostAPIChannelThreadsJSONBody;
    checkThreadName(b.name);
    return ok(world.createThread({ parentId: cid as string, name: b.name, ownerId: world.bot.id,
      type: (b.type ?? ChannelType.PrivateThread) as ThreadChannelType, autoArchive: b.auto_archive_duration }));
  });

  // ---------- webhooks ----------
  on('POST', '/channels/:channel/webhooks', ({ params: [id], body }) => {
    const b = body as Partial<RESTPostAPIChannelWebhookJSONBody>;
    checkWebhookName('name', b.name);
    return ok(world.webhookPayload(world.createWebhook(id as string, b.name as string, b.avatar), true));
  });
  on('GET', '/channels/:channel/webhooks', ({ params: [id] }) => {
    world.channel(id as string);
    return ok([...world.webhooks.values()].filter((w) => w.channel_id === id).map((w) => world.webhookPayload(w, true)));
  });
  on('GET', '/webhooks/:webhook', ({ params: [id] }) => ok(world.webhookPayload(world.webhook(id as string), true)));
  on('PATCH', '/webhooks/:webhook', ({ params: [id], body }) => {
    const w = world.webhook(id as string);
    const b = body as RESTPatchAPIWebhookJSONBody;
    if (b.name !== undefined) { checkWebhookName('name', b.name); w.name = b.name; }
    if (b.channel_id) w.channel_id = world.channel(b.channel_id).id;
    return ok(world.webhookPayload(w, true));
  });
  on('DELETE', '/webhooks/:webhook', ({ params: [id] }) => {
    world.deleteWebhook(world.webhook(id as string));
    return noContent;
  });
  on('GET', '/webhooks/:webhook/:token', ({ params: [id, token] }) => ok(world.webhookPayload(world.webhook(id as string, token), false)), false);
  on('DELETE', '/webhooks/:webhook/:token', ({ params: [id, token] }) => {
    world.deleteWebhook(world.webhook(id as string, token));
    return noContent;
  }, false);
  on('POST', '/webhooks/:webhook/:token', ({ params: [id, token], body, query, files }) => {
    const w = world.webhook(id as string, token);
    const b = body as RESTPostAPIWebhookWithTokenJSONBody;
    checkMessageBody(b, files);
    if (b.username !== undefined) checkWebhookName('username', b.username);
    const threadId = query.get('thread_id');
    const channelId = threadId ? webhookThread(w.channel_id, threadId) : w.channel_id;
    const author: APIUser = {
      id: w.id, username: b.username ?? w.name ?? 'Captain Hook', discriminator: '0000', global_name: null, bot: true,
      avatar: b.avatar_url ? createHash('md5').update(b.avatar_url).digest('hex') : w.avatar,
    };
    const stored = world.createMessage({ channelId, author, content: b.content ?? '', embeds: b.embeds ?? [],
      components: b.components ?? [], files, attachmentMeta: b.attachments, webhookId: w.id });
    const wait = query.get('wait') === 'true';
    webhookExecutions.push({ webhookId: w.id, channelId: w.channel_id, threadId, messageId: stored.msg.id, username: b.username ?? null,
      avatarUrl: b.avatar_url ?? null, content: b.content ?? '', wait, at: Date.now() });
    return wait ? ok(world.wireMessage(stored)) : noContent;
  }, false);
  const webhookMessage = (id: string | undefined, token: string | undefined, mid: string | undefined): StoredMessage => {
    const w = world.webhook(id as string, token);
    const stored = world.message(mid as string);
    if (stored.msg.webhook_id !== w.id) throw new ApiError(404, 10008, 'Unknown Message', mid);
    return stored;
  };
  on('GET', '/webhooks/:webhook/:token/messages/:message', ({ params: [id, token, mid] }) => ok(world.wireMessage(webhookMessage(id, token, mid))), false);
  on('PATCH', '/webhooks/:webhook/:token/messages/:message', ({ params: [id, token, mid], body, files }) => {
    const b = body as RESTPatchAPIChannelMessageJSONBody;
    checkContentLength(b.content);
    return ok(world.wireMessage(world.editMessage(webhookMessage(id, token, mid), b, files)));
  }, false);
  on('DELETE', '/webhooks/:webhook/:token/messages/:message', ({ params: [id, token, mid] }) => {
    world.deleteMessage(webhookMessage(id, token, mid));
    return noContent;
  }, false);

  /** `?thread_id=` must name a thread under the webhook's channel. */
  function webhookThread(webhookChannelId: string, threadId: string): string {
    const thread = world.channels.get(threadId);
    if (!thread || !isThread(thread) || thread.parent_id !== webhookChannelId) throw new ApiError(400, 10003, 'Unknown Channel', threadId);
    return thread.id;
  }

  return routes;
}

function checkMessageBody(b: { content?: string; embeds?: unknown[]; components?: unknown[]; sticker_ids?: unknown[]; poll?: unknown },
  files: UploadedFile[]): void {
  checkContentLength(b.content);
  if (!b.content && !b.embeds?.length && !files.length && !b.sticker_ids?.length && !b.components?.length && !b.poll) {
    throw new ApiError(400, 50006, 'Cannot send an empty message');
  }
}

function checkContentLength(content: string | null | undefined): void {
  if (content && content.length > MAX_CONTENT) throw formError('content', 'BASE_TYPE_MAX_LENGTH', `Must be ${MAX_CONTENT} or fewer in length.`);
}

/** Webhook names and per-message usernames: 1–80 characters, and Discord refuses "discord" and "clyde" in them. */
function checkWebhookName(field: string, name: unknown): void {
  if (typeof name !== 'string' || name.length < 1 || name.length > 80) {
    throw formError(field, 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 80 in length.');
  }
  if (/discord|clyde/i.test(name)) throw formError(field, 'USERNAME_INVALID_CONTAINS', 'Username cannot contain "discord" or "clyde"');
}

function checkThreadName(name: unknown): void {
  if (typeof name !== 'string' || name.length < 1 || name.length > 100) throw formError('name', 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
}

function clamp(n: number, lo: number, hi: number): number {
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, Math.trunc(n))) : lo;
}

function cmpId(a: string, b: string): number {
  const d = BigInt(a) - BigInt(b);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}
