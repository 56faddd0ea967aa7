/**
 * Matrix → IRC message text. Pure: returns logical lines; splitting them to fit the 512-byte line
 * limit is `split.ts`'s job, and sending them the caller's.
 *
 * HTML (`org.matrix.custom.html`) is degraded tag by tag: each known tag maps to its IRC
 * equivalent, an unknown tag keeps its text, and nothing one tag does can switch off the
 * formatting of the others.
 *
 * Safety: every returned line is free of CR, LF and NUL (a line break in the input becomes a new
 * line, never a raw CR/LF, which is what would let a Matrix user inject IRC commands), and of any
 * other C0 control except the formatting codes this file writes itself.
 */
import { Parser } from 'htmlparser2';
import { nearestIrcColour, PLAIN_CODES, stripFormatting, transitionCodes, type IrcCodeState } from './formatting.js';

/** The parts of an `m.room.message` content this converter reads. */
export interface MatrixMessageContent {
  body: string;
  format?: string;
  formatted_body?: string;
  /**
   * Accepted so event content can be passed as is, but not interpreted here: emotes (CTCP ACTION)
   * and media (links to uploaded files) need the caller's context.
   */
  msgtype?: string;
}

export interface MatrixToIrcOptions {
  /** The IRC nick for a Matrix user ID mentioned with a pill; undefined = use the pill's text. */
  pillToNick?: (userId: string) => string | undefined;
  /** The IRC channel (or other name) for a room ID or alias pill; undefined = use the pill's text. */
  roomPillToName?: (roomIdOrAlias: string) => string | undefined;
}

const LINE_BREAK = /\r\n|[\n\r\u0085\u2028\u2029]/;
/** HTML collapses runs of whitespace (line breaks included) to one space outside <pre>. */
const COLLAPSIBLE = /[\t\n\f\r \u0085\u2028\u2029]+/g;
/** C0 controls and DEL that HTML does not treat as whitespace. */
const NON_SPACE_CONTROLS = /[\x00-\x08\x0B\x0E-\x1F\x7F]/g;
const CONTROLS = /[\x00-\x1F\x7F]/g;
/** Half a surrogate pair, alone. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** Link and pill text is only needed to compare with the href or to stand in for a nick. */
const MAX_COLLECTED = 1024;

/**
 * Text that is not a message (a file name, a display name, a quoted old message) on one IRC line
 * with no control character left: line breaks and tabs become spaces, every other C0 control and
 * DEL goes. Nothing the sender typed can then colour the line or open a CTCP (`\x01DCC SEND …`).
 */
export function stripControls(text: string): string {
  return text.replace(/[\t\n\r\u0085\u2028\u2029]+/g, ' ').replace(CONTROLS, '');
}

export function matrixToIrc(content: MatrixMessageContent, opts: MatrixToIrcOptions = {}): string[] {
  if (content.format === 'org.matrix.custom.html' && typeof content.formatted_body === 'string') {
    const lines = htmlToIrc(content.formatted_body, opts);
    if (lines.length > 0) return lines;
  }
  // Event content is untrusted JSON: a missing or non-string body is treated as empty.
  const body = typeof content.body === 'string' ? content.body : '';
  return cleanLines(body.split(LINE_BREAK).map((line) => line.replace(/\t/g, ' ').replace(CONTROLS, '')));
}

/** The last line of defence, whatever produced the lines: no CR, LF or NUL; no blank lines (a code block's are kept before this). */
function cleanLines(lines: readonly string[]): string[] {
  return lines
    .flatMap((line) => line.split(/[\r\n]/))
    .map((line) => line.replace(/\0/g, ''))
    .filter((line) => stripFormatting(line).trim() !== '');
}

interface LinePrefix {
  /** Written before the first line of the block (`• `, `1. `, `> `). */
  first: string;
  /** Written before its following lines (indentation, or `> ` again). */
  rest: string;
  used: boolean;
}

/**
 * Accumulates IRC lines. Formatting codes are written lazily, just before visible text, as the
 * difference from what the line has so far; so an open tag spanning a line break is re-applied on
 * the next line, and no empty toggles are written for elements without text.
 */
