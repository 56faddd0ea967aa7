/**
 * The media proxy: remote users (on IRC, say) cannot download from an authenticated Matrix media
 * repository, so links the bridge hands out point here instead. Each link carries an HMAC of the
 * media id, so the bridge serves only media it linked to, not the whole repository.
 *   GET /_trestle/media/v1/<server>/<mediaId>/<sig>[/<filename>]
 */
import type { Request, Response, Router } from 'express';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../util/log.js';
import { express } from './express.js';

export class MediaLinks {
  constructor(private readonly key: string, private readonly publicBase: string) {}

  private sig(server: string, mediaId: string): string {
    return createHmac('sha256', this.key).update(`${server}/${mediaId}`).digest('base64url').slice(0, 22);
  }

  /** A public URL for an mxc:// URL (undefined if it is not one). */
  url(mxc: string, filename?: string): string | undefined {
    const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(mxc);
    if (!m) return undefined;
    const [, server, mediaId] = m as unknown as [string, string, string];
    const name = filename ? `/${encodeURIComponent(filename.replace(/[/\\]/g, '_'))}` : '';
    return `${this.publicBase.replace(/\/+$/, '')}/_trestle/media/v1/${encodeURIComponent(server)}/${mediaId}/${this.sig(server, mediaId)}${name}`;
  }

  verify(server: string, mediaId: string, sig: string): boolean {
    const want = Buffer.from(this.sig(server, mediaId));
    const got = Buffer.from(sig);
    return want.length === got.length && timingSafeEqual(want, got);
  }
}

/**
 * `stallMs`: how long the homeserver may take to start answering, and then to send each next piece
 * of the file (a large file on a slow line takes as long as it takes, as long as it moves).
 */
export function mediaRouter(links: MediaLinks, homeserverUrl: string, asToken: string, log: Logger, stallMs = 60_000): Router {
  const r = express().Router();
  const serve = async (req: Request, res: Response): Promise<void> => {
    const { server = '', mediaId = '', sig = '' } = req.params as Record<string, string>;
    if (!links.verify(server, mediaId, sig)) { res.status(404).json({ errcode: 'M_NOT_FOUND', error: 'No such media' }); return; }
    const upstream = `${homeserverUrl.replace(/\/+$/, '')}/_matrix/client/v1/media/download/${encodeURIComponent(server)}/${encodeURIComponent(mediaId)}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`the homeserver sent nothing for ${stallMs} ms`)), stallMs);
    const moved = (): void => { timer.refresh(); };
    // whoever asked went away: stop fetching
    const abandoned = new Error('the download was abandoned');
    res.once('close', () => { clearTimeout(timer); abort.abort(abandoned); });
    try {
      const up = await fetch(upstream, { headers: { authorization: `Bearer ${asToken}` }, signal: abort.signal });
      if (!up.ok || !up.body) { res.status(up.status === 404 ? 404 : 502).json({ errcode: 'M_UNKNOWN', error: `homeserver answered ${up.status}` }); return; }
      // fetch() unpacks a compressed answer: its content-length is the packed size, and sent with
      // the unpacked bytes it would cut the file short and break the connection's next answer
      const packed = up.headers.get('content-encoding') !== null && up.headers.get('content-encoding') !== 'identity';
      for (const h of ['content-type', ...(packed ? [] : ['content-length']), 'content-disposition']) {
        const v = up.headers.get(h);
        if (v) res.setHeader(h, v);
      }
      // what users uploaded, served from the bridge's own site: never run as a page of it (an HTML
      // file with a script), nor read as another type than the one given (as the homeserver does)
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('content-security-policy', "sandbox; default-src 'none'; media-src 'self'; img-src 'self'");
      res.setHeader('cache-control', 'public, max-age=86400, immutable');
      moved();
      const body = Readable.fromWeb(up.body as import('node:stream/web').ReadableStream);
      body.on('data', moved);
      // pipeline, not pipe: an error on either side (a stall, the asker gone) ends both, and is handled here
      await pipeline(body, res);
    } catch (err) {
      if (abort.signal.reason !== abandoned) log.warn('media proxy failed', { server, mediaId, err: err as Error });
      if (!res.headersSent) res.status(502).json({ errcode: 'M_UNKNOWN', error: 'could not fetch media' });
      else res.destroy();
    } finally {
      clearTimeout(timer);
    }
  };
  r.get('/:server/:mediaId/:sig', serve);
  r.get('/:server/:mediaId/:sig/:filename', serve);
  return r;
}
