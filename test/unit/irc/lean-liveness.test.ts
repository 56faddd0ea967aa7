// A labeled line whose answer is late, against a scripted IRCv3 peer on 127.0.0.1 (echo-message +
// labeled-response): a server that stopped answering (frozen, half-open socket) fails the line as
// lost and is reconnected, so the message is sent again; a slow server that is still at work, or
// one that answers the check's PING, is not taken for dead.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { linePeer } from './line-peer.js';

const ANSWER_MS = 200;

/**
 * How the peer treats the connections it registers from now on: `echo` answers at once; `slow`
 * answers in order, one line every `gapMs`; `silent-labels` answers PING but never a labeled line.
 * (A frozen server is a connection the peer stops reading: the kernel still takes the bytes.)
 */
type Mode = 'echo' | 'slow' | 'silent-labels';
interface Peer { port: number; connections: Socket[]; mode: Mode; gapMs: number; received: string[] }

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); server?.close(); });

async function peer(): Promise<Peer> {
  const p: Peer = { port: 0, connections: [], mode: 'echo', gapMs: 0, received: [] };
  ({ server, port: p.port } = await linePeer((s) => {
    p.connections.push(s);
    let registered = false, mode: Mode = 'echo', next = 0, msgid = 0;
    const answer = (line: string): void => {
      if (mode !== 'slow') { s.write(line); return; }
      next = Math.max(next, Date.now()) + p.gapMs;
      setTimeout(() => s.write(line), next - Date.now());
    };
    return (line) => {
      if (!registered) {
        if (line.startsWith('CAP LS')) s.write(':srv CAP * LS :echo-message labeled-response message-tags\r\n');
        else if (line.startsWith('CAP REQ')) s.write(`:srv CAP * ACK :${line.slice(9)}\r\n`);
        else if (line === 'CAP END') { registered = true; mode = p.mode; s.write(':srv 001 me :Welcome\r\n'); }
        return;
      }
      const ping = /^PING :(.*)$/.exec(line);
      if (ping) { answer(`:srv PONG srv :${ping[1]}\r\n`); return; }
      const m = /^@label=(\S+) PRIVMSG (\S+) :(.*)$/.exec(line);
      if (m) {
        p.received.push(m[3]!);
        if (mode !== 'silent-labels') answer(`@label=${m[1]};msgid=id${++msgid} :me!me@h PRIVMSG ${m[2]} :${m[3]}\r\n`);
      }
    };
  }));
  return p;
}

function client(port: number): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs: ANSWER_MS },
    limiter: new ReconnectLimiter(1), log: silentLogger,
  });
  return conn;
}

const outcome = (p: Promise<string | undefined>): Promise<{ sent: string | undefined } | { failed: string; permanent: boolean; unreachable: boolean }> =>
  p.then((id) => ({ sent: id }), (err: Error & { permanent?: boolean; unreachable?: boolean }) => ({
    failed: err.message, permanent: err.permanent === true, unreachable: err.unreachable === true,
  }));

describe('LeanConnection: a labeled line with a late answer', () => {
  it('on a server that stopped answering, fails the line as retryable and reconnects; sent again, it arrives', { timeout: 15_000 }, async () => {
    const p = await peer();
    const c = client(p.port);
    await c.connect();
    expect(await c.send('PRIVMSG', '#c', 'before')).toBe('id1');
    p.connections[0]!.pause(); // a frozen server: it reads nothing more (what we write waits in the kernel)
    const started = Date.now();
    const first = await outcome(c.send('PRIVMSG', '#c', 'during the freeze'));
    // an outage, not a refusal: core's queue waits it out without spending the message's attempts
    expect(first).toEqual({ failed: 'the IRC connection was lost before the server confirmed the message', permanent: false, unreachable: true });
    expect(Date.now() - started).toBeLessThan(ANSWER_MS * 2 + 1000); // the wait and the check, not forever
    // what core's queue does with a retryable failure: send again; it waits for the reconnect
    const again = await c.send('PRIVMSG', '#c', 'during the freeze');
    expect(again).toBe('id1'); // the echo of the new connection
    expect(p.connections).toHaveLength(2);
  });

  it('on a slow server still working through a backlog, waits for every answer past the timeout, without reconnecting', async () => {
    const p = await peer();
    p.mode = 'slow';
    p.gapMs = ANSWER_MS * 0.6;
    const c = client(p.port);
    await c.connect();
    const started = Date.now();
    const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => c.send('PRIVMSG', '#c', `line ${i}`)));
    expect(Date.now() - started).toBeGreaterThan(ANSWER_MS * 3); // well past the wait and the check
    expect(ids).toEqual(['id1', 'id2', 'id3', 'id4', 'id5', 'id6', 'id7', 'id8']);
    expect(p.connections).toHaveLength(1);
  });

  it('counts a line as sent, id unknown, when the PONG of the check comes and its answer never does', async () => {
    const p = await peer();
    p.mode = 'silent-labels';
    const c = client(p.port);
    await c.connect();
    expect(await outcome(c.send('PRIVMSG', '#c', 'no echo for this'))).toEqual({ sent: undefined });
    expect(p.received).toEqual(['no echo for this']);
    expect(p.connections).toHaveLength(1);
    expect(c.state).toBe('connected');
  });
});
