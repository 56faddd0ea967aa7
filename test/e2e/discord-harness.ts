/**
 * What the Discord e2e suites (test/e2e/discord-*.test.ts) share: the fake Discord with its cast
 * (a guild, bob, carol, dana, a moderator), the bridge built from the e2e config, alice on Synapse,
 * and helpers to plumb rooms and read Matrix state. Each suite calls {@link useDiscordBridge} once
 * at its top: it gets a fresh fake Discord and bridge (on the shared Synapse) for its own tests.
 * The bindings below are live: read them inside tests, after the suite's beforeAll has run.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { createLogger, loadEverything, migrate, openDatabase, silentLogger, TrestleBridge, type NetworkContext, type PortalInfo } from '@trestle/core';
import { DiscordNetwork, discordConfigSchema } from '@trestle/discord';
import { PermissionFlagsBits as P, type APIGuild, type APIMessage, type APIUser } from 'discord-api-types/v10';
import { FakeDiscord, type GuildChannel } from '../harness/fake-discord/server.js';
import { MatrixUser, type MatrixEventJson } from '../harness/matrix-user.js';
import { e2e, until } from './env.js';

const discordPort = Number(process.env['TRESTLE_E2E_DISCORD_PORT'] ?? 0);
export const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fe0ddc44ce0000000049454e44ae426082', 'hex');

export let fake: FakeDiscord;
export let bridge: TrestleBridge;
export let alice: MatrixUser;
export let botId: string;
export let guild: APIGuild;
export let bob: APIUser;
export let carol: APIUser;
export let dana: APIUser;
export let modsRole: { id: string };
/** A member with Manage Webhooks: the one who approves link requests. */
export let mod: APIUser;

export const body = (e: MatrixEventJson): string => String(e.content['body'] ?? '');
export const ghost = (discordUserId: string): string => `@discord_${discordUserId}:localhost`;
export const relates = (e: MatrixEventJson): Record<string, unknown> | undefined => e.content['m.relates_to'] as Record<string, unknown> | undefined;
export const discordNet = (): DiscordNetwork => bridge.networks.get('discord') as DiscordNetwork;

export function channel(name: string): GuildChannel {
  return fake.addChannel(guild.id, { name });
}

/** The newest link request the bot posted in a channel. */
export const linkRequest = (channelId: string): APIMessage | undefined =>
  fake.messages(channelId).filter((m) => m.author.id === fake.bot.id && m.content.startsWith('**Bridge request**')).at(-1);

/** A Matrix room of alice's with the bridge bot in it (power 100, as plumbing needs). */
export async function roomWithBot(name: string): Promise<string> {
  const roomId = await alice.createRoom({ name });
  await alice.invite(roomId, botId);
  await until(async () => (await alice.joinedMembers(roomId)).includes(botId), 'the bot to join');
  await alice.setPowerLevel(roomId, botId, 100);
  return roomId;
}

/** A Matrix room linked to a Discord channel as a room admin does it: `!discord link`, approved on Discord by a member with Manage Webhooks. */
export async function plumbed(ch: GuildChannel, g: APIGuild = guild): Promise<string> {
  await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the new channel');
  const roomId = await roomWithBot(`plumbed ${ch.name}`);
  await alice.sendText(roomId, `!discord link ${g.id} ${ch.id}`);
  const request = await until(() => linkRequest(ch.id), 'the approval request in the Discord channel');
  fake.addReaction(ch.id, request.id, mod.id, '✅');
  await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
  return roomId;
}

/** A server where the bot is not the owner and its role has only what bridging needs (no Manage Channels, Kick or Ban Members). */
export function restrictedGuild(name: string): APIGuild {
  const g = fake.addGuild({ name, ownerId: carol.id });
  fake.updateRole(g.id, fake.botRole(g.id).id, {
    permissions: String(P.ViewChannel | P.SendMessages | P.ReadMessageHistory | P.ManageWebhooks | P.AddReactions | P.EmbedLinks | P.AttachFiles),
  });
  fake.addMember(g.id, mod.id, { roles: [fake.addRole(g.id, { name: 'hooks', permissions: String(P.ManageWebhooks) }).id] });
  return g;
}

