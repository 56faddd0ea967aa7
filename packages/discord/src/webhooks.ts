/**
 * The webhooks Matrix users speak through: one per channel, found or created on first use, stored,
 * and recreated when someone deleted it on Discord. Every webhook the bridge ever made is known,
 * so messages it posted are recognised as the bridge's own whichever order the gateway echo and
 * the HTTP response arrive in (the echo carries the webhook id, known before the message is sent).
 *
 * A webhook post has no nonce: when Discord stores a message but its answer is lost (a timeout, a
 * connection reset, a 5xx from behind its proxies), posting it again shows it twice. So posts are
 * never retried blindly: they go through a REST client without retries (see hookRest), and what
 * was posted without a clear answer is looked for on Discord ({@link WebhookPool.findPosted}) before
 * it is posted again. ToDiscord notes each attempt and decides when to look.
 */
import type { Logger } from '@trestle/core';
import {
  makeURLSearchParams, REST, Routes, SnowflakeUtil, type APIMessage, type APIWebhook, type RawFile,
} from 'discord.js';
import type { DiscordStore, StoredWebhook } from './store.js';

/** Discord error codes that mean the webhook is gone or its token no longer works. */
const WEBHOOK_GONE = new Set([10015, 50027]);
export const UNKNOWN_MESSAGE = 10008;

export const discordCode = (err: unknown): number | string | undefined => (err as { code?: number | string })?.code;
export const discordStatus = (err: unknown): number | undefined => (err as { status?: number })?.status;

export interface WebhookMessageBody {
  content?: string;
  username?: string;
  avatar_url?: string;
  allowed_mentions?: unknown;
  attachments?: { id: number; filename: string; description?: string }[];
}

// ------------------------------------------------------------------ posts whose answer was lost

/**
 * How long before an attempt the search for its copy starts: the attempt's time is the bridge's clock,
 * the message's id Discord's, and the two may disagree by a few seconds (more on a host whose clock
 * drifts). A wider window costs nothing but a longer look in a busy channel: a copy must match the
 * attempt in every field (see {@link isCopyOf}) and be mapped to no Matrix event yet.
 */
export const COPY_SEARCH_SLACK_MS = 30_000;
/** At most this many pages of 100 messages are looked through for a copy (a busy channel after a long outage). */
const COPY_SEARCH_PAGES = 5;

/**
 * One webhook post as it was tried: where, what, under which name, with which files, and when. Kept
 * (JSON, in ToDiscord's store) until Discord's answer says whether the message is there.
 */
export interface PostAttempt {
  /** The channel, or the thread, the message went to (where it is looked for). */
  where: string;
  content: string;
  username?: string;
  /** The files' names and sizes (a size Discord keeps as sent; a name it may tidy: see {@link sameFileName}). */
  files: { name: string; size?: number }[];
  /** When it was tried (ms since the epoch, the bridge's clock). */
  at: number;
}

const sizeOf = (data: RawFile['data']): number | undefined =>
  typeof data === 'string' ? Buffer.byteLength(data) : ArrayBuffer.isView(data) ? data.byteLength : undefined;

/** The attempt to post `body` and `files` to `where` (a channel or thread id) now. */
export function postAttempt(where: string, body: WebhookMessageBody, files: RawFile[], at = Date.now()): PostAttempt {
  return {
    where, content: body.content ?? '', ...(body.username !== undefined ? { username: body.username } : {}),
    files: files.map((f) => { const size = sizeOf(f.data); return { name: f.name, ...(size !== undefined ? { size } : {}) }; }), at,
  };
}

/**
 * Whether Discord may have stored a post that failed: it gave no answer (a timeout, a connection
 * closed or reset) or a 5xx, which a proxy may send for a request the API went on to handle. A 4xx
 * (a 429 included: discord.js waits those out itself) is Discord refusing the message: not stored.
 */
export function mayHavePosted(err: unknown): boolean {
  const status = discordStatus(err);
  return status === undefined || status >= 500;
}

/**
 * Discord tidies uploaded file names (spaces and characters it does not keep become `_` or go): names
 * are compared by their letters, digits and dots alone. The sizes, which it keeps, tell files apart.
 */
