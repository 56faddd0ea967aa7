// What both benchmarks share: the bridge as a child process, /proc readings, a Matrix client
// for set-up, and appservice transactions pushed the way a homeserver pushes them.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import YAML from 'yaml';
import { WebSocket } from 'ws';

export const progress = (m) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };

export async function until(fn, what, ms = 120_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** CPU time (user + system) of a process so far, in ms. */
export function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
}
/** The same, split: { user, system } in ms (system time includes the kernel's work for our sockets). */
export function cpuSplitMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { user: (Number(f[11]) * 1000) / 100, system: (Number(f[12]) * 1000) / 100 };
}
/** CPU ms so far per thread name (main thread, libuv pool, V8 workers...), summed by name. */
export function threadCpuMs(pid) {
  const out = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      const f = st.split(') ')[1].split(' ');
      out[name] = (out[name] ?? 0) + ((Number(f[11]) + Number(f[12])) * 1000) / 100;
    } catch { /* the thread ended */ }
  }
  return out;
}
/**
 * Memory of a bridge started with an inspector port, after a full garbage collection (through the
 * DevTools protocol, so the bridge needs no hook of its own): { heapUsedKB, rssKB }.
 */
export async function memoryAfterGc(inspectPort) {
  const [{ webSocketDebuggerUrl }] = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
  const ws = new WebSocket(webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  let seq = 0;
  const call = (method, params = {}) => new Promise((resolve) => {
    const id = ++seq;
    const onMsg = (data) => { const m = JSON.parse(String(data)); if (m.id === id) { ws.off('message', onMsg); resolve(m.result); } };
    ws.on('message', onMsg);
    ws.send(JSON.stringify({ id, method, params }));
  });
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage'); // a second pass frees what the first only unlinked
  const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
  ws.close();
  const m = JSON.parse(r.result.value);
  return { heapUsedKB: Math.round(m.heapUsed / 1024), rssKB: Math.round(m.rss / 1024) };
}

export function rssKb(pid) { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]); }

/** Helpers bound to one benchmark's homeserver, bridge and registration. */
export function benchKit({ dir, synPort, asPort, txnPrefix }) {
  const hs = `http://127.0.0.1:${synPort}`;
  const as = `http://127.0.0.1:${asPort}`;
  const reg = YAML.parse(readFileSync(`${dir}/registration.yaml`, 'utf8'));
  let txnSeq = 0, eventSeq = 0;
  return {
    hs, as, reg,
    /** `trestle start` as a child (with --cpu-prof when BENCH_PROFILE is set). */
    startBridge({ inspectPort } = {}) {
      return spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', `${dir}/prof`] : []),
        ...(inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : []),
        'packages/core/dist/cli/main.js', 'start', '--config', `${dir}/bridge.yaml`], { stdio: ['ignore', 'ignore', 'inherit'] });
    },
    async healthy() { try { return (await fetch(`${as}/health`)).ok; } catch { return false; } },
    async matrix(method, path, token, body) {
      const res = await fetch(hs + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
      const json = await res.json();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    },
    async registerUser(name) {
      const { nonce } = await (await fetch(`${hs}/_synapse/admin/v1/register`)).json();
      const password = randomBytes(8).toString('hex');
      const mac = createHmac('sha1', 'test-shared-secret').update(`${nonce}\0${name}\0${password}\0notadmin`).digest('hex');
      const res = await fetch(`${hs}/_synapse/admin/v1/register`, { method: 'POST', body: JSON.stringify({ nonce, username: name, password, mac, admin: false }) });
      return (await res.json()).access_token;
    },
    async pushTransaction(events) {
      const res = await fetch(`${as}/_matrix/app/v1/transactions/${txnPrefix}-${Date.now()}-${txnSeq++}`, {
        method: 'PUT', headers: { authorization: `Bearer ${reg.hs_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ events }),
      });
      if (!res.ok) throw new Error(`transaction refused: ${res.status}`);
    },
    event(roomId, sender, body) {
      return { type: 'm.room.message', room_id: roomId, sender, event_id: `$${txnPrefix}${eventSeq++}`, origin_server_ts: Date.now(), content: { msgtype: 'm.text', body } };
    },
  };
}
