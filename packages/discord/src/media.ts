/**
 * Files between Discord and Matrix: downloads with a size cap, Discord attachments as Matrix media
 * events, custom emojis uploaded once to the media repository and remembered both ways, and
 * stickers as `m.sticker` events.
 */
import type { Logger, NetworkContext, RemoteMessagePart } from '@trestle/core';
import { StickerFormatType } from 'discord.js';
import { msgtypeFor } from './convert/index.js';
import type { DiscordStore, StoredEmoji } from './store.js';

export type Download = { data: Buffer; contentType: string | undefined } | { tooBig: true };

/** Fetch a URL, giving up (without reading the rest) once more than `maxBytes` arrived. */
export async function download(url: string, maxBytes: number, timeoutMs = 60_000): Promise<Download> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok || !res.body) throw new Error(`download failed: HTTP ${res.status} for ${url}`);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body.cancel().catch(() => undefined);
    return { tooBig: true };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > maxBytes) return { tooBig: true };
    chunks.push(Buffer.from(chunk));
  }
  return { data: Buffer.concat(chunks), contentType: res.headers.get('content-type') ?? undefined };
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export interface AttachmentInfo {
  name: string;
  url: string;
  size: number;
  contentType: string | null;
  width: number | null;
  height: number | null;
  description: string | null;
}

/** The Discord message an attachment came in (discord.js's `Message` has these fields). */
export interface AttachmentSource {
  /** null in a DM. */
  guildId: string | null;
  /** The channel or thread. */
  channelId: string;
  id: string;
}

/** A link to a Discord message, which opens it in Discord's app or web client, and lasts as long as the message. */
export function messageLink(m: AttachmentSource): string {
  return `https://discord.com/channels/${m.guildId ?? '@me'}/${m.channelId}/${m.id}`;
}

/**
 * One Discord attachment as a Matrix event: the file copied to the media repository, or, if it is
 * too big, cannot be downloaded, or the homeserver does not take it, its name and size with a link
 * to the message it is in. Not a link to the file: Discord's CDN links are signed and stop working
 * after about a day, and this one stays in the room's history. `from`: that message; without it
 * (a caller that does not pass it) the CDN link is all there is.
 */
export async function attachmentPart(att: AttachmentInfo, maxBytes: number, ctx: Pick<NetworkContext, 'uploadMedia'>, log: Logger,
  from?: AttachmentSource): Promise<RemoteMessagePart> {
  const link = (): RemoteMessagePart => ({
    content: { msgtype: 'm.text', body: `📎 ${att.name} (${formatSize(att.size)}): ${from ? messageLink(from) : att.url}` },
  });
  if (att.size > maxBytes) return link();
  let got: Download;
  try {
    got = await download(att.url, maxBytes);
  } catch (err) {
    log.warn('could not download a Discord attachment; sending a link instead', { url: att.url, err: err as Error });
    return link();
  }
  if ('tooBig' in got) return link();
  const mimetype = (att.contentType ?? got.contentType ?? 'application/octet-stream').split(';')[0]!.trim();
  let up: { mxc: string };
  try {
    up = await ctx.uploadMedia(got.data, att.contentType ?? got.contentType ?? 'application/octet-stream', att.name);
  } catch (err) {
    // (M_TOO_LARGE, or the homeserver unreachable). Not retried here: the message is not in core's
    // durable queue yet, and waiting would hold up the channel; the text and the link lose nothing
    // (the file stays on Discord) and the message goes on in order.
    log.warn('could not upload a Discord attachment to the homeserver; sending a link instead', { url: att.url, err: err as Error });
    return link();
  }
  return {
    content: {
      msgtype: msgtypeFor(mimetype), body: att.description || att.name, filename: att.name, url: up.mxc,
      info: { mimetype, size: got.data.length, ...(att.width ? { w: att.width } : {}), ...(att.height ? { h: att.height } : {}) },
    },
  };
}

/** Custom emojis: uploaded once, then known by id (Discord → Matrix) and by mxc (Matrix → Discord). */
export class EmojiBridge {
  private readonly pending = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly store: DiscordStore,
    private readonly ctx: Pick<NetworkContext, 'uploadMedia'>,
    private readonly imageUrl: (id: string, animated: boolean) => string,
    private readonly log: Logger,
  ) {}

  /** The mxc of an uploaded emoji, without uploading. */
  known(id: string): string | undefined {
    return this.store.emoji(id)?.mxc;
  }

  byMxc(mxc: string): StoredEmoji | undefined {
    return this.store.emojiByMxc(mxc);
  }

  /** The mxc of an emoji, uploading it the first time; undefined if it cannot be fetched. */
  mxc(e: { id: string; name: string; animated: boolean }): Promise<string | undefined> {
    const stored = this.store.emoji(e.id);
    if (stored) return Promise.resolve(stored.mxc);
    const running = this.pending.get(e.id);
    if (running) return running;
    const p = this.upload(e).finally(() => this.pending.delete(e.id));
    this.pending.set(e.id, p);
    return p;
  }

  private async upload(e: { id: string; name: string; animated: boolean }): Promise<string | undefined> {
    try {
      const got = await download(this.imageUrl(e.id, e.animated), 2 * 1024 * 1024, 20_000);
      if ('tooBig' in got) return undefined;
      const up = await this.ctx.uploadMedia(got.data, got.contentType ?? (e.animated ? 'image/gif' : 'image/png'), `${e.name}.${e.animated ? 'gif' : 'png'}`);
      this.store.putEmoji({ ...e, mxc: up.mxc });
      return up.mxc;
    } catch (err) {
      this.log.warn('could not copy a custom emoji; shown as its name', { emoji: e.name, id: e.id, err: err as Error });
      return undefined;
    }
  }
}

/** What the bridge needs of a Discord sticker. */
export interface StickerInfo { id: string; name: string; format: StickerFormatType; url: string }

/** Stickers as Matrix `m.sticker` events: the image copied once to the media repository, then reused. */
export class StickerBridge {
  constructor(
    private readonly store: DiscordStore,
    private readonly ctx: Pick<NetworkContext, 'uploadMedia'>,
    private readonly log: Logger,
  ) {}

  /** The Matrix event for a sticker: `m.sticker`, or its name as text when Matrix cannot show it (Lottie) or it cannot be fetched. */
  async part(s: StickerInfo): Promise<RemoteMessagePart> {
    const asText: RemoteMessagePart = { content: { msgtype: 'm.text', body: `[sticker: ${s.name}]` } };
    if (s.format === StickerFormatType.Lottie) return asText; // an animation script, not an image
    let stored = this.store.sticker(s.id);
    if (!stored) {
      try {
        const got = await download(s.url, 2 * 1024 * 1024, 20_000);
        if ('tooBig' in got) return asText;
        const mimetype = (got.contentType ?? (s.format === StickerFormatType.GIF ? 'image/gif' : 'image/png')).split(';')[0]!.trim();
        const ext = mimetype === 'image/gif' ? 'gif' : 'png';
        const up = await this.ctx.uploadMedia(got.data, mimetype, `${s.name}.${ext}`);
        stored = { mxc: up.mxc, mimetype };
        this.store.putSticker(s.id, up.mxc, mimetype);
      } catch (err) {
        this.log.warn('could not copy a Discord sticker; sent as its name', { sticker: s.name, id: s.id, err: err as Error });
        return asText;
      }
    }
    // Discord shows stickers at 160×160; for m.sticker, info.w/h are the size to show it at
    return { type: 'm.sticker', content: { body: s.name, url: stored.mxc, info: { mimetype: stored.mimetype, w: 160, h: 160 } } };
  }
}
