/**
 * Netsplit detection. Pure: time is passed in, nothing is scheduled here; server.ts owns the timer.
 *
 * When two IRC servers lose their link, everyone on the far side seems to quit at once, and most
 * come back within a minute. Bridged naively, every Matrix room fills with leaves and re-joins.
 * A quit that looks like a split is *held* instead: if the nick joins again within `holdMs` the
 * quit is dropped (and so is the join: the ghost never left); otherwise it is released as a leave.
 * (The listener drops it one channel at a time: a nick back in only some of its channels still
 * leaves the others when the hold expires; see `peek`.)
 *
 * A quit looks like a split when
 * - its reason is two server names, `left.server right.server` (RFC 2812 servers, and `*.net *.split`
 *   on networks that hide their servers);
 * - it arrives inside an IRCv3 `BATCH netsplit` (the returning joins come in a `netjoin` batch);
 * - quits arrive faster than `burstQuits` within `burstWindowMs`: a server that words its split
 *   quits differently still cannot make hundreds of users leave in a second.
 */

/** `a.b c.d`: two host names (with `*` for hidden ones), as servers word a netsplit quit. */
const SPLIT_REASON = /^(?:\*|[\w-]+)(?:\.(?:\*|[\w-]+))+ (?:\*|[\w-]+)(?:\.(?:\*|[\w-]+))+$/;

export function looksLikeSplitReason(reason: string | undefined): boolean {
  return !!reason && SPLIT_REASON.test(reason.trim());
}

export interface NetsplitOptions {
  /** How long a held quit waits for its nick to return before it becomes a leave. */
  holdMs: number;
  /** This many quits within `burstWindowMs` (counting the current one) mean a split. */
  burstQuits: number;
  burstWindowMs: number;
}

export const NETSPLIT_DEFAULTS: NetsplitOptions = { holdMs: 60_000, burstQuits: 15, burstWindowMs: 3_000 };

export type SplitSign = 'reason' | 'batch' | 'burst';

export interface QuitInfo {
  /** Case-folded nick: the key a returning JOIN is matched with. */
  key: string;
  reason?: string;
  /** The IRCv3 batch type the QUIT came in, if any (`netsplit`). */
  batch?: string;
}

export class NetsplitDetector<T> {
  private readonly held = new Map<string, { until: number; payload: T }>();
  private recent: number[] = [];

  constructor(private readonly opts: NetsplitOptions = NETSPLIT_DEFAULTS) {}

  /**
   * A quit. Returns why it is held (the payload is kept until it returns or expires), or
   * undefined when it is an ordinary quit to report at once.
   */
  quit(q: QuitInfo, payload: T, now: number): SplitSign | undefined {
    this.recent = this.recent.filter((t) => now - t < this.opts.burstWindowMs);
    this.recent.push(now);
    const sign: SplitSign | undefined = q.batch === 'netsplit' ? 'batch'
      : looksLikeSplitReason(q.reason) ? 'reason'
        : this.recent.length >= this.opts.burstQuits ? 'burst' : undefined;
    if (sign) this.held.set(q.key, { until: now + this.opts.holdMs, payload });
    return sign;
  }

  /** A nick joined: if its quit was held, the quit is cancelled and its payload returned. */
  returned(key: string): T | undefined {
    const h = this.held.get(key);
    if (!h) return undefined;
    this.held.delete(key);
    return h.payload;
  }

  /** The payloads of all quits held now (to change in place: a channel renamed meanwhile). */
  heldPayloads(): T[] { return [...this.held.values()].map((h) => h.payload); }

  /** The payload of a held quit, which stays held (a nick back in some of its channels, not yet all). */
  peek(key: string): T | undefined { return this.held.get(key)?.payload; }

  /** Held quits whose time is up, in the order they were held; they are forgotten here. */
  expired(now: number): T[] {
    const out: T[] = [];
    for (const [key, h] of this.held) {
      if (h.until <= now) { out.push(h.payload); this.held.delete(key); }
    }
    return out;
  }

  /** When the next held quit expires, if any is held. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const h of this.held.values()) if (next === undefined || h.until < next) next = h.until;
    return next;
  }

  get heldCount(): number { return this.held.size; }

  /** The payloads of the quits held now (still members, as far as the rooms should know). */
  holding(): T[] { return [...this.held.values()].map((h) => h.payload); }

  clear(): void { this.held.clear(); this.recent = []; }
}
