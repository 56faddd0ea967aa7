/**
 * Matrix users as themselves on a real ergo: nicks from the display name, fixed to IRC's rules,
 * truncated to the server's NICKLEN and de-collided; linking IRC channels through the
 * provisioning HTTP API; and the admin commands about a user's own connection. Plain
 * irc-framework clients watch what ergo really shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcNetwork } from '@trestle/irc';
import { MatrixUser, type MatrixEventJson } from '../harness/matrix-user.js';
import { bridgeInfoIn, e2e, sleep, until } from './env.js';
import { adminRoom, body, ghost, ircPort, IrcUsers, plumbedRoom, roomWithBot, startIrcBridge, startSuite, untag } from './irc-env.js';

let bridge: TrestleBridge;
let uma: MatrixUser;
let botId: string;
const users = new IrcUsers();

/** What ergo accepts in a nick with `casemapping: ascii`: no spaces, `!`, `@` or non-ASCII; no leading digit or `-`. */
const validNick = /^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]*$/;

beforeAll(async () => {
  ({ bridge, botId, user: uma } = await startSuite('ircuma', 'Uma'));
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
});

/** One IRC link's bridge info (MSC2346) in a room, read through Synapse's client API as uma; undefined until it is there. */
async function bridgeInfo(roomId: string, channel: string): Promise<Record<string, unknown> | undefined> {
  const state = await uma.request<MatrixEventJson[]>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`);
  return bridgeInfoIn(state, `trestle://irc/test/${channel.toLowerCase()}`);
}
/** The bridge info of a link to `channel` on the `test` server (ergo), as named when linked. */
const ircInfo = (channel: string, creator?: string): Record<string, unknown> => ({
  bridgebot: botId, ...(creator ? { creator } : {}), protocol: { id: 'irc', displayname: 'IRC' },
  network: { id: 'test', displayname: 'ErgoTest', external_url: `irc://127.0.0.1:${ircPort}` },
  channel: { id: channel.toLowerCase(), displayname: channel, external_url: `irc://127.0.0.1:${ircPort}/${encodeURIComponent(channel.toLowerCase())}` },
});

/** A new Matrix user who sets `displayName` with the profile API, then joins the (public) room. */
async function member(roomId: string, localpart: string, displayName: string): Promise<MatrixUser> {
  const u = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `${localpart}${Date.now()}`);
  await u.request('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(u.userId)}/displayname`, { displayname: displayName });
  await u.join(roomId);
  return u;
}

