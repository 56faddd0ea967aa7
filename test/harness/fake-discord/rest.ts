/**
 * The HTTP side of the fake: `/api[/v10]/...` REST (body parsing incl. multipart, the request log,
 * injected failures, the Authorization check, rate-limit headers, the echo order of writes) and
 * `/cdn/...` for uploaded files. The endpoints themselves are in routes.ts.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, type FakeSettings, type UploadedFile } from './common.js';
import type { Gateway } from './gateway.js';
import type { Route, RouteContext } from './routes.js';
import type { World } from './state.js';

const API_VERSION = 10;

/**
 * One REST request as the fake saw it (CDN fetches are not logged). `path` is without `/api/v10` and
 * percent-decoded per segment; `route` is the matched pattern, e.g. '/channels/:channel/messages'.
 */
export interface RequestRecord {
  method: string;
  path: string;
  route: string | null;
  query: Record<string, string>;
  body: unknown;
  files: { name: string; size: number; contentType: string | undefined }[];
  /** The Authorization header, or null when none was sent (webhook-token routes). */
  auth: string | null;
  /** The status answered; 0 while unanswered, and for good when an injected failure left it so ('hang', 'reset'). */
  status: number;
  at: number;
}

export interface FailOptions {
  /** 429 only: seconds, sent as Retry-After (discord.js reads only the header) and as retry_after. Default 0.25. */
  retryAfter?: number;
  /** 429 only: a global rate limit (X-RateLimit-Global), which stalls every route in discord.js. */
  global?: boolean;
  /** 429 only: X-RateLimit-Scope; defaults to 'global' for global limits, else 'user'. */
  scope?: 'user' | 'global' | 'shared';
  /**
   * 429 only: X-RateLimit-Remaining, default 0. Above 0, discord.js 14.28 takes the 429 for a "sublimit";
   * it still retried in place (three concurrent sends kept their order when this was checked).
   */
  remaining?: number;
  /** How many matching requests fail (default 1). */
  times?: number;
  /** An outage: every matching request fails for this many milliseconds from now, however many (`times` is then ignored). */
  forMs?: number;
  /** Replace the JSON error body. */
  body?: unknown;
  /**
   * Carry the request out first (a message stored, its gateway echo sent), then fail its answer: Discord
   * did what was asked and the client cannot know it (the answer lost, or a 5xx from behind its proxies).
   * Counted (`times`) only when a request reaches that point; one Discord refuses (a 4xx) is answered so.
   */
  afterHandling?: boolean;
}

/**
 * A failure that is no answer at all: `hang` never answers (the client gives up at its own timeout;
 * the connection closes when the fake stops); `reset` closes the connection with a TCP reset.
 */
export type NoAnswer = 'hang' | 'reset';

interface Failure {
  matches(method: string, path: string): boolean;
  status: number | NoAnswer;
  opts: FailOptions;
  left: number;
  /** With `forMs`: when the outage ends (Date.now() time). */
  until?: number;
}

export class RestServer {
  readonly requests: RequestRecord[] = [];
  private readonly failures: Failure[] = [];

