/**
 * Discord ids, built and parsed only here.
 * - chat: a channel id, or `<channelId>/<threadId>` for a thread linked on its own.
 * - message: the message id when it is in the chat's own channel (or thread); `<threadId>/<messageId>`
 *   for a message in a thread under the chat's channel (a thread shown as a Matrix thread of the
 *   channel's room). A thread started from a message has that message's id, so the id of a thread's
 *   root message in the channel is the thread id.
 * - remote user: a Discord user id, or `webhook:<webhookId>:<name>` for what someone else's webhook
 *   (a CI bot, another bridge) posted under a name: one ghost per name.
 */
export type DiscordChatId = string & { readonly __brand: 'DiscordChatId' };
export type DiscordMessageRef = string & { readonly __brand: 'DiscordMessageRef' };
export type DiscordUserId = string & { readonly __brand: 'DiscordUserId' };

const SNOWFLAKE = /^\d{1,20}$/;
export const isSnowflake = (s: string): boolean => SNOWFLAKE.test(s);

export function channelChat(channelId: string): DiscordChatId {
  return channelId as DiscordChatId;
}

export function threadChat(channelId: string, threadId: string): DiscordChatId {
  return `${channelId}/${threadId}` as DiscordChatId;
}

export interface ParsedChat {
  /** The channel the chat belongs to (webhooks live here). */
  channelId: string;
  /** Set for a thread linked on its own. */
  threadId?: string;
}

export function parseChat(chat: string): ParsedChat | undefined {
  const [channelId, threadId, extra] = chat.split('/');
  if (!channelId || !isSnowflake(channelId) || extra !== undefined) return undefined;
  if (threadId === undefined) return { channelId };
  return isSnowflake(threadId) ? { channelId, threadId } : undefined;
}

/** The id of message `messageId`, posted in channel or thread `where`, as seen from `chat`. */
export function messageRef(chat: string, where: string, messageId: string): DiscordMessageRef {
  const c = parseChat(chat);
  const own = c?.threadId ?? c?.channelId;
  return (where === own ? messageId : `${where}/${messageId}`) as DiscordMessageRef;
}

export interface ParsedMessageRef {
  /** The channel or thread the message is in (where the bot edits, deletes and reacts). */
  channelId: string;
  /** The channel whose webhook posted it (the parent when the message is in a thread). */
  parentId: string;
  /** Set when the message is in a thread (webhook calls need it). */
  threadId?: string;
  messageId: string;
}

export function parseMessageRef(chat: string, ref: string): ParsedMessageRef | undefined {
  const c = parseChat(chat);
  if (!c) return undefined;
  const slash = ref.indexOf('/');
  if (slash < 0) {
    if (!isSnowflake(ref)) return undefined;
    return c.threadId
      ? { channelId: c.threadId, parentId: c.channelId, threadId: c.threadId, messageId: ref }
      : { channelId: c.channelId, parentId: c.channelId, messageId: ref };
  }
  const threadId = ref.slice(0, slash);
  const messageId = ref.slice(slash + 1);
  if (!isSnowflake(threadId) || !isSnowflake(messageId)) return undefined;
  return { channelId: threadId, parentId: c.channelId, threadId, messageId };
}

export function discordUser(userId: string): DiscordUserId {
  return userId as DiscordUserId;
}

export function webhookUser(webhookId: string, name: string): DiscordUserId {
  return `webhook:${webhookId}:${name}` as DiscordUserId;
}

export type ParsedUser = { kind: 'user'; userId: string } | { kind: 'webhook'; webhookId: string; name: string };

export function parseUser(id: string): ParsedUser | undefined {
  if (isSnowflake(id)) return { kind: 'user', userId: id };
  const m = /^webhook:(\d{1,20}):([\s\S]*)$/.exec(id);
  return m ? { kind: 'webhook', webhookId: m[1]!, name: m[2]! } : undefined;
}

/** Ghost localpart (after the `discord_` prefix): the user id, or `webhook_<id>_<name>`. Core escapes the rest. */
export function ghostLocalpart(id: string): string {
  const p = parseUser(id);
  if (!p) return id;
  return p.kind === 'user' ? p.userId : `webhook_${p.webhookId}_${p.name}`;
}

/** `discord_<guildId>_<channelId>` (the localpart of a portal alias). */
export function aliasLocalpart(prefix: string, guildId: string, channelId: string): string {
  return `${prefix}${guildId}_${channelId}`;
}

export function parseAliasLocalpart(localpart: string, prefix: string): { guildId: string; channelId: string } | undefined {
  if (!localpart.startsWith(prefix)) return undefined;
  const m = /^(\d{1,20})_(\d{1,20})$/.exec(localpart.slice(prefix.length));
  return m ? { guildId: m[1]!, channelId: m[2]! } : undefined;
}

/** What `link discord ...` accepts: `<guildId>/<channelId>` or `<guildId> <channelId>`. */
export function parseLinkTarget(text: string): { guildId: string; channelId: string } | undefined {
  const m = /^\s*(\d{1,20})\s*[/ ]\s*(\d{1,20})\s*$/.exec(text);
  return m ? { guildId: m[1]!, channelId: m[2]! } : undefined;
}

/**
 * The remote id core records for a Matrix reaction the bot made on Discord, so redacting the
 * reaction finds it: `reaction:<message ref>` and the emoji on a second line (emoji never hold one).
 */
export function reactionRef(message: string, emoji: string): string {
  return `reaction:${message}\n${emoji}`;
}

export function parseReactionRef(ref: string): { message: string; emoji: string } | undefined {
  if (!ref.startsWith('reaction:')) return undefined;
  const nl = ref.indexOf('\n');
  return nl > 0 ? { message: ref.slice('reaction:'.length, nl), emoji: ref.slice(nl + 1) } : undefined;
}
