// Client-side flood control (flood.ts), pure: the token bucket against a clock the test moves, the
// JOIN lines of a rejoin packed into 512 bytes, and the `flood` config section's defaults and limits.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ircServerSchema } from '../../../packages/irc/src/config.js';
import { FloodBucket, joinLines, Pacer } from '../../../packages/irc/src/flood.js';

function bucket(burstLines: number, linesPerSecond: number): { b: FloodBucket; advance: (ms: number) => void } {
  let now = 1_000_000;
  return { b: new FloodBucket({ burstLines, linesPerSecond }, () => now), advance: (ms) => { now += ms; } };
}

describe('FloodBucket', () => {
  it('lets the burst go at once, then one line per 1/rate seconds', () => {
    const { b, advance } = bucket(3, 2);
    for (let i = 0; i < 3; i++) { expect(b.waitFor(1)).toBe(0); b.spend(); }
    expect(b.waitFor(1)).toBe(500);
    advance(499);
    expect(b.waitFor(1)).toBe(1);
    advance(1);
    expect(b.waitFor(1)).toBe(0);
    b.spend();
    expect(b.waitFor(1)).toBe(500);
  });

  it('refills up to the burst, never beyond it', () => {
    const { b, advance } = bucket(2, 10);
    b.spend(2);
    advance(60_000);
    b.spend(2);
    expect(b.waitFor(1)).toBe(100); // empty again: the long quiet spell saved up no more than the burst
  });

  it('lets lines that never wait (a barrier PING, a PONG) take it into debt: the next line waits for them too', () => {
    const { b } = bucket(2, 4);
    b.spend(2);
    b.spend(); // the PING after them
    expect(b.waitFor(1)).toBe(500); // two tokens to make up: 1 owed, 1 for the line
  });

  it('makes a cost above the burst (a long multiline batch) wait for a full bucket, not forever, and counts it all', () => {
    const { b, advance } = bucket(5, 5);
    b.spend(1);
    expect(b.waitFor(12)).toBe(200); // a full bucket, not 12 tokens
    advance(200);
    expect(b.waitFor(12)).toBe(0);
    b.spend(12);
    expect(b.waitFor(1)).toBe(1600); // 7 owed + 1: the lines after it wait for what it overspent
  });

  it('costs of exactly the burst go on a full bucket', () => {
    const { b } = bucket(4, 1);
    expect(b.waitFor(4)).toBe(0);
  });
});

describe('Pacer', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('off (or not configured): every line may go, nothing waits', () => {
    for (const p of [new Pacer(undefined), new Pacer({ enabled: false, burstLines: 1, linesPerSecond: 1 })]) {
      p.restart();
      for (let i = 0; i < 100; i++) { expect(p.ready(1, () => undefined)).toBe(true); p.written(); }
    }
  });

  it('on: resumes the waiting pump once the tokens are back, and not after stop()', () => {
    vi.useFakeTimers();
    const p = new Pacer({ enabled: true, burstLines: 1, linesPerSecond: 10 });
    p.restart();
    const resumed: number[] = [];
    expect(p.ready(1, () => resumed.push(1))).toBe(true);
    p.written();
    expect(p.ready(1, () => resumed.push(2))).toBe(false);
    vi.advanceTimersByTime(100);
    expect(resumed).toEqual([2]);
    p.written();
    expect(p.ready(1, () => resumed.push(3))).toBe(false);
    p.stop(); // quit, closed
    vi.advanceTimersByTime(10_000);
    expect(resumed).toEqual([2]);
  });
});

describe('joinLines (the JOINs of a rejoin)', () => {
  it('joins all channels in one line, those with keys first and their keys in the same order', () => {
    expect(joinLines(new Map([['#a', undefined], ['#k1', 'one'], ['#b', undefined], ['#k2', 'two']]))).toEqual(['JOIN #k1,#k2,#a,#b one,two']);
    expect(joinLines(new Map([['#a', undefined]]))).toEqual(['JOIN #a']);
    expect(joinLines(new Map())).toEqual([]);
  });

  it('starts a new line rather than pass 512 bytes (CR LF included), counting bytes, not characters', () => {
    const names = Array.from({ length: 60 }, (_, i) => `#channel-${String(i).padStart(3, '0')}`); // 12 bytes each
    const lines = joinLines(names.map((n) => [n, undefined] as const));
    expect(lines.length).toBe(2);
    for (const l of lines) expect(Buffer.byteLength(l) + 2).toBeLessThanOrEqual(512);
    expect(lines.flatMap((l) => l.slice(5).split(','))).toEqual(names); // each once, in order
    const wide = Array.from({ length: 40 }, (_, i) => `#ünï${i}`.padEnd(12, 'é'));
    for (const l of joinLines(wide.map((n) => [n, undefined] as const))) expect(Buffer.byteLength(l) + 2).toBeLessThanOrEqual(512);
  });

  it('keeps keys with their channels when the keyed channels fill more than one line', () => {
    const keyed = Array.from({ length: 40 }, (_, i) => [`#k${String(i).padStart(10, '0')}`, `key${i}`] as const);
    const lines = joinLines([...keyed, ['#open', undefined]]);
    expect(lines.length).toBeGreaterThan(1);
    const pairs = lines.flatMap((l) => {
      const [, chans, keys = ''] = l.split(' ');
      const k = keys ? keys.split(',') : [];
      return chans!.split(',').map((c, i) => [c, k[i]]);
    });
    expect(pairs).toEqual([...keyed.map(([c, k]) => [c, k]), ['#open', undefined]]);
    for (const l of lines) expect(Buffer.byteLength(l) + 2).toBeLessThanOrEqual(512);
  });

  it('a channel too long to share a line gets one of its own', () => {
    const long = `#${'x'.repeat(600)}`;
    expect(joinLines([['#a', undefined], [long, undefined], ['#b', undefined]])).toEqual(['JOIN #a', `JOIN ${long}`, 'JOIN #b']);
  });
});

describe('IRC server config: flood', () => {
  it('is on by default: a burst of 10 lines, then 2 a second', () => {
    expect(ircServerSchema.parse({ host: 'irc.example.org' }).flood).toEqual({ enabled: true, burstLines: 10, linesPerSecond: 2 });
  });

  it('takes a fractional rate and can be turned off', () => {
    expect(ircServerSchema.parse({ host: 'h', flood: { linesPerSecond: 0.5 } }).flood).toEqual({ enabled: true, burstLines: 10, linesPerSecond: 0.5 });
    expect(ircServerSchema.parse({ host: 'h', flood: { enabled: false } }).flood.enabled).toBe(false);
  });

  it.each([
    [{ burstLines: 0 }, 'flood.burstLines'],
    [{ burstLines: 2.5 }, 'flood.burstLines'],
    [{ linesPerSecond: 0 }, 'flood.linesPerSecond'],
    [{ linesPerSecond: -1 }, 'flood.linesPerSecond'],
    [{ burst: 5 }, 'flood'],
  ])('refuses %j', (flood, path) => {
    const r = ircServerSchema.safeParse({ host: 'h', flood });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.'))).toEqual([path]);
  });
});
