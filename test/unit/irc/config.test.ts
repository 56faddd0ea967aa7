import { describe, expect, it } from 'vitest';
import { ircServerSchema } from '../../../packages/irc/src/config.js';

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
