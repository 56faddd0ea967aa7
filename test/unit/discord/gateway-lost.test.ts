/**
 * The bridge losing Discord's gateway for good, with an unmodified discord.js logged in to the fake
 * Discord (test/harness/fake-discord, on 127.0.0.1): Discord closes the session with a code discord.js
 * does not reconnect from (4014 refused intents, 4004 refused token), or refuses the token at a login
 * retried after Discord was unreachable at start. The admins are told once what broke and what to
 * change, the bridge keeps logging in again in the background until Discord takes it, and then says
 * so and catches up. Core is stood in for by what the network reads: a database for its own tables,
 * and what it reports or tells the admins, recorded.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { silentLogger, type NetworkContext, type PortalInfo, type RemoteMessage } from '@trestle/core';
import type { APIGuild, APIUser } from 'discord-api-types/v10';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { RECONNECTED_NOTICE } from '../../../packages/discord/src/errors.js';
import { DiscordNetwork } from '../../../packages/discord/src/network.js';
import { FakeDiscord, type GuildChannel } from '../../harness/fake-discord/server.js';
import { tempDir } from '../temp.js';

const until = async <T>(fn: () => T | Promise<T>, what: string | (() => string), ms = 10_000): Promise<NonNullable<T>> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Setup {
  fake: FakeDiscord;
  net: DiscordNetwork;
  guild: APIGuild;
  ch: GuildChannel;
  bob: APIUser;
  /** What the admins were told, in order. */
  admins: string[];
  /** The bodies of the messages reported to core, in order. */
  said: () => string[];
}

let running: Setup | undefined;

afterEach(async () => {
  await running?.net.stop();
  await running?.fake.stop();
  running = undefined;
});

/**
 * A fake Discord with a guild, a channel linked to a room (a static mapping) and bob; the network started
 * against it with short reconnect pauses. `startFake: false` leaves the fake down (Discord unreachable):
 * start it on `port` later.
 */
async function setup(opts: { startFake?: boolean } = {}): Promise<Setup & { port: number }> {
  const fake = new FakeDiscord({ heartbeatIntervalMs: 1000 });
  const guild = fake.addGuild({ name: 'Trestle Test' });
  const ch = fake.addChannel(guild.id, { name: 'general' });
  const bob = fake.addUser({ username: 'bob' });
  fake.addMember(guild.id, bob.id);
  const port = await freePort();
  if (opts.startFake !== false) await fake.start(port);
  const config = {
    token: fake.token, restUrl: `http://127.0.0.1:${port}/api`, cdnUrl: `http://127.0.0.1:${port}/cdn`, spaces: false,
    mappings: { [ch.id]: ['!room:hs'] }, reconnect: { initialDelayMs: 50, maxDelayMs: 1000 },
  };
  const db = openDatabase(join(tempDir('trestle-gateway-lost-'), 'bridge.db'));
  const kv = new Map<string, string>();
  const portals: PortalInfo[] = [];
  const admins: string[] = [];
  const messages: RemoteMessage[] = [];
  const ctx = {
    log: silentLogger, config, domain: 'hs', db,
    migrate: (ms: Parameters<NetworkContext['migrate']>[0]) => migrate(db, 'discord', ms, silentLogger),
    portals: {
      forChat: (chat: string) => portals.filter((p) => p.remoteChat === chat), forRoom: () => [], all: () => portals,
      link: (roomId: string, chat: string) => { const p: PortalInfo = { roomId, remoteChat: chat, kind: 'plumbed', network: 'discord', data: {} }; portals.push(p); return p; },
      unlink: () => false, refreshBridgeInfo: () => undefined,
    },
    kv: { get: (k: string) => kv.get(k), set: (k: string, v: string) => { kv.set(k, v); }, delete: (k: string) => { kv.delete(k); } },
    remote: {
      message: async (m: RemoteMessage) => { messages.push(m); },
      ...Object.fromEntries(['powerLevels', 'notice', 'membership', 'typing', 'chatInfo', 'profile'].map((k) => [k, async () => undefined])),
    },
    notifyAdmins: async (text: string) => { admins.push(text); }, notifyUser: async () => undefined,
    ghostUserId: (u: string) => `@discord_${u}:hs`, remoteUserOf: () => undefined, bridged: () => false, mediaUrl: (m: string) => m,
    matrix: { botUserId: '@bot:hs', getState: async () => undefined },
  } as unknown as NetworkContext;
  const net = new DiscordNetwork('discord', discordConfigSchema.parse(config));
  const s = { fake, net, guild, ch, bob, admins, said: () => messages.map((m) => String(m.parts[0]?.content['body'] ?? '')), port };
  running = s;
  await net.start(ctx);
  return s;
}

/** How many times the fake closed a gateway session with `code`. */
const closes = (fake: FakeDiscord, code: number): number => fake.gatewayStats.closeCodes.filter((c) => c === code).length;

