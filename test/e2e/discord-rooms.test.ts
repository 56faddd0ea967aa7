/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Rooms: portal rooms on demand (only for channels everyone in the server can see), plumbing with the
 * Discord channel's approval, the room limit, roles as power levels, servers as spaces, channel names,
 * topics and server icons both ways, and links to channels that are gone (deleted, or the bot removed
 * from their server).
 * Shared set-up: discord-harness.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ChannelType, OverwriteType, PermissionFlagsBits as P, type APIGuild } from 'discord-api-types/v10';
import type { GuildChannel } from '../harness/fake-discord/server.js';
import { messagesOf, type MatrixEventJson } from '../harness/matrix-user.js';
import {
  fake, bridge, alice, botId, guild, bob, modsRole, mod, PNG, body, ghost, discordNet, channel, linkRequest, roomWithBot,
  restrictedGuild, stateOf, stateEvent, membershipIn, grantPower, downloadMxc, webhookContents, standalone, plumbed,
  startBridge, useDiscordBridge,
} from './discord-harness.js';
import { bridgeInfoIn, sleep, until } from './env.js';

useDiscordBridge();

/** Upgrade a room as alice does it through Synapse (she needs the power to); returns the room that replaces it. */
const upgrade = async (roomId: string): Promise<string> => (await alice.request<{ replacement_room: string }>('POST',
  `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/upgrade`, { new_version: '10' })).replacement_room;
/** A Discord link's bridge info (MSC2346) as Synapse holds it in the room; undefined until it is there. */
const bridgeInfo = async (roomId: string, guildId: string, channelId: string): Promise<Record<string, unknown> | undefined> =>
  bridgeInfoIn(await stateOf(roomId), `trestle://discord/${guildId}/${channelId}`);
const discordInfo = (guildId: string, guildName: string, channelId: string, channelName: string, more: Record<string, unknown> = {}, icon?: string): Record<string, unknown> => ({
  bridgebot: botId, protocol: { id: 'discord', displayname: 'Discord' },
  network: { id: guildId, displayname: guildName, external_url: `https://discord.com/channels/${guildId}`, ...(icon ? { avatar_url: icon } : {}) },
  channel: { id: channelId, displayname: channelName, external_url: `https://discord.com/channels/${guildId}/${channelId}` }, ...more,
});

describe('Discord bridge: portal rooms', () => {
  it('opens a portal room when a Matrix user joins the channel alias', async () => {
    const ch = fake.addChannel(guild.id, { name: 'portal', topic: 'the portal topic' });
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const roomId = await alice.join(`#discord_${guild.id}_${ch.id}:localhost`);
    const name = await alice.request<{ name: string }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.name/`);
    expect(name.name).toBe('#portal (Trestle Test)');
    // clients' "Bridges" settings show the server and the channel, with their discord.com links; nobody linked it
    expect(await until(() => bridgeInfo(roomId, guild.id, ch.id), 'the portal room\'s bridge info')).toEqual(discordInfo(guild.id, 'Trestle Test', ch.id, '#portal'));
    const topic = async (): Promise<string | undefined> =>
      (await alice.request<{ topic?: string }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`)).topic;
    expect(await topic()).toBe('the portal topic');
    fake.injectUserMessage(ch.id, bob.id, 'hi portal');
    await alice.waitForEvent(roomId, (e) => body(e) === 'hi portal' && e.sender === ghost(bob.id));
    await alice.sendText(roomId, 'hi back');
    await until(() => webhookContents(ch.id).includes('hi back'), 'the Matrix message');
    // the portal room follows the channel topic
    const patch = await fetch(`${fake.apiUrl}/v10/channels/${ch.id}`, {
      method: 'PATCH', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'a new topic' }),
    });
    expect(patch.status).toBe(200);
    await until(async () => (await topic()) === 'a new topic', 'the room topic to follow');
    // unknown channels have no portal
    await expect(alice.join(`#discord_${guild.id}_123456789012345678:localhost`)).rejects.toThrow(/404|not found/i);
  });

  it('refuses a link to a channel the bot cannot see, saying why', async () => {
    const roomId = await alice.createRoom({ name: 'bad link' });
    await alice.invite(roomId, botId);
    await until(async () => (await alice.joinedMembers(roomId)).includes(botId), 'the bot to join');
    await alice.sendText(roomId, `!trestle link discord ${guild.id}/123456789012345678`);
    const answer = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).includes('no text channel'));
    expect(body(answer)).toMatch(/no text channel with that id/);
    // the channels command says what can be bridged, with the aliases that open portal rooms
    await alice.sendText(roomId, '!discord channels');
    const list = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Trestle Test'));
    expect(body(list)).toContain(`Trestle Test (${guild.id}):`);
    expect(body(list)).toMatch(new RegExp(`#portal: #discord_${guild.id}_\\d+:localhost`));
  });

  it('opens no portal room for a channel @everyone cannot see, nor lists it; such a channel is plumbed with its approval', async () => {
    // a staff channel: its overwrite for @everyone (the role whose id is the server's) denies View Channel
    const staff = fake.addChannel(guild.id, { name: 'staff-only', permissionOverwrites: [{ id: guild.id, type: OverwriteType.Role, allow: '0', deny: String(P.ViewChannel) }] });
    const open = fake.addChannel(guild.id, { name: 'open-lobby' });
    await until(() => discordNet().client?.channels.cache.has(staff.id) && discordNet().client?.channels.cache.has(open.id), 'the bridge to see the channels');
    await expect(alice.join(`#discord_${guild.id}_${staff.id}:localhost`)).rejects.toThrow(/404|not found/i);
    expect(bridge.portals.all().filter((p) => p.remoteChat === staff.id)).toEqual([]);
    const roomId = await alice.join(`#discord_${guild.id}_${open.id}:localhost`);
    expect(bridge.portals.forRoom(roomId).map((p) => p.remoteChat)).toEqual([open.id]);
    await alice.sendText(roomId, '!discord channels');
    const list = body(await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Trestle Test')));
    expect(list).toContain(`  #open-lobby: #discord_${guild.id}_${open.id}:localhost`);
    expect(list).not.toContain(staff.id);
    expect(list).not.toContain('staff-only');
    expect(list.split('\n').at(-1)).toBe('Channels not everyone in their server can see have no alias and are not listed; a room is linked to one with "link".');
    // plumbing asks the channel: its members decide whether Matrix reads along
    const plumbedRoom = await plumbed(staff);
    expect(bridge.portals.forRoom(plumbedRoom).map((p) => [p.remoteChat, p.kind])).toEqual([[staff.id, 'plumbed']]);
  });
});

