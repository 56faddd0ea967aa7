/**
 * The IRC bridge on InspIRCd 3 (test/harness/inspircd-up.sh), with its IRCv3 modules and two
 * channel modes under which NAMES does not list everyone: delayed join (+D: a member who joins
 * is hidden until they speak) and auditorium (+u: InspIRCd shows the unvoiced only themselves;
 * ergo's +u hides the unvoiced from the unvoiced too, but leaves them out of their own NAMES).
 * A NAMES taken from inside a channel tells the bridge who left while it was away; in an
 * auditorium it must not be taken for the whole channel, or the ghosts of everyone hidden leave.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcNetwork } from '../../packages/irc/src/network.js';
import type { IrcUser } from '../harness/irc-user.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, startIrcBridge, untag } from './irc-env.js';

const port = Number(process.env['TRESTLE_E2E_INSPIRCD_PORT'] ?? 26669);
const work = `${e2e.dir}/inspircd`;
let bridge: TrestleBridge;
let user: MatrixUser;
const ircUsers = new IrcUsers(port);

/** The bridge on InspIRCd, with a database of its own (the shared one links the other suites' channels). */
const start = async (): Promise<TrestleBridge> =>
  startIrcBridge({ port }, {}, {}, (config) => { config.database.path = `${e2e.dir}/inspircd.db`; });
