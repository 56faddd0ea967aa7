/**
 * Members leaving, kicked or banned, both ways.
 *
 * Discord → Matrix: Discord says a member left (GUILD_MEMBER_REMOVE) without saying whether they
 * were kicked; a kick shows as an audit-log entry (GUILD_AUDIT_LOG_ENTRY_CREATE, needs the View Audit
 * Log permission), a ban as GUILD_BAN_ADD, in no guaranteed order. So a departure waits a moment for
 * the rest of its story, then the ghost leaves, is kicked from or banned in the rooms it was brought
 * into (not rooms it never joined: a kick there would fail). A ban lifted on Discord (GUILD_BAN_REMOVE)
 * lifts the ghost's bans it caused.
 *
 * Matrix → Discord: a Matrix kick, ban or unban of a Discord user's ghost stays in its room. Whoever
 * moderates one Matrix room is not thereby a moderator of the whole Discord server (nor of the
 * server's other rooms, where Discord's echo of a ban would reach): the room is told so, once, in a
 * notice ({@link staysInRoomNotice}). Core does not tell a network whether the sender of a membership
 * change is a bridge admin, so the server-wide kick, ban and unban are commands with the `admin`
 * permission (`!discord kick|ban|unban <user> [reason]`, {@link applyMatrixRemoval}), done when the
 * bot may (Kick / Ban Members and a higher role), else the admin is told why not; Discord's echo then
 * reaches the ghost in every room of the server.
 */
import { DeliveryError, type MatrixMembership } from '@trestle/core';
import { AuditLogEvent, Events, PermissionFlagsBits, type Client, type Guild, type GuildMember, type PartialGuildMember, type User } from 'discord.js';
import { toDeliveryError } from './errors.js';
import { discordCode } from './webhooks.js';

export type DepartureKind = 'leave' | 'kick' | 'ban';

/** What is known of a member's departure so far. */
export interface DepartureClues {
  removed?: boolean;
  banned?: { reason: string | null };
  audit?: { kind: 'kick' | 'ban'; executorId: string | null; reason: string | null };
}

export interface Departure { kind: DepartureKind; executorId: string | null; reason: string | null }

/** Whether the story is complete (nothing more will come), or what it is when the wait is over (`final`). */
export function departureOf(c: DepartureClues, final: boolean): Departure | undefined {
  if (c.banned) {
    if (c.audit?.kind === 'ban') return { kind: 'ban', executorId: c.audit.executorId, reason: c.audit.reason ?? c.banned.reason };
    return final ? { kind: 'ban', executorId: null, reason: c.banned.reason } : undefined;
  }
  if (c.removed && c.audit?.kind === 'kick') return { kind: 'kick', executorId: c.audit.executorId, reason: c.audit.reason };
  if (!final) return undefined;
  if (c.audit?.kind === 'ban') return { kind: 'ban', executorId: c.audit.executorId, reason: c.audit.reason };
  return c.removed ? { kind: 'leave', executorId: null, reason: null } : undefined;
}

/** The reason the Matrix side shows for a departure on Discord. */
export function departureReason(d: Departure, executorName: string | undefined): string | undefined {
  if (d.kind === 'leave') return 'left the Discord server';
  const by = executorName ? ` by ${executorName}` : '';
  return `${d.kind === 'kick' ? 'kicked from' : 'banned in'} the Discord server${by}${d.reason ? `: ${d.reason}` : ''}`;
}

export interface DeparturesDeps {
  /** Report a settled departure (the network turns it into ghost memberships). */
  report(guild: Guild, user: User, member: GuildMember | PartialGuildMember | undefined, d: Departure): Promise<void>;
  /** A ban was lifted on Discord. */
  unbanned(guild: Guild, user: User): Promise<void>;
  onError(err: unknown): void;
  /** How long a departure waits for its audit-log entry or ban. */
  graceMs: number;
}

interface Pending { clues: DepartureClues; guild: Guild; user?: User; member?: GuildMember | PartialGuildMember; timer: NodeJS.Timeout }

