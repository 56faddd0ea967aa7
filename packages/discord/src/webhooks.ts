/**
 * The webhooks Matrix users speak through: one per channel, found or created on first use, stored,
 * and recreated when someone deleted it on Discord. Every webhook the bridge ever made is known,
 * so messages it posted are recognised as the bridge's own whichever order the gateway echo and
 * the HTTP response arrive in (the echo carries the webhook id, known before the message is sent).
 */
import type { Logger } from '@trestle/core';
import { makeURLSearchParams, Routes, type APIMessage, type APIWebhook, type RawFile, type REST } from 'discord.js';
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

export class WebhookPool {
  private readonly ours: Set<string>;
  private readonly pending = new Map<string, Promise<StoredWebhook>>();

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

  execute(channelId: string, threadId: string | undefined, body: WebhookMessageBody, files: RawFile[] = []): Promise<APIMessage> {
    return this.withWebhook(channelId, async (w) => await this.rest().post(Routes.webhook(w.id, w.token), {
      body, auth: false, query: makeURLSearchParams({ wait: true, ...(threadId ? { thread_id: threadId } : {}) }),
      ...(files.length ? { files } : {}),
    }) as APIMessage);
  }

  edit(channelId: string, threadId: string | undefined, messageId: string, body: WebhookMessageBody): Promise<APIMessage> {
    return this.withWebhook(channelId, async (w) => await this.rest().patch(Routes.webhookMessage(w.id, w.token, messageId), {
      body, auth: false, ...(threadId ? { query: makeURLSearchParams({ thread_id: threadId }) } : {}),
    }) as APIMessage);
  }

  async delete(channelId: string, threadId: string | undefined, messageId: string): Promise<void> {
    await this.withWebhook(channelId, async (w) => this.rest().delete(Routes.webhookMessage(w.id, w.token, messageId), {
      auth: false, ...(threadId ? { query: makeURLSearchParams({ thread_id: threadId }) } : {}),
    }));
  }
}
