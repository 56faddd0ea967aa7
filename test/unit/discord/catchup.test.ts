/**
 * Catching up on what was said on Discord while the bridge was away, and what its rooms are told of
 * what it does not bridge: more than it fetches (with the bridge's own discord.js client against the
 * fake Discord, on 127.0.0.1), messages old by then (bridged with the times they were said), live
 * messages too old to bridge (one notice per burst), and a message that can be neither bridged nor
 * told about (the checkpoint stays before it, and the next catch-up tries it again). Core is stood in
 * for by what FromDiscord reads and reports.
 */
import { EventEmitter, once } from 'node:events';
import { silentLogger, type NetworkContext, type RemoteMessage } from '@trestle/core';
import { Events, type Client } from 'discord.js';
import type { APIGuild, APIMessage, APIUser } from 'discord-api-types/v10';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../../packages/discord/src/client.js';
import { discordConfigSchema, type DiscordConfig } from '../../../packages/discord/src/config.js';
import { CATCH_UP_LIMIT, FromDiscord } from '../../../packages/discord/src/fromDiscord.js';
import { FakeDiscord, type GuildChannel } from '../../harness/fake-discord/server.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What FromDiscord reported to core, and the network's key-value state (the checkpoints). */
function core(opts: { failing?: Set<string>; noticesFail?: () => boolean } = {}) {
  const kv = new Map<string, string>();
  const delivered: RemoteMessage[] = [];
  const notices: string[] = [];
  const ids = new Set<string>();
  const ctx = {
    log: silentLogger, domain: 'hs', ghostUserId: (u: string) => `@discord_${u}:hs`,
    kv: { get: (k: string) => kv.get(k), set: (k: string, v: string) => { kv.set(k, v); } },
    bridged: (_chat: string, id: string) => ids.has(id),
    remote: {
      message: async (m: RemoteMessage) => {
        if (opts.failing?.has(m.id)) throw new Error('the database is locked');
        delivered.push(m);
        ids.add(m.id);
      },
      notice: async (n: { chat: string; text: string }) => {
        if (opts.noticesFail?.()) throw new Error('the database is locked');
        notices.push(n.text);
      },
      typing: async () => undefined,
    },
  };
  return { kv, delivered, notices, ctx };
}

function fromDiscord(ctx: object, cfg: DiscordConfig, caughtUp?: () => void): FromDiscord {
  return new FromDiscord({
    ctx: ctx as NetworkContext, cfg, configKey: 'networks.discord', aliasPrefix: 'discord_', webhooks: { isOurs: () => false } as never,
    emojis: { mxc: async () => undefined, known: () => undefined } as never, stickers: {} as never, store: { addChatMember: () => undefined } as never,
    deletedByUs: () => false, ...(caughtUp ? { caughtUp } : {}),
  });
}

describe('catching up against the fake Discord', { timeout: 30_000 }, () => {
  let fake: FakeDiscord;
  let guild: APIGuild;
  let bob: APIUser;

  beforeAll(async () => {
    fake = new FakeDiscord({ heartbeatIntervalMs: 1000 });
    guild = fake.addGuild({ name: 'Trestle Test' });
    bob = fake.addUser({ username: 'bob' });
    fake.addMember(guild.id, bob.id);
    await fake.start();
  });

  afterAll(async () => { await fake?.stop(); });

  /** The bridge comes back (a new client and session) with `ch` linked and its checkpoint at `after`: resolves once it caught up. */
  async function comesBack(ch: GuildChannel, c: ReturnType<typeof core>, after: string, cfg: Record<string, unknown> = {}): Promise<{ client: Client; from: FromDiscord }> {
    c.kv.set(`last:${ch.id}`, after);
    const portals = [{ roomId: '!room:hs', remoteChat: ch.id, kind: 'plumbed' }];
    const ctx = { ...c.ctx, portals: { all: () => portals, forChat: (chat: string) => portals.filter((p) => p.remoteChat === chat) } };
    const config = discordConfigSchema.parse({ token: fake.token, restUrl: fake.apiUrl, cdnUrl: fake.cdnUrl, ...cfg });
    const client = createClient(config);
    let done!: () => void;
    const caughtUp = new Promise<void>((r) => { done = r; });
    const from = fromDiscord(ctx, config, done);
    from.attach(client);
    const ready = once(client, Events.ClientReady);
    await client.login(fake.token);
    await ready;
    await caughtUp;
    await from.idle();
    return { client, from };
  }

  it(`bridges the first ${CATCH_UP_LIMIT} messages missed, and tells the rooms how many more there were and where they start`, async () => {
    const ch = fake.addChannel(guild.id, { name: 'busy' });
    const last = fake.injectUserMessage(ch.id, bob.id, 'the last one bridged');
    const missed: APIMessage[] = [];
    for (let i = 1; i <= CATCH_UP_LIMIT + 20; i++) missed.push(fake.injectUserMessage(ch.id, bob.id, `missed ${i}`));
    const c = core();
    const { client } = await comesBack(ch, c, last.id);
    try {
      expect(c.delivered).toHaveLength(CATCH_UP_LIMIT);
      expect(c.delivered.at(0)?.parts[0]?.content['body']).toBe('missed 1');
      expect(c.delivered.at(-1)?.parts[0]?.content['body']).toBe(`missed ${CATCH_UP_LIMIT}`);
      expect(c.notices).toEqual([`ℹ 20 messages said in #busy on Discord while the bridge was away were not bridged: it catches up on at most ${CATCH_UP_LIMIT} ` +
        `per channel. Read them on Discord, from https://discord.com/channels/${guild.id}/${ch.id}/${missed[CATCH_UP_LIMIT]!.id}`]);
      // given up, and told: the next catch-up starts after them
      expect(c.kv.get(`last:${ch.id}`)).toBe(missed.at(-1)!.id);
    } finally {
      await client.destroy();
    }
  });

  it('bridges what was missed however old it is by then, with the times it was said', async () => {
    const ch = fake.addChannel(guild.id, { name: 'slow' });
    const last = fake.injectUserMessage(ch.id, bob.id, 'before');
    const old = fake.injectUserMessage(ch.id, bob.id, 'said while the bridge was away');
    await sleep(1500);
    const c = core();
    const { client } = await comesBack(ch, c, last.id, { maxMessageAgeSeconds: 1 });
    try {
      expect(c.delivered.map((m) => [m.parts[0]?.content['body'], m.backfill, m.timestamp]))
        .toEqual([['said while the bridge was away', true, Date.parse(old.timestamp)]]);
      expect(c.notices).toEqual([]);
      expect(c.kv.get(`last:${ch.id}`)).toBe(old.id);
    } finally {
      await client.destroy();
    }
  });
});