describe('Discord bridge: roles', () => {
  it('gives ghosts the power level of their Discord roles (rolePowers)', async () => {
    const ch = channel('ranks');
    const ch2 = channel('ranks-too');
    const erin = fake.addUser({ username: 'erin' });
    fake.addMember(guild.id, erin.id, { roles: [modsRole.id] });
    const s = standalone({ token: fake.token, restUrl: fake.apiUrl, cdnUrl: fake.cdnUrl, rolePowers: { mods: 50, [guild.id]: 0 } });
    await s.net.start(s.ctx);
    try {
      await s.link(ch, '!ranks:localhost');
      fake.injectUserMessage(ch.id, erin.id, 'I moderate');
      fake.injectUserMessage(ch.id, erin.id, 'still me');
      fake.injectUserMessage(ch.id, bob.id, 'no role here');
      await until(() => s.events.filter((e) => e.kind === 'message').length === 3, 'the three messages');
      // the level is reported once, before the member's first message; members without a mapped role get none
      expect(s.events.map((e) => e.kind)).toEqual(['powerLevels', 'message', 'message', 'message']);
      expect(s.events[0]!.value).toEqual({ chat: ch.id, users: { [erin.id]: 50 } });
      // a new link gets the levels of the members the bridge knows at once
      await s.link(ch2, '!ranks2:localhost');
      await until(() => s.events.length === 5, 'the levels for the new link');
      expect(s.events[4]).toEqual({ kind: 'powerLevels', value: { chat: ch2.id, users: { [erin.id]: 50 } } });
    } finally {
      await s.net.stop();
    }
  });

  it('and through the bridge, the ghost has that level in the room on Matrix; a member without a mapped role has none', async () => {
    const net = discordNet();
    const rolePowers = net.cfg.rolePowers;
    // read when it matters, as roomLimit below: set here as an admin would before a restart
    net.cfg.rolePowers = { mods: 50, [guild.id]: 0 };
    try {
      const fay = fake.addUser({ username: 'fay' });
      fake.addMember(guild.id, fay.id, { roles: [modsRole.id] });
      const ch = channel('ranks-bridged');
      const roomId = await plumbed(ch);
      fake.injectUserMessage(ch.id, fay.id, 'I moderate here');
      fake.injectUserMessage(ch.id, bob.id, 'no role here either');
      // a level is reported before its member's first message, into the room's ordered queue: once
      // bob's line is in the room, the levels of both have been handled
      await alice.waitForEvent(roomId, (e) => body(e) === 'no role here either' && e.sender === ghost(bob.id));
      const levels = (await stateEvent(roomId, 'm.room.power_levels'))!;
      expect(levels.sender).toBe(botId);
      const users = levels.content['users'] as Record<string, number>;
      expect(users[ghost(fay.id)]).toBe(50);
      expect(users[ghost(bob.id)]).toBeUndefined();
    } finally {
      net.cfg.rolePowers = rolePowers;
    }
  });
});

