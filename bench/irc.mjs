// The IRC bridge benchmark. Drives load the way a homeserver does (appservice transactions of 50
// events), reads arrival with a plain IRC client on ergo, and reads the bridge's CPU and memory from
// /proc. Prints JSON figures on stdout and progress on stderr. Not a test: nothing here fails on speed.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { benchKit, cpuMs, cpuSplitMs, memoryAfterGc, threadCpuMs, pct, progress, rssKb, sleep, until } from './common.mjs';

const [dir, synPort, ircPort, asPort] = process.argv.slice(2);
const USERS = Number(process.env.BENCH_USERS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5000);
// BENCH_PHASES: a comma list of idle,m2i,ceiling,latency,users,i2m,floor,startup (default: all), e.g. to profile one path
const PHASES = new Set((process.env.BENCH_PHASES ?? 'idle,m2i,ceiling,latency,users,i2m,floor,startup').split(',').map((x) => x.trim()));
const require = createRequire(new URL('../packages/irc/package.json', import.meta.url));
const IRC = require('irc-framework');
const Database = createRequire(new URL('../packages/core/package.json', import.meta.url))('better-sqlite3');
const { hs, reg, healthy, matrix, registerUser, pushTransaction, event, startBridge: spawnBridge } = benchKit({ dir, synPort, asPort, txnPrefix: 'bench' });
const results = {};
const execFileP = promisify(execFile);

// ---------------------------------------------------------------- the bridge process
let bridge;
const INSPECT_PORT = Number(asPort) + 100; // the bridge's inspector, used only to measure memory after a full GC
function startBridge() { bridge = spawnBridge({ inspectPort: INSPECT_PORT }); return bridge; }

// ---------------------------------------------------------------- the IRC side
function ircReader(nick, channel) {
  const c = new IRC.Client({ auto_reconnect: false });
  const seen = [];
  c.on('privmsg', (e) => { if (e.target === channel) seen.push({ nick: e.nick, message: e.message, at: performance.now() + performance.timeOrigin }); });
  return new Promise((resolve) => {
    c.once('registered', () => { c.join(channel); c.once('join', () => resolve({ client: c, seen })); });
    c.connect({ host: '127.0.0.1', port: Number(ircPort), nick });
  });
}

// ---------------------------------------------------------------- run
progress('starting the bridge');
let t0 = Date.now();
startBridge();
await until(healthy, 'the bridge to start', 60_000);
results.startupEmptyStoreMs = Date.now() - t0;