  constructor(
    private readonly routes: Route[],
    private readonly world: World,
    private readonly gateway: Gateway,
    private readonly settings: FakeSettings,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Make the next request(s) matching `route` fail with `status`. `route` is `'METHOD /path/:param'`
   * (method optional, `*` for any; `:x` matches one segment) or a RegExp tested against `'METHOD /path'`
   * (path without `/api/v10`, segments percent-decoded).
   */
  failNext(route: string | RegExp, status: number | NoAnswer, opts: FailOptions = {}): void {
    this.failures.push({
      matches: compileMatcher(route), status, opts, left: opts.times ?? 1,
      ...(opts.forMs !== undefined ? { until: Date.now() + opts.forMs } : {}),
    });
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (url.pathname.startsWith('/cdn/')) return this.serveFile(url.pathname.slice('/cdn'.length), res);
    // /api/v10/... and the unversioned /api/... (webhook URLs are built without a version).
    const m = /^\/api(?:\/v(\d+))?(\/.*)$/.exec(url.pathname);
    if (!m) return sendJson(res, 404, { message: '404: Not Found', code: 0 });
    if (m[1] && Number(m[1]) !== API_VERSION) return sendJson(res, 400, { message: 'Invalid API version', code: 50041 });
    const path = m[2] as string;
    const method = req.method ?? 'GET';
    let body: Awaited<ReturnType<typeof readBody>>;
    try {
      body = await readBody(req);
    } catch {
      return sendJson(res, 400, { message: 'The request body contains invalid JSON.', code: 50109 });
    }
    const { json, files } = body;
    const segments = path.split('/').filter(Boolean).map(safeDecode);
    const found = this.match(method, segments);
    const rec: RequestRecord = {
      method, path, route: found?.route.pattern ?? null, query: Object.fromEntries(url.searchParams), body: json,
      files: files.map((f) => ({ name: f.name, size: f.data.length, contentType: f.contentType })),
      auth: req.headers.authorization ?? null, status: 0, at: Date.now(),
    };
    this.requests.push(rec);
    this.log(`${method} ${path}`);
    const bucket = bucketHash(method, found?.route.pattern ?? path);
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      rec.status = status;
      sendJson(res, status, body, { ...rateLimitHeaders(bucket), ...headers });
    };

    const failure = this.takeFailure(method, segments, false);
    if (failure) return this.fail(failure, reply, res);
    if (!found) {
      const other = this.routes.some((r) => matchPattern(r.pattern, segments));
      return other ? reply(405, { message: '405: Method Not Allowed', code: 0 })
        : reply(404, { message: `404: Not Found (fake-discord has no route for ${method} ${path})`, code: 0 });
    }
    if (found.route.auth && req.headers.authorization !== `Bot ${this.settings.token}`) {
      return reply(401, { message: '401: Unauthorized', code: 0 });
    }

    const auditReason = req.headers['x-audit-log-reason'];
    const ctx: RouteContext = { params: found.params, query: url.searchParams, body: isObject(json) ? json : {}, files,
      ...(typeof auditReason === 'string' ? { reason: safeDecode(auditReason) } : {}) };
    const dispatchesBefore = this.gateway.dispatchCount;
    let release: (() => void) | undefined;
    let unanswered = false;
    try {
      let out;
      if (this.settings.echoOrder === 'http-first') ({ result: out, release } = this.gateway.hold(() => found.route.handle(ctx)));
      else out = found.route.handle(ctx);
      // gateway-first: give the client time to handle the echo before it sees the response.
      if (this.settings.echoOrder === 'gateway-first' && this.gateway.dispatchCount > dispatchesBefore) await sleep(this.settings.echoDelayMs);
      const after = this.takeFailure(method, segments, true);
      if (after) {
        unanswered = typeof after.status !== 'number';
        return this.fail(after, reply, res);
      }
      reply(out.status ?? (out.body === undefined ? 204 : 200), out.body);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      reply(e.status, e.body());
    } finally {
      if (release) {
        const r = release;
        // no answer ever finishes: the echo of what was done goes out anyway, as on Discord
        if (unanswered) setTimeout(r, this.settings.echoDelayMs);
        else res.once('finish', () => setTimeout(r, this.settings.echoDelayMs));
      }
    }
  }

  /**
   * The injected failure for this request (an outage's, or one of the next `times`), counting it; `after`:
   * those that fail the answer after the request was carried out ({@link FailOptions.afterHandling}).
   */
  private takeFailure(method: string, segments: string[], after: boolean): Failure | undefined {
    const now = Date.now();
    for (const f of this.failures.filter((x) => x.until !== undefined && x.until <= now)) this.failures.splice(this.failures.indexOf(f), 1);
    const path = '/' + segments.join('/');
    const failure = this.failures.find((f) => !!f.opts.afterHandling === after && f.matches(method, path));
    if (failure && failure.until === undefined && --failure.left <= 0) this.failures.splice(this.failures.indexOf(failure), 1);
    return failure;
  }

