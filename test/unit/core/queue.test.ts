import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../../packages/core/src/db/database.js';
import { WorkQueueStore } from '../../../packages/core/src/db/workQueue.js';
import { OrderedQueues } from '../../../packages/core/src/bridge/queue.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import type { WorkItem } from '../../../packages/core/src/db/workQueue.js';
import { DeliveryError } from '../../../packages/core/src/network/contract.js';
import { combinedFailure } from '../../../packages/core/src/bridge/fromMatrix.js';
import { tempDir } from '../temp.js';

const policy = { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 20 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(ok: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) { if (Date.now() > end) throw new Error('timed out'); await sleep(5); }
}

function setup(handle: (item: WorkItem) => Promise<void>, path = ':memory:') {
  const db = openDatabase(path);
  const store = new WorkQueueStore(db);
  const gaveUp: WorkItem[] = [];
  const q = new OrderedQueues(store, policy, { handle, onGiveUp: async (i) => { gaveUp.push(i); } }, silentLogger);
  return { db, store, q, gaveUp };
}

describe('OrderedQueues', () => {
  it('delivers one room strictly in order even when handlers take different times', async () => {
    const seen: number[] = [];
    const { q } = setup(async (item) => { const n = item.payload as number; await sleep(n % 3 === 0 ? 5 : 0); seen.push(n); });
    for (let i = 0; i < 50; i++) q.enqueue('!room', 'k', i, `d${i}`);
    expect(await q.drain(5000)).toBe(true);
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('lets a fast room proceed while a slow room is stuck retrying', async () => {
    const seen: string[] = [];
    const { q } = setup(async (item) => {
      if (item.queueKey === '!slow') throw new Error('down');
      seen.push(item.payload as string);
    });
    q.enqueue('!slow', 'k', 'slow-1', 's1');
    q.enqueue('!fast', 'k', 'fast-1', 'f1');
    q.enqueue('!fast', 'k', 'fast-2', 'f2');
    await sleep(10);
    expect(seen).toEqual(['fast-1', 'fast-2']);
  });

  it('retries a failing item at the head, keeping later items behind it, then gives up and moves on', async () => {
    const seen: string[] = [];
    let failures = 0;
    const { q, gaveUp, db } = setup(async (item) => {
      if (item.payload === 'bad') { failures++; throw new Error('nope'); }
      if (item.payload === 'flaky' && failures < 1) { failures++; throw new Error('once'); }
      seen.push(item.payload as string);
    });
    q.enqueue('!r', 'k', 'flaky', 'a');
    q.enqueue('!r', 'k', 'after-flaky', 'b');
    await sleep(50);
    expect(seen).toEqual(['flaky', 'after-flaky']);
    q.enqueue('!r', 'k', 'bad', 'c');
    q.enqueue('!r', 'k', 'after-bad', 'd');
    await sleep(150);
    expect(gaveUp.map((i) => i.payload)).toEqual(['bad']);
    expect(seen).toEqual(['flaky', 'after-flaky', 'after-bad']);
    const row = db.prepare(`SELECT state, attempts, last_error FROM work_queue WHERE dedupe_key = 'c'`).get() as { state: string; last_error: string };
    expect(row.state).toBe('failed');
    expect(row.last_error).toBe('nope');
  });

  it('waits out an unreachable destination without spending attempts, its backoff capped, keeping the order', async () => {
    const seen: string[] = [];
    let outage = 12; // four times maxAttempts
    const { q, gaveUp, db } = setup(async (item) => {
      if (outage > 0) { outage--; throw Object.assign(new Error('connect ECONNREFUSED'), { unreachable: true }); }
      seen.push(item.payload as string);
    });
    const start = Date.now();
    q.enqueue('!r', 'k', 'first', 'u1');
    q.enqueue('!r', 'k', 'second', 'u2');
    await sleep(20);
    const row = db.prepare(`SELECT state, attempts, last_error FROM work_queue WHERE dedupe_key = 'u1'`).get();
    expect(row).toEqual({ state: 'pending', attempts: 0, last_error: 'connect ECONNREFUSED' });
    await until(() => seen.length === 2);
    expect(seen).toEqual(['first', 'second']);
    expect(gaveUp).toEqual([]);
    // uncapped, the twelfth wait alone would be 5 ms * 2^11 = 10 s; capped at 20 ms (+25 %) all of them take < 0.4 s
    expect(Date.now() - start).toBeLessThan(1500);
  });

  it('lets a network\'s DeliveryError marked unreachable wait out a remote outage, and gives up one that is not', async () => {
    const seen: string[] = [];
    let outage = 12; // four times maxAttempts
    const { q, gaveUp } = setup(async (item) => {
      if (item.payload === 'refused') throw new DeliveryError('Discord did not take the message: Bad Gateway');
      if (outage > 0) { outage--; throw new DeliveryError('Discord did not answer: Service Unavailable', false, { unreachable: true }); }
      seen.push(item.payload as string);
    });
    q.enqueue('!down', 'k', 'first', 'd1');
    q.enqueue('!down', 'k', 'second', 'd2');
    q.enqueue('!other', 'k', 'refused', 'r1');
    await until(() => seen.length === 2 && gaveUp.length === 1);
    expect(seen).toEqual(['first', 'second']);
    expect(outage).toBe(0);
    expect(gaveUp.map((i) => [i.payload, i.attempts])).toEqual([['refused', 3]]);
  });

  it('combines the failures of one event at several portals: unreachable only when every one to retry is an outage', () => {
    const down = new DeliveryError('Discord did not answer', false, { unreachable: true });
    const refused = new DeliveryError('banned', true);
    const flaky = new DeliveryError('try later');
    const flags = (errs: unknown[]) => { const e = combinedFailure(errs); return [e.userMessage, e.permanent, e.unreachable]; };
    expect(flags([down])).toEqual(['Discord did not answer', false, true]);
    expect(flags([down, refused])).toEqual(['Discord did not answer', false, true]); // the refusal is retried along, harmlessly
    expect(flags([refused, down])).toEqual(['banned', false, true]);
    expect(flags([down, flaky])).toEqual(['Discord did not answer', false, false]); // counted: the flaky one must not retry forever
    expect(flags([refused])).toEqual(['banned', true, false]);
    expect(flags([Object.assign(new Error('raw'), { unreachable: true })])).toEqual(['raw', false, true]);
    expect(flags([new Error('raw')])).toEqual(['raw', false, false]);
    expect(combinedFailure([down]).cause).toBe(down);
  });

  it('retries every room waiting out an outage as soon as the destination answers again, not at the end of its backoff', async () => {
    let down = true;
    const seen: string[] = [];
    const probed: string[] = [];
    const db = openDatabase(':memory:');
    const q = new OrderedQueues(new WorkQueueStore(db), { maxAttempts: 3, initialBackoffMs: 60_000, maxBackoffMs: 60_000, probeMs: 20 }, {
      handle: async (item) => {
        if (down && item.kind === 'to-matrix') throw Object.assign(new Error('connect ECONNREFUSED'), { unreachable: true });
        seen.push(item.payload as string);
      },
      onGiveUp: async () => undefined,
      reachable: async (kind) => { probed.push(kind); return !down; },
    }, silentLogger);
    for (const room of ['!a', '!b', '!c']) q.enqueue(room, 'to-matrix', room, `p${room}`);
    q.enqueue('!d', 'to-irc', '!d', 'p!d'); // another destination: not held up, not probed
    await sleep(80);
    expect(seen).toEqual(['!d']); // the rest wait a minute's backoff...
    expect(probed.length).toBeGreaterThan(0);
    expect(new Set(probed)).toEqual(new Set(['to-matrix']));
    down = false;
    await until(() => seen.length === 4, 1000); // ...but go as soon as a probe finds the destination back
    expect(seen.slice(1).sort()).toEqual(['!a', '!b', '!c']);
    const n = probed.length;
    await sleep(80);
    expect(probed.length).toBe(n); // nothing waits: no more probes
    await q.stop(100);
  });

  it('names, in an outage of several portals, the networks it waits for: those whose failure is to be retried', () => {
    const down = new DeliveryError('Discord did not answer', false, { unreachable: true });
    const refused = new DeliveryError('banned', true);
    expect(combinedFailure([down, refused, down], ['discord', 'irc', 'discord2']).waitsFor).toEqual(['network:discord', 'network:discord2']);
    expect(combinedFailure([down, down], ['discord', 'discord']).waitsFor).toEqual(['network:discord']);
    expect(combinedFailure([down, new Error('flaky')], ['discord', 'irc']).waitsFor).toBeUndefined(); // not an outage: no waiting
    expect(combinedFailure([refused], ['irc']).waitsFor).toBeUndefined();
    expect(combinedFailure([down]).waitsFor).toBeUndefined(); // networks unknown: the item's kind stands for its destination
  });

  it('probes each destination rooms wait for, and resumes only the rooms waiting for one that answers again', async () => {
    const down = new Set(['A', 'B']);
    const seen: string[] = [];
    const probed = new Set<string>();
    const tries = new Map<string, number>();
    const waitsFor: Record<string, string[]> = { '!a1': ['A'], '!a2': ['A'], '!b': ['B'], '!ab': ['A', 'B'], '!c': ['C'] };
    const db = openDatabase(':memory:');
    const q = new OrderedQueues(new WorkQueueStore(db), { maxAttempts: 3, initialBackoffMs: 60_000, maxBackoffMs: 60_000, probeMs: 10 }, {
      handle: async (item) => {
        const room = item.payload as string;
        tries.set(room, (tries.get(room) ?? 0) + 1);
        // C answers the probe all along, yet its item fails as unreachable (one endpoint timing out, say)
        if (room === '!c' || waitsFor[room]!.some((d) => down.has(d))) {
          throw Object.assign(new Error('no answer'), { unreachable: true, waitsFor: waitsFor[room] });
        }
        seen.push(room);
      },
      onGiveUp: async () => undefined,
      reachable: async (destination) => { probed.add(destination); return !down.has(destination); },
    }, silentLogger);
    for (const room of Object.keys(waitsFor)) q.enqueue(room, 'matrix', room, `p${room}`);
    await until(() => probed.size === 3);
    expect([...probed].sort()).toEqual(['A', 'B', 'C']); // the destinations named, not the items' kind
    down.delete('A');
    await until(() => seen.length === 2, 1000);
    expect(seen.sort()).toEqual(['!a1', '!a2']); // !b waits for B, and so does !ab (A alone is not enough)
    await sleep(60);
    expect(seen).toHaveLength(2);
    expect(tries.get('!ab')).toBe(1); // not even tried again while B is down
    down.delete('B');
    await until(() => seen.length === 4, 1000);
    expect(seen.slice(2).sort()).toEqual(['!ab', '!b']);
    expect(tries.get('!c')).toBe(1); // answering while never seen down wakes nobody: left to its minute of backoff
    await q.stop(100);
  });

  it('leaves to its backoff an item that fails as unreachable while the probe finds the destination answering', async () => {
    let tries = 0;
    let probes = 0;
    const db = openDatabase(':memory:');
    const q = new OrderedQueues(new WorkQueueStore(db), { maxAttempts: 3, initialBackoffMs: 60_000, maxBackoffMs: 60_000, probeMs: 10 }, {
      handle: async () => { tries++; throw Object.assign(new Error('one endpoint times out'), { unreachable: true }); },
      onGiveUp: async () => undefined,
      reachable: async () => { probes++; return true; },
    }, silentLogger);
    q.enqueue('!r', 'k', 'x', 'x');
    await sleep(150);
    expect(probes).toBeGreaterThan(3);
    expect(tries).toBe(1); // not retried every probe: no outage was seen ending
    await q.stop(100);
  });

  it('still gives up after maxAttempts failures that reached the destination, whatever waits came between', async () => {
    let calls = 0;
    const { q, gaveUp } = setup(async () => {
      calls++;
      throw calls % 2 ? Object.assign(new Error('away'), { unreachable: true }) : new Error('refused by the destination');
    });
    q.enqueue('!r', 'k', 'x', 'x');
    await until(() => gaveUp.length === 1);
    expect(calls).toBe(6); // three waits, three counted attempts
    expect(gaveUp[0]!.attempts).toBe(3);
  });

  it('gives up at once on a permanent error', async () => {
    let calls = 0;
    const { q, gaveUp } = setup(async () => { calls++; throw Object.assign(new Error('banned'), { permanent: true }); });
    q.enqueue('!r', 'k', 'x', 'x');
    await sleep(20);
    expect(calls).toBe(1);
    expect(gaveUp).toHaveLength(1);
  });

  it('commits what is enqueued in one turn together, resolves once durable, and keeps the order', async () => {
    const seen: number[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const { q, store } = setup(async (item) => { await held; seen.push(item.payload as number); });
    let commits = 0;
    const atomically = store.atomically.bind(store);
    store.atomically = (fn) => { commits++; return atomically(fn); };
    const done = Array.from({ length: 20 }, (_, i) => q.enqueueSoon([{ queueKey: '!room', kind: 'k', payload: i, dedupeKey: `soon${i}` }]));
    expect(store.pending()).toHaveLength(0); // nothing written yet in this turn
    expect(await Promise.all(done)).toEqual(Array(20).fill(1));
    expect(commits).toBe(1);
    expect(store.pending().map((p) => p.payload)).toEqual(Array.from({ length: 20 }, (_, i) => i)); // durable before delivery
    expect(await q.enqueueSoon([{ queueKey: '!room', kind: 'k', payload: 0, dedupeKey: 'soon0' }])).toBe(0); // a duplicate
    release();
    expect(await q.drain(5000)).toBe(true);
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('commits what waits for the end of the turn at once when asked (the store is about to close)', async () => {
    const path = `${tempDir('trestle-q-')}/q.db`;
    const first = setup(() => new Promise(() => undefined), path);
    await first.q.stop(100);
    const added = first.q.enqueueSoon([{ queueKey: '!r', kind: 'k', payload: 'late', dedupeKey: 'late' }]);
    first.q.flushSoon();
    first.db.close(); // before the turn ends: without the flush the item would be lost with an error
    expect(await added).toBe(1);
    expect(setup(() => new Promise(() => undefined), path).store.pending().map((p) => p.payload)).toEqual(['late']);
  });

  it('writes all of an atomically() call or none: a failure after a write leaves nothing behind', () => {
    const { store } = setup(() => new Promise(() => undefined));
    expect(() => store.atomically(() => { store.add('!r', 'k', 1, 'a1'); throw new Error('disk full'); })).toThrow('disk full');
    expect(store.pending()).toHaveLength(0);
    expect(store.add('!r', 'k', 1, 'a1')).toBeDefined(); // its dedupe key was not spent
    expect(store.atomically(() => 7)).toBe(7);
  });

  it('counts the items waiting in every room, through retries, give-ups and a restore', async () => {
    const gates = new Map<string, () => void>();
    const { q, store } = setup((item) => new Promise<void>((resolve, reject) => {
      if (item.payload === 'fails') { reject(Object.assign(new Error('no'), { permanent: true })); return; }
      gates.set(item.payload as string, resolve);
    }));
    for (const room of ['!a', '!b', '!c']) for (let i = 0; i < 3; i++) q.enqueue(room, 'k', `${room}${i}`, `${room}-${i}`);
    q.enqueue('!d', 'k', 'fails', 'd-0');
    expect(q.totalDepth()).toBe(10);
    await sleep(5);
    expect(q.totalDepth()).toBe(9); // !d's item was given up
    gates.get('!a0')!();
    gates.get('!b0')!();
    await sleep(5);
    expect([q.totalDepth(), q.depth('!a'), q.depth('!b'), q.depth('!c')]).toEqual([7, 2, 2, 3]);
    const again = new OrderedQueues(store, policy, { handle: () => new Promise<void>(() => undefined), onGiveUp: async () => undefined }, silentLogger);
    expect(again.restore()).toBe(7);
    expect(again.totalDepth()).toBe(7);
  });

  it('ignores a duplicate dedupe key, even after the first was delivered', async () => {
    const seen: unknown[] = [];
    const { q } = setup(async (i) => { seen.push(i.payload); });
    expect(q.enqueue('!r', 'k', 1, 'same')).toBe(true);
    await q.drain(1000);
    expect(q.enqueue('!r', 'k', 2, 'same')).toBe(false);
    await q.drain(1000);
    expect(seen).toEqual([1]);
  });

  it('restores pending items after a restart, in order', async () => {
    const path = `${tempDir('trestle-q-')}/q.db`;
    // first "process": items persisted but the handler never finishes them
    const first = setup(() => new Promise(() => undefined), path);
    first.q.enqueueAll([1, 2, 3].map((n) => ({ queueKey: '!r', kind: 'k', payload: n, dedupeKey: `n${n}` })));
    first.db.close();
    const seen: unknown[] = [];
    const second = setup(async (i) => { seen.push(i.payload); }, path);
    expect(second.q.restore()).toBe(3);
    await second.q.drain(1000);
    expect(seen).toEqual([1, 2, 3]);
    expect(second.store.pending()).toHaveLength(0);
  });
  it('commits what it enqueues all at once FULL (on disk before the caller acknowledges it), and the rest NORMAL', () => {
    const path = `${tempDir('trestle-q-')}/q.db`;
    const { db, q, store } = setup(() => new Promise(() => undefined), path);
    const level = (): unknown => db.pragma('synchronous', { simple: true }); // 1 NORMAL, 2 FULL
    expect(level()).toBe(1);
    let inTxn: unknown;
    q.enqueueAll([{ queueKey: '!r', kind: 'k', payload: 1, dedupeKey: 'a' }], () => { inTxn = level(); });
    expect(inTxn).toBe(2); // the level a commit reads when it commits: nothing runs between this and COMMIT
    expect(level()).toBe(1);
    // a failed transaction puts the level back too
    expect(() => q.enqueueAll([{ queueKey: '!r', kind: 'k', payload: 2, dedupeKey: 'b' }], () => { throw new Error('no'); })).toThrow('no');
    expect(level()).toBe(1);
    let done: unknown;
    store.atomically(() => { done = level(); });
    expect(done).toBe(1);
    db.close();
  });

  it('held while networks start: what was pending from before goes first, and nothing goes twice', async () => {
    const path = `${tempDir('trestle-q-')}/q.db`;
    const first = setup(() => new Promise(() => undefined), path);
    first.q.enqueueAll(['old1', 'old2'].map((p) => ({ queueKey: '!r', kind: 'k', payload: p, dedupeKey: p })));
    first.db.close();
    const seen: unknown[] = [];
    const second = setup(async (i) => { await sleep(1); seen.push(i.payload); }, path);
    second.q.hold();
    // a network reports events while it starts, before the bridge restores its queues
    await second.q.enqueueSoon([{ queueKey: '!r', kind: 'k', payload: 'new', dedupeKey: 'new' }]);
    second.q.enqueue('!other', 'k', 'elsewhere', 'elsewhere');
    await sleep(20);
    expect(seen).toEqual([]); // held
    expect(second.q.restore()).toBe(2);
    await second.q.drain(1000);
    expect(seen.filter((p) => p !== 'elsewhere')).toEqual(['old1', 'old2', 'new']);
    expect(seen.filter((p) => p === 'elsewhere')).toHaveLength(1);
    expect(second.q.totalDepth()).toBe(0);
  });

  it('restoring without a hold does not queue again what is queued already', async () => {
    const seen: unknown[] = [];
    const { q } = setup(async (i) => { await sleep(1); seen.push(i.payload); });
    q.enqueue('!r', 'k', 'a', 'a');
    expect(q.restore()).toBe(0);
    await q.drain(1000);
    expect(seen).toEqual(['a']);
  });

  it('stops at once while a room waits out a retry, with nothing in flight', async () => {
    const db = openDatabase(':memory:');
    const q = new OrderedQueues(new WorkQueueStore(db), { maxAttempts: 5, initialBackoffMs: 60_000, maxBackoffMs: 60_000 },
      { handle: async () => { throw new Error('down'); }, onGiveUp: async () => undefined }, silentLogger);
    q.enqueue('!r', 'k', 'x', 'x');
    await sleep(10); // the first attempt failed: a retry in a minute
    const t0 = Date.now();
    expect(await q.stop(2000)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('a delivery the store cannot record is not sent again, nor reported as failed', async () => {
    let sent = 0;
    const { q, store, gaveUp } = setup(async () => { sent++; });
    store.done = () => { throw new Error('SQLITE_BUSY: database is locked'); };
    q.enqueue('!r', 'k', 'x', 'x');
    expect(await q.drain(1000)).toBe(true);
    expect([sent, gaveUp.length, q.totalDepth()]).toEqual([1, 0, 0]);
  });

  it('a failed attempt the store cannot record (closed at a stop) neither crashes nor is lost', async () => {
    const path = `${tempDir('trestle-q-')}/q.db`;
    let fail!: (e: Error) => void;
    const { q, db } = setup(() => new Promise<void>((_, reject) => { fail = reject; }), path);
    q.enqueue('!r', 'k', 'x', 'x');
    await sleep(5);
    expect(await q.stop(20)).toBe(false); // the attempt is still in flight
    db.close(); // as the bridge does after its stop timeout
    fail(new Error('the homeserver timed out'));
    await sleep(20); // an unhandled rejection here fails the run
    const again = setup(async () => undefined, path);
    expect(again.q.restore()).toBe(1); // still pending for the next start
  });
});
