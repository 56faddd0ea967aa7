/**
 * The Discord bridge against the fake Discord (test/harness/fake-discord, which an unmodified
 * discord.js logs in to) and a real Synapse: the bridge runs in this process with the e2e config;
 * Discord people are played through the fake, Matrix people are real Synapse users.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, loadEverything, migrate, openDatabase, silentLogger, TrestleBridge, type NetworkContext, type PortalInfo } from '@trestle/core';
import { DiscordNetwork, discordConfigSchema } from '@trestle/discord';
import {
  AuditLogEvent, ChannelType, GatewayDispatchEvents as E, GatewayIntentBits as I, MessageType, PermissionFlagsBits as P, StickerFormatType,
  type APIGuild, type APIMessage, type APIRole, type APIUser,
} from 'discord-api-types/v10';
import type { Route } from '../harness/fake-discord/routes.js';
import { FakeDiscord, type GuildChannel } from '../harness/fake-discord/server.js';
import type { World } from '../harness/fake-discord/state.js';
import { IrcUser } from '../harness/irc-user.js';
import { MatrixUser, messagesOf, type MatrixEventJson } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';

const discordPort = Number(process.env['TRESTLE_E2E_DISCORD_PORT'] ?? 0);
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fe0ddc44ce0000000049454e44ae426082', 'hex');

let fake: FakeDiscord;
let bridge: TrestleBridge;
let alice: MatrixUser;
let botId: string;
let guild: APIGuild;
let bob: APIUser;
let carol: APIUser;
let dana: APIUser;
let modsRole: { id: string };
/** A member with Manage Webhooks: the one who approves link requests. */
let mod: APIUser;

const body = (e: MatrixEventJson): string => String(e.content['body'] ?? '');
const ghost = (discordUserId: string): string => `@discord_${discordUserId}:localhost`;
const relates = (e: MatrixEventJson): Record<string, unknown> | undefined => e.content['m.relates_to'] as Record<string, unknown> | undefined;
const discordNet = (): DiscordNetwork => bridge.networks.get('discord') as DiscordNetwork;

function channel(name: string): GuildChannel {
  return fake.addChannel(guild.id, { name });
}

/** The newest link request the bot posted in a channel. */
const linkRequest = (channelId: string): APIMessage | undefined =>
  fake.messages(channelId).filter((m) => m.author.id === fake.bot.id && m.content.startsWith('**Bridge request**')).at(-1);

/** A Matrix room of alice's with the bridge bot in it (power 100, as plumbing needs). */
async function roomWithBot(name: string): Promise<string> {
  const roomId = await alice.createRoom({ name });
  await alice.invite(roomId, botId);
  await until(async () => (await alice.joinedMembers(roomId)).includes(botId), 'the bot to join');
  await alice.setPowerLevel(roomId, botId, 100);
  return roomId;
}

/** A Matrix room linked to a Discord channel as a room admin does it: `!discord link`, approved on Discord by a member with Manage Webhooks. */
async function plumbed(ch: GuildChannel, g: APIGuild = guild): Promise<string> {
  await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the new channel');
  const roomId = await roomWithBot(`plumbed ${ch.name}`);
  await alice.sendText(roomId, `!discord link ${g.id} ${ch.id}`);
  const request = await until(() => linkRequest(ch.id), 'the approval request in the Discord channel');
  fake.addReaction(ch.id, request.id, mod.id, '✅');
  await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
  return roomId;
}

// ---------------------------------------------------------------- what the fake cannot do from its public API
// The fake (test/harness/fake-discord) has no stickers in injected messages, no guild icons, no kicks,
// bans or audit-log entries, and gives the bot an Administrator role everywhere. Its world and REST
// table are reached here (TypeScript's private is a compile-time fence) to play those parts, with the
// same wire shapes Discord uses. They belong in the fake itself; see the report.
const world = (): World => fake['world'];
function dispatch(t: E, d: unknown, intent: number): void {
  world()['events'].dispatch(t, d as never, intent);
}
function addRoute(route: Route): void {
  fake['rest']['routes'].push(route);
}

/** A Discord user posts a message holding a sticker (its image served by the fake's CDN). */
function injectSticker(channelId: string, userId: string, sticker: { id: string; name: string; format_type: StickerFormatType }, image?: Buffer): void {
  const w = world();
  if (image) w.files.set(`/stickers/${sticker.id}`, { data: image, contentType: 'image/png' });
  const ch = w.channel(channelId);
  const msg: APIMessage = {
    id: w.ids.next(), type: MessageType.Default, channel_id: channelId, author: w.user(userId), content: '', timestamp: new Date().toISOString(),
    edited_timestamp: null, tts: false, mention_everyone: false, mentions: [], mention_roles: [], attachments: [], embeds: [], pinned: false,
    components: [], sticker_items: [sticker],
  };
  const stored = { msg, guildId: ch.guild_id, reactions: new Map() };
  w.messages.set(msg.id, stored);
  dispatch(E.MessageCreate, w.gatewayMessage(stored), I.GuildMessages);
}

/** A server's icon changes (or its name), as GUILD_UPDATE tells the bot. */
function updateGuild(g: APIGuild, patch: { name?: string; icon?: Buffer }): void {
  const rec = world().guildRecord(g.id);
  if (patch.name) rec.guild.name = patch.name;
  if (patch.icon) {
    const hash = createHash('md5').update(patch.icon).digest('hex');
    world().files.set(`/icons/${g.id}/${hash}`, { data: patch.icon, contentType: 'image/png' });
    rec.guild.icon = hash;
  }
  dispatch(E.GuildUpdate, rec.guild, I.Guilds);
}

/** A server where the bot is not the owner and its role has only what bridging needs (no Manage Channels, Kick or Ban Members). */
function restrictedGuild(name: string): APIGuild {
  const g = fake.addGuild({ name, ownerId: carol.id });
  const role = world().guildRecord(g.id).guild.roles.find((r) => r.name === 'bridge-bot') as APIRole;
  role.permissions = String(P.ViewChannel | P.SendMessages | P.ReadMessageHistory | P.ManageWebhooks | P.AddReactions | P.EmbedLinks | P.AttachFiles);
  dispatch(E.GuildRoleUpdate, { guild_id: g.id, role }, I.Guilds);
  fake.addMember(g.id, mod.id, { roles: [fake.addRole(g.id, { name: 'hooks', permissions: String(P.ManageWebhooks) }).id] });
  return g;
}

/** A moderator removes a member on Discord: what the gateway says (member gone, the audit-log entry of a kick or ban). */
function removeMember(g: APIGuild, user: APIUser, how: 'leave' | 'kick' | 'ban', by?: APIUser, reason?: string): void {
  world().guildRecord(g.id).members.delete(user.id);
  const audit = (action: AuditLogEvent): void => dispatch(E.GuildAuditLogEntryCreate, {
    guild_id: g.id, id: world().ids.next(), action_type: action, target_id: user.id, user_id: by?.id ?? null, changes: [], ...(reason ? { reason } : {}),
  }, I.GuildModeration);
  if (how === 'ban') dispatch(E.GuildBanAdd, { guild_id: g.id, user }, I.GuildModeration);
  dispatch(E.GuildMemberRemove, { guild_id: g.id, user }, I.GuildMembers);
  if (how === 'kick') audit(AuditLogEvent.MemberKick);
  if (how === 'ban') audit(AuditLogEvent.MemberBanAdd);
}

