// The pool of Matrix users' connections in the real IrcServer (server.ts; no socket is opened: the
// connections are made, not connected): a user asking for their connection (to send, to join) is
// active now, so maxClients evicts someone else; an evicted connection is replaced, not reused; the
// server's `flood` settings reach each connection.
import { describe, expect, it } from 'vitest';
import type { NetworkContext } from '@trestle/core';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';
import type { LeanConnection } from '../../../packages/irc/src/lean.js';
import { IrcServer } from '../../../packages/irc/src/server.js';
import type { IrcStore } from '../../../packages/irc/src/store.js';

/** What the pool told users (`notifyUser`), in order. */
let told: { userId: string; text: string }[] = [];

function pool(server: Record<string, unknown>): IrcServer {
  const cfg = ircConfigSchema.parse({ servers: { net: { host: 'irc.invalid', ...server } } }).servers['net']!;
  const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
  told = [];
  const notifyUser = (userId: string, text: string): Promise<void> => { told.push({ userId, text }); return Promise.resolve(); };
  const ctx = { log, kv: new Map(), portals: { forChat: () => [], all: () => [] }, notifyUser } as unknown as NetworkContext;
  const store = { user: () => ({}), setWantedNick() {}, setHeldNick() {} } as unknown as IrcStore;
  return new IrcServer('net', cfg, ctx, store);
}

describe('IrcServer pool', () => {
  it('counts asking for a connection as activity: maxClients evicts the user who has not sent since', () => {
    const s = pool({ maxClients: 2 });
    const a = s.clientFor('@a:x', 'A'), b = s.clientFor('@b:x', 'B');
    a.lastActive = Date.now() - 60_000; // a's last message a minute ago
    b.lastActive = Date.now() - 30_000;
    expect(s.clientFor('@a:x', 'A')).toBe(a); // a sends now (its room's queue routes to it)
    s.clientFor('@c:x', 'C');
    expect([...s.clients.keys()].sort()).toEqual(['@a:x', '@c:x']);
    expect(b.state).toBe('closed');
    // b is told why, and how to come back; nobody else is
    expect(told).toEqual([{ userId: '@b:x', text: expect.stringMatching(/closed to make room for another user .*at most 2 IRC connections.*your next message or command connects you again/) }]);
    s.stop();
  });

  it('gives an evicted user a new connection, not the closed one', () => {
    const s = pool({ maxClients: 1 });
    const a = s.clientFor('@a:x', 'A');
    s.clientFor('@b:x', 'B'); // evicts a
    const again = s.clientFor('@a:x', 'A');
    expect(again).not.toBe(a);
    expect(a.state).toBe('closed');
    expect(s.clients.get('@a:x')).toBe(again);
    s.stop();
  });

  it("passes the server's flood settings to each connection", () => {
    const s = pool({ flood: { burstLines: 4, linesPerSecond: 1.5 } });
    const opts = (c: LeanConnection): unknown => (c as unknown as { opts: { flood?: unknown } }).opts.flood;
    expect(opts(s.clientFor('@a:x', 'A'))).toEqual({ enabled: true, burstLines: 4, linesPerSecond: 1.5 });
    expect(opts(s.relayClient())).toEqual({ enabled: true, burstLines: 4, linesPerSecond: 1.5 });
    s.stop();
  });
});