/** A request to the homeserver as the bridge bot (appservice token): reads what Matrix users cannot see yet. */
export async function asBot<T = Record<string, unknown>>(method: string, path: string, content?: unknown): Promise<T> {
  const res = await fetch(`${e2e.synapseUrl}${path}`, {
    method, headers: { authorization: `Bearer ${e2e.registration().as_token}`, ...(content !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(content !== undefined ? { body: JSON.stringify(content) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}
export const stateOf = (roomId: string): Promise<MatrixEventJson[]> => asBot<MatrixEventJson[]>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`);
export const stateEvent = async (roomId: string, type: string, key = ''): Promise<MatrixEventJson | undefined> =>
  (await stateOf(roomId)).find((e) => e.type === type && e.state_key === key);
export const membershipIn = async (roomId: string, userId: string): Promise<MatrixEventJson | undefined> => stateEvent(roomId, 'm.room.member', userId);
/** Give a Matrix user a power level in a room, as the bridge bot (portal rooms are the bot's). */
export async function grantPower(roomId: string, userId: string, level: number): Promise<void> {
  const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`;
  const pl = await asBot<{ users?: Record<string, number> }>('GET', path);
  await asBot('PUT', path, { ...pl, users: { ...(pl.users ?? {}), [userId]: level } });
}

/**
 * Follow alice's /sync of one room for who is typing there. Make it before anyone types: it reads
 * changes from where the room is when made, and `until` goes on from where the last call stopped.
 */
export async function watchTyping(roomId: string): Promise<{ until(pred: (userIds: string[]) => boolean, timeoutMs?: number): Promise<string[]> }> {
  type Sync = { next_batch: string; rooms?: { join?: Record<string, { ephemeral?: { events: { type: string; content: { user_ids?: string[] } }[] } }> } };
  const filter = encodeURIComponent(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 1 } } }));
  let since = (await alice.request<Sync>('GET', `/_matrix/client/v3/sync?timeout=0&filter=${filter}`)).next_batch;
  let now: string[] = [];
  return {
    async until(pred, timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      while (!pred(now)) {
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for who types in ${roomId} (now: ${now.join(', ') || 'nobody'})`);
        const res = await alice.request<Sync>('GET', `/_matrix/client/v3/sync?timeout=1000&since=${since}&filter=${filter}`);
        since = res.next_batch;
        const typing = res.rooms?.join?.[roomId]?.ephemeral?.events.find((e) => e.type === 'm.typing');
        if (typing) now = typing.content.user_ids ?? [];
      }
      return now;
    },
  };
}

/** Upload a file to Synapse as alice; returns the mxc URL. */
export async function upload(data: Buffer, filename: string, contentType: string): Promise<string> {
  const res = await fetch(`${e2e.synapseUrl}/_matrix/media/v3/upload?filename=${encodeURIComponent(filename)}`, {
    method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': contentType }, body: data,
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { content_uri: string }).content_uri;
}

export async function downloadMxc(mxc: string): Promise<Buffer> {
  const [, server, id] = /^mxc:\/\/([^/]+)\/(.+)$/.exec(mxc)!;
  const res = await fetch(`${e2e.synapseUrl}/_matrix/client/v1/media/download/${server}/${id}`, { headers: { authorization: `Bearer ${alice.accessToken}` } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

/** The messages the bridge's webhooks posted in a channel, oldest first. */
export const fromWebhook = (channelId: string) => fake.messages(channelId).filter((m) => m.webhook_id);
export const webhookContents = (channelId: string): string[] => fromWebhook(channelId).map((m) => m.content);

/**
 * Start the bridge from the e2e config (it becomes `bridge`); `discord` overrides parts of its Discord
 * section, `delivery` parts of its retry policy, `ircServer` parts of the `test` IRC server.
 */
export async function startBridge(
  discord: Record<string, unknown> = {}, delivery: { initialBackoffMs?: number; maxBackoffMs?: number } = {}, ircServer: Record<string, unknown> = {},
): Promise<TrestleBridge> {
  const { config, modules } = await loadEverything(e2e.config);
  Object.assign(config.delivery, delivery);
  const sections = config.networks as Record<string, Record<string, unknown>>;
  sections['discord'] = { ...sections['discord'], ...discord };
  const servers = sections['irc']!['servers'] as Record<string, Record<string, unknown>>;
  sections['irc'] = { ...sections['irc'], servers: { ...servers, test: { ...servers['test'], ...ircServer } } };
  const networks = [...modules].map(([id, m]) => m.create(sections[id], id));
  const b = new TrestleBridge(config, networks, { log: createLogger({ level: config.logging.level, format: 'pretty' }) });
  await b.start();
  // Synapse backs off from an appservice that was down (between suites, or the restart below): a
  // successful ping makes it send what it holds at once (core pings at start too; this one is checked).
  // Synapse may first try pooled connections to the bridge instance before this one, each of which
  // fails once (502 M_CONNECTION_FAILED, sometimes Twisted's "AlreadyCancelled"); a later ping goes
  // through a fresh connection. Seen to take more than three tries when the pool held several.
  let ping: Response | undefined;
  for (let attempt = 0; attempt < 10 && !ping?.ok; attempt++) {
    if (attempt) await new Promise((r) => setTimeout(r, 300));
    ping = await fetch(`${e2e.synapseUrl}/_matrix/client/v1/appservice/${encodeURIComponent(config.appservice.id)}/ping`, {
      method: 'POST', headers: { authorization: `Bearer ${e2e.registration().as_token}`, 'content-type': 'application/json' }, body: '{}',
    });
  }
  if (!ping!.ok) throw new Error(`appservice ping failed: HTTP ${ping!.status} ${await ping!.text()}`);
  bridge = b;
  return b;
}

/** The network alone against the fake, with core stood in by what it uses; `events` records what it reports. */
export function standalone(config: Record<string, unknown>) {
  const db = openDatabase(join(e2e.dir, `standalone-${Date.now()}-${Math.random()}.db`));
  const notified: { user: string; text: string }[] = [];
  const events: { kind: 'message' | 'powerLevels'; value: Record<string, unknown> }[] = [];
  const portals: PortalInfo[] = [];
  const ctx = {
    log: silentLogger, config, domain: 'localhost', db,
    migrate: (ms: Parameters<NetworkContext['migrate']>[0]) => migrate(db, 'discord', ms, silentLogger),
    portals: {
      forChat: (chat: string) => portals.filter((p) => p.remoteChat === chat), forRoom: () => [], all: () => portals,
      link: (roomId: string, chat: string) => { const p: PortalInfo = { roomId, remoteChat: chat, kind: 'plumbed', network: 'discord', data: {} }; portals.push(p); return p; },
      unlink: () => false, refreshBridgeInfo: () => undefined,
    },
    remote: {
      message: async (m: Record<string, unknown>) => { events.push({ kind: 'message', value: m }); },
      powerLevels: async (p: Record<string, unknown>) => { events.push({ kind: 'powerLevels', value: p }); },
    },
    notifyUser: async (user: string, text: string) => { notified.push({ user, text }); },
    ghostUserId: (u: string) => ghost(u), remoteUserOf: () => undefined, mediaUrl: (m: string) => m,
    // no homeserver here: reads find nothing and writes are refused, so what the network says reaches users through notifyUser
    matrix: {
      botUserId: '@standalone-bot:localhost', getState: async () => undefined, join: async () => undefined,
      ...Object.fromEntries(['setState', 'powerLevel', 'invite', 'notice'].map((k) => [k, async () => { throw new Error('no homeserver in this test'); }])),
    },
  } as unknown as NetworkContext;
  const net = new DiscordNetwork('discord', discordConfigSchema.parse(config));
  /** Link a channel as the link command does: asked on Discord, approved there by a member with Manage Webhooks. */
  const link = async (ch: GuildChannel, roomId: string): Promise<PortalInfo> => {
    const before = linkRequest(ch.id)?.id;
    await expect(net.provisionLink({ roomId, remoteChat: `${guild.id} ${ch.id}`, userId: alice.userId })).rejects.toThrow(/has to approve first/);
    const request = await until(() => { const r = linkRequest(ch.id); return r && r.id !== before ? r : undefined; }, 'the approval request');
    fake.addReaction(ch.id, request.id, mod.id, '✅');
    return until(() => portals.find((p) => p.roomId === roomId && p.remoteChat === ch.id), 'the approved link');
  };
  return { net, ctx, notified, events, link };
}

/** Start a fake Discord with the cast, the bridge and alice before the suite's tests; stop them after. */
export function useDiscordBridge(): void {
  beforeAll(async () => {
    if (!discordPort) throw new Error('TRESTLE_E2E_DISCORD_PORT is not set: run through test/harness/e2e.sh');
    fake = new FakeDiscord({ heartbeatIntervalMs: 5000 });
    bob = fake.addUser({ username: 'bob', globalName: 'Bob Global', avatar: { name: 'bob.png', data: PNG, contentType: 'image/png' } });
    carol = fake.addUser({ username: 'carol', globalName: 'Carol G' });
    dana = fake.addUser({ username: 'dana' });
    guild = fake.addGuild({ name: 'Trestle Test' });
    fake.addMember(guild.id, bob.id, { nick: 'Bobby' });
    fake.addMember(guild.id, carol.id);
    fake.addMember(guild.id, dana.id);
    modsRole = fake.addRole(guild.id, { name: 'mods', mentionable: true, color: 0x3366ff });
    mod = fake.addUser({ username: 'moddy' });
    fake.addMember(guild.id, mod.id, { roles: [fake.addRole(guild.id, { name: 'webhook admins', permissions: String(P.ManageWebhooks) }).id] });
    await fake.start(discordPort); // before the bridge: it logs in at start
    await startBridge();
    botId = bridge.matrix.botUserId;
    alice = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `discordalice${Date.now()}`, { displayName: 'Alice' });
  });

  afterAll(async () => {
    await bridge?.stop();
    await fake?.stop();
  });
}