/** A request to the homeserver as the bridge bot (appservice token): reads what Matrix users cannot see yet. */
async function asBot<T = Record<string, unknown>>(method: string, path: string, content?: unknown): Promise<T> {
  const res = await fetch(`${e2e.synapseUrl}${path}`, {
    method, headers: { authorization: `Bearer ${e2e.registration().as_token}`, ...(content !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(content !== undefined ? { body: JSON.stringify(content) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}
const stateOf = (roomId: string): Promise<MatrixEventJson[]> => asBot<MatrixEventJson[]>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`);
const stateEvent = async (roomId: string, type: string, key = ''): Promise<MatrixEventJson | undefined> =>
  (await stateOf(roomId)).find((e) => e.type === type && e.state_key === key);
const membershipIn = async (roomId: string, userId: string): Promise<MatrixEventJson | undefined> => stateEvent(roomId, 'm.room.member', userId);
/** Give a Matrix user a power level in a room, as the bridge bot (portal rooms are the bot's). */
async function grantPower(roomId: string, userId: string, level: number): Promise<void> {
  const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`;
  const pl = await asBot<{ users?: Record<string, number> }>('GET', path);
  await asBot('PUT', path, { ...pl, users: { ...(pl.users ?? {}), [userId]: level } });
}

/** Upload a file to Synapse as alice; returns the mxc URL. */
async function upload(data: Buffer, filename: string, contentType: string): Promise<string> {
  const res = await fetch(`${e2e.synapseUrl}/_matrix/media/v3/upload?filename=${encodeURIComponent(filename)}`, {
    method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': contentType }, body: data,
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { content_uri: string }).content_uri;
}

async function downloadMxc(mxc: string): Promise<Buffer> {
  const [, server, id] = /^mxc:\/\/([^/]+)\/(.+)$/.exec(mxc)!;
  const res = await fetch(`${e2e.synapseUrl}/_matrix/client/v1/media/download/${server}/${id}`, { headers: { authorization: `Bearer ${alice.accessToken}` } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

/** The messages the bridge's webhooks posted in a channel, oldest first. */
const fromWebhook = (channelId: string) => fake.messages(channelId).filter((m) => m.webhook_id);
const webhookContents = (channelId: string): string[] => fromWebhook(channelId).map((m) => m.content);

/** The bridge from the e2e config, as irc.test.ts builds it; `discord` overrides parts of its Discord section. */
async function startBridge(discord: Record<string, unknown> = {}): Promise<TrestleBridge> {
  const { config, modules } = await loadEverything(e2e.config);
  const sections = config.networks as Record<string, Record<string, unknown>>;
  sections['discord'] = { ...sections['discord'], ...discord };
  const networks = [...modules].map(([id, m]) => m.create(sections[id], id));
  const b = new TrestleBridge(config, networks, { log: createLogger({ level: config.logging.level, format: 'pretty' }) });
  await b.start();
  // Synapse backs off from an appservice that was down (between suites, or the restart below): a
  // successful ping makes it send what it holds at once. (Core does not ping at start yet.)
  const ping = await fetch(`${e2e.synapseUrl}/_matrix/client/v1/appservice/${encodeURIComponent(config.appservice.id)}/ping`, {
    method: 'POST', headers: { authorization: `Bearer ${e2e.registration().as_token}`, 'content-type': 'application/json' }, body: '{}',
  });
  if (!ping.ok) throw new Error(`appservice ping failed: HTTP ${ping.status} ${await ping.text()}`);
  return b;
}

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
  bridge = await startBridge();
  botId = bridge.matrix.botUserId;
  alice = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `discordalice${Date.now()}`, { displayName: 'Alice' });
});

afterAll(async () => {
  await bridge?.stop();
  await fake?.stop();
});

/** The network alone against the fake, with core stood in by what it uses; `events` records what it reports. */
function standalone(config: Record<string, unknown>) {
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
      unlink: () => false,
    },
    remote: {
      message: async (m: Record<string, unknown>) => { events.push({ kind: 'message', value: m }); },
      powerLevels: async (p: Record<string, unknown>) => { events.push({ kind: 'powerLevels', value: p }); },
    },
    notifyUser: async (user: string, text: string) => { notified.push({ user, text }); },
    ghostUserId: (u: string) => ghost(u), remoteUserOf: () => undefined, mediaUrl: (m: string) => m,
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

describe('Discord bridge: messages', () => {
  it('bridges a Discord message to Matrix from the right ghost, with nick, global name or username and the avatar', async () => {
    const ch = channel('hello');
    const roomId = await plumbed(ch);
    fake.injectUserMessage(ch.id, bob.id, 'hello from discord');
    const ev = await alice.waitForEvent(roomId, (e) => body(e) === 'hello from discord');
    expect(ev.sender).toBe(ghost(bob.id));
    expect(ev.content['format']).toBeUndefined(); // plain chat stays plain
    expect(await alice.displayName(ghost(bob.id))).toBe('Bobby'); // guild nick first
    const profile = await alice.request<{ avatar_url?: string }>('GET', `/_matrix/client/v3/profile/${encodeURIComponent(ghost(bob.id))}`);
    expect(profile.avatar_url).toMatch(/^mxc:\/\//);
    expect(await downloadMxc(profile.avatar_url!)).toEqual(PNG);

    fake.injectUserMessage(ch.id, carol.id, 'carol here');
    await alice.waitForEvent(roomId, (e) => body(e) === 'carol here' && e.sender === ghost(carol.id));
    expect(await alice.displayName(ghost(carol.id))).toBe('Carol G'); // no nick: the global name
    fake.injectUserMessage(ch.id, dana.id, 'dana here');
    await alice.waitForEvent(roomId, (e) => body(e) === 'dana here' && e.sender === ghost(dana.id));
    expect(await alice.displayName(ghost(dana.id))).toBe('dana'); // neither: the username
  });

  it('sends a Matrix message through the channel webhook under the sender\'s name, and never back to Matrix', async () => {
    const ch = channel('webhooked');
    const roomId = await plumbed(ch);
    await alice.sendText(roomId, 'hello from matrix');
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content === 'hello from matrix'), 'the webhook execution');
    expect(exec.username).toBe('Alice');
    expect(exec.wait).toBe(true);
    const posted = fake.message(exec.messageId)!;
    expect(posted.author.username).toBe('Alice');
    expect(posted.webhook_id).toBe(fake.webhooks(ch.id)[0]!.id);
    // allowed_mentions is always set: nothing pings unless pilled
    const req = fake.requests.find((r) => r.route === '/webhooks/:webhook/:token' && (r.body as { content?: string }).content === 'hello from matrix')!;
    expect((req.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [], users: [], roles: [], replied_user: false });
    // a Discord message after it: the channel's events reach Matrix in order, so an echo would be there by now
    fake.injectUserMessage(ch.id, bob.id, 'after hello');
    await alice.waitForEvent(roomId, (e) => body(e) === 'after hello');
    const copies = (await alice.timeline(roomId)).filter((e) => body(e) === 'hello from matrix');
    expect(copies.map((e) => e.sender)).toEqual([alice.userId]);
  });

  it('converts formatting, mentions, roles, channels and spoilers both ways', async () => {
    const ch = channel('fmt');
    const other = channel('elsewhere');
    const roomId = await plumbed(ch);
    const mods = fake.addRole(guild.id, { name: 'helpers', mentionable: true });
    await until(() => discordNet().client?.guilds.cache.get(guild.id)?.roles.cache.has(mods.id), 'the role to reach the bridge');
    fake.injectUserMessage(ch.id, bob.id, `**bold** *it* ||secret|| \`code\` <@${carol.id}> <#${other.id}> <@&${mods.id}> <script>`);
    const ev = await alice.waitForEvent(roomId, (e) => body(e).startsWith('**bold**'));
    const html = String(ev.content['formatted_body']);
    expect(html).toContain('<strong>bold</strong> <em>it</em> <span data-mx-spoiler>secret</span> <code>code</code>');
    expect(html).toContain(`<a href="https://matrix.to/#/${ghost(carol.id)}">Carol G</a>`);
    expect(html).toContain(`<a href="https://matrix.to/#/#discord_${guild.id}_${other.id}:localhost">#elsewhere</a>`);
    expect(html).toContain('@helpers');
    expect(html).toContain('&lt;script&gt;');
    expect(body(ev)).toBe('**bold** *it* ||secret|| `code` Carol G #elsewhere @helpers <script>');

    await alice.sendText(roomId, 'x', {
      format: 'org.matrix.custom.html',
      formatted_body: `<b>loud</b> <del>no</del> <span data-mx-spoiler>hidden</span> <a href="https://matrix.to/#/${ghost(carol.id)}">Carol G</a> ` +
        '@helpers snake_case <code>a*b</code><pre><code class="language-ts">let x = 1;\n</code></pre>',
    });
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content.startsWith('**loud**')), 'the formatted message');
    expect(exec.content).toBe(`**loud** ~~no~~ ||hidden|| <@${carol.id}> <@&${mods.id}> snake\\_case \`a*b\`\n\`\`\`ts\nlet x = 1;\n\`\`\``);
    const req = fake.requests.find((r) => r.route === '/webhooks/:webhook/:token' && (r.body as { content?: string }).content === exec.content)!;
    expect((req.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [], users: [carol.id], roles: [mods.id], replied_user: false });

    // plain Matrix text shows on Discord as typed: markdown characters escaped
    await alice.sendText(roomId, 'a *b* _c_ > d <@123> https://example.org/x_y_z');
    await until(() => webhookContents(ch.id).includes('a \\*b\\* \\_c\\_ > d \\<@123> https://example.org/x_y_z'), 'the escaped plain text');
  });

  it('bridges edits and deletions both ways through the message map', async () => {
    const ch = channel('edits');
    const roomId = await plumbed(ch);
    // Discord → Matrix
    const m = fake.injectUserMessage(ch.id, bob.id, 'the quick brwn fox');
    const orig = await alice.waitForEvent(roomId, (e) => body(e) === 'the quick brwn fox');
    fake.editUserMessage(ch.id, m.id, 'the quick brown fox');
    const edit = await alice.waitForEvent(roomId, (e) => relates(e)?.['rel_type'] === 'm.replace');
    expect(edit.sender).toBe(ghost(bob.id));
    expect(relates(edit)?.['event_id']).toBe(orig.event_id);
    expect((edit.content['m.new_content'] as { body: string }).body).toBe('the quick brown fox');
    fake.deleteUserMessage(ch.id, m.id);
    await until(async () => Object.keys((await alice.getEvent(roomId, orig.event_id)).content).length === 0, 'the Matrix event to be redacted');

    // Matrix → Discord
    const mine = await alice.sendText(roomId, 'matrix typo');
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content === 'matrix typo'), 'the message');
    await alice.sendText(roomId, '* matrix fixed', { 'm.new_content': { msgtype: 'm.text', body: 'matrix fixed' }, 'm.relates_to': { rel_type: 'm.replace', event_id: mine } });
    await until(() => fake.message(exec.messageId)?.content === 'matrix fixed', 'the Discord message to be edited');
    await alice.redact(roomId, mine);
    await until(() => fake.message(exec.messageId) === undefined, 'the Discord message to be deleted');
    // the echoes of the bridge's own edit and deletion are not bridged back (they would be before this marker)
    fake.injectUserMessage(ch.id, carol.id, 'edits marker');
    await alice.waitForEvent(roomId, (e) => body(e) === 'edits marker');
    const timeline = await alice.timeline(roomId);
    expect(timeline.filter((e) => e.type === 'm.room.redaction').map((e) => e.sender)).toEqual([ghost(bob.id), alice.userId]);
    expect(timeline.filter((e) => relates(e)?.['rel_type'] === 'm.replace').map((e) => e.sender)).toEqual([ghost(bob.id), alice.userId]);
  });

  it('bridges edits and deletions of messages no longer in the client cache (partials)', async () => {
    const ch = channel('partials');
    const roomId = await plumbed(ch);
    const m = fake.injectUserMessage(ch.id, carol.id, 'soon forgotten');
    const orig = await alice.waitForEvent(roomId, (e) => body(e) === 'soon forgotten');
    const cached = discordNet().client!.channels.cache.get(ch.id) as { messages: { cache: Map<string, unknown> } };
    cached.messages.cache.clear();
    fake.editUserMessage(ch.id, m.id, 'remembered after all');
    const edit = await alice.waitForEvent(roomId, (e) => relates(e)?.['rel_type'] === 'm.replace');
    expect(relates(edit)?.['event_id']).toBe(orig.event_id);
    cached.messages.cache.clear();
    fake.deleteUserMessage(ch.id, m.id);
    await until(async () => Object.keys((await alice.getEvent(roomId, orig.event_id)).content).length === 0, 'the Matrix event to be redacted');
  });

  it('bridges replies both ways', async () => {
    const ch = channel('replies');
    const roomId = await plumbed(ch);
    const q = fake.injectUserMessage(ch.id, bob.id, 'a question from discord');
    const qEv = await alice.waitForEvent(roomId, (e) => body(e) === 'a question from discord');
    // Matrix reply → a quote of the original with a jump link (webhooks cannot make real replies)
    await alice.sendText(roomId, '> <@x> a question from discord\n\nthe answer', { 'm.relates_to': { 'm.in_reply_to': { event_id: qEv.event_id } } });
    const exec = await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content.endsWith('the answer')), 'the reply');
    expect(exec.content).toBe(`> <@${bob.id}>: a question from discord [↪](<https://discord.com/channels/${guild.id}/${ch.id}/${q.id}>)\nthe answer`);
    // Discord reply → Matrix reply to the mapped event (of a Matrix user's message, too)
    fake.injectUserMessage(ch.id, carol.id, 'replying on discord', { replyTo: exec.messageId });
    const reply = await alice.waitForEvent(roomId, (e) => body(e) === 'replying on discord');
    const aliceEvent = (await alice.timeline(roomId)).find((e) => e.sender === alice.userId && body(e).endsWith('the answer'))!;
    expect(relates(reply)).toEqual({ 'm.in_reply_to': { event_id: aliceEvent.event_id } });
    // an edit of the Matrix reply keeps the quote on Discord
    await alice.sendText(roomId, '* the better answer', {
      'm.new_content': { msgtype: 'm.text', body: 'the better answer' }, 'm.relates_to': { rel_type: 'm.replace', event_id: aliceEvent.event_id },
    });
    await until(() => fake.message(exec.messageId)?.content.endsWith('the better answer'), 'the reply to be edited');
    expect(fake.message(exec.messageId)!.content).toBe(exec.content.replace(/the answer$/, 'the better answer'));
  });

  it('bridges reactions both ways', async () => {
    const ch = channel('reactions');
    const roomId = await plumbed(ch);
    const m = fake.injectUserMessage(ch.id, bob.id, 'react to me');
    const target = await alice.waitForEvent(roomId, (e) => body(e) === 'react to me');
    // Discord → Matrix, and taken back
    fake.addReaction(ch.id, m.id, carol.id, '🎉');
    const r = await alice.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost(carol.id));
    expect(relates(r)).toEqual({ rel_type: 'm.annotation', event_id: target.event_id, key: '🎉' });
    fake.removeReaction(ch.id, m.id, carol.id, '🎉');
    await until(async () => Object.keys((await alice.getEvent(roomId, r.event_id)).content).length === 0, 'the reaction to be redacted');
    // Matrix → Discord: the bot reacts, and takes it back when the Matrix reaction is redacted
    const mine = await alice.sendEvent(roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.event_id, key: '👍' } });
    await until(() => fake.message(m.id)?.reactions?.find((x) => x.emoji.name === '👍' && x.me), 'the bot to react');
    await alice.redact(roomId, mine);
    await until(() => !fake.message(m.id)?.reactions?.some((x) => x.emoji.name === '👍'), 'the bot reaction to go');
    // a custom emoji reaction from Discord arrives as its image
    const party = fake.addEmoji(guild.id, { name: 'party', image: { name: 'party.png', data: PNG, contentType: 'image/png' } });
    fake.addReaction(ch.id, m.id, bob.id, { id: party.id });
    const custom = await alice.waitForEvent(roomId, (e) => e.type === 'm.reaction' && e.sender === ghost(bob.id));
    const key = String(relates(custom)?.['key']);
    expect(key).toMatch(/^mxc:\/\//);
    expect(await downloadMxc(key)).toEqual(PNG);
  });

  it('bridges attachments both ways, and links files too big for Discord', async () => {
    const ch = channel('files');
    const roomId = await plumbed(ch);
    // Discord → Matrix: the text, then one event per attachment
    fake.injectUserMessage(ch.id, bob.id, 'look at this', { files: [{ name: 'pic.png', data: PNG, contentType: 'image/png' }, { name: 'notes.txt', data: Buffer.from('some notes') }] });
    const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'notes.txt'));
    const msgs = messagesOf(events).filter((e) => e.sender === ghost(bob.id));
    expect(msgs.map((e) => [e.content['msgtype'], body(e)])).toEqual([['m.text', 'look at this'], ['m.image', 'pic.png'], ['m.file', 'notes.txt']]);
    expect((msgs[1]!.content['info'] as { mimetype: string }).mimetype).toBe('image/png');
    expect(await downloadMxc(String(msgs[1]!.content['url']))).toEqual(PNG);
    expect((await downloadMxc(String(msgs[2]!.content['url']))).toString()).toBe('some notes');

    // Matrix → Discord: an uploaded file
    const data = Buffer.from('report from matrix\n');
    const mxc = await upload(data, 'report.txt', 'text/plain');
    await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.file', body: 'report.txt', url: mxc, info: { mimetype: 'text/plain', size: data.length } });
    const posted = await until(() => fromWebhook(ch.id).find((m) => m.attachments.some((a) => a.filename === 'report.txt')), 'the uploaded file');
    expect(posted.author.username).toBe('Alice');
    expect(Buffer.from(await (await fetch(posted.attachments[0]!.url)).arrayBuffer())).toEqual(data);

    // too big for Discord (10 MiB by default): a link to the media proxy instead
    const big = Buffer.alloc(10 * 1024 * 1024 + 1, 7);
    const bigMxc = await upload(big, 'big.bin', 'application/octet-stream');
    await alice.sendEvent(roomId, 'm.room.message', { msgtype: 'm.file', body: 'big.bin', url: bigMxc, info: { size: big.length } });
    const link = await until(() => fromWebhook(ch.id).find((m) => m.content.includes('big.bin')), 'the link');
    expect(link.attachments).toEqual([]);
    const url = /(https?:\/\/\S+)$/.exec(link.content)![1]!;
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBe(big.length);
    await res.body?.cancel();
  });

  it('bridges a Discord thread as a Matrix thread, both ways', async () => {
    const ch = channel('threads');
    const roomId = await plumbed(ch);
    const root = fake.injectUserMessage(ch.id, bob.id, 'start a thread here');
    const rootEv = await alice.waitForEvent(roomId, (e) => body(e) === 'start a thread here');
    // someone on Discord starts a thread on the message (it takes the message's id)
    const res = await fetch(`${fake.apiUrl}/v10/channels/${ch.id}/messages/${root.id}/threads`, {
      method: 'POST', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'side talk' }),
    });
    expect(res.status).toBe(200);
    await until(() => discordNet().client?.channels.cache.get(root.id)?.isThread(), 'the thread to reach the bridge');
    fake.injectUserMessage(root.id, carol.id, 'in the thread');
    const inThread = await alice.waitForEvent(roomId, (e) => body(e) === 'in the thread');
    expect(relates(inThread)).toMatchObject({ rel_type: 'm.thread', event_id: rootEv.event_id });
    // a Matrix message in the thread goes to the Discord thread
    await alice.sendText(roomId, 'matrix in the thread', {
      'm.relates_to': { rel_type: 'm.thread', event_id: rootEv.event_id, is_falling_back: true, 'm.in_reply_to': { event_id: inThread.event_id } },
    });
    await until(() => fake.messages(root.id).some((m) => m.content === 'matrix in the thread' && m.webhook_id), 'the message in the Discord thread');
    // a Matrix thread on a message that has no Discord thread yet starts one, named after the message
    const second = fake.injectUserMessage(ch.id, bob.id, 'no thread yet');
    const secondEv = await alice.waitForEvent(roomId, (e) => body(e) === 'no thread yet');
    await alice.sendText(roomId, 'thread from matrix', {
      'm.relates_to': { rel_type: 'm.thread', event_id: secondEv.event_id, is_falling_back: true, 'm.in_reply_to': { event_id: secondEv.event_id } },
    });
    await until(() => fake.messages(second.id).some((m) => m.content === 'thread from matrix'), 'a new Discord thread with the message');
    expect(fake.channel(second.id)?.name).toBe('no thread yet');
    expect(fake.channel(second.id)?.parent_id).toBe(ch.id);
  });

  it('shows Matrix typing on Discord', async () => {
    const ch = channel('typing');
    const roomId = await plumbed(ch);
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(alice.userId)}`, { typing: true, timeout: 10_000 });
    await until(() => fake.requests.some((r) => r.path === `/channels/${ch.id}/typing` && r.status === 204), 'the bot to type in the channel');
  });

  it('recreates the channel webhook when someone deletes it on Discord', async () => {
    const ch = channel('rehook');
    const roomId = await plumbed(ch);
    await alice.sendText(roomId, 'first');
    await until(() => webhookContents(ch.id).includes('first'), 'the first message');
    const old = fake.webhooks(ch.id)[0]!;
    const del = await fetch(`${fake.apiUrl}/v10/webhooks/${old.id}`, { method: 'DELETE', headers: { authorization: `Bot ${fake.token}` } });
    expect(del.status).toBe(204);
    await alice.sendText(roomId, 'second');
    await until(() => webhookContents(ch.id).includes('second'), 'the second message');
    const now = fake.webhooks(ch.id);
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(old.id);
    // the new webhook's messages are the bridge's own too: not bridged back
    fake.injectUserMessage(ch.id, bob.id, 'after second');
    await alice.waitForEvent(roomId, (e) => body(e) === 'after second');
    expect((await alice.timeline(roomId)).filter((e) => body(e) === 'second').map((e) => e.sender)).toEqual([alice.userId]);
  });
});

describe('Discord bridge: order and trouble', () => {
  for (const order of ['gateway-first', 'http-first'] as const) {
    it(`suppresses the echo of the bridge's own messages (${order})`, async () => {
      const ch = channel(`echo-${order}`);
      const roomId = await plumbed(ch);
      fake.setEchoOrder(order);
      try {
        for (let i = 1; i <= 3; i++) await alice.sendText(roomId, `${order} ${i}`);
        await until(() => webhookContents(ch.id).length === 3, 'three webhook messages');
        const first = await alice.timeline(roomId);
        const target = first.find((e) => body(e) === `${order} 1`)!;
        await alice.sendText(roomId, `* ${order} one`, { 'm.new_content': { msgtype: 'm.text', body: `${order} one` }, 'm.relates_to': { rel_type: 'm.replace', event_id: target.event_id } });
        await until(() => webhookContents(ch.id).includes(`${order} one`), 'the edit');
        fake.injectUserMessage(ch.id, bob.id, `${order} done`);
        await alice.waitForEvent(roomId, (e) => body(e) === `${order} done`);
        await sleep(300);
        const timeline = await alice.timeline(roomId);
        const fromGhosts = messagesOf(timeline).filter((e) => e.sender.startsWith('@discord_'));
        expect(fromGhosts.map(body)).toEqual([`${order} done`]);
        expect(timeline.filter((e) => relates(e)?.['rel_type'] === 'm.replace').map((e) => e.sender)).toEqual([alice.userId]);
        expect(webhookContents(ch.id)).toEqual([`${order} one`, `${order} 2`, `${order} 3`]);
      } finally {
        fake.setEchoOrder('gateway-first');
      }
    });
  }

  it('keeps the order through a burst of 429s, both ways', async () => {
    const ch = channel('burst');
    const roomId = await plumbed(ch);
    const n0 = fake.requests.length;
    fake.failNext('POST /webhooks/:webhook/:token', 429, { retryAfter: 0.3, times: 2 });
    fake.failNext('POST /webhooks/:webhook/:token', 429, { retryAfter: 0.2, global: true });
    const sent = Array.from({ length: 8 }, (_, i) => `burst ${i + 1}`);
    for (const text of sent) await alice.sendText(roomId, text);
    await until(() => webhookContents(ch.id).length === sent.length, 'every burst message', 60_000);
    expect(webhookContents(ch.id)).toEqual(sent);
    const statuses = fake.requests.slice(n0).filter((r) => r.route === '/webhooks/:webhook/:token').map((r) => r.status);
    expect(statuses.filter((s) => s === 429)).toHaveLength(3);

    const incoming = Array.from({ length: 15 }, (_, i) => `incoming ${i + 1}`);
    for (const text of incoming) fake.injectUserMessage(ch.id, i2user(text), text);
    const events = await alice.waitForTimeline(roomId, (evs) => messagesOf(evs).filter((e) => body(e).startsWith('incoming')).length === incoming.length);
    expect(messagesOf(events).filter((e) => body(e).startsWith('incoming')).map(body)).toEqual(incoming);
  });

  it('loses nothing across a forced gateway reconnect mid-conversation', async () => {
    const ch = channel('reconnect');
    const roomId = await plumbed(ch);
    fake.injectUserMessage(ch.id, bob.id, 'before the reconnect');
    await alice.waitForEvent(roomId, (e) => body(e) === 'before the reconnect');
    const resumes = fake.gatewayStats.resumes;
    await fake.forceReconnect(); // the bridge's socket is closed: it is reconnecting now
    fake.injectUserMessage(ch.id, bob.id, 'during the reconnect 1');
    fake.injectUserMessage(ch.id, carol.id, 'during the reconnect 2');
    await alice.sendText(roomId, 'matrix during the reconnect');
    await until(() => fake.gatewayStats.resumes > resumes, 'the bridge to resume its session');
    fake.injectUserMessage(ch.id, dana.id, 'after the reconnect');
    const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'after the reconnect'));
    expect(messagesOf(events).filter((e) => e.sender.startsWith('@discord_')).map(body))
      .toEqual(['before the reconnect', 'during the reconnect 1', 'during the reconnect 2', 'after the reconnect']);
    await until(() => webhookContents(ch.id).includes('matrix during the reconnect'), 'the Matrix message on Discord');
  });
});

