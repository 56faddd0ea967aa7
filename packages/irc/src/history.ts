/**
 * IRC → Matrix: what was said in a bridged channel while the bridge's listening connection was not
 * there (the bridge stopped or crashed, the connection lost and reconnecting), fetched back with
 * IRCv3 `draft/chathistory` when the listener rejoins.
 *
 * - {@link HistoryMarks}: per channel, the server-time (and msgid) of the last message the listener
 *   saw and reported; kept in memory and written to the network's kv now and then, on disconnect
 *   and at stop (never a write per message: IRC → Matrix is the hot path).
 * - {@link HistoryFetch}: one channel's fetch, page by page: `CHATHISTORY AFTER <channel>
 *   timestamp=<mark> <n>`, then `msgid=<last of the page>` while pages come back full, until
 *   `history.limit` is reached or the listener's own join is (what followed, it saw itself).
 * - {@link HistoryBatches}: reads the answer, a `chathistory` batch (with `draft/multiline` batches
 *   nested in it), off the raw lines, before irc-framework sees them: irc-framework would hand the
 *   lines over as if they were said now, and drops the lines of a batch nested in another. Every
 *   such batch is taken, asked for or not (an answer after its request was given up, a server's
 *   replay on join): none may reach irc-framework.
 *
 * - {@link historyReaction}: a reaction (TAGMSG) among the fetched lines.
 *
 * The listener's use of these (asking on rejoin, holding the channel's live events meanwhile,
 * moving the marks) is channelHistory.ts's; which of the fetched lines go to Matrix, and how, is
 * listen.ts's business.
 */
import { ircLower, isChannel, moveChannel } from './ids.js';
import { parseRawLine, type IrcLine } from './ircline.js';

/** Where the listener left a channel: the server-time (ms) of the last message it saw, and its msgid. */
export interface HistoryMark { time: number; msgid?: string }

/** Where a page of history starts: after a time (the channel's mark) or after a message (the last of the previous page). */
export type HistoryFrom = { time: number } | { msgid: string };

/** `CHATHISTORY AFTER <channel> timestamp=<ISO 8601 UTC, ms>|msgid=<id> <limit>` (IRCv3 chathistory). */
export function chathistoryAfter(channel: string, from: HistoryFrom, limit: number): string {
  const selector = 'msgid' in from ? `msgid=${from.msgid}` : `timestamp=${new Date(from.time).toISOString()}`;
  return `CHATHISTORY AFTER ${channel} ${selector} ${limit}`;
}

/**
 * The most messages the server gives for one request, from its ISUPPORT `CHATHISTORY=<max>`;
 * undefined when it names none (absent, 0 or not a number).
 */
export function serverPageMax(isupport: unknown): number | undefined {
  const max = Number(isupport);
  return Number.isInteger(max) && max > 0 ? max : undefined;
}

/** The tags of a history item: a line's own, or those of a multiline batch's opening line. */
export function itemTags(item: HistoryItem): Record<string, string> {
  return item.kind === 'line' ? item.line.tags : item.tags;
}

/** What became of a page: the items to bridge, and the request for the next page, if there is one to ask for. */
export interface HistoryPage {
  /** The items of the page said before the listener joined (those after, it saw itself). */
  items: HistoryItem[];
  next?: string;
  /** The fetch stopped at `history.limit` with more perhaps said: the room should be told. */
  incomplete: boolean;
}

/**
 * One channel's fetch of what was said while the listener was away, page by page: from the mark,
 * `min(limit, server's max)` at a time, each page after the last message of the one before (its
 * msgid: timestamps can tie, several lines said in one millisecond), until a page comes back short
 * (nothing more), `limit` items are in, or the page reaches the listener's own join. Joins, parts
 * and quits count as items: the server counts them too.
 */
export class HistoryFetch {
  private fetched = 0;
  private asked = 0;

  /**
   * @param joined the listener's join that started this fetch (its msgid, its server-time): items
   *   from it on were seen live, so the fetch ends there
   */
  constructor(readonly channel: string, readonly limit: number, private readonly pageMax: number | undefined,
    private readonly joined: { msgid?: string; time?: number }) {}

  /** The first request: what was said after the mark. */
  first(mark: number): string { return this.ask({ time: mark }); }

