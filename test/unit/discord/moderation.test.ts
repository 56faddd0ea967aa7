/**
 * Matrix kicks, bans and unbans of Discord users' ghosts stay in their room: the moderator of one
 * Matrix room is no moderator of the whole Discord server. The room is told once; the Discord server
 * is not touched. Bridge admins act on the server with the `kick`, `ban` and `unban` commands.
 * discord.js and core are stood in for by the few fields the network reads; nothing connects.
 */
import { silentLogger, type CommandInvocation, type MatrixMembership, type NetworkContext } from '@trestle/core';
import { PermissionFlagsBits, type Client } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { moderationArgs, staysInRoomNotice } from '../../../packages/discord/src/members.js';
import { DiscordNetwork } from '../../../packages/discord/src/network.js';
import type { DiscordStore } from '../../../packages/discord/src/store.js';

const VANDAL = '123456789012345678';

function setup() {
  const onDiscord: string[] = [];
  const notices: { roomId: string; text: string }[] = [];
  const removedMembers: string[] = [];
  const kv = new Map<string, string>();
  const vandal = { id: VANDAL, displayName: 'vandal' };
  const guild = {
    id: 'g1', name: 'Guild',
    bans: {
      create: async (id: string, o: { reason: string }) => { onDiscord.push(`ban ${id}: ${o.reason}`); },
      remove: async (id: string, reason: string) => { onDiscord.push(`unban ${id}: ${reason}`); },
    },
    members: {
      me: { permissions: { has: (bit: bigint) => bit === PermissionFlagsBits.KickMembers || bit === PermissionFlagsBits.BanMembers } },
      cache: new Map([[VANDAL, { displayName: 'vandal', manageable: true, user: vandal }]]),
      fetch: async () => undefined,
      kick: async (id: string, reason: string) => { onDiscord.push(`kick ${id}: ${reason}`); },
    },
    client: { users: { cache: new Map([[VANDAL, vandal]]), fetch: async () => vandal } },
  };
  const channel = { id: '111', guild, isDMBased: () => false };
  const net = new DiscordNetwork('discord', discordConfigSchema.parse({ token: 't' }));
  net.client = { channels: { cache: new Map([['111', channel], ['222', { ...channel, id: '222' }]]) } } as unknown as Client;
  net.ctx = {
    log: silentLogger, domain: 'hs',
    kv: { get: (k: string) => kv.get(k), set: (k: string, v: string) => { kv.set(k, v); }, delete: (k: string) => { kv.delete(k); } },
    remoteUserOf: () => undefined,
    matrix: { notice: async (roomId: string, text: string) => { notices.push({ roomId, text }); } },
    portals: { forRoom: (roomId: string) => (roomId === '!linked:hs' ? [{ roomId, remoteChat: '111' }] : []) },
  } as unknown as NetworkContext;
  net.store = { removeChatMember: (chat: string, user: string) => { removedMembers.push(`${chat} ${user}`); } } as unknown as DiscordStore;
  return { net, onDiscord, notices, kv, removedMembers };
}

const change = (membership: MatrixMembership['membership'], remoteChat = '111', eventId = '$e1'): MatrixMembership => ({
  portal: { roomId: '!r:hs', remoteChat, kind: 'plumbed' }, eventId, membership,
  sender: { userId: '@mod:hs', displayName: 'Mod' }, target: { userId: `@discord_${VANDAL}:hs`, displayName: 'vandal' },
});

