/**
 * The IRC bridge against a real ergo and a real Synapse: the bridge runs in this process; IRC
 * people are irc-framework clients on ergo, Matrix people are real Synapse users.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcNetwork, IrcServer } from '@trestle/irc';
import type { IrcUser } from '../harness/irc-user.js';
import { MatrixUser, messagesOf } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { adminRoom, body, ghost, ircPort, IrcUsers, plumbedRoom, startIrcBridge as startBridge, startSuite, untag } from './irc-env.js';

let bridge: TrestleBridge;
let alice: MatrixUser;
let botId: string;
const users = new IrcUsers();
const ircUser = (nick: string, channels: string[] = [], caps: string[] = []): Promise<IrcUser> => users.add(nick, channels, caps);
const plumbed = (channel: string): Promise<string> => plumbedRoom(alice, botId, channel);

const ircNet = (): IrcNetwork => bridge.networks.get('irc') as IrcNetwork;
const ircServer = (): IrcServer => ircNet().servers.get('test')!;
const roomState = <T>(roomId: string, type: string): Promise<T> =>
  alice.request<T>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${type}/`);

beforeAll(async () => {
  ({ bridge, botId, user: alice } = await startSuite('ircalice'));
});

afterAll(async () => {
  users.quitAll();
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

  it('keeps messages to a channel\'s ops (@#chan) out of the room, and answers a flood of CTCP VERSION once', async () => {
    const op = await ircUser('ircstatop', ['#opsonly']); // first in: an operator
    const roomId = await plumbed('#opsonly');
    const botNick = ircServer().listener.nick;
    // the bridge's own connection opped, as a channel mirroring kicks from Matrix has it
    op.client.raw(`MODE #opsonly +o ${botNick}`);
    await op.waitForRaw((l) => l.includes(`MODE #opsonly +o ${botNick}`));
    op.client.raw('NOTICE @#opsonly :ops only: ban that spammer?');
    op.client.raw('PRIVMSG @#opsonly :also for ops only');
    for (let i = 0; i < 5; i++) op.client.raw(`PRIVMSG ${botNick} :\x01VERSION\x01`); // a flood would get it killed for flooding
    op.say('#opsonly', 'for everyone');
    await alice.waitForEvent(roomId, (e) => body(e) === 'for everyone');
    expect((await alice.timeline(roomId)).filter((e) => /ops only/.test(body(e)))).toEqual([]);
    // CTCP answers are one a second: a PING a little later is answered after anything said to the VERSIONs
    await sleep(1200);
    op.client.raw(`PRIVMSG ${botNick} :\x01PING 4242\x01`);
    await op.waitForRaw((l) => l.includes(`NOTICE ircstatop :\x01PING 4242\x01`));
    expect(op.raw.filter((l) => l.includes('\x01VERSION'))).toHaveLength(1);
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

  it('sends Matrix media as a working link with name and size (and its caption), and pills as the IRC nick', async () => {
    const wen = await ircUser('ircwen', ['#media']);
    const roomId = await plumbed('#media');
    const data = Buffer.from('hello, this is a text file\n');
    const up = await fetch(`${e2e.synapseUrl}/_matrix/media/v3/upload?filename=notes.txt`, {
      method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': 'text/plain' }, body: data,
    });
    const mxc = ((await up.json()) as { content_uri: string }).content_uri;
    await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.file', body: 'notes.txt', url: mxc, info: { mimetype: 'text/plain', size: data.length } });
    const line = await wen.waitFor((m) => m.message.startsWith('notes.txt'));
    expect(line.message).toMatch(/^notes\.txt \(27 B\) http:\/\/\S+$/);
    const res = await fetch(line.message.split(' ').pop()!);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    // with a caption (MSC2530: a body besides the file name): the link, then the caption
    await alice.sendEvent(roomId, 'm.room.message', {
      msgtype: 'm.file', body: 'my **notes**, as promised', format: 'org.matrix.custom.html', formatted_body: 'my <b>notes</b>, as promised',
      filename: 'notes.txt', url: mxc, info: { mimetype: 'text/plain', size: data.length },
    });
    await wen.waitFor((m) => m.message === 'my \x02notes\x02, as promised');
    const captioned = wen.messages.filter((m) => m.target === '#media').slice(-2).map((m) => m.message);
    expect(captioned[0]).toMatch(/^notes\.txt \(27 B\) http:\/\/\S+$/);
    // a pill to the IRC user's ghost becomes their nick
    wen.say('#media', 'I am here');
    await alice.waitForEvent(roomId, (e) => body(e) === 'I am here');
    // (the pill's text is not the nick: the nick comes from the ghost)
    await alice.sendText(roomId, 'Wen the Great: thanks', { format: 'org.matrix.custom.html', formatted_body: `<a href="https://matrix.to/#/${ghost('ircwen')}">Wen the Great</a>: thanks` });
    await wen.waitFor((m) => m.message === 'ircwen: thanks' && m.nick.startsWith('Alice[m]'));
  });

  it('says a Matrix poll (question, answers, end) and a location as text; votes and key verification requests are not bridged', async () => {
    const pia = await ircUser('ircpia', ['#polls']);
    const roomId = await plumbed('#polls');
    // as Element sends them (MSC3381 and MSC3488, unstable names)
    const pollId = await alice.sendEvent(roomId, 'org.matrix.msc3381.poll.start', {
      'org.matrix.msc3381.poll.start': {
        kind: 'org.matrix.msc3381.poll.disclosed', max_selections: 1,
        question: { 'org.matrix.msc1767.text': 'Lunch?', body: 'Lunch?', msgtype: 'm.text' },
        answers: [{ id: 'p', 'org.matrix.msc1767.text': 'Pizza' }, { id: 's', 'org.matrix.msc1767.text': 'Sushi' }],
      },
      'org.matrix.msc1767.text': 'Lunch?\n1. Pizza\n2. Sushi',
    });
    const poll = await pia.waitFor((m) => m.message.startsWith('Poll:'));
    expect(poll).toMatchObject({ nick: 'Alice[m]', target: '#polls', message: 'Poll: Lunch? 1. Pizza · 2. Sushi' });
    const ref = { 'm.relates_to': { rel_type: 'm.reference', event_id: pollId } };
    await alice.sendEvent(roomId, 'org.matrix.msc3381.poll.response', { ...ref, 'org.matrix.msc3381.poll.response': { answers: ['p'] } });
    await alice.sendEvent(roomId, 'org.matrix.msc3381.poll.end', { ...ref, 'org.matrix.msc3381.poll.end': {}, 'org.matrix.msc1767.text': 'The poll has ended. Top answer: Pizza' });
    // nor is a key verification request (its body speaks to Matrix clients only)
    await alice.sendEvent(roomId, 'm.room.message', {
      msgtype: 'm.key.verification.request', body: 'Alice is requesting to verify your key, but your client does not support in-chat key verification.',
      to: ghost('ircpia'), from_device: 'DEVICE', methods: ['m.sas.v1'],
    });
    await alice.sendEvent(roomId, 'm.room.message', {
      msgtype: 'm.location', body: 'Location geo:51.5008,0.1247;u=35 at 28/11/2026', geo_uri: 'geo:51.5008,0.1247;u=35',
      'org.matrix.msc3488.location': { uri: 'geo:51.5008,0.1247;u=35', description: 'Big Ben' },
    });
    await pia.waitFor((m) => m.message.startsWith('Location:'));
    // in order, and nothing for the vote
    expect(pia.messages.filter((m) => m.target === '#polls').map((m) => m.message)).toEqual([
      'Poll: Lunch? 1. Pizza · 2. Sushi',
      'The poll has ended. Top answer: Pizza',
      'Location: Big Ben https://www.openstreetmap.org/?mlat=51.5008&mlon=0.1247#map=16/51.5008/0.1247',
    ]);
    // the poll's line is mapped like any message: an IRC reply to it is a Matrix reply to the poll
    pia.say('#polls', 'pizza, obviously', { '+draft/reply': poll.tags['msgid']! });
    const reply = await alice.waitForEvent(roomId, (e) => body(e) === 'pizza, obviously');
    expect(reply.content['m.relates_to']).toEqual({ 'm.in_reply_to': { event_id: pollId } });
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

  it('sends a whole correction with every line and pills as nicks, and corrects a notice with a notice', async () => {
    const edna = await ircUser('ircedna', ['#edits2']);
    const roomId = await plumbed('#edits2');
    const orig = await alice.sendText(roomId, 'first draft');
    await edna.waitFor((m) => m.message === 'first draft');
    await alice.sendText(roomId, '* line one…', {
      'm.new_content': {
        msgtype: 'm.text', body: 'line one\nline two for Edna', format: 'org.matrix.custom.html',
        formatted_body: `line <b>one</b><br>line two for <a href="https://matrix.to/#/${ghost('ircedna')}">Edna</a>`,
      },
      'm.relates_to': { rel_type: 'm.replace', event_id: orig },
    });
    await edna.waitFor((m) => m.message === 'line two for ircedna');
    expect(edna.messages.filter((m) => m.nick === 'Alice[m]').map((m) => m.message)).toEqual(['first draft', '* line \x02one', 'line two for ircedna']);
    // a bot's notice corrected: IRC bots never answer a notice, so the correction is one too
    const status = await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.notice', body: 'build is running' });
    await edna.waitFor((m) => m.type === 'notice' && m.message === 'build is running');
    await alice.sendEvent(roomId, 'm.room.message', {
      msgtype: 'm.notice', body: '* build is green', 'm.new_content': { msgtype: 'm.notice', body: 'build is green' }, 'm.relates_to': { rel_type: 'm.replace', event_id: status },
    });
    const fix = await edna.waitFor((m) => m.message === 's/running/green/');
    expect(fix.type).toBe('notice');
  });

  it('quotes an old message in a reply, but not once someone has joined the channel after it', async () => {
    const rex = await ircUser('ircrex', ['#quote']);
    const roomId = await plumbed('#quote');
    const replyTo = (eventId: string): Record<string, unknown> => ({ 'm.relates_to': { 'm.in_reply_to': { event_id: eventId } } });
    const fromAlice = async (text: string): Promise<string> => (await rex.waitFor((m) => m.nick === 'Alice[m]' && m.message.endsWith(text))).message;
    await alice.sendText(roomId, 'alice is in'); // her connection joins before the message she will answer
    await rex.waitFor((m) => m.message === 'alice is in');
    rex.say('#quote', 'shall we meet at noon on the old bridge by the river?');
    const original = await alice.waitForEvent(roomId, (e) => body(e).startsWith('shall we meet'));
    for (let i = 1; i <= 10; i++) rex.say('#quote', `chatter ${i}`);
    const last = await alice.waitForEvent(roomId, (e) => body(e) === 'chatter 10');
    // the line just said: addressed to the nick
    await alice.sendText(roomId, 'ha', replyTo(last.event_id));
    expect(await fromAlice('ha')).toBe('ircrex: ha');
    // ten lines ago: quoted, so the channel knows which message is meant
    await alice.sendText(roomId, 'yes, noon it is', replyTo(original.event_id));
    expect(await fromAlice('yes, noon it is')).toBe('<ircrex> "shall we meet at noon on the old bridge…" <- yes, noon it is');
    // someone joins: they were not there to read it, so it is not repeated to them
    await ircUser('ircsly', ['#quote']);
    await until(async () => (await alice.joinedMembers(roomId)).includes(ghost('ircsly')), 'the newcomer to join');
    await alice.sendText(roomId, 'noon still', replyTo(original.event_id));
    expect(await fromAlice('noon still')).toBe('ircrex: noon still');
  });

  it("answers CTCP VERSION, PING and TIME sent to a Matrix user's nick (and to the bridge's own)", async () => {
    const val = await ircUser('ircval', ['#ctcp']);
    const roomId = await plumbed('#ctcp');
    await alice.sendText(roomId, 'ask me');
    await val.waitFor((m) => m.message === 'ask me');
    val.say('Alice[m]', '\x01VERSION\x01');
    await val.waitForRaw((l) => /^:Alice\[m\]!\S+ NOTICE ircval :\x01VERSION Trestle IRC bridge\x01$/.test(untag(l)));
    val.say('trestlebot', '\x01VERSION\x01');
    await val.waitForRaw((l) => /^:trestlebot!\S+ NOTICE ircval :\x01VERSION Trestle IRC bridge\x01$/.test(untag(l)));
    // PING comes back with its token (how IRC users measure lag), TIME with the time; one reply a second per connection
    for (const to of ['Alice[m]', 'trestlebot']) {
      await sleep(1100);
      val.say(to, '\x01PING 1764300000 123\x01');
      await val.waitForRaw((l) => untag(l).startsWith(`:${to}!`) && untag(l).endsWith(' NOTICE ircval :\x01PING 1764300000 123\x01'));
      await sleep(1100);
      val.say(to, '\x01TIME\x01');
      await val.waitForRaw((l) => untag(l).startsWith(`:${to}!`) && / NOTICE ircval :\x01TIME \w{3}, \d{2} \w{3} \d{4} [\d:]{8} GMT\x01$/.test(untag(l)));
    }
    // a CTCP request is not a message: nothing reaches the Matrix user
    await sleep(500);
    expect(bridge.portals.all().some((p) => p.remoteChat === `test/pm/${alice.userId}/ircval`)).toBe(false);
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
    // the server's aliasTemplate (#ergo_$CHANNEL) names the same portal, and opens new ones
    expect(await alice.join('#ergo_#portal:localhost')).toBe(roomId);
    expect(await alice.join('#ergo_#templated:localhost')).toBe(bridge.portals.forChat('irc', 'test/#templated')[0]?.roomId);
    // a new channel asked for in three spellings at once: one room, which each of them finds
    const all = await Promise.all(['#irc_test_#Trio', '#irc_test_#trio', '#irc_test_#TRIO'].map((a) => alice.join(`${a}:localhost`)));
    expect(new Set(all).size).toBe(1);
    expect(all[0]).toBe(bridge.portals.forChat('irc', 'test/#trio')[0]?.roomId);
  });

  it('follows a channel renamed on IRC (draft/channel-rename): the portal and a plumbed room go on in the new channel', async () => {
    const ren = await ircUser('ircren', ['#renold']); // the channel's first member: its op, who may RENAME it
    const portalId = await alice.join('#irc_test_#renold:localhost');
    const plumbedId = await plumbed('#renold');
    const before = await alice.sendText(portalId, 'before the rename');
    const beforeMsgid = (await ren.waitFor((m) => m.message === 'before the rename')).tags['msgid']!;
    ren.client.raw('RENAME #renold #rennew :a better name');
    const told = await alice.waitForEvent(plumbedId, (e) => e.sender === botId && body(e).includes('#rennew'));
    expect(body(told)).toBe('ℹ #renold was renamed to #rennew on IRC (a better name): this room now follows #rennew.');
    await alice.waitForEvent(portalId, (e) => e.sender === botId && body(e).includes('now follows #rennew'));
    expect(bridge.portals.forChat('irc', 'test/#rennew').map((p) => p.roomId).sort()).toEqual([portalId, plumbedId].sort());
    expect(bridge.portals.forChat('irc', 'test/#renold')).toEqual([]);
    // the portal room takes the channel's new name; the plumbed one keeps its own
    await until(async () => (await roomState<{ name?: string }>(portalId, 'm.room.name')).name === '#rennew', 'the portal to be renamed');
    // both ways, in the new channel: Alice's connection was moved by the server, not joined again
    ren.say('#rennew', 'after the rename');
    await alice.waitForEvent(plumbedId, (e) => body(e) === 'after the rename' && e.sender === ghost('ircren'));
    await alice.waitForEvent(portalId, (e) => body(e) === 'after the rename');
    await alice.sendText(plumbedId, 'from matrix after the rename');
    expect(await ren.waitFor((m) => m.message === 'from matrix after the rename')).toMatchObject({ nick: 'Alice[m]', target: '#rennew' });
    expect(ren.raw.some((l) => / JOIN #rennew/i.test(l) && l.includes('Alice[m]'))).toBe(false);
    // what was said before the rename is still found: an IRC reply to it is a Matrix reply
    ren.say('#rennew', 'replying to a line from before', { '+draft/reply': beforeMsgid });
    const reply = await alice.waitForEvent(portalId, (e) => body(e) === 'replying to a line from before');
    expect(reply.content['m.relates_to']).toEqual({ 'm.in_reply_to': { event_id: before } });
    // the new channel's alias finds the same portal room
    expect(await alice.join('#irc_test_#rennew:localhost')).toBe(portalId);
    // who is in the channel moved too: a QUIT there still takes the ghost out of the rooms
    ren.client.quit('bye');
    await until(async () => (await alice.request<{ joined: Record<string, unknown> }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(plumbedId)}/joined_members`)).joined[ghost('ircren')] === undefined, 'the ghost to leave');
  });

  it('opens a DM room for an IRC private message (a DCC offer told, not dropped), and a DM invite to a ghost starts one', async () => {
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

    // a DCC offer cannot cross: alice is told in the DM room, and kim on IRC
    kim.client.raw('PRIVMSG Alice[m] :\x01DCC SEND notes.txt 2130706433 5000 1536\x01');
    const dcc = await alice.waitForEvent(dm, (e) => body(e).includes('DCC'));
    expect(dcc).toMatchObject({ sender: ghost('irckim'), content: { msgtype: 'm.notice' } });
    expect(body(dcc)).toBe('(offered the file notes.txt (1.5 KiB) by DCC, which the bridge cannot receive: ask for a link instead)');
    const answer = await kim.waitForRaw((l) => / NOTICE irckim :DCC does not cross/.test(l));
    expect(untag(answer)).toMatch(/^:Alice\[m\]!/);

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

    // lee changes nick: the same ghost, the same private room, and replies reach the new nick
    lee.client.changeNick('ircleenew');
    await until(() => lee.client.user.nick === 'ircleenew', 'the new nick');
    lee.say('Alice[m]', 'still me, renamed');
    await alice.waitForEvent(started, (e) => body(e) === 'still me, renamed' && e.sender === ghost('irclee'));
    await alice.sendText(started, 'hello again, renamed lee');
    expect((await lee.waitFor((m) => m.message === 'hello again, renamed lee')).target).toBe('ircleenew');
    expect(bridge.portals.all().filter((p) => p.kind === 'dm' && p.remoteChat.startsWith(`test/pm/${alice.userId}/`) && p.remoteChat.includes('irclee'))).toHaveLength(1);
  });

  it('starts private chats only in a direct chat of the inviter\'s own', async () => {
    const ned = await ircUser('ircned', ['#dmonly']);
    const channelRoom = await plumbed('#dmonly');
    ned.say('#dmonly', 'I exist too');
    await alice.waitForEvent(channelRoom, (e) => body(e) === 'I exist too');
    await alice.sendText(channelRoom, 'and so do I');
    await ned.waitFor((m) => m.message === 'and so do I');
    const eve = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `irceve${Date.now()}`, { displayName: 'Eve' });
    const leftWith = async (roomId: string): Promise<string> => {
      const left = await alice.waitForEvent(roomId, (e) => e.type === 'm.room.member' && e.state_key === ghost('ircned') && e.content['membership'] === 'leave');
      return String(left.content['reason'] ?? '');
    };
    // a group room (no is_direct): ned's private messages to Alice would be read by all there
    const group = await alice.createRoom({ preset: 'private_chat', invite: [ghost('ircned'), eve.userId] });
    expect(await leftWith(group)).toMatch(/direct chat of your own/);
    // marked direct, but someone else is invited too
    const crowded = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [ghost('ircned'), eve.userId] });
    expect(await leftWith(crowded)).toMatch(/other people/);
    // the bot asked to make such a room an admin room says why not, and answers no commands there
    const notAdmin = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [botId, eve.userId] });
    await alice.waitForEvent(notAdmin, (e) => e.sender === botId && /cannot be your admin room/.test(body(e)));
    // nothing was linked meanwhile: what ned says privately opens a direct chat of its own
    const nedChat = `test/pm/${alice.userId}/ircned`;
    expect(bridge.portals.all().filter((p) => p.remoteChat === nedChat)).toEqual([]);
    ned.say('Alice[m]', 'just for alice');
    const dm = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === nedChat)?.roomId, 'the DM room');
    expect([group, crowded, notAdmin]).not.toContain(dm);
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
    const mo = await ircUser('ircmo', ['#cmds']);
    const dm = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [botId] });
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).includes('admin room'));
    await alice.sendText(dm, 'whois test ircmo');
    const w = await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).startsWith('ircmo is'));
    expect(body(w)).toContain('(test user)');
    await alice.sendText(dm, 'cmd test QUIT :bye');
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).startsWith('QUIT is not allowed through cmd'));
    // a verb hidden behind tags, and a second line smuggled into the bridge's own connection by whois
    await alice.sendText(dm, 'cmd test @x=y QUIT :bye');
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).startsWith('cmd sends no tags'));
    await alice.sendText(dm, 'whois test "ircmo\nPRIVMSG ircmo :smuggled"');
    await alice.waitForEvent(dm, (e) => e.sender === botId && /holds a space or a control character/.test(body(e)));
    await alice.sendText(dm, 'cmd test PRIVMSG ircmo :a fair line');
    await mo.waitFor((m) => m.message === 'a fair line');
    expect(mo.messages.some((m) => m.message === 'smuggled')).toBe(false);
    await alice.sendText(dm, 'join test #cmdjoin');
    await alice.waitForEvent(dm, (e) => e.sender === botId && body(e).startsWith('Joined #cmdjoin'));
  });
});

describe('IRC bridge: SASL', () => {
  it('stores a password encrypted and logs in with SASL PLAIN after a reconnect', async () => {
    await ircUser('ircwho', ['#sasl']);
    const roomId = await plumbed('#sasl');
    await alice.sendText(roomId, 'connect me');
    const { ask, roomId: admin } = await adminRoom(alice, botId);
    // register the nick as an account on ergo, through the user's own connection
    await ask('cmd test PRIVMSG NickServ :REGISTER s3cret-pw', (b) => b.startsWith('Sent:'));
    await sleep(1000);
    const stored = await ask('storepass test s3cret-pw', (b) => b.startsWith('Password stored'));
    expect(stored).toContain('encrypted');
    // the password does not stay in the room, and the user is told it is gone
    expect(stored).toContain('Your message was removed from the room');
    const timeline = await alice.timeline(admin);
    expect(timeline.some((e) => e.type === 'm.room.redaction' && e.sender === botId)).toBe(true);
    expect(timeline.some((e) => body(e).startsWith('storepass'))).toBe(false);
    // a storepass without the server does not repeat any of the password
    expect(await ask('storepass hunter2 more words', (b) => b.startsWith('The first word'))).not.toContain('hunter2');
    const row = bridge.database.prepare('SELECT password_enc FROM irc_users WHERE user_id = ?').get(alice.userId) as { password_enc: string };
    expect(row.password_enc).toMatch(/^v1:/);
    expect(row.password_enc).not.toContain('s3cret-pw');
    await ask('reconnect test', (b) => b.startsWith('Reconnected'));
    const who = await ask('whois test Alice[m]', (b) => b.includes('Alice[m] is'));
    expect(who).toContain('logged in as Alice[m]');
    // ergo ties a logged-in user's nick to the account: the refusal comes back in words
    expect(await ask('nick AliceOther', (b) => b.startsWith('Nick not changed'))).toBe('Nick not changed: You must use your account name as your nickname.');
  });

  it('tells the user when the server refuses their stored password, once', async () => {
    const pam = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircpam${Date.now()}`, { displayName: 'Pam' });
    const { ask, roomId: admin } = await adminRoom(pam, botId);
    await ask('join test #saslbad', (b) => b.startsWith('Joined #saslbad'));
    await ask('cmd test PRIVMSG NickServ :REGISTER the-right-pw', (b) => b.startsWith('Sent:'));
    await sleep(1000);
    await ask('storepass test a-wrong-pw', (b) => b.startsWith('Password stored'));
    const since = Date.now();
    await ask('reconnect test', (b) => b.startsWith('Reconnected'));
    const told = await pam.waitForEvent(admin, (e) => e.sender === botId && e.origin_server_ts >= since && body(e).includes('refused the login'));
    expect(body(told)).toMatch(/storepass test <password>/);
    await ask('reconnect test', (b) => b.startsWith('Reconnected') && Date.now() - since > 0);
    await sleep(1000);
    expect((await pam.timeline(admin)).filter((e) => body(e).includes('refused the login'))).toHaveLength(1);
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
    // taken back on IRC (a REDACT of its TAGMSG, whose msgid oscar's echo gives): the Matrix reaction goes too
    const echoed = await oscar.waitForRaw((l) => l.includes('TAGMSG #v3') && l.includes('+draft/react=🎉') && l.includes('msgid='));
    oscar.client.raw(`REDACT #v3 ${/(?:^@|;)msgid=([^; ]+)/.exec(echoed)![1]!}`);
    await until(async () => Object.keys((await alice.getEvent(roomId, reaction.event_id)).content).length === 0, 'the Matrix reaction to be redacted');

    // IRC redaction → Matrix redaction of the ghost's event
    oscar.say('#v3', 'I will take this back');
    const doomed = await alice.waitForEvent(roomId, (e) => body(e) === 'I will take this back');
    const doomedId = (await oscar.waitFor((m) => m.nick === 'ircoscar' && m.message === 'I will take this back')).tags['msgid']!;
    oscar.client.raw(`REDACT #v3 ${doomedId} :oops`);
    await until(async () => Object.keys((await alice.getEvent(roomId, doomed.event_id)).content).length === 0, 'the Matrix event to be redacted');

    // Matrix reaction and redaction → IRC TAGMSG and REDACT
    oscar.say('#v3', 'react to me');
    const target = await alice.waitForEvent(roomId, (e) => body(e) === 'react to me');
    const reactionId = await alice.sendEvent(roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.event_id, key: '👍' } });
    const tagmsg = await oscar.waitForRaw((l) => l.includes('TAGMSG #v3') && l.includes('+draft/react=👍'));
    // ergo lets channel operators (or logged-in authors) delete messages: oscar, the op, ops alice first
    oscar.client.raw('MODE #v3 +o Alice[m]');
    await oscar.waitForRaw((l) => l.includes('MODE #v3 +o Alice[m]'));
    await alice.redact(roomId, aliceMsg);
    await oscar.waitForRaw((l) => l.includes(`REDACT #v3 ${aliceMsgid}`));
    // taking the reaction back redacts its TAGMSG (IRCv3 message-redaction's way to remove a reaction)
    const reactionMsgid = /(?:^@|;)msgid=([^; ]+)/.exec(tagmsg)![1]!;
    await alice.redact(roomId, reactionId);
    await oscar.waitForRaw((l) => l.includes(`REDACT #v3 ${reactionMsgid}`));
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

describe('IRC bridge: channel modes → room settings', () => {
  it('raises the send level when a channel becomes moderated, and tells a Matrix user IRC refused', async () => {
    const rita = await ircUser('ircrita', ['#hush']); // first in: operator
    const roomId = await plumbed('#hush');
    await alice.sendText(roomId, 'before the hush');
    await rita.waitFor((m) => m.message === 'before the hush');
    rita.client.raw('MODE #hush +m');
    await until(async () => (await roomState<{ events_default?: number }>(roomId, 'm.room.power_levels')).events_default === 1, '+m to raise the send level');
    // alice has no voice: ergo refuses her line (404), and she is told instead of it vanishing
    const refused = await alice.sendText(roomId, 'can anyone hear me');
    const warn = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).includes(refused));
    expect(body(warn)).toMatch(/could not be delivered to IRC: .*Cannot send to channel/);
  });

  it('turns +m, +i and +k into room settings, batched with ranks, and back when they are removed', async () => {
    {
      const sal = await ircUser('ircsal', ['#rules']); // first in: operator
      const ted = await ircUser('ircted', ['#rules']);
      const roomId = await plumbed('#rules');
      type Pl = { users: Record<string, number>; events_default?: number };
      await until(async () => (await roomState<Pl>(roomId, 'm.room.power_levels')).users[ghost('ircsal')] === 50, 'the op to get power level 50');
      await until(async () => (await alice.joinedMembers(roomId)).includes(ghost('ircted')), 'ted to join');
      const plEvents = async (): Promise<number> => (await alice.timeline(roomId)).filter((e) => e.type === 'm.room.power_levels').length;
      const plBefore = await plEvents();

      // one MODE line with a flag and a rank: one change of the room, one power-levels event
      sal.client.raw('MODE #rules +mv ircted');
      await until(async () => { const pl = await roomState<Pl>(roomId, 'm.room.power_levels'); return pl.events_default === 1 && pl.users[ghost('ircted')] === 1; }, '+mv in the power levels');
      expect(await plEvents()).toBe(plBefore + 1);

      const joinRule = async (): Promise<string> => (await roomState<{ join_rule: string }>(roomId, 'm.room.join_rules')).join_rule;
      expect(await joinRule()).toBe('public');
      sal.client.raw('MODE #rules +i');
      await until(async () => (await joinRule()) === 'invite', '+i to make the room invite-only');
      sal.client.raw('MODE #rules +k sekrit');
      sal.client.raw('MODE #rules -i');
      await sal.waitForRaw((l) => l.includes('MODE #rules -i'));
      await sleep(500);
      expect(await joinRule()).toBe('invite'); // the key still keeps people out
      sal.client.raw('MODE #rules -k sekrit');
      await until(async () => (await joinRule()) === 'public', 'the room to open again when neither +i nor +k is left');
      sal.client.raw('MODE #rules -m');
      await until(async () => (await roomState<Pl>(roomId, 'm.room.power_levels')).events_default === 0, '-m to put the send level back');
      void ted;
    }
  });
});

describe('IRC bridge: quits', () => {
  it('removes the ghost at once on an ordinary QUIT (only split-looking quits are held)', async () => {
    await ircUser('ircstay', ['#quits']);
    const roomId = await plumbed('#quits');
    const una = await ircUser('ircuna', ['#quits']);
    await until(async () => (await alice.joinedMembers(roomId)).includes(ghost('ircuna')), 'the ghost to join');
    const t0 = Date.now();
    una.quit();
    await until(async () => !(await alice.joinedMembers(roomId)).includes(ghost('ircuna')), 'the ghost to leave');
    expect(Date.now() - t0).toBeLessThan(20_000); // a held quit would take the 60 s netsplit window
  });

  it('holds back quits that come too fast to be people leaving (a split), and drops them when the nicks return', async () => {
    // ergo cannot link servers and words every client's quit "Quit: ...", so neither a split-shaped
    // reason nor a BATCH netsplit can be produced here: this proves the quit-rate rule (15 quits
    // within 3 s), with real clients quitting at once, and the return of held nicks.
    await ircUser('ircsplitwatch', ['#split']);
    const roomId = await plumbed('#split');
    const nicks = Array.from({ length: 16 }, (_, i) => `ircsp${i}`);
    const crowd = await Promise.all(nicks.map((n) => ircUser(n, ['#split'])));
    await until(async () => { const m = await alice.joinedMembers(roomId); return nicks.every((n) => m.includes(ghost(n))); }, 'the crowd to join', 60_000);
    await sleep(3_500); // no other quit (the test before's) inside the 3 s the rule looks at
    const since = Date.now();
    for (const u of crowd) u.quit();
    // the first 14 leave as usual; from the 15th on, the quits look like a split and are held
    const stayed = await until(async () => {
      const m = await alice.joinedMembers(roomId);
      const left = nicks.filter((n) => !m.includes(ghost(n)));
      return left.length === 14 ? nicks.filter((n) => m.includes(ghost(n))) : undefined;
    }, 'the first 14 quits to be bridged');
    await sleep(2000);
    expect(nicks.filter((n) => (ircServer().events.knowsNick(n)))).toEqual([]); // all really quit IRC
    expect((await alice.joinedMembers(roomId)).filter((m) => stayed.map(ghost).includes(m))).toHaveLength(2);
    expect(ircServer().events.heldQuits).toBe(2);
    // they come back: the held quits are dropped, and their ghosts never left the room
    await Promise.all(stayed.map((n) => ircUser(n, ['#split'])));
    await until(() => ircServer().events.heldQuits === 0, 'the held quits to be dropped');
    await sleep(1000);
    const members = await alice.joinedMembers(roomId);
    for (const n of stayed) expect(members).toContain(ghost(n));
    const memberEvents = (await alice.timeline(roomId)).filter((e) => e.type === 'm.room.member' && e.origin_server_ts >= since);
    expect(memberEvents.filter((e) => stayed.map(ghost).includes(String(e.state_key)))).toEqual([]);
  });
});

describe('IRC bridge: commands in a bridged room', () => {
  it('takes the server from the room, and answers refusals (nick in use, banned) with a reply', async () => {
    const vera = await ircUser('ircvera', ['#nickroom', '#banned']); // op of #banned
    const roomId = await plumbed('#nickroom');
    const dora = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircdora${Date.now()}`, { displayName: 'Dora' });
    await dora.join(roomId);
    await dora.sendText(roomId, 'hello from my first nick');
    expect((await vera.waitFor((m) => m.message === 'hello from my first nick')).nick).toBe('Dora[m]');
    const ask = async (cmd: string, match: (b: string) => boolean): Promise<string> => {
      const since = Date.now();
      await dora.sendText(roomId, cmd);
      return body(await dora.waitForEvent(roomId, (e) => e.sender === botId && e.origin_server_ts >= since && match(body(e))));
    };
    expect(await ask('!irc nick DoraNew', (b) => b.includes('nick'))).toBe('Your nick on ErgoTest is now DoraNew.');
    await vera.waitForRaw((l) => /^:Dora\[m\]!\S+ NICK :?DoraNew$/.test(untag(l)));
    expect(await ask('!irc nick ircvera', (b) => b.startsWith('Nick not changed'))).toBe('Nick not changed: ircvera is already in use.');
    vera.client.raw('MODE #banned +b DoraNew!*@*');
    await vera.waitForRaw((l) => /MODE #banned \+b :?DoraNew!\*@\*$/i.test(untag(l))); // ergo case-folds the mask
    expect(await ask('!irc join #banned', (b) => b.includes('#banned'))).toBe('Cannot join #banned: you are banned from the channel.');
    expect(await ask('!irc listrooms', (b) => b.startsWith('You are in'))).toBe('You are in: #nickroom');
    // the command line never reached the channel
    expect(vera.messages.filter((m) => m.message.startsWith('!irc'))).toEqual([]);
  });
});

describe('IRC bridge: IRCv3 typing, multiline and labeled replies', () => {
  it('keeps the msgid of a private message to an away user (answered in a labeled-response batch)', async () => {
    const zoe = await ircUser('irczoe', ['#away']);
    const roomId = await plumbed('#away');
    zoe.say('#away', 'I exist too');
    await alice.waitForEvent(roomId, (e) => body(e) === 'I exist too');
    zoe.client.raw('AWAY :gone fishing');
    await zoe.waitForRaw((l) => / 306 /.test(l));
    const dm = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [ghost('irczoe')] });
    await until(async () => (await alice.joinedMembers(dm)).includes(ghost('irczoe')), 'the ghost to accept the invite');
    const eventId = await alice.sendText(dm, 'are you there?');
    const got = await zoe.waitFor((m) => m.message === 'are you there?');
    expect(got.tags['msgid']).toMatch(/\S+/);
    // well within the 10 s an unanswered label waits: the echo inside the batch settled it
    await until(() => bridge.messages.forEvent(eventId).length > 0, 'the message map', 5_000);
    expect(bridge.messages.forEvent(eventId).map((m) => m.remoteId)).toEqual([got.tags['msgid']]);
  });

  it('shows a Matrix user typing as +typing=active, then done', async () => {
    const wes = await ircUser('ircwes', ['#typing'], ['message-tags']);
    const roomId = await plumbed('#typing');
    await alice.sendText(roomId, 'about to type');
    await wes.waitFor((m) => m.message === 'about to type');
    const typing = (on: boolean): Promise<unknown> => alice.request('PUT',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(alice.userId)}`, on ? { typing: true, timeout: 20_000 } : { typing: false });
    await typing(true);
    await wes.waitForRaw((l) => /\+typing=active/.test(l) && /^:Alice\[m\]!\S+ TAGMSG #typing$/.test(untag(l)));
    await typing(false);
    await wes.waitForRaw((l) => /\+typing=done/.test(l) && /^:Alice\[m\]!\S+ TAGMSG #typing$/.test(untag(l)));
  });

  it('sends a message of several lines as one draft/multiline batch, which plain clients get as lines', async () => {
    const xia = await ircUser('ircxia', ['#multi'], ['batch', 'draft/multiline', 'message-tags']);
    const yul = await ircUser('ircyul', ['#multi']);
    const roomId = await plumbed('#multi');
    const eventId = await alice.sendText(roomId, 'first line\nsecond line\nthird line');
    await yul.waitFor((m) => m.message === 'third line');
    expect(yul.messages.filter((m) => m.nick === 'Alice[m]').map((m) => m.message)).toEqual(['first line', 'second line', 'third line']);

    const open = await xia.waitForRaw((l) => /^:Alice\[m\]!\S+ BATCH \+\S+ draft\/multiline :?#multi$/.test(untag(l)));
    const ref = /BATCH \+(\S+)/.exec(open)![1]!;
    await xia.waitForRaw((l) => new RegExp(`BATCH :?-${ref}$`).test(untag(l)));
    const fromAlice = xia.raw.filter((l) => /^:Alice\[m\]!\S+ PRIVMSG #multi /.test(untag(l)));
    expect(fromAlice).toHaveLength(3);
    expect(fromAlice.every((l) => l.includes(`batch=${ref}`))).toBe(true); // no line outside the batch
    expect(fromAlice.map((l) => untag(l).replace(/^.*? PRIVMSG #multi :/, ''))).toEqual(['first line', 'second line', 'third line']);
    // one message on IRC, one msgid in the message map (edits, replies and redactions find it)
    const msgid = /(?:^@|;)msgid=([^; ]+)/.exec(open)![1]!;
    await until(() => bridge.messages.forEvent(eventId).length > 0, 'the message map');
    expect(bridge.messages.forEvent(eventId).map((m) => m.remoteId)).toEqual([msgid]);
  });

  it('turns a draft/multiline batch from IRC into one Matrix message, continued lines joined', async () => {
    const ada = await ircUser('ircada', ['#mline'], ['batch', 'draft/multiline', 'message-tags', 'echo-message']);
    const roomId = await plumbed('#mline');
    for (const line of [
      'BATCH +ml1 draft/multiline #mline',
      '@batch=ml1 PRIVMSG #mline :first line',
      '@batch=ml1 PRIVMSG #mline :second line, ',
      '@batch=ml1;draft/multiline-concat PRIVMSG #mline :continued',
      '@batch=ml1 PRIVMSG #mline :third line',
      'BATCH -ml1',
    ]) ada.client.raw(line);
    const ev = await alice.waitForEvent(roomId, (e) => e.sender === ghost('ircada') && body(e).startsWith('first line'));
    expect(body(ev)).toBe('first line\nsecond line, continued\nthird line');
    // one event, not one per line
    await sleep(500);
    expect((await alice.timeline(roomId)).filter((e) => e.sender === ghost('ircada') && e.type === 'm.room.message')).toHaveLength(1);
    // the batch's msgid (on its opening line, as ada's echo shows) maps to the event: replies and reactions find it
    const echo = await ada.waitForRaw((l) => /^:ircada!\S+ BATCH \+\S+ draft\/multiline :?#mline$/.test(untag(l)));
    const msgid = /(?:^@|;)msgid=([^; ]+)/.exec(echo)![1]!;
    await until(() => bridge.messages.forEvent(ev.event_id).length > 0, 'the message map');
    expect(bridge.messages.forEvent(ev.event_id).map((m) => m.remoteId)).toEqual([msgid]);
  });

  it('turns a draft/multiline private message into one Matrix message in the DM room', async () => {
    const bea = await ircUser('ircbea', ['#mlpm'], ['batch', 'draft/multiline', 'message-tags', 'echo-message']);
    const roomId = await plumbed('#mlpm');
    await alice.sendText(roomId, 'my connection is open');
    await bea.waitFor((m) => m.message === 'my connection is open'); // Alice[m] is on IRC now
    for (const line of [
      'BATCH +pm1 draft/multiline Alice[m]',
      '@batch=pm1 PRIVMSG Alice[m] :a private first line',
      '@batch=pm1 PRIVMSG Alice[m] :and a long one, ',
      '@batch=pm1;draft/multiline-concat PRIVMSG Alice[m] :continued',
      '@batch=pm1 PRIVMSG Alice[m] :last',
      'BATCH -pm1',
    ]) bea.client.raw(line);
    const dm = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === `test/pm/${alice.userId}/ircbea`)?.roomId, 'the DM room');
    await alice.join(dm);
    const events = await alice.waitForTimeline(dm, (evs) => messagesOf(evs).length >= 1);
    await sleep(500);
    const all = messagesOf(await alice.timeline(dm)).filter((e) => e.sender === ghost('ircbea'));
    expect(all.map(body)).toEqual(['a private first line\nand a long one, continued\nlast']);
    expect(messagesOf(events)[0]!.event_id).toBe(all[0]!.event_id);
    // the batch's msgid (on its opening line, as bea's echo shows) maps to the event
    const echo = await bea.waitForRaw((l) => /^:ircbea!\S+ BATCH \+\S+ draft\/multiline :?Alice\[m\]$/.test(untag(l)));
    const msgid = /(?:^@|;)msgid=([^; ]+)/.exec(echo)![1]!;
    await until(() => bridge.messages.forEvent(all[0]!.event_id).length > 0, 'the message map');
    expect(bridge.messages.forEvent(all[0]!.event_id).map((m) => m.remoteId)).toEqual([msgid]);
  });
});

describe('IRC bridge: metrics', () => {
  it("shows Matrix users' connections by state, the listener, and reconnects on core's /metrics", async () => {
    const scrape = async (): Promise<string> => (await fetch(`${e2e.registration().url}/metrics`)).text();
    const value = (text: string, name: string, labels: string): number => {
      const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : NaN;
    };
    const connectedNow = (): number => [...ircServer().clients.values()].filter((c) => c.state === 'connected').length;
    const ops = await ircUser('ircopsy', ['#metrics']);
    const roomId = await plumbed('#metrics');
    await alice.sendText(roomId, 'count me');
    await ops.waitFor((m) => m.message === 'count me');
    const connected = connectedNow();
    expect(connected).toBeGreaterThanOrEqual(1);
    const text = await scrape();
    expect(value(text, 'trestle_irc_clients', 'server="test",state="connected"')).toBe(connected);
    expect(value(text, 'trestle_irc_listener_connected', 'server="test"')).toBe(1);
    const before = value(text, 'trestle_irc_reconnects_total', 'server="test"');
    expect(before).toBeGreaterThanOrEqual(0);
    // an IRC operator kills alice's connection: the loss is counted, and she comes back
    ops.client.raw('OPER admin oper-pass');
    await ops.waitForRaw((l) => / 381 /.test(l));
    ops.client.raw('KILL Alice[m] :metrics test');
    await until(async () => value(await scrape(), 'trestle_irc_reconnects_total', 'server="test"') === before + 1, 'the reconnect to be counted');
    await until(() => ircServer().clients.get(alice.userId)?.state === 'connected', 'alice to reconnect');
    expect(value(await scrape(), 'trestle_irc_clients', 'server="test",state="connected"')).toBe(connectedNow());
  });
});

describe('IRC bridge: reconnection', () => {
  type LeanConnection = ReturnType<IrcServer['clientFor']>;
  /** A plumbed room for `channel`, an IRC watcher in it, and alice's connection, seen working. */
  async function aliceConnectedIn(channel: string, watcherNick: string): Promise<{ roomId: string; watch: IrcUser; conn: LeanConnection }> {
    const roomId = await plumbed(channel);
    const watch = await ircUser(watcherNick, [channel]);
    await alice.sendText(roomId, 'connected');
    await watch.waitFor((m) => m.message === 'connected');
    return { roomId, watch, conn: ircServer().clients.get(alice.userId)! };
  }
  const backUp = (conn: LeanConnection): Promise<boolean> => until(() => conn.state === 'connected', () => `alice's connection to come back (now ${conn.state})`);

  it('queues Matrix messages while ergo is down and delivers them in order after it returns', async () => {
    const roomId = await plumbed('#recon');
    const watcherFirst = await ircUser('ircnat', ['#recon']);
    await alice.sendText(roomId, 'before the outage');
    const work = process.env['TRESTLE_E2E_ERGO_WORK']!;
    await watcherFirst.waitFor((m) => m.message === 'before the outage');
    execFileSync('bash', ['test/harness/ergo-down.sh', work, String(ircPort)], { stdio: 'ignore' });
    for (let i = 1; i <= 3; i++) await alice.sendText(roomId, `during outage ${i}`);
    await sleep(1000);
    execFileSync('bash', ['test/harness/ergo-up.sh', work, String(ircPort)], { stdio: 'ignore' });
    // the watcher may join before or after the bridge's connection is back: it reads the channel's
    // history (ergo keeps it in memory since its restart), de-duplicated by msgid
    const watcher = await ircUser('ircnat2', ['#recon'], ['draft/chathistory', 'batch', 'server-time']);
    let lines: string[] = [];
    const got = await until(() => {
      watcher.requestHistory('#recon');
      const seen = new Map<string, string>();
      // (by text: after the restart ergo may hand alice's connection another nick than Alice[m])
      for (const m of watcher.messages) {
        if (m.message.startsWith('during outage')) seen.set(m.tags['msgid'] ?? m.message, m.message);
      }
      lines = [...seen.values()];
      return lines.length >= 3 ? lines : undefined;
    }, () => {
      const c = ircServer().clients.get(alice.userId);
      return `the queued messages (seen: ${JSON.stringify(lines)}; alice's connection now: ${c?.state} as ${c?.nick}, in #recon: ${c?.isIn('#recon')})`;
    }, 60_000);
    expect(got).toEqual(['during outage 1', 'during outage 2', 'during outage 3']);
  });

  it('fails a line written after ergo went but before the connection noticed, instead of calling it sent', async () => {
    // The flake of the test above: a Matrix message came in before alice's connection had read the
    // end of its socket (a resting connection reads only when it writes), so its line went to a dead
    // socket, and the loss of the connection settled it as sent. Made certain here: execFileSync
    // blocks this process, the bridge's too, so nothing has been read when the line is written.
    const { conn } = await aliceConnectedIn('#recon2', 'ircnat3');
    const work = process.env['TRESTLE_E2E_ERGO_WORK']!;
    execFileSync('bash', ['test/harness/ergo-down.sh', work, String(ircPort)], { stdio: 'ignore' });
    expect(conn.state).toBe('connected'); // it does not know yet
    const outcome = await conn.send('PRIVMSG', '#recon2', 'written to a dead socket')
      .then((id) => ({ sent: id }), (err: Error & { unreachable?: boolean }) => ({ failed: err.message, unreachable: err.unreachable === true }));
    execFileSync('bash', ['test/harness/ergo-up.sh', work, String(ircPort)], { stdio: 'ignore' });
    // an outage: core waits it out without spending the message's attempts
    expect(outcome).toEqual({ failed: 'the IRC connection was lost before the server confirmed the message', unreachable: true });
    await backUp(conn);
  });

  it('sends a message again when the server froze with it unanswered, instead of counting it as sent', async () => {
    // ergo stopped (SIGSTOP), not gone: the kernel still takes what alice's connection writes and
    // nothing closes, so only the missing echo tells. After timeouts.answerMs the connection PINGs;
    // with no PONG for as long again it is dropped, the line fails as lost, and core's queue sends
    // the message again once the connection is back (after SIGCONT).
    const { roomId, watch, conn } = await aliceConnectedIn('#frozen', 'ircnat4');
    // ergo reads the frozen line from its buffer once thawed, so the message arriving proves nothing alone:
    // the failed attempt counted is what shows the line was taken for lost and sent again
    const failedAttempts = async (): Promise<number> =>
      (await bridge.metrics.sendFailures.get()).values.find((v) => v.labels.network === 'remote' && v.labels.final === 'false')?.value ?? 0;
    const failedBefore = await failedAttempts();
    const pid = Number(readFileSync(`${process.env['TRESTLE_E2E_ERGO_WORK']!}/ergo.pid`, 'utf8'));
    process.kill(pid, 'SIGSTOP');
    try {
      await alice.sendText(roomId, 'during the freeze');
      const answerMs = ircServer().cfg.timeouts.answerMs;
      await until(() => conn.state !== 'connected', () => `alice's connection to be taken for dead (now ${conn.state})`, answerMs * 2 + 15_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await until(() => watch.messages.some((m) => m.message === 'during the freeze'), 'the message sent again after the freeze', 60_000);
    expect(await failedAttempts()).toBeGreaterThan(failedBefore);
    await backUp(conn);
  });
});

