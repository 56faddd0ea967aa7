import { describe, expect, it } from 'vitest';
import { looksLikeSplitReason, NetsplitDetector, type NetsplitOptions } from '../../../packages/irc/src/netsplit.js';

describe('looksLikeSplitReason', () => {
  it.each([
    ['hub.example.net leaf.example.net', true],
    ['irc.a.org irc.b.org', true],
    ['*.net *.split', true], // networks that hide their servers
    ['a.b c.d', true],
    ['  a.b c.d  ', true],
    ['Quit: a.b c.d', false], // servers prefix user quits: a user cannot fake a split
    ['Ping timeout: 240 seconds', false],
    ['Remote host closed the connection', false],
    ['a.b', false],
    ['a.b c.d e.f', false],
    ['ab cd', false],
    ['a. .b', false],
    ['', false],
    [undefined, false],
  ])('%j → %s', (reason, expected) => { expect(looksLikeSplitReason(reason)).toBe(expected); });
});

const OPTS: NetsplitOptions = { holdMs: 60_000, burstQuits: 4, burstWindowMs: 1_000 };

describe('NetsplitDetector', () => {
  it('releases an ordinary quit at once and holds a split quit', () => {
    const d = new NetsplitDetector<string>(OPTS);
    expect(d.quit({ key: 'ann', reason: 'Quit: bye' }, 'ann', 0)).toBeUndefined();
    expect(d.quit({ key: 'bob', reason: 'hub.net leaf.net' }, 'bob', 0)).toBe('reason');
    expect(d.quit({ key: 'cat', batch: 'netsplit' }, 'cat', 0)).toBe('batch');
    expect(d.heldCount).toBe(2);
  });

  it('peek shows a held quit and leaves it held', () => {
    const d = new NetsplitDetector<{ channels: string[] }>(OPTS);
    d.quit({ key: 'bob', reason: 'hub.net leaf.net' }, { channels: ['#a', '#b'] }, 0);
    expect(d.peek('bob')).toEqual({ channels: ['#a', '#b'] });
    expect(d.peek('ann')).toBeUndefined();
    expect(d.heldCount).toBe(1);
    expect(d.expired(60_000)).toEqual([{ channels: ['#a', '#b'] }]);
  });

  it('cancels a held quit when the nick returns, and only then', () => {
    const d = new NetsplitDetector<string>(OPTS);
    d.quit({ key: 'bob', reason: 'hub.net leaf.net' }, 'bob payload', 1000);
    expect(d.returned('ann')).toBeUndefined();
    expect(d.returned('bob')).toBe('bob payload');
    expect(d.returned('bob')).toBeUndefined(); // once
    expect(d.expired(1_000_000)).toEqual([]);
  });

  it('releases held quits when their time is up, in order, and says when the next is due', () => {
    const d = new NetsplitDetector<string>(OPTS);
    d.quit({ key: 'a', reason: 'x.y z.w' }, 'a', 0);
    d.quit({ key: 'b', reason: 'x.y z.w' }, 'b', 10_000);
    expect(d.nextExpiry()).toBe(60_000);
    expect(d.expired(59_999)).toEqual([]);
    expect(d.expired(60_000)).toEqual(['a']);
    expect(d.nextExpiry()).toBe(70_000);
    expect(d.expired(80_000)).toEqual(['b']);
    expect(d.nextExpiry()).toBeUndefined();
  });

  it('a quit in a netsplit batch is held even with an ordinary reason; a netjoin brings it back', () => {
    const d = new NetsplitDetector<string>(OPTS);
    expect(d.quit({ key: 'ann', reason: 'Ping timeout', batch: 'netsplit' }, 'ann', 0)).toBe('batch');
    expect(d.returned('ann')).toBe('ann');
  });

  it.each<[string, number[], (string | undefined)[]]>([
    // quits at these times (ms) → what each is held as; 4 within 1 s make a burst
    ['a slow trickle is never a burst', [0, 400, 800, 1200, 1600, 2000], [undefined, undefined, undefined, undefined, undefined, undefined]],
    ['the fourth within a second starts holding', [0, 100, 200, 300, 400], [undefined, undefined, undefined, 'burst', 'burst']],
    ['the window slides', [0, 100, 200, 1250, 1300, 1350, 1400], [undefined, undefined, undefined, undefined, undefined, undefined, 'burst']],
  ])('quit rate: %s', (_name, times, expected) => {
    const d = new NetsplitDetector<number>(OPTS);
    expect(times.map((t, i) => d.quit({ key: `n${i}`, reason: 'Ping timeout: 240 seconds' }, i, t))).toEqual(expected);
  });

  it('lists the quits it holds (still members, for a member list taken meanwhile) until they return or expire', () => {
    const d = new NetsplitDetector<string>(OPTS);
    d.quit({ key: 'ann', reason: 'Quit: bye' }, 'ann', 0);
    d.quit({ key: 'bob', reason: 'hub.net leaf.net' }, 'bob', 0);
    d.quit({ key: 'cat', reason: 'hub.net leaf.net' }, 'cat', 30_000);
    expect(d.holding()).toEqual(['bob', 'cat']);
    d.returned('bob');
    expect(d.holding()).toEqual(['cat']);
    d.expired(90_000);
    expect(d.holding()).toEqual([]);
  });

  it('a nick held twice keeps the later quit', () => {
    const d = new NetsplitDetector<string>(OPTS);
    d.quit({ key: 'bob', reason: 'a.b c.d' }, 'first', 0);
    d.quit({ key: 'bob', reason: 'a.b c.d' }, 'second', 5_000);
    expect(d.heldCount).toBe(1);
    expect(d.expired(65_000)).toEqual(['second']);
  });

  it('clear forgets everything', () => {
    const d = new NetsplitDetector<string>(OPTS);
    d.quit({ key: 'bob', reason: 'a.b c.d' }, 'bob', 0);
    d.clear();
    expect(d.heldCount).toBe(0);
    expect(d.nextExpiry()).toBeUndefined();
  });
});