/** A Discord message as FromDiscord reads it, in channel 10 of guild 1. */
function message(id: string, createdTimestamp = Date.now()) {
  return {
    id, system: false, type: 0, webhookId: null, author: { id: '7', username: 'bob', globalName: null, avatarURL: () => null }, member: null,
    guild: { members: { cache: new Map() }, roles: { cache: new Map() } }, guildId: '1', channelId: '10', channel: { id: '10', isThread: () => false },
    mentions: undefined, content: `msg ${id}`, poll: null, embeds: [], createdTimestamp, reference: null, messageSnapshots: new Map(), stickers: new Map(),
    attachments: new Map(),
  };
}

/** Channel 10 with messages `ids` in its history, a client that never connects, and FromDiscord listening to it. */
function stubbed(c: ReturnType<typeof core>, ids: string[]) {
  const history = ids.map((id) => message(id));
  const channel = {
    isTextBased: () => true, isDMBased: () => false, isThread: () => false, name: 'general', guildId: '1',
    messages: { fetch: async ({ after }: { after: string }) => new Map(history.filter((m) => BigInt(m.id) > BigInt(after)).map((m) => [m.id, m])) },
  };
  const client = Object.assign(new EventEmitter(), { channels: { cache: new Map([['10', channel]]) }, user: { id: '999' } });
  const portals = [{ roomId: '!r:x', remoteChat: '10', kind: 'portal' }];
  const ctx = { ...c.ctx, portals: { all: () => portals, forChat: (chat: string) => portals.filter((p) => p.remoteChat === chat) } };
  let caught: () => void = () => undefined;
  const from = fromDiscord(ctx, { maxAttachmentBytes: 1e7, maxMessageAgeSeconds: 60, rolePowers: {}, displayNameTemplate: '$DISPLAY', messageContentIntent: true, guilds: [] } as unknown as DiscordConfig,
    () => caught());
  from.attach(client as unknown as Client);
  return {
    from, history,
    /** A new gateway session: resolves once caught up. */
    newSession: async (): Promise<void> => {
      const done = new Promise<void>((r) => { caught = r; });
      client.emit(Events.ShardReady, 0, undefined);
      await done;
      await from.idle();
    },
    /** A message arrives live. */
    live: async (m: ReturnType<typeof message>): Promise<void> => {
      history.push(m);
      client.emit(Events.MessageCreate, m);
      await sleep(0);
      await from.idle();
    },
  };
}

describe('catching up: what cannot be bridged', () => {
  it('a message that can be neither bridged nor told about holds the checkpoint before it, live messages after it too; the next catch-up bridges it', async () => {
    const failing = new Set(['3']);
    let noticesFail = true;
    const c = core({ failing, noticesFail: () => noticesFail });
    c.kv.set('last:10', '1');
    const s = stubbed(c, ['2', '3', '4']);
    await s.newSession();
    expect(c.delivered.map((m) => m.id)).toEqual(['2', '4']);
    expect(c.notices).toEqual([]);
    expect(c.kv.get('last:10')).toBe('2');
    await s.live(message('5'));
    expect(c.delivered.map((m) => m.id)).toEqual(['2', '4', '5']);
    expect(c.kv.get('last:10')).toBe('2'); // not past 3
    // core takes it now: the next session's catch-up bridges it, and only it
    failing.clear();
    noticesFail = false;
    await s.newSession();
    expect(c.delivered.map((m) => m.id)).toEqual(['2', '4', '5', '3']);
    expect(c.kv.get('last:10')).toBe('5');
  });

  it('live messages too old to bridge are told about in one notice, with a link to the first', async () => {
    const c = core();
    const s = stubbed(c, []);
    const longAgo = Date.now() - 3600_000;
    await s.live(message('7', longAgo));
    await s.live(message('8', longAgo));
    await s.live(message('9'));
    expect(c.delivered.map((m) => m.id)).toEqual(['9']);
    expect(c.notices).toEqual([]);
    s.from.flushNotices(); // as at a shutdown; else after a quiet moment
    await s.from.idle();
    expect(c.notices).toEqual(['ℹ 2 messages from Discord reached the bridge more than 1 minute after they were said, and were not bridged ' +
      '(networks.discord.maxMessageAgeSeconds). Read them on Discord, from https://discord.com/channels/1/10/7']);
  });

  it('the notice of live messages too old to bridge comes by itself once they stop coming', async () => {
    const c = core();
    const s = stubbed(c, []);
    await s.live(message('7', Date.now() - 3600_000));
    expect(c.notices).toEqual([]);
    await sleep(2500);
    await s.from.idle();
    expect(c.notices).toHaveLength(1);
    expect(c.notices[0]).toMatch(/^ℹ 1 message from Discord reached the bridge more than 1 minute after it was said, and was not bridged/);
  });
});
