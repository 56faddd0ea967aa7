/**
 * IRCv3 Strict Transport Security against ergo's own STS (`server.sts`): the bridge is configured
 * for ergo's plaintext port by host name (`localhost`, which ergo's self-signed certificate names;
 * trusted through `tlsCa`), and ergo tells it to use its TLS port. The suite runs ergo with STS
 * on, off and withdrawn (duration 0), and restores the other suites' ergo at the end.
 *
 * ergo counts loopback connections as secure whatever their transport, so it cannot tell us which
 * one the bridge used: the connections' own `via` (the socket's port and TLS) does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcNetwork } from '../../packages/irc/src/network.js';
import type { IrcServer } from '../../packages/irc/src/server.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, until } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, rehashErgo, restartErgo, startIrcBridge } from './irc-env.js';

const tlsPort = Number(process.env['TRESTLE_E2E_IRC_TLS_PORT'] ?? 0);
const ergoWork = process.env['TRESTLE_E2E_ERGO_WORK'] ?? '';
const STS_ON = `server.sts.enabled=true\nserver.sts.port=${tlsPort}\nserver.sts.duration=1h`;
const STS_WITHDRAWN = `server.sts.enabled=true\nserver.sts.port=${tlsPort}\nserver.sts.duration=0`;

let bridge: TrestleBridge | undefined;
let user: MatrixUser;
const users = new IrcUsers();

const ircServer = (): IrcServer => (bridge!.networks.get('irc') as IrcNetwork).servers.get('test')!;
/** The bridge, started, with its own IRC connection registered (the bridge does not wait for it). */
async function start(): Promise<void> {
  bridge = await startIrcBridge({ host: 'localhost', tlsCa: `${ergoWork}/tls.crt` });
  await until(() => ircServer().listener.state === 'connected', 'the bridge\'s IRC connection to register');
}
const policy = (): { port: number; duration_s: number; expires_at: number } | undefined =>
  bridge!.database.prepare('SELECT port, duration_s, expires_at FROM irc_sts WHERE host = ?').get('localhost') as
    { port: number; duration_s: number; expires_at: number } | undefined;
async function stop(): Promise<void> { await bridge?.stop(); bridge = undefined; }

beforeAll(async () => {
  if (!tlsPort || !ergoWork) throw new Error('TRESTLE_E2E_IRC_TLS_PORT / TRESTLE_E2E_ERGO_WORK are not set: run through test/harness/e2e.sh');
  user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircsts${Date.now()}`, { displayName: 'Stella' });
});

afterAll(async () => {
  users.quitAll();
  bridge?.database.prepare('DELETE FROM irc_sts WHERE host = ?').run('localhost');
  await stop();
  restartErgo(); // the other suites' ergo
});

describe('IRC bridge: IRCv3 STS (strict transport security)', () => {
  it('moves to TLS when the server asks, keeps to TLS across restarts while the policy lasts, and goes back once it is withdrawn', async () => {
    // 1. asked in plaintext: the listener and a Matrix user's connection end up on the TLS port
    restartErgo(STS_ON);
    const t0 = Date.now();
    await start();
    expect(ircServer().listener.via).toEqual({ port: tlsPort, tls: true });
    const stored = policy();
    expect(stored).toMatchObject({ port: tlsPort, duration_s: 3600 });
    expect(stored!.expires_at).toBeGreaterThanOrEqual(t0 + 3_600_000);
    expect(stored!.expires_at).toBeLessThanOrEqual(Date.now() + 3_600_000);

    const roomId = await plumbedRoom(user, bridge!.matrix.botUserId, '#sts');
    const fan = await users.add('stsfan', ['#sts']);
    await user.sendText(roomId, 'hello over TLS');
    await fan.waitFor((m) => m.target === '#sts' && m.message === 'hello over TLS');
    expect(ircServer().clients.get(user.userId)!.via).toEqual({ port: tlsPort, tls: true });
    fan.say('#sts', 'and back');
    expect((await user.waitForEvent(roomId, (e) => body(e) === 'and back')).sender).toBe(ghost('stsfan'));

    // 2. the server stops advertising STS; the stored policy still holds after a restart
    await stop();
    restartErgo();
    await start();
    expect(ircServer().listener.via).toEqual({ port: tlsPort, tls: true });
    const fan2 = await users.add('stsfan2', ['#sts']);
    await user.sendText(roomId, 'still TLS');
    await fan2.waitFor((m) => m.target === '#sts' && m.message === 'still TLS');
    expect(ircServer().clients.get(user.userId)!.via).toEqual({ port: tlsPort, tls: true });

    // 3. the server withdraws its policy (duration 0, heard over TLS): forgotten
    await stop();
    restartErgo(STS_WITHDRAWN);
    await start();
    await until(async () => policy() === undefined, 'the withdrawn policy to be forgotten');

    // 4. no policy and no STS: plaintext, as configured
    await stop();
    restartErgo();
    await start();
    expect(ircServer().listener.via).toEqual({ port: Number(process.env['TRESTLE_E2E_IRC_PORT']), tls: false });
    expect(policy()).toBeUndefined();
  });

  it('moves live connections to TLS when the server turns STS on while they are up (CAP NEW on a rehash)', async () => {
    await stop();
    restartErgo();
    await start();
    const plainPort = Number(process.env['TRESTLE_E2E_IRC_PORT']);
    expect(ircServer().listener.via).toEqual({ port: plainPort, tls: false });
    const roomId = await plumbedRoom(user, bridge!.matrix.botUserId, '#stsnew');
    const fan = await users.add('stsnewfan', ['#stsnew']);
    await user.sendText(roomId, 'hello in plaintext');
    await fan.waitFor((m) => m.target === '#stsnew' && m.message === 'hello in plaintext');
    const mine = ircServer().clients.get(user.userId)!;
    expect(mine.via).toEqual({ port: plainPort, tls: false });

    rehashErgo(STS_ON);
    await until(() => ircServer().listener.via.tls && ircServer().listener.state === 'connected', 'the bridge\'s connection to move to TLS');
    await until(() => mine.via.tls && mine.state === 'connected', 'the Matrix user\'s connection to move to TLS');
    expect(ircServer().listener.via).toEqual({ port: tlsPort, tls: true });
    expect(mine.via).toEqual({ port: tlsPort, tls: true });
    // heard again over TLS at registration: the policy is stored
    await until(() => policy()?.port === tlsPort, 'the policy to be stored');
    await user.sendText(roomId, 'hello over TLS now');
    await fan.waitFor((m) => m.target === '#stsnew' && m.message === 'hello over TLS now');
    fan.say('#stsnew', 'heard you');
    expect((await user.waitForEvent(roomId, (e) => body(e) === 'heard you')).sender).toBe(ghost('stsnewfan'));
    // the suites after this one connect as configured: the policy goes (a stop would not write it back)
    bridge!.database.prepare('DELETE FROM irc_sts WHERE host = ?').run('localhost');
    await stop();
  });
});