class LineBuilder {
  readonly lines: string[] = [];
  readonly prefixes: LinePrefix[] = [];
  private line = '';
  private hasContent = false;
  /** A collapsed space not yet written (dropped at line end), with the style it had. */
  private pendingSpace: IrcCodeState | undefined;
  private emitted: IrcCodeState = PLAIN_CODES;
  /** The line was just ended by a line break in preformatted text: another one makes a blank line of it. */
  private afterPreBreak = false;
  /** Blank lines of a code block not yet written: only more of the block's text writes them. */
  private pendingBlanks = 0;
  /** The last preformatted text ended with CR: a LF starting the next completes that line break. */
  private preEndedCR = false;
  /** Lines kept though they show no text: the blank lines of code blocks. */
  private readonly kept = new Set<number>();

  get atLineStart(): boolean {
    return !this.hasContent;
  }

  /** Flowing text: whitespace collapses as in HTML, and is trimmed at line ends. */
  text(raw: string, style: IrcCodeState): void {
    let s = raw.replace(NON_SPACE_CONTROLS, '').replace(COLLAPSIBLE, ' ');
    if (s.startsWith(' ')) {
      if (this.hasContent) this.pendingSpace ??= style;
      s = s.slice(1);
    }
    if (s === '') return;
    const trailingSpace = s.endsWith(' ');
    if (trailingSpace) s = s.slice(0, -1);
    this.visible(s, style);
    if (trailingSpace) this.pendingSpace = style;
  }

  /**
   * Preformatted text: spaces kept, line breaks are line breaks, a tab is four spaces. A blank line
   * inside it is kept as a line of just its codes (the monospace code), not dropped like blank
   * lines elsewhere: in code, it is what separates one function from the next.
   */
  preformatted(raw: string, style: IrcCodeState): void {
    // the parser gives `&#13;&#10;` as two texts: one line break, not a blank line between two
    const text = this.preEndedCR && raw.startsWith('\n') ? raw.slice(1) : raw;
    if (raw !== '') this.preEndedCR = text.endsWith('\r');
    text.split(LINE_BREAK).forEach((part, i) => {
      if (i > 0) {
        if (!this.hasContent && this.afterPreBreak) this.pendingBlanks++;
        this.newline();
        this.afterPreBreak = true;
      }
      const s = part.replace(/\t/g, '    ').replace(CONTROLS, '');
      if (s !== '') this.visible(s, style);
    });
  }

  newline(): void {
    this.lines.push(this.line);
    this.line = '';
    this.hasContent = false;
    this.pendingSpace = undefined;
    this.emitted = PLAIN_CODES;
    this.afterPreBreak = false;
  }

  /** Start a new line unless already at the start of one (block elements). */
  ensureBreak(): void {
    // a block starts or ends: a code block's line breaks before it were its last, and blank lines at its end go
    this.afterPreBreak = false;
    this.pendingBlanks = 0;
    this.preEndedCR = false;
    if (this.hasContent) this.newline();
  }

  finish(): string[] {
    this.ensureBreak();
    // a kept line is this builder's own prefixes and codes, safe as it is
    return this.lines.flatMap((line, i) => (this.kept.has(i) && line !== '' ? [line] : cleanLines([line])));
  }

  private visible(s: string, style: IrcCodeState): void {
    const blanks = this.pendingBlanks;
    this.pendingBlanks = 0;
    for (let k = 0; k < blanks; k++) {
      this.kept.add(this.lines.length);
      this.visible('', style); // the prefixes and codes alone
      this.newline();
    }
    if (!this.hasContent) {
      for (const p of this.prefixes) {
        this.line += p.used ? p.rest : p.first;
        p.used = true;
      }
      this.hasContent = true;
    } else if (this.pendingSpace) {
      // Written in its own style, so an underline or background does not run on under it.
      this.line += `${transitionCodes(this.emitted, this.pendingSpace, ' ')} `;
      this.emitted = this.pendingSpace;
    }
    this.pendingSpace = undefined;
    this.line += transitionCodes(this.emitted, style, s) + s;
    this.emitted = style;
    this.afterPreBreak = false;
  }
}

