/**
 * Matrix → IRC moderation: kicks, bans and unbans of IRC users' ghosts, and Matrix users' power
 * levels as channel modes (when they change, and when a user's connection joins a channel). Each
 * is done on IRC by a connection of ours that is a channel operator there: the acting Matrix
 * user's own connection when it is one (so IRC sees who did it), else the bridge's listener.
 * Without either, the Matrix user is told why nothing happened on IRC.
 */
import { DeliveryError, type MatrixMembership, type MatrixPowerLevels, type NetworkContext } from '@trestle/core';
import type { LeanConnection } from './lean.js';
import { channelChat } from './ids.js';
import { modeChangesForLevel } from './modes.js';
import type { IrcServer } from './server.js';

/** A connection of ours that may moderate a channel, and how to send a line through it. */
interface Actor { nick: string; send(line: string): Promise<void> }

const clean = (text: string): string => text.replace(/[\r\n\0]/g, ' ');

export class Moderation {
  constructor(
    private readonly ctx: () => NetworkContext,
    /** IRC nick for a Matrix user id: a ghost's nick, or a Matrix user's own IRC nick. */
    private readonly nickFor: (server: IrcServer, userId: string) => string | undefined,
  ) {}

  /**
   * The connection that acts for a Matrix user in a channel: theirs if it is an operator there,
   * else the listener if it is one. Otherwise throws `<failure>: <why>` (failure: "the ban of x was not done on IRC").
   */
  private actor(server: IrcServer, channel: string, userId: string, failure: string): Actor {
    const modes = server.events.modes;
    const conn: LeanConnection | undefined = server.clients.get(userId);
    if (conn?.state === 'connected' && conn.isIn(channel) && modes.canKick(channel, conn.nick)) {
      return { nick: conn.nick, send: async (line) => { await conn.send('RAW', channel, line); } };
    }
    if (server.listener.state === 'connected' && modes.canKick(channel, server.listener.nick)) {
      return { nick: server.listener.nick, send: async (line) => { server.listener.raw(line); } };
    }
    const why = conn?.state !== 'connected' ? `you have no IRC connection to ${server.displayName}`
      : !conn.isIn(channel) ? `${conn.nick} is not in ${channel} on ${server.displayName}`
        : `${conn.nick} is not a channel operator in ${channel} on ${server.displayName}`;
    throw new DeliveryError(`${failure}: ${why}`, true);
  }

  /**
   * A Matrix user kicked, banned or unbanned an IRC user's ghost: kick (and ban `nick!*@*`) on IRC,
   * or lift the bans on that nick.
   */
  async kickOrBan(server: IrcServer, channel: string, m: MatrixMembership): Promise<void> {
    const nick = this.nickFor(server, m.target.userId);
    if (!nick) return;
    if (m.membership === 'unban') {
      await this.unban(server, channel, nick, m);
      return;
    }
    const actor = this.actor(server, channel, m.sender.userId, `the ${m.membership} of ${nick} was not done on IRC`);
    const lines = [
      ...(m.membership === 'ban' ? [`MODE ${channel} +b ${nick}!*@*`] : []),
      `KICK ${channel} ${nick} :${clean(m.reason ?? (m.membership === 'ban' ? 'Banned from Matrix' : 'Kicked from Matrix'))}`,
    ];
    server.expectKick(channel, nick);
    for (const line of lines) await actor.send(line);
  }

  private async unban(server: IrcServer, channel: string, nick: string, m: MatrixMembership): Promise<void> {
    const masks = server.events.modes.bansOn(channel, nick);
    if (masks.length === 0) {
      this.ctx().log.debug('a ghost was unbanned on Matrix; no IRC ban on its nick to lift', { channel, nick });
      return;
    }
    const actor = this.actor(server, channel, m.sender.userId, `the ban of ${nick} was not lifted on IRC`);
    // several masks in one line would need the server's MODES limit: one line each is always accepted
    for (const mask of masks) await actor.send(`MODE ${channel} -b ${mask}`);
  }

