/**
 * The IRCv3 batches a Matrix user's connection (lean.ts) holds open while their lines arrive: a
 * `labeled-response` batch answering one of its labeled lines, and a `draft/multiline` private
 * message to it, kept until the batch closes to be delivered as one message.
 *
 * Bounded, since the server decides when a batch ends: one that opens batches and never closes
 * them, or fills one without end, would otherwise grow the connection's memory without limit (one
 * per Matrix user). At most `MAX_OPEN` of each kind stay open: opening one more closes the oldest
 * (a private one is delivered with what it has: its later lines, no longer in a batch known here,
 * then come as messages of their own, so nothing heard is dropped). A private message keeps at
 * most `MAX_LINES` lines and `MAX_BYTES` of text (more than a Matrix event holds); the rest is
 * dropped, with a warning.
 */
import type { Logger } from '@trestle/core';
import type { MultilineLine } from './convert/index.js';

/** Batches of one kind open at once (a server sends one batch's lines together: it seldom has two open). */
const MAX_OPEN = 8;
/** The most lines kept of one incoming multiline message (servers announce far fewer: ergo's default is 100). */
const MAX_LINES = 1000;
/** The most text kept of one incoming multiline message (ergo's default max-bytes is 4,096; a Matrix event holds 64 KiB). */
const MAX_BYTES = 64 * 1024;

/** A multiline private message, whole (or as much of it as was kept). */
export interface PrivateBatch { nick: string; tags: Record<string, string>; command?: 'PRIVMSG' | 'NOTICE'; lines: MultilineLine[] }

export class OpenBatches {
  /** Open labeled-response batches: batch ref → our label (a line answered by several: the echo and RPL_AWAY, say). */
  private readonly labeled = new Map<string, string>();
  /** Open multiline private messages: batch ref → the opening line's sender and tags (msgid, time, reply), and the lines so far. */
  private readonly privates = new Map<string, PrivateBatch & { bytes: number; cut: boolean }>();

  /** `deliver`: a private message whose batch closed (or was closed as the oldest of too many). */
  constructor(private readonly log: Logger, private readonly deliver: (pm: PrivateBatch) => void) {}

  /** Is any labeled batch open (a line in some batch may then answer our label)? */
  get anyLabeled(): boolean { return this.labeled.size > 0; }

  /** The label the lines of this batch answer, if it is an open labeled-response batch. */
  labelOf(ref: string): string | undefined { return this.labeled.get(ref); }

  openLabeled(ref: string, label: string): void {
    if (this.labeled.size >= MAX_OPEN && !this.labeled.has(ref)) {
      const oldest = this.labeled.keys().next().value!;
      this.log.warn('the IRC server keeps too many labeled batches open; forgetting the oldest', { open: this.labeled.size });
      this.labeled.delete(oldest); // its line is settled by the check of a slow answer if nothing else (lean.ts suspect)
    }
    this.labeled.set(ref, label);
  }

  openPrivate(ref: string, nick: string, tags: Record<string, string>): void {
    if (this.privates.size >= MAX_OPEN && !this.privates.has(ref)) {
      const oldest = this.privates.keys().next().value!;
      this.log.warn('the IRC server keeps too many multiline messages open; delivering the oldest as it is', { open: this.privates.size });
      this.close(oldest);
    }
    this.privates.set(ref, { nick, tags, lines: [], bytes: 0, cut: false });
  }

  /** A PRIVMSG or NOTICE in batch `ref`: true if it is part of an open private message (kept, or dropped past its limits). */
  line(ref: string, command: 'PRIVMSG' | 'NOTICE', text: string, concat: boolean): boolean {
    const batch = this.privates.get(ref);
    if (!batch) return false;
    batch.command ??= command;
    const bytes = Buffer.byteLength(text);
    if (batch.lines.length < MAX_LINES && batch.bytes + bytes <= MAX_BYTES) {
      batch.lines.push({ text, concat });
      batch.bytes += bytes;
    } else if (!batch.cut) {
      batch.cut = true;
      this.log.warn('a multiline message from IRC is too long; keeping its start', { nick: batch.nick, lines: batch.lines.length, bytes: batch.bytes });
    }
    return true;
  }

  /** `BATCH -ref`: the label it answered, if it was a labeled batch; a private message is delivered. */
  close(ref: string): string | undefined {
    const label = this.labeled.get(ref);
    this.labeled.delete(ref);
    const pm = this.privates.get(ref);
    this.privates.delete(ref);
    if (pm?.command) this.deliver({ nick: pm.nick, tags: pm.tags, command: pm.command, lines: pm.lines });
    return label;
  }

  /** A new connection: batches of the old one are gone with it. */
  clear(): void { this.labeled.clear(); this.privates.clear(); }
}
