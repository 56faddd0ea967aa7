/**
 * The IRCv3 capabilities a server offers a Matrix user's connection (lean.ts), with their values
 * (`draft/multiline` → `max-bytes=4096,max-lines=100`): listed by `CAP LS` (over as many lines as
 * the server likes), added by `CAP NEW`, taken back by `CAP DEL` (cap-notify).
 *
 * At most `MAX_CAPS` names are kept: a server that lists capabilities without end (endless `CAP LS`
 * continuation lines, `CAP NEW` after `CAP NEW`) fills no memory, with a warning once.
 */
import type { Logger } from '@trestle/core';
import { capEntries } from './ircline.js';

/** The most capabilities kept of a server's offer (ergo offers about 30). */
const MAX_CAPS = 100;

export class OfferedCaps {
  private readonly offered = new Map<string, string>();
  /** More were offered than are kept (said once per connection). */
  private full = false;

  constructor(private readonly log: Logger) {}

  /** A new connection: offered anew. */
  clear(): void { this.offered.clear(); this.full = false; }

  has(name: string): boolean { return this.offered.has(name); }
  /** The capability's value ('' for none), if offered. */
  get(name: string): string | undefined { return this.offered.get(name); }

  /** Offered (a `CAP LS` or `CAP NEW` list): returns the names kept. */
  add(list: string | undefined): string[] {
    const names: string[] = [];
    for (const [name, value] of capEntries(list ?? '')) {
      if (!this.offered.has(name) && this.offered.size >= MAX_CAPS) {
        if (!this.full) this.log.warn('the IRC server offers too many capabilities; ignoring the rest', { kept: this.offered.size });
        this.full = true;
        break;
      }
      this.offered.set(name, value);
      names.push(name);
    }
    return names;
  }

  /** Taken back (a `CAP DEL` list), except `keep` ones: returns the names taken back. */
  remove(list: string | undefined, keep: readonly string[]): string[] {
    const names = capEntries(list ?? '').map(([name]) => name).filter((name) => !keep.includes(name));
    for (const name of names) this.offered.delete(name);
    return names;
  }

  /** The limits `draft/multiline` is offered with (none given: undefined each). */
  multiline(): { maxBytes?: number; maxLines?: number } {
    const out: { maxBytes?: number; maxLines?: number } = {};
    for (const kv of (this.offered.get('draft/multiline') ?? '').split(',')) {
      const [k, v] = kv.split('=');
      if (k === 'max-bytes' && Number(v) > 0) out.maxBytes = Number(v);
      if (k === 'max-lines' && Number(v) > 0) out.maxLines = Number(v);
    }
    return out;
  }
}
