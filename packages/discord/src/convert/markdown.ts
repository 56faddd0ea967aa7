/**
 * Discord's markdown dialect, both ways. Pure.
 *
 * - {@link parseDiscordMarkdown} reads message content into a small tree, following the rules of
 *   Discord's client (simple-markdown with Discord's rules): `**bold**`, `*italic*` / `_italic_`,
 *   `__underline__`, `~~strike~~`, `||spoiler||`, `` `code` ``, fenced code blocks with a language,
 *   `> ` and `>>> ` quotes, `#`/`##`/`###` headings, `-# ` subtext, `-`/`*`/`1.` lists, masked links
 *   `[text](url)`, `<url>` and bare URLs, `\` escapes, and the mention tokens (`<@id>`, `<@!id>`,
 *   `<@&role>`, `<#channel>`, `<:name:id>`, `<a:name:id>`, `<t:unix:style>`, `@everyone`, `@here`).
 * - {@link escapeDiscordMarkdown} makes plain text show literally on Discord.
 *
 * Anything the parser does not recognise stays text, so no input is lost.
 */

export type MdNode =
  | { t: 'text'; v: string }
  | { t: 'br' }
  | { t: 'bold' | 'italic' | 'underline' | 'strike' | 'spoiler' | 'subtext'; c: MdNode[] }
  | { t: 'heading'; level: 1 | 2 | 3; c: MdNode[] }
  | { t: 'quote'; c: MdNode[] }
  | { t: 'list'; ordered: boolean; start: number; items: MdNode[][] }
  | { t: 'code'; v: string }
  | { t: 'codeblock'; lang?: string; v: string }
  | { t: 'link'; href: string; c: MdNode[] }
  | { t: 'user'; id: string }
  | { t: 'role'; id: string }
  | { t: 'channel'; id: string }
  | { t: 'emoji'; name: string; id: string; animated: boolean }
  | { t: 'timestamp'; unix: number; style?: string }
  | { t: 'everyone' | 'here' };

interface State {
  /** Inside a quote: quotes do not nest on Discord. */
  inQuote: boolean;
  /** Inside a list item, heading or subtext: no block rules. */
  inline: boolean;
  /** Inside a link's text: no links in links. */
  inLink: boolean;
  /** Whether the start of the text being parsed is the start of a line. */
  startsLine: boolean;
  /** Set by {@link markupSpans}: where the markup found goes, and where the text parsed lies in the whole. */
  rec?: Recorder;
}

/**
 * A piece of markup and where Discord reads it in a text (offsets into it): what splitting a long
 * message must close and reopen at a cut, or not cut at all. `from`–`to` is what is between its
 * markers (all of it for a quote or an atom).
 */
export type MdSpan = { start: number; end: number; from: number; to: number } & (
  /** Bold, italics, underline, strike, spoiler: `marker` opens and closes it. */
  | { kind: 'paired'; marker: string }
  /** Inline code; `marker` is its run of backticks. */
  | { kind: 'code'; marker: string }
  | { kind: 'codeblock'; lang: string }
  /** `> ` lines, or `>>> ` to the end. */
  | { kind: 'quote'; prefix: '> ' | '>>> ' }
  /** A link, URL, mention, emoji or timestamp: one piece, cut in two it is none. */
  | { kind: 'atom' }
);

interface Recorder {
  spans: MdSpan[];
  /** The offset in the whole text of offset `i` of the text being parsed. */
  at(i: number): number;
}

/**
 * Record a span of the text being parsed (`start`–`end`, `from`–`to` between its markers) where
 * it lies in the whole text.
 */
function record(st: State, start: number, end: number, from: number, to: number, what: SpanKind): void {
  const r = st.rec;
  if (!r) return;
  // (the end is mapped through the character before it: in a quote, the offset after a line's end is not the quote's)
  const g = (i: number): number => (i >= end ? r.at(end - 1) + 1 : r.at(i));
  r.spans.push({ start: g(start), end: g(end), from: g(from), to: g(to), ...what });
}
type SpanKind = MdSpan extends infer T ? T extends unknown ? Omit<T, 'start' | 'end' | 'from' | 'to'> : never : never;

/** `st` for parsing the text that starts at `offset` of the text being parsed (same for where it lies in the whole). */
function shift(st: State, offset: number): State {
  const r = st.rec;
  if (!r) return st;
  return { ...st, rec: { spans: r.spans, at: (i) => r.at(offset + i) } };
}