/** What a pill points at: a user ID, or a room ID or alias. */
export interface MatrixPill {
  kind: 'user' | 'room';
  id: string;
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * Does a link's text already say where it goes? Then the URL is not repeated after it. Clients
 * that link bare addresses write `<a href="http://x.org">x.org</a>`: the text is the address
 * without its scheme, its closing slash or its percent-encoding (`café` for `caf%C3%A9`).
 */
export function sameAsHref(text: string, href: string): boolean {
  if (text === href || `mailto:${text}` === href) return true;
  const plain = (u: string): string => {
    let d = u;
    try { d = decodeURI(u); } catch { /* not valid percent-encoding: as it is */ }
    return d.replace(/^https?:\/\//i, '').replace(/\/$/, '').toLowerCase();
  };
  return /^https?:\/\//i.test(href) && plain(text) === plain(href);
}

/** A user or room pill: a matrix.to link or a `matrix:` URI to a user, room alias or room ID. */
export function parsePill(href: string): MatrixPill | undefined {
  let id: string | undefined;
  const matrixTo = /^https:\/\/matrix\.to\/#\/([^/?]+)\/?(?:\?.*)?$/i.exec(href);
  const uri = /^matrix:(u|r|roomid)\/([^/?]+)(?:\?.*)?$/.exec(href);
  if (matrixTo) id = safeDecode(matrixTo[1] as string);
  else if (uri) id = ({ u: '@', r: '#', roomid: '!' } as Record<string, string>)[uri[1] as string] + (safeDecode(uri[2] as string) ?? '');
  if (!id || id.length < 2) return undefined;
  if (id.startsWith('@')) return { kind: 'user', id };
  if (id.startsWith('#') || id.startsWith('!')) return { kind: 'room', id };
  return undefined;
}

type Toggle = 'bold' | 'italic' | 'underline' | 'strikethrough' | 'monospace';

/** A Map, not an object literal: tag names come from the sender (`<constructor>`, `<__proto__>`). */
const TOGGLE_TAGS: ReadonlyMap<string, Toggle> = new Map([
  ['b', 'bold'],
  ['strong', 'bold'],
  ['i', 'italic'],
  ['em', 'italic'],
  ['u', 'underline'],
  ['ins', 'underline'],
  ['del', 'strikethrough'],
  ['s', 'strikethrough'],
  ['strike', 'strikethrough'],
  ['code', 'monospace'],
  ['kbd', 'monospace'],
  ['samp', 'monospace'],
  ['tt', 'monospace'],
]);

/** Elements that start and end a line and otherwise only contribute their content. */
const BLOCKS = new Set(
  'p div section article header footer main nav aside address details summary figure figcaption dl dt dd table thead tbody tfoot tr caption'.split(' '),
);
const HEADINGS = new Set(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
/** Elements dropped with their content: reply fallbacks, and what never is message text. */
const HIDDEN = new Set(['mx-reply', 'script', 'style', 'head', 'title', 'template']);

function htmlToIrc(html: string, opts: MatrixToIrcOptions): string[] {
  const out = new LineBuilder();
  const counts: Record<Toggle, number> = { bold: 0, italic: 0, underline: 0, strikethrough: 0, monospace: 0 };
  const colours: { fg?: number | undefined; bg?: number | undefined }[] = [];
  const lists: { ordered: boolean; next: number }[] = [];
  /** Text of the innermost open link or pill; handed to the enclosing one when it closes. */
  const collectors: { text: string }[] = [];
  const frames: { name: string; close: (() => void) | undefined }[] = [];
  let pre = 0;
  let hidden = 0;

  const style = (): IrcCodeState => {
    const colour = colours[colours.length - 1];
    return {
      bold: counts.bold > 0,
      italic: counts.italic > 0,
      underline: counts.underline > 0,
      strikethrough: counts.strikethrough > 0,
      monospace: counts.monospace > 0,
      fg: colour?.fg,
      bg: colour?.bg,
    };
  };
  const collect = (text: string): void => {
    const c = collectors[collectors.length - 1];
    if (!c || c.text.length >= MAX_COLLECTED - 1) return; // full (one short if a pair was in the way)
    const all = c.text + text;
    // cut between code points: half a surrogate pair would reach IRC as U+FFFD
    c.text = all.slice(0, /[\uD800-\uDBFF]/.test(all[MAX_COLLECTED - 1] ?? '') ? MAX_COLLECTED - 1 : MAX_COLLECTED);
  };
  const emit = (raw: string): void => {
    // the HTML parser can cut a surrogate pair at a broken tag (`</o 👦`): its halves would reach IRC as U+FFFD
    const text = raw.replace(LONE_SURROGATE, '');
    collect(text);
    if (hidden > 0) return;
    if (pre > 0) out.preformatted(text, style());
    else out.text(text, style());
  };
  const bump = (key: Toggle): (() => void) => {
    counts[key]++;
    return () => void counts[key]--;
  };
  const block = (inner?: () => void): (() => void) => {
    out.ensureBreak();
    return () => {
      out.ensureBreak();
      inner?.();
    };
  };
  const prefixed = (first: string, rest: string): (() => void) => {
    out.ensureBreak();
    out.prefixes.push({ first, rest, used: false });
    return () => {
      out.ensureBreak();
      out.prefixes.pop();
    };
  };
  const pushColours = (fg: number | undefined, bg: number | undefined): (() => void) | undefined => {
    if (fg === undefined && bg === undefined) return undefined;
    const top = colours[colours.length - 1];
    colours.push({ fg: fg ?? top?.fg, bg: bg ?? top?.bg });
    return () => void colours.pop();
  };

  const openLink = (href: string): (() => void) => {
    const collector = { text: '' };
    collectors.push(collector);
    const pill = parsePill(href);
    if (pill) {
      hidden++;
      return () => {
        collectors.pop();
        hidden--;
        const named = pill.kind === 'user' ? opts.pillToNick?.(pill.id) : opts.roomPillToName?.(pill.id);
        emit(named || collector.text.replace(COLLAPSIBLE, ' ').trim() || pill.id);
      };
    }
    return () => {
      collectors.pop();
      collect(collector.text);
      const text = collector.text.replace(COLLAPSIBLE, ' ').trim();
      if (text === '') emit(href);
      else if (!sameAsHref(text, href)) emit(` <${href}>`);
    };
  };

  const open = (name: string, attrs: Record<string, string>): (() => void) | undefined => {
    if (hidden > 0) return undefined; // inside a reply fallback or a pill: only text is collected
    const toggle = TOGGLE_TAGS.get(name);
    if (toggle) return bump(toggle);
    if (BLOCKS.has(name)) return block();
    if (HEADINGS.has(name)) return block(bump('bold')); // no heading levels on IRC: a bold line
    if (HIDDEN.has(name)) {
      hidden++;
      return () => void hidden--;
    }
    switch (name) {
      case 'br':
        out.newline();
        return undefined;
      case 'pre': {
        pre++;
        const monospaceOff = bump('monospace');
        return block(() => {
          pre--;
          monospaceOff();
        });
      }
      case 'hr':
        out.ensureBreak();
        emit('---');
        out.ensureBreak();
        return undefined;
      case 'blockquote':
        return prefixed('> ', '> ');
      case 'ul':
      case 'ol': {
        const start = parseInt(attrs.start ?? '', 10);
        lists.push({ ordered: name === 'ol', next: Number.isSafeInteger(start) ? start : 1 });
        return block(() => void lists.pop());
      }
      case 'li': {
        const list = lists[lists.length - 1];
        const marker = list?.ordered ? `${list.next++}. ` : '• ';
        return prefixed(marker, ' '.repeat(marker.length));
      }
      case 'td':
      case 'th':
        if (!out.atLineStart) emit(' | ');
        return name === 'th' ? bump('bold') : undefined;
      case 'a': {
        const href = (attrs.href ?? '').trim();
        return href === '' ? undefined : openLink(href);
      }
      case 'img': {
        const alt = attrs.alt?.trim() || attrs.title?.trim() || attrs.src?.trim();
        if (alt) emit(alt);
        return undefined;
      }
      case 'font':
      case 'span': {
        // A spoiler degrades to the IRC convention: black on black, readable when selected.
        if (name === 'span' && 'data-mx-spoiler' in attrs) return pushColours(1, 1);
        const fg = nearestIrcColour(attrs['data-mx-color'] ?? attrs.color ?? '');
        return pushColours(fg, nearestIrcColour(attrs['data-mx-bg-color'] ?? ''));
      }
      default:
        return undefined; // unknown tag: its text is kept, with the surrounding formatting
    }
  };

  const parser = new Parser(
    {
      onopentag: (name, attrs) => frames.push({ name, close: open(name, attrs) }),
      ontext: (text) => emit(text),
      onclosetag: (name) => {
        // htmlparser2 closes every element it opened, in order (implied closes included); a
        // mismatch can only come from a tag cut off at the end of input, which has no frame.
        const frame = frames[frames.length - 1];
        if (frame?.name !== name) return;
        frames.pop();
        frame.close?.();
      },
    },
    { decodeEntities: true },
  );
  parser.write(html);
  parser.end();
  return out.finish();
}
