import { describe, expect, it } from 'vitest';
import { bindServer } from '../../../packages/irc/src/commands.js';
import { multilineParts } from '../../../packages/irc/src/convert/index.js';
import { toCloseIdle, toEvict, type PooledConnection } from '../../../packages/irc/src/pool.js';

const conn = (userId: string, lastActive: number, inPlumbed = false): PooledConnection => ({ userId, lastActive, inPlumbed });

describe('toEvict (maxClients)', () => {
  it.each<[string, PooledConnection[], number, string | undefined, string[]]>([
    ['room left: nobody', [conn('a', 1), conn('b', 2)], 3, 'c', []],
    ['full: the least recently active', [conn('a', 5), conn('b', 1), conn('c', 3)], 3, 'd', ['b']],
    ['over the limit (lowered in the config): as many as needed', [conn('a', 5), conn('b', 1), conn('c', 3)], 2, 'd', ['b', 'c']],
    ['the user about to connect is never chosen', [conn('a', 1), conn('b', 2)], 2, 'a', []],
    ['plumbed rooms do not protect from eviction', [conn('a', 1, true), conn('b', 2)], 2, 'c', ['a']],
    ['a limit of one keeps only the newcomer', [conn('a', 9)], 1, 'b', ['a']],
  ])('%s', (_name, conns, max, keep, expected) => { expect(toEvict(conns, max, keep)).toEqual(expected); });
});

describe('toCloseIdle (idleTimeoutMinutes)', () => {
  const MIN = 60_000;
  it.each<[string, PooledConnection[], number, number, string[]]>([
    ['off (0) closes nothing', [conn('a', 0)], 0, 100 * MIN, []],
    ['idle for the timeout exactly is idle', [conn('a', 0), conn('b', 1)], 10, 10 * MIN, ['a']],
    ['recent activity keeps a connection', [conn('a', 5 * MIN)], 10, 14 * MIN, []],
    ['a connection in a plumbed room is not idle-closed', [conn('a', 0, true), conn('b', 0)], 1, 60 * MIN, ['b']],
  ])('%s', (_name, conns, minutes, now, expected) => { expect(toCloseIdle(conns, minutes, now)).toEqual(expected); });
  it('closes idle connections in plumbed rooms too when idleInPlumbedRooms says so', () => {
    expect(toCloseIdle([conn('a', 0, true), conn('b', 0), conn('c', 59.5 * MIN, true)], 1, 60 * MIN, true)).toEqual(['a', 'b']);
  });
});

describe('bindServer: the server argument is optional in a bridged room', () => {
  const known = (k: string): boolean => ['libera', 'oftc'].includes(k);
  it.each<[string, (string | undefined)[], string[], number, string[], ReturnType<typeof bindServer>]>([
    ['server named', ['libera', 'newnick'], ['nick'], 1, [], { server: 'libera', args: { nick: 'newnick' } }],
    ['server from the room', ['newnick', undefined], ['nick'], 1, ['oftc'], { server: 'oftc', args: { nick: 'newnick' } }],
    ['a nick that is also a server name, from the room', ['libera', undefined], ['nick'], 1, ['oftc'], { server: 'oftc', args: { nick: 'libera' } }],
    ['server named in a room of another server', ['libera', 'newnick'], ['nick'], 1, ['oftc'], { server: 'libera', args: { nick: 'newnick' } }],
    ['optional args: server from the room', ['#chan', 'key', undefined], ['channel', 'key'], 1, ['libera'], { server: 'libera', args: { channel: '#chan', key: 'key' } }],
    ['optional args: named server, one arg', ['libera', '#chan', undefined], ['channel', 'key'], 1, ['libera'], { server: 'libera', args: { channel: '#chan', key: undefined } }],
    ['no args: from the room', [undefined], [], 0, ['libera'], { server: 'libera', args: {} }],
    ['no args: named', ['oftc'], [], 0, ['libera'], { server: 'oftc', args: {} }],
    ['no room server and an unknown first word', ['newnick', undefined], ['nick'], 1, [], 'Unknown IRC server "newnick". Usage: [server] <nick>'],
    ['nothing at all', [undefined, undefined], ['nick'], 1, [], 'Say which IRC server. Usage: [server] <nick>'],
    ['server but a missing argument', ['libera', undefined], ['nick'], 1, [], 'Missing <nick>. Usage: [server] <nick>'],
    ['missing argument in a bridged room', [undefined, undefined], ['nick'], 1, ['libera'], 'Missing <nick>. Usage: [server] <nick>'],
    ['a room on two servers must say which', ['newnick', undefined], ['nick'], 1, ['libera', 'oftc'],
      'This room is linked to channels on several IRC servers (libera, oftc): say which one first. Usage: [server] <nick>'],
    ['too many words', ['a', 'b'], ['nick'], 1, ['libera'], 'Too many arguments. Usage: [server] <nick>'],
  ])('%s', (_name, words, names, required, roomServers, expected) => {
    expect(bindServer(words, names, required, roomServers, known)).toEqual(expected);
  });
});

describe('multilineParts (IRCv3 draft/multiline)', () => {
  it('keeps lines as they are when they fit, empty ones included', () => {
    expect(multilineParts(['one', '', 'three'], 100, {})).toEqual([
      { text: 'one', concat: false }, { text: '', concat: false }, { text: 'three', concat: false },
    ]);
  });

  it('cuts a long line into concat parts that join back to it exactly', () => {
    const line = 'alpha beta gamma delta epsilon';
    const parts = multilineParts([line, 'next'], 12, {})!;
    expect(parts.map((p) => p.concat)).toEqual([false, true, true, false]);
    expect(parts.filter((p, i) => i < 3).map((p) => p.text).join('')).toBe(line);
    expect(parts[0]!.text.endsWith(' ')).toBe(true); // the space stays, before the cut
    for (const p of parts) expect(Buffer.byteLength(p.text)).toBeLessThanOrEqual(12);
  });

  it('cuts inside a word longer than a line without losing or adding anything', () => {
    const parts = multilineParts(['x'.repeat(25)], 10, {})!;
    expect(parts.map((p) => p.text).join('')).toBe('x'.repeat(25));
    expect(parts.slice(1).every((p) => p.concat)).toBe(true);
  });

  it.each<[string, string[], { maxBytes?: number; maxLines?: number }, boolean]>([
    ['within the limits', ['a', 'b', 'c'], { maxBytes: 5, maxLines: 3 }, true],
    ['too many lines', ['a', 'b', 'c'], { maxLines: 2 }, false],
    ['too many bytes (line breaks count)', ['aa', 'bb'], { maxBytes: 4 }, false],
    ['bytes exactly', ['aa', 'bb'], { maxBytes: 5 }, true],
  ])('server limits: %s', (_name, lines, limits, fits) => {
    expect(multilineParts(lines, 100, limits) !== undefined).toBe(fits);
  });
});
