import { describe, expect, it } from 'vitest';
import {
  IRC_PALETTE,
  PLAIN_CODES,
  ircColourToHex,
  nearestIrcColour,
  parseFormatting,
  stripFormatting,
  transitionCodes,
  type IrcCodeState,
  type IrcSpan,
} from '../../../packages/irc/src/convert/index.js';

/** A span as [text, 'b i u s m r fg=#.. bg=#..'] so tables stay readable. */
function describeSpans(spans: IrcSpan[]): [string, string][] {
  return spans.map(({ text, style }) => {
    const flags = [
      style.bold && 'b',
      style.italic && 'i',
      style.underline && 'u',
      style.strikethrough && 's',
      style.monospace && 'm',
      style.reverse && 'r',
      style.fg !== undefined && `fg=${style.fg}`,
      style.bg !== undefined && `bg=${style.bg}`,
    ];
    return [text, flags.filter(Boolean).join(' ')];
  });
}

describe('parseFormatting', () => {
  it.each<[string, string, [string, string][]]>([
    ['plain text', 'plain', [['plain', '']]],
    ['empty', '', []],
    ['only codes', '\x02\x1D\x0F', []],
    ['bold on and off', '\x02bold\x02 normal', [['bold', 'b'], [' normal', '']]],
    [
      'every toggle, then reset',
      '\x1Di\x1Fu\x1Es\x11m\x16r\x0Fx',
      [['i', 'i'], ['u', 'i u'], ['s', 'i u s'], ['m', 'i u s m'], ['r', 'i u s m r'], ['x', '']],
    ],
    ['toggles that cancel merge the text', 'a\x02\x02b', [['ab', '']]],
    ['one-digit colour', '\x034red', [['red', 'fg=#ff0000']]],
    ['two-digit colour with background', '\x0304,02x', [['x', 'fg=#ff0000 bg=#00007f']]],
    ['a comma that is not a colour', '\x0312,hello', [[',hello', 'fg=#0000fc']]],
    ['a trailing comma', '\x034,', [[',', 'fg=#ff0000']]],
    ['at most two digits of foreground', '\x03123', [['3', 'fg=#0000fc']]],
    ['at most two digits of background', '\x034,123', [['3', 'fg=#ff0000 bg=#0000fc']]],
    ['bare \\x03 resets colours, not other styles', '\x02\x034,2a\x03b', [['a', 'b fg=#ff0000 bg=#00007f'], ['b', 'b']]],
    ['a comma after a bare \\x03 is text', '\x03,5x', [[',5x', '']]],
    ['foreground alone keeps the background', '\x034,2a\x035b', [['a', 'fg=#ff0000 bg=#00007f'], ['b', 'fg=#7f0000 bg=#00007f']]],
    ['99 is the default colour', '\x034,2a\x0399,99b', [['a', 'fg=#ff0000 bg=#00007f'], ['b', '']]],
    ['extended palette', '\x0316a\x0398b', [['a', 'fg=#470000'], ['b', 'fg=#ffffff']]],
    ['hex colour', '\x04FF8800hex', [['hex', 'fg=#ff8800']]],
    ['hex colour with background', '\x04ff8800,00FF00x', [['x', 'fg=#ff8800 bg=#00ff00']]],
    ['hex background must be six digits', '\x04ff8800,0f0x', [[',0f0x', 'fg=#ff8800']]],
    ['short hex is a reset, the digits text', '\x034a\x04ff88 x', [['a', 'fg=#ff0000'], ['ff88 x', '']]],
    ['reverse with colours', '\x16\x034,2rev', [['rev', 'r fg=#ff0000 bg=#00007f']]],
    ['other controls are left alone', '\x01ACTION waves\x01', [['\x01ACTION waves\x01', '']]],
    ['html is just text', '\x02<script>', [['<script>', 'b']]],
  ])('%s', (_name, input, expected) => {
    expect(describeSpans(parseFormatting(input))).toEqual(expected);
  });
});

