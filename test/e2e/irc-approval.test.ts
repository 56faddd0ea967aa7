/**
 * Channel operators' consent to plumbing (`linkApproval`), against ergo: a `link` from a Matrix user
 * who is not a bridge admin asks the channel's operators by NOTICE; the first to answer "yes" links
 * the room, "no" refuses, silence runs out; a channel without operators cannot be linked; a bridge
 * admin links without asking.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcUser } from '../harness/irc-user.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { adminRoom, body, ghost, IrcUsers, roomWithBot, startIrcBridge, untag } from './irc-env.js';
import type { IrcNetwork } from '../../packages/irc/src/network.js';

const TIMEOUT_S = 10;
let bridge: TrestleBridge;
let botId: string;
let user: MatrixUser;
let admin: MatrixUser;
const users = new IrcUsers();
const run = (Date.now() % 1_000_000).toString(36);

/** The bridge with approvals on (and `admin` a bridge admin). */
const start = (timeoutSeconds = TIMEOUT_S): Promise<TrestleBridge> => startIrcBridge({ linkApproval: { enabled: true, timeoutSeconds } }, {}, {}, (config) => {
  (config.permissions as Record<string, string>)[admin.userId] = 'admin';
});

beforeAll(async () => {
  user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `irclinker${Date.now()}`, { displayName: 'Linda' });
  admin = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircboss${Date.now()}`, { displayName: 'Boss' });
  bridge = await start();
  botId = bridge.matrix.botUserId;
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
});

/** `who` says `!trestle link` for `channel` in a new room of theirs; returns the room and the bot's first answer. */
async function askLink(who: MatrixUser, channel: string): Promise<{ roomId: string; answer: string }> {
  const roomId = await roomWithBot(who, botId, `approval ${channel}`);
  const since = Date.now();
  await who.sendText(roomId, `!trestle link irc test/${channel}`);
  const answer = body(await who.waitForEvent(roomId, (e) => e.sender === botId && e.origin_server_ts >= since && body(e) !== ''));
  return { roomId, answer };
}

/** The bot's NOTICE to `op` about a request from `userId`. */
const askedOn = (op: IrcUser, userId: string): Promise<string> =>
  op.waitForRaw((l) => / NOTICE /.test(l) && untag(l).split(' NOTICE ')[1]!.startsWith(`${op.nick} :`) && l.includes(userId));

describe('IRC bridge: channel operators approve links (linkApproval)', () => {
  it('asks the operators, ignores anyone else\'s answer, and links once an operator says yes', async () => {
    const chan = `#appr${run}`;
    const op = await users.add(`apop${run}`, [chan]); // first in: the channel's operator
    const other = await users.add(`apother${run}`, [chan]);
    const { roomId, answer } = await askLink(user, chan);
    expect(answer).toMatch(new RegExp(`operators have to approve first\\. Asked the operators of ${chan} \\(apop${run}\\) by IRC notice\\. This room is linked when one of them says yes\\.`));
    const notice = await askedOn(op, user.userId);
    expect(notice).toContain('"yes"');
    expect(other.raw.some((l) => l.includes(user.userId))).toBe(false); // only operators are asked
    other.say(botNickOf(), 'yes'); // not an operator: does not count
    await sleep(1000);
    expect(bridge.portals.forRoom(roomId)).toEqual([]);
    op.say(botNickOf(), 'yes, welcome');
    const linked = await user.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    expect(body(linked)).toBe(`Linked this room to irc test/${chan.toLowerCase()}, approved on IRC by ${op.nick}, an operator of ${chan}.`);
    await op.waitFor((m) => m.type === 'notice' && m.message.startsWith('Done:'));
    await user.sendText(roomId, 'bridged with consent');
    await other.waitFor((m) => m.target === chan && m.message === 'bridged with consent');
    op.say(chan, 'welcome aboard');
    expect((await user.waitForEvent(roomId, (e) => body(e) === 'welcome aboard')).sender).toBe(ghost(op.nick));
  });

  it('refuses when an operator says no, and ends unanswered requests after the timeout', async () => {
    const chan = `#apno${run}`;
    const op = await users.add(`apnop${run}`, [chan]);
    const refused = await askLink(user, chan);
    expect(refused.answer).toMatch(/have to approve first/);
    await askedOn(op, user.userId);
    op.say(botNickOf(), 'no');
    const no = await user.waitForEvent(refused.roomId, (e) => e.sender === botId && body(e).includes('refused'));
    expect(body(no)).toBe(`${op.nick}, an operator of ${chan}, refused to link it to this room.`);
    expect(bridge.portals.forRoom(refused.roomId)).toEqual([]);

    const ignored = await askLink(user, chan);
    expect(ignored.answer).toMatch(/have to approve first/);
    const over = await user.waitForEvent(ignored.roomId, (e) => e.sender === botId && body(e).startsWith('No operator'), (TIMEOUT_S + 10) * 1000);
    expect(body(over)).toBe(`No operator of ${chan} answered within ${TIMEOUT_S} seconds, so this room is not linked to it.`);
    op.say(botNickOf(), 'yes'); // too late: nothing waits for it
    // a marker: another channel's operator approves a request made after that yes (which cannot count
    // for it: an answer counts only for a channel its sender is an operator of). Once that room is
    // linked, the late yes, read and acted on the same way before it, would have linked this one
    const chan2 = `#apno2${run}`;
    const op2 = await users.add(`apnop2${run}`, [chan2]);
    const marker = await askLink(user, chan2);
    await askedOn(op2, user.userId);
    op2.say(botNickOf(), 'yes');
    await user.waitForEvent(marker.roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    expect(bridge.portals.forRoom(ignored.roomId)).toEqual([]);
    expect((await user.timeline(ignored.roomId)).filter((e) => e.sender === botId && body(e).startsWith('Linked this room'))).toEqual([]);
    // the bridge's connection went into the channel to ask, and is out again: nothing bridges it
    await until(() => !ircServer().listener.isIn(chan), 'the bridge\'s connection to leave the channel');
  });

  it('takes the yes of an operator who changed nick after being asked', async () => {
    const chan = `#apnick${run}`;
    const op = await users.add(`apnickop${run}`, [chan]);
    const { roomId } = await askLink(user, chan);
    await askedOn(op, user.userId);
    const renamed = `apnick2${run}`;
    op.client.changeNick(renamed);
    await until(() => ircServer().events.operators(chan).includes(renamed.toLowerCase()), 'the bridge to see the operator under the new nick');
    op.say(botNickOf(), 'yes');
    const linked = await user.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    expect(body(linked)).toContain(`approved on IRC by ${renamed}`);
    expect(op.raw.some((l) => l.includes('no longer an operator'))).toBe(false);
  });

  it('keeps a waiting request across a restart: an operator\'s yes after it links the room', async () => {
    const chan = `#aprest${run}`;
    const op = await users.add(`aprestop${run}`, [chan]);
    await bridge.stop();
    bridge = await start(120); // time enough for a restart in the middle
    await until(() => ircServer().listener.state === 'connected', 'the bridge\'s IRC connection');
    const { roomId, answer } = await askLink(user, chan);
    expect(answer).toMatch(/have to approve first/);
    await askedOn(op, user.userId);
    await bridge.stop();
    bridge = await start(120);
    await until(() => ircServer().listener.state === 'connected', 'the bridge\'s IRC connection');
    op.say(botNickOf(), 'yes');
    const linked = await user.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    expect(body(linked)).toContain(`approved on IRC by ${op.nick}`);
    await bridge.stop();
    bridge = await start();
    await until(() => ircServer().listener.state === 'connected', 'the bridge\'s IRC connection');
  });

  it('cannot link a channel without operators, and a bridge admin links without asking', async () => {
    const chan = `#apnone${run}`;
    const first = await users.add(`apfirst${run}`, [chan]);
    first.client.raw(`MODE ${chan} -o ${first.nick}`);
    await first.waitForRaw((l) => untag(l).includes(`MODE ${chan} -o ${first.nick}`));
    const { answer } = await askLink(user, chan);
    expect(answer).toMatch(new RegExp(`${chan} has no operator to approve the link`));

    const { roomId, answer: adminAnswer } = await askLink(admin, chan);
    expect(adminAnswer).toMatch(/^Linked this room/);
    await admin.sendText(roomId, 'an admin bridged this');
    await first.waitFor((m) => m.target === chan && m.message === 'an admin bridged this');
  });
});

describe('IRC bridge: an operator asking from Matrix', () => {
  it('links at once for a Matrix user whose own IRC connection is an operator of the channel', async () => {
    const chan = `#apself${run}`;
    const op = await users.add(`apselfop${run}`, [chan]);
    const { ask } = await adminRoom(user, botId);
    await ask(`irc join test ${chan}`, (b) => b.startsWith('Joined'));
    const nick = ircServer().clients.get(user.userId)!.nick;
    op.client.raw(`MODE ${chan} +o ${nick}`);
    await until(() => ircServer().events.modes.modesOf(chan, nick).has('o'), 'the bridge to see the Matrix user made an operator');
    const { roomId, answer } = await askLink(user, chan);
    expect(answer).toMatch(/^Linked this room/);
    expect(op.raw.some((l) => l.includes('asks to bridge'))).toBe(false); // nobody was asked
    op.say(chan, 'hello plumbed room');
    await user.waitForEvent(roomId, (e) => body(e) === 'hello plumbed room');
  });
});

/** The bridge's own nick on the test server. */
function botNickOf(): string {
  return ircServer().listener.nick;
}

function ircServer() {
  return (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!;
}
