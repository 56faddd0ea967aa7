/**
 * Requests to the homeserver over keep-alive HTTP/1.1 connections that this module speaks itself.
 *
 * The bridge sends one request per bridged message, so this is a hot path. node:http's client
 * costs about three times the CPU of this one per request here (a warm loop of PUTs on this 2-core
 * machine: 0.19 ms against 0.06 ms), undici's Client about the same as node:http, and fetch more
 * still. A homeserver needs little of HTTP, and this is all it does:
 * - one request at a time per connection (no pipelining), up to `maxSockets` connections, the
 *   rest wait in order;
 * - response bodies by Content-Length, chunked, or up to the close; 1xx answers skipped;
 * - keep-alive unless the server says close; idle connections closed after 30 s, before a proxy
 *   in front of the homeserver would (nginx: 75 s);
 * - a reused connection that turns out to be closed before any byte of the answer is the usual
 *   keep-alive race: the request is sent again once on a new connection, if its method is
 *   idempotent (a PUT with a transaction id is; a POST that creates a room is not).
 * Anything else (a malformed answer, a timeout) rejects the request and drops the connection.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type SecureContextOptions } from 'node:tls';

export interface HttpAnswer { status: number; text: string }

export interface HomeserverHttpOptions {
  /** Give up on a request not answered in this time (the caller reports or retries). */
  timeoutMs?: number;
  maxSockets?: number;
  /** Close a connection idle this long. */
  idleMs?: number;
  /** Extra trusted certificates for an https homeserver (tests; a private CA). */
  ca?: SecureContextOptions['ca'];
}

const MAX_HEAD_BYTES = 64 * 1024;
const MAX_BODY_BYTES = 256 * 1024 * 1024;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * An error of the exchange itself (not an HTTP status): the connection is dropped. `unreachable`
 * when the homeserver did not answer at all (a refused, reset or closed connection, no answer in
 * time), as opposed to answering with something this client cannot read.
 */
export class HttpExchangeError extends Error {
  readonly unreachable: boolean;
  constructor(message: string, options?: { cause?: unknown; unreachable?: boolean }) {
    super(message, options);
    this.name = 'HttpExchangeError';
    this.unreachable = options?.unreachable === true;
  }
}

interface Exchange {
  method: string;
  head: string;
  body?: string | Buffer;
  resolve: (a: HttpAnswer) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  retried: boolean;
}

type Phase = 'head' | 'fixed' | 'chunk-size' | 'chunk-data' | 'trailer' | 'to-close' | 'done';

/** One connection and the parse state of the answer it is reading. */
class Conn {
  ex?: Exchange;
  /** Has served an answer before (so a close before any byte may be the keep-alive race). */
  reused = false;
  private pending: Buffer = Buffer.alloc(0);
  private gotBytes = false;
  private phase: Phase = 'head';
  private status = 0;
  private keepAlive = true;
  private remaining = 0;
  private readonly chunks: Buffer[] = [];
  private bodyBytes = 0;
  /** The whole request has been handed to the kernel (an answer may come before: a 413 to an upload). */
  private sent = false;