describe('IRC bridge: nicks of Matrix users', () => {
  it('gives two Matrix users with the same display name two different nicks, both from the name', async () => {
    const watcher = await users.add('twinwatch', ['#twins']);
    const roomId = await plumbedRoom(uma, botId, '#twins');
    const first = await member(roomId, 'twina', 'Twin Name');
    const second = await member(roomId, 'twinb', 'Twin Name');
    await first.sendText(roomId, 'from the first twin');
    const a = await watcher.waitFor((m) => m.message === 'from the first twin');
    await second.sendText(roomId, 'from the second twin');
    const b = await watcher.waitFor((m) => m.message === 'from the second twin');
    expect(a.target).toBe('#twins');
    expect(b.target).toBe('#twins');
    // the template is `$DISPLAY[m]`; the space goes, and the second one's wanted nick is taken
    expect(a.nick).toBe('TwinName[m]');
    expect(b.nick).toBe('TwinName[m]_');
  });

  it('gives a Matrix user whose nick a plain IRC user holds another nick, and it still speaks; it takes the nick back once free', async () => {
    const holder = await users.add('Held[m]', ['#held']);
    const watcher = await users.add('heldwatch', ['#held']);
    const roomId = await plumbedRoom(uma, botId, '#held');
    const held = await member(roomId, 'held', 'Held');
    await held.sendText(roomId, 'my nick was taken');
    const seen = await holder.waitFor((m) => m.message === 'my nick was taken');
    expect(holder.client.user.nick).toBe('Held[m]'); // the IRC user keeps the nick
    expect(seen.nick).toBe('Held[m]_');
    // and IRC → Matrix still reaches the room from the holder's own ghost, not the Matrix user
    holder.say('#held', 'you are not me');
    const ev = await held.waitForEvent(roomId, (e) => body(e) === 'you are not me');
    expect(ev.sender).toMatch(/^@irc_test_/);
    expect(await held.displayName(ev.sender)).toBe('Held[m]');
    // the holder goes (as a connection of this bridge left over from before a crash would, timed out): the nick is taken back
    holder.quit();
    await watcher.waitForRaw((l) => untag(l).startsWith(':Held[m]_!') && / NICK :?Held\[m\]$/.test(untag(l)));
    await held.sendText(roomId, 'my nick is back');
    expect((await watcher.waitFor((m) => m.message === 'my nick is back')).nick).toBe('Held[m]');
  });

  it('makes a valid nick of a display name with spaces, punctuation and non-ASCII letters', async () => {
    const watcher = await users.add('oddwatch', ['#oddnames']);
    const roomId = await plumbedRoom(uma, botId, '#oddnames');
    const zoe = await member(roomId, 'zoe', 'Zoë Q! @home 日本');
    await zoe.sendText(roomId, 'odd name here');
    const seen = await watcher.waitFor((m) => m.message === 'odd name here');
    // accents are stripped to the base letter; spaces, `!`, `@` and the CJK letters go
    expect(seen.nick).toBe('ZoeQhome[m]');
    expect(seen.nick).toMatch(validNick);
    // a name of which a nick can hold no letter: the localpart stands in (not "[m]" for every such user)
    const han = await member(roomId, 'hanmei', '韩梅');
    await han.sendText(roomId, 'a name in another script');
    expect((await watcher.waitFor((m) => m.message === 'a name in another script')).nick).toBe(`${han.userId.slice(1).split(':')[0]}[m]`);
  });

  it("truncates a long display name to the server's NICKLEN, and de-collides within it", async () => {
    const watcher = await users.add('longwatch', ['#longnames']);
    const nicklen = Number(watcher.client.network.options['NICKLEN']);
    expect(nicklen).toBeGreaterThan(8); // ergo announced it (ISUPPORT NICKLEN)
    const roomId = await plumbedRoom(uma, botId, '#longnames');
    const name = 'Bartholomew'.repeat(Math.ceil(nicklen / 11) + 1);
    const first = await member(roomId, 'longa', name);
    const second = await member(roomId, 'longb', name);
    await first.sendText(roomId, 'a long name');
    const a = await watcher.waitFor((m) => m.message === 'a long name');
    await second.sendText(roomId, 'the same long name');
    const b = await watcher.waitFor((m) => m.message === 'the same long name');
    // the whole NICKLEN is used: the name's start, cut where the server cuts (`[m]` falls off)
    expect(a.nick).toBe(name.slice(0, nicklen));
    // the collision suffix replaces the end instead of making the nick too long
    expect(b.nick).toBe(`${name.slice(0, nicklen - 1)}_`);
  });
});

describe('IRC bridge: relay.users (the bridge restarted with a relay rule)', () => {
  it('sends a relayed user\'s lines through the shared relay connection as <Name> text, and nothing of the relay back to Matrix', async () => {
    await bridge.stop();
    bridge = await startIrcBridge({ relay: { users: ['@ircrelly\\d+:localhost'] } });
    const watcher = await users.add('relwatch', ['#relayed']);
    const roomId = await plumbedRoom(uma, botId, '#relayed');
    const relly = await member(roomId, 'ircrelly', 'Relly Q');
    await relly.sendText(roomId, 'hello via the relay');
    const said = await watcher.waitFor((m) => m.message.endsWith('hello via the relay'));
    expect(said).toMatchObject({ nick: 'MatrixRelay', type: 'privmsg', target: '#relayed', message: '<Relly Q> hello via the relay' });
    const long = Array.from({ length: 120 }, (_, i) => `w${i}`).join(' '); // over one IRC line
    await relly.sendText(roomId, long);
    await watcher.waitFor((m) => m.message.endsWith('w119'));
    const pieces = watcher.messages.filter((m) => / w\d+$/.test(m.message)).map((m) => m.message);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.every((p) => p.startsWith('<Relly Q> '))).toBe(true); // every piece says whose it is
    expect(pieces.map((p) => p.slice('<Relly Q> '.length)).join(' ')).toBe(long);
    await relly.sendEvent(roomId, 'm.room.message', { msgtype: 'm.emote', body: 'waves' });
    expect((await watcher.waitFor((m) => m.message.endsWith('waves'))).message).toBe('* Relly Q waves');
    await uma.sendText(roomId, 'uma as herself');
    expect((await watcher.waitFor((m) => m.message === 'uma as herself')).nick).toBe('Uma[m]'); // others keep their own connections
    const irc = (bridge.networks.get('irc') as IrcNetwork).servers.get('test')!;
    expect(irc.clients.has(relly.userId)).toBe(false);
    expect(await watcher.names('#relayed')).not.toContainEqual(expect.stringMatching(/^[@+]?Relly/));
    // the relay's lines are ours: the listener does not bridge them back as a ghost's (the watcher's line comes after them)
    watcher.say('#relayed', 'after the relayed lines');
    await uma.waitForEvent(roomId, (e) => body(e) === 'after the relayed lines');
    expect((await uma.timeline(roomId)).filter((e) => e.sender === ghost('MatrixRelay'))).toEqual([]);
    // a private message to the relay is answered, not bridged; a relayed user has no connection for commands
    watcher.client.say('MatrixRelay', 'who are you?');
    await watcher.waitFor((m) => m.type === 'notice' && m.nick === 'MatrixRelay' && m.message.startsWith('I relay messages from Matrix users'));
    const { ask } = await adminRoom(relly, botId);
    expect(await ask('join test #relayed2', (b) => b.includes('relayed'))).toMatch(/^You are relayed on ErgoTest/);
  });
});

