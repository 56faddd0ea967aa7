// Link requests are messages of the bot in Discord channels that anyone on Matrix may ask for (in a
// room of their own): one Matrix user has at most MAX_WAITING_PER_USER waiting, and a channel one,
// requests still being posted included. A stand-in client takes the posts.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Client, GuildTextBasedChannel } from 'discord.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { LinkApprovals, MAX_WAITING_PER_USER, type LinkAsk } from '../../../packages/discord/src/approvals.js';
import type { DiscordStore } from '../../../packages/discord/src/store.js';

function setup(postDelayMs = 0) {
  const client = new EventEmitter() as EventEmitter & { user: { id: string }; rest: Record<string, (...a: unknown[]) => Promise<unknown>> };
  client.user = { id: 'bot' };
  let n = 0;
  const posted: string[] = [];
  client.rest = {
    post: async (route: unknown) => { posted.push(String(route)); await new Promise((r) => setTimeout(r, postDelayMs)); return { id: `m${++n}` }; },
    put: async () => ({}),
  };
  const store = { putLinkRequest: () => undefined, removeLinkRequest: () => undefined, linkRequests: () => [] } as unknown as DiscordStore;
  const approvals = new LinkApprovals({
    log: silentLogger, store, answerer: () => async () => undefined, timeoutSeconds: () => 300, link: async () => 'Linked.',
  });
  approvals.attach(client as unknown as Client);
  const channel = (id: string): GuildTextBasedChannel => ({
    id, name: `chan-${id}`, guild: { id: 'g1', name: 'Guild', members: { cache: new Map() } }, permissionsFor: () => ({ has: () => true }),
  }) as unknown as GuildTextBasedChannel;
  const ask = (userId: string, channelId: string, roomId = `!${userId}-${channelId}:hs`): LinkAsk =>
    ({ channel: channel(channelId), roomId, roomLabel: roomId, userId, answer: async () => undefined });
  return { approvals, ask, posted };
}

describe('link requests one Matrix user, and one channel, may have waiting', () => {
  it(`refuses a user's request past ${MAX_WAITING_PER_USER} waiting, saying why; others may still ask`, async () => {
    const { approvals, ask, posted } = setup();
    for (let i = 1; i <= MAX_WAITING_PER_USER; i++) await approvals.ask(ask('@spam:hs', `c${i}`));
    await expect(approvals.ask(ask('@spam:hs', 'c9'))).rejects.toThrow(/you have 3 link requests waiting for an answer on Discord already/);
    expect(posted).toHaveLength(MAX_WAITING_PER_USER); // nothing posted for the refused one
    await approvals.ask(ask('@other:hs', 'c9'));
    expect(posted).toHaveLength(MAX_WAITING_PER_USER + 1);
    approvals.stop();
  });

  it('refuses a second request in a channel where one waits, from any room or user', async () => {
    const { approvals, ask, posted } = setup();
    await approvals.ask(ask('@a:hs', 'c1'));
    await expect(approvals.ask(ask('@b:hs', 'c1'))).rejects.toThrow(/a link request already waits for an answer in #chan-c1/);
    expect(posted).toHaveLength(1);
    approvals.stop();
  });

  it('counts requests still being posted (asked at the same moment)', async () => {
    const { approvals, ask, posted } = setup(30);
    const results = await Promise.allSettled([approvals.ask(ask('@a:hs', 'c1', '!r1:hs')), approvals.ask(ask('@b:hs', 'c1', '!r2:hs'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect(posted).toHaveLength(1);
    approvals.stop();
  });
});
