// What the pace alone does to CPU per message. The same exchange as bench/i2m-floor.mjs (one PUT
// of an event as a ghost; the transaction that brings it back, parsed and answered) against a
// stand-in homeserver in a child process that answers each PUT after a fixed delay and then pushes
// the echo. Nothing changes between runs but that delay, so any change in CPU per message is the
// cost of waking up more often per message (cold caches, an idle CPU brought back), not of work.
// Synapse here takes ~20-25 ms per send in one room, the last delay below.
// Usage: node bench/wake-pace.mjs [messages per delay]   prints one JSON object; or, as the child:
//        node bench/wake-pace.mjs --homeserver <port> <appservice port> <delay ms>
import { fork } from 'node:child_process';
import { Agent, createServer, request } from 'node:http';
import { HomeserverHttp } from '../packages/core/dist/matrix/http.js';

const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));

if (process.argv[2] === '--homeserver') {
  const [asPort, delay] = process.argv.slice(3).map(Number);
  const agent = new Agent({ keepAlive: true });
  let txn = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`{"event_id":"$${'e'.repeat(43)}"}`);
      const body = JSON.stringify({ events: [{ type: 'm.room.message', room_id: '!bench:localhost', sender: '@irc_bench_pace:localhost',
        event_id: `$${'e'.repeat(43)}`, origin_server_ts: Date.now(), content: { msgtype: 'm.text', body: 'pace' }, unsigned: { age: 1 } }] });
      request({ port: asPort, host: '127.0.0.1', agent, method: 'PUT', path: `/_matrix/app/v1/transactions/${++txn}`,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (r) => r.resume())
        .on('error', () => undefined).end(body);
    }, delay));
  });
  process.send(await listen(server));
} else {
  const N = Number(process.argv[2] ?? 500);
  let echoes = 0;
  let onEcho = () => undefined;
  const as = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      echoes += JSON.parse(Buffer.concat(chunks).toString('utf8')).events.length;
      onEcho();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 }).end('{}');
    });
  });
  const asPort = await listen(as);
  const results = {};
  for (const delay of [0, 5, 22]) {
    process.stderr.write(`[wake-pace] ${N} messages, the homeserver answering after ${delay} ms\n`);
    const child = fork(new URL(import.meta.url).pathname, ['--homeserver', String(asPort), String(delay)]);
    const hsPort = await new Promise((resolve) => child.once('message', resolve));
    const http = new HomeserverHttp(`http://127.0.0.1:${hsPort}`, 'token');
    const send = async (n) => {
      for (let i = 0; i < n; i++) {
        const r = await http.send('PUT', `/_matrix/client/v3/rooms/%21bench%3Alocalhost/send/m.room.message/${delay}-${i}?user_id=%40irc_bench_pace%3Alocalhost`,
          JSON.stringify({ msgtype: 'm.text', body: `pace ${i}` }), 'application/json');
        JSON.parse(r.text);
      }
    };
    await send(100); // warm
    const seen = echoes;
    const c0 = process.cpuUsage(), t0 = performance.now();
    await send(N);
    await new Promise((resolve) => { onEcho = () => { if (echoes >= seen + N) resolve(); }; onEcho(); });
    const c = process.cpuUsage(c0);
    results[`${delay}ms`] = { msgPerSec: Math.round(N / ((performance.now() - t0) / 1000)), cpuSecondsPer1000: +((c.user + c.system) / 1000 / N).toFixed(3) };
    http.close();
    child.kill();
  }
  as.close();
  console.log(JSON.stringify(results));
}
