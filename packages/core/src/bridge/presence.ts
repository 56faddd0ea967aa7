/**
 * The Matrix presence of ghosts, kept in step with what a network says of its users (Discord's status,
 * IRC's away): the network says what a user's ghost should show, this sends it when it differs from
 * what the ghost shows already, one user's changes in order, and says it again before the homeserver
 * times it out. Network-agnostic: the network decides what its users' states mean in Matrix terms.
 *
 * Only ghosts the bridge has made get a presence ({@link NetworkMatrix.setPresence} sends nothing for
 * the others); what could not be sent is not remembered, so the network's next word on that user is
 * sent in full. A network that makes ghosts later (IRC: on the join it reports) says the user's state
 * again once the ghost is there.
 *
 * Synapse turns a user who never syncs offline 30 s after their last presence update, so the presence
 * of ghosts that are not offline is said again every `refreshSeconds` (a request per such ghost each
 * time: why networks leave presence off unless asked).
 */
import type { MatrixPresence, NetworkMatrix, RemoteUserId } from '../network/contract.js';
import { KeyedSerial } from '../util/keyedSerial.js';
import type { Logger } from '../util/log.js';

/** What a ghost shows: its presence and status message (none: no status message). */
export interface GhostPresence { presence: MatrixPresence; statusMsg?: string }

export interface GhostPresencesDeps {
  /** Set a ghost's presence; false when the user has no ghost (nothing was sent). */
  setPresence: NetworkMatrix['setPresence'];
  /** Seconds between repeats of a presence that is not offline (0: never repeated). */
  refreshSeconds: number;
  log: Pick<Logger, 'debug' | 'warn'>;
}

const OFFLINE: GhostPresence = { presence: 'offline' };
const same = (a: GhostPresence | undefined, b: GhostPresence): boolean => a?.presence === b.presence && a.statusMsg === b.statusMsg;

export class GhostPresences {
  /** What each ghost shows now, as far as the bridge has set it. */
  private readonly shown = new Map<RemoteUserId, GhostPresence>();
  private readonly serial = new KeyedSerial();
  private timer?: NodeJS.Timeout;

  constructor(private readonly d: GhostPresencesDeps) {
    if (d.refreshSeconds > 0) {
      this.timer = setInterval(() => this.refresh(), d.refreshSeconds * 1000);
      this.timer.unref();
    }
  }

  /** What the bridge last set for this user's ghost (undefined: nothing yet). */
  showing(user: RemoteUserId): GhostPresence | undefined { return this.shown.get(user); }

  /**
   * A user's state as the network says it now: sent to their ghost if it changed. One user's changes go
   * out in order. Resolves (never rejects) true once the ghost shows it, false when it has no ghost or
   * the homeserver refused (logged).
   */
  update(user: RemoteUserId, next: GhostPresence): Promise<boolean> {
    let shows = false;
    return this.serial.run(user, async () => {
      if (!same(this.shown.get(user), next)) {
        if (!await this.send(user, next)) return;
        this.shown.set(user, next);
      }
      shows = true;
    }, (err) => this.d.log.warn('could not set the presence of a ghost', { user, err: err as Error })).then(() => shows);
  }

  /** Every ghost shown as not offline goes offline: the network can no longer see its users (its connection is lost). */
  allOffline(): void {
    for (const [user, p] of this.shown) if (p.presence !== 'offline') void this.update(user, OFFLINE);
  }

  private async send(user: RemoteUserId, p: GhostPresence): Promise<boolean> {
    const sent = await this.d.setPresence(user, p.presence, p.statusMsg);
    if (!sent) this.d.log.debug('no ghost for this remote user yet: presence not bridged', { user });
    return sent;
  }

  /** Say again the presence of ghosts that are not offline, before the homeserver times it out. */
  private refresh(): void {
    for (const [user, p] of this.shown) {
      if (p.presence === 'offline') continue;
      void this.serial.run(user, async () => {
        const now = this.shown.get(user);
        if (now && now.presence !== 'offline') await this.send(user, now);
      }, (err) => this.d.log.debug('could not repeat a ghost\'s presence', { user, err: err as Error }));
    }
  }

  /** No more repeats; resolves once the changes already asked for have gone out. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.serial.idle();
  }
}
