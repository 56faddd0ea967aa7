/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Reliability: echo suppression in both echo orders, 429 bursts, a Discord outage (503s), a forced gateway reconnect,
 * a gateway session Discord ends for good (the admin is told, the bridge logs in again until Discord takes it),
 * a restart with messages missed meanwhile (however old; past the most it catches up on, the room is told), login errors, a missing Message Content intent, and the
 * IRC ↔ Discord relay through one Matrix room.
 * Shared set-up: discord-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import { IrcUser } from '../harness/irc-user.js';
import { CATCH_UP_LIMIT } from '../../packages/discord/src/fromDiscord.js';
import { snowflakeTime } from '../harness/fake-discord/snowflake.js';
import { messagesOf, type MatrixEventJson } from '../harness/matrix-user.js';
import {
  fake, bridge, alice, botId, bob, carol, dana, guild, body, relates, channel, plumbed, webhookContents, startBridge, standalone,
  useDiscordBridge, asBot, stateOf,
} from './discord-harness.js';
import { sleep, until } from './env.js';

useDiscordBridge();

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

  it('waits out a Discord outage (503 after discord.js retries) longer than the retry budget: nothing given up, order kept', async () => {
    const ch = channel('outage');
    const roomId = await plumbed(ch);
    await alice.sendText(roomId, 'before the outage'); // the channel's webhook exists: only sends fail below
    await until(() => webhookContents(ch.id).includes('before the outage'), 'the first message');
    const sends = /^POST \/(webhooks\/[^/]+\/[^/]+|channels\/[^/]+\/messages)$/;
    const n0 = fake.requests.length;
    // e2e.sh: delivery.maxAttempts 3, initialBackoffMs 200: counted, the first message would be given up in ~1 s
    fake.failNext(sends, 503, { forMs: 4000 });
    const sent = Array.from({ length: 4 }, (_, i) => `during the outage ${i + 1}`);
    for (const text of sent) await alice.sendText(roomId, text);
    await until(() => webhookContents(ch.id).length === sent.length + 1, 'every message after the outage', 30_000);
    expect(webhookContents(ch.id)).toEqual(['before the outage', ...sent]);
    // the outage outlasted the budget: core tried the first send more than maxAttempts (3) times (webhook posts are
    // not retried inside discord.js: a retry there could post twice), an outage spending none of them
    const refused = fake.requests.slice(n0).filter((r) => r.route === '/webhooks/:webhook/:token' && r.status === 503);
    expect(refused.length).toBeGreaterThan(3);
    await sleep(500);
    const notices = (await alice.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('⚠'));
    expect(notices.map(body)).toEqual([]);
    expect(webhookContents(ch.id)).toEqual(['before the outage', ...sent]); // and exactly once
  });

  it('resumes the rooms waiting out a Discord outage as soon as Discord answers again, not at the end of their backoff', async () => {
    const chs = [channel('probe-a'), channel('probe-b')];
    const rooms = [await plumbed(chs[0]!), await plumbed(chs[1]!)];
    // a first retry two minutes or more after a failure (jitter: ±25 %): within this test only the probe can deliver
    await bridge.stop();
    await startBridge({}, { initialBackoffMs: 160_000, maxBackoffMs: 600_000 });
    try {
      for (const [i, roomId] of rooms.entries()) await alice.sendText(roomId, `before the outage ${i}`);
      await until(() => chs.every((ch, i) => webhookContents(ch.id).includes(`before the outage ${i}`)), 'the first messages');
      const n0 = fake.requests.length;
      fake.failNext(/^[A-Z]+ \//, 503, { forMs: 6000 }); // all of Discord's REST, the probe's call included
      const sent = rooms.map((_, i) => Array.from({ length: 3 }, (_, j) => `room ${i} during the outage ${j + 1}`));
      for (const [i, roomId] of rooms.entries()) for (const text of sent[i]!) await alice.sendText(roomId, text);
      await until(() => chs.every((ch, i) => webhookContents(ch.id).length === sent[i]!.length + 1), 'every message after the outage', 30_000);
      for (const [i, ch] of chs.entries()) expect(webhookContents(ch.id)).toEqual([`before the outage ${i}`, ...sent[i]!]);
      const after = fake.requests.slice(n0);
      // each room's first message failed (as an outage), and the probe saw Discord down, then up
      for (const ch of chs) {
        const hook = fake.webhooks(ch.id)[0]!.id;
        expect(after.filter((r) => r.status === 503 && r.path.startsWith(`/webhooks/${hook}/`)).length).toBeGreaterThanOrEqual(1);
      }
      const probes = after.filter((r) => r.method === 'GET' && r.path === '/users/@me').map((r) => r.status);
      expect(probes).toContain(503);
      expect(probes.slice(probes.indexOf(503))).toContain(200);
      await sleep(500);
      for (const [i, roomId] of rooms.entries()) {
        const notices = (await alice.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('⚠'));
        expect(notices.map(body)).toEqual([]);
        expect(webhookContents(chs[i]!.id)).toEqual([`before the outage ${i}`, ...sent[i]!]); // and exactly once
      }
    } finally {
      await bridge.stop();
      await startBridge();
    }
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

describe('Discord bridge: login', () => {
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
      // a message that mentions the bot has content even without the intent, and is bridged: it, and
      // not the blank one before it (a channel's messages are reported in order, so that one would be first)
      const mention = fake.injectUserMessage(ch.id, bob.id, `<@${fake.bot.id}> can you read this?`);
      await until(() => s.events.length === 1, 'the mention to be bridged');
      expect(s.events[0]).toEqual({ kind: 'message', value: expect.objectContaining({ chat: ch.id, id: mention.id }) });
      // nor is a later blank message reported: the mention after it is the only one that comes
      fake.injectUserMessage(ch.id, bob.id, 'more words the bridge cannot read');
      const later = fake.injectUserMessage(ch.id, bob.id, `<@${fake.bot.id}> and this?`);
      await until(() => s.events.length === 2, 'the second mention to be bridged');
      expect(s.events.map((e) => e.value['id'])).toEqual([mention.id, later.id]);
    } finally {
      await s.net.stop();
    }
  });
});

