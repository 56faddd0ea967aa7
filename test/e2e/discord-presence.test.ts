/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Presence (config `presence`, off by default): a Discord member's status and custom status become their
 * ghost's Matrix presence, as a Matrix client reads it (GET /presence/{user}/status).
 * Shared set-up: discord-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import { GatewayCloseCodes, GatewayIntentBits as I, type APIUser } from 'discord-api-types/v10';
import { fake, alice, guild, body, ghost, channel, plumbed, bridge, startBridge, discordNet, useDiscordBridge } from './discord-harness.js';
import { sleep, until } from './env.js';

useDiscordBridge();

interface PresenceJson { presence: string; status_msg?: string; last_active_ago?: number }

/** The presence of a user as alice (a Matrix client sharing a room with them) reads it. */
const presenceOf = (userId: string): Promise<PresenceJson> =>
  alice.request<PresenceJson>('GET', `/_matrix/client/v3/presence/${encodeURIComponent(userId)}/status`);

/** Wait until a ghost's presence (and status message, "" for none) is what Discord said. */
const presenceBecomes = (userId: string, presence: string, statusMsg: string): Promise<PresenceJson> =>
  until(async () => { const p = await presenceOf(userId); return p.presence === presence && (p.status_msg ?? '') === statusMsg ? p : undefined; },
    `${userId}'s presence to be ${presence} "${statusMsg}"`, 15_000);

/** The HTTP status of GET /profile/{user}: 404 for a user that does not exist. */
const profileStatus = async (userId: string): Promise<number> =>
  (await fetch(`${alice.baseUrl}/_matrix/client/v3/profile/${encodeURIComponent(userId)}`,
    { headers: { authorization: `Bearer ${alice.accessToken}` } })).status;

function member(username: string): APIUser {
  const u = fake.addUser({ username });
  fake.addMember(guild.id, u.id);
  return u;
}

describe('Discord bridge: presence', () => {
  let talker: APIUser;
  let silent: APIUser;

  it('with presence off (the default) asks for no Presence intent and sets no presence', async () => {
    const ch = channel('presence');
    const roomId = await plumbed(ch);
    talker = member('talker');
    silent = member('silent'); // never speaks: the bridge makes no ghost for them
    fake.injectUserMessage(ch.id, talker.id, 'hello from talker');
    await alice.waitForEvent(roomId, (e) => body(e) === 'hello from talker');
    expect(discordNet().client!.options.intents.has(I.GuildPresences)).toBe(false);
    fake.setPresence(guild.id, talker.id, { status: 'online', customStatus: 'around' });
    await sleep(1500);
    expect((await presenceOf(ghost(talker.id))).presence).toBe('offline');
  });

  it('with presence on, maps online/idle/dnd/offline and the custom status onto the ghost; only ghosts that exist, only changes', async () => {
    await bridge.stop();
    await startBridge({ presence: true, presenceRefreshSeconds: 0 }); // no repeats here: the last test checks those
    expect(discordNet().client!.options.intents.has(I.GuildPresences)).toBe(true);
    const g = ghost(talker.id);

    fake.setPresence(guild.id, silent.id, { status: 'online', customStatus: 'no ghost' });
    fake.setPresence(guild.id, talker.id, { status: 'online' });
    await presenceBecomes(g, 'online', '');

    fake.setPresence(guild.id, talker.id, { status: 'idle' });
    await presenceBecomes(g, 'unavailable', '');
    fake.setPresence(guild.id, talker.id, { status: 'dnd' });
    await presenceBecomes(g, 'unavailable', 'Do not disturb');
    fake.setPresence(guild.id, talker.id, { status: 'dnd', customStatus: 'deep work' });
    await presenceBecomes(g, 'unavailable', 'deep work');
    fake.setPresence(guild.id, talker.id, { status: 'online', customStatus: 'lunch', customEmoji: { name: '🍕' } });
    const online = await presenceBecomes(g, 'online', '🍕 lunch');

    // a game starting changes nothing Matrix shows: nothing is sent (Synapse would reset last_active_ago)
    await sleep(2500);
    fake.setPresence(guild.id, talker.id, {
      status: 'online', customStatus: 'lunch', customEmoji: { name: '🍕' },
      activities: [{ id: 'game', name: 'Chess', type: 0, created_at: Date.now() }],
    });
    await sleep(1500);
    const after = await presenceOf(g);
    expect(after.status_msg).toBe('🍕 lunch');
    expect(after.last_active_ago).toBeGreaterThanOrEqual((online.last_active_ago ?? 0) + 3500);

    fake.setPresence(guild.id, talker.id, { status: 'offline' });
    await presenceBecomes(g, 'offline', '');

    // the member who never spoke has no ghost, and Discord's status for them made none
    expect(await profileStatus(ghost(silent.id))).toBe(404);
  });

  it('says an online ghost\'s presence again before Synapse times it out', async () => {
    await bridge.stop();
    await startBridge({ presence: true, presenceRefreshSeconds: 2 });
    const g = ghost(talker.id);
    fake.setPresence(guild.id, talker.id, { status: 'online', customStatus: 'still here' });
    await presenceBecomes(g, 'online', 'still here');
    await sleep(6000);
    const p = await presenceOf(g);
    expect(p.presence).toBe('online');
    expect(p.last_active_ago).toBeLessThan(3000); // repeated every 2 s; without repeats it would be past 6000
  });

  it('shows the presence of members already online when the bridge connects (GUILD_CREATE), with no PRESENCE_UPDATE', async () => {
    await bridge.stop();
    const g = ghost(talker.id);
    // said while no bridge is connected: the next session learns it only from GUILD_CREATE's presences
    fake.setPresence(guild.id, talker.id, { status: 'idle', customStatus: 'back at 3', customEmoji: { name: '☕' } });
    fake.setPresence(guild.id, silent.id, { status: 'online' });
    await startBridge({ presence: true, presenceRefreshSeconds: 2 });
    await presenceBecomes(g, 'unavailable', '☕ back at 3');

    await bridge.stop();
    fake.setPresence(guild.id, talker.id, { status: 'online', customStatus: 'back' });
    await startBridge({ presence: true, presenceRefreshSeconds: 2 });
    await presenceBecomes(g, 'online', 'back');
    // kept up by the repeats like any other presence
    await sleep(6000);
    const p = await presenceOf(g);
    expect([p.presence, p.status_msg]).toEqual(['online', 'back']);
    expect(p.last_active_ago).toBeLessThan(3000);
    expect(await profileStatus(ghost(silent.id))).toBe(404); // the member who never spoke still has no ghost
  });

  it('turns offline a ghost whose member went offline while the gateway session was lost (absent from GUILD_CREATE)', async () => {
    const g = ghost(talker.id);
    await presenceBecomes(g, 'online', 'back'); // left so by the test before, and repeated every 2 s
    const { identifies, resumes } = fake.gatewayStats;
    // 4007 makes discord.js start a new session (no RESUME, so nothing missed is replayed); the
    // PRESENCE_UPDATE below goes to the old, dead session only
    await fake.disconnectGateway(GatewayCloseCodes.InvalidSeq);
    fake.setPresence(guild.id, talker.id, { status: 'offline' });
    await presenceBecomes(g, 'offline', '');
    expect(fake.gatewayStats.identifies).toBe(identifies + 1);
    expect(fake.gatewayStats.resumes).toBe(resumes);
  });
});
