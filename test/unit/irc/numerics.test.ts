/** The refusal tables in packages/irc/src/numerics.ts, as both connection kinds read them. */
import { describe, expect, it } from 'vitest';
import { JOIN_ERRORS, joinErrorByName } from '../../../packages/irc/src/numerics.js';

describe('join refusals', () => {
  it.each([
    ['channel_is_full', '471'], ['invite_only_channel', '473'], ['banned_from_channel', '474'],
    ['bad_channel_key', '475'], ['too_many_channels', '405'],
  ])('irc-framework\'s %s says what numeric %s says', (name, numeric) => {
    expect(joinErrorByName(name)).toBe(JOIN_ERRORS[numeric]);
    expect(JOIN_ERRORS[numeric]).toMatch(/^(the channel|you) /);
  });

  it.each(['403', '437', '476', '477'])('has words for %s, a refusal irc-framework has no name for (it comes as a numeric: see JoinWaits)', (numeric) => {
    expect(JOIN_ERRORS[numeric]).toMatch(/^the channel /);
  });

  it('knows no other names, nor the names objects have', () => {
    for (const name of ['nick_in_use', 'unknown', '', 'constructor', '__proto__', 'toString', '471', 'no_such_channel', '403']) expect(joinErrorByName(name)).toBeUndefined();
  });
});
