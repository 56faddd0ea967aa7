/**
 * Channel operators' consent to plumbing (config `linkApproval`): a `link` (command or provisioning
 * API) from someone who is not a bridge admin asks the channel's operators, by NOTICE from the
 * bridge's own connection, and the first of them to answer it "yes" links the room ("no" refuses).
 * Nobody answering within the timeout ends the request. The Matrix side is told each outcome.
 * Answers name no channel: an answer counts for the oldest request whose channel its sender is an
 * operator of when it comes (asked under another nick or not at all: operators speak for the channel).
 * Requests are stored: after a restart they wait on for the rest of their time, or end at once
 * (with the usual notice) if it ran out while the bridge was away.
 */
import { durationWords, type Logger } from '@trestle/core';
import { ircLower } from './ids.js';

/**
 * What an operator's private message says: yes, no, or nothing we understand. A question is no
 * answer: an operator asking "ok, who is that?" has not approved bridging a stranger's room.
 */
export function verdictOf(text: string): 'yes' | 'no' | undefined {
  const t = text.trim().toLowerCase();
  if (t.includes('?')) return undefined;
  if (/^(yes|y|ok|okay|approved?|allow(ed)?|accept(ed)?)\b/.test(t)) return 'yes';
  if (/^(no|n|deny|denied|refused?|reject(ed)?)\b/.test(t)) return 'no';
  return undefined;
}

export interface LinkRequest {
  /** The server's key, the channel as asked for, and the chat id the link will have. */
  server: string; channel: string; chat: string;
  roomId: string; userId: string;
  /** How the room is named to the operators (its alias, else its id). */
  roomLabel: string;
}

/** A request as stored: who was asked (lower-cased nicks), for how long, and until when (ms since the epoch). */
export interface StoredLinkRequest extends LinkRequest { ops: string[]; timeoutSeconds: number; deadline: number }

interface Pending extends LinkRequest { ops: Set<string>; timer: NodeJS.Timeout }

export interface OpApprovalsDeps {
  log: Logger;
  /** Tell the Matrix side of a request an outcome (in the room, else the requester's admin room). */
  tell(req: LinkRequest, text: string): Promise<void>;
  /** Say something to an IRC nick from the bridge's own connection of a server. */
  notice(server: string, nick: string, text: string): void;
  /** Is the nick an operator of the channel now? */
  isOperator(server: string, channel: string, nick: string): boolean;
  /**
   * Resolves once the bridge's connection knows who is in the channel and their ranks (or after a
   * while): just after a restart, an answer may come before the channel's NAMES does.
   */
  known(server: string, channel: string): Promise<void>;
  /** Link an approved request; returns what to tell the Matrix side; throws when it cannot be done any more. */
  link(req: LinkRequest, approver: string): Promise<string>;
  /** A request ended without a link (refused, or its time ran out). */
  ended(req: LinkRequest): void;
  /** Where requests are kept across restarts (the IRC store). */
  store: {
    linkRequests(): StoredLinkRequest[];
    putLinkRequest(r: StoredLinkRequest): void;
    dropLinkRequest(server: string, chat: string, roomId: string): void;
  };
  now?: () => number;
}

export class OpApprovals {
  private readonly pending: Pending[] = [];

  constructor(private readonly d: OpApprovalsDeps) {}

  /** Ask `ops` about `req` (replacing an earlier request for the same room and channel); returns what to tell the requester. */
  ask(req: LinkRequest, ops: readonly string[], timeoutSeconds: number): string {
    this.remove((p) => p.server === req.server && p.chat === req.chat && p.roomId === req.roomId);
    const stored: StoredLinkRequest = { ...req, ops: ops.map(ircLower), timeoutSeconds, deadline: this.now() + timeoutSeconds * 1000 };
    this.d.store.putLinkRequest(stored);
    this.arm(stored);
    for (const op of ops) {
      this.d.notice(req.server, op, `${req.userId} asks to bridge ${req.channel} to the Matrix room ${req.roomLabel}. ` +
        `As an operator of ${req.channel}, answer me "yes" to allow it or "no" to refuse, within ${durationWords(timeoutSeconds)}.`);
    }
    this.d.log.info('asked channel operators to approve a link', { server: req.server, channel: req.channel, roomId: req.roomId, ops: ops.length });
    return `Asked the operators of ${req.channel} (${ops.join(', ')}) by IRC notice.`;
  }

