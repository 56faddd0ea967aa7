/**
 * The homeserver HTTP client against real peers on 127.0.0.1: node:http servers (what a
 * well-behaved homeserver looks like) and raw sockets scripted byte by byte (split answers,
 * 1xx, close-delimited bodies, the keep-alive race, garbage).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MatrixError } from '../../../packages/core/src/matrix/client.js';
import { HomeserverHttp, HttpExchangeError } from '../../../packages/core/src/matrix/http.js';
import { tempDir } from '../temp.js';

const closers: (() => void)[] = [];
afterEach(() => { for (const c of closers.splice(0)) c(); });

interface Seen { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer; socket: Socket }

/** A node:http server recording what it received; `reply` answers each request. */
async function httpPeer(reply: (req: Seen, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; sockets: Set<Socket>; server: Server }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks), socket: req.socket };
      seen.push(s);
      reply(s, res);
    });
  });
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => { server.closeAllConnections(); server.close(); });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, sockets, server };
}

/** A raw TCP peer: `onRequest` is called with the socket and the request text each time a full head arrives. */
async function rawPeer(onRequest: (sock: Socket, request: string, n: number) => void): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  let n = 0;
  const server: NetServer = createNetServer((sock) => {
    connections++;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const request = buf.slice(0, end + 4 + len);
        buf = buf.slice(end + 4 + len);
        onRequest(sock, request, ++n);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const open = new Set<Socket>();
  server.on('connection', (s) => { open.add(s); s.on('close', () => open.delete(s)); });
  closers.push(() => { for (const s of open) s.destroy(); server.close(); });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
};

function client(url: string, opts?: ConstructorParameters<typeof HomeserverHttp>[2]): HomeserverHttp {
  const c = new HomeserverHttp(url, 'as-token-123', opts);
  closers.push(() => c.close());
  return c;
}

describe('HomeserverHttp against node:http', () => {
  it('sends the method, path, token, type and body, and returns status and text', async () => {
    const peer = await httpPeer((_req, res) => json(res, 200, { event_id: '$ëvent' }));
    const http = client(peer.url);
    const body = JSON.stringify({ msgtype: 'm.text', body: 'héllo 🌍' });
    const a = await http.send('PUT', '/_matrix/client/v3/rooms/%21r%3Ahs/send/m.room.message/t1?user_id=%40irc_a%3Ahs', body);
    expect(a).toEqual({ status: 200, text: '{"event_id":"$ëvent"}' });
    const s = peer.seen[0]!;
    expect(s.method).toBe('PUT');
    expect(s.url).toBe('/_matrix/client/v3/rooms/%21r%3Ahs/send/m.room.message/t1?user_id=%40irc_a%3Ahs');
    expect(s.headers.authorization).toBe('Bearer as-token-123');
    expect(s.headers['content-type']).toBe('application/json');
    expect(s.headers.host).toBe(peer.url.slice('http://'.length));
    expect(s.body.toString('utf8')).toBe(body);
  });

  it('returns error statuses as answers, not as rejections', async () => {
    const peer = await httpPeer((_req, res) => json(res, 403, { errcode: 'M_FORBIDDEN', error: 'no' }));
    const a = await client(peer.url).send('GET', '/x');
    expect(a.status).toBe(403);
    expect(JSON.parse(a.text)).toEqual({ errcode: 'M_FORBIDDEN', error: 'no' });
  });

  it('keeps one connection alive across sequential requests', async () => {
    const peer = await httpPeer((req, res) => json(res, 200, { n: req.url }));
    const http = client(peer.url);
    for (let i = 0; i < 20; i++) expect((await http.send('GET', `/n/${i}`)).text).toBe(JSON.stringify({ n: `/n/${i}` }));
    expect(peer.sockets.size).toBe(1);
    expect(new Set(peer.seen.map((s) => s.socket)).size).toBe(1);
  });

  it('reads chunked answers, a multi-byte character split between chunks included', async () => {
    const peer = await httpPeer((_req, res) => {
      const bytes = Buffer.from('{"body":"日本語 and more"}');
      res.writeHead(200, { 'content-type': 'application/json' }); // no length: node sends chunked
      res.write(bytes.subarray(0, 10)); // ends inside 日 (bytes 9..11)
      setTimeout(() => { res.write(bytes.subarray(10, 15)); res.end(bytes.subarray(15)); }, 5);
    });
    const http = client(peer.url);
    expect((await http.send('GET', '/c')).text).toBe('{"body":"日本語 and more"}');
    expect((await http.send('GET', '/c')).text).toBe('{"body":"日本語 and more"}'); // and the connection is reusable
    expect(peer.sockets.size).toBe(1);
  });

  it('sends a Buffer body (an upload) byte for byte', async () => {
    const peer = await httpPeer((req, res) => json(res, 200, { size: req.body.length }));
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const a = await client(peer.url).send('POST', '/_matrix/media/v3/upload?filename=a.bin', data, 'application/octet-stream');
    expect(JSON.parse(a.text)).toEqual({ size: data.length });
    expect(peer.seen[0]!.body.equals(data)).toBe(true);
    expect(peer.seen[0]!.headers['content-type']).toBe('application/octet-stream');
  });

  it('runs concurrent requests on at most maxSockets connections, and answers them all', async () => {
    const peer = await httpPeer((req, res) => setTimeout(() => json(res, 200, { u: req.url }), 2));
    const http = client(peer.url, { maxSockets: 4 });
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => http.send('GET', `/p/${i}`)));
    answers.forEach((a, i) => expect(a.text).toBe(JSON.stringify({ u: `/p/${i}` })));
    expect(peer.sockets.size).toBe(4);
  });

  it('reconnects when the server closes an idle connection', async () => {
    const peer = await httpPeer((_req, res) => json(res, 200, {}));
    const http = client(peer.url);
    await http.send('GET', '/a');
    for (const s of peer.sockets) s.end(); // the server gives up on the idle connection
    await new Promise((r) => setTimeout(r, 50));
    expect(http.connections).toBe(0);
    expect((await http.send('GET', '/b')).status).toBe(200);
    expect(peer.sockets.size).toBe(2);
  });

  it('talks to an https homeserver (a private CA)', async () => {
    const dir = tempDir('trestle-tls-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const cert = readFileSync(join(dir, 'cert.pem'));
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
      req.resume();
      req.on('end', () => json(res, 200, { tls: true, url: req.url }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => { server.closeAllConnections(); server.close(); });
    const port = (server.address() as AddressInfo).port;
    const trusting = client(`https://localhost:${port}`, { ca: cert });
    expect(JSON.parse((await trusting.send('GET', '/s')).text)).toEqual({ tls: true, url: '/s' });
    // without the CA the certificate is refused, as it must be
    await expect(client(`https://localhost:${port}`).send('GET', '/s')).rejects.toThrow(/self[- ]signed|certificate/i);
  });
});

describe('HomeserverHttp against scripted answers', () => {
  it('parses an answer that arrives a byte at a time, after a 100 Continue', async () => {
    const answer = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}';
    const peer = await rawPeer((sock) => {
      let i = 0;
      const t = setInterval(() => { if (i < answer.length) sock.write(answer[i++]!); else clearInterval(t); }, 1);
    });
    expect(await client(peer.url).send('GET', '/slow')).toEqual({ status: 200, text: '{"ok":true}' });
  });

  it('reads a body delimited by the close, then uses a new connection', async () => {
    const peer = await rawPeer((sock, _r, n) => { sock.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody ${n} until close`); });
    const http = client(peer.url);
    expect(await http.send('GET', '/a')).toEqual({ status: 200, text: 'body 1 until close' });
    expect(await http.send('GET', '/b')).toEqual({ status: 200, text: 'body 2 until close' });
    expect(peer.connections()).toBe(2);
  });

  it('honours Connection: close and HTTP/1.0, and keeps 204 bodiless', async () => {
    const peer = await rawPeer((sock, _r, n) => {
      if (n === 1) sock.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}');
      else if (n === 2) sock.write('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}');
      else sock.write('HTTP/1.1 204 No Content\r\n\r\n');
    });
    const http = client(peer.url);
    expect((await http.send('GET', '/1')).text).toBe('{}');
    expect((await http.send('GET', '/2')).text).toBe('{}');
    expect(await http.send('DELETE', '/3')).toEqual({ status: 204, text: '' });
    expect(await http.send('DELETE', '/4')).toEqual({ status: 204, text: '' }); // the 204 left the connection usable
    expect(peer.connections()).toBe(3);
  });

  it('sends an idempotent request again when a reused connection dies before answering (the keep-alive race)', async () => {
    const peer = await rawPeer((sock, _r, n) => {
      if (n === 2) { sock.destroy(); return; } // the server had given up on this connection
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${String(n).length}\r\n\r\n${n}`);
    });
    const http = client(peer.url);
    expect((await http.send('PUT', '/send/txn1', '{}')).text).toBe('1');
    expect((await http.send('PUT', '/send/txn2', '{}')).text).toBe('3'); // request 2 died, its retry is request 3
    expect(peer.connections()).toBe(2);
  });

  it('does not send a POST twice: the caller hears of the lost connection', async () => {
    const peer = await rawPeer((sock, _r, n) => {
      if (n === 2) { sock.destroy(); return; }
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
    });
    const http = client(peer.url);
    await http.send('POST', '/createRoom', '{}');
    await expect(http.send('POST', '/createRoom', '{}')).rejects.toThrow(/closed the connection before answering|ECONNRESET/);
    await new Promise((r) => setTimeout(r, 20));
    expect(peer.connections()).toBe(1); // nothing was sent again
  });

  it('rejects a malformed answer clearly, and the next request still works', async () => {
    const peer = await rawPeer((sock, _r, n) => {
      if (n === 1) sock.write('SMTP ready\r\n\r\n');
      else if (n === 2) sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
      else if (n === 3) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}');
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
    });
    const http = client(peer.url);
    await expect(http.send('GET', '/1')).rejects.toThrow(/not an HTTP\/1.x answer/);
    await expect(http.send('GET', '/2')).rejects.toThrow(/bad chunk size/);
    await expect(http.send('GET', '/3')).rejects.toThrow(/bad Content-Length/);
    expect((await http.send('GET', '/4')).text).toBe('{}');
  });

  it('drops a connection that sends bytes after the answer', async () => {
    const peer = await rawPeer((sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale'));
    const http = client(peer.url);
    expect((await http.send('GET', '/1')).text).toBe('{}');
    expect((await http.send('GET', '/2')).text).toBe('{}'); // not "stale"
    expect(peer.connections()).toBe(2);
  });

  it('does not reuse a connection answered before the whole body was sent (a 413 to an upload)', async () => {
    let connections = 0;
    const server = createNetServer((sock) => {
      const n = ++connections;
      let head = '';
      let answered = false;
      sock.on('data', (d) => {
        head += d.toString('latin1', 0, Math.min(d.length, 4096));
        if (answered || !head.includes('\r\n\r\n')) return;
        answered = true;
        // the first connection answers as soon as it has the head, then keeps reading what follows
        if (n === 1) sock.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\n{}');
      });
      if (n > 1) sock.once('data', () => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine'));
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    const http = client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const big = Buffer.alloc(32 * 1024 * 1024, 1); // more than the socket buffers take at once
    expect((await http.send('POST', '/upload', big, 'application/octet-stream')).status).toBe(413);
    expect(await http.send('GET', '/next')).toEqual({ status: 200, text: 'fine' });
    expect(connections).toBe(2);
  });

  it('gives up on a request not answered in time, and the client goes on', async () => {
    const peer = await rawPeer((sock, _r, n) => { if (n > 1) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}'); });
    const http = client(peer.url, { timeoutMs: 150 });
    await expect(http.send('PUT', '/hang', '{}')).rejects.toThrow(/no answer in/);
    expect((await http.send('GET', '/after')).text).toBe('{}');
  });

  it('refuses a path or type that could smuggle a second line, before sending anything', async () => {
    const peer = await rawPeer(() => undefined);
    const http = client(peer.url);
    await expect(http.send('GET', '/a HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /b')).rejects.toThrow(/request path/);
    await expect(http.send('PUT', '/a', '{}', 'text/plain\r\nX-Evil: 1')).rejects.toThrow(/content type/);
    expect(() => new HomeserverHttp(peer.url, 'tok\r\nX-Evil: 1')).toThrow(/line break/);
    await new Promise((r) => setTimeout(r, 20));
    expect(peer.connections()).toBe(0);
  });

  it('fails clearly when nothing listens', async () => {
    const peer = await rawPeer(() => undefined);
    const port = new URL(peer.url).port;
    for (const c of closers.splice(0)) c();
    await expect(client(`http://127.0.0.1:${port}`).send('GET', '/x')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('marks a homeserver that did not answer as unreachable, and one that answered garbage as not', async () => {
    const peer = await rawPeer((sock, _r, n) => {
      if (n === 1) sock.destroy(); // closed before answering
      else if (n === 3) sock.write('SMTP ready\r\n\r\n');
      // n === 2: never answers
    });
    const http = client(peer.url, { timeoutMs: 150 });
    await expect(http.send('POST', '/createRoom', '{}')).rejects.toMatchObject({ unreachable: true });
    await expect(http.send('PUT', '/hang', '{}')).rejects.toMatchObject({ unreachable: true, message: expect.stringMatching(/no answer in/) });
    await expect(http.send('GET', '/garbled')).rejects.toMatchObject({ unreachable: false });
    const port = new URL(peer.url).port;
    for (const c of closers.splice(0)) c();
    await expect(client(`http://127.0.0.1:${port}`).send('GET', '/x')).rejects.toMatchObject({ unreachable: true, message: expect.stringMatching(/ECONNREFUSED/) });
  });

  it('fails waiting requests when closed', async () => {
    const peer = await rawPeer(() => undefined);
    const http = new HomeserverHttp(peer.url, 't', { maxSockets: 1 });
    const first = http.send('GET', '/1');
    const second = http.send('GET', '/2');
    http.close();
    await expect(first).rejects.toThrow(/closed/);
    await expect(second).rejects.toThrow(/closed/);
    await expect(http.send('GET', '/3')).rejects.toThrow(/closed/);
  });
});

describe('MatrixError.unreachable (what the delivery queue waits out without spending attempts)', () => {
  const away = new HttpExchangeError('connect ECONNREFUSED', { unreachable: true });
  it.each([
    ['no answer at all', new MatrixError('cannot reach the homeserver', undefined, undefined, { cause: away }), true],
    ['a garbled answer', new MatrixError('cannot reach the homeserver', undefined, undefined, { cause: new HttpExchangeError('not an HTTP/1.x answer') }), false],
    ['a proxy\'s 502 with no Matrix error', new MatrixError('HTTP 502', undefined, 502), true],
    ['a proxy\'s 503', new MatrixError('HTTP 503', undefined, 503), true],
    ['a 504', new MatrixError('HTTP 504', undefined, 504), true],
    ['Synapse\'s own 502 (a remote server it could not reach)', new MatrixError('M_UNKNOWN: Failed to contact remote server', 'M_UNKNOWN', 502), false],
    ['a 500', new MatrixError('HTTP 500', undefined, 500), false],
    ['a 429', new MatrixError('M_LIMIT_EXCEEDED: slow down', 'M_LIMIT_EXCEEDED', 429), false],
  ])('%s: %s', (_what, err, unreachable) => {
    expect(err.unreachable).toBe(unreachable);
  });
});
