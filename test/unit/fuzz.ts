/**
 * Seeded property testing for the unit tests of converters (test/unit/*\/convert-fuzz.test.ts):
 * a small generator, `forAll` to run a property on generated inputs, and shrinking of a failing
 * input. Deterministic: every case has its own seed, printed with the (shrunk) input when a
 * property fails; set FUZZ_SEED to run the properties from another base seed.
 */

export const BASE_SEED = Number(process.env.FUZZ_SEED ?? 0x7e57_1e);

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

/** mulberry32: tiny, fast, and good enough to pick test inputs. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return { next, int, pick: (items) => items[int(0, items.length - 1)]!, chance: (p) => next() < p };
}

export class PropertyFailure extends Error {}

/** Throw with `message` unless `ok`: a property's own assertion, cheap enough for thousands of cases. */
export function check(ok: boolean, message: () => string): asserts ok {
  if (!ok) throw new PropertyFailure(message());
}

export const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s.length > 2_000 ? `${s.slice(0, 2_000)}… (${s.length} chars)` : s;
};

/**
 * Smaller versions of a string: big slices removed first, then single code points (never half a
 * surrogate pair, so well-formed input stays well-formed).
 */
export function* shrinkString(s: string): Generator<string> {
  const cps = [...s];
  for (let size = Math.floor(cps.length / 2); size >= 1; size = Math.floor(size / 2)) {
    for (let at = 0; at + size <= cps.length; at += size) yield [...cps.slice(0, at), ...cps.slice(at + size)].join('');
  }
}

/** Smaller versions of each string field of an object (or of the `only` ones), one field at a time. */
export function shrinkFields<T extends object>(...only: (keyof T & string)[]): (value: T) => Generator<T> {
  return function* (value) {
    for (const [key, field] of Object.entries(value)) {
      if (typeof field !== 'string' || (only.length > 0 && !only.includes(key as keyof T & string))) continue;
      for (const smaller of shrinkString(field)) yield { ...value, [key]: smaller };
    }
  };
}

/**
 * Run `property` on `runs` generated inputs. Each case has its own seed (derived from the base
 * seed, the property's name and the case number), so a failure reproduces alone; a failing input
 * is shrunk (when a shrinker is given) and reported with its seed.
 */
export function forAll<T>(
  name: string,
  runs: number,
  generate: (r: Rng) => T,
  property: (input: T) => void,
  shrink?: (input: T) => Iterable<T>,
): void {
  const nameSeed = [...name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0, 0x811c9dc5);
  const fails = (input: T): unknown => {
    try {
      property(input);
      return undefined;
    } catch (e) {
      return e ?? new Error('thrown: undefined');
    }
  };
  for (let i = 0; i < runs; i++) {
    const seed = (BASE_SEED ^ nameSeed ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0;
    const input = generate(rng(seed));
    let error = fails(input);
    if (error === undefined) continue;
    let smallest = input;
    if (shrink) {
      let budget = 5_000; // shrinking stops here: a report a little too big beats a slow one
      for (let progress = true; progress && budget > 0; ) {
        progress = false;
        for (const candidate of shrink(smallest)) {
          if (--budget <= 0) break;
          const e = fails(candidate);
          if (e !== undefined) {
            smallest = candidate;
            error = e;
            progress = true;
            break;
          }
        }
      }
    }
    const why = error instanceof PropertyFailure ? error.message : `threw ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    throw new Error(
      `property "${name}" failed on case ${i} (case seed ${seed}, base seed ${BASE_SEED})\n` +
        `input${shrink ? ' (shrunk)' : ''}: ${show(smallest)}\n${smallest !== input ? `original input: ${show(input)}\n` : ''}${why}`,
    );
  }
}