describe('Discord bridge: rooms and login', () => {
  it('opens a portal room when a Matrix user joins the channel alias', async () => {
    const ch = fake.addChannel(guild.id, { name: 'portal', topic: 'the portal topic' });
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const roomId = await alice.join(`#discord_${guild.id}_${ch.id}:localhost`);
    const name = await alice.request<{ name: string }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.name/`);
    expect(name.name).toBe('#portal (Trestle Test)');
    const topic = async (): Promise<string | undefined> =>
      (await alice.request<{ topic?: string }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`)).topic;
    expect(await topic()).toBe('the portal topic');
    fake.injectUserMessage(ch.id, bob.id, 'hi portal');
    await alice.waitForEvent(roomId, (e) => body(e) === 'hi portal' && e.sender === ghost(bob.id));
    await alice.sendText(roomId, 'hi back');
    await until(() => webhookContents(ch.id).includes('hi back'), 'the Matrix message');
    // the portal room follows the channel topic
    const patch = await fetch(`${fake.apiUrl}/v10/channels/${ch.id}`, {
      method: 'PATCH', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'a new topic' }),
    });
    expect(patch.status).toBe(200);
    await until(async () => (await topic()) === 'a new topic', 'the room topic to follow');
    // unknown channels have no portal
    await expect(alice.join(`#discord_${guild.id}_123456789012345678:localhost`)).rejects.toThrow(/404|not found/i);
  });

  it('refuses a link to a channel the bot cannot see, saying why', async () => {
    const roomId = await alice.createRoom({ name: 'bad link' });
    await alice.invite(roomId, botId);
    await until(async () => (await alice.joinedMembers(roomId)).includes(botId), 'the bot to join');
    await alice.sendText(roomId, `!trestle link discord ${guild.id}/123456789012345678`);
    const answer = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).includes('no text channel'));
    expect(body(answer)).toMatch(/no text channel with that id/);
    // the channels command says what can be bridged, with the aliases that open portal rooms
    await alice.sendText(roomId, '!discord channels');
    const list = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Trestle Test'));
    expect(body(list)).toContain(`Trestle Test (${guild.id}):`);
    expect(body(list)).toMatch(new RegExp(`#portal: #discord_${guild.id}_\\d+:localhost`));
  });

  it('fails to start with a clear error on a wrong token or refused intents', async () => {
    const urls = { restUrl: fake.apiUrl, cdnUrl: fake.cdnUrl };
    const wrong = standalone({ token: 'not-the-token', ...urls });
    await expect(wrong.net.start(wrong.ctx)).rejects.toThrow(/Discord refused the bot token \(networks\.discord\.token\)/);
    fake.messageContentIntent = false;
    try {
      const greedy = standalone({ token: fake.token, ...urls });
      await expect(greedy.net.start(greedy.ctx)).rejects.toThrow(/enable "Message Content Intent"/);
      expect(fake.gatewayStats.closeCodes).toContain(4014);
    } finally {
      fake.messageContentIntent = true;
    }
  });

  it('without the Message Content intent, reports blank messages to whoever linked the channel', async () => {
    const ch = channel('blank');
    const s = standalone({ token: fake.token, restUrl: fake.apiUrl, cdnUrl: fake.cdnUrl, messageContentIntent: false });
    await s.net.start(s.ctx);
    try {
      const portal = await s.link(ch, '!blank:localhost');
      expect(portal.remoteChat).toBe(ch.id);
      fake.injectUserMessage(ch.id, bob.id, 'words the bridge cannot read');
      const told = await until(() => s.notified.find((n) => /blank messages/.test(n.text)), 'the user who linked to be told');
      expect(told.user).toBe(alice.userId);
      expect(told.text).toMatch(/blank messages in #blank \(Trestle Test\).*Message Content Intent/);
      expect(s.events).toEqual([]);
      // a message that mentions the bot has content even without the intent, and is bridged
      fake.injectUserMessage(ch.id, bob.id, `<@${fake.bot.id}> can you read this?`);
      await until(() => s.events.length === 1, 'the mention to be bridged');
    } finally {
      await s.net.stop();
    }
  });
});

