/**
 * Which channels have a portal room by alias (only those everyone in their server can see: a portal
 * room is public), and the links of channels that are gone. discord.js and core are stood in for by
 * the few fields Links reads (permissions are discord.js's own bit fields); nothing connects.
 */
import { silentLogger, type NetworkContext, type PortalInfo } from '@trestle/core';
import { ChannelType, PermissionFlagsBits as P, PermissionsBitField, type Client } from 'discord.js';
import { describe, expect, it } from 'vitest';
import type { LinkApprovals } from '../../../packages/discord/src/approvals.js';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { Links } from '../../../packages/discord/src/links.js';
import type { DiscordStore } from '../../../packages/discord/src/store.js';

function setup(portals: PortalInfo[] = []) {
  const everyone = { id: '500' };
  const me = { id: 'bot' };
  const guild = { id: '500', name: 'G', roles: { everyone }, members: { me }, channels: { cache: new Map<string, unknown>() } };
  /** A text channel: the bot sees everything; @everyone sees it only when `open`. */
  const text = (id: string, name: string, open: boolean) => ({
    id, name, type: ChannelType.GuildText, topic: null, guild,
    permissionsFor: (who: unknown) => new PermissionsBitField(who === everyone ? (open ? P.ViewChannel | P.SendMessages : P.SendMessages) : P.ViewChannel | P.ManageWebhooks),
  });
  guild.channels.cache.set('10', text('10', 'lobby', true));
  guild.channels.cache.set('11', text('11', 'staff', false));
  const client = { guilds: { cache: new Map([['500', guild]]) } } as unknown as Client;
  const events: string[] = [];
  const ctx = {
    log: silentLogger, domain: 'hs',
    portals: {
      all: () => portals, forChat: (chat: string) => portals.filter((p) => p.remoteChat === chat),
      unlink: (roomId: string, chat: string) => {
        events.push(`unlink ${roomId} ${chat}`);
        portals.splice(portals.findIndex((p) => p.roomId === roomId && p.remoteChat === chat), 1);
        return true;
      },
    },
    remote: { notice: async (n: { chat: string; text: string }) => { events.push(`notice ${n.chat}: ${n.text}`); } },
  } as unknown as NetworkContext;
  const store = {
    removeLink: (roomId: string, chat: string) => { events.push(`forget ${roomId} ${chat}`); },
    removeChat: (chat: string) => { events.push(`forget ${chat}`); },
  } as unknown as DiscordStore;
  const approvals = { channelsGone: async (why: ReadonlyMap<string, string>) => { events.push(`requests end in ${[...why.keys()].join(',')}`); } } as unknown as LinkApprovals;
  const links = new Links({
    ctx, cfg: discordConfigSchema.parse({ token: 't' }), aliasPrefix: 'discord_', store, client: () => client, approvals: () => approvals,
    portalLinked: async () => undefined, portalUnlinked: async (p) => { events.push(`out of the space ${p.roomId}`); },
    inOrder: (_chat, _what, task) => task(),
  });
  return { links, events };
}

const portal = (roomId: string, remoteChat: string): PortalInfo => ({ roomId, remoteChat, kind: 'plumbed', network: 'discord', data: {} });

describe('portal rooms by alias', () => {
  it('opens one for a channel everyone in the server can see, and none for one closed to @everyone', async () => {
    const { links } = setup();
    expect(await links.portalForAlias('discord_500_10')).toEqual({ remoteChat: '10', name: '#lobby (G)' });
    expect(await links.portalForAlias('discord_500_11')).toBeUndefined();
  });

  it('lists only those channels, and says why others are not', () => {
    const { links } = setup();
    expect(links.listChannels()).toBe('G (500):\n  #lobby: #discord_500_10:hs\n' +
      'Channels not everyone in their server can see have no alias and are not listed; a room is linked to one with "link".');
  });
});

describe('channels that are gone', () => {
  it('unlink their rooms (threads linked on their own too), each told why first, and end the requests waiting there', async () => {
    const { links, events } = setup([portal('!a', '10'), portal('!b', '10'), portal('!t', '11/99'), portal('!d', '12')]);
    await links.channelsGone(new Map([['10', 'The Discord channel #lobby (G) was deleted'], ['11', 'The Discord channel #staff (G) was deleted']]));
    // the chats go on side by side; within each, the notice (queued behind what the channel said) comes first
    const of = (chat: string, room?: string): string[] => events.filter((e) => e.startsWith(`notice ${chat}:`) || e === `forget ${chat}` ||
      (room !== undefined && e.endsWith(` ${room} ${chat}`)) || (room !== undefined && e === `out of the space ${room}`));
    expect(of('10', '!a')).toEqual(['notice 10: ℹ The Discord channel #lobby (G) was deleted: this room is no longer linked to it.',
      'unlink !a 10', 'forget !a 10', 'out of the space !a', 'forget 10']);
    expect(of('10', '!b')).toEqual(['notice 10: ℹ The Discord channel #lobby (G) was deleted: this room is no longer linked to it.',
      'unlink !b 10', 'forget !b 10', 'out of the space !b', 'forget 10']);
    expect(of('11/99', '!t')).toEqual(['notice 11/99: ℹ The Discord channel #staff (G) was deleted: this room is no longer linked to it.',
      'unlink !t 11/99', 'forget !t 11/99', 'out of the space !t', 'forget 11/99']);
    expect(events).toContain('requests end in 10,11');
    expect(events.filter((e) => e.includes('!d') || e.includes(' 12'))).toEqual([]); // another channel's room stays linked
  });
});
