/**
 * IRC → Matrix: the listener's bookkeeping of what was said in the bridged channels while it was
 * away (history.ts has the parts: marks, pages, batches). Per channel: its mark, moved on as what
 * the listener saw becomes durable in core's queue; on rejoining, the CHATHISTORY requests, page by
 * page, and their answers, refusals and timeouts; and meanwhile the channel's live events, held
 * back so that the room gets what was missed first and then what followed, in order.
 *
 * ChannelEvents (listen.ts) holds one and calls it from its event wiring; what a fetched line
 * becomes in the room stays its business (see {@link HistoryOutlet}).
 */
import type { NetworkContext } from '@trestle/core';
import { channelChat, ircLower, isChannel, moveChannel } from './ids.js';
import { HistoryBatches, HistoryFetch, HistoryMarks, serverPageMax, type HistoryItem } from './history.js';
import { parseRawLine } from './ircline.js';
import type { IrcServer } from './server.js';

/** What the history asks of the listener's event handling (listen.ts). */
export interface HistoryOutlet {
  /**
   * Items of a channel's fetched history, said before the listener joined: what of them is not
   * bridged yet goes to the room, in order, with its original times. Answers how many went.
   */
  backfill(channel: string, items: HistoryItem[]): number;
  /** Report to core (a failure is logged, not thrown). */
  report(p: Promise<void>): void;
}

export class ChannelHistory {
  /** Where the listener left each channel (history.ts); undefined with `history.enabled` off. */
  private readonly marks?: HistoryMarks;
  private readonly batches = new HistoryBatches((target, items) => this.replay(target, items));
  /**
   * Per channel (folded), the last move of its mark waiting on a report: each move waits for the
   * ones before it, so a mark never passes a message whose report is not yet durable.
   */
  private readonly marking = new Map<string, Promise<void>>();
  private flushTimer?: NodeJS.Timeout;
  /**
   * Channels whose history was asked for and not yet answered: live messages said meanwhile wait
   * here, so that the room gets what was missed first and then what followed, in order.
   */
  private readonly fetching = new Map<string, { held: (() => void)[]; timer?: NodeJS.Timeout; fetch: HistoryFetch }>();
  /**
   * The channels (lowercased) of the CHATHISTORY requests sent and not yet answered, oldest first.
   * A server answers a client's commands in order, so a FAIL that does not name its channel (ergo's
   * INVALID_PARAMS does not) is the oldest request's.
   */
  private readonly asking: string[] = [];

  constructor(private readonly server: IrcServer, private readonly ctx: NetworkContext, private readonly out: HistoryOutlet) {
    if (server.cfg.history.enabled) {
      const marks = this.marks = new HistoryMarks(ctx.kv, `history-marks:${server.key}`);
      this.flushTimer = setInterval(() => marks.flush(), 10_000);
      this.flushTimer.unref();
    }
  }

  private get key(): string { return this.server.key; }

  /**
   * A raw line of a history batch: collected (see {@link replay}), and not for irc-framework, which
   * would hand its lines over as if said now. Every such batch is taken, asked for or not.
   */
  take(line: string): boolean { return this.batches.take(line); }

  /** The listener is about to join these channels (folded), the bridged ones: marks of any other are dropped. */
  keepOnly(channels: ReadonlySet<string>): void {
    this.marks?.keepOnly(channels);
  }

  stop(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    for (const f of this.fetching.values()) if (f.timer) clearTimeout(f.timer);
    this.fetching.clear();
    this.asking.length = 0;
    this.marks?.flush();
  }

  /**
   * The listener's connection is gone: batches half read are dropped and no request will be
   * answered (the next join asks again); the live messages held meanwhile follow now.
   */
  disconnected(): void {
    this.batches.reset();
    this.asking.length = 0;
    for (const channel of [...this.fetching.keys()]) this.released(channel);
    this.marks?.flush();
  }

  /** A channel was renamed on the server: its mark, a fetch of its history and the request behind it are the new name's. */
  channelRenamed(from: string, to: string): void {
    this.marks?.channelRenamed(from, to);
    moveChannel(this.fetching, from, to);
    const a = ircLower(from), b = ircLower(to);
    this.asking.forEach((ch, i) => { if (ch === a) this.asking[i] = b; });
  }

  /**
   * A time-tagged line the listener saw in a channel and reports nothing of (a Matrix user's own
   * line, a join, part, quit, nick change, topic, mode): the server counts it in the channel's
   * history all the same (draft/event-playback), so the mark moves past it, or the next fetch would
   * spend its limit on lines already seen. Only after what was reported before it in the channel is
   * durable, and, while the channel's history is being fetched, after that.
   */
  passed(channel: string, time: number | undefined, msgid?: string): void {
    if (!this.marks || !time || !Number.isFinite(time)) return;
    if (this.held(channel, () => this.passed(channel, time, msgid))) return;
    this.markAfter(channel, Promise.resolve(), time, msgid);
  }

  /** The mark moves to `time` once `durable` resolves and every earlier move of the channel's mark is done (a failed report moves nothing). */
  markAfter(channel: string, durable: Promise<void>, time: number, msgid: string | undefined): void {
    const marks = this.marks;
    if (!marks) return;
    const lc = ircLower(channel);
    const next = (this.marking.get(lc) ?? Promise.resolve()).then(() => durable).then(() => marks.seen(channel, time, msgid), () => undefined);
    this.marking.set(lc, next);
    void next.then(() => { if (this.marking.get(lc) === next) this.marking.delete(lc); });
  }