const ownerToken = await registerUser('benchowner');
const botId = `@${reg.sender_localpart}:localhost`;
const { room_id: roomId } = await matrix('POST', '/_matrix/client/v3/createRoom', ownerToken, { preset: 'public_chat', invite: [botId] });
await until(async () => (await matrix('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, ownerToken)).joined[botId], 'the bot to join');
await matrix('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/link1`, ownerToken, { msgtype: 'm.text', body: '!trestle link irc bench/#bench' });
const reader = await ircReader('reader', '#bench');
await until(async () => (await matrix('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=5`, ownerToken)).chunk.some((e) => String(e.content?.body).startsWith('Linked')), 'the link');

// 1. 100 senders connect (one message each); the throughput and latency runs use them
const pid = bridge.pid;
let cpu0 = 0;
const SENDERS = 100;
async function connectUsers(from, to) {
  for (let i = from; i < to; i += 50) {
    await pushTransaction(Array.from({ length: Math.min(50, to - i) }, (_, k) => event(roomId, `@u${i + k}:localhost`, `hello ${i + k}`)));
  }
  await until(() => reader.seen.filter((m) => m.message.startsWith('hello ')).length >= to, 'all users to say hello', 600_000);
}
progress(`connecting ${SENDERS} Matrix users (the senders)`);
await connectUsers(0, SENDERS);

// 1b. what the bridge costs doing nothing, with the senders connected (timers, keep-alives)
if (PHASES.has('idle')) {
  progress('idle CPU with the senders connected (5 s)');
  await sleep(2000);
  const c = cpuMs(pid), s = performance.now();
  await sleep(5000);
  results.idleCpuPercent = +((100 * (cpuMs(pid) - c)) / (performance.now() - s)).toFixed(2);
}

// 2. throughput: MESSAGES from 100 senders, transactions of 50
if (PHASES.has('m2i')) {
progress(`Matrix → IRC throughput: ${MESSAGES} messages from 100 senders`);
const before = reader.seen.length;
cpu0 = cpuMs(pid);
const split0 = cpuSplitMs(pid);
const ergoPid = Number(readFileSync(`${dir}/ergo/ergo.pid`, 'utf8'));
const ergo0 = cpuMs(ergoPid);
t0 = performance.now();
for (let i = 0; i < MESSAGES; i += 50) {
  await pushTransaction(Array.from({ length: Math.min(50, MESSAGES - i) }, (_, k) => event(roomId, `@u${(i + k) % 100}:localhost`, `t ${i + k}`)));
}
await until(() => reader.seen.length - before >= MESSAGES, 'all throughput messages', 600_000);
const secs = (performance.now() - t0) / 1000;
const tput = reader.seen.slice(before).map((m) => Number(m.message.split(' ')[1]));
results.matrixToIrc = {
  connectedUsers: SENDERS, messages: MESSAGES, seconds: +secs.toFixed(2), msgPerSec: Math.round(MESSAGES / secs),
  cpuMsPerMessage: +((cpuMs(pid) - cpu0) / MESSAGES).toFixed(3),
  userCpuMsPerMessage: +((cpuSplitMs(pid).user - split0.user) / MESSAGES).toFixed(3),
  systemCpuMsPerMessage: +((cpuSplitMs(pid).system - split0.system) / MESSAGES).toFixed(3),
  outOfOrder: tput.filter((n, i) => i > 0 && n < tput[i - 1]).length,
  // the IRC server's own CPU for the same messages: each is written to every member of the channel
  ergoCpuMsPerMessage: +((cpuMs(ergoPid) - ergo0) / MESSAGES).toFixed(3),
};
}

// 2b. the ceiling: ergo alone, no bridge. Two raw clients alternate in a channel with as many other
// members as the bench channel, each message sent only after the previous one's echo: the fastest
// any bridge can go that keeps the order of messages from different senders (ergo handles each
// connection separately, so only an answer proves a line was processed before the next is sent).
if (PHASES.has('ceiling')) {
  progress(`the IRC server's ceiling: 2,000 ordered messages in a channel of ${SENDERS + 2} members, no bridge`);
  const raw = (nick, onLine) => new Promise((resolve) => {
    const s = connect(Number(ircPort), '127.0.0.1');
    let buf = '', joined = false;
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i); buf = buf.slice(i + 1);
        if (l.startsWith('PING')) s.write(`PONG${l.slice(4)}\r\n`);
        if (!joined && / 366 /.test(l)) { joined = true; resolve(s); }
        onLine?.(l);
      }
    });
    s.write(`CAP REQ :echo-message labeled-response message-tags\r\nCAP END\r\nNICK ${nick}\r\nUSER ${nick} 0 * :x\r\nJOIN #ceiling\r\n`);
  });
  let answered;
  const onEcho = (l) => { if (l.includes('label=')) answered?.(); };
  const members = [];
  for (let i = 0; i < SENDERS; i++) members.push(await raw(`ceil${i}`));
  const senders = [await raw('ceilA', onEcho), await raw('ceilB', onEcho)];
  const ergoPid = Number(readFileSync(`${dir}/ergo/ergo.pid`, 'utf8'));
  const e0 = cpuMs(ergoPid), t = performance.now();
  for (let i = 0; i < 2000; i++) {
    const echoed = new Promise((r) => (answered = r));
    senders[i % 2].write(`@label=c${i} PRIVMSG #ceiling :ceiling ${i}\r\n`);
    await echoed;
  }
  const s2 = (performance.now() - t) / 1000;
  results.ircServerCeiling = { channelMembers: SENDERS + 2, orderedMsgPerSec: Math.round(2000 / s2), ergoCpuMsPerMessage: +((cpuMs(ergoPid) - e0) / 2000).toFixed(3) };
  for (const c of [...members, ...senders]) c.end('QUIT\r\n');
}

// 3. latency at a paced 500 msg/s for 5 s (transactions of 5 every 10 ms)
if (PHASES.has('latency')) {
progress('Matrix → IRC latency at a paced 500 msg/s');
// a quiet start: the ceiling phase's 102 clients have just quit, and ergo may still be busy with
// that (and with its garbage after 2,000 messages to 102 members), which is not the bridge's latency
await sleep(2000);
const lat0 = reader.seen.length;
const sent = new Map();
const paceStart = performance.now();
for (let tick = 0; tick < 500; tick++) {
  const due = paceStart + tick * 10;
  const wait = due - performance.now();
  if (wait > 0) await sleep(wait);
  const evs = Array.from({ length: 5 }, (_, k) => event(roomId, `@u${(tick * 5 + k) % 100}:localhost`, `l ${tick * 5 + k}`));
  const at = performance.now() + performance.timeOrigin;
  for (const e of evs) sent.set(e.content.body, at);
  void pushTransaction(evs);
}
await until(() => reader.seen.length - lat0 >= 2500, 'all latency messages', 300_000);
const lats = reader.seen.slice(lat0).map((m) => m.at - sent.get(m.message)).filter((x) => Number.isFinite(x));
results.matrixToIrcLatencyMs = { connectedUsers: SENDERS, rate: 500, p50: +pct(lats, 50).toFixed(1), p99: +pct(lats, 99).toFixed(1), max: +Math.max(...lats).toFixed(1) };
}

// 3b. the rest of the users connect, measuring time and memory per user; then Matrix → IRC again with all of them in the channel
if (USERS > SENDERS && PHASES.has('users')) {
  progress(`connecting ${USERS - SENDERS} more Matrix users (${USERS} in all)`);
  await sleep(1000);
  const rssBefore = rssKb(pid);
  const memBefore = await memoryAfterGc(INSPECT_PORT);
  t0 = Date.now();
  await connectUsers(SENDERS, USERS);
  results.connectUsers = { users: USERS - SENDERS, seconds: (Date.now() - t0) / 1000 };
  await sleep(2000);
  results.memoryPerConnectedUserKB = Math.round((rssKb(pid) - rssBefore) / (USERS - SENDERS)); // RSS, garbage included
  const memAfter = await memoryAfterGc(INSPECT_PORT);
  // after a full garbage collection: what each connected user really keeps
  results.memoryPerConnectedUserAfterGcKB = {
    heap: +((memAfter.heapUsedKB - memBefore.heapUsedKB) / (USERS - SENDERS)).toFixed(1),
    rss: +((memAfter.rssKB - memBefore.rssKB) / (USERS - SENDERS)).toFixed(1),
  };
  results.bridgeRssMB = Math.round(rssKb(pid) / 1024);
  progress(`Matrix → IRC throughput with ${USERS} users in the channel: 1000 messages`);
  const b2 = reader.seen.length;
  const c2 = cpuMs(pid);
  const t2 = performance.now();
  for (let i = 0; i < 1000; i += 50) {
    await pushTransaction(Array.from({ length: 50 }, (_, k) => event(roomId, `@u${(i + k) % 100}:localhost`, `t2 ${i + k}`)));
  }
  await until(() => reader.seen.length - b2 >= 1000, 'the second throughput run', 600_000);
  const s2 = (performance.now() - t2) / 1000;
  results.matrixToIrcAllUsersInChannel = { connectedUsers: USERS, messages: 1000, msgPerSec: Math.round(1000 / s2), cpuMsPerMessage: +((cpuMs(pid) - c2) / 1000).toFixed(3) };
}

// 4. IRC → Matrix: 10 IRC clients, 500 messages; CPU of the bridge and order on Matrix
if (PHASES.has('i2m')) {
progress('IRC → Matrix: 500 messages from 10 IRC users (Synapse takes ~30-50 msg/s, so this takes a while)');
const talkers = [];
for (let i = 0; i < 10; i++) talkers.push(await ircReader(`talker${i}`, '#bench'));
await sleep(1000);
cpu0 = cpuMs(pid);
const i2mSplit0 = cpuSplitMs(pid), i2mThreads0 = threadCpuMs(pid);
for (let i = 0; i < 500; i++) talkers[i % 10].client.say('#bench', `i2m ${i}`);
// the order ergo gave the channel (10 connections have no order among themselves), as a plain client saw it
const channelOrder = () => reader.seen.filter((m) => m.message.startsWith('i2m ')).map((m) => m.message);
const timeline = await until(async () => {
  const r = await matrix('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=1000`, ownerToken);
  const bodies = r.chunk.reverse().map((e) => String(e.content?.body ?? '')).filter((b) => b.startsWith('i2m '));
  return bodies.length >= 500 ? bodies : undefined;
}, 'the IRC messages on Matrix', 600_000);
await until(() => channelOrder().length >= 500, 'the reader to see all IRC messages');
const seenOrder = channelOrder();
const posOnIrc = new Map(seenOrder.map((b, i) => [b, i]));
const positions = timeline.map((b) => posOnIrc.get(b));
// each talker's own messages must keep their order (talker = n % 10)
const perTalker = Array.from({ length: 10 }, (_, t) => timeline.map((b) => Number(b.split(' ')[1])).filter((n) => n % 10 === t));
results.ircToMatrix = {
  messages: 500, bridgeCpuSecondsPer1000: +(((cpuMs(pid) - cpu0) / 500)).toFixed(3),
  userCpuSecondsPer1000: +((cpuSplitMs(pid).user - i2mSplit0.user) / 500).toFixed(3),
  systemCpuSecondsPer1000: +((cpuSplitMs(pid).system - i2mSplit0.system) / 500).toFixed(3),
  cpuMsByThread: Object.fromEntries(Object.entries(threadCpuMs(pid)).map(([k, v]) => [k, Math.round(v - (i2mThreads0[k] ?? 0))]).filter(([, v]) => v > 0)),
  outOfOrderPerSender: perTalker.reduce((a, xs) => a + xs.filter((n, i) => i > 0 && n < xs[i - 1]).length, 0),
  // against the order a plain client saw: ergo may fan out concurrent senders in different orders to different members
  outOfOrderVsAnotherClient: positions.filter((p, i) => i > 0 && p < positions[i - 1]).length,
};
for (const t of talkers) t.client.quit();
}
reader.client.quit();

// 4b. the floor under the IRC → Matrix figure: a bare process on the bridge's appservice port that
// only PUTs each message as a ghost and answers the transaction that brings it back, with our
// homeserver client and with node:http's (bench/i2m-floor.mjs); the bridge is stopped meanwhile
if (PHASES.has('floor')) {
  progress('IRC → Matrix floor: a bare process that only sends each message and answers its echo (500 each, two HTTP clients)');
  bridge.kill('SIGTERM');
  await new Promise((r) => bridge.once('exit', r));
  results.ircToMatrixFloor = {};
  for (const kind of ['lean', 'node-http']) {
    const { stdout } = await execFileP(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', `${dir}/prof`] : []), 'bench/i2m-floor.mjs', hs, asPort, reg.as_token, reg.hs_token, roomId, kind, '500']);
    const r = JSON.parse(stdout);
    results.ircToMatrixFloor[kind === 'lean' ? 'ourHttpClient' : 'nodeHttpClient'] = { cpuSecondsPer1000: r.cpuSecondsPer1000, userCpuSecondsPer1000: r.userCpuSecondsPer1000, systemCpuSecondsPer1000: r.systemCpuSecondsPer1000, msgPerSec: r.msgPerSec };
  }
  progress('IRC → Matrix floor by pace: the same exchange against a stand-in homeserver answering after 0, 5 and 22 ms');
  results.ircToMatrixFloor.ourHttpClientByHomeserverDelay = JSON.parse((await execFileP(process.execPath, ['bench/wake-pace.mjs', '500'])).stdout);
  startBridge();
  await until(healthy, 'the bridge to start again', 60_000);
}

// 5. start-up with 10,000 users in the store
if (PHASES.has('startup')) {
progress('start-up with 10,000 users in the store');
bridge.kill('SIGTERM');
await new Promise((r) => bridge.once('exit', r));
const db = new Database(`${dir}/bridge.db`);
const insG = db.prepare('INSERT OR IGNORE INTO ghosts (user_id, network, remote_user, display_name, registered, updated_at) VALUES (?, ?, ?, ?, 1, ?)');
const insU = db.prepare('INSERT OR IGNORE INTO irc_users (user_id, server, nick) VALUES (?, ?, ?)');
db.transaction(() => { for (let i = 0; i < 10_000; i++) { insG.run(`@irc_bench_g${i}:localhost`, 'irc', `bench/g${i}`, `g${i}`, Date.now()); insU.run(`@m${i}:localhost`, 'bench', `m${i}`); } })();
db.close();
t0 = Date.now();
startBridge();
await until(healthy, 'the bridge to restart', 60_000);
results.startupWith10kUsersMs = Date.now() - t0;
}
bridge.kill('SIGTERM');
await new Promise((r) => bridge.once('exit', r));

console.log(JSON.stringify(results, null, 2));
process.exit(0);
