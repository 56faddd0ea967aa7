import { describe, expect, it } from 'vitest';
import {
  applyLineLimit, matrixToIrc, maxPayloadBytes, multilineParts, parseFormatting, splitForIrc, splitFormattedForIrc, stripFormatting, truncateCodePoints,
  truncateUtf8, utf8Length,
} from '../../../packages/irc/src/convert/index.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const FAMILY = '👨‍👩‍👧‍👦'; // 4 emoji joined by 3 ZWJ: 25 bytes, one grapheme

describe('splitForIrc', () => {
  it.each<[string, string, number, string[]]>([
    ['fits', 'hello', 10, ['hello']],
    ['exactly the limit', 'hello', 5, ['hello']],
    ['empty line', '', 10, []],
    ['breaks at the last space that fits', 'hello wonderful world', 10, ['hello', 'wonderful', 'world']],
    ['packs words up to the limit', 'aa bb cc dd ee', 8, ['aa bb cc', 'dd ee']],
    ['a word longer than the limit is cut', 'abcdefghij', 4, ['abcd', 'efgh', 'ij']],
    ['a space after a cut is not carried over', 'abcd efgh', 4, ['abcd', 'efgh']],
    ['only a space at the very start is no break point', ' abcdef', 4, [' abc', 'def']],
    ['several spaces', 'a  b', 2, ['a ', 'b']],
    ['CJK is 3 bytes a character', '日本語のテキスト', 7, ['日本', '語の', 'テキ', 'スト']],
    ['CJK with spaces', '日本語 のテキスト', 12, ['日本語', 'のテキス', 'ト']],
    ['emoji are never cut', '😀😀😀', 8, ['😀😀', '😀']],
    ['one emoji per chunk', '😀😀😀', 5, ['😀', '😀', '😀']],
    ['a ZWJ sequence stays whole when it fits', `${FAMILY}${FAMILY}`, 25, [FAMILY, FAMILY]],
    ['a ZWJ sequence longer than the limit is cut between code points', FAMILY, 10, ['👨‍', '👩‍', '👧‍', '👦']],
    ['a flag stays whole', '🇫🇷🇫🇷', 8, ['🇫🇷', '🇫🇷']],
    ['combining marks stay with their letter', 'e\u0301e\u0301e\u0301e\u0301', 4, ['e\u0301', 'e\u0301', 'e\u0301', 'e\u0301']],
    ['a colour code is not cut from its digits', 'ab\x0304cd', 4, ['ab', '\x0304c', 'd']],
    ['nor from its background', 'ab\x0304,12c', 7, ['ab', '\x0304,12c']],
    ['mixed scripts', 'héllo wörld 😀 日本', 8, ['héllo', 'wörld', '😀', '日本']],
    ['a space that overflows is the break', 'aaaa bbbb', 4, ['aaaa', 'bbbb']],
  ])('%s', (_name, line, maxBytes, expected) => {
    const chunks = splitForIrc(line, maxBytes);
    expect(chunks).toEqual(expected);
    for (const chunk of chunks) expect(utf8Length(chunk)).toBeLessThanOrEqual(maxBytes);
  });

  it.each<[number]>([[0], [-1], [1.5], [NaN]])('rejects maxBytes %s', (maxBytes) => {
    expect(() => splitForIrc('text', maxBytes)).toThrow(RangeError);
  });

  it('rejects a limit smaller than one character', () => {
    expect(() => splitForIrc('😀😀', 3)).toThrow(RangeError);
    expect(splitForIrc('abc', 1)).toEqual(['a', 'b', 'c']);
  });

  it('keeps every chunk within the limit on a huge mixed line', () => {
    const line = 'word 😀 日本語 e\u0301 \x0304red\x03 '.repeat(5_000) + 'x'.repeat(2_000);
    for (const maxBytes of [400, 437, 479]) {
      const chunks = splitForIrc(line, maxBytes);
      for (const chunk of chunks) {
        expect(utf8Length(chunk)).toBeLessThanOrEqual(maxBytes);
        expect(chunk).not.toMatch(LONE_SURROGATE);
      }
      // No colour code cut from its digits (they would turn into text).
      expect(chunks.map(stripFormatting).join('').replace(/ /g, '')).toBe(stripFormatting(line).replace(/ /g, ''));
      // Only break spaces are dropped: nothing else is lost or reordered.
      expect(chunks.join('').replace(/ /g, '')).toBe(line.replace(/ /g, ''));
    }
  });
});

