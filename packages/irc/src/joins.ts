/**
 * JOINs of one connection waiting for the server's answer, by folded channel: one map instead of a
 * listener per JOIN, since a connection may join dozens of channels at once (a start, a reconnect).
 * Shared by the listening connection (connection.ts) and the Matrix users' ones (lean.ts).
 */
import { DeliveryError } from '@trestle/core';

type Waiter = (why?: string) => void;

export class JoinWaits {
  private readonly waiting = new Map<string, Set<Waiter>>();

  /**
   * Send a JOIN (`send`) and wait for its answer: resolves once joined; rejects, permanently, with
   * why the server refused (after `refused()`, e.g. to forget the channel), or after `timeoutMs`.
   */
  join(lc: string, channel: string, send: () => void, refused: () => void, timeoutMs = 15_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = (why) => {
        clearTimeout(timer);
        if (why === undefined) { resolve(); return; }
        refused();
        reject(new DeliveryError(`cannot join ${channel}: ${why}`, true));
      };
      const timer = setTimeout(() => {
        this.waiting.get(lc)?.delete(waiter);
        reject(new DeliveryError(`joining ${channel} timed out`));
      }, timeoutMs);
      const set = this.waiting.get(lc) ?? new Set<Waiter>();
      set.add(waiter);
      this.waiting.set(lc, set);
      send();
    });
  }

  /** The server answered a JOIN of this (folded) channel: joined (no reason), or refused (why). */
  answered(lc: string, why?: string): void {
    const set = this.waiting.get(lc);
    this.waiting.delete(lc);
    for (const w of set ?? []) w(why);
  }
}