export class Departures {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly d: DeparturesDeps) {}

  attach(client: Client): void {
    client.on(Events.GuildMemberRemove, (member) => this.note(member.guild, member.user, { removed: true }, member));
    client.on(Events.GuildBanAdd, (ban) => this.note(ban.guild, ban.user, { banned: { reason: ban.reason ?? null } }));
    client.on(Events.GuildBanRemove, (ban) => { void this.d.unbanned(ban.guild, ban.user).catch((err: unknown) => this.d.onError(err)); });
    client.on(Events.GuildAuditLogEntryCreate, (entry, guild) => {
      const kind = entry.action === AuditLogEvent.MemberKick ? 'kick' : entry.action === AuditLogEvent.MemberBanAdd ? 'ban' : undefined;
      if (!kind || !entry.targetId) return;
      this.note(guild, undefined, { audit: { kind, executorId: entry.executorId, reason: entry.reason } }, undefined, entry.targetId);
    });
  }

  private note(guild: Guild, user: User | undefined, clue: DepartureClues, member?: GuildMember | PartialGuildMember, userId = user?.id): void {
    if (!userId) return;
    const key = `${guild.id}\u0000${userId}`;
    let p = this.pending.get(key);
    if (!p) {
      p = { clues: {}, guild, timer: setTimeout(() => this.settle(key, true), this.d.graceMs) };
      this.pending.set(key, p);
    }
    Object.assign(p.clues, clue);
    if (user) p.user = user;
    if (member) p.member = member;
    this.settle(key, false);
  }

  private settle(key: string, final: boolean): void {
    const p = this.pending.get(key);
    if (!p) return;
    const d = departureOf(p.clues, final);
    if (!d) {
      if (final) this.pending.delete(key); // only an audit entry: someone not in the server
      return;
    }
    clearTimeout(p.timer);
    this.pending.delete(key);
    if (!p.user) return;
    void this.d.report(p.guild, p.user, p.member, d).catch((err: unknown) => this.d.onError(err));
  }

  /** Settle everything now (shutdown). */
  flush(): void {
    for (const key of [...this.pending.keys()]) this.settle(key, true);
  }
}

/**
 * Why a Matrix kick, ban or unban of a Discord user's ghost did nothing on Discord: told in the room.
 * `via`: `member` for a Discord user; `webhook` for what someone's webhook posted (no member to remove).
 * `command`: how a bridge admin says it on Discord's side (`!discord ban`...).
 */
export function staysInRoomNotice(kind: 'kick' | 'ban' | 'unban', name: string, via: 'member' | 'webhook', command: string): string {
  if (via === 'webhook') {
    return `ℹ ${name} is ${kind === 'kick' ? 'out of' : kind === 'ban' ? 'banned in' : 'unbanned in'} this room only: they post through a webhook on Discord, ` +
      `where there is no member to ${kind}.`;
  }
  const why = 'moderating a Matrix room does not reach the whole Discord server';
  const admins = `Discord's moderators, or a bridge admin with "${command} ${kind}",`;
  if (kind === 'kick') return `ℹ ${name} is out of this room only, still in the Discord server: ${why}. ${admins} can kick them there.`;
  if (kind === 'ban') return `ℹ ${name} is banned in this room only, not in the Discord server: ${why}. ${admins} can ban them there.`;
  return `ℹ ${name} is unbanned in this room only: their ban in the Discord server stays, as ${why}. ${admins} can lift it there.`;
}

/** What `kick`, `ban` and `unban` are given: a user (their ghost or Discord id) and, after it, a reason. */
export function moderationArgs(text: string): { who: string; reason?: string } {
  const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(text);
  const reason = m?.[2]?.trim();
  return { who: m?.[1] ?? '', ...(reason ? { reason } : {}) };
}

/**
 * Kick or ban a Discord user from a server for a bridge admin on Matrix; returns what to tell them, or
 * throws a permanent {@link DeliveryError} saying why the bot may not.
 */