describe('maxPayloadBytes', () => {
  it.each<[string, string, string, number]>([
    ['nick!user@host', 'PRIVMSG', '#chan', 512 - 2 - ':nick!user@host PRIVMSG #chan :'.length],
    ['nick!user@host', 'PRIVMSG', '#chan', 479],
    ['nick!user@host', 'NOTICE', '#chan', 480],
    ['nick!user@host', 'PRIVMSG', '#café', 478],
    ['a-very-long-nickname!~someident@2001-db8-1234-5678.example.isp.net', 'PRIVMSG', '#matrix-bridge-test', 413],
  ])('%s %s %s → %d', (prefix, command, target, expected) => {
    expect(maxPayloadBytes(prefix, command, target)).toBe(expected);
  });

  it('fits a whole IRC line', () => {
    const prefix = 'nick!user@host';
    const max = maxPayloadBytes(prefix, 'PRIVMSG', '#chan');
    for (const chunk of splitForIrc('日本語 😀 '.repeat(200), max)) {
      expect(utf8Length(`:${prefix} PRIVMSG #chan :${chunk}\r\n`)).toBeLessThanOrEqual(512);
    }
  });
});

describe('applyLineLimit', () => {
  it.each<[string, string[], number, { send: string[]; overflow: boolean }]>([
    ['under the limit', ['a', 'b'], 3, { send: ['a', 'b'], overflow: false }],
    ['at the limit', ['a', 'b', 'c'], 3, { send: ['a', 'b', 'c'], overflow: false }],
    ['over the limit leaves room for the link line', ['a', 'b', 'c', 'd'], 3, { send: ['a', 'b'], overflow: true }],
    ['limit of one', ['a', 'b'], 1, { send: [], overflow: true }],
    ['no lines', [], 3, { send: [], overflow: false }],
    ['no limit', ['a', 'b', 'c'], Infinity, { send: ['a', 'b', 'c'], overflow: false }],
  ])('%s', (_name, lines, limit, expected) => {
    expect(applyLineLimit(lines, limit)).toEqual(expected);
  });

  it.each<[number]>([[0], [-1], [1.5], [NaN]])('rejects lineLimit %s', (limit) => {
    expect(() => applyLineLimit(['a'], limit)).toThrow(RangeError);
  });

  it('does not hand back the caller’s array', () => {
    const lines = ['a'];
    const { send } = applyLineLimit(lines, 3);
    send.push('b');
    expect(lines).toEqual(['a']);
  });
});

// Found by convert-fuzz: the spaces splitForIrc drops after its last cut were lost, so the batch
// did not join back to the line (the rest of multilineParts is tested in pool-and-commands.test.ts).
describe('multilineParts keeps the spaces at the end of a cut line', () => {
  it.each<[string, string, number, { text: string; concat: boolean }[] | undefined]>([
    ['one space after the last cut', 'abcd efgh ', 5, [{ text: 'abcd ', concat: false }, { text: 'efgh ', concat: true }]],
    ['a line that only overflows by its trailing space', 'abcd ', 5, [{ text: 'abcd ', concat: false }]],
    ['more trailing spaces than fit: no batch', 'abcd   ', 5, undefined],
  ])('%s', (_name, line, maxBytes, expected) => {
    expect(multilineParts([line], maxBytes, {})).toEqual(expected);
  });
});

/** Each visible character of IRC text with the style a client shows it in (spaces left out: the splitter drops break spaces). */
function styled(texts: readonly string[]): string[] {
  return texts.flatMap((t) => parseFormatting(t).flatMap(({ text, style }) => [...text.replace(/ /g, '')].map((c) => `${c} ${JSON.stringify(style)}`)));
}
const html = (formatted_body: string): string[] => matrixToIrc({ body: '', format: 'org.matrix.custom.html', formatted_body });

