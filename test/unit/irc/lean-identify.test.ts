// A lean connection that logs in through NickServ IDENTIFY after registration, against a scripted
// peer on 127.0.0.1: its JOINs and its send queue wait for the login's answer (900, NickServ's
// notice, a failure, or the wait running out), so channels that let only logged-in users in (+r,
// a quiet on unidentified users) do not refuse, for good, what was queued during an outage. A
// connection that sends no IDENTIFY (SASL logged in, no stored password) writes them at once.
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../packages/core/src/util/log.js';
import { ReconnectLimiter } from '../../../packages/irc/src/connection.js';
import { parseLine } from '../../../packages/irc/src/ircline.js';
import { LeanConnection, type LeanOptions } from '../../../packages/irc/src/lean.js';
import { identifyAnswer } from '../../../packages/irc/src/login.js';
import { linePeer } from './line-peer.js';

/**
 * A peer without IRCv3 (or with SASL PLAIN only, when `sasl`, which logs in anyone, or no one: 'refuses'). `heard` holds
 * what each registered connection said, one list per connection; `onIdentify` answers an IDENTIFY
 * (by default: 900 at once). PINGs and JOINs are answered as a server does.
 */
interface Peer { port: number; sockets: Socket[]; heard: string[][]; sasl: boolean | 'refuses'; onIdentify: (s: Socket) => void }
const LOGGED_IN = ':srv 900 me me!me@host me :You are now logged in as me\r\n';

let server: Server | undefined;
let conn: LeanConnection | undefined;
afterEach(() => { conn?.quit(); conn = undefined; server?.close(); server = undefined; });

async function peer(sasl: boolean | 'refuses' = false): Promise<Peer> {
  const p: Peer = { port: 0, sockets: [], heard: [], sasl, onIdentify: (s) => s.write(LOGGED_IN) };
  ({ server, port: p.port } = await linePeer((s) => {
    p.sockets.push(s);
    const heard: string[] = [];
    let registered = false;
    return (line) => {
      if (!registered) {
        if (line.startsWith('CAP LS')) s.write(`:srv CAP * LS :${p.sasl ? 'sasl=PLAIN' : 'multi-prefix'}\r\n`);
        else if (line === 'CAP REQ :sasl') s.write(':srv CAP * ACK :sasl\r\n');
        else if (line.startsWith('CAP REQ')) s.write(`:srv CAP * NAK :${line.slice(9)}\r\n`);
        else if (line === 'AUTHENTICATE PLAIN') s.write('AUTHENTICATE +\r\n');
        else if (line.startsWith('AUTHENTICATE ')) s.write(p.sasl === 'refuses' ? ':srv 904 me :SASL authentication failed\r\n' : `${LOGGED_IN}:srv 903 me :SASL authentication successful\r\n`);
        else if (line === 'CAP END') { registered = true; p.heard.push(heard); s.write(':srv 001 me :Welcome\r\n'); }
        return;
      }
      heard.push(line);
      const ping = /^PING :(.*)$/.exec(line);
      if (ping) s.write(`:srv PONG srv :${ping[1]}\r\n`);
      const join = /^JOIN (\S+)/.exec(line);
      if (join) s.write(`:me!me@host JOIN ${join[1]}\r\n`);
      if (line.startsWith('PRIVMSG NickServ :IDENTIFY')) p.onIdentify(s);
    };
  }));
  return p;
}

function client(port: number, more: Partial<LeanOptions> = {}): LeanConnection {
  conn = new LeanConnection({
    host: '127.0.0.1', port, tls: false, nick: 'me', username: 'me', realname: 'Me',
    sasl: { account: 'me', password: 'secret' }, identify: { mode: 'only', nick: 'NickServ' },
    reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, timeouts: { registerMs: 5000, answerMs: 5000 },
    limiter: new ReconnectLimiter(1), log: quiet, ...more,
  });
  return conn;
}

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quiet };
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

/**
 * The connection is in #r; the server drops it, a message is sent meanwhile, and it connects again
 * (identifying, if it does, to a NickServ that answers only when the test says: the returned `answer`).
 */
async function outage(p: Peer, c: LeanConnection): Promise<{ sent: Promise<string | undefined>; answer: (line: string) => void }> {
  await c.connect();
  await c.join('#r');
  let held: Socket | undefined;
  p.onIdentify = (s) => { held = s; };
  p.sockets.at(-1)!.destroy();
  await until('the drop', () => c.state === 'reconnecting');
  const sent = c.send('PRIVMSG', '#r', 'written during the outage');
  await until('the new connection to register', () => p.heard.length === 2);
  return { sent, answer: (line) => held!.write(line) };
}

const IDENTIFY = 'PRIVMSG NickServ :IDENTIFY me secret';
const AFTER = ['JOIN #r', 'PRIVMSG #r :written during the outage', expect.stringMatching(/^PING :b\d+$/)];

