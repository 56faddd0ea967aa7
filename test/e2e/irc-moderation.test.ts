/**
 * Matrix moderation reaching IRC, against a real ergo and a real Synapse: kicks, bans and unbans of
 * IRC users' ghosts, and Matrix power levels as channel modes of the Matrix users' IRC nicks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcNetwork, IrcServer } from '@trestle/irc';
import type { IrcUser } from '../harness/irc-user.js';
import { MatrixUser, type MatrixEventJson } from '../harness/matrix-user.js';
import { e2e, until } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, startSuite, untag } from './irc-env.js';

let bridge: TrestleBridge;
let mona: MatrixUser;
let botId: string;
const users = new IrcUsers();
const ircUser = (nick: string, channels: string[] = [], caps: string[] = []): Promise<IrcUser> => users.add(nick, channels, caps);
const plumbed = (channel: string): Promise<string> => plumbedRoom(mona, botId, channel);
const ircServer = (): IrcServer => (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!;

beforeAll(async () => {
  ({ bridge, botId, user: mona } = await startSuite('ircmona', 'Mona'));
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
});

describe('IRC bridge: Matrix bans', () => {
  it('bans and kicks on IRC from the Matrix user\'s own connection when it is a channel operator, and says why not when it is not', async () => {
    const sam = await ircUser('ircsam', ['#bans', '#bans2']); // op of both
    const vic = await ircUser('ircvic', ['#bans', '#bans2']);
    const roomId = await plumbed('#bans');
    const room2 = await plumbed('#bans2');
    vic.say('#bans', 'spam spam spam');
    await mona.waitForEvent(roomId, (e) => body(e) === 'spam spam spam');
    await mona.sendText(roomId, 'I am here');
    await mona.sendText(room2, 'and here');
    await sam.waitFor((m) => m.message === 'and here');
    sam.client.raw('MODE #bans +o Mona[m]');
    await until(() => ircServer().events.modes.canKick('#bans', 'Mona[m]'), 'the bridge to see mona opped');

    // a real Matrix ban of the ghost: core hands it to the IRC network
    await mona.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/ban`, { user_id: ghost('ircvic'), reason: 'spam' });
    await sam.waitForRaw((l) => /^:Mona\[m\]!\S+ MODE #bans \+b :?ircvic!\*@\*$/.test(untag(l)));
    await sam.waitForRaw((l) => /^:Mona\[m\]!\S+ KICK #bans ircvic :?spam$/.test(untag(l)));
    expect(await vic.names('#bans2')).toContain('ircvic'); // only the one channel
    // the kick IRC echoes back is the Matrix ban's own doing: not bridged back as a kick. A line said
    // after the kick, once in the room, shows the bridge has handled the kick (one ordered queue per room)
    sam.say('#bans', 'said after the kick');
    await mona.waitForEvent(roomId, (e) => body(e) === 'said after the kick');
    const member = await mona.request<{ membership: string }>('GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(ghost('ircvic'))}`);
    expect(member.membership).toBe('ban');
    expect((await mona.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('⚠'))).toEqual([]);
    // not an operator in #bans2: nothing happens on IRC, and mona is told why
    const ban2 = (await mona.request<{ event_id?: string }>('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(room2)}/ban`, { user_id: ghost('ircvic'), reason: 'spam' })).event_id;
    void ban2;
    const told = await mona.waitForEvent(room2, (e) => e.sender === botId && body(e).startsWith('⚠'));
    expect(body(told)).toContain('your ban (');
    expect(body(told)).toContain('the ban of ircvic was not done on IRC: Mona[m] is not a channel operator in #bans2 on ErgoTest');
    expect(await sam.names('#bans2')).toContain('ircvic');
    // so vic talks on in #bans2: not into the room that banned him, and without holding up who comes after
    vic.say('#bans2', 'spam for the room that banned me');
    await sam.waitFor((m) => m.message === 'spam for the room that banned me');
    sam.say('#bans2', 'said after the spam');
    await mona.waitForEvent(room2, (e) => body(e) === 'said after the spam');
    const timeline2 = await mona.timeline(room2);
    expect(timeline2.filter((e) => body(e) === 'spam for the room that banned me')).toEqual([]);
    expect(timeline2.filter((e) => e.sender === botId && body(e).startsWith('⚠')).map(body)).toEqual([body(told)]);
    // nor does his ghost come back into it when he parts and joins the channel again
    vic.client.part('#bans2');
    await sam.waitForRaw((l) => /^:ircvic!\S+ PART #bans2/.test(untag(l)));
    await vic.join('#bans2');
    sam.say('#bans2', 'said after his rejoin');
    await mona.waitForEvent(room2, (e) => body(e) === 'said after his rejoin');
    expect((await mona.timeline(room2)).filter((e) => e.sender === botId && body(e).startsWith('⚠')).map(body)).toEqual([body(told)]);

    // a Matrix unban lifts the IRC ban, from the same connection: vic can come back
    await expect(vic.join('#bans', 3_000)).rejects.toThrow(/banned/);
    await mona.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/unban`, { user_id: ghost('ircvic') });
    await sam.waitForRaw((l) => /^:Mona\[m\]!\S+ MODE #bans -b :?ircvic!\*@\*$/.test(untag(l)));
    await vic.join('#bans', 10_000);
  });
});


describe('IRC bridge: Matrix power levels → channel modes', () => {
  it('gives a Matrix user the IRC rank of their power level, through an operator connection of ours, and says why not without one', async () => {
    const opal = await ircUser('ircopal', ['#ranks']); // first in: channel operator
    const roomId = await plumbed('#ranks');
    const dora = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircmoddora${Date.now()}`, { displayName: 'Dora' });
    await mona.sendText(roomId, 'mona is here');
    await dora.join(roomId);
    await dora.sendText(roomId, 'dora is here');
    await opal.waitFor((m) => m.message === 'dora is here' && m.nick === 'Dora[m]');
    const modeLine = (by: string, change: string): RegExp => new RegExp(`^:${by.replace(/[[\]]/g, '\\$&')}!\\S+ MODE #ranks ${change.replace('+', '\\+')} :?Dora\\[m\\]$`);
    const since = Date.now();

    // nobody of ours is an operator yet: nothing on IRC, and mona is told why
    await mona.setPowerLevel(roomId, dora.userId, 50);
    const told = await mona.waitForEvent(roomId, (e) => e.sender === botId && e.origin_server_ts >= since && body(e).startsWith('⚠'));
    expect(body(told)).toContain('the rank of Dora[m] was not set on IRC: Mona[m] is not a channel operator in #ranks on ErgoTest');

    // mona's own connection is made an operator: her power level changes become modes, set by her
    opal.client.raw('MODE #ranks +o Mona[m]');
    await until(() => ircServer().events.modes.canKick('#ranks', 'Mona[m]'), 'the bridge to see mona opped');
    await mona.setPowerLevel(roomId, dora.userId, 10); // between voice (1) and op (50): voice
    await opal.waitForRaw((l) => modeLine('Mona[m]', '+v').test(untag(l)));
    await mona.setPowerLevel(roomId, dora.userId, 50);
    await opal.waitForRaw((l) => modeLine('Mona[m]', '+o').test(untag(l)));
    await mona.setPowerLevel(roomId, dora.userId, 0);
    await opal.waitForRaw((l) => modeLine('Mona[m]', '-o').test(untag(l)));
    await opal.waitForRaw((l) => modeLine('Mona[m]', '-v').test(untag(l)));
    await until(() => ircServer().events.modes.levelOf('#ranks', 'Dora[m]') === 0, 'dora to have no rank left');

    // mona is no operator any more but the bridge's own connection is: it acts instead
    opal.client.raw('MODE #ranks -o+o Mona[m] trestlebot');
    await until(() => ircServer().events.modes.canKick('#ranks', 'trestlebot') && !ircServer().events.modes.canKick('#ranks', 'Mona[m]'), 'the bridge to see the listener opped');
    const powerLevelEvents = async (): Promise<MatrixEventJson[]> => (await mona.timeline(roomId)).filter((e) => e.type === 'm.room.power_levels');
    const levelsBefore = (await powerLevelEvents()).length;
    await mona.setPowerLevel(roomId, dora.userId, 50);
    await opal.waitForRaw((l) => modeLine('trestlebot', '+o').test(untag(l)));
    // the IRC mode is not mirrored back as a second power-levels change. An echo would not show on
    // dora herself (it would make a ghost of Dora[m] an operator), so what is checked is that the only
    // change is mona's and no ghost of dora's nick got a level; opal's line after the MODE, once in
    // the room, shows the bridge has handled the MODE (one ordered queue per room)
    opal.say('#ranks', 'said after the mode');
    await mona.waitForEvent(roomId, (e) => body(e) === 'said after the mode');
    const changes = (await powerLevelEvents()).slice(levelsBefore);
    expect(changes.map((e) => e.sender)).toEqual([mona.userId]);
    const levels = await mona.request<{ users: Record<string, number> }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`);
    expect(levels.users[dora.userId]).toBe(50);
    expect(Object.keys(levels.users).filter((u) => u.startsWith('@irc_test_dora'))).toEqual([]);
  });

  it('gives a Matrix user who connects later the rank of the power level they already have', async () => {
    const pia = await ircUser('ircpia', ['#later']); // first in: channel operator
    const roomId = await plumbed('#later');
    pia.client.raw('MODE #later +o trestlebot'); // the bridge's listener may now set modes
    await until(() => ircServer().events.modes.canKick('#later', 'trestlebot'), 'the bridge to see its listener opped');
    const lena = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircmodlena${Date.now()}`, { displayName: 'Lena' });
    await mona.setPowerLevel(roomId, lena.userId, 50); // a moderator before she ever speaks or has an IRC connection
    expect(ircServer().clients.has(lena.userId)).toBe(false);
    await lena.join(roomId);
    await lena.sendText(roomId, 'lena speaks');
    await pia.waitFor((m) => m.message === 'lena speaks' && m.nick === 'Lena[m]');
    await pia.waitForRaw((l) => /^:trestlebot!\S+ MODE #later \+o :?Lena\[m\]$/.test(untag(l)));
    await until(() => ircServer().events.modes.canKick('#later', 'Lena[m]'), 'the bridge to see lena opped');
  });
});

describe('IRC bridge: a plumbed room where the bot has no power', () => {
  it('skips the topic and ranks it may not set, says so once, holds up no message, and follows once given power', async () => {
    const olga = await ircUser('ircolga', ['#nopower']); // first in: channel operator, a rank the room cannot show
    const roomId = await mona.createRoom({ name: 'no power for the bot' });
    await mona.invite(roomId, botId);
    await until(async () => (await mona.joinedMembers(roomId)).includes(botId), 'the bot to join');
    await mona.sendText(roomId, '!trestle link irc test/#nopower');
    await mona.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    const topic = async (): Promise<string | undefined> => (await mona.request<{ topic?: string }>('GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`).catch(() => ({ topic: undefined }))).topic;

    olga.client.raw('TOPIC #nopower :the first topic');
    olga.say('#nopower', 'said after the first topic');
    await mona.waitForEvent(roomId, (e) => body(e) === 'said after the first topic');
    const pia = await ircUser('ircpiav', ['#nopower']);
    olga.client.raw('MODE #nopower +v ircpiav');
    olga.client.raw('TOPIC #nopower :the second topic');
    pia.say('#nopower', 'said after the second topic');
    await mona.waitForEvent(roomId, (e) => body(e) === 'said after the second topic');

    const fromBot = (await mona.timeline(roomId)).filter((e) => e.sender === botId && e.type === 'm.room.message').map(body);
    expect(fromBot.filter((b) => b.startsWith('ℹ I cannot mirror'))).toHaveLength(1);
    expect(fromBot.find((b) => b.startsWith('ℹ I cannot mirror'))).toContain(`Give ${botId} a power level`);
    expect(fromBot.filter((b) => b.startsWith('⚠'))).toEqual([]); // skipped, not retried until given up
    expect(await topic()).toBeUndefined();

    // nor may it kick: the kicked user's ghost leaves the room instead
    const membership = async (): Promise<string> => (await mona.request<{ membership: string }>('GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(ghost('ircpiav'))}`)).membership;
    expect(await membership()).toBe('join');
    olga.client.raw('KICK #nopower ircpiav :out you go');
    await until(async () => (await membership()) === 'leave', 'the kicked ghost to leave the room');

    // the room's admin gives the bot power: the next change is mirrored
    await mona.setPowerLevel(roomId, botId, 100);
    olga.client.raw('TOPIC #nopower :the third topic');
    await until(async () => (await topic()) === 'the third topic', 'the topic to be mirrored once the bot may');
  });
});

describe('IRC bridge: Matrix users\' membership → their connections in the channel', () => {
  it('joins the channel when a Matrix user joins the room, parts when they leave, and parts with the reason when kicked', async () => {
    const wat = await ircUser('ircwat', ['#mship']);
    const roomId = await plumbed('#mship');
    const ola = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircmodola${Date.now()}`, { displayName: 'Ola' });
    const joined = (l: string): boolean => /^:Ola\[m\]!\S+ JOIN :?#mship/.test(untag(l));
    const parted = (l: string): boolean => /^:Ola\[m\]!\S+ PART #mship/.test(untag(l));
    await ola.join(roomId);
    await wat.waitForRaw(joined);
    await ola.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {});
    expect(untag(await wat.waitForRaw(parted))).toMatch(/Left the Matrix room$/);
    await ola.join(roomId);
    await until(() => wat.raw.filter(joined).length === 2, 'ola to join the channel again');
    await mona.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/kick`, { user_id: ola.userId, reason: 'enough' });
    await until(() => wat.raw.filter(parted).length === 2, 'ola to part the channel when kicked');
    expect(untag(wat.raw.filter(parted)[1]!)).toMatch(/Kicked from the Matrix room by Mona: enough$/);
  });
});

describe('IRC bridge: the room topic → the channel topic', () => {
  it('sets the channel topic from a Matrix user\'s connection when it may, says why not when it may not, and does not echo it back', async () => {
    const tam = await ircUser('irctam', ['#mtopic']); // operator; ergo channels are +t: only operators set the topic
    const roomId = await plumbed('#mtopic');
    await mona.sendText(roomId, 'mona is in the channel');
    await tam.waitFor((m) => m.message === 'mona is in the channel');
    const setTopic = (topic: string): Promise<unknown> =>
      mona.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { topic });
    const since = Date.now();
    await setTopic('not an operator yet');
    const told = await mona.waitForEvent(roomId, (e) => e.sender === botId && e.origin_server_ts >= since && body(e).startsWith('⚠'));
    expect(body(told)).toMatch(/your topic change \(\S+\) could not be delivered to IRC: the IRC server refused it/);
    tam.client.raw('MODE #mtopic +o Mona[m]');
    await until(() => ircServer().events.modes.canKick('#mtopic', 'Mona[m]'), 'the bridge to see mona opped');
    await setTopic('set from Matrix');
    await tam.waitForRaw((l) => /^:Mona\[m\]!\S+ TOPIC #mtopic :set from Matrix$/.test(untag(l)));
    // a line said after the TOPIC, once in the room, shows the bridge has handled its echo (one ordered queue per room)
    tam.say('#mtopic', 'said after the topic');
    await mona.waitForEvent(roomId, (e) => body(e) === 'said after the topic');
    const topicEvents = (await mona.timeline(roomId)).filter((e) => e.type === 'm.room.topic');
    expect(topicEvents.map((e) => [e.sender, e.content['topic']])).toEqual([[mona.userId, 'not an operator yet'], [mona.userId, 'set from Matrix']]);
  });
});

describe('IRC bridge: an IRC kick of a Matrix user', () => {
  it('takes the Matrix user out of the channel\'s room too, with who and why, and tells them', async () => {
    const kop = await ircUser('irckop', ['#ikick']); // operator
    const roomId = await plumbed('#ikick');
    const kai = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircmodkai${Date.now()}`, { displayName: 'Kai' });
    await kai.join(roomId);
    await kai.sendText(roomId, 'kai talks');
    await kop.waitFor((m) => m.message === 'kai talks' && m.nick === 'Kai[m]');
    kop.client.raw('KICK #ikick Kai[m] :too loud');
    const kick = await mona.waitForEvent(roomId, (e) => e.type === 'm.room.member' && e.state_key === kai.userId && e.content['membership'] === 'leave');
    expect(kick.sender).toBe(botId);
    expect(String(kick.content['reason'])).toBe('Kicked from #ikick on ErgoTest by irckop: too loud');
  });
});

describe('IRC bridge: the bridge\'s own connection kicked', () => {
  it('tells the room, joins again after a wait, and bridges what is said once it is back', async () => {
    const bop = await ircUser('ircbop', ['#bkick']); // operator
    const roomId = await plumbed('#bkick');
    bop.say('#bkick', 'before the kick');
    await mona.waitForEvent(roomId, (e) => body(e) === 'before the kick');
    const bot = ircServer().listener.nick;
    const kickedAt = Date.now(), seen = bop.raw.length;
    bop.client.raw(`KICK #bkick ${bot} :testing`);
    const told = await mona.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('⚠ The bridge was kicked'));
    expect(body(told)).toBe(`⚠ The bridge was kicked from #bkick on ErgoTest by ircbop (testing), so nothing said there reaches this room until it is back. It joins again in 3 s.`);
    // out of the channel: the ghost of whoever was in it is no longer seen in it
    expect(ircServer().events.inChannel('ircbop', '#bkick')).toBe(false);
    const rejoin = new RegExp(`^:${bot.replace(/[[\]\\^{}|]/g, '\\$&')}!\\S+ JOIN :?#bkick`, 'i');
    await until(() => bop.raw.slice(seen).some((l) => rejoin.test(untag(l))), 'the bridge to join the channel again');
    expect(Date.now() - kickedAt).toBeGreaterThanOrEqual(2_500);
    bop.say('#bkick', 'after the rejoin');
    await mona.waitForEvent(roomId, (e) => body(e) === 'after the rejoin');
  });

  it('shows an IRC part without a reason as a leave without one', async () => {
    await ircUser('ircpstay', ['#preason']);
    const roomId = await plumbed('#preason');
    const pat = await ircUser('ircpat', ['#preason']);
    await until(async () => (await mona.joinedMembers(roomId)).includes(ghost('ircpat')), 'the ghost to join');
    pat.client.raw('PART #preason');
    const left = await mona.waitForEvent(roomId, (e) => e.type === 'm.room.member' && e.state_key === ghost('ircpat') && e.content['membership'] === 'leave');
    expect(left.content['reason']).toBeUndefined();
  });
});
