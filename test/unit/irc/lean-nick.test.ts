// The lean connection's nick against a scripted TCP peer on 127.0.0.1: a nick refused as in use (433)
// comes before the server's ISUPPORT, so the next nick tried must fit the NICKLEN the bridge was told,
// not a guessed 30; and a nick taken at registration is watched (MONITOR) and taken back once free.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); server?.close(); });

/** A TCP peer on 127.0.0.1 that hands each line the client sends to `onLine`; resolves with its port. */
async function scripted(onLine: (line: string, socket: Socket) => void): Promise<number> {
  server = createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        onLine(line, s);
      }
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/** A peer that refuses the first NICK as in use, registers the second, and records the NICKs. */
function peer(nicks: string[]): Promise<number> {
  return scripted((line, s) => {
    if (!line.startsWith('NICK ')) return;
    nicks.push(line.slice(5));
    s.write(nicks.length === 1 ? `:srv 433 * ${line.slice(5)} :Nickname is already in use\r\n` : `:srv 001 ${line.slice(5)} :Welcome\r\n`);
  });
}

function client(port: number, nick: string, nickLen?: number): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick, username: 'me', realname: 'Me', ...(nickLen ? { nickLen } : {}),
    reconnect: { initialDelayMs: 100, maxDelayMs: 100 }, timeouts: { registerMs: 5000, answerMs: 10_000 }, limiter: new ReconnectLimiter(5), log: silentLogger,
  });
  return conn;
}