const listener = () => (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!.listener;

const ircUser = async (nick: string, channel: string): Promise<IrcUser> => ircUsers.add(nick, [channel]);

/** Who left the room (its leave events). */
const leaves = async (roomId: string): Promise<string[]> =>
  (await user.timeline(roomId)).filter((e) => e.type === 'm.room.member' && e.content['membership'] === 'leave').map((e) => e.state_key!);

beforeAll(async () => {
  execFileSync('bash', ['test/harness/inspircd-up.sh', work, String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  bridge = await start();
  user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `insp${Date.now()}`, { displayName: 'Ines' });
});

afterAll(async () => {
  ircUsers.quitAll();
  await bridge?.stop();
  execFileSync('bash', ['test/harness/inspircd-down.sh', work, String(port)], { stdio: 'ignore' });
});

describe('IRC bridge on InspIRCd', () => {
  it('bridges both ways', async () => {
    const op = await ircUser('inspop', '#insp');
    const roomId = await plumbedRoom(user, bridge.matrix.botUserId, '#insp');
    await user.sendText(roomId, 'hello InspIRCd');
    await op.waitFor((m) => m.target === '#insp' && m.message === 'hello InspIRCd');
    op.say('#insp', 'hello Matrix');
    expect((await user.waitForEvent(roomId, (e) => body(e) === 'hello Matrix')).sender).toBe(ghost('inspop'));
  });

  it('splits a long line within the 512 bytes, maps IRCv3 replies and reactions both ways, and carries private messages', async () => {
    const fan = await ircUsers.add('inspfan', ['#insp'], ['echo-message']);
    const roomId = bridge.portals.all().find((p) => p.remoteChat === 'test/#insp')!.roomId;
    const long = 'ü€😀 '.repeat(120).trim();
    await user.sendText(roomId, long);
    await until(() => fan.messages.filter((m) => m.nick === 'Ines[m]').map((m) => m.message).join(' ').length >= long.length, 'all chunks');
    const chunks = fan.messages.filter((m) => m.nick === 'Ines[m]').map((m) => m.message);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join(' ')).toBe(long);

    const mine = await user.sendText(roomId, 'a message with a msgid');
    const msgid = (await fan.waitFor((m) => m.message === 'a message with a msgid')).tags['msgid']!;
    expect(msgid).toMatch(/\S+/);
    fan.say('#insp', 'replying on IRC', { '+draft/reply': msgid });
    expect((await user.waitForEvent(roomId, (e) => body(e) === 'replying on IRC')).content['m.relates_to']).toEqual({ 'm.in_reply_to': { event_id: mine } });
    fan.client.tagmsg('#insp', { '+draft/react': '🎉', '+draft/reply': msgid });
    const reaction = await user.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost('inspfan'));
    expect(reaction.content['m.relates_to']).toEqual({ rel_type: 'm.annotation', event_id: mine, key: '🎉' });
    fan.say('#insp', 'react to me');
    const target = await user.waitForEvent(roomId, (e) => body(e) === 'react to me');
    const theirs = (await fan.waitFor((m) => m.nick === 'inspfan' && m.message === 'react to me')).tags['msgid']!;
    await user.sendEvent(roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.event_id, key: '👍' } });
    // (InspIRCd writes the target of a TAGMSG as its last parameter: `TAGMSG :#insp`)
    await fan.waitForRaw((l) => / TAGMSG :?#insp/.test(l) && l.includes('+draft/react=👍') && l.includes(`+draft/reply=${theirs}`));

    fan.say('Ines[m]', 'psst, private');
    const dm = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === `test/pm/${user.userId}/inspfan`)?.roomId, 'the DM room');
    await user.join(dm);
    await user.waitForEvent(dm, (e) => body(e) === 'psst, private' && e.sender === ghost('inspfan'));
    await user.sendText(dm, 'private answer');
    expect((await fan.waitFor((m) => m.message === 'private answer')).target).toBe('inspfan');
  });

  it('follows joins, parts, a nick change, the topic and channel modes', async () => {
    const op = await ircUser('inspmod', '#inspmodes'); // first in: the channel's operator
    const roomId = await plumbedRoom(user, bridge.matrix.botUserId, '#inspmodes');
    const levels = async (): Promise<Record<string, number>> =>
      (await user.request<{ users: Record<string, number> }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`)).users;
    await until(async () => (await levels())[ghost('inspmod')] === 50, 'the op to get power level 50');
    const ivy = await ircUser('inspivy', '#inspmodes');
    await until(async () => (await user.joinedMembers(roomId)).includes(ghost('inspivy')), 'the ghost to join');
    op.client.raw('MODE #inspmodes +v inspivy');
    await until(async () => (await levels())[ghost('inspivy')] === 1, 'voice to become power level 1');
    ivy.client.changeNick('inspivy2');
    await until(async () => (await user.displayName(ghost('inspivy'))) === 'inspivy2', 'the ghost display name to change');
    op.client.setTopic('#inspmodes', 'an InspIRCd topic');
    await until(async () => (await user.request<{ topic?: string }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`).catch(() => ({ topic: undefined }))).topic === 'an InspIRCd topic', 'the room topic');
    ivy.client.part('#inspmodes', 'bye now');
    await until(async () => !(await user.joinedMembers(roomId)).includes(ghost('inspivy')), 'the ghost to leave');
  });

  /**
   * A channel whose members are known (the ghosts joined), then given `mode`; the bridge restarts,
   * so its connection takes a NAMES from inside it; and someone who parts meanwhile, for contrast
   * in a channel without the mode. Returns the rooms.
   */
  async function restartWith(mode: string, chan: string): Promise<{ roomId: string; quiet: IrcUser; op: IrcUser }> {
    const op = await ircUser(`${chan.slice(1)}op`, chan); // first in: the channel's operator
    const quiet = await ircUser(`${chan.slice(1)}q`, chan);
    const roomId = await plumbedRoom(user, bridge.matrix.botUserId, chan);
    await until(async () => (await user.joinedMembers(roomId)).includes(ghost(quiet.nick)), 'the ghost to join');
    op.client.raw(`MODE ${chan} +${mode}`);
    await op.waitForRaw((l) => untag(l).includes(`MODE ${chan} +${mode}`) || untag(l).includes(`MODE ${chan} :+${mode}`));
    await bridge.stop();
    bridge = await start();
    await until(() => listener().isIn(chan), 'the bridge to rejoin the channel');
    await sleep(1000); // the channel's modes come after its NAMES
    op.say(chan, `after the restart in ${chan}`); // in the room's queue after anything the NAMES brought
    await user.waitForEvent(roomId, (e) => body(e) === `after the restart in ${chan}`);
    return { roomId, quiet, op };
  }

  it('keeps the ghosts in a delayed-join channel (+D): members it had seen are still listed there', async () => {
    const { roomId, quiet } = await restartWith('D', '#delayed');
    expect(await user.joinedMembers(roomId)).toContain(ghost(quiet.nick));
    expect(await leaves(roomId)).toEqual([]);
  });

  it('takes nobody out of an auditorium channel (+u), whose NAMES shows the unvoiced only themselves', async () => {
    const { roomId, quiet, op } = await restartWith('u', '#audit');
    const members = await user.joinedMembers(roomId);
    expect(members).toContain(ghost(quiet.nick));
    expect(members).toContain(ghost(op.nick));
    expect(await leaves(roomId)).toEqual([]);
  });

  it('still takes out the ghost of one who left while the bridge was away, where NAMES lists everyone', async () => {
    const chan = '#plainish';
    const stays = await ircUser('plainstays', chan);
    const goes = await ircUser('plaingoes', chan);
    const roomId = await plumbedRoom(user, bridge.matrix.botUserId, chan);
    await until(async () => { const m = await user.joinedMembers(roomId); return m.includes(ghost(goes.nick)) && m.includes(ghost(stays.nick)); }, 'the ghosts to join');
    await bridge.stop();
    goes.client.part(chan);
    await stays.waitForRaw((l) => untag(l).startsWith(`:${goes.nick}!`) && untag(l).includes(' PART '));
    bridge = await start();
    await until(async () => !(await user.joinedMembers(roomId)).includes(ghost(goes.nick)), 'the ghost of the one who left to leave');
    expect(await user.joinedMembers(roomId)).toContain(ghost(stays.nick));
    expect(await leaves(roomId)).toEqual([ghost(goes.nick)]);
  });
});
