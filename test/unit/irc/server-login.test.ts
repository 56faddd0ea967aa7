// Who a Matrix user's connection asks to be and logs in as (server.ts with the real IrcStore; no
// socket is opened: connections are made, not connected, and the nick the server gave is fed as the
// connection's own event). The account a stored password logs in to is not whatever nick the user
// last held (a fallback at registration, a services rename, a nick change); the nick asked for is
// the one the user wants, not a fallback taken once; a stored secret the key no longer opens is
// connected without and the user is told.
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NetworkContext } from '@trestle/core';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { makeClientCert } from '../../../packages/irc/src/certs.js';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';
import type { LeanConnection } from '../../../packages/irc/src/lean.js';
import type { LeanOptions } from '../../../packages/irc/src/leanOptions.js';
import { IrcServer } from '../../../packages/irc/src/server.js';
import { IrcStore, PasswordBox, ircMigrations } from '../../../packages/irc/src/store.js';
import { tempDir } from '../temp.js';

function bridge(server: Record<string, unknown> = {}) {
  const dir = tempDir('trestle-irc-login-');
  const db = openDatabase(join(dir, 'bridge.db'));
  migrate(db, 'irc', ircMigrations);
  const keyFile = join(dir, 'irc.key');
  const told: [string, string][] = [];
  const errors: [string, Record<string, unknown>][] = [];
  type Log = { debug(): void; info(): void; warn(): void; error(msg: string, meta?: Record<string, unknown>): void; child(fields: Record<string, unknown>): Log };
  const logger = (fields: Record<string, unknown>): Log => ({
    debug() {}, info() {}, warn() {}, error(msg, meta) { errors.push([msg, { ...fields, ...meta }]); }, child: (more) => logger({ ...fields, ...more }),
  });
  const log = logger({});
  const ctx = {
    log, kv: new Map(), portals: { forChat: () => [], all: () => [] },
    notifyUser: async (userId: string, text: string) => { told.push([userId, text]); },
  } as unknown as NetworkContext;
  const cfg = ircConfigSchema.parse({ servers: { net: { host: 'irc.invalid', tls: true, ...server } } }).servers['net']!;
  const make = (): { s: IrcServer; store: IrcStore } => {
    const store = new IrcStore(db, new PasswordBox(keyFile));
    return { s: new IrcServer('net', cfg, ctx, store), store };
  };
  return { ...make(), make, keyFile, told, errors };
}

const opts = (c: LeanConnection): LeanOptions => (c as unknown as { opts: LeanOptions }).opts;

/** The user's connection is closed and opened again (a reconnect command, an idle close, a restart). */
function again(s: IrcServer, userId: string, displayName: string): LeanConnection {
  s.closeClient(userId, 'again');
  return s.clientFor(userId, displayName);
}

describe('the account a stored password logs in to', () => {
  it('is the nick wanted when the password was stored, whatever nick the connection holds later', () => {
    const { s, store } = bridge();
    store.setPassword('@a:x', 'net', 'pw'); // storepass before the first connection
    const c = s.clientFor('@a:x', 'Alice');
    expect(opts(c).sasl).toEqual({ account: 'Alice[m]', password: 'pw' });
    c.emit('registered', 'Alice[m]_'); // the old connection lingered: a fallback at registration
    c.emit('own nick', 'Guest12345'); // then services renamed it
    const next = again(s, '@a:x', 'Alice');
    expect(opts(next).sasl).toEqual({ account: 'Alice[m]', password: 'pw' });
    expect(opts(next).nick).toBe('Alice[m]');
    s.stop();
  });

  it('is the chosen nick at storepass time, not a nick held then, and stays through a later nick command', () => {
    const { s, store } = bridge();
    const c = s.clientFor('@a:x', 'Alice');
    s.nickChosen('@a:x', 'alice'); // the nick command
    c.emit('own nick', 'alice|away'); // a raw NICK (cmd): held, not wanted
    store.setPassword('@a:x', 'net', 'pw');
    expect(opts(again(s, '@a:x', 'Alice')).sasl).toEqual({ account: 'alice', password: 'pw' });
    s.nickChosen('@a:x', 'bob');
    expect(opts(again(s, '@a:x', 'Alice')).sasl?.account).toBe('alice');
    expect(opts(s.clients.get('@a:x')!).nick).toBe('bob');
    s.stop();
  });

  it('is forgotten with the password, and taken again from the wanted nick at the next storepass', () => {
    const { s, store } = bridge();
    s.clientFor('@a:x', 'Alice');
    s.nickChosen('@a:x', 'alice');
    store.setPassword('@a:x', 'net', 'pw');
    store.setPassword('@a:x', 'net', null); // removepass
    expect(opts(again(s, '@a:x', 'Alice')).sasl).toBeUndefined();
    s.nickChosen('@a:x', 'alice2');
    store.setPassword('@a:x', 'net', 'pw2');
    expect(opts(again(s, '@a:x', 'Alice')).sasl).toEqual({ account: 'alice2', password: 'pw2' });
    s.stop();
  });
});

