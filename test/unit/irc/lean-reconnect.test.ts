// Reconnecting lean connections against a scripted TCP peer on 127.0.0.1: every reconnect attempt
// gives back its place in the shared ReconnectLimiter, however it ends (registered, dropped, quit
// mid-attempt, or a server that accepts the connection and never registers it).
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';

/** A peer that registers each connection as the nick it asks for, unless that nick is in `silent`. */
interface Peer { port: number; sockets: Map<string, Socket[]>; silent: Set<string> }

let server: Server | undefined;
const conns: LeanConnection[] = [];
afterEach(() => { for (const c of conns.splice(0)) c.quit(); server?.close(); });

async function peer(): Promise<Peer> {
  const p: Peer = { port: 0, sockets: new Map(), silent: new Set() };
  server = createServer((s) => {
    s.on('error', () => undefined);
    let buf = '', nick = '';
    s.on('data', (d) => {
      buf += d.toString();
      const m = !nick && /NICK (\S+)/.exec(buf);
      if (m) { nick = m[1]!; p.sockets.set(nick, [...(p.sockets.get(nick) ?? []), s]); }
      if (nick && buf.includes('USER ') && !p.silent.has(nick)) { buf = ''; s.write(`:srv CAP * LS :\r\n:srv 001 ${nick} :Welcome\r\n`); }
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  p.port = (server!.address() as { port: number }).port;
  return p;
}

function client(port: number, nick: string, limiter: ReconnectLimiter, registerMs = 60_000): LeanConnection {
  const c = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick, username: nick, realname: nick,
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs, answerMs: 10_000 }, limiter, log: silentLogger,
  });
  conns.push(c);
  return c;
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(10);
  }
}
/** The server drops the nick's latest connection (the client did not ask for it: it reconnects). */
const drop = (p: Peer, nick: string): void => { p.sockets.get(nick)!.at(-1)!.destroy(); };

describe('LeanConnection reconnects through the limiter', () => {
  it('a connection quit while its reconnect attempt waits for registration gives the place back', async () => {
    const p = await peer();
    const limiter = new ReconnectLimiter(1);
    const a = client(p.port, 'a', limiter), b = client(p.port, 'b', limiter);
    await Promise.all([a.connect(), b.connect()]);
    p.silent.add('a');
    drop(p, 'a');
    await until("a's reconnect attempt to reach the server", () => p.sockets.get('a')!.length === 2);
    a.quit(); // an idle close, an eviction or the bridge stopping, mid-attempt
    let registered = 0;
    b.on('registered', () => registered++);
    drop(p, 'b');
    await until('b to reconnect', () => registered === 1);
    expect(b.state).toBe('connected');
  });

  it('an attempt the server never registers times out, gives the place back, and is tried again', async () => {
    const p = await peer();
    const limiter = new ReconnectLimiter(1);
    const a = client(p.port, 'a', limiter, 300), b = client(p.port, 'b', limiter, 300);
    await Promise.all([a.connect(), b.connect()]);
    p.silent.add('a');
    drop(p, 'a');
    await until("a's reconnect attempt to reach the server", () => p.sockets.get('a')!.length === 2);
    let registered = 0;
    b.on('registered', () => registered++);
    drop(p, 'b');
    await until('b to reconnect', () => registered === 1);
    // a's silent attempt was dropped by the client, and a keeps trying: back once the server answers
    expect(p.sockets.get('a')![1]!.destroyed || p.sockets.get('a')![1]!.readableEnded).toBe(true);
    p.silent.delete('a');
    await until('a to reconnect once the server registers it', () => a.state === 'connected');
  });

  it('a first connect to a server that never registers it is dropped and tried again, not left hanging', async () => {
    const p = await peer();
    p.silent.add('a');
    const a = client(p.port, 'a', new ReconnectLimiter(1), 200);
    const ready = a.connect();
    ready.catch(() => undefined); // (awaited below; fails only if the test does)
    await until('a second attempt', () => (p.sockets.get('a')?.length ?? 0) >= 2);
    p.silent.delete('a');
    await ready;
    expect(a.state).toBe('connected');
  });
});
