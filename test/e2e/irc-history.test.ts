/**
 * What IRC users say in a bridged channel while the bridge's listening connection is not there
 * (the bridge stopped, its connection killed and reconnecting) is fetched back from ergo's history
 * (IRCv3 draft/chathistory) when it rejoins: each line once, in order, at its IRC time, and never a
 * line a Matrix user sent through the bridge coming back as a ghost's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcNetwork, IrcServer } from '@trestle/irc';
import { IrcUser } from '../harness/irc-user.js';
import { MatrixUser, messagesOf, type MatrixEventJson } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { body, ghost, ircPort, IrcUsers, plumbedRoom, restartErgo, startIrcBridge, untag } from './irc-env.js';

let bridge: TrestleBridge;
let user: MatrixUser;
let botId: string;
const users = new IrcUsers();
/** Channel and nick names of this run: ergo keeps channel history between runs. */
const run = (Date.now() % 1_000_000).toString(36);
const ircServer = (): IrcServer => (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!;
/** A slower reconnect than the suite default, so lines said while the listener is gone are surely said while it is gone. */
const slowReconnect = { reconnect: { initialDelayMs: 1500, maxDelayMs: 3000 } };

beforeAll(async () => {
  bridge = await startIrcBridge(slowReconnect);
  botId = bridge.matrix.botUserId;
  user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `irchist${Date.now()}`, { displayName: 'Hana' });
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
});

/**
 * A channel of this run with an IRC user in it, linked to a room, a line seen there; then the
 * bridge is stopped. `botNick`: the listener's nick before the stop.
 */
async function linkedThenStopped(name: string, nick: string): Promise<{ chan: string; talker: IrcUser; roomId: string; botNick: string }> {
  expect(ircServer().cfg.history.enabled).toBe(true); // a bridge with history off keeps no mark to fetch from
  const chan = `#${name}${run}`;
  const talker = await users.add(`${nick}${run}`, [chan]);
  const roomId = await plumbedRoom(user, botId, chan);
  talker.say(chan, 'said live');
  await user.waitForEvent(roomId, (e) => body(e) === 'said live');
  const botNick = ircServer().listener.nick;
  await bridge.stop();
  return { chan, talker, roomId, botNick };
}

/** Lines the IRC user says while the bridge is away; NAMES is answered after the server has taken them all. */
async function saidWhileAway(talker: IrcUser, chan: string, texts: string[]): Promise<void> {
  for (const text of texts) talker.say(chan, text);
  await talker.names(chan);
}

/** Is this the bridge's notice that not all that was said while away could be fetched? */
const incompleteNotice = (e: MatrixEventJson): boolean => e.sender === botId && body(e).includes('could be fetched');

