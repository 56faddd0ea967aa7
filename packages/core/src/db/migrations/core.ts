/**
 * Core's migrations. Shipped migrations are never edited: add the next number.
 *
 * 1 — the initial schema: portals (a room may hold several), ghosts, Matrix users' per-network
 *     state, the message map (remote message part ↔ Matrix event, which edits, redactions,
 *     replies and reactions need), processed appservice transaction ids (so a replayed
 *     transaction is not processed twice, even after a restart), the durable work queue (every
 *     event in either direction is persisted here before it is acknowledged), admin rooms, and a
 *     key-value table per owner.
 * 2 — a digest of each processed transaction's event ids: Synapse on SQLite numbers appservice
 *     transactions from 1 again after it restarts, so an id alone does not tell a replay from a
 *     new transaction (seen: Matrix messages sent after a Synapse restart were dropped as replays).
 */
import type { Migration } from '../../network/contract.js';

export const coreMigrations: Migration[] = [
  {
    version: 1,
    description: 'initial schema',
    up: `
      CREATE TABLE portals (
        id INTEGER PRIMARY KEY,
        room_id TEXT NOT NULL,
        network TEXT NOT NULL,
        remote_chat TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('portal', 'plumbed', 'dm')),
        name TEXT,
        data TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        UNIQUE (network, remote_chat, room_id)
      );
      CREATE INDEX portals_room ON portals (room_id);

      CREATE TABLE ghosts (
        user_id TEXT PRIMARY KEY,
        network TEXT NOT NULL,
        remote_user TEXT NOT NULL,
        display_name TEXT,
        avatar_url TEXT,
        avatar_mxc TEXT,
        registered INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX ghosts_remote ON ghosts (network, remote_user);

      CREATE TABLE matrix_users (
        user_id TEXT NOT NULL,
        network TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, network)
      );

      CREATE TABLE message_map (
        network TEXT NOT NULL,
        remote_chat TEXT NOT NULL,
        remote_id TEXT NOT NULL,
        part INTEGER NOT NULL,
        room_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        body TEXT,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (network, remote_chat, remote_id, part, room_id)
      );
      CREATE INDEX message_map_event ON message_map (event_id);

      CREATE TABLE appservice_txns (
        txn_id TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL
      );

      CREATE TABLE work_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        dedupe_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER
      );
      CREATE INDEX work_queue_pending ON work_queue (state, id);

      CREATE TABLE admin_rooms (
        user_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL
      );

      CREATE TABLE kv (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (owner, key)
      );
    `,
  },
  {
    version: 2,
    description: 'processed transactions are known by their events too, as a homeserver may reuse ids',
    up: `ALTER TABLE appservice_txns ADD COLUMN events TEXT;`,
  },
];
