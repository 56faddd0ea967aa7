/**
 * The IRC bridge's own tables (owner `irc`, numbered migrations; shipped ones are never edited).
 *
 * 1 — irc_users: a Matrix user's chosen nick and username per server, and their stored password
 *     (AES-256-GCM, key in a file outside the database); irc_ghosts: which ghost a nick stands for,
 *     so a nick change keeps the same ghost.
 * 2 — irc_users.cert_pem / cert_key_enc: a client certificate the bridge made for the user on that
 *     server (SASL EXTERNAL), its private key sealed like the password.
 * 3 — irc_users.nick_from; 4 — irc_accounts (see each migration's description).
 * 5 — irc_addresses: the source address each Matrix user's connection (and the relay's) has on a
 *     server with an `addressBlock`, so it stays the same across reconnects and restarts.
 * 6 — irc_addresses.used_at: when each address was last given to its connection, so that a block
 *     used up passes on the address its owner has used least recently.
 * 7 — irc_sts: IRCv3 STS persistence policies by host name (sts.ts): TLS only, until they run out.
 * 8 — irc_link_requests: links waiting for a channel operator's answer (approvals.ts), so that a
 *     restart does not lose them.
 * 9 — irc_users.account: the account a stored password logs in to (SASL PLAIN, NickServ IDENTIFY).
 * 10 — irc_users.wanted_nick: the nick the user wants, apart from `nick`, the one last held.
 * 11 — irc_ghost_nicks: the nick each ghost goes by now, which a reply in a private chat goes to.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Migration, prepared } from '@trestle/core';
import type Database from 'better-sqlite3';
import { addressIndex, nthAddress, usableCount, type AddressBlock } from './addresses.js';
import type { ClientCert } from './certs.js';
import { ircLower } from './ids.js';
import type { StoredLinkRequest } from './approvals.js';
import type { StoredSts, StsStore } from './sts.js';

/** How many nick → ghost key answers {@link IrcStore.ghostKey} keeps in memory. */
const GHOST_KEY_CACHE = 10_000;

