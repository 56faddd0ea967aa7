import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { parseBlock } from '../../../packages/irc/src/addresses.js';
import { makeClientCert } from '../../../packages/irc/src/certs.js';
import { IrcStore, PasswordBox, ircMigrations } from '../../../packages/irc/src/store.js';
import { tempDir } from '../temp.js';

function store(): { store: IrcStore; reopen: () => IrcStore } {
  const dir = tempDir('trestle-irc-store-');
  const db = openDatabase(join(dir, 'bridge.db'));
  migrate(db, 'irc', ircMigrations);
  const box = new PasswordBox(join(dir, 'irc.key'));
  return { store: new IrcStore(db, box), reopen: () => new IrcStore(db, box) };
}

describe('IrcStore ghost keys (remembered in memory, the table is the truth)', () => {
  it('gives a nick the same ghost key every time, case-insensitively, also to a fresh store', () => {
    const { store: s, reopen } = store();
    expect(s.ghostKey('libera', 'Alice')).toBe('alice');
    expect(s.ghostKey('libera', 'ALICE')).toBe('alice');
    expect(s.ghostKey('oftc', 'alice')).toBe('alice'); // servers are apart
    expect(reopen().ghostKey('libera', 'alice')).toBe('alice');
  });

  it('lets the new nick keep the ghost on a rename, and gives the freed nick a ghost of its own', () => {
    const { store: s, reopen } = store();
    expect(s.ghostKey('libera', 'alice')).toBe('alice');
    expect(s.renameGhost('libera', 'alice', 'alice_away')).toBe('alice');
    expect(s.ghostKey('libera', 'Alice_Away')).toBe('alice');
    // someone else takes the old nick: not the renamed user's ghost
    expect(s.ghostKey('libera', 'alice')).toBe('alice_2');
    const fresh = reopen();
    expect(fresh.ghostKey('libera', 'alice_away')).toBe('alice');
    expect(fresh.ghostKey('libera', 'alice')).toBe('alice_2');
  });

});

// Found in review: the nick to reach a ghost by was whichever nick row of it came first, and a nick
// changed to stood for its ghost for good, so its next holder became that ghost.
describe('IrcStore: the nick each ghost goes by, and nicks that were only theirs while they had them', () => {
  it('goes by the nick last seen (as IRC spells it), also for an account\'s ghost with several, also to a fresh store', () => {
    const { store: s, reopen } = store();
    s.accountNick('libera', 'Alice', 'ali');
    expect(s.ghostKey('libera', 'Alice')).toBe('alice');
    expect(s.nickOf('libera', 'alice')).toBe('Alice');
    s.accountNick('libera', 'alice_', 'ali');
    expect(s.ghostKey('libera', 'alice_')).toBe('alice');
    expect(s.nickOf('libera', 'alice')).toBe('alice_');
    expect(reopen().nickOf('libera', 'alice')).toBe('alice_');
    expect(s.renameGhost('libera', 'alice_', 'Alice_Away')).toBe('alice');
    expect(reopen().nickOf('libera', 'alice')).toBe('Alice_Away');
    s.ghostKey('libera', 'ALICE_AWAY'); // a mention typed in capitals: no new spelling
    expect(reopen().nickOf('libera', 'alice')).toBe('Alice_Away');
  });

  it('a nick is one ghost\'s at a time: the ghost that went by it before is not known to have one until seen again', () => {
    const { store: s, reopen } = store();
    s.accountNick('libera', 'alice', 'ali');
    s.accountNick('libera', 'alice_', 'ali');
    s.ghostKey('libera', 'alice_');
    // someone not logged in has alice_ now
    expect(s.releaseAccountNick('libera', 'alice_')).toBe(true);
    expect(s.nickOf('libera', 'alice')).toBeUndefined(); // not `alice`: that may be anyone now
    expect(s.ghostKey('libera', 'alice_')).toBe('alice_');
    expect(s.nickOf('libera', 'alice_')).toBe('alice_');
    expect(reopen().nickOf('libera', 'alice')).toBeUndefined();
    s.ghostKey('libera', 'alice'); // seen again
    expect(reopen().nickOf('libera', 'alice')).toBe('alice');
  });

  it('forgets a nick changed to once it is gone; keeps the nick a ghost was first seen as, and an account\'s', () => {
    const { store: s, reopen } = store();
    s.ghostKey('libera', 'alice');
    s.renameGhost('libera', 'alice', 'Guest123');
    expect(s.nickGone('libera', 'Guest123')).toBe(true);
    expect(s.nickOf('libera', 'alice')).toBeUndefined();
    expect(s.ghostKey('libera', 'guest123')).toBe('guest123'); // its next holder: a ghost of their own
    expect(s.ghostKey('libera', 'alice')).toBe('alice'); // the nick alice was first seen as: her ghost
    expect(s.nickGone('libera', 'alice')).toBe(false);
    expect(reopen().ghostKey('libera', 'alice')).toBe('alice');
    s.accountNick('libera', 'bob', 'bob');
    s.accountNick('libera', 'bob_', 'bob');
    expect(s.nickGone('libera', 'bob_')).toBe(false);
    expect(reopen().ghostKey('libera', 'bob_')).toBe('bob');
    expect(s.nickGone('libera', 'nobody')).toBe(false);
  });

  it('ghosts from before migration 11 go by their one nick, or their key; one with several nicks is not guessed', () => {
    const dir = tempDir('trestle-irc-store-');
    const db = openDatabase(join(dir, 'bridge.db'));
    migrate(db, 'irc', ircMigrations.filter((m) => m.version <= 10));
    const row = db.prepare('INSERT INTO irc_ghosts (server, nick_lower, ghost_key) VALUES (?, ?, ?)');
    row.run('libera', 'carol_away', 'carol'); // renamed
    row.run('libera', 'dan', 'dan');
    row.run('libera', 'dan_', 'dan'); // an account's second nick
    migrate(db, 'irc', ircMigrations);
    const s = new IrcStore(db, new PasswordBox(join(dir, 'irc.key')));
    expect(s.nickOf('libera', 'carol')).toBe('carol_away');
    expect(s.nickOf('libera', 'dan')).toBeUndefined();
    expect(s.nickOf('libera', 'erin')).toBe('erin'); // a private chat keyed by a nick, from before
    s.ghostKey('libera', 'Dan_');
    expect(s.nickOf('libera', 'dan')).toBe('Dan_');
  });
});

