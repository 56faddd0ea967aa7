import { describe, expect, it } from 'vitest';
import { DND_STATUS_MSG, ghostPresence, type DiscordPresence } from '../../../packages/discord/src/presence.js';

const custom = (state: string | null, emoji?: { name: string; id?: string }): DiscordPresence['activities'][number] =>
  ({ type: 4, state, ...(emoji ? { emoji } : {}) });
const game = { type: 0, state: 'Level 3' };

describe('ghostPresence: Discord status and custom status → Matrix presence', () => {
  it.each<[string, DiscordPresence, ReturnType<typeof ghostPresence>]>([
    ['online', { status: 'online', activities: [] }, { presence: 'online' }],
    ['idle', { status: 'idle', activities: [] }, { presence: 'unavailable' }],
    ['dnd says so', { status: 'dnd', activities: [] }, { presence: 'unavailable', statusMsg: DND_STATUS_MSG }],
    ['offline', { status: 'offline', activities: [] }, { presence: 'offline' }],
    ['invisible is offline', { status: 'invisible', activities: [] }, { presence: 'offline' }],
    ['custom status text', { status: 'online', activities: [custom('  brb  ')] }, { presence: 'online', statusMsg: 'brb' }],
    ['custom status in dnd replaces "Do not disturb"', { status: 'dnd', activities: [custom('focus')] }, { presence: 'unavailable', statusMsg: 'focus' }],
    ['unicode emoji before the text', { status: 'idle', activities: [custom('lunch', { name: '🍕' })] }, { presence: 'unavailable', statusMsg: '🍕 lunch' }],
    ['emoji alone', { status: 'online', activities: [custom(null, { name: '🎉' })] }, { presence: 'online', statusMsg: '🎉' }],
    ['a server emoji\'s name is left out', { status: 'online', activities: [custom('hi', { name: 'party', id: '123456789012345678' })] }, { presence: 'online', statusMsg: 'hi' }],
    ['a game is not a status message', { status: 'online', activities: [game] }, { presence: 'online' }],
    ['offline drops the custom status', { status: 'offline', activities: [custom('gone')] }, { presence: 'offline' }],
  ])('%s', (_name, input, expected) => {
    expect(ghostPresence(input)).toEqual(expected);
  });
});
