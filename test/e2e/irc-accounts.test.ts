/**
 * IRC users logged in to an account keep one ghost, whatever nick they come back with (IRCv3
 * account-tag and extended-join, which the bridge's connection asks for). ergo makes a logged-in
 * user's nick equal their account by default, which would hide this: the suite runs it without
 * that rule (as Libera and most networks are) and restores it at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { MatrixUser } from '../harness/matrix-user.js';
import { until } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, restartErgo, startIrcBridge, startSuite } from './irc-env.js';

let bridge: TrestleBridge;
let ava: MatrixUser;
let botId: string;
const users = new IrcUsers();

beforeAll(async () => {
  restartErgo('accounts.nick-reservation.force-nick-equals-account=false');
  ({ bridge, botId, user: ava } = await startSuite('ircava', 'Ava'));
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
  restartErgo(); // the other suites' ergo
});

describe('IRC bridge: IRC users logged in to an account', () => {
  it('keeps one ghost for the account, whatever nick its user comes back with', async () => {
    const roomId = await plumbedRoom(ava, botId, '#accounts');
    const first = await users.add('acctann', ['#accounts']);
    first.client.say('NickServ', 'REGISTER acct-pw-1');
    await first.waitFor((m) => m.nick === 'NickServ' && /registered|created/i.test(m.message));
    first.say('#accounts', 'ann as herself');
    expect((await ava.waitForEvent(roomId, (e) => body(e) === 'ann as herself')).sender).toBe(ghost('acctann'));
    first.quit();
    // back later under another nick, logged in before joining: the same ghost, named after the new nick
    const again = await users.add('annback');
    again.client.say('NickServ', 'IDENTIFY acctann acct-pw-1');
    await again.waitFor((m) => m.nick === 'NickServ' && /logged in|identified/i.test(m.message));
    expect(again.client.user.nick).toBe('annback'); // ergo kept the nick (force-nick-equals-account off)
    await again.join('#accounts');
    again.say('#accounts', 'ann is back');
    expect((await ava.waitForEvent(roomId, (e) => body(e) === 'ann is back')).sender).toBe(ghost('acctann'));
    await until(async () => (await ava.displayName(ghost('acctann'))) === 'annback', 'the ghost to take the new nick as its name');
    expect(await ava.joinedMembers(roomId)).not.toContain(ghost('annback'));
    // someone with no account is their own ghost, as before
    const other = await users.add('annother', ['#accounts']);
    other.say('#accounts', 'not ann');
    expect((await ava.waitForEvent(roomId, (e) => body(e) === 'not ann')).sender).toBe(ghost('annother'));
    // Ann leaves; a stranger (not logged in) takes the nick she used: not Ann's ghost
    again.quit();
    const stranger = await users.add('annback', ['#accounts']);
    stranger.say('#accounts', 'a stranger as annback');
    const said = await ava.waitForEvent(roomId, (e) => body(e) === 'a stranger as annback');
    expect(said.sender).not.toBe(ghost('acctann'));
    expect(said.sender).toMatch(/^@irc_test_annback/);
  });
});
