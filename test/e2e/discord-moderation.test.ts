/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Moderation: members leaving, kicked, banned and unbanned on Discord reach their ghosts; a Matrix
 * kick, ban or unban of a ghost stays in its room (the room is told so); a bridge admin's kick, ban
 * or unban command reaches Discord where the bot may; a role taken on Discord takes the power level
 * it gave the ghost (rolePowers).
 * Shared set-up: discord-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import { AuditLogEvent, PermissionFlagsBits as P, type APIUser } from 'discord-api-types/v10';
import { MatrixUser, type MatrixEventJson } from '../harness/matrix-user.js';
import {
  fake, alice, botId, carol, guild, body, ghost, channel, plumbed, restrictedGuild, membershipIn, startBridge, useDiscordBridge, webhookContents, bridge,
  modsRole, stateEvent,
} from './discord-harness.js';
import { e2e, sleep, until } from './env.js';

useDiscordBridge();

/** The ghost's membership event in a room once it is `membership`. */
const membershipBecomes = (roomId: string, userId: string, membership: string, what: string): Promise<MatrixEventJson> =>
  until(async () => { const m = await membershipIn(roomId, userId); return m?.content['membership'] === membership ? m : undefined; }, what);

/** The bot's moderation requests to the fake (kicks, bans, unbans), in order: `METHOD route status`. */
const moderation = (): string[] => fake.requests.filter((r) => /^\/guilds\/:guild\/(members|bans)\/:user$/.test(r.route ?? '') && r.method !== 'GET')
  .map((r) => `${r.method} ${r.route} ${r.status}`);

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

  it('keeps a Matrix kick, ban or unban of a ghost in its room: the Discord server is untouched, and the room is told once why', async () => {
    const since = moderation().length;
    const here = channel('stays-here');
    const there = channel('stays-there');
    const roomHere = await plumbed(here);
    const roomThere = await plumbed(there);
    const [troll, vandal, outlaw] = ['troll', 'vandal', 'outlaw'].map((username) => member(username)) as [APIUser, APIUser, APIUser];
    for (const u of [troll, vandal, outlaw]) {
      fake.injectUserMessage(here.id, u.id, `${u.username} here`);
      fake.injectUserMessage(there.id, u.id, `${u.username} there`);
    }
    await alice.waitForEvent(roomHere, (e) => body(e) === 'outlaw here');
    await alice.waitForEvent(roomThere, (e) => body(e) === 'outlaw there');
    const told = async (name: string): Promise<string> =>
      body(await alice.waitForEvent(roomHere, (e) => e.sender === botId && body(e).startsWith(`ℹ ${name} `)));

    // alice moderates the room (she made it) but is no bridge admin: her kick stays in the room; the
    // bot's notice, which comes once the bridge has handled the kick, is the marker
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/kick`, { user_id: ghost(troll.id), reason: 'be nice' });
    expect(await told('troll')).toBe('ℹ troll is out of this room only, still in the Discord server: moderating a Matrix room does not reach the whole ' +
      'Discord server. Discord\'s moderators, or a bridge admin with "!discord kick", can kick them there.');
    expect(moderation().slice(since)).toEqual([]);
    expect(fake.member(guild.id, troll.id)).toBeDefined();
    expect((await membershipIn(roomHere, ghost(troll.id)))?.sender).toBe(alice.userId);
    expect((await membershipIn(roomThere, ghost(troll.id)))?.content['membership']).toBe('join');

    // her ban: not in the guild's ban list, nor in the server's other room; the ghost is heard there, not here
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/ban`, { user_id: ghost(vandal.id), reason: 'vandalism' });
    expect(await told('vandal')).toBe('ℹ vandal is banned in this room only, not in the Discord server: moderating a Matrix room does not reach the whole ' +
      'Discord server. Discord\'s moderators, or a bridge admin with "!discord ban", can ban them there.');
    expect(fake.bans(guild.id).has(vandal.id)).toBe(false);
    expect(moderation().slice(since)).toEqual([]);
    expect(fake.member(guild.id, vandal.id)).toBeDefined();
    expect((await membershipIn(roomHere, ghost(vandal.id)))?.content['membership']).toBe('ban');
    fake.injectUserMessage(here.id, vandal.id, 'vandal again here');
    fake.injectUserMessage(there.id, vandal.id, 'vandal again there');
    fake.injectUserMessage(here.id, carol.id, 'after the vandal'); // behind vandal's line in the channel's order
    await alice.waitForEvent(roomThere, (e) => body(e) === 'vandal again there' && e.sender === ghost(vandal.id));
    await alice.waitForEvent(roomHere, (e) => body(e) === 'after the vandal');
    expect((await alice.timeline(roomHere)).filter((e) => body(e) === 'vandal again here')).toEqual([]);
    expect((await membershipIn(roomThere, ghost(vandal.id)))?.content['membership']).toBe('join');

    // she lifts her own ban: nothing to tell, nothing on Discord (her next message, in the room's order, is the marker)
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/unban`, { user_id: ghost(vandal.id) });
    await alice.sendText(roomHere, 'after the unban');
    await until(() => webhookContents(here.id).includes('after the unban'), 'alice\'s message after the unban');
    expect(moderation().slice(since)).toEqual([]);

    // a ban made on Discord reaches the ghost in both rooms; her unban lifts it in her room only, and says so
    fake.banMember(guild.id, outlaw.id, { reason: 'outlawed' });
    await membershipBecomes(roomHere, ghost(outlaw.id), 'ban', 'the Discord ban to reach the ghost here');
    await membershipBecomes(roomThere, ghost(outlaw.id), 'ban', 'the Discord ban to reach the ghost there');
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/unban`, { user_id: ghost(outlaw.id) });
    expect(await told('outlaw')).toBe('ℹ outlaw is unbanned in this room only: their ban in the Discord server stays, as moderating a Matrix room does not ' +
      'reach the whole Discord server. Discord\'s moderators, or a bridge admin with "!discord unban", can lift it there.');
    expect(fake.bans(guild.id).get(outlaw.id)).toBe('outlawed');
    expect(moderation().slice(since)).toEqual([]);
    expect((await membershipIn(roomThere, ghost(outlaw.id)))?.content['membership']).toBe('ban');

    // told once each, and never warned of a failure
    await alice.sendText(roomHere, 'the last word');
    await until(() => webhookContents(here.id).includes('the last word'), 'alice\'s last message');
    const fromBot = (await alice.timeline(roomHere)).filter((e) => e.sender === botId && e.type === 'm.room.message').map(body);
    expect(fromBot.filter((b) => b.startsWith('ℹ'))).toHaveLength(3);
    expect(fromBot.filter((b) => b.startsWith('⚠'))).toEqual([]);
  });

  it('kicks, bans and unbans on Discord for a bridge admin\'s command, where the bot may; elsewhere says why not', async () => {
    const admin = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, 'admin', { displayName: 'Admin' }); // e2e.sh: "@admin:localhost": admin
    expect(admin.userId).toBe('@admin:localhost');
    /** `who` says a command in a room; the bot's answer to it. */
    const say = async (who: MatrixUser, roomId: string, command: string): Promise<string> => {
      const sent = await who.sendText(roomId, command);
      const at = (await who.getEvent(roomId, sent)).origin_server_ts;
      return body(await who.waitForEvent(roomId, (e) => e.sender === botId && e.type === 'm.room.message' && e.origin_server_ts >= at && !body(e).startsWith('ℹ')));
    };
    const here = channel('admin-here');
    const there = channel('admin-there');
    const roomHere = await plumbed(here);
    const roomThere = await plumbed(there);
    await admin.join(roomHere);
    const troll = member('admintroll');
    const vandal = member('adminvandal');
    for (const u of [troll, vandal]) {
      fake.injectUserMessage(here.id, u.id, `${u.username} here`);
      fake.injectUserMessage(there.id, u.id, `${u.username} there`);
    }
    await alice.waitForEvent(roomHere, (e) => body(e) === 'adminvandal here');
    await alice.waitForEvent(roomThere, (e) => body(e) === 'adminvandal there');

    // the commands are the bridge admins': a room moderator who is not one is refused
    expect(await say(alice, roomHere, `!discord ban ${ghost(troll.id)}`)).toBe('You are not allowed to use "ban".');

    // a kick, with its reason in the audit log; Discord's echo takes the ghost out of the server's rooms
    const since = moderation().length;
    expect(await say(admin, roomHere, `!discord kick ${ghost(troll.id)} be nice`)).toBe('Kicked admintroll from Trestle Test on Discord.');
    expect(moderation().slice(since)).toEqual(['DELETE /guilds/:guild/members/:user 204']);
    expect(fake.member(guild.id, troll.id)).toBeUndefined();
    expect(fake.auditLog(guild.id).at(-1)).toMatchObject({ action_type: AuditLogEvent.MemberKick, target_id: troll.id, user_id: fake.bot.id,
      reason: `Kicked on Matrix by Admin (${admin.userId}): be nice` });
    for (const roomId of [roomHere, roomThere]) {
      const kicked = await membershipBecomes(roomId, ghost(troll.id), 'leave', 'the ghost kicked from the server\'s rooms');
      expect(kicked.sender).toBe(botId);
      expect(kicked.content['reason']).toBe(`kicked from the Discord server by trestle-bot: Kicked on Matrix by Admin (${admin.userId}): be nice`);
    }

    // a ban by Discord id, with its reason; the echo bans the ghost in the server's rooms
    expect(await say(admin, roomHere, `!discord ban ${vandal.id} vandalism`)).toBe('Banned adminvandal from Trestle Test on Discord.');
    expect(fake.bans(guild.id).get(vandal.id)).toBe(`Banned on Matrix by Admin (${admin.userId}): vandalism`);
    expect(moderation().at(-1)).toBe('PUT /guilds/:guild/bans/:user 204');
    for (const roomId of [roomHere, roomThere]) await membershipBecomes(roomId, ghost(vandal.id), 'ban', 'the ghost banned in the server\'s rooms');

    // an unban lifts the Discord ban; its echo lifts the ghost's bans
    expect(await say(admin, roomHere, `!discord unban ${ghost(vandal.id)}`)).toBe('Lifted the ban of adminvandal in Trestle Test on Discord.');
    expect(fake.bans(guild.id).has(vandal.id)).toBe(false);
    expect(moderation().at(-1)).toBe('DELETE /guilds/:guild/bans/:user 204');
    expect(fake.auditLog(guild.id).at(-1)).toMatchObject({ action_type: AuditLogEvent.MemberBanRemove, target_id: vandal.id,
      reason: `Unbanned on Matrix by Admin (${admin.userId})` });
    for (const roomId of [roomHere, roomThere]) {
      const lifted = await membershipBecomes(roomId, ghost(vandal.id), 'leave', 'the ghost\'s ban lifted in the server\'s rooms');
      expect(lifted.sender).toBe(botId);
    }

    // where the bot lacks Kick Members, the Discord user stays and the admin is told why
    const restricted = restrictedGuild('No Kicking');
    const rch = fake.addChannel(restricted.id, { name: 'nokick' });
    const victim = fake.addUser({ username: 'victim' });
    fake.addMember(restricted.id, victim.id);
    const roomR = await plumbed(rch, restricted);
    await admin.join(roomR);
    fake.injectUserMessage(rch.id, victim.id, 'victim here');
    await alice.waitForEvent(roomR, (e) => body(e) === 'victim here');
    const before = moderation().length;
    expect(await say(admin, roomR, `!discord kick ${ghost(victim.id)}`))
      .toBe('"kick" failed: victim stays on Discord: the bridge bot lacks the Kick Members permission in No Kicking');
    expect(moderation()).toHaveLength(before);
    expect(fake.member(restricted.id, victim.id)).toBeDefined();

    // a ban made on Discord by its owner cannot be lifted without Ban Members: it stays, and the admin is told why
    const outlaw = fake.addUser({ username: 'outlaw2' });
    fake.addMember(restricted.id, outlaw.id);
    fake.injectUserMessage(rch.id, outlaw.id, 'outlaw here');
    await alice.waitForEvent(roomR, (e) => body(e) === 'outlaw here');
    fake.banMember(restricted.id, outlaw.id, { by: carol.id, reason: 'outlawed' });
    await membershipBecomes(roomR, ghost(outlaw.id), 'ban', 'the Discord ban to reach the ghost');
    expect(await say(admin, roomR, `!discord unban ${ghost(outlaw.id)}`))
      .toBe('"unban" failed: outlaw2 is not unbanned on Discord: the bridge bot lacks the Ban Members permission in No Kicking');
    expect(moderation()).toHaveLength(before);
    expect(fake.bans(restricted.id).has(outlaw.id)).toBe(true);
  });
});

