/**
 * The text network.ts writes around messages (media lines, relay names, topics, redaction reasons):
 * what a Matrix user controls must not colour the line, open a CTCP, or push the line past 512 bytes.
 */
import { describe, expect, it } from 'vitest';
import { mediaLine, redactText, relayPrefix, topicText } from '../../../packages/irc/src/network.js';

const C0_OR_DEL = /[\x00-\x1F\x7F]/;
const PREFIX = `a-long-nickname!~ident@${'x'.repeat(63)}`; // as network.ts estimates ours
const wire = (command: string, target: string, text: string): number => Buffer.byteLength(`:${PREFIX} ${command} ${target} :${text}\r\n`, 'utf8');
const wellFormed = (s: string): boolean => s === Buffer.from(s, 'utf8').toString('utf8');

// Found in review: the file name went out as typed, so a name of "\x01DCC SEND …\x01" sent a CTCP to the channel.
describe('mediaLine', () => {
  it.each<[string, { filename?: string; size?: number; url: string }, string, string]>([
    ['name, size and link', { filename: 'cat.png', size: 2048, url: 'https://b/m' }, 'cat.png', 'cat.png (2.0 KiB) https://b/m'],
    ['the body when there is no file name', { url: 'https://b/m' }, 'a picture', 'a picture https://b/m'],
    ['a CTCP in the file name', { filename: '\x01DCC SEND evil.exe 3232235777 6667 1000\x01', size: 1000, url: 'https://b/m' }, 'x', 'DCC SEND evil.exe 3232235777 6667 1000 (1000 B) https://b/m'],
    ['colour codes and line breaks in the body', { url: 'https://b/m' }, '\x0301,01a\r\nQUIT :x', '01,01a QUIT :x https://b/m'],
    ['nothing left of the name', { filename: '\x01\x02', url: 'https://b/m' }, 'x', 'https://b/m'],
  ])('%s', (_name, media, body, expected) => {
    const line = mediaLine(media, body);
    expect(line).toBe(expected);
    expect(line).not.toMatch(C0_OR_DEL);
  });
});

// Found in review: control codes in a relayed user's display name coloured their whole line.
describe('relayPrefix strips control codes and keeps emoji whole', () => {
  const FAMILY = '👨‍👩‍👧‍👦'; // one grapheme cluster of 7 code points
  it.each<[string, string, string]>([
    ['colour codes', 'Eve\x0301,01', '<Eve01,01> '],
    ['bold and CTCP', '\x02Eve\x01', '<Eve> '],
    ['only controls', '\x03\x02', '<someone> '],
    ['not cut inside an emoji sequence', FAMILY.repeat(10), `<${FAMILY.repeat(5)}> `],
  ])('%s', (_name, name, expected) => {
    const prefix = relayPrefix(name, false);
    expect(prefix).toBe(expected);
    expect(prefix).not.toMatch(C0_OR_DEL);
  });
});

// Found in review: a 600-character topic or a long redaction reason made a line past 512 bytes.
describe('topicText and redactText fit the line', () => {
  it.each<[string, string]>([
    ['ASCII', 'x'.repeat(600)],
    ['two-byte characters', 'é'.repeat(600)],
    ['emoji (surrogate pairs)', `a${'😀'.repeat(300)}`],
    ['line breaks', 'a\r\nb\nc'.repeat(200)],
  ])('%s', (_name, text) => {
    const topic = topicText(text, PREFIX, '#channel');
    expect(wire('TOPIC', '#channel', topic)).toBeLessThanOrEqual(512);
    expect(topic).not.toMatch(/[\r\n\0]/);
    expect(wellFormed(topic)).toBe(true);
    expect(text.replace(/[\r\n]+/g, ' ').startsWith(topic)).toBe(true);
    const redact = redactText('msgid-1234', text, PREFIX, '#channel');
    expect(Buffer.byteLength(`:${PREFIX} REDACT #channel ${redact.replace(' ', ' :')}\r\n`)).toBeLessThanOrEqual(512);
    expect(redact).not.toMatch(/[\r\n\0]/);
    expect(wellFormed(redact)).toBe(true);
    expect(redact.startsWith('msgid-1234 ')).toBe(true);
  });

  it('keeps a short topic and reason as they are', () => {
    expect(topicText('hello\nworld', PREFIX, '#c')).toBe('hello world');
    expect(redactText('id1', 'spam', PREFIX, '#c')).toBe('id1 spam');
    expect(redactText('id1', undefined, PREFIX, '#c')).toBe('id1');
    expect(redactText('id1', '', PREFIX, '#c')).toBe('id1');
  });
});
