/**
 * IRC away status → the Matrix presence of IRC users' ghosts (server config `presence`, off by
 * default), and Matrix users' presence → AWAY on IRC (`awayFromPresence`, off by default), on a real ergo (which offers IRCv3 away-notify) and a real Synapse (presence enabled),
 * read as a Matrix client reads it: GET /presence/{user}/status by a Matrix user sharing a room.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { MatrixUser } from '../harness/matrix-user.js';
import { sleep, until } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, startIrcBridge, startSuite } from './irc-env.js';

let bridge: TrestleBridge;
let pia: MatrixUser;
let botId: string;
const users = new IrcUsers();

beforeAll(async () => {
  ({ bridge, botId, user: pia } = await startSuite('ircpres', 'Pia'));
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
});

interface PresenceJson { presence: string; status_msg?: string; last_active_ago?: number }

/** A user's presence as pia (who shares a room with them) reads it. */
const presenceOf = (userId: string): Promise<PresenceJson> =>
  pia.request<PresenceJson>('GET', `/_matrix/client/v3/presence/${encodeURIComponent(userId)}/status`);

/** Wait until a ghost's presence and status message ("" for none) are these. */
async function presenceBecomes(userId: string, presence: string, statusMsg: string): Promise<PresenceJson> {
  let last: PresenceJson | undefined;
  return until(async () => {
    last = await presenceOf(userId);
    return last.presence === presence && (last.status_msg ?? '') === statusMsg ? last : undefined;
  }, () => `${userId}'s presence to be ${presence} "${statusMsg}" (last read: ${JSON.stringify(last)})`, 20_000);
}

/** The room plumbed to #pres by the presence-on tests. */
const presRoom = (): string => bridge.portals.all().find((p) => p.remoteChat === 'test/#pres')!.roomId;

const ghostJoined = (roomId: string, nick: string): Promise<true> =>
  until(async () => (await pia.joinedMembers(roomId)).includes(ghost(nick)) || undefined, `${nick}'s ghost to join`);

describe('IRC bridge: away status as presence', () => {
  it('with presence off (the default) sets no presence for an IRC user going away', async () => {
    const olga = await users.add('presolga', ['#presoff']);
    const roomId = await plumbedRoom(pia, botId, '#presoff');
    await ghostJoined(roomId, 'presolga');
    olga.client.raw('AWAY :not to be bridged');
    olga.say('#presoff', 'said after going away');
    await pia.waitForEvent(roomId, (e) => body(e) === 'said after going away'); // the listener has read the AWAY before this
    await sleep(1500);
    expect(await presenceOf(ghost('presolga'))).toMatchObject({ presence: 'offline' });
    expect((await presenceOf(ghost('presolga'))).status_msg ?? '').toBe('');
  });

  it('with presence on, an IRC user in a bridged channel who is not away is online', async () => {
    await bridge.stop();
    bridge = await startIrcBridge({ presence: true, presenceRefreshSeconds: 2 });
    await users.add('prespam', ['#pres']);
    const roomId = await plumbedRoom(pia, botId, '#pres');
    await ghostJoined(roomId, 'prespam');
    await presenceBecomes(ghost('prespam'), 'online', '');
  });

  it('AWAY :reason → unavailable with the reason; AWAY → online; QUIT → offline', async () => {
    const roomId = presRoom();
    const ben = await users.add('presben', ['#pres']);
    await ghostJoined(roomId, 'presben');
    ben.client.raw('AWAY :gone \x02fishing\x02');
    await presenceBecomes(ghost('presben'), 'unavailable', 'gone fishing'); // IRC formatting left out
    ben.client.raw('AWAY');
    await presenceBecomes(ghost('presben'), 'online', '');

    // a quitting ghost leaves the plumbed room; pia still shares their direct chat, so she may read their presence
    await pia.sendText(roomId, 'so you know my nick');
    await ben.waitFor((m) => m.message === 'so you know my nick');
    ben.say('Pia[m]', 'psst');
    const dm = await until(() => bridge.portals.all().find((p) => p.kind === 'dm' && p.remoteChat === `test/pm/${pia.userId}/presben`)?.roomId, 'the DM room');
    await pia.join(dm);
    await pia.waitForEvent(dm, (e) => body(e) === 'psst');
    ben.client.raw('AWAY :back soon');
    await presenceBecomes(ghost('presben'), 'unavailable', 'back soon');
    ben.quit();
    await presenceBecomes(ghost('presben'), 'offline', '');
  });

  it('someone away already in a channel when it is linked is unavailable (WHO\'s G flag, without the reason)', async () => {
    const quin = await users.add('presquin', ['#preswho']);
    quin.client.raw('AWAY :in a meeting');
    await sleep(300); // ergo has taken the AWAY before the listener joins
    const roomId = await plumbedRoom(pia, botId, '#preswho');
    await ghostJoined(roomId, 'presquin');
    await presenceBecomes(ghost('presquin'), 'unavailable', ''); // WHO says only "gone", not why
    quin.client.raw('AWAY :still in the meeting');
    await presenceBecomes(ghost('presquin'), 'unavailable', 'still in the meeting');
  });

  it('someone away joining a bridged channel is unavailable with their reason (the AWAY ergo sends after the JOIN)', async () => {
    const rex = await users.add('presrex');
    rex.client.raw('AWAY :lunch');
    await sleep(300);
    await rex.join('#pres');
    await ghostJoined(presRoom(), 'presrex');
    await presenceBecomes(ghost('presrex'), 'unavailable', 'lunch');
  });

  it('says an online ghost\'s presence again before Synapse times it out', async () => {
    const sam = await users.add('pressam', ['#pres']);
    await ghostJoined(presRoom(), 'pressam');
    await presenceBecomes(ghost('pressam'), 'online', '');
    await sleep(6000);
    const p = await presenceOf(ghost('pressam'));
    expect(p.presence).toBe('online');
    expect(p.last_active_ago).toBeLessThan(5000); // repeated every 2 s; without repeats it would be past 6000
    sam.quit();
  });

  it('the other way (awayFromPresence): a Matrix user who turns unavailable is AWAY on IRC with their status message, and back when online', async () => {
    await bridge.stop();
    bridge = await startIrcBridge({ awayFromPresence: true });
    const watcher = await users.add('preswatch', ['#pres']);
    await pia.sendText(presRoom(), 'pia is here'); // opens her IRC connection (presence alone never does)
    await watcher.waitFor((m) => m.message === 'pia is here');
    /** What WHOIS says of pia's nick: her away message (301), or undefined when she is not away. */
    const awayOfPia = async (): Promise<string | undefined> => {
      const from = watcher.raw.length;
      watcher.client.raw('WHOIS Pia[m]');
      await until(() => watcher.raw.slice(from).some((l) => / 318 /.test(l)), 'the WHOIS to end');
      const away = watcher.raw.slice(from).find((l) => / 301 /.test(l));
      return away === undefined ? undefined : away.slice(away.indexOf(' :', away.indexOf(' 301 ')) + 2).trimEnd();
    };
    expect(await awayOfPia()).toBeUndefined();
    const setPresence = (presence: string, status_msg?: string): Promise<unknown> =>
      pia.request('PUT', `/_matrix/client/v3/presence/${encodeURIComponent(pia.userId)}/status`, { presence, ...(status_msg ? { status_msg } : {}) });
    await setPresence('unavailable', 'gone fishing');
    await until(async () => (await awayOfPia()) === 'gone fishing' || undefined, 'pia to be away on IRC');
    await setPresence('online');
    await until(async () => (await awayOfPia()) === undefined || undefined, 'pia to be back on IRC');
    watcher.quit();
  });
});
