import { describe, expect, it } from 'vitest';
import { parseLine } from '../../../packages/irc/src/ircline.js';
import { describeEdit, relayPrefix } from '../../../packages/irc/src/network.js';
import { channelChat, ircLower, moveChannel, parseAliasLocalpart, parseChat, parseLinkTarget, pmChat, ghostLocalpart, ircUser } from '../../../packages/irc/src/ids.js';
import { fillTemplate, nextNick, sanitiseNick, sanitiseUsername, templateNick } from '../../../packages/irc/src/nicks.js';

describe('parseLine', () => {
  it.each([
    ['PING :abc', { tags: {}, nick: '', command: 'PING', params: ['abc'] }],
    [':irc.x 001 Alice[m] :Welcome', { tags: {}, nick: 'irc.x', command: '001', params: ['Alice[m]', 'Welcome'] }],
    ['@msgid=abc;label=t1;time=2026 :a!u@h PRIVMSG #c :hi there', { tags: { msgid: 'abc', label: 't1', time: '2026' }, nick: 'a', command: 'PRIVMSG', params: ['#c', 'hi there'] }],
    ['@+draft/react=\\:)\\s;+draft/reply=x :a!u@h TAGMSG #c', { tags: { '+draft/react': ';) ', '+draft/reply': 'x' }, nick: 'a', command: 'TAGMSG', params: ['#c'] }],
    [':s CAP * LS * :sasl=PLAIN echo-message', { tags: {}, nick: 's', command: 'CAP', params: ['*', 'LS', '*', 'sasl=PLAIN echo-message'] }],
    [':a!u@h JOIN #chan', { tags: {}, nick: 'a', command: 'JOIN', params: ['#chan'] }],
    [':a!u@h JOIN :#chan', { tags: {}, nick: 'a', command: 'JOIN', params: ['#chan'] }],
    [':s FAIL REDACT REDACT_FORBIDDEN #c id :You are not authorized', { tags: {}, nick: 's', command: 'FAIL', params: ['REDACT', 'REDACT_FORBIDDEN', '#c', 'id', 'You are not authorized'] }],
  ])('parses %j', (line, expected) => { expect(parseLine(line)).toEqual(expected); });

  it('returns undefined for an empty command', () => { expect(parseLine(':prefix-only ')).toBeUndefined(); });
});

describe('describeEdit', () => {
  it.each([
    ['the quick brwn fox', 'the quick brown fox', 's/brwn/brown/'],
    ['hello world', 'hello there world', 's/world/there world/'], // an insertion widens to the next word
    ['hello', 'goodbye', 's/hello/goodbye/'],
    [undefined, 'new text', '* new text'],
    ['a/b path', 'a/c path', '* a/c path'],
    ['line one\nline two', 'line one\nline 2', '* line one\nline 2'],
    ['x'.repeat(40), 'y'.repeat(40), `* ${'y'.repeat(40)}`],
  ])('%j → %j is %j', (prev, next, out) => { expect(describeEdit(prev, next)).toBe(out); });
});

describe('ids', () => {
  it('folds case by RFC 1459', () => { expect(ircLower('Nick[Away]\\~')).toBe('nick{away}|^'); });
  it('builds and parses chat ids', () => {
    expect(channelChat('libera', '#Rust')).toBe('libera/#rust');
    expect(parseChat('libera/#rust')).toEqual({ kind: 'channel', server: 'libera', channel: '#rust' });
    const pm = pmChat('libera', '@a:hs', 'bob');
    expect(parseChat(pm)).toEqual({ kind: 'pm', server: 'libera', matrixUser: '@a:hs', ghostKey: 'bob' });
    // one from before, keyed by a nick: read as the key of the ghost first seen under it
    expect(parseChat('libera/pm/@a:hs/alice_away')).toEqual({ kind: 'pm', server: 'libera', matrixUser: '@a:hs', ghostKey: 'alice_away' });
    expect(parseChat('nonsense')).toBeUndefined();
    expect(parseChat('libera/notachannel')).toBeUndefined();
  });
  it('parses portal alias localparts', () => {
    expect(parseAliasLocalpart('irc_libera_#rust', 'irc_')).toEqual({ server: 'libera', channel: '#rust' });
    expect(parseAliasLocalpart('irc_libera_rust', 'irc_')).toBeUndefined();
    expect(parseAliasLocalpart('discord_1_2', 'irc_')).toBeUndefined();
  });
  it('parses what a user types to link or unlink a channel into the chat id link stores', () => {
    expect(parseLinkTarget('libera/#Rust')).toEqual({ server: 'libera', channel: '#Rust', chat: 'libera/#rust' });
    expect(parseLinkTarget(' libera #Rust ')?.chat).toBe('libera/#rust');
    for (const bad of ['#rust', 'libera/rust', 'libera/', '/#rust', 'libera/#two words', 'Libera/#rust']) expect(parseLinkTarget(bad), bad).toBeUndefined();
    // no name a JOIN would read as two channels (`JOIN #a,0` also leaves every channel), nor control characters
    for (const bad of ['libera/#a,0', 'libera #a,#b', 'libera/#a\x07b', 'libera/#a\x00']) expect(parseLinkTarget(bad), bad).toBeUndefined();
    expect(parseLinkTarget('libera/#c++')?.channel).toBe('#c++');
  });
  it('makes ghost localparts from server and ghost key', () => { expect(ghostLocalpart(ircUser('libera', 'alice'))).toBe('libera_alice'); });
});

