import { chmodSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openDatabase, migrate, schemaVersion, MigrationError } from '../../../packages/core/src/db/database.js';
import { GhostStore } from '../../../packages/core/src/db/ghosts.js';
import { MessageStore } from '../../../packages/core/src/db/messages.js';
import { PortalStore } from '../../../packages/core/src/db/portals.js';
import { TxnStore } from '../../../packages/core/src/db/txns.js';
import { clipDisplayName, GhostManager } from '../../../packages/core/src/bridge/ghosts.js';
import { MatrixError, type MatrixClientLayer } from '../../../packages/core/src/matrix/client.js';
import type { NetworkIdentity } from '../../../packages/core/src/network/contract.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { tempDir } from '../temp.js';

describe('the database file', () => {
  it('is readable by its owner only, its folder and its WAL files too, and an existing one is made so', () => {
    const mode = (f: string): number => statSync(f).mode & 0o777;
    const dir = `${tempDir('trestle-db-mode-')}/data`;
    const path = `${dir}/trestle.db`;
    const db = openDatabase(path);
    db.prepare("INSERT INTO kv (owner, key, value) VALUES ('t', 'k', 'v')").run();
    expect(mode(dir)).toBe(0o700);
    for (const f of [path, `${path}-wal`, `${path}-shm`]) expect(mode(f), f).toBe(0o600);
    db.close();
    // one made by an older version (0644 under the usual umask)
    chmodSync(path, 0o644);
    openDatabase(path).close();
    expect(mode(path)).toBe(0o600);
  });
});

describe('migrations', () => {
  it('creates core tables at the latest version and records per-owner versions', () => {
    const db = openDatabase(':memory:');
    expect(schemaVersion(db, 'core')).toBe(2);
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(['portals', 'ghosts', 'matrix_users', 'message_map', 'appservice_txns', 'work_queue', 'kv', 'admin_rooms']));
    migrate(db, 'irc', [
      { version: 1, description: 'servers', up: 'CREATE TABLE irc_servers (name TEXT PRIMARY KEY)' },
      { version: 2, description: 'nicks', up: 'CREATE TABLE irc_nicks (nick TEXT)' },
    ]);
    expect(schemaVersion(db, 'irc')).toBe(2);
    expect(schemaVersion(db, 'core')).toBe(2);
  });

  it('applies only the new migrations on a second run', () => {
    const db = openDatabase(':memory:');
    const ms = [{ version: 1, description: 'a', up: 'CREATE TABLE a (x)' }];
    migrate(db, 'n', ms);
    expect(() => migrate(db, 'n', ms)).not.toThrow(); // would fail with "table a already exists" if re-run
    migrate(db, 'n', [...ms, { version: 2, description: 'b', up: 'CREATE TABLE b (x)' }]);
    expect(schemaVersion(db, 'n')).toBe(2);
  });

  it('rolls back a failing migration completely and says which one failed', () => {
    const db = openDatabase(':memory:');
    const bad = [{ version: 1, description: 'half good', up: 'CREATE TABLE good (x); CREATE TABLE good (y);' }];
    expect(() => migrate(db, 'n', bad)).toThrow(/migration n #1 \(half good\) failed/);
    expect(schemaVersion(db, 'n')).toBe(0);
    expect(db.prepare(`SELECT count(*) AS c FROM sqlite_master WHERE name = 'good'`).get()).toEqual({ c: 0 });
  });

  it('refuses gaps in numbering and a database newer than the code', () => {
    const db = openDatabase(':memory:');
    expect(() => migrate(db, 'n', [{ version: 2, description: 'x', up: '' }])).toThrow(MigrationError);
    migrate(db, 'n', [{ version: 1, description: 'a', up: '' }, { version: 2, description: 'b', up: '' }]);
    expect(() => migrate(db, 'n', [{ version: 1, description: 'a', up: '' }])).toThrow(/newer than this Trestle knows/);
  });
});

