import { describe, expect, it } from 'vitest';
import { ircToMatrix } from '../../../packages/irc/src/convert/ircToMatrix.js';
import { joinMultiline } from '../../../packages/irc/src/convert/multiline.js';
import { multilineParts } from '../../../packages/irc/src/convert/split.js';

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

describe('a draft/multiline batch to Matrix: formatting ends with each line, not with a concat piece', () => {
  const toMatrix = (lines: [string, boolean][]) => ircToMatrix(joinMultiline(lines.map(([text, concat]) => ({ text, concat }))));

  it.each<[string, [string, boolean][], { body: string; formattedBody?: string }]>([
    [
      'each line starts plain',
      [['\x02first', false], ['\x02second\x02 plain', false], ['third', false]],
      { body: 'first\nsecond plain\nthird', formattedBody: '<b>first</b><br><b>second</b> plain<br>third' },
    ],
    ['bold left open on a line', [['\x02bold line', false], ['plain line', false]], { body: 'bold line\nplain line', formattedBody: '<b>bold line</b><br>plain line' }],
    ['a concat piece keeps the style of its line', [['\x02bold li', false], ['ne\x02 plain', true]], { body: 'bold line plain', formattedBody: '<b>bold line</b> plain' }],
    [
      'a concat piece, then a new line that starts plain',
      [['\x1Dit', false], ['alic', true], ['next', false]],
      { body: 'italic\nnext', formattedBody: '<i>italic</i><br>next' },
    ],
  ])('%s', (_name, lines, expected) => {
    expect(toMatrix(lines)).toEqual(expected);
  });

  it('reads back what our own sender splits, concat pieces included', () => {
    const lines = [`\x02${'bold '.repeat(30)}\x02tail`, '\x1Dnext'];
    const parts = multilineParts(lines, 60, {});
    expect(parts?.some((p) => p.concat)).toBe(true);
    expect(ircToMatrix(joinMultiline(parts ?? []))).toEqual({
      body: `${'bold '.repeat(30)}tail\nnext`,
      formattedBody: `<b>${'bold '.repeat(30)}</b>tail<br><i>next</i>`,
    });
  });
});
