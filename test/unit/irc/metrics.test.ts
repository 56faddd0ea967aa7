import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { countByState, registerIrcMetrics } from '../../../packages/irc/src/metrics.js';
import type { IrcServer } from '../../../packages/irc/src/server.js';

describe('IRC metrics', () => {
  it('folds connection states into connected, connecting and disconnected', () => {
    expect(countByState(['connected', 'connecting', 'reconnecting', 'idle', 'closed', 'connected'])).toEqual({ connected: 2, connecting: 1, disconnected: 3 });
    expect(countByState([])).toEqual({ connected: 0, connecting: 0, disconnected: 0 });
  });

  it('reads the servers when scraped', async () => {
    const registry = new Registry();
    const server = (key: string, states: string[], listener: string, reconnects: number): IrcServer =>
      ({ key, clients: new Map(states.map((state, i) => [`@u${i}:x`, { state }])), listener: { state: listener }, reconnects }) as unknown as IrcServer;
    const servers = [server('a', ['connected', 'reconnecting'], 'connected', 2), server('b', [], 'reconnecting', 5)];
    registerIrcMetrics(registry, () => servers);
    const text = await registry.metrics();
    expect(text).toContain('trestle_irc_clients{server="a",state="connected"} 1');
    expect(text).toContain('trestle_irc_clients{server="a",state="disconnected"} 1');
    expect(text).toContain('trestle_irc_clients{server="b",state="connected"} 0');
    expect(text).toContain('trestle_irc_listener_connected{server="a"} 1');
    expect(text).toContain('trestle_irc_listener_connected{server="b"} 0');
    expect(text).toContain('trestle_irc_reconnects_total{server="b"} 5');
  });
});
