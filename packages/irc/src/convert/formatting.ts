/**
 * mIRC formatting codes, both ways: a tokenizer that turns IRC text into styled spans (for
 * IRC → Matrix), and the code emitter that turns a change of style into the shortest safe run of
 * codes (for Matrix → IRC). Pure; no I/O.
 *
 * The reference is https://modern.ircdocs.horse/formatting.html. Points that are easy to get wrong:
 * - `\x03` takes one or two digits of foreground, then optionally `,` and one or two digits of
 *   background. A comma not followed by a digit is text (`\x0312,hello` is blue ",hello").
 *   A bare `\x03` (no digit) resets both colours. Colour 99 means "default".
 * - `\x04` is the same with six hex digits (`\x04RRGGBB[,RRGGBB]`); a bare `\x04` resets colours.
 * - Reverse (`\x16`) swaps foreground and background; `\x0F` resets everything.
 */

export const IrcCode = {
  BOLD: '\x02',
  COLOUR: '\x03',
  HEX_COLOUR: '\x04',
  RESET: '\x0F',
  MONOSPACE: '\x11',
  REVERSE: '\x16',
  ITALIC: '\x1D',
  STRIKETHROUGH: '\x1E',
  UNDERLINE: '\x1F',
} as const;

/**
 * The 99-colour palette (index = colour number, 0–98) from modern.ircdocs.horse: 0–15 are the
 * classic mIRC colours every client knows, 16–98 the extended set. 99 is "default" and has no entry.
 */
export const IRC_PALETTE: readonly string[] = [
  '#ffffff', '#000000', '#00007f', '#009300', '#ff0000', '#7f0000', '#9c009c', '#fc7f00',
  '#ffff00', '#00fc00', '#009393', '#00ffff', '#0000fc', '#ff00ff', '#7f7f7f', '#d2d2d2',
  '#470000', '#472100', '#474700', '#324700', '#004700', '#00472c', '#004747', '#002747',
  '#000047', '#2e0047', '#470047', '#47002a', '#740000', '#743a00', '#747400', '#517400',
  '#007400', '#007449', '#007474', '#004074', '#000074', '#4b0074', '#740074', '#740045',
  '#b50000', '#b56300', '#b5b500', '#7db500', '#00b500', '#00b571', '#00b5b5', '#0063b5',
  '#0000b5', '#7500b5', '#b500b5', '#b5006b', '#ff0000', '#ff8c00', '#ffff00', '#b2ff00',
  '#00ff00', '#00ffa0', '#00ffff', '#008cff', '#0000ff', '#a500ff', '#ff00ff', '#ff0098',
  '#ff5959', '#ffb459', '#ffff71', '#cfff60', '#6fff6f', '#65ffc9', '#6dffff', '#59b4ff',
  '#5959ff', '#c459ff', '#ff66ff', '#ff59bc', '#ff9c9c', '#ffd39c', '#ffff9c', '#e2ff9c',
  '#9cff9c', '#9cffdb', '#9cffff', '#9cd3ff', '#9c9cff', '#dc9cff', '#ff9cff', '#ff94d3',
  '#000000', '#131313', '#282828', '#363636', '#4d4d4d', '#656565', '#818181', '#9f9f9f',
  '#bcbcbc', '#e2e2e2', '#ffffff',
];

/** The style of a run of IRC text. Colours are `#rrggbb` (lower case); absent = client default. */
export interface IrcStyle {
  readonly bold: boolean;
  readonly italic: boolean;
  readonly underline: boolean;
  readonly strikethrough: boolean;
  readonly monospace: boolean;
  readonly reverse: boolean;
  readonly fg?: string;
  readonly bg?: string;
}

export interface IrcSpan {
  readonly text: string;
  readonly style: IrcStyle;
}

export const PLAIN_STYLE: IrcStyle = Object.freeze({
  bold: false,
  italic: false,
  underline: false,
  strikethrough: false,
  monospace: false,
  reverse: false,
});

type Toggle = 'bold' | 'italic' | 'underline' | 'strikethrough' | 'monospace' | 'reverse';

