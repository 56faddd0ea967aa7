// The floor under IRC → Matrix CPU: a process that does only what every bridged message needs from
// the homeserver — one PUT of the event as a ghost, and the answer to the transaction that brings the
// event back (Synapse sends a ghost's events to its appservice) — with no IRC, no store, no queue.
// Run by bench/irc.mjs while the bridge is stopped, on the bridge's appservice port and token.
// Prints one JSON object: CPU per 1,000 messages of this process, for the HTTP client given.
// Usage: node bench/i2m-floor.mjs <homeserver url> <as port> <as token> <hs token> <room id> <lean|node-http> <messages>
import { createServer } from 'node:http';
import { Agent, request } from 'node:http';
import { HomeserverHttp } from '../packages/core/dist/matrix/http.js';

const [hs, asPort, asToken, hsToken, roomId, kind, count] = process.argv.slice(2);
const N = Number(count);
const ghost = `@irc_bench_floor${kind.replace(/[^a-z]/g, '')}:localhost`;

/** node:http's client with a keep-alive agent, as the bridge used before its own client. */
function nodeHttp() {
  const url = new URL(hs);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  return {
    send: (method, path, body) => new Promise((resolve, reject) => {
      const headers = { authorization: `Bearer ${asToken}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body ?? '') };
      const req = request({ hostname: url.hostname, port: url.port, agent, method, path, headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(body ?? '');
    }),
    close: () => agent.destroy(),
  };
}
const http = kind === 'lean' ? new HomeserverHttp(hs, asToken) : nodeHttp();
const as = (method, path, body) => http.send(method, `${path}${path.includes('?') ? '&' : '?'}user_id=${encodeURIComponent(ghost)}`, body === undefined ? undefined : JSON.stringify(body));

// the appservice side: parse each transaction, count our echoes, answer {}
let echoes = 0;
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'PUT' && req.headers.authorization === `Bearer ${hsToken}`) {
      try {
        for (const ev of JSON.parse(Buffer.concat(chunks).toString('utf8')).events ?? []) {
          if (ev.sender === ghost && String(ev.content?.body).startsWith('floor ')) echoes++;
        }
      } catch { /* not JSON: answered all the same */ }
    }
    const body = req.method === 'PUT' ? '{}' : '{"errcode":"M_NOT_FOUND","error":"floor bench"}';
    res.writeHead(req.method === 'PUT' ? 200 : 404, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
  });
});
await new Promise((r) => server.listen(Number(asPort), '127.0.0.1', r));

await http.send('POST', '/_matrix/client/v3/register', JSON.stringify({ type: 'm.login.application_service', username: ghost.slice(1).split(':')[0], inhibit_login: true }));
const joined = await as('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
if (joined.status !== 200) throw new Error(`the floor ghost could not join: ${joined.status} ${joined.text}`);

async function sendAll(prefix, n) {
  for (let i = 0; i < n; i++) {
    const r = await as('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${prefix}-${Date.now()}-${i}`, { msgtype: 'm.text', body: `floor ${prefix} ${i}` });
    if (r.status !== 200) throw new Error(`send refused: ${r.status} ${r.text}`);
    JSON.parse(r.text);
  }
}
const waitEchoes = async (n) => { const until = Date.now() + 120_000; while (echoes < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20)); };

await sendAll('warm', 50); // the JIT and the connections warm, as in a bridge that has been running
await waitEchoes(50);
await new Promise((r) => setTimeout(r, 500));
const c0 = process.cpuUsage();
const t0 = performance.now();
await sendAll('measured', N);
await waitEchoes(50 + N);
const c = process.cpuUsage(c0);
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({
  client: kind, messages: N, echoesSeen: echoes - 50, msgPerSec: Math.round(N / seconds),
  cpuSecondsPer1000: +((c.user + c.system) / 1000 / N).toFixed(3),
  userCpuSecondsPer1000: +(c.user / 1000 / N).toFixed(3), systemCpuSecondsPer1000: +(c.system / 1000 / N).toFixed(3),
}));
http.close();
server.close();
process.exit(0);