export const ircMigrations: Migration[] = [
  {
    version: 1,
    description: 'IRC users and ghost keys',
    up: `
      CREATE TABLE irc_users (
        user_id TEXT NOT NULL,
        server TEXT NOT NULL,
        nick TEXT,
        username TEXT,
        password_enc TEXT,
        PRIMARY KEY (user_id, server)
      );
      CREATE TABLE irc_ghosts (
        server TEXT NOT NULL,
        nick_lower TEXT NOT NULL,
        ghost_key TEXT NOT NULL,
        PRIMARY KEY (server, nick_lower)
      );
      CREATE INDEX irc_ghosts_key ON irc_ghosts (server, ghost_key);
    `,
  },
  {
    version: 2,
    description: 'IRC client certificates (SASL EXTERNAL)',
    up: `
      ALTER TABLE irc_users ADD COLUMN cert_pem TEXT;
      ALTER TABLE irc_users ADD COLUMN cert_key_enc TEXT;
    `,
  },
  {
    version: 3,
    description: 'Which display name a nick was made from, so a nick from the template follows a rename',
    // NULL: a nick the user chose (the `nick` command), or one stored before this column: kept as it is
    up: `ALTER TABLE irc_users ADD COLUMN nick_from TEXT;`,
  },
  {
    version: 4,
    description: 'The ghost of each IRC account, so a logged-in user keeps one ghost whatever nick they come back with',
    up: `
      CREATE TABLE irc_accounts (
        server TEXT NOT NULL,
        account_lower TEXT NOT NULL,
        ghost_key TEXT NOT NULL,
        PRIMARY KEY (server, account_lower)
      );
    `,
  },
  {
    version: 5,
    description: 'The source address of each Matrix user\'s connection from the server\'s addressBlock, kept across restarts',
    // user_id: a Matrix user id, or `relay` for the shared relay connection
    up: `
      CREATE TABLE irc_addresses (
        server TEXT NOT NULL,
        user_id TEXT NOT NULL,
        address TEXT NOT NULL,
        PRIMARY KEY (server, user_id),
        UNIQUE (server, address)
      );
    `,
  },
  {
    version: 6,
    description: 'When each stored source address was last used, so a full addressBlock can pass on the least recently used',
    // (rows from before it count as used at 0: the oldest)
    up: `ALTER TABLE irc_addresses ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;`,
  },
  {
    version: 7,
    description: 'IRCv3 STS persistence policies: hosts the bridge connects to with TLS only, until each policy runs out',
    // host: lower-cased host name as configured; expires_at: ms since the epoch
    up: `
      CREATE TABLE irc_sts (
        host TEXT PRIMARY KEY,
        port INTEGER NOT NULL,
        duration_s INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 8,
    description: 'Links waiting for a channel operator\'s answer survive a restart',
    // ops: JSON array of the lower-cased nicks asked; deadline: ms since the epoch
    up: `
      CREATE TABLE irc_link_requests (
        server TEXT NOT NULL,
        chat TEXT NOT NULL,
        room_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        room_label TEXT NOT NULL,
        ops TEXT NOT NULL,
        timeout_s INTEGER NOT NULL,
        deadline INTEGER NOT NULL,
        PRIMARY KEY (server, chat, room_id)
      );
    `,
  },
  {
    version: 9,
    description: 'The account a stored password logs in to, kept with the password: the nick last held (a fallback like alice_, ' +
      'a services rename to Guest…, a nick change) made SASL and NickServ IDENTIFY log in as the wrong account',
    // set at storepass from the nick the user wants then (or at the first connection after it); NULL without a password.
    // Rows from before it: the stored nick, the best known (it may be such a fallback: storepass again puts that right)
    up: `
      ALTER TABLE irc_users ADD COLUMN account TEXT;
      UPDATE irc_users SET account = nick WHERE password_enc IS NOT NULL;
    `,
  },
  {
    version: 10,
    description: 'The nick each Matrix user wants, apart from the one their connection last held: a fallback taken at registration ' +
      '(Alice[m]_, Guest…, M<time>) was asked for again at every connection, for good where the nick cannot be taken back',
    // `nick` stays the one last held (a connection left over from before a crash has it); nick_from now says what
    // wanted_nick was made from. Rows from before it: a chosen nick (nick_from NULL) is copied; one made from the
    // template is left NULL, to be made again from nick_from, since the stored one may be a fallback
    up: `
      ALTER TABLE irc_users ADD COLUMN wanted_nick TEXT;
      UPDATE irc_users SET wanted_nick = nick WHERE nick_from IS NULL;
    `,
  },
  {
    version: 11,
    description: 'The nick each ghost goes by now: a reply in a private chat went to whichever nick bound to the ghost came first ' +
      '(alice, after she came back logged in as alice_ and someone else took alice), not the one it uses',
    // a nick is one ghost's at a time (UNIQUE); nick NULL: not known (the ghost's last nick was seen standing for another
    // ghost since, or it left IRC under a nick it had changed to). No rows for the ghosts from before it: one bound to a
    // single nick goes by that one until it is seen (IrcStore.nickOf), which is what the old lookup gave
    up: `
      CREATE TABLE irc_ghost_nicks (
        server TEXT NOT NULL,
        ghost_key TEXT NOT NULL,
        nick TEXT,
        nick_lower TEXT,
        PRIMARY KEY (server, ghost_key),
        UNIQUE (server, nick_lower)
      );
    `,
  },
];

/**
 * Encrypts stored passwords (and client certificates' private keys) with a key kept in a file. A
 * missing file is made (mode 0600) by {@link IrcStore} at start, and only while nothing is sealed:
 * a new key would open none of the secrets sealed with the lost one.
 */
export class PasswordBox {
  private key?: Buffer;
  constructor(readonly keyFile: string) {
    if (existsSync(keyFile)) this.key = readKey(keyFile);
  }

  /** At start, with how many secrets the database holds sealed: the key is made if missing and none are, else start-up fails. */
  ready(sealed: number): void {
    if (this.key) return;
    if (sealed > 0) {
      throw new Error(`networks.irc.passwordKeyFile: ${this.keyFile} is missing, but ${sealed} stored secret${sealed === 1 ? '' : 's'} ` +
        '(IRC passwords, client certificates\' keys) were sealed with the key it held, and a new key would open none of them. ' +
        'Put the key file back (from a backup, or set passwordKeyFile to where it was moved). To give those secrets up instead, ' +
        'clear them (UPDATE irc_users SET password_enc = NULL, account = NULL, cert_pem = NULL, cert_key_enc = NULL) and start again: ' +
        'a new key is made, and each user stores theirs again (storepass, certfp).');
    }
    mkdirSync(dirname(this.keyFile), { recursive: true });
    writeFileSync(this.keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    this.key = readKey(this.keyFile);
  }

  private get readyKey(): Buffer {
    if (!this.key) throw new Error(`${this.keyFile}: no key yet (an IrcStore makes it at start)`);
    return this.key;
  }
  seal(plain: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.readyKey, iv);
    const data = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), data.toString('base64')].join(':');
  }
  /** The plain text; throws when `sealed` is damaged or was sealed with another key. */
  open(sealed: string): string {
    const [v, iv, tag, data] = sealed.split(':');
    if (v !== 'v1' || !iv || !tag || data === undefined) throw new Error('unknown password format');
    const d = createDecipheriv('aes-256-gcm', this.readyKey, Buffer.from(iv, 'base64'));
    d.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([d.update(Buffer.from(data, 'base64')), d.final()]).toString('utf8');
  }
}

function readKey(keyFile: string): Buffer {
  const hex = readFileSync(keyFile, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${keyFile} must hold a 256-bit key as 64 hex digits`);
  return Buffer.from(hex, 'hex');
}

