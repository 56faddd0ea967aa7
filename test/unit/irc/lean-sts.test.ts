// IRCv3 STS on a lean connection (and, for a policy announced after registration, on the listener's
// irc-framework connection), against scripted peers on 127.0.0.1: a plaintext server that asks
// for TLS, and a TLS server with a self-signed certificate (trusted through tlsCa, as a user's
// config would). What matters: nothing secret is said in plaintext, and under a stored policy the
// connection never goes back to plaintext, whatever fails.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { IrcConnection, ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { StsPolicy, type StoredSts, type StsStore } from '../../../packages/irc/src/sts.js';

class MemoryStore implements StsStore {
  readonly rows = new Map<string, StoredSts>();
  stsPolicy(host: string): StoredSts | undefined { return this.rows.get(host); }
  setStsPolicy(host: string, p: StoredSts): void { this.rows.set(host, p); }
  dropStsPolicy(host: string): void { this.rows.delete(host); }
}

let dir: string;
let cert: string, key: string;
const servers: Server[] = [];
const conns: { quit(): void }[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'trestle-sts-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  key = readFileSync(join(dir, 'key.pem'), 'utf8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const c of conns.splice(0)) c.quit();
  for (const s of servers.splice(0)) s.close();
});

async function listen(s: Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
}

/** A plaintext server that answers CAP LS with `caps` and never registers anyone: what each connection said. */
async function plainPeer(caps: () => string): Promise<{ port: number; heard: string[] }> {
  const heard: string[] = [];
  const port = await listen(createServer((s) => {
    s.on('error', () => undefined);
    const i = heard.push('') - 1;
    s.on('data', (d) => {
      heard[i] += d.toString();
      if (d.toString().includes('CAP LS')) s.write(`:srv CAP * LS :${caps()}\r\n`);
    });
  }));
  return { port, heard };
}

/** A server (plaintext, or TLS with the test certificate) that registers every connection; `say` writes to the last one. */
async function registeringPeer(tls: boolean, caps: string): Promise<{ port: number; registered: number; heard: string; say(line: string): void }> {
  let last: { write(s: string): unknown } | undefined;
  const peer = { port: 0, registered: 0, heard: '', say: (line: string) => { last?.write(`${line}\r\n`); } };
  const onSocket = (s: import('node:net').Socket): void => {
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (d) => {
      peer.heard += d.toString();
      buf += d.toString();
      const nick = /NICK (\S+)/.exec(buf)?.[1];
      if (buf.includes('CAP LS')) { s.write(`:srv CAP * LS :${caps}\r\n`); buf = buf.replace('CAP LS', ''); }
      if (buf.includes('CAP REQ')) { s.write(`:srv CAP * NAK :${/CAP REQ :(.*)/.exec(buf)?.[1] ?? ''}\r\n`); buf = buf.replace('CAP REQ', ''); }
      if (nick && buf.includes('CAP END') && buf.includes('USER ')) { buf = ''; peer.registered++; last = s; s.write(`:srv 001 ${nick} :Welcome\r\n`); }
    });
  };
  peer.port = await listen((tls ? createTlsServer({ cert, key }, onSocket) : createServer(onSocket)) as unknown as Server);
  return peer;
}

/** A server that does not know CAP (421) and registers `nick` on NICK and USER: what it heard. */
async function noCapPeer(nick: string): Promise<{ port: number; heard(): string }> {
  let heard = '';
  const port = await listen(createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (d) => {
      heard += d.toString();
      if (d.toString().includes('CAP LS')) s.write(':srv 421 * CAP :Unknown command\r\n');
      if (/USER /.test(heard)) s.write(`:srv 001 ${nick} :Welcome\r\n`);
    });
  }));
  return { port, heard: () => heard };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function client(plainPort: number, store: StsStore, trust = true, password?: string): LeanConnection {
  const c = new LeanConnection({
    host: 'localhost', port: plainPort, tls: false, nick: 'alice', username: 'alice', realname: 'Alice', ...(password ? { password } : {}),
    sasl: { account: 'alice', password: 'the-secret-password' }, ...(trust ? { tlsCa: cert } : {}),
    sts: new StsPolicy('localhost', { port: plainPort, tls: false }, store, silentLogger),
    reconnect: { initialDelayMs: 20, maxDelayMs: 40 }, timeouts: { registerMs: 10_000, answerMs: 10_000 },
    limiter: new ReconnectLimiter(10), log: silentLogger,
  });
  conns.push(c);
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) { if (Date.now() > end) throw new Error('timed out'); await sleep(10); }
}

