// JOINs waiting for the server's answer (packages/irc/src/joins.ts): a refusal ends the wait at once
// with why, whichever numeric the server refuses with; a numeric that also answers other commands
// (403, 437, 477) ends a JOIN's wait only while a JOIN of the channel it names waits. Then the same
// against a Matrix user's connection (lean.ts), which feeds its numerics through JOIN_ERRORS.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { JoinWaits } from '../../../packages/irc/src/joins.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { linePeer, registeredWithoutCaps } from './line-peer.js';

/** How a join ended: joined, or the error's message and whether it is permanent. */
const outcome = (p: Promise<void>): Promise<string> =>
  p.then(() => 'joined', (err: Error & { permanent?: boolean }) => `${err.permanent === true ? 'refused' : 'failed'}: ${err.message}`);

const REFUSALS: [string, string, string][] = [
  ['403', 'No such channel', 'the channel does not exist, and the server will not create it'],
  ['437', 'Nick/channel is temporarily unavailable', 'the channel is temporarily unavailable'],
  ['476', 'Bad Channel Mask', 'the channel name is not valid on this server'],
  ['477', 'You need a registered nick to join that channel', 'the channel lets in only users logged in to an account'],
];

describe('JoinWaits', () => {
  afterEach(() => { vi.useRealTimers(); });

  it.each(REFUSALS)('ends a JOIN refused with %s at once, with why, and forgets the channel', async (numeric, text, why) => {
    vi.useFakeTimers();
    const waits = new JoinWaits();
    const refused = vi.fn();
    const join = outcome(waits.join('#x', '#X', () => undefined, refused));
    expect(waits.refusal(numeric, ['me', '#X', text])).toBe(true);
    expect(await join).toBe(`refused: cannot join #X: ${why}`);
    expect(refused).toHaveBeenCalledOnce();
    expect(vi.getTimerCount()).toBe(0); // the 15 s timeout is gone with it
  });

  it('keeps the refusals it already knew (471, 473, 474, 475, 405)', async () => {
    const waits = new JoinWaits();
    const join = outcome(waits.join('#x', '#x', () => undefined, () => undefined));
    expect(waits.refusal('474', ['me', '#x', 'Cannot join channel (+b)'])).toBe(true);
    expect(await join).toBe('refused: cannot join #x: you are banned from the channel');
  });

  it('takes a 403 or 477 for a JOIN\'s refusal only while a JOIN of that channel waits: else it answered something else', async () => {
    vi.useFakeTimers();
    const waits = new JoinWaits();
    const join = outcome(waits.join('#x', '#x', () => undefined, () => undefined, 1_000));
    // a message to another channel that does not exist, or where only the logged-in may speak
    expect(waits.refusal('403', ['me', '#gone', 'No such channel'])).toBe(false);
    expect(waits.refusal('477', ['me', '#quiet', 'You need to be identified to message this channel'])).toBe(false);
    // nothing waits for #gone: a JOIN of it later is not refused by the old answer
    const later = outcome(waits.join('#gone', '#gone', () => undefined, () => undefined, 1_000));
    waits.answered('#gone');
    expect(await later).toBe('joined');
    waits.answered('#x');
    expect(await join).toBe('joined');
  });

  it('takes an answer after the JOIN timed out for no JOIN\'s', async () => {
    vi.useFakeTimers();
    const waits = new JoinWaits();
    const join = outcome(waits.join('#x', '#x', () => undefined, () => undefined, 1_000));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await join).toBe('failed: joining #x timed out');
    expect(waits.refusal('403', ['me', '#x', 'No such channel'])).toBe(false);
  });

  it('takes a 437 naming a nick (a NICK refused) for no JOIN\'s refusal', () => {
    const waits = new JoinWaits();
    void waits.join('#x', '#x', () => undefined, () => undefined).catch(() => undefined);
    expect(waits.refusal('437', ['me', 'wanted', 'Nick/channel is temporarily unavailable'])).toBe(false);
    expect(waits.refusal('437', ['me', '#x', 'Nick/channel is temporarily unavailable'])).toBe(true);
  });

  it('knows no refusal by a numeric that is not one, nor by the names objects have', () => {
    const waits = new JoinWaits();
    void waits.join('#x', '#x', () => undefined, () => undefined).catch(() => undefined);
    for (const numeric of ['404', '442', '482', 'constructor', 'toString', '__proto__']) expect(waits.refusal(numeric, ['me', '#x', 'no'])).toBe(false);
    expect(waits.refusal('403', ['me'])).toBe(false); // no channel named
    expect(waits.refusal('403', ['me', '#x', 'No such channel'])).toBe(true);
  });
});

describe('a Matrix user\'s connection (lean.ts) refused a JOIN', () => {
  let server: Server | undefined;
  let conn: LeanConnection | undefined;
  afterEach(() => { conn?.quit(); server?.close(); });

  /** A peer without capabilities that answers PINGs, and each other line with what `answer` gives (CRLF added). */
  async function connected(answer: (line: string) => string | undefined): Promise<LeanConnection> {
    let port: number;
    ({ server, port } = await linePeer((s: Socket) => {
      const registered = registeredWithoutCaps(s);
      return (line) => {
        if (!registered(line)) return;
        const ping = /^PING :(.*)$/.exec(line);
        if (ping) { s.write(`:srv PONG srv :${ping[1]}\r\n`); return; }
        const reply = answer(line);
        if (reply) s.write(`${reply}\r\n`);
      };
    }));
    conn = new LeanConnection({
      host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
      reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs: 5000 },
      limiter: new ReconnectLimiter(1), log: silentLogger,
    });
    await conn.connect();
    return conn;
  }

  /** The join's outcome, or 'still waiting' after two seconds (the join timeout is 15). */
  const soon = (p: Promise<void>): Promise<string> =>
    Promise.race([outcome(p), new Promise<string>((r) => { setTimeout(() => r('still waiting'), 2_000).unref(); })]);

  it.each(REFUSALS)('ends the wait at once on %s, with why', async (numeric, text, why) => {
    const c = await connected((line) => line.startsWith('JOIN ') ? `:srv ${numeric} me ${line.slice(5)} :${text}` : undefined);
    expect(await soon(c.join('#x'))).toBe(`refused: cannot join #x: ${why}`);
  });

  it('takes a 437 that refuses a NICK, while a JOIN waits, for the NICK\'s: the JOIN goes on', async () => {
    // the server answers in order: the JOIN's answer held until the NICK's refusal has gone first
    const c = await connected((line) => line === 'NICK held'
      ? ':srv 437 me held :Nick/channel is temporarily unavailable\r\n:me!me@h JOIN #x'
      : undefined);
    const nickErrors: string[] = [];
    c.on('nick error', (why: string) => nickErrors.push(why));
    const join = c.join('#x');
    await c.send('RAW', '', 'NICK held');
    expect(await soon(join)).toBe('joined');
    expect(nickErrors).toEqual(['held is temporarily unavailable']);
  });

  it('takes a 403 that refuses a message to another channel for no JOIN\'s refusal', async () => {
    const c = await connected((line) => line.startsWith('PRIVMSG #gone ')
      ? ':srv 403 me #gone :No such channel\r\n:me!me@h JOIN #x'
      : undefined);
    const join = c.join('#x');
    const sent = await c.send('PRIVMSG', '#gone', 'hello').then(() => 'sent', (err: Error) => err.message);
    expect(sent).toBe('the IRC server refused it: #gone No such channel');
    expect(await soon(join)).toBe('joined');
  });
});
