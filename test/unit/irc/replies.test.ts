import { describe, expect, it } from 'vitest';
import { replyLine, shortQuote } from '../../../packages/irc/src/convert/reply.js';
import { RecentLines } from '../../../packages/irc/src/replies.js';

describe('shortQuote: the first words of a message on one line', () => {
  it.each<[string, string, number, string]>([
    ['short text as is', 'hello there', 40, 'hello there'],
    ['lines and runs of spaces flattened', 'one\ntwo\r\n  three\0four', 40, 'one two three four'],
    ['cut at a word, marked', 'the quick brown fox jumps over the lazy dog', 20, 'the quick brown fox…'],
    ['a long word cut inside it', 'supercalifragilisticexpialidocious', 10, 'supercali…'],
    ['never half an emoji', '😀😀😀😀😀😀', 4, '😀😀😀…'],
    ['exactly the limit is not cut', '1234567890', 10, '1234567890'],
    ['only blanks: empty', ' \n\t ', 10, ''],
    // found in review: the stored Matrix body's control codes coloured the reply line, or opened a CTCP
    ['control codes dropped', '\x0301,01old \x01msg\x02 \x1F\x7F end', 40, '01,01old msg end'],
    ['a cut leaves no bare colour code', `${'x'.repeat(38)}\x0304,01`, 40, `${'x'.repeat(38)}0…`],
    ['only controls: empty', '\x02\x03\x01', 10, ''],
  ])('%s', (_name, body, max, expected) => {
    const q = shortQuote(body, max);
    expect(q).toBe(expected);
    expect([...q].length).toBeLessThanOrEqual(max);
  });
});

describe('replyLine', () => {
  it.each<[string, Parameters<typeof replyLine>[0], string]>([
    ['recent: nick and text', { nick: 'bob', text: 'yes' }, 'bob: yes'],
    ['old: the quoted form', { nick: 'bob', text: 'yes', quote: 'shall we meet at noon?' }, '<bob> "shall we meet at noon?" <- yes'],
    ['old and long: a short quote', { nick: 'bob', text: 'yes', quote: 'shall we meet at noon or maybe later in the afternoon', quoteLength: 20 }, '<bob> "shall we meet at…" <- yes'],
    ['nothing to quote: nick and text', { nick: 'bob', text: 'yes', quote: '  ' }, 'bob: yes'],
    ['a quote with control codes', { nick: 'bob', text: 'yes', quote: '\x01ACTION waves\x01 \x0304red' }, '<bob> "ACTION waves 04red" <- yes'],
  ])('%s', (_name, opts, expected) => expect(replyLine(opts)).toBe(expected));
});

describe('RecentLines.replyForm: quote an old line only when nobody joined since', () => {
  const rules = { shortWithinSeconds: 300, shortWithinLines: 3 };
  const T = 1_000_000;
  const said = (log: RecentLines, n: number, at = T): void => { for (let i = 0; i < n; i++) log.said('#c', [`filler${i}-${at}`], at); };

  it('a recent line (few lines ago, young) gets the short form', () => {
    const log = new RecentLines();
    log.said('#c', ['m1', '$ev1'], T);
    said(log, 2);
    expect(log.replyForm('#C', ['$ev1'], T + 1000, rules)).toBe('short');
  });

  it('many lines ago: quoted', () => {
    const log = new RecentLines();
    log.joined('#c');
    log.said('#c', ['m1'], T);
    said(log, 3);
    expect(log.replyForm('#c', ['m1'], T + 1000, rules)).toBe('quote');
  });

  it('long ago, even as the last line: quoted', () => {
    const log = new RecentLines();
    log.said('#c', ['m1'], T);
    expect(log.replyForm('#c', ['m1'], T + 301_000, rules)).toBe('quote');
  });

  it('someone joined after it: never quoted', () => {
    const log = new RecentLines();
    log.said('#c', ['m1'], T);
    log.joined('#c');
    said(log, 5);
    expect(log.replyForm('#c', ['m1'], T + 400_000, rules)).toBe('short');
    // a line said after that join may be quoted again
    log.said('#c', ['m2'], T + 1);
    said(log, 5);
    expect(log.replyForm('#c', ['m2'], T + 400_000, rules)).toBe('quote');
  });

  it('a line it never saw (or forgot) gets the short form', () => {
    const log = new RecentLines(4);
    expect(log.replyForm('#c', ['m1'], T, rules)).toBe('short');
    log.said('#c', ['m1'], T);
    said(log, 4); // pushed out of the four remembered lines
    expect(log.replyForm('#c', ['m1'], T + 400_000, rules)).toBe('short');
    expect(log.replyForm('#other', ['m1'], T + 400_000, rules)).toBe('short');
  });
});