describe('LeanConnection and IRCv3 STS', () => {
  it('acts on a policy announced later (CAP NEW): a registered plaintext connection moves to TLS; over TLS the policy is refreshed, and CAP DEL is ignored', async () => {
    const secure = await registeringPeer(true, 'sts=duration=3600');
    const plain = await registeringPeer(false, '');
    const store = new MemoryStore();
    const c = client(plain.port, store);
    await c.connect();
    expect(c.via).toEqual({ port: plain.port, tls: false });
    plain.say(`:srv CAP alice NEW :sts=port=${secure.port},duration=999`);
    await until(() => secure.registered === 1 && c.state === 'connected');
    expect(c.via).toEqual({ port: secure.port, tls: true });
    expect(plain.registered).toBe(1); // not back to plaintext
    expect(store.rows.get('localhost')).toMatchObject({ port: secure.port, durationS: 3600 });

    secure.say(':srv CAP alice NEW :sts=duration=600');
    await until(() => store.rows.get('localhost')?.durationS === 600);
    secure.say(':srv CAP alice DEL :sts'); // the spec: a server may not take a policy away like this
    secure.say(':srv CAP alice NEW :sts=duration=0');
    await until(() => !store.rows.has('localhost'));
    expect(c.via).toEqual({ port: secure.port, tls: true }); // a withdrawn policy closes nothing
  });

  it('asked for TLS in plaintext, closes before any login and registers over TLS on the port named; stores the policy heard there', async () => {
    const secure = await registeringPeer(true, 'sts=duration=3600');
    const plain = await plainPeer(() => `sasl=PLAIN sts=port=${secure.port},duration=999`);
    const store = new MemoryStore();
    const c = client(plain.port, store);
    await c.connect();
    expect(c.via).toEqual({ port: secure.port, tls: true });
    expect(secure.registered).toBe(1);
    expect(plain.heard).toHaveLength(1);
    expect(plain.heard[0]).toContain('CAP LS');
    expect(plain.heard[0]).not.toContain('CAP REQ');
    expect(plain.heard[0]).not.toContain('AUTHENTICATE');
    // the duration that came in plaintext (999) is not the one kept
    expect(store.rows.get('localhost')).toMatchObject({ port: secure.port, durationS: 3600 });
  });

  it('keeps the server password (and NICK and USER after it) until the server has answered CAP LS: unsaid in plaintext when it asks for TLS', async () => {
    const secure = await registeringPeer(true, 'sts=duration=3600');
    const plain = await plainPeer(() => `sts=port=${secure.port}`);
    const c = client(plain.port, new MemoryStore(), true, 'server-secret');
    await c.connect();
    expect(c.via).toEqual({ port: secure.port, tls: true });
    expect(plain.heard).toEqual([expect.stringContaining('CAP LS')]);
    expect(plain.heard[0]).not.toContain('server-secret');
    expect(plain.heard[0]).not.toContain('NICK');
    // over TLS, said at once, before NICK
    expect(secure.heard).toMatch(/^CAP LS 302\r\nPASS :server-secret\r\nNICK alice\r\n/);
  });

  it('with no policy offered, logs in with the server password once CAP LS is answered, and at once to a server that does not know CAP', async () => {
    const plain = await registeringPeer(false, 'sasl');
    const c = client(plain.port, new MemoryStore(), true, 'server-secret');
    await c.connect();
    expect(plain.heard).toMatch(/^CAP LS 302\r\nPASS :server-secret\r\nNICK alice\r\nUSER alice 0 \* :Alice\r\nCAP REQ/);
    c.quit();

    // an old server: CAP is an unknown command (421), and NICK with USER registers at once
    const old = await noCapPeer('alice');
    const t0 = Date.now();
    await client(old.port, new MemoryStore(), true, 'server-secret').connect();
    expect(Date.now() - t0).toBeLessThan(4000); // not the hold's 5 s for a server that says nothing
    expect(old.heard()).toMatch(/^CAP LS 302\r\nPASS :server-secret\r\nNICK alice\r\nUSER /);
  });

  it('under a stored policy, never connects in plaintext: not when the TLS port is closed, not when its certificate is untrusted', async () => {
    const plain = await plainPeer(() => '');
    const store = new MemoryStore();
    store.setStsPolicy('localhost', { port: await closedPort(), durationS: 3600, expiresAt: Date.now() + 3_600_000 });
    const closed = client(plain.port, store);
    void closed.connect().catch(() => undefined);
    await sleep(500); // several reconnect attempts
    expect(closed.state).not.toBe('connected');
    expect(closed.via.tls).toBe(true);
    closed.quit(); // (it would go to the next policy's port at its next attempt)

    const untrusted = await registeringPeer(true, 'sts=duration=3600');
    store.setStsPolicy('localhost', { port: untrusted.port, durationS: 3600, expiresAt: Date.now() + 3_600_000 });
    const noCa = client(plain.port, store, false);
    void noCa.connect().catch(() => undefined);
    await sleep(500);
    expect(noCa.state).not.toBe('connected');
    expect(untrusted.registered).toBe(0);
    expect(plain.heard).toHaveLength(0);

    // the same TLS server, trusted: in
    const trusted = client(plain.port, store);
    await trusted.connect();
    expect(trusted.via).toEqual({ port: untrusted.port, tls: true });
  });
});