export function sameFileName(sent: string, stored: string): boolean {
  const tidy = (n: string): string => n.toLowerCase().replace(/[^a-z0-9.]/g, '');
  return tidy(sent) === tidy(stored);
}

/**
 * Is `m` the message `attempt` posted? Same text (Discord trims it), same name, the same files in the
 * same order. Whose webhook posted it, and whether it is already some Matrix event's, the caller asks.
 */
export function isCopyOf(attempt: PostAttempt, m: APIMessage): boolean {
  if (m.content.trim() !== attempt.content.trim()) return false;
  if (attempt.username !== undefined && m.author.username !== attempt.username) return false;
  const got = m.attachments ?? [];
  return got.length === attempt.files.length && attempt.files.every((f, i) =>
    sameFileName(f.name, got[i]!.filename) && (f.size === undefined || f.size === got[i]!.size));
}

/** A snowflake (as Discord's `after` takes one) of the time `ms`: a message created after it has a greater id. */
export const snowflakeAt = (ms: number): string => ((BigInt(Math.max(0, Math.floor(ms))) - SnowflakeUtil.epoch) << 22n).toString();

/**
 * The copy of `attempt` among `messages` (any order): posted by one of the bridge's webhooks, matching
 * it ({@link isCopyOf}), made since shortly before the attempt, and not `taken` (another Matrix event's,
 * or an earlier part of this one's). The oldest if several: an attempt's copy is the first after it.
 */
export function findCopy(attempt: PostAttempt, messages: readonly APIMessage[], isOurs: (webhookId: string | null | undefined) => boolean,
  taken: (m: APIMessage) => boolean): APIMessage | undefined {
  const since = BigInt(snowflakeAt(attempt.at - COPY_SEARCH_SLACK_MS));
  return [...messages].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1))
    .find((m) => BigInt(m.id) > since && isOurs(m.webhook_id) && isCopyOf(attempt, m) && !taken(m));
}

export class WebhookPool {
  private readonly ours: Set<string>;
  private readonly pending = new Map<string, Promise<StoredWebhook>>();
  /** The REST client of webhook calls, and the bot's client it was made from (see hookRest). */
  private hooks?: { source: REST; rest: REST };

  constructor(
    private readonly store: DiscordStore,
    private readonly rest: () => REST,
    private readonly botUserId: () => string | undefined,
    private readonly name: string,
    private readonly log: Logger,
  ) {
    this.ours = new Set(store.allWebhookIds());
  }

  /** Whether a webhook is one the bridge made (its messages are Matrix users' messages). */
  isOurs(webhookId: string | null | undefined): boolean {
    return !!webhookId && this.ours.has(webhookId);
  }

  /** The channel's webhook, found or created once even under concurrent calls. */
  get(channelId: string): Promise<StoredWebhook> {
    const stored = this.store.webhookFor(channelId);
    if (stored) return Promise.resolve(stored);
    const running = this.pending.get(channelId);
    if (running) return running;
    const p = this.findOrCreate(channelId).finally(() => this.pending.delete(channelId));
    this.pending.set(channelId, p);
    return p;
  }

  private async findOrCreate(channelId: string): Promise<StoredWebhook> {
    const bot = this.botUserId();
    const existing = (await this.rest().get(Routes.channelWebhooks(channelId)) as APIWebhook[])
      .find((w) => w.token && w.user?.id === bot && w.name === this.name);
    const hook = existing ?? (await this.rest().post(Routes.channelWebhooks(channelId), { body: { name: this.name } }) as APIWebhook);
    if (!hook.token) throw new Error(`Discord returned webhook ${hook.id} without a token`);
    const w = { id: hook.id, channelId, token: hook.token };
    this.ours.add(w.id);
    this.store.addWebhook(w);
    this.log.info(existing ? 'using the bridge\'s existing webhook in a channel' : 'created a webhook in a channel', { channelId, webhookId: w.id });
    return w;
  }

