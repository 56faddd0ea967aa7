/**
 * The media proxy against a real node:http "homeserver": files pass through, and a download that
 * stalls or is abandoned half-way ends that download only (it used to take the process down: an
 * abort with no one listening for it).
 */
import { createServer, get as httpGet, type Server, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { express } from '../../../packages/core/src/http/express.js';
import { MediaLinks, mediaRouter } from '../../../packages/core/src/http/media.js';
import { createLogger, type LogFields } from '../../../packages/core/src/util/log.js';

const closers: (() => void)[] = [];
afterEach(() => { for (const c of closers.splice(0)) c(); });

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => { server.closeAllConnections(); server.close(); });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A homeserver whose download answers are written by `answer`, and the bridge's proxy in front of it. */
async function proxy(answer: (res: ServerResponse) => void, stallMs: number) {
  const upstreamClosed: Promise<void>[] = [];
  const hs = createServer((req, res) => {
    upstreamClosed.push(new Promise((r) => res.on('close', r)));
    answer(res);
  });
  const hsUrl = await listen(hs);
  const warnings: LogFields[] = [];
  const log = createLogger({ level: 'warn', format: 'json', sink: { write: (line: string) => { warnings.push(JSON.parse(line) as LogFields); } } });
  const links = new MediaLinks('secret', 'http://unused');
  const app = express()();
  app.use('/_trestle/media/v1', mediaRouter(links, hsUrl, 'as-token', log, stallMs));
  const base = await listen(createServer(app));
  const path = new URL(links.url('mxc://hs.test/abcDEF', 'a.bin')!).pathname;
  return { url: base + path, upstreamClosed, warnings };
}

const chunk = Buffer.alloc(64 * 1024, 7);

describe('media proxy', () => {
  it('passes a file through with its headers', async () => {
    const p = await proxy((res) => res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': chunk.length * 3 }).end(Buffer.concat([chunk, chunk, chunk])), 1000);
    const got = await fetch(p.url);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await got.arrayBuffer()).equals(Buffer.concat([chunk, chunk, chunk]))).toBe(true);
  });

  it('serves a file the homeserver sent compressed whole, and never as a page of the bridge\'s site', async () => {
    const text = Buffer.from('<html><script>alert(document.cookie)</script></html>'.repeat(200));
    const gz = gzipSync(text);
    const p = await proxy((res) => res.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'content-length': gz.length }).end(gz), 1000);
    // fetch() unpacks what it reads: the length the homeserver gave is the packed one, not what goes out
    const got = await new Promise<{ headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      httpGet(p.url, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d)).on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) })).on('error', reject);
      }).on('error', reject);
    });
    expect(got.body.equals(text)).toBe(true);
    expect(got.headers['content-length'] === undefined || Number(got.headers['content-length']) === text.length).toBe(true);
    expect(got.headers['x-content-type-options']).toBe('nosniff');
    expect(got.headers['content-security-policy']).toMatch(/sandbox/);
  });

  it('refuses a link with a wrong signature', async () => {
    const p = await proxy((res) => res.end('x'), 1000);
    expect((await fetch(p.url.replace(/\/[^/]+\/a\.bin$/, '/AAAAAAAAAAAAAAAAAAAAAA/a.bin'))).status).toBe(404);
  });

  it('ends a download whose homeserver stops sending, and keeps serving', async () => {
    let n = 0;
    const p = await proxy((res) => {
      if (++n === 1) { res.writeHead(200, { 'content-length': chunk.length * 4 }); res.write(chunk); return; } // then nothing
      res.end('fine');
    }, 300);
    const stalled = await fetch(p.url);
    expect(stalled.status).toBe(200);
    // the proxy gives up on the homeserver: the body ends short, with an error, rather than hanging
    await expect(stalled.arrayBuffer()).rejects.toThrow();
    await p.upstreamClosed[0];
    expect(p.warnings.some((w) => w['msg'] === 'media proxy failed')).toBe(true);
    expect(await (await fetch(p.url)).text()).toBe('fine');
  });

  it('stops fetching when the asker goes away half-way', async () => {
    const p = await proxy((res) => { res.writeHead(200, { 'content-length': chunk.length * 100 }); res.write(chunk); }, 300);
    const asker = new AbortController();
    const got = await fetch(p.url, { signal: asker.signal });
    const reader = got.body!.getReader();
    await reader.read();
    asker.abort();
    await p.upstreamClosed[0]; // the homeserver's side is closed too, not left open
    // and well past the stall time nothing blows up (an unhandled error here fails the run)
    await new Promise((r) => setTimeout(r, 600));
    expect(p.warnings).toEqual([]);
  });
});