describe('the listener (irc-framework) and IRCv3 STS', () => {
  const listener = (port: number, store: StsStore): IrcConnection => {
    const c = new IrcConnection({
      host: 'localhost', port, tls: false, tlsCa: cert, nick: 'bridge', username: 'bridge', realname: 'Bridge', password: 'server-secret',
      sts: new StsPolicy('localhost', { port, tls: false }, store, silentLogger),
      reconnect: { initialDelayMs: 20, maxDelayMs: 40 }, timeouts: { registerMs: 10_000 }, limiter: new ReconnectLimiter(10), log: silentLogger,
    });
    conns.push(c);
    return c;
  };

  it('keeps the server password until the server has answered CAP LS: unsaid in plaintext when it asks for TLS, said over TLS', async () => {
    const secure = await registeringPeer(true, 'sts=duration=3600');
    const plain = await plainPeer(() => `sts=port=${secure.port}`);
    const c = listener(plain.port, new MemoryStore());
    await c.connect();
    expect(c.via).toEqual({ port: secure.port, tls: true });
    expect(plain.heard).toHaveLength(1);
    expect(plain.heard[0]).toContain('CAP LS');
    expect(plain.heard[0]).not.toContain('server-secret');
    expect(secure.heard).toMatch(/PASS server-secret\r\nNICK bridge\r\n/);
  });

  it('with no policy offered, sends PASS, NICK and USER once CAP LS is answered, before its CAP REQ', async () => {
    const plain = await registeringPeer(false, 'multi-prefix');
    const c = listener(plain.port, new MemoryStore());
    await c.connect();
    expect(plain.heard).toMatch(/^CAP LS 302\r\nPASS server-secret\r\nNICK bridge\r\nUSER bridge 0 \* :?Bridge\r\nCAP REQ :multi-prefix\r\n/);
    expect(c.via).toEqual({ port: plain.port, tls: false });
    c.quit();

    // an old server, as for the lean connection: 421 to CAP, registered on NICK and USER
    const old = await noCapPeer('bridge');
    const t0 = Date.now();
    await listener(old.port, new MemoryStore()).connect();
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(old.heard()).toMatch(/^CAP LS 302\r\nPASS server-secret\r\nNICK bridge\r\nUSER /);
  });

  it('acts on a policy announced after registration (CAP NEW): moves to TLS, then refreshes and withdraws the policy there', async () => {
    const secure = await registeringPeer(true, 'sts=duration=3600');
    const plain = await registeringPeer(false, '');
    const store = new MemoryStore();
    const c = new IrcConnection({
      host: 'localhost', port: plain.port, tls: false, tlsCa: cert, nick: 'bridge', username: 'bridge', realname: 'Bridge',
      sts: new StsPolicy('localhost', { port: plain.port, tls: false }, store, silentLogger),
      reconnect: { initialDelayMs: 20, maxDelayMs: 40 }, timeouts: { registerMs: 10_000 }, limiter: new ReconnectLimiter(10), log: silentLogger,
    });
    conns.push(c);
    await c.connect();
    expect(c.via).toEqual({ port: plain.port, tls: false });
    plain.say(`:srv CAP bridge NEW :sts=port=${secure.port}`);
    await until(() => secure.registered === 1 && c.state === 'connected');
    expect(c.via).toEqual({ port: secure.port, tls: true });
    expect(store.rows.get('localhost')).toMatchObject({ port: secure.port, durationS: 3600 });
    secure.say(':srv CAP bridge NEW :sts=duration=600');
    await until(() => store.rows.get('localhost')?.durationS === 600);
    secure.say(':srv CAP bridge NEW :draft/sts=duration=0');
    await until(() => !store.rows.has('localhost'));
    expect(plain.registered).toBe(1);
  });
});
