/**
 * Resting sockets: how the Matrix users' lean connections (lean.ts) read little and seldom.
 *
 * Every Matrix user's connection hears every line of its channels, nearly all of it someone else's
 * chatter it drops. So a plain-TCP connection that waits for no answer *rests* after a read: its
 * socket is paused (the kernel keeps what arrives) and resumed later, when one read takes all that
 * came meanwhile. One timer per rest length serves every socket resting that long.
 *
 * How long: REST_MS after a read with something for the connection, doubling after each read of
 * nothing but chatter, up to REST_MAX_MS. A quiet channel's lines then cost one read per few lines
 * instead of one each; a connection that writes (and so waits for an answer) is woken at once.
 */
import type { Socket } from 'node:net';

export const REST_MS = 20;
export const REST_MAX_MS = 320;

/** One read buffer for every plain-TCP connection: each read's callback is done with it before the next read. */
export const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Resting sockets, by how long they rest: one timer per length (there are five). */
const resting = new Map<number, Set<Socket>>();
const restingFor = new Map<Socket, number>();

/** Leave the socket unread for `ms` (the caller has returned false from its onread callback, which pauses it). */
export function rest(sock: Socket, ms: number): void {
  let set = resting.get(ms);
  if (!set) {
    set = new Set();
    resting.set(ms, set);
    setTimeout(() => {
      resting.delete(ms);
      for (const s of set!) { restingFor.delete(s); if (!s.destroyed) s.resume(); }
    }, ms);
  }
  set.add(sock);
  restingFor.set(sock, ms);
}

/** Read the socket again now, if it rests. */
export function wake(sock: Socket | undefined): void {
  const ms = sock && restingFor.get(sock);
  if (!ms) return;
  restingFor.delete(sock);
  resting.get(ms)?.delete(sock);
  sock.resume();
}
