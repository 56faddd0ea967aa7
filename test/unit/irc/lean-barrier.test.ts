// A lean connection on a server without labeled-response or echo-message (most networks), against
// a scripted peer on 127.0.0.1: lines are followed by a PING (one for those written together), and
// count as sent only when its PONG comes (the server has processed them); a refusal before that
// PONG is the first unrefused line's to that target; a connection lost before it is an outage to
// retry, not a delivery.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { Barriers } from '../../../packages/irc/src/barriers.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { linePeer, registeredWithoutCaps } from './line-peer.js';

/**
 * A peer with no capabilities. `onLine` decides what each registered line gets; by default PINGs
 * are answered at once. `lines` is everything registered connections said.
 */
interface Peer { port: number; sockets: Socket[]; lines: string[]; onLine: (line: string, s: Socket) => void }
const pong = (line: string, s: Socket): void => { const m = /^PING :(.*)$/.exec(line); if (m) s.write(`:srv PONG srv :${m[1]}\r\n`); };

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); server?.close(); });

async function peer(): Promise<Peer> {
  const p: Peer = { port: 0, sockets: [], lines: [], onLine: pong };
  ({ server, port: p.port } = await linePeer((s) => {
    p.sockets.push(s);
    const registered = registeredWithoutCaps(s);
    return (line) => {
      if (!registered(line)) return;
      p.lines.push(line);
      p.onLine(line, s);
    };
  }));
  return p;
}

function client(port: number): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs: 5000 },
    limiter: new ReconnectLimiter(1), log: silentLogger,
  });
  return conn;
}

const outcome = (p: Promise<string | undefined>): Promise<{ sent: string | undefined } | { failed: string; permanent: boolean; unreachable: boolean }> =>
  p.then((id) => ({ sent: id }), (err: Error & { permanent?: boolean; unreachable?: boolean }) => ({
    failed: err.message, permanent: err.permanent === true, unreachable: err.unreachable === true,
  }));
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('LeanConnection without labeled-response: a PING after each line', () => {
  it('counts a line as sent only once the PONG after it comes', async () => {
    const p = await peer();
    const held: (() => void)[] = [];
    p.onLine = (line, s) => { if (line.startsWith('PING')) held.push(() => pong(line, s)); };
    const c = client(p.port);
    await c.connect();
    let settled = false;
    const sent = c.send('PRIVMSG', '#c', 'hello').finally(() => { settled = true; });
    await tick(150);
    expect(p.lines).toEqual(['PRIVMSG #c :hello', expect.stringMatching(/^PING :b\d+$/)]);
    expect(settled).toBe(false);
    held.shift()!();
    expect(await outcome(sent)).toEqual({ sent: undefined });
  });

  it('writes one PING for the lines written together (the pieces of a long message), not one each', async () => {
    const p = await peer();
    const c = client(p.port);
    await c.connect();
    const pieces = await Promise.all(['one', 'two', 'three'].map((t) => c.send('PRIVMSG', '#c', t)));
    expect(pieces).toEqual([undefined, undefined, undefined]);
    expect(p.lines).toEqual(['PRIVMSG #c :one', 'PRIVMSG #c :two', 'PRIVMSG #c :three', expect.stringMatching(/^PING :b\d+$/)]);
  });

  it('fails a line the server refuses before its PONG, for good; the next line, and an error about another target, are not it', async () => {
    const p = await peer();
    p.onLine = (line, s) => {
      if (line === 'PRIVMSG #moderated :quiet please') s.write(':srv 404 me #moderated :Cannot send to channel\r\n');
      if (line === 'PRIVMSG #c :meanwhile') s.write(':srv 474 me #other :Cannot join channel (+b)\r\n'); // a JOIN's answer, say
      pong(line, s);
    };
    const c = client(p.port);
    await c.connect();
    const [refused, next, other] = await Promise.all([
      outcome(c.send('PRIVMSG', '#moderated', 'quiet please')),
      outcome(c.send('PRIVMSG', '#moderated', 'and again')),
      outcome(c.send('PRIVMSG', '#c', 'meanwhile')),
    ]);
    expect(refused).toEqual({ failed: 'the IRC server refused it: #moderated Cannot send to channel', permanent: true, unreachable: false });
    expect(next).toEqual({ sent: undefined });
    expect(other).toEqual({ sent: undefined });
  });

  it('takes a line whose PONG never came, on a connection that drops, for an outage: retried after the reconnect, not counted as sent', async () => {
    const p = await peer();
    p.onLine = (line, s) => { if (line === 'PRIVMSG #c :lost in the drop') s.destroy(); else pong(line, s); };
    const c = client(p.port);
    await c.connect();
    expect(await outcome(c.send('PRIVMSG', '#c', 'lost in the drop'))).toEqual({
      failed: 'the IRC connection was lost before the server confirmed the message', permanent: false, unreachable: true,
    });
    p.onLine = pong;
    expect(await outcome(c.send('PRIVMSG', '#c', 'lost in the drop'))).toEqual({ sent: undefined });
    expect(p.sockets).toHaveLength(2);
    expect(p.lines.filter((l) => l === 'PRIVMSG #c :lost in the drop')).toHaveLength(2);
  });

  it("does not take another command's error about the same target for a message's refusal (MODE, JOIN, PART, NICK)", async () => {
    const p = await peer();
    // a server answers in order: each command's error comes before the PONG of the PING after it
    const errors: Record<string, string> = {
      'MODE #b +v bob': ":srv 482 me #b :You're not a channel operator",
      'JOIN #j': ':srv 474 me #j :Cannot join channel (+b)',
      'PART #p': ":srv 442 me #p :You're not on that channel",
      'NICK bob': ':srv 433 me bob :Nickname is already in use',
    };
    let held = '';
    p.onLine = (line, s) => {
      if (line === 'JOIN #p') s.write(':me!me@h JOIN #p\r\n');
      if (errors[line]) held += `${errors[line]}\r\n`;
      if (line.startsWith('PING')) { s.write(held); held = ''; }
      pong(line, s);
    };
    const c = client(p.port);
    await c.connect();
    await c.join('#p');
    const join = c.join('#j').then(() => 'joined', (e: Error) => e.message);
    await tick(0); // (the JOIN is written)
    c.part('#p');
    const [mode, ...sent] = await Promise.all([
      outcome(c.send('RAW', '', 'MODE #b +v bob')),
      outcome(c.send('PRIVMSG', '#b', 'after the MODE')),
      outcome(c.send('PRIVMSG', '#j', 'after the JOIN')),
      outcome(c.send('PRIVMSG', '#p', 'after the PART')),
      outcome(c.send('RAW', '', 'NICK bob')),
      outcome(c.send('PRIVMSG', 'bob', 'after the NICK')),
    ]);
    expect(p.lines.filter((l) => !l.startsWith('PING')).slice(-8)).toEqual([
      'JOIN #j', 'PART #p', 'MODE #b +v bob', 'PRIVMSG #b :after the MODE', 'PRIVMSG #j :after the JOIN', 'PRIVMSG #p :after the PART',
      'NICK bob', 'PRIVMSG bob :after the NICK',
    ]);
    expect(mode).toEqual({ sent: undefined });
    expect(sent).toEqual([{ sent: undefined }, { sent: undefined }, { sent: undefined }, { sent: undefined }, { sent: undefined }]);
    expect(await join).toBe('cannot join #j: you are banned from the channel');
  });

  it('fails a private message to a user in server-side ignore (716), and a topic an operator must set (482)', async () => {
    const p = await peer();
    p.onLine = (line, s) => {
      if (line === 'PRIVMSG quiet :hello') s.write(':srv 716 me quiet :is in +g mode (server-side ignore.)\r\n:srv 717 me quiet :has been informed that you messaged them.\r\n');
      if (line === 'TOPIC #t :new topic') s.write(":srv 482 me #t :You're not a channel operator\r\n");
      pong(line, s);
    };
    const c = client(p.port);
    await c.connect();
    expect(await outcome(c.send('PRIVMSG', 'quiet', 'hello'))).toMatchObject({ failed: 'the IRC server refused it: quiet is in +g mode (server-side ignore.)', permanent: true });
    expect(await outcome(c.send('TOPIC', '#t', 'new topic'))).toMatchObject({ failed: "the IRC server refused it: #t You're not a channel operator", permanent: true });
  });
});

