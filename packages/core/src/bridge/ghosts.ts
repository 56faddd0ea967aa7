/**
 * Ghosts: the Matrix users that stand for remote users. Registered lazily, their display name
 * and avatar kept in sync (nothing is sent when nothing changed), joined to rooms on demand.
 */
import type { GhostStore } from '../db/ghosts.js';
import { toMatrixError, type MatrixClientLayer } from '../matrix/client.js';
import type { NetworkIdentity, RemoteSender } from '../network/contract.js';
import type { Logger } from '../util/log.js';

/** Lower-case and escape a localpart to the characters Matrix allows (`a-z0-9._=-/`). */
export function escapeLocalpart(s: string): string {
  let out = '';
  for (const ch of s.toLowerCase()) {
    if (/^[a-z0-9._\-/]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += '=' + b.toString(16).padStart(2, '0');
  }
  return out;
}

export class GhostManager {
  /** In-flight profile syncs, so a burst from one new user registers it once. */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(
    private readonly store: GhostStore,
    private readonly matrix: MatrixClientLayer,
    private readonly log: Logger,
    private readonly fetchAvatar: (url: string) => Promise<{ data: Buffer; contentType: string } | undefined>,
  ) {}

  userIdFor(network: NetworkIdentity, remoteUser: string): string {
    return `@${network.userPrefix}${escapeLocalpart(network.ghostLocalpart(remoteUser))}:${this.matrix.domain}`;
  }

  /** The network whose ghost this Matrix user is, if the bridge made it. */
  networkOf(userId: string): string | undefined {
    return this.store.get(userId)?.network;
  }

  /** Make sure the ghost exists with this profile; returns its user id. */
  async ensure(network: NetworkIdentity, sender: RemoteSender): Promise<string> {
    const userId = this.userIdFor(network, sender.id);
    const known = this.store.get(userId);
    const nameChanged = known?.displayName !== sender.displayName;
    const avatarChanged = sender.avatarUrl !== undefined && known?.avatarUrl !== sender.avatarUrl;
    if (known?.registered && !nameChanged && !avatarChanged) return userId;
    const inflight = this.pending.get(userId);
    if (inflight) { await inflight; return this.ensure(network, sender); }
    const work = this.sync(network, sender, userId);
    this.pending.set(userId, work);
    try { await work; } finally { this.pending.delete(userId); }
    return userId;
  }

  private async sync(network: NetworkIdentity, sender: RemoteSender, userId: string): Promise<void> {
    const known = this.store.get(userId);
    if (!known?.registered) await this.matrix.ensureRegistered(userId);
    const row = {
      userId, network: network.id, remoteUser: sender.id, registered: true,
      ...(known?.displayName !== undefined ? { displayName: known.displayName } : {}),
      ...(known?.avatarUrl !== undefined ? { avatarUrl: known.avatarUrl } : {}),
      ...(known?.avatarMxc !== undefined ? { avatarMxc: known.avatarMxc } : {}),
    };
    this.store.put(row); // registered, even if the profile update below fails
    if (known?.displayName !== sender.displayName) {
      try {
        await this.matrix.setDisplayName(userId, clipDisplayName(sender.displayName));
        row.displayName = sender.displayName;
        this.store.put(row);
      } catch (err) {
        // A name the homeserver refuses (renames turned off, M_FORBIDDEN; one it finds invalid) must not
        // hold up the message either. Refused for good: not asked again until the name changes; else
        // (the homeserver busy or away) tried again with the next message.
        const m = toMatrixError(err);
        const refused = m.status !== undefined && m.status >= 400 && m.status < 500 && m.status !== 429;
        this.log.warn('could not set a ghost display name', { userId, name: sender.displayName, refused, err: m });
        if (refused) { row.displayName = sender.displayName; this.store.put(row); }
      }
    }
    if (sender.avatarUrl !== undefined && known?.avatarUrl !== sender.avatarUrl) {
      try {
        const mxc = await this.avatarMxc(sender.avatarUrl);
        if (mxc) await this.matrix.setAvatar(userId, mxc);
        row.avatarUrl = sender.avatarUrl;
        if (mxc) row.avatarMxc = mxc;
        this.store.put(row);
      } catch (err) {
        // A broken avatar must not hold up the message; it is tried again with the next one.
        this.log.warn('could not set a ghost avatar', { userId, url: sender.avatarUrl, err: err as Error });
      }
    }
  }

  private async avatarMxc(url: string): Promise<string | undefined> {
    if (url === '') return '';
    if (url.startsWith('mxc://')) return url;
    const file = await this.fetchAvatar(url);
    if (!file) return undefined;
    return this.matrix.upload(file.data, file.contentType, 'avatar');
  }
}

/** Synapse refuses display names over 256 characters (a 400): longer ones are cut, on a code point boundary. */
export function clipDisplayName(name: string): string {
  const points = [...name];
  return points.length <= MAX_DISPLAY_NAME ? name : points.slice(0, MAX_DISPLAY_NAME - 1).join('') + '…';
}
const MAX_DISPLAY_NAME = 256;