describe('IRC bridge: a room\'s own line limit (linelimit)', () => {
  it('uploads sooner or later for one room as its moderators set, and goes back to the server\'s', async () => {
    const watcher = await users.add('llwatch', ['#linelimit']);
    const roomId = await plumbedRoom(uma, botId, '#linelimit');
    const say = async (who: MatrixUser, cmd: string): Promise<string> => {
      const since = Date.now();
      await who.sendText(roomId, cmd);
      return body(await who.waitForEvent(roomId, (e) => e.sender === botId && e.type === 'm.room.message' && e.origin_server_ts >= since));
    };
    const lines = (prefix: string): string[] => watcher.messages.filter((m) => m.message.startsWith(prefix)).map((m) => m.message);
    expect(await say(uma, '!irc linelimit')).toBe('This room uses the server\'s line limit (3 on ErgoTest).');
    expect(await say(uma, '!irc linelimit 5')).toBe('Messages from this room longer than 5 IRC lines are now uploaded and linked.');
    await uma.sendText(roomId, ['a1', 'a2', 'a3', 'a4', 'a5'].join('\n'));
    await watcher.waitFor((m) => m.message === 'a5');
    expect(lines('a')).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']); // over the server's 3, within the room's 5
    expect(await say(uma, '!irc linelimit 1')).toBe('Messages from this room longer than 1 IRC line are now uploaded and linked.');
    await uma.sendText(roomId, 'b1\nb2');
    await watcher.waitFor((m) => m.message.startsWith('(full message: '));
    expect(lines('b')).toEqual([]);
    // a member without power may not change it; and back to the server's limit
    const mo = await member(roomId, 'ircllmo', 'Mo');
    expect(await say(mo, '!irc linelimit 9')).toBe('"linelimit" needs power level 50 in this room (you have 0).');
    expect(await say(uma, '!irc linelimit default')).toBe('This room uses the server\'s line limit again (3 on ErgoTest).');
    await uma.sendText(roomId, 'c1\nc2\nc3');
    await watcher.waitFor((m) => m.message === 'c3');
    expect(lines('c')).toEqual(['c1', 'c2', 'c3']);
  });
});