describe('Barriers: which line an unlabeled error refuses', () => {
  const line = (key: string, kind: 'PRIVMSG' | 'TOPIC', target: string): { key: string; kind: 'PRIVMSG' | 'TOPIC'; target: string } => ({ key, kind, target });

  it('takes an error for the first unrefused line to its target that it can refuse, under the oldest barrier only', () => {
    const b = new Barriers();
    b.add('b1', [line('k1', 'TOPIC', '#c'), line('k2', 'PRIVMSG', '#c'), line('k3', 'PRIVMSG', '#c')]);
    b.add('b2', [line('k4', 'PRIVMSG', '#d')]);
    b.error('404', '#c', '#c Cannot send to channel'); // not a topic's: the first message's
    b.error('482', '#c', "#c You're not a channel operator"); // the topic's
    b.error('482', '#c', "#c You're not a channel operator"); // no message's: nobody's
    b.error('404', '#d', '#d Cannot send to channel'); // under a later barrier: not before its PONG
    expect(b.answered('b1')).toEqual([
      { ...line('k1', 'TOPIC', '#c'), refusal: "#c You're not a channel operator" },
      { ...line('k2', 'PRIVMSG', '#c'), refusal: '#c Cannot send to channel' },
      line('k3', 'PRIVMSG', '#c'),
    ]);
    expect(b.answered('b2')).toEqual([line('k4', 'PRIVMSG', '#d')]);
    expect(b.size).toBe(0);
  });

  it('answers a PONG for a later barrier with the lines of every one before it, and an unknown PONG with nothing', () => {
    const b = new Barriers();
    b.add('b1', [line('k1', 'PRIVMSG', '#c')]);
    b.add('b2', [line('k2', 'PRIVMSG', '#c')]);
    expect(b.answered('other')).toEqual([]);
    expect(b.answered('b2').map((l) => l.key)).toEqual(['k1', 'k2']);
  });
});