describe('the nick a connection asks for', () => {
  it('is the wanted one, not a fallback the last connection was given', () => {
    const { s, store } = bridge();
    const c = s.clientFor('@b:x', 'Bob');
    expect(opts(c).nick).toBe('Bob[m]');
    c.emit('registered', 'Bob[m]_');
    expect(opts(again(s, '@b:x', 'Bob')).nick).toBe('Bob[m]');
    s.clients.get('@b:x')!.emit('registered', 'M0abc'); // an invalid-nick fallback
    expect(opts(again(s, '@b:x', 'Bob')).nick).toBe('Bob[m]');
    // the held nick is still what a leftover connection from before a crash is known by
    expect(store.storedNicks('net')).toEqual([{ userId: '@b:x', nick: 'M0abc' }]);
    s.stop();
  });

  it('is a chosen nick, not a fallback of it; and a template nick still follows a rename made while not connected', () => {
    const { s } = bridge();
    s.clientFor('@b:x', 'Bob');
    s.nickChosen('@b:x', 'bobby');
    again(s, '@b:x', 'Bob').emit('registered', 'bobby_');
    expect(opts(again(s, '@b:x', 'Bob')).nick).toBe('bobby');
    expect(opts(s.clientFor('@c:x', 'Carol')).nick).toBe('Carol[m]');
    s.clients.get('@c:x')!.emit('registered', 'Carol[m]_');
    expect(opts(again(s, '@c:x', 'Caroline')).nick).toBe('Caroline[m]');
    s.stop();
  });

  it('is kept across a restart (a new store and server on the same database)', () => {
    const b = bridge();
    b.s.clientFor('@b:x', 'Bob').emit('registered', 'Bob[m]_');
    b.s.stop();
    const { s } = b.make();
    expect(opts(s.clientFor('@b:x', 'Bob')).nick).toBe('Bob[m]');
    s.stop();
  });
});

describe('a stored secret the key no longer opens', () => {
  it('is connected without, logged, and its user told once to store it again; the nick stays pinned', () => {
    const b = bridge();
    b.store.setPassword('@a:x', 'net', 'pw');
    b.store.setCertificate('@a:x', 'net', makeClientCert('login'));
    b.s.clientFor('@a:x', 'Alice');
    b.s.stop();
    writeFileSync(b.keyFile, `${randomBytes(32).toString('hex')}\n`); // another key in its place
    const { s } = b.make();
    const c = s.clientFor('@a:x', 'Alicia');
    expect(opts(c).sasl).toBeUndefined();
    expect(opts(c).clientCert).toBeUndefined();
    expect(opts(c).nick).toBe('Alice[m]'); // still pinned by the (unreadable) password: it comes back with storepass
    expect(b.errors.map(([msg]) => msg).join('\n')).toMatch(/cannot be decrypted/);
    expect(b.errors.at(-1)![1]).toMatchObject({ user: '@a:x', secrets: ['password', 'certificate key'], keyFile: b.keyFile });
    expect(b.told).toHaveLength(1);
    expect(b.told[0]![0]).toBe('@a:x');
    expect(b.told[0]![1]).toMatch(/storepass net/);
    expect(b.told[0]![1]).toMatch(/removecert net/);
    c.state = 'connected'; // (as if registered: a rename is followed only then)
    expect(() => s.followDisplayName('@a:x', 'Alicia')).not.toThrow();
    c.state = 'idle';
    again(s, '@a:x', 'Alicia');
    expect(b.told).toHaveLength(1); // once per run
    s.stop();
  });
});