describe('IRC bridge: messages said while the bridge was away', () => {
  it('delivers what IRC said while the bridge was stopped: in order, once, at its IRC time; no Matrix line comes back as a ghost\'s', async () => {
    const chan = `#hist${run}`;
    const talker = await users.add(`htalk${run}`, [chan]);
    const watcher = await users.add(`hwatch${run}`, [chan]);
    const roomId = await plumbedRoom(user, botId, chan);
    talker.say(chan, 'said before the stop');
    await user.waitForEvent(roomId, (e) => body(e) === 'said before the stop');
    await user.sendText(roomId, 'matrix said this before the stop');
    await watcher.waitFor((m) => m.message === 'matrix said this before the stop');
    await user.sendText(roomId, 'matrix line one\nmatrix line two'); // one draft/multiline batch on ergo
    await watcher.waitFor((m) => m.message === 'matrix line two');
    // too long for one IRC line: several PRIVMSGs, each msgid mapped as another part of one Matrix event
    const long = `matrix long: ${Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ')}`;
    await user.sendText(roomId, long);
    await watcher.waitFor((m) => m.message.endsWith('word119'));
    expect(watcher.messages.filter((m) => m.message.includes('word')).length).toBeGreaterThan(1);

    await bridge.stop();
    const away = ['said while away 1', 'said while away 2', 'said while away 3'];
    for (const text of away) talker.say(chan, text);
    const seen = await Promise.all(away.map((text) => watcher.waitFor((m) => m.message === text)));
    bridge = await startIrcBridge(slowReconnect);

    await user.waitForTimeline(roomId, (evs) => away.every((text) => evs.some((e) => body(e) === text)));
    await sleep(2000); // time for anything that would come twice
    const msgs = messagesOf(await user.timeline(roomId));
    const bodies = msgs.map(body);
    expect(bodies.filter((b) => away.includes(b))).toEqual(away); // in order, each once
    for (const [i, text] of away.entries()) {
      const ev = msgs.find((e) => body(e) === text)!;
      expect(ev.sender).toBe(ghost(talker.nick));
      expect(ev.origin_server_ts).toBe(Date.parse(seen[i]!.tags['time']!)); // the IRC server-time
    }
    expect(bodies.filter((b) => b === 'said before the stop')).toHaveLength(1);
    // the Matrix user's own lines are in ergo's history too, from a nick that is no longer the bridge's
    const said = msgs.filter((e) => e.sender !== botId && !body(e).startsWith('!trestle'));
    expect(said.filter((e) => e.sender === user.userId).map(body)).toEqual(['matrix said this before the stop', 'matrix line one\nmatrix line two', long]);
    expect(said.filter((e) => e.sender !== user.userId).map(body)).toEqual(['said before the stop', ...away]);
  });

  it('takes out the ghosts of those who left or changed nick while the bridge was stopped, after what they said then', async () => {
    const chan = `#hgone${run}`;
    const [stayNick, leaveNick, oldNick, newNick] = [`hgs${run}`, `hgl${run}`, `hgr${run}`, `hgn${run}`];
    const stays = await users.add(stayNick, [chan]);
    const leaves = await users.add(leaveNick, [chan]);
    const renames = await users.add(oldNick, [chan]);
    const roomId = await plumbedRoom(user, botId, chan);
    await until(async () => { const m = await user.joinedMembers(roomId); return [stayNick, leaveNick, oldNick].every((n) => m.includes(ghost(n))); }, 'the ghosts to join');

    await bridge.stop();
    leaves.say(chan, 'said, then left');
    leaves.client.part(chan);
    renames.client.changeNick(newNick);
    // both done (seen from another connection) before the bridge is back
    await stays.waitForRaw((l) => untag(l).startsWith(`:${leaveNick}!`) && untag(l).includes(` PART ${chan}`));
    await stays.waitForRaw((l) => untag(l).startsWith(`:${oldNick}!`) && untag(l).includes(' NICK '));
    bridge = await startIrcBridge(slowReconnect);

    await until(async () => {
      const m = await user.joinedMembers(roomId);
      return !m.includes(ghost(leaveNick)) && !m.includes(ghost(oldNick)) && m.includes(ghost(newNick));
    }, 'the ghosts of those gone to leave');
    expect(await user.joinedMembers(roomId)).toContain(ghost(stayNick));
    const events = await user.timeline(roomId);
    // the line fetched from history came first (its ghost joined again to say it), then the leave
    const said = events.findIndex((e) => body(e) === 'said, then left' && e.sender === ghost(leaveNick));
    const left = events.findLastIndex((e) => e.type === 'm.room.member' && e.state_key === ghost(leaveNick) && e.content['membership'] === 'leave');
    expect(said).toBeGreaterThan(-1);
    expect(left).toBeGreaterThan(said);
    expect(events[left]!.content['reason']).toBe('left the channel while the bridge was away');
    // nobody else was taken out
    expect(events.filter((e) => e.type === 'm.room.member' && e.content['membership'] === 'leave').map((e) => e.state_key).sort())
      .toEqual([ghost(leaveNick), ghost(oldNick)].sort());
  });

  it('takes nobody out of a channel whose member list hides people (ergo auditorium, +u): the ghosts stay across a restart', async () => {
    const chan = `#haud${run}`;
    const op = await users.add(`hao${run}`, [chan]); // first in: the channel's operator
    const quiet = await users.add(`haq${run}`, [chan]);
    const roomId = await plumbedRoom(user, botId, chan);
    await until(async () => (await user.joinedMembers(roomId)).includes(ghost(quiet.nick)), 'the ghost to join');
    // NAMES and JOINs of the unvoiced are hidden from the unvoiced, the bridge's connection among them:
    // its NAMES lists the operator alone (not even itself), and must not be taken for who is there
    op.client.raw(`MODE ${chan} +u`);
    await op.waitForRaw((l) => untag(l).includes(`MODE ${chan} +u`));

    await bridge.stop();
    bridge = await startIrcBridge(slowReconnect);
    await until(() => ircServer().listener.isIn(chan), 'the bridge to rejoin the channel');
    await sleep(1000); // the channel's modes come after its NAMES
    op.say(chan, 'after the restart'); // in the room's queue after anything the NAMES brought
    await user.waitForEvent(roomId, (e) => body(e) === 'after the restart');
    expect(await user.joinedMembers(roomId)).toContain(ghost(quiet.nick));
    const events = await user.timeline(roomId);
    expect(events.filter((e) => e.type === 'm.room.member' && e.content['membership'] === 'leave')).toEqual([]);
  });

  it('takes a connection of its own left over from a crash for what it is: no ghost of it, and its QUIT is no one leaving', async () => {
    const chan = `#hleft${run}`;
    const watcher = await users.add(`hlw${run}`, [chan]);
    const roomId = await plumbedRoom(user, botId, chan);
    await user.sendText(roomId, 'before the crash');
    const line = untag(await watcher.waitForRaw((l) => l.includes(`PRIVMSG ${chan} :before the crash`)));
    const [, nick, username] = /^:([^!]+)!~?([^@]+)@/.exec(line)!;
    await bridge.stop();
    // a crash would leave the Matrix user's connection on the server until it times out: this one stands in for it
    const leftover = new IrcUser('127.0.0.1', ircPort, nick!);
    leftover.username = username!;
    await leftover.connect();
    await leftover.join(chan);
    const newcomer = await users.add(`hln${run}`, [chan]); // and an IRC user who came meanwhile, for contrast
    bridge = await startIrcBridge(slowReconnect);
    await until(async () => (await user.joinedMembers(roomId)).includes(ghost(newcomer.nick)), 'the newcomer\'s ghost to join');
    leftover.quit();
    await user.sendText(roomId, 'after the restart');
    expect((await watcher.waitFor((m) => m.message === 'after the restart')).nick).toBe(nick);
    await sleep(1000);
    // no ghost ever stood for the leftover: no membership of anyone but the Matrix user under its nick
    const events = await user.timeline(roomId);
    expect(events.filter((e) => e.type === 'm.room.member' && e.content['displayname'] === nick)).toEqual([]);
  });

  it('takes the configured nick back for its own connection once it is free', async () => {
    const botNick = ircServer().cfg.botNick;
    await bridge.stop();
    const squatter = await users.add(botNick); // as the bridge's own connection from before a crash would, until timed out
    bridge = await startIrcBridge(slowReconnect);
    const listener = ircServer().listener;
    await until(() => listener.state === 'connected', 'the listener to register');
    expect(listener.nick).not.toBe(botNick);
    squatter.quit();
    await until(() => listener.nick === botNick, 'the listener to take its nick back');
  });

  it('delivers what IRC said while the listener\'s connection was killed and reconnecting', async () => {
    const chan = `#hkill${run}`;
    const talker = await users.add(`hkt${run}`, [chan]);
    const oper = await users.add(`hko${run}`, [chan]);
    const leaver = await users.add(`hkl${run}`, [chan]);
    const roomId = await plumbedRoom(user, botId, chan);
    await until(async () => (await user.joinedMembers(roomId)).includes(ghost(leaver.nick)), 'the ghost of the one who will leave to join');
    talker.say(chan, 'said before the kill');
    await user.waitForEvent(roomId, (e) => body(e) === 'said before the kill');

    const listener = ircServer().listener;
    const botNick = listener.nick;
    oper.client.raw('OPER admin oper-pass');
    await oper.waitForRaw((l) => / 381 /.test(l));
    oper.client.raw(`KILL ${botNick} :history test`);
    await talker.waitForRaw((l) => untag(l).startsWith(`:${botNick}!`) && untag(l).includes(' QUIT '));
    const away = ['said during the reconnect 1', 'said during the reconnect 2'];
    for (const text of away) talker.say(chan, text);
    leaver.client.part(chan);
    // NAMES is answered after the lines above: the listener was not in the channel when they were said
    expect((await talker.names(chan)).map((n) => n.replace(/^[~&@%+]+/, ''))).not.toContain(botNick);

    await until(() => listener.state === 'connected' && listener.isIn(chan), 'the listener to rejoin');
    await user.waitForTimeline(roomId, (evs) => away.every((text) => evs.some((e) => body(e) === text)));
    // who left meanwhile is taken out of the room; who stayed is not
    await until(async () => !(await user.joinedMembers(roomId)).includes(ghost(leaver.nick)), 'the ghost of the one who left to leave');
    expect(await user.joinedMembers(roomId)).toEqual(expect.arrayContaining([ghost(talker.nick), ghost(oper.nick)]));
    await sleep(1500);
    const bodies = messagesOf(await user.timeline(roomId)).map(body);
    expect(bodies.filter((b) => away.includes(b) || b === 'said before the kill')).toEqual(['said before the kill', ...away]);
  });

  it('delivers reactions made on IRC while the bridge was away, once; a Matrix user\'s own reaction does not come back as a ghost\'s', async () => {
    const chan = `#hreact${run}`;
    const talker = await users.add(`hrt${run}`, [chan]);
    const other = await users.add(`hro${run}`, [chan]);
    const roomId = await plumbedRoom(user, botId, chan);
    talker.say(chan, 'react to this');
    const msgid = (await other.waitFor((m) => m.message === 'react to this')).tags['msgid']!;
    const target = await user.waitForEvent(roomId, (e) => body(e) === 'react to this');
    // before the stop: a reaction made on IRC and seen live, and one made on Matrix and sent to IRC
    other.client.tagmsg(chan, { '+draft/react': '❤', '+draft/reply': msgid });
    await user.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost(other.nick));
    await user.sendEvent(roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.event_id, key: '👍' } });
    await talker.waitForRaw((l) => l.includes(`TAGMSG ${chan}`) && l.includes('+draft/react=👍'));

    await bridge.stop();
    talker.client.tagmsg(chan, { '+draft/react': '🎉', '+draft/reply': msgid });
    const seen = await other.waitForRaw((l) => l.includes(`TAGMSG ${chan}`) && l.includes('+draft/react=🎉'));
    bridge = await startIrcBridge(slowReconnect);

    const reacted = await user.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost(talker.nick));
    expect(reacted.content['m.relates_to']).toEqual({ rel_type: 'm.annotation', event_id: target.event_id, key: '🎉' });
    expect(reacted.origin_server_ts).toBe(Date.parse(/(?:^@|;)time=([^; ]+)/.exec(seen)![1]!)); // the IRC server-time
    await sleep(2000); // time for anything that would come twice
    const reactions = (await user.timeline(roomId)).filter((e) => e.type === 'm.reaction')
      .map((e) => [e.sender, (e.content['m.relates_to'] as { key?: string }).key]);
    expect(reactions).toEqual([[ghost(other.nick), '❤'], [user.userId, '👍'], [ghost(talker.nick), '🎉']]);
    // nor was one tried twice (the homeserver refuses a second same reaction: a failed delivery)
    const { values } = await bridge.metrics.sendFailures.get();
    expect(values.filter((v) => v.labels['network'] === 'matrix' && v.value > 0)).toEqual([]);
  });

  it('fetches nothing for a channel the bridge joins for the first time', async () => {
    const chan = `#hnew${run}`;
    const talker = await users.add(`hnt${run}`, [chan]);
    talker.say(chan, 'said before any link');
    await sleep(300);
    const roomId = await plumbedRoom(user, botId, chan);
    talker.say(chan, 'said after the link');
    await user.waitForEvent(roomId, (e) => body(e) === 'said after the link');
    await sleep(1500);
    expect(messagesOf(await user.timeline(roomId)).map(body)).not.toContain('said before any link');
  });

  it('tells the room when more was said while away than history.limit lets it fetch', async () => {
    const { chan, talker, roomId } = await linkedThenStopped('hlim', 'hlt');
    const away = [1, 2, 3].map((i) => `said past the limit ${i}`);
    await saidWhileAway(talker, chan, away);
    bridge = await startIrcBridge({ ...slowReconnect, history: { limit: 2 } });
    const notice = await user.waitForEvent(roomId, incompleteNotice);
    expect(body(notice)).toContain(chan);
    expect(body(notice)).toContain('at most 2 lines and events');
    // the notice follows the lines it speaks of ("what followed the lines above")
    const bodies = messagesOf(await user.timeline(roomId)).map(body);
    // the listener's own quit is the first event after its mark: 1 line makes up the 2
    expect(bodies.filter((b) => b.startsWith('said past the limit'))).toEqual(away.slice(0, 1));
    expect(bodies.indexOf(body(notice))).toBeGreaterThan(bodies.indexOf(away[0]!));
  });

  it('goes on without the history when the server refuses it (FAIL CHATHISTORY): live lines are not held back, the room is told nothing', async () => {
    const { chan, talker, roomId } = await linkedThenStopped('hfail', 'hft');
    // ergo answers CHATHISTORY for a registered channel whose history its founder turned off with FAIL ... INVALID_TARGET
    talker.client.raw(`NS REGISTER pw-${run}`);
    await talker.waitFor((m) => m.nick === 'NickServ' && m.message.includes('Account created'));
    talker.client.raw(`CS REGISTER ${chan}`);
    await talker.waitFor((m) => m.nick === 'ChanServ' && m.message.includes('successfully registered'));
    talker.client.raw(`CS SET ${chan} HISTORY off`);
    await talker.waitFor((m) => m.nick === 'ChanServ' && m.message.includes('history setting is: disabled'));
    talker.say(chan, 'said while away, history refused');
    bridge = await startIrcBridge(slowReconnect);
    await until(() => ircServer().listener.isIn(chan), 'the listener to rejoin');
    const since = Date.now();
    talker.say(chan, 'said after the refusal');
    // held behind a fetch that never comes, it would wait out the 15 s the bridge gives the server to answer
    await user.waitForEvent(roomId, (e) => body(e) === 'said after the refusal', 8000);
    expect(Date.now() - since).toBeLessThan(8000);
    await sleep(1000);
    const events = await user.timeline(roomId);
    expect(events.filter(incompleteNotice)).toEqual([]);
    expect(messagesOf(events).filter((e) => e.sender === botId && body(e).includes('CHATHISTORY'))).toEqual([]);
    expect(messagesOf(events).map(body)).not.toContain('said while away, history refused');
  });

  it('fetches nothing with history.enabled off', async () => {
    const { chan, talker, roomId } = await linkedThenStopped('hoff', 'hot');
    talker.say(chan, 'said while away, history off');
    bridge = await startIrcBridge({ ...slowReconnect, history: { enabled: false } });
    await until(() => ircServer().listener.isIn(chan), 'the listener to rejoin');
    talker.say(chan, 'said after the restart');
    await user.waitForEvent(roomId, (e) => body(e) === 'said after the restart');
    await sleep(1500);
    expect(messagesOf(await user.timeline(roomId)).map(body)).not.toContain('said while away, history off');
  });
});

