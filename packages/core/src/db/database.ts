/**
 * The SQLite store (better-sqlite3, WAL). One database file holds core's tables and each
 * network's own; every owner (`core`, `irc`, `discord`, ...) has its own schema version in
 * `schema_versions` and its own numbered migrations, each applied in a transaction.
 */
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Migration } from '../network/contract.js';
import type { Logger } from '../util/log.js';
import { coreMigrations } from './migrations/core.js';

export type Db = Database.Database;

export function openDatabase(path: string, log?: Logger): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  // the store holds what others must not read: Discord webhook tokens, message text, sealed IRC
  // secrets. Only its owner may read it (created 0644 under the usual umask); SQLite gives the WAL
  // and shared-memory files it makes the database's mode, and those made before are set here too
  // (a file the bridge may write but not chmod, another user's, is left as it is: told, not fatal)
  if (path !== ':memory:') {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      try {
        if (existsSync(f)) chmodSync(f, 0o600);
      } catch (err) {
        log?.warn('could not make the database readable by its owner only; check its permissions', { file: f, err: err as Error });
      }
    }
  }
  db.pragma('journal_mode = WAL');
  // NORMAL is durable against a process crash (SIGKILL) in WAL mode; a power loss may roll back
  // the last commits. What is acknowledged to the homeserver (which never resends it) is committed
  // FULL (WorkQueueStore.durably), and that makes everything before it durable too.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS schema_versions (
    owner TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  )`);
  migrate(db, 'core', coreMigrations, log);
  return db;
}

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/**
 * The prepared statement for `sql` on `db`, prepared once: preparing costs more than running a
 * simple query, and the stores run theirs on every message.
 */
export function prepared(db: Db, sql: string): Database.Statement {
  let byDb = statements.get(db);
  if (!byDb) { byDb = new Map(); statements.set(db, byDb); }
  let st = byDb.get(sql);
  if (!st) { st = db.prepare(sql); byDb.set(sql, st); }
  return st;
}

export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

/** Apply the migrations of `owner` newer than its recorded version, each in its own transaction. */
export function migrate(db: Db, owner: string, migrations: Migration[], log?: Logger): number {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new MigrationError(`migrations of ${owner} must be numbered 1, 2, 3... without gaps (found ${m.version} at position ${i + 1})`);
    }
  });
  const row = db.prepare('SELECT version FROM schema_versions WHERE owner = ?').get(owner) as { version: number } | undefined;
  const current = row?.version ?? 0;
  if (current > sorted.length) {
    throw new MigrationError(
      `the database has ${owner} schema version ${current}, newer than this Trestle knows (${sorted.length}); refusing to run an older version on it`,
    );
  }
  for (const m of sorted.slice(current)) {
    const apply = db.transaction(() => {
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
      db.prepare(
        `INSERT INTO schema_versions (owner, version, updated_at) VALUES (?, ?, ?)
         ON CONFLICT(owner) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
      ).run(owner, m.version, Date.now());
    });
    try {
      apply();
    } catch (err) {
      throw new MigrationError(`migration ${owner} #${m.version} (${m.description}) failed: ${(err as Error).message}`, { cause: err });
    }
    log?.info('applied migration', { owner, version: m.version, description: m.description });
  }
  return sorted.length;
}

export function schemaVersion(db: Db, owner: string): number {
  const row = db.prepare('SELECT version FROM schema_versions WHERE owner = ?').get(owner) as { version: number } | undefined;
  return row?.version ?? 0;
}
