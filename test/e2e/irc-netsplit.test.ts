/**
 * A real netsplit: two InspIRCd 3 servers linked into one network (test/harness/inspircd-up.sh with
 * its link settings), the bridge on the first, IRC users on the second. An operator on the first
 * SQUITs the second: its users seem to quit at once, with InspIRCd's split reason (the two server
 * names). The bridge holds those quits; the operator CONNECTs the second again, its users' JOINs
 * come back in the burst, and the held quits are dropped: their ghosts never left the room. A user who really left during the split is released as a leave once the hold (60 s) ends.
 * (ergo cannot link servers: irc.test.ts proves the quit-rate rule there; the BATCH netsplit form
 * has unit tests only, as neither server sends it.)
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcNetwork } from '../../packages/irc/src/network.js';
import type { IrcUser } from '../harness/irc-user.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { ghost, IrcUsers, plumbedRoom, startIrcBridge } from './irc-env.js';

/** Four ports from here: the first server's clients and server links, then the second's. */
const base = Number(process.env['TRESTLE_E2E_NETSPLIT_PORT'] ?? 26670);
const near = { name: 'splita.bridge.test', sid: '1AA', port: base, linkPort: base + 1, work: `${e2e.dir}/split-a` };
const far = { name: 'splitb.bridge.test', sid: '2BB', port: base + 2, linkPort: base + 3, work: `${e2e.dir}/split-b` };
const linkPass = randomBytes(9).toString('hex');
const operPass = randomBytes(9).toString('hex');
let bridge: TrestleBridge;
let user: MatrixUser;
const nearUsers = new IrcUsers(near.port);
const farUsers = new IrcUsers(far.port);
let oper: IrcUser;

const events = () => (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!.events;

function up(s: typeof near, peer: typeof near, extra: Record<string, string>): void {
  execFileSync('bash', ['test/harness/inspircd-up.sh', s.work, String(s.port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env, INSPIRCD_NAME: s.name, INSPIRCD_SID: s.sid, INSPIRCD_SERVER_PORT: String(s.linkPort),
      INSPIRCD_PEER: `${peer.name}:${peer.linkPort}`, INSPIRCD_LINK_PASS: linkPass, ...extra,
    },
  });
}

/** Is the far server linked to the near one now (the operator's LINKS)? */
async function linked(): Promise<boolean> {
  const from = oper.raw.length;
  oper.client.raw('LINKS');
  await oper.waitForRaw((l) => / 365 /.test(l) && oper.raw.indexOf(l) >= from);
  return oper.raw.slice(from).some((l) => l.includes(` 364 ${oper.nick} ${far.name} `));
}

beforeAll(async () => {
  up(near, far, { INSPIRCD_OPER_PASS: operPass });
  up(far, near, {});
  oper = await nearUsers.add('splitoper');
  oper.client.raw(`OPER tester ${operPass}`);
  await oper.waitForRaw((l) => / 381 /.test(l));
  oper.client.raw(`CONNECT ${far.name}`);
  await until(linked, 'the two InspIRCd servers to link', 30_000);
  bridge = await startIrcBridge({ port: near.port }, {}, {}, (config) => { config.database.path = `${e2e.dir}/netsplit.db`; });
  user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `split${Date.now()}`, { displayName: 'Sid' });
});

afterAll(async () => {
  nearUsers.quitAll();
  farUsers.quitAll();
  await bridge?.stop();
  for (const s of [near, far]) execFileSync('bash', ['test/harness/inspircd-down.sh', s.work, String(s.port)], { stdio: 'ignore' });
});

describe('IRC bridge: a real netsplit (two linked InspIRCd servers)', () => {
  it('holds the split\'s quits, keeps the ghosts of those who come back, and lets go of one who does not', async () => {
    const stayers = await Promise.all(['splitann', 'splitbob'].map((n) => farUsers.add(n, ['#split'])));
    const leaver = await farUsers.add('splitcid', ['#split']);
    const everyone = [...stayers, leaver].map((u) => ghost(u.nick));
    const roomId = await plumbedRoom(user, bridge.matrix.botUserId, '#split');
    await until(async () => { const m = await user.joinedMembers(roomId); return everyone.every((g) => m.includes(g)); }, 'the far server\'s users to join');

    const since = Date.now();
    oper.client.raw(`SQUIT ${far.name} :testing a netsplit`);
    // the split's QUITs carry the two servers' names: held, not bridged
    await until(() => events().heldQuits === 3, 'the bridge to hold the three quits');
    expect(await linked()).toBe(false);
    // during the split one of them leaves for real (the near side cannot see it)
    leaver.quit();
    await sleep(500); // the far server sees the quit before the link is back
    oper.client.raw(`CONNECT ${far.name}`);
    await until(linked, 'the far server to link again', 30_000);
    // the link is back: the two who stayed rejoin in its burst, and their held quits are dropped
    await until(() => events().heldQuits === 1, 'the returning users\' quits to be dropped');
    const members = await user.joinedMembers(roomId);
    for (const g of everyone) expect(members).toContain(g); // nobody has left the room yet
    const memberEvents = async () => (await user.timeline(roomId)).filter((e) => e.type === 'm.room.member' && e.origin_server_ts >= since);
    expect((await memberEvents()).filter((e) => everyone.includes(String(e.state_key)))).toEqual([]);
    // messages from the far side flow again
    stayers[0]!.say('#split', 'back from the split');
    await user.waitForEvent(roomId, (e) => e.content['body'] === 'back from the split');

    // the one who did not come back leaves once the hold (60 s from the split) is over
    await until(async () => !(await user.joinedMembers(roomId)).includes(ghost(leaver.nick)), 'the ghost of the user who left to go', 75_000);
    expect(Date.now() - since).toBeGreaterThanOrEqual(55_000);
    expect(events().heldQuits).toBe(0);
    const leaves = (await memberEvents()).filter((e) => e.content['membership'] === 'leave').map((e) => e.state_key);
    expect(leaves).toEqual([ghost(leaver.nick)]);
    await sleep(500);
  }, 150_000);
});