describe('nicks', () => {
  it.each([
    ['Alice[m]', 'Alice[m]'], ['Zoë Ünicode', 'ZoeUnicode'], ['42 is the answer', 'M42istheanswer'], ['🎉', 'matrix_user'], ['a'.repeat(40), 'a'.repeat(30)],
  ])('sanitises %j to %j', (raw, nick) => { expect(sanitiseNick(raw)).toBe(nick); });
  it('finds the next nick within the length limit', () => {
    expect(nextNick('alice', 1, 30)).toBe('alice_');
    expect(nextNick('alice', 2, 30)).toBe('alice2');
    expect(nextNick('abcdefghij', 3, 10)).toBe('abcdefghi3');
  });
  it('fills templates', () => {
    expect(fillTemplate('$DISPLAY[m]', { userId: '@al:hs', displayName: 'Al' })).toBe('Al[m]');
    expect(fillTemplate('$LOCALPART|$USERID', { userId: '@al:hs', displayName: '' })).toBe('al|@al:hs');
    expect(sanitiseUsername('Al!ce:Long-Name')).toBe('alcelong-n');
  });
  it.each([
    ['Alice', '@a:hs', 30, 'Alice[m]'],
    ['Ünsal Öz', '@u:hs', 30, 'UnsalOz[m]'],
    ['张三', '@zhang.san:hs', 30, 'zhangsan[m]'], // no letter a nick can hold: the localpart, not "[m]" for everyone
    ['😀', '@bob:hs', 30, 'bob[m]'],
    ['Дмитрий', '@12345:hs', 30, 'M12345[m]'],
    ['A Very Long Display Name Indeed Friends', '@x:hs', 30, 'AVeryLongDisplayNameIndeedFrie'], // cut where the server cuts
  ])('makes the nick of %j (%s) within %i', (displayName, userId, max, nick) => {
    expect(templateNick('$DISPLAY[m]', { userId, displayName }, max)).toBe(nick);
  });
});

describe('relayPrefix', () => {
  it.each([
    ['Relly Q', false, '<Relly Q> '],
    ['Relly Q', true, '* Relly Q '],
    ['two\r\nlines\0', false, '<two lines> '], // a display name can never break the line
    ['  ', false, '<someone> '],
    ['ñ'.repeat(50), false, `<${'ñ'.repeat(40)}> `], // cut to 40 characters, not bytes
  ])('%j (emote %s) → %j', (name, emote, prefix) => {
    expect(relayPrefix(name, emote)).toBe(prefix);
  });
});

describe('moveChannel (a channel renamed on the server)', () => {
  it('moves a map entry or a set member to the new name, folded, and says whether it did', () => {
    const keys = new Map<string, string | undefined>([['#old', 'key'], ['#other', undefined]]);
    expect(moveChannel(keys, '#OLD', '#New[1]')).toBe(true);
    expect([...keys]).toEqual([['#other', undefined], ['#new{1}', 'key']]);
    const joined = new Set(['#old']);
    expect(moveChannel(joined, '#old', '#new')).toBe(true);
    expect([...joined]).toEqual(['#new']);
    expect(moveChannel(joined, '#absent', '#x')).toBe(false);
    expect(moveChannel(joined, '#new', '#NEW')).toBe(false); // only the case changed: the same channel
    expect([...joined]).toEqual(['#new']);
  });
});