describe('IRC bridge: a Matrix user renames', () => {
  const rename = (u: MatrixUser, name: string): Promise<unknown> =>
    u.request('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(u.userId)}/displayname`, { displayname: name });

  it('changes the nick made from the old display name, but not for a name set in one room only, nor a nick the user chose', async () => {
    const watcher = await users.add('renwatch', ['#renames']);
    const roomId = await plumbedRoom(uma, botId, '#renames');
    const rena = await member(roomId, 'ircrena', 'Rena');
    await rena.sendText(roomId, 'before the rename');
    expect((await watcher.waitFor((m) => m.message === 'before the rename')).nick).toBe('Rena[m]');
    await rename(rena, 'Renata');
    await watcher.waitForRaw((l) => /^:Rena\[m\]!\S+ NICK :?Renata\[m\]$/.test(untag(l)));
    await rena.sendText(roomId, 'after the rename');
    expect((await watcher.waitFor((m) => m.message === 'after the rename')).nick).toBe('Renata[m]');
    // a name for this room alone is not a rename: the room's queue handles it before the next line
    await rena.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(rena.userId)}`,
      { membership: 'join', displayname: 'Only Here' });
    await rena.sendText(roomId, 'with a room name');
    expect((await watcher.waitFor((m) => m.message === 'with a room name')).nick).toBe('Renata[m]');
    // a nick chosen with the nick command stays through renames
    const { ask } = await adminRoom(rena, botId);
    expect(await ask('nick test RenaPicked', (b) => b.startsWith('Your nick'))).toBe('Your nick on ErgoTest is now RenaPicked.');
    await rename(rena, 'Renée');
    await rena.sendText(roomId, 'after renaming again');
    expect((await watcher.waitFor((m) => m.message === 'after renaming again')).nick).toBe('RenaPicked');
    expect(watcher.raw.filter((l) => / NICK :?Renee/.test(l))).toEqual([]);
  });
});

describe('IRC bridge: provisioning API', () => {
  const secret = 'e2e-provisioning-secret'; // test/harness/e2e.sh's bridge config
  const api = (path: string): string => `http://127.0.0.1:${bridge.address()!.port}/_trestle/provision/v1${path}`;
  interface Reply { status: number; body: unknown }
  const errorOf = (r: Reply): string | undefined => (r.body as { error?: string }).error;
  const call = async (method: 'GET' | 'POST', path: string, json?: unknown, bearer = secret): Promise<Reply> => {
    const res = await fetch(api(path), {
      method, headers: { authorization: `Bearer ${bearer}`, ...(json ? { 'content-type': 'application/json' } : {}) },
      ...(json ? { body: JSON.stringify(json) } : {}),
    });
    return { status: res.status, body: await res.json() };
  };

  it('links an existing room to a channel, bridges both ways, and unlinks it', async () => {
    const watcher = await users.add('provwatch', ['#prov', '#provctl']);
    const roomId = await roomWithBot(uma, botId, 'provisioned');
    const link = { room_id: roomId, network: 'irc', remote_chat: 'test/#Prov', user_id: uma.userId };

    // a wrong secret is refused before anything happens
    expect((await call('GET', '/networks', undefined, 'wrong-secret')).status).toBe(403);
    expect((await call('POST', '/link', link, 'wrong-secret')).status).toBe(403);
    expect(bridge.portals.forRoom(roomId)).toEqual([]);

    const nets = await call('GET', '/networks');
    expect(nets.status).toBe(200);
    expect(nets.body).toContainEqual({ id: 'irc', displayName: expect.any(String) });

    const linked = await call('POST', '/link', link);
    expect(linked).toEqual({ status: 200, body: { network: 'irc', remoteChat: 'test/#prov' } }); // channel names fold
    expect(await call('GET', `/links?room_id=${encodeURIComponent(roomId)}`))
      .toEqual({ status: 200, body: [{ network: 'irc', remoteChat: 'test/#prov', kind: 'plumbed' }] });

    await uma.sendText(roomId, 'provisioned hello irc');
    expect((await watcher.waitFor((m) => m.message === 'provisioned hello irc')).target.toLowerCase()).toBe('#prov');
    watcher.say('#prov', 'provisioned hello matrix');
    expect((await uma.waitForEvent(roomId, (e) => body(e) === 'provisioned hello matrix')).sender).toBe(ghost('provwatch'));

    // a control room on the same server, to prove the bridge is still working after the unlink
    const control = await plumbedRoom(uma, botId, '#provctl');
    // unlinked with the same words it was linked with
    expect(await call('POST', '/unlink', link)).toEqual({ status: 200, body: {} });
    expect((await call('GET', `/links?room_id=${encodeURIComponent(roomId)}`)).body).toEqual([]);

    watcher.say('#prov', 'after unlink, to nobody');
    await uma.sendText(roomId, 'after unlink, from nobody');
    watcher.say('#provctl', 'control from irc');
    await uma.waitForEvent(control, (e) => body(e) === 'control from irc');
    await uma.sendText(control, 'control from matrix');
    await watcher.waitFor((m) => m.message === 'control from matrix');
    await sleep(1000);
    expect((await uma.timeline(roomId)).filter((e) => body(e) === 'after unlink, to nobody')).toEqual([]);
    expect(watcher.messages.filter((m) => m.message === 'after unlink, from nobody')).toEqual([]);
  });

  it('refuses a malformed or unknown IRC chat with a clear 400, and keeps running', async () => {
    const roomId = await roomWithBot(uma, botId, 'provisioned badly');
    const link = (remote_chat: string): Promise<Reply> =>
      call('POST', '/link', { room_id: roomId, network: 'irc', remote_chat, user_id: uma.userId });
    for (const bad of ['#nochannelserver', 'test/nochannel', 'test/', '/#chan', 'test/#two words']) {
      const res = await link(bad);
      expect(res.status, bad).toBe(400);
      expect(errorOf(res), bad).toMatch(/server and channel/);
    }
    const unknown = await link('nosuchserver/#chan');
    expect(unknown.status).toBe(400);
    expect(errorOf(unknown)).toMatch(/unknown IRC server "nosuchserver"/);
    const missing = await call('POST', '/link', { room_id: roomId, network: 'irc', user_id: uma.userId });
    expect(missing.status).toBe(400);
    expect(errorOf(missing)).toMatch(/remote_chat/);
    expect(bridge.portals.forRoom(roomId)).toEqual([]);
    // still working: a good link now goes through
    expect((await link('test/#provok')).status).toBe(200);
    expect(bridge.portals.forRoom(roomId).map((p) => p.remoteChat)).toEqual(['test/#provok']);
  });
});

describe('IRC bridge: the rest of the admin commands', () => {
  it('answers help, username, part, quit and removepass, each doing what it says on IRC and Matrix', async () => {
    const watcher = await users.add('cmdwatch', ['#cmdportal', '#cmdplumb']);
    const plumbed = await plumbedRoom(uma, botId, '#cmdplumb'); // uma made the room: as powerful as the bot there
    const portal = await uma.join('#irc_test_#cmdportal:localhost'); // the bot made this one
    await uma.sendText(portal, 'uma in the portal');
    await watcher.waitFor((m) => m.message === 'uma in the portal' && m.target === '#cmdportal');
    await uma.sendText(plumbed, 'uma in the plumbed room');
    await watcher.waitFor((m) => m.message === 'uma in the plumbed room' && m.target === '#cmdplumb');
    const { ask } = await adminRoom(uma, botId);

    const help = await ask('help', (b) => b.includes('storepass'));
    for (const name of ['join', 'part', 'nick', 'whois', 'storepass', 'removepass', 'username', 'reconnect', 'quit', 'listrooms', 'cmd']) {
      expect(help).toMatch(new RegExp(`\\b${name}\\b`));
    }

    // username: the ident of the next connection
    expect(await ask('username test umaident', (b) => b.startsWith('Username'))).toBe('Username set; it applies from your next connection.');
    // (in every channel of the old connection: this suite's earlier tests put uma in more than these two)
    expect(await ask('reconnect test', (b) => b.startsWith('Reconnected'))).toMatch(/^Reconnected to ErgoTest, in \d+ channels\.$/);
    await watcher.waitForRaw((l) => /^:Uma\[m\]!~?umaident@\S+ JOIN :?#cmdportal/.test(untag(l)));
    await watcher.waitForRaw((l) => /^:Uma\[m\]!~?umaident@\S+ JOIN :?#cmdplumb/.test(untag(l)));
    const who = await ask('whois test Uma[m]', (b) => b.startsWith('Uma[m] is'));
    expect(who).toMatch(/^Uma\[m\] is ~?umaident@/);
    expect(who).toContain(`(${uma.userId})`); // the realname, from realnameTemplate ($USERID)

    // part: off the channel on IRC, and out of the room the bot may kick from; told about the one it may not
    await uma.sendText(portal, 'back in the portal');
    await watcher.waitFor((m) => m.message === 'back in the portal');
    const left = await ask('part test #cmdportal', (b) => b.startsWith('Left'));
    expect(left).toBe(`Left #cmdportal on ErgoTest and its room ${portal}.`);
    await watcher.waitForRaw((l) => /^:Uma\[m\]!\S+ PART #cmdportal/.test(untag(l)));
    const membership = async (roomId: string): Promise<string> => (await uma.request<{ membership: string }>('GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(uma.userId)}`)).membership;
    expect(await membership(portal)).toBe('leave');
    const kept = await ask('part test #cmdplumb', (b) => b.startsWith('Left'));
    expect(kept).toContain(`I could not take you out of ${plumbed}`);
    await watcher.waitForRaw((l) => /^:Uma\[m\]!\S+ PART #cmdplumb/.test(untag(l)));
    expect(await membership(plumbed)).toBe('join');
    expect(await ask('part test #nowhere', (b) => b.startsWith('You are'))).toBe('You are not in #nowhere on ErgoTest.');

    // quit: the connection closes (the next message opens it again)
    await uma.sendText(plumbed, 'once more in the plumbed room');
    await watcher.waitFor((m) => m.message === 'once more in the plumbed room');
    expect(await ask('quit test', (b) => b.startsWith('Disconnected') || b.startsWith('You have'))).toBe('Disconnected from ErgoTest.');
    await watcher.waitForRaw((l) => /^:Uma\[m\]!\S+ QUIT :?.*Quit from Matrix/.test(untag(l)));
    expect(await ask('quit test', (b) => b.startsWith('Disconnected') || b.startsWith('You have'))).toBe('You have no connection there.');

    // removepass: a stored password is forgotten
    const store = (bridge.networks.get('irc') as IrcNetwork).store!;
    await ask('storepass test not-a-real-pw', (b) => b.startsWith('Password stored'));
    expect(store.user(uma.userId, 'test').password).toBe('not-a-real-pw');
    expect(await ask('removepass test', (b) => b.startsWith('Password'))).toBe('Password removed.');
    expect(store.user(uma.userId, 'test').password).toBeUndefined();
  });

  it('names a connection that a command opens, before any message, from the display name', async () => {
    const watcher = await users.add('firstwatch', ['#cmdfirst']);
    const nadia = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircnadia${Date.now()}`, { displayName: 'Nadia' });
    const { ask } = await adminRoom(nadia, botId);
    await ask('join test #cmdfirst', (b) => b.startsWith('Joined'));
    await watcher.waitForRaw((l) => /^:Nadia\[m\]!\S+ JOIN :?#cmdfirst/.test(untag(l)));
  });
});

describe('IRC bridge: IRC invites', () => {
  it('turns an IRC invite of a Matrix user into an invite to the channel\'s room, and lets them into an invite-only channel', async () => {
    const home = await plumbedRoom(uma, botId, '#ivyhome');
    const ivy = await member(home, 'ircivy', 'Ivy');
    const op = await users.add('invop', ['#invited', '#ivyhome']);
    await ivy.sendText(home, 'ivy is on IRC');
    await op.waitFor((m) => m.message === 'ivy is on IRC' && m.nick === 'Ivy[m]');
    op.client.raw('MODE #invited +i');
    op.client.raw('INVITE trestlebot #invited'); // the bridge's own connection must be let in too
    op.client.raw('INVITE Ivy[m] #invited');
    const roomId = await until(() => bridge.portals.forChat('irc', 'test/#invited')[0]?.roomId, 'the portal room of #invited');
    await until(async () => (await bridge.matrix.request<{ membership?: string }>('GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(ivy.userId)}`).catch(() => ({ membership: undefined }))).membership === 'invite', 'ivy to be invited to the room');
    await ivy.join(roomId);
    await op.waitForRaw((l) => /^:Ivy\[m\]!\S+ JOIN :?#invited/.test(untag(l))); // +i: only the invite lets her in
    await ivy.sendText(roomId, 'thanks for the invite');
    await op.waitFor((m) => m.message === 'thanks for the invite' && m.target === '#invited');
    // restarted, the bridge's own connection is not invited any more: the room is told it hears nothing now
    const since = Date.now();
    await bridge.stop();
    bridge = await startIrcBridge();
    const told = await ivy.waitForEvent(roomId, (e) => e.sender === botId && e.origin_server_ts >= since && body(e).startsWith('⚠ The bridge cannot join'));
    expect(body(told)).toBe('⚠ The bridge cannot join #invited on ErgoTest (the channel is invite-only), so nothing said there reaches this room. ' +
      'A channel operator can let it in: /invite trestlebot #invited.');
  });
});

describe('IRC bridge: room upgrades', () => {
  const upgrade = async (roomId: string): Promise<string> => (await uma.request<{ replacement_room: string }>('POST',
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/upgrade`, { new_version: '10' })).replacement_room;

  it('follows a public room to the room that replaces it, both ways', async () => {
    const watcher = await users.add('upwatch', ['#upgraded']);
    const old = await plumbedRoom(uma, botId, '#upgraded'); // public: the bot can join the new room itself
    await uma.sendText(old, '!irc linelimit 1');
    await uma.waitForEvent(old, (e) => e.sender === botId && body(e).startsWith('Messages from this room longer than 1'));
    const next = await upgrade(old);
    await uma.waitForEvent(next, (e) => e.sender === botId && body(e).startsWith(`This room replaces ${old}`));
    expect(bridge.portals.forRoom(next)).toEqual([expect.objectContaining({ remoteChat: 'test/#upgraded', kind: 'plumbed' })]);
    expect(bridge.portals.forRoom(old)).toEqual([]);
    await uma.sendText(next, 'from the new room');
    await watcher.waitFor((m) => m.message === 'from the new room');
    await uma.sendText(next, 'the line limit\nmoved too'); // the old room's limit of 1: uploaded, not two lines
    await watcher.waitFor((m) => m.message.startsWith('(full message: '));
    expect(watcher.messages.filter((m) => m.message === 'moved too')).toEqual([]);
    // the bridge info moved too: set in the new room, with who linked it, and emptied in the old
    expect(await until(() => bridgeInfo(next, '#upgraded'), 'the bridge info in the new room')).toEqual(ircInfo('#upgraded', uma.userId));
    await until(async () => JSON.stringify(await bridgeInfo(old, '#upgraded')) === '{}', 'the old room\'s bridge info emptied');
    watcher.say('#upgraded', 'into the new room');
    await uma.waitForEvent(next, (e) => body(e) === 'into the new room');
    // a static mapping in the config that still names the old room links the new one after a restart
    await bridge.stop();
    bridge = await startIrcBridge({ mappings: { '#upgraded': [old] } });
    expect(bridge.portals.forRoom(old)).toEqual([]);
    expect(bridge.portals.forRoom(next)).toEqual([expect.objectContaining({ remoteChat: 'test/#upgraded' })]);
  });

  it('asks to be invited to a private replacement, and moves the links once it is', async () => {
    const watcher = await users.add('upwatch2', ['#upgraded2']);
    const old = await uma.createRoom({ preset: 'private_chat', name: 'private, to upgrade' });
    await uma.invite(old, botId);
    await until(async () => (await uma.joinedMembers(old)).includes(botId), 'the bot to join');
    await uma.setPowerLevel(old, botId, 100);
    await uma.sendText(old, '!trestle link irc test/#upgraded2');
    await uma.waitForEvent(old, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    const next = await upgrade(old);
    const asked = await uma.waitForEvent(old, (e) => e.sender === botId && body(e).startsWith('This room was upgraded'));
    expect(body(asked)).toContain(`Invite ${botId} there`);
    expect(bridge.portals.forRoom(old)).toHaveLength(1); // nothing moved yet: the new room has no bot
    await uma.invite(next, botId);
    await uma.waitForEvent(next, (e) => e.sender === botId && body(e).startsWith(`This room replaces ${old}`));
    expect(bridge.portals.forRoom(old)).toEqual([]);
    watcher.say('#upgraded2', 'into the private replacement');
    await uma.waitForEvent(next, (e) => body(e) === 'into the private replacement');
  });
});

describe('IRC bridge: NickServ IDENTIFY (the bridge restarted with nickserv.identify: only)', () => {
  it('logs a user with a stored password in through NickServ, not SASL', async () => {
    const watcher = await users.add('nswatch', ['#nickserv']);
    const roomId = await plumbedRoom(uma, botId, '#nickserv');
    const nico = await member(roomId, 'ircnico', 'Nico');
    await nico.sendText(roomId, 'nico connects');
    await watcher.waitFor((m) => m.message === 'nico connects' && m.nick === 'Nico[m]');
    const { ask } = await adminRoom(nico, botId);
    await ask('cmd test PRIVMSG NickServ :REGISTER nico-pw-1', (b) => b.startsWith('Sent:'));
    // NickServ answers in private: the bridge opens a DM room of its ghost with nico
    const nickservRoom = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === `test/pm/${nico.userId}/nickserv`)?.roomId, 'the NickServ DM room');
    await nico.join(nickservRoom);
    await nico.waitForEvent(nickservRoom, (e) => /registered|created/i.test(body(e)));
    await ask('storepass test nico-pw-1', (b) => b.startsWith('Password stored'));

    await bridge.stop();
    bridge = await startIrcBridge({ nickserv: { identify: 'only' } });
    const since = Date.now();
    await ask('reconnect test', (b) => b.startsWith('Reconnected'));
    expect(await ask('whois test Nico[m]', (b) => b.startsWith('Nico[m] is'))).toContain('logged in as Nico[m]');
    // that login was NickServ's doing: it says so in private (a SASL login would not)
    await nico.waitForEvent(nickservRoom, (e) => e.origin_server_ts >= since && /logged in as Nico\[m\]/i.test(body(e)));
  });
});

describe('IRC bridge: excludedUsers (the bridge restarted with two rules)', () => {
  it('opens no connection for an excluded user and sends nothing of theirs, kicks one whose rule says so, and refuses their commands', async () => {
    await bridge.stop();
    bridge = await startIrcBridge({ excludedUsers: [{ regex: '@ircxquiet\\d+:localhost' }, { regex: '@ircxkick\\d+:localhost', kickReason: 'No bots on IRC' }] });
    const watcher = await users.add('exwatch', ['#excluded']);
    const roomId = await plumbedRoom(uma, botId, '#excluded');
    const quiet = await member(roomId, 'ircxquiet', 'Quiet Bot');
    await quiet.sendText(roomId, 'not for IRC');
    await uma.sendText(roomId, 'for IRC, after the excluded line');
    await watcher.waitFor((m) => m.message === 'for IRC, after the excluded line');
    // the room's queue is in order: the excluded line was handled (dropped) before Uma's went out
    expect(watcher.messages.filter((m) => m.message === 'not for IRC')).toEqual([]);
    expect(await watcher.names('#excluded')).not.toContainEqual(expect.stringMatching(/^[@+]?Quiet/));
    expect((bridge.networks.get('irc') as IrcNetwork).servers.get('test')!.clients.has(quiet.userId)).toBe(false);
    const { ask } = await adminRoom(quiet, botId);
    expect(await ask('join test #excluded2', (b) => b.includes('excluded'))).toBe("Your Matrix account is excluded from ErgoTest by the bridge's configuration.");

    const kicked = await member(roomId, 'ircxkick', 'Kicked Bot');
    await until(async () => {
      const m = await uma.request<{ membership?: string; reason?: string }>('GET',
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(kicked.userId)}`);
      return m.membership === 'leave' && m.reason === 'No bots on IRC';
    }, 'the bot to kick the excluded user with the rule\'s reason');
  });
});

describe('IRC bridge: bridge info state (MSC2346), read back from Synapse', () => {
  it('announces a portal room opened by its alias, by server and channel', async () => {
    const roomId = await uma.join('#irc_test_#infoportal:localhost');
    expect(await until(() => bridgeInfo(roomId, '#infoportal'), 'the portal room\'s bridge info')).toEqual(ircInfo('#infoportal'));
  });

  it('announces each plumbed link with who linked it, side by side, and empties one on unlink', async () => {
    const roomId = await plumbedRoom(uma, botId, '#InfoPlumb');
    await uma.sendText(roomId, '!trestle link irc test/#infoother');
    await uma.waitForEvent(roomId, (e) => e.sender === botId && body(e) === 'Linked this room to irc test/#infoother.');
    expect(await until(() => bridgeInfo(roomId, '#InfoPlumb'), 'the first link\'s bridge info')).toEqual(ircInfo('#InfoPlumb', uma.userId));
    expect(await until(() => bridgeInfo(roomId, '#infoother'), 'the second link\'s bridge info')).toEqual(ircInfo('#infoother', uma.userId));
    await uma.sendText(roomId, '!trestle unlink irc test/#InfoPlumb');
    await uma.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Unlinked irc'));
    // emptied (clients stop showing it); the other link stays as it was
    await until(async () => JSON.stringify(await bridgeInfo(roomId, '#InfoPlumb')) === '{}', 'the unlinked link\'s bridge info emptied');
    expect(await bridgeInfo(roomId, '#infoother')).toEqual(ircInfo('#infoother', uma.userId));
  });

  it('links a room that gives the bot no power to set state all the same, without bridge info', async () => {
    const watcher = await users.add('infowatch', ['#infonopower']);
    const roomId = await uma.createRoom({ name: 'bot without power' });
    await uma.invite(roomId, botId);
    await until(async () => (await uma.joinedMembers(roomId)).includes(botId), 'the bot to join');
    await uma.sendText(roomId, '!trestle link irc test/#infonopower');
    await uma.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    await uma.sendText(roomId, 'bridged without bridge info');
    await watcher.waitFor((m) => m.message === 'bridged without bridge info');
    watcher.say('#infonopower', 'and back');
    await uma.waitForEvent(roomId, (e) => body(e) === 'and back');
    expect(await bridgeInfo(roomId, '#infonopower')).toBeUndefined();
  });

  it('announces a direct chat from the remote user\'s ghost, both ways it opens', async () => {
    const pia = await users.add('infopia', ['#infodm']);
    const roomId = await plumbedRoom(uma, botId, '#infodm');
    await uma.sendText(roomId, 'so pia knows my nick');
    await pia.waitFor((m) => m.message === 'so pia knows my nick');
    pia.say('Uma[m]', 'psst');
    const dm = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === `test/pm/${uma.userId}/infopia`)?.roomId, 'the DM room');
    await uma.join(dm);
    const pmInfo = (nick: string): Record<string, unknown> => ({ ...ircInfo('#x'), channel: { id: nick, displayname: nick }, 'com.beeper.room_type': 'dm' });
    expect(await until(() => bridgeInfo(dm, 'infopia'), 'the DM\'s bridge info')).toEqual(pmInfo('infopia'));
    const senderIn = async (room: string, nick: string): Promise<string[]> =>
      (await uma.request<MatrixEventJson[]>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/state`))
        .filter((e) => e.state_key === `trestle://irc/test/${nick}`).map((e) => e.sender);
    expect(await senderIn(dm, 'infopia')).toEqual([ghost('infopia'), ghost('infopia')]);
    // a direct chat a Matrix user opens by inviting a ghost: that ghost announces it there too
    const quin = await users.add('infoquin', ['#infodm']);
    quin.say('#infodm', 'quin is here');
    await uma.waitForEvent(roomId, (e) => body(e) === 'quin is here');
    const started = await uma.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [ghost('infoquin')] });
    expect(await until(() => bridgeInfo(started, 'infoquin'), 'the Matrix-opened DM\'s bridge info')).toEqual(pmInfo('infoquin'));
    expect(await senderIn(started, 'infoquin')).toEqual([ghost('infoquin'), ghost('infoquin')]);
  });

  it('sets it at start in rooms linked while it was off', async () => {
    await bridge.stop();
    bridge = await startIrcBridge({}, {}, {}, (c) => { c.bridgeInfo.enabled = false; });
    const roomId = await plumbedRoom(uma, botId, '#infolate');
    await sleep(500);
    expect(await bridgeInfo(roomId, '#infolate')).toBeUndefined();
    await bridge.stop();
    bridge = await startIrcBridge();
    expect(await until(() => bridgeInfo(roomId, '#infolate'), 'the bridge info set at start')).toEqual(ircInfo('#infolate', uma.userId));
  });
});
