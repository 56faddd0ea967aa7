/**
 * Seeded property tests for the IRC converters (packages/irc/src/convert/). Matrix and IRC text is
 * hostile input: these generate nested, broken and malicious HTML, control characters, mIRC codes
 * (whole and truncated), emoji, combining marks and very long words, and check what the converters
 * promise in their doc comments. The runner and its seeds: ../fuzz.ts.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import {
  IRC_PALETTE,
  PLAIN_CODES,
  escapeHtml,
  ircColourToHex,
  ircToMatrix,
  joinMultiline,
  matrixToIrc,
  maxPayloadBytes,
  multilineParts,
  nearestIrcColour,
  parseFormatting,
  replyLine,
  sameStyle,
  shortQuote,
  splitForIrc,
  splitFormattedForIrc,
  stripFormatting,
  transitionCodes,
  utf8Length,
  type IrcCodeState,
  type IrcMention,
  type IrcStyle,
  type MatrixMessageContent,
  type MatrixToIrcOptions,
} from '../../../packages/irc/src/convert/index.js';
import { lineDecoder } from '../../../packages/irc/src/convert/encoding.js';
import { check, forAll, rng, show, shrinkFields, shrinkString, type Rng } from '../fuzz.js';

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties.

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Valid Unicode: survives a round trip through UTF-8 unchanged. */
const wellFormed = (s: string): boolean => s === Buffer.from(s, 'utf8').toString('utf8');
/** The formatting codes matrixToIrc writes itself; every other C0 control (and DEL) must be gone. */
const WRITTEN_CODES = /[\x02\x03\x0F\x11\x1D\x1E\x1F]/g;
const C0_OR_DEL = /[\x00-\x1F\x7F]/;
const ANY_FORMATTING_CODE = /[\x02\x03\x04\x0F\x11\x16\x1D\x1E\x1F]/;
/** Colour codes with their parameters: besides grapheme clusters, what the splitter keeps whole (split.ts COLOUR_CODE). */
const COLOUR_CODE = /\x03\d{1,2}(?:,\d{1,2})?|\x04[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?/g;
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** An IRC line must never carry CR, LF or NUL: they end or corrupt the command. */
function checkIrcLine(line: string, what: string): void {
  check(!/[\r\n\0]/.test(line), () => `${what} has CR, LF or NUL: ${show(line)}`);
}

/**
 * Where each chunk starts in `line`, if `line` is the chunks with nothing between them but runs
 * of spaces (the break spaces splitForIrc drops), and nothing after the last but spaces; else a
 * message saying what does not match.
 */
function chunkStarts(line: string, chunks: readonly string[]): number[] | string {
  const starts: number[] = [];
  let pos = 0;
  for (const [i, chunk] of chunks.entries()) {
    let at = pos;
    while (!line.startsWith(chunk, at) && i > 0 && line[at] === ' ') at++;
    if (!line.startsWith(chunk, at)) return `chunk ${i} ${show(chunk)} is not at ${pos} (after only spaces) in the line`;
    starts.push(at);
    pos = at + chunk.length;
  }
  if (!/^ *$/.test(line.slice(pos))) return `the line goes on after the last chunk: ${show(line.slice(pos))}`;
  return starts;
}

/** Everything splitForIrc promises about `chunks`, the pieces of `line` for `maxBytes`. */
function checkSplit(line: string, maxBytes: number, chunks: readonly string[]): void {
  check(line === '' ? chunks.length === 0 : chunks.length > 0, () => `${chunks.length} chunks for a line of ${line.length}`);
  for (const chunk of chunks) {
    check(chunk !== '', () => 'an empty chunk');
    check(utf8Length(chunk) <= maxBytes, () => `chunk of ${utf8Length(chunk)} bytes > ${maxBytes}: ${show(chunk)}`);
  }
  const starts = chunkStarts(line, chunks);
  check(typeof starts !== 'string', () => `text lost or changed by splitting: ${starts as string}\nchunks: ${show(chunks)}`);
  // A cut never falls inside a surrogate pair (a code point is never cut)...
  for (const [i, at] of starts.entries()) {
    const end = at + chunks[i]!.length;
    for (const cut of [at, end]) {
      check(!/[\uD800-\uDBFF]/.test(line[cut - 1] ?? '') || !/[\uDC00-\uDFFF]/.test(line[cut] ?? ''),
        () => `cut at ${cut} is inside a surrogate pair; chunks: ${show(chunks)}`);
    }
  }
  // ...and the pieces the splitter promises to keep whole, colour codes (else their digits turn
  // into text) and grapheme clusters, are only cut when one alone is longer than maxBytes (the
  // splitter segments the text between colour codes, so clusters are taken from those parts).
  const pieces: [number, number][] = [];
  let from = 0;
  for (const m of [...line.matchAll(COLOUR_CODE), { index: line.length, 0: '' }]) {
    for (const g of graphemes.segment(line.slice(from, m.index))) pieces.push([from + g.index, from + g.index + g.segment.length]);
    if (m[0] !== '') pieces.push([m.index, m.index + m[0].length]);
    from = m.index + m[0].length;
  }
  const pieceAround = (cut: number): [number, number] | undefined => {
    let lo = 0;
    let hi = pieces.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [s, e] = pieces[mid]!;
      if (cut <= s) hi = mid - 1;
      else if (cut >= e) lo = mid + 1;
      else return pieces[mid];
    }
    return undefined;
  };
  for (const [i, at] of starts.entries()) {
    for (const cut of [at, at + chunks[i]!.length]) {
      const piece = pieceAround(cut);
      check(!piece || utf8Length(line.slice(piece[0], piece[1])) > maxBytes,
        () => `cut at ${cut} is inside ${show(line.slice(piece![0], piece![1]))}, which fits ${maxBytes} bytes; chunks: ${show(chunks)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Generators of hostile content.

const CONTROL_ATOMS = ['\r', '\n', '\r\n', '\0', '\x01', '\x07', '\x08', '\t', '\x0B', '\x0C', '\x1B', '\x7F', '\x85', '\x9B', '\u2028', '\u2029', '\u200B', '\u202E', '\uFEFF', '\uFFFD'];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '1️⃣', '🏳️‍🌈', '❤️', '🧑🏿‍🚀'];
const WORDS = ['hello', 'world', 'alice', 'bob', 'al', 'x', '12', ',5', ',', 'café', 'naïve', '日本語', 'Привет', 'مرحبا', 'שלום', 'e\u0301', '[m]', 'nick_', 'a|b', '{c}', '^^', 'PRIVMSG', 'QUIT :bye', ':x', '#chan', '@user:example.org'];
const URLS = ['https://example.org/a?b=1&c=<d>', 'http://x.y/"q"', 'www.example.com/path', 'mailto:a@b.c', 'a@b.c', 'javascript:alert(1)', 'https://matrix.to/#/@alice:example.org', 'ftp://alice@host/'];
const HTMLISH = ['<', '>', '&', '"', "'", '&amp;', '&lt;b&gt;', '<script>alert(1)</script>', '<b>', '</i>', '<a href="javascript:x">', '<img src=x onerror=alert(1)>'];

function mircCode(r: Rng): string {
  switch (r.int(0, 3)) {
    case 0:
      return r.pick(['\x02', '\x1D', '\x1F', '\x1E', '\x11', '\x16', '\x0F']);
    case 1: { // \x03 with 0–3 digits, maybe a comma and 0–3 more: whole, truncated or overlong
      const digits = (): string => Array.from({ length: r.int(0, 3) }, () => String(r.int(0, 9))).join('');
      return `\x03${digits()}${r.chance(0.4) ? `,${digits()}` : ''}`;
    }
    case 2: { // \x04 with 0–7 hex digits, maybe a comma and more
      const hex = (): string => Array.from({ length: r.pick([0, 3, 5, 6, 6, 6, 7]) }, () => r.pick([...'0123456789abcdefABCDEFxg'])).join('');
      return `\x04${hex()}${r.chance(0.4) ? `,${hex()}` : ''}`;
    }
    default:
      return String.fromCharCode(r.int(0, 0x1f));
  }
}

function astral(r: Rng): string {
  return String.fromCodePoint(r.int(0x10000, 0x10ffff));
}

/** One piece of hostile text. `lone`: may include unpaired surrogates; `longest`: most repeats in a long word. */
function atom(r: Rng, lone: boolean, longest: number): string {
  switch (r.int(0, 13)) {
    case 0: return r.pick(WORDS);
    case 1: return ' '.repeat(r.int(1, 4));
    case 2: return r.pick(CONTROL_ATOMS);
    case 3: return mircCode(r);
    case 4: return r.pick(EMOJI);
    case 5: return astral(r);
    case 6: return r.pick([...'aeo']) + Array.from({ length: r.int(1, r.chance(0.1) ? 300 : 8) }, () => String.fromCharCode(r.int(0x300, 0x36f))).join('');
    case 7: return r.pick(URLS);
    case 8: return r.pick(HTMLISH);
    case 9: { // a very long word, maybe made of multi-byte characters
      const unit = r.pick(['x', 'é', '日', '😀', 'e\u0301', '\x0304', '👨‍👩‍👧‍👦']);
      return (r.chance(0.5) ? 'a' : '') + unit.repeat(r.int(Math.min(50, longest), longest));
    }
    case 10: return lone ? r.pick(['\uD800', '\uDFFF', '\uDBFF\uDBFF', 'a\uDC00']) : r.pick(EMOJI);
    case 11: return String.fromCharCode(r.int(0x20, 0x7e));
    case 12: return String.fromCharCode(r.int(0x80, 0x2fff));
    default: return r.pick(WORDS) + ' ';
  }
}

function hostileText(r: Rng, opts: { lone?: boolean; atoms?: number; longest?: number } = {}): string {
  const n = r.int(0, opts.atoms ?? 30);
  let s = '';
  for (let i = 0; i < n; i++) s += atom(r, opts.lone ?? false, opts.longest ?? 700);
  return s;
}

const KNOWN_TAGS = ['b', 'strong', 'i', 'em', 'u', 'ins', 'del', 's', 'strike', 'code', 'kbd', 'tt', 'p', 'div', 'h1', 'h3', 'pre', 'blockquote', 'ul', 'ol', 'li', 'table', 'tr', 'td', 'th', 'a', 'font', 'span', 'mx-reply', 'script', 'style', 'details', 'summary'];
const UNKNOWN_TAGS = ['blink', 'x-custom', 'constructor', '__proto__', 'toString', 'svg', 'math', 'iframe', 'marquee', 'B', 'SCRIPT', 'a:b', 'hasOwnProperty'];
const VOID_TAGS = ['br', 'br/', 'hr', 'img', 'img/', 'wbr', 'input'];
const PILL_IDS = ['@alice:example.org', '%40bob%3Aexample.org', '@evil:example.org', '@nobody:example.org', '@%ZZ:x', '@%F0%9F%98%80:x', '%23room:example.org', '!abc:example.org?via=x', '#a"b:x', '@a b:x', '@', '%40', '@\r\nQUIT:x', '!r:x/$e?via=x', '@😀\u0301:x'];
const HREFS = [
  'https://example.org/', 'javascript:alert("x")', 'JaVaScRiPt:alert(1)', 'data:text/html,<script>alert(1)</script>', '', ' ', 'https://x.y/\r\nQUIT',
  'https://x.y/&#13;&#10;QUIT', 'mailto:a@b.c', 'matrix:u/bob:example.org?action=chat', 'matrix:r/room:example.org', 'matrix:roomid/abc:x', 'matrix:u/%ZZ',
];
const ATTR_VALUES = ['#ff0000', '#FFF', '#00ff0', 'red', '', '#12345g', ' #000000 ', '"><script>', "'", '9', '-3', '1e9', '99999999999999999999', 'x', '&quot;&#10;', 'javascript:alert(1)'];

function attribute(r: Rng): string {
  const name = r.pick(['href', 'data-mx-color', 'data-mx-bg-color', 'color', 'data-mx-spoiler', 'start', 'alt', 'title', 'src', 'class', 'onclick', 'style', '__proto__', 'constructor']);
  let value: string;
  if (name === 'href') {
    value = r.chance(0.5) ? `https://matrix.to/#/${r.pick(PILL_IDS)}` : r.pick(HREFS);
  } else {
    value = r.chance(0.7) ? r.pick(ATTR_VALUES) : hostileText(r, { atoms: 3 });
  }
  switch (r.int(0, 4)) {
    case 0: return ` ${name}='${value}'`;
    case 1: return ` ${name}=${value.replace(/[\s>]/g, '')}`;
    case 2: return ` ${name}`;
    default: return ` ${name}="${value}"`;
  }
}

const ENTITIES = ['&amp;', '&lt;', '&gt;', '&quot;', '&#39;', '&nbsp;', '&#x1F600;', '&#128512;', '&#0;', '&#13;&#10;', '&#xD800;', '&#xDC00;', '&#99999999;', '&#x;', '&bogus;', '&amp', '&', '&#x85;', '&#8232;', '&#x7F;', '&#27;'];

/** Random HTML: nested, unclosed, misnested and stray tags, attributes, entities, pills, comments. */
function hostileHtml(r: Rng, lone = false, longest = 300): string {
  const stack: string[] = [];
  let html = '';
  const n = r.int(0, 40);
  for (let i = 0; i < n; i++) {
    const roll = r.int(0, 15);
    if (roll <= 3) {
      html += hostileText(r, { lone, atoms: 5, longest });
    } else if (roll === 4) {
      html += r.pick(ENTITIES);
    } else if (roll <= 7) {
      const tag = r.chance(0.8) ? r.pick(KNOWN_TAGS) : r.pick(UNKNOWN_TAGS);
      let attrs = '';
      for (let k = r.int(0, 3); k > 0; k--) attrs += attribute(r);
      if (tag === 'a' && r.chance(0.6)) attrs = ` href="https://matrix.to/#/${r.pick(PILL_IDS)}"${attrs}`;
      html += `<${tag}${attrs}>`;
      stack.push(tag);
    } else if (roll === 8) {
      html += `<${r.pick(VOID_TAGS)}${r.chance(0.5) ? attribute(r) : ''}>`;
    } else if (roll <= 10 && stack.length > 0) {
      html += `</${stack.pop()}>`; // well nested
    } else if (roll === 11 && stack.length > 0) {
      html += `</${stack.splice(r.int(0, stack.length - 1), 1)[0]}>`; // misnested
    } else if (roll === 12) {
      html += `</${r.pick([...KNOWN_TAGS, ...UNKNOWN_TAGS])}>`; // stray
    } else if (roll === 13) {
      html += r.pick(['<!-- c -->', '<!-- unclosed', '<![CDATA[x<b>]]>', '<!doctype html>', '<?xml?>', '<', '</', '< b>', '<b', '<a href="']);
    } else if (roll === 14) {
      // a pill with long text: link text is collected up to a limit, and may be cut there
      const text = r.pick(['😀', 'a😀', 'é', 'x']).repeat(r.int(300, 1100));
      html += `<a href="https://matrix.to/#/${r.pick(PILL_IDS)}">${text}</a>`;
    } else {
      html += `<pre><code class="language-${r.pick(['js', '"x'])}">${hostileText(r, { lone, atoms: 8, longest })}</code></pre>`;
    }
  }
  if (r.chance(0.5)) while (stack.length > 0) html += `</${stack.pop()}>`;
  if (r.chance(0.1)) html += r.pick(['<b class="x', '<a href="https://x', '&#x1F6', '<!--']);
  return html;
}

const PILL_NICKS: Record<string, string> = { '@alice:example.org': 'alice', '@bob:example.org': 'bob', '@evil:example.org': 'evil\r\nQUIT :x\0', '@😀\u0301:x': '\x01ACTION\x01' };
const matrixOpts: MatrixToIrcOptions = {
  pillToNick: (userId) => PILL_NICKS[userId],
  roomPillToName: (room) => (room.startsWith('#room') ? '#irc\nroom' : undefined),
};

/** The payload room of a random but plausible `:nick!user@host PRIVMSG target :` line. */
function ircEnvelope(r: Rng): { prefix: string; command: string; target: string; max: number } {
  const word = (lo: number, hi: number): string => Array.from({ length: r.int(lo, hi) }, () => r.pick([...'abcxyz019-_[]']).toString()).join('');
  const prefix = `${word(1, 30)}!${word(1, 10)}@${word(1, 63)}`;
  const command = r.pick(['PRIVMSG', 'NOTICE']);
  const target = r.chance(0.7) ? `#${word(1, 50)}` : word(1, 30);
  return { prefix, command, target, max: maxPayloadBytes(prefix, command, target) };
}

// ---------------------------------------------------------------------------------------------
// Matrix → IRC

interface MatrixCase { body: string; html: string; useHtml: boolean; budget: number }

function matrixCase(r: Rng, lone: boolean): MatrixCase {
  // long words of up to 300 units: with 4-byte emoji, longer than any IRC line
  return { body: hostileText(r, { lone, longest: 300 }), html: hostileHtml(r, lone), useHtml: r.chance(0.8), budget: r.int(4, 120) };
}

const content = (c: MatrixCase): MatrixMessageContent =>
  c.useHtml ? { body: c.body, format: 'org.matrix.custom.html', formatted_body: c.html } : { body: c.body };

describe('fuzz: matrixToIrc', () => {
  it('never throws, and every line is safe after `PRIVMSG target :`', () => {
    forAll('matrixToIrc safe lines', 1_000, (r) => matrixCase(r, r.chance(0.3)), (c) => {
      const lines = matrixToIrc(content(c), matrixOpts);
      for (const line of lines) {
        checkIrcLine(line, 'line');
        check(!C0_OR_DEL.test(line.replace(WRITTEN_CODES, '')), () => `control character other than a formatting code in ${show(line)}`);
        // a code block's blank line is its codes alone (the monospace one among them)
        check(stripFormatting(line).trim() !== '' || (line.includes('\x11') && stripFormatting(line) === ''), () => `blank line ${show(line)} in ${show(lines)}`);
      }
    }, shrinkFields());
  });

  it('writes valid Unicode from valid Unicode: no surrogate pair is cut', () => {
    forAll('matrixToIrc well-formed', 1_000, (r) => matrixCase(r, false), (c) => {
      if (!wellFormed(c.body) || !wellFormed(c.html)) return; // only what a shrunk input may break
      for (const line of matrixToIrc(content(c), matrixOpts)) {
        check(wellFormed(line), () => `lone surrogate at ${line.search(LONE_SURROGATE)} of ${show(line)}`);
      }
    }, shrinkFields());
  });

  it('falls back to the body, cleaned, when there is no HTML', () => {
    forAll('matrixToIrc plain body', 1_000, (r) => ({ body: hostileText(r, { lone: true }) }), ({ body }) => {
      const lines = matrixToIrc({ body }, matrixOpts);
      // Lines are the body's lines with controls removed and tabs made spaces; only blanks go.
      const expected = body.split(/\r\n|[\n\r\u0085\u2028\u2029]/).map((l) => l.replace(/\t/g, ' ').replace(/[\x00-\x1F\x7F]/g, '')).filter((l) => l.trim() !== '');
      check(JSON.stringify(lines) === JSON.stringify(expected), () => `got ${show(lines)}\nexpected ${show(expected)}`);
    }, shrinkFields());
  });

  it('split for the wire, every line fits 512 bytes with the prefix and carries no CR, LF or NUL', () => {
    let cut = 0;
    forAll('matrixToIrc → splitForIrc on the wire', 300, (r) => ({ ...matrixCase(r, r.chance(0.3)), seed: r.int(0, 2 ** 31) }), (c) => {
      const env = ircEnvelope(rng(c.seed));
      for (const line of matrixToIrc(content(c), matrixOpts)) {
        const chunks = splitForIrc(line, env.max);
        if (chunks.length > 1) cut++;
        checkSplit(line, env.max, chunks);
        for (const chunk of chunks) {
          const wire = `:${env.prefix} ${env.command} ${env.target} :${chunk}\r\n`;
          check(Buffer.byteLength(wire, 'utf8') <= 512, () => `${Buffer.byteLength(wire, 'utf8')}-byte wire line: ${show(wire)}`);
          check(wire.indexOf('\r\n') === wire.length - 2 && !wire.includes('\0'), () => `more than one IRC line in ${show(wire)}`);
          checkIrcLine(chunk, 'chunk');
        }
      }
    }, shrinkFields());
    expect(cut, 'lines long enough to be cut').toBeGreaterThan(100);
  });

  it('split with formatting carried, every chunk fits and every character keeps its style', () => {
    let carried = 0;
    // each visible character with the style a client shows it in; spaces left out (break spaces are dropped)
    const styled = (texts: readonly string[]): string[] =>
      texts.flatMap((t) => parseFormatting(t).flatMap(({ text, style }) => [...text.replace(/ /g, '')].map((ch) => `${ch} ${JSON.stringify(style)}`)));
    forAll('matrixToIrc → splitFormattedForIrc', 300, (r) => ({ ...matrixCase(r, r.chance(0.3)), seed: r.int(0, 2 ** 31) }), (c) => {
      const env = ircEnvelope(rng(c.seed));
      // matrixToIrc's lines, and raw IRC text with any codes (a reply or media line is not converted)
      for (const line of [...matrixToIrc(content(c), matrixOpts), c.body.replace(/[\r\n\0]/g, '')]) {
        const chunks = splitFormattedForIrc(line, env.max);
        if (chunks.length > 1 && /[\x02-\x04\x11\x16\x1D-\x1F]/.test(line)) carried++;
        for (const chunk of chunks) {
          check(utf8Length(chunk) <= env.max, () => `chunk of ${utf8Length(chunk)} bytes > ${env.max}: ${show(chunk)}`);
          checkIrcLine(chunk, 'chunk');
        }
        const got = styled(chunks), want = styled([line]);
        const at = want.findIndex((w, k) => got[k] !== w);
        check(got.length === want.length && at < 0, () => `character ${at}: ${show(got[at])}, expected ${show(want[at])}\nline ${show(line)}\nchunks ${show(chunks)}`);
      }
    }, shrinkFields());
    expect(carried, 'formatted lines long enough to be cut').toBeGreaterThan(50);
  });

  it('split into a multiline batch, each part fits and the parts join back to the lines', () => {
    let batches = 0;
    forAll('matrixToIrc → multilineParts', 400, (r) => matrixCase(r, false), (c) => {
      const lines = matrixToIrc(content(c), matrixOpts);
      const limits = { maxBytes: c.budget * 40, maxLines: c.budget };
      // multilineParts cuts for one byte less (room for the space it puts back), and splitForIrc
      // throws a RangeError when that is less than the widest character: 4 bytes of UTF-8.
      const max = Math.max(c.budget, 5);
      const parts = multilineParts(lines, max, limits);
      if (parts === undefined) return; // documented: the caller then sends plain lines (checked above)
      if (parts.some((p) => p.concat)) batches++;
      for (const part of parts) {
        checkIrcLine(part.text, 'part');
        check(utf8Length(part.text) <= max, () => `part of ${utf8Length(part.text)} bytes: ${show(part.text)}`);
      }
      check(parts.length <= limits.maxLines, () => `${parts.length} parts > max-lines ${limits.maxLines}`);
      const joined = joinMultiline(parts);
      check(utf8Length(joined) <= limits.maxBytes, () => `${utf8Length(joined)} bytes > max-bytes ${limits.maxBytes}`);
      check(joined === lines.join('\n'), () => `joined ${show(joined)}\nlines ${show(lines)}\nparts ${show(parts)}`);
    }, shrinkFields());
    expect(batches, 'batches with cut lines').toBeGreaterThan(80);
  });
});

// Inline formatting only, properly nested, so the style every character should have is known.
interface InlineCase { html: string; expected: { char: string; style: IrcStyle }[] }

const INLINE_TAGS: [string, Partial<IrcStyle>][] = [
  ['b', { bold: true }], ['strong', { bold: true }], ['i', { italic: true }], ['em', { italic: true }], ['u', { underline: true }],
  ['del', { strikethrough: true }], ['s', { strikethrough: true }], ['code', { monospace: true }], ['tt', { monospace: true }], ['blink', {}], ['span', {}],
];
const CSS_COLOURS = ['#ff0000', '#00ff00', '#0000fc', '#000000', '#ffffff', '#123456', '#abc', '#7f7f7f', 'red'];
const INLINE_TEXT = ['a', '1', '12', '99', ',', ',5', ',05', '😀', 'é', ' ', 'x y', '0', '#', '\x0304'];

function inlineCase(r: Rng): InlineCase {
  let html = '';
  const expected: InlineCase['expected'] = [];
  const walk = (depth: number, style: IrcStyle): void => {
    for (let n = r.int(1, 4); n > 0; n--) {
      if (depth >= 5 || r.chance(0.45)) {
        const text = r.pick(INLINE_TEXT);
        html += text;
        // Raw controls in HTML text are removed, and spaces are collapsed, so neither is compared.
        for (const char of text.replace(/[\x00-\x1F ]/g, '')) expected.push({ char, style });
        continue;
      }
      const roll = r.int(0, INLINE_TAGS.length + 2);
      if (roll < INLINE_TAGS.length) {
        const [tag, adds] = INLINE_TAGS[roll]!;
        html += `<${tag}>`;
        walk(depth + 1, { ...style, ...adds });
        html += `</${tag}>`;
      } else if (roll === INLINE_TAGS.length) {
        html += '<span data-mx-spoiler>';
        walk(depth + 1, { ...style, fg: IRC_PALETTE[1], bg: IRC_PALETTE[1] });
        html += '</span>';
      } else {
        const fg = r.chance(0.7) ? r.pick(CSS_COLOURS) : undefined;
        const bg = r.chance(0.4) ? r.pick(CSS_COLOURS) : undefined;
        html += `<font${fg ? ` data-mx-color="${fg}"` : ''}${bg ? ` data-mx-bg-color="${bg}"` : ''}>`;
        const hex = (css: string | undefined): string | undefined => {
          const n = css === undefined ? undefined : nearestIrcColour(css);
          return n === undefined ? undefined : IRC_PALETTE[n];
        };
        const fgHex = hex(fg);
        const bgHex = hex(bg);
        walk(depth + 1, { ...style, ...(fgHex && { fg: fgHex }), ...(bgHex && { bg: bgHex }) });
        html += '</font>';
      }
    }
  };
  walk(0, { bold: false, italic: false, underline: false, strikethrough: false, monospace: false, reverse: false });
  return { html, expected };
}

describe('fuzz: matrixToIrc formatting', () => {
  it('each character keeps the style of every tag around it, whatever the others do', () => {
    forAll('matrixToIrc inline styles', 1_500, inlineCase, ({ html, expected }) => {
      const lines = matrixToIrc({ body: '', format: 'org.matrix.custom.html', formatted_body: html });
      check(lines.length <= 1, () => `inline HTML gave ${lines.length} lines: ${show(lines)}`);
      const actual = parseFormatting(lines[0] ?? '').flatMap((span) => [...span.text.replace(/ /g, '')].map((char) => ({ char, style: span.style })));
      check(actual.length === expected.length, () => `text ${show(actual.map((a) => a.char).join(''))}, expected ${show(expected.map((e) => e.char).join(''))}\nline ${show(lines[0])}`);
      for (const [k, e] of expected.entries()) {
        const a = actual[k]!;
        check(a.char === e.char && sameStyle(a.style, e.style),
          () => `character ${k} ${show(a.char)} has style ${show(a.style)}, expected ${show(e.char)} ${show(e.style)}\nline ${show(lines[0])}`);
      }
    }); // no shrinking: the expected styles come from the generated tree
  });
});

describe('fuzz: formatting codes', () => {
  const codeState = (r: Rng): IrcCodeState => ({
    bold: r.chance(0.3), italic: r.chance(0.3), underline: r.chance(0.3), strikethrough: r.chance(0.3), monospace: r.chance(0.3),
    ...(r.chance(0.5) && { fg: r.int(0, 15) }),
    ...(r.chance(0.3) && { bg: r.int(0, 15) }),
  });
  const asStyle = (s: IrcCodeState): IrcStyle => ({
    bold: s.bold, italic: s.italic, underline: s.underline, strikethrough: s.strikethrough, monospace: s.monospace, reverse: false,
    ...(s.fg !== undefined && { fg: ircColourToHex(s.fg)! }),
    ...(s.bg !== undefined && { bg: ircColourToHex(s.bg)! }),
  });

  it('transitionCodes turns one state into the other, whatever text follows', () => {
    forAll('transitionCodes', 3_000, (r) => ({
      from: codeState(r), to: codeState(r), next: r.pick(['1', '12', ',', ',5', ',05', '5,5', 'a', '😀', '#', ' 1']) + r.pick(['', 'x', '3']),
    }), ({ from, to, next }) => {
      const line = `${transitionCodes(PLAIN_CODES, from, 'x')}x${transitionCodes(from, to, next)}${next}`;
      const spans = parseFormatting(line);
      check(spans.map((s) => s.text).join('') === `x${next}`, () => `text read back as ${show(spans.map((s) => s.text).join(''))} from ${show(line)}`);
      const last = spans[spans.length - 1]!;
      check(last.text.endsWith(next) && sameStyle(last.style, asStyle(to)),
        () => `the text after the codes is read with style ${show(last.style)}, wanted ${show(asStyle(to))}: ${show(line)}`);
      const first = spans[0]!;
      check(first.text.startsWith('x') && sameStyle(first.style, asStyle(from)), () => `first state read as ${show(first.style)}: ${show(line)}`);
    });
  });

  it('parseFormatting and stripFormatting agree, and leave no code behind', () => {
    forAll('parseFormatting', 2_000, (r) => ({ text: hostileText(r, { lone: true, longest: 100 }) }), ({ text }) => {
      const spans = parseFormatting(text);
      const stripped = stripFormatting(text);
      check(spans.map((s) => s.text).join('') === stripped, () => `spans ${show(spans)} do not join to ${show(stripped)}`);
      check(!ANY_FORMATTING_CODE.test(stripped), () => `formatting code left in ${show(stripped)}`);
      for (const [k, s] of spans.entries()) {
        check(s.text !== '', () => `empty span ${k}`);
        check(k === 0 || !sameStyle(spans[k - 1]!.style, s.style), () => `spans ${k - 1} and ${k} have the same style`);
        for (const c of [s.style.fg, s.style.bg]) check(c === undefined || /^#[0-9a-f]{6}$/.test(c), () => `colour ${show(c)}`);
      }
    }, shrinkFields());
  });

  it('nearestIrcColour never throws and answers a palette index or undefined', () => {
    forAll('nearestIrcColour', 2_000, (r) => ({ css: r.chance(0.5) ? `#${r.int(0, 0xffffff).toString(16).padStart(r.pick([3, 6]), '0')}` : hostileText(r, { atoms: 2 }), size: r.int(-5, 120) }), ({ css, size }) => {
      const n = nearestIrcColour(css, size);
      const room = Math.min(Math.max(1, size), IRC_PALETTE.length);
      check(n === undefined || (Number.isInteger(n) && n >= 0 && n < room), () => `got ${n} for palette size ${size}`);
      if (/^#[0-9a-f]{6}$/i.test(css)) check(n !== undefined, () => 'a hex colour not matched');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Splitting on its own: small budgets make every edge common.

describe('fuzz: splitForIrc', () => {
  it('keeps every chunk within the budget without losing, cutting or reordering text', () => {
    forAll('splitForIrc', 1_000, (r) => ({ line: hostileText(r, { lone: r.chance(0.3), longest: 60 }).replace(/[\r\n]/g, ''), max: r.pick([4, 5, 7, 8, 13, 16, 25, 40, 100]) }), ({ line, max }) => {
      checkSplit(line, max, splitForIrc(line, max));
    }, shrinkFields());
  });

  it('leaves well-formed text well-formed', () => {
    forAll('splitForIrc well-formed', 1_000, (r) => ({ line: hostileText(r, { longest: 60 }), max: r.int(4, 60) }), ({ line, max }) => {
      for (const chunk of splitForIrc(line, max)) check(wellFormed(chunk), () => `lone surrogate in ${show(chunk)}`);
    }, shrinkFields());
  });

  it('multilineParts: parts fit and join back exactly, or there is no batch', () => {
    forAll('multilineParts', 1_200, (r) => ({
      text: Array.from({ length: r.int(1, 4) }, () => hostileText(r, { atoms: 15, longest: 60 }).replace(/[\r\n]/g, '')).join('\n'),
      max: r.pick([5, 6, 10, 17, 33, 80]), // from 5: see 'matrixToIrc → multilineParts'
    }), ({ text, max }) => {
      const lines = text.split('\n');
      const parts = multilineParts(lines, max, {});
      if (parts === undefined) return;
      for (const p of parts) check(utf8Length(p.text) <= max, () => `part of ${utf8Length(p.text)} bytes > ${max}: ${show(p.text)}`);
      const joined = joinMultiline(parts);
      check(joined === text, () => `joined ${show(joined)}\nparts ${show(parts)}`);
    }, shrinkFields());
  });
});

// ---------------------------------------------------------------------------------------------
// IRC → Matrix

/** Everything ircToMatrix may write: these elements, these attributes, escaped text. */
const OPEN_TAG = /^<(b|i|u|del|code|br)>$|^<font( data-mx-color="#[0-9a-f]{6}")?( data-mx-bg-color="#[0-9a-f]{6}")?>$|^<a href="https:\/\/matrix\.to\/#\/[^"<>\s]+">$/;
const CLOSE_TAG = /^<\/(b|i|u|del|code|font|a)>$/;
const ESCAPED_TEXT = /^(?:[^&<>"']|&(?:amp|lt|gt|quot|#39);)*$/;
const UNESCAPE: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };

/** Check `html` uses only the converter's vocabulary, properly nested; returns its text. */
function checkVocabulary(html: string): string {
  const open: string[] = [];
  let text = '';
  for (const m of html.matchAll(/<[^>]*>|[^<]+|</g)) {
    const token = m[0];
    if (!token.startsWith('<')) {
      check(ESCAPED_TEXT.test(token), () => `unescaped text ${show(token)} at ${m.index}`);
      text += token.replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => UNESCAPE[e]!);
      continue;
    }
    const o = OPEN_TAG.exec(token);
    if (o) {
      if (token === '<br>') { text += '\n'; continue; }
      check(token !== '<font>', () => 'a <font> without colours');
      const name = /^<([a-z]+)/.exec(token)![1]!;
      check(name !== 'a' || !open.includes('a'), () => 'a link inside a link');
      open.push(name);
      continue;
    }
    const c = CLOSE_TAG.exec(token);
    check(c !== null, () => `tag or attribute not in the vocabulary: ${show(token)} at ${m.index}`);
    check(open.pop() === c[1], () => `${token} at ${m.index} closes the wrong element`);
  }
  check(open.length === 0, () => `left open: ${open.join(', ')}`);
  return text;
}

interface IrcCase { text: string; mode: 'none' | 'same' | 'hostile' }

/** The longest text one IRC line can carry (512 bytes less CRLF and the shortest `PRIVMSG x :`). */
const IRC_TEXT_BYTES = 512 - 2 - 'PRIVMSG x :'.length;

/** The first code points of `text` that fit `bytes` of UTF-8. */
function fitBytes(text: string, bytes: number): string {
  let out = '';
  let used = 0;
  for (const cp of text) {
    used += utf8Length(cp);
    if (used > bytes) break;
    out += cp;
  }
  return out;
}

function ircCase(r: Rng): IrcCase {
  // What arrives is one IRC line, or a draft/multiline batch of a few joined with line breaks.
  const lines = Array.from({ length: r.chance(0.2) ? r.int(2, 4) : 1 }, () =>
    fitBytes(hostileText(r, { lone: r.chance(0.1), longest: 150 }).replace(/[\r\n]/g, ''), IRC_TEXT_BYTES));
  return { text: lines.join('\n'), mode: r.pick(['none', 'same', 'hostile'] as const) };
}

const HOSTILE_NAMES = ['<img src=x onerror=alert(1)>', 'A"B', "it's", '&amp;', '\u202Eevil', '</a><script>', ''];

function lookupFor(mode: IrcCase['mode'], calls: string[]): ((word: string) => IrcMention | undefined) | undefined {
  if (mode === 'none') return undefined;
  return (word) => {
    calls.push(word);
    const h = [...word].reduce((n, c) => (n * 31 + c.codePointAt(0)!) >>> 0, 7);
    if (h % 3 === 0) return undefined;
    const userId = ['@x:y', '@a"b<c>:x?#y', `@${word}:example.org`, '@\uD800:x', '@sp ace:x', "@'&:x"][h % 6]!;
    return { userId, displayName: mode === 'same' ? word : HOSTILE_NAMES[h % HOSTILE_NAMES.length]! };
  };
}

const NICK_WORD = /^[\p{L}\p{N}\p{M}[\]\\`_^{|}-]+$/u;

describe('fuzz: ircToMatrix', () => {
  it('never injects HTML: only its own tags, escaped text, balanced', () => {
    let links = 0;
    forAll('ircToMatrix vocabulary', 1_000, ircCase, ({ text, mode }) => {
      const calls: string[] = [];
      const lookup = lookupFor(mode, calls);
      const out = ircToMatrix(text, lookup ? { mentions: lookup } : {});
      const plain = stripFormatting(text).replace(/[\x00-\x08\x0B-\x1F\x7F]/g, '');
      check(out.body === plain, () => `body ${show(out.body)}, expected the text without codes ${show(plain)}`);
      check(!/[\x00-\x08\x0B-\x1F\x7F]/.test(out.body), () => `control code in body ${show(out.body)}`);
      check(!wellFormed(text) || wellFormed(out.body), () => `body not well-formed: ${show(out.body)}`);
      check(new Set(calls).size === calls.length, () => `mentions looked up more than once: ${show(calls)}`);
      for (const w of calls) check(NICK_WORD.test(w), () => `looked up ${show(w)}, not a nick`);
      if (out.formattedBody === undefined) return;
      check(wellFormed(text) ? wellFormed(out.formattedBody) : true, () => `formatted body not well-formed: ${show(out.formattedBody)}`);
      const shown = checkVocabulary(out.formattedBody);
      if (out.formattedBody.includes('<a ')) links++;
      // With no lookup, or names that are the words themselves, the HTML shows exactly the body.
      if (mode !== 'hostile') check(shown === out.body, () => `HTML shows ${show(shown)}, body is ${show(out.body)}\nhtml ${show(out.formattedBody)}`);
    }, shrinkFields<IrcCase>('text'));
    expect(links, 'messages with mentions').toBeGreaterThan(200);
  });

  it('plain text with no codes and no mentions stays a plain event', () => {
    forAll('ircToMatrix plain', 1_000, (r) => ({ text: hostileText(r, { longest: 150 }).replace(/[\x00-\x1F\x7F]/g, '') }), ({ text }) => {
      const out = ircToMatrix(text);
      check(out.formattedBody === undefined && out.body === text, () => `got ${show(out)}`);
    }, shrinkFields());
  });

  it('escapeHtml leaves nothing that can open a tag, attribute or entity', () => {
    forAll('escapeHtml', 1_000, (r) => ({ text: hostileText(r, { lone: true }) }), ({ text }) => {
      const escaped = escapeHtml(text);
      check(ESCAPED_TEXT.test(escaped), () => `unescaped: ${show(escaped)}`);
      check(escaped.replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => UNESCAPE[e]!) === text, () => 'does not unescape to the input');
    }, shrinkFields());
  });
});

// ---------------------------------------------------------------------------------------------
// Replies and legacy encodings

describe('fuzz: replies', () => {
  it('shortQuote: one line, at most max code points, no half surrogate pair', () => {
    // max from 2: at 1 there is no room for a character and the `…` (the config's minimum is 8)
    forAll('shortQuote', 2_000, (r) => ({ body: hostileText(r, { longest: 100 }), max: r.int(2, 200) }), ({ body, max }) => {
      const q = shortQuote(body, max);
      check(!/[\r\n\0]/.test(q), () => `line break or NUL in ${show(q)}`);
      check([...q].length <= max, () => `${[...q].length} code points > ${max}: ${show(q)}`);
      check(wellFormed(q), () => `lone surrogate in ${show(q)}`);
      check(q === q.trim(), () => `untrimmed ${show(q)}`);
    }, shrinkFields());
  });

  it('replyLine with a hostile quote is still one IRC line', () => {
    forAll('replyLine', 1_000, (r) => ({ quote: hostileText(r, { lone: true }), text: 'yes', max: r.int(8, 200) }), ({ quote, text, max }) => {
      checkIrcLine(replyLine({ nick: 'bob', text, quote, quoteLength: max }), 'reply line');
    }, shrinkFields());
  });
});

describe('fuzz: lineDecoder', () => {
  it('reads any bytes: UTF-8 as UTF-8, anything else with the fallback, never a lone surrogate', () => {
    const cp1252 = lineDecoder('windows-1252');
    const plain = lineDecoder(undefined);
    forAll('lineDecoder', 1_000, (r) => {
      const parts = Array.from({ length: r.int(0, 12) }, () => r.chance(0.6)
        ? Buffer.from(hostileText(r, { atoms: 3 }), 'utf8')
        : Buffer.from(Array.from({ length: r.int(1, 4) }, () => r.int(0, 255))));
      return { hex: Buffer.concat(parts).toString('hex') };
    }, ({ hex }) => {
      const buf = Buffer.from(hex, 'hex');
      const a = cp1252(buf, 0, buf.length);
      const b = plain(buf, 0, buf.length);
      check(wellFormed(a) && wellFormed(b), () => 'not well-formed');
      check(b === buf.toString('utf8'), () => 'without a fallback, not UTF-8');
      if (isUtf8(buf)) check(a === b, () => `valid UTF-8 not read as UTF-8: ${show(a)}`);
      else {
        // windows-1252 is one character a byte; only its five undefined bytes stay C1 controls
        check([...a].length === buf.length && !a.includes('\uFFFD'), () => `legacy line read as ${show(a)}`);
        check(!/[\x80\x82-\x8C\x8E\x91-\x9C\x9E\x9F]/.test(a), () => `C1 control in ${show(a)}`);
      }
    }, (c) => [...shrinkString(c.hex)].filter((h) => h.length % 2 === 0).map((hex) => ({ hex })));
  });
});

it('fuzz: the property runner reports the seed and the shrunk input', () => {
  expect(() => forAll('self-test', 50, (r) => ({ s: `${'a'.repeat(r.int(5, 20))}\r${'b'.repeat(5)}` }), ({ s }) => checkIrcLine(s, 'line'), shrinkFields()))
    .toThrow(/case seed \d+[^\n]*\ninput \(shrunk\): \{"s":"\\r"\}\noriginal input: \{"s":"a{5,20}\\rbbbbb"\}\nline has CR, LF or NUL/);
});
