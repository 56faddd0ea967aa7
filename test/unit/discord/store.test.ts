import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { DiscordStore, discordMigrations } from '../../../packages/discord/src/store.js';
import { tempDir } from '../temp.js';

function store(): DiscordStore {
  const db = openDatabase(join(tempDir('trestle-discord-store-'), 'bridge.db'));
  migrate(db, 'discord', discordMigrations);
  return new DiscordStore(db);
}

describe('DiscordStore: who linked a channel', () => {
  it('forgets, at start, who linked links that no longer exist, and keeps the rest', () => {
    const s = store();
    s.setLinkedBy('!kept:hs', 'c1', '@alice:hs');
    s.setLinkedBy('!gone:hs', 'c1', '@bob:hs'); // the same channel, a room no longer linked to it
    s.setLinkedBy('!kept:hs', 'c2', '@carol:hs'); // the same room, a channel no longer linked to it
    expect(s.keepLinks([{ roomId: '!kept:hs', chat: 'c1' }, { roomId: '!other:hs', chat: 'c3' }])).toBe(2);
    expect(s.linkedBy('c1')).toEqual([{ roomId: '!kept:hs', userId: '@alice:hs' }]);
    expect(s.linkedBy('c2')).toEqual([]);
    expect(s.keepLinks([{ roomId: '!kept:hs', chat: 'c1' }])).toBe(0); // nothing more to forget
    expect(s.linkedBy('c1')).toHaveLength(1);
  });
});
