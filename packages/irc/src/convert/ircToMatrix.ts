/**
 * IRC → Matrix message text. Pure: the caller looks nicks up and sends the event.
 *
 * `body` is the text without control codes; `formattedBody` is `org.matrix.custom.html`, produced
 * only when the line has visible formatting or a mention (so plain chat stays plain events). All
 * text is HTML-escaped; the only markup in `formattedBody` is what this file writes.
 */
import { parseFormatting, PLAIN_STYLE, type IrcSpan, type IrcStyle } from './formatting.js';

export interface IrcMention {
  userId: string;
  displayName: string;
}

export interface IrcToMatrixOptions {
  /**
   * Resolve a word to the Matrix user it names, or undefined. Called once per distinct candidate
   * word, as written; the lookup is expected to compare nicks case-insensitively (with the
   * server's CASEMAPPING), since IRC nicks are.
   */
  mentions?: (word: string) => IrcMention | undefined;
}

export interface MatrixText {
  body: string;
  formattedBody?: string;
}

/** Nicks are made of letters, digits and `[]\`_^{|}-`: a mention is a whole run of these. */
const NICK_RUN = /[\p{L}\p{N}\p{M}[\]\\`_^{|}-]+/gu;
/**
 * Where nicks are not looked for: URLs (with a scheme or starting www.) and e-mail addresses. A
 * scheme or an address is only tried from the start of its run of characters (the lookbehinds):
 * tried from every position, a long word without `://` or `@` took quadratic time (16,000
 * characters: half a second), and the leftmost match is the same either way.
 */
