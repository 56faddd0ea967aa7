/**
 * Matrix typing → IRCv3 `typing` client tag (`@+typing=active|paused|done TAGMSG <target>`).
 *
 * Matrix says "typing" once and "stopped" once; IRC receivers forget an `active` after 6 seconds
 * unless it is repeated, and senders must not repeat it more often than every 3 seconds. So while
 * a Matrix user types, `active` is repeated every {@link REFRESH_MS}; the stop becomes `done`. A
 * Matrix client that never says it stopped (the homeserver times typing out after 30 s or so)
 * is shown as `paused` after {@link MAX_ACTIVE_MS}. A message sent counts as done: IRC clients
 * clear typing when the message arrives, so no `done` follows it.
 *
 * Only connections that exist and are in the channel take part: typing never opens a connection.
 */
import { ircLower } from './ids.js';
import type { LeanConnection } from './lean.js';

export const REFRESH_MS = 3_000;
export const MAX_ACTIVE_MS = 35_000;

export type TypingState = 'active' | 'paused' | 'done';

interface Typing { conn: LeanConnection; target: string; since: number; timer: NodeJS.Timeout }

export class TypingRelay {
  private readonly typing = new Map<string, Typing>();

  constructor(private readonly onError: (err: Error) => void) {}

  private static key(userId: string, server: string, target: string): string { return `${userId}\u0000${server}\u0000${ircLower(target)}`; }

  private send(conn: LeanConnection, target: string, state: TypingState): void {
    conn.send('TAGMSG', target, '', { '+typing': state }).catch((err: Error) => this.onError(err));
  }

  /** A Matrix user started (`true`) or stopped typing in the chat `target` of `server`. */
  set(userId: string, server: string, conn: LeanConnection, target: string, typing: boolean): void {
    const key = TypingRelay.key(userId, server, target);
    const was = this.typing.get(key);
    if (typing) {
      if (was) return; // already active and being refreshed
      const since = Date.now();
      const timer = setInterval(() => {
        if (Date.now() - since >= MAX_ACTIVE_MS) { this.stop(key); this.send(conn, target, 'paused'); return; }
        this.send(conn, target, 'active');
      }, REFRESH_MS);
      timer.unref();
      this.typing.set(key, { conn, target, since, timer });
      this.send(conn, target, 'active');
    } else if (was) {
      this.stop(key);
      this.send(was.conn, was.target, 'done');
    }
  }

  /** The user sent a message to `target`: that ends their typing there, without a `done`. */
  sent(userId: string, server: string, target: string): void {
    this.stop(TypingRelay.key(userId, server, target));
  }

  private stop(key: string): void {
    const t = this.typing.get(key);
    if (!t) return;
    clearInterval(t.timer);
    this.typing.delete(key);
  }

  clear(): void {
    for (const t of this.typing.values()) clearInterval(t.timer);
    this.typing.clear();
  }
}
