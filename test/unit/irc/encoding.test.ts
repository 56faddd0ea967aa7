import { describe, expect, it } from 'vitest';
import { knownEncoding, lineDecoder } from '../../../packages/irc/src/convert/encoding.js';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';

const bytes = (...parts: (string | number[])[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

describe('lineDecoder: UTF-8, else the fallback encoding', () => {
  const cp1252 = lineDecoder('windows-1252');
  it.each<[string, Buffer, string]>([
    ['UTF-8 stays UTF-8', bytes('PRIVMSG #c :café ☕'), 'PRIVMSG #c :café ☕'],
    ['Latin-1 bytes are read as windows-1252', bytes('PRIVMSG #c :caf', [0xe9, 0x20, 0x80]), 'PRIVMSG #c :café €'],
    ['windows-1252 quotes and dashes, not Latin-1 control characters', bytes([0x93, 0x68, 0x69, 0x94, 0x20, 0x97, 0x20, 0x81]), '\u201chi\u201d \u2014 \u0081'],
    ['a real U+FFFD in valid UTF-8 is kept', bytes('PRIVMSG #c :broken \uFFFD'), 'PRIVMSG #c :broken \uFFFD'],
    ['one bad byte makes the whole line legacy (UTF-8 and Latin-1 are not mixed)', bytes('x ', [0xc3, 0xa9], ' ', [0xe9]), 'x Ã© é'],
  ])('%s', (_name, buf, expected) => {
    expect(cp1252(buf, 0, buf.length)).toBe(expected);
  });

  it('reads only its part of the buffer', () => {
    const buf = bytes('first\r\n', [0x63, 0x61, 0x66, 0xe9], '\r\nthird');
    expect(cp1252(buf, 7, 11)).toBe('café');
  });

  it('another fallback (KOI8-R), and none: U+FFFD', () => {
    const buf = bytes([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]); // "Привет" in KOI8-R
    expect(lineDecoder('koi8-r')(buf, 0, buf.length)).toBe('Привет');
    expect(lineDecoder(undefined)(buf, 0, buf.length)).toMatch(/^\uFFFD+$/);
  });

  it('the config takes the encodings TextDecoder knows, windows-1252 by default, and refuses others by name', () => {
    expect(knownEncoding('iso-8859-15')).toBe(true);
    expect(knownEncoding('klingon')).toBe(false);
    const server = (extra: Record<string, unknown>) => ircConfigSchema.safeParse({ servers: { t: { host: 'h', ...extra } } });
    expect(server({}).data?.servers['t']?.encodingFallback).toBe('windows-1252');
    const bad = server({ encodingFallback: 'klingon' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path.join('.')).toBe('servers.t.encodingFallback');
  });
});
