/**
 * An unmodified discord.js v14 Client against the fake Discord (test/harness/fake-discord): if these
 * pass, the fake speaks REST v10 and the gateway well enough for the Discord bridge's tests, and the
 * discord.js behaviours the bridge relies on (retries, ordering, resume, echo order, intents) hold.
 */
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AttachmentBuilder, ChannelType, Client, Events, GatewayIntentBits as I, Partials, PermissionFlagsBits, REST, Routes,
  type ClientEvents, type Guild, type TextChannel, type Webhook,
} from 'discord.js';
import type { APIGuild, APIUser } from 'discord-api-types/v10';
import { FakeDiscord, type GuildChannel } from '../harness/fake-discord/server.js';

const TOKEN = 'test-token-123';
const BRIDGE_INTENTS = [I.Guilds, I.GuildMembers, I.GuildMessages, I.MessageContent, I.GuildMessageReactions,
  I.GuildMessageTyping, I.GuildWebhooks, I.GuildExpressions];
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');

/** The first `event` from `client` whose arguments satisfy `pred`, or a rejection after `ms`. */
function waitFor<K extends keyof ClientEvents>(client: Client, event: K, pred: (...args: ClientEvents[K]) => boolean = () => true,
  ms = 3000): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const onEvent = (...args: ClientEvents[K]): void => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      client.off(event, onEvent);
      resolve(args);
    };
    const timer = setTimeout(() => {
      client.off(event, onEvent);
      reject(new Error(`timed out waiting for ${String(event)}`));
    }, ms);
    client.on(event, onEvent);
  });
}

