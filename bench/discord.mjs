// The Discord bridge benchmark. The fake Discord (test/harness/fake-discord, built to test/dist) runs in
// this process, Synapse on its own ports (bench/discord.sh), the bridge as a child process with channels
// statically mapped to rooms. Matrix → Discord load is driven the way a homeserver does it (appservice
// transactions of 50 events) and read where the fake records webhook executions; Discord → Matrix load is
// injected as Discord users' messages and read back from Synapse. Bridge CPU comes from /proc.
// Prints JSON figures on stdout and progress on stderr. Not a test: nothing here fails on speed.
import { readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { benchKit, cpuMs, pct, progress, rssKb, sleep, until } from './common.mjs';
import { FakeDiscord } from '../test/dist/harness/fake-discord/server.js';

const [dir, synPort, asPort, discordPort] = process.argv.slice(2);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const INBOUND = Number(process.env.BENCH_INBOUND ?? 600);
const CHANNELS = Number(process.env.BENCH_CHANNELS ?? 5);
const DISCORD_USERS = 20;
const { reg, healthy, matrix, registerUser, pushTransaction, event, startBridge: spawnBridge } = benchKit({ dir, synPort, asPort, txnPrefix: 'benchd' });
const now = () => performance.timeOrigin + performance.now();
const results = {
  setup: { channels: CHANNELS, transactionSize: 50, fakeEchoDelayMs: 0, note: 'the fake answers at once: figures are the bridge (and Synapse for Discord → Matrix), not Discord' },
};

const round = (x, d = 1) => +x.toFixed(d);
const latencyFigures = (xs) => ({ samples: xs.length, p50: round(pct(xs, 50)), p90: round(pct(xs, 90)), p99: round(pct(xs, 99)), max: round(Math.max(...xs)) });

// ---------------------------------------------------------------- the bridge process and the Matrix side
let bridge;
function startBridge() { bridge = spawnBridge(); return bridge; }
const rssMb = (pid) => Math.round(rssKb(pid) / 1024);

/** A /sync loop for one user: calls onMessage(roomId, body, arrivedAt) for every new m.room.message. */
function syncLoop(token, onMessage) {
  let since;
  let stopped = false;
  const filter = encodeURIComponent(JSON.stringify({ room: { timeline: { limit: 1000, types: ['m.room.message'] }, state: { lazy_load_members: true } }, presence: { types: [] } }));
  const loop = (async () => {
    while (!stopped) {
      let r;
      try {
        r = await matrix('GET', `/_matrix/client/v3/sync?filter=${filter}&timeout=10000${since ? `&since=${since}` : ''}`, token);
      } catch (err) {
        progress(`sync failed (${err.message}); retrying`);
        await sleep(500);
        continue;
      }
      const at = now();
      if (since) {
        for (const [roomId, room] of Object.entries(r.rooms?.join ?? {})) {
          for (const e of room.timeline?.events ?? []) if (e.type === 'm.room.message') onMessage(roomId, String(e.content?.body ?? ''), at);
        }
      }
      since = r.next_batch;
    }
  })();
  return { stop: () => { stopped = true; return loop.catch(() => undefined); }, ready: () => since !== undefined };
}

// ---------------------------------------------------------------- the world
progress('starting the fake Discord');
const fake = new FakeDiscord({ echoDelayMs: 0 });
const guild = fake.addGuild({ name: 'Bench' });
const channels = Array.from({ length: CHANNELS }, (_, i) => fake.addChannel(guild.id, { name: `bench-${i}` }));
const users = Array.from({ length: DISCORD_USERS }, (_, i) => {
  const u = fake.addUser({ username: `dbench${i}` });
  fake.addMember(guild.id, u.id);
  return u;
});
await fake.start(Number(discordPort));

progress(`making ${CHANNELS} Matrix rooms and mapping them to the channels`);
const ownerToken = await registerUser('benchdowner');
const rooms = [];
for (const ch of channels) rooms.push((await matrix('POST', '/_matrix/client/v3/createRoom', ownerToken, { preset: 'public_chat', name: ch.name })).room_id);
const cfg = YAML.parse(readFileSync(`${dir}/bridge.yaml`, 'utf8'));
cfg.networks.discord.mappings = Object.fromEntries(channels.map((ch, i) => [ch.id, [rooms[i]]]));
writeFileSync(`${dir}/bridge.yaml`, YAML.stringify(cfg));

progress('starting the bridge');
let t0 = Date.now();
startBridge();
await until(healthy, 'the bridge to start', 60_000);
results.startupMs = Date.now() - t0;
const pid = bridge.pid;

// warm-up: the channel webhooks (Matrix → Discord) and every Discord user's ghost in every room (Discord → Matrix)
progress('warm-up: one message per room from Matrix, one per Discord user and room from Discord');
const execs = fake.webhookExecutions;
await pushTransaction(rooms.map((r, i) => event(r, '@warm:localhost', `warm ${i}`)));
await until(() => execs.length >= rooms.length, 'the warm-up webhook messages');
const arrived = new Map(); // body → arrival time on the /sync client
const sync = syncLoop(ownerToken, (_room, body, at) => { if (!arrived.has(body)) arrived.set(body, at); });
await until(() => sync.ready(), 'the first sync');
t0 = now();
let cpu0 = cpuMs(pid);
for (const [i, ch] of channels.entries()) for (const u of users) fake.injectUserMessage(ch.id, u.id, `hello ${i} ${u.id}`);
await until(() => [...arrived.keys()].filter((b) => b.startsWith('hello ')).length >= CHANNELS * DISCORD_USERS, 'the warm-up messages on Matrix', 300_000);
results.discordToMatrixFirstContact = {
  messages: CHANNELS * DISCORD_USERS, note: 'each one a new ghost in its room: registration, profile, avatar-less join, then the message',
  seconds: round((now() - t0) / 1000, 2), cpuMsPerMessage: round((cpuMs(pid) - cpu0) / (CHANNELS * DISCORD_USERS), 2),
};

// ---------------------------------------------------------------- 1. Matrix → Discord throughput
progress(`Matrix → Discord throughput: ${MESSAGES} messages from 100 senders over ${CHANNELS} rooms, transactions of 50`);
const m2dStart = execs.length;
cpu0 = cpuMs(pid);
t0 = now();
for (let i = 0; i < MESSAGES; i += 50) {
  await pushTransaction(Array.from({ length: Math.min(50, MESSAGES - i) }, (_, k) => {
    const n = i + k;
    return event(rooms[n % CHANNELS], `@u${n % 100}:localhost`, `t ${n}`);
  }));
}
const pushedSecs = (now() - t0) / 1000;
await until(() => execs.length - m2dStart >= MESSAGES, 'every throughput message on Discord', 600_000);
const m2dSecs = (now() - t0) / 1000;
const m2d = execs.slice(m2dStart);
const outOfOrder = channels.map((ch) => {
  const seq = m2d.filter((x) => x.channelId === ch.id).map((x) => Number(x.content.split(' ')[1]));
  return seq.filter((n, i) => i > 0 && n < seq[i - 1]).length;
}).reduce((a, b) => a + b, 0);
results.matrixToDiscord = {
  messages: MESSAGES, ceiling: 'discord.js holds a bot to Discord\'s global 50 requests/s, webhook executions included', seconds: round(m2dSecs, 2), msgPerSec: Math.round(MESSAGES / m2dSecs), transactionsAcceptedInSeconds: round(pushedSecs, 2),
  cpuMsPerMessage: round((cpuMs(pid) - cpu0) / MESSAGES, 3), outOfOrderWithinAChannel: outOfOrder, bridgeRssMB: rssMb(pid),
};

// ---------------------------------------------------------------- 2. Matrix → Discord latency at a paced rate
// Below the throughput ceiling (discord.js keeps every request of a bot, webhook executions included, under
// Discord's global 50 requests/s), so the figure is what the bridge adds, not time spent in a backlog.
const RATE = 25;
progress(`Matrix → Discord latency at a paced ${RATE} msg/s for 8 s (one-event transactions, as a homeserver sends at that rate)`);
// let the limiter's current one-second window, which the throughput run used up, run out first
await sleep(1500);
const latStart = execs.length;
const sentAt = new Map();
let paceStart = now();
for (let i = 0; i < RATE * 8; i++) {
  const wait = paceStart + (i * 1000) / RATE - now();
  if (wait > 0) await sleep(wait);
  const e = event(rooms[i % CHANNELS], `@u${i % 100}:localhost`, `lat ${i}`);
  sentAt.set(e.content.body, now());
  void pushTransaction([e]);
}
await until(() => execs.length - latStart >= RATE * 8, 'every latency message on Discord', 120_000);
const m2dLat = execs.slice(latStart).map((x) => x.at - sentAt.get(x.content)).filter(Number.isFinite);
if (process.env.BENCH_DUMP) writeFileSync(`${dir}/m2d-latency.json`, JSON.stringify(execs.slice(latStart).map((x) => ({ body: x.content, channel: x.channelId, sent: sentAt.get(x.content) - paceStart, ms: x.at - sentAt.get(x.content) }))));
results.matrixToDiscordLatencyMs = { rate: RATE, measured: 'appservice transaction PUT → the fake executing the webhook', ...latencyFigures(m2dLat) };

// ---------------------------------------------------------------- 3. Discord → Matrix throughput
progress(`Discord → Matrix throughput: ${INBOUND} messages from ${DISCORD_USERS} users over ${CHANNELS} channels (Synapse bound)`);
cpu0 = cpuMs(pid);
t0 = now();
for (let i = 0; i < INBOUND; i++) fake.injectUserMessage(channels[i % CHANNELS].id, users[i % DISCORD_USERS].id, `in ${i}`);
await until(() => [...arrived.keys()].filter((b) => b.startsWith('in ')).length >= INBOUND, 'every inbound message on Matrix', 600_000);
const d2mSecs = (now() - t0) / 1000;
let d2mOutOfOrder = 0;
for (const roomId of rooms) {
  const r = await matrix('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=1000`, ownerToken);
  const seq = r.chunk.reverse().map((e) => String(e.content?.body ?? '')).filter((b) => b.startsWith('in ')).map((b) => Number(b.slice(3)));
  d2mOutOfOrder += seq.filter((n, i) => i > 0 && n < seq[i - 1]).length;
}
results.discordToMatrix = {
  messages: INBOUND, seconds: round(d2mSecs, 2), msgPerSec: Math.round(INBOUND / d2mSecs),
  cpuMsPerMessage: round((cpuMs(pid) - cpu0) / INBOUND, 3), outOfOrderWithinARoom: d2mOutOfOrder,
};

// ---------------------------------------------------------------- 4. Discord → Matrix latency at a paced rate
const IN_RATE = 20;
progress(`Discord → Matrix latency at a paced ${IN_RATE} msg/s for 5 s, read by a /sync client`);
const injectedAt = new Map();
paceStart = now();
for (let i = 0; i < IN_RATE * 5; i++) {
  const wait = paceStart + (i * 1000) / IN_RATE - now();
  if (wait > 0) await sleep(wait);
  const body = `dl ${i}`;
  injectedAt.set(body, now());
  fake.injectUserMessage(channels[i % CHANNELS].id, users[i % DISCORD_USERS].id, body);
}
await until(() => [...injectedAt.keys()].every((b) => arrived.has(b)), 'every latency message on Matrix', 120_000);
const d2mLat = [...injectedAt].map(([b, at]) => arrived.get(b) - at);
results.discordToMatrixLatencyMs = { rate: IN_RATE, measured: 'MESSAGE_CREATE sent by the fake → the event in a Matrix client\'s /sync (includes Synapse)', ...latencyFigures(d2mLat) };
results.bridgeRssMB = rssMb(pid);

await sync.stop();
bridge.kill('SIGTERM');
await new Promise((r) => bridge.once('exit', r));
await fake.stop();
console.log(JSON.stringify(results, null, 2));
process.exit(0);
