/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Moderation: members leaving, kicked, banned and unbanned on Discord reach their ghosts; Matrix
 * kicks, bans and unbans of ghosts reach Discord where the bot may.
 * Shared set-up: discord-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import { AuditLogEvent, PermissionFlagsBits as P, type APIUser } from 'discord-api-types/v10';
import type { MatrixEventJson } from '../harness/matrix-user.js';
import { fake, alice, botId, bridge, carol, guild, body, ghost, channel, plumbed, restrictedGuild, membershipIn, startBridge, useDiscordBridge } from './discord-harness.js';
import { sleep, until } from './env.js';

useDiscordBridge();

/** The ghost's membership event in a room once it is `membership`. */
const membershipBecomes = (roomId: string, userId: string, membership: string, what: string): Promise<MatrixEventJson> =>
  until(async () => { const m = await membershipIn(roomId, userId); return m?.content['membership'] === membership ? m : undefined; }, what);

/** A member of the test guild, with roles. */
function member(username: string, roles: string[] = []): APIUser {
  const u = fake.addUser({ username });
  fake.addMember(guild.id, u.id, { roles });
  return u;
}

describe('Discord bridge: members leaving, kicked and banned', () => {
  it('takes out the ghosts of members who left while the bridge was stopped, after what they said then, and no one else', async () => {
    const ch = channel('gone-while-away');
    const roomId = await plumbed(ch);
    const [goes, stays, late] = ['goeswhileaway', 'stayswhileaway', 'spokethenleft'].map((username) => member(username)) as [APIUser, APIUser, APIUser];
    for (const u of [goes, stays]) fake.injectUserMessage(ch.id, u.id, `hi from ${u.username}`);
    await alice.waitForEvent(roomId, (e) => body(e) === 'hi from stayswhileaway');
    await bridge.stop();
    fake.memberLeaves(guild.id, goes.id);
    // one who never spoke before: their line is caught up after the restart, and then they leave too
    fake.injectUserMessage(ch.id, late.id, 'said while the bridge was away');
    fake.memberLeaves(guild.id, late.id);
    await startBridge();
    const left = await membershipBecomes(roomId, ghost(goes.id), 'leave', 'the ghost of the one who left to leave');
    expect(left.sender).toBe(ghost(goes.id));
    expect(left.content['reason']).toBe('left the Discord server');
    await membershipBecomes(roomId, ghost(late.id), 'leave', 'the ghost of the one who spoke, then left, to leave');
    const timeline = await alice.timeline(roomId);
    const said = timeline.findIndex((e) => body(e) === 'said while the bridge was away' && e.sender === ghost(late.id));
    expect(said).toBeGreaterThan(-1);
    expect(timeline.findLastIndex((e) => e.type === 'm.room.member' && e.state_key === ghost(late.id))).toBeGreaterThan(said);
    await sleep(1000);
    expect((await membershipIn(roomId, ghost(stays.id)))?.content['membership']).toBe('join');
  });

  it('reflects a leave, a kick and a ban on Discord on the ghosts, and lifts the ban when Discord does', async () => {
    const ch = channel('departures');
    const roomId = await plumbed(ch);
    const sheriff = member('sheriff', [fake.addRole(guild.id, { name: 'moderators', permissions: String(P.KickMembers | P.BanMembers) }).id]);
    const [leaver, kicked, banned, stayer] = ['leaver', 'kicked', 'banned', 'stayer'].map((username) => member(username)) as [APIUser, APIUser, APIUser, APIUser];
    for (const u of [stayer, leaver, kicked, banned]) fake.injectUserMessage(ch.id, u.id, `hi from ${u.username}`);
    await alice.waitForEvent(roomId, (e) => body(e) === 'hi from banned');
    fake.memberLeaves(guild.id, leaver.id);
    fake.kickMember(guild.id, kicked.id, { by: sheriff.id, reason: 'spamming' });
    fake.banMember(guild.id, banned.id, { by: sheriff.id, reason: 'worse' });
    const left = await membershipBecomes(roomId, ghost(leaver.id), 'leave', 'the leaver\'s ghost to leave');
    expect(left.sender).toBe(ghost(leaver.id));
    expect(left.content['reason']).toBe('left the Discord server');
    const kick = await membershipBecomes(roomId, ghost(kicked.id), 'leave', 'the kick');
    expect(kick.sender).toBe(botId);
    expect(kick.content['reason']).toBe('kicked from the Discord server by sheriff: spamming');
    const ban = await membershipBecomes(roomId, ghost(banned.id), 'ban', 'the ban');
    expect(ban.content['reason']).toBe('banned in the Discord server by sheriff: worse');
    // the ban is lifted on Discord (GUILD_BAN_REMOVE): the ghost is unbanned, and stays out until it speaks again
    fake.unbanMember(guild.id, banned.id, { by: sheriff.id });
    const unbanned = await membershipBecomes(roomId, ghost(banned.id), 'leave', 'the ghost\'s ban to be lifted');
    expect(unbanned.sender).toBe(botId);
    // nobody else was touched
    expect((await membershipIn(roomId, ghost(stayer.id)))?.content['membership']).toBe('join');
  });

  it('kicks, bans and unbans on Discord for a Matrix kick, ban or unban of a ghost where the bot may; elsewhere says why not', async () => {
    const moderation = (): string[] => fake.requests.filter((r) => /^\/guilds\/:guild\/(members|bans)\/:user$/.test(r.route ?? '') && r.method !== 'GET')
      .map((r) => `${r.method} ${r.route} ${r.status}`);
    const warnings = async (roomId: string): Promise<MatrixEventJson[]> => (await alice.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('⚠'));
    const here = channel('kick-here');
    const there = channel('kick-there');
    const roomHere = await plumbed(here);
    const roomThere = await plumbed(there);
    const troll = member('troll');
    fake.injectUserMessage(here.id, troll.id, 'troll here');
    fake.injectUserMessage(there.id, troll.id, 'troll there');
    await alice.waitForEvent(roomHere, (e) => body(e) === 'troll here');
    await alice.waitForEvent(roomThere, (e) => body(e) === 'troll there');

    // a Matrix moderator kicks the ghost: the Discord user is kicked from the server, with the reason in the audit log
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/kick`, { user_id: ghost(troll.id), reason: 'be nice' });
    await until(() => moderation().length === 1, 'the kick on Discord');
    expect(moderation()).toEqual(['DELETE /guilds/:guild/members/:user 204']);
    expect(fake.member(guild.id, troll.id)).toBeUndefined();
    expect(fake.auditLog(guild.id).at(-1)).toMatchObject({ action_type: AuditLogEvent.MemberKick, target_id: troll.id, user_id: fake.bot.id,
      reason: `Kicked on Matrix by Alice (${alice.userId}): be nice` });
    // Discord's echo removes the ghost from the server's other rooms, not again from the one it came from
    const elsewhere = await membershipBecomes(roomThere, ghost(troll.id), 'leave', 'the ghost kicked elsewhere');
    expect(elsewhere.content['reason']).toBe(`kicked from the Discord server by trestle-bot: Kicked on Matrix by Alice (${alice.userId}): be nice`);
    await sleep(2500);
    expect(await warnings(roomHere)).toEqual([]);
    expect((await membershipIn(roomHere, ghost(troll.id)))?.sender).toBe(alice.userId);

    // a ban, with its reason on Discord; the echo bans the ghost in the server's other room
    const vandal = member('vandal');
    fake.injectUserMessage(here.id, vandal.id, 'vandal here');
    fake.injectUserMessage(there.id, vandal.id, 'vandal there');
    await alice.waitForEvent(roomHere, (e) => body(e) === 'vandal here');
    await alice.waitForEvent(roomThere, (e) => body(e) === 'vandal there');
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/ban`, { user_id: ghost(vandal.id), reason: 'vandalism' });
    await until(() => fake.bans(guild.id).has(vandal.id), 'the ban on Discord');
    expect(fake.bans(guild.id).get(vandal.id)).toBe(`Banned on Matrix by Alice (${alice.userId}): vandalism`);
    expect(moderation().at(-1)).toBe('PUT /guilds/:guild/bans/:user 204');
    expect((await membershipIn(roomHere, ghost(vandal.id)))?.content['membership']).toBe('ban');
    await membershipBecomes(roomThere, ghost(vandal.id), 'ban', 'the ghost banned elsewhere');

    // a Matrix unban lifts the Discord ban; Discord's echo lifts the ghost's ban in the other room only
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/unban`, { user_id: ghost(vandal.id) });
    await until(() => !fake.bans(guild.id).has(vandal.id), 'the Discord ban to be lifted');
    expect(moderation().at(-1)).toBe('DELETE /guilds/:guild/bans/:user 204');
    expect(fake.auditLog(guild.id).at(-1)).toMatchObject({ action_type: AuditLogEvent.MemberBanRemove, target_id: vandal.id,
      reason: `Unbanned on Matrix by Alice (${alice.userId})` });
    const liftedThere = await membershipBecomes(roomThere, ghost(vandal.id), 'leave', 'the ghost unbanned elsewhere');
    expect(liftedThere.sender).toBe(botId);
    await sleep(1500);
    expect(await warnings(roomHere)).toEqual([]);
    expect((await membershipIn(roomHere, ghost(vandal.id)))?.sender).toBe(alice.userId);

    // where the bot lacks Kick Members, the Discord user stays and the moderator is told why in the room
    const restricted = restrictedGuild('No Kicking');
    const rch = fake.addChannel(restricted.id, { name: 'nokick' });
    const victim = fake.addUser({ username: 'victim' });
    fake.addMember(restricted.id, victim.id);
    const roomR = await plumbed(rch, restricted);
    fake.injectUserMessage(rch.id, victim.id, 'victim here');
    await alice.waitForEvent(roomR, (e) => body(e) === 'victim here');
    const before = moderation().length;
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomR)}/kick`, { user_id: ghost(victim.id) });
    const told = await alice.waitForEvent(roomR, (e) => e.sender === botId && body(e).startsWith('⚠'));
    expect(body(told)).toMatch(/could not be delivered to Discord: victim stays on Discord: the bridge bot lacks the Kick Members permission in No Kicking$/);
    expect(moderation()).toHaveLength(before);
    expect(fake.member(restricted.id, victim.id)).toBeDefined();

    // a ban made on Discord by its owner reaches the ghost; a Matrix unban cannot lift it without Ban
    // Members: the Discord ban stays, and the moderator is told why in the room
    const outlaw = fake.addUser({ username: 'outlaw' });
    fake.addMember(restricted.id, outlaw.id);
    fake.injectUserMessage(rch.id, outlaw.id, 'outlaw here');
    await alice.waitForEvent(roomR, (e) => body(e) === 'outlaw here');
    fake.banMember(restricted.id, outlaw.id, { by: carol.id, reason: 'outlawed' });
    await membershipBecomes(roomR, ghost(outlaw.id), 'ban', 'the Discord ban to reach the ghost');
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomR)}/unban`, { user_id: ghost(outlaw.id) });
    const toldUnban = await alice.waitForEvent(roomR, (e) => e.sender === botId && body(e).startsWith('⚠') && e.event_id !== told.event_id);
    expect(body(toldUnban)).toMatch(/could not be delivered to Discord: outlaw is not unbanned on Discord: the bridge bot lacks the Ban Members permission in No Kicking$/);
    expect(moderation()).toHaveLength(before);
    expect(fake.bans(restricted.id).has(outlaw.id)).toBe(true);
  });
});
