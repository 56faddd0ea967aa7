import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { LoginHold, parseSts, StsPolicy, type StoredSts, type StsStore } from '../../../packages/irc/src/sts.js';

class MemoryStore implements StsStore {
  readonly rows = new Map<string, StoredSts>();
  writes = 0;
  stsPolicy(host: string): StoredSts | undefined { return this.rows.get(host); }
  setStsPolicy(host: string, p: StoredSts): void { this.rows.set(host, p); this.writes++; }
  dropStsPolicy(host: string): void { this.rows.delete(host); }
}

const plain = { port: 6667, tls: false };
function policy(store: StsStore, clock: { t: number }, configured = plain, host = 'IRC.Example.org'): StsPolicy {
  return new StsPolicy(host, configured, store, silentLogger, () => clock.t);
}

describe('parseSts (the sts capability value)', () => {
  it.each([
    ['port=6697', { port: 6697 }],
    ['duration=2592000', { durationS: 2592000 }],
    ['port=6697,duration=300', { port: 6697, durationS: 300 }],
    ['unknown,duration=31536000,foo=bar', { durationS: 31536000 }],
    ['duration=0', { durationS: 0 }],
    ['preload,port=7000', { port: 7000 }],
    ['port=0', {}],
    ['port=70000', {}],
    ['port=66a', {}],
    ['port=', {}],
    ['duration=-5', {}],
    ['duration=1.5', {}],
    ['', {}],
  ])('%j → %j', (value, expected) => {
    expect(parseSts(value)).toEqual(expected);
  });
});

describe('StsPolicy', () => {
  it('goes where the config says until the server asks for TLS', () => {
    const clock = { t: 1_000_000 };
    expect(policy(new MemoryStore(), clock).route()).toEqual(plain);
  });

  it('an upgrade policy heard in plaintext sends this run\'s connections to the TLS port, and stores nothing', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    const p = policy(store, clock);
    expect(p.offered('port=6697', plain)).toBe(6697);
    expect(p.route()).toEqual({ port: 6697, tls: true });
    expect(store.rows.size).toBe(0);
    // a restarted bridge has only what is stored: plaintext again (and upgraded again when told)
    expect(policy(store, clock).route()).toEqual(plain);
  });

  it('ignores a duration heard in plaintext: anyone on the path could have said it', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    const p = policy(store, clock);
    expect(p.offered('duration=86400', plain)).toBeUndefined();
    expect(store.rows.size).toBe(0);
    expect(p.route()).toEqual(plain);
  });

  it('stores a persistence policy heard over TLS, by lower-cased host, and keeps to it across restarts until it runs out', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    const p = policy(store, clock);
    p.offered('port=6697', plain);
    expect(p.offered('duration=3600,port=6697', { port: 6697, tls: true })).toBeUndefined();
    expect(store.rows.get('irc.example.org')).toEqual({ port: 6697, durationS: 3600, expiresAt: 1_000_000 + 3_600_000 });
    const restarted = policy(store, clock, plain, 'irc.example.ORG');
    expect(restarted.route()).toEqual({ port: 6697, tls: true });
    clock.t += 3_600_000; // run out
    expect(restarted.route()).toEqual(plain);
  });

  it('duration=0 over TLS withdraws the stored policy', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    store.setStsPolicy('irc.example.org', { port: 6697, durationS: 3600, expiresAt: clock.t + 3_600_000 });
    const p = policy(store, clock);
    expect(p.route()).toEqual({ port: 6697, tls: true });
    p.offered('duration=0', { port: 6697, tls: true });
    expect(store.rows.size).toBe(0);
    expect(policy(store, clock).route()).toEqual(plain);
  });

  it('a thousand connections hearing the same policy write it once a minute, not a thousand times', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    const p = policy(store, clock);
    for (let i = 0; i < 1000; i++) p.offered('duration=3600', { port: 6697, tls: true });
    expect(store.writes).toBe(1);
    clock.t += 60_000;
    p.offered('duration=3600', { port: 6697, tls: true });
    expect(store.writes).toBe(2);
    expect(store.rows.get('irc.example.org')!.expiresAt).toBe(clock.t + 3_600_000);
    // a changed policy is written at once
    p.offered('duration=7200', { port: 6697, tls: true });
    expect(store.writes).toBe(3);
  });

  it('a TLS connection that closes starts the policy\'s duration again (rescheduling on disconnect)', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    const p = policy(store, clock);
    p.offered('duration=3600', { port: 6697, tls: true });
    clock.t += 3_000_000; // 50 minutes on: 10 left
    p.closed({ port: 6697, tls: true });
    expect(store.rows.get('irc.example.org')!.expiresAt).toBe(clock.t + 3_600_000);
    // a plaintext connection closing says nothing about the policy
    clock.t += 120_000;
    const before = store.writes;
    p.closed(plain);
    expect(store.writes).toBe(before);
  });

  it('at stop, reschedules once and then writes nothing (the sockets close after the store does)', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    const p = policy(store, clock);
    p.offered('duration=3600', { port: 6697, tls: true });
    clock.t += 1000; // well within a minute of the last write: a plain close would not write
    p.stop({ port: 6697, tls: true });
    expect(store.rows.get('irc.example.org')!.expiresAt).toBe(clock.t + 3_600_000);
    const writes = store.writes;
    clock.t += 120_000;
    p.closed({ port: 6697, tls: true });
    p.offered('duration=0', { port: 6697, tls: true });
    expect(store.writes).toBe(writes);
    expect(store.rows.size).toBe(1);
  });

  it('changes nothing for a server configured with tls: it is secure already', () => {
    const store = new MemoryStore(), clock = { t: 1_000_000 };
    const configured = { port: 7000, tls: true };
    const p = policy(store, clock, configured);
    expect(p.offered('duration=3600', configured)).toBeUndefined();
    expect(store.rows.size).toBe(0);
    expect(p.route()).toEqual(configured);
  });
});

describe('LoginHold (a server password waiting for the answer to CAP LS)', () => {
  it('sends nothing while holding, then everything in order at release; nothing at all once dropped; passes through when not begun', () => {
    const sent: string[] = [];
    const h = new LoginHold(60_000);
    expect(h.hold(() => sent.push('early'))).toBe(false); // not begun: the caller sends itself
    h.begin();
    expect(h.hold(() => sent.push('PASS'))).toBe(true);
    h.hold(() => sent.push('NICK'));
    expect(sent).toEqual([]);
    h.release();
    expect(sent).toEqual(['PASS', 'NICK']);
    expect(h.holding).toBe(false);
    h.begin();
    h.hold(() => sent.push('never'));
    h.drop();
    h.release();
    expect(sent).toEqual(['PASS', 'NICK']);
  });

  it('lets the login go by itself after its wait, for a server that never answers CAP LS', async () => {
    const sent: string[] = [];
    const h = new LoginHold(30);
    h.begin();
    h.hold(() => sent.push('PASS'));
    await new Promise((r) => setTimeout(r, 80));
    expect(sent).toEqual(['PASS']);
    expect(h.holding).toBe(false);
  });
});