// Found in review: chunks after the first started unformatted, while codes further on still toggled,
// so a spoiler was shown in clear from the second line and the text after a long bold run was bold.
describe('splitFormattedForIrc: every chunk shows the formatting the line gave it', () => {
  it.each<[string, string, number, string[]]>([
    ['bold carried over, closed before the cut', '\x02aaaaaaaaaaaaaa bbbb\x02 c', 20, ['\x02aaaaaaaaaaaaaa\x0F', '\x02bbbb\x02 c']],
    ['colours with background', '\x0304,01aaaaaaaaaa bbbbbbbbbbbb', 26, ['\x0304,01aaaaaaaaaa\x0F', '\x0304,01bbbbbbbbbbbb']],
    ['a one-digit colour is written with two before a digit', `\x034aaaaaaaaaaaaa ${'1'.repeat(15)}`, 25, ['\x034aaaaaaaaaaaaa\x0F', `\x0304${'1'.repeat(15)}`]],
    ['a foreground alone before a comma gets a guard', `\x0304aaaaaaaaaaaa ${',5'.repeat(8)}`, 25, ['\x0304aaaaaaaaaaaa\x0F', `\x0304\x02\x02${',5'.repeat(8)}`]],
    ['a reset before the cut: nothing carried', '\x02aaaaaaaaaaaaaaa\x0F bbbbbbbb', 20, ['\x02aaaaaaaaaaaaaaa\x0F', 'bbbbbbbb']],
    ['plain text as splitForIrc cuts it', 'hello wonderful world', 10, ['hello', 'wonderful', 'world']],
    ['a line that fits is untouched', '\x02bold', 10, ['\x02bold']],
    ['empty', '', 10, []],
  ])('%s', (_name, line, maxBytes, expected) => {
    const chunks = splitFormattedForIrc(line, maxBytes);
    expect(chunks).toEqual(expected);
    for (const chunk of chunks) expect(utf8Length(chunk)).toBeLessThanOrEqual(maxBytes);
    expect(styled(chunks)).toEqual(styled([line]));
  });

  it.each<[string, string]>([
    ['a spoiler stays black on black on every line', `<span data-mx-spoiler>${'secret '.repeat(30)}</span> after`],
    ['text after a long bold run is not bold', `<b>${'word '.repeat(30)}</b> tail`],
    ['nested styles and colours', `<i>${'x '.repeat(20)}<font color="#ff0000">${'r '.repeat(20)}<b>${'b '.repeat(20)}</b></font><span data-mx-bg-color="#0000ff">${'y '.repeat(30)}</span></i> end`],
    ['a colour before a comma', `<font color="#ff0000">${'a '.repeat(80)},5 ,5 ,5</font>`],
    ['hex colours and reverse', `\x16\x04aabbcc,ddeeff${'h '.repeat(30)}\x0305${'f '.repeat(30)}\x16 done`],
  ])('%s', (_name, input) => {
    const lines = input.startsWith('<') ? html(input) : [input];
    for (const maxBytes of [40, 41, 47, 60, 100]) {
      const chunks = lines.flatMap((l) => splitFormattedForIrc(l, maxBytes));
      expect(chunks.length).toBeGreaterThan(1);
      for (const chunk of chunks) expect(utf8Length(chunk)).toBeLessThanOrEqual(maxBytes);
      expect(styled(chunks)).toEqual(styled(lines));
    }
  });

  it('rejects a bad limit, and cuts without carrying when the limit leaves no room for codes', () => {
    expect(() => splitFormattedForIrc('x', 0)).toThrow(RangeError);
    expect(splitFormattedForIrc('ab\x0304cd', 4)).toEqual(splitForIrc('ab\x0304cd', 4));
  });
});

// Found in review: the limit counted logical lines, so one 36 KB paragraph with a limit of 3 went out as 86 IRC lines.
describe('applyLineLimit counts IRC lines when given their size', () => {
  it('a long single paragraph is over the limit', () => {
    const lines = matrixToIrc({ body: 'lorem ipsum dolor '.repeat(2000) });
    expect(lines).toHaveLength(1);
    const { send, overflow } = applyLineLimit(lines, 3, 420);
    expect(overflow).toBe(true);
    expect(send).toHaveLength(2); // and the link line makes 3
    for (const line of send) expect(utf8Length(line)).toBeLessThanOrEqual(420);
  });

  it.each<[string, string[], number, number, { send: string[]; overflow: boolean }]>([
    ['within the limit: the lines as given', ['a', 'b'], 3, 400, { send: ['a', 'b'], overflow: false }],
    ['one line cut into exactly the limit', ['aaaa bbbb cccc'], 3, 4, { send: ['aaaa bbbb cccc'], overflow: false }],
    ['one line cut into more: its first IRC lines', ['aaaa bbbb cccc dddd'], 3, 4, { send: ['aaaa', 'bbbb'], overflow: true }],
    ['formatting carried into the lines kept', ['\x02aaaaaaaaaaaaaaaa bbbb cccc dddd eeee ffff gggg hhhh'], 3, 20, { send: ['\x02aaaaaaaaaaaaaaaa\x0F', '\x02bbbb cccc dddd\x0F'], overflow: true }],
    ['no limit', ['aaaa bbbb cccc dddd'], Infinity, 4, { send: ['aaaa bbbb cccc dddd'], overflow: false }],
  ])('%s', (_name, lines, limit, maxBytes, expected) => {
    expect(applyLineLimit(lines, limit, maxBytes)).toEqual(expected);
  });
});

describe('truncateUtf8: a prefix within a byte count, cut between code points', () => {
  it.each<[string, string, number, string]>([
    ['fits', 'hello', 5, 'hello'],
    ['ASCII', 'hello', 3, 'hel'],
    ['never inside a character', 'éé', 3, 'é'],
    ['never inside a surrogate pair', 'a😀', 4, 'a'],
    ['CJK', '日本語', 8, '日本'],
    ['nothing fits', '😀', 3, ''],
  ])('%s', (_name, text, maxBytes, expected) => {
    expect(truncateUtf8(text, maxBytes)).toBe(expected);
  });
});

describe('truncateCodePoints: at most n code points, whole grapheme clusters', () => {
  const FAMILY = '👨‍👩‍👧‍👦'; // 7 code points
  it.each<[string, string, number, string]>([
    ['fits', 'abc', 3, 'abc'],
    ['cut', 'abcdef', 3, 'abc'],
    ['an emoji sequence is not cut', `ab${FAMILY}`, 8, 'ab'],
    ['combining marks stay with their letter', 'ae\u0301', 2, 'a'],
    ['a first cluster too long is cut between code points', FAMILY, 3, [...FAMILY].slice(0, 3).join('')],
  ])('%s', (_name, text, max, expected) => {
    expect(truncateCodePoints(text, max)).toBe(expected);
  });
});