  private ask(from: HistoryFrom): string {
    this.asked = Math.min(this.limit - this.fetched, this.pageMax ?? Infinity);
    return chathistoryAfter(this.channel, from, this.asked);
  }

  /** Is this item the listener's join, or said after it? */
  private live(item: HistoryItem): boolean {
    const tags = itemTags(item);
    if (this.joined.msgid !== undefined && tags['msgid'] === this.joined.msgid) return true;
    const time = Date.parse(tags['time'] ?? '');
    return this.joined.time !== undefined && Number.isFinite(time) && time > this.joined.time;
  }

  /**
   * The server refused the last request (FAIL CHATHISTORY). True if pages came in before it: the
   * room then has the start of what was said, and must be told the rest is missing. A refused first
   * request leaves nothing half told (a server may refuse history for a channel every time; saying
   * so at each rejoin would be noise).
   */
  refused(): boolean { return this.fetched > 0; }

  /** A page came in: what of it to bridge, and what to ask next. */
  page(items: HistoryItem[]): HistoryPage {
    this.fetched += items.length;
    const cut = items.findIndex((item) => this.live(item));
    if (cut >= 0) return { items: items.slice(0, cut), incomplete: false };
    if (items.length < this.asked) return { items, incomplete: false }; // the server has no more
    const last = items.length ? itemTags(items[items.length - 1]!) : {};
    const lastTime = Date.parse(last['time'] ?? '');
    const from = last['msgid'] ? { msgid: last['msgid'] } : Number.isFinite(lastTime) ? { time: lastTime } : undefined;
    if (this.fetched >= this.limit || !from) return { items, incomplete: true };
    return { items, next: this.ask(from), incomplete: false };
  }
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

  /** The channel was renamed on the server: its mark (and with it, its history) is the new name's. */
  channelRenamed(from: string, to: string): void { if (moveChannel(this.marks, from, to)) this.dirty = true; }

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

/** The batch types of a channel's history: IRCv3's, and the draft's name, which older servers send. */
export function isHistoryBatch(type: string | undefined): boolean {
  return type === 'chathistory' || type === 'draft/chathistory';
}

/**
 * Collects the `chathistory` batches of one connection from its raw lines. `take` answers whether
 * a line was one of theirs (and so must not reach irc-framework); `done` gets each batch, whole,
 * whether it was asked for or not (who asked, and when, is the caller's to know).
 */
export class HistoryBatches {
  private readonly open = new Map<string, OpenBatch>();
  private readonly nested = new Map<string, NestedBatch>();

  constructor(private readonly done: (target: string, items: HistoryItem[]) => void) {}

  /** A line of a history batch (the batch's own BATCH lines included): collected here. */
  take(rawLine: string): boolean {
    // the listener's hot path: with no history batch open, only a batch's start can be one
    if (this.open.size === 0 ? !rawLine.includes('BATCH +') : !rawLine.includes('BATCH ') && !rawLine.includes('batch=')) return false;
    const l = parseRawLine(rawLine);
    if (!l) return false;
    const inBatch = l.tags['batch'];
    if (l.command === 'BATCH' && l.params[0]) {
      const id = l.params[0].slice(1);
      if (l.params[0].startsWith('+')) {
        if (inBatch === undefined && isHistoryBatch(l.params[1]) && l.params[2]) {
          this.open.set(id, { target: l.params[2], items: [] });
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
  }
}

/**
 * A reaction of a fetched history batch: a TAGMSG to a channel with `+draft/react` (or `+react`)
 * and the msgid it answers (`+draft/reply`); ergo keeps these in history by default
 * (`history.tagmsg-storage`) and gives them to clients with draft/event-playback.
 */
export function historyReaction(item: HistoryItem): { nick: string; target: string; key: string; replyTo: string; tags: Record<string, string> } | undefined {
  if (item.kind !== 'line' || item.line.command !== 'TAGMSG') return undefined;
  const { nick, params, tags } = item.line;
  const key = tags['+draft/react'] ?? tags['+react'];
  const replyTo = tags['+draft/reply'] ?? tags['+reply'];
  if (!key || !replyTo || !params[0] || !isChannel(params[0])) return undefined;
  return { nick, target: params[0], key, replyTo, tags };
}
