/**
 * The bridge's ident server (RFC 1413) against a real ergo that looks ident up (`check-ident`):
 * ergo shows the bridge's connections with their usernames verified (no `~`) and a plain IRC
 * client's not, and the ident server, asked over TCP about this process's real connections to
 * ergo as an IRC server asks, answers each with its owner's username, others and other hosts with
 * NO-USER, and garbage with an error while it keeps serving.
 *
 * ergo asks port 113 of the connecting host, always: this suite binds 127.0.0.1:113, so it runs
 * as root (or with CAP_NET_BIND_SERVICE), and no two runs of it at once on one machine.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type TrestleBridge } from '@trestle/core';
import type { IrcNetwork } from '@trestle/irc';
import { IrcConnection, ReconnectLimiter } from '../../packages/irc/src/connection.js';
import { LeanConnection } from '../../packages/irc/src/lean.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { adminRoom, ircPort, IrcUsers, plumbedRoom, restartErgo, startIrcBridge, untag } from './irc-env.js';

const IDENT_PORT = 113;
/** The bridge's ident.maxClients and ident.idleSeconds here: below the defaults (64, 60), so the tests see the config obeyed. */
const MAX_CLIENTS = 8;
const IDLE_SECONDS = 2;
let bridge: TrestleBridge;
let botId: string;
let ida: MatrixUser;
const users = new IrcUsers();

/**
 * Local ports of this process's established TCP connections to ergo, as the kernel has them
 * (/proc/net/tcp, matched to this process's own sockets by inode): the bridge's (it runs in this
 * process) and the plain IRC clients'.
 */
function connectionsToErgo(): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch { /* closed meanwhile */ }
  }
  const ports: number[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '01') continue; // 01: ESTABLISHED
      const port = (addr: string): number => parseInt(addr.split(':').pop()!, 16);
      if (port(f[2]!) === ircPort && inodes.has(f[9]!)) ports.push(port(f[1]!));
    }
  }
  return ports;
}

/**
 * Ask the ident server as an IRC server does: connect (from `from`), write `send`, and collect
 * the answer lines until `expectLines` of them came (and with `untilClosed`, until the server
 * closed the connection).
 */
