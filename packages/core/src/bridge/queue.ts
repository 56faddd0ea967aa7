/**
 * One ordered queue per Matrix room, for both directions. Items of one room are handled strictly
 * one after another, in the order they were added; rooms run independently, so a slow room does
 * not hold up the others. A failing item is retried with exponential backoff *at the head of its
 * room's queue* (later items wait: order is kept), and after `maxAttempts` it is given up and
 * reported through `onGiveUp` so the sender can be told. An error marked `unreachable` (the
 * destination is away: the homeserver down, say) spends no attempt: the item waits at the head,
 * with the same capped backoff, for as long as the outage lasts, since giving up would lose it.
 * While rooms wait so, the queue asks whether what they wait for answers again (`reachable`), and
 * resumes the rooms waiting for a destination as soon as an outage it saw is over.
 *
 * The queue is durable through {@link WorkQueueStore}: items are persisted before `enqueue`
 * returns, and `restore()` reloads what was pending when the process stopped.
 */
import type { WorkItem, WorkQueueStore } from '../db/workQueue.js';
import type { Logger } from '../util/log.js';

export interface QueuePolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** While items wait out an unreachable destination, ask {@link QueueHooks.reachable} this often (default 2 s). */
  probeMs?: number;
}

export interface QueueHooks {
  /**
   * Deliver one item. Throw to retry; throw an error with `permanent: true` to give up at once, or
   * with `unreachable: true` to retry without counting the attempt (the destination is away); such an
   * error may name the destinations it waits for in `waitsFor` (strings the queue only hands back to
   * {@link reachable}; without it the item's kind stands for its destination).
   * May resolve with store writes that belong to the delivery (the message map): they are made in
   * the same database transaction that marks the item done, one commit instead of two.
   */
  handle(item: WorkItem): Promise<void | (() => void)>;
  /** Called when an item is given up. */
  onGiveUp(item: WorkItem, error: unknown): Promise<void>;
  /** Called with (queueKey, depth) whenever a room's queue depth changes. */
  onDepth?(queueKey: string, depth: number): void;
  /**
   * Does this destination (a `waitsFor` entry of a delivery error, or an item kind) answer now?
   * Asked every `probeMs` for each destination rooms wait for: a true after a false (an outage
   * seen ending) retries at once every room waiting for it whose destinations all answer, instead
   * of each at the end of its backoff (up to `maxBackoffMs` after a long outage).
   */
  reachable?(destination: string): Promise<boolean>;
}

/** Does a delivery error say how the queue should go on (`permanent: true`, `unreachable: true`)? */
export function failureSays(err: unknown, what: 'permanent' | 'unreachable'): boolean {
  return typeof err === 'object' && err !== null && (err as Record<string, unknown>)[what] === true;
}

/**
 * What an unreachable failure waits for: the destinations its error names in `waitsFor` (a non-empty
 * list of strings), else the item's kind.
 */
export function destinationsOf(item: WorkItem, err: unknown): string[] {
  const named = typeof err === 'object' && err !== null ? (err as Record<string, unknown>)['waitsFor'] : undefined;
  return Array.isArray(named) && named.length > 0 && named.every((d) => typeof d === 'string') ? [...new Set(named as string[])] : [item.kind];
}

/** An item to add: where it queues, what it is, and the key that makes a second add of it a no-op. */
export interface NewWorkItem { queueKey: string; kind: string; payload: unknown; dedupeKey: string }

interface RoomQueue {
  items: WorkItem[];
  running: boolean;
}

export class OrderedQueues {
  private readonly rooms = new Map<string, RoomQueue>();
  private readonly idle: (() => void)[] = [];
  private stopping = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Failures of a head item that did not count as attempts (its destination unreachable), for its backoff. */
  private readonly waits = new Map<number, number>();
  /** Rooms whose head item waits out unreachable destinations: which ones, and its retry timer. */
  private readonly away = new Map<string, { waitsFor: string[]; timer: NodeJS.Timeout }>();
  private probing?: NodeJS.Timeout;
  /** Destinations the probe found not answering. */
  private readonly down = new Set<string>();
  /** Rooms whose head item waits for its retry timer (still marked running, so nothing else starts them). */
  private readonly retrying = new Set<RoomQueue>();

  constructor(
    private readonly store: WorkQueueStore,
    private readonly policy: QueuePolicy,
    private readonly hooks: QueueHooks,
    private readonly log: Logger,
  ) {}

  /** Persist and schedule an item; returns false if its dedupe key was seen before. */
  enqueue(queueKey: string, kind: string, payload: unknown, dedupeKey: string): boolean {
    const item = this.store.add(queueKey, kind, payload, dedupeKey);
    if (!item) return false;
    this.schedule(item);
    return true;
  }

  /**
   * Persist several items atomically (all or none) and durably (on disk, not only in the WAL: the
   * caller acknowledges them next), then schedule them in order.
   */
  enqueueAll(entries: NewWorkItem[], alsoInTxn?: () => void): number {
    const added = this.store.durably(() => { alsoInTxn?.(); return this.add(entries); });
    for (const item of added) this.schedule(item);
    return added.length;
  }

