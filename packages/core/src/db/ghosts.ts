import { type Db, prepared } from './database.js';

export interface GhostRow {
  userId: string;
  network: string;
  remoteUser: string;
  displayName?: string;
  avatarUrl?: string;
  avatarMxc?: string;
  registered: boolean;
}

interface Row {
  user_id: string; network: string; remote_user: string; display_name: string | null;
  avatar_url: string | null; avatar_mxc: string | null; registered: number;
}

/** How many ghost rows (or known absences) {@link GhostStore} keeps in memory. */
const CACHE_SIZE = 10_000;

/**
 * Ghosts (puppets): the Matrix users that stand for remote users, with the profile last set.
 * Rows are read for every bridged message (and for every event the homeserver echoes), and only
 * `put` writes them, so answers are kept in a bounded map in front of the table (absences too).
 */
export class GhostStore {
  private readonly cache = new Map<string, Readonly<GhostRow> | null>();

  constructor(private readonly db: Db) {}

  get(userId: string): Readonly<GhostRow> | undefined {
    const cached = this.cache.get(userId);
    if (cached !== undefined) return cached ?? undefined;
    const r = prepared(this.db, 'SELECT * FROM ghosts WHERE user_id = ?').get(userId) as Row | undefined;
    const row = r ? Object.freeze({
      userId: r.user_id, network: r.network, remoteUser: r.remote_user, registered: r.registered === 1,
      ...(r.display_name != null ? { displayName: r.display_name } : {}),
      ...(r.avatar_url != null ? { avatarUrl: r.avatar_url } : {}),
      ...(r.avatar_mxc != null ? { avatarMxc: r.avatar_mxc } : {}),
    }) : null;
    this.remember(userId, row);
    return row ?? undefined;
  }

  put(g: GhostRow): void {
    prepared(this.db, 
      `INSERT INTO ghosts (user_id, network, remote_user, display_name, avatar_url, avatar_mxc, registered, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET network = excluded.network, remote_user = excluded.remote_user,
         display_name = excluded.display_name, avatar_url = excluded.avatar_url, avatar_mxc = excluded.avatar_mxc,
         registered = excluded.registered, updated_at = excluded.updated_at`,
    ).run(g.userId, g.network, g.remoteUser, g.displayName ?? null, g.avatarUrl ?? null, g.avatarMxc ?? null, g.registered ? 1 : 0, Date.now());
    this.remember(g.userId, Object.freeze({ ...g }));
  }

  private remember(userId: string, row: Readonly<GhostRow> | null): void {
    if (this.cache.size >= CACHE_SIZE && !this.cache.has(userId)) this.cache.clear();
    this.cache.set(userId, row);
  }

  count(): number {
    return (prepared(this.db, 'SELECT count(*) AS n FROM ghosts').get() as { n: number }).n;
  }
}
