// A lean connection's flood control against a scripted peer on 127.0.0.1 (no capabilities: each
// batch of lines is followed by its barrier PING): a burst goes at once, the rest at the configured
// rate, always in order; the PING never waits; a quit or a reconnect leaves no pump behind; the
// rejoin after a reconnect is as few JOIN lines as fit.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import type { FloodSettings } from '../../../packages/irc/src/flood.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { linePeer, registeredWithoutCaps } from './line-peer.js';

/** What the peer heard after registration, on which connection (0, 1...) and when (ms since the test began). */
interface Heard { conn: number; at: number; line: string }
interface Peer { port: number; sockets: Socket[]; heard: Heard[]; answerPings: boolean }

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); server?.close(); });

async function peer(): Promise<Peer> {
  const start = Date.now();
  const p: Peer = { port: 0, sockets: [], heard: [], answerPings: true };
  ({ server, port: p.port } = await linePeer((s) => {
    const n = p.sockets.push(s) - 1;
    const registered = registeredWithoutCaps(s);
    return (line) => {
      if (!registered(line)) return;
      p.heard.push({ conn: n, at: Date.now() - start, line });
      const ping = /^PING :(.*)$/.exec(line);
      if (ping && p.answerPings) s.write(`:srv PONG srv :${ping[1]}\r\n`);
      const join = /^JOIN (\S+)/.exec(line);
      if (join) for (const ch of join[1]!.split(',')) s.write(`:me!me@h JOIN ${ch}\r\n`);
    };
  }));
  return p;
}

function client(port: number, flood?: FloodSettings): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs: 5000 },
    limiter: new ReconnectLimiter(1), log: silentLogger, ...(flood ? { flood } : {}),
  });
  return conn;
}

const outcome = (p: Promise<string | undefined>): Promise<{ sent: string | undefined } | { failed: string; permanent: boolean; unreachable: boolean }> =>
  p.then((id) => ({ sent: id }), (err: Error & { permanent?: boolean; unreachable?: boolean }) => ({
    failed: err.message, permanent: err.permanent === true, unreachable: err.unreachable === true,
  }));
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const waitFor = async (what: string, pred: () => boolean): Promise<void> => {
  for (let i = 0; i < 300 && !pred(); i++) await tick(10);
  if (!pred()) throw new Error(`timed out waiting for ${what}`);
};
const texts = (p: Peer): string[] => p.heard.filter((h) => h.line.startsWith('PRIVMSG')).map((h) => h.line.slice('PRIVMSG #c :'.length));
const at = (p: Peer, line: string): number => p.heard.find((h) => h.line === line)!.at;