function identAsk(send: string, expectLines: number, from = '127.0.0.1', untilClosed = false): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port: IDENT_PORT, localAddress: from });
    let text = '';
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ lines: text.split('\r\n').filter(Boolean), closed });
    };
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no ${expectLines} ident answers in time; got ${JSON.stringify(text)}`)); }, 10_000);
    sock.on('error', (err) => { clearTimeout(timer); reject(err); });
    sock.on('connect', () => sock.write(send));
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => { text += d; if (!untilClosed && text.split('\r\n').length > expectLines) done(false); });
    sock.on('end', () => done(true));
  });
}

beforeAll(async () => {
  restartErgo('server.check-ident=true');
  bridge = await startIrcBridge({}, {}, { ident: { enabled: true, port: IDENT_PORT, bindAddress: '127.0.0.1', maxClients: MAX_CLIENTS, idleSeconds: IDLE_SECONDS } });
  botId = bridge.matrix.botUserId;
  ida = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `identida${Date.now()}`, { displayName: 'Ida' });
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
  restartErgo(); // the other suites' ergo, without ident lookups
});

describe('IRC bridge: ident server', () => {
  let watcherPort: number;

  it('has ergo show the usernames of the bridge\'s connections as verified, and a plain client\'s not', async () => {
    const watcher = await users.add('identwatch', ['#identchan']);
    watcherPort = (watcher.client.connection as unknown as { transport: { socket: { localPort: number } } }).transport.socket.localPort;
    // ergo looked its ident up and found none: `~` (so ergo does check, and the bridge's lack of `~` below is the identd's)
    const ownJoin = await watcher.waitForRaw((l) => / JOIN :?#identchan/.test(l) && untag(l).startsWith(':identwatch!'));
    expect(untag(ownJoin)).toMatch(/^:identwatch!~tester@/);

    const { ask } = await adminRoom(ida, botId);
    // a username of her own, so the answer is not the default from usernameTemplate; made valid first, as
    // `:` in it would break the ident answer's fields (and `USER`), and it is what both say
    expect(await ask('username test Ida:User', (b) => b.startsWith('Username')))
      .toBe('Username set to idauser (an IRC username is at most 10 of a-z, 0-9, _ . and -); it applies from your next connection.');
    const roomId = await plumbedRoom(ida, botId, '#identchan');
    const botJoin = await watcher.waitForRaw((l) => untag(l).startsWith(':trestlebot!') && / JOIN :?#identchan/.test(l));
    expect(untag(botJoin)).toMatch(/^:trestlebot!trestle@/);
    await ida.sendText(roomId, 'my ident is verified');
    const said = await watcher.waitForRaw((l) => l.includes('my ident is verified'));
    expect(untag(said)).toMatch(/^:Ida\[m\]!idauser@\S+ PRIVMSG #identchan :my ident is verified$/);
  });

  it('answers about this process\'s real connections to ergo: each with its owner, a stranger\'s with NO-USER', async () => {
    const ports = connectionsToErgo();
    expect(ports).toContain(watcherPort);
    expect(ports.length).toBe(3); // the bridge's listener, Ida's connection, the watcher
    const { lines } = await identAsk(ports.map((p) => `${p} , ${ircPort}\r\n`).join(''), ports.length);
    const answers = new Map(ports.map((p, i) => [p, lines[i]]));
    expect(answers.get(watcherPort)).toBe(`${watcherPort}, ${ircPort} : ERROR : NO-USER`);
    const owners = ports.filter((p) => p !== watcherPort).map((p) => {
      const m = new RegExp(`^${p}, ${ircPort} : USERID : UNIX : (\\S+)$`).exec(answers.get(p) ?? '');
      expect(m, `answer for port ${p}: ${answers.get(p)}`).not.toBeNull();
      return m![1];
    });
    expect(owners.sort()).toEqual(['idauser', 'trestle']);
  });

  it('tells a host nothing about connections to another host', async () => {
    const ports = connectionsToErgo().filter((p) => p !== watcherPort);
    const queries = ports.map((p) => `${p}, ${ircPort}\r\n`).join('');
    // asked from the host they go to (ergo's, 127.0.0.1), the bridge's two connections have owners...
    const fromErgo = await identAsk(queries, ports.length, '127.0.0.1');
    expect(fromErgo.lines.map((l) => l.split(' : ').slice(1).join(' : ')).sort()).toEqual(['USERID : UNIX : idauser', 'USERID : UNIX : trestle']);
    // ...and from 127.0.0.2 (this machine too, but not the host they go to) they have none
    const { lines } = await identAsk(queries, ports.length, '127.0.0.2');
    expect(lines).toEqual(ports.map((p) => `${p}, ${ircPort} : ERROR : NO-USER`));
  });

  it('answers garbage with an error and keeps serving, on the same connection and after dropping a flooder', async () => {
    const ports = connectionsToErgo();
    const ida1 = (await identAsk(ports.map((p) => `${p},${ircPort}\n`).join(''), ports.length)).lines.find((l) => l.endsWith(': idauser'))!;
    const idaPort = Number(ida1.split(',')[0]);
    const { lines } = await identAsk(`GET / HTTP/1.0\r\n\r\n70000, ${ircPort}\r\n${idaPort}, ${ircPort}\n`, 4);
    expect(lines).toEqual([
      '0, 0 : ERROR : INVALID-PORT', '0, 0 : ERROR : INVALID-PORT', `70000, ${ircPort} : ERROR : INVALID-PORT`,
      `${idaPort}, ${ircPort} : USERID : UNIX : idauser`,
    ]);
    // a line that never ends: an error, and the connection is closed
    const flood = await identAsk('9'.repeat(5000), 1, '127.0.0.1', true);
    expect(flood).toEqual({ lines: ['0, 0 : ERROR : INVALID-PORT'], closed: true });
    const again = await identAsk(`${idaPort}, ${ircPort}\r\n`, 1);
    expect(again.lines).toEqual([`${idaPort}, ${ircPort} : USERID : UNIX : idauser`]);
  });

  it('closes clients past its cap at once, and serves again when they are gone', async () => {
    const idle = await Promise.all(Array.from({ length: MAX_CLIENTS }, () => new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: IDENT_PORT }, () => resolve(s));
      s.on('error', reject);
    })));
    try {
      // one more, while MAX_CLIENTS say nothing: closed without an answer
      // (a reset instead of a close if it had not read the query yet)
      const extra = await identAsk(`${watcherPort}, ${ircPort}\r\n`, 1, '127.0.0.1', true)
        .catch((err: NodeJS.ErrnoException) => { if (err.code === 'ECONNRESET') return { lines: [], closed: true }; throw err; });
      expect(extra).toEqual({ lines: [], closed: true });
    } finally {
      for (const s of idle) s.destroy();
    }
    const served = await until(async () => {
      const r = await identAsk(`${watcherPort}, ${ircPort}\r\n`, 1, '127.0.0.1', false).catch(() => undefined);
      return r?.lines.length ? r.lines : undefined;
    }, 'the ident server to answer again');
    expect(served).toEqual([`${watcherPort}, ${ircPort} : ERROR : NO-USER`]);
  });

  it('registers connections over TLS too, before their handshake (both kinds of connection)', async () => {
    const ident = (bridge.networks.get('irc') as IrcNetwork).ident!;
    const watcher = await users.add('identtlswatch', ['#identtls']);
    const common = {
      host: '127.0.0.1', port: Number(process.env['TRESTLE_E2E_IRC_TLS_PORT']), tls: true, realname: 'ident over TLS',
      tlsCa: readFileSync(`${process.env['TRESTLE_E2E_ERGO_WORK']}/tls.crt`, 'utf8'), ident,
      reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 }, limiter: new ReconnectLimiter(2), log: createLogger({ level: 'warn', format: 'json' }),
    };
    const suffix = Date.now() % 100_000;
    const conns = [
      new IrcConnection({ ...common, nick: `idtlsl${suffix}`, username: 'tlslisten', timeouts: { registerMs: 30_000 } }),
      new LeanConnection({ ...common, nick: `idtlsu${suffix}`, username: 'tlsuser', timeouts: { registerMs: 30_000, answerMs: 10_000 } }),
    ];
    try {
      await Promise.all(conns.map((c) => c.join('#identtls')));
      for (const [nick, user] of [[`idtlsl${suffix}`, 'tlslisten'], [`idtlsu${suffix}`, 'tlsuser']]) {
        const join = await watcher.waitForRaw((l) => untag(l).startsWith(`:${nick}!`) && / JOIN :?#identtls/.test(l));
        expect(untag(join)).toMatch(new RegExp(`^:${nick}!${user}@`));
      }
    } finally {
      for (const c of conns) c.quit('done');
    }
  });

  it('closes a client that asks nothing for its idle time (ident.idleSeconds), and keeps one that asks', async () => {
    const open = (): Promise<Socket> => new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: IDENT_PORT }, () => resolve(s));
      s.on('error', reject);
    });
    const closedAt = (s: Socket): Promise<number> => new Promise((resolve) => s.on('close', () => resolve(Date.now())));
    const silent = await open();
    const busy = await open();
    const start = Date.now();
    const silentClosed = closedAt(silent);
    let busyClosed = 0;
    void closedAt(busy).then((t) => { busyClosed = t; });
    busy.on('data', () => undefined);
    for (let i = 0; i < 10; i++) { busy.write('1, 2\r\n'); await sleep(300); } // 3 s, never 2 s silent
    const silentFor = (await Promise.race([silentClosed, sleep(6000).then(() => Infinity)])) - start;
    expect(silentFor).toBeGreaterThanOrEqual(IDLE_SECONDS * 1000 - 50);
    expect(silentFor).toBeLessThan(IDLE_SECONDS * 1000 + 3000);
    expect(busyClosed).toBe(0);
    busy.destroy();
  });

  it('forgets a connection once it is closed', async () => {
    const server = (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!;
    const ports = connectionsToErgo();
    const answer = (await identAsk(ports.map((p) => `${p},${ircPort}\n`).join(''), ports.length)).lines.find((l) => l.endsWith(': idauser'))!;
    const idaPort = Number(answer.split(',')[0]);
    const { ask } = await adminRoom(ida, botId);
    expect(await ask('quit test', (b) => b.startsWith('Disconnected') || b.startsWith('You have'))).toBe('Disconnected from ErgoTest.');
    expect(server.clients.has(ida.userId)).toBe(false);
    await until(() => !connectionsToErgo().includes(idaPort), 'Ida\'s connection to close');
    const { lines } = await identAsk(`${idaPort}, ${ircPort}\r\n`, 1);
    expect(lines).toEqual([`${idaPort}, ${ircPort} : ERROR : NO-USER`]);
  });
});