  private fail(f: Failure, reply: (status: number, body: unknown, headers?: Record<string, string>) => void, res: ServerResponse): void {
    if (f.status === 'hang') return; // the request is left open: the client times out, or the fake's stop closes it
    if (f.status === 'reset') {
      res.socket?.resetAndDestroy();
      return;
    }
    if (f.status !== 429) return reply(f.status, f.opts.body ?? { message: `${f.status}: injected by fake-discord`, code: 0 });
    const retryAfter = f.opts.retryAfter ?? 0.25;
    const headers: Record<string, string> = {
      'Retry-After': String(retryAfter), 'X-RateLimit-Remaining': String(f.opts.remaining ?? 0),
      'X-RateLimit-Reset-After': String(retryAfter), 'X-RateLimit-Reset': ((Date.now() / 1000) + retryAfter).toFixed(3),
      'X-RateLimit-Scope': f.opts.scope ?? (f.opts.global ? 'global' : 'user'),
      ...(f.opts.global ? { 'X-RateLimit-Global': 'true' } : {}),
    };
    reply(429, f.opts.body ?? { message: 'You are being rate limited.', retry_after: retryAfter, global: !!f.opts.global, code: 0 }, headers);
  }

  private match(method: string, segments: string[]): { route: Route; params: string[] } | undefined {
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const params = matchPattern(route.pattern, segments);
      if (params) return { route, params };
    }
    return undefined;
  }

  /** Files under /cdn: attachments by exact path; avatars and emojis with any extension (and any ?size=). */
  private serveFile(path: string, res: ServerResponse): void {
    const decoded = safeDecode(path);
    const f = this.world.files.get(path) ?? this.world.files.get(decoded) ?? this.world.files.get(decoded.replace(/\.\w+$/, ''));
    if (!f) return sendJson(res, 404, { message: '404: Not Found', code: 0 });
    res.writeHead(200, { 'Content-Type': f.contentType, 'Content-Length': f.data.length });
    res.end(f.data);
  }
}

/** Params of `pattern` (`/a/:x/b`) against decoded path segments, or null when it does not match. */
export function matchPattern(pattern: string, segments: string[]): string[] | null {
  const parts = pattern.split('/').filter(Boolean);
  if (parts.length !== segments.length) return null;
  const params: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    const s = segments[i] as string;
    if (p.startsWith(':')) params.push(s);
    else if (p !== s) return null;
  }
  return params;
}

function compileMatcher(route: string | RegExp): Failure['matches'] {
  if (route instanceof RegExp) return (method, path) => route.test(`${method} ${path}`);
  const m = /^(?:([A-Z]+|\*)\s+)?(\/\S*)$/.exec(route.trim());
  if (!m) throw new Error(`fake-discord: failNext route must look like 'POST /channels/:id/messages', got '${route}'`);
  const want = m[1] && m[1] !== '*' ? m[1] : null;
  const pattern = m[2] as string;
  return (method, path) => (!want || want === method) && matchPattern(pattern, path.split('/').filter(Boolean)) !== null;
}

/**
 * Rate-limit headers are optional for discord.js (absent means unlimited), but if sent each route needs its
 * own bucket, or discord.js queues every route of a channel behind one another.
 */
function rateLimitHeaders(bucket: string): Record<string, string> {
  return { 'X-RateLimit-Limit': '50', 'X-RateLimit-Remaining': '49', 'X-RateLimit-Reset-After': '1.000',
    'X-RateLimit-Reset': ((Date.now() / 1000) + 1).toFixed(3), 'X-RateLimit-Bucket': bucket };
}

function bucketHash(method: string, pattern: string): string {
  return createHash('sha1').update(`${method} ${pattern}`).digest('hex').slice(0, 16);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (status === 204 || body === undefined) {
    res.writeHead(204, headers);
    res.end();
    return;
  }
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(buf.length), ...headers });
  res.end(buf);
}

/** JSON bodies, and multipart ones as discord.js sends files: `files[N]` parts plus a `payload_json` part. */
async function readBody(req: IncomingMessage): Promise<{ json: unknown; files: UploadedFile[] }> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  const type = req.headers['content-type'] ?? '';
  if (!raw.length) return { json: null, files: [] };
  if (type.startsWith('application/json')) return { json: JSON.parse(raw.toString('utf8')) as unknown, files: [] };
  if (!type.startsWith('multipart/form-data')) return { json: null, files: [] };
  const form = await new Response(raw, { headers: { 'content-type': type } }).formData();
  const files: UploadedFile[] = [];
  let json: unknown = null;
  for (const [key, value] of form.entries()) {
    if (key === 'payload_json' && typeof value === 'string') json = JSON.parse(value) as unknown;
    else if (typeof value !== 'string') files.push({ name: value.name, data: Buffer.from(await value.arrayBuffer()), contentType: value.type || undefined });
  }
  return { json, files };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
