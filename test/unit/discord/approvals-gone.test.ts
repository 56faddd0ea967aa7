// A link request waiting in a channel that is then deleted (or whose server the bot leaves): it ends,
// the Matrix side is told why, and it is forgotten, stored ones included. A stand-in client posts the
// request; nothing connects.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Client, GuildTextBasedChannel } from 'discord.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { LinkApprovals } from '../../../packages/discord/src/approvals.js';
import type { DiscordStore, StoredLinkRequest } from '../../../packages/discord/src/store.js';

describe('a link request in a channel that is gone', () => {
  it('ends, its Matrix side told why, and is forgotten (stored ones too); requests elsewhere wait on', async () => {
    const client = new EventEmitter() as EventEmitter & { user: { id: string }; rest: Record<string, (...a: unknown[]) => Promise<unknown>> };
    client.user = { id: 'bot' };
    let next = 0;
    client.rest = { post: async () => ({ id: `m${++next}` }), put: async () => ({}), patch: async () => ({}) };
    const channel = (id: string) => ({ id, name: `chan${id}`, guild: { id: 'g1', name: 'Guild' } }) as unknown as GuildTextBasedChannel;
    const stored = new Map<string, StoredLinkRequest>([['old', { messageId: 'old', channelId: 'c1', roomId: '!x:hs', roomLabel: 'x', userId: '@u:hs', deadline: Date.now() + 60_000 }]]);
    const store = {
      putLinkRequest: (r: StoredLinkRequest) => { stored.set(r.messageId, r); },
      removeLinkRequest: (id: string) => { stored.delete(id); },
      linkRequests: () => [...stored.values()],
    } as unknown as DiscordStore;
    const approvals = new LinkApprovals({
      log: silentLogger, store, answerer: () => async () => undefined, timeoutSeconds: () => 60, link: async () => 'Linked.',
    });
    approvals.attach(client as unknown as Client);
    const told: string[] = [];
    await approvals.ask({ channel: channel('c1'), roomId: '!r:hs', roomLabel: 'r', userId: '@u:hs', answer: async (t) => { told.push(`r: ${t}`); } });
    await approvals.ask({ channel: channel('c2'), roomId: '!s:hs', roomLabel: 's', userId: '@u:hs', answer: async (t) => { told.push(`s: ${t}`); } });
    await approvals.channelsGone(new Map([['c1', 'The Discord channel #chan1 (Guild) was deleted']]));
    expect(told).toEqual(['r: The Discord channel #chan1 (Guild) was deleted: the request to link it to this room has ended.']);
    expect(approvals.waiting('!r:hs', 'c1')).toBe(false);
    expect(approvals.waiting('!s:hs', 'c2')).toBe(true);
    expect([...stored.values()].map((r) => r.channelId)).toEqual(['c2']);
    approvals.stop();
  });
});