type Rule = (src: string, pos: number, st: State, out: MdNode[]) => number;

// Sticky (`y`) patterns match exactly at `lastIndex`; none may start with `^`, which would only match at 0.

const CODE_BLOCK = /```(?:([A-Za-z0-9_+\-.#]+)[ \t]*\n)?\n*([\s\S]*?)\n*```/y;
const QUOTE_REST = />>> ?([\s\S]*)/y;
const QUOTE_LINES = /> [^\n]*(?:\n> [^\n]*)*\n?/y;
const HEADING = /(#{1,3}) +([^\n]+)(?:\n|$)/y;
const SUBTEXT = /-# +([^\n]+)(?:\n|$)/y;
const LIST = /(?:[ \t]*(?:[-*]|\d{1,9}\.) +[^\n]+(?:\n|$))+/y;
const LIST_ITEM = /^[ \t]*(?:([-*])|(\d{1,9})\.) +([^\n]+)$/;
const ESCAPE = /\\([^0-9A-Za-z\s])/y;
const INLINE_CODE = /(`+)([\s\S]*?[^`])\1(?!`)/y;
const SPOILER = /\|\|([\s\S]+?)\|\|/y;
const BOLD = /\*\*([\s\S]+?)\*\*(?!\*)/y;
const UNDERLINE = /__([\s\S]+?)__(?!_)/y;
/** simple-markdown's: `**` pairs and escapes do not close it, nor a `*` after a space. */
const STAR_ITALIC = /\*(?=\S)((?:\*\*|\\[\s\S]|\s+(?:\\[\s\S]|[^\s*\\]|\*\*)|[^\s*\\])+?)\*(?!\*)/y;
const UNDERSCORE_ITALIC = /_((?:__|\\[\s\S]|[^\\_])+?)_(?![A-Za-z0-9_])/y;
const STRIKE = /~~([\s\S]+?)~~/y;
const MASKED_LINK = /\[((?:\\[\s\S]|[^\]\\\n])+)\]\(\s*<?(https?:\/\/[^\s)>]+)>?(?:\s+"[^"]*")?\s*\)/y;
const ANGLE_LINK = /<(https?:\/\/[^\s>]+)>/y;
const URL = /https?:\/\/[^\s<]+[^<.,:;"')\]\s]/y;
const USER = /<@!?(\d{1,20})>/y;
const ROLE = /<@&(\d{1,20})>/y;
const CHANNEL = /<#(\d{1,20})>/y;
const EMOJI = /<(a?):(\w{1,64}):(\d{1,20})>/y;
const TIMESTAMP = /<t:(-?\d{1,13})(?::([tTdDfFR]))?>/y;
const EVERYONE = /@(everyone|here)/y;
/** Text runs up to the next character some rule could start with (or a URL scheme). */
const TEXT = /[\s\S]+?(?=[^0-9A-Za-z\s\u00c0-\uffff]|\n|\bhttps?:\/\/|$)/y;

function at(re: RegExp, src: string, pos: number): RegExpExecArray | null {
  re.lastIndex = pos;
  return re.exec(src);
}

const lineStart = (src: string, pos: number, st: State): boolean => (pos === 0 ? st.startsLine : src[pos - 1] === '\n');
/** State for the content of an inline element (bold, link text...). */
const inner = (st: State): State => ({ ...st, startsLine: false });
const isWordChar = (ch: string | undefined): boolean => ch !== undefined && /[A-Za-z0-9_]/.test(ch);

/** A URL's trailing `)` belongs to it only when it has a matching `(`, as in Wikipedia links. */
function trimUrl(url: string): string {
  let u = url;
  while (u.endsWith(')') && (u.match(/\(/g)?.length ?? 0) < (u.match(/\)/g)?.length ?? 0)) u = u.slice(0, -1);
  return u;
}

/** Formatting between paired markers (`m[1]` between them), recorded when asked. */
function pairedAt(t: 'bold' | 'italic' | 'underline' | 'strike' | 'spoiler', m: RegExpExecArray, src: string, pos: number, st: State): MdNode {
  const k = (m[0].length - m[1]!.length) / 2;
  record(st, pos, pos + m[0].length, pos + k, pos + m[0].length - k, { kind: 'paired', marker: src.slice(pos, pos + k) });
  return { t, c: parse(m[1]!, shift(inner(st), pos + k)) };
}

const wrap = (t: 'bold' | 'italic' | 'underline' | 'strike' | 'spoiler', re: RegExp): Rule => (src, pos, st, out) => {
  const m = at(re, src, pos);
  if (!m) return 0;
  out.push(pairedAt(t, m, src, pos, st));
  return m[0].length;
};

/** The offset of a group's text in a match that ends with it and then `tail` characters. */
const groupAt = (m: RegExpExecArray, group: number, tail: number): number => m[0].length - tail - m[group]!.length;

const RULES: Rule[] = [
  (src, pos, st, out) => {
    const m = at(CODE_BLOCK, src, pos);
    if (!m) return 0;
    out.push({ t: 'codeblock', ...(m[1] ? { lang: m[1] } : {}), v: m[2]! });
    // the code is followed by the line breaks before the closing fence (its own last character is none: the match is lazy;
    // in an empty block, those after the opening fence are counted too: kept after it)
    const to = Math.max(pos + 3, pos + m[0].length - 3 - /\n*$/.exec(m[0].slice(0, -3))![0].length);
    record(st, pos, pos + m[0].length, Math.max(pos + 3, to - m[2]!.length), to, { kind: 'codeblock', lang: m[1] ?? '' });
    return m[0].length;
  },
  (src, pos, st, out) => {
    if (st.inQuote || st.inline || !lineStart(src, pos, st)) return 0;
    const rest = at(QUOTE_REST, src, pos);
    if (rest) {
      const from = pos + groupAt(rest, 1, 0);
      record(st, pos, pos + rest[0].length, pos, pos + rest[0].length, { kind: 'quote', prefix: '>>> ' });
      out.push({ t: 'quote', c: parse(rest[1]!, shift({ ...st, inQuote: true, startsLine: true }, from)) });
      return rest[0].length;
    }
    const lines = at(QUOTE_LINES, src, pos);
    if (!lines) return 0;
    const quoted = lines[0].replace(/\n$/, '').split('\n');
    const text = quoted.map((l) => l.slice(2)).join('\n');
    record(st, pos, pos + quoted.join('\n').length, pos, pos + quoted.join('\n').length, { kind: 'quote', prefix: '> ' });
    out.push({ t: 'quote', c: parse(text, { ...st, inQuote: true, startsLine: true, ...(st.rec ? { rec: quoteRecorder(st.rec, pos, quoted) } : {}) }) });
    return lines[0].length;
  },
  (src, pos, st, out) => {
    if (st.inline || !lineStart(src, pos, st)) return 0;
    const h = at(HEADING, src, pos);
    if (h) {
      const from = pos + groupAt(h, 2, h[0].endsWith('\n') ? 1 : 0);
      out.push({ t: 'heading', level: h[1]!.length as 1 | 2 | 3, c: parse(h[2]!, shift({ ...inner(st), inline: true }, from)) });
      return h[0].length;
    }
    const s = at(SUBTEXT, src, pos);
    if (s) {
      const from = pos + groupAt(s, 1, s[0].endsWith('\n') ? 1 : 0);
      out.push({ t: 'subtext', c: parse(s[1]!, shift({ ...inner(st), inline: true }, from)) });
      return s[0].length;
    }
    return 0;
  },
  (src, pos, st, out) => {
    if (st.inline || !lineStart(src, pos, st)) return 0;
    const m = at(LIST, src, pos);
    if (!m) return 0;
    const lines = m[0].replace(/\n$/, '').split('\n');
    const first = LIST_ITEM.exec(lines[0]!)!;
    const ordered = first[2] !== undefined;
    // one list holds items of one kind; a change of kind ends it
    const items: MdNode[][] = [];
    let used = 0;
    for (const line of lines) {
      const it = LIST_ITEM.exec(line);
      if (!it || (it[2] !== undefined) !== ordered) break;
      items.push(parse(it[3]!, shift({ ...inner(st), inline: true }, pos + used + line.length - it[3]!.length)));
      used += line.length + 1;
    }
    out.push({ t: 'list', ordered, start: ordered ? Number(first[2]) : 1, items });
    return Math.min(used, m[0].length);
  },
  (src, pos, _st, out) => {
    const m = at(ESCAPE, src, pos);
    if (!m) return 0;
    out.push({ t: 'text', v: m[1]! });
    return m[0].length;
  },
  (src, pos, st, out) => {
    const m = at(INLINE_CODE, src, pos);
    if (!m) return 0;
    const v = m[2]!.length > 1 && m[2]!.startsWith(' ') && m[2]!.endsWith(' ') ? m[2]!.slice(1, -1) : m[2]!;
    out.push({ t: 'code', v });
    const k = m[1]!.length;
    record(st, pos, pos + m[0].length, pos + k, pos + m[0].length - k, { kind: 'code', marker: m[1]! });
    return m[0].length;
  },
  (src, pos, st, out) => {
    if (st.inLink) return 0;
    const m = at(MASKED_LINK, src, pos);
    if (!m) return 0;
    atom(st, pos, m[0].length);
    out.push({ t: 'link', href: m[2]!, c: parse(m[1]!, shift({ ...inner(st), inLink: true, inline: true }, pos + 1)) });
    return m[0].length;
  },
  (src, pos, st, out) => {
    if (st.inLink) return 0;
    const angle = at(ANGLE_LINK, src, pos);
    if (angle) {
      out.push({ t: 'link', href: angle[1]!, c: [{ t: 'text', v: angle[1]! }] });
      return atom(st, pos, angle[0].length);
    }
    const m = at(URL, src, pos);
    if (!m) return 0;
    const url = trimUrl(m[0]);
    out.push({ t: 'link', href: url, c: [{ t: 'text', v: url }] });
    return atom(st, pos, url.length);
  },
  (src, pos, st, out) => {
    let m = at(USER, src, pos);
    if (m) { out.push({ t: 'user', id: m[1]! }); return atom(st, pos, m[0].length); }
    m = at(ROLE, src, pos);
    if (m) { out.push({ t: 'role', id: m[1]! }); return atom(st, pos, m[0].length); }
    m = at(CHANNEL, src, pos);
    if (m) { out.push({ t: 'channel', id: m[1]! }); return atom(st, pos, m[0].length); }
    m = at(EMOJI, src, pos);
    if (m) { out.push({ t: 'emoji', animated: m[1] === 'a', name: m[2]!, id: m[3]! }); return atom(st, pos, m[0].length); }
    m = at(TIMESTAMP, src, pos);
    if (m) { out.push({ t: 'timestamp', unix: Number(m[1]), ...(m[2] ? { style: m[2] } : {}) }); return atom(st, pos, m[0].length); }
    m = at(EVERYONE, src, pos);
    if (m && !isWordChar(src[pos + m[0].length])) { out.push({ t: m[1] as 'everyone' | 'here' }); return atom(st, pos, m[0].length); }
    return 0;
  },
  wrap('spoiler', SPOILER),
  (src, pos, st, out) => {
    // bold, underline and italics are tried together and the longest match wins, italics first on
    // a tie, then bold (simple-markdown's `quality`): `***a**b*` is italics holding bold
    let best: { t: 'bold' | 'underline' | 'italic'; m: RegExpExecArray; q: number } | undefined;
    const consider = (t: 'bold' | 'underline' | 'italic', re: RegExp, bonus: number): void => {
      const m = at(re, src, pos);
      if (m && (!best || m[0].length + bonus > best.q)) best = { t, m, q: m[0].length + bonus };
    };
    consider('bold', BOLD, 0.1);
    consider('underline', UNDERLINE, 0);
    consider('italic', STAR_ITALIC, 0.2);
    if (!isWordChar(src[pos - 1])) consider('italic', UNDERSCORE_ITALIC, 0.2); // snake_case_words are not italic
    if (!best) return 0;
    out.push(pairedAt(best.t, best.m, src, pos, st));
    return best.m[0].length;
  },
  wrap('strike', STRIKE),
  (src, pos, _st, out) => {
    if (src[pos] !== '\n') return 0;
    out.push({ t: 'br' });
    return 1;
  },
];

function pushText(out: MdNode[], v: string): void {
  const last = out[out.length - 1];
  if (last?.t === 'text') last.v += v;
  else out.push({ t: 'text', v });
}

function parse(src: string, st: State): MdNode[] {
  const out: MdNode[] = [];
  let pos = 0;
  while (pos < src.length) {
    let used = 0;
    for (const rule of RULES) {
      used = rule(src, pos, st, out);
      if (used > 0) break;
    }
    if (used > 0) { pos += used; continue; }
    const m = at(TEXT, src, pos);
    const len = m && m[0].length > 0 ? m[0].length : 1;
    pushText(out, src.slice(pos, pos + len));
    pos += len;
  }
  // merge texts split by escapes
  const merged: MdNode[] = [];
  for (const n of out) {
    if (n.t === 'text') pushText(merged, n.v);
    else merged.push(n);
  }
  return merged;
}

export function parseDiscordMarkdown(content: string): MdNode[] {
  return parse(content.replace(/\r\n?/g, '\n'), { inQuote: false, inline: false, inLink: false, startsLine: true });
}

/** Record an atom (see {@link MdSpan}) of `len` characters at `pos`; returns `len`. */
function atom(st: State, pos: number, len: number): number {
  record(st, pos, pos + len, pos, pos + len, { kind: 'atom' });
  return len;
}

/** Where the text of a `> ` quote (its lines without their `> `, joined) lies in the whole. */
function quoteRecorder(r: Recorder, pos: number, lines: string[]): Recorder {
  const textStarts: number[] = [];
  const srcStarts: number[] = [];
  let t = 0;
  let s = pos;
  for (const l of lines) {
    textStarts.push(t);
    srcStarts.push(s + 2);
    t += l.length - 1; // (its text, and the line break)
    s += l.length + 1;
  }
  return {
    spans: r.spans,
    at: (i) => {
      let lo = 0;
      let hi = textStarts.length - 1;
      while (lo < hi) { // the last line starting at or before i
        const mid = (lo + hi + 1) >> 1;
        if (textStarts[mid]! <= i) lo = mid; else hi = mid - 1;
      }
      return r.at(srcStarts[lo]! + i - textStarts[lo]!);
    },
  };
}

/**
 * The markup Discord reads in `content` and where it lies, outermost first: what splitting a long
 * message must not break (see {@link MdSpan}).
 */
export function markupSpans(content: string): MdSpan[] {
  const spans: MdSpan[] = [];
  // (a CR is a line break, as in parseDiscordMarkdown; CR LF is kept two characters long, so offsets stay content's)
  const src = content.replace(/\r\n?/g, (m) => (m.length === 2 ? ' \n' : '\n'));
  parse(src, { inQuote: false, inline: false, inLink: false, startsLine: true, rec: { spans, at: (i) => i } });
  return spans.sort((a, b) => a.start - b.start || b.end - a.end);
}

/** True when the tree is only text and line breaks (no formatting, links or mentions). */
export function isPlain(nodes: MdNode[]): boolean {
  return nodes.every((n) => n.t === 'text' || n.t === 'br');
}

// ------------------------------------------------------------------ plain text → Discord

/**
 * A URL where Discord would read one once the text around it is escaped: after anything but a
 * letter or digit (`_https://x` too, as `\_` ends where the URL starts).
 */
const URL_IN_TEXT = /(?<![A-Za-z0-9])https?:\/\/[^\s<]+[^<.,:;"')\]\s]/g;
/** What Discord could read as the start of a URL in escaped text that is not one here (`http://.`). */
const URL_SCHEME = /(?<![A-Za-z0-9])(https?):(?=\/\/)/g;
/** Characters that start markdown anywhere in a line. */
const INLINE_SPECIAL = /[\\*_~`|[\]]/g;
/**
 * Starts of a line that Discord reads as a block (quote, heading, subtext, list); `*` is escaped
 * anyway. After any whitespace: trimming the message (the bridge's, or Discord's) may remove it.
 */
const BLOCK_START = /^([^\S\n]*)(?:(>|#{1,3} |-# |- )|(\d{1,9})\. )/gm;
/**
 * `<@123>`, `<#123>`, `<:x:123>`, `<t:123>`, and `</ban:123>` (a command, clicked to run it) and
 * `<id:customize>` (a link into the server's settings): typed text must not turn into a mention,
 * emoji or link.
 */
const TOKEN_START = /<(?=[@#:/]|a:|t:|id:)/g;

/** `schemes`: keep `http://` from starting a URL (not needed where Discord reads no URLs). */
function escapeSegment(s: string, schemes = true): string {
  const t = s.replace(INLINE_SPECIAL, '\\$&');
  return (schemes ? t.replace(URL_SCHEME, '$1\\:') : t)
    .replace(TOKEN_START, '\\<')
    .replace(BLOCK_START, escapeBlock);
}

const escapeBlock = (_m: string, indent: string, marker: string | undefined, digits: string | undefined): string =>
  (marker !== undefined ? `${indent}\\${marker}` : `${indent}${digits}\\. `);
const FIRST_BLOCK_START = new RegExp(BLOCK_START.source);

/** Markdown text with what Discord would read at its start as a quote, heading, subtext or list item escaped. */
export function escapeLineStart(md: string): string {
  return md.replace(FIRST_BLOCK_START, escapeBlock);
}

/**
 * Where the URLs are in plain text: the ones {@link escapeDiscordMarkdown} leaves alone. One in
 * angle brackets ends at the `>`, as Discord reads it.
 */
export function urlsIn(text: string): { start: number; end: number }[] {
  const urls: { start: number; end: number }[] = [];
  const re = new RegExp(URL_IN_TEXT.source, 'g');
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let end = m.index + trimUrl(m[0]).length;
    if (text[m.index - 1] === '<') {
      // `<url>` is one link to the `>` (what is between may hold `<`: Discord's rule allows it)
      const angle = at(ANGLE_LINK, text, m.index - 1);
      if (angle) end = m.index - 1 + angle[0].length;
    }
    urls.push({ start: m.index, end });
    re.lastIndex = end;
  }
  return urls;
}

/**
 * The characters of paired markers (`**`, `*`, `__`, `~~`, `||`, code), which close them wherever
 * they stand, and the backslash, which would escape a closing one right after it.
 */
export const MARKER_CHARS = /[*_~|`\\]/g;

/** `url` with the characters `chars` matches percent-encoded (UTF-8 for those beyond ASCII). */
export function percentEncode(url: string, chars: RegExp): string {
  return url.replace(chars, (c) => (c.charCodeAt(0) < 0x80 ? `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}` : encodeURIComponent(c)));
}

/**
 * A URL that text follows with no space between. Discord's URL rule runs to the next space or `<`,
 * so an escaping backslash there would become part of the link and what it escapes would be live
 * (`http://x\<@1>` is a link to `http://x\` and a mention), and so would markdown written after the
 * text (`next`): such a URL goes in angle brackets, which end it and show the same (no embed), or,
 * if it has a `>` they cannot hold, as text (which Matrix → Discord does not look into for
 * `@everyone`: defused here).
 */
function guardUrl(url: string, after: string, next: string, angled: boolean): string {
  const run = /^[^\s<]*/.exec(after)![0];
  if (angled || !run.includes('\\') && !(run === after && /^[^\s<]/.test(next))) return url;
  return url.includes('>') ? escapeSegment(defuseEveryone(url)) : `<${url}>`;
}

/**
 * Make plain text show literally on Discord (URLs are left alone so they stay links). `next`: the
 * markdown that will follow the text, if any. `inMarkup`: the text goes between paired markers
 * (`**`, `*`, `__`, `~~`, `||`), which a marker character in a URL would close: those are
 * percent-encoded there, with a backslash (the same URL: `_` and `~` are unreserved; `*`, `|`, a
 * backtick and a backslash are rare).
 * `inLink`: the text goes in a masked link's text, where Discord reads no URL: all of it is escaped.
 */
export function escapeDiscordMarkdown(text: string, next = '', inMarkup = false, inLink = false): string {
  const urls = inLink ? [] : urlsIn(text);
  const angled = urls.map(({ start, end }) => text[start - 1] === '<' && text[end - 1] === '>');
  // the text up to a URL, escaped; a `<` right before a URL that does not close it is escaped too,
  // or Discord would read `<url…>` further on as one link
  const segment = (from: number, i: number): string => {
    const to = urls[i]?.start ?? text.length;
    const t = escapeSegment(text.slice(from, to), !inLink);
    return i < urls.length && !angled[i] && text[to - 1] === '<' && t.endsWith('<') ? `${t.slice(0, -1)}\\<` : t;
  };
  let out = segment(0, 0);
  urls.forEach(({ start, end }, i) => {
    const after = segment(end, i + 1);
    const raw = text.slice(start, end);
    const url = inMarkup ? percentEncode(raw, MARKER_CHARS) : raw;
    out += guardUrl(url, after, i === urls.length - 1 ? next : '', angled[i]!) + after;
  });
  return out;
}

/**
 * `@everyone` and `@here` with a zero-width space after the `@`: shown, but pinging nobody. Only
 * a letter or digit after the word keeps it (`@hereby`): after `_`, which escaping turns into
 * `\_`, Discord would read the word as a ping.
 */
export function defuseEveryone(text: string): string {
  return text.replace(/@(everyone|here)(?![A-Za-z0-9])/g, '@\u200b$1');
}
