/**
 * Matrix → Discord posts whose answer is lost, with the bridge's ToDiscord and WebhookPool and an
 * unmodified discord.js client logged in to the fake Discord (test/harness/fake-discord, on 127.0.0.1).
 * The fake stores a webhook message and then answers 500, closes the connection, or never answers: the
 * message must be on Discord once, and its id returned as if the post had gone well; a post Discord
 * did not store is sent again, once. Core is stood in for by what ToDiscord reads: its kv, the message
 * map (`bridged`), the log.
 */
import { type Logger, type MatrixEdit, type MatrixMessage, type NetworkContext } from '@trestle/core';
import type { APIGuild, APIUser } from 'discord-api-types/v10';
import { Client, GatewayIntentBits as I } from 'discord.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { login } from '../../../packages/discord/src/client.js';
import type { DiscordConfig } from '../../../packages/discord/src/config.js';
import type { StoredWebhook } from '../../../packages/discord/src/store.js';
import { ToDiscord } from '../../../packages/discord/src/toDiscord.js';
import { WebhookPool } from '../../../packages/discord/src/webhooks.js';
import { FakeDiscord, type GuildChannel, type RequestRecord } from '../../harness/fake-discord/server.js';

/** How long the bot's REST waits for an answer (discord.js: 15 s); the webhooks' client is made with the same. */
const REST_TIMEOUT_MS = 1500;

let fake: FakeDiscord;
let client: Client;
let guild: APIGuild;
let bob: APIUser;

beforeAll(async () => {
  fake = new FakeDiscord({ heartbeatIntervalMs: 1000 });
  guild = fake.addGuild({ name: 'G' });
  bob = fake.addUser({ username: 'bob' });
  fake.addMember(guild.id, bob.id);
  const { apiUrl, cdnUrl } = await fake.start();
  client = new Client({ intents: [I.Guilds, I.GuildMessages], rest: { api: apiUrl, cdn: cdnUrl, timeout: REST_TIMEOUT_MS } });
  await login(client, fake.token, 'networks.discord');
});

afterAll(async () => {
  await client?.destroy();
  await fake?.stop();
});

/** The bridge's Matrix → Discord side, on a channel of its own; `kv` and `hooks` (the database) may be an earlier one's (a restart). */
function bridge(ch: GuildChannel, kv = new Map<string, string>(), hooks = new Map<string, StoredWebhook>()) {
  const store = {
    allWebhookIds: () => [...hooks.values()].map((w) => w.id), webhookFor: (c: string) => hooks.get(c),
    addWebhook: (w: StoredWebhook) => { hooks.set(w.channelId, w); }, webhookGone: () => undefined,
  };
  const warnings: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
  const log: Logger = {
    debug: () => undefined, info: () => undefined, error: () => undefined, child: () => log,
    warn: (msg, fields) => { warnings.push({ msg, fields }); },
  };
  /** Core's message map: the refs of what was delivered. */
  const mapped = new Set<string>();
  const ctx = {
    log, domain: 'x', mediaUrl: (m: string) => m, portals: { forRoom: () => [] }, matrix: { powerLevel: async () => 0 }, remoteUserOf: () => undefined,
    kv: { get: (k: string) => kv.get(k), set: (k: string, v: string) => { kv.set(k, v); }, delete: (k: string) => { kv.delete(k); } },
    bridged: (chat: string, ref: string) => chat === ch.id && mapped.has(ref),
  } as unknown as NetworkContext;
  const webhooks = new WebhookPool(store as never, () => client.rest, () => client.user?.id, 'Trestle bridge', log);
  const to = new ToDiscord({
    ctx, cfg: { everyoneMentionPower: 50, uploadLimitBytes: 1e7 } as unknown as DiscordConfig, aliasPrefix: 'discord_',
    store: { setReplyQuote() {}, replyQuote: () => undefined, addReaction() {} } as never, webhooks, emojis: { byMxc: () => undefined } as never,
    client: () => client, remoteUserOf: () => undefined,
  });
  const portal = { roomId: '!r:x', remoteChat: ch.id, kind: 'portal' as const };
  let n = 0;
  const message = (body: string, eventId = `$m${++n}`): MatrixMessage =>
    ({ portal, eventId, sender: { userId: '@alice:x', displayName: 'Alice' }, msgtype: 'm.text', body, timestamp: 0, raw: {} });
  /** Send as core does: the ids go in the message map once it succeeded. */
  const send = async (m: MatrixMessage): Promise<string[]> => {
    const ids = (await to.message(m)).remoteIds ?? [];
    for (const id of ids) mapped.add(id);
    return ids;
  };
  const edit = (remoteIds: string[], body: string): MatrixEdit =>
    ({ portal, eventId: `$e${++n}`, sender: { userId: '@alice:x', displayName: 'Alice' }, target: { eventId: '$m1', remoteIds }, msgtype: 'm.text', body, timestamp: 0 });
  return { to, send, message, edit, kv, hooks, warnings, mapped };
}

let channels = 0;
async function channel(): Promise<GuildChannel> {
  const ch = fake.addChannel(guild.id, { name: `ch${++channels}` });
  const deadline = Date.now() + 5000;
  while (!client.channels.cache.has(ch.id)) {
    if (Date.now() > deadline) throw new Error('the channel did not reach the client');
    await new Promise((r) => setTimeout(r, 20));
  }
  return ch;
}

let n0 = 0;
beforeEach(() => { n0 = fake.requests.length; });
/** The requests since the test began, as `METHOD route status`. */
const requests = (): string[] => fake.requests.slice(n0).filter((r: RequestRecord) => r.route !== '/channels/:channel/webhooks')
  .map((r) => `${r.method} ${r.route} ${r.status}`);
