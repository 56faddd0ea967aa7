// Channel renames remembered for the config's static mappings (renames.ts), with an in-memory kv.
import { describe, expect, it } from 'vitest';
import { currentChannel, noteRename, type RenameKv } from '../../../packages/irc/src/renames.js';

function memoryKv(): RenameKv & { size(): number } {
  const m = new Map<string, string>();
  return { get: (k) => m.get(k), set: (k, v) => { m.set(k, v); }, delete: (k) => { m.delete(k); }, size: () => m.size };
}

describe('channel renames for static mappings', () => {
  it('follows a chain of renames, case-insensitively, per server', () => {
    const kv = memoryKv();
    expect(currentChannel(kv, 'libera', '#old')).toBe('#old');
    noteRename(kv, 'libera', '#Old', '#middle');
    noteRename(kv, 'libera', '#MIDDLE', '#New');
    expect(currentChannel(kv, 'libera', '#old')).toBe('#New');
    expect(currentChannel(kv, 'libera', '#OLD')).toBe('#New');
    expect(currentChannel(kv, 'oftc', '#old')).toBe('#old');
  });

  it('a rename back makes the first name current again, and a new case of the same name is no rename', () => {
    const kv = memoryKv();
    noteRename(kv, 's', '#a', '#b');
    noteRename(kv, 's', '#b', '#a');
    expect(currentChannel(kv, 's', '#a')).toBe('#a');
    expect(currentChannel(kv, 's', '#b')).toBe('#a');
    noteRename(kv, 's', '#c', '#C');
    expect(kv.size()).toBe(1);
  });

  it('stops on a record that points in a circle instead of looping', () => {
    const kv = memoryKv();
    kv.set('rename:s:#x', '#y');
    kv.set('rename:s:#y', '#x');
    expect(['#x', '#y']).toContain(currentChannel(kv, 's', '#x'));
  });
});