describe('fake Discord with a real discord.js client', () => {
  let fake: FakeDiscord;
  let client: Client;
  let alice: APIUser;
  let bob: APIUser;
  let apiGuild: APIGuild;
  let category: GuildChannel;
  let general: GuildChannel;
  let aliceThread: GuildChannel;
  let guild: Guild;
  let channel: TextChannel;
  let webhook: Webhook;
  const extraClients: Client[] = [];

  const newClient = (intents: number[] = BRIDGE_INTENTS): Client => new Client({
    intents, partials: [Partials.Message, Partials.Channel, Partials.Reaction],
    rest: { api: fake.apiUrl, cdn: fake.cdnUrl, offset: 0 }, // the only change from a production client
  });
  const extraClient = (intents?: number[]): Client => {
    const c = newClient(intents);
    extraClients.push(c);
    return c;
  };
  const login = async (c: Client): Promise<void> => {
    const ready = once(c, Events.ClientReady);
    await c.login(TOKEN);
    await ready;
  };
  const contentsOf = (requests: readonly { body: unknown }[]): unknown[] => requests.map((r) => (r.body as { content?: string }).content);

  beforeAll(async () => {
    fake = new FakeDiscord({ token: TOKEN, heartbeatIntervalMs: 1000 });
    alice = fake.addUser({ username: 'alice', globalName: 'Alice', avatar: { name: 'a.png', data: PNG } });
    bob = fake.addUser({ username: 'bob' });
    apiGuild = fake.addGuild({ name: 'Fake Guild', ownerId: alice.id });
    fake.addMember(apiGuild.id, alice.id);
    fake.addMember(apiGuild.id, bob.id, { nick: 'Bobby' });
    fake.addRole(apiGuild.id, { name: 'matrix', color: 0x00ff00 });
    fake.addEmoji(apiGuild.id, { name: 'party', image: { name: 'party.png', data: PNG } });
    category = fake.addChannel(apiGuild.id, { name: 'Bridged', type: ChannelType.GuildCategory });
    general = fake.addChannel(apiGuild.id, { name: 'general', parentId: category.id, topic: 'chat' });
    aliceThread = fake.addChannel(apiGuild.id, { name: 'side chat', type: ChannelType.PublicThread, parentId: general.id, ownerId: alice.id });
    await fake.start();
    client = newClient();
    await login(client);
    guild = client.guilds.cache.get(apiGuild.id) as Guild;
    channel = client.channels.cache.get(general.id) as TextChannel;
  });

  afterEach(async () => {
    fake.setEchoOrder('gateway-first');
    fake.messageContentIntent = true;
    await Promise.all(extraClients.splice(0).map((c) => c.destroy()));
  });

  afterAll(async () => {
    await client?.destroy();
    await fake?.stop();
  });

  it('logs in: READY and GUILD_CREATE fill the cache', () => {
    expect(client.user?.id).toBe(fake.bot.id);
    expect(client.user?.bot).toBe(true);
    expect(client.application?.id).toBe(fake.bot.id);
    expect(guild.available).toBe(true);
    expect(guild.name).toBe('Fake Guild');
    expect(channel.type).toBe(ChannelType.GuildText);
    expect(channel.topic).toBe('chat');
    expect(channel.parent?.id).toBe(category.id);
    expect(client.channels.cache.get(aliceThread.id)?.isThread()).toBe(true);
    expect(guild.members.cache.get(alice.id)?.displayName).toBe('Alice');
    expect(guild.members.cache.get(bob.id)?.displayName).toBe('Bobby');
    expect(guild.roles.everyone.id).toBe(guild.id);
    expect(guild.roles.cache.find((r) => r.name === 'matrix')?.color).toBe(0x00ff00);
    expect(guild.emojis.cache.find((e) => e.name === 'party')).toBeTruthy();
    expect(guild.members.me && channel.permissionsFor(guild.members.me)?.has(PermissionFlagsBits.ManageWebhooks)).toBe(true);
    expect(client.users.cache.get(alice.id)?.avatarURL()).toMatch(new RegExp(`^${fake.cdnUrl}/avatars/${alice.id}/`));
  });

  it('serves user avatars and custom emojis from the CDN', async () => {
    const avatar = await fetch(client.users.cache.get(alice.id)?.displayAvatarURL({ extension: 'png', size: 64 }) as string);
    expect(Buffer.from(await avatar.arrayBuffer())).toEqual(PNG);
    const emoji = await fetch(guild.emojis.cache.find((e) => e.name === 'party')?.imageURL() as string);
    expect(emoji.status).toBe(200);
  });

  it('answers REST reads of guilds, channels, members, roles, emojis and users', async () => {
    expect((await client.guilds.fetch({ guild: apiGuild.id, force: true })).ownerId).toBe(alice.id);
    const channels = await guild.channels.fetch(undefined, { force: true });
    expect(channels.map((c) => c?.name).sort()).toEqual(['Bridged', 'general']);
    expect((await client.channels.fetch(general.id, { force: true }))?.id).toBe(general.id);
    expect((await guild.members.fetch({ user: alice.id, force: true })).user.globalName).toBe('Alice');
    expect((await guild.roles.fetch()).size).toBe(3);
    expect((await guild.emojis.fetch()).first()?.name).toBe('party');
    expect((await client.users.fetch(bob.id, { force: true })).username).toBe('bob');
    await expect(guild.members.fetch({ user: '123456789012345678', force: true })).rejects.toMatchObject({ code: 10007 });
  });

  it('edits a channel (PATCH) and reports CHANNEL_UPDATE', async () => {
    const updated = waitFor(client, Events.ChannelUpdate, (_o, n) => n.id === general.id);
    await channel.setTopic('bridged to #general:example.org');
    expect(((await updated)[1] as TextChannel).topic).toBe('bridged to #general:example.org');
    expect(fake.channel(general.id)).toMatchObject({ topic: 'bridged to #general:example.org' });
  });

  it('delivers an injected user message as messageCreate with its content', async () => {
    const got = waitFor(client, Events.MessageCreate, (m) => m.content === 'hello from alice');
    const injected = fake.injectUserMessage(general.id, alice.id, 'hello from alice');
    const [m] = await got;
    expect(m.id).toBe(injected.id);
    expect(m.author.id).toBe(alice.id);
    expect(m.author.bot).toBe(false);
    expect(m.member?.displayName).toBe('Alice');
    expect(m.channelId).toBe(general.id);
    expect(m.webhookId).toBeNull();
    expect(m.createdTimestamp).toBeGreaterThan(Date.now() - 10_000);
  });

  it('sends a message; the gateway echo has the same id and the fake stores it', async () => {
    const echo = waitFor(client, Events.MessageCreate, (m) => m.content === 'hello from bot');
    const sent = await channel.send('hello from bot');
    expect(sent.author.id).toBe(fake.bot.id);
    const [e] = await echo;
    expect(e.id).toBe(sent.id);
    expect(fake.message(sent.id)?.content).toBe('hello from bot');
    expect(fake.messages(general.id).at(-1)?.id).toBe(sent.id);
    expect(fake.requests.at(-1)?.auth).toBe(`Bot ${TOKEN}`);
  });

  it('replies, and sends typing', async () => {
    const original = fake.injectUserMessage(general.id, bob.id, 'question?');
    await channel.sendTyping();
    expect(fake.requests.at(-1)).toMatchObject({ method: 'POST', route: '/channels/:channel/typing', status: 204 });
    const msg = await channel.messages.fetch(original.id);
    const reply = await msg.reply('answer');
    expect(reply.reference?.messageId).toBe(original.id);
    expect(fake.message(reply.id)?.referenced_message?.id).toBe(original.id);
    const typing = waitFor(client, Events.TypingStart, (t) => t.user.id === alice.id);
    fake.injectTyping(general.id, alice.id);
    await typing;
  });

  it('uploads attachments as multipart and serves them from the CDN', async () => {
    const sent = await channel.send({ content: 'file', files: [new AttachmentBuilder(Buffer.from('hello file'), { name: 'a.txt',
      description: 'a text file' })] });
    const att = sent.attachments.first();
    expect(att?.name).toBe('a.txt');
    expect(att?.description).toBe('a text file');
    expect(att?.contentType).toBe('text/plain; charset=utf-8');
    expect(att?.url.startsWith(fake.cdnUrl)).toBe(true);
    expect(await (await fetch(att?.url as string)).text()).toBe('hello file');
    const upload = fake.requests.findLast((r) => r.files.length > 0);
    expect(upload).toMatchObject({ route: '/channels/:channel/messages', files: [{ name: 'a.txt', size: 10 }] });
  });

  it('creates, lists and executes webhooks with a per-message username and avatar', async () => {
    webhook = await channel.createWebhook({ name: 'matrix-bridge' });
    expect(webhook.channelId).toBe(general.id);
    expect(webhook.token).toHaveLength(68);
    expect((await channel.fetchWebhooks()).has(webhook.id)).toBe(true);
    await expect(channel.createWebhook({ name: 'my discord hook' })).rejects.toMatchObject({ code: 50035, status: 400 });

    const echo = waitFor(client, Events.MessageCreate, (m) => m.webhookId === webhook.id && m.content === 'from matrix');
    const m = await webhook.send({ content: 'from matrix', username: 'Alice (Matrix)', avatarURL: 'https://matrix.example/a.png' });
    expect(m.webhookId).toBe(webhook.id);
    expect(m.author.username).toBe('Alice (Matrix)');
    const [e] = await echo;
    expect(e.author.username).toBe('Alice (Matrix)');
    expect(e.member).toBeNull();
    expect(fake.webhookExecutions.at(-1)).toMatchObject({ webhookId: webhook.id, messageId: m.id, username: 'Alice (Matrix)',
      avatarUrl: 'https://matrix.example/a.png', wait: true });
    expect(fake.requests.at(-1)).toMatchObject({ route: '/webhooks/:webhook/:token', auth: null, query: { wait: 'true' } });
  });

  it('reports edits and deletes: user messages, the bot\'s own, and webhook messages', async () => {
    const userMsg = fake.injectUserMessage(general.id, alice.id, 'tpyo');
    const userEdit = waitFor(client, Events.MessageUpdate, (_o, n) => n.id === userMsg.id);
    fake.editUserMessage(general.id, userMsg.id, 'typo');
    expect((await userEdit)[1].content).toBe('typo');
    const userDel = waitFor(client, Events.MessageDelete, (m) => m.id === userMsg.id);
    fake.deleteUserMessage(general.id, userMsg.id);
    await userDel;
    expect(fake.message(userMsg.id)).toBeUndefined();

    const own = await channel.send('v1');
    const ownEdit = waitFor(client, Events.MessageUpdate, (_o, n) => n.id === own.id);
    expect((await own.edit('v2')).content).toBe('v2');
    expect((await ownEdit)[1].editedTimestamp).toBeTruthy();

    const whMsg = await webhook.send({ content: 'from matrix', username: 'Bob (Matrix)' });
    const whEdit = waitFor(client, Events.MessageUpdate, (_o, n) => n.id === whMsg.id);
    expect((await webhook.editMessage(whMsg, { content: 'from matrix (edited)' })).content).toBe('from matrix (edited)');
    expect((await whEdit)[1].content).toBe('from matrix (edited)');
    const whDel = waitFor(client, Events.MessageDelete, (m) => m.id === whMsg.id);
    await webhook.deleteMessage(whMsg);
    await whDel;
    expect(fake.message(whMsg.id)).toBeUndefined();
  });

  it('reports reactions both ways, unicode and custom', async () => {
    const target = await channel.send('react to me');
    const added = waitFor(client, Events.MessageReactionAdd, (r, u) => r.message.id === target.id && u.id === alice.id);
    fake.addReaction(general.id, target.id, alice.id, '👍');
    expect((await added)[0].emoji.name).toBe('👍');
    const removed = waitFor(client, Events.MessageReactionRemove, (r, u) => r.message.id === target.id && u.id === alice.id);
    fake.removeReaction(general.id, target.id, alice.id, '👍');
    await removed;

    await target.react('🎉');
    const party = guild.emojis.cache.find((e) => e.name === 'party');
    await target.react(party?.identifier as string);
    expect(fake.message(target.id)?.reactions?.map((r) => [r.emoji.name, r.count, r.me])).toEqual([['🎉', 1, true], ['party', 1, true]]);
    await expect(target.react('notanemoji')).rejects.toMatchObject({ code: 10014 });
  });

  it('creates a thread from a message (same id) and carries messages and webhook posts in threads', async () => {
    const starter = fake.injectUserMessage(general.id, alice.id, 'let us talk in a thread');
    const created = waitFor(client, Events.ThreadCreate, (t) => t.id === starter.id);
    const msg = await channel.messages.fetch(starter.id);
    const thread = await msg.startThread({ name: 'bridged thread' });
    expect(thread.id).toBe(starter.id);
    expect(thread.parentId).toBe(general.id);
    expect((await created)[1]).toBe(true); // newlyCreated

    const inThread = waitFor(client, Events.MessageCreate, (m) => m.content === 'in the thread');
    fake.injectUserMessage(thread.id, bob.id, 'in the thread');
    expect((await inThread)[0].channel.isThread()).toBe(true);
    const viaHook = await webhook.send({ content: 'matrix reply in thread', username: 'Carol (Matrix)', threadId: thread.id });
    expect(viaHook.channelId).toBe(thread.id);
    expect(fake.messages(thread.id).map((m) => m.content)).toEqual(['in the thread', 'matrix reply in thread']);
  });

  it('waits out a route 429 (Retry-After) and keeps the order of queued sends', async () => {
    fake.failNext('POST /channels/:id/messages', 429, { retryAfter: 0.3 });
    const n0 = fake.requests.length;
    const t0 = performance.now();
    const sent = await Promise.all(['r1', 'r2', 'r3'].map((c) => channel.send(c)));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    const posts = fake.requests.slice(n0);
    expect(posts.map((r) => r.status)).toEqual([429, 200, 200, 200]);
    expect(contentsOf(posts)).toEqual(['r1', 'r1', 'r2', 'r3']);
    expect(fake.messages(general.id).slice(-3).map((m) => m.id)).toEqual(sent.map((m) => m.id));
  });

  it('waits out a global 429 on webhook executes and keeps the order', async () => {
    fake.failNext('POST /webhooks/:id/:token', 429, { retryAfter: 0.2, global: true });
    const n0 = fake.requests.length;
    const sent = await Promise.all(['g1', 'g2', 'g3'].map((content) => webhook.send({ content, username: 'x' })));
    const posts = fake.requests.slice(n0);
    expect(posts.map((r) => r.status)).toEqual([429, 200, 200, 200]);
    expect(contentsOf(posts)).toEqual(['g1', 'g1', 'g2', 'g3']);
    expect(fake.messages(general.id).slice(-3).map((m) => m.id)).toEqual(sent.map((m) => m.id));
  });

  it('retries a 500 in place (3 retries, then gives up)', async () => {
    fake.failNext('POST /channels/:id/messages', 500);
    const n0 = fake.requests.length;
    await Promise.all(['e1', 'e2'].map((c) => channel.send(c)));
    expect(fake.requests.slice(n0).map((r) => [r.status, (r.body as { content: string }).content]))
      .toEqual([[500, 'e1'], [200, 'e1'], [200, 'e2']]);

    fake.failNext('POST /channels/:id/messages', 502, { times: 4 });
    await expect(channel.send('never')).rejects.toMatchObject({ status: 502 });
    expect(fake.messages(general.id).some((m) => m.content === 'never')).toBe(false);
  });

  it('stores a webhook message, then fails its answer, on command: discord.js retries a 500 and posts it twice', async () => {
    const stored = waitFor(client, Events.MessageCreate, (m) => m.content === 'stored then 500');
    fake.failNextWebhookAfterStoring('500');
    const n0 = fake.requests.length;
    await webhook.send({ content: 'stored then 500', username: 'x' });
    await stored; // the gateway echo of the first copy went out, as on Discord
    expect(fake.requests.slice(n0).map((r) => r.status)).toEqual([500, 200]);
    expect(fake.messages(general.id).filter((m) => m.content === 'stored then 500')).toHaveLength(2);
    expect(fake.webhookExecutions.filter((x) => x.content === 'stored then 500')).toHaveLength(2);
  });

  it('stores a webhook message, then closes the connection (reset) or never answers (hang), on command', async () => {
    // a client without retries, and a short timeout for the hang
    const once = new REST({ api: fake.apiUrl, retries: 0, timeout: 500 });
    const hook = fake.webhooks(general.id)[0]!;
    const post = (content: string) => once.post(Routes.webhook(hook.id, hook.token), { body: { content }, auth: false, query: new URLSearchParams({ wait: 'true' }) });
    fake.failNextWebhookAfterStoring('reset');
    await expect(post('stored then reset')).rejects.toThrow();
    fake.failNextWebhookAfterStoring('hang');
    const t0 = performance.now();
    await expect(post('stored then hang')).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    for (const content of ['stored then reset', 'stored then hang']) {
      expect(fake.messages(general.id).filter((m) => m.content === content)).toHaveLength(1);
      expect(fake.requests.filter((r) => (r.body as { content?: string } | null)?.content === content).map((r) => r.status)).toEqual([0]);
    }
    // and the next execute is answered again
    expect(((await post('answered')) as { content: string }).content).toBe('answered');
  });

  it('answers with Discord error codes', async () => {
    await expect(client.channels.fetch('123456789012345678')).rejects.toMatchObject({ code: 10003, status: 404 });
    await expect(channel.messages.fetch('123456789012345678')).rejects.toMatchObject({ code: 10008, status: 404 });
    await expect(channel.send('x'.repeat(2001))).rejects.toMatchObject({ code: 50035, status: 400 });
  });

  it('answers op 8 REQUEST_GUILD_MEMBERS with GUILD_MEMBERS_CHUNK', async () => {
    const all = await guild.members.fetch();
    expect([...all.keys()].sort()).toEqual([fake.bot.id, alice.id, bob.id].sort());
    const found = await guild.members.fetch({ query: 'ali', limit: 5 });
    expect([...found.keys()]).toEqual([alice.id]);
    expect((await guild.members.fetch({ user: bob.id, force: true })).nickname).toBe('Bobby');
  });

  it('reconnects on op 7, RESUMEs, and replays an event sent while it was away', async () => {
    const before = { ...fake.gatewayStats };
    const resumed = waitFor(client, Events.ShardResume, () => true, 5000);
    const got = waitFor(client, Events.MessageCreate, (m) => m.content === 'sent while reconnecting', 5000);
    await fake.forceReconnect(); // the old socket is closed: the client is now reconnecting
    fake.injectUserMessage(general.id, bob.id, 'sent while reconnecting');
    await resumed;
    expect((await got)[0].author.id).toBe(bob.id);
    expect(fake.gatewayStats.resumes).toBe(before.resumes + 1);
    expect(fake.gatewayStats.identifies).toBe(before.identifies);
    expect(fake.gatewayStats.replayedEvents).toBeGreaterThan(before.replayedEvents);
    const after = waitFor(client, Events.MessageCreate, (m) => m.content === 'after resume');
    fake.injectUserMessage(general.id, alice.id, 'after resume');
    await after;
  });

  it('acknowledges heartbeats', async () => {
    await vi.waitFor(() => expect(fake.gatewayStats.heartbeats).toBeGreaterThan(0), { timeout: 3000 });
    await vi.waitFor(() => expect(client.ws.ping).toBeGreaterThanOrEqual(0), { timeout: 3000 });
  });

  it('sends the echo of a write before its HTTP response (gateway-first)', async () => {
    fake.setEchoOrder('gateway-first');
    const order: string[] = [];
    const echo = waitFor(client, Events.MessageCreate, (m) => m.content === 'gf').then(() => order.push('gateway'));
    await channel.send('gf').then(() => order.push('http'));
    await echo;
    expect(order).toEqual(['gateway', 'http']);
  });

  it('sends the echo of a write after its HTTP response (http-first), for bot and webhook messages', async () => {
    fake.setEchoOrder('http-first');
    const order: string[] = [];
    const echo = waitFor(client, Events.MessageCreate, (m) => m.content === 'hf').then(() => order.push('gateway'));
    await channel.send('hf').then(() => order.push('http'));
    await echo;
    const whEcho = waitFor(client, Events.MessageCreate, (m) => m.content === 'hf-webhook').then(() => order.push('gateway'));
    await webhook.send({ content: 'hf-webhook', username: 'x' }).then(() => order.push('http'));
    await whEcho;
    expect(order).toEqual(['http', 'gateway', 'http', 'gateway']);
  });

  it('blanks message content for a client without the MessageContent intent', async () => {
    fake.messageContentIntent = false;
    const reader = extraClient([I.Guilds, I.GuildMessages]);
    await login(reader);
    expect(reader.application?.flags.has('GatewayMessageContentLimited')).toBe(false);
    const plain = waitFor(reader, Events.MessageCreate, (m) => m.author.id === alice.id);
    const secret = fake.injectUserMessage(general.id, alice.id, 'secret words');
    expect((await plain)[0].content).toBe('');
    const mention = waitFor(reader, Events.MessageCreate, (m) => m.author.id === bob.id);
    fake.injectUserMessage(general.id, bob.id, `<@${fake.bot.id}> hi bot`);
    expect((await mention)[0].content).toBe(`<@${fake.bot.id}> hi bot`);
    const readerChannel = reader.channels.cache.get(general.id) as TextChannel;
    expect((await readerChannel.messages.fetch({ message: secret.id, force: true })).content).toBe('');
  });

  it('sends PRESENCE_UPDATE (custom status as an activity) only to a client with the GuildPresences intent', async () => {
    const watcher = extraClient([I.Guilds, I.GuildPresences, I.GuildMessageTyping]);
    await login(watcher);
    const seenByBridge: unknown[] = [];
    const onBridge = (...args: unknown[]): void => { seenByBridge.push(args); };
    client.on(Events.PresenceUpdate, onBridge);
    try {
      const update = waitFor(watcher, Events.PresenceUpdate, (_o, n) => n.userId === bob.id);
      fake.setPresence(apiGuild.id, bob.id, { status: 'dnd', customStatus: 'in a meeting', customEmoji: { name: '📅' }, platform: 'mobile' });
      const [, now] = await update;
      expect(now.status).toBe('dnd');
      expect(now.guild?.id).toBe(apiGuild.id);
      expect(now.clientStatus?.mobile).toBe('dnd');
      expect(now.activities.map((a) => [a.type, a.state, a.emoji?.name])).toEqual([[4, 'in a meeting', '📅']]);
      const gone = waitFor(watcher, Events.PresenceUpdate, (_o, n) => n.userId === bob.id && n.status === 'offline');
      fake.setPresence(apiGuild.id, bob.id, { status: 'offline', customStatus: 'hidden' });
      expect((await gone)[1].activities).toEqual([]);
      // the bridge's client (no GuildPresences) gets a later event of its intents, but no presence before it
      const typing = waitFor(client, Events.TypingStart, (t) => t.user.id === bob.id);
      fake.injectTyping(general.id, bob.id);
      await typing;
      expect(seenByBridge).toEqual([]);
      expect(() => fake.setPresence(apiGuild.id, '1', { status: 'online' })).toThrow(/not a member/);
    } finally {
      client.off(Events.PresenceUpdate, onBridge);
    }
  });

  it('lists members who are not offline in GUILD_CREATE and GUILD_MEMBERS_CHUNK, only to a client with the GuildPresences intent', async () => {
    fake.setPresence(apiGuild.id, alice.id, { status: 'idle', customStatus: 'brb', platform: 'web' });
    fake.setPresence(apiGuild.id, bob.id, { status: 'online' });
    fake.setPresence(apiGuild.id, bob.id, { status: 'offline' }); // gone again: Discord lists no offline member
    try {
      const watcher = extraClient([I.Guilds, I.GuildPresences]);
      const blind = extraClient([I.Guilds]);
      await Promise.all([login(watcher), login(blind)]);
      const watched = watcher.guilds.cache.get(apiGuild.id) as Guild;
      expect([...watched.presences.cache.keys()]).toEqual([alice.id]);
      const p = watched.presences.cache.get(alice.id);
      expect([p?.status, p?.clientStatus?.web, p?.activities.map((a) => [a.type, a.state])]).toEqual(['idle', 'idle', [[4, 'brb']]]);
      expect(blind.guilds.cache.get(apiGuild.id)?.presences.cache.size).toBe(0);

      watched.presences.cache.clear();
      await watched.members.fetch({ withPresences: true });
      expect([...watched.presences.cache.keys()]).toEqual([alice.id]);
    } finally {
      fake.setPresence(apiGuild.id, alice.id, { status: 'offline' });
    }
  });

  it('closes the gateway with 4014 when a privileged intent is requested but disabled', async () => {
    fake.messageContentIntent = false;
    const greedy = extraClient();
    const disconnected = waitFor(greedy, Events.ShardDisconnect, () => true);
    await expect(greedy.login(TOKEN)).rejects.toThrow(/disallowed intents/i);
    expect((await disconnected)[0].code).toBe(4014);
    expect(fake.gatewayStats.closeCodes.at(-1)).toBe(4014);
  });

  it('reports world changes made after login: guild joined, channel, role and member added', async () => {
    const joined = waitFor(client, Events.GuildCreate, (g) => g.name === 'Second Guild');
    const second = fake.addGuild({ name: 'Second Guild' });
    expect((await joined)[0].members.me?.id).toBe(fake.bot.id);
    const created = waitFor(client, Events.ChannelCreate, (c) => c.guildId === second.id);
    const lobby = fake.addChannel(second.id, { name: 'lobby' });
    expect((await created)[0].id).toBe(lobby.id);
    const role = waitFor(client, Events.GuildRoleCreate, (r) => r.guild.id === second.id);
    fake.addRole(second.id, { name: 'late role' });
    expect((await role)[0].name).toBe('late role');
    const member = waitFor(client, Events.GuildMemberAdd, (m) => m.guild.id === second.id);
    fake.addMember(second.id, alice.id);
    expect((await member)[0].id).toBe(alice.id);
  });

  it('changes a member\'s roles and nickname: GUILD_MEMBER_UPDATE, with the member as it was before', async () => {
    const created = waitFor(client, Events.GuildRoleCreate, (r) => r.name === 'promoted');
    const role = fake.addRole(apiGuild.id, { name: 'promoted' });
    await created;
    const given = waitFor(client, Events.GuildMemberUpdate, (_before, after) => after.id === bob.id && after.roles.cache.has(role.id));
    fake.updateMember(apiGuild.id, bob.id, { roles: [role.id] });
    const [before, after] = await given;
    expect(before.roles.cache.has(role.id)).toBe(false);
    expect(after.nickname).toBe('Bobby');
    const taken = waitFor(client, Events.GuildMemberUpdate, (_before, after) => after.id === bob.id && !after.roles.cache.has(role.id));
    fake.updateMember(apiGuild.id, bob.id, { roles: [] });
    expect((await taken)[0].roles.cache.has(role.id)).toBe(true);
    const renamed = waitFor(client, Events.GuildMemberUpdate, (_before, after) => after.id === bob.id && after.nickname === 'Bob B');
    fake.updateMember(apiGuild.id, bob.id, { nick: 'Bob B' });
    await renamed;
    fake.updateMember(apiGuild.id, bob.id, { nick: 'Bobby' });
    expect(() => fake.updateMember(apiGuild.id, bob.id, { roles: ['1'] })).toThrow(/Unknown Role/);
    expect(fake.member(apiGuild.id, bob.id)?.roles).toEqual([]);
  });

  it('rejects login with an invalid token (401 on GET /gateway/bot)', async () => {
    const wrong = extraClient();
    await expect(wrong.login('not-the-token')).rejects.toMatchObject({ code: 'TokenInvalid' });
    expect(fake.requests.at(-1)).toMatchObject({ path: '/gateway/bot', status: 401 });
  });

  it('refuses its own token while tokenRefused is on (a Reset Token in the developer portal), and takes it again after', async () => {
    fake.tokenRefused = true;
    try {
      await expect(extraClient().login(TOKEN)).rejects.toMatchObject({ code: 'TokenInvalid' });
      expect(fake.requests.at(-1)).toMatchObject({ path: '/gateway/bot', status: 401 });
    } finally {
      fake.tokenRefused = false;
    }
    const again = extraClient();
    await login(again);
    expect(again.user?.id).toBe(fake.bot.id);
  });
});