/** The bridge admin of e2e.sh's permissions ("@admin:localhost": admin): core's notifyAdmins tells them in their admin room. */
const ADMIN = '@admin:localhost';
const adminRooms: string[] = [];

/**
 * What the bot said to the bridge admin since `since` (ms), oldest first: read as the bot from the admin
 * room core made for them (named "Trestle", with them invited), so the admin needs no account here.
 */
async function toldAdmin(since: number): Promise<string[]> {
  if (adminRooms.length === 0) {
    const { joined_rooms: rooms } = await asBot<{ joined_rooms: string[] }>('GET', '/_matrix/client/v3/joined_rooms');
    for (const roomId of rooms) {
      const state = await stateOf(roomId);
      const admin = state.some((e) => e.type === 'm.room.member' && e.state_key === ADMIN);
      if (admin && state.find((e) => e.type === 'm.room.name')?.content['name'] === 'Trestle') adminRooms.push(roomId);
    }
  }
  const said: MatrixEventJson[] = [];
  for (const roomId of adminRooms) {
    const { chunk } = await asBot<{ chunk: MatrixEventJson[] }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=100`);
    said.push(...chunk.filter((e) => e.sender === botId && e.type === 'm.room.message' && e.origin_server_ts >= since));
  }
  return said.sort((a, b) => a.origin_server_ts - b.origin_server_ts).map(body);
}

describe('Discord bridge: the gateway closed for good', () => {
  it('tells the admin when Discord closes the gateway for good (4014), logs in again until Discord takes it, and says it is back', async () => {
    const ch = channel('intents-off');
    const roomId = await plumbed(ch);
    fake.injectUserMessage(ch.id, bob.id, 'before the intents were switched off');
    await alice.waitForEvent(roomId, (e) => body(e) === 'before the intents were switched off');
    const since = Date.now() - 1000;
    const refusals = (): number => fake.gatewayStats.closeCodes.filter((c) => c === 4014).length;
    const refused = refusals();
    fake.messageContentIntent = false; // switched off in the developer portal: Discord ends the session (4014) and refuses new ones
    try {
      await fake.disconnectGateway(4014);
      const told = await until(async () => (await toldAdmin(since)).find((b) => b.startsWith('⚠')), 'the admin to be told');
      expect(told).toMatch(/^⚠ Discord refused the privileged intents the bridge asks for \(gateway close code 4014\), so nothing said on Discord reaches Matrix now\./);
      expect(told).toMatch(/Privileged Gateway Intents and enable "Message Content Intent", "Server Members Intent": the bridge picks that up without a restart/);
      expect(told).toMatch(/Matrix → Discord may still work: it goes through the channels' webhooks\./);
      // the bridge logs in again meanwhile (e2e.sh: reconnect pauses from 1 s, doubling), refused for the same cause
      await until(() => refusals() >= refused + 3, 'two logins tried again and refused', 60_000);
      fake.injectUserMessage(ch.id, carol.id, 'while the intents were off');
      // Matrix → Discord goes on through the channel's webhook
      await alice.sendText(roomId, 'matrix while the intents were off');
      await until(() => webhookContents(ch.id).includes('matrix while the intents were off'), 'the Matrix message on Discord');
    } finally {
      fake.messageContentIntent = true;
    }
    const back = await until(async () => (await toldAdmin(since)).find((b) => b.startsWith('✅')), 'the admin to hear the bridge is back', 60_000);
    expect(back).toBe('✅ The bridge is reconnected to Discord: what is said there reaches Matrix again, starting with what was said while it was away.');
    // what was said meanwhile is caught up, and what is said now arrives
    await alice.waitForEvent(roomId, (e) => body(e) === 'while the intents were off');
    fake.injectUserMessage(ch.id, dana.id, 'after the reconnect');
    const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'after the reconnect'));
    expect(messagesOf(events).filter((e) => e.sender.startsWith('@discord_')).map(body))
      .toEqual(['before the intents were switched off', 'while the intents were off', 'after the reconnect']);
    // told once, however many logins were refused
    expect((await toldAdmin(since)).filter((b) => b.startsWith('⚠ Discord'))).toHaveLength(1);
    expect(webhookContents(ch.id)).toEqual(['matrix while the intents were off']);
  });
});

describe('Discord bridge: restart', () => {
  it('bridges what was said on Discord while it was stopped, however long ago (past maxMessageAgeSeconds), with the times it was said', async () => {
    const ch = channel('downtime');
    const roomId = await plumbed(ch);
    fake.injectUserMessage(ch.id, bob.id, 'before the stop');
    await alice.waitForEvent(roomId, (e) => body(e) === 'before the stop');
    await bridge.stop();
    const old = fake.injectUserMessage(ch.id, bob.id, 'older than maxMessageAgeSeconds by the time the bridge is back');
    await sleep(5000);
    const recent = fake.injectUserMessage(ch.id, carol.id, 'while stopped 1');
    fake.injectUserMessage(ch.id, dana.id, 'while stopped 2');
    // a message missed while the bridge was away is old because it was away: not a reason to drop it
    await startBridge({ maxMessageAgeSeconds: 4 });
    try {
      fake.injectUserMessage(ch.id, bob.id, 'after the restart');
      const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'after the restart'));
      const fromGhosts = messagesOf(events).filter((e) => e.sender.startsWith('@discord_'));
      expect(fromGhosts.map(body))
        .toEqual(['before the stop', 'older than maxMessageAgeSeconds by the time the bridge is back', 'while stopped 1', 'while stopped 2', 'after the restart']);
      // shown at the times they were said on Discord (the time in their snowflake ids, as discord.js reads it)
      expect(fromGhosts[1]!.origin_server_ts).toBe(snowflakeTime(old.id));
      expect(fromGhosts[2]!.origin_server_ts).toBe(snowflakeTime(recent.id));
      await sleep(500);
      const notices = (await alice.timeline(roomId)).filter((e) => e.sender === botId && /^[ℹ⚠]/.test(body(e)));
      expect(notices.map(body)).toEqual([]); // nothing left out to tell about
    } finally {
      await bridge.stop();
      await startBridge();
    }
  });

  it(`bridges the first ${CATCH_UP_LIMIT} messages said in a channel while it was stopped, and tells the room how many more, linking the first on Discord`, async () => {
    const ch = channel('backlog');
    const roomId = await plumbed(ch);
    fake.injectUserMessage(ch.id, bob.id, 'before the backlog');
    await alice.waitForEvent(roomId, (e) => body(e) === 'before the backlog');
    await bridge.stop();
    const missed = Array.from({ length: CATCH_UP_LIMIT + 5 }, (_, i) => fake.injectUserMessage(ch.id, [bob, carol, dana][i % 3]!.id, `backlog ${i + 1}`));
    await startBridge();
    const told = await alice.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('ℹ 5 messages'), 180_000);
    expect(body(told)).toBe(`ℹ 5 messages said in #backlog on Discord while the bridge was away were not bridged: it catches up on at most ${CATCH_UP_LIMIT} ` +
      `per channel. Read them on Discord, from https://discord.com/channels/${guild.id}/${ch.id}/${missed[CATCH_UP_LIMIT]!.id}`);
    // what comes after is bridged, and after a restart the ones told about are not caught up on: the checkpoint is past them
    fake.injectUserMessage(ch.id, bob.id, 'after the backlog');
    await alice.waitForEvent(roomId, (e) => body(e) === 'after the backlog', 60_000);
    await bridge.stop();
    await startBridge();
    fake.injectUserMessage(ch.id, carol.id, 'after another restart');
    const events = await alice.waitForTimeline(roomId, (evs) => evs.some((e) => body(e) === 'after another restart'), 60_000);
    const said = events.filter((e) => e.type === 'm.room.message' && (e.sender.startsWith('@discord_') || (e.sender === botId && /^[ℹ⚠]/.test(body(e))))).map(body);
    expect(said).toEqual(['before the backlog', ...missed.slice(0, CATCH_UP_LIMIT).map((m) => m.content), body(told), 'after the backlog', 'after another restart']);
  }, 300_000);
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

      // with the Discord users' ghosts in the IRC server's relay.users, they reach IRC through the relay
      await bridge.stop();
      await startBridge({}, {}, { relay: { users: ['@discord_.*:localhost'] } });
      fake.injectUserMessage(ch.id, bob.id, 'relayed from discord');
      const relayed = await irc.waitFor((m) => m.message.endsWith('relayed from discord'));
      expect(relayed).toMatchObject({ nick: 'MatrixRelay', message: '<Bobby> relayed from discord' });
    } finally {
      irc.quit();
    }
  });
});