describe('Discord bridge: roles', () => {
  it('gives ghosts the power level of their Discord roles (rolePowers)', async () => {
    const ch = channel('ranks');
    const ch2 = channel('ranks-too');
    const erin = fake.addUser({ username: 'erin' });
    fake.addMember(guild.id, erin.id, { roles: [modsRole.id] });
    const s = standalone({ token: fake.token, restUrl: fake.apiUrl, cdnUrl: fake.cdnUrl, rolePowers: { mods: 50, [guild.id]: 0 } });
    await s.net.start(s.ctx);
    try {
      await s.link(ch, '!ranks:localhost');
      fake.injectUserMessage(ch.id, erin.id, 'I moderate');
      fake.injectUserMessage(ch.id, erin.id, 'still me');
      fake.injectUserMessage(ch.id, bob.id, 'no role here');
      await until(() => s.events.filter((e) => e.kind === 'message').length === 3, 'the three messages');
      // the level is reported once, before the member's first message; members without a mapped role get none
      expect(s.events.map((e) => e.kind)).toEqual(['powerLevels', 'message', 'message', 'message']);
      expect(s.events[0]!.value).toEqual({ chat: ch.id, users: { [erin.id]: 50 } });
      // a new link gets the levels of the members the bridge knows at once
      await s.link(ch2, '!ranks2:localhost');
      await until(() => s.events.length === 5, 'the levels for the new link');
      expect(s.events[4]).toEqual({ kind: 'powerLevels', value: { chat: ch2.id, users: { [erin.id]: 50 } } });
    } finally {
      await s.net.stop();
    }
  });
});

