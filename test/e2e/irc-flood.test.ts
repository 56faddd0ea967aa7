/**
 * Flood control against a strict server: an InspIRCd that disconnects a client for "Excess Flood"
 * once it sends faster than 2 commands a second past a burst of 20 (test/harness/inspircd-up.sh,
 * INSPIRCD_STRICT_FLOOD=1), as strict networks do. A long Matrix message goes out as many IRC lines;
 * the bridge paces them with its default flood control (10 at once, then 2 a second), so the
 * connection stays up and every line arrives, in order.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { IrcUsers, plumbedRoom, startIrcBridge, untag } from './irc-env.js';

const port = Number(process.env['TRESTLE_E2E_FLOOD_PORT'] ?? 26674);
const work = `${e2e.dir}/inspircd-flood`;
const LINES = 30;
let bridge: TrestleBridge;
let user: MatrixUser;
const ircUsers = new IrcUsers(port);

beforeAll(async () => {
  execFileSync('bash', ['test/harness/inspircd-up.sh', work, String(port)], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, INSPIRCD_STRICT_FLOOD: '1' } });
  // the harness's shared config turns flood control off (its ergo has no limits); here it is as shipped
  bridge = await startIrcBridge({ port, lineLimit: 40, flood: { enabled: true } }, {}, {}, (config) => { config.database.path = `${e2e.dir}/flood.db`; });
  user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `flood${Date.now()}`, { displayName: 'Flo' });
});

afterAll(async () => {
  ircUsers.quitAll();
  await bridge?.stop();
  execFileSync('bash', ['test/harness/inspircd-down.sh', work, String(port)], { stdio: 'ignore' });
});

describe('IRC bridge: flood control', () => {
  it('the server is strict: a client that sends 30 lines at once is disconnected', async () => {
    const watcher = await ircUsers.add('floodwatch', ['#burst']);
    const rude = await ircUsers.add('floodrude', ['#burst']);
    for (let i = 0; i < LINES; i++) rude.client.raw(`PRIVMSG #burst :burst ${i}`);
    await watcher.waitForRaw((l) => /^:floodrude!\S+ QUIT :.*Excess Flood/i.test(untag(l)));
  });

  it('paces a long Matrix message: the connection stays up and every line arrives, in order', async () => {
    const watcher = await ircUsers.add('floodseer', ['#paced']);
    const roomId = await plumbedRoom(user, bridge.matrix.botUserId, '#paced');
    const lines = Array.from({ length: LINES }, (_, i) => `line ${i + 1} of a long message`);
    const t0 = Date.now();
    await user.sendText(roomId, lines.join('\n'));
    await until(() => watcher.messages.filter((m) => m.target === '#paced').length >= LINES, 'all the lines on IRC', 60_000);
    const got = watcher.messages.filter((m) => m.target === '#paced');
    expect(got.map((m) => m.message)).toEqual(lines);
    expect(new Set(got.map((m) => m.nick)).size).toBe(1); // one connection said them all
    // paced: 10 at once, then 2 a second, so the 30 take some 10 s (a burst would take well under 1 s)
    expect(Date.now() - t0).toBeGreaterThan(8_000);
    await sleep(500);
    expect(watcher.raw.some((l) => /QUIT :.*Excess Flood/i.test(untag(l)))).toBe(false);
  });
});
