/**
 * Discord roles → Matrix power levels (rolePowers), lowered as well as raised, with the bridge's own
 * discord.js client (createClient: its intents and partials) logged in to the fake Discord
 * (test/harness/fake-discord, on 127.0.0.1): a member's roles changed (GUILD_MEMBER_UPDATE), a member
 * who left, a role renamed, and a demotion while the bridge was away, seen when the member next speaks.
 * Core is stood in for by a room whose power levels change as core changes them.
 */
import { once } from 'node:events';
import { silentLogger, type NetworkContext, type RemotePowerLevels } from '@trestle/core';
import { Events, type Client } from 'discord.js';
import type { APIGuild, APIRole, APIUser } from 'discord-api-types/v10';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../../packages/discord/src/client.js';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { FromDiscord } from '../../../packages/discord/src/fromDiscord.js';
import { FakeDiscord, type GuildChannel } from '../../harness/fake-discord/server.js';

const until = async <T>(fn: () => T, what: string | (() => string), ms = 5000): Promise<NonNullable<T>> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('Discord roles → Matrix power levels, against the fake Discord', { timeout: 20_000 }, () => {
  let fake: FakeDiscord;
  let guild: APIGuild;
  let general: GuildChannel;
  let mods: APIRole;
  /** The power levels of the ghosts in the room linked to `general`, as core leaves them (0 is no entry). */
  const room = new Map<string, number>();
  /** What was reported, in order. */
  const reported: RemotePowerLevels[] = [];
  const said: string[] = [];
  let client: Client | undefined;
  let from: FromDiscord | undefined;
  const ghost = (id: string): string => `@discord_${id}:hs`;
  const cfg = (): ReturnType<typeof discordConfigSchema.parse> => discordConfigSchema.parse({ token: fake.token, restUrl: fake.apiUrl, cdnUrl: fake.cdnUrl, rolePowers: { mods: 50 } });

  /** The bridge (re)started: a new client and a new FromDiscord, which knows nothing it reported before. */
  async function start(): Promise<void> {
    const ctx = {
      log: silentLogger, domain: 'hs', ghostUserId: ghost,
      kv: { get: () => undefined, set: () => undefined },
      portals: { forChat: (chat: string) => (chat === general.id ? [{ roomId: '!room:hs', remoteChat: chat, kind: 'plumbed' }] : []), all: () => [{ roomId: '!room:hs', remoteChat: general.id, kind: 'plumbed' }] },
      matrix: { powerLevel: async (_roomId: string, userId: string) => room.get(userId) ?? 0 },
      remote: {
        powerLevels: async (p: RemotePowerLevels) => {
          reported.push(p);
          for (const [id, level] of Object.entries(p.users)) { if (level === 0) room.delete(ghost(id)); else room.set(ghost(id), level); }
        },
        message: async (m: { parts: { content: Record<string, unknown> }[] }) => { said.push(String(m.parts[0]?.content['body'])); },
        typing: async () => undefined,
      },
    } as unknown as NetworkContext;
    from = new FromDiscord({
      ctx, cfg: cfg(), configKey: 'networks.discord', aliasPrefix: 'discord_', webhooks: { isOurs: () => false } as never,
      emojis: { mxc: async () => undefined, known: () => undefined } as never, stickers: {} as never, store: { addChatMember: () => undefined } as never, deletedByUs: () => false,
    });
    client = createClient(cfg());
    from.attach(client);
    const ready = once(client, Events.ClientReady);
    await client.login(fake.token);
    await ready;
  }

  async function stop(): Promise<void> {
    await from?.idle();
    await client?.destroy();
    client = undefined;
    from = undefined;
  }

  /** A member says something; resolves once it is bridged (the level is reported before, in the channel's order). */
  async function speaks(user: APIUser, text: string): Promise<void> {
    fake.injectUserMessage(general.id, user.id, text);
    await until(() => said.includes(text), `"${text}" to be bridged`);
  }

  /** A new member of the guild, with roles. */
  const member = (username: string, roles: string[] = []): APIUser => {
    const u = fake.addUser({ username });
    fake.addMember(guild.id, u.id, { roles });
    return u;
  };

  beforeAll(async () => {
    fake = new FakeDiscord({ heartbeatIntervalMs: 1000 });
    guild = fake.addGuild({ name: 'Trestle Test' });
    general = fake.addChannel(guild.id, { name: 'general' });
    mods = fake.addRole(guild.id, { name: 'mods' });
    await fake.start();
  });

  afterEach(stop);
  afterAll(async () => { await fake?.stop(); });

  it('raises a level when a member speaks, and reports none for a member whose roles give none', async () => {
    await start();
    const erin = member('erin', [mods.id]);
    const bob = member('bob');
    const before = reported.length;
    await speaks(erin, 'I moderate');
    await speaks(bob, 'no role here');
    await speaks(erin, 'still me');
    expect(reported.slice(before)).toEqual([{ chat: general.id, users: { [erin.id]: 50 } }]);
    expect(room.get(ghost(erin.id))).toBe(50);
    expect(room.has(ghost(bob.id))).toBe(false);
  });

  it('lowers the level of a member whose role is taken (GUILD_MEMBER_UPDATE), and raises it when given back, without them speaking', async () => {
    await start();
    const fay = member('fay', [mods.id]);
    await speaks(fay, 'fay here');
    expect(room.get(ghost(fay.id))).toBe(50);
    fake.updateMember(guild.id, fay.id, { roles: [] });
    await until(() => !room.has(ghost(fay.id)), 'the level to be lowered');
    expect(reported.at(-1)).toEqual({ chat: general.id, users: { [fay.id]: 0 } });
    fake.updateMember(guild.id, fay.id, { roles: [mods.id] });
    await until(() => room.get(ghost(fay.id)) === 50, 'the level to be raised again');
    // a nickname change is no role change: nothing reported
    const n = reported.length;
    fake.updateMember(guild.id, fay.id, { nick: 'Fay' });
    await speaks(fay, 'fay again');
    expect(reported.length).toBe(n);
  });

  it('lowers the level of a member demoted while the bridge was away, when they next speak', async () => {
    await start();
    const gus = member('gus', [mods.id]);
    await speaks(gus, 'gus before');
    expect(room.get(ghost(gus.id))).toBe(50);
    await stop();
    fake.updateMember(guild.id, gus.id, { roles: [] }); // no session sees it
    await start(); // knows nothing of what it reported before: the room does
    await speaks(gus, 'gus after');
    expect(room.has(ghost(gus.id))).toBe(false);
    expect(reported.at(-1)).toEqual({ chat: general.id, users: { [gus.id]: 0 } });
  });

  it('takes the level of a member who leaves the server', async () => {
    await start();
    const hal = member('hal', [mods.id]);
    await speaks(hal, 'hal here');
    expect(room.get(ghost(hal.id))).toBe(50);
    fake.memberLeaves(guild.id, hal.id);
    await until(() => !room.has(ghost(hal.id)), 'the level of the one who left to go');
  });

  it('follows a role renamed away from (and back to) a name rolePowers gives a level', async () => {
    const helpers = fake.addRole(guild.id, { name: 'mods-to-be' });
    await start();
    const ivy = member('ivy', [helpers.id]);
    await speaks(ivy, 'ivy here');
    expect(room.has(ghost(ivy.id))).toBe(false);
    fake.updateRole(guild.id, helpers.id, { name: 'mods' });
    await until(() => room.get(ghost(ivy.id)) === 50, 'the level of the renamed role');
    fake.updateRole(guild.id, helpers.id, { name: 'former mods' });
    await until(() => !room.has(ghost(ivy.id)), 'the level to go with the name');
  });
});
