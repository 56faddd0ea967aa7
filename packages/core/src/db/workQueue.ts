import type { Db } from './database.js';

export interface WorkItem {
  id: number;
  queueKey: string;
  kind: string;
  payload: unknown;
  attempts: number;
}

interface Row { id: number; queue_key: string; kind: string; payload: string; attempts: number }

/**
 * The durable work queue: every event, in either direction, is written here before it is
 * acknowledged (to the homeserver, or to the network that reported it), and marked done once
 * delivered. On start-up, pending rows are loaded and delivered in id order.
 */
export class WorkQueueStore {
  private readonly insert;
  private readonly markDone;
  private readonly markFailed;
  private readonly bump;
  private readonly note;
  /** One transaction wrapper for every atomically() call: better-sqlite3 builds a new one (~5 µs) per db.transaction(). */
  private readonly txn;

  constructor(private readonly db: Db) {
    this.insert = db.prepare(
      `INSERT OR IGNORE INTO work_queue (queue_key, kind, payload, dedupe_key, created_at) VALUES (?, ?, ?, ?, ?)`,
    );
    this.markDone = db.prepare(`UPDATE work_queue SET state = 'done', finished_at = ? WHERE id = ?`);
    this.markFailed = db.prepare(`UPDATE work_queue SET state = 'failed', finished_at = ?, last_error = ? WHERE id = ?`);
    this.bump = db.prepare(`UPDATE work_queue SET attempts = attempts + 1, last_error = ? WHERE id = ?`);
    this.note = db.prepare(`UPDATE work_queue SET last_error = ? WHERE id = ?`);
    this.txn = db.transaction((fn: () => unknown) => fn());
  }

  /** Add an item unless one with the same dedupe key was ever added. Returns it, or undefined if a duplicate. */
  add(queueKey: string, kind: string, payload: unknown, dedupeKey: string): WorkItem | undefined {
    const res = this.insert.run(queueKey, kind, JSON.stringify(payload), dedupeKey, Date.now());
    if (res.changes === 0) return undefined;
    return { id: Number(res.lastInsertRowid), queueKey, kind, payload, attempts: 0 };
  }

  /** Run several writes atomically (e.g. the delivery of an item and its message map). */
  atomically<T>(fn: () => T): T {
    return this.txn(fn) as T;
  }

  /**
   * Like {@link atomically}, but the commit is on disk when this returns (fsync), not only in the
   * WAL: for writes acknowledged to someone who then forgets them (an appservice transaction, which
   * the homeserver never sends again once answered). The database runs `synchronous = NORMAL`, which
   * survives a crash of the process but not of the machine (a power loss, a killed VM); a commit
   * made FULL also makes every earlier one durable, so the rest can stay NORMAL and cheap.
   */
  durably<T>(fn: () => T): T {
    this.db.pragma('synchronous = FULL');
    try {
      return this.txn(fn) as T;
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  pending(): WorkItem[] {
    const rows = this.db.prepare(`SELECT id, queue_key, kind, payload, attempts FROM work_queue WHERE state = 'pending' ORDER BY id`).all() as Row[];
    return rows.map((r) => ({ id: r.id, queueKey: r.queue_key, kind: r.kind, payload: JSON.parse(r.payload) as unknown, attempts: r.attempts }));
  }

  done(id: number): void { this.markDone.run(Date.now(), id); }
  failed(id: number, error: string): void { this.markFailed.run(Date.now(), error, id); }
  attempted(id: number, error: string): void { this.bump.run(error, id); }
  /** Record a failure that does not count as an attempt (the destination was unreachable). */
  noteError(id: number, error: string): void { this.note.run(error, id); }

  /** Delete finished rows older than `maxAgeMs`; their dedupe keys have done their job by then. */
  prune(maxAgeMs: number): number {
    return this.db.prepare(`DELETE FROM work_queue WHERE state != 'pending' AND finished_at < ?`).run(Date.now() - maxAgeMs).changes;
  }
}
