import { describe, expect, it } from 'vitest';
import { ircServerSchema } from '../../../packages/irc/src/config.js';
import { aliasTemplatePattern } from '../../../packages/irc/src/ids.js';

describe('IRC server config: excludedUsers', () => {
  it('keeps valid rules with their kick reason', () => {
    const cfg = ircServerSchema.parse({ host: 'irc.example.org', excludedUsers: [{ regex: '@telegram_.*:example\\.org' }, { regex: '@bot:x', kickReason: 'no bots' }] });
    expect(cfg.excludedUsers).toEqual([{ regex: '@telegram_.*:example\\.org' }, { regex: '@bot:x', kickReason: 'no bots' }]);
  });

  it('refuses a rule that is not a regular expression, naming where', () => {
    const r = ircServerSchema.safeParse({ host: 'irc.example.org', excludedUsers: [{ regex: '@ok:x' }, { regex: '@(unclosed:x' }] });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['excludedUsers.1.regex', 'must be a valid regular expression']]);
  });
});

describe('IRC server config: dynamicChannels.aliasTemplate', () => {
  it.each([
    ['#libera_$CHANNEL', undefined],
    ['#$SERVER_$CHANNEL', 'must start with # and a literal part, use only $SERVER and $CHANNEL, and hold no ":" or spaces'],
    ['#irc_$NICK_$CHANNEL', 'must start with # and a literal part, use only $SERVER and $CHANNEL, and hold no ":" or spaces'],
    ['#libera_$SERVER', 'must hold $CHANNEL exactly once'],
    ['#a_$CHANNEL_$CHANNEL', 'must hold $CHANNEL exactly once'],
  ])('%s → %s', (template, problem) => {
    const r = ircServerSchema.safeParse({ host: 'irc.example.org', dynamicChannels: { aliasTemplate: template } });
    expect(r.error?.issues.map((i) => i.message)[0]).toBe(problem);
  });

  it('becomes a pattern on alias localparts that captures the channel, with the server key in place of $SERVER', () => {
    const re = new RegExp(`^${aliasTemplatePattern('#x_$CHANNEL.on.$SERVER', 'lib-era')}$`);
    expect(re.exec('x_#Rust.on.lib-era')?.[1]).toBe('#Rust');
    expect(re.test('x_#rustXonXlib-era')).toBe(false); // the template's dots are dots, not any character
    expect(re.test('x_#rust.on.libera')).toBe(false); // another server
    expect(re.test('x_rust.on.lib-era')).toBe(false); // not a channel
  });
});

describe('IRC server config: addressBlock and userModes', () => {
  it.each([
    ['addressBlock', '2001:db8:1::/64', undefined],
    ['addressBlock', '127.0.1.0/24', undefined],
    ['addressBlock', '127.0.1.1/24', '127.0.1.1/24 has host bits set: the block is 127.0.1.0/24'],
    ['addressBlock', '2001:db8::', '"2001:db8::" is not a block: write an address, a slash and a prefix length, e.g. 2001:db8:1::/64 or 127.0.1.0/24'],
    ['userModes', '+R', undefined],
    ['userModes', '+iR', undefined],
    ['userModes', 'R', 'must be a + and user mode letters, e.g. +R'],
    ['userModes', '+R -i', 'must be a + and user mode letters, e.g. +R'],
    ['userModes', '+', 'must be a + and user mode letters, e.g. +R'],
  ])('%s %j → %s', (key, value, problem) => {
    const r = ircServerSchema.safeParse({ host: 'irc.example.org', [key]: value });
    expect(r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)[0]).toBe(problem && `${key}: ${problem}`);
  });
});

describe('IRC server config: addressBlock and host of different families', () => {
  it.each([
    ['127.0.0.1', '2001:db8::/64', 'addressBlock: is IPv6, but host 127.0.0.1 is IPv4: no connection can go from one to the other (give a block of the host\'s family, or a host name with such an address)'],
    ['::1', '127.0.1.0/24', 'addressBlock: is IPv4, but host ::1 is IPv6: no connection can go from one to the other (give a block of the host\'s family, or a host name with such an address)'],
    ['irc.libera.chat', '2001:db8::/64', undefined], // a name: looked up in the block's family
    ['127.0.0.1', '127.0.1.0/24', undefined],
  ])('host %s with block %s → %s', (host, addressBlock, problem) => {
    const r = ircServerSchema.safeParse({ host, addressBlock });
    expect(r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)[0]).toBe(problem);
  });
});
