/**
 * The IRC bridge on a server without IRCv3 message tags, echo-message or labeled-response: ngIRCd
 * (test/harness/ngircd-up.sh), whose CAP LS offers only multi-prefix, as many networks' servers
 * offer little more. Everything goes by the plain-text fallbacks: replies addressed to the nick,
 * edits as corrections, formatting as mIRC codes. Without labeled echoes a Matrix user's line counts
 * as sent when the PING written after it is answered: so a burst from two Matrix users (two
 * connections) keeps its order, and a line the server refuses (+m, no voice) is reported to the room.
 * And a K-line at registration, which ergo (exempting loopback) cannot show: a refusal for good.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { IrcUser } from '../harness/irc-user.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, startIrcBridge } from './irc-env.js';

const port = Number(process.env['TRESTLE_E2E_PLAIN_IRC_PORT'] ?? 26668);
const work = `${e2e.dir}/ngircd`;
let bridge: TrestleBridge | undefined;
let ana: MatrixUser;
let ben: MatrixUser;
/** The IRC user in #plain (its operator): set by the first test, which the second builds on. */
let pia: IrcUser;
const ircUsers = new IrcUsers(port);

const ircUser = async (nick: string, channel: string): Promise<IrcUser> => ircUsers.add(nick, [channel]);

beforeAll(async () => {
  execFileSync('bash', ['test/harness/ngircd-up.sh', work, String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  // a database of its own: the shared one links dozens of channels of the other suites to this server
  // key, and the bridge joining them all first (ngIRCd throttles JOINs) would outlast the link command
  bridge = await startIrcBridge({ port }, {}, {}, (config) => { config.database.path = `${e2e.dir}/plain.db`; });
  const stamp = Date.now();
  ana = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `plainana${stamp}`, { displayName: 'Ana' });
  ben = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `plainben${stamp}`, { displayName: 'Ben' });
});

afterAll(async () => {
  ircUsers.quitAll();
  await bridge?.stop();
  execFileSync('bash', ['test/harness/ngircd-down.sh', work, String(port)], { stdio: 'ignore' });
});

describe('IRC bridge on a server without IRCv3 tags (ngIRCd)', () => {
  it('bridges both ways with the plain-text fallbacks, keeps a two-user burst in order, and reports a refused line', async () => {
    pia = await ircUser('pia', '#plain'); // first in: the channel's operator
    const roomId = await plumbedRoom(ana, bridge!.matrix.botUserId, '#plain');
    await ana.invite(roomId, ben.userId);
    await ben.join(roomId);

    // formatting as mIRC codes; IRC → Matrix with a ghost
    await ana.sendText(roomId, 'hello *bold*', { format: 'org.matrix.custom.html', formatted_body: 'hello <b>bold</b>' });
    expect((await pia.waitFor((m) => m.target === '#plain' && m.message.startsWith('hello'))).message).toBe('hello \x02bold'); // (a code still open at the end of the line closes there)
    pia.say('#plain', 'hi from plain IRC');
    const heard = await ana.waitForEvent(roomId, (e) => body(e) === 'hi from plain IRC');
    expect(heard.sender).toBe(ghost('pia'));

    // a reply: addressed to the nick, no tags to carry; an edit: a correction
    await ana.sendText(roomId, '> <@x> hi from plain IRC\n\nwelcome', { 'm.relates_to': { 'm.in_reply_to': { event_id: heard.event_id } } });
    expect((await pia.waitFor((m) => m.message.endsWith('welcome'))).message).toBe('pia: welcome');
    const orig = await ana.sendText(roomId, 'the quick brwn fox');
    await pia.waitFor((m) => m.message === 'the quick brwn fox');
    await ana.sendText(roomId, '* the quick brown fox', {
      'm.new_content': { msgtype: 'm.text', body: 'the quick brown fox' }, 'm.relates_to': { rel_type: 'm.replace', event_id: orig },
    });
    await pia.waitFor((m) => m.message === 's/brwn/brown/');

    // a burst from two Matrix users, alternating: two connections, one order
    await ben.sendText(roomId, 'ben is here');
    await pia.waitFor((m) => m.message === 'ben is here');
    const burst = Array.from({ length: 20 }, (_, i) => `burst ${i}`);
    for (const [i, text] of burst.entries()) await (i % 2 ? ben : ana).sendText(roomId, text);
    await pia.waitFor((m) => m.message === 'burst 19');
    expect(pia.messages.filter((m) => m.message.startsWith('burst ')).map((m) => m.message)).toEqual(burst);
    expect(pia.messages.filter((m) => m.message.startsWith('burst ')).map((m) => m.nick)).toEqual(burst.map((_, i) => (i % 2 ? 'Ben[m]' : 'Ana[m]')));

    // the channel moderated (+m; the room now wants power 1 to speak, which its admin ana has): the
    // server refuses ana's line, as she has no voice on IRC, and the room is told whose and why
    pia.client.raw('MODE #plain +m');
    await pia.waitForRaw((l) => / MODE #plain \+m/.test(l));
    const since = Date.now();
    await ana.sendText(roomId, 'can anyone hear me?');
    const notice = await ana.waitForEvent(roomId, (e) => e.sender === bridge!.matrix.botUserId && e.origin_server_ts >= since && body(e).startsWith('⚠'));
    expect(body(notice)).toContain(ana.userId);
    expect(body(notice)).toMatch(/Cannot send to channel/i);
    expect(pia.messages.some((m) => m.message === 'can anyone hear me?')).toBe(false);
  });

  it('refuses for good a Matrix user the server bans at registration (a K-line): their message fails with the reason, the room goes on', async () => {
    // (ergo exempts loopback from its bans, so this is shown here)
    const roomId = bridge!.portals.all().find((p) => p.remoteChat === 'test/#plain')!.roomId;
    pia.client.raw('MODE #plain -m');
    await pia.waitForRaw((l) => / MODE #plain -m/.test(l));
    const op = await ircUser('plainop', '#plainops');
    op.client.raw('OPER admin oper-pass');
    await op.waitForRaw((l) => / 381 /.test(l));
    const carl = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `plaincarl${Date.now()}`, { displayName: 'Carl' });
    op.client.raw('KLINE *!*plaincarl*@* 3600 :spamming'); // his username is his localpart
    op.client.raw('STATS k');
    await op.waitForRaw((l) => / 216 .*plaincarl/.test(l));
    await ana.invite(roomId, carl.userId);
    await carl.join(roomId);
    const since = Date.now();
    await carl.sendText(roomId, 'let me in');
    const notice = await ana.waitForEvent(roomId, (e) => e.sender === bridge!.matrix.botUserId && e.origin_server_ts >= since && body(e).includes(carl.userId));
    expect(body(notice)).toMatch(/refuses the connection: .*spamming.*K-Line/);
    await ana.sendText(roomId, 'the room goes on');
    await pia.waitFor((m) => m.message === 'the room goes on');
    expect(pia.messages.some((m) => m.message === 'let me in')).toBe(false);
  });
});
