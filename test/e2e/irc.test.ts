/**
 * The IRC bridge against a real ergo and a real Synapse: the bridge runs in this process; IRC
 * people are irc-framework clients on ergo, Matrix people are real Synapse users.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, loadEverything, TrestleBridge } from '@trestle/core';
import { IrcUser } from '../harness/irc-user.js';
import { MatrixUser, messagesOf, type MatrixEventJson } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';

let bridge: TrestleBridge;
let alice: MatrixUser;
let botId: string;
const ircPort = Number(process.env['TRESTLE_E2E_IRC_PORT'] ?? 0);
const ircUsers: IrcUser[] = [];
const body = (e: MatrixEventJson): string => String(e.content['body'] ?? '');
const ghost = (nick: string): string => `@irc_test_${nick.toLowerCase()}:localhost`;

async function ircUser(nick: string, channels: string[] = [], caps: string[] = []): Promise<IrcUser> {
  const u = new IrcUser('127.0.0.1', ircPort, nick, caps);
  ircUsers.push(u);
  await u.connect();
  for (const c of channels) await u.join(c);
  return u;
}

async function plumbed(channel: string): Promise<string> {
  const roomId = await alice.createRoom({ name: `plumbed ${channel}` });
  await alice.invite(roomId, botId);
  await until(async () => (await alice.joinedMembers(roomId)).includes(botId), 'the bot to join');
  await alice.setPowerLevel(roomId, botId, 100); // as a room admin does, so the bridge can sync topic and membership
  await alice.sendText(roomId, `!trestle link irc test/${channel}`);
  await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
  return roomId;
}

beforeAll(async () => {
  if (!ircPort) throw new Error('TRESTLE_E2E_IRC_PORT is not set: run through test/harness/e2e.sh');
  const { config, modules } = await loadEverything(e2e.config);
  const networks = [...modules].map(([id, m]) => m.create((config.networks as Record<string, unknown>)[id], id));
  bridge = new TrestleBridge(config, networks, { log: createLogger({ level: config.logging.level, format: 'pretty' }) });
  await bridge.start();
  botId = bridge.matrix.botUserId;
  alice = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircalice${Date.now()}`, { displayName: 'Alice' });
});

afterAll(async () => {
  for (const u of ircUsers) u.quit();
  await bridge?.stop();
});

describe('IRC bridge: messages', () => {
  it('bridges a plumbed room both ways, with the Matrix user on IRC as themselves', async () => {
    const bob = await ircUser('ircbob', ['#plumb']);
    const roomId = await plumbed('#plumb');
    await alice.sendText(roomId, 'hello irc');
    const seen = await bob.waitFor((m) => m.message === 'hello irc');
    expect(seen.nick).toBe('Alice[m]');
    expect(seen.target).toBe('#plumb');
    bob.say('#plumb', 'hello matrix');
    const ev = await alice.waitForEvent(roomId, (e) => body(e) === 'hello matrix');
    expect(ev.sender).toBe(ghost('ircbob'));
    expect(await alice.displayName(ghost('ircbob'))).toBe('ircbob');
    // the Matrix user's own IRC message never comes back as a ghost message
    await sleep(500);
    const timeline = await alice.timeline(roomId);
    expect(timeline.filter((e) => body(e) === 'hello irc').map((e) => e.sender)).toEqual([alice.userId]);
  });

  it('converts formatting both ways and turns nicks into pills', async () => {
    const carol = await ircUser('irccarol', ['#fmt']);
    const roomId = await plumbed('#fmt');
    await alice.sendText(roomId, 'warm up');
    await carol.waitFor((m) => m.message === 'warm up');
    carol.say('#fmt', '\x02bold\x02 and \x0304red\x03 for Alice[m]: <script>');
    const ev = await alice.waitForEvent(roomId, (e) => body(e).startsWith('bold and red'));
    expect(body(ev)).toBe('bold and red for Alice[m]: <script>');
    expect(ev.content['formatted_body']).toContain('<b>bold</b>');
    expect(ev.content['formatted_body']).toContain('data-mx-color="#ff0000"');
    expect(ev.content['formatted_body']).toContain(`<a href="https://matrix.to/#/${alice.userId}">`);
    expect(ev.content['formatted_body']).toContain('&lt;script&gt;');
    await alice.sendText(roomId, 'it bold', { format: 'org.matrix.custom.html', formatted_body: '<i>it</i> <strong>bold</strong>' });
    const irc = await carol.waitFor((m) => m.message.includes('bold') && m.message.includes('it') && m.nick === 'Alice[m]' && m.message !== 'warm up');
    // formatting ends with the line on IRC, so the last bold needs no closing code
    expect(irc.message).toBe('\x1Dit\x1D \x02bold');
  });

  it('never lets CR, LF or NUL in Matrix text inject IRC commands', async () => {
    const dan = await ircUser('ircdan', ['#inject']);
    const roomId = await plumbed('#inject');
    await alice.sendText(roomId, 'first\r\nPRIVMSG #inject :pwned\r\nQUIT :gone\0JOIN #secret');
    await dan.waitFor((m) => m.message.includes('QUIT :gone'));
    const fromAlice = dan.messages.filter((m) => m.nick === 'Alice[m]').map((m) => m.message);
    expect(fromAlice).toEqual(['first', 'PRIVMSG #inject :pwned', 'QUIT :goneJOIN #secret']);
    expect(dan.messages.some((m) => m.message === 'pwned')).toBe(false);
    // alice's connection is still there and still in the channel (no QUIT went through)
    await alice.sendText(roomId, 'still here');
    await dan.waitFor((m) => m.message === 'still here' && m.nick === 'Alice[m]');
  });

  it('uploads long messages and sends a preview with a working link', async () => {
    const erin = await ircUser('ircerin', ['#long']);
    const roomId = await plumbed('#long');
    const text = Array.from({ length: 8 }, (_, i) => `line ${i + 1}`).join('\n');
    await alice.sendText(roomId, text);
    const link = await erin.waitFor((m) => m.message.startsWith('(full message: '));
    const preview = erin.messages.filter((m) => m.nick === 'Alice[m]').map((m) => m.message);
    expect(preview).toEqual(['line 1', 'line 2', link.message]);
    const url = /\(full message: (\S+)\)/.exec(link.message)![1]!;
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(text);
    // a tampered link is refused
    expect((await fetch(url.replace(/\/([A-Za-z0-9_-]{22})\//, '/AAAAAAAAAAAAAAAAAAAAAA/'))).status).toBe(404);
  });

  it('splits a long line on UTF-8 boundaries within the 512-byte limit', async () => {
    const fay = await ircUser('ircfay', ['#split']);
    const roomId = await plumbed('#split');
    const long = 'ü€😀 '.repeat(120).trim();
    await alice.sendText(roomId, long);
    await until(() => fay.messages.filter((m) => m.nick === 'Alice[m]').map((m) => m.message).join(' ').length >= long.length, 'all chunks');
    const chunks = fay.messages.filter((m) => m.nick === 'Alice[m]').map((m) => m.message);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join(' ')).toBe(long);
    for (const c of chunks) expect(c).not.toContain('\uFFFD');
  });

  it('sends edits as a short correction and replies addressed to the nick', async () => {
    const gus = await ircUser('ircgus', ['#edits']);
    const roomId = await plumbed('#edits');
    const orig = await alice.sendText(roomId, 'the quick brwn fox');
    await gus.waitFor((m) => m.message === 'the quick brwn fox');
    await alice.sendText(roomId, '* the quick brown fox', {
      'm.new_content': { msgtype: 'm.text', body: 'the quick brown fox' }, 'm.relates_to': { rel_type: 'm.replace', event_id: orig },
    });
    await gus.waitFor((m) => m.message === 's/brwn/brown/');
    gus.say('#edits', 'question for you');
    const q = await alice.waitForEvent(roomId, (e) => body(e) === 'question for you');
    await alice.sendText(roomId, '> <@x> question for you\n\nthe answer', { 'm.relates_to': { 'm.in_reply_to': { event_id: q.event_id } } });
    const reply = await gus.waitFor((m) => m.message.endsWith('the answer'));
    expect(reply.message).toBe('ircgus: the answer');
    // ergo speaks IRCv3: the reply also carries the msgid of the message it answers
    expect(reply.tags['+draft/reply']).toMatch(/\S+/);
  });
});

describe('IRC bridge: users and rooms', () => {
  it('renames the ghost on a nick change instead of swapping ghosts', async () => {
    const hal = await ircUser('irchal', ['#nicks']);
    const roomId = await plumbed('#nicks');
    hal.say('#nicks', 'before');
    const before = await alice.waitForEvent(roomId, (e) => body(e) === 'before');
    hal.client.changeNick('irchal2');
    await until(async () => (await alice.displayName(ghost('irchal'))) === 'irchal2', 'the ghost display name to change');
    hal.say('#nicks', 'after');
    const after = await alice.waitForEvent(roomId, (e) => body(e) === 'after');
    expect(after.sender).toBe(before.sender);
  });

  it('mirrors IRC joins and parts as ghost membership', async () => {
    await ircUser('ircwatch', ['#members']);
    const roomId = await plumbed('#members');
    const ivy = await ircUser('ircivy', ['#members']);
    await until(async () => (await alice.joinedMembers(roomId)).includes(ghost('ircivy')), 'the ghost to join');
    ivy.client.part('#members', 'bye now');
    await until(async () => !(await alice.joinedMembers(roomId)).includes(ghost('ircivy')), 'the ghost to leave');
  });

  it('opens a portal room when a Matrix user joins the channel alias', async () => {
    const jon = await ircUser('ircjon', ['#portal']);
    const roomId = await alice.join('#irc_test_#portal:localhost');
    await alice.sendText(roomId, 'hi portal');
    const seen = await jon.waitFor((m) => m.message === 'hi portal');
    expect(seen.target).toBe('#portal');
    jon.say('#portal', 'hi back');
    await alice.waitForEvent(roomId, (e) => body(e) === 'hi back' && e.sender === ghost('ircjon'));
    // the same channel in another case resolves to the same room
    expect(await alice.join('#irc_test_#PORTAL:localhost')).toBe(roomId);
    // excluded channels have no portal
    await expect(alice.join('#irc_test_#secret:localhost')).rejects.toThrow(/404|not found/i);
  });

  it('opens a DM room for an IRC private message, and a DM invite to a ghost starts one', async () => {
    const kim = await ircUser('irckim', ['#dm']);
    const roomId = await plumbed('#dm');
    await alice.sendText(roomId, 'so you know my nick');
    await kim.waitFor((m) => m.message === 'so you know my nick');
    kim.say('Alice[m]', 'psst, private');
    kim.say('Alice[m]', 'second private line');
    // the DM room is created by kim's ghost and alice is invited: joining works only with the invite
    const dm = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === `test/pm/${alice.userId}/irckim`)?.roomId, 'the DM room');
    await alice.join(dm);
    const events = await alice.waitForTimeline(dm, (evs) => messagesOf(evs).length >= 2);
    expect(messagesOf(events).map(body)).toEqual(['psst, private', 'second private line']);
    expect(messagesOf(events)[0]!.sender).toBe(ghost('irckim'));
    await alice.sendText(dm, 'private answer');
    const pm = await kim.waitFor((m) => m.message === 'private answer');
    expect(pm.target).toBe('irckim');
    expect(bridge.portals.all().filter((p) => p.remoteChat === `test/pm/${alice.userId}/irckim`)).toHaveLength(1);

    // the other way: a Matrix user invites a ghost to a direct chat
    const lee = await ircUser('irclee', ['#dm']);
    lee.say('#dm', 'I exist');
    await alice.waitForEvent(roomId, (e) => body(e) === 'I exist');
    const started = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [ghost('irclee')] });
    await until(async () => (await alice.joinedMembers(started)).includes(ghost('irclee')), 'the ghost to accept the invite');
    await alice.sendText(started, 'hello lee, privately');
    const got = await lee.waitFor((m) => m.message === 'hello lee, privately');
    expect(got.target).toBe('irclee');
    lee.say('Alice[m]', 'hi alice, privately');
    await alice.waitForEvent(started, (e) => body(e) === 'hi alice, privately' && e.sender === ghost('irclee'));
  });

  it('syncs the channel topic to the room', async () => {
    const lou = await ircUser('irclou', ['#topic']);
    const roomId = await plumbed('#topic');
    lou.client.setTopic('#topic', 'a fresh topic');
    await until(async () => {
      try {
        const t = await alice.request<{ topic?: string }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`);
        return t.topic === 'a fresh topic';
      } catch { return false; }
    }, 'the room topic');
  });

  it('answers admin commands in the admin room', async () => {
    await ircUser('ircmo', ['#cmds']);
    const dm = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [botId] });
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).includes('admin room'));
    await alice.sendText(dm, 'whois test ircmo');
    const w = await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).startsWith('ircmo is'));
    expect(body(w)).toContain('(test user)');
    await alice.sendText(dm, 'cmd test QUIT :bye');
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e) === 'QUIT is not allowed through cmd.');
    await alice.sendText(dm, 'join test #cmdjoin');
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).startsWith('Joined #cmdjoin'));
  });
});

describe('IRC bridge: SASL', () => {
  it('stores a password encrypted and logs in with SASL PLAIN after a reconnect', async () => {
    await ircUser('ircwho', ['#sasl']);
    const roomId = await plumbed('#sasl');
    await alice.sendText(roomId, 'connect me');
    const dm = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [botId] });
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).includes('admin room'));
    const ask = async (cmd: string, expect: (b: string) => boolean): Promise<string> => {
      const since = Date.now();
      await alice.sendText(dm, cmd);
      return body(await alice.waitForEvent(dm, (e) => e.sender === botId && e.origin_server_ts >= since && expect(body(e))));
    };
    // register the nick as an account on ergo, through the user's own connection
    await ask('cmd test PRIVMSG NickServ :REGISTER s3cret-pw', (b) => b.startsWith('Sent:'));
    await sleep(1000);
    expect(await ask('storepass test s3cret-pw', (b) => b.startsWith('Password stored'))).toContain('encrypted');
    const row = bridge.database.prepare('SELECT password_enc FROM irc_users WHERE user_id = ?').get(alice.userId) as { password_enc: string };
    expect(row.password_enc).toMatch(/^v1:/);
    expect(row.password_enc).not.toContain('s3cret-pw');
    await ask('reconnect test', (b) => b.startsWith('Reconnected'));
    const who = await ask('whois test Alice[m]', (b) => b.includes('Alice[m] is'));
    expect(who).toContain('logged in as Alice[m]');
  });
});

describe('IRC bridge: IRCv3 and modes', () => {
  it('maps IRCv3 replies, reactions and redactions both ways through msgids', async () => {
    const oscar = await ircUser('ircoscar', ['#v3'], ['echo-message']); // echo: oscar learns his own msgids
    const roomId = await plumbed('#v3');
    const aliceMsg = await alice.sendText(roomId, 'a message with a msgid');
    const onIrc = await oscar.waitFor((m) => m.message === 'a message with a msgid');
    const aliceMsgid = onIrc.tags['msgid']!;
    expect(aliceMsgid).toMatch(/\S+/);

    // IRC reply → Matrix reply to alice's event
    oscar.say('#v3', 'replying on IRC', { '+draft/reply': aliceMsgid });
    const reply = await alice.waitForEvent(roomId, (e) => body(e) === 'replying on IRC');
    expect(reply.content['m.relates_to']).toEqual({ 'm.in_reply_to': { event_id: aliceMsg } });

    // IRC reaction → Matrix reaction
    oscar.client.tagmsg('#v3', { '+draft/react': '🎉', '+draft/reply': aliceMsgid });
    const reaction = await alice.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost('ircoscar'));
    expect(reaction.content['m.relates_to']).toEqual({ rel_type: 'm.annotation', event_id: aliceMsg, key: '🎉' });

    // IRC redaction → Matrix redaction of the ghost's event
    oscar.say('#v3', 'I will take this back');
    const doomed = await alice.waitForEvent(roomId, (e) => body(e) === 'I will take this back');
    const doomedId = (await oscar.waitFor((m) => m.nick === 'ircoscar' && m.message === 'I will take this back')).tags['msgid']!;
    oscar.client.raw(`REDACT #v3 ${doomedId} :oops`);
    await until(async () => Object.keys((await alice.getEvent(roomId, doomed.event_id)).content).length === 0, 'the Matrix event to be redacted');

    // Matrix reaction and redaction → IRC TAGMSG and REDACT
    oscar.say('#v3', 'react to me');
    const target = await alice.waitForEvent(roomId, (e) => body(e) === 'react to me');
    await alice.sendEvent(roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.event_id, key: '👍' } });
    await oscar.waitForRaw((l) => l.includes('TAGMSG #v3') && l.includes('+draft/react=👍'));
    // ergo lets channel operators (or logged-in authors) delete messages: oscar, the op, ops alice first
    oscar.client.raw('MODE #v3 +o Alice[m]');
    await oscar.waitForRaw((l) => l.includes('MODE #v3 +o Alice[m]'));
    await alice.redact(roomId, aliceMsg);
    await oscar.waitForRaw((l) => l.includes(`REDACT #v3 ${aliceMsgid}`));
  });

  it('turns channel modes into one power-levels change for the ghosts', async () => {
    const pat = await ircUser('ircpat', ['#modes']); // first in: channel operator
    const roomId = await plumbed('#modes');
    const quinn = await ircUser('ircquinn', ['#modes']);
    const levels = async (): Promise<Record<string, number>> =>
      (await alice.request<{ users: Record<string, number> }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`)).users;
    await until(async () => (await levels())[ghost('ircpat')] === 50, 'the op to get power level 50');
    await until(async () => (await alice.joinedMembers(roomId)).includes(ghost('ircquinn')), 'quinn to join');
    pat.client.raw('MODE #modes +v ircquinn');
    await until(async () => (await levels())[ghost('ircquinn')] === 1, 'voice to become power level 1');
    pat.client.raw('MODE #modes -v ircquinn');
    await until(async () => (await levels())[ghost('ircquinn')] === undefined, 'devoice to remove the level');
    void quinn;
  });
});

describe('IRC bridge: reconnection', () => {
  it('queues Matrix messages while ergo is down and delivers them in order after it returns', async () => {
    const roomId = await plumbed('#recon');
    await alice.sendText(roomId, 'before the outage');
    const work = process.env['TRESTLE_E2E_ERGO_WORK']!;
    const watcherFirst = await ircUser('ircnat', ['#recon']);
    await watcherFirst.waitFor((m) => m.message === 'before the outage').catch(() => undefined);
    execFileSync('bash', ['test/harness/ergo-down.sh', work, String(ircPort)], { stdio: 'ignore' });
    for (let i = 1; i <= 3; i++) await alice.sendText(roomId, `during outage ${i}`);
    await sleep(1000);
    execFileSync('bash', ['test/harness/ergo-up.sh', work, String(ircPort)], { stdio: 'ignore' });
    // the watcher may join before or after the bridge's connection is back: it reads the channel's
    // history (ergo keeps it in memory since its restart), de-duplicated by msgid
    const watcher = await ircUser('ircnat2', ['#recon'], ['draft/chathistory', 'batch', 'server-time']);
    const got = await until(() => {
      watcher.requestHistory('#recon');
      const seen = new Map<string, string>();
      for (const m of watcher.messages) {
        if (m.nick === 'Alice[m]' && m.message.startsWith('during outage')) seen.set(m.tags['msgid'] ?? m.message, m.message);
      }
      const lines = [...seen.values()];
      return lines.length >= 3 ? lines : undefined;
    }, 'the queued messages', 60_000);
    expect(got).toEqual(['during outage 1', 'during outage 2', 'during outage 3']);
  });
});
