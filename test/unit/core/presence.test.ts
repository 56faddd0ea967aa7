import { afterEach, describe, expect, it, vi } from 'vitest';
import { GhostPresences } from '../../../packages/core/src/bridge/presence.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import type { MatrixPresence } from '../../../packages/core/src/network/contract.js';

/** A homeserver stand-in: records what was set, for users that have a ghost. */
function homeserver(ghosts: string[]) {
  const sent: string[] = [];
  const have = new Set(ghosts);
  const holds: Promise<void>[] = [];
  return {
    sent, have,
    /** Make the next send (that one only) wait for this; those after it go through at once. */
    holdNext(p: Promise<void>) { holds.push(p); },
    setPresence: async (user: string, presence: MatrixPresence, statusMsg?: string): Promise<boolean> => {
      await holds.shift();
      if (!have.has(user)) return false;
      sent.push(`${user} ${presence}${statusMsg ? ` ${statusMsg}` : ''}`);
      return true;
    },
  };
}

describe('GhostPresences: only changes, one user in order, repeated before the homeserver times them out', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('sends a change once, and nothing when the presence is the same', async () => {
    const hs = homeserver(['a']);
    const g = new GhostPresences({ setPresence: hs.setPresence, refreshSeconds: 0, log: silentLogger });
    g.update('a', { presence: 'online' });
    g.update('a', { presence: 'online' });
    g.update('a', { presence: 'unavailable', statusMsg: 'lunch' });
    g.update('a', { presence: 'unavailable', statusMsg: 'lunch' });
    g.update('a', { presence: 'unavailable', statusMsg: 'meeting' });
    await g.stop();
    expect(hs.sent).toEqual(['a online', 'a unavailable lunch', 'a unavailable meeting']);
    expect(g.showing('a')).toEqual({ presence: 'unavailable', statusMsg: 'meeting' });
  });

  it('keeps one user\'s changes in the order they were said, even when a send is slow', async () => {
    // only the first send is slow: sent at once, the second would overtake it
    const hs = homeserver(['a', 'b']);
    let release!: () => void;
    hs.holdNext(new Promise((r) => { release = r; }));
    const g = new GhostPresences({ setPresence: hs.setPresence, refreshSeconds: 0, log: silentLogger });
    g.update('a', { presence: 'unavailable', statusMsg: 'away' });
    g.update('a', { presence: 'online' });
    g.update('b', { presence: 'offline' });
    await new Promise((r) => setImmediate(r));
    // a's second change waits for the first; another user's does not
    expect(hs.sent).toEqual(['b offline']);
    release();
    await g.stop();
    expect(hs.sent).toEqual(['b offline', 'a unavailable away', 'a online']);
    expect(g.showing('a')).toEqual({ presence: 'online' });
  });

  it('remembers nothing for a user without a ghost, so the same state is sent once the ghost exists', async () => {
    const hs = homeserver([]);
    const g = new GhostPresences({ setPresence: hs.setPresence, refreshSeconds: 0, log: silentLogger });
    expect(await g.update('a', { presence: 'online' })).toBe(false);
    expect(hs.sent).toEqual([]);
    expect(g.showing('a')).toBeUndefined();
    hs.have.add('a');
    expect(await g.update('a', { presence: 'online' })).toBe(true);
    expect(hs.sent).toEqual(['a online']);
    expect(await g.update('a', { presence: 'online' })).toBe(true); // shown already: nothing sent, but it shows
  });

  it('a failed send is reported, not remembered, and does not stop the next change', async () => {
    const warn = vi.fn();
    let fail = true;
    const sent: string[] = [];
    const g = new GhostPresences({
      setPresence: async (user, presence) => { if (fail) { fail = false; throw new Error('homeserver down'); } sent.push(`${user} ${presence}`); return true; },
      refreshSeconds: 0, log: { ...silentLogger, warn },
    });
    g.update('a', { presence: 'online' });
    g.update('a', { presence: 'online' });
    await g.stop();
    expect(warn).toHaveBeenCalledOnce();
    expect(sent).toEqual(['a online']);
  });

  it('allOffline takes every ghost that shows otherwise offline', async () => {
    const hs = homeserver(['a', 'b', 'c']);
    const g = new GhostPresences({ setPresence: hs.setPresence, refreshSeconds: 0, log: silentLogger });
    g.update('a', { presence: 'online' });
    g.update('b', { presence: 'unavailable', statusMsg: 'zzz' });
    g.update('c', { presence: 'offline' });
    await g.stop();
    hs.sent.length = 0;
    g.allOffline();
    await g.stop();
    expect(hs.sent.sort()).toEqual(['a offline', 'b offline']);
  });

  it('says again every refreshSeconds what ghosts that are not offline show, and nothing for offline ones', async () => {
    vi.useFakeTimers();
    const hs = homeserver(['a', 'b']);
    const g = new GhostPresences({ setPresence: hs.setPresence, refreshSeconds: 25, log: silentLogger });
    g.update('a', { presence: 'unavailable', statusMsg: 'lunch' });
    g.update('b', { presence: 'offline' });
    await vi.advanceTimersByTimeAsync(0);
    hs.sent.length = 0;
    await vi.advanceTimersByTimeAsync(24_000);
    expect(hs.sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(hs.sent).toEqual(['a unavailable lunch']);
    await vi.advanceTimersByTimeAsync(25_000);
    expect(hs.sent).toEqual(['a unavailable lunch', 'a unavailable lunch']);
    await g.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(hs.sent).toHaveLength(2);
  });
});