const POSTED = 'POST /webhooks/:webhook/:token 200';
const LOOKED = 'GET /channels/:channel/messages 200';
const contents = (ch: GuildChannel): string[] => fake.messages(ch.id).map((m) => m.content);

describe('Matrix → Discord posts whose answer is lost', () => {
  it('posts once when Discord answers, and reads nothing back', async () => {
    const ch = await channel();
    const b = bridge(ch);
    const ids = await b.send(b.message('all is well'));
    expect(ids).toEqual([fake.messages(ch.id)[0]!.id]);
    expect(requests()).toEqual([POSTED]);
    expect([...b.kv.keys()]).toEqual([]);
  });

  for (const how of ['500', 'reset', 'hang'] as const) {
    it(`takes the message Discord stored before its answer failed (${how}) as sent: on Discord once, its id returned`, async () => {
      const ch = await channel();
      const b = bridge(ch);
      fake.failNextWebhookAfterStoring(how);
      const t0 = Date.now();
      const ids = await b.send(b.message(`stored then ${how}`));
      expect(contents(ch)).toEqual([`stored then ${how}`]);
      expect(ids).toEqual([fake.messages(ch.id)[0]!.id]);
      // one post (no retry by discord.js), then one look
      expect(requests()).toEqual([`POST /webhooks/:webhook/:token ${how === '500' ? 500 : 0}`, LOOKED]);
      if (how === 'hang') expect(Date.now() - t0).toBeGreaterThanOrEqual(REST_TIMEOUT_MS - 50);
      expect(b.warnings.map((w) => w.msg)).toContainEqual(expect.stringMatching(/Discord has the message: taken as sent/));
      expect(b.warnings.find((w) => /taken as sent/.test(w.msg))?.fields).toMatchObject({ messageId: ids[0], where: ch.id });
      expect([...b.kv.keys()]).toEqual([]);
    });
  }

  it('posts again, once, what Discord did not store (a 500 before storing): the retry looks first', async () => {
    const ch = await channel();
    const b = bridge(ch);
    fake.failNext('POST /webhooks/:webhook/:token', 500);
    const m = b.message('not stored');
    await expect(b.send(m)).rejects.toMatchObject({ permanent: false });
    expect([...b.kv.keys()]).toHaveLength(1); // the attempt, noted for the retry
    const ids = await b.send(m);
    expect(contents(ch)).toEqual(['not stored']);
    expect(ids).toEqual([fake.messages(ch.id)[0]!.id]);
    expect(requests()).toEqual(['POST /webhooks/:webhook/:token 500', LOOKED, LOOKED, POSTED]);
    expect([...b.kv.keys()]).toEqual([]);
  });

  it('finds on the retry, even after a restart, a message it could not look for at once', async () => {
    const ch = await channel();
    const b = bridge(ch);
    fake.failNextWebhookAfterStoring('500');
    fake.failNext('GET /channels/:channel/messages', 503, { times: 4 }); // the bot's REST retries a GET 3 times
    const m = b.message('looked for later');
    await expect(b.send(m)).rejects.toMatchObject({ permanent: false });
    const restarted = bridge(ch, b.kv, b.hooks);
    const ids = await restarted.send(m);
    expect(contents(ch)).toEqual(['looked for later']);
    expect(ids).toEqual([fake.messages(ch.id)[0]!.id]);
    expect(requests().filter((r) => r.startsWith('POST'))).toEqual(['POST /webhooks/:webhook/:token 500']);
    expect([...b.kv.keys()]).toEqual([]);
  });

  it('does not post what a refused post (4xx) was: nothing to look for', async () => {
    const ch = await channel();
    const b = bridge(ch);
    fake.failNext('POST /webhooks/:webhook/:token', 400, { body: { message: 'Invalid Form Body', code: 50035 } });
    await expect(b.send(b.message('refused'))).rejects.toMatchObject({ permanent: true });
    expect(requests()).toEqual(['POST /webhooks/:webhook/:token 400']);
    expect([...b.kv.keys()]).toEqual([]);
  });

  it('never takes a message that is already another Matrix event\'s', async () => {
    const ch = await channel();
    const b = bridge(ch);
    const [first] = await b.send(b.message('same words'));
    fake.failNextWebhookAfterStoring('500');
    const [second] = await b.send(b.message('same words'));
    expect(contents(ch)).toEqual(['same words', 'same words']);
    expect(second).not.toBe(first);
    expect(second).toBe(fake.messages(ch.id)[1]!.id);
  });

  it('a long message: a part stored before its answer failed is taken, and the next part posted once', async () => {
    const ch = await channel();
    const b = bridge(ch);
    const text = ['a', 'b'].map((w) => `${w} `.repeat(900).trim()).join('\n'); // two messages
    fake.failNextWebhookAfterStoring('500');
    fake.failNext('GET /channels/:channel/messages', 503, { times: 4 });
    const m = b.message(text);
    await expect(b.send(m)).rejects.toMatchObject({ permanent: false });
    const ids = await b.send(m);
    expect(fake.messages(ch.id).map((x) => x.id)).toEqual(ids);
    expect(contents(ch).map((c) => c[0])).toEqual(['a', 'b']);
  });

  it('an edit that adds a part: a part stored before its answer failed is taken, not posted again', async () => {
    const ch = await channel();
    const b = bridge(ch);
    const ids = await b.send(b.message('short'));
    fake.failNextWebhookAfterStoring('500');
    await b.to.edit(b.edit(ids, ['a', 'b'].map((w) => `${w} `.repeat(900).trim()).join('\n')));
    expect(contents(ch).map((c) => c[0])).toEqual(['a', 'b']);
    expect(requests().filter((r) => r.startsWith('POST'))).toEqual([POSTED, 'POST /webhooks/:webhook/:token 500']);
  });
});
