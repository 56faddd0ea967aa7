import { describe, expect, it } from 'vitest';
import { CTCP_VERSION, CtcpLimiter, ctcpReply, dccOffer, privateMessage } from '../../../packages/irc/src/ctcp.js';

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

describe('dccOffer', () => {
  it.each<[string, string, string | undefined]>([
    ['a file with a size', 'SEND notes.txt 2130706433 5000 1536', '(offered the file notes.txt (1.5 KiB) by DCC, which the bridge cannot receive: ask for a link instead)'],
    ['a quoted name with spaces, no size', 'SEND "my notes.txt" 2130706433 5000', '(offered the file my notes.txt by DCC, which the bridge cannot receive: ask for a link instead)'],
    ['a chat', 'CHAT chat 2130706433 5001', '(offered a DCC chat, a direct connection the bridge cannot make: answer here instead)'],
    ['lower case', 'send a.bin 1 2 3', '(offered the file a.bin (3 B) by DCC, which the bridge cannot receive: ask for a link instead)'],
    ['controls in the name', 'SEND "a\x02b\x03c" 1 2', '(offered the file abc by DCC, which the bridge cannot receive: ask for a link instead)'],
    ['something else (RESUME, ACCEPT)', 'RESUME notes.txt 5000 100', undefined],
    ['nothing', '', undefined],
  ])('%s', (_name, args, said) => {
    const offer = dccOffer(args);
    expect(offer?.said).toBe(said);
    if (said) expect(offer!.answer).toMatch(/DCC does not cross the Matrix bridge/);
  });

  it('caps a long file name', () => {
    expect(dccOffer(`SEND ${'x'.repeat(500)} 1 2 3`)!.said).toContain(`file ${'x'.repeat(100)} (3 B)`);
  });
});

describe('privateMessage: a private line as the Matrix user gets it, and what goes back', () => {
  const now = new Date('2026-01-02T03:04:05Z');
  it.each([
    ['plain text', 'PRIVMSG', 'hello', { show: { type: 'privmsg', text: 'hello' } }],
    ['a notice', 'NOTICE', 'hello', { show: { type: 'notice', text: 'hello' } }],
    ['an action', 'PRIVMSG', '\x01ACTION waves\x01', { show: { type: 'action', text: 'waves' } }],
    ['an action without its closing \\x01', 'PRIVMSG', '\x01ACTION waves', { show: { type: 'action', text: 'waves' } }],
    ['a VERSION request: answered, not shown', 'PRIVMSG', '\x01VERSION\x01', { answer: `\x01VERSION ${CTCP_VERSION}\x01` }],
    ['a VERSION reply (a NOTICE): neither', 'NOTICE', '\x01VERSION other client\x01', {}],
    ['an unknown CTCP: nothing', 'PRIVMSG', '\x01FINGER\x01', {}],
    ['a DCC offer sent as a NOTICE: nothing', 'NOTICE', '\x01DCC SEND f.txt 1 2 3\x01', {}],
    ['a DCC that is not an offer: nothing', 'PRIVMSG', '\x01DCC RESUME f.txt 1 2\x01', {}],
  ] as const)('%s', (_name, command, text, expected) => {
    expect(privateMessage(command, text, now)).toEqual(expected);
  });

  it('turns a DCC offer into a notice for the Matrix user and an answer for the sender', () => {
    const r = privateMessage('PRIVMSG', '\x01DCC SEND report.pdf 2130706433 5000 2048\x01', now);
    expect(r.show?.type).toBe('notice');
    expect(r.show?.text).toContain('report.pdf');
    expect(r.answer).toBe(dccOffer('SEND report.pdf 2130706433 5000 2048')!.answer);
  });
});