  /**
   * Like {@link enqueueAll}, but commits together with every other call made in the same turn of
   * the event loop (one SQLite commit for all the lines of one socket read, say): resolves once
   * the items are durable, with the number added. Order of calls is kept.
   */
  enqueueSoon(entries: NewWorkItem[]): Promise<number> {
    return new Promise((resolve, reject) => {
      this.batch.push({ entries, resolve, reject });
      if (this.batch.length === 1) setImmediate(() => this.flushBatch());
    });
  }

  private batch: { entries: NewWorkItem[]; resolve: (n: number) => void; reject: (e: unknown) => void }[] = [];

  /** Store the entries (inside the caller's transaction); the ones that were new. */
  private add(entries: NewWorkItem[]): WorkItem[] {
    return entries.map((e) => this.store.add(e.queueKey, e.kind, e.payload, e.dedupeKey)).filter((x): x is WorkItem => !!x);
  }

  /** Commit what {@link enqueueSoon} holds for the end of this turn now (before the store closes). */
  flushSoon(): void { if (this.batch.length) this.flushBatch(); }

  private flushBatch(): void {
    const calls = this.batch.splice(0);
    if (calls.length === 0) return; // flushed early by flushSoon()
    let added: WorkItem[][];
    try {
      added = this.store.atomically(() => calls.map((c) => this.add(c.entries)));
    } catch (err) {
      for (const c of calls) c.reject(err);
      return;
    }
    calls.forEach((c, i) => {
      for (const item of added[i]!) this.schedule(item);
      c.resolve(added[i]!.length);
    });
  }

  /**
   * Deliver nothing until {@link restore}: items added meanwhile are stored and queued, not sent.
   * The bridge holds its queues while its networks start (they may report events then), so what was
   * pending from before the last stop goes out first, and once.
   */
  hold(): void { this.holding = true; }
  private holding = false;

  /**
   * Reload pending items after a restart and start delivering them, in the order they were stored.
   * Items already queued (added while held: they are in the store too) are queued again from the
   * store, not twice. Returns how many items were pending from before.
   */
  restore(): number {
    const items = this.store.pending();
    const queued = new Set([...this.rooms.values()].flatMap((q) => q.items.map((i) => i.id)));
    if (this.holding) {
      this.holding = false;
      // nothing ran while held: each room's queue is rebuilt from the store, oldest first
      for (const [key, q] of this.rooms) if (!q.running) { this.total -= q.items.length; this.rooms.delete(key); }
      for (const item of items) this.schedule(item);
    } else {
      for (const item of items) if (!queued.has(item.id)) this.schedule(item);
    }
    return items.filter((i) => !queued.has(i.id)).length;
  }

  depth(queueKey: string): number { return this.rooms.get(queueKey)?.items.length ?? 0; }
  /** Items in every room's queue; kept as a count, as it is read on every change (a metric) and rooms may be thousands. */
  totalDepth(): number { return this.total; }
  private total = 0;

  private schedule(item: WorkItem): void {
    let q = this.rooms.get(item.queueKey);
    if (!q) { q = { items: [], running: false }; this.rooms.set(item.queueKey, q); }
    q.items.push(item);
    this.total++;
    this.hooks.onDepth?.(item.queueKey, q.items.length);
    if (!q.running && !this.stopping && !this.holding) void this.run(item.queueKey, q);
  }

  private async run(key: string, q: RoomQueue): Promise<void> {
    q.running = true;
    try {
      while (q.items.length > 0 && !this.stopping) {
        const item = q.items[0]!;
        const ok = await this.attempt(item);
        if (!ok) { this.retrying.add(q); return; } // a retry timer will resume this room
        q.items.shift();
        this.total--;
        this.hooks.onDepth?.(key, q.items.length);
      }
    } catch (err) {
      // the store failed under a failed attempt (closed at a stop that did not wait for it, say):
      // the item is still pending there; the room tries again later, or at the next start
      this.log.error('could not record a failed delivery attempt', { queue: key, err: err as Error });
      if (!this.stopping) {
        const timer = setTimeout(() => { this.timers.delete(timer); this.retrying.delete(q); if (!this.stopping) void this.run(key, q); },
          this.policy.maxBackoffMs);
        this.timers.add(timer);
        this.retrying.add(q);
      }
    } finally {
      if (q.items.length === 0 || this.stopping) {
        q.running = false;
        if (q.items.length === 0) this.rooms.delete(key);
        this.checkIdle();
      }
    }
  }

  /** One attempt at the head item: true if finished (done or given up), false if a retry is scheduled. */
  private async attempt(item: WorkItem): Promise<boolean> {
    let writes: void | (() => void);
    try {
      writes = await this.hooks.handle(item);
    } catch (err) {
      return this.failed(item, err);
    }
    this.waits.delete(item.id);
    try {
      if (writes) { const w = writes; this.store.atomically(() => { w(); this.store.done(item.id); }); } else this.store.done(item.id);
    } catch (err) {
      // delivered: sending it again now would repeat it, and telling its sender it failed would be
      // wrong. It stays pending in the store (sent again at the next start, the one repeat).
      this.log.error('delivered, but the store could not record it', { queue: item.queueKey, item: item.id, kind: item.kind, err: err as Error });
    }
    return true;
  }

