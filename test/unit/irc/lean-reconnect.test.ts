// Reconnecting lean connections against a scripted TCP peer on 127.0.0.1: every reconnect attempt
// gives back its place in the shared ReconnectLimiter, however it ends (registered, dropped, quit
// mid-attempt, or a server that accepts the connection and never registers it).
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection, type LeanOptions } from '../../../packages/irc/src/lean.js';

/**
 * A peer (no IRCv3) that registers each connection as the nick it asks for, unless that nick is in `silent`, or
 * in `refuse`: then it answers the lines given there (a ban, a throttle) and closes.
 */
interface Peer { port: number; sockets: Map<string, Socket[]>; silent: Set<string>; refuse: Map<string, string>; heard: Map<string, string> }

let server: Server | undefined;
const conns: LeanConnection[] = [];
afterEach(() => { for (const c of conns.splice(0)) c.quit(); server?.close(); });

async function peer(): Promise<Peer> {
  const p: Peer = { port: 0, sockets: new Map(), silent: new Set(), refuse: new Map(), heard: new Map() };
  server = createServer((s) => {
    s.on('error', () => undefined);
    let buf = '', nick = '';
    s.on('data', (d) => {
      buf += d.toString();
      // PINGs answered as any server does (a line without a labeled echo is confirmed by one)
      for (const m of d.toString().matchAll(/^PING :(\S+)\r$/gm)) s.write(`:srv PONG srv :${m[1]}\r\n`);
      if (nick) p.heard.set(nick, (p.heard.get(nick) ?? '') + d.toString());
      const m = !nick && /NICK (\S+)/.exec(buf);
      if (m) { nick = m[1]!; p.sockets.set(nick, [...(p.sockets.get(nick) ?? []), s]); }
      if (nick && buf.includes('USER ') && p.refuse.has(nick)) { buf = ''; s.end(p.refuse.get(nick)!.replaceAll('$NICK', nick)); return; }
      if (nick && buf.includes('USER ') && !p.silent.has(nick)) { buf = ''; s.write(`:srv CAP * LS :\r\n:srv 001 ${nick} :Welcome\r\n`); }
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  p.port = (server!.address() as { port: number }).port;
  return p;
}

function client(port: number, nick: string, limiter: ReconnectLimiter, registerMs = 60_000, more: Partial<LeanOptions> = {}): LeanConnection {
  const c = new LeanConnection({
    ...more, host: '127.0.0.1', port, tls: false, nick, username: nick, realname: nick,
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

describe('LeanConnection refused by the server at registration', () => {
  it('fails what waits for it for good on a ban (465), gives its reconnect place back, and tries again at the next line', async () => {
    const p = await peer();
    const limiter = new ReconnectLimiter(1);
    const a = client(p.port, 'a', limiter), b = client(p.port, 'b', limiter);
    await Promise.all([a.connect(), b.connect()]);
    p.refuse.set('a', ':srv 465 $NICK :You are banned from this server- spamming\r\nERROR :Closing Link: 127.0.0.1 (K-Lined)\r\n');
    drop(p, 'a'); // killed; its reconnect is refused
    await until('a to notice the loss', () => a.state !== 'connected');
    const line = a.send('PRIVMSG', '#c', 'hello'); // waits for the reconnect
    await expect(line).rejects.toMatchObject({ name: 'DeliveryError', permanent: true, message: 'the IRC server refuses the connection: You are banned from this server- spamming' });
    expect(a.state).toBe('closed');
    // its place in the limiter (one place) is free: b gets back through it
    drop(p, 'b');
    await until('b to reconnect', () => b.state === 'connected' && p.sockets.get('b')!.length === 2);
    await tick(200); // reconnects are 20 ms apart here: a made none after the refusal
    expect(p.sockets.get('a')).toHaveLength(2);
    p.refuse.delete('a');
    await a.send('PRIVMSG', '#c', 'after the ban was lifted');
    expect(p.sockets.get('a')).toHaveLength(3);
    expect(a.state).toBe('connected');
  });

  it('takes an ERROR naming a ban alone for a refusal too, but keeps reconnecting after any other ERROR', async () => {
    const p = await peer();
    p.refuse.set('a', 'ERROR :Closing Link: a[127.0.0.1] (G-Lined: open proxy)\r\n');
    const a = client(p.port, 'a', new ReconnectLimiter(1));
    await expect(a.connect()).rejects.toMatchObject({ message: 'the IRC server refuses the connection: Closing Link: a[127.0.0.1] (G-Lined: open proxy)' });
    p.refuse.set('b', 'ERROR :Trying to reconnect too fast.\r\n');
    const b = client(p.port, 'b', new ReconnectLimiter(1));
    const ready = b.connect();
    await until('b to try again', () => (p.sockets.get('b')?.length ?? 0) >= 2);
    p.refuse.delete('b');
    await ready;
    expect(b.state).toBe('connected');
  });
});

describe('LeanConnection refused for want of a login', () => {
  it('takes FAIL * ACCOUNT_REQUIRED (ergo\'s require-sasl) for a refusal, saying what helps', async () => {
    const p = await peer();
    p.refuse.set('a', ':srv FAIL * ACCOUNT_REQUIRED :You must log in with SASL to join this server\r\nERROR :You must log in with SASL to join this server\r\n');
    const a = client(p.port, 'a', new ReconnectLimiter(1));
    await expect(a.connect()).rejects.toMatchObject({
      name: 'DeliveryError', permanent: true,
      message: 'the IRC server refuses the connection: You must log in with SASL to join this server (store your account\'s password with storepass)',
    });
    await tick(100); // reconnects are 20 ms apart here: none was tried
    expect(p.sockets.get('a')).toHaveLength(1);
  });
});

describe('LeanConnection source address and user modes (addressBlock, userModes)', () => {
  it('connects from its localAddress, and sets its userModes on itself once registered, again after a reconnect', async () => {
    const p = await peer();
    const a = client(p.port, 'a', new ReconnectLimiter(1), 60_000, { localAddress: '127.0.1.7', userModes: '+Ri' });
    await a.connect();
    expect(p.sockets.get('a')![0]!.remoteAddress).toBe('127.0.1.7');
    await until('the MODE line', () => (p.heard.get('a') ?? '').includes('MODE a +Ri\r\n'));
    drop(p, 'a');
    await until('a to reconnect', () => a.state === 'connected' && p.sockets.get('a')!.length === 2);
    expect(p.sockets.get('a')![1]!.remoteAddress).toBe('127.0.1.7');
    await until('the MODE line again', () => (p.heard.get('a') ?? '').split('MODE a +Ri').length === 3);
  });

  it('fails for good, saying why, when the host cannot use its address (EADDRNOTAVAIL), and tells once per attempt', async () => {
    const p = await peer();
    // 192.0.2.0/24 (TEST-NET-1) is on no interface here: binding to it fails before any packet is sent
    const a = client(p.port, 'a', new ReconnectLimiter(1), 60_000, { localAddress: '192.0.2.9' });
    const told: string[] = [];
    a.on('address unavailable', (address: string) => told.push(address));
    await expect(a.connect()).rejects.toMatchObject({ name: 'DeliveryError', permanent: true, message: expect.stringMatching(/cannot use the address 192\.0\.2\.9/) });
    expect(a.state).toBe('closed');
    await tick(100); // reconnects are 20 ms apart here: none was tried
    expect(told).toEqual(['192.0.2.9']);
    await expect(a.send('PRIVMSG', '#c', 'hello')).rejects.toMatchObject({ permanent: true });
    expect(told).toEqual(['192.0.2.9', '192.0.2.9']);
    expect(p.sockets.size).toBe(0);
  });

  it('fails at once, for good, with cannotOpen (no free address in the block), connecting nothing', async () => {
    const p = await peer();
    const a = client(p.port, 'a', new ReconnectLimiter(1), 60_000, { cannotOpen: 'no free address' });
    await expect(a.send('PRIVMSG', '#c', 'hello')).rejects.toMatchObject({ name: 'DeliveryError', permanent: true, message: 'no free address' });
    expect(a.state).toBe('closed');
    await tick(50);
    expect(p.sockets.size).toBe(0);
  });
});