  constructor(readonly socket: Socket, private readonly owner: HomeserverHttp) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => this.onClose(err));
    socket.on('close', () => this.onClose());
    socket.on('timeout', () => { if (!this.ex) socket.destroy(); });
  }

  start(ex: Exchange): void {
    this.ex = ex;
    this.pending = Buffer.alloc(0);
    this.gotBytes = false;
    this.phase = 'head';
    this.status = 0;
    this.keepAlive = true;
    this.chunks.length = 0;
    this.bodyBytes = 0;
    this.sent = false;
    this.socket.ref();
    this.socket.setTimeout(0);
    const sent = (err?: Error | null): void => { if (!err && this.ex === ex) this.sent = true; };
    if (ex.body === undefined || typeof ex.body === 'string') {
      this.socket.write(ex.body === undefined ? ex.head : ex.head + ex.body, sent);
    } else {
      this.socket.cork();
      this.socket.write(ex.head);
      this.socket.write(ex.body, sent);
      this.socket.uncork();
    }
  }

  /** Stop using this connection; the exchange (if any) fails with `err`. */
  fail(err: Error): void {
    const ex = this.ex;
    this.ex = undefined;
    this.phase = 'done';
    this.socket.destroy();
    if (ex) this.owner.settle(ex, err);
  }

  private onClose(err?: Error): void {
    const ex = this.ex;
    this.owner.forget(this);
    if (!ex) return;
    this.ex = undefined;
    if (this.phase === 'to-close' && !err) { this.finish(ex); return; }
    this.phase = 'done';
    if (!this.gotBytes && this.reused && !ex.retried && IDEMPOTENT.has(ex.method)) {
      ex.retried = true;
      this.owner.retry(ex);
      return;
    }
    const why = err ? err.message : 'the homeserver closed the connection before answering';
    this.owner.settle(ex, new HttpExchangeError(why, { cause: err, unreachable: true }));
  }

  private onData(d: Buffer): void {
    if (!this.ex) { this.fail(new HttpExchangeError('the homeserver sent bytes nobody asked for')); return; }
    this.gotBytes = true;
    this.pending = this.pending.length ? Buffer.concat([this.pending, d]) : d;
    try {
      this.parse();
    } catch (err) {
      this.fail(err instanceof HttpExchangeError ? err : new HttpExchangeError(String(err)));
    }
  }

  private parse(): void {
    for (;;) {
      switch (this.phase) {
        case 'head': {
          const end = this.pending.indexOf(HEAD_END);
          if (end < 0) {
            if (this.pending.length > MAX_HEAD_BYTES) throw new HttpExchangeError('the answer\'s head is too large');
            return;
          }
          const lines = this.pending.toString('latin1', 0, end).split('\r\n');
          this.pending = this.pending.subarray(end + 4);
          this.readHead(lines);
          break;
        }
        case 'fixed': {
          if (this.pending.length < this.remaining) return;
          this.take(this.remaining);
          this.complete();
          return;
        }
        case 'chunk-size': {
          const eol = this.pending.indexOf(CRLF);
          if (eol < 0) { if (this.pending.length > 1024) throw new HttpExchangeError('a chunk size line is too long'); return; }
          const text = this.pending.toString('latin1', 0, eol).split(';')[0]!.trim();
          if (!/^[0-9a-fA-F]{1,8}$/.test(text)) throw new HttpExchangeError(`a bad chunk size: ${JSON.stringify(text.slice(0, 20))}`);
          this.pending = this.pending.subarray(eol + 2);
          this.remaining = parseInt(text, 16);
          this.phase = this.remaining === 0 ? 'trailer' : 'chunk-data';
          break;
        }
        case 'chunk-data': {
          if (this.pending.length < this.remaining + 2) return;
          if (this.pending[this.remaining] !== 13 || this.pending[this.remaining + 1] !== 10) throw new HttpExchangeError('a chunk does not end with CR LF');
          this.take(this.remaining);
          this.pending = this.pending.subarray(2);
          this.phase = 'chunk-size';
          break;
        }
        case 'trailer': {
          const eol = this.pending.indexOf(CRLF);
          if (eol < 0) { if (this.pending.length > MAX_HEAD_BYTES) throw new HttpExchangeError('the trailer is too large'); return; }
          this.pending = this.pending.subarray(eol + 2);
          if (eol === 0) { this.complete(); return; }
          break;
        }
        case 'to-close': {
          if (this.pending.length) this.take(this.pending.length);
          return;
        }
        case 'done':
          return;
      }
    }
  }

  private readHead(lines: string[]): void {
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
    if (!m) throw new HttpExchangeError(`not an HTTP/1.x answer: ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`);
    const status = Number(m[2]);
    if (status >= 100 && status < 200) return; // 100 Continue, 103 Early Hints: the real answer follows
    let length: number | undefined;
    let chunked = false;
    let connection = '';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HttpExchangeError(`a malformed header line: ${JSON.stringify(line.slice(0, 40))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) throw new HttpExchangeError(`a bad Content-Length: ${JSON.stringify(value)}`);
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        chunked = value.toLowerCase().split(',').map((s) => s.trim()).includes('chunked');
      } else if (name === 'connection') {
        connection += `,${value.toLowerCase()}`;
      }
    }
    this.status = status;
    const tokens = connection.split(',').map((s) => s.trim());
    this.keepAlive = m[1] === '1' ? !tokens.includes('close') : tokens.includes('keep-alive');
    if (this.ex!.method === 'HEAD' || status === 204 || status === 304) { this.remaining = 0; this.phase = 'fixed'; return; }
    if (chunked) { this.phase = 'chunk-size'; return; }
    if (length !== undefined) {
      if (length > MAX_BODY_BYTES) throw new HttpExchangeError(`the answer is too large (${length} bytes)`);
      this.remaining = length;
      this.phase = 'fixed';
      return;
    }
    this.keepAlive = false;
    this.phase = 'to-close';
  }

  private take(n: number): void {
    this.bodyBytes += n;
    if (this.bodyBytes > MAX_BODY_BYTES) throw new HttpExchangeError('the answer is too large');
    this.chunks.push(this.pending.subarray(0, n));
    this.pending = this.pending.subarray(n);
  }

  private complete(): void {
    const ex = this.ex!;
    this.ex = undefined;
    this.phase = 'done';
    if (this.pending.length) this.keepAlive = false; // bytes after the answer: the stream cannot be trusted
    if (!this.sent) this.keepAlive = false; // answered before the body was out: the rest would read as the next request
    this.finish(ex);
    if (this.keepAlive) {
      this.reused = true;
      this.pending = Buffer.alloc(0);
      this.owner.release(this);
    } else {
      this.socket.destroy();
    }
  }

  private finish(ex: Exchange): void {
    const text = this.chunks.length === 1 ? this.chunks[0]!.toString('utf8') : Buffer.concat(this.chunks).toString('utf8');
    this.chunks.length = 0;
    this.owner.settle(ex, { status: this.status, text });
  }
}

export class HomeserverHttp {
  private readonly host: string;
  private readonly port: number;
  private readonly tls: boolean;
  private readonly prefix: string;
  private readonly fixedHead: string;
  private readonly timeoutMs: number;
  private readonly maxSockets: number;
  private readonly idleMs: number;
  private readonly ca: HomeserverHttpOptions['ca'];
  private readonly idle: Conn[] = [];
  private readonly all = new Set<Conn>();
  private readonly waiting: Exchange[] = [];
  private closed = false;

  constructor(baseUrl: string, token: string, opts: HomeserverHttpOptions = {}) {
    const url = new URL(baseUrl.replace(/\/+$/, ''));
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`the homeserver URL must be http or https: ${baseUrl}`);
    if (/[\r\n]/.test(token)) throw new Error('the appservice token contains a line break');
    this.tls = url.protocol === 'https:';
    this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = url.port ? Number(url.port) : this.tls ? 443 : 80;
    this.prefix = url.pathname === '/' ? '' : url.pathname;
    this.fixedHead = `Host: ${url.host}\r\nAuthorization: Bearer ${token}\r\n`;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxSockets = opts.maxSockets ?? 64;
    this.idleMs = opts.idleMs ?? 30_000;
    this.ca = opts.ca;
  }

  /** One request; resolves with the status and body text whatever the status, rejects on a network error or timeout. */
  send(method: string, pathAndQuery: string, body?: string | Buffer, contentType = 'application/json'): Promise<HttpAnswer> {
    if (this.closed) return Promise.reject(new HttpExchangeError('the homeserver client is closed'));
    const path = this.prefix + pathAndQuery;
    // the path and type go into the request line and head verbatim: no room for a second line
    if (!/^\/[\x21-\x7e]*$/.test(path)) return Promise.reject(new HttpExchangeError(`a request path with spaces, controls or non-ASCII: ${JSON.stringify(path.slice(0, 80))}`));
    if (!/^[A-Z]+$/.test(method) || /[\r\n]/.test(contentType)) return Promise.reject(new HttpExchangeError('a bad method or content type'));
    let head = `${method} ${path} HTTP/1.1\r\n${this.fixedHead}`;
    if (body !== undefined) head += `Content-Type: ${contentType}\r\nContent-Length: ${typeof body === 'string' ? Buffer.byteLength(body) : body.length}\r\n`;
    else if (method === 'POST' || method === 'PUT') head += 'Content-Length: 0\r\n';
    head += '\r\n';
    return new Promise<HttpAnswer>((resolve, reject) => {
      const ex: Exchange = { method, head, body, resolve, reject, retried: false };
      ex.timer = setTimeout(() => this.timeOut(ex), this.timeoutMs);
      this.dispatch(ex);
    });
  }

  /** Close every connection; requests still waiting fail. */
  close(): void {
    this.closed = true;
    for (const ex of this.waiting.splice(0)) this.settle(ex, new HttpExchangeError('the homeserver client is closed'));
    for (const c of [...this.all]) c.fail(new HttpExchangeError('the homeserver client is closed'));
  }

  /** Connections open now (idle or busy); for tests and metrics. */
  get connections(): number { return this.all.size; }

  // --- for Conn ---

  /** Resolve or reject an exchange once. */
  settle(ex: Exchange, outcome: HttpAnswer | Error): void {
    if (!ex.timer) return; // already settled (timed out)
    clearTimeout(ex.timer);
    ex.timer = undefined;
    if (outcome instanceof Error) ex.reject(outcome);
    else ex.resolve(outcome);
  }

  retry(ex: Exchange): void {
    if (!ex.timer) return;
    this.waiting.unshift(ex);
    this.pump();
  }

  release(c: Conn): void {
    if (this.closed) { c.socket.destroy(); return; }
    const next = this.waiting.shift();
    if (next) { c.start(next); return; }
    c.socket.setTimeout(this.idleMs);
    c.socket.unref();
    this.idle.push(c);
  }

  forget(c: Conn): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    this.pump();
  }

  private dispatch(ex: Exchange): void {
    this.waiting.push(ex);
    this.pump();
  }

  /** Start waiting exchanges on idle connections, or new ones up to the limit. */
  private pump(): void {
    while (this.waiting.length && !this.closed) {
      let c = this.idle.pop();
      if (c && (c.socket.destroyed || !c.socket.writable)) { this.all.delete(c); continue; } // closed; its 'close' is on the way
      if (!c) {
        if (this.all.size >= this.maxSockets) return;
        c = new Conn(this.open(), this);
        this.all.add(c);
      }
      c.start(this.waiting.shift()!);
    }
  }

  private open(): Socket {
    if (!this.tls) return netConnect({ host: this.host, port: this.port });
    const servername = /^[\d.]+$|:/.test(this.host) ? undefined : this.host;
    return tlsConnect({ host: this.host, port: this.port, servername, ALPNProtocols: ['http/1.1'], ca: this.ca });
  }

  private timeOut(ex: Exchange): void {
    ex.timer = undefined;
    const i = this.waiting.indexOf(ex);
    if (i >= 0) this.waiting.splice(i, 1);
    for (const c of this.all) if (c.ex === ex) { c.ex = undefined; c.socket.destroy(); }
    ex.reject(new HttpExchangeError(`no answer in ${Math.round(this.timeoutMs / 1000)} s`, { unreachable: true }));
  }
}
