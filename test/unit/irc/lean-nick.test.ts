// The lean connection's nick during registration against a scripted TCP peer on 127.0.0.1: a nick
// refused as in use (433) comes before the server's ISUPPORT, so the next nick tried must fit the
// NICKLEN the bridge was told, not a guessed 30.
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); server?.close(); });

/** A peer that refuses the first NICK as in use, registers the second, and records the NICKs. */
async function peer(nicks: string[]): Promise<number> {
  server = createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line.startsWith('NICK ')) continue;
        nicks.push(line.slice(5));
        s.write(nicks.length === 1 ? `:srv 433 * ${line.slice(5)} :Nickname is already in use\r\n` : `:srv 001 ${line.slice(5)} :Welcome\r\n`);
      }
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
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
});
