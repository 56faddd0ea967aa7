/**
 * Prometheus metrics (prom-client), one registry per bridge instance so several bridges can run in
 * one process (tests) without clashing.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The Matrix event types counted by name; see {@link matrixTypeLabel}. */
const COUNTED_TYPES = new Set([
  'm.room.message', 'm.sticker', 'm.reaction', 'm.room.redaction', 'm.room.member', 'm.room.topic', 'm.room.name',
  'm.room.avatar', 'm.room.power_levels', 'm.room.join_rules', 'm.room.encrypted', 'm.room.encryption', 'm.room.tombstone',
  'm.room.create', 'm.room.canonical_alias', 'm.room.history_visibility', 'm.room.guest_access', 'm.room.server_acl',
  'm.room.pinned_events', 'm.typing', 'm.receipt', 'm.presence',
]);

/**
 * The `type` label of a Matrix event: its type if it is one of the spec's common ones, else
 * "other". Anyone in a room the bridge is in chooses the types they send, and each label value is
 * a time series kept for good: 10,000 made-up types grew /metrics from 1 KB to 650 KB.
 */
export function matrixTypeLabel(type: string): string {
  return COUNTED_TYPES.has(type) ? type : 'other';
}

export class BridgeMetrics {
  readonly registry = new Registry();
  readonly transactions = new Counter({
    name: 'trestle_appservice_transactions_total', help: 'Appservice transactions received, by outcome',
    labelNames: ['outcome'] as const, registers: [this.registry],
  });
  readonly eventsIn = new Counter({
    name: 'trestle_events_in_total', help: 'Events received, by source network ("matrix" for the homeserver) and type',
    labelNames: ['network', 'type'] as const, registers: [this.registry],
  });
  readonly eventsOut = new Counter({
    name: 'trestle_events_out_total', help: 'Events delivered, by destination network ("matrix" for the homeserver) and type',
    labelNames: ['network', 'type'] as const, registers: [this.registry],
  });
  readonly sendFailures = new Counter({
    name: 'trestle_send_failures_total', help: 'Delivery attempts that failed, by destination and whether the item was given up',
    labelNames: ['network', 'final'] as const, registers: [this.registry],
  });
  readonly malformed = new Counter({
    name: 'trestle_malformed_events_total', help: 'Malformed events skipped', registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'trestle_queue_depth', help: 'Items waiting in all per-room queues', registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'trestle_delivery_latency_seconds', help: 'Time from receiving an event to delivering it, by direction',
    labelNames: ['direction'] as const, registers: [this.registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