describe('Discord bridge: plumbing with the channel\'s approval', () => {
  it('links only when a member with Manage Webhooks approves with ✅, ignoring others\' answers', async () => {
    const ch = channel('approve-react');
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const roomId = await roomWithBot('approval by reaction');
    await alice.sendText(roomId, `!discord link ${guild.id} ${ch.id}`);
    const asked = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Asked in #approve-react'));
    expect(body(asked)).toMatch(/Manage Webhooks .*within 6 seconds/);
    const request = await until(() => linkRequest(ch.id), 'the request on Discord');
    expect(request.content).toContain(alice.userId.replace(/_/g, '\\_'));
    expect(request.content).toContain('approval by reaction'); // the room's name, read from Matrix
    expect(fake.message(request.id)!.reactions?.filter((r) => r.me).map((r) => r.emoji.name)).toEqual(['✅', '❌']);
    // bob may not manage webhooks: his ✅ and his "approve" are not enough
    fake.addReaction(ch.id, request.id, bob.id, '✅');
    fake.injectUserMessage(ch.id, bob.id, 'approve', { replyTo: request.id });
    await sleep(1000);
    expect(bridge.portals.forRoom(roomId)).toEqual([]);
    fake.addReaction(ch.id, request.id, mod.id, '✅');
    const linked = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    expect(body(linked)).toBe(`Linked this room to discord ${ch.id} (#approve-react in Trestle Test), approved on Discord by moddy.`);
    expect(bridge.portals.forRoom(roomId).map((p) => [p.remoteChat, p.kind])).toEqual([[ch.id, 'plumbed']]);
    expect(await until(() => bridgeInfo(roomId, guild.id, ch.id), 'the link\'s bridge info'))
      .toEqual(discordInfo(guild.id, 'Trestle Test', ch.id, '#approve-react', { creator: alice.userId }));
    expect(fake.message(request.id)!.content).toMatch(/^✅ Approved by moddy: this channel is bridged with approval by reaction/);
    fake.injectUserMessage(ch.id, bob.id, 'now bridged');
    await alice.waitForEvent(roomId, (e) => body(e) === 'now bridged' && e.sender === ghost(bob.id));
    // the request, the answers before the link and the bot's own edits were not bridged
    expect(messagesOf(await alice.timeline(roomId)).filter((e) => e.sender.startsWith('@discord_')).map(body)).toEqual(['now bridged']);
  });

  it('approves with a reply, refuses with "deny", expires unanswered, and works through !trestle link too', async () => {
    // approved with a reply, asked through core's link command
    const byReply = channel('approve-reply');
    await until(() => discordNet().client?.channels.cache.has(byReply.id), 'the bridge to see the channel');
    const room1 = await roomWithBot('approval by reply');
    await alice.sendText(room1, `!trestle link discord ${guild.id}/${byReply.id}`);
    const refusedNow = await alice.waitForEvent(room1, (e) => e.sender === botId && body(e).startsWith('"link" failed'));
    expect(body(refusedNow)).toMatch(/the Discord channel has to approve first\. Asked in #approve-reply .*This room is linked when they do\./);
    const r1 = await until(() => linkRequest(byReply.id), 'the request');
    fake.injectUserMessage(byReply.id, mod.id, 'Approve, welcome!', { replyTo: r1.id });
    await alice.waitForEvent(room1, (e) => e.sender === botId && body(e).startsWith(`Linked this room to discord ${byReply.id}`));

    // refused
    const refused = channel('deny-reply');
    await until(() => discordNet().client?.channels.cache.has(refused.id), 'the bridge to see the channel');
    const room2 = await roomWithBot('refused room');
    await alice.sendText(room2, `!discord link ${guild.id} ${refused.id}`);
    const r2 = await until(() => linkRequest(refused.id), 'the request');
    fake.injectUserMessage(refused.id, mod.id, 'deny', { replyTo: r2.id });
    const no = await alice.waitForEvent(room2, (e) => e.sender === botId && body(e).includes('refused'));
    expect(body(no)).toBe('moddy refused on Discord to bridge #deny-reply with this room.');
    expect(fake.message(r2.id)!.content).toMatch(/^❌ moddy refused/);
    expect(bridge.portals.forRoom(room2)).toEqual([]);

    // nobody answers within linkApproval.timeoutSeconds (6 s in the e2e config)
    const quiet = channel('nobody-home');
    await until(() => discordNet().client?.channels.cache.has(quiet.id), 'the bridge to see the channel');
    const room3 = await roomWithBot('unanswered room');
    await alice.sendText(room3, `!discord link ${guild.id} ${quiet.id}`);
    const r3 = await until(() => linkRequest(quiet.id), 'the request');
    // asking twice while waiting is refused
    await alice.sendText(room3, `!discord link ${guild.id} ${quiet.id}`);
    await alice.waitForEvent(room3, (e) => e.sender === botId && body(e).includes('already waits for #nobody-home'));
    const expired = await alice.waitForEvent(room3, (e) => e.sender === botId && body(e).startsWith('Nobody approved'), 15_000);
    expect(body(expired)).toBe(`Nobody approved bridging #nobody-home within 6 seconds, so this room is not linked. Ask again with "!discord link ${guild.id} ${quiet.id}".`);
    expect(fake.message(r3.id)!.content).toMatch(/^⌛ Nobody approved within 6 seconds/);
    // a late approval changes nothing. A marker: a request elsewhere approved after it the same way;
    // the late ✅ came before it over the gateway, so once that room is linked, the late one has been
    // acted on if it ever would be
    fake.addReaction(quiet.id, r3.id, mod.id, '✅');
    await plumbed(channel('after-a-late-approval'));
    expect(bridge.portals.forRoom(room3)).toEqual([]);
    expect(fake.message(r3.id)!.content).toMatch(/^⌛ Nobody approved/);
    expect((await alice.timeline(room3)).filter((e) => e.sender === botId && body(e).startsWith('Linked this room'))).toEqual([]);
  });

  it('keeps a waiting link request across a restart: approved after it, the room is linked; expired meanwhile, it ends', async () => {
    const later = channel('approve-later');
    const lapsed = channel('lapsed');
    await until(() => discordNet().client?.channels.cache.has(lapsed.id), 'the bridge to see the channels');
    // approved after the restart
    const room1 = await roomWithBot('approved after a restart');
    await alice.sendText(room1, `!discord link ${guild.id} ${later.id}`);
    const r1 = await until(() => linkRequest(later.id), 'the request');
    await bridge.stop();
    await startBridge();
    expect(fake.message(r1.id)!.content).toMatch(/^\*\*Bridge request\*\*/); // not cancelled by the stop
    fake.addReaction(later.id, r1.id, mod.id, '✅');
    const linked = await alice.waitForEvent(room1, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    expect(body(linked)).toBe(`Linked this room to discord ${later.id} (#approve-later in Trestle Test), approved on Discord by moddy.`);
    expect(bridge.portals.forRoom(room1).map((p) => p.remoteChat)).toEqual([later.id]);
    // its time (6 s) runs out while the bridge is away: it ends when the bridge is back, and both sides are told
    const room2 = await roomWithBot('expired during a restart');
    await alice.sendText(room2, `!discord link ${guild.id} ${lapsed.id}`);
    const r2 = await until(() => linkRequest(lapsed.id), 'the second request');
    await bridge.stop();
    await sleep(6500);
    await startBridge();
    await alice.waitForEvent(room2, (e) => e.sender === botId && body(e).startsWith('Nobody approved bridging #lapsed'));
    await until(() => fake.message(r2.id)?.content.startsWith('⌛ Nobody approved'), 'the request to show it expired');
    fake.addReaction(lapsed.id, r2.id, mod.id, '✅');
    await plumbed(channel('after-a-lapsed-approval')); // a marker, as for a late approval above
    expect(bridge.portals.forRoom(room2)).toEqual([]);
    expect(fake.message(r2.id)!.content).toMatch(/^⌛ Nobody approved/);
  });

  it('refuses links past roomLimit, when asked and when approved', async () => {
    const net = discordNet();
    const first = channel('limit-a');
    const second = channel('limit-b');
    await until(() => net.client?.channels.cache.has(second.id), 'the bridge to see the channels');
    const bridged = (): number => new Set(net.ctx!.portals.all().map((p) => p.remoteChat)).size;
    const roomA = await roomWithBot('limit a');
    await alice.sendText(roomA, `!discord link ${guild.id} ${first.id}`);
    const request = await until(() => linkRequest(first.id), 'the request');
    // the limit is reached while the request waits (config is read when it matters; set here as an admin would before a restart)
    net.cfg.roomLimit = bridged();
    try {
      fake.addReaction(first.id, request.id, mod.id, '✅');
      const late = await alice.waitForEvent(roomA, (e) => e.sender === botId && body(e).includes('could not be linked'));
      expect(body(late)).toBe(`moddy approved on Discord, but the room could not be linked: the bridge already bridges its limit of ${net.cfg.roomLimit} Discord channels`);
      const roomB = await roomWithBot('limit b');
      await alice.sendText(roomB, `!discord link ${guild.id} ${second.id}`);
      const refused = await alice.waitForEvent(roomB, (e) => e.sender === botId && body(e).startsWith('"link" failed'));
      expect(body(refused)).toBe(`"link" failed: the bridge already bridges its limit of ${net.cfg.roomLimit} Discord channels`);
      expect(linkRequest(second.id)).toBeUndefined();
    } finally {
      net.cfg.roomLimit = 0;
    }
  });
});

describe('Discord bridge: servers as spaces, names, topics and icons', () => {
  let spaced: APIGuild;
  const rooms = new Map<string, string>();
  const portal = async (ch: GuildChannel): Promise<string> => {
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const roomId = await alice.join(`#discord_${spaced.id}_${ch.id}:localhost`);
    rooms.set(ch.name, roomId);
    return roomId;
  };
  const spaceOfRoom = async (roomId: string): Promise<string> =>
    (await until(async () => (await stateOf(roomId)).find((e) => e.type === 'm.space.parent'), 'the room\'s space parent')).state_key!;
  const childOrder = async (spaceId: string): Promise<string[]> => {
    const children = (await stateOf(spaceId)).filter((e) => e.type === 'm.space.child' && Object.keys(e.content).length > 0);
    children.sort((a, b) => String(a.content['order']).localeCompare(String(b.content['order'])));
    const names = new Map([...rooms].map(([n, r]) => [r, n]));
    return children.map((c) => names.get(c.state_key!) ?? c.state_key!);
  };
  /** The rooms a space lists (an emptied `m.space.child` lists none). */
  const children = async (spaceId: string): Promise<string[]> =>
    (await stateOf(spaceId)).filter((e) => e.type === 'm.space.child' && Object.keys(e.content).length > 0).map((e) => e.state_key!);
  /** Whether a room no longer points at a space (its `m.space.parent` emptied or never set). */
  const parentGone = async (roomId: string, spaceId: string): Promise<boolean> =>
    Object.keys((await stateEvent(roomId, 'm.space.parent', spaceId))?.content ?? {}).length === 0;
  let lobby: GuildChannel, alpha: GuildChannel, beta: GuildChannel, aChat: GuildChannel, aMore: GuildChannel, bChat: GuildChannel;

  beforeAll(() => {
    spaced = fake.addGuild({ name: 'Spaced' });
    lobby = fake.addChannel(spaced.id, { name: 'lobby', topic: 'say hi' });
    alpha = fake.addChannel(spaced.id, { name: 'Alpha', type: ChannelType.GuildCategory });
    beta = fake.addChannel(spaced.id, { name: 'Beta', type: ChannelType.GuildCategory });
    bChat = fake.addChannel(spaced.id, { name: 'b-chat', parentId: beta.id });
    aChat = fake.addChannel(spaced.id, { name: 'a-chat', parentId: alpha.id });
    aMore = fake.addChannel(spaced.id, { name: 'a-more', parentId: alpha.id });
    fake.updateGuild(spaced.id, { icon: { name: 'icon.png', data: PNG, contentType: 'image/png' } });
  });

  it('puts the portal rooms in the server\'s space, in Discord\'s order, with the server\'s name and icon', async () => {
    await until(() => discordNet().client?.guilds.cache.get(spaced.id)?.icon, 'the icon to reach the bridge');
    // joined in another order than Discord's
    for (const ch of [bChat, lobby, aMore, aChat]) await portal(ch);
    const spaceId = await spaceOfRoom(rooms.get('b-chat')!);
    for (const roomId of rooms.values()) expect(await spaceOfRoom(roomId)).toBe(spaceId);
    const create = await stateEvent(spaceId, 'm.room.create');
    expect(create?.content['type']).toBe('m.space');
    expect((await stateEvent(spaceId, 'm.room.name'))?.content['name']).toBe('Spaced');
    const spaceIcon = String((await stateEvent(spaceId, 'm.room.avatar'))?.content['url']);
    expect(await downloadMxc(spaceIcon)).toEqual(PNG);
    // uncategorised first, then the categories in their order, channels by position within them
    await until(async () => (await childOrder(spaceId)).length === 4, 'four rooms in the space');
    expect(await childOrder(spaceId)).toEqual(['lobby', 'a-chat', 'a-more', 'b-chat']);
    // each portal room shows the server icon; alice was invited to the space when she joined a portal room
    await until(async () => (await stateEvent(rooms.get('lobby')!, 'm.room.avatar'))?.content['url'] === spaceIcon, 'the room icon');
    expect((await membershipIn(spaceId, alice.userId))?.content['membership']).toBe('invite');
    await alice.join(spaceId);
    // a channel moved to another category moves in the space
    const patch = await fetch(`${fake.apiUrl}/v10/channels/${aMore.id}`, {
      method: 'PATCH', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ parent_id: beta.id }),
    });
    expect(patch.status).toBe(200);
    await until(async () => (await childOrder(spaceId)).join() === 'lobby,a-chat,b-chat,a-more', 'the new order in the space');
  });

  it('follows channel names and topics and the server\'s name and icon from Discord', async () => {
    const roomId = rooms.get('lobby') ?? await portal(lobby);
    const spaceId = await spaceOfRoom(roomId);
    const patch = (body: Record<string, unknown>): Promise<Response> => fetch(`${fake.apiUrl}/v10/channels/${lobby.id}`, {
      method: 'PATCH', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    expect((await patch({ name: 'welcome', topic: 'new topic' })).status).toBe(200);
    await until(async () => (await stateEvent(roomId, 'm.room.name'))?.content['name'] === '#welcome (Spaced)', 'the room name');
    await until(async () => (await stateEvent(roomId, 'm.room.topic'))?.content['topic'] === 'new topic', 'the room topic');
    const icon2 = Buffer.concat([PNG, Buffer.from('another icon')]);
    fake.updateGuild(spaced.id, { name: 'Spaced Out', icon: { name: 'icon2.png', data: icon2, contentType: 'image/png' } });
    await until(async () => (await stateEvent(spaceId, 'm.room.name'))?.content['name'] === 'Spaced Out', 'the space name');
    await until(async () => (await stateEvent(roomId, 'm.room.name'))?.content['name'] === '#welcome (Spaced Out)', 'the room name with the server\'s new name');
    const newIcon = await until(async () => {
      const url = String((await stateEvent(spaceId, 'm.room.avatar'))?.content['url'] ?? '');
      return url && (await downloadMxc(url)).equals(icon2) ? url : undefined;
    }, 'the new space icon');
    await until(async () => (await stateEvent(roomId, 'm.room.avatar'))?.content['url'] === newIcon, 'the new room icon');
    // and its bridge info names the channel and the server as they are now, with the server's icon
    const info = await until(async () => {
      const i = await bridgeInfo(roomId, spaced.id, lobby.id);
      return (i?.['network'] as { avatar_url?: string } | undefined)?.avatar_url === newIcon ? i : undefined;
    }, 'the bridge info with the server\'s new name and icon');
    expect(info).toEqual(discordInfo(spaced.id, 'Spaced Out', lobby.id, '#welcome', {}, newIcon));
  });

  it('follows a channel renamed and given a new topic while the bridge was stopped; leaves the unchanged ones alone', async () => {
    const away = fake.addChannel(spaced.id, { name: 'before-the-stop', topic: 'the old topic' });
    const roomId = await portal(away);
    const unchanged = rooms.get('b-chat') ?? await portal(bChat);
    const nameEvents = async (id: string): Promise<number> => (await alice.timeline(id)).filter((e) => e.type === 'm.room.name').length;
    const unchangedNames = await nameEvents(unchanged);
    await bridge.stop();
    const patch = await fetch(`${fake.apiUrl}/v10/channels/${away.id}`, {
      method: 'PATCH', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'after-the-stop', topic: 'the new topic' }),
    });
    expect(patch.status).toBe(200);
    await startBridge();
    const guildName = (await until(() => discordNet().client?.guilds.cache.get(spaced.id), 'the bridge to see the server')).name;
    await until(async () => (await stateEvent(roomId, 'm.room.name'))?.content['name'] === `#after-the-stop (${guildName})`, 'the room name');
    await until(async () => (await stateEvent(roomId, 'm.room.topic'))?.content['topic'] === 'the new topic', 'the room topic');
    await until(async () => (await bridgeInfo(roomId, spaced.id, away.id)) !== undefined, 'the bridge info');
    await until(async () => ((await bridgeInfo(roomId, spaced.id, away.id))?.['channel'] as { displayname?: string }).displayname === '#after-the-stop', 'the bridge info naming the channel');
    expect(await nameEvents(unchanged)).toBe(unchangedNames);
  });

  it('renames the channel and sets its topic from Matrix where the bot has Manage Channels; elsewhere says why not', async () => {
    const roomId = rooms.get('a-chat') ?? await portal(aChat);
    await grantPower(roomId, alice.userId, 100);
    const namesAndTopicsFromBot = async (): Promise<MatrixEventJson[]> =>
      (await alice.timeline(roomId)).filter((e) => e.sender === botId && (e.type === 'm.room.name' || e.type === 'm.room.topic'));
    const before = (await namesAndTopicsFromBot()).length;
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.name/`, { name: '#Alpha Talk (Spaced Out)' });
    await until(() => fake.channel(aChat.id)?.name === 'alpha-talk', 'the Discord channel to be renamed');
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { topic: 'set on Matrix' });
    await until(() => (fake.channel(aChat.id) as { topic?: string | null }).topic === 'set on Matrix', 'the Discord topic');
    // the channel's echo does not come back as a second name or topic from the bot. A message said
    // after the changes, once in the room, shows the bridge has handled their CHANNEL_UPDATEs (the
    // channel's events are reported in order, into the room's ordered queue)
    fake.injectUserMessage(aChat.id, bob.id, 'said after the rename');
    await alice.waitForEvent(roomId, (e) => body(e) === 'said after the rename');
    expect(await namesAndTopicsFromBot()).toHaveLength(before);
    expect((await stateEvent(roomId, 'm.room.name'))?.content['name']).toBe('#Alpha Talk (Spaced Out)');

    // a server where the bot lacks Manage Channels: nothing changes on Discord, and the room is told
    const restricted = restrictedGuild('Locked Down');
    await until(() => discordNet().client?.guilds.cache.get(restricted.id)?.members.me?.permissions.has(P.ManageChannels) === false, 'the bot\'s role change');
    const ch = fake.addChannel(restricted.id, { name: 'locked' });
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const lockedRoom = await alice.join(`#discord_${restricted.id}_${ch.id}:localhost`);
    await grantPower(lockedRoom, alice.userId, 100);
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(lockedRoom)}/state/m.room.name/`, { name: 'unlocked' });
    const told = await alice.waitForEvent(lockedRoom, (e) => e.sender === botId && body(e).startsWith('⚠'));
    expect(body(told)).toMatch(/could not be delivered to Discord: #locked keeps its name on Discord: the bridge bot lacks the Manage Channels permission there$/);
    expect(fake.channel(ch.id)?.name).toBe('locked');
  });

  it('follows a portal room to the room that replaces it, and takes an unlinked room out of the space', async () => {
    const ch = fake.addChannel(spaced.id, { name: 'to-upgrade' });
    const old = await portal(ch);
    const spaceId = await spaceOfRoom(old);
    await until(async () => (await children(spaceId)).includes(old), 'the portal room in the space');
    await grantPower(old, alice.userId, 100);
    const next = await upgrade(old);
    await alice.waitForEvent(next, (e) => e.sender === botId && body(e).startsWith(`This room replaces ${old}`));
    // the space lists the new room in the channel's place, and no longer the old one, which stops claiming the space
    await until(async () => { const c = await children(spaceId); return c.includes(next) && !c.includes(old); }, 'the new room to replace the old one in the space');
    expect((await stateEvent(next, 'm.space.parent', spaceId))?.content).toMatchObject({ canonical: true });
    await until(() => parentGone(old, spaceId), 'the old room to stop claiming the space');
    // unlinked, the room leaves the space too (it lives on as a Matrix room)
    await alice.sendText(next, `!trestle unlink discord ${ch.id}`);
    await alice.waitForEvent(next, (e) => e.sender === botId && body(e) === `Unlinked discord ${ch.id}.`);
    await until(async () => !(await children(spaceId)).includes(next), 'the unlinked room to leave the space');
    await until(() => parentGone(next, spaceId), 'the unlinked room to stop claiming the space');
  });

  it('takes rooms that no longer bridge out of the space at start, where an older version left them', async () => {
    const ch = fake.addChannel(spaced.id, { name: 'left-behind' });
    const roomId = await portal(ch);
    const spaceId = await spaceOfRoom(roomId);
    await until(async () => (await children(spaceId)).includes(roomId), 'the portal room in the space');
    // the link goes as core's unlink took it before networks were told: straight from the store
    bridge.portals.unlink('discord', ch.id, roomId);
    await bridge.stop();
    await startBridge();
    await until(async () => !(await children(spaceId)).includes(roomId), 'the room to leave the space at start');
    await until(() => parentGone(roomId, spaceId), 'the room to stop claiming the space');
  });
});

describe('Discord bridge: whoever linked a room, across an upgrade and an unlink', () => {
  it('keeps telling whoever linked a plumbed room after it is upgraded, and stops once the new room is unlinked', async () => {
    const ch = channel('upgraded-plumbed');
    const old = await plumbed(ch);
    // alice's admin room: where the bridge tells her about trouble with the channels she linked
    const admin = await alice.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [botId] });
    await alice.waitForEvent(admin, (e) => e.sender === botId && body(e).startsWith('Hello!'));
    const told = async (): Promise<number> =>
      (await alice.timeline(admin)).filter((e) => e.sender === botId && body(e).startsWith('Discord sends the bridge blank messages in #upgraded-plumbed')).length;
    const next = await upgrade(old);
    await alice.waitForEvent(next, (e) => e.sender === botId && body(e).startsWith(`This room replaces ${old}`));
    // a portal room for the channel too: its messages are still bridged after the plumbed room is unlinked
    const portalRoom = await alice.join(`#discord_${guild.id}_${ch.id}:localhost`);
    // without the Message Content intent, Discord sends blank messages: whoever linked the channel is told (once per bridge run)
    const runWithoutIntent = async (): Promise<void> => { await bridge.stop(); await startBridge({ messageContentIntent: false }); };
    try {
      await runWithoutIntent();
      fake.injectUserMessage(ch.id, bob.id, 'unreadable after the upgrade');
      await until(async () => (await told()) === 1, 'alice, who linked the upgraded room, to be told');
      await alice.sendText(next, `!trestle unlink discord ${ch.id}`);
      await alice.waitForEvent(next, (e) => e.sender === botId && body(e) === `Unlinked discord ${ch.id}.`);
      await runWithoutIntent();
      fake.injectUserMessage(ch.id, bob.id, 'unreadable after the unlink');
      // a mention has content even without the intent; it is bridged after the blank message was handled
      fake.injectUserMessage(ch.id, bob.id, `<@${fake.bot.id}> and this one?`);
      await alice.waitForEvent(portalRoom, (e) => body(e).endsWith('and this one?'));
      expect(await told()).toBe(1); // her room no longer bridges the channel: she is not told again
    } finally {
      await bridge.stop();
      await startBridge();
    }
  });
});

