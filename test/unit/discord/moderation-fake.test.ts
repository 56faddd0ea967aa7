/**
 * The admins' kick, ban and unban commands with an unmodified discord.js client logged in to the fake
 * Discord (test/harness/fake-discord, on 127.0.0.1): what reaches the server, what the admin is told,
 * and a Matrix ban that reaches nothing there. Core is stood in for by the few fields the network reads.
 */
import { once } from 'node:events';
import { silentLogger, type CommandInvocation, type NetworkContext } from '@trestle/core';
import { Client, Events, GatewayIntentBits as I, PermissionFlagsBits as P } from 'discord.js';
import type { APIGuild, APIUser } from 'discord-api-types/v10';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { DiscordNetwork } from '../../../packages/discord/src/network.js';
import type { DiscordStore } from '../../../packages/discord/src/store.js';
import { FakeDiscord, type GuildChannel } from '../../harness/fake-discord/server.js';

describe('the admins\' moderation commands against the fake Discord', () => {
  let fake: FakeDiscord;
  let client: Client;
  let net: DiscordNetwork;
  let guild: APIGuild;
  let restricted: APIGuild;
  let troll: APIUser;
  let victim: APIUser;
  let general: GuildChannel;
  const portals = new Map<string, string>();
  const notices: string[] = [];

  const invoke = async (name: string, roomId: string, text: string): Promise<string> => {
    const inv = { sender: '@admin:hs', roomId, args: { user: text }, powerLevel: 0, inAdminRoom: false, isAdmin: true,
      reply: async () => undefined, senderName: async () => 'Admin' } as CommandInvocation;
    try {
      return (await net.commands.find((c) => c.name === name)!.run(inv)) ?? '';
    } catch (err) {
      return `"${name}" failed: ${(err as Error).message}`; // as core's command processor says it
    }
  };

  beforeAll(async () => {
    fake = new FakeDiscord({ heartbeatIntervalMs: 1000 });
    guild = fake.addGuild({ name: 'Trestle Test' });
    troll = fake.addUser({ username: 'troll' });
    fake.addMember(guild.id, troll.id);
    general = fake.addChannel(guild.id, { name: 'general' });
    const owner = fake.addUser({ username: 'owner' });
    restricted = fake.addGuild({ name: 'No Kicking', ownerId: owner.id });
    fake.updateRole(restricted.id, fake.botRole(restricted.id).id, { permissions: String(P.ViewChannel | P.SendMessages | P.ManageWebhooks) });
    victim = fake.addUser({ username: 'victim' });
    fake.addMember(restricted.id, victim.id);
    const nokick = fake.addChannel(restricted.id, { name: 'nokick' });
    portals.set('!room:hs', general.id).set('!restricted:hs', nokick.id);
    await fake.start();
    client = new Client({ intents: [I.Guilds, I.GuildMembers, I.GuildModeration], rest: { api: fake.apiUrl, cdn: fake.cdnUrl, offset: 0 } });
    const ready = once(client, Events.ClientReady);
    await client.login(fake.token);
    await ready;
    net = new DiscordNetwork('discord', discordConfigSchema.parse({ token: fake.token }));
    net.client = client;
    const kv = new Map<string, string>();
    net.ctx = {
      log: silentLogger, domain: 'hs', remoteUserOf: () => undefined,
      kv: { get: (k: string) => kv.get(k), set: (k: string, v: string) => { kv.set(k, v); }, delete: (k: string) => { kv.delete(k); } },
      portals: { forRoom: (roomId: string) => (portals.has(roomId) ? [{ roomId, remoteChat: portals.get(roomId) }] : []) },
      matrix: { notice: async (_roomId: string, text: string) => { notices.push(text); } },
    } as unknown as NetworkContext;
    net.store = { removeChatMember: () => undefined } as unknown as DiscordStore;
  });

  afterAll(async () => {
    await client?.destroy();
    await fake?.stop();
  });

  it('a Matrix ban of a ghost bans nobody on Discord; the room is told', async () => {
    await net.handleMatrixMembership({
      portal: { roomId: '!room:hs', remoteChat: general.id, kind: 'plumbed' }, eventId: '$ban', membership: 'ban',
      sender: { userId: '@mod:hs', displayName: 'Mod' }, target: { userId: `@discord_${troll.id}:hs`, displayName: 'troll' },
    });
    expect(fake.bans(guild.id).size).toBe(0);
    expect(fake.member(guild.id, troll.id)).toBeDefined();
    expect(notices).toHaveLength(1);
    expect(fake.requests.filter((r) => r.method !== 'GET')).toEqual([]);
  });

  it('ban, unban and kick where the bot may, naming who asked and why', async () => {
    expect(await invoke('ban', '!room:hs', `@discord_${troll.id}:hs spam`)).toBe('Banned troll from Trestle Test on Discord.');
    expect(fake.bans(guild.id).get(troll.id)).toBe('Banned on Matrix by Admin (@admin:hs): spam');
    expect(await invoke('unban', '!room:hs', troll.id)).toBe('Lifted the ban of troll in Trestle Test on Discord.');
    expect(fake.bans(guild.id).has(troll.id)).toBe(false);
    expect(await invoke('unban', '!room:hs', troll.id)).toBe('troll is not banned in Trestle Test on Discord: nothing to lift.');
    expect(await invoke('kick', '!room:hs', troll.id)).toBe('troll is not in Trestle Test on Discord: nobody to kick.'); // the ban took them out
    fake.addMember(guild.id, troll.id);
    const cached = (): boolean => client.guilds.cache.get(guild.id)?.members.cache.has(troll.id) ?? false;
    for (let i = 0; i < 100 && !cached(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await invoke('kick', '!room:hs', `${troll.id} be nice`)).toBe('Kicked troll from Trestle Test on Discord.');
    expect(fake.member(guild.id, troll.id)).toBeUndefined();
    expect(fake.auditLog(guild.id).at(-1)).toMatchObject({ target_id: troll.id, reason: 'Kicked on Matrix by Admin (@admin:hs): be nice' });
  });

  it('say why not where the bot may not, or where they cannot tell which server', async () => {
    expect(await invoke('kick', '!restricted:hs', victim.id)).toBe('"kick" failed: victim stays on Discord: the bridge bot lacks the Kick Members permission in No Kicking');
    expect(await invoke('unban', '!restricted:hs', victim.id)).toBe('"unban" failed: victim is not unbanned on Discord: the bridge bot lacks the Ban Members permission in No Kicking');
    expect(fake.member(restricted.id, victim.id)).toBeDefined();
    expect(await invoke('ban', '!nowhere:hs', victim.id)).toBe('"ban" failed: say it in a room linked to a channel of the Discord server');
  });
});
