/**
 * Which Matrix users' IRC connections to close. Pure: server.ts gives the facts and closes
 * what these return.
 *
 * - `maxClients`: opening one more connection past the limit closes the least recently active one.
 * - `idleTimeoutMinutes`: a connection with no activity for that long is closed, unless it is in
 *   a plumbed room's channel (and `idleInPlumbedRooms` is off, the default): there the IRC side
 *   counts on seeing the Matrix user, and a plumbed room is usually small enough to keep everyone.
 */

export interface PooledConnection {
  userId: string;
  /** Last time the user did something through the connection (ms since epoch). */
  lastActive: number;
  /** Is the connection in a channel bridged to a plumbed room? */
  inPlumbed: boolean;
}

/**
 * The users whose connections to close so that one more fits under `maxClients`, least recently
 * active first. `keep` (the user about to connect) is never chosen.
 */
export function toEvict(conns: readonly PooledConnection[], maxClients: number, keep?: string): string[] {
  const others = conns.filter((c) => c.userId !== keep);
  const excess = others.length + 1 - maxClients;
  if (excess <= 0) return [];
  return [...others].sort((a, b) => a.lastActive - b.lastActive).slice(0, excess).map((c) => c.userId);
}

/**
 * The users whose connections have been idle for `timeoutMinutes` at `now` (0 = never); those in a
 * plumbed room's channel only with `inPlumbed` (config `idleInPlumbedRooms`).
 */
export function toCloseIdle(conns: readonly PooledConnection[], timeoutMinutes: number, now: number, inPlumbed = false): string[] {
  if (timeoutMinutes <= 0) return [];
  const cutoff = now - timeoutMinutes * 60_000;
  return conns.filter((c) => (inPlumbed || !c.inPlumbed) && c.lastActive <= cutoff).map((c) => c.userId);
}