describe('IRC bridge: messages said while away, fetched in pages (ergo gives at most 3 lines per request)', () => {
  beforeAll(async () => {
    await bridge.stop();
    restartErgo('history.chathistory-maxmessages=3');
    bridge = await startIrcBridge(slowReconnect);
  });

  afterAll(async () => {
    await bridge.stop();
    restartErgo(); // the other suites' ergo
    bridge = await startIrcBridge(slowReconnect); // for the file's afterAll
  });

  it('pages on until all that was said is in: each line once, in order, and no notice of lines missing', async () => {
    const { chan, talker, roomId } = await linkedThenStopped('hpage', 'hpt');
    const away = Array.from({ length: 8 }, (_, i) => `said in pages ${i + 1}`);
    await saidWhileAway(talker, chan, away);
    bridge = await startIrcBridge(slowReconnect);
    await user.waitForTimeline(roomId, (evs) => away.every((text) => evs.some((e) => body(e) === text)));
    await sleep(1500);
    const events = await user.timeline(roomId);
    expect(messagesOf(events).map(body).filter((b) => b.startsWith('said in pages'))).toEqual(away);
    expect(events.filter(incompleteNotice)).toEqual([]);
  });

  it('stops at history.limit over several pages, and tells the room what is missing', async () => {
    const { chan, talker, roomId } = await linkedThenStopped('hplim', 'hplt');
    const away = Array.from({ length: 9 }, (_, i) => `said past a paged limit ${i + 1}`);
    await saidWhileAway(talker, chan, away);
    bridge = await startIrcBridge({ ...slowReconnect, history: { limit: 6 } });
    const notice = await user.waitForEvent(roomId, incompleteNotice);
    expect(body(notice)).toContain(chan);
    expect(body(notice)).toContain('at most 6 lines and events');
    // the notice follows the lines it speaks of ("what followed the lines above")
    const bodies = messagesOf(await user.timeline(roomId)).map(body);
    const got = bodies.filter((b) => b.startsWith('said past a paged limit'));
    // the listener's own quit is the first event after its mark: 5 lines make up the 6, over two pages
    expect(got).toEqual(away.slice(0, 5));
    expect(bodies.indexOf(body(notice))).toBeGreaterThan(bodies.indexOf(away[4]!));
  });

  it('tells the room what is missing when the server refuses a later page (a FAIL that names no channel)', async () => {
    const { chan, talker, roomId } = await linkedThenStopped('hpfail', 'hpft');
    const away = Array.from({ length: 7 }, (_, i) => `said before a refused page ${i + 1}`);
    await saidWhileAway(talker, chan, away);
    // the listener's requests for a second page go out with a selector ergo does not know, so that
    // ergo itself refuses them (FAIL CHATHISTORY INVALID_PARAMS, naming no channel); the other
    // channels rejoined at the same time fetch their own history meanwhile
    const proto = Object.getPrototypeOf(ircServer().listener) as { raw(line: string): boolean };
    const raw = proto.raw;
    proto.raw = function (this: unknown, line: string): boolean {
      return raw.call(this, line.replace(/^(CHATHISTORY AFTER \S+) msgid=/, '$1 nosuch='));
    };
    try {
      bridge = await startIrcBridge(slowReconnect);
      const notice = await user.waitForEvent(roomId, incompleteNotice);
      expect(body(notice)).toContain(chan);
      expect(body(notice)).toContain('the IRC server refused the rest');
    } finally {
      proto.raw = raw;
    }
    // the first page: the listener's own quit and two lines; the notice follows them
    const bodies = messagesOf(await user.timeline(roomId)).map(body);
    expect(bodies.filter((b) => b.startsWith('said before a refused page'))).toEqual(away.slice(0, 2));
    expect(bodies.findIndex((b) => b.includes('could be fetched'))).toBeGreaterThan(bodies.indexOf(away[1]!));
    // and the room goes on at once
    const since = Date.now();
    talker.say(chan, 'said after the refused page');
    await user.waitForEvent(roomId, (e) => body(e) === 'said after the refused page', 8000);
    expect(Date.now() - since).toBeLessThan(8000);
  });

  it('holds a line said live while the history is being fetched, and delivers it after the fetched ones', async () => {
    const { chan, talker, roomId, botNick } = await linkedThenStopped('hheld', 'hht');
    const away = Array.from({ length: 7 }, (_, i) => `said before the rejoin ${i + 1}`);
    await saidWhileAway(talker, chan, away);
    // said the moment the listener's JOIN is seen: while its first CHATHISTORY request is on its way
    talker.client.on('join', (e: { nick: string; channel: string }) => {
      if (e.nick === botNick && e.channel.toLowerCase() === chan.toLowerCase()) talker.say(chan, 'said as the bridge rejoined');
    });
    bridge = await startIrcBridge(slowReconnect);
    const all = [...away, 'said as the bridge rejoined'];
    await user.waitForTimeline(roomId, (evs) => all.every((text) => evs.some((e) => body(e) === text)));
    await sleep(1500);
    expect(messagesOf(await user.timeline(roomId)).map(body).filter((b) => all.includes(b))).toEqual(all);
  });
});