  /** Run `fn` with the channel's webhook; if Discord says it is gone, make a new one and run it again. */
  private async withWebhook<T>(channelId: string, fn: (w: StoredWebhook) => Promise<T>): Promise<T> {
    const w = await this.get(channelId);
    try {
      return await fn(w);
    } catch (err) {
      const code = discordCode(err);
      if (typeof code !== 'number' || !WEBHOOK_GONE.has(code)) throw err;
      this.log.warn('the channel webhook was deleted on Discord; making a new one', { channelId, webhookId: w.id });
      this.store.webhookGone(w.id);
      return fn(await this.get(channelId));
    }
  }

  /**
   * The REST client webhook calls (execute, edit, delete: by the webhook's token, `auth: false`) go
   * through: the bot client's options (the API address among them) but `retries: 0`. @discordjs/rest
   * retries any request, a POST included, after a timeout, a reset connection or a 5xx, up to three
   * times; a post Discord stored but answered late, or with a 5xx, would be posted again each time.
   * Without retries the failure comes back to ToDiscord, which looks for the message before trying
   * again. (An edit or a deletion repeated does no harm, but they share the webhook's rate limits with
   * its posts, which one client keeps track of.) 429s are still waited out in place: Discord stored
   * nothing. Made again when the bot's client is (a new login), the old one's timers stopped.
   */
  private hookRest(): REST {
    const source = this.rest();
    if (this.hooks?.source !== source) {
      this.hooks?.rest.clearHashSweeper();
      this.hooks?.rest.clearHandlerSweeper();
      this.hooks = { source, rest: new REST({ ...source.options, retries: 0 }) };
    }
    return this.hooks.rest;
  }

  /**
   * The copy of a post whose answer was lost ({@link mayHavePosted}), if Discord has it: the messages of
   * the channel or thread since shortly before the attempt, read by the bot, looked through for one of
   * the bridge's webhooks' that matches the attempt and is not `taken` ({@link findCopy}). Undefined:
   * Discord did not store it. Throws when the messages cannot be read (the caller decides what then).
   */
  async findPosted(attempt: PostAttempt, taken: (m: APIMessage) => boolean): Promise<APIMessage | undefined> {
    let after = snowflakeAt(attempt.at - COPY_SEARCH_SLACK_MS);
    for (let page = 0; page < COPY_SEARCH_PAGES; page++) {
      const messages = await this.rest().get(Routes.channelMessages(attempt.where), { query: makeURLSearchParams({ after, limit: 100 }) }) as APIMessage[];
      const copy = findCopy(attempt, messages, (id) => this.isOurs(id), taken);
      if (copy || messages.length < 100) return copy;
      after = messages.reduce((max, m) => (BigInt(m.id) > BigInt(max) ? m.id : max), after);
    }
    // so many messages since: the copy, if any, is further on, and the post is sent again (a duplicate at worst)
    this.log.warn('stopped looking for a Discord post whose answer was lost after the most messages looked through; taken as not posted',
      { where: attempt.where, messages: COPY_SEARCH_PAGES * 100 });
    return undefined;
  }

  execute(channelId: string, threadId: string | undefined, body: WebhookMessageBody, files: RawFile[] = []): Promise<APIMessage> {
    return this.withWebhook(channelId, async (w) => await this.hookRest().post(Routes.webhook(w.id, w.token), {
      body, auth: false, query: makeURLSearchParams({ wait: true, ...(threadId ? { thread_id: threadId } : {}) }),
      ...(files.length ? { files } : {}),
    }) as APIMessage);
  }

  edit(channelId: string, threadId: string | undefined, messageId: string, body: WebhookMessageBody): Promise<APIMessage> {
    return this.withWebhook(channelId, async (w) => await this.hookRest().patch(Routes.webhookMessage(w.id, w.token, messageId), {
      body, auth: false, ...(threadId ? { query: makeURLSearchParams({ thread_id: threadId }) } : {}),
    }) as APIMessage);
  }

  async delete(channelId: string, threadId: string | undefined, messageId: string): Promise<void> {
    await this.withWebhook(channelId, async (w) => this.hookRest().delete(Routes.webhookMessage(w.id, w.token, messageId), {
      auth: false, ...(threadId ? { query: makeURLSearchParams({ thread_id: threadId }) } : {}),
    }));
  }
}
