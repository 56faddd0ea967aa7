// A lean connection closed on purpose (quit: idle, evicted, `reconnect`, the bridge stopping),
// against scripted peers on 127.0.0.1. Lines written before the QUIT count as sent only if the
// server confirms them before it closes; a server that never closes is dropped after a grace, and
// what it left unconfirmed fails as lost, to be sent again. A quit connection stays closed: a send
// to it fails (retryable) instead of opening a connection the server's pool no longer knows.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { linePeer, registeredWithoutCaps } from './line-peer.js';

let server: Server | undefined;
let conn: LeanConnection | undefined;
const sockets: Socket[] = [];
afterEach(() => { conn?.quit(); for (const s of sockets.splice(0)) s.destroy(); server?.close(); });

/**
 * A peer without capabilities that registers each connection; `onLine` gets every later line. It
 * closes its side when the client does (unless `frozen`: a server process that stopped, whose
 * kernel still takes the bytes and the FIN).
 */
async function peer(onLine: (line: string, s: Socket) => void, frozen = false): Promise<{ port: number; connections: () => number }> {
  let n = 0;
  let port: number;
  ({ server, port } = await linePeer((s) => {
    n++;
    sockets.push(s);
    const registered = registeredWithoutCaps(s);
    return (line) => { if (registered(line) && !frozen) onLine(line, s); };
  }, { allowHalfOpen: frozen }));
  return { port, connections: () => n };
}

function client(port: number, answerMs = 5000): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs },
    limiter: new ReconnectLimiter(1), log: silentLogger,
  });
  return conn;
}

type Outcome = { sent: string | undefined } | { failed: string; permanent: boolean; unreachable: boolean } | 'unsettled';
/** How a line ended, or 'unsettled' if it had not after `ms`. */
const outcome = (p: Promise<string | undefined>, ms = 3000): Promise<Outcome> => Promise.race([
  p.then((id) => ({ sent: id }), (err: Error & { permanent?: boolean; unreachable?: boolean }) => ({
    failed: err.message, permanent: err.permanent === true, unreachable: err.unreachable === true,
  })),
  new Promise<'unsettled'>((r) => setTimeout(() => r('unsettled'), ms)),
]);
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CLOSED = { failed: 'the IRC connection was closed before the server confirmed the message', permanent: false, unreachable: true };
const LOST = { failed: 'the IRC connection was lost before the server confirmed the message', permanent: false, unreachable: true };

describe('LeanConnection.quit with lines awaiting their confirmation', () => {
  it('counts a line as sent when the server confirms it after the QUIT, before closing', async () => {
    const held: string[] = [];
    const p = await peer((line, s) => {
      const ping = /^PING :(.*)$/.exec(line);
      if (ping) held.push(ping[1]!); // answered with the QUIT, as a busy server would
      if (line.startsWith('QUIT')) { for (const t of held) s.write(`:srv PONG srv :${t}\r\n`); s.end('ERROR :Closing Link: me (Quit: Idle)\r\n'); }
    });
    const c = client(p.port);
    await c.connect();
    const line = c.send('PRIVMSG', '#c', 'hello');
    await tick(100);
    c.quit('Idle');
    expect(await outcome(line)).toEqual({ sent: undefined });
  });

  it('fails a line the server closed without confirming as lost (retryable), not sent', async () => {
    const p = await peer((line, s) => { if (line.startsWith('QUIT')) s.end('ERROR :Closing Link: me (Quit: Idle)\r\n'); });
    const c = client(p.port);
    await c.connect();
    const line = c.send('PRIVMSG', '#c', 'hello');
    await tick(100);
    c.quit('Idle');
    expect(await outcome(line)).toEqual(LOST);
  });

  it('does not wait for a frozen server: after a grace (answerMs here) the socket is dropped and the line fails as lost', async () => {
    const p = await peer(() => undefined, true);
    const c = client(p.port, 300);
    await c.connect();
    const line = c.send('PRIVMSG', '#c', 'hello');
    await tick(100);
    const quitAt = Date.now();
    c.quit('Reconnecting');
    expect(await outcome(line)).toEqual(LOST);
    expect(Date.now() - quitAt).toBeGreaterThanOrEqual(250);
    expect(c.state).toBe('closed');
    expect(p.connections()).toBe(1); // and not reconnected
  });
});

describe('LeanConnection after quit (evicted, idle-closed)', () => {
  it('fails a later send as retryable and unreachable instead of opening a connection of its own', async () => {
    const p = await peer((line, s) => { const m = /^PING :(.*)$/.exec(line); if (m) s.write(`:srv PONG srv :${m[1]}\r\n`); });
    const c = client(p.port);
    await c.connect();
    c.quit('Idle');
    expect(await outcome(c.send('PRIVMSG', '#c', 'hi'))).toEqual(CLOSED);
    await expect(c.join('#c')).rejects.toMatchObject({ name: 'DeliveryError', permanent: false, unreachable: true });
    await expect(c.connect()).rejects.toMatchObject({ name: 'DeliveryError', permanent: false, unreachable: true });
    await tick(200);
    expect(p.connections()).toBe(1);
    expect(c.state).toBe('closed');
  });

  it('fails what was queued behind the QUIT as retryable and unreachable', async () => {
    const { server: s, port } = await linePeer(() => () => undefined); // never registers
    server = s;
    const c = client(port);
    const ready = c.connect();
    const line = c.send('PRIVMSG', '#c', 'queued');
    await tick(50);
    c.quit('Idle');
    await expect(ready).rejects.toMatchObject({ permanent: false, unreachable: true });
    expect(await outcome(line)).toEqual(CLOSED);
  });
});