describe('IRC bridge: connection limits and static config (the bridge restarted with overrides)', () => {
  let mapped: string;
  let bea: MatrixUser;
  let cal: MatrixUser;
  const quitsOf = (u: IrcUser, nick: string): string[] => u.raw.map(untag).filter((l) => l.startsWith(`:${nick}!`) && / QUIT /.test(l));

  beforeAll(async () => {
    bea = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `ircbea${Date.now()}`, { displayName: 'Bea' });
    cal = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `irccal${Date.now()}`, { displayName: 'Cal' });
    mapped = await alice.createRoom({ name: 'statically mapped' });
    await alice.invite(mapped, botId);
    await until(async () => (await alice.joinedMembers(mapped)).includes(botId), 'the bot to join the mapped room');
    await bridge.stop();
    bridge = await startBridge({
      maxClients: 2, idleTimeoutMinutes: 5,
      dynamicChannels: { whitelist: ['#allowed'], exclude: ['#secret'] },
      mappings: { '#Mapped': [mapped] },
    });
  });

  it('links the rooms of the static mappings at start, both ways', async () => {
    const zed = await ircUser('irczed', ['#mapped']);
    await until(() => ircServer().listener.isIn('#mapped'), 'the listener to join the mapped channel');
    zed.say('#mapped', 'hello mapped room');
    const ev = await alice.waitForEvent(mapped, (e) => body(e) === 'hello mapped room');
    expect(ev.sender).toBe(ghost('irczed'));
    await alice.sendText(mapped, 'hello mapped channel');
    expect((await zed.waitFor((m) => m.message === 'hello mapped channel')).nick).toBe('Alice[m]');
    expect(bridge.portals.forChat('irc', 'test/#mapped')).toEqual([expect.objectContaining({ roomId: mapped, kind: 'plumbed' })]);
  });

  it('keeps a static mapping on its channel after the channel is renamed on IRC, across a restart', async () => {
    const options = { maxClients: 2, idleTimeoutMinutes: 5, dynamicChannels: { whitelist: ['#allowed'], exclude: ['#secret'] } };
    const ren = await ircUser('ircmapren', ['#mapren']); // the channel's first member: its op, who may RENAME it
    const room = await alice.createRoom({ name: 'statically mapped, then renamed' });
    await alice.invite(room, botId);
    await until(async () => (await alice.joinedMembers(room)).includes(botId), 'the bot to join');
    const mappings = { '#Mapped': [mapped], '#MapRen': [room] };
    await bridge.stop();
    bridge = await startBridge({ ...options, mappings });
    await until(() => ircServer().listener.isIn('#mapren'), 'the listener to join the mapped channel');
    ren.client.raw('RENAME #mapren #maprenamed :renamed under a static mapping');
    await alice.waitForEvent(room, (e) => e.sender === botId && body(e).includes('now follows #maprenamed'));
    // the config still says #MapRen: after a restart the room stays with the channel, under its new name
    await bridge.stop();
    bridge = await startBridge({ ...options, mappings });
    expect(bridge.portals.forChat('irc', 'test/#mapren')).toEqual([]);
    expect(bridge.portals.forChat('irc', 'test/#maprenamed')).toEqual([expect.objectContaining({ roomId: room, kind: 'plumbed' })]);
    await until(() => ircServer().listener.isIn('#maprenamed'), 'the listener to join the channel by its new name');
    expect(ircServer().listener.isIn('#mapren')).toBe(false);
    await alice.sendText(room, 'still linked after the restart');
    expect(await ren.waitFor((m) => m.message === 'still linked after the restart')).toMatchObject({ target: '#maprenamed' });
    ren.say('#maprenamed', 'and back');
    await alice.waitForEvent(room, (e) => body(e) === 'and back' && e.sender === ghost('ircmapren'));
  });

  it('opens only whitelisted channels on demand, and never excluded ones', async () => {
    await ircUser('ircallow', ['#allowed']);
    const portal = await alice.join('#irc_test_#allowed:localhost');
    expect(bridge.portals.forRoom(portal)).toEqual([expect.objectContaining({ remoteChat: 'test/#allowed', kind: 'portal' })]);
    await expect(alice.join('#irc_test_#unlisted:localhost')).rejects.toThrow(/404|not found/i);
    await expect(alice.join('#irc_test_#secret:localhost')).rejects.toThrow(/404|not found/i);
    // the join command follows the same rules; an excluded channel cannot even be linked by hand
    const since = Date.now();
    await alice.sendText(mapped, '!irc join #unlisted');
    await alice.waitForEvent(mapped, (e) => e.sender === botId && e.origin_server_ts >= since && body(e) === 'Cannot join: #unlisted is not in the whitelist.');
    const room = await alice.createRoom({ name: 'try to link a secret' });
    await alice.invite(room, botId);
    await until(async () => (await alice.joinedMembers(room)).includes(botId), 'the bot to join');
    await alice.sendText(room, '!trestle link irc test/#secret');
    await alice.waitForEvent(room, (e) => e.sender === botId && body(e).includes('#secret is excluded from bridging'));
    expect(bridge.portals.forRoom(room)).toEqual([]);
  });

  it('closes idle connections, except those in plumbed rooms', async () => {
    const watch = await ircUser('ircidle', ['#allowed', '#mapped']);
    const portal = await alice.join('#irc_test_#allowed:localhost');
    await bea.join(portal);
    await bea.sendText(portal, 'bea in a portal room');
    await watch.waitFor((m) => m.message === 'bea in a portal room' && m.nick === 'Bea[m]');
    await alice.sendText(mapped, 'alice in a plumbed room');
    await watch.waitFor((m) => m.message === 'alice in a plumbed room');
    // the sweep runs every minute; here it is run with a clock six minutes ahead (idleTimeoutMinutes is 5)
    expect(ircServer().closeIdle(Date.now() + 6 * 60_000)).toEqual([bea.userId]);
    await watch.waitForRaw((l) => untag(l).startsWith(':Bea[m]!') && l.includes(' QUIT ') && l.includes('Idle'));
    expect([...ircServer().clients.keys()]).toEqual([alice.userId]); // alice is in a plumbed room's channel
    // bea comes back by talking
    await bea.sendText(portal, 'bea is back');
    await watch.waitFor((m) => m.message === 'bea is back' && m.nick === 'Bea[m]');
    // idleInPlumbedRooms (off by default) lets the sweep close those in plumbed rooms' channels too
    const cfg = ircServer().cfg as { idleInPlumbedRooms: boolean };
    cfg.idleInPlumbedRooms = true;
    try {
      expect(new Set(ircServer().closeIdle(Date.now() + 6 * 60_000))).toEqual(new Set([alice.userId, bea.userId]));
    } finally {
      cfg.idleInPlumbedRooms = false;
    }
    await watch.waitForRaw((l) => untag(l).startsWith(':Alice[m]!') && l.includes(' QUIT ') && l.includes('Idle'));
    await bea.sendText(portal, 'bea is back again');
    await watch.waitFor((m) => m.message === 'bea is back again' && m.nick === 'Bea[m]');
    await alice.sendText(mapped, 'alice is back');
    await watch.waitFor((m) => m.message === 'alice is back' && m.nick === 'Alice[m]');
  });

  it('closes the least recently active connection past maxClients', async () => {
    const watch = await ircUser('ircpool', ['#mapped', '#allowed']);
    // open: alice and bea (both back in the test before); alice talks last, so the least recently active is bea
    expect(new Set(ircServer().clients.keys())).toEqual(new Set([alice.userId, bea.userId]));
    await alice.sendText(mapped, 'alice speaks');
    await watch.waitFor((m) => m.message === 'alice speaks');
    await cal.join(mapped); // joining a bridged room connects cal: one connection too many
    await watch.waitForRaw((l) => untag(l).startsWith(':Bea[m]!') && l.includes(' QUIT '));
    await cal.sendText(mapped, 'cal speaks');
    expect((await watch.waitFor((m) => m.message === 'cal speaks')).nick).toBe('Cal[m]');
    expect(quitsOf(watch, 'Alice[m]')).toEqual([]);
    expect(new Set(ircServer().clients.keys())).toEqual(new Set([alice.userId, cal.userId]));
    // the bridge's listener saw those QUITs of Bea[m] too, and knew them for its own: no ghost of her nick
    await until(() => !ircServer().isOwnNick('Bea[m]'), 'the bridge to see the QUIT of the connection it closed');
    const ghostsOf = (nick: string): unknown[] => bridge.database.prepare('SELECT user_id FROM ghosts WHERE network = ? AND remote_user LIKE ?').all('irc', `%${nick}`);
    expect(ghostsOf('bea_m_')).toEqual([]); // [m] or {m}, as folded
    expect(ghostsOf('ircpool')).toHaveLength(1); // what the check would find for an IRC user
    // bea is told, in an admin room the bot opens for her, why she left and how to come back
    const adminOf = (userId: string): string | undefined => (bridge.database.prepare('SELECT room_id FROM admin_rooms WHERE user_id = ?').get(userId) as { room_id: string } | undefined)?.room_id;
    await until(() => adminOf(bea.userId) !== undefined, 'an admin room for bea');
    await bea.join(adminOf(bea.userId)!);
    const told = await bea.waitForEvent(adminOf(bea.userId)!, (e) => e.sender === botId && body(e).includes('closed to make room'));
    expect(body(told)).toMatch(/at most 2 IRC connections.*you are not in #allowed on IRC.*your next message or command connects you again/);
    expect(adminOf(alice.userId) === undefined || !(await alice.timeline(adminOf(alice.userId)!)).some((e) => body(e).includes('closed to make room'))).toBe(true);
  });
});
