/**
 * Matrix → Discord: a Matrix user's messages, edits, deletions, reactions and typing reach the
 * channel. Messages go through the channel's webhook under the sender's name and avatar; the bot
 * itself reacts and types for Matrix users. Replies become a quote line with a jump link (webhooks
 * cannot reply), Matrix threads become Discord threads, long messages are split (past three
 * messages: the start, and the whole text as message.txt) and files too big for Discord become links.
 */
import {
  DeliveryError, type MatrixEdit, type MatrixMessage, type MatrixReaction, type MatrixRedaction, type MatrixTyping, type NetworkContext,
  type SendResult,
} from '@trestle/core';
import { Routes, type APIMessage, type Client, type Guild, type GuildTextBasedChannel, type RawFile } from 'discord.js';
import type { DiscordConfig } from './config.js';
import {
  allowedMentions, escapeDiscordMarkdown, LONG_TEXT_FILE, matrixToDiscord, replyQuote, splitCapped, webhookUsername, type DiscordRole,
  type DiscordText,
} from './convert/index.js';
import { discordFailure, notConnected, toDeliveryError } from './errors.js';
import {
  messageRef, parseAliasLocalpart, parseChat, parseMessageRef, parseReactionRef, parseUser, reactionRef, type ParsedChat,
} from './ids.js';
import { download, formatSize, type EmojiBridge } from './media.js';
import type { DiscordStore } from './store.js';
import {
  discordCode, mayHavePosted, postAttempt, UNKNOWN_MESSAGE, type PostAttempt, type WebhookMessageBody, type WebhookPool,
} from './webhooks.js';

const TYPING_EVERY_MS = 8000;
/** Where the parts of a message an edit changed are recorded (see ToDiscord.partsOf). */
const partsKey = (chat: string, firstPart: string): string => `parts:${chat}:${firstPart}`;
const UNKNOWN_EMOJI = 10014;
const UNKNOWN_CHANNEL = 10003;
/** "A thread has already been created for this message". */
const THREAD_EXISTS = 160004;
const EVERYONE = /(^|[^\w.])@(everyone|here)\b/;

const attachmentsOf = (files: RawFile[]): WebhookMessageBody['attachments'] => files.map((f, k) => ({ id: k, filename: f.name }));

/** One message to post through the channel's webhook. */
interface Post { body: WebhookMessageBody; files: RawFile[] }

/** Where a Matrix event's posts are kept while they go out (see {@link Sending}). */
const sendingKey = (chat: string, eventId: string): string => `sending:${chat}:${eventId}`;

/**
 * A Matrix event's posts while they go out, kept in the network's kv (so through a restart too) until
 * they all went: the parts Discord took (refs, in order), and the post under way, noted before its
 * request is made and cleared when Discord's answer says whether it took it. A post noted when the
 * event is tried again may be on Discord though its answer was lost: it is looked for before anything
 * is posted (see ToDiscord.postOnce). A retry so sends no part twice, and goes on from where it stopped.
 */
interface Sending { ids: string[]; attempt?: PostAttempt }

/**
 * The message holding the whole text of a Matrix message too long for Discord messages (see
 * splitCapped), as Discord's own client sends one: the text as typed (the Matrix body, not the
 * markdown made of it, whose escapes would show in a file), in a file, and nothing else. It pings
 * no one: the part shown before it has the mentions.
 */
function longTextPost(identity: WebhookMessageBody, text: string): { body: WebhookMessageBody; files: RawFile[] } {
  const files: RawFile[] = [{ name: LONG_TEXT_FILE, data: Buffer.from(text, 'utf8'), contentType: 'text/plain; charset=utf-8' }];
  return { body: { ...identity, allowed_mentions: { parse: [] }, attachments: attachmentsOf(files) }, files };
}

/**
 * The Discord user or webhook author a Matrix user id is the ghost of. Core knows the ghosts it
 * registered; a user's ghost id also says it (`@discord_<id>:domain`), registered or not.
 */
export function discordUserOfGhost(ctx: NetworkContext, userPrefix: string, mxid: string): ReturnType<typeof parseUser> {
  const known = ctx.remoteUserOf(mxid);
  if (known) return parseUser(known);
  const local = `@${userPrefix}`;
  const suffix = `:${ctx.domain}`;
  if (!mxid.startsWith(local) || !mxid.endsWith(suffix)) return undefined;
  const id = mxid.slice(local.length, -suffix.length);
  return /^\d{1,20}$/.test(id) ? { kind: 'user', userId: id } : undefined;
}

