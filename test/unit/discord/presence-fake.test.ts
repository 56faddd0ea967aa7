/**
 * PresenceBridge with the bridge's own discord.js client (createClient, presence on) logged in to the
 * fake Discord (test/harness/fake-discord, on 127.0.0.1), in a server of 60 members: past discord.js's
 * large_threshold (50), so GUILD_CREATE lists only the members who are online. Core's setPresence is
 * recorded. A member goes offline while the bridge's gateway session is gone (a close discord.js
 * answers with a new IDENTIFY, not a RESUME): the new session names them nowhere, and their ghost must
 * still go offline.
 */
import { silentLogger } from '@trestle/core';
import type { APIUser } from 'discord-api-types/v10';
import type { Client } from 'discord.js';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient, login } from '../../../packages/discord/src/client.js';
import { PresenceBridge } from '../../../packages/discord/src/presence.js';
import { FakeDiscord } from '../../harness/fake-discord/server.js';

const until = async <T>(fn: () => T, what: string, ms = 10_000): Promise<NonNullable<T>> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('PresenceBridge against the fake Discord, in a large server', () => {
  let fake: FakeDiscord | undefined;
  let client: Client | undefined;

  afterAll(async () => {
    await client?.destroy();
    await fake?.stop();
  });

  it('sets offline a member who went offline while the gateway session was gone', async () => {
    fake = new FakeDiscord({ heartbeatIntervalMs: 1000 });
    const guild = fake.addGuild({ name: 'Big' });
    const members: APIUser[] = [];
    for (let i = 0; i < 59; i++) {
      const u = fake.addUser({ username: `member${i}` });
      fake.addMember(guild.id, u.id);
      members.push(u);
    }
    const [walker, stayer] = members as [APIUser, APIUser];
    fake.setPresence(guild.id, stayer.id, { status: 'online' });
    const { apiUrl, cdnUrl } = await fake.start();
    const sent: string[] = [];
    const presence = new PresenceBridge({
      setPresence: async (user, p) => { sent.push(`${user} ${p}`); return true; },
      refreshSeconds: 0, log: silentLogger,
    });
    client = createClient({ messageContentIntent: true, serverMembersIntent: true, presence: true, restUrl: apiUrl, cdnUrl });
    presence.attach(client);
    await login(client, fake.token, 'networks.discord');
    expect(client.guilds.cache.get(guild.id)?.large).toBe(true);
    expect([...client.guilds.cache.get(guild.id)!.members.cache.keys()].sort()).toEqual([fake.bot.id, stayer.id].sort()); // the offline left out
    await until(() => sent.includes(`${stayer.id} online`), 'the online member from GUILD_CREATE');
    fake.setPresence(guild.id, walker.id, { status: 'online' });
    await until(() => sent.includes(`${walker.id} online`), 'the PRESENCE_UPDATE');

    // 4007 (invalid seq): the session is gone; discord.js identifies anew (after about 5 s)
    const identifies = fake.gatewayStats.identifies;
    await fake.disconnectGateway(4007);
    fake.setPresence(guild.id, walker.id, { status: 'offline' }); // to no session: nobody hears it
    await until(() => fake!.gatewayStats.identifies > identifies, 'a new session');
    await until(() => sent.includes(`${walker.id} offline`), 'the ghost of the member who went offline to go offline');
    await new Promise((r) => setTimeout(r, 100));
    expect(sent).not.toContain(`${stayer.id} offline`);
    expect(sent.filter((s) => s.startsWith(stayer.id))).toEqual([`${stayer.id} online`]);
  }, 30_000);
});