describe('stores', () => {
  it('maps remote message parts to Matrix events and back', () => {
    const db = openDatabase(':memory:');
    const m = new MessageStore(db);
    m.add({ network: 'discord', remoteChat: 'c1', remoteId: 'm1', part: 0, roomId: '!r', eventId: '$a', sender: '@x:hs', body: 'text' });
    m.add({ network: 'discord', remoteChat: 'c1', remoteId: 'm1', part: 1, roomId: '!r', eventId: '$b', sender: '@x:hs' });
    m.add({ network: 'irc', remoteChat: '#c', remoteId: 'i1', part: 0, roomId: '!r', eventId: '$a', sender: '@x:hs' });
    expect(m.forRemote('discord', 'c1', 'm1').map((e) => e.eventId)).toEqual(['$a', '$b']);
    expect(m.forEvent('$a').map((e) => `${e.network}/${e.remoteId}`)).toEqual(['discord/m1', 'irc/i1']);
    expect(m.forEvent('$a')[0]!.body).toBe('text');
  });

  it('says a remote id is bridged when any part of it is mapped, in any room, and only for its network and chat', () => {
    const db = openDatabase(':memory:');
    const m = new MessageStore(db);
    // a Matrix message sent as two IRC lines: the second line's msgid is part 1 of the same event
    m.add({ network: 'irc', remoteChat: 'test/#c', remoteId: 'line1', part: 0, roomId: '!r', eventId: '$a', sender: '@u:hs' });
    m.add({ network: 'irc', remoteChat: 'test/#c', remoteId: 'line2', part: 1, roomId: '!r', eventId: '$a', sender: '@u:hs' });
    expect(m.has('irc', 'test/#c', 'line1')).toBe(true);
    expect(m.has('irc', 'test/#c', 'line2')).toBe(true);
    expect(m.has('irc', 'test/#c', 'line3')).toBe(false);
    expect(m.has('irc', 'test/#other', 'line2')).toBe(false);
    expect(m.has('discord', 'test/#c', 'line2')).toBe(false);
  });

  it('keeps several portals per room and per chat, and survives a reload', () => {
    const db = openDatabase(':memory:');
    const p = new PortalStore(db);
    p.link({ roomId: '!r', network: 'irc', remoteChat: 'libera/#a', kind: 'plumbed' });
    p.link({ roomId: '!r', network: 'discord', remoteChat: '123', kind: 'plumbed' });
    p.link({ roomId: '!s', network: 'irc', remoteChat: 'libera/#a', kind: 'portal', name: '#a' });
    expect(p.forRoom('!r').map((x) => x.network).sort()).toEqual(['discord', 'irc']);
    expect(p.forChat('irc', 'libera/#a').map((x) => x.roomId).sort()).toEqual(['!r', '!s']);
    const reloaded = new PortalStore(db);
    expect(reloaded.forChat('irc', 'libera/#a')).toHaveLength(2);
    expect(reloaded.unlink('irc', 'libera/#a', '!r')).toBe(true);
    expect(reloaded.forRoom('!r').map((x) => x.network)).toEqual(['discord']);
    expect(new PortalStore(db).forChat('irc', 'libera/#a').map((x) => x.roomId)).toEqual(['!s']);
  });

  it('remembers processed transaction ids across reopen', async () => {
    const path = `${tempDir('trestle-t-')}/t.db`;
    const db = openDatabase(path);
    new TxnStore(db).record('txn-1', ['$a', '$b']);
    db.close();
    const again = new TxnStore(openDatabase(path));
    expect(again.seen('txn-1', ['$a', '$b'])).toBe(true);
    expect(again.seen('txn-2', ['$a', '$b'])).toBe(false);
  });

  it('takes a reused transaction id with other events for a new transaction, as after a SQLite Synapse restarts', () => {
    const txns = new TxnStore(openDatabase(':memory:'));
    txns.record('1', ['$before']);
    expect(txns.seen('1', ['$before'])).toBe(true); // a replay
    expect(txns.seen('1', ['$after'])).toBe(false); // Synapse numbering from 1 again
    txns.record('1', ['$after']);
    expect(txns.seen('1', ['$after'])).toBe(true);
  });
});

describe('GhostStore (rows remembered in memory; put is the only writer)', () => {
  it('answers what was last put, absences included, and a fresh store reads the same from the table', () => {
    const db = openDatabase(':memory:');
    const ghosts = new GhostStore(db);
    expect(ghosts.get('@irc_bob:hs')).toBeUndefined(); // an absence, remembered
    const row = { userId: '@irc_bob:hs', network: 'irc', remoteUser: 'bob', registered: true, displayName: 'bob' };
    ghosts.put(row);
    row.displayName = 'changed after put'; // the caller's object is not the remembered one
    expect(ghosts.get('@irc_bob:hs')).toEqual({ userId: '@irc_bob:hs', network: 'irc', remoteUser: 'bob', registered: true, displayName: 'bob' });
    ghosts.put({ ...row, displayName: 'robert', avatarUrl: 'https://x/a.png' });
    expect(ghosts.get('@irc_bob:hs')?.displayName).toBe('robert');
    expect(new GhostStore(db).get('@irc_bob:hs')).toEqual(ghosts.get('@irc_bob:hs'));
    expect(Object.isFrozen(ghosts.get('@irc_bob:hs'))).toBe(true);
  });
});

describe('GhostManager: a display name the homeserver refuses', () => {
  const network = { id: 'irc', userPrefix: 'irc_', ghostLocalpart: (u: string) => u } as unknown as NetworkIdentity;
  function manager(refuse: (name: string) => MatrixError | undefined) {
    const asked: string[] = [];
    const matrix = {
      domain: 'hs',
      ensureRegistered: async () => undefined,
      setDisplayName: async (_u: string, name: string) => { asked.push(name); const e = refuse(name); if (e) throw e; },
    } as unknown as MatrixClientLayer;
    return { ghosts: new GhostManager(new GhostStore(openDatabase(':memory:')), matrix, silentLogger, async () => undefined), asked };
  }

  it('does not hold up the message, and is not asked again until the name changes', async () => {
    const { ghosts, asked } = manager(() => new MatrixError('M_FORBIDDEN: changing display names is disabled', 'M_FORBIDDEN', 403));
    await expect(ghosts.ensure(network, { id: 'bob', displayName: 'bob' })).resolves.toBe('@irc_bob:hs');
    await ghosts.ensure(network, { id: 'bob', displayName: 'bob' });
    expect(asked).toEqual(['bob']);
    await ghosts.ensure(network, { id: 'bob', displayName: 'robert' });
    expect(asked).toEqual(['bob', 'robert']);
  });

  it('asks again with the next message when the homeserver was only busy', async () => {
    let busy = true;
    const { ghosts, asked } = manager(() => (busy ? new MatrixError('M_LIMIT_EXCEEDED', 'M_LIMIT_EXCEEDED', 429) : undefined));
    await expect(ghosts.ensure(network, { id: 'bob', displayName: 'bob' })).resolves.toBe('@irc_bob:hs');
    busy = false;
    await ghosts.ensure(network, { id: 'bob', displayName: 'bob' });
    expect(asked).toEqual(['bob', 'bob']);
    await ghosts.ensure(network, { id: 'bob', displayName: 'bob' });
    expect(asked).toEqual(['bob', 'bob']);
  });

  it('cuts a name Synapse would refuse for its length', () => {
    expect(clipDisplayName('a'.repeat(256))).toBe('a'.repeat(256));
    expect(clipDisplayName('😀'.repeat(300))).toBe(`${'😀'.repeat(255)}…`);
  });
});