describe('Discord bridge: power levels from roles, lowered', () => {
  it('takes a ghost\'s power level when its member loses the role on Discord, also while the bridge was stopped, and when they leave', async () => {
    // rolePowers by the role's id; read at start
    await bridge.stop();
    await startBridge({ rolePowers: { [modsRole.id]: 50 } });
    try {
      const ch = channel('demotions');
      const roomId = await plumbed(ch);
      const levelOf = async (userId: string): Promise<number | undefined> =>
        ((await stateEvent(roomId, 'm.room.power_levels'))?.content['users'] as Record<string, number> | undefined)?.[userId];
      const demoted = member('demoted', [modsRole.id]);
      fake.injectUserMessage(ch.id, demoted.id, 'I moderate');
      await alice.waitForEvent(roomId, (e) => body(e) === 'I moderate' && e.sender === ghost(demoted.id));
      expect(await levelOf(ghost(demoted.id))).toBe(50);

      // the role is taken on Discord (GUILD_MEMBER_UPDATE): the level goes without the member saying anything
      fake.updateMember(guild.id, demoted.id, { roles: [] });
      await until(async () => (await levelOf(ghost(demoted.id))) === undefined, 'the ghost to lose its power level');
      // and given back
      fake.updateMember(guild.id, demoted.id, { roles: [modsRole.id] });
      await until(async () => (await levelOf(ghost(demoted.id))) === 50, 'the ghost to get its power level back');

      // taken while the bridge is stopped: lowered before the member's next message (the level goes first, in the room's order)
      await bridge.stop();
      fake.updateMember(guild.id, demoted.id, { roles: [] });
      await startBridge({ rolePowers: { [modsRole.id]: 50 } });
      fake.injectUserMessage(ch.id, demoted.id, 'demoted while the bridge was away');
      await alice.waitForEvent(roomId, (e) => body(e) === 'demoted while the bridge was away' && e.sender === ghost(demoted.id));
      expect(await levelOf(ghost(demoted.id))).toBeUndefined();

      // a member with the role leaves the server: their ghost leaves the room, and its level goes too
      const leaver = member('modleaves', [modsRole.id]);
      fake.injectUserMessage(ch.id, leaver.id, 'moderating, then leaving');
      await alice.waitForEvent(roomId, (e) => body(e) === 'moderating, then leaving' && e.sender === ghost(leaver.id));
      expect(await levelOf(ghost(leaver.id))).toBe(50);
      fake.memberLeaves(guild.id, leaver.id);
      await membershipBecomes(roomId, ghost(leaver.id), 'leave', 'the leaver\'s ghost to leave');
      await until(async () => (await levelOf(ghost(leaver.id))) === undefined, 'the leaver\'s ghost to lose its power level');
      // nobody was warned of a failure
      const warnings = (await alice.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('⚠'));
      expect(warnings.map(body)).toEqual([]);
    } finally {
      await bridge.stop();
      await startBridge();
    }
  });
});