  /**
   * The requests stored before a restart: waiting again for the rest of their time, or ended now if
   * it ran out. Returns those waiting (their channels need the bridge's connection in them again, to
   * know who the operators are).
   */
  restore(): LinkRequest[] {
    const waiting: LinkRequest[] = [];
    for (const r of this.d.store.linkRequests()) {
      if (r.deadline > this.now()) { this.arm(r); waiting.push(r); } else this.expired(r);
    }
    return waiting;
  }

  /** Wait for an answer to a stored request until its deadline. */
  private arm(r: StoredLinkRequest): void {
    const { ops, timeoutSeconds: _t, deadline: _d, ...req } = r;
    const timer = setTimeout(() => { if (this.remove((p) => p === pending)) this.expired(r); }, Math.max(0, r.deadline - this.now()));
    timer.unref();
    const pending: Pending = { ...req, ops: new Set(ops), timer };
    this.pending.push(pending);
  }

  private expired(r: StoredLinkRequest): void {
    this.d.store.dropLinkRequest(r.server, r.chat, r.roomId);
    this.d.ended(r);
    void this.d.tell(r, `No operator of ${r.channel} answered within ${durationWords(r.timeoutSeconds)}, so this room is not linked to it.`);
  }

  private now(): number { return (this.d.now ?? Date.now)(); }

  /**
   * A private message to the bridge's own connection: true when it was an operator's answer to a
   * request. It counts for the oldest request whose channel the sender is an operator of now (asked
   * or not: an operator who changed nick since, or was made one since, speaks for the channel too).
   */
  async answered(server: string, nick: string, text: string): Promise<boolean> {
    const verdict = verdictOf(text);
    if (!verdict || !this.pending.some((x) => x.server === server)) return false;
    const channels = new Set(this.pending.filter((x) => x.server === server).map((x) => ircLower(x.channel)));
    await Promise.all([...channels].map((c) => this.d.known(server, c)));
    const lc = ircLower(nick);
    const mine = this.pending.filter((x) => x.server === server);
    const p = mine.find((x) => this.d.isOperator(server, x.channel, nick));
    if (!p) {
      const asked = mine.find((x) => x.ops.has(lc));
      if (!asked) return false;
      this.d.notice(server, nick, `You are no longer an operator of ${asked.channel}, so your answer does not count.`);
      return true;
    }
    this.remove((x) => x === p);
    if (verdict === 'no') {
      this.d.log.info('a channel operator refused a link', { server, channel: p.channel, roomId: p.roomId, op: nick });
      this.d.notice(server, nick, `Refused: ${p.channel} is not bridged to ${p.roomLabel}.`);
      this.d.ended(p);
      await this.d.tell(p, `${nick}, an operator of ${p.channel}, refused to link it to this room.`);
      return true;
    }
    try {
      const said = await this.d.link(p, nick);
      this.d.notice(server, nick, `Done: ${p.channel} is bridged to ${p.roomLabel}.`);
      await this.d.tell(p, said);
    } catch (err) {
      await this.d.tell(p, `${nick} approved, but the link could not be made: ${(err as Error).message}`);
    }
    return true;
  }

  /** Is a request for this chat waiting (for any room)? */
  waitingFor(server: string, chat: string): boolean {
    return this.pending.some((p) => p.server === server && p.chat === chat);
  }

  /** The bridge stops: nothing waits in memory any more; the stored requests wait for the next start. */
  stop(): void {
    for (const p of this.pending.splice(0)) clearTimeout(p.timer);
  }

  /** Forget the requests `pred` picks, in memory and in the store. */
  private remove(pred: (p: Pending) => boolean): boolean {
    let removed = false;
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const p = this.pending[i]!;
      if (!pred(p)) continue;
      clearTimeout(p.timer);
      this.pending.splice(i, 1);
      this.d.store.dropLinkRequest(p.server, p.chat, p.roomId);
      removed = true;
    }
    return removed;
  }
}