export interface ToDiscordDeps {
  ctx: NetworkContext;
  cfg: DiscordConfig;
  aliasPrefix: string;
  store: DiscordStore;
  webhooks: WebhookPool;
  emojis: EmojiBridge;
  /** The logged-in client, or undefined while not connected. */
  client(): Client | undefined;
  remoteUserOf(mxid: string): ReturnType<typeof parseUser>;
}

export class ToDiscord {
  /** Messages the bridge deleted (their MESSAGE_DELETE echo is not reported back), with when. */
  private readonly deleted = new Map<string, number>();
  private readonly typingAt = new Map<string, number>();

  constructor(private readonly d: ToDiscordDeps) {}

  /** Whether the bridge itself deleted a message (its MESSAGE_DELETE is an echo). */
  deletedByUs(messageId: string): boolean { return this.deleted.has(messageId); }

  private requireClient(): Client {
    const client = this.d.client();
    if (!client) throw notConnected();
    return client;
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

  /** Names of the guild's members: a Matrix user may not speak under one of them, nor one that looks like it (see webhookUsername). */
  private memberNames(guild: Guild): Set<string> {
    const names = new Set<string>();
    for (const m of guild.members.cache.values()) {
      if (m.id === this.d.client()?.user?.id) continue;
      for (const n of [m.nickname, m.user.globalName, m.user.username]) if (n) names.add(n);
    }
    return names;
  }

  private roles(guild: Guild): DiscordRole[] {
    return [...guild.roles.cache.values()].map((r) => ({ id: r.id, name: r.name, mentionable: r.mentionable }));
  }

  /** `mayPing`: @everyone, @here and `@Role` become real mentions (see mayPing). */
  private toDiscord(body: string, formattedBody: string | undefined, guild: Guild, mayPing: boolean, emote = false): DiscordText {
    const ctx = this.d.ctx;
    return matrixToDiscord({ body, ...(formattedBody !== undefined ? { formattedBody } : {}) }, {
      user: (mxid) => {
        const p = this.d.remoteUserOf(mxid);
        return p?.kind === 'user' ? p.userId : undefined;
      },
      room: (room) => {
        if (!room.startsWith('!')) {
          const alias = parseAliasLocalpart(room.slice(1).split(':')[0] ?? '', this.d.aliasPrefix);
          return alias?.channelId;
        }
        const chat = ctx.portals.forRoom(room).map((p) => parseChat(p.remoteChat)).find((c) => c && !c.threadId);
        return chat?.channelId;
      },
      emoji: (mxc) => this.d.emojis.byMxc(mxc),
      mediaUrl: (mxc) => ctx.mediaUrl(mxc),
      roles: this.roles(guild),
      allowEveryone: mayPing,
      allowRoles: mayPing,
    }, { emote });
  }

  /**
   * Whether a Matrix user may ping @everyone / @here, and mentionable roles by `@Role`, on Discord:
   * their power level in the room must reach everyoneMentionPower. Discord has one permission for
   * both ("Mention @everyone, @here, and All Roles"); a role being mentionable lets the guild's
   * members ping it, and a Matrix user is nobody the guild vetted. Asked of the homeserver only
   * when the text has one of the words or `@` and the name of a mentionable role; what this misses
   * (a name split by tags or written as entities) stays text, so it fails closed.
   */
  private async mayPing(roomId: string, userId: string, body: string, formattedBody: string | undefined, guild: Guild): Promise<boolean> {
    const texts = formattedBody !== undefined ? [body, formattedBody] : [body];
    const roleNames = this.roles(guild).filter((r) => r.mentionable && r.name !== '@everyone').map((r) => `@${r.name.toLowerCase()}`);
    const asks = texts.some((t) => {
      const lower = t.toLowerCase();
      return EVERYONE.test(t) || roleNames.some((n) => lower.includes(n));
    });
    if (!asks) return false;
    const needed = this.d.cfg.everyoneMentionPower;
    if (needed <= 0) return true;
    try {
      return (await this.d.ctx.matrix.powerLevel(roomId, userId)) >= needed;
    } catch (err) {
      // fail closed: a ping nobody meant to allow is worse than a defused one
      this.d.ctx.log.warn('could not read power levels for an @everyone, @here or @Role; sent as text', { roomId, err: err as Error });
      return false;
    }
  }

  /**
   * The thread a Matrix thread reply goes to: the Discord thread on its root message, started if
   * needed. A thread has its starter message's id. discord.js caches no archived thread (nor any,
   * after a restart), so one not cached is fetched; sending to an archived thread through the
   * webhook unarchives it. A locked one takes no messages: the reply goes to the channel.
   */
  private async threadFor(msg: MatrixMessage): Promise<string | undefined> {
    const rootId = msg.threadRoot?.remoteId;
    const root = rootId ? parseMessageRef(msg.portal.remoteChat, rootId) : undefined;
    if (!root) return undefined;
    if (root.threadId) return root.threadId;
    const client = this.requireClient();
    const log = this.d.ctx.log;
    const thread = client.channels.cache.get(root.messageId) ?? await client.channels.fetch(root.messageId).catch((err: unknown) => {
      if (discordCode(err) !== UNKNOWN_CHANNEL) log.debug('could not fetch the Discord thread of a Matrix thread; trying to start it', { err: err as Error });
      return null;
    });
    if (thread?.isThread()) {
      if (!thread.locked) return thread.id;
      log.warn('the Discord thread of a Matrix thread is locked; the reply goes to the channel', { eventId: msg.eventId, thread: thread.id });
      return undefined;
    }
    // Discord threads have names: the start of the root message's text
    const rootMsg = await client.rest.get(Routes.channelMessage(root.channelId, root.messageId)).catch(() => undefined) as APIMessage | undefined;
    const name = [...(rootMsg?.content ?? '').replace(/\s+/g, ' ').trim()].slice(0, 90).join('') || 'Thread from Matrix';
    try {
      const started = await client.rest.post(Routes.threads(root.channelId, root.messageId), { body: { name } }) as { id: string };
      return started.id;
    } catch (err) {
      // there is one, which could not be fetched above: it has the root message's id
      if (discordCode(err) === THREAD_EXISTS) return root.messageId;
      log.warn('could not start a Discord thread for a Matrix thread; sending to the channel', { eventId: msg.eventId, err: err as Error });
      return undefined;
    }
  }

  private replyPrefix(msg: MatrixMessage, guild: Guild): string {
    const r = msg.replyTo;
    if (!r) return '';
    const target = r.remoteId ? parseMessageRef(msg.portal.remoteChat, r.remoteId) : undefined;
    const p = r.sender ? this.d.remoteUserOf(r.sender) : undefined;
    return replyQuote({
      ...(p?.kind === 'user' ? { author: p.userId, mention: p.userId } : { author: p?.kind === 'webhook' ? p.name : (r.sender ?? 'someone') }),
      ...(r.body !== undefined ? { snippet: r.body } : {}),
      ...(target ? { jumpUrl: `https://discord.com/channels/${guild.id}/${target.channelId}/${target.messageId}` } : {}),
    });
  }

  /** The name and avatar a Matrix user's messages go out under. */
  private identity(sender: MatrixMessage['sender'], guild: Guild): WebhookMessageBody {
    const identity: WebhookMessageBody = { username: webhookUsername(sender, this.memberNames(guild)) };
    const avatar = sender.avatarMxc ? this.d.ctx.mediaUrl(sender.avatarMxc) : undefined;
    if (avatar && /^https?:\/\//.test(avatar)) identity.avatar_url = avatar;
    return identity;
  }

  /**
   * The Discord messages a Matrix message is now, in order. Core knows the parts it was sent as; an
   * edit that changes how many there are (deleting some, sending more) records them here, as core
   * records what an edit returns under the edit's own event, where later edits and the redaction
   * of the message do not look. Keyed by the first part, which an edit never replaces.
   */
  private partsOf(chat: string, sent: string[]): string[] {
    const first = sent[0];
    const recorded = first !== undefined ? this.d.ctx.kv.get(partsKey(chat, first)) : undefined;
    return recorded ? JSON.parse(recorded) as string[] : sent;
  }

  private recordParts(chat: string, sent: string[], parts: string[]): void {
    const key = partsKey(chat, sent[0]!);
    if (parts.length === sent.length && parts.every((p, i) => p === sent[i])) this.d.ctx.kv.delete(key);
    else this.d.ctx.kv.set(key, JSON.stringify(parts));
  }

  private loadSending(key: string): Sending {
    const raw = this.d.ctx.kv.get(key);
    return raw ? JSON.parse(raw) as Sending : { ids: [] };
  }

  private saveSending(key: string, s: Sending): void {
    if (s.ids.length || s.attempt) this.d.ctx.kv.set(key, JSON.stringify(s));
    else this.d.ctx.kv.delete(key);
  }

  /**
   * Post one message through the channel's webhook, once. A post is never repeated blindly (webhook
   * posts have no nonce, and WebhookPool sends them without retries): when Discord's answer to one is
   * lost ({@link mayHavePosted}) the message is looked for on Discord, at once and again before the
   * event's next try posts anything, and a copy found is taken as the message sent. The attempt is
   * noted in `s` (and the kv, under `key`) before its request goes out, so even a crash mid-request
   * leaves it to be looked for. `taken`: the refs of what this event already sent, which core's message
   * map does not know yet. Returns the message and the channel or thread it is in.
   */
  private async postOnce(key: string, s: Sending, chat: string, channelId: string, threadId: string | undefined, post: Post,
    taken: readonly string[], eventId: string): Promise<{ message: APIMessage; where: string }> {
    const log = this.d.ctx.log;
    const isTaken = (where: string) => (m: APIMessage): boolean => {
      const ref = messageRef(chat, where, m.id);
      return taken.includes(ref) || this.d.ctx.bridged(chat, ref);
    };
    const adopt = (attempt: PostAttempt, m: APIMessage): { message: APIMessage; where: string } => {
      log.warn('a Discord webhook post got no clear answer, but Discord has the message: taken as sent, not posted again',
        { eventId, chat, where: attempt.where, messageId: m.id, triedAt: new Date(attempt.at).toISOString() });
      s.attempt = undefined;
      return { message: m, where: attempt.where };
    };
    const earlier = s.attempt;
    if (earlier) {
      try {
        const copy = await this.d.webhooks.findPosted(earlier, isTaken(earlier.where));
        if (copy) return adopt(earlier, copy);
      } catch (err) {
        // unless Discord refuses the bot the channel's messages (then it never could look), wait and look again
        if (discordFailure(err) !== 'refused') throw err;
        log.warn('could not look on Discord for a message whose post got no clear answer; posting it again, which may show it twice',
          { eventId, chat, where: earlier.where, err: err as Error });
      }
    }
    const where = threadId ?? channelId;
    const attempt = postAttempt(where, post.body, post.files);
    s.attempt = attempt;
    this.saveSending(key, s);
    try {
      const message = await this.d.webhooks.execute(channelId, threadId, post.body, post.files);
      s.attempt = undefined;
      return { message, where };
    } catch (err) {
      if (!mayHavePosted(err)) {
        s.attempt = undefined; // refused: Discord did not store it
        this.saveSending(key, s);
        throw err;
      }
      // the message may be there (stored, then the answer lost): found now, it is sent; not found, the
      // attempt stays noted and the retry looks again first (Discord may still have been storing it)
      const copy = await this.d.webhooks.findPosted(attempt, isTaken(where)).catch((e: unknown) => {
        log.debug('could not look on Discord for a message whose post got no clear answer; the retry looks again', { eventId, err: e as Error });
        return undefined;
      });
      if (copy) return adopt(attempt, copy);
      throw err;
    }
  }

  noteDeleted(messageId: string): void {
    const now = Date.now();
    for (const [id, at] of this.deleted) if (now - at > 10 * 60_000) this.deleted.delete(id);
    this.deleted.set(messageId, now);
  }

  async message(msg: MatrixMessage): Promise<SendResult> {
    const chat = this.chatOf(msg.portal.remoteChat);
    const channel = this.textChannel(chat.channelId);
    const guild = channel.guild;
    const ctx = this.d.ctx;
    const threadId = chat.threadId ?? await this.threadFor(msg);
    const identity = this.identity(msg.sender, guild);
    let files: RawFile[] = [];
    let text: DiscordText;
    /** The message's text as typed, for a text too long to show whole (see longTextPost). */
    let typed = msg.body;
    if (msg.media) {
      const m = msg.media;
      const filename = m.filename ?? msg.body ?? 'file';
      // a caption is a body that is not just the file name
      const caption = msg.body && msg.body !== filename ? msg.body : '';
      typed = caption;
      text = caption
        ? this.toDiscord(caption, msg.formattedBody, guild, await this.mayPing(msg.portal.roomId, msg.sender.userId, caption, msg.formattedBody, guild))
        : { content: '', users: [], roles: [], everyone: false };
      const file = await this.fetchMedia(m.url, m.size);
      if (file) {
        files = [{ name: filename, data: file, ...(m.mimetype ? { contentType: m.mimetype } : {}) }];
      } else {
        const size = m.size !== undefined ? ` (${formatSize(m.size)})` : '';
        const link = `📎 ${escapeDiscordMarkdown(filename)}${size}, too big to upload to Discord: ${m.url}`;
        text = { ...text, content: text.content ? `${text.content}\n${link}` : link };
        typed = `${caption ? `${caption}\n` : ''}📎 ${filename}${size}, too big to upload to Discord: ${m.url}`;
      }
    } else {
      text = this.toDiscord(msg.body, msg.formattedBody, guild, await this.mayPing(msg.portal.roomId, msg.sender.userId, msg.body, msg.formattedBody, guild),
        msg.msgtype === 'm.emote');
    }
    const quote = this.replyPrefix(msg, guild);
    const { parts: chunks, inFile } = splitCapped(quote + text.content);
    if (chunks.length === 0 && files.length === 0) return {};
    const mentions = allowedMentions(text);
    // the messages to send: the text's parts, the first with the file if any (or the file alone);
    // then, for text too long for them, the whole text as a file (see longTextPost)
    const posts: Post[] = (chunks.length ? chunks : ['']).map((c, i) => ({
      body: { ...identity, allowed_mentions: mentions, ...(c ? { content: c } : {}), ...(i === 0 && files.length ? { attachments: attachmentsOf(files) } : {}) },
      files: i === 0 ? files : [],
    }));
    if (inFile) posts.push(longTextPost(identity, typed.trim() ? typed : text.content));
    // a retry (core's, or after a restart) goes on from where the last try stopped: no part Discord
    // took is sent again, nor one it may have taken though its answer was lost (see postOnce)
    const key = sendingKey(msg.portal.remoteChat, msg.eventId);
    const s = this.loadSending(key);
    const ids = s.ids;
    try {
      for (let i = ids.length; i < posts.length; i++) {
        const sent = await this.postOnce(key, s, msg.portal.remoteChat, chat.channelId, threadId, posts[i]!, ids, msg.eventId);
        ids.push(messageRef(msg.portal.remoteChat, sent.where, sent.message.id));
        if (i === 0 && quote) this.d.store.setReplyQuote(msg.portal.remoteChat, ids[0]!, quote);
      }
    } catch (err) {
      this.saveSending(key, s);
      if (ids.length) ctx.log.warn('a long Matrix message reached Discord only in part; a retry sends the rest', { eventId: msg.eventId, sent: ids.length, of: posts.length });
      throw toDeliveryError(err, 'message');
    }
    // (core maps the ids once this returns; a crash in between would send the message again)
    ctx.kv.delete(key);
    return { remoteIds: ids };
  }

  /** The file behind a Matrix media URL, or undefined when it is bigger than Discord takes. */
  private async fetchMedia(url: string, size: number | undefined): Promise<Buffer | undefined> {
    const limit = this.d.cfg.uploadLimitBytes;
    if (size !== undefined && size > limit) return undefined;
    try {
      const got = await download(url, limit);
      return 'tooBig' in got ? undefined : got.data;
    } catch (err) {
      throw new DeliveryError(`could not fetch the file from the Matrix media repository: ${(err as Error).message}`, false, { cause: err });
    }
  }

  /**
   * A Matrix edit: each part of the new text edits the message's part in its place; parts left
   * over are deleted, and text past the last part is sent as new messages after it (text too long
   * for MAX_PARTS messages: its start, then the whole text as a file; see splitCapped). A part gone
   * from Discord (deleted there) after the first is taken as the end of the message: what followed
   * it is deleted and the rest of the text sent anew, so the message stays whole and in order.
   */
  async edit(edit: MatrixEdit): Promise<void> {
    const remoteChat = edit.portal.remoteChat;
    const chat = this.chatOf(remoteChat);
    const guild = this.textChannel(chat.channelId).guild;
    const sent = edit.target.remoteIds.filter((id) => !parseReactionRef(id));
    const parts = this.partsOf(remoteChat, sent);
    const targets = parts.map((id) => parseMessageRef(remoteChat, id));
    const first = targets[0];
    if (!first || targets.some((t) => !t)) return;
    const text = this.toDiscord(edit.body, edit.formattedBody, guild,
      await this.mayPing(edit.portal.roomId, edit.sender.userId, edit.body, edit.formattedBody, guild), edit.msgtype === 'm.emote');
    if (text.content.trim() === '') return; // Discord has no empty messages; a redaction removes one
    // a reply keeps the quote it was sent with
    const quote = this.d.store.replyQuote(remoteChat, sent[0]!) ?? '';
    const { parts: chunks, inFile } = splitCapped(quote + text.content);
    const mentions = allowedMentions(text);
    /** The parts as they are on Discord while this goes on (recorded even if it stops half-way: a retry goes on from there). */
    const now = [...parts];
    try {
      let kept = 0;
      for (const [i, t] of targets.entries()) {
        if (i < chunks.length && kept === i) {
          try {
            // (a part after the first may be the file of a text that was too long: an edit of it is text alone)
            await this.d.webhooks.edit(t!.parentId, t!.threadId, t!.messageId,
              { content: chunks[i]!, allowed_mentions: mentions, ...(i > 0 ? { attachments: [] } : {}) });
            kept++;
            continue;
          } catch (err) {
            if (discordCode(err) !== UNKNOWN_MESSAGE) throw err;
            if (i === 0) throw new DeliveryError('the Discord message can no longer be edited (it was deleted, or sent before its webhook was replaced)', true, { cause: err });
            this.d.ctx.log.info('a part of a Discord message edited from Matrix is gone; the rest of the text is sent anew', { eventId: edit.eventId, part: i });
          }
        } else {
          // a part left over, or after one that is gone
          this.noteDeleted(t!.messageId);
          await this.d.webhooks.delete(t!.parentId, t!.threadId, t!.messageId).catch((err: unknown) => { if (discordCode(err) !== UNKNOWN_MESSAGE) throw err; });
        }
        now.splice(now.indexOf(parts[i]!), 1);
      }
      // the text past the parts there are: new messages, after them, where the message is
      const identity = this.identity(edit.sender, guild);
      const posts: Post[] = chunks.slice(kept)
        .map((chunk) => ({ body: { ...identity, allowed_mentions: mentions, content: chunk }, files: [] }));
      // a webhook message's files cannot be replaced here (WebhookPool.edit sends no files): the
      // whole text of one too long goes anew after the parts
      if (inFile) posts.push(longTextPost(identity, edit.body.trim() ? edit.body : text.content));
      if (posts.length) {
        // as a message's parts (see message): an edit tried again posts none of them twice
        const key = sendingKey(remoteChat, edit.eventId);
        const s = this.loadSending(key);
        try {
          for (const post of posts) {
            const sent = await this.postOnce(key, s, remoteChat, first.parentId, first.threadId, post, now, edit.eventId);
            now.push(messageRef(remoteChat, sent.where, sent.message.id));
          }
        } finally {
          this.saveSending(key, s);
        }
      }
    } catch (err) {
      throw toDeliveryError(err, 'edit');
    } finally {
      this.recordParts(remoteChat, sent, now);
    }
  }

  async redaction(r: MatrixRedaction): Promise<void> {
    const client = this.requireClient();
    const chat = r.portal.remoteChat;
    const sent = r.target.remoteIds.filter((id) => !parseReactionRef(id));
    // the message's parts as they are now (core knows those it was sent as, not what an edit deleted or added)
    const ids = [...r.target.remoteIds.filter((id) => parseReactionRef(id)), ...(sent.length ? this.partsOf(chat, sent) : [])];
    for (const id of ids) {
      const reaction = parseReactionRef(id);
      if (reaction) {
        await this.removeReaction(r.portal.remoteChat, r.target.eventId, reaction.message, reaction.emoji);
        continue;
      }
      const t = parseMessageRef(r.portal.remoteChat, id);
      if (!t) continue;
      this.noteDeleted(t.messageId);
      try {
        await this.d.webhooks.delete(t.parentId, t.threadId, t.messageId);
      } catch (err) {
        if (discordCode(err) !== UNKNOWN_MESSAGE) throw toDeliveryError(err, 'deletion');
        // not from the current webhook: the bot may delete it if one of the bridge's older webhooks posted it
        const m = await client.rest.get(Routes.channelMessage(t.channelId, t.messageId)).catch(() => undefined) as APIMessage | undefined;
        if (!m) continue; // already gone
        if (!this.d.webhooks.isOurs(m.webhook_id)) {
          throw new DeliveryError('only messages sent from Matrix can be deleted on Discord from here', true);
        }
        await client.rest.delete(Routes.channelMessage(t.channelId, t.messageId)).catch((e: unknown) => { throw toDeliveryError(e, 'deletion'); });
      }
    }
    if (sent.length) this.d.ctx.kv.delete(partsKey(chat, sent[0]!));
  }

  async reaction(reaction: MatrixReaction): Promise<SendResult> {
    const client = this.requireClient();
    const targetId = reaction.target.remoteIds.find((id) => !parseReactionRef(id));
    const t = targetId ? parseMessageRef(reaction.portal.remoteChat, targetId) : undefined;
    if (!targetId || !t) return {};
    let tries: string[];
    if (reaction.key.startsWith('mxc://')) {
      const e = this.d.emojis.byMxc(reaction.key);
      if (!e) return {}; // a Matrix custom emoji Discord does not have
      tries = [`${e.animated ? 'a:' : ''}${e.name}:${e.id}`];
    } else {
      // Matrix clients send emoji with VS16 (U+FE0F, "show as emoji"), which Discord refuses for many
      // (10014 Unknown Emoji): without it first, then as sent (in case Discord knows one only so)
      tries = [...new Set([reaction.key.replace(/\uFE0F/g, ''), reaction.key])];
    }
    let emoji: string | undefined;
    for (const candidate of tries) {
      try {
        await client.rest.put(Routes.channelMessageOwnReaction(t.channelId, t.messageId, encodeURIComponent(candidate)));
        emoji = candidate;
        break;
      } catch (err) {
        if (discordCode(err) === UNKNOWN_EMOJI) continue;
        // reactions are decoration: one Discord cannot show is logged, not reported as a failed delivery
        if (discordCode(err) === UNKNOWN_MESSAGE) break;
        throw toDeliveryError(err, 'reaction');
      }
    }
    if (emoji === undefined) {
      this.d.ctx.log.info('Matrix reaction not bridged: Discord does not know the emoji or the message', { key: reaction.key, eventId: reaction.eventId });
      return {};
    }
    this.d.store.addReaction(reaction.eventId, reaction.portal.remoteChat, targetId, emoji);
    return { remoteIds: [reactionRef(targetId, emoji)] };
  }

  private async removeReaction(chat: string, eventId: string, target: string, emoji: string): Promise<void> {
    const remaining = this.d.store.removeReaction(eventId, chat, target, emoji);
    if (remaining > 0) return; // other Matrix users still react with it: the bot's reaction stays
    const t = parseMessageRef(chat, target);
    if (!t) return;
    try {
      await this.requireClient().rest.delete(Routes.channelMessageOwnReaction(t.channelId, t.messageId, encodeURIComponent(emoji)));
    } catch (err) {
      if (discordCode(err) !== UNKNOWN_MESSAGE) throw toDeliveryError(err, 'reaction removal');
    }
  }

  async typing(typing: MatrixTyping): Promise<void> {
    const client = this.d.client();
    if (!typing.typing || !client) return;
    const chat = parseChat(typing.portal.remoteChat);
    if (!chat) return;
    const where = chat.threadId ?? chat.channelId;
    const last = this.typingAt.get(where) ?? 0;
    if (Date.now() - last < TYPING_EVERY_MS) return;
    this.typingAt.set(where, Date.now());
    await client.rest.post(Routes.channelTyping(where));
  }
}