describe('IrcStore nicks of Matrix users', () => {
  it('keeps the display name a nick was made from, and none for a chosen nick, beside the other columns', () => {
    const { store: s } = store();
    s.setUsername('@a:x', 'libera', 'alice');
    s.setWantedNick('@a:x', 'libera', 'Alice[m]', 'Alice');
    expect(s.user('@a:x', 'libera')).toEqual({ wantedNick: 'Alice[m]', nickFrom: 'Alice', username: 'alice' });
    s.setHeldNick('@a:x', 'libera', 'Alice[m]_'); // what the connection was given: apart from the wanted one
    expect(s.user('@a:x', 'libera')).toEqual({ nick: 'Alice[m]_', wantedNick: 'Alice[m]', nickFrom: 'Alice', username: 'alice' });
    s.setWantedNick('@a:x', 'libera', 'ali', null);
    expect(s.user('@a:x', 'libera')).toEqual({ nick: 'Alice[m]_', wantedNick: 'ali', username: 'alice' });
    expect(s.user('@a:x', 'oftc')).toEqual({});
  });
});

describe('IrcStore account ghosts', () => {
  it('gives an account the ghost of the first nick seen with it, and that ghost to any nick it uses later', () => {
    const { store: s, reopen } = store();
    expect(s.accountNick('libera', 'Ann', 'ann')).toBe('ann');
    expect(s.ghostKey('libera', 'ann_away')).toBe('ann_away'); // seen before, without an account
    expect(s.accountNick('libera', 'ann_away', 'ANN')).toBe('ann'); // accounts fold like nicks
    expect(s.ghostKey('libera', 'ann_away')).toBe('ann');
    expect(reopen().ghostKey('libera', 'ann_away')).toBe('ann');
    expect(s.accountNick('oftc', 'ann_away', 'ann')).toBe('ann_away'); // servers are apart
    // someone not logged in takes ann_away: it stops standing for the account, and its new ghost is not ann's
    expect(s.releaseAccountNick('libera', 'ann_away')).toBe(true);
    expect(s.ghostKey('libera', 'ann_away')).toBe('ann_away');
    expect(s.releaseAccountNick('libera', 'ann_away')).toBe(false); // its own ghost now
    expect(s.releaseAccountNick('libera', 'Ann')).toBe(true);
    expect(s.ghostKey('libera', 'ann')).toBe('ann_2'); // the account keeps the key "ann"
  });
});

