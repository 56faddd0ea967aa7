/**
 * How IRC looks from a Matrix client. Finding channels and users, as Element's "Explore rooms"
 * does: the homeserver's third-party lookups (which Synapse passes on to the bridge for the
 * protocols in its registration) and the IRC server's own room list in the directory, where portal
 * rooms are listed unless their channel is secret. And the names ghosts show (`ghostDisplayName`,
 * set for this suite's bridge).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import type { MatrixUser } from '../harness/matrix-user.js';
import { e2e, until } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, startSuite } from './irc-env.js';

let bridge: TrestleBridge;
let dora: MatrixUser;
let botId: string;
const users = new IrcUsers();

interface Protocol { location_fields: string[]; user_fields: string[]; instances: { network_id: string; instance_id?: string; desc: string; fields: Record<string, string> }[] }
const instance = (): string => `${(e2e.registration() as unknown as { id: string }).id}|test`;
interface PublicRooms { chunk: { room_id: string }[] }

/** The rooms the test server's instance lists. A search filter, which Synapse never answers from its cache. */
async function listed(user: MatrixUser, instance: string): Promise<string[]> {
  const r = await user.request<PublicRooms>('POST', '/_matrix/client/v3/publicRooms', {
    third_party_instance_id: instance, limit: 100, filter: { generic_search_term: '' },
  });
  return r.chunk.map((c) => c.room_id);
}

beforeAll(async () => {
  ({ bridge, botId, user: dora } = await startSuite('ircdora', 'Dora', { ghostDisplayName: '$NICK ($SERVER)' }));
});

afterAll(async () => {
  users.quitAll();
  await bridge?.stop();
});

describe('IRC bridge: finding channels and users from Matrix clients', () => {
  it('answers the third-party lookups: the protocol and its server, a channel as an alias to join, a nick as its ghost', async () => {
    const protocols = await dora.request<Record<string, Protocol>>('GET', '/_matrix/client/v3/thirdparty/protocols');
    const irc = protocols['irc'];
    expect(irc?.location_fields).toEqual(['domain', 'channel']);
    expect(irc?.user_fields).toEqual(['domain', 'nick']);
    const test = irc?.instances.find((i) => i.network_id === 'test');
    expect(test?.fields).toEqual({ domain: '127.0.0.1' });
    expect(test?.instance_id).toBe(instance()); // Synapse names an instance <appservice id>|<network id>

    // a channel typed in the client: the portal's alias, which opens the room when joined
    const q = (fields: Record<string, string>): string => new URLSearchParams(fields).toString();
    const locations = await dora.request<{ alias: string; protocol: string }[]>('GET', `/_matrix/client/v3/thirdparty/location/irc?${q({ domain: '127.0.0.1', channel: '#Lookup' })}`);
    expect(locations).toEqual([{ alias: '#irc_test_#lookup:localhost', protocol: 'irc', fields: { domain: '127.0.0.1', channel: '#Lookup' } }]);
    const roomId = await dora.join(locations[0]!.alias);
    const fred = await users.add('lookfred', ['#lookup']);
    fred.say('#lookup', 'found by lookup');
    await dora.waitForEvent(roomId, (e) => body(e) === 'found by lookup');
    // what the bridge would not open (the e2e config excludes #secret), another server, or nonsense: nothing
    for (const fields of [{ domain: '127.0.0.1', channel: '#secret' }, { domain: 'irc.elsewhere.example', channel: '#x' }, { domain: '127.0.0.1', channel: 'no-hash' }]) {
      expect(await dora.request('GET', `/_matrix/client/v3/thirdparty/location/irc?${q(fields)}`)).toEqual([]);
    }

    // a nick: its ghost, the same one its messages come from
    const found = await dora.request<{ userid: string }[]>('GET', `/_matrix/client/v3/thirdparty/user/irc?${q({ domain: '127.0.0.1', nick: 'LookFred' })}`);
    expect(found.map((u) => u.userid)).toEqual([ghost('lookfred')]);
    expect((await dora.timeline(roomId)).find((e) => body(e) === 'found by lookup')?.sender).toBe(ghost('lookfred'));
  });

  it('names ghosts by the ghostDisplayName template, and again after a nick change', async () => {
    const roomId = await plumbedRoom(dora, botId, '#named');
    const gina = await users.add('ginanamed', ['#named']);
    gina.say('#named', 'my name has a suffix');
    await dora.waitForEvent(roomId, (e) => body(e) === 'my name has a suffix');
    expect(await dora.displayName(ghost('ginanamed'))).toBe('ginanamed (ErgoTest)'); // the e2e server's `name`
    gina.client.changeNick('ginarenamed');
    await until(async () => (await dora.displayName(ghost('ginanamed'))) === 'ginarenamed (ErgoTest)', 'the ghost to take the new nick in the template');
  });

  it("lists portal rooms in the server's room list, not secret channels' nor plumbed rooms, and follows +s and unlinks", async () => {
    // an IRC user opens the channel first (ergo makes them its op), then Dora joins its portal
    const op = await users.add('dirop', ['#listed']);
    const roomId = await dora.join('#irc_test_#listed:localhost');
    await until(async () => (await listed(dora, instance())).includes(roomId), 'the portal to be listed');
    // the main list stays the server's own: the portal is not in it
    const main = await dora.request<PublicRooms>('POST', '/_matrix/client/v3/publicRooms', { limit: 100, filter: { generic_search_term: '' } });
    expect(main.chunk.map((c) => c.room_id)).not.toContain(roomId);

    op.client.raw('MODE #listed +s');
    await until(async () => !(await listed(dora, instance())).includes(roomId), 'the secret channel\'s portal to leave the list');
    op.client.raw('MODE #listed -s');
    await until(async () => (await listed(dora, instance())).includes(roomId), 'the portal to be listed again');

    // a channel that is secret before its portal opens is never listed; a plumbed room neither
    const hidden = await users.add('hideop', ['#hidden']);
    hidden.client.raw('MODE #hidden +s');
    await hidden.waitForRaw((l) => / MODE #hidden \+s/.test(l));
    const hiddenRoom = await dora.join('#irc_test_#hidden:localhost');
    const plumbed = await plumbedRoom(dora, botId, '#plumbedlist');
    // both rooms are bridged by now (the listener answered their modes); a message proves the hidden one is
    hidden.say('#hidden', 'hidden but bridged');
    await dora.waitForEvent(hiddenRoom, (e) => body(e) === 'hidden but bridged');
    const now = await listed(dora, instance());
    expect(now).toContain(roomId);
    expect(now).not.toContain(hiddenRoom);
    expect(now).not.toContain(plumbed);

    // unlinked (here through the provisioning API, for a bridge admin: the bot's portal room gives
    // dora no power to change its links), the portal leaves the list
    const unlink = (userId: string): Promise<Response> => fetch(`http://127.0.0.1:${bridge.address()!.port}/_trestle/provision/v1/unlink`, {
      method: 'POST', headers: { authorization: 'Bearer e2e-provisioning-secret', 'content-type': 'application/json' }, // e2e.sh's config
      body: JSON.stringify({ room_id: roomId, network: 'irc', remote_chat: 'test/#listed', user_id: userId }),
    });
    expect((await unlink(dora.userId)).status).toBe(403);
    expect((await unlink('@admin:localhost')).status).toBe(200); // e2e.sh's permissions
    await until(async () => !(await listed(dora, instance())).includes(roomId), 'the unlinked portal to leave the list');
  });
});