describe('a Matrix kick, ban or unban of a Discord user\'s ghost', () => {
  it('stays in its room: nothing happens on Discord, and the room is told once, however many links it came through', async () => {
    const { net, onDiscord, notices, removedMembers } = setup();
    await net.handleMatrixMembership(change('ban', '111'));
    await net.handleMatrixMembership(change('ban', '222')); // the same event, for the room's second link
    expect(onDiscord).toEqual([]);
    expect(notices).toEqual([{ roomId: '!r:hs', text: staysInRoomNotice('ban', 'vandal', 'member', '!discord') }]);
    expect(removedMembers).toEqual([`111 ${VANDAL}`, `222 ${VANDAL}`]);
    await net.handleMatrixMembership(change('kick', '111', '$e2'));
    expect(onDiscord).toEqual([]);
    expect(notices.map((n) => n.text)).toEqual([staysInRoomNotice('ban', 'vandal', 'member', '!discord'), staysInRoomNotice('kick', 'vandal', 'member', '!discord')]);
  });

  it('unbanned, lifts only the room\'s ban: a ban from Discord stays there (said), a Matrix one goes quietly', async () => {
    const { net, onDiscord, notices, kv } = setup();
    await net.handleMatrixMembership(change('unban', '111', '$quiet'));
    expect(notices).toEqual([]);
    kv.set(`banned:g1:${VANDAL}`, JSON.stringify(['111', '222'])); // banned on Discord: the ghost was banned in both chats' rooms
    await net.handleMatrixMembership(change('unban', '111', '$said'));
    expect(onDiscord).toEqual([]);
    expect(notices.map((n) => n.text)).toEqual([staysInRoomNotice('unban', 'vandal', 'member', '!discord')]);
    // a later unban on Discord lifts the ban in the other chat's rooms only (this one has none left)
    expect(JSON.parse(kv.get(`banned:g1:${VANDAL}`)!)).toEqual(['222']);
  });

  it('says why, in words', () => {
    expect(staysInRoomNotice('ban', 'vandal', 'member', '!discord')).toBe('ℹ vandal is banned in this room only, not in the Discord server: moderating a Matrix ' +
      'room does not reach the whole Discord server. Discord\'s moderators, or a bridge admin with "!discord ban", can ban them there.');
    expect(staysInRoomNotice('kick', 'hook', 'webhook', '!discord')).toBe('ℹ hook is out of this room only: they post through a webhook on Discord, where there is no member to kick.');
  });
});

describe('the admins\' kick, ban and unban commands', () => {
  const invoke = (net: DiscordNetwork, name: string, text: string, roomId = '!linked:hs'): Promise<string | void> => {
    const cmd = net.commands.find((c) => c.name === name)!;
    const inv = { sender: '@admin:hs', roomId, args: { user: text }, powerLevel: 0, inAdminRoom: false, isAdmin: true,
      reply: async () => undefined, senderName: async () => 'Admin' } as CommandInvocation;
    return cmd.run(inv);
  };

  it('are for bridge admins only', () => {
    const { net } = setup();
    for (const name of ['kick', 'ban', 'unban']) expect(net.commands.find((c) => c.name === name)?.permission).toBe('admin');
  });

  it('act on the Discord server of the room, naming who asked and why', async () => {
    const { net, onDiscord } = setup();
    expect(await invoke(net, 'ban', `@discord_${VANDAL}:hs   vandalism, twice`)).toBe('Banned vandal from Guild on Discord.');
    expect(await invoke(net, 'unban', VANDAL)).toBe('Lifted the ban of vandal in Guild on Discord.');
    expect(await invoke(net, 'kick', `${VANDAL} be nice`)).toBe('Kicked vandal from Guild on Discord.');
    expect(onDiscord).toEqual([
      `ban ${VANDAL}: Banned on Matrix by Admin (@admin:hs): vandalism, twice`,
      `unban ${VANDAL}: Unbanned on Matrix by Admin (@admin:hs)`,
      `kick ${VANDAL}: Kicked on Matrix by Admin (@admin:hs): be nice`,
    ]);
  });

  it('refuse what they cannot place: an unknown user, a room not linked to Discord', async () => {
    const { net, onDiscord } = setup();
    await expect(invoke(net, 'ban', '@alice:hs')).rejects.toThrow(/say whom/);
    await expect(invoke(net, 'ban', VANDAL, '!elsewhere:hs')).rejects.toThrow(/a room linked to a channel of the Discord server/);
    expect(onDiscord).toEqual([]);
  });

  it('read the user and the reason', () => {
    expect(moderationArgs('  @discord_1:hs  spam and  more ')).toEqual({ who: '@discord_1:hs', reason: 'spam and  more' });
    expect(moderationArgs('123')).toEqual({ who: '123' });
  });
});
