/**
 * IRC away status → the Matrix presence of IRC users' ghosts (server config `presence`, off by default).
 *
 * What the listener sees decides: someone in a bridged channel is online; away (`AWAY :message`, which
 * IRCv3 `away-notify` sends to everyone sharing a channel, and again right after the JOIN of someone
 * who is away) is unavailable, with the away message as the status message; back (`AWAY` alone) is
 * online again; gone from every bridged channel (QUIT, PART, KICK) is offline. Who is away already
 * when the listener joins a channel comes from WHO's H (here) / G (gone) flag, which has no message:
 * their ghost is unavailable without one until they say more. The bridge's own connections (the
 * listener, Matrix users' connections) are left out: a Matrix user's presence is their own.
 *
 * Only ghosts that exist get a presence, and an IRC user's ghost is made when the join the listener
 * reported is delivered, a moment after it is seen: whoever could not be given a presence for want of
 * a ghost is tried again every {@link RETRY_MS} for a while. Sending only changes, one user's in order,
 * and saying it again before the homeserver times it out is core's GhostPresences.
 */
import { GhostPresences, type GhostPresence, type NetworkContext, type RemoteUserId } from '@trestle/core';
import { stripFormatting } from './convert/index.js';
import { ircLower } from './ids.js';

/** What the listener knows of an IRC user: in a bridged channel or not, and away or not (the message; '' when not known). */
export interface IrcUserState { inChannel: boolean; away?: string }

/** The Matrix presence of an IRC user in this state; an away message loses its IRC formatting. */
export function ircGhostPresence(s: IrcUserState): GhostPresence {
  if (!s.inChannel) return { presence: 'offline' };
  if (s.away === undefined) return { presence: 'online' };
  const statusMsg = stripFormatting(s.away).trim();
  return statusMsg ? { presence: 'unavailable', statusMsg } : { presence: 'unavailable' };
}

/** How often a user whose ghost did not exist yet is tried again, and how many times at most. */
export const RETRY_MS = 2_000;
const RETRIES = 30;

export interface IrcPresenceDeps {
  /** Is this nick in a bridged channel, as the listener sees it? */
  inChannel(nick: string): boolean;
  /** Is this nick one of the bridge's own connections? */
  isOwn(nick: string): boolean;
  /** The remote user id of a nick's ghost. */
  userOf(nick: string): RemoteUserId;
  setPresence: NetworkContext['matrix']['setPresence'];
  refreshSeconds: number;
  log: NetworkContext['log'];
}

export class IrcPresence {
  /** Folded nick → away message ('' when known only from WHO), for those away. */
  private readonly away = new Map<string, string>();
  /** Folded nick → tries left, for those whose ghost did not exist when their presence was to be set. */
  private readonly waiting = new Map<string, number>();
  private readonly ghosts: GhostPresences;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly d: IrcPresenceDeps) {
    this.ghosts = new GhostPresences({ setPresence: d.setPresence, refreshSeconds: d.refreshSeconds, log: d.log });
  }

  /** `AWAY :message`: away. */
  setAway(nick: string, message: string): void {
    this.away.set(ircLower(nick), message);
    this.sync(nick);
  }

  /** `AWAY` alone: back. */
  setBack(nick: string): void {
    this.away.delete(ircLower(nick));
    this.sync(nick);
  }

  /** A WHO reply for a channel: G is away (keeping a message already known), H is here. */
  who(users: readonly { nick: string; away: boolean }[]): void {
    for (const u of users) {
      const lc = ircLower(u.nick);
      if (!u.away) this.away.delete(lc);
      else if (!this.away.has(lc)) this.away.set(lc, '');
      this.sync(u.nick);
    }
  }

  /** A nick change: the same person, the same ghost, the same state. */
  renamed(from: string, to: string): void {
    const lcFrom = ircLower(from), lcTo = ircLower(to);
    const msg = this.away.get(lcFrom);
    this.away.delete(lcFrom);
    if (msg !== undefined) this.away.set(lcTo, msg);
    const tries = this.waiting.get(lcFrom);
    this.waiting.delete(lcFrom);
    if (tries !== undefined) this.waiting.set(lcTo, tries);
  }

  /**
   * Set this nick's ghost to what the listener knows of them now: after they joined, parted, quit,
   * changed their away status. Someone no longer in any bridged channel is forgotten (and offline).
   */
  sync(nick: string): void {
    if (this.d.isOwn(nick)) return;
    const lc = ircLower(nick);
    const inChannel = this.d.inChannel(nick);
    const away = this.away.get(lc);
    if (!inChannel) { this.away.delete(lc); this.waiting.delete(lc); }
    void this.ghosts.update(this.d.userOf(nick), ircGhostPresence({ inChannel, ...(away !== undefined ? { away } : {}) })).then((shows) => {
      if (shows || !inChannel) { this.waiting.delete(lc); return; }
      if (!this.waiting.has(lc)) this.waiting.set(lc, RETRIES);
      this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer || !this.waiting.size) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const [lc, tries] of [...this.waiting]) {
        if (tries <= 1) {
          this.waiting.delete(lc);
          this.d.log.debug('no ghost for this IRC user: presence not bridged', { nick: lc });
        } else {
          this.waiting.set(lc, tries - 1);
          this.sync(lc);
        }
      }
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** The listener lost its connection: it can no longer vouch for anyone (its channels tell again once it is back). */
  lost(): void {
    this.away.clear();
    this.waiting.clear();
    this.ghosts.allOffline();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.waiting.clear();
    await this.ghosts.stop();
  }
}
