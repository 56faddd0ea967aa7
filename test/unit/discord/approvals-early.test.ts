// A link request answered before the bridge knows the request's message id: the gateway can bring
// the reaction (or reply) before the REST reply to the request's own post. Here a stand-in client
// emits the approval while the post is still in flight, as the fake Discord server sometimes did.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Events } from 'discord.js';
import type { Client, GuildTextBasedChannel } from 'discord.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { APPROVE_EMOJI, LinkApprovals, type LinkAsk } from '../../../packages/discord/src/approvals.js';
import type { DiscordStore } from '../../../packages/discord/src/store.js';

function setup(answerEarly: (client: EventEmitter, messageId: string) => void) {
  const client = new EventEmitter() as EventEmitter & { user: { id: string }; rest: Record<string, (...a: unknown[]) => Promise<unknown>> };
  client.user = { id: 'bot' };
  client.rest = {
    post: async () => { answerEarly(client, 'm1'); await new Promise((r) => setTimeout(r, 20)); return { id: 'm1' }; },
    put: async () => ({}),
    patch: async () => ({}),
  };
  const member = { displayName: 'Moderator' };
  const channel = {
    id: 'c1', name: 'general', guild: { id: 'g1', name: 'Guild', members: { cache: new Map([['mod', member]]), fetch: async () => member } },
    permissionsFor: () => ({ has: () => true }),
  } as unknown as GuildTextBasedChannel;
  const linked: string[] = [];
  const told: string[] = [];
  const store = { putLinkRequest: () => undefined, removeLinkRequest: () => undefined, linkRequests: () => [] } as unknown as DiscordStore;
  const approvals = new LinkApprovals({
    log: silentLogger, store, answerer: () => async () => undefined, timeoutSeconds: () => 60,
    link: async (ask, approver) => { linked.push(`${ask.roomId} by ${approver}`); return 'Linked this room.'; },
  });
  approvals.attach(client as unknown as Client);
  const ask: LinkAsk = { channel, roomId: '!r:hs', roomLabel: '!r:hs', userId: '@u:hs', answer: async (t) => { told.push(t); } };
  return { approvals, ask, linked, told };
}
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

describe('link approvals answered before the request\'s post returns', () => {
  it('a reaction that came first approves the request once it is known', async () => {
    const { approvals, ask, linked, told } = setup((client, id) => {
      client.emit(Events.MessageReactionAdd, { message: { id }, emoji: { name: APPROVE_EMOJI } }, { id: 'mod' });
    });
    await approvals.ask(ask);
    await settle();
    expect(linked).toEqual(['!r:hs by Moderator']);
    expect(told).toEqual(['Linked this room.']);
    expect(approvals.waiting('!r:hs', 'c1')).toBe(false);
    approvals.stop();
  });

  it('a reply that came first refuses it; the bot\'s own reactions and other emoji count for nothing', async () => {
    const { approvals, ask, linked, told } = setup((client, id) => {
      client.emit(Events.MessageReactionAdd, { message: { id }, emoji: { name: APPROVE_EMOJI } }, { id: 'bot' });
      client.emit(Events.MessageReactionAdd, { message: { id }, emoji: { name: '🎉' } }, { id: 'mod' });
      client.emit(Events.MessageCreate, { reference: { messageId: id }, author: { id: 'mod' }, content: 'deny', webhookId: null });
    });
    await approvals.ask(ask);
    await settle();
    expect(linked).toEqual([]);
    expect(told).toEqual(['Moderator refused on Discord to bridge #general with this room.']);
    approvals.stop();
  });
});