describe('IrcStore source addresses (addressBlock)', () => {
  const addr = (got: { address: string } | undefined): string | undefined => got?.address;

  it('gives each user the first free address once and the same one after, also to a fresh store', () => {
    const { store: s, reopen } = store();
    const b = parseBlock('127.0.1.0/24');
    expect(s.address('test', '@a:x', b)).toEqual({ address: '127.0.1.1' });
    expect(addr(s.address('test', '@b:x', b))).toBe('127.0.1.2');
    expect(addr(s.address('test', 'relay', b))).toBe('127.0.1.3');
    expect(addr(s.address('test', '@a:x', b))).toBe('127.0.1.1');
    expect(addr(reopen().address('test', '@b:x', b))).toBe('127.0.1.2');
    expect(addr(s.address('other', '@b:x', b))).toBe('127.0.1.1'); // servers are apart
  });

  it('says when the block is used up, and gives an address of the new block when the block changes', () => {
    const { store: s } = store();
    const small = parseBlock('127.0.2.0/30'); // two usable addresses
    expect(addr(s.address('test', '@a:x', small))).toBe('127.0.2.1');
    expect(addr(s.address('test', '@b:x', small))).toBe('127.0.2.2');
    expect(s.address('test', '@c:x', small)).toBeUndefined(); // (everyone in use, the default)
    const v6 = parseBlock('2001:db8::/64');
    expect(addr(s.address('test', '@c:x', v6))).toBe('2001:db8::1');
    expect(addr(s.address('test', '@a:x', v6))).toBe('2001:db8::2'); // its IPv4 address is not of this block: replaced
    expect(addr(s.address('test', '@b:x', small))).toBe('127.0.2.2'); // still its own in the old block
    expect(addr(s.address('test', '@a:x', small))).toBe('127.0.2.1'); // free again: a's row moved to the IPv6 block
  });

  it('passes a used-up block\'s least recently used address of a user not connected now, never one in use', () => {
    const { store: s, reopen } = store();
    const small = parseBlock('127.0.2.0/30');
    expect(addr(s.address('test', '@a:x', small, undefined, 1000))).toBe('127.0.2.1');
    expect(addr(s.address('test', '@b:x', small, undefined, 2000))).toBe('127.0.2.2');
    expect(addr(s.address('test', '@a:x', small, undefined, 3000))).toBe('127.0.2.1'); // a used it last: b's is the older
    const connected = new Set(['@a:x', '@b:x']);
    const inUse = (u: string): boolean => connected.has(u);
    expect(s.address('test', '@c:x', small, inUse, 4000)).toBeUndefined();
    connected.delete('@a:x');
    expect(s.address('test', '@c:x', small, inUse, 5000)).toEqual({ address: '127.0.2.1', takenFrom: '@a:x' });
    connected.add('@c:x');
    connected.delete('@b:x');
    // a, back, takes b's (the only one not in use), kept across a restart
    expect(s.address('test', '@a:x', small, inUse, 6000)).toEqual({ address: '127.0.2.2', takenFrom: '@b:x' });
    expect(addr(reopen().address('test', '@a:x', small, () => true, 7000))).toBe('127.0.2.2');
    expect(addr(s.address('test', '@c:x', small, () => true, 8000))).toBe('127.0.2.1');
    expect(s.address('test', '@b:x', small, (u) => u !== '@b:x', 9000)).toBeUndefined(); // its own row is gone; a and c in use
  });
});

describe('IrcStore migrations 9 and 10: the account of a stored password, the wanted nick', () => {
  it('fills the account from the stored nick where a password is stored, and the wanted nick from a chosen one', () => {
    const dir = tempDir('trestle-irc-store-');
    const db = openDatabase(join(dir, 'bridge.db'));
    migrate(db, 'irc', ircMigrations.slice(0, 8));
    const box = new PasswordBox(join(dir, 'irc.key'));
    new IrcStore(db, box); // (makes the key: nothing is sealed yet)
    const row = db.prepare('INSERT INTO irc_users (user_id, server, nick, nick_from, password_enc) VALUES (?, ?, ?, ?, ?)');
    row.run('@a:x', 'libera', 'alice_', 'Alice', box.seal('pw')); // made from the template, a fallback held last
    row.run('@b:x', 'libera', 'bob', null, null); // chosen, no password
    row.run('@c:x', 'libera', 'carol', null, box.seal('pw3')); // chosen, with a password
    expect(migrate(db, 'irc', ircMigrations)).toBe(ircMigrations.length);
    const s = new IrcStore(db, box);
    // the best known: the nick last held; a template nick is made again (it may be a fallback), a chosen one kept
    expect(s.user('@a:x', 'libera')).toEqual({ nick: 'alice_', nickFrom: 'Alice', account: 'alice_', password: 'pw' });
    expect(s.user('@b:x', 'libera')).toEqual({ nick: 'bob', wantedNick: 'bob' });
    expect(s.user('@c:x', 'libera')).toEqual({ nick: 'carol', wantedNick: 'carol', account: 'carol', password: 'pw3' });
  });
});