describe('Discord closes the gateway session for good', { timeout: 30_000 }, () => {
  it('4014 (refused intents): the admins are told once what to enable; logins go on until Discord takes them, then it says so and catches up', async () => {
    const { fake, net, ch, bob, admins, said } = await setup();
    fake.injectUserMessage(ch.id, bob.id, 'before');
    await until(() => said().includes('before'), 'the first message');

    fake.messageContentIntent = false; // switched off in the developer portal
    await fake.disconnectGateway(4014);
    await until(() => admins.length === 1, 'the admins to be told');
    expect(admins[0]).toMatch(/^⚠ Discord refused the privileged intents the bridge asks for \(gateway close code 4014\), so nothing said on Discord reaches Matrix now\./);
    expect(admins[0]).toMatch(/Privileged Gateway Intents and enable "Message Content Intent", "Server Members Intent": the bridge picks that up without a restart/);
    expect(admins[0]).toMatch(/Matrix → Discord may still work: it goes through the channels' webhooks\./);
    expect(admins[0]).toMatch(/keeps trying to connect \(every 1 s at most\) and says so here when it is back\.$/);
    // the bot's REST calls still work: Matrix → Discord is not held back
    expect(await net.reachable()).toBe(true);

    // logins are tried again, refused for the same cause: not told again
    const refused = closes(fake, 4014);
    await until(() => closes(fake, 4014) >= refused + 2, 'two more logins, refused');
    fake.injectUserMessage(ch.id, bob.id, 'while the intents were off');
    expect(admins).toHaveLength(1);

    fake.messageContentIntent = true;
    await until(() => admins.length === 2, 'the admins to hear the bridge is back');
    expect(admins[1]).toBe(RECONNECTED_NOTICE);
    await until(() => said().includes('while the intents were off'), 'what was said meanwhile to be caught up');
    fake.injectUserMessage(ch.id, bob.id, 'after');
    await until(() => said().includes('after'), 'a message after the reconnect');
    expect(said()).toEqual(['before', 'while the intents were off', 'after']);
    expect(admins).toHaveLength(2);
  });

  it('4004 (refused token): Matrix → Discord waits (not reachable) and a restart with a new token is asked for; a token taken again recovers', async () => {
    const { fake, net, ch, bob, admins, said } = await setup();
    fake.tokenRefused = true; // Reset Token in the developer portal
    await fake.disconnectGateway(4004);
    await until(() => admins.length === 1, 'the admins to be told');
    expect(admins[0]).toMatch(/^⚠ Discord refused the bridge's bot token \(networks\.discord\.token\) \(gateway close code 4004\), so nothing said on Discord reaches Matrix now\./);
    expect(admins[0]).toMatch(/Reset Token\), put it in networks\.discord\.token and restart the bridge/);
    expect(admins[0]).toMatch(/Matrix messages for Discord wait, and go once the bridge is connected again\./);
    expect(net.client).toBeUndefined();
    expect(await net.reachable()).toBe(false);

    // logins are tried again (Discord answers GET /gateway/bot with 401): not told again
    const unauthorized = (): number => fake.requests.filter((r) => r.path === '/gateway/bot' && r.status === 401).length;
    await until(() => unauthorized() >= 2, 'two logins refused');
    expect(admins).toHaveLength(1);

    fake.tokenRefused = false;
    await until(() => admins.length === 2, 'the admins to hear the bridge is back');
    expect(admins[1]).toBe(RECONNECTED_NOTICE);
    expect(await net.reachable()).toBe(true);
    fake.injectUserMessage(ch.id, bob.id, 'after');
    await until(() => said().includes('after'), 'a message after the reconnect');
  });

  it('a token refused at a login retried after Discord was unreachable at start: the admins are told, and logins go on', async () => {
    const s = await setup({ startFake: false });
    expect(await s.net.reachable()).toBe(false);
    s.fake.tokenRefused = true;
    await s.fake.start(s.port); // Discord answers now, but refuses the token
    await until(() => s.admins.length === 1, 'the admins to be told');
    expect(s.admins[0]).toMatch(/^⚠ Discord refused the bridge's bot token \(networks\.discord\.token\), so nothing said/);
    expect(s.admins[0]).toMatch(/Matrix messages for Discord wait/);
    const unauthorized = (): number => s.fake.requests.filter((r) => r.path === '/gateway/bot' && r.status === 401).length;
    const seen = unauthorized();
    await until(() => unauthorized() >= seen + 2, 'more logins, refused');
    expect(s.admins).toHaveLength(1);
    s.fake.tokenRefused = false;
    await until(() => s.admins.length === 2, 'the admins to hear the bridge is back');
    expect(s.admins[1]).toBe(RECONNECTED_NOTICE);
    expect(await s.net.reachable()).toBe(true);
    s.fake.injectUserMessage(s.ch.id, s.bob.id, 'hello again');
    await until(() => s.said().includes('hello again'), 'a message once connected');
  });
});
