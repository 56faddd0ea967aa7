import { describe, expect, it } from 'vitest';
import { applyLineLimit, maxPayloadBytes, multilineParts, splitForIrc, stripFormatting, utf8Length } from '../../../packages/irc/src/convert/index.js';

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
