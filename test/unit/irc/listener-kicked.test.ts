// The bridge's listening connection kicked from a bridged channel (server.ts): the rooms are told,
// and it joins again after a wait that grows while it keeps failing or being kicked. The real
// IrcServer and irc-framework client, fed lines; joins are answered by the test, no socket is opened.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NetworkContext } from '@trestle/core';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';
import { rejoinDelayMs } from '../../../packages/irc/src/connection.js';
import { IrcServer } from '../../../packages/irc/src/server.js';
import type { IrcStore } from '../../../packages/irc/src/store.js';

describe('rejoinDelayMs', () => {
  it.each([[1, 3_000], [2, 6_000], [3, 12_000], [8, 384_000], [9, 600_000], [50, 600_000], [0, 3_000]])('attempt %i → %i ms', (attempt, ms) => {
    expect(rejoinDelayMs(attempt)).toBe(ms);
  });
});

function bridge(portals: Record<string, string[]>) {
  const cfg = ircConfigSchema.parse({ servers: { net: { host: 'irc.invalid', botNick: 'bridge' } } }).servers['net']!;
  const notices: [string, string][] = [];
  const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
  const ctx = {
    log, kv: new Map(),
    remote: new Proxy({}, { get: () => async () => undefined }),
    matrix: { notice: async (roomId: string, text: string) => { notices.push([roomId, text]); } },
    portals: { forChat: (c: string) => (portals[c] ?? []).map((roomId) => ({ roomId, kind: 'plumbed' })), all: () => [] },
  } as unknown as NetworkContext;
  const server = new IrcServer('net', cfg, ctx, { ghostKey: (_s: string, nick: string) => nick.toLowerCase() } as unknown as IrcStore);
  const joins: string[] = [];
  let answer: () => Promise<void> = async () => undefined;
  server.listener.join = async (channel: string) => { joins.push(channel); await answer(); };
  const conn = server.listener.client.connection as unknown as { addReadBuffer(line: string): void };
  const feed = (...lines: string[]): void => { for (const l of lines) conn.addReadBuffer(`${l}\r\n`); };
  return { server, notices, joins, feed, refuse: (why?: string) => { answer = async () => { if (why) throw new Error(`cannot join #chan: ${why}`); }; } };
}

/** Let the join's promise settle (its rejection handler runs a few microtasks later). */
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await Promise.resolve(); };

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe('the listener kicked from a bridged channel', () => {
  it('tells the rooms once, and joins again after 3 s', async () => {
    const b = bridge({ 'net/#chan': ['!a:x', '!b:x'] });
    b.feed(':bridge!u@h JOIN #chan', ':op!o@h KICK #chan bridge :out');
    await settle();
    expect(b.notices.map(([room]) => room)).toEqual(['!a:x', '!b:x']);
    expect(b.notices[0]![1]).toContain('kicked from #chan on net by op (out)');
    expect(b.joins).toEqual([]);
    vi.advanceTimersByTime(3_000);
    expect(b.joins).toEqual(['#chan']);
    b.server.stop();
  });

  it('a refused rejoin is told once (cannotJoin) and tried again, waiting longer', async () => {
    const b = bridge({ 'net/#chan': ['!a:x'] });
    b.refuse('banned');
    b.feed(':op!o@h KICK #chan bridge');
    vi.advanceTimersByTime(3_000);
    await settle();
    expect(b.notices.map(([, text]) => text.slice(0, 40))).toEqual(['⚠ The bridge was kicked from #chan on ne', '⚠ The bridge cannot join #chan on net (b']);
    expect(b.notices[0]![1]).toContain('by op,'); // a kick without a reason gives none
    vi.advanceTimersByTime(5_999);
    expect(b.joins).toHaveLength(1);
    vi.advanceTimersByTime(1);
    await settle();
    expect(b.joins).toHaveLength(2);
    expect(b.notices).toHaveLength(2); // not told again
    b.refuse();
    vi.advanceTimersByTime(12_000);
    await settle();
    expect(b.joins).toHaveLength(3);
    vi.advanceTimersByTime(3_600_000);
    expect(b.joins).toHaveLength(3); // back in: no more tries
    b.server.stop();
  });

  it('kicked again soon after coming back: the wait doubles', async () => {
    const b = bridge({ 'net/#chan': ['!a:x'] });
    b.feed(':op!o@h KICK #chan bridge :one');
    vi.advanceTimersByTime(3_000);
    b.feed(':op!o@h KICK #chan bridge :two');
    await settle();
    expect(b.notices[1]![1]).toContain('joins again in 6 s');
    vi.advanceTimersByTime(5_999);
    expect(b.joins).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(b.joins).toHaveLength(2);
    b.server.stop();
  });

  it('a channel that is not bridged (or no longer) is not joined again', async () => {
    const portals: Record<string, string[]> = { 'net/#chan': ['!a:x'] };
    const b = bridge(portals);
    b.feed(':op!o@h KICK #elsewhere bridge :out', ':op!o@h KICK #chan bridge :out');
    delete portals['net/#chan']; // unlinked meanwhile
    vi.advanceTimersByTime(60_000);
    expect(b.joins).toEqual([]);
    expect(b.notices.map(([room]) => room)).toEqual(['!a:x']);
    b.server.stop();
  });

  it('someone else kicked: nothing to rejoin, nobody told', () => {
    const b = bridge({ 'net/#chan': ['!a:x'] });
    b.feed(':op!o@h KICK #chan alice :out');
    vi.advanceTimersByTime(60_000);
    expect(b.joins).toEqual([]);
    expect(b.notices).toEqual([]);
    b.server.stop();
  });
});