describe('LeanConnection flood control', () => {
  it('writes the burst at once, then one line per 1/rate, in order; the barrier PING after the burst does not wait', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: true, burstLines: 3, linesPerSecond: 5 }); // a token every 200 ms
    await c.connect();
    const lines = ['1', '2', '3', '4', '5'];
    const results = await Promise.all(lines.map((t) => outcome(c.send('PRIVMSG', '#c', t))));
    expect(results).toEqual(lines.map(() => ({ sent: undefined })));
    expect(texts(p)).toEqual(lines);
    // the first three and their PING at once (within the loopback's delayed ACK, 40 ms); the PING put the
    // bucket one in debt, so line 4 waits for two tokens
    expect(p.heard[3]!.line).toMatch(/^PING :b\d+$/);
    expect(p.heard[3]!.at - at(p, 'PRIVMSG #c :1')).toBeLessThan(150);
    expect(at(p, 'PRIVMSG #c :4') - at(p, 'PRIVMSG #c :1')).toBeGreaterThanOrEqual(350);
    // each later line and its own PING cost two tokens: 400 ms apart
    expect(at(p, 'PRIVMSG #c :5') - at(p, 'PRIVMSG #c :4')).toBeGreaterThanOrEqual(350);
  });

  it('off: writes the whole queue at once, as before flood control', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: false, burstLines: 1, linesPerSecond: 1 });
    await c.connect();
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
    await Promise.all(lines.map((t) => c.send('PRIVMSG', '#c', t)));
    expect(texts(p)).toEqual(lines);
    expect(p.heard.filter((h) => h.line.startsWith('PING'))).toHaveLength(1); // one batch, one barrier
    expect(at(p, 'PRIVMSG #c :line 29') - at(p, 'PRIVMSG #c :line 0')).toBeLessThan(100);
  });

  it('sends a multiline batch costlier than the burst once the bucket is full, keeping its place in the queue', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: true, burstLines: 3, linesPerSecond: 20 });
    await c.connect();
    const parts = ['a', 'b', 'c', 'd', 'e'].map((text) => ({ text, concat: false }));
    const results = await Promise.all([
      outcome(c.send('PRIVMSG', '#c', 'before')),
      outcome(c.sendMultiline('PRIVMSG', '#c', parts)),
      outcome(c.send('PRIVMSG', '#c', 'after')),
    ]);
    expect(results).toEqual([{ sent: undefined }, { sent: undefined }, { sent: undefined }]);
    const order = p.heard.map((h) => h.line.replace(/^@batch=\S+ /, '').replace(/ml\d+/, 'ml'));
    expect(order.filter((l) => !l.startsWith('PING'))).toEqual([
      'PRIVMSG #c :before', 'BATCH +ml draft/multiline #c',
      ...parts.map((x) => `PRIVMSG #c :${x.text}`), 'BATCH -ml', 'PRIVMSG #c :after',
    ]);
    // "before" and its PING spent 2 of 3: the batch (cost 7) waits for the full bucket, 2 tokens: 100 ms
    const batchAt = p.heard.find((h) => h.line.startsWith('BATCH +'))!.at;
    expect(batchAt - at(p, 'PRIVMSG #c :before')).toBeGreaterThanOrEqual(90);
  });

  it('on quit, fails what still waits for the bucket as retryable (the pool sends it again) and writes nothing after the QUIT', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: true, burstLines: 2, linesPerSecond: 5 });
    await c.connect();
    const results = ['1', '2', '3', '4'].map((t) => outcome(c.send('PRIVMSG', '#c', t)));
    await waitFor('the burst', () => texts(p).length === 2);
    c.quit('Idle');
    expect(await results[2]).toEqual({ failed: 'the IRC connection was closed before the server confirmed the message', permanent: false, unreachable: true });
    expect(await results[3]).toMatchObject({ permanent: false, unreachable: true });
    await tick(700); // the rate would have sent both by now
    expect(texts(p)).toEqual(['1', '2']);
    expect(p.heard.at(-1)!.line).toBe('QUIT :Idle');
  });

  it('after a drop, fails the rest of a message one of whose lines was lost: core\'s retry of the whole message is its only copy', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: true, burstLines: 2, linesPerSecond: 10 });
    await c.connect();
    p.answerPings = false; // the first lines stay unconfirmed: lost with the connection
    const lines = ['1', '2', '3', '4'];
    const first = lines.map((t) => outcome(c.send('PRIVMSG', '#c', t)));
    await waitFor('the burst', () => texts(p).length === 2);
    p.sockets[0]!.destroy(); // dropped while 3 and 4 wait for the bucket
    const lost = { failed: 'the IRC connection was lost before the server confirmed the message', permanent: false, unreachable: true };
    expect(await Promise.all(first)).toEqual([lost, lost, lost, lost]); // all of it: the room's queue sends it again
    p.answerPings = true;
    await waitFor('the reconnect', () => c.state === 'connected');
    await tick(300); // the rate would have sent 3 and 4 by now
    expect(p.heard.filter((h) => h.conn === 1 && h.line.startsWith('PRIVMSG'))).toEqual([]);
    // core's retry (network.ts sends a message's lines together)
    expect(await Promise.all(lines.map((t) => outcome(c.send('PRIVMSG', '#c', t))))).toEqual(lines.map(() => ({ sent: undefined })));
    expect(p.heard.filter((h) => h.conn === 1 && h.line.startsWith('PRIVMSG')).map((h) => h.line)).toEqual(lines.map((t) => `PRIVMSG #c :${t}`));
  });

  it('after a drop, sends the rest of a message whose written lines were all confirmed on the new connection, in order and once', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: true, burstLines: 2, linesPerSecond: 5 });
    await c.connect();
    const first = ['1', '2', '3', '4'].map((t) => outcome(c.send('PRIVMSG', '#c', t)));
    expect(await Promise.all(first.slice(0, 2))).toEqual([{ sent: undefined }, { sent: undefined }]); // their PONG came
    p.sockets[0]!.destroy(); // dropped while 3 and 4 wait for the bucket (400 ms: the PING put it in debt)
    expect(await Promise.all(first.slice(2))).toEqual([{ sent: undefined }, { sent: undefined }]);
    const second = p.heard.filter((h) => h.conn === 1 && h.line.startsWith('PRIVMSG')).map((h) => h.line);
    expect(second).toEqual(['PRIVMSG #c :3', 'PRIVMSG #c :4']);
    expect(p.heard.filter((h) => h.conn === 0 && h.line.startsWith('PRIVMSG'))).toHaveLength(2);
  });

  it('after a drop, keeps queued for the reconnect a message none of whose lines was written, though another was lost', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: true, burstLines: 2, linesPerSecond: 5 });
    await c.connect();
    p.answerPings = false;
    const lostOne = ['1', '2'].map((t) => outcome(c.send('PRIVMSG', '#c', t)));
    await tick(0); // the next message is sent in a later turn (another room's, or this room's next one)
    const whole = ['a', 'b'].map((t) => outcome(c.send('PRIVMSG', '#d', t)));
    await waitFor('the burst', () => texts(p).length === 2);
    p.sockets[0]!.destroy();
    expect(await lostOne[0]).toMatchObject({ unreachable: true });
    p.answerPings = true;
    expect(await Promise.all(whole)).toEqual([{ sent: undefined }, { sent: undefined }]);
    expect(p.heard.filter((h) => h.conn === 1 && h.line.startsWith('PRIVMSG')).map((h) => h.line)).toEqual(['PRIVMSG #d :a', 'PRIVMSG #d :b']);
  });

  it('rejoins after a reconnect with one JOIN for all channels, those with keys first', async () => {
    const p = await peer();
    const c = client(p.port, { enabled: true, burstLines: 10, linesPerSecond: 2 });
    await c.connect();
    await c.join('#b');
    await c.join('#k', 'secret');
    await c.join('#c');
    p.sockets[0]!.destroy();
    await waitFor('the rejoin', () => p.heard.some((h) => h.conn === 1));
    await tick(50);
    expect(p.heard.filter((h) => h.conn === 1).map((h) => h.line)).toEqual(['JOIN #k,#b,#c secret']);
    await waitFor('the channels', () => ['#b', '#k', '#c'].every((ch) => c.isIn(ch)));
  });
});
