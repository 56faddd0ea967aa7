import { describe, expect, it } from 'vitest';
import { whatEventIs } from '../../../packages/core/src/bridge/bridge.js';

describe('whatEventIs: the words for a Matrix event in a notice to its sender', () => {
  const member = (membership: string, sender: string, stateKey: string, prev?: string): Parameters<typeof whatEventIs>[0] => ({
    type: 'm.room.member', sender, state_key: stateKey, content: { membership }, ...(prev ? { unsigned: { prev_content: { membership: prev } } } : {}),
  });
  it.each([
    [{ type: 'm.room.message' }, 'message'],
    [{ type: 'm.sticker' }, 'message'],
    [{ type: 'm.reaction' }, 'reaction'],
    [{ type: 'm.room.redaction' }, 'deletion'],
    [{ type: 'm.room.topic' }, 'topic change'],
    [{ type: 'm.room.name' }, 'room name change'],
    [{ type: 'm.room.power_levels' }, 'power level change'],
    [member('ban', '@a:x', '@b:x'), 'ban'],
    [member('leave', '@a:x', '@b:x', 'join'), 'kick'],
    [member('leave', '@a:x', '@b:x', 'ban'), 'unban'],
    [member('leave', '@a:x', '@a:x', 'join'), 'membership change'],
    [member('join', '@a:x', '@a:x'), 'membership change'],
    [{ type: 'org.example.custom' }, 'event'],
  ])('%j → %s', (ev, words) => {
    expect(whatEventIs(ev)).toBe(words);
  });
});
