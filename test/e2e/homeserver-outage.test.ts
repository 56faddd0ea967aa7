/**
 * The homeserver stopped and started again under a running IRC bridge: what IRC said meanwhile
 * reaches the room once Synapse is back, in order and exactly once, however many delivery attempts
 * failed, and Matrix messages flow again at once. The suite's own Synapse is stopped with the
 * harness's scripts and started again on the same data; afterAll starts it whatever happened, as
 * the e2e files that follow run against it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrestleBridge } from '@trestle/core';
import { MatrixUser, messagesOf } from '../harness/matrix-user.js';
import { e2e, sleep, until } from './env.js';
import { body, ghost, IrcUsers, plumbedRoom, startIrcBridge } from './irc-env.js';

const run = promisify(execFile);
let bridge: TrestleBridge;
let alice: MatrixUser;
let botId: string;
const users = new IrcUsers();

/** The suite's Synapse: its work dir (from e2e.sh), port, and the bridge's registration it loads. */
function synapse(): { work: string; port: string; registration: string } {
  const work = process.env['TRESTLE_E2E_SYNAPSE_WORK'];
  if (!work) throw new Error('TRESTLE_E2E_SYNAPSE_WORK is not set: run through test/harness/e2e.sh');
  const cfg = YAML.parse(readFileSync(e2e.config, 'utf8')) as { appservice: { registration: string } };
  return { work, port: new URL(e2e.synapseUrl).port, registration: cfg.appservice.registration };
}

// Not execFileSync: the bridge runs in this process and must keep trying while Synapse stops and starts.
async function synapseDown(): Promise<void> {
  const s = synapse();
  await run('bash', ['test/harness/synapse-down.sh', s.work, s.port]);
}

/** Start the same Synapse on its kept data (a no-op when it is running). */
async function synapseUp(): Promise<void> {
  const s = synapse();
  await run('bash', ['test/harness/synapse-up.sh', s.work, s.port], {
    env: { ...process.env, SYNAPSE_APPSERVICE_FILES: s.registration, SYNAPSE_SERVER_NAME: 'localhost' },
  });
}

/** Stop Synapse, run `during`, start Synapse again, even when `during` throws. */
async function withSynapseDown(during: () => Promise<void>): Promise<void> {
  await synapseDown();
  try { await during(); } finally { await synapseUp(); }
}

/** Failed delivery attempts into Matrix so far: retried ones (`final: false`) and given-up ones. */
async function matrixFailures(): Promise<{ retried: number; gaveUp: number }> {
  const { values } = await bridge.metrics.sendFailures.get();
  const count = (final: string): number => values.filter((v) => v.labels['network'] === 'matrix' && v.labels['final'] === final).reduce((n, v) => n + v.value, 0);
  return { retried: count('false'), gaveUp: count('true') };
}

beforeAll(async () => {
  // Short waits so the outage costs seconds, not minutes, yet sees several failed attempts; the
  // retry budget is the suite's small one (3), which an outage of seconds outlasts: it must not
  // count attempts that could not reach the homeserver at all.
  bridge = await startIrcBridge({}, { maxAttempts: 3, initialBackoffMs: 200, maxBackoffMs: 1000 });
  botId = bridge.matrix.botUserId;
  alice = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `hsalice${Date.now()}`, { displayName: 'Hsalice' });
});

afterAll(async () => {
  await synapseUp(); // whatever happened above: the next e2e file needs it
  users.quitAll();
  await bridge?.stop();
});

describe('homeserver outage', () => {
  it('delivers what IRC said while Synapse was down, in order and exactly once, once it is back', async () => {
    const roomId = await plumbedRoom(alice, botId, '#hsdown');
    const bob = await users.add('hsbob', ['#hsdown']);
    bob.say('#hsdown', 'before the outage');
    await alice.waitForEvent(roomId, (e) => body(e) === 'before the outage' && e.sender === ghost('hsbob'));
    const cat = await users.add('hscat', ['#hsdown']); // never spoke: her ghost is made after the outage
    const before = await matrixFailures();
    const lines = Array.from({ length: 10 }, (_, i) => `during the outage ${i + 1}`);

    await withSynapseDown(async () => {
      for (const l of lines) bob.say('#hsdown', l);
      await sleep(500); // ergo relays each connection on its own: a pause keeps cat's line after bob's
      cat.say('#hsdown', 'cat during the outage');
      await until(async () => (await matrixFailures()).retried - before.retried >= 3,
        'several failed attempts to deliver into Matrix', 20_000);
      await sleep(3000); // and some more, with the backoff at its cap
      expect((await matrixFailures()).gaveUp).toBe(before.gaveUp);
      expect(await bridge.matrix.reachable()).toBe(false); // what the queue's probe asks while rooms wait
    });
    expect(await bridge.matrix.reachable()).toBe(true); // so the waiting rooms retry now, not at the end of their backoff

    bob.say('#hsdown', 'after the outage');
    const expected = ['before the outage', ...lines, 'cat during the outage', 'after the outage'];
    const fromIrc = (evs: Parameters<typeof messagesOf>[0]): string[] =>
      messagesOf(evs).filter((e) => e.sender.startsWith('@irc_test_')).map(body);
    await alice.waitForTimeline(roomId, (evs) => fromIrc(evs).includes('after the outage'), 60_000);
    await sleep(1500); // time for a repeat to show, if any came
    const timeline = await alice.timeline(roomId);
    expect(fromIrc(timeline)).toEqual(expected);
    expect(messagesOf(timeline).find((e) => body(e) === 'cat during the outage')?.sender).toBe(ghost('hscat'));
    expect((await matrixFailures()).gaveUp).toBe(before.gaveUp);
    expect(messagesOf(timeline).filter((e) => body(e).startsWith('⚠'))).toEqual([]); // nobody was told of a failure
    const health = await (await fetch(`http://127.0.0.1:${bridge.config.appservice.port}/health`)).json() as { queueDepth: number };
    expect(health.queueDepth).toBe(0); // and nothing is left waiting
  }, 180_000);

  it('bridges a Matrix message sent right after Synapse is back to IRC, and the answer back', async () => {
    const roomId = await plumbedRoom(alice, botId, '#hsback');
    const dan = await users.add('hsdan', ['#hsback']);
    await alice.sendText(roomId, 'before the restart');
    await dan.waitFor((m) => m.message === 'before the restart');
    // the bridge holds keep-alive connections to Synapse now; the restart closes them all
    await withSynapseDown(() => sleep(1000));
    await alice.sendText(roomId, 'right after the restart');
    const seen = await dan.waitFor((m) => m.message === 'right after the restart', 60_000);
    expect(seen.nick).toBe('Hsalice[m]');
    dan.say('#hsback', 'answer after the restart');
    const ev = await alice.waitForEvent(roomId, (e) => body(e) === 'answer after the restart');
    expect(ev.sender).toBe(ghost('hsdan'));
  }, 180_000);
});
