import { type Db, prepared } from './database.js';

/** A small key-value table, namespaced by owner (core or a network id). */
export class KvStore {
  constructor(private readonly db: Db) {}
  get(owner: string, key: string): string | undefined {
    const row = prepared(this.db, 'SELECT value FROM kv WHERE owner = ? AND key = ?').get(owner, key) as { value: string } | undefined;
    return row?.value;
  }
  set(owner: string, key: string, value: string): void {
    prepared(this.db, 'INSERT INTO kv (owner, key, value) VALUES (?, ?, ?) ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value')
      .run(owner, key, value);
  }
  delete(owner: string, key: string): void {
    prepared(this.db, 'DELETE FROM kv WHERE owner = ? AND key = ?').run(owner, key);
  }
  /** A view bound to one owner, as handed to a network. */
  scoped(owner: string): { get(k: string): string | undefined; set(k: string, v: string): void; delete(k: string): void } {
    return { get: (k) => this.get(owner, k), set: (k, v) => this.set(owner, k, v), delete: (k) => this.delete(owner, k) };
  }
}
