/**
 * Client-side flood control for a Matrix user's IRC connection (lean.ts), and the JOIN lines of a
 * rejoin packed to as few as fit.
 *
 * IRC servers limit how fast a client may send: solanum (Libera.Chat) handles a few lines at once,
 * then about two a second, and kills a client whose unread lines pile up ("Excess Flood"). Core
 * then sends the same message again through a new connection: a loop that repeats lines. So a
 * connection sends at most `burstLines` at once and then `linesPerSecond` (a token bucket), and a
 * line that would overrun it waits, with every line queued behind it: order is never changed.
 * Pure: the clock is given, so the arithmetic is tested without timers.
 */

export interface FloodSettings {
  /** false: every line is written at once, as before flood control existed. */
  enabled: boolean;
  /** Lines that may be sent at once after a quiet spell (the bucket's size). */
  burstLines: number;
  /** Lines a second once the burst is spent (the bucket's refill rate). */
  linesPerSecond: number;
}

/**
 * A token bucket counting lines sent on one connection. Every line written spends a token (the
 * server counts them all, our PONGs and JOINs too); only the send queue waits for them.
 */
export class FloodBucket {
  private tokens: number;
  private at: number;

  constructor(private readonly settings: Pick<FloodSettings, 'burstLines' | 'linesPerSecond'>, private readonly now: () => number = Date.now) {
    this.tokens = settings.burstLines;
    this.at = now();
  }

  private refill(): void {
    const t = this.now();
    if (t > this.at) this.tokens = Math.min(this.settings.burstLines, this.tokens + ((t - this.at) * this.settings.linesPerSecond) / 1000);
    this.at = t;
  }

  /**
   * How long (ms) until `cost` lines may go: 0 means now. A cost above the burst (a long multiline
   * batch, which cannot be cut) waits for a full bucket rather than forever, and leaves the bucket
   * in debt so the lines after it wait for what it overspent.
   */
  waitFor(cost: number): number {
    this.refill();
    const need = Math.min(cost, this.settings.burstLines) - 1e-9; // (a timer due at the refill finds it done despite rounding)
    if (this.tokens >= need) return 0;
    return Math.max(1, Math.ceil(((need - this.tokens) * 1000) / this.settings.linesPerSecond));
  }

  /** Lines written: spent whether or not there were tokens for them (a PONG, a barrier PING never waits). */
  spend(cost = 1): void {
    this.refill();
    this.tokens -= cost;
  }
}

/** The longest IRC line the server reads, CR LF included (RFC 1459; no tags on a JOIN). */
const MAX_LINE_BYTES = 512;

/**
 * `JOIN` lines for these channels (name → key), as few as fit in 512 bytes each: `JOIN #k1,#k2,#c3
 * key1,key2`. Channels with keys come first in each line, since the keys pair with the channels in
 * order. A name or key that could not go in a list (a comma or a space in it) goes on a line of its own.
 */
export function joinLines(channels: Iterable<readonly [string, string | undefined]>): string[] {
  const keyed: [string, string][] = [], open: string[] = [], alone: string[] = [];
  for (const [ch, key] of channels) {
    if (/[\s,]/.test(ch) || (key !== undefined && /[\s,]/.test(key))) alone.push(`JOIN ${ch}${key ? ` ${key}` : ''}`);
    else if (key) keyed.push([ch, key]);
    else open.push(ch);
  }
  const lines: string[] = [];
  let names: string[] = [], keys: string[] = [];
  const text = (n: string[], k: string[]): string => `JOIN ${n.join(',')}${k.length ? ` ${k.join(',')}` : ''}`;
  for (const [ch, key] of [...keyed, ...open.map((c) => [c, undefined] as const)]) {
    const n = [...names, ch], k = key ? [...keys, key] : keys;
    if (names.length > 0 && Buffer.byteLength(text(n, k)) + 2 > MAX_LINE_BYTES) {
      lines.push(text(names, keys));
      names = [ch]; keys = key ? [key] : [];
    } else { names = n; keys = k; }
  }
  if (names.length) lines.push(text(names, keys));
  return [...lines, ...alone];
}

/**
 * The pacing of one connection's send queue: the bucket of its current registration (the server
 * counts each connection's lines from its registration) and the timer of a pump waiting for it.
 */
export class Pacer {
  private bucket?: FloodBucket;
  private timer?: NodeJS.Timeout;

  constructor(private readonly settings: FloodSettings | undefined, private readonly now: () => number = Date.now) {}

  /** Registered: a full bucket, or none when flood control is off. */
  restart(): void { this.bucket = this.settings?.enabled ? new FloodBucket(this.settings, this.now) : undefined; }

  /** A line was written. */
  written(): void { this.bucket?.spend(); }

  /** May `cost` lines go now? If not, `resume` runs once they may (one wait at a time: a later call replaces it). */
  ready(cost: number, resume: () => void): boolean {
    this.stop();
    const ms = this.bucket?.waitFor(cost) ?? 0;
    if (ms > 0) this.timer = setTimeout(resume, ms);
    return ms === 0;
  }

  /** Nothing waits any more (the connection quit or closed). */
  stop(): void { clearTimeout(this.timer); this.timer = undefined; }
}
