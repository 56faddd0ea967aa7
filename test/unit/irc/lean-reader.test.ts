// The lean connection's reader against a scripted TCP peer on 127.0.0.1: lines split anywhere
// (even inside a UTF-8 character), CRLF or bare LF, other people's channel chatter dropped, and a
// resting socket still delivering what arrived while it rested.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { REST_MAX_MS, REST_MS } from '../../../packages/irc/src/resting.js';

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); server?.close(); });

/** A peer that registers the client as `me` (no caps) and hands over its socket. */
async function peer(): Promise<{ port: number; socket: Promise<Socket> }> {
  let give!: (s: Socket) => void;
  const socket = new Promise<Socket>((r) => (give = r));
  server = createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('USER ')) { buf = ''; s.write(':srv CAP * LS :\r\n:srv 001 me :Welcome\r\n'); give(s); }
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, socket };
}

function client(port: number): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
    reconnect: { initialDelayMs: 100, maxDelayMs: 100 }, timeouts: { registerMs: 5000, answerMs: 10_000 }, limiter: new ReconnectLimiter(5), log: silentLogger,
  });
  return conn;
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('LeanConnection reader', () => {
  it('reassembles lines split mid-character and drops channel chatter', async () => {
    const { port, socket } = await peer();
    const c = client(port);
    const pms: { nick: string; message: string }[] = [];
    c.on('pm', (e: { nick: string; message: string }) => pms.push({ nick: e.nick, message: e.message }));
    await c.connect();
    const s = await socket;
    const text = 'héllo wörld ✓';
    const lines = Buffer.from(
      `:bob!b@h PRIVMSG #chan :chatter nobody here reads\r\n:bob!b@h PRIVMSG me :${text}\r\n@time=x :carol!c@h NOTICE #chan :more chatter\n:carol!c@h PRIVMSG me :second\n`,
    );
    const cut = lines.indexOf(Buffer.from('✓')) + 1; // inside the three bytes of ✓
    s.write(lines.subarray(0, cut));
    await tick(REST_MS * 3);
    s.write(lines.subarray(cut));
    await tick(REST_MS * 3);
    expect(pms).toEqual([{ nick: 'bob', message: text }, { nick: 'carol', message: 'second' }]);
  });

  it('after a long stretch of chatter (the longest rest), a private message still arrives within REST_MAX_MS', async () => {
    const { port, socket } = await peer();
    const c = client(port);
    const at: number[] = [];
    c.on('pm', () => at.push(Date.now()));
    await c.connect();
    const s = await socket;
    for (let i = 0; i < 30; i++) { s.write(`:x!x@h PRIVMSG #c :chatter ${i}\r\n`); await tick(REST_MS); }
    const sent = Date.now();
    s.write(':x!x@h PRIVMSG me :are you there?\r\n');
    await tick(REST_MAX_MS * 3);
    expect(at).toHaveLength(1);
    expect(at[0]! - sent).toBeLessThan(REST_MAX_MS * 2); // bounded by the longest rest (with room for a slow machine)
  });

  it('a resting socket delivers what arrived while it rested, in order', async () => {
    const { port, socket } = await peer();
    const c = client(port);
    const got: string[] = [];
    c.on('pm', (e: { message: string }) => got.push(e.message));
    await c.connect();
    const s = await socket;
    s.write(':x!x@h PRIVMSG #c :wake the reader, then it rests\r\n');
    await tick(2);
    for (let i = 0; i < 200; i++) s.write(`:x!x@h PRIVMSG ${i % 2 ? '#c' : 'me'} :m${i}\r\n`);
    await tick(REST_MS * 5);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => `m${i * 2}`));
  });

  it('emits a draft/multiline private message once, whole, with the batch tags; channel batches stay dropped', async () => {
    const { port, socket } = await peer();
    const c = client(port);
    const pms: { type: string; nick: string; message: string; tags: Record<string, string> }[] = [];
    c.on('pm', (e: { type: string; nick: string; message: string; tags: Record<string, string> }) => pms.push({ type: e.type, nick: e.nick, message: e.message, tags: e.tags }));
    await c.connect();
    const s = await socket;
    s.write([
      '@msgid=m1;time=2026-01-01T00:00:00.000Z :bob!b@h BATCH +b1 draft/multiline me',
      ':carol!c@h BATCH +b2 draft/multiline #chan',
      '@batch=b1 :bob!b@h PRIVMSG me :one',
      '@batch=b2 :carol!c@h PRIVMSG #chan :channel line',
      '@batch=b1 :bob!b@h PRIVMSG me :two, ',
      '@batch=b1;draft/multiline-concat :bob!b@h PRIVMSG me :joined',
      ':dave!d@h PRIVMSG me :alone',
      'BATCH -b2',
      'BATCH -b1',
      '',
    ].join('\r\n'));
    await tick(REST_MS * 3);
    expect(pms).toEqual([
      { type: 'privmsg', nick: 'dave', message: 'alone', tags: {} },
      { type: 'privmsg', nick: 'bob', message: 'one\ntwo, joined', tags: { msgid: 'm1', time: '2026-01-01T00:00:00.000Z' } },
    ]);
  });

  it('drops a line too long to keep whole, its end too: the rest of it is no line of its own (a PRIVMSG\'s tail is not a KICK)', async () => {
    const { port, socket } = await peer();
    const c = client(port);
    const kicked: unknown[] = [], pms: string[] = [];
    c.on('kicked', (k: unknown) => kicked.push(k));
    c.on('pm', (e: { message: string }) => pms.push(e.message));
    await c.connect();
    const s = await socket;
    s.write(`:bob!b@h PRIVMSG #chan :${'x'.repeat(17_000)}`); // no end yet: more than 16 KiB
    await tick(REST_MS * 3);
    // the rest of bob's line, which bob chose, then a line of its own
    s.write(":ChanServ!s@services KICK #chan me :the tail of bob's text\r\n:carol!c@h PRIVMSG me :after it\r\n");
    await tick(REST_MS * 3);
    expect(kicked).toEqual([]);
    expect(pms).toEqual(['after it']);
  });

  it('skips the rest of an over-long line across several reads without a line end', async () => {
    const { port, socket } = await peer();
    const c = client(port);
    const pms: string[] = [];
    c.on('pm', (e: { message: string }) => pms.push(e.message));
    await c.connect();
    const s = await socket;
    s.write(`:bob!b@h PRIVMSG me :${'x'.repeat(17_000)}`);
    await tick(REST_MS * 3);
    s.write(':mallory!m@h PRIVMSG me :still the long line');
    await tick(REST_MS * 3);
    s.write(' and still\r\n:carol!c@h PRIVMSG me :next\r\n');
    await tick(REST_MS * 3);
    expect(pms).toEqual(['next']);
  });
});
