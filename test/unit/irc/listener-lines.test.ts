// What the bridge's own connection (irc-framework, through transport.ts) puts on the wire, against a
// scripted peer on 127.0.0.1: never a line holding CR, LF or NUL, whichever irc-framework call wrote
// it (irc-framework strips none of them); and its WHOIS, which gives up after a while instead of
// waiting (and listening) for good.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../packages/core/src/util/log.js';
import { IrcConnection, ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { linePeer } from './line-peer.js';

let server: Server | undefined;
const conns: IrcConnection[] = [];
afterEach(() => { for (const c of conns.splice(0)) c.quit(); server?.close(); });

/**
 * A peer that registers the listener under the nick it asks for and then hands each line to
 * `onLine`; `wire()` is every byte the client wrote, as written (to see how lines are framed).
 */
async function peer(onLine: (line: string, s: Socket) => void = () => undefined): Promise<{ port: number; wire: () => string }> {
  let wire = '';
  let port: number;
  ({ server, port } = await linePeer((s) => {
    s.on('data', (d: Buffer) => { wire += d.toString('latin1'); });
    let nick = '';
    let registered = false;
    return (line) => {
      if (registered) { onLine(line, s); return; }
      if (line.startsWith('NICK ')) nick = line.slice(5);
      if (line.startsWith('CAP LS')) s.write(':srv CAP * LS :\r\n');
      else if (line.startsWith('CAP REQ')) s.write(`:srv CAP * NAK :${line.slice(9)}\r\n`);
      else if (line === 'CAP END') { registered = true; s.write(`:srv 001 ${nick} :Welcome\r\n`); }
    };
  }));
  return { port, wire: () => wire };
}

function listener(port: number, log: Logger = quiet()): IrcConnection {
  const c = new IrcConnection({
    host: '127.0.0.1', port, tls: false, nick: 'bridge', username: 'bridge', realname: 'Bridge',
    reconnect: { initialDelayMs: 20, maxDelayMs: 40 }, timeouts: { registerMs: 5000 }, limiter: new ReconnectLimiter(10), log,
  });
  conns.push(c);
  return c;
}

function quiet(warnings: string[] = []): Logger {
  const log: Logger = { debug() {}, info() {}, warn(msg) { warnings.push(msg); }, error() {}, child: () => log };
  return log;
}

const until = async (ok: () => boolean, ms = 3000): Promise<void> => {
  for (const end = Date.now() + ms; !ok(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() > end) throw new Error('timed out');
};

describe('the listener\'s transport never writes CR, LF or NUL inside a line', () => {
  it('refuses a line holding one, whichever irc-framework call made it, and the connection goes on', async () => {
    const heard: string[] = [];
    const p = await peer((line) => heard.push(line));
    const warnings: string[] = [];
    const c = listener(p.port, quiet(warnings));
    await c.connect();
    // what a command handed over unchecked would make irc-framework write
    c.client.whois('x\nPRIVMSG NickServ :SET PASSWORD pwned');
    c.client.join('#chan', 'key\r\nQUIT :bye');
    c.client.raw('PRIVMSG alice :a\0b');
    c.client.raw('PING :after');
    await until(() => heard.includes('PING :after'));
    const afterRegistration = p.wire().slice(p.wire().indexOf('CAP END'));
    expect(afterRegistration).not.toMatch(/NickServ|QUIT|\0|alice/);
    // every line on the wire ends in CR LF, and no CR or LF stands anywhere else
    expect(p.wire().replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(heard).toEqual(['PING :after']);
    expect(warnings.filter((w) => w.includes('CR, LF or NUL'))).toHaveLength(3);
    expect(c.state).toBe('connected');
  });

  it('still closes the socket after a QUIT it refused (irc-framework closes in the write\'s callback)', async () => {
    const p = await peer();
    const c = listener(p.port);
    await c.connect();
    c.quit('bye\nPRIVMSG NickServ :pwned');
    await until(() => c.client.connection.connected === false);
    expect(p.wire()).not.toContain('NickServ');
  });
});

describe('IrcConnection.whois', () => {
  it('resolves with the server\'s answer', async () => {
    const p = await peer((line, s) => {
      if (line === 'WHOIS Alice') s.write(':srv 311 bridge Alice al host * :Alice A\r\n:srv 318 bridge Alice :End of WHOIS\r\n');
    });
    const c = listener(p.port);
    await c.connect();
    const info = await c.whois('Alice');
    expect(info).toMatchObject({ nick: 'Alice', ident: 'al', hostname: 'host', real_name: 'Alice A' });
    expect(c.client.listenerCount('whois')).toBe(0);
  });

  it('gives up after the timeout when no answer comes, and stops listening for one', async () => {
    const p = await peer();
    const c = listener(p.port);
    await c.connect();
    const before = c.client.listenerCount('whois');
    await expect(c.whois('ghost', 200)).rejects.toThrow(/no answer .*WHOIS ghost/);
    expect(c.client.listenerCount('whois')).toBe(before);
  });

  it('fails at once when the connection is not up', async () => {
    const c = listener(1);
    await expect(c.whois('alice')).rejects.toThrow(/not connected/);
  });
});

describe('the listener and lines it cannot handle', () => {
  it('skips a line missing what its numeric or command should carry, and goes on with the next', async () => {
    // each of these, bare or with the nick only, makes an irc-framework handler read a parameter that is not there
    const short = ['311', '301', '333', '353', '366', '900', 'PRIVMSG', 'NOTICE', 'CAP', 'BATCH'];
    const p = await peer((line, s) => {
      if (line !== 'PING :go') return;
      for (const cmd of short) s.write(`:srv ${cmd}\r\n:srv ${cmd} bridge\r\n`);
      s.write(':alice!a@h PRIVMSG bridge :still listening\r\n');
    });
    const warnings: string[] = [];
    const c = listener(p.port, quiet(warnings));
    const heard: string[] = [];
    c.client.on('privmsg', (e: { message: string }) => heard.push(e.message));
    await c.connect();
    c.client.raw('PING :go');
    await until(() => heard.includes('still listening'));
    expect(warnings.filter((w) => w.startsWith('skipped an IRC line')).length).toBeGreaterThan(5);
    expect(c.state).toBe('connected');
  });
});

describe('the listener and an over-long line', () => {
  it('drops a line past 16 KiB whole, its end included, and reads the lines after it', async () => {
    const p = await peer((line, s) => {
      if (line !== 'PING :go') return;
      // 64 KiB of one PRIVMSG in pieces, whose end would read as a KICK of its own if taken for a line
      s.write(`:bob!b@h PRIVMSG bridge :${'x'.repeat(16 * 1024)}`);
      for (let i = 0; i < 3; i++) s.write('y'.repeat(16 * 1024));
      // read apart from the rest (else it is one line with its end, and simply long)
      setTimeout(() => s.write(':ChanServ!s@services KICK #chan bridge :gotcha\r\n:alice!a@h PRIVMSG bridge :after the long one\r\n'), 100);
    });
    const warnings: string[] = [];
    const c = listener(p.port, quiet(warnings));
    const heard: string[] = [];
    const kicks: unknown[] = [];
    c.client.on('privmsg', (e: { message: string }) => heard.push(e.message));
    c.client.on('kick', (e: unknown) => kicks.push(e));
    await c.connect();
    c.client.raw('PING :go');
    await until(() => heard.length > 0);
    expect(heard).toEqual(['after the long one']);
    expect(kicks).toEqual([]);
    expect(warnings.filter((w) => w.includes('over-long line'))).toHaveLength(1);
    const buffered = (c.client.connection as unknown as { transport: { incoming_buffer: Buffer } }).transport.incoming_buffer;
    expect(buffered.length).toBe(0);
  });
});

describe('the listener joining its channels again after a reconnect', () => {
  it('packs them into as few JOIN lines as fit, not one line per channel', async () => {
    const joins: string[] = [];
    let sockets = 0;
    const p = await peer((line, s) => {
      if (!line.startsWith('JOIN ')) return;
      joins.push(line);
      for (const ch of line.slice(5).split(' ')[0]!.split(',')) s.write(`:bridge!b@h JOIN ${ch}\r\n`);
    });
    server!.on('connection', () => { sockets++; });
    const c = listener(p.port);
    await c.connect();
    const channels = Array.from({ length: 120 }, (_, i) => `#channel-number-${i}`);
    await Promise.all(channels.map((ch) => c.join(ch)));
    expect(joins).toHaveLength(120); // asked one at a time
    joins.length = 0;
    // the server drops the connection: the listener comes back and joins all 120 again
    const reconnected = new Promise<void>((resolve) => c.once('registered', () => resolve()));
    (c.client.connection as unknown as { transport: { socket: Socket } }).transport.socket.destroy();
    await reconnected;
    await until(() => joins.flatMap((l) => l.slice(5).split(',')).length >= 120);
    expect(sockets).toBe(2);
    expect(joins.length).toBeLessThanOrEqual(6); // ~25 of these names fit in 512 bytes
    expect(new Set(joins.flatMap((l) => l.slice(5).split(',')))).toEqual(new Set(channels));
    for (const l of joins) expect(Buffer.byteLength(l) + 2).toBeLessThanOrEqual(512);
  });
});

describe('the listener\'s JOIN refused with a numeric irc-framework has no name for', () => {
  it.each([
    ['403', 'No such channel', 'does not exist'],
    ['437', 'Nick/channel is temporarily unavailable', 'temporarily unavailable'],
    ['476', 'Bad Channel Mask', 'not valid on this server'],
    ['477', 'You need a registered nick to join that channel', 'logged in to an account'],
  ])('ends the wait at once on %s, with why (not after the 15 s timeout)', async (numeric, text, why) => {
    const p = await peer((line, s) => { if (line.startsWith('JOIN ')) s.write(`:srv ${numeric} bridge #x :${text}\r\n`); });
    const c = listener(p.port);
    await c.connect();
    // (without the refusal it would end only at the 15 s timeout, with another reason)
    await expect(c.join('#x')).rejects.toThrow(why);
  });
});

describe('the listener registering under a nick the server holds (436/437)', () => {
  it.each(['437', '436'])('moves on to the next nick on %s instead of timing out and trying the same one again', async (numeric) => {
    const asked: string[] = [];
    let capEnd = false;
    let nick: string | undefined;
    ({ server } = await linePeer((s) => (line) => {
      if (line.startsWith('CAP LS')) s.write(':srv CAP * LS :\r\n');
      if (line.startsWith('NICK ')) {
        const wanted = line.slice(5);
        asked.push(wanted);
        if (wanted === 'bridge') s.write(`:srv ${numeric} * bridge :Nick/channel is temporarily unavailable\r\n`);
        else nick = wanted;
      }
      if (line === 'CAP END') capEnd = true;
      if (capEnd && nick) { s.write(`:srv 001 ${nick} :Welcome\r\n`); nick = undefined; }
    }));
    const c = listener((server!.address() as { port: number }).port);
    await c.connect();
    expect(asked[0]).toBe('bridge');
    expect(c.nick).not.toBe('bridge');
    expect(asked.filter((n) => n === 'bridge')).toHaveLength(1);
  });
});
