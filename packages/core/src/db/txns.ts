import type { Db } from './database.js';

/** Appservice transaction ids already processed, persisted so a replay after a restart is ignored. */
export class TxnStore {
  private readonly has;
  private readonly add;
  constructor(private readonly db: Db) {
    this.has = db.prepare('SELECT 1 FROM appservice_txns WHERE txn_id = ?');
    this.add = db.prepare('INSERT OR IGNORE INTO appservice_txns (txn_id, received_at) VALUES (?, ?)');
  }
  seen(txnId: string): boolean { return this.has.get(txnId) !== undefined; }
  /** Record a transaction id; call inside the transaction that persists its events. */
  record(txnId: string): void { this.add.run(txnId, Date.now()); }
  /** Forget ids older than `maxAgeMs` (the homeserver only replays recent transactions). */
  prune(maxAgeMs: number): number {
    return this.db.prepare('DELETE FROM appservice_txns WHERE received_at < ?').run(Date.now() - maxAgeMs).changes;
  }
}