/** A sealed secret of a user that the key does not open (see {@link IrcStore.user}). */
export type UnreadableSecret = 'password' | 'certificate key';

/** What is stored of a Matrix user on a server (see {@link IrcStore.user}). */
export interface StoredIrcUser {
  /** The nick their connection last held (perhaps a fallback it was given): what a connection left over from before a crash is known by. */
  nick?: string;
  /** The nick they want: chosen (the `nick` command), or made by the nick template from `nickFrom`. What a connection asks for. */
  wantedNick?: string;
  /** The display name `wantedNick` was made from; absent for a chosen nick. */
  nickFrom?: string;
  /** The account `password` logs in to (SASL PLAIN, NickServ IDENTIFY): not a nick they hold. */
  account?: string;
  username?: string;
  password?: string;
  cert?: ClientCert;
  /**
   * Sealed secrets stored for them that the key does not open (another key in the key file, a
   * damaged row): left out above, so they connect without; the caller tells them to store them
   * again. The rows are kept, so putting the right key back brings them back.
   */
  unreadable?: UnreadableSecret[];
}

export class IrcStore implements StsStore {
  /** Fails when the key file is missing while secrets sealed with it are stored (see {@link PasswordBox.ready}). */
  constructor(private readonly db: Database.Database, private readonly box: PasswordBox) {
    const r = prepared(db, 'SELECT COUNT(*) AS n FROM irc_users WHERE password_enc IS NOT NULL OR cert_key_enc IS NOT NULL').get() as { n: number };
    box.ready(r.n);
  }

  /** The key file the secrets are sealed with (for messages about one it does not open). */
  get keyFile(): string { return this.box.keyFile; }

  /** The STS persistence policy stored for a host (lower-cased), expired or not. */
  stsPolicy(host: string): StoredSts | undefined {
    const r = prepared(this.db, 'SELECT port, duration_s, expires_at FROM irc_sts WHERE host = ?').get(host) as
      { port: number; duration_s: number; expires_at: number } | undefined;
    return r && { port: r.port, durationS: r.duration_s, expiresAt: r.expires_at };
  }
  setStsPolicy(host: string, p: StoredSts): void {
    prepared(this.db, `INSERT INTO irc_sts (host, port, duration_s, expires_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (host) DO UPDATE SET port = excluded.port, duration_s = excluded.duration_s, expires_at = excluded.expires_at`)
      .run(host, p.port, p.durationS, p.expiresAt);
  }
  dropStsPolicy(host: string): void {
    prepared(this.db, 'DELETE FROM irc_sts WHERE host = ?').run(host);
  }