describe('stripFormatting', () => {
  it.each<[string, string]>([
    ['\x02bold\x0F end', 'bold end'],
    ['\x034,2red\x03 plain', 'red plain'],
    ['\x0312,hello', ',hello'],
    ['\x03123', '3'],
    ['\x04ff8800hex', 'hex'],
    ['\x04ff8800,00ff00hex', 'hex'],
    ['\x04zz', 'zz'],
    ['\x1Di\x1Fu\x1Es\x11m\x16r', 'iusmr'],
    ['\x01ACTION waves\x01', '\x01ACTION waves\x01'],
    ['plain text', 'plain text'],
  ])('%j → %j', (input, expected) => {
    expect(stripFormatting(input)).toBe(expected);
  });

  it.each(['\x0312,hello', '\x03,5\x034,\x0399', '\x04abcdef,12345\x04', 'a\x02b\x03c\x0F', '\x03\x03\x0312,34,56'])(
    'agrees with the tokenizer on %j',
    (input) => {
      expect(stripFormatting(input)).toBe(parseFormatting(input).map((s) => s.text).join(''));
    },
  );
});

describe('colours', () => {
  it('has the 99-colour palette', () => {
    expect(IRC_PALETTE).toHaveLength(99);
    expect(IRC_PALETTE.every((c) => /^#[0-9a-f]{6}$/.test(c))).toBe(true);
  });

  it.each<[number, string | undefined]>([
    [0, '#ffffff'],
    [1, '#000000'],
    [4, '#ff0000'],
    [15, '#d2d2d2'],
    [52, '#ff0000'],
    [98, '#ffffff'],
    [99, undefined],
    [-1, undefined],
    [1.5, undefined],
  ])('colour %d is %s', (n, hex) => {
    expect(ircColourToHex(n)).toBe(hex);
  });

  it.each<[string, number | undefined, number | undefined]>([
    ['#ff0000', undefined, 4],
    ['#FF0000', undefined, 4],
    ['#f00', undefined, 4],
    ['#000000', undefined, 1],
    ['#ffffff', undefined, 0],
    ['#0000ff', undefined, 12],
    ['#00ff00', undefined, 9],
    ['#808080', undefined, 14],
    ['#c0c0c0', undefined, 15],
    ['#470000', 99, 16],
    ['#470000', undefined, 5],
    ['red', undefined, undefined],
    ['', undefined, undefined],
    ['#12345', undefined, undefined],
  ])('nearest to %s (palette %s) is %s', (hex, size, expected) => {
    expect(nearestIrcColour(hex, size)).toBe(expected);
  });
});

describe('transitionCodes', () => {
  const s = (extra: Partial<IrcCodeState>): IrcCodeState => ({ ...PLAIN_CODES, ...extra });
  it.each<[string, IrcCodeState, IrcCodeState, string, string]>([
    ['nothing to do', s({}), s({}), 'x', ''],
    ['bold on', s({}), s({ bold: true }), 'x', '\x02'],
    ['bold off, italic on', s({ bold: true }), s({ italic: true }), 'x', '\x02\x1D'],
    ['all toggles', s({}), s({ bold: true, italic: true, underline: true, strikethrough: true, monospace: true }), 'x', '\x02\x1D\x1F\x1E\x11'],
    ['colour is two digits', s({}), s({ fg: 4 }), '2 apples', '\x0304'],
    ['colour with background', s({}), s({ fg: 4, bg: 2 }), 'x', '\x0304,02'],
    ['background change', s({ fg: 4 }), s({ fg: 4, bg: 2 }), 'x', '\x0304,02'],
    ['foreground change keeps background', s({ fg: 4, bg: 2 }), s({ fg: 5, bg: 2 }), 'x', '\x0305'],
    ['colour off resets, then restores toggles', s({ bold: true, fg: 4 }), s({ bold: true }), '5', '\x0F\x02'],
    ['background only', s({}), s({ bg: 2 }), 'x', '\x0399,02'],
    ['text that looks like a background', s({}), s({ fg: 4 }), ',5 items', '\x0304\x02\x02'],
    ['a comma without digit needs no guard', s({}), s({ fg: 4 }), ', and', '\x0304'],
    // found by convert-fuzz: the digit may be in the text written next, with no codes between
    ['a lone comma is guarded', s({}), s({ fg: 4 }), ',', '\x0304\x02\x02'],
  ])('%s', (_name, from, to, next, expected) => {
    expect(transitionCodes(from, to, next)).toBe(expected);
  });
});
