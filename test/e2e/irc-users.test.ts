/**
 * Matrix users as themselves on a real ergo: nicks from the display name, fixed to IRC's rules,
 * truncated to the server's NICKLEN and de-collided; and linking IRC channels through the
 * provisioning HTTP API. Plain irc-framework clients watch what ergo really shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, sleep } from './env.js';
import { body, IrcUsers, plumbedRoom, startSuite } from './irc-env.js';

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

/** A new Matrix user with `displayName`, joined to the (public) room. */
async function member(roomId: string, localpart: string, displayName: string): Promise<MatrixUser> {
  const u = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `${localpart}${Date.now()}`, { displayName });
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

  it('gives a Matrix user whose nick a plain IRC user holds another nick, and it still speaks', async () => {
    const holder = await users.add('Held[m]', ['#held']);
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