export async function applyMatrixRemoval(guild: Guild, userId: string, change: Pick<MatrixMembership, 'membership' | 'sender' | 'reason'>): Promise<string> {
  const kind = change.membership;
  if (kind !== 'kick' && kind !== 'ban') throw new Error(`not a removal: ${kind}`);
  const member = guild.members.cache.get(userId) ?? await guild.members.fetch(userId).catch(() => undefined);
  const user = member?.user ?? guild.client.users.cache.get(userId) ?? await guild.client.users.fetch(userId).catch(() => undefined);
  const name = member?.displayName ?? user?.displayName ?? userId;
  const me = guild.members.me;
  const permission = kind === 'kick' ? PermissionFlagsBits.KickMembers : PermissionFlagsBits.BanMembers;
  const permissionName = kind === 'kick' ? 'Kick Members' : 'Ban Members';
  if (!me?.permissions.has(permission)) {
    throw new DeliveryError(`${name} stays on Discord: the bridge bot lacks the ${permissionName} permission in ${guild.name}`, true);
  }
  if (member && !member.manageable) {
    throw new DeliveryError(`${name} stays on Discord: their highest role is not below the bridge bot's`, true);
  }
  const reason = `${kind === 'kick' ? 'Kicked' : 'Banned'} on Matrix by ${change.sender.displayName} (${change.sender.userId})${change.reason ? `: ${change.reason}` : ''}`;
  try {
    if (kind === 'kick') {
      if (!member) return `${name} is not in ${guild.name} on Discord: nobody to kick.`;
      await guild.members.kick(userId, reason);
      return `Kicked ${name} from ${guild.name} on Discord.`;
    }
    await guild.bans.create(userId, { reason });
    return `Banned ${name} from ${guild.name} on Discord.`;
  } catch (err) {
    throw toDeliveryError(err, kind);
  }
}

const UNKNOWN_BAN = 10026;

/**
 * Lift a Discord ban for a bridge admin on Matrix; returns what to tell them, or throws a permanent
 * {@link DeliveryError} saying why the bot may not.
 */
export async function applyMatrixUnban(guild: Guild, userId: string, change: Pick<MatrixMembership, 'sender' | 'reason'>): Promise<string> {
  const user = guild.client.users.cache.get(userId) ?? await guild.client.users.fetch(userId).catch(() => undefined);
  const name = user?.displayName ?? userId;
  if (!guild.members.me?.permissions.has(PermissionFlagsBits.BanMembers)) {
    // named, like the kick and ban refusals; and without saying a ban stays: without Ban Members the
    // bot cannot even see whether there is one
    throw new DeliveryError(`${name} is not unbanned on Discord: the bridge bot lacks the Ban Members permission in ${guild.name}`, true);
  }
  const reason = `Unbanned on Matrix by ${change.sender.displayName} (${change.sender.userId})${change.reason ? `: ${change.reason}` : ''}`;
  try {
    await guild.bans.remove(userId, reason);
    return `Lifted the ban of ${name} in ${guild.name} on Discord.`;
  } catch (err) {
    if (discordCode(err) === UNKNOWN_BAN) return `${name} is not banned in ${guild.name} on Discord: nothing to lift.`;
    throw toDeliveryError(err, 'unban');
  }
}

/** How many users one member request asks about (Discord's limit for `user_ids`). */
const MEMBER_REQUEST_IDS = 100;

/**
 * Which of these users are no longer members of the server, asked of Discord 100 at a time (gateway
 * member requests by id, which need no privileged intent). For a session that missed departures.
 */
export async function notMembers(guild: Guild, userIds: readonly string[]): Promise<string[]> {
  const gone: string[] = [];
  for (let i = 0; i < userIds.length; i += MEMBER_REQUEST_IDS) {
    const ids = userIds.slice(i, i + MEMBER_REQUEST_IDS);
    const found = await guild.members.fetch({ user: ids });
    for (const id of ids) if (!found.has(id)) gone.push(id);
  }
  return gone;
}