  /** Link requests waiting for an operator's answer (approvals.ts), oldest first. */
  linkRequests(): StoredLinkRequest[] {
    const rows = prepared(this.db, 'SELECT * FROM irc_link_requests ORDER BY deadline - timeout_s * 1000, rowid').all() as
      { server: string; chat: string; room_id: string; channel: string; user_id: string; room_label: string; ops: string; timeout_s: number; deadline: number }[];
    return rows.map((r) => ({
      server: r.server, chat: r.chat, roomId: r.room_id, channel: r.channel, userId: r.user_id, roomLabel: r.room_label,
      ops: JSON.parse(r.ops) as string[], timeoutSeconds: r.timeout_s, deadline: r.deadline,
    }));
  }
  putLinkRequest(r: StoredLinkRequest): void {
    prepared(this.db, `INSERT OR REPLACE INTO irc_link_requests (server, chat, room_id, channel, user_id, room_label, ops, timeout_s, deadline)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(r.server, r.chat, r.roomId, r.channel, r.userId, r.roomLabel, JSON.stringify(r.ops), r.timeoutSeconds, r.deadline);
  }
  dropLinkRequest(server: string, chat: string, roomId: string): void {
    prepared(this.db, 'DELETE FROM irc_link_requests WHERE server = ? AND chat = ? AND room_id = ?').run(server, chat, roomId);
  }

  /** What is stored of a Matrix user on a server. A secret the key does not open is left out and named in `unreadable`. */
  user(userId: string, server: string): StoredIrcUser {
    const r = prepared(this.db, `SELECT nick, wanted_nick, nick_from, account, username, password_enc, cert_pem, cert_key_enc
      FROM irc_users WHERE user_id = ? AND server = ?`).get(userId, server) as
      { nick: string | null; wanted_nick: string | null; nick_from: string | null; account: string | null; username: string | null;
        password_enc: string | null; cert_pem: string | null; cert_key_enc: string | null } | undefined;
    if (!r) return {};
    const unreadable: UnreadableSecret[] = [];
    const open = (sealed: string, what: UnreadableSecret): string | undefined => {
      try { return this.box.open(sealed); } catch { unreadable.push(what); return undefined; }
    };
    const password = r.password_enc ? open(r.password_enc, 'password') : undefined;
    const key = r.cert_pem && r.cert_key_enc ? open(r.cert_key_enc, 'certificate key') : undefined;
    return {
      ...(r.nick ? { nick: r.nick } : {}), ...(r.wanted_nick ? { wantedNick: r.wanted_nick } : {}), ...(r.nick_from !== null ? { nickFrom: r.nick_from } : {}),
      ...(r.account ? { account: r.account } : {}), ...(r.username ? { username: r.username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(r.cert_pem && key !== undefined ? { cert: { cert: r.cert_pem, key } } : {}),
      ...(unreadable.length ? { unreadable } : {}),
    };
  }

  /** The stored client certificate (PEM, public) of a user on a server, without opening its key. */
  certificate(userId: string, server: string): string | undefined {
    const r = prepared(this.db, 'SELECT cert_pem FROM irc_users WHERE user_id = ? AND server = ?').get(userId, server) as { cert_pem: string | null } | undefined;
    return r?.cert_pem ?? undefined;
  }

  /** Store a client certificate (its key sealed), or forget it (null). */
  setCertificate(userId: string, server: string, cert: ClientCert | null): void {
    prepared(this.db, `INSERT INTO irc_users (user_id, server, cert_pem, cert_key_enc) VALUES (?, ?, ?, ?)
      ON CONFLICT (user_id, server) DO UPDATE SET cert_pem = excluded.cert_pem, cert_key_enc = excluded.cert_key_enc`)
      .run(userId, server, cert?.cert ?? null, cert ? this.box.seal(cert.key) : null);
  }

  /** The nick a user wants, and the display name it was made from (null: chosen by the user, which no rename replaces). */
  setWantedNick(userId: string, server: string, nick: string, from: string | null): void {
    prepared(this.db, `INSERT INTO irc_users (user_id, server, wanted_nick, nick_from) VALUES (?, ?, ?, ?)
      ON CONFLICT (user_id, server) DO UPDATE SET wanted_nick = excluded.wanted_nick, nick_from = excluded.nick_from`).run(userId, server, nick, from);
  }
  /** The nick a user's connection holds now (given at registration, or changed since): not what it asks for next time. */
  setHeldNick(userId: string, server: string, nick: string): void {
    prepared(this.db, `INSERT INTO irc_users (user_id, server, nick) VALUES (?, ?, ?)
      ON CONFLICT (user_id, server) DO UPDATE SET nick = excluded.nick`).run(userId, server, nick);
  }
  /**
   * Another Matrix user who holds or wants `nick` on a server (folded as IRC does), if any: their
   * connection may be closed now (idle), but the nick stands for them on IRC.
   */
  nickOwner(server: string, nick: string, except: string): string | undefined {
    const want = ircLower(nick);
    const rows = prepared(this.db, 'SELECT user_id, nick, wanted_nick FROM irc_users WHERE server = ? AND user_id != ? AND (nick IS NOT NULL OR wanted_nick IS NOT NULL)')
      .all(server, except) as { user_id: string; nick: string | null; wanted_nick: string | null }[];
    return rows.find((r) => (r.nick !== null && ircLower(r.nick) === want) || (r.wanted_nick !== null && ircLower(r.wanted_nick) === want))?.user_id;
  }
  /** Every Matrix user with a stored nick on a server: the nick their connection last had, and their stored username if any. */
  storedNicks(server: string): { userId: string; nick: string; username?: string }[] {
    return (prepared(this.db, 'SELECT user_id, nick, username FROM irc_users WHERE server = ? AND nick IS NOT NULL').all(server) as
      { user_id: string; nick: string; username: string | null }[]).map((r) => ({ userId: r.user_id, nick: r.nick, ...(r.username ? { username: r.username } : {}) }));
  }
  setUsername(userId: string, server: string, username: string): void {
    prepared(this.db, `INSERT INTO irc_users (user_id, server, username) VALUES (?, ?, ?)
      ON CONFLICT (user_id, server) DO UPDATE SET username = excluded.username`).run(userId, server, username);
  }
  /**
   * Store a user's password (sealed) and the account it logs in to: `account`, or by default the nick
   * they want now (chosen, or made by the template), never one merely held (a fallback like alice_).
   * With no wanted nick stored yet, the account stays unset and their next connection's wanted nick
   * becomes it ({@link setAccount}). null forgets the password and its account.
   */
  setPassword(userId: string, server: string, password: string | null, account?: string): void {
    prepared(this.db, `INSERT INTO irc_users (user_id, server, password_enc, account) VALUES (?, ?, ?, ?)
      ON CONFLICT (user_id, server) DO UPDATE SET password_enc = excluded.password_enc,
        account = CASE WHEN excluded.password_enc IS NULL THEN NULL ELSE COALESCE(excluded.account, irc_users.wanted_nick) END`)
      .run(userId, server, password === null ? null : this.box.seal(password), password === null ? null : account ?? null);
  }
  /** The account a stored password logs in to, when {@link setPassword} could not tell (the nick wanted at the first connection after it). */
  setAccount(userId: string, server: string, account: string): void {
    prepared(this.db, 'UPDATE irc_users SET account = ? WHERE user_id = ? AND server = ?').run(account, userId, server);
  }
  /** Is a password stored for the user (whether the key opens it or not)? Nothing is decrypted. */
  hasPassword(userId: string, server: string): boolean {
    return this.rawPassword(userId, server) !== undefined;
  }
  /** The raw stored value, for tests that check the password is not stored in clear. */
  rawPassword(userId: string, server: string): string | undefined {
    const r = prepared(this.db, 'SELECT password_enc FROM irc_users WHERE user_id = ? AND server = ?').get(userId, server) as { password_enc: string | null } | undefined;
    return r?.password_enc ?? undefined;
  }

  /**
   * The source address of a user's connections to a server from its block: the one stored, or
   * the first free one of the block (stored). One stored from another block (the config changed)
   * is given up for one of this block. When every address of the block is taken, the one least
   * recently used by a user without a connection now (`inUse` says who has one) passes to this
   * user (`takenFrom` names its owner before); undefined when all are in use.
   */
  address(server: string, userId: string, block: AddressBlock, inUse: (userId: string) => boolean = () => true, now = Date.now()): { address: string; takenFrom?: string } | undefined {
    const tx = this.db.transaction((): { address: string; takenFrom?: string } | undefined => {
      const r = prepared(this.db, 'SELECT address FROM irc_addresses WHERE server = ? AND user_id = ?').get(server, userId) as { address: string } | undefined;
      if (r && addressIndex(block, r.address) !== undefined) {
        prepared(this.db, 'UPDATE irc_addresses SET used_at = ? WHERE server = ? AND user_id = ?').run(now, server, userId);
        return { address: r.address };
      }
      const rows = prepared(this.db, 'SELECT user_id, address, used_at FROM irc_addresses WHERE server = ? ORDER BY used_at, rowid')
        .all(server) as { user_id: string; address: string; used_at: number }[];
      const taken = new Set<bigint>();
      for (const row of rows) {
        const i = addressIndex(block, row.address);
        if (i !== undefined) taken.add(i);
      }
      const usable = usableCount(block);
      let i = 0n;
      while (i < usable && taken.has(i)) i++;
      let address = nthAddress(block, i);
      let takenFrom: string | undefined;
      if (address === undefined) {
        const idle = rows.find((row) => row.user_id !== userId && addressIndex(block, row.address) !== undefined && !inUse(row.user_id));
        if (!idle) return undefined;
        prepared(this.db, 'DELETE FROM irc_addresses WHERE server = ? AND user_id = ?').run(server, idle.user_id);
        ({ address, takenFrom } = { address: idle.address, takenFrom: idle.user_id });
      }
      prepared(this.db, `INSERT INTO irc_addresses (server, user_id, address, used_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (server, user_id) DO UPDATE SET address = excluded.address, used_at = excluded.used_at`).run(server, userId, address, now);
      return { address, ...(takenFrom !== undefined ? { takenFrom } : {}) };
    });
    return tx();
  }

  /**
   * Ghost keys already read, by server and folded nick: asked for every IRC message, and the table
   * only changes here (a new nick, a rename, an account's, a binding dropped). Bounded: past the cap it starts again, empty.
   */
  private readonly ghostKeys = new Map<string, string>();

  /** The ghost key a nick has, or would get if it spoke now; nothing is stored (for lookups). */
  peekGhostKey(server: string, nick: string): string {
    const lc = ircLower(nick);
    return this.storedGhostKey(server, lc) ?? this.freeGhostKey(server, lc);
  }

  private storedGhostKey(server: string, lc: string): string | undefined {
    const r = prepared(this.db, 'SELECT ghost_key FROM irc_ghosts WHERE server = ? AND nick_lower = ?').get(server, lc) as { ghost_key: string } | undefined;
    return r?.ghost_key;
  }

  /** The key a new nick gets: a key is free when no nick has it and no account owns it (an account's ghost is not handed to a stranger). */
  private freeGhostKey(server: string, lc: string): string {
    const taken = (k: string): boolean => prepared(this.db,
      'SELECT 1 FROM irc_ghosts WHERE server = ? AND ghost_key = ? UNION ALL SELECT 1 FROM irc_accounts WHERE server = ? AND ghost_key = ?').get(server, k, server, k) !== undefined;
    let key = lc;
    for (let i = 2; taken(key); i++) key = `${lc}_${i}`;
    return key;
  }

  /**
   * The ghost key of a nick seen on IRC now (a message, a join, a name in a channel's list), creating
   * one if it has none (the nick itself, or with a suffix if that key is taken); the ghost goes by
   * that nick from now on ({@link nickOf}).
   */
  ghostKey(server: string, nick: string): string {
    const lc = ircLower(nick);
    const cacheKey = `${server}\0${lc}`;
    let key = this.ghostKeys.get(cacheKey);
    if (key === undefined) {
      key = this.storedGhostKey(server, lc);
      if (key === undefined) {
        key = this.freeGhostKey(server, lc);
        prepared(this.db, 'INSERT INTO irc_ghosts (server, nick_lower, ghost_key) VALUES (?, ?, ?)').run(server, lc, key);
      }
      if (this.ghostKeys.size >= GHOST_KEY_CACHE) this.ghostKeys.clear();
      this.ghostKeys.set(cacheKey, key);
    }
    this.goesBy(server, key, nick);
    return key;
  }

  /**
   * The nick each ghost goes by, as irc_ghost_nicks has it, by server and ghost key (null: not known),
   * read or written once: a sighting costs a write only when it changes. Bounded like {@link ghostKeys}.
   */
  private readonly currentNicks = new Map<string, string | null>();

  /**
   * The ghost `key` was seen as `nick`: it goes by it now. A nick is one ghost's at a time: a ghost
   * that went by it before no longer does, and its nick is not known until it is seen again (its
   * last one is someone else's now). The nick is kept as first seen (a mention typed in capitals is
   * no new spelling) unless `spelled` (a NICK: how its user writes it now).
   */
  private goesBy(server: string, key: string, nick: string, spelled = false): void {
    const ck = `${server}\0${key}`;
    let known = this.currentNicks.get(ck);
    if (known === undefined) {
      const r = prepared(this.db, 'SELECT nick FROM irc_ghost_nicks WHERE server = ? AND ghost_key = ?').get(server, key) as { nick: string | null } | undefined;
      known = r?.nick ?? null;
    }
    if (known !== null && (spelled ? known === nick : ircLower(known) === ircLower(nick))) {
      nick = known;
    } else {
      const lc = ircLower(nick);
      const before = this.db.transaction(() => {
        const others = prepared(this.db, 'SELECT ghost_key FROM irc_ghost_nicks WHERE server = ? AND nick_lower = ? AND ghost_key <> ?').all(server, lc, key) as { ghost_key: string }[];
        prepared(this.db, 'UPDATE irc_ghost_nicks SET nick = NULL, nick_lower = NULL WHERE server = ? AND nick_lower = ? AND ghost_key <> ?').run(server, lc, key);
        prepared(this.db, `INSERT INTO irc_ghost_nicks (server, ghost_key, nick, nick_lower) VALUES (?, ?, ?, ?)
          ON CONFLICT (server, ghost_key) DO UPDATE SET nick = excluded.nick, nick_lower = excluded.nick_lower`).run(server, key, nick, lc);
        return others;
      })();
      for (const o of before) this.currentNicks.set(`${server}\0${o.ghost_key}`, null);
    }
    if (this.currentNicks.size >= GHOST_KEY_CACHE) this.currentNicks.clear();
    this.currentNicks.set(ck, nick);
  }

  /** `lc` no longer stands for the ghost `key`: its binding goes, and the ghost no longer goes by it. */
  private unbind(server: string, lc: string, key: string): void {
    this.db.transaction(() => {
      prepared(this.db, 'DELETE FROM irc_ghosts WHERE server = ? AND nick_lower = ?').run(server, lc);
      prepared(this.db, 'UPDATE irc_ghost_nicks SET nick = NULL, nick_lower = NULL WHERE server = ? AND ghost_key = ? AND nick_lower = ?').run(server, key, lc);
    })();
    this.ghostKeys.delete(`${server}\0${lc}`);
    this.currentNicks.delete(`${server}\0${key}`);
  }

  /**
   * An IRC user logged in to `account` (the server says so: IRCv3 account-tag, extended-join) uses
   * `nick`. The first nick seen for an account gives the account its ghost; any nick the account
   * uses later is that ghost too, so someone who comes back as `alice_` is not a second ghost.
   * Returns the nick's ghost key.
   */
  accountNick(server: string, nick: string, account: string): string {
    const acct = ircLower(account);
    const row = prepared(this.db, 'SELECT ghost_key FROM irc_accounts WHERE server = ? AND account_lower = ?').get(server, acct) as { ghost_key: string } | undefined;
    if (!row) {
      const key = this.ghostKey(server, nick);
      prepared(this.db, 'INSERT INTO irc_accounts (server, account_lower, ghost_key) VALUES (?, ?, ?)').run(server, acct, key);
      return key;
    }
    const lc = ircLower(nick);
    const current = prepared(this.db, 'SELECT ghost_key FROM irc_ghosts WHERE server = ? AND nick_lower = ?').get(server, lc) as { ghost_key: string } | undefined;
    if (current?.ghost_key !== row.ghost_key) {
      prepared(this.db, 'INSERT OR REPLACE INTO irc_ghosts (server, nick_lower, ghost_key) VALUES (?, ?, ?)').run(server, lc, row.ghost_key);
      this.ghostKeys.set(`${server}\0${lc}`, row.ghost_key);
    }
    return row.ghost_key;
  }

  /**
   * Someone not logged in uses `nick`: if the nick stands for an account's ghost (its user used it
   * before, logged in), it stops doing so, and the nick gets a ghost of its own at its next use.
   * True when it did.
   */
  releaseAccountNick(server: string, nick: string): boolean {
    const lc = ircLower(nick);
    const owned = prepared(this.db, `SELECT g.ghost_key FROM irc_ghosts g JOIN irc_accounts a ON a.server = g.server AND a.ghost_key = g.ghost_key
      WHERE g.server = ? AND g.nick_lower = ?`).get(server, lc) as { ghost_key: string } | undefined;
    if (!owned) return false;
    this.unbind(server, lc, owned.ghost_key);
    return true;
  }

  /**
   * A nick left IRC (its QUIT; a netsplit's once its hold ran out), or someone the bridge had not
   * seen came with it (a JOIN from no channel the listener shares): whoever uses it next is nobody
   * the bridge knows. If it stood for a ghost only while its holder had it (a nick changed to, like
   * Guest123 after a services rename; or one whose own key was taken, `alice` → `alice_2`), it stops
   * doing so, and the ghost's nick is not known until it is seen again. Kept: a nick that is its
   * ghost's key (the nick it was first seen as: the same person back under it is the same ghost)
   * and an account's nicks (logged in, the server says who they are: {@link releaseAccountNick}).
   * True if the binding went.
   */
  nickGone(server: string, nick: string): boolean {
    const lc = ircLower(nick);
    const r = prepared(this.db, `SELECT g.ghost_key FROM irc_ghosts g WHERE g.server = ? AND g.nick_lower = ? AND g.ghost_key <> g.nick_lower
      AND NOT EXISTS (SELECT 1 FROM irc_accounts a WHERE a.server = g.server AND a.ghost_key = g.ghost_key)`).get(server, lc) as { ghost_key: string } | undefined;
    if (!r) return false;
    this.unbind(server, lc, r.ghost_key);
    return true;
  }

  /** A nick change: the new nick keeps the old one's ghost. */
  renameGhost(server: string, oldNick: string, newNick: string): string {
    const key = this.ghostKey(server, oldNick);
    const tx = this.db.transaction(() => {
      prepared(this.db, 'DELETE FROM irc_ghosts WHERE server = ? AND nick_lower = ?').run(server, ircLower(oldNick));
      prepared(this.db, 'INSERT OR REPLACE INTO irc_ghosts (server, nick_lower, ghost_key) VALUES (?, ?, ?)').run(server, ircLower(newNick), key);
    });
    tx();
    this.ghostKeys.delete(`${server}\0${ircLower(oldNick)}`);
    this.ghostKeys.set(`${server}\0${ircLower(newNick)}`, key);
    this.goesBy(server, key, newNick, true);
    return key;
  }

  /**
   * The nick a ghost goes by now, to reach its IRC user by (a private chat's replies, a pill): the
   * one it was last seen with. A ghost not seen since that was kept (migration 11) goes by the one
   * nick bound to it, or by its key when none is (the nick it was first seen as; also what a private
   * chat keyed by a nick, from before, names). Undefined when the bridge cannot tell: its last nick
   * is another ghost's now, or it left IRC under a nick it had changed to, or several nicks are
   * bound to it (an account's) and it has not been seen using one.
   */
  nickOf(server: string, ghostKey: string): string | undefined {
    const r = prepared(this.db, 'SELECT nick FROM irc_ghost_nicks WHERE server = ? AND ghost_key = ?').get(server, ghostKey) as { nick: string | null } | undefined;
    if (r) return r.nick ?? undefined;
    const bound = prepared(this.db, 'SELECT nick_lower FROM irc_ghosts WHERE server = ? AND ghost_key = ? LIMIT 2').all(server, ghostKey) as { nick_lower: string }[];
    return bound.length === 0 ? ghostKey : bound.length === 1 ? bound[0]!.nick_lower : undefined;
  }
}