describe('Discord bridge: plumbing with the channel\'s approval', () => {
  it('links only when a member with Manage Webhooks approves with ✅, ignoring others\' answers', async () => {
    const ch = channel('approve-react');
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const roomId = await roomWithBot('approval by reaction');
    await alice.sendText(roomId, `!discord link ${guild.id} ${ch.id}`);
    const asked = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Asked in #approve-react'));
    expect(body(asked)).toMatch(/Manage Webhooks .*within 6 seconds/);
    const request = await until(() => linkRequest(ch.id), 'the request on Discord');
    expect(request.content).toContain(alice.userId.replace(/_/g, '\\_'));
    expect(request.content).toContain('approval by reaction'); // the room's name, read from Matrix
    expect(fake.message(request.id)!.reactions?.filter((r) => r.me).map((r) => r.emoji.name)).toEqual(['✅', '❌']);
    // bob may not manage webhooks: his ✅ and his "approve" are not enough
    fake.addReaction(ch.id, request.id, bob.id, '✅');
    fake.injectUserMessage(ch.id, bob.id, 'approve', { replyTo: request.id });
    await sleep(1000);
    expect(bridge.portals.forRoom(roomId)).toEqual([]);
    fake.addReaction(ch.id, request.id, mod.id, '✅');
    const linked = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
    expect(body(linked)).toBe(`Linked this room to discord ${ch.id} (#approve-react in Trestle Test), approved on Discord by moddy.`);
    expect(bridge.portals.forRoom(roomId).map((p) => [p.remoteChat, p.kind])).toEqual([[ch.id, 'plumbed']]);
    expect(fake.message(request.id)!.content).toMatch(/^✅ Approved by moddy: this channel is bridged with approval by reaction/);
    fake.injectUserMessage(ch.id, bob.id, 'now bridged');
    await alice.waitForEvent(roomId, (e) => body(e) === 'now bridged' && e.sender === ghost(bob.id));
    // the request, the answers before the link and the bot's own edits were not bridged
    expect(messagesOf(await alice.timeline(roomId)).filter((e) => e.sender.startsWith('@discord_')).map(body)).toEqual(['now bridged']);
  });

  it('approves with a reply, refuses with "deny", expires unanswered, and works through !trestle link too', async () => {
    // approved with a reply, asked through core's link command
    const byReply = channel('approve-reply');
    await until(() => discordNet().client?.channels.cache.has(byReply.id), 'the bridge to see the channel');
    const room1 = await roomWithBot('approval by reply');
    await alice.sendText(room1, `!trestle link discord ${guild.id}/${byReply.id}`);
    const refusedNow = await alice.waitForEvent(room1, (e) => e.sender === botId && body(e).startsWith('"link" failed'));
    expect(body(refusedNow)).toMatch(/the Discord channel has to approve first\. Asked in #approve-reply .*This room is linked when they do\./);
    const r1 = await until(() => linkRequest(byReply.id), 'the request');
    fake.injectUserMessage(byReply.id, mod.id, 'Approve, welcome!', { replyTo: r1.id });
    await alice.waitForEvent(room1, (e) => e.sender === botId && body(e).startsWith(`Linked this room to discord ${byReply.id}`));

    // refused
    const refused = channel('deny-reply');
    await until(() => discordNet().client?.channels.cache.has(refused.id), 'the bridge to see the channel');
    const room2 = await roomWithBot('refused room');
    await alice.sendText(room2, `!discord link ${guild.id} ${refused.id}`);
    const r2 = await until(() => linkRequest(refused.id), 'the request');
    fake.injectUserMessage(refused.id, mod.id, 'deny', { replyTo: r2.id });
    const no = await alice.waitForEvent(room2, (e) => e.sender === botId && body(e).includes('refused'));
    expect(body(no)).toBe('moddy refused on Discord to bridge #deny-reply with this room.');
    expect(fake.message(r2.id)!.content).toMatch(/^❌ moddy refused/);
    expect(bridge.portals.forRoom(room2)).toEqual([]);

    // nobody answers within linkApproval.timeoutSeconds (6 s in the e2e config)
    const quiet = channel('nobody-home');
    await until(() => discordNet().client?.channels.cache.has(quiet.id), 'the bridge to see the channel');
    const room3 = await roomWithBot('unanswered room');
    await alice.sendText(room3, `!discord link ${guild.id} ${quiet.id}`);
    const r3 = await until(() => linkRequest(quiet.id), 'the request');
    // asking twice while waiting is refused
    await alice.sendText(room3, `!discord link ${guild.id} ${quiet.id}`);
    await alice.waitForEvent(room3, (e) => e.sender === botId && body(e).includes('already waits for #nobody-home'));
    const expired = await alice.waitForEvent(room3, (e) => e.sender === botId && body(e).startsWith('Nobody approved'), 15_000);
    expect(body(expired)).toBe(`Nobody approved bridging #nobody-home within 6 seconds, so this room is not linked. Ask again with "!discord link ${guild.id} ${quiet.id}".`);
    expect(fake.message(r3.id)!.content).toMatch(/^⌛ Nobody approved within 6 seconds/);
    // a late approval changes nothing
    fake.addReaction(quiet.id, r3.id, mod.id, '✅');
    await sleep(500);
    expect(bridge.portals.forRoom(room3)).toEqual([]);
  });

  it('refuses links past roomLimit, when asked and when approved', async () => {
    const net = discordNet();
    const first = channel('limit-a');
    const second = channel('limit-b');
    await until(() => net.client?.channels.cache.has(second.id), 'the bridge to see the channels');
    const bridged = (): number => new Set(net.ctx!.portals.all().map((p) => p.remoteChat)).size;
    const roomA = await roomWithBot('limit a');
    await alice.sendText(roomA, `!discord link ${guild.id} ${first.id}`);
    const request = await until(() => linkRequest(first.id), 'the request');
    // the limit is reached while the request waits (config is read when it matters; set here as an admin would before a restart)
    net.cfg.roomLimit = bridged();
    try {
      fake.addReaction(first.id, request.id, mod.id, '✅');
      const late = await alice.waitForEvent(roomA, (e) => e.sender === botId && body(e).includes('could not be linked'));
      expect(body(late)).toBe(`moddy approved on Discord, but the room could not be linked: the bridge already bridges its limit of ${net.cfg.roomLimit} Discord channels`);
      const roomB = await roomWithBot('limit b');
      await alice.sendText(roomB, `!discord link ${guild.id} ${second.id}`);
      const refused = await alice.waitForEvent(roomB, (e) => e.sender === botId && body(e).startsWith('"link" failed'));
      expect(body(refused)).toBe(`"link" failed: the bridge already bridges its limit of ${net.cfg.roomLimit} Discord channels`);
      expect(linkRequest(second.id)).toBeUndefined();
    } finally {
      net.cfg.roomLimit = 0;
    }
  });
});

describe('Discord bridge: servers as spaces, names, topics and icons', () => {
  let spaced: APIGuild;
  const rooms = new Map<string, string>();
  const portal = async (ch: GuildChannel): Promise<string> => {
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const roomId = await alice.join(`#discord_${spaced.id}_${ch.id}:localhost`);
    rooms.set(ch.name, roomId);
    return roomId;
  };
  const spaceOfRoom = async (roomId: string): Promise<string> =>
    (await until(async () => (await stateOf(roomId)).find((e) => e.type === 'm.space.parent'), 'the room\'s space parent')).state_key!;
  const childOrder = async (spaceId: string): Promise<string[]> => {
    const children = (await stateOf(spaceId)).filter((e) => e.type === 'm.space.child' && Object.keys(e.content).length > 0);
    children.sort((a, b) => String(a.content['order']).localeCompare(String(b.content['order'])));
    const names = new Map([...rooms].map(([n, r]) => [r, n]));
    return children.map((c) => names.get(c.state_key!) ?? c.state_key!);
  };
  let lobby: GuildChannel, alpha: GuildChannel, beta: GuildChannel, aChat: GuildChannel, aMore: GuildChannel, bChat: GuildChannel;

  beforeAll(() => {
    spaced = fake.addGuild({ name: 'Spaced' });
    lobby = fake.addChannel(spaced.id, { name: 'lobby', topic: 'say hi' });
    alpha = fake.addChannel(spaced.id, { name: 'Alpha', type: ChannelType.GuildCategory });
    beta = fake.addChannel(spaced.id, { name: 'Beta', type: ChannelType.GuildCategory });
    bChat = fake.addChannel(spaced.id, { name: 'b-chat', parentId: beta.id });
    aChat = fake.addChannel(spaced.id, { name: 'a-chat', parentId: alpha.id });
    aMore = fake.addChannel(spaced.id, { name: 'a-more', parentId: alpha.id });
    updateGuild(spaced, { icon: PNG });
  });

  it('puts the portal rooms in the server\'s space, in Discord\'s order, with the server\'s name and icon', async () => {
    await until(() => discordNet().client?.guilds.cache.get(spaced.id)?.icon, 'the icon to reach the bridge');
    // joined in another order than Discord's
    for (const ch of [bChat, lobby, aMore, aChat]) await portal(ch);
    const spaceId = await spaceOfRoom(rooms.get('b-chat')!);
    for (const roomId of rooms.values()) expect(await spaceOfRoom(roomId)).toBe(spaceId);
    const create = await stateEvent(spaceId, 'm.room.create');
    expect(create?.content['type']).toBe('m.space');
    expect((await stateEvent(spaceId, 'm.room.name'))?.content['name']).toBe('Spaced');
    const spaceIcon = String((await stateEvent(spaceId, 'm.room.avatar'))?.content['url']);
    expect(await downloadMxc(spaceIcon)).toEqual(PNG);
    // uncategorised first, then the categories in their order, channels by position within them
    await until(async () => (await childOrder(spaceId)).length === 4, 'four rooms in the space');
    expect(await childOrder(spaceId)).toEqual(['lobby', 'a-chat', 'a-more', 'b-chat']);
    // each portal room shows the server icon; alice was invited to the space when she joined a portal room
    await until(async () => (await stateEvent(rooms.get('lobby')!, 'm.room.avatar'))?.content['url'] === spaceIcon, 'the room icon');
    expect((await membershipIn(spaceId, alice.userId))?.content['membership']).toBe('invite');
    await alice.join(spaceId);
    // a channel moved to another category moves in the space
    const patch = await fetch(`${fake.apiUrl}/v10/channels/${aMore.id}`, {
      method: 'PATCH', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ parent_id: beta.id }),
    });
    expect(patch.status).toBe(200);
    await until(async () => (await childOrder(spaceId)).join() === 'lobby,a-chat,b-chat,a-more', 'the new order in the space');
  });

  it('follows channel names and topics and the server\'s name and icon from Discord', async () => {
    const roomId = rooms.get('lobby') ?? await portal(lobby);
    const spaceId = await spaceOfRoom(roomId);
    const patch = (body: Record<string, unknown>): Promise<Response> => fetch(`${fake.apiUrl}/v10/channels/${lobby.id}`, {
      method: 'PATCH', headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    expect((await patch({ name: 'welcome', topic: 'new topic' })).status).toBe(200);
    await until(async () => (await stateEvent(roomId, 'm.room.name'))?.content['name'] === '#welcome (Spaced)', 'the room name');
    await until(async () => (await stateEvent(roomId, 'm.room.topic'))?.content['topic'] === 'new topic', 'the room topic');
    const icon2 = Buffer.concat([PNG, Buffer.from('another icon')]);
    updateGuild(spaced, { name: 'Spaced Out', icon: icon2 });
    await until(async () => (await stateEvent(spaceId, 'm.room.name'))?.content['name'] === 'Spaced Out', 'the space name');
    await until(async () => (await stateEvent(roomId, 'm.room.name'))?.content['name'] === '#welcome (Spaced Out)', 'the room name with the server\'s new name');
    const newIcon = await until(async () => {
      const url = String((await stateEvent(spaceId, 'm.room.avatar'))?.content['url'] ?? '');
      return url && (await downloadMxc(url)).equals(icon2) ? url : undefined;
    }, 'the new space icon');
    await until(async () => (await stateEvent(roomId, 'm.room.avatar'))?.content['url'] === newIcon, 'the new room icon');
  });

  it('renames the channel and sets its topic from Matrix where the bot has Manage Channels; elsewhere says why not', async () => {
    const roomId = rooms.get('a-chat') ?? await portal(aChat);
    await grantPower(roomId, alice.userId, 100);
    const namesAndTopicsFromBot = async (): Promise<MatrixEventJson[]> =>
      (await alice.timeline(roomId)).filter((e) => e.sender === botId && (e.type === 'm.room.name' || e.type === 'm.room.topic'));
    const before = (await namesAndTopicsFromBot()).length;
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.name/`, { name: '#Alpha Talk (Spaced Out)' });
    await until(() => fake.channel(aChat.id)?.name === 'alpha-talk', 'the Discord channel to be renamed');
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { topic: 'set on Matrix' });
    await until(() => (fake.channel(aChat.id) as { topic?: string | null }).topic === 'set on Matrix', 'the Discord topic');
    // the channel's echo does not come back as a second name or topic from the bot
    await sleep(1000);
    expect(await namesAndTopicsFromBot()).toHaveLength(before);
    expect((await stateEvent(roomId, 'm.room.name'))?.content['name']).toBe('#Alpha Talk (Spaced Out)');

    // a server where the bot lacks Manage Channels: nothing changes on Discord, and the room is told
    const restricted = restrictedGuild('Locked Down');
    await until(() => discordNet().client?.guilds.cache.get(restricted.id)?.members.me?.permissions.has(P.ManageChannels) === false, 'the bot\'s role change');
    const ch = fake.addChannel(restricted.id, { name: 'locked' });
    await until(() => discordNet().client?.channels.cache.has(ch.id), 'the bridge to see the channel');
    const lockedRoom = await alice.join(`#discord_${restricted.id}_${ch.id}:localhost`);
    await grantPower(lockedRoom, alice.userId, 100);
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(lockedRoom)}/state/m.room.name/`, { name: 'unlocked' });
    const told = await alice.waitForEvent(lockedRoom, (e) => e.sender === botId && body(e).startsWith('⚠'));
    expect(body(told)).toMatch(/could not be delivered to Discord: #locked keeps its name on Discord: the bridge bot lacks the Manage Channels permission there$/);
    expect(fake.channel(ch.id)?.name).toBe('locked');
  });
});

describe('Discord bridge: stickers and @everyone', () => {
  it('bridges a Discord sticker as m.sticker, and a Lottie one as its name', async () => {
    const ch = channel('stickers');
    const roomId = await plumbed(ch);
    injectSticker(ch.id, bob.id, { id: world().ids.next(), name: 'wave', format_type: StickerFormatType.PNG }, PNG);
    const sticker = await alice.waitForEvent(roomId, (e) => e.type === 'm.sticker');
    expect(sticker.sender).toBe(ghost(bob.id));
    expect(sticker.content['body']).toBe('wave');
    expect(sticker.content['info']).toEqual({ mimetype: 'image/png', w: 160, h: 160 });
    expect(await downloadMxc(String(sticker.content['url']))).toEqual(PNG);
    injectSticker(ch.id, carol.id, { id: world().ids.next(), name: 'dance', format_type: StickerFormatType.Lottie });
    const lottie = await alice.waitForEvent(roomId, (e) => body(e) === '[sticker: dance]');
    expect(lottie.sender).toBe(ghost(carol.id));
  });

  it('lets @everyone and @here ping only from Matrix users with everyoneMentionPower (50), and defuses them from others', async () => {
    const ch = channel('everyone');
    const roomId = await plumbed(ch); // alice made the room: power 100
    const zed = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `discordzed${Date.now()}`, { displayName: 'Zed' });
    await zed.join(roomId);
    await alice.sendText(roomId, '@everyone meeting now');
    await zed.sendText(roomId, '@here lunch?');
    await alice.sendText(roomId, 'mail me at me@everyone.example'); // not a mention: no power check, nothing pings
    await until(() => webhookContents(ch.id).length === 3, 'the three messages');
    expect(webhookContents(ch.id)).toEqual(['@everyone meeting now', '@\u200bhere lunch?', 'mail me at me@everyone.example']);
    const mentions = fake.requests.filter((r) => r.route === '/webhooks/:webhook/:token' && r.query['wait'] === 'true' && String((r.body as { content?: string }).content).match(/meeting|lunch|mail me/))
      .map((r) => (r.body as { allowed_mentions: { parse: string[] } }).allowed_mentions.parse);
    expect(mentions).toEqual([['everyone'], [], []]);
  });
});

describe('Discord bridge: members leaving, kicked and banned', () => {
  it('reflects a leave, a kick and a ban on Discord on the ghosts, and lifts the ban when Discord does', async () => {
    const ch = channel('departures');
    const roomId = await plumbed(ch);
    const [leaver, kicked, banned, stayer] = ['leaver', 'kicked', 'banned', 'stayer'].map((username) => {
      const u = fake.addUser({ username });
      fake.addMember(guild.id, u.id);
      return u;
    }) as [APIUser, APIUser, APIUser, APIUser];
    for (const u of [stayer, leaver, kicked, banned]) fake.injectUserMessage(ch.id, u.id, `hi from ${u.username}`);
    await alice.waitForEvent(roomId, (e) => body(e) === 'hi from banned');
    removeMember(guild, leaver, 'leave');
    removeMember(guild, kicked, 'kick', mod, 'spamming');
    removeMember(guild, banned, 'ban', mod, 'worse');
    const left = await until(async () => { const m = await membershipIn(roomId, ghost(leaver.id)); return m?.content['membership'] === 'leave' ? m : undefined; }, 'the leaver\'s ghost to leave');
    expect(left.sender).toBe(ghost(leaver.id));
    expect(left.content['reason']).toBe('left the Discord server');
    const kick = await until(async () => { const m = await membershipIn(roomId, ghost(kicked.id)); return m?.content['membership'] === 'leave' ? m : undefined; }, 'the kick');
    expect(kick.sender).toBe(botId);
    expect(kick.content['reason']).toBe('kicked from the Discord server by moddy: spamming');
    const ban = await until(async () => { const m = await membershipIn(roomId, ghost(banned.id)); return m?.content['membership'] === 'ban' ? m : undefined; }, 'the ban');
    expect(ban.content['reason']).toBe('banned in the Discord server by moddy: worse');
    // the ban is lifted on Discord
    dispatch(E.GuildBanRemove, { guild_id: guild.id, user: banned }, I.GuildModeration);
    await until(async () => (await membershipIn(roomId, ghost(banned.id)))?.content['membership'] === 'leave', 'the ghost\'s ban to be lifted');
    // nobody else was touched
    expect((await membershipIn(roomId, ghost(stayer.id)))?.content['membership']).toBe('join');
  });

  it('kicks and bans on Discord for a Matrix kick or ban of a ghost where the bot may; elsewhere says why not', async () => {
    // The fake has no kick or ban endpoints: these answer as Discord does (member gone, GUILD_MEMBER_REMOVE,
    // the ban, the audit-log entry naming the bot).
    const kicksAndBans: string[] = [];
    addRoute({ method: 'DELETE', pattern: '/guilds/:guild/members/:user', auth: true, handle: ({ params: [g, u] }) => {
      const user = world().user(u!);
      kicksAndBans.push(`kick ${u}`);
      removeMember({ id: g! } as APIGuild, user, 'kick', fake.bot);
      return { status: 204 };
    } });
    addRoute({ method: 'PUT', pattern: '/guilds/:guild/bans/:user', auth: true, handle: ({ params: [g, u], body: b }) => {
      kicksAndBans.push(`ban ${u} ${JSON.stringify(b)}`);
      removeMember({ id: g! } as APIGuild, world().user(u!), 'ban', fake.bot);
      return { status: 204 };
    } });
    const here = channel('kick-here');
    const there = channel('kick-there');
    const roomHere = await plumbed(here);
    const roomThere = await plumbed(there);
    const troll = fake.addUser({ username: 'troll' });
    fake.addMember(guild.id, troll.id);
    fake.injectUserMessage(here.id, troll.id, 'troll here');
    fake.injectUserMessage(there.id, troll.id, 'troll there');
    await alice.waitForEvent(roomHere, (e) => body(e) === 'troll here');
    await alice.waitForEvent(roomThere, (e) => body(e) === 'troll there');

    // a Matrix moderator kicks the ghost: the Discord user is kicked from the server
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/kick`, { user_id: ghost(troll.id), reason: 'be nice' });
    await until(() => kicksAndBans.length === 1, 'the kick on Discord');
    expect(kicksAndBans).toEqual([`kick ${troll.id}`]);
    expect(world().guildRecord(guild.id).members.has(troll.id)).toBe(false);
    // Discord's echo removes the ghost from the server's other rooms, not again from the one it came from
    const elsewhere = await until(async () => { const m = await membershipIn(roomThere, ghost(troll.id)); return m?.content['membership'] === 'leave' ? m : undefined; }, 'the ghost kicked elsewhere');
    expect(elsewhere.content['reason']).toBe('kicked from the Discord server by trestle-bot');
    await sleep(2500);
    expect((await alice.timeline(roomHere)).filter((e) => e.sender === botId && body(e).startsWith('⚠'))).toEqual([]);
    expect((await membershipIn(roomHere, ghost(troll.id)))?.sender).toBe(alice.userId);

    // a ban, with its reason in Discord's audit log
    const vandal = fake.addUser({ username: 'vandal' });
    fake.addMember(guild.id, vandal.id);
    fake.injectUserMessage(here.id, vandal.id, 'vandal here');
    await alice.waitForEvent(roomHere, (e) => body(e) === 'vandal here');
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomHere)}/ban`, { user_id: ghost(vandal.id), reason: 'vandalism' });
    await until(() => kicksAndBans.length === 2, 'the ban on Discord');
    expect(kicksAndBans[1]).toMatch(new RegExp(`^ban ${vandal.id} `));
    const banRequest = fake.requests.find((r) => r.route === '/guilds/:guild/bans/:user')!;
    expect(banRequest.status).toBe(204);
    expect((await membershipIn(roomHere, ghost(vandal.id)))?.content['membership']).toBe('ban');

    // where the bot lacks Kick Members, the Discord user stays and the moderator is told why in the room
    const restricted = restrictedGuild('No Kicking');
    const rch = fake.addChannel(restricted.id, { name: 'nokick' });
    const victim = fake.addUser({ username: 'victim' });
    fake.addMember(restricted.id, victim.id);
    const roomR = await plumbed(rch, restricted);
    fake.injectUserMessage(rch.id, victim.id, 'victim here');
    await alice.waitForEvent(roomR, (e) => body(e) === 'victim here');
    await alice.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomR)}/kick`, { user_id: ghost(victim.id) });
    const told = await alice.waitForEvent(roomR, (e) => e.sender === botId && body(e).startsWith('⚠'));
    expect(body(told)).toMatch(/could not be delivered to Discord: victim stays on Discord: the bridge bot lacks the Kick Members permission in No Kicking$/);
    expect(kicksAndBans).toHaveLength(2);
    expect(world().guildRecord(restricted.id).members.has(victim.id)).toBe(true);
  });
});

