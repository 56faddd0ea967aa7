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

const wrap = (t: 'bold' | 'italic' | 'underline' | 'strike' | 'spoiler', re: RegExp): Rule => (src, pos, st, out) => {
  const m = at(re, src, pos);
  if (!m) return 0;
  out.push({ t, c: parse(m[1]!, inner(st)) });
  return m[0].length;
};

const RULES: Rule[] = [
  (src, pos, _st, out) => {
    const m = at(CODE_BLOCK, src, pos);
    if (!m) return 0;
    out.push({ t: 'codeblock', ...(m[1] ? { lang: m[1] } : {}), v: m[2]! });
    return m[0].length;
  },
  (src, pos, st, out) => {
    if (st.inQuote || st.inline || !lineStart(src, pos, st)) return 0;
    const rest = at(QUOTE_REST, src, pos);
    if (rest) {
      out.push({ t: 'quote', c: parse(rest[1]!, { ...st, inQuote: true, startsLine: true }) });
      return rest[0].length;
    }
    const lines = at(QUOTE_LINES, src, pos);
    if (!lines) return 0;
    const text = lines[0].replace(/\n$/, '').split('\n').map((l) => l.slice(2)).join('\n');
    out.push({ t: 'quote', c: parse(text, { ...st, inQuote: true, startsLine: true }) });
    return lines[0].length;
  },
  (src, pos, st, out) => {
    if (st.inline || !lineStart(src, pos, st)) return 0;
    const h = at(HEADING, src, pos);
    if (h) {
      out.push({ t: 'heading', level: h[1]!.length as 1 | 2 | 3, c: parse(h[2]!, { ...inner(st), inline: true }) });
      return h[0].length;
    }
    const s = at(SUBTEXT, src, pos);
    if (s) {
      out.push({ t: 'subtext', c: parse(s[1]!, { ...inner(st), inline: true }) });
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
      items.push(parse(it[3]!, { ...inner(st), inline: true }));
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
  (src, pos, _st, out) => {
    const m = at(INLINE_CODE, src, pos);
    if (!m) return 0;
    const v = m[2]!.length > 1 && m[2]!.startsWith(' ') && m[2]!.endsWith(' ') ? m[2]!.slice(1, -1) : m[2]!;
    out.push({ t: 'code', v });
    return m[0].length;
  },
  (src, pos, st, out) => {
    if (st.inLink) return 0;
    const m = at(MASKED_LINK, src, pos);
    if (!m) return 0;
    out.push({ t: 'link', href: m[2]!, c: parse(m[1]!, { ...inner(st), inLink: true, inline: true }) });
    return m[0].length;
  },
  (src, pos, st, out) => {
    if (st.inLink) return 0;
    const angle = at(ANGLE_LINK, src, pos);
    if (angle) {
      out.push({ t: 'link', href: angle[1]!, c: [{ t: 'text', v: angle[1]! }] });
      return angle[0].length;
    }
    const m = at(URL, src, pos);
    if (!m) return 0;
    const url = trimUrl(m[0]);
    out.push({ t: 'link', href: url, c: [{ t: 'text', v: url }] });
    return url.length;
  },
  (src, pos, _st, out) => {
    let m = at(USER, src, pos);
    if (m) { out.push({ t: 'user', id: m[1]! }); return m[0].length; }
    m = at(ROLE, src, pos);
    if (m) { out.push({ t: 'role', id: m[1]! }); return m[0].length; }
    m = at(CHANNEL, src, pos);
    if (m) { out.push({ t: 'channel', id: m[1]! }); return m[0].length; }
    m = at(EMOJI, src, pos);
    if (m) { out.push({ t: 'emoji', animated: m[1] === 'a', name: m[2]!, id: m[3]! }); return m[0].length; }
    m = at(TIMESTAMP, src, pos);
    if (m) { out.push({ t: 'timestamp', unix: Number(m[1]), ...(m[2] ? { style: m[2] } : {}) }); return m[0].length; }
    m = at(EVERYONE, src, pos);
    if (m && !isWordChar(src[pos + m[0].length])) { out.push({ t: m[1] as 'everyone' | 'here' }); return m[0].length; }
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
    out.push({ t: best.t, c: parse(best.m[1]!, inner(st)) });
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
/** `<@123>`, `<#123>`, `<:x:123>`, `<t:123>`: typed text must not turn into a mention or emoji. */
const TOKEN_START = /<(?=[@#:]|a:|t:)/g;

/** `schemes`: keep `http://` from starting a URL (not needed where Discord reads no URLs). */
function escapeSegment(s: string, schemes = true): string {
  const t = s.replace(INLINE_SPECIAL, '\\$&');
  return (schemes ? t.replace(URL_SCHEME, '$1\\:') : t)
    .replace(TOKEN_START, '\\<')
    .replace(BLOCK_START, (_m, indent: string, marker: string | undefined, digits: string | undefined) =>
      (marker !== undefined ? `${indent}\\${marker}` : `${indent}${digits}\\. `));
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
