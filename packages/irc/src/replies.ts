/**
 * Which form a Matrix reply takes on IRC (the text itself: convert/reply.ts). The listener notes
 * every line said in a channel and every join it sees; a reply then gets:
 *
 * - `nick: text` when the message it answers is recent: fewer than `shortWithinLines` lines ago
 *   and younger than `shortWithinSeconds` (matrix-appservice-irc's rule, with a line count added:
 *   in a busy channel a minute-old line has already scrolled away);
 * - `<nick> "quote…" <- text` when it is older, but ONLY if nobody has joined the channel since it
 *   was said. A quote repeats the message to everyone in the channel now; someone who joined later
 *   may not be meant to read it (a Matrix room with `joined`/`invited` history, or a Matrix user
 *   replying to an event they were never shown). Core does not tell networks a room's history
 *   visibility, so the bridge only quotes when the whole audience was there to see the original.
 * - `nick: text` for messages it knows nothing of (said before a restart, or too long ago).
 */
import { ircLower, moveChannel } from './ids.js';

export interface ReplyRules { shortWithinSeconds: number; shortWithinLines: number }

interface Said { keys: readonly string[]; at: number; seq: number }
interface ChannelLog { lines: Said[]; next: number; lastJoinSeq: number }

export class RecentLines {
  private readonly channels = new Map<string, ChannelLog>();

  /** @param keep lines remembered per channel (older ones are answered with `nick: text`). */
  constructor(private readonly keep = 200) {}

  /** The channel was renamed on the server: its lines are the new name's. */
  channelRenamed(from: string, to: string): void { moveChannel(this.channels, from, to); }

  private log(channel: string): ChannelLog {
    const key = ircLower(channel);
    let log = this.channels.get(key);
    if (!log) { log = { lines: [], next: 0, lastJoinSeq: 0 }; this.channels.set(key, log); }
    return log;
  }

  /** A line was said in the channel; `keys` are the ids a reply may name it by (msgid, Matrix event id). */
  said(channel: string, keys: readonly string[], at: number): void {
    const log = this.log(channel);
    log.lines.push({ keys, at, seq: log.next++ });
    if (log.lines.length > this.keep) log.lines.splice(0, log.lines.length - this.keep);
  }

  /** Someone joined the channel (or the listener learnt its members, and cannot tell since when). */
  joined(channel: string): void {
    const log = this.log(channel);
    log.lastJoinSeq = log.next;
  }

  /** May a reply to the line known by any of `keys` quote it (`quote`), or must it name the nick only (`short`)? */
  replyForm(channel: string, keys: readonly string[], now: number, rules: ReplyRules): 'short' | 'quote' {
    const log = this.channels.get(ircLower(channel));
    if (!log) return 'short';
    let said: Said | undefined;
    for (let i = log.lines.length - 1; i >= 0 && !said; i--) if (log.lines[i]!.keys.some((k) => keys.includes(k))) said = log.lines[i];
    if (!said) return 'short';
    const linesSince = log.next - said.seq - 1;
    if (linesSince < rules.shortWithinLines && now - said.at <= rules.shortWithinSeconds * 1000) return 'short';
    return log.lastJoinSeq > said.seq ? 'short' : 'quote';
  }
}
