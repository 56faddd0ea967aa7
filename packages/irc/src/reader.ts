/**
 * The lines of a Matrix user's connection (lean.ts), cut from the bytes of each socket read: what
 * a read ends with, short of a line's end, waits for the next read.
 *
 * A line that grows past `MAX_LINE_BYTES` without an end is dropped, all of it: the bytes that
 * follow up to its end are its rest, not a line of their own. Read as one, they would be a line
 * whose every byte was chosen by whoever wrote the long one: the end of a PRIVMSG in a channel
 * could read as a KICK of this user, or as a private message from anyone.
 */
import type { Logger } from '@trestle/core';

/** The longest line kept while waiting for its end (tags 8,191 + message 512 bytes, with room). */
const MAX_LINE_BYTES = 16 * 1024;

export class LineReader {
  /** The unfinished last line of the previous read, if any. */
  private partial?: Buffer;
  /** The previous read ended inside a line too long to keep: the next bytes, up to its end, are skipped. */
  private discarding = false;

  constructor(private readonly log: Logger) {}

  /** A new connection: nothing of the old one's lines is left. */
  reset(): void { this.partial = undefined; this.discarding = false; }

  /**
   * The complete lines of a read of `n` bytes into `buf` (which may be a shared read buffer: it is
   * not kept), each handed to `line` as its byte range in `view`, without CR LF (or a bare LF), and
   * the same range in `text`, a one-byte-per-char (latin1) copy of `view`: its offsets are byte
   * offsets, so a caller can test ASCII patterns on a line and decode only the lines it keeps.
   * Empty lines are skipped.
   */
  read(buf: Buffer, n: number, line: (view: Buffer, text: string, start: number, end: number) => void): void {
    let view = buf.subarray(0, n);
    let start = 0;
    if (this.partial) { view = Buffer.concat([this.partial, view]); this.partial = undefined; }
    else if (this.discarding) {
      const end = view.indexOf(10);
      this.discarding = end < 0;
      if (end < 0) return;
      start = end + 1;
    }
    const text = view.toString('latin1');
    let nl: number;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      if (end > start) line(view, text, start, end);
      start = nl + 1;
    }
    if (start >= view.length) return;
    if (view.length - start > MAX_LINE_BYTES) {
      this.log.warn('dropping an over-long line from the IRC server', { bytes: view.length - start });
      this.discarding = true;
    } else this.partial = Buffer.from(view.subarray(start)); // a copy: the shared buffer is reused
  }
}
