/**
 * Fitting outgoing lines into IRC's limits. Pure; no I/O.
 *
 * An IRC line is at most 512 bytes including the CRLF, and the server relays it to others with our
 * `:nick!user@host` prefix added, so the room for text is what is left of 512 after that prefix,
 * the command, the target and the separators ({@link maxPayloadBytes}). IRCv3 message tags do not
 * count against the 512.
 */

const IRC_LINE_BYTES = 512;
const CRLF_BYTES = 2;

/** mIRC colour codes with their parameters: split as one piece, or the digits become text. */
const COLOUR_CODE = /(\x03\d{1,2}(?:,\d{1,2})?|\x04[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)/;

/** Made at first use: building a segmenter loads ICU's break rules, ~20 ms of start-up otherwise. */
let graphemes: Intl.Segmenter | undefined;

export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Bytes available for the text of `COMMAND target :text` sent with `prefix` (`nick!user@host`). */
export function maxPayloadBytes(prefix: string, command: string, target: string): number {
  return IRC_LINE_BYTES - CRLF_BYTES - utf8Length(`:${prefix} ${command} ${target} :`);
}

/** The pieces a line may be cut between: grapheme clusters, and colour codes whole. */
function* units(line: string): Generator<string> {
  const parts = line.split(COLOUR_CODE);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (i % 2 === 1) yield part;
    else for (const { segment } of (graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' })).segment(part)) yield segment;
  }
}

/**
 * Split one line into chunks of at most `maxBytes` UTF-8 bytes. A chunk ends at the last space
 * that fits (the space itself is dropped); a word longer than a chunk is cut between grapheme
 * clusters, and only a single cluster longer than `maxBytes` (say, a long emoji ZWJ sequence or
 * piled-up combining marks) is cut between code points. A code point or surrogate pair is never
 * cut. An empty line gives no chunks.
 *
 * Formatting codes are not carried over: a chunk after the first starts unformatted.
 */
export function splitForIrc(line: string, maxBytes: number): string[] {
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  if (line === '') return [];
  if (utf8Length(line) <= maxBytes) return [line];

  const chunks: string[] = [];
  let current: string[] = [];
  let sizes: number[] = [];
  let bytes = 0;
  let lastSpace = -1;

  const flush = (): void => {
    if (lastSpace > 0) {
      chunks.push(current.slice(0, lastSpace).join(''));
      current = current.slice(lastSpace + 1);
      sizes = sizes.slice(lastSpace + 1);
      bytes = sizes.reduce((a, b) => a + b, 0);
    } else {
      chunks.push(current.join(''));
      current = [];
      sizes = [];
      bytes = 0;
    }
    lastSpace = -1; // what is carried over comes after the last space
  };
  const add = (unit: string, size: number): void => {
    if (unit === ' ' && bytes + size > maxBytes) lastSpace = current.length; // break right here
    while (bytes + size > maxBytes && current.length > 0) flush();
    if (unit === ' ' && current.length === 0 && chunks.length > 0) return; // a break point after a cut
    current.push(unit);
    sizes.push(size);
    bytes += size;
    if (unit === ' ') lastSpace = current.length - 1;
  };

  for (const unit of units(line)) {
    const size = utf8Length(unit);
    if (size <= maxBytes) {
      add(unit, size);
      continue;
    }
    for (const codePoint of unit) {
      const cpSize = utf8Length(codePoint);
      if (cpSize > maxBytes) throw new RangeError(`maxBytes ${maxBytes} is too small for a ${cpSize}-byte character`);
      add(codePoint, cpSize);
    }
  }
  if (current.length > 0) chunks.push(current.join(''));
  return chunks;
}

/**
 * Keep a message within `lineLimit` lines. When it has more, `overflow` is true and `send` holds
 * the first `lineLimit - 1` lines: the caller uploads the full text and sends one more line
 * pointing to it, so what reaches the channel is still at most `lineLimit` lines.
 */
export function applyLineLimit(lines: readonly string[], lineLimit: number): { send: string[]; overflow: boolean } {
  if (!(lineLimit >= 1) || (!Number.isInteger(lineLimit) && lineLimit !== Infinity)) {
    throw new RangeError(`lineLimit must be a positive integer, got ${lineLimit}`);
  }
  if (lines.length <= lineLimit) return { send: [...lines], overflow: false };
  return { send: lines.slice(0, lineLimit - 1), overflow: true };
}

/** One line of an IRCv3 `draft/multiline` batch; `concat` lines continue the line before them. */
export interface MultilinePart { text: string; concat: boolean }

/**
 * Lay out logical lines for one IRCv3 `draft/multiline` batch: each line fits `maxBytes`, and a
 * line too long for IRC is cut at a space into parts that carry `draft/multiline-concat`, with the
 * space kept at the end of the part before the cut, so that a multiline client joins them back
 * exactly. Returns undefined when the message cannot be one batch within the server's `limits`
 * (`max-bytes` counts the text and the line breaks between lines; `max-lines` the batch's lines).
 * Empty lines are kept: inside a batch they are paragraph breaks.
 */
export function multilineParts(
  lines: readonly string[], maxBytes: number, limits: { maxBytes?: number; maxLines?: number },
): MultilinePart[] | undefined {
  const parts: MultilinePart[] = [];
  for (const line of lines) {
    if (line === '') { parts.push({ text: '', concat: false }); continue; }
    const chunks = splitForIrc(line, Math.max(1, maxBytes - 1));
    let pos = 0;
    const texts: string[] = [];
    for (const [i, chunk] of chunks.entries()) {
      const at = line.indexOf(chunk, pos);
      if (at < 0) return undefined;
      const gap = line.slice(pos, at);
      if (!/^ *$/.test(gap)) return undefined;
      if (i > 0) texts[i - 1] += gap; // the space the cut dropped goes back, at the end of the part before
      texts.push(chunk);
      pos = at + chunk.length;
    }
    const rest = line.slice(pos); // spaces the splitter dropped after the last cut
    if (!/^ *$/.test(rest)) return undefined;
    if (texts.length > 0) texts[texts.length - 1] += rest;
    if (texts.some((t) => utf8Length(t) > maxBytes)) return undefined;
    texts.forEach((text, i) => parts.push({ text, concat: i > 0 }));
  }
  // the server counts the message as it will be reassembled: parts joined, lines separated by \n
  const total = parts.reduce((n, p, i) => n + utf8Length(p.text) + (i > 0 && !p.concat ? 1 : 0), 0);
  if (limits.maxBytes !== undefined && total > limits.maxBytes) return undefined;
  if (limits.maxLines !== undefined && parts.length > limits.maxLines) return undefined;
  return parts;
}
