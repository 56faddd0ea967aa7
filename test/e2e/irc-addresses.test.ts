/**
 * Matrix users' connections (and the relay connection) from addresses of their own
 * (`addressBlock`) and with the server's `userModes`, on a real ergo: an IRC operator's WHOIS shows each connection's real address
 * (338, shown to opers only) and its modes; the address stays after an oper KILL and the
 * reconnect, and after a bridge restart; a block the host cannot use and a block used up fail
 * the user's message with a notice saying why; a used-up block passes on the address of a user
 * not connected.
 *
 * On Linux all of 127.0.0.0/8 is local, so 127.0.1.0/24 works without a route. ergo asks ident
 * (`check-ident`) at the address each connection comes from, so this suite runs the bridge's
 * ident server on port 113 of every address: as root, and never beside irc-ident.test.ts.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type TrestleBridge } from '@trestle/core';
import type { IrcNetwork } from '@trestle/irc';
import { ReconnectLimiter } from '../../packages/irc/src/connection.js';
import { LeanConnection } from '../../packages/irc/src/lean.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { IrcUser } from '../harness/irc-user.js';
import { e2e, until } from './env.js';
import { body, ircPort, IrcUsers, plumbedRoom, restartErgo, startIrcBridge, startSuite, untag } from './irc-env.js';

const BLOCK = '127.0.1.0/24';
/** Users whose localpart starts with `ircrelayed` speak through the relay connection, which has an address of its own too. */
const serverCfg = (addressBlock: string): Record<string, unknown> => ({ addressBlock, userModes: '+R', relay: { users: ['@ircrelayed.*'] } });
const start = (addressBlock = BLOCK): Promise<TrestleBridge> => startIrcBridge(serverCfg(addressBlock), {}, { ident: { enabled: true, port: 113 } });

let bridge: TrestleBridge;
let botId: string;
let adda: MatrixUser;
let bodo: MatrixUser;
let relayed: MatrixUser;
let roomId: string;
let oper: IrcUser;
const users = new IrcUsers();

beforeAll(async () => {
  restartErgo('server.check-ident=true');
  let plain: TrestleBridge;
  ({ bridge: plain, botId, user: adda } = await startSuite('ircadda', 'Adda'));
  await plain.stop(); // startSuite's bridge has no block; this suite's has
  bridge = await start();
  bodo = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircbodo${Date.now()}`, { displayName: 'Bodo' });
  relayed = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircrelayed${Date.now()}`, { displayName: 'Rela' });
  oper = await users.addOper('addroper', ['#addresses']);
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
  restartErgo(); // the other suites' ergo
});

/** The lines of the oper's WHOIS of `nick`, up to its end (318). */
async function whois(nick: string): Promise<string[]> {
  const from = oper.raw.length;
  oper.client.raw(`WHOIS ${nick}`);
  await until(() => oper.raw.slice(from).some((l) => / 318 /.test(l)), `the WHOIS of ${nick} to end`);
  return oper.raw.slice(from).map(untag);
}

/** What the oper's WHOIS shows of `nick`: its real address (338), its username (311), its modes (379). */
async function seen(nick: string): Promise<{ ip: string; username: string; modes: string }> {
  const lines = await whois(nick);
  const actually = lines.find((l) => / 338 /.test(l));
  const user = lines.find((l) => / 311 /.test(l));
  const modes = lines.find((l) => / 379 /.test(l));
  if (!actually || !user) throw new Error(`no 338 or 311 in the WHOIS of ${nick}: ${lines.join(' | ')}`);
  return {
    ip: /(\d+\.\d+\.\d+\.\d+) :/.exec(actually)?.[1] ?? '',
    username: user.split(' ')[4] ?? '',
    modes: modes ? (/(\+[a-zA-Z]+)/.exec(modes.split(' :').slice(1).join(' :'))?.[1] ?? '') : '',
  };
}

/**
 * The bridge stopped, ergo restarted with `settings`, the bridge started again (with `server`
 * overrides), and (unless `withOper` is false) a new oper in #addresses: ergo's restart dropped the old one.
 */
async function restartAll(settings: string, server: Record<string, unknown> = {}, withOper = true): Promise<void> {
  await bridge.stop();
  restartErgo(settings);
  bridge = await startIrcBridge({ ...serverCfg(BLOCK), ...server }, {}, { ident: { enabled: true, port: 113 } });
  if (!withOper) return;
  oper = await users.addOper(`addroper${Date.now() % 1000}`, ['#addresses']);
}

