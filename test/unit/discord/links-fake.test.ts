/**
 * The bridge's Links (portal aliases, channels that are gone) with an unmodified discord.js client
 * logged in to the fake Discord (test/harness/fake-discord, on 127.0.0.1): discord.js computes what
 * @everyone may see from the channel's permission overwrites, and reports a deleted channel, the bot's
 * removal from a server and a server's outage as Discord does. Core is stood in for by the few fields
 * Links reads.
 */
import { once } from 'node:events';
import { silentLogger, type NetworkContext, type PortalInfo } from '@trestle/core';
import { ChannelType, Client, Events, GatewayIntentBits as I, OverwriteType, PermissionFlagsBits as P } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LinkApprovals } from '../../../packages/discord/src/approvals.js';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { Links } from '../../../packages/discord/src/links.js';
import type { DiscordStore } from '../../../packages/discord/src/store.js';
import { FakeDiscord } from '../../harness/fake-discord/server.js';

const until = async <T>(fn: () => T, what: string, ms = 5000): Promise<NonNullable<T>> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('Links against the fake Discord', () => {
  let fake: FakeDiscord;
  let client: Client;
  let links: Links;
  const portals: PortalInfo[] = [];
  const notices: string[] = [];
  const requestsEnded: string[] = [];
  const portal = (roomId: string, remoteChat: string): PortalInfo => ({ roomId, remoteChat, kind: 'plumbed', network: 'discord', data: {} });

  beforeAll(async () => {
    fake = new FakeDiscord({ heartbeatIntervalMs: 1000 });
    await fake.start();
    const ctx = {
      log: silentLogger, domain: 'hs',
      portals: {
        all: () => portals, forChat: (chat: string) => portals.filter((p) => p.remoteChat === chat),
        unlink: (roomId: string, chat: string) => {
          const i = portals.findIndex((p) => p.roomId === roomId && p.remoteChat === chat);
          if (i >= 0) portals.splice(i, 1);
          return i >= 0;
        },
      },
      remote: { notice: async (n: { chat: string; text: string }) => { notices.push(`${n.chat}: ${n.text}`); } },
    } as unknown as NetworkContext;
    const store = { removeLink: () => undefined, removeChat: () => undefined } as unknown as DiscordStore;
    const approvals = { channelsGone: async (why: ReadonlyMap<string, string>) => { requestsEnded.push(...why.keys()); } } as unknown as LinkApprovals;
    client = new Client({ intents: [I.Guilds, I.GuildMembers, I.GuildMessages], rest: { api: fake.apiUrl, cdn: fake.cdnUrl, offset: 0 } });
    links = new Links({
      ctx, cfg: discordConfigSchema.parse({ token: fake.token }), aliasPrefix: 'discord_', store, client: () => client, approvals: () => approvals,
      portalLinked: async () => undefined, portalUnlinked: async () => undefined, inOrder: (_chat, _what, task) => task(),
    });
    links.attach(client);
    const ready = once(client, Events.ClientReady);
    await client.login(fake.token);
    await ready;
  });

  afterAll(async () => {
    await client?.destroy();
    await fake?.stop();
  });

  it('opens a portal by alias, and lists, only a channel @everyone can see', async () => {
    const g = fake.addGuild({ name: 'Open and Closed' });
    const open = fake.addChannel(g.id, { name: 'lobby' });
    const closed = fake.addChannel(g.id, { name: 'staff', permissionOverwrites: [{ id: g.id, type: OverwriteType.Role, allow: '0', deny: String(P.ViewChannel) }] });
    // allowed again for @everyone by an overwrite: visible
    const reopened = fake.addChannel(g.id, { name: 'reopened', permissionOverwrites: [{ id: g.id, type: OverwriteType.Role, allow: String(P.ViewChannel), deny: '0' }] });
    await until(() => client.channels.cache.has(reopened.id), 'the channels');
    expect(await links.portalForAlias(`discord_${g.id}_${open.id}`)).toEqual({ remoteChat: open.id, name: '#lobby (Open and Closed)' });
    expect(await links.portalForAlias(`discord_${g.id}_${closed.id}`)).toBeUndefined();
    expect(await links.portalForAlias(`discord_${g.id}_${reopened.id}`)).toMatchObject({ remoteChat: reopened.id });
    const list = links.listChannels();
    expect(list).toContain(`#lobby: #discord_${g.id}_${open.id}:hs`);
    expect(list).toContain(`#reopened: #discord_${g.id}_${reopened.id}:hs`);
    expect(list).not.toContain(closed.id);
  });

  it('unlinks a deleted channel\'s or thread\'s rooms, and a removed server\'s, but not an unavailable server\'s', async () => {
    const g = fake.addGuild({ name: 'Going' });
    const doomed = fake.addChannel(g.id, { name: 'doomed' });
    const kept = fake.addChannel(g.id, { name: 'kept' });
    const g2 = fake.addGuild({ name: 'Flaky' });
    const flaky = fake.addChannel(g2.id, { name: 'flaky' });
    await until(() => client.channels.cache.has(flaky.id), 'the channels');
    portals.push(portal('!doomed', doomed.id), portal('!kept', kept.id), portal('!flaky', flaky.id));

    fake.deleteChannel(doomed.id);
    await until(() => !portals.some((p) => p.roomId === '!doomed'), 'the deleted channel\'s room to be unlinked');
    expect(notices).toEqual([`${doomed.id}: ℹ The Discord channel #doomed (Going) was deleted: this room is no longer linked to it.`]);
    expect(requestsEnded).toEqual([doomed.id]);

    // a thread linked on its own (chat `<channel>/<thread>`)
    const thread = fake.addChannel(g.id, { name: 'side talk', type: ChannelType.PublicThread, parentId: kept.id });
    await until(() => client.channels.cache.has(thread.id), 'the thread');
    portals.push(portal('!thread', `${kept.id}/${thread.id}`));
    fake.deleteChannel(thread.id);
    await until(() => !portals.some((p) => p.roomId === '!thread'), 'the deleted thread\'s room to be unlinked');
    expect(notices.at(-1)).toBe(`${kept.id}/${thread.id}: ℹ The Discord thread side talk (Going) was deleted: this room is no longer linked to it.`);
    expect(portals.map((p) => p.roomId)).toEqual(['!kept', '!flaky']);

    fake.setGuildUnavailable(g2.id, true);
    await until(() => client.guilds.cache.get(g2.id)?.available === false, 'the server to be unavailable');
    fake.removeBot(g.id);
    await until(() => !portals.some((p) => p.roomId === '!kept'), 'the removed server\'s room to be unlinked');
    expect(notices.at(-1)).toBe(`${kept.id}: ℹ The bridge bot is no longer in the Discord server Going (it was removed, or the server deleted), ` +
      'so #kept is out of reach: this room is no longer linked to it.');
    expect(client.guilds.cache.has(g.id)).toBe(false);
    // the unavailable server's room stayed (its GUILD_DELETE came first), and the server comes back
    expect(portals.map((p) => p.roomId)).toEqual(['!flaky']);
    fake.setGuildUnavailable(g2.id, false);
    await until(() => client.guilds.cache.get(g2.id)?.available, 'the server to be back');
    expect(client.channels.cache.has(flaky.id)).toBe(true);
    expect(notices).toHaveLength(3);
  });
});