  /**
   * Matrix power levels of Matrix users (not ghosts) in a bridged channel → membership modes for
   * their IRC nicks, by `modePowers` read backwards (see {@link modeChangesForLevel}). Users
   * without a connection in the channel are skipped: there is nobody on IRC to give a rank to.
   */
  async powerLevels(server: IrcServer, channel: string, pl: MatrixPowerLevels): Promise<void> {
    const problems: string[] = [];
    for (const [userId, level] of Object.entries(pl.changed)) {
      if (this.ctx().remoteUserOf(userId)) continue; // a ghost: its rank comes from IRC, not to it
      const conn = server.clients.get(userId);
      if (!conn || conn.state !== 'connected' || !conn.isIn(channel)) {
        this.ctx().log.debug('power level of a Matrix user who is not in the channel on IRC; no mode to set', { channel, userId, level });
        continue;
      }
      let actor: Actor;
      try {
        actor = this.actor(server, channel, pl.sender.userId, `the rank of ${conn.nick} was not set on IRC`);
      } catch (err) { problems.push((err as DeliveryError).userMessage); continue; }
      const beyondReach = await this.rank(server, channel, conn.nick, level, actor, false);
      if (beyondReach.length) {
        problems.push(`the rank of ${conn.nick} was set only in part on IRC: ${actor.nick} cannot give or take +${beyondReach.join('/+')} in ${channel} on ${server.displayName}`);
      }
    }
    if (problems.length) throw new DeliveryError(problems.join('; '), true);
  }

  /**
   * A Matrix user's connection joined a bridged channel (first message, room join, or rejoin after
   * a reconnect): give its nick the rank of the user's current power level, when a connection of
   * ours can (theirs or the listener). Only gives, never takes (a rank IRC gave, by ChanServ say,
   * stays), and says nothing when it cannot: nobody asked. With several rooms linked to the
   * channel, the lowest level among the rooms the user is joined to counts, so linking a room of
   * one's own to the channel cannot raise one's rank on IRC.
   */
  async rankOnJoin(server: IrcServer, channel: string, userId: string): Promise<void> {
    const ctx = this.ctx();
    const log = ctx.log.child({ server: server.key, channel, user: userId });
    const canAct = (): Actor | undefined => {
      try { return this.actor(server, channel, userId, 'rank on join'); } catch { return undefined; }
    };
    if (!canAct()) { log.debug('no connection of ours can set modes in the channel; the rank of a joining Matrix user is not set'); return; }
    const rooms = new Set(ctx.portals.forChat(channelChat(server.key, channel)).map((p) => p.roomId));
    const levels: number[] = [];
    for (const roomId of rooms) {
      const member = await ctx.matrix.getState<{ membership?: string }>(roomId, 'm.room.member', userId).catch(() => undefined);
      if (member?.membership === 'join') levels.push(await ctx.matrix.powerLevel(roomId, userId));
    }
    const conn = server.clients.get(userId);
    const actor = canAct(); // again: the connections may have changed while Matrix answered
    if (levels.length === 0 || !conn || conn.state !== 'connected' || !conn.isIn(channel) || !actor) return;
    const level = Math.min(...levels);
    const beyondReach = await this.rank(server, channel, conn.nick, level, actor, true);
    if (beyondReach.length) log.info('a joining Matrix user\'s rank was set only in part on IRC', { level, by: actor.nick, beyondReach });
  }

  /** Send the mode changes that give `nick` the rank of `level` (only the `+` ones with `onlyGive`); returns the modes beyond the actor. */
  private async rank(server: IrcServer, channel: string, nick: string, level: number, actor: Actor, onlyGive: boolean): Promise<string[]> {
    const modes = server.events.modes;
    const { changes, beyondReach } = modeChangesForLevel({
      level, held: modes.modesOf(channel, nick), modePowers: server.cfg.modePowers, supported: prefixModes(server),
      setterLevel: modes.levelOf(channel, actor.nick),
    });
    for (const c of changes) if (!onlyGive || c.mode.startsWith('+')) await actor.send(`MODE ${channel} ${c.mode} ${nick}`);
    return onlyGive ? beyondReach.filter((m) => !modes.modesOf(channel, nick).has(m)) : beyondReach;
  }
}

/** The server's membership modes, highest first (ISUPPORT PREFIX, as irc-framework parsed it). */
function prefixModes(server: IrcServer): string[] {
  const prefix = server.listener.client.network.options['PREFIX'] as unknown;
  if (!Array.isArray(prefix)) return ['o', 'v'];
  return prefix.map((p: { mode?: string }) => p.mode).filter((m): m is string => typeof m === 'string');
}
