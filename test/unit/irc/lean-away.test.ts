// A Matrix user's away status on their lean connection (awayFromPresence), against a scripted peer:
// said once per change, set again on the connection that replaces a dropped one.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { linePeer } from './line-peer.js';

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); server?.close(); });

/** A peer that registers every connection; what each connection said after registering. */
async function peer(): Promise<{ port: number; said: string[][]; sockets: Socket[] }> {
  const p = { port: 0, said: [] as string[][], sockets: [] as Socket[] };
  ({ server, port: p.port } = await linePeer((s) => {
    p.sockets.push(s);
    const said: string[] = [];
    p.said.push(said);
    let registered = false;
    return (line) => {
      if (line === 'CAP END' || (line.startsWith('USER ') && !registered)) {
        if (!registered) { registered = true; s.write(':srv 001 me :Welcome\r\n'); }
        return;
      }
      if (line.startsWith('CAP LS')) { s.write(':srv CAP * LS :\r\n'); return; }
      if (registered) said.push(line);
    };
  }));
  return p;
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('LeanConnection: away status', () => {
  it('says AWAY once per change, clears it, and sets it again after a reconnect', async () => {
    const p = await peer();
    conn = new LeanConnection({
      host: '127.0.0.1', port: p.port, tls: false, nick: 'me', username: 'me', realname: 'Me',
      reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs: 5000 },
      limiter: new ReconnectLimiter(1), log: silentLogger,
    });
    await conn.connect();
    conn.setAway('gone\r\nQUIT :fishing');
    conn.setAway('gone\nQUIT :fishing'); // the same once cleaned: not said again
    conn.setAway('');
    await tick(100);
    expect(p.said[0]).toEqual(['AWAY :gone QUIT :fishing', 'AWAY :Away']);
    p.sockets[0]!.destroy(); // dropped: the next connection is away too
    await tick(300);
    expect(conn.state).toBe('connected');
    expect(p.said[1]).toEqual(['AWAY :Away']);
    conn.setAway(undefined);
    await tick(100);
    expect(p.said[1]).toEqual(['AWAY :Away', 'AWAY']);
  });
});