  /** A delivery attempt failed: give up (true) or schedule a retry (false). */
  private async failed(item: WorkItem, err: unknown): Promise<boolean> {
    const message = err instanceof Error ? err.message : String(err);
    const permanent = failureSays(err, 'permanent');
    const unreachable = !permanent && failureSays(err, 'unreachable');
    if (unreachable) this.waits.set(item.id, (this.waits.get(item.id) ?? 0) + 1);
    else item.attempts += 1;
    if (permanent || item.attempts >= this.policy.maxAttempts) {
      this.waits.delete(item.id);
      this.log.warn('giving up on delivery', { queue: item.queueKey, item: item.id, kind: item.kind, attempts: item.attempts, err: message });
      this.store.failed(item.id, message);
      try { await this.hooks.onGiveUp(item, err); } catch (e) {
        this.log.error('could not report a failed delivery', { item: item.id, err: e as Error });
      }
      return true;
    }
    if (unreachable) this.store.noteError(item.id, message);
    else this.store.attempted(item.id, message);
    const failures = item.attempts + (this.waits.get(item.id) ?? 0);
    const base = Math.min(this.policy.maxBackoffMs, this.policy.initialBackoffMs * 2 ** Math.min(failures - 1, 30));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.log.info(unreachable ? 'destination unreachable; will retry' : 'delivery failed; will retry',
      { queue: item.queueKey, item: item.id, attempt: item.attempts, failures, delayMs: delay, err: message });
    const q = this.rooms.get(item.queueKey)!;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.away.delete(item.queueKey);
      this.retrying.delete(q);
      if (!this.stopping) void this.run(item.queueKey, q);
    }, delay);
    this.timers.add(timer);
    if (unreachable) { this.away.set(item.queueKey, { waitsFor: destinationsOf(item, err), timer }); this.probeSoon(); }
    return false;
  }

  /** Ask whether the destinations rooms wait for are back, after `probeMs`; again while any room waits. */
  private probeSoon(): void {
    const reachable = this.hooks.reachable;
    if (!reachable || this.probing || this.stopping) return;
    this.probing = setTimeout(() => {
      void (async () => {
        const destinations = [...new Set([...this.away.values()].flatMap((a) => a.waitsFor))];
        const answers = await Promise.all(destinations.map((d) => Promise.resolve().then(() => reachable(d)).catch(() => false)));
        const answering = new Set(destinations.filter((_, i) => answers[i] === true));
        // wake only at the end of an outage the probe saw: a destination that answers it while an
        // item still fails as unreachable (one endpoint timing out, say) is left to the backoff
        const back = new Set<string>();
        for (const d of destinations) {
          if (!answering.has(d)) this.down.add(d);
          else if (this.down.delete(d)) back.add(d);
        }
        if (back.size) this.retryAwayNow(back, answering);
        this.probing = undefined;
        if (this.away.size) this.probeSoon();
        else this.down.clear(); // nothing waits: an outage seen now is over, whoever ended the wait
      })();
    }, this.policy.probeMs ?? 2000);
    this.probing.unref();
  }

  /**
   * Destinations answer again after an outage (`back`): every room waiting for one of them retries
   * now, unless it also waits for one that does not answer (it stays until that one is back too).
   */
  private retryAwayNow(back: ReadonlySet<string>, answering: ReadonlySet<string>): void {
    const resume = [...this.away].filter(([, a]) => a.waitsFor.some((d) => back.has(d)) && a.waitsFor.every((d) => answering.has(d)));
    this.log.info('the destination answers again; rooms waiting for it resume', { destinations: [...back], rooms: resume.length });
    for (const [key, a] of resume) {
      clearTimeout(a.timer);
      this.timers.delete(a.timer);
      this.away.delete(key);
      const q = this.rooms.get(key);
      if (q) this.retrying.delete(q);
      if (q && !this.stopping) void this.run(key, q);
    }
  }

  private checkIdle(): void {
    if ([...this.rooms.values()].some((q) => q.running)) return;
    for (const fn of this.idle.splice(0)) fn();
  }

  /** Resolves when no room is delivering (pending retries may remain; they survive in the store). */
  async drain(timeoutMs: number): Promise<boolean> {
    if (![...this.rooms.values()].some((q) => q.running)) return true;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.idle.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  /** Stop taking new work: in-flight items finish, the rest stays pending in the store. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    this.waits.clear();
    this.away.clear();
    this.down.clear();
    if (this.probing) clearTimeout(this.probing);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // rooms that were waiting out a retry deliver nothing now: only what is in flight is waited for
    for (const q of this.retrying) q.running = false;
    this.retrying.clear();
    return this.drain(timeoutMs);
  }
}
