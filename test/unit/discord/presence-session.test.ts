/**
 * PresenceBridge across gateway sessions, with discord.js stood in for by the events it emits (the raw
 * READY and GUILD_CREATE on `client.ws`, PRESENCE_UPDATE and shardReady on the client) and core's
 * setPresence recorded. A server past discord.js's large_threshold (50 members) lists in GUILD_CREATE
 * neither in `members` nor in `presences` a member who is offline: one who went offline while the
 * bridge had no session must still go offline when a new session is ready.
 */
import { EventEmitter } from 'node:events';
import { silentLogger } from '@trestle/core';
import { Events, GatewayDispatchEvents, type Client, type GatewayGuildCreateDispatchData } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { PresenceBridge } from '../../../packages/discord/src/presence.js';

const BOT = '900';

/** A GUILD_CREATE of a large server: its members who are online (and the bot), and their presences. */
function largeGuild(id: string, online: string[]): GatewayGuildCreateDispatchData {
  return {
    id, large: true, unavailable: false, member_count: 200,
    members: [BOT, ...online].map((u) => ({ user: { id: u } })),
    presences: online.map((u) => ({ user: { id: u }, status: 'online', activities: [] })),
  } as unknown as GatewayGuildCreateDispatchData;
}

function setup() {
  const sent: string[] = [];
  const presence = new PresenceBridge({
    setPresence: async (user, p) => { sent.push(`${user} ${p}`); return true; },
    refreshSeconds: 0, log: silentLogger,
  });
  const client = Object.assign(new EventEmitter(), { ws: new EventEmitter(), user: { id: BOT } });
  presence.attach(client as unknown as Client);
  /** A new gateway session as discord.js reports it: READY, each server's GUILD_CREATE, then shardReady. */
  const session = (...guilds: GatewayGuildCreateDispatchData[]): void => {
    client.ws.emit(GatewayDispatchEvents.Ready, { guilds: guilds.map((g) => ({ id: g.id, unavailable: true })) });
    for (const g of guilds) client.ws.emit(GatewayDispatchEvents.GuildCreate, g);
    client.emit(Events.ShardReady, 0, undefined);
  };
  const presenceUpdate = (userId: string, status: string): void => {
    client.emit(Events.PresenceUpdate, null, { userId, status, activities: [] });
  };
  /** What was sent to core since the last call, once the changes asked for have gone out. */
  const drain = async (): Promise<string[]> => {
    await new Promise((r) => setTimeout(r, 10));
    return sent.splice(0);
  };
  return { presence, client, session, presenceUpdate, drain };
}

describe('PresenceBridge: who went offline while there was no gateway session', () => {
  it('sets offline, when a new session is ready, a ghost shown online that no server of it named (a large server)', async () => {
    const { session, drain } = setup();
    session(largeGuild('1', ['10', '11']));
    expect((await drain()).sort()).toEqual(['10 online', '11 online']);
    // the session is lost; 11 goes offline meanwhile (the PRESENCE_UPDATE went to no one); a new session starts
    session(largeGuild('1', ['10']));
    expect(await drain()).toEqual(['11 offline']);
  });

  it('keeps a user named by any server of the session, or by a PRESENCE_UPDATE before it is ready', async () => {
    const { client, session, presenceUpdate, drain } = setup();
    session(largeGuild('1', ['10', '11', '12']), largeGuild('2', []));
    await drain();
    // 10 is named by the second server only; 12 comes online while the servers arrive
    client.ws.emit(GatewayDispatchEvents.Ready, { guilds: [{ id: '1' }, { id: '2' }] });
    client.ws.emit(GatewayDispatchEvents.GuildCreate, largeGuild('1', []));
    presenceUpdate('12', 'idle');
    client.ws.emit(GatewayDispatchEvents.GuildCreate, largeGuild('2', ['10']));
    client.emit(Events.ShardReady, 0, undefined);
    expect((await drain()).sort()).toEqual(['11 offline', '12 unavailable']);
  });

  it('does nothing of the kind on a resumed session (no READY: Discord replays what it missed)', async () => {
    const { client, session, drain } = setup();
    session(largeGuild('1', ['10']));
    await drain();
    client.emit(Events.ShardReady, 0, undefined);
    expect(await drain()).toEqual([]);
  });

  it('sends nothing for a ghost that shows offline already', async () => {
    const { session, presenceUpdate, drain } = setup();
    session(largeGuild('1', ['10']));
    presenceUpdate('10', 'offline');
    expect(await drain()).toEqual(['10 online', '10 offline']);
    session(largeGuild('1', []));
    expect(await drain()).toEqual([]);
  });
});