describe('LeanConnection nick collisions while registering', () => {
  it("keeps the next nick within the server's NICKLEN it was given", async () => {
    const nicks: string[] = [];
    const c = client(await peer(nicks), 'Bartholom', 9);
    await c.connect();
    expect(nicks).toEqual(['Bartholom', 'Bartholo_']);
    expect(c.nick).toBe('Bartholo_');
  });

  it('uses the whole of a NICKLEN longer than 30', async () => {
    const nicks: string[] = [];
    const long = 'x'.repeat(32);
    await client(await peer(nicks), long, 32).connect();
    expect(nicks).toEqual([long, `${'x'.repeat(31)}_`]);
  });

  it.each([
    ['437 (temporarily unavailable: a nick delay, a reserved nick)', '437 * $NICK :Nick/channel is temporarily unavailable'],
    ['436 (a collision)', '436 * $NICK :Nickname collision KILL'],
  ])('takes the next nick after %s, as after 433, instead of waiting out registration', async (_, refusal) => {
    const nicks: string[] = [];
    const port = await scripted((line, s) => {
      if (!line.startsWith('NICK ')) return;
      nicks.push(line.slice(5));
      s.write(nicks.length === 1 ? `:srv ${refusal.replace('$NICK', line.slice(5))}\r\n` : `:srv 001 ${line.slice(5)} :Welcome\r\n`);
    });
    const c = client(port, 'alice');
    await c.connect(); // (registerMs is 5 s: the test times out first)
    expect(nicks).toEqual(['alice', 'alice_']);
    expect(c.nick).toBe('alice_');
  });

  it('after registration, takes a 437 about a channel (a JOIN refused) for no nick error', async () => {
    let socket: Socket | undefined;
    const port = await scripted((line, s) => { socket = s; if (line.startsWith('NICK ')) s.write(`:srv 001 ${line.slice(5)} :Welcome\r\n`); });
    const c = client(port, 'alice');
    const errors: string[] = [];
    c.on('nick error', (why: string) => errors.push(why));
    await c.connect();
    socket!.write(':srv 437 alice #split :Nick/channel is temporarily unavailable\r\n:srv 437 alice bob :Nick/channel is temporarily unavailable\r\n');
    await waitFor(() => errors.length > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(errors).toEqual(['bob is temporarily unavailable']);
  });
});

/** A peer that refuses the first NICK as taken, then registers; `isupport` is its 005; every line the client sends is kept. */
async function regainPeer(isupport: string, lines: string[]): Promise<{ port: number; send: (line: string) => void }> {
  let socket: Socket | undefined;
  let nicks = 0;
  const port = await scripted((line, s) => {
    socket = s;
    lines.push(line);
    if (!line.startsWith('NICK ') || nicks++ > 1) return;
    const nick = line.slice(5);
    s.write(nicks === 1 ? `:srv 433 * ${nick} :Nickname is already in use\r\n` : `:srv 001 ${nick} :Welcome\r\n:srv 005 ${nick} ${isupport} :are supported\r\n`);
  });
  return { port, send: (line) => socket!.write(`${line}\r\n`) };
}

const waitFor = async (pred: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(pred()).toBe(true);
};

describe('LeanConnection taking back a nick that was taken', () => {
  it('watches the nick with MONITOR, takes it when the server says it is free, then stops watching', async () => {
    const lines: string[] = [];
    const p = await regainPeer('MONITOR=100 NICKLEN=30', lines);
    const c = client(p.port, 'Held[m]');
    await c.connect();
    expect(c.nick).toBe('Held[m]_');
    await waitFor(() => lines.includes('MONITOR + Held[m]'));
    p.send(':srv 731 Held[m]_ :someone,held[M]');
    await waitFor(() => lines.filter((l) => l === 'NICK Held[m]').length === 2);
    p.send(':Held[m]_!me@host NICK :Held[m]');
    await waitFor(() => lines.includes('MONITOR - Held[m]'));
    expect(c.nick).toBe('Held[m]');
  });

  it('does not watch without MONITOR, nor ask for its nick when another one goes offline', async () => {
    const lines: string[] = [];
    const p = await regainPeer('NICKLEN=30', lines);
    const c = client(p.port, 'Held[m]');
    await c.connect();
    p.send(':srv 731 Held[m]_ :other');
    await new Promise((r) => setTimeout(r, 200));
    expect(lines.some((l) => l.startsWith('MONITOR'))).toBe(false);
    expect(lines.filter((l) => l.startsWith('NICK '))).toEqual(['NICK Held[m]', 'NICK Held[m]_']);
  });
});

/**
 * A peer that registers each connection with the nick it asks for (433 for those in `taken`), makes
 * NICK changes after registration, and keeps the NICKs each connection sent; `send` writes to the latest.
 */
async function nickPeer(taken: Set<string>): Promise<{ port: number; nicks: string[][]; send: (line: string) => void; drop: () => void }> {
  const nicks: string[][] = [];
  const sockets: Socket[] = [];
  const port = await scripted((line, s) => {
    if (!sockets.includes(s)) { sockets.push(s); nicks.push([]); }
    const mine = nicks[sockets.indexOf(s)]!;
    const m = /^NICK (\S+)$/.exec(line);
    if (!m) return;
    const registered = (s as Socket & { nick?: string }).nick;
    mine.push(m[1]!);
    if (taken.has(m[1]!)) { s.write(`:srv 433 ${registered ?? '*'} ${m[1]} :Nickname is already in use\r\n`); return; }
    s.write(registered ? `:${registered}!me@h NICK :${m[1]}\r\n` : `:srv 001 ${m[1]} :Welcome\r\n`);
    (s as Socket & { nick?: string }).nick = m[1];
  });
  return { port, nicks, send: (l) => sockets.at(-1)!.write(`${l}\r\n`), drop: () => sockets.at(-1)!.destroy() };
}

describe('LeanConnection keeps the nick it changed to across reconnects', () => {
  it('registers again with the nick asked for and got (the `nick` command, a display name followed), not the configured one', async () => {
    const p = await nickPeer(new Set());
    const c = client(p.port, 'orig');
    await c.connect();
    await c.send('RAW', '', 'NICK chosen');
    await waitFor(() => c.nick === 'chosen');
    p.drop(); // a ping timeout, a server restart
    await waitFor(() => p.nicks.length === 2 && c.state === 'connected');
    expect(p.nicks[1]).toEqual(['chosen']);
    expect(c.nick).toBe('chosen');
  });

  it('does not keep a nick the server forced on it (services\' guest nick): the wanted one is asked for again', async () => {
    const p = await nickPeer(new Set());
    const c = client(p.port, 'orig');
    await c.connect();
    p.send(':orig!me@h NICK :Guest4821');
    await waitFor(() => c.nick === 'Guest4821');
    p.drop();
    await waitFor(() => p.nicks.length === 2 && c.state === 'connected');
    expect(p.nicks[1]).toEqual(['orig']);
  });

  it('falls back from the chosen nick, not the configured one, when it is taken at the reconnect', async () => {
    const taken = new Set<string>();
    const p = await nickPeer(taken);
    const c = client(p.port, 'orig');
    await c.connect();
    await c.send('RAW', '', 'NICK chosen');
    await waitFor(() => c.nick === 'chosen');
    taken.add('chosen'); // someone took it while the connection was down
    p.drop();
    await waitFor(() => p.nicks.length === 2 && c.state === 'connected');
    expect(p.nicks[1]).toEqual(['chosen', 'chosen_']);
  });
});