const NO_MENTION = /(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:\/\/\S+|\bwww\.\S+|(?<![^\s@])[^\s@]+@[^\s@]+\.[^\s@]+/giu;
/**
 * A word joined on either side to `/` or `~` (`~/alice/src`, `example.org/alice`, `~alice`), or to
 * a dot with a letter or digit on its far side (`alice.example.com`, `alice.txt`), is part of a
 * path, file or host name: no one is addressed, and a pill would ping them for nothing. A dot
 * ending a sentence (`hi alice.`, `alice...`) has a space, the end or punctuation after it, so
 * that word still counts. `\` is not needed here: it is a nick character, so `C:\alice\src` is
 * one run that names no one.
 */
const JOINED_BEFORE = /(?:[/~]|[\p{L}\p{N}]\.)$/u;
const JOINED_AFTER = /^(?:[/~]|\.[\p{L}\p{N}])/u;
/** Nicks shorter than this are only linked when they address the line (`al: hi`). */
const MIN_LOOSE_NICK = 3;
/** C0 controls (and DEL) other than tab and newline, left after the formatting codes are parsed. */
const STRAY_CONTROLS = /[\x00-\x08\x0B-\x1F\x7F]/g;

interface MentionRange {
  start: number;
  end: number;
  mention: IrcMention;
  href: string;
}

export function ircToMatrix(text: string, opts: IrcToMatrixOptions = {}): MatrixText {
  const spans = parseLines(text)
    .map((s) => ({ text: s.text.replace(STRAY_CONTROLS, ''), style: s.style }))
    .filter((s) => s.text !== '');
  const body = spans.map((s) => s.text).join('');
  const mentions = opts.mentions ? findMentions(body, opts.mentions) : [];
  if (mentions.length === 0 && !spans.some((s) => tagsFor(s.style).length > 0)) return { body };
  return { body, formattedBody: renderHtml(spans, mentions) };
}

/**
 * Formatting spans of text that may hold several IRC lines (a `draft/multiline` batch, joined by
 * `joinMultiline`). An IRC line cannot contain a line break, so each one here starts a new line,
 * and on IRC formatting ends with its line: each line is parsed on its own, or a code left open
 * (or closed) on one line would flip the style of the next. The line break itself is unstyled.
 */
function parseLines(text: string): IrcSpan[] {
  return text.split('\n').flatMap((line, i) => {
    const spans = parseFormatting(line);
    return i === 0 ? spans : [{ text: '\n', style: PLAIN_STYLE }, ...spans];
  });
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** A matrix.to link for a user ID, or undefined if the ID cannot be put in a URL. */
function userLink(userId: string): string | undefined {
  try {
    return `https://matrix.to/#/${encodeURI(userId).replace(/[?#]/g, encodeURIComponent)}`;
  } catch {
    return undefined; // lone surrogates: not a valid user ID
  }
}

function findMentions(body: string, lookup: (word: string) => IrcMention | undefined): MentionRange[] {
  // Both lists are in text order, so one pass over each is enough.
  const excluded = [...body.matchAll(NO_MENTION)].map((m) => [m.index, m.index + m[0].length] as const);
  let x = 0;
  const cache = new Map<string, IrcMention | undefined>();
  const found: MentionRange[] = [];
  for (const m of body.matchAll(NICK_RUN)) {
    const word = m[0];
    const start = m.index;
    const end = start + word.length;
    while (x < excluded.length && (excluded[x] as readonly [number, number])[1] <= start) x++;
    const skip = excluded[x];
    if (skip && skip[0] < end) continue; // inside a URL or address
    if (body[start - 1] === '#') continue; // a channel name, not a nick
    // (3 characters back: a letter before the dot may be a surrogate pair)
    if (JOINED_BEFORE.test(body.slice(Math.max(0, start - 3), start)) || JOINED_AFTER.test(body.slice(end, end + 3))) continue;
    if ([...word].length < MIN_LOOSE_NICK && !(start === 0 && body[end] === ':')) continue;
    if (!cache.has(word)) cache.set(word, lookup(word));
    const mention = cache.get(word);
    const href = mention && userLink(mention.userId);
    if (mention && href) found.push({ start, end, mention, href });
  }
  return found;
}

/** The HTML element for each visible part of a style, outermost first. */
function tagsFor(style: IrcStyle): { open: string; close: string }[] {
  const tags: { open: string; close: string }[] = [];
  // Reverse video swaps the colours; with no colour set there is nothing Matrix can show for it.
  const fg = style.reverse ? style.bg : style.fg;
  const bg = style.reverse ? style.fg : style.bg;
  if (fg !== undefined || bg !== undefined) {
    const attrs = (fg !== undefined ? ` data-mx-color="${fg}"` : '') + (bg !== undefined ? ` data-mx-bg-color="${bg}"` : '');
    tags.push({ open: `<font${attrs}>`, close: '</font>' });
  }
  if (style.bold) tags.push({ open: '<b>', close: '</b>' });
  if (style.italic) tags.push({ open: '<i>', close: '</i>' });
  if (style.underline) tags.push({ open: '<u>', close: '</u>' });
  if (style.strikethrough) tags.push({ open: '<del>', close: '</del>' });
  if (style.monospace) tags.push({ open: '<code>', close: '</code>' });
  return tags;
}

/**
 * Render spans as HTML, keeping tags open across spans that share them (`<b>a<i>b</i></b>` rather
 * than `<b>a</b><b><i>b</i></b>`). A mention takes the style of its first character.
 */
function renderHtml(spans: readonly IrcSpan[], mentions: readonly MentionRange[]): string {
  let html = '';
  let open: { open: string; close: string }[] = [];
  const emit = (style: IrcStyle, content: string): void => {
    const wanted = tagsFor(style);
    let common = 0;
    while (common < open.length && common < wanted.length && open[common]?.open === wanted[common]?.open) common++;
    for (let k = open.length - 1; k >= common; k--) html += (open[k] as { close: string }).close;
    for (let k = common; k < wanted.length; k++) html += (wanted[k] as { open: string }).open;
    open = wanted;
    html += content;
  };

  let offset = 0;
  let m = 0;
  for (const span of spans) {
    const spanEnd = offset + span.text.length;
    let cursor = offset;
    while (cursor < spanEnd) {
      while (m < mentions.length && (mentions[m] as MentionRange).end <= cursor) m++;
      const mention = mentions[m];
      if (mention && mention.start <= cursor) {
        if (mention.start === cursor) {
          emit(span.style, `<a href="${escapeHtml(mention.href)}">${escapeHtml(mention.mention.displayName)}</a>`);
        }
        cursor = Math.min(spanEnd, mention.end);
      } else {
        const stop = Math.min(spanEnd, mention ? mention.start : spanEnd);
        emit(span.style, escapeHtml(span.text.slice(cursor - offset, stop - offset)).replace(/\n/g, '<br>'));
        cursor = stop;
      }
    }
    offset = spanEnd;
  }
  emit(PLAIN_STYLE, ''); // close whatever is still open
  return html;
}