/** `user` says `text` in the room and it fails: the bot's ⚠ notice naming them. */
async function failed(user: MatrixUser, text: string): Promise<string> {
  const since = Date.now();
  await user.sendText(roomId, text);
  return body(await user.waitForEvent(roomId, (e) => e.sender === botId && e.origin_server_ts >= since && body(e).startsWith('⚠') && body(e).includes(user.userId)));
}

/** `user` says `text` in the room; the oper sees it on IRC (from the relay as `<Rela> text`). */
async function say(user: MatrixUser, text: string): Promise<void> {
  await user.sendText(roomId, text);
  await oper.waitFor((m) => m.message.endsWith(text) && m.target === '#addresses');
}

describe('IRC bridge: source addresses from addressBlock, and userModes', () => {
  let addaAt = '', bodoAt = '', relayAt = '';

  it('gives two Matrix users and the relay three addresses of the block, with ident answered there and the users\' modes set', async () => {
    roomId = await plumbedRoom(adda, botId, '#addresses');
    await say(adda, 'adda here'); // adda's connection first, so in a fresh run she has the block's first address
    await adda.invite(roomId, bodo.userId);
    await bodo.join(roomId);
    await say(bodo, 'bodo here');
    await adda.invite(roomId, relayed.userId);
    await relayed.join(roomId);
    await say(relayed, 'relayed here');
    const a = await seen('Adda[m]'), b = await seen('Bodo[m]'), r = await seen('MatrixRelay');
    addaAt = a.ip; bodoAt = b.ip; relayAt = r.ip;
    for (const ip of [addaAt, bodoAt, relayAt]) expect(ip).toMatch(/^127\.0\.1\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-4])$/);
    expect(new Set([addaAt, bodoAt, relayAt]).size).toBe(3);
    // the bridge's own connection keeps the host's address
    expect((await seen('trestlebot')).ip).toBe('127.0.0.1');
    // ergo asked ident at each user's own address and got an answer: no ~ (unverified)
    expect(a.username).toMatch(/^ircadda\d+$/);
    expect(b.username).toMatch(/^ircbodo\d+$/);
    expect(a.modes).toContain('R');
    expect(b.modes).toContain('R');
  });

  it('keeps each user\'s address after an oper KILL and the reconnect', async () => {
    const server = (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!;
    const conn = server.clients.get(adda.userId)!;
    const lost = server.reconnects;
    oper.client.raw('KILL Adda[m] :addresses test');
    await until(() => server.reconnects > lost, 'the kill to be noticed');
    await until(() => conn.state === 'connected', 'adda to reconnect');
    await say(adda, 'adda is back');
    const a = await seen('Adda[m]');
    expect(a.ip).toBe(addaAt);
    expect(a.modes).toContain('R'); // set again on the new connection
    expect((await seen('Bodo[m]')).ip).toBe(bodoAt);
  });

  it('keeps each user\'s address across a bridge restart', async () => {
    await bridge.stop();
    bridge = await start();
    // the other way round this time: an address made afresh would be another's
    await say(relayed, 'relayed after the restart');
    await say(bodo, 'bodo after the restart');
    await say(adda, 'adda after the restart');
    expect((await seen('Adda[m]')).ip).toBe(addaAt);
    expect((await seen('Bodo[m]')).ip).toBe(bodoAt);
    expect((await seen('MatrixRelay')).ip).toBe(relayAt);
  });

  it('connects from its address over TLS too', async () => {
    const c = new LeanConnection({
      host: '127.0.0.1', port: Number(process.env['TRESTLE_E2E_IRC_TLS_PORT']), tls: true,
      tlsCa: readFileSync(`${process.env['TRESTLE_E2E_ERGO_WORK']}/tls.crt`, 'utf8'), localAddress: '127.0.1.250', userModes: '+R',
      nick: 'addrtls', username: 'addrtls', realname: 'TLS from a block address', reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
      timeouts: { registerMs: 30_000, answerMs: 10_000 }, limiter: new ReconnectLimiter(1), log: createLogger({ level: 'warn', format: 'json' }),
    });
    try {
      await c.connect();
      await until(async () => (await seen('addrtls')).modes.includes('R'), 'the TLS connection\'s user modes');
      expect((await seen('addrtls')).ip).toBe('127.0.1.250');
    } finally {
      c.quit('done');
    }
  });

  it('fails a waiting message with the server\'s reason when it lets only logged-in users in, and tries again at the next', async () => {
    // ergo requires SASL from all but 127.0.0.1: the bridge's own connection and the oper get in, adda (127.0.1.x) does not
    await restartAll('server.check-ident=true\naccounts.require-sasl.enabled=true\naccounts.require-sasl.exempted=[127.0.0.1/32]');
    const since = Date.now();
    expect(await failed(adda, 'adda without a login')).toMatch(/could not be delivered to .*You must log in with SASL.*storepass/);
    expect(Date.now() - since).toBeLessThan(15_000); // told at the refusal, not after the delivery policy's retries
    expect(oper.messages.some((m) => m.message === 'adda without a login')).toBe(false);
    await restartAll('server.check-ident=true');
    await say(adda, 'adda once logins are optional again');
  });

  it('logs the bridge\'s own connection in with botPassword where the server lets only logged-in users in', async () => {
    // an account for a bot nick of this test's own (the suites' usual one stays unregistered)
    const botNick = `addrbot${Date.now() % 100000}`, password = `bot-pw-${Date.now()}`;
    const reg = await users.add(botNick);
    reg.client.raw(`NS REGISTER ${password}`);
    await reg.waitFor((m) => m.nick === 'NickServ' && m.message.includes('Account created'));
    reg.client.quit('registered');
    try {
      // the oper (from 127.0.0.1, not exempt) could not connect now: a watcher from an exempt address instead
      await restartAll('server.check-ident=true\naccounts.require-sasl.enabled=true\naccounts.require-sasl.exempted=[127.0.1.0/24]',
        { botNick, botPassword: password }, false);
      // someone from an exempt address speaks in the channel: only a logged-in bridge connection (from 127.0.0.1) hears it
      const watcher = new IrcUser('127.0.0.1', ircPort, 'addrwatch');
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('addrwatch: registration timed out')), 15_000);
        watcher.client.once('registered', () => { clearTimeout(t); resolve(); });
        watcher.client.connect({ host: '127.0.0.1', port: ircPort, nick: 'addrwatch', username: 'watch', gecos: 'watch', outgoing_addr: '127.0.1.200' });
      });
      users.all.push(watcher);
      await watcher.join('#addresses');
      watcher.say('#addresses', 'heard by a logged-in bridge');
      await adda.waitForEvent(roomId, (e) => body(e) === 'heard by a logged-in bridge');
      expect((bridge.networks.get('irc') as IrcNetwork).servers.get('test')!.listener.nick).toBe(botNick);
    } finally {
      await restartAll('server.check-ident=true');
    }
  });

  it('tells the user why, instead of reconnecting, when the host cannot use the block or it is used up by users connected now', async () => {
    // 192.0.2.0/24 (TEST-NET-1) is on no interface here: binding to it fails before any packet leaves
    await bridge.stop();
    bridge = await start('192.0.2.0/30');
    expect(await failed(adda, 'from nowhere')).toMatch(/could not be delivered to .*the bridge cannot use the address 192\.0\.2\.\d for your IRC connection/);
    // a block of one address: the first user takes it, the next is told it is used up
    await bridge.stop();
    bridge = await start('127.0.2.1/32');
    await say(adda, 'adda alone in the small block');
    expect((await seen('Adda[m]')).ip).toBe('127.0.2.1');
    expect(await failed(bodo, 'no room for bodo')).toMatch(/could not be delivered to .*no free address for your connection to ErgoTest/);
    expect(oper.messages.some((m) => m.message === 'no room for bodo' || m.message === 'from nowhere')).toBe(false);
    // after a restart adda is not connected: bodo takes over the address; adda, back, finds it in use
    await bridge.stop();
    bridge = await start('127.0.2.1/32');
    await say(bodo, 'bodo takes the address adda is not using');
    expect((await seen('Bodo[m]')).ip).toBe('127.0.2.1');
    expect(await failed(adda, 'no room for adda now')).toMatch(/no free address for your connection to ErgoTest/);
    expect(oper.messages.some((m) => m.message === 'no room for adda now')).toBe(false);
  });
});
