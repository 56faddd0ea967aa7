/**
 * IRC → Matrix: what was said in a bridged channel while the bridge's listening connection was not
 * there (the bridge stopped or crashed, the connection lost and reconnecting), fetched back with
 * IRCv3 `draft/chathistory` when the listener rejoins.
 *
 * - {@link HistoryMarks}: per channel, the server-time (and msgid) of the last message the listener
 *   saw and reported; kept in memory and written to the network's kv now and then, on disconnect
 *   and at stop (never a write per message: IRC → Matrix is the hot path).
 * - {@link chathistoryAfter}: the request, `CHATHISTORY AFTER <channel> timestamp=<mark> <limit>`.
 * - {@link HistoryBatches}: reads the answer, a `chathistory` batch (with `draft/multiline` batches
 *   nested in it), off the raw lines, before irc-framework sees them: irc-framework would hand the
 *   lines over as if they were said now, and drops the lines of a batch nested in another.
 *
 * Which of the fetched lines go to Matrix, and how, is listen.ts's business.
 */
import { ircLower } from './ids.js';
import { parseRawLine, type IrcLine } from './ircline.js';

/** Where the listener left a channel: the server-time (ms) of the last message it saw, and its msgid. */
export interface HistoryMark { time: number; msgid?: string }

/** `CHATHISTORY AFTER <channel> timestamp=<ISO 8601 UTC, ms> <limit>` (IRCv3 chathistory). */
export function chathistoryAfter(channel: string, time: number, limit: number): string {
  return `CHATHISTORY AFTER ${channel} timestamp=${new Date(time).toISOString()} ${limit}`;
}

/**
 * How many messages to ask for: the configured number, or fewer if the server's ISUPPORT
 * `CHATHISTORY=<max>` says so (absent, 0 or not a number: the server sets no limit of its own).
 */
export function historyLimit(configured: number, isupport: unknown): number {
  const max = Number(isupport);
  return Number.isInteger(max) && max > 0 ? Math.min(configured, max) : configured;
}

/**
 * The marks of one server's channels. `seen` only moves a mark forward (reports resolve out of
 * order); `flush` writes them if they changed since the last write.
 */
export class HistoryMarks {
  private readonly marks = new Map<string, HistoryMark>();
  private dirty = false;

  constructor(private readonly kv: { get(key: string): string | undefined; set(key: string, value: string): void }, private readonly key: string) {
    let saved: unknown;
    try { saved = JSON.parse(kv.get(key) ?? '{}'); } catch { saved = {}; }
    if (saved && typeof saved === 'object') {
      for (const [channel, m] of Object.entries(saved as Record<string, { t?: unknown; id?: unknown }>)) {
        if (typeof m?.t === 'number' && Number.isFinite(m.t)) this.marks.set(channel, { time: m.t, ...(typeof m.id === 'string' ? { msgid: m.id } : {}) });
      }
    }
  }

  get(channel: string): HistoryMark | undefined { return this.marks.get(ircLower(channel)); }

  seen(channel: string, time: number, msgid?: string): void {
    const lc = ircLower(channel);
    const m = this.marks.get(lc);
    if (m && m.time >= time) return;
    this.marks.set(lc, { time, ...(msgid ? { msgid } : {}) });
    this.dirty = true;
  }

  /**
   * Forget the marks of channels no longer bridged (unlinked while the bridge was stopped): were one
   * linked again later, perhaps to another room, everything since the old mark would pour into it.
   */
  keepOnly(channels: ReadonlySet<string>): void {
    for (const channel of [...this.marks.keys()]) {
      if (channels.has(channel)) continue;
      this.marks.delete(channel);
      this.dirty = true;
    }
  }

  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const out: Record<string, { t: number; id?: string }> = {};
    for (const [channel, m] of this.marks) out[channel] = { t: m.time, ...(m.msgid ? { id: m.msgid } : {}) };
    this.kv.set(this.key, JSON.stringify(out));
  }
}

/** One message of a history batch: a PRIVMSG or NOTICE line, or a whole nested multiline batch. */
export type HistoryItem =
  | { kind: 'line'; line: IrcLine }
  | { kind: 'multiline'; nick: string; tags: Record<string, string>; lines: IrcLine[] };

interface OpenBatch { target: string; items: HistoryItem[] }
interface NestedBatch { outer: string; type: string; nick: string; tags: Record<string, string>; lines: IrcLine[] }

/**
 * Collects the `chathistory` batches of one connection from its raw lines. `take` answers whether
 * a line was one of theirs (and so must not reach irc-framework); `done` gets each batch, whole.
 */
export class HistoryBatches {
  private readonly open = new Map<string, OpenBatch>();
  private readonly nested = new Map<string, NestedBatch>();
  /** Requests sent and not yet answered: only then can a batch start, so only then are lines looked at. */
  expected = 0;

  constructor(private readonly done: (target: string, items: HistoryItem[]) => void) {}

  /** A line of a history batch (the batch's own BATCH lines included): collected here. */
  take(rawLine: string): boolean {
    if (this.expected === 0 && this.open.size === 0) return false;
    if (!rawLine.includes('BATCH ') && !rawLine.includes('batch=')) return false;
    const l = parseRawLine(rawLine);
    if (!l) return false;
    const inBatch = l.tags['batch'];
    if (l.command === 'BATCH' && l.params[0]) {
      const id = l.params[0].slice(1);
      if (l.params[0].startsWith('+')) {
        if (inBatch === undefined && l.params[1] === 'chathistory' && l.params[2]) {
          this.open.set(id, { target: l.params[2], items: [] });
          this.expected = Math.max(0, this.expected - 1);
          return true;
        }
        if (inBatch !== undefined && this.open.has(inBatch)) {
          this.nested.set(id, { outer: inBatch, type: l.params[1] ?? '', nick: l.nick, tags: l.tags, lines: [] });
          return true;
        }
        return false;
      }
      const outer = this.open.get(id);
      if (outer) {
        this.open.delete(id);
        this.done(outer.target, outer.items);
        return true;
      }
      const inner = this.nested.get(id);
      if (inner) {
        this.nested.delete(id);
        // a multiline message whole; any other nested batch is of no use to a channel's history
        if (inner.type === 'draft/multiline' && inner.lines.length) {
          this.open.get(inner.outer)?.items.push({ kind: 'multiline', nick: inner.nick || inner.lines[0]!.nick, tags: inner.tags, lines: inner.lines });
        }
        return true;
      }
      return false;
    }
    if (inBatch === undefined) return false;
    const outer = this.open.get(inBatch);
    if (outer) { outer.items.push({ kind: 'line', line: l }); return true; }
    const inner = this.nested.get(inBatch);
    if (inner) { inner.lines.push(l); return true; }
    return false;
  }

  /** The connection is gone: batches half read are dropped (the next join asks again). */
  reset(): void {
    this.open.clear();
    this.nested.clear();
    this.expected = 0;
  }
}
