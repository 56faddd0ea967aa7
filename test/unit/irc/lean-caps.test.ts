// A lean connection's IRCv3 capabilities after registration (cap-notify), against a scripted peer on
// 127.0.0.1: a capability taken back (CAP DEL) is no longer relied on, one offered later (CAP NEW)
// and wanted is asked for. And what a hostile server can make the connection keep is bounded: the
// capabilities it offers, the batches it opens.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../packages/core/src/util/log.js';
import { OpenBatches, type PrivateBatch } from '../../../packages/irc/src/batches.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { parseLine } from '../../../packages/irc/src/ircline.js';
import { LeanConnection } from '../../../packages/irc/src/lean.js';
import { OfferedCaps } from '../../../packages/irc/src/offered.js';
import { linePeer } from './line-peer.js';

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); conn = undefined; server?.close(); server = undefined; });

const CAPS = 'echo-message labeled-response message-tags batch draft/multiline=max-bytes=4096,max-lines=10';

/**
 * A peer offering `CAPS` and granting every CAP REQ; a labeled PRIVMSG is echoed with its label and
 * a msgid, a PING answered. `lines` is what the client said after registering.
 */
async function peer(): Promise<{ port: number; lines: string[]; say: (line: string) => void }> {
  const lines: string[] = [];
  let socket: Socket | undefined;
  let registered = false, msgid = 0;
  let port: number;
  ({ server, port } = await linePeer((s) => {
    socket = s;
    return (line) => {
      if (registered) lines.push(line);
      const l = parseLine(line)!;
      if (l.command === 'CAP' && l.params[0] === 'LS') s.write(`:srv CAP * LS :${CAPS}\r\n`);
      else if (l.command === 'CAP' && l.params[0] === 'REQ') s.write(`:srv CAP me ACK :${l.params[1]}\r\n`);
      else if (l.command === 'CAP' && l.params[0] === 'END') { registered = true; s.write(':srv 001 me :Welcome\r\n'); }
      else if (l.command === 'PING') s.write(`:srv PONG srv :${l.params[0]}\r\n`);
      else if (l.command === 'PRIVMSG' && l.tags['label']) s.write(`@label=${l.tags['label']};msgid=m${++msgid} :me!me@h PRIVMSG ${l.params[0]} :${l.params[1]}\r\n`);
    };
  }));
  return { port, lines, say: (line) => socket!.write(`${line}\r\n`) };
}

function client(port: number, log: Logger = quiet): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs: 5000 },
    limiter: new ReconnectLimiter(1), log,
  });
  return conn;
}

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quiet };
/** A logger keeping its warnings. */
function warnings(): { log: Logger; said: string[] } {
  const said: string[] = [];
  const log: Logger = { ...quiet, warn: (m: string) => { said.push(m); }, child: () => log };
  return { log, said };
}
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

describe('LeanConnection and cap-notify', () => {
  it('relies no more on capabilities taken back (CAP DEL): no multiline batch, no label; asks again for those offered anew (CAP NEW)', async () => {
    const p = await peer();
    const c = client(p.port);
    await c.connect();
    expect(c.multilineLimits()).toEqual({ maxBytes: 4096, maxLines: 10 });
    expect(await c.send('PRIVMSG', '#c', 'labeled')).toBe('m1');

    p.say(':srv CAP me DEL :draft/multiline labeled-response');
    await until('the DEL', () => c.multilineLimits() === undefined);
    // no label the server would no longer answer: the PING after it confirms it instead
    expect(await c.send('PRIVMSG', '#c', 'plain')).toBeUndefined();
    expect(p.lines.slice(-2)).toEqual(['PRIVMSG #c :plain', expect.stringMatching(/^PING :b\d+$/)]);

    p.say(':srv CAP me NEW :draft/multiline=max-lines=5 labeled-response away-notify');
    await until('the REQ and its ACK', () => c.multilineLimits() !== undefined);
    expect(p.lines.filter((l) => l.startsWith('CAP '))).toEqual(['CAP REQ :labeled-response draft/multiline']); // no CAP END again
    expect(c.multilineLimits()).toEqual({ maxLines: 5 });
    expect(await c.send('PRIVMSG', '#c', 'labeled again')).toBe('m2');
  });
});

describe('What a hostile IRC server can make a connection keep', () => {
  it('keeps at most 100 capabilities of endless CAP LS lines, and says so once', async () => {
    const { log, said } = warnings();
    const offered = new OfferedCaps(log);
    for (let i = 0; i < 50; i++) offered.add(Array.from({ length: 10 }, (_, j) => `cap${i * 10 + j}=v`).join(' '));
    expect(offered.has('cap99')).toBe(true);
    expect(offered.has('cap100')).toBe(false);
    expect(offered.add('cap5=new cap500')).toEqual(['cap5']); // one it has may change its value; no new one
    expect(offered.get('cap5')).toBe('new');
    expect(said).toEqual(['the IRC server offers too many capabilities; ignoring the rest']);
    expect(offered.remove('cap1 sts', ['sts'])).toEqual(['cap1']);
    offered.clear();
    expect(offered.add('batch')).toEqual(['batch']);
  });

  it('keeps at most 8 multiline private messages open, delivering the oldest as it is; and at most 64 KiB of one', () => {
    const { log, said } = warnings();
    const delivered: PrivateBatch[] = [];
    const batches = new OpenBatches(log, (pm) => delivered.push(pm));
    for (let i = 0; i < 10; i++) {
      batches.openPrivate(`r${i}`, `n${i}`, {});
      expect(batches.line(`r${i}`, 'PRIVMSG', `line ${i}`, false)).toBe(true);
    }
    expect(delivered.map((d) => [d.nick, d.lines.map((l) => l.text)])).toEqual([['n0', ['line 0']], ['n1', ['line 1']]]);
    expect(batches.line('r0', 'PRIVMSG', 'late', false)).toBe(false); // no longer a batch: a message of its own
    for (let i = 0; i < 100; i++) batches.line('r9', 'PRIVMSG', 'x'.repeat(1024), false);
    batches.close('r9');
    expect(delivered.at(-1)!.lines.map((l) => l.text.length).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(64 * 1024);
    expect(said.filter((w) => w.startsWith('a multiline message from IRC is too long'))).toHaveLength(1);
    expect(said.filter((w) => w.startsWith('the IRC server keeps too many multiline messages open'))).toHaveLength(2);
  });

  it('keeps at most 8 labeled batches open', () => {
    const { log, said } = warnings();
    const batches = new OpenBatches(log, () => undefined);
    for (let i = 0; i < 10; i++) batches.openLabeled(`r${i}`, `t${i}`);
    expect(batches.labelOf('r0')).toBeUndefined();
    expect(batches.labelOf('r1')).toBeUndefined();
    expect(batches.labelOf('r2')).toBe('t2');
    expect(batches.close('r9')).toBe('t9');
    expect(said).toHaveLength(2);
  });

  it('opens no labeled batch for a label the connection does not wait for', async () => {
    const p = await peer();
    const c = client(p.port);
    await c.connect();
    const open = (c as unknown as { batches: OpenBatches }).batches;
    for (let i = 0; i < 20; i++) p.say(`@label=x${i} :srv BATCH +b${i} labeled-response`);
    await tick(50);
    expect(open.anyLabeled).toBe(false);
  });
});
