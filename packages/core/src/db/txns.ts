import { createHash } from 'node:crypto';
import type { Db } from './database.js';

/** What identifies a transaction's content: its events' ids, in order. */
const digest = (eventIds: readonly string[]): string => createHash('sha256').update(eventIds.join('\u0000')).digest('base64url');

/**
 * Appservice transactions already processed, persisted so a replay after a restart is ignored.
 * A transaction is known by its id *and* its events: Synapse on SQLite numbers transactions from 1
 * again after it restarts, so an id seen before may come back with new events, which must not be
 * dropped. A replay carries the same events. (Rows from before the digest was kept have none and
 * count as not seen: their events are still de-duplicated one by one in the work queue.)
 */
export class TxnStore {
  private readonly get;
  private readonly add;
  constructor(private readonly db: Db) {
    this.get = db.prepare('SELECT events FROM appservice_txns WHERE txn_id = ?');
    this.add = db.prepare(
      'INSERT INTO appservice_txns (txn_id, received_at, events) VALUES (?, ?, ?) ' +
        'ON CONFLICT (txn_id) DO UPDATE SET received_at = excluded.received_at, events = excluded.events',
    );
  }
  seen(txnId: string, eventIds: readonly string[]): boolean {
    const row = this.get.get(txnId) as { events: string | null } | undefined;
    return row !== undefined && row.events === digest(eventIds);
  }
  /** Record a transaction; call inside the transaction that persists its events. */
  record(txnId: string, eventIds: readonly string[]): void { this.add.run(txnId, Date.now(), digest(eventIds)); }
  /** Forget ids older than `maxAgeMs` (the homeserver only replays recent transactions). */
  prune(maxAgeMs: number): number {
    return this.db.prepare('DELETE FROM appservice_txns WHERE received_at < ?').run(Date.now() - maxAgeMs).changes;
  }
}
