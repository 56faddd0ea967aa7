/**
 * The IRC bridge's Prometheus metrics, on core's registry (served at `/metrics`). Everything is
 * read from the servers' state when scraped, so nothing is counted on the message paths.
 *
 * - `trestle_irc_clients{server, state}`: Matrix users' IRC connections, by state
 *   (`connected`; `connecting`, registering now; `disconnected`, waiting to reconnect or not opened yet).
 * - `trestle_irc_listener_connected{server}`: 1 while the bridge's own listening connection is up.
 * - `trestle_irc_reconnects_total{server}`: connections lost without being closed on purpose,
 *   each followed by a reconnect (the listener's and the Matrix users').
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { IrcServer } from './server.js';

export type ClientState = 'connected' | 'connecting' | 'disconnected';

/** How many connections are in each reported state (a connection's own states, folded into three). */
export function countByState(states: Iterable<string>): Record<ClientState, number> {
  const out: Record<ClientState, number> = { connected: 0, connecting: 0, disconnected: 0 };
  for (const s of states) out[s === 'connected' ? 'connected' : s === 'connecting' ? 'connecting' : 'disconnected']++;
  return out;
}

export function registerIrcMetrics(registry: Registry, servers: () => Iterable<IrcServer>): void {
  new Gauge({
    name: 'trestle_irc_clients', help: "Matrix users' IRC connections, by server and state (connected, connecting, disconnected)",
    labelNames: ['server', 'state'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const s of servers()) {
        const counts = countByState([...s.clients.values()].map((c) => c.state));
        for (const [state, n] of Object.entries(counts)) this.set({ server: s.key, state }, n);
      }
    },
  });
  new Gauge({
    name: 'trestle_irc_listener_connected', help: "1 while the bridge's own listening IRC connection is registered, by server",
    labelNames: ['server'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const s of servers()) this.set({ server: s.key }, s.listener.state === 'connected' ? 1 : 0);
    },
  });
  new Counter({
    name: 'trestle_irc_reconnects_total', help: 'IRC connections lost (not closed on purpose) and reconnected, by server',
    labelNames: ['server'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const s of servers()) this.inc({ server: s.key }, s.reconnects);
    },
  });
}
