import type { Db } from './database.js';

/** Admin rooms: each Matrix user's DM with the bridge bot, where commands and notices go. */
export class AdminRoomStore {
  private readonly cache = new Map<string, string>();
  constructor(private readonly db: Db) {
    for (const r of db.prepare('SELECT user_id, room_id FROM admin_rooms').all() as { user_id: string; room_id: string }[]) {
      this.cache.set(r.user_id, r.room_id);
    }
  }
  roomOf(userId: string): string | undefined { return this.cache.get(userId); }
  isAdminRoom(roomId: string): string | undefined {
    for (const [u, r] of this.cache) if (r === roomId) return u;
    return undefined;
  }
  /** The user has no admin room any more (they left it, or the bot was removed): the next notice makes one. */
  forget(userId: string): void {
    this.db.prepare('DELETE FROM admin_rooms WHERE user_id = ?').run(userId);
    this.cache.delete(userId);
  }
  set(userId: string, roomId: string): void {
    this.db.prepare('INSERT INTO admin_rooms (user_id, room_id) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id')
      .run(userId, roomId);
    this.cache.set(userId, roomId);
  }
}
