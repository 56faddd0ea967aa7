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
 * Formatting codes are not carried over: a chunk after the first starts unformatted. That keeps
 * the chunks pieces of the line, which {@link multilineParts} needs (a multiline client joins them
 * back exactly); lines sent one by one are cut with {@link splitFormattedForIrc}.
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
 * The formatting in effect at a point of a line: the toggles that are on, in {@link TOGGLE_CODES}
 * order, and the colours, each with the code that set it (`\x03` digits or `\x04` hex).
 */
interface CodesInEffect { toggles: string; fg?: Colour; bg?: Colour }
interface Colour { code: '\x03' | '\x04'; value: string }

const TOGGLE_CODES = '\x02\x1D\x1F\x1E\x11\x16';
/** The codes parseFormatting (formatting.ts) reads, with their parameters. */
const FORMATTING_CODE = /\x03(?:(\d{1,2})(?:,(\d{1,2}))?)?|\x04(?:([0-9a-fA-F]{6})(?:,([0-9a-fA-F]{6}))?)?|[\x02\x0F\x11\x16\x1D\x1E\x1F]/g;

/** The formatting in effect after `text`, read from `from` the way IRC clients read codes. */
function codesAfter(text: string, from: CodesInEffect): CodesInEffect {
  let { toggles, fg, bg } = from;
  for (const m of text.matchAll(FORMATTING_CODE)) {
    const c = m[0][0]!;
    if (c === '\x0F') { toggles = ''; fg = bg = undefined; continue; }
    if (c === '\x03' || c === '\x04') {
      const f = c === '\x03' ? m[1] : m[3];
      const b = c === '\x03' ? m[2] : m[4];
      if (f === undefined) fg = bg = undefined; // a bare colour code resets both
      else {
        fg = { code: c, value: f.padStart(2, '0') }; // two digits: a digit after it cannot join it
        if (b !== undefined) bg = { code: c, value: b.padStart(2, '0') };
      }
      continue;
    }
    const on = toggles.includes(c) ? toggles.replace(c, '') : toggles + c;
    toggles = [...TOGGLE_CODES].filter((t) => on.includes(t)).join('');
  }
  return { toggles, ...(fg && { fg }), ...(bg && { bg }) };
}

/** The codes that set up `state` from plain, written just before `nextText`. */
function codesFor(state: CodesInEffect, nextText: string): string {
  const { fg, bg } = state;
  let colour = '';
  if (fg && bg && fg.code === bg.code) colour = `${fg.code}${fg.value},${bg.value}`;
  else if (fg && bg) {
    // set the background with a stand-in foreground, then the real one in its own kind of code
    colour = `${bg.code}${bg.code === '\x03' ? '99' : '000000'},${bg.value}${fg.code}${fg.value}`;
  } else if (fg) colour = `${fg.code}${fg.value}`;
  // a foreground alone before ",5" would read it as a background: an empty bold pair between
  const guard = fg && !(bg && bg.code === fg.code) && nextText.startsWith(',') ? '\x02\x02' : '';
  return state.toggles + colour + guard;
}

/** The most {@link codesFor} and a closing `\x0F` can add to a chunk of `line`. */
function carryBytes(line: string): number {
  const toggles = [...TOGGLE_CODES].filter((t) => line.includes(t)).length;
  // \x04rrggbb,rrggbb then \x03nn (or \x0399,nn then \x04rrggbb) with a guard; \x03nn,nn with one
  const colour = line.includes('\x04') ? 17 + 2 : line.includes('\x03') ? 6 + 2 : 0;
  return toggles + colour === 0 ? 0 : toggles + colour + 1;
}

/**
 * {@link splitForIrc}, with each chunk readable on its own: one after the first starts with the
 * codes that bring back the formatting in effect where the line was cut (a spoiler stays black on
 * black, bold stays bold), and one before the last ends with `\x0F`, so that no formatting runs on
 * and a code further along (a `\x02` meant to end the bold) toggles from the state it expects.
 * Every chunk, codes included, is at most `maxBytes`; a line that fits is returned as it is.
 */
export function splitFormattedForIrc(line: string, maxBytes: number): string[] {
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  if (utf8Length(line) <= maxBytes) return line === '' ? [] : [line];
  const carry = carryBytes(line);
  // too little room to carry codes and still keep a colour code (14 bytes) whole: cut as is. Only
  // tests come near: IRC leaves hundreds of bytes for text
  if (carry === 0 || maxBytes - carry < 16) return splitForIrc(line, maxBytes);
  const chunks = splitForIrc(line, maxBytes - carry);
  let state: CodesInEffect = { toggles: '' };
  return chunks.map((chunk, i) => {
    const head = codesFor(state, chunk);
    state = codesAfter(chunk, state);
    const open = state.toggles !== '' || state.fg !== undefined;
    return head + chunk + (open && i < chunks.length - 1 ? '\x0F' : '');
  });
}

/**
 * Cut `text` to at most `maxBytes` bytes of UTF-8, between code points (never inside a surrogate
 * pair or a character's bytes). For single-line texts that cannot be split into several lines.
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (utf8Length(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const cp of text) {
    bytes += utf8Length(cp);
    if (bytes > maxBytes) break;
    end += cp.length;
  }
  return text.slice(0, end);
}

/**
 * At most `max` code points of `text`, cut between grapheme clusters (an emoji or a letter with its
 * accents stays whole); only a first cluster longer than `max` is cut between code points.
 */
export function truncateCodePoints(text: string, max: number): string {
  let out = '';
  let count = 0;
  for (const { segment } of (graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' })).segment(text)) {
    const n = [...segment].length;
    if (count + n > max) return out || [...segment].slice(0, max).join('');
    out += segment;
    count += n;
  }
  return out;
}

/**
 * Keep a message within `lineLimit` lines. When it has more, `overflow` is true and `send` holds
 * the first `lineLimit - 1` lines: the caller uploads the full text and sends one more line
 * pointing to it, so what reaches the channel is still at most `lineLimit` lines.
 *
 * With `maxBytes`, the lines counted are the IRC lines the message becomes, each line cut to
 * `maxBytes` by {@link splitFormattedForIrc}: a single paragraph of 30 KB is some 80 IRC lines,
 * not one. Within the limit `send` is still the lines given; over it, the first IRC lines.
 */
export function applyLineLimit(lines: readonly string[], lineLimit: number, maxBytes?: number): { send: string[]; overflow: boolean } {
  if (!(lineLimit >= 1) || (!Number.isInteger(lineLimit) && lineLimit !== Infinity)) {
    throw new RangeError(`lineLimit must be a positive integer, got ${lineLimit}`);
  }
  if (maxBytes !== undefined && lineLimit !== Infinity) {
    const irc: string[] = [];
    for (const line of lines) {
      irc.push(...splitFormattedForIrc(line, maxBytes));
      if (irc.length > lineLimit) return { send: irc.slice(0, lineLimit - 1), overflow: true };
    }
    return { send: [...lines], overflow: false };
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