describe('IrcStore account of a stored password', () => {
  it('takes the wanted nick at storepass time (not the one held), keeps it through nick changes, and forgets it with the password', () => {
    const { store: s } = store();
    s.setWantedNick('@a:x', 'libera', 'alice', null);
    s.setHeldNick('@a:x', 'libera', 'alice_');
    s.setPassword('@a:x', 'libera', 'pw');
    expect(s.user('@a:x', 'libera')).toMatchObject({ account: 'alice', password: 'pw' });
    s.setWantedNick('@a:x', 'libera', 'alice|away', null);
    s.setHeldNick('@a:x', 'libera', 'Guest12345');
    expect(s.user('@a:x', 'libera').account).toBe('alice');
    s.setPassword('@a:x', 'libera', 'pw2', 'AliceAccount'); // an account named explicitly
    expect(s.user('@a:x', 'libera').account).toBe('AliceAccount');
    s.setPassword('@a:x', 'libera', null);
    expect(s.user('@a:x', 'libera').account).toBeUndefined();
    s.setPassword('@b:x', 'libera', 'pw'); // no nick known yet: the first connection's wanted nick becomes it (server.ts)
    expect(s.user('@b:x', 'libera').account).toBeUndefined();
    s.setAccount('@b:x', 'libera', 'bob');
    expect(s.user('@b:x', 'libera')).toEqual({ account: 'bob', password: 'pw' });
  });
});

describe('IrcStore key file', () => {
  function sealed(): { dir: string; keyFile: string; db: ReturnType<typeof openDatabase>; s: IrcStore } {
    const dir = tempDir('trestle-irc-store-');
    const db = openDatabase(join(dir, 'bridge.db'));
    migrate(db, 'irc', ircMigrations);
    const keyFile = join(dir, 'keys', 'irc.key');
    return { dir, keyFile, db, s: new IrcStore(db, new PasswordBox(keyFile)) };
  }

  it('is made on first use when nothing is sealed yet (mode 0600)', () => {
    const { keyFile } = sealed();
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  it('is not made again while sealed secrets exist: start-up fails naming the file and what to do', () => {
    const { keyFile, db, s, dir } = sealed();
    s.setPassword('@a:x', 'libera', 'pw');
    renameSync(keyFile, join(dir, 'moved.key'));
    let why = '';
    try { new IrcStore(db, new PasswordBox(keyFile)); } catch (err) { why = (err as Error).message; }
    expect(why).toContain(`${keyFile} is missing`);
    expect(why).toMatch(/1 stored secret.*Put the key file back/s);
    expect(existsSync(keyFile)).toBe(false); // no new key that opens nothing
    renameSync(join(dir, 'moved.key'), keyFile);
    expect(new IrcStore(db, new PasswordBox(keyFile)).user('@a:x', 'libera').password).toBe('pw');
  });

  it('counts a certificate key as sealed too', () => {
    const { keyFile, db, s, dir } = sealed();
    s.setCertificate('@a:x', 'libera', makeClientCert('store'));
    renameSync(keyFile, join(dir, 'moved.key'));
    expect(() => new IrcStore(db, new PasswordBox(keyFile))).toThrow(/is missing/);
  });
});

describe('IrcStore secrets the key does not open', () => {
  it('treats them as absent and says which, without failing the rest of the row', () => {
    const { keyFile, db, s } = (() => {
      const dir = tempDir('trestle-irc-store-');
      const db = openDatabase(join(dir, 'bridge.db'));
      migrate(db, 'irc', ircMigrations);
      const keyFile = join(dir, 'irc.key');
      return { keyFile, db, s: new IrcStore(db, new PasswordBox(keyFile)) };
    })();
    const cert = makeClientCert('store');
    s.setWantedNick('@a:x', 'libera', 'alice', null);
    s.setPassword('@a:x', 'libera', 'pw');
    s.setCertificate('@a:x', 'libera', cert);
    // one damaged row: the certificate still opens
    db.prepare("UPDATE irc_users SET password_enc = 'v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==:AAAA'").run();
    expect(s.user('@a:x', 'libera')).toEqual({ wantedNick: 'alice', account: 'alice', cert, unreadable: ['password'] });
    // another key in the file's place: nothing opens
    s.setPassword('@a:x', 'libera', 'pw');
    writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`);
    const other = new IrcStore(db, new PasswordBox(keyFile));
    expect(other.user('@a:x', 'libera')).toEqual({ wantedNick: 'alice', account: 'alice', unreadable: ['password', 'certificate key'] });
    expect(other.keyFile).toBe(keyFile);
    other.setPassword('@a:x', 'libera', 'pw'); // storepass again
    expect(other.user('@a:x', 'libera')).toEqual({ wantedNick: 'alice', account: 'alice', password: 'pw', unreadable: ['certificate key'] });
  });
});