describe('Discord bridge: channels that are gone', () => {
  it('unlinks the rooms of a deleted channel after what it said last, telling them why, and ends the link requests waiting there', async () => {
    const doomed = channel('doomed');
    const plumbedRoom = await plumbed(doomed);
    const portalRoom = await alice.join(`#discord_${guild.id}_${doomed.id}:localhost`);
    const asking = await roomWithBot('asks doomed');
    await alice.sendText(asking, `!discord link ${guild.id} ${doomed.id}`);
    await until(() => linkRequest(doomed.id), 'the link request in the channel');
    fake.injectUserMessage(doomed.id, bob.id, 'last words');
    fake.deleteChannel(doomed.id);
    const told = 'ℹ The Discord channel #doomed (Trestle Test) was deleted: this room is no longer linked to it.';
    for (const roomId of [plumbedRoom, portalRoom]) {
      const timeline = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => e.sender === botId && body(e) === told));
      const said = timeline.findIndex((e) => body(e) === 'last words' && e.sender === ghost(bob.id));
      expect(said).toBeGreaterThan(-1);
      expect(timeline.findIndex((e) => e.sender === botId && body(e) === told)).toBeGreaterThan(said);
      await until(() => bridge.portals.forRoom(roomId).length === 0, 'the room\'s link to go');
    }
    const ended = await alice.waitForEvent(asking, (e) => e.sender === botId && body(e).includes('has ended'));
    expect(body(ended)).toBe('The Discord channel #doomed (Trestle Test) was deleted: the request to link it to this room has ended.');
    expect(discordNet().store!.linkRequests().filter((r) => r.channelId === doomed.id)).toEqual([]);
    // what is said in the rooms now goes nowhere, and nobody is warned that it did not arrive
    await alice.sendText(plumbedRoom, 'anyone there?');
    await alice.sendText(portalRoom, 'anyone there?');
    await sleep(2500);
    for (const roomId of [plumbedRoom, portalRoom]) {
      expect((await alice.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('⚠'))).toEqual([]);
    }
  });

  it('unlinks the rooms of a server the bot was removed from, but not those of a server down for a while', async () => {
    const left = fake.addGuild({ name: 'Left Behind' });
    fake.addMember(left.id, mod.id, { roles: [fake.addRole(left.id, { name: 'hooks', permissions: String(P.ManageWebhooks) }).id] });
    fake.addMember(left.id, bob.id);
    const farewell = fake.addChannel(left.id, { name: 'farewell' });
    const roomId = await plumbed(farewell, left);
    const marker = channel('gone-marker');
    const markerRoom = await plumbed(marker);

    // an outage (GUILD_DELETE with unavailable): the server comes back, and so does its channel's traffic
    fake.setGuildUnavailable(left.id, true);
    await until(() => discordNet().client?.guilds.cache.get(left.id)?.available === false, 'the server to be unavailable');
    fake.injectUserMessage(marker.id, bob.id, 'after the outage began'); // later on the gateway than the outage
    await alice.waitForEvent(markerRoom, (e) => body(e) === 'after the outage began');
    await sleep(1000);
    expect(bridge.portals.forRoom(roomId).map((p) => p.remoteChat)).toEqual([farewell.id]);
    fake.setGuildUnavailable(left.id, false);
    await until(() => discordNet().client?.guilds.cache.get(left.id)?.available, 'the server to be back');
    fake.injectUserMessage(farewell.id, bob.id, 'still here');
    await alice.waitForEvent(roomId, (e) => body(e) === 'still here');
    expect((await alice.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('ℹ'))).toEqual([]);

    // removed from the server (GUILD_DELETE without unavailable): the room is told and unlinked, a waiting request ends
    const asking = await roomWithBot('asks farewell');
    await alice.sendText(asking, `!discord link ${left.id} ${farewell.id}`);
    await until(() => linkRequest(farewell.id), 'the link request in the channel');
    fake.removeBot(left.id);
    const told = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('ℹ The bridge bot is no longer'));
    expect(body(told)).toBe('ℹ The bridge bot is no longer in the Discord server Left Behind (it was removed, or the server deleted), so #farewell is out of reach: ' +
      'this room is no longer linked to it.');
    await until(() => bridge.portals.forRoom(roomId).length === 0, 'the room\'s link to go');
    const ended = await alice.waitForEvent(asking, (e) => e.sender === botId && body(e).includes('has ended'));
    expect(body(ended)).toBe('The bridge bot is no longer in the Discord server Left Behind (it was removed, or the server deleted), so #farewell is out of reach: ' +
      'the request to link it to this room has ended.');
    expect(discordNet().store!.linkRequests().filter((r) => r.channelId === farewell.id)).toEqual([]);
    // the other server's rooms are untouched
    expect(bridge.portals.forRoom(markerRoom).map((p) => p.remoteChat)).toEqual([marker.id]);
  });
});
