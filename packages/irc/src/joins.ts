/**
 * JOINs of one connection waiting for the server's answer, by folded channel: one map instead of a
 * listener per JOIN, since a connection may join dozens of channels at once (a start, a reconnect).
 * Shared by the listening connection (connection.ts) and the Matrix users' ones (lean.ts).
 */
import { DeliveryError } from '@trestle/core';
import { ircLower, isChannel } from './ids.js';
import { JOIN_ERRORS } from './numerics.js';

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

  /**
   * The server answered a JOIN of this (folded) channel: joined (no reason), or refused (why).
   * True if a JOIN of it was waiting; an answer nobody waits for changes nothing.
   */
  answered(lc: string, why?: string): boolean {
    const set = this.waiting.get(lc);
    this.waiting.delete(lc);
    for (const w of set ?? []) w(why);
    return (set?.size ?? 0) > 0; // (a set whose JOINs all timed out is left behind empty)
  }

  /**
   * An error numeric, `<numeric> <me> <target> :text`: if it can refuse a JOIN (JOIN_ERRORS) and
   * names a channel a JOIN of which waits, it is that JOIN's refusal (true). Some of those numerics
   * answer other commands too (403 a message to a channel that does not exist, 477 one to a channel
   * only the logged-in may speak in, 437 a NICK): with no JOIN of that channel waiting, they are
   * not a JOIN's, and change nothing here. (One answering a line to the channel written just
   * before its JOIN would still be taken for the JOIN's: the bridge joins before it writes there.)
   */
  refusal(numeric: string, params: readonly string[]): boolean {
    const why = Object.hasOwn(JOIN_ERRORS, numeric) ? JOIN_ERRORS[numeric] : undefined;
    const channel = params[1];
    if (why === undefined || channel === undefined || !isChannel(channel)) return false;
    return this.answered(ircLower(channel), why);
  }
}
