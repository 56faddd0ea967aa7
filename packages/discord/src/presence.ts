/**
 * Discord presence → the Matrix presence of the user's ghost (config `presence`, off by default: it
 * needs the privileged Presence intent, and big servers send a lot of it).
 *
 * Discord says a member's status once per server they share with the bot (PRESENCE_UPDATE, also for
 * a game starting or a song changing); Matrix has one presence per user. Who is online when a gateway
 * session starts (the bot connecting, a new session after a lost one, a server joined or back after an
 * outage) comes with no PRESENCE_UPDATE: it is only in the server's GUILD_CREATE, read here as it
 * arrives. So what is sent is only the status and the custom status text, and only when they differ
 * from what the ghost shows already. Someone offline is in no `presences`, and in a server past
 * discord.js's `large_threshold` (50 members) not even in its `members`: a user who went offline while
 * no session was open is found only by who a new session did not name (see {@link PresenceBridge.sessionReady}).
 * Only ghosts the bridge has made (people who spoke, reacted or typed in a bridged channel) get a
 * presence; the bot's own is ignored.
 *
 * Synapse turns a user who never syncs offline 30 s after their last presence update, so the
 * presence of ghosts that are not offline is said again every `presenceRefreshSeconds` (by core's
 * GhostPresences, which also sends only changes, one user's in order).
 */
import { GhostPresences, type GhostPresence, type GhostPresencesDeps, type MatrixPresence } from '@trestle/core';
import { ActivityType, Events, GatewayDispatchEvents, type Client, type GatewayGuildCreateDispatchData, type Presence } from 'discord.js';
import { discordUser } from './ids.js';

/** What Discord says of a member (`status`, `activities`), as discord.js and the gateway both give it. */
export interface DiscordPresence {
  status: string;
  activities: readonly { type: number; state?: string | null; emoji?: { name?: string | null; id?: string | null } | null }[];
}

export const DND_STATUS_MSG = 'Do not disturb';
const OFFLINE: GhostPresence = { presence: 'offline' };

/**
 * Discord status → Matrix presence: online → online; idle → unavailable; dnd → unavailable with
 * "Do not disturb"; offline (and invisible) → offline. A custom status (its text, after its emoji
 * when that is a plain Unicode one) is the status message, in place of "Do not disturb".
 */
export function ghostPresence(p: DiscordPresence): GhostPresence {
  const presence: MatrixPresence = p.status === 'online' ? 'online' : p.status === 'idle' || p.status === 'dnd' ? 'unavailable' : 'offline';
  if (presence === 'offline') return { presence }; // Discord shows no custom status for someone offline
  const custom = p.activities.find((a) => a.type === ActivityType.Custom);
  const emoji = custom?.emoji && !custom.emoji.id ? custom.emoji.name ?? '' : ''; // a server emoji's name means nothing here
  const text = [emoji, custom?.state?.trim() ?? ''].filter(Boolean).join(' ');
  const statusMsg = text || (p.status === 'dnd' ? DND_STATUS_MSG : undefined);
  return statusMsg ? { presence, statusMsg } : { presence };
}

/** Discord's side: which events say what of whom. Sending only changes, in order, and repeating them is core's {@link GhostPresences}. */
export class PresenceBridge {
  private readonly ghosts: GhostPresences;
  /** Users the bridge was told are not offline, ever: whose ghost may show so (what it shows, `ghosts` knows). */
  private readonly seen = new Set<string>();
  /** From a new session's READY to its ready: the users it said anything of (GUILD_CREATE, PRESENCE_UPDATE). */
  private heard: Set<string> | undefined;

  constructor(d: GhostPresencesDeps) {
    this.ghosts = new GhostPresences(d);
  }

  attach(client: Client): void {
    client.on(Events.PresenceUpdate, (_old, now: Presence) => {
      if (now.userId === client.user?.id) return;
      this.update(now.userId, ghostPresence({ status: now.status, activities: now.activities }));
    });
    // The raw event, not discord.js's `guild.presences` (filled from it without an event): that cache keeps
    // the presences of an earlier session, so it cannot tell who went offline while no session was open.
    client.ws.on(GatewayDispatchEvents.GuildCreate, (data: GatewayGuildCreateDispatchData) => this.guildCreated(data, client.user?.id));
    // A new session (not a resumed one, which replays what it missed): READY, a GUILD_CREATE per server, then
    // discord.js's shardReady once they all came (or it gave up waiting for servers in an outage).
    client.ws.on(GatewayDispatchEvents.Ready, () => this.sessionStarted());
    client.on(Events.ShardReady, () => this.sessionReady());
  }

  /** A new gateway session's READY: what it says of whom is gathered until {@link sessionReady}. */
  sessionStarted(): void {
    this.heard = new Set();
  }

  /**
   * A new session has had its servers' GUILD_CREATEs: whoever the bridge shows as not offline that none of
   * them named goes offline. Discord names only members who are not offline, and in a large server (past
   * `large_threshold`, 50 members with discord.js) lists no offline member at all, so a user who went
   * offline while the bridge had no session is named nowhere, and their ghost would show them online for
   * good (core says it again every presenceRefreshSeconds). A server still in an outage names no one: its
   * members go offline until its GUILD_CREATE says otherwise.
   */
  sessionReady(): void {
    const heard = this.heard;
    this.heard = undefined;
    if (!heard) return;
    // (core sends only a change, after any still going out for the user: a ghost offline already costs nothing)
    for (const userId of this.seen) if (!heard.has(userId)) this.update(userId, OFFLINE);
  }

  /**
   * A server's GUILD_CREATE: its `presences` are set as a PRESENCE_UPDATE would set them. A member it lists
   * without a presence is offline (Discord leaves offline members out); their ghost goes offline if it
   * showed otherwise, as their PRESENCE_UPDATE went to a session that is gone.
   */
  guildCreated(d: GatewayGuildCreateDispatchData, self: string | undefined): void {
    if (d.unavailable) return; // an outage: no members, no presences
    const listed = new Set<string>();
    for (const p of d.presences ?? []) {
      listed.add(p.user.id);
      if (p.user.id !== self) this.update(p.user.id, ghostPresence({ status: p.status ?? 'offline', activities: p.activities ?? [] }));
    }
    for (const m of d.members ?? []) {
      const userId = m.user.id;
      if (userId === self || listed.has(userId)) continue;
      if ((this.ghosts.showing(discordUser(userId))?.presence ?? 'offline') !== 'offline') this.update(userId, OFFLINE);
    }
  }

  /** A member's presence as Discord says it now: sent to their ghost if it changed. One user's changes go out in order. */
  update(userId: string, next: GhostPresence): void {
    this.heard?.add(userId);
    if (next.presence !== 'offline') this.seen.add(userId);
    void this.ghosts.update(discordUser(userId), next);
  }

  async stop(): Promise<void> {
    await this.ghosts.stop();
  }
}
