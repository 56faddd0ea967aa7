/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Moderation: members leaving, kicked and banned on Discord reach their ghosts; Matrix kicks
 * and bans of ghosts reach Discord where the bot may.
 * Shared set-up: discord-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import { GatewayDispatchEvents as E, GatewayIntentBits as I, type APIGuild, type APIUser } from 'discord-api-types/v10';
import {
  fake, alice, botId, guild, mod, body, ghost, channel, plumbed, world, dispatch, addRoute, restrictedGuild, removeMember,
  membershipIn, useDiscordBridge,
} from './discord-harness.js';
import { sleep, until } from './env.js';

useDiscordBridge();

describe('Discord bridge: members leaving, kicked and banned', () => {
  it('reflects a leave, a kick and a ban on Discord on the ghosts, and lifts the ban when Discord does', async () => {
    const ch = channel('departures');
    const roomId = await plumbed(ch);
    const [leaver, kicked, banned, stayer] = ['leaver', 'kicked', 'banned', 'stayer'].map((username) => {
      const u = fake.addUser({ username });
      fake.addMember(guild.id, u.id);
      return u;
    }) as [APIUser, APIUser, APIUser, APIUser];
    for (const u of [stayer, leaver, kicked, banned]) fake.injectUserMessage(ch.id, u.id, `hi from ${u.username}`);
    await alice.waitForEvent(roomId, (e) => body(e) === 'hi from banned');
    removeMember(guild, leaver, 'leave');
    removeMember(guild, kicked, 'kick', mod, 'spamming');
    removeMember(guild, banned, 'ban', mod, 'worse');
    const left = await until(async () => { const m = await membershipIn(roomId, ghost(leaver.id)); return m?.content['membership'] === 'leave' ? m : undefined; }, 'the leaver\'s ghost to leave');
    expect(left.sender).toBe(ghost(leaver.id));
    expect(left.content['reason']).toBe('left the Discord server');
    const kick = await until(async () => { const m = await membershipIn(roomId, ghost(kicked.id)); return m?.content['membership'] === 'leave' ? m : undefined; }, 'the kick');
    expect(kick.sender).toBe(botId);
    expect(kick.content['reason']).toBe('kicked from the Discord server by moddy: spamming');
    const ban = await until(async () => { const m = await membershipIn(roomId, ghost(banned.id)); return m?.content['membership'] === 'ban' ? m : undefined; }, 'the ban');
    expect(ban.content['reason']).toBe('banned in the Discord server by moddy: worse');
    // the ban is lifted on Discord
    dispatch(E.GuildBanRemove, { guild_id: guild.id, user: banned }, I.GuildModeration);
    await until(async () => (await membershipIn(roomId, ghost(banned.id)))?.content['membership'] === 'leave', 'the ghost\'s ban to be lifted');
    // nobody else was touched
    expect((await membershipIn(roomId, ghost(stayer.id)))?.content['membership']).toBe('join');
  });

  it('kicks and bans on Discord for a Matrix kick or ban of a ghost where the bot may; elsewhere says why not', async () => {
    // The fake has no kick or ban endpoints: these answer as Discord does (member gone, GUILD_MEMBER_REMOVE,
    // the ban, the audit-log entry naming the bot).
    const kicksAndBans: string[] = [];
    addRoute({ method: 'DELETE', pattern: '/guilds/:guild/members/:user', auth: true, handle: ({ params: [g, u] }) => {
      const user = world().user(u!);
      kicksAndBans.push(`kick ${u}`);
      removeMember({ id: g! } as APIGuild, user, 'kick', fake.bot);
      return { status: 204 };
    } });
    addRoute({ method: 'PUT', pattern: '/guilds/:guild/bans/:user', auth: true, handle: ({ params: [g, u], body: b }) => {
      kicksAndBans.push(`ban ${u} ${JSON.stringify(b)}`);
      removeMember({ id: g! } as APIGuild, world().user(u!), 'ban', fake.bot);
      return { status: 204 };
    } });
    const here = channel('kick-here');
    const there = channel('kick-there');
    const roomHere = await plumbed(here);
    const roomThere = await plumbed(there);
    const troll = fake.addUser({ username: 'troll' });
    fake.addMember(guild.id, troll.id);
    fake.injectUserMessage(here.id, troll.id, 'troll here');
    fake.injectUserMessage(there.id, troll.id, 'troll there');
    await alice.waitForEvent(roomHere, (e) => body(e) === 'troll here');
    await alice.waitForEvent(roomThere, (e) => body(e) === 'troll there');

    // a Matrix moderator kicks the ghost: the Discord user is kicked from the server
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/kick`, { user_id: ghost(troll.id), reason: 'be nice' });
    await until(() => kicksAndBans.length === 1, 'the kick on Discord');
    expect(kicksAndBans).toEqual([`kick ${troll.id}`]);
    expect(world().guildRecord(guild.id).members.has(troll.id)).toBe(false);
    // Discord's echo removes the ghost from the server's other rooms, not again from the one it came from
    const elsewhere = await until(async () => { const m = await membershipIn(roomThere, ghost(troll.id)); return m?.content['membership'] === 'leave' ? m : undefined; }, 'the ghost kicked elsewhere');
    expect(elsewhere.content['reason']).toBe('kicked from the Discord server by trestle-bot');
    await sleep(2500);
    expect((await alice.timeline(roomHere)).filter((e) => e.sender === botId && body(e).startsWith('⚠'))).toEqual([]);
    expect((await membershipIn(roomHere, ghost(troll.id)))?.sender).toBe(alice.userId);

    // a ban, with its reason in Discord's audit log
    const vandal = fake.addUser({ username: 'vandal' });
    fake.addMember(guild.id, vandal.id);
    fake.injectUserMessage(here.id, vandal.id, 'vandal here');
    await alice.waitForEvent(roomHere, (e) => body(e) === 'vandal here');
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/ban`, { user_id: ghost(vandal.id), reason: 'vandalism' });
    await until(() => kicksAndBans.length === 2, 'the ban on Discord');
    expect(kicksAndBans[1]).toMatch(new RegExp(`^ban ${vandal.id} `));
    const banRequest = fake.requests.find((r) => r.route === '/guilds/:guild/bans/:user')!;
    expect(banRequest.status).toBe(204);
    expect((await membershipIn(roomHere, ghost(vandal.id)))?.content['membership']).toBe('ban');

    // where the bot lacks Kick Members, the Discord user stays and the moderator is told why in the room
    const restricted = restrictedGuild('No Kicking');
    const rch = fake.addChannel(restricted.id, { name: 'nokick' });
    const victim = fake.addUser({ username: 'victim' });
    fake.addMember(restricted.id, victim.id);
    const roomR = await plumbed(rch, restricted);
    fake.injectUserMessage(rch.id, victim.id, 'victim here');
    await alice.waitForEvent(roomR, (e) => body(e) === 'victim here');
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomR)}/kick`, { user_id: ghost(victim.id) });
    const told = await alice.waitForEvent(roomR, (e) => e.sender === botId && body(e).startsWith('⚠'));
    expect(body(told)).toMatch(/could not be delivered to Discord: victim stays on Discord: the bridge bot lacks the Kick Members permission in No Kicking$/);
    expect(kicksAndBans).toHaveLength(2);
    expect(world().guildRecord(restricted.id).members.has(victim.id)).toBe(true);
  });
});
