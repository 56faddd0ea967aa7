// A lean connection on a server without labeled-response or echo-message (most networks), against
// a scripted peer on 127.0.0.1: lines are followed by a PING (one for those written together), and
// count as sent only when its PONG comes (the server has processed them); a refusal before that
// PONG is the first unrefused line's to that target; a connection lost before it is an outage to
// retry, not a delivery.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
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
});