describe('Discord bridge: restart', () => {
  it('bridges what was said on Discord while it was stopped, except what is older than maxMessageAgeSeconds', async () => {
    const ch = channel('downtime');
    const roomId = await plumbed(ch);
    fake.injectUserMessage(ch.id, bob.id, 'before the stop');
    await alice.waitForEvent(roomId, (e) => body(e) === 'before the stop');
    await bridge.stop();
    fake.injectUserMessage(ch.id, bob.id, 'too old by the time the bridge is back');
    await sleep(5000);
    fake.injectUserMessage(ch.id, carol.id, 'while stopped 1');
    fake.injectUserMessage(ch.id, dana.id, 'while stopped 2');
    bridge = await startBridge({ maxMessageAgeSeconds: 4 });
    fake.injectUserMessage(ch.id, bob.id, 'after the restart');
    const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'after the restart'));
    expect(messagesOf(events).filter((e) => e.sender.startsWith('@discord_')).map(body))
      .toEqual(['before the stop', 'while stopped 1', 'while stopped 2', 'after the restart']);
  });
});

/** Spread a burst over three Discord users (ghosts of several users in one burst). */
function i2user(text: string): string {
  const n = Number(/\d+$/.exec(text)?.[0] ?? 0);
  return [bob.id, carol.id, dana.id][n % 3]!;
}