  /** A line of one of the Matrix users' connections (nothing to report: the room has it): it moves the mark. */
  ownChatter(line: string): void {
    if (!this.marks || !line.startsWith('@')) return;
    const l = parseRawLine(line);
    const time = l?.tags['time'] ? Date.parse(l.tags['time']) : NaN;
    if (l && l.params[0] && isChannel(l.params[0])) this.passed(l.params[0], time, l.tags['msgid']);
  }

  /** A live event of a channel whose history is being fetched waits (see {@link fetching}); true if it does. */
  held(channel: string, later: () => void): boolean {
    const f = this.fetching.get(ircLower(channel));
    if (!f) return false;
    f.held.push(later);
    return true;
  }

  /** The history of a channel is in (or will not come): the live messages that waited follow it. */
  private released(channel: string): void {
    const lc = ircLower(channel);
    const f = this.fetching.get(lc);
    if (!f) return;
    if (f.timer) clearTimeout(f.timer);
    this.fetching.delete(lc);
    for (const later of f.held) later();
  }

  /**
   * The listener (re)joined a channel: ask for what was said there since its mark (`joined`: its
   * JOIN's msgid and server-time, where the fetch ends). A channel without a mark (joined for the
   * first time) fetches nothing; its mark starts at this join.
   */
  fetch(channel: string, joined: { msgid?: string; time?: number }): void {
    const marks = this.marks;
    if (!marks) return;
    const mark = marks.get(channel);
    if (!mark) { marks.seen(channel, joined.time ?? Date.now()); return; }
    const listener = this.server.listener;
    if (!listener.client.network.cap.isEnabled('draft/chathistory') || this.fetching.has(ircLower(channel))) return;
    const fetch = new HistoryFetch(channel, this.server.cfg.history.limit, serverPageMax(listener.client.network.options['CHATHISTORY']), joined);
    this.fetching.set(ircLower(channel), { held: [], fetch });
    if (!this.ask(channel, fetch.first(mark.time))) { this.released(channel); return; }
    this.ctx.log.debug('asking for what was said while away', { server: this.key, channel, since: new Date(mark.time).toISOString(), limit: fetch.limit });
  }

  /**
   * Send one CHATHISTORY request of a channel's fetch, and give the server 15 s to answer it; past
   * that the rooms are told what is missing (the mark moves on with the live messages after it).
   */
  private ask(channel: string, request: string): boolean {
    const f = this.fetching.get(ircLower(channel));
    if (!f || !this.server.listener.raw(request)) return false;
    if (f.timer) clearTimeout(f.timer);
    f.timer = setTimeout(() => {
      this.ctx.log.warn('the IRC server did not answer a CHATHISTORY request; going on without it', { server: this.key, channel });
      this.answered(channel);
      this.toldIncomplete(f.fetch.channel, 'the IRC server did not answer the bridge\'s request for it within 15 seconds');
      this.released(channel);
    }, 15_000);
    f.timer.unref();
    this.asking.push(ircLower(channel));
    return true;
  }

  /** A channel's oldest outstanding CHATHISTORY request is settled (answered, refused, given up). */
  private answered(channel: string): void {
    const i = this.asking.indexOf(ircLower(channel));
    if (i >= 0) this.asking.splice(i, 1);
  }

  /**
   * A page of a channel's history, fetched: what of it was said before the listener joined goes to
   * the room (the outlet's `backfill`). Then the next page is asked for, or, the fetch done, the
   * live messages held meanwhile follow.
   */
  private replay(channel: string, items: HistoryItem[]): void {
    const f = this.fetching.get(ircLower(channel));
    if (!f || !this.asking.includes(ircLower(channel))) {
      // no request of the channel waits for it: an answer after its request was given up (the live
      // messages held meanwhile went on, and the mark with them), or one nobody asked for (a server
      // replaying history on join): old lines, which would land after newer ones
      this.ctx.log.warn('a CHATHISTORY batch came that no request waits for (late, or not asked for); its lines are dropped',
        { server: this.key, channel, items: items.length });
      return;
    }
    this.answered(channel);
    const page = f.fetch.page(items);
    const delivered = this.out.backfill(channel, page.items);
    this.ctx.log.info('fetched what was said while away', { server: this.key, channel, fetched: items.length, delivered, more: !!page.next });
    if (page.next && this.ask(channel, page.next)) return;
    if (page.incomplete) this.toldIncomplete(channel, `the bridge fetches at most ${f.fetch.limit} lines and events`);
    this.released(channel);
  }

  /**
   * Not all that was said while away could be fetched (more than `history.limit`, joins and quits
   * counted, or the server refused a later page): the rooms are told, after the lines fetched.
   */
  private toldIncomplete(channel: string, why: string): void {
    const text = `ℹ Not all that was said in ${channel} while the bridge was away could be fetched (${why}): ` +
      'what followed the lines above, until the bridge came back, is missing here.';
    this.out.report(this.ctx.remote.notice({ chat: channelChat(this.key, channel), text }));
  }

  /**
   * The server refused a CHATHISTORY request (FAIL CHATHISTORY <code> [context] :why): the channel
   * it names, or else the one of the oldest request (see {@link asking}), goes on without it. If
   * pages of it came in before, the room is told the rest is missing.
   */
  refused(params: string[]): void {
    this.ctx.log.warn('the IRC server refused a CHATHISTORY request', { server: this.key, reply: params.join(' ') });
    const named = params.slice(1, -1).find((p) => this.asking.includes(ircLower(p)));
    const channel = named ?? this.asking[0];
    if (channel === undefined) return;
    this.answered(channel);
    const f = this.fetching.get(ircLower(channel));
    if (f?.fetch.refused()) this.toldIncomplete(f.fetch.channel, `the IRC server refused the rest: ${params[params.length - 1] ?? ''}`);
    this.released(channel);
  }
}
