import { describe, expect, it } from 'vitest';
import { CtcpLimiter, ctcpReply } from '../../../packages/irc/src/ctcp.js';

describe('CTCP replies', () => {
  const now = new Date(Date.UTC(2026, 10, 28, 5, 0, 0));
  it.each<[string, string, string | undefined]>([
    ['VERSION', '', 'VERSION Trestle IRC bridge'],
    ['version', '', 'VERSION Trestle IRC bridge'],
    ['PING', '1764300000 123', 'PING 1764300000 123'],
    ['PING', '', 'PING'],
    ['PING', `${'9'.repeat(100)}`, `PING ${'9'.repeat(64)}`],
    ['PING', 'a\x01b', 'PING ab'],
    ['TIME', '', 'TIME Sat, 28 Nov 2026 05:00:00 GMT'],
    ['CLIENTINFO', '', 'CLIENTINFO ACTION CLIENTINFO PING TIME VERSION'],
    ['DCC', 'SEND x 1 2 3', undefined],
    ['', '', undefined],
  ])('%s %s', (verb, args, expected) => {
    expect(ctcpReply(verb, args, now)).toBe(expected);
  });

  it('answers at most once a second per connection', () => {
    const l = new CtcpLimiter(1000);
    expect([l.allow(0), l.allow(10), l.allow(999), l.allow(1000), l.allow(1500), l.allow(2100)]).toEqual([true, false, false, true, false, true]);
  });
});