describe('LeanConnection logging in through NickServ: JOINs and messages wait for the login', () => {
  it.each([
    ['the server says 900 (RPL_LOGGEDIN)', LOGGED_IN],
    ["Atheme's NickServ says it worked", ':NickServ!NickServ@services. NOTICE me :You are now identified for \x02me\x02.\r\n'],
    ["Anope's NickServ says it worked", ':NickServ!service@services. NOTICE me :Password accepted - you are now recognized.\r\n'],
    ['NickServ refuses the password (going on without the login, as before)', ':NickServ!NickServ@services. NOTICE me :Invalid password for \x02me\x02.\r\n'],
  ])('after a reconnect, rejoins and sends what was queued only once %s', async (_, line) => {
    const p = await peer();
    const c = client(p.port);
    const { sent, answer } = await outage(p, c);
    await tick(150);
    expect(p.heard[1]).toEqual([IDENTIFY]);
    answer(line);
    expect(await sent).toBeUndefined();
    expect(p.heard[1]).toEqual([IDENTIFY, ...AFTER]);
  });

  it('resolves connect() only once logged in, so a first message joins after the login too; NickServ\'s notice still reaches the user', async () => {
    const p = await peer();
    let held: Socket | undefined;
    p.onIdentify = (s) => { held = s; };
    const c = client(p.port);
    const pms: { nick: string; message: string }[] = [];
    c.on('pm', (e: { nick: string; message: string }) => pms.push({ nick: e.nick, message: e.message }));
    let connected = false;
    const ready = c.connect().then(() => { connected = true; });
    await until('the IDENTIFY', () => held !== undefined);
    await tick(100);
    expect(connected).toBe(false);
    held!.write(':NickServ!NickServ@services. NOTICE me :You are now identified for me.\r\n');
    await ready;
    await c.join('#r');
    await c.send('PRIVMSG', '#r', 'hello');
    expect(p.heard[0]).toEqual([IDENTIFY, 'JOIN #r', 'PRIVMSG #r :hello', expect.stringMatching(/^PING :b\d+$/)]);
    expect(pms).toEqual([{ nick: 'NickServ', message: 'You are now identified for me.' }]);
  });

  it('goes on after the wait (identify.waitMs) when NickServ never answers, with a warning', async () => {
    const p = await peer();
    const warnings: string[] = [];
    const log: Logger = { ...quiet, warn: (m) => { warnings.push(m); }, child: () => log };
    const c = client(p.port, { identify: { mode: 'only', nick: 'NickServ', waitMs: 300 }, log });
    const { sent } = await outage(p, c);
    const registeredAt = Date.now();
    await tick(150);
    expect(p.heard[1]).toEqual([IDENTIFY]);
    expect(await sent).toBeUndefined();
    expect(Date.now() - registeredAt).toBeGreaterThanOrEqual(250);
    expect(p.heard[1]).toEqual([IDENTIFY, ...AFTER]);
    expect(warnings).toContain('NickServ did not answer the IDENTIFY in time; joining and sending without waiting longer');
  });

  it.each([
    ['SASL logged in', true, { sasl: { account: 'me', password: 'secret' }, identify: { mode: 'fallback' as const, nick: 'NickServ' } }],
    ['no password is stored', false, { sasl: undefined, identify: { mode: 'only' as const, nick: 'NickServ' } }],
  ])('writes JOINs and queued messages at registration when no IDENTIFY is sent (%s)', async (_, sasl, more) => {
    const p = await peer(sasl);
    const c = client(p.port, more);
    const { sent } = await outage(p, c);
    expect(await sent).toBeUndefined();
    expect(p.heard[1]).toEqual(AFTER);
  });
});

describe('LeanConnection: a refused login is reported, so the user can be told', () => {
  it('says so when NickServ refuses the password, in its words', async () => {
    const p = await peer();
    p.onIdentify = (s) => s.write(':NickServ!NickServ@services. NOTICE me :Invalid password for \x02me\x02.\r\n');
    const c = client(p.port);
    const refused: string[] = [];
    c.on('login refused', (why: string) => refused.push(why));
    await c.connect();
    expect(refused).toEqual(['Invalid password for me.']);
  });

  it.each([
    ['without a NickServ fallback: SASL\'s refusal is the answer', 'off' as const, ['SASL authentication failed']],
    ['with the NickServ fallback: its answer is awaited instead (here it logs in)', 'fallback' as const, []],
  ])('SASL refused %s', async (_, mode, expected) => {
    const p = await peer('refuses');
    const c = client(p.port, { identify: { mode, nick: 'NickServ' } });
    const refused: string[] = [];
    c.on('login refused', (why: string) => refused.push(why));
    await c.connect();
    await tick(50);
    expect(refused).toEqual(expected);
  });
});

describe('identifyAnswer', () => {
  const line = (raw: string) => parseLine(raw)!;
  it.each([
    [':srv 900 me me!me@host me :You are now logged in as me', 'in'],
    [":NickServ!NickServ@services. NOTICE me :You're now logged in as me", 'in'],
    [':nickserv!NickServ@services. NOTICE me :You are already logged in as \x02me\x02.', 'in'],
    [':srv 904 me :SASL authentication failed', 'refused'],
    [':srv 902 me :You must use a nick assigned to you', 'refused'],
    [':NickServ!service@services. NOTICE me :Password incorrect.', 'refused'],
    [':NickServ!NickServ@services. NOTICE me :\x02me\x02 is not a registered nickname.', 'refused'],
    [':NickServ!NickServ@services. NOTICE me :Could not login with your TLS certificate or supplied username/password', 'refused'],
    // not an answer: the greeting, Atheme's count of failed attempts (sent with a success), someone else
    [':NickServ!NickServ@services. NOTICE me :This nickname is registered. Please choose a different nickname, or identify via /msg NickServ IDENTIFY <password>', undefined],
    [':NickServ!NickServ@services. NOTICE me :\x022\x02 failed logins since last login.', undefined],
    [':prankster!p@host NOTICE me :You are now identified for me.', undefined],
    [':prankster!p@host PRIVMSG me :Invalid password for me.', undefined],
  ])('%s → %s', (raw, want) => {
    expect(identifyAnswer(line(raw), 'NickServ')).toBe(want);
  });

  it('takes the services nick from a configured nick@server', () => {
    expect(identifyAnswer(line(':NickServ!NickServ@services. NOTICE me :Password accepted'), 'NickServ@services.example.net')).toBe('in');
  });
});
