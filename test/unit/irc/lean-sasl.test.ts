// A lean connection's SASL login against a scripted peer on 127.0.0.1, where it goes wrong: a
// failure the connection did not know (902, the account locked to its own nicks) or a question
// PLAIN has no answer to. Either way the login is given up and registration goes on (CAP END once),
// instead of waiting for an answer that never comes until registration times out, at every reconnect.
import type { Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { SaslLogin } from '../../../packages/irc/src/sasl.js';
import { linePeer } from './line-peer.js';

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); conn = undefined; server?.close(); server = undefined; });

/** A peer offering SASL PLAIN: `onAuth` answers each AUTHENTICATE after the mechanism; 001 comes at CAP END. Every line is kept. */
async function peer(onAuth: (line: string) => string): Promise<{ port: number; lines: string[] }> {
  const lines: string[] = [];
  let port: number;
  ({ server, port } = await linePeer((s) => (line) => {
    lines.push(line);
    if (line.startsWith('CAP LS')) s.write(':srv CAP * LS :sasl=PLAIN\r\n');
    else if (line === 'CAP REQ :sasl') s.write(':srv CAP * ACK :sasl\r\n');
    else if (line === 'AUTHENTICATE PLAIN') s.write('AUTHENTICATE +\r\n');
    else if (line === 'AUTHENTICATE *') s.write(':srv 906 me :SASL authentication aborted\r\n');
    else if (line.startsWith('AUTHENTICATE ')) s.write(onAuth(line));
    else if (line === 'CAP END') s.write(':srv 001 me :Welcome\r\n');
  }));
  return { port, lines };
}

function client(port: number): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me', sasl: { account: 'me', password: 'secret' },
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 10_000, answerMs: 5000 },
    limiter: new ReconnectLimiter(1), log: silentLogger,
  });
  return conn;
}

describe('LeanConnection SASL going wrong', () => {
  it('gives up the login on 902 (the account must use its own nicks), says why, and registers', async () => {
    const p = await peer(() => ':srv 902 me :You must use a nick assigned to you\r\n');
    const c = client(p.port);
    const refused: string[] = [];
    c.on('login refused', (why: string) => refused.push(why));
    await c.connect(); // (within the test's 5 s, not after registerMs)
    expect(p.lines.filter((l) => l === 'CAP END')).toHaveLength(1);
    expect(refused).toEqual(['You must use a nick assigned to you']);
  });

  it('aborts a login the server questions unexpectedly (AUTHENTICATE *) and registers without it, ending negotiation once', async () => {
    let asked = false;
    const p = await peer(() => { asked = true; return 'AUTHENTICATE c29tZXRoaW5nIGVsc2U=\r\n'; });
    // the server asks a question where PLAIN expects none
    const c = client(p.port);
    await c.connect();
    expect(asked).toBe(true);
    const after = p.lines.slice(p.lines.findIndex((l) => l.startsWith('AUTHENTICATE bWUA'))); // the PLAIN credentials
    expect(after.slice(1, 3)).toEqual(['AUTHENTICATE *', 'CAP END']);
    await new Promise((r) => setTimeout(r, 50)); // the 906 answering the abort ends nothing twice
    expect(p.lines.filter((l) => l === 'CAP END')).toHaveLength(1);
  });
});

describe('SaslLogin answers', () => {
  it('has no answer but to `+` for PLAIN and EXTERNAL: undefined for anything else', () => {
    const plain = new SaslLogin({ account: 'me', password: 'secret' }, false, 'PLAIN');
    expect(plain.answer('+')).toEqual([`AUTHENTICATE ${Buffer.from('me\0me\0secret').toString('base64')}`]);
    expect(plain.answer('c29tZXRoaW5n')).toBeUndefined();
    const external = new SaslLogin(undefined, true, 'EXTERNAL');
    expect(external.answer('+')).toEqual(['AUTHENTICATE +']);
    expect(external.answer('Y2hhbGxlbmdl')).toBeUndefined();
    expect(new SaslLogin(undefined, false, 'PLAIN').answer('+')).toBeUndefined(); // nothing to log in with
  });
});
