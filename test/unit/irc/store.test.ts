import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { parseBlock } from '../../../packages/irc/src/addresses.js';
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

describe('IrcStore nicks of Matrix users', () => {
  it('keeps the display name a nick was made from, and none for a chosen nick, beside the other columns', () => {
    const { store: s } = store();
    s.setUsername('@a:x', 'libera', 'alice');
    s.setNick('@a:x', 'libera', 'Alice[m]', 'Alice');
    expect(s.user('@a:x', 'libera')).toEqual({ nick: 'Alice[m]', nickFrom: 'Alice', username: 'alice' });
    s.setNick('@a:x', 'libera', 'ali', null);
    expect(s.user('@a:x', 'libera')).toEqual({ nick: 'ali', username: 'alice' });
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