describe('IRC ↔ Discord through one Matrix room', () => {
  it('relays between an IRC channel and a Discord channel linked to the same room, and from Matrix to both', async () => {
    const ircPort = Number(process.env['TRESTLE_E2E_IRC_PORT'] ?? 0);
    if (!ircPort) throw new Error('TRESTLE_E2E_IRC_PORT is not set: run through test/harness/e2e.sh');
    const ch = channel('relay');
    const roomId = await plumbed(ch);
    const irc = new IrcUser('127.0.0.1', ircPort, 'ircrelay');
    await irc.connect();
    await irc.join('#relay');
    try {
      await alice.sendText(roomId, '!trestle link irc test/#relay');
      await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room to irc'));

      // IRC → Matrix (ghost) → Discord (webhook named after the IRC nick and its network)
      irc.say('#relay', 'hello from irc');
      await until(() => fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content === 'hello from irc'), 'the IRC message on Discord');
      const exec = fake.webhookExecutions.find((x) => x.channelId === ch.id && x.content === 'hello from irc')!;
      expect(exec.username).toMatch(/ircrelay/);
      expect(exec.username).toMatch(/irc/i);

      // Discord → Matrix (ghost) → IRC (the Discord user's own IRC connection, nick from the template)
      fake.injectUserMessage(ch.id, bob.id, 'hello from discord');
      const seen = await irc.waitFor((m) => m.message === 'hello from discord');
      expect(seen.nick).toBe('Bobby[m]');

      // Matrix → both, and nothing echoes back to where it came from
      await alice.sendText(roomId, 'hello both');
      // (another suite may hold the nick Alice[m] on this ergo as a registered account: a suffix is fine)
      await irc.waitFor((m) => m.message === 'hello both' && m.nick.startsWith('Alice[m]'));
      await until(() => webhookContents(ch.id).includes('hello both'), 'the Matrix message on Discord');
      await sleep(500);
      expect(irc.messages.filter((m) => m.message === 'hello from irc')).toHaveLength(0);
      expect(webhookContents(ch.id).filter((c) => c === 'hello from discord')).toHaveLength(0);
      const timeline = messagesOf(await alice.timeline(roomId));
      expect(timeline.filter((e) => body(e) === 'hello from irc')).toHaveLength(1);
      expect(timeline.filter((e) => body(e) === 'hello from discord')).toHaveLength(1);
    } finally {
      irc.quit();
    }
  });
});