const TOGGLES: Readonly<Record<string, Toggle>> = {
  [IrcCode.BOLD]: 'bold',
  [IrcCode.ITALIC]: 'italic',
  [IrcCode.UNDERLINE]: 'underline',
  [IrcCode.STRIKETHROUGH]: 'strikethrough',
  [IrcCode.MONOSPACE]: 'monospace',
  [IrcCode.REVERSE]: 'reverse',
};

/** Every code {@link parseFormatting} consumes, with its parameters. Kept in step with the tokenizer. */
const FORMATTING_RE = /\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?|[\x02\x0F\x11\x16\x1D\x1E\x1F]/g;

/** `#rrggbb` for an mIRC colour number, or undefined for 99 ("default") and anything out of range. */
export function ircColourToHex(colour: number): string | undefined {
  return Number.isInteger(colour) ? IRC_PALETTE[colour] : undefined;
}

/** Remove every mIRC formatting code (with its colour parameters), keeping the text. */
export function stripFormatting(text: string): string {
  return text.replace(FORMATTING_RE, '');
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const HEX6 = /^[0-9a-fA-F]{6}$/;

/** Read one or two digits at `at`; returns the number and where reading stopped. */
function readDigits(text: string, at: number): [number | undefined, number] {
  if (!isDigit(text[at])) return [undefined, at];
  const end = isDigit(text[at + 1]) ? at + 2 : at + 1;
  return [Number(text.slice(at, end)), end];
}

/**
 * Tokenize IRC text into spans of uniformly styled text. Adjacent spans always differ in style;
 * the concatenated span texts equal {@link stripFormatting} of the input. Control characters other
 * than the formatting codes are left in the text (the caller decides what to do with them).
 */
export function parseFormatting(text: string): IrcSpan[] {
  const spans: IrcSpan[] = [];
  let style: IrcStyle = PLAIN_STYLE;
  let runStart = 0;
  let i = 0;

  const flush = (end: number): void => {
    if (end <= runStart) return;
    const chunk = text.slice(runStart, end);
    const last = spans[spans.length - 1];
    if (last && sameStyle(last.style, style)) spans[spans.length - 1] = { text: last.text + chunk, style };
    else spans.push({ text: chunk, style });
  };

  while (i < text.length) {
    const c = text[i] as string;
    const toggle = TOGGLES[c];
    if (toggle !== undefined) {
      flush(i);
      style = { ...style, [toggle]: !style[toggle] };
      runStart = ++i;
    } else if (c === IrcCode.RESET) {
      flush(i);
      style = PLAIN_STYLE;
      runStart = ++i;
    } else if (c === IrcCode.COLOUR) {
      flush(i);
      const [fg, afterFg] = readDigits(text, i + 1);
      i = afterFg;
      if (fg === undefined) {
        style = withColours(style, undefined, undefined);
      } else {
        let bg: string | undefined = style.bg;
        if (text[i] === ',' && isDigit(text[i + 1])) {
          const [bgNum, afterBg] = readDigits(text, i + 1);
          bg = ircColourToHex(bgNum as number);
          i = afterBg;
        }
        style = withColours(style, ircColourToHex(fg), bg);
      }
      runStart = i;
    } else if (c === IrcCode.HEX_COLOUR) {
      flush(i);
      const fg = text.slice(i + 1, i + 7);
      if (HEX6.test(fg)) {
        i += 7;
        let bg = style.bg;
        const bgHex = text.slice(i + 1, i + 7);
        if (text[i] === ',' && HEX6.test(bgHex)) {
          bg = `#${bgHex.toLowerCase()}`;
          i += 7;
        }
        style = withColours(style, `#${fg.toLowerCase()}`, bg);
      } else {
        i += 1;
        style = withColours(style, undefined, undefined);
      }
      runStart = i;
    } else {
      i++;
    }
  }
  flush(text.length);
  return spans;
}

function withColours(style: IrcStyle, fg: string | undefined, bg: string | undefined): IrcStyle {
  const { fg: _fg, bg: _bg, ...rest } = style;
  return { ...rest, ...(fg !== undefined && { fg }), ...(bg !== undefined && { bg }) };
}

export function sameStyle(a: IrcStyle, b: IrcStyle): boolean {
  return (
    a.bold === b.bold &&
    a.italic === b.italic &&
    a.underline === b.underline &&
    a.strikethrough === b.strikethrough &&
    a.monospace === b.monospace &&
    a.reverse === b.reverse &&
    a.fg === b.fg &&
    a.bg === b.bg
  );
}

// ---------------------------------------------------------------------------------------------
// Matrix → IRC: colour matching and code emission.

function parseHex(hex: string): [number, number, number] | undefined {
  const m = /^#?([0-9a-f]{6}|[0-9a-f]{3})$/i.exec(hex.trim());
  if (!m) return undefined;
  let digits = m[1] as string;
  if (digits.length === 3) digits = [...digits].map((d) => d + d).join('');
  const n = parseInt(digits, 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

/**
 * The mIRC colour number closest to a CSS hex colour (`#rrggbb` or `#rgb`), or undefined when the
 * value is not a hex colour. By default only the 16 classic colours are candidates: every IRC
 * client renders those, while the extended 16–98 range is still missing from many. Distance is the
 * "redmean" weighted RGB distance, a cheap approximation of perceived difference.
 */
export function nearestIrcColour(hex: string, paletteSize = 16): number | undefined {
  const rgb = parseHex(hex);
  if (!rgb) return undefined;
  let best = 0;
  let bestDistance = Infinity;
  const size = Math.min(Math.max(1, paletteSize), IRC_PALETTE.length);
  for (let i = 0; i < size; i++) {
    const [r, g, b] = parseHex(IRC_PALETTE[i] as string) as [number, number, number];
    const rMean = (rgb[0] + r) / 2;
    const dr = rgb[0] - r;
    const dg = rgb[1] - g;
    const db = rgb[2] - b;
    const distance = (2 + rMean / 256) * dr * dr + 4 * dg * dg + (2 + (255 - rMean) / 256) * db * db;
    if (distance < bestDistance) {
      bestDistance = distance;
      best = i;
    }
  }
  return best;
}

/** The formatting state of an outgoing IRC line; colours are mIRC numbers. */
export interface IrcCodeState {
  readonly bold: boolean;
  readonly italic: boolean;
  readonly underline: boolean;
  readonly strikethrough: boolean;
  readonly monospace: boolean;
  readonly fg?: number;
  readonly bg?: number;
}

export const PLAIN_CODES: IrcCodeState = Object.freeze({
  bold: false,
  italic: false,
  underline: false,
  strikethrough: false,
  monospace: false,
});

const CODE_TOGGLES: readonly [keyof IrcCodeState & Toggle, string][] = [
  ['bold', IrcCode.BOLD],
  ['italic', IrcCode.ITALIC],
  ['underline', IrcCode.UNDERLINE],
  ['strikethrough', IrcCode.STRIKETHROUGH],
  ['monospace', IrcCode.MONOSPACE],
];

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * The codes that turn formatting state `from` into `to`, to be written just before `nextText`.
 * Colours are always written with two digits so a following digit cannot be read as part of the
 * colour; dropping a colour uses `\x0F` (a bare `\x03` would swallow a following digit) and then
 * restores the toggles; and when a foreground-only colour is followed by text such as ",5", an
 * empty bold pair separates them so the text is not read as a background. A `nextText` of just
 * "," is guarded too: the text after it may come in the next call, with no codes between.
 */
export function transitionCodes(from: IrcCodeState, to: IrcCodeState, nextText: string): string {
  let out = '';
  let current = from;
  if ((current.fg !== undefined && to.fg === undefined) || (current.bg !== undefined && to.bg === undefined)) {
    out += IrcCode.RESET;
    current = PLAIN_CODES;
  }
  for (const [key, code] of CODE_TOGGLES) {
    if (current[key] !== to[key]) out += code;
  }
  if (to.fg !== current.fg || to.bg !== current.bg) {
    out += IrcCode.COLOUR + pad2(to.fg ?? 99);
    if (to.bg !== undefined && to.bg !== current.bg) out += `,${pad2(to.bg)}`;
    else if (/^,(?:\d|$)/.test(nextText)) out += IrcCode.BOLD + IrcCode.BOLD;
  }
  return out;
}
