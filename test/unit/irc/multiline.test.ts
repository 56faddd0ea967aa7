import { describe, expect, it } from 'vitest';
import { joinMultiline } from '../../../packages/irc/src/convert/multiline.js';

describe('joinMultiline: a draft/multiline batch as one message', () => {
  it.each<[string, [string, boolean][], string]>([
    ['lines joined with line breaks', [['one', false], ['two', false]], 'one\ntwo'],
    ['a concat line continues the one before', [['a long li', false], ['ne split', true], ['next', false]], 'a long line split\nnext'],
    ['concat on the first line is just the first line', [['first', true], ['second', false]], 'first\nsecond'],
    ['blank lines kept', [['one', false], ['', false], ['three', false]], 'one\n\nthree'],
    ['nothing', [], ''],
  ])('%s', (_name, lines, expected) => {
    expect(joinMultiline(lines.map(([text, concat]) => ({ text, concat })))).toBe(expected);
  });
});
