import type { Db } from './database.js';

export interface MappedEvent {
  network: string;
  remoteChat: string;
  remoteId: string;
  part: number;
  roomId: string;
  eventId: string;
  sender: string;
  body?: string;
}

interface Row {
  network: string; remote_chat: string; remote_id: string; part: number;
  room_id: string; event_id: string; sender: string; body: string | null;
}

const toMapped = (r: Row): MappedEvent => ({
  network: r.network, remoteChat: r.remote_chat, remoteId: r.remote_id, part: r.part,
  roomId: r.room_id, eventId: r.event_id, sender: r.sender, ...(r.body != null ? { body: r.body } : {}),
});

/**
 * The message map: (network, remote chat, remote message id, part, room) ↔ Matrix event id.
 * Written for both directions; read by edits, redactions, replies and reactions.
 */
export class MessageStore {
  private readonly insert;
  private readonly byEvent;
  private readonly byRemote;
  private readonly byRemoteInRoom;
  private readonly anyOfRemote;
  private readonly dropBody;
  private readonly rechat;

  constructor(private readonly db: Db) {
    this.insert = db.prepare(
      `INSERT OR REPLACE INTO message_map (network, remote_chat, remote_id, part, room_id, event_id, sender, body, created_at)
       VALUES (@network, @remoteChat, @remoteId, @part, @roomId, @eventId, @sender, @body, @createdAt)`,
    );
    this.byEvent = db.prepare('SELECT * FROM message_map WHERE event_id = ? ORDER BY network, part');
    this.byRemote = db.prepare('SELECT * FROM message_map WHERE network = ? AND remote_chat = ? AND remote_id = ? ORDER BY room_id, part');
    this.byRemoteInRoom = db.prepare(
      'SELECT * FROM message_map WHERE network = ? AND remote_chat = ? AND remote_id = ? AND room_id = ? ORDER BY part',
    );
    this.anyOfRemote = db.prepare('SELECT 1 FROM message_map WHERE network = ? AND remote_chat = ? AND remote_id = ? LIMIT 1');
    this.dropBody = db.prepare('UPDATE message_map SET body = NULL WHERE event_id = ? AND body IS NOT NULL');
    this.rechat = db.prepare('UPDATE OR REPLACE message_map SET remote_chat = ? WHERE network = ? AND remote_chat = ?');
  }

  /** A remote chat has a new id (renamed): its messages are found under it. */
  moveChat(network: string, from: string, to: string): void {
    if (from !== to) this.rechat.run(to, network, from);
  }

  /**
   * The event was deleted (redacted on Matrix, or deleted on the remote side): its text is not
   * kept, nor quoted again (a reply to it would quote it to the remote side, a deleted password
   * and all). The mapping stays: a late edit or reaction still finds what it belongs to.
   */
  forgetBody(eventId: string): void {
    this.dropBody.run(eventId);
  }

  add(m: MappedEvent): void {
    this.insert.run({ ...m, body: m.body ?? null, createdAt: Date.now() });
  }

  /** Every remote message an event maps to (one per portal/network it reached). */
  forEvent(eventId: string): MappedEvent[] {
    return (this.byEvent.all(eventId) as Row[]).map(toMapped);
  }

  /**
   * Is this remote id mapped at all: any part, any room, either direction (a Matrix message of
   * several remote lines maps each line's id as another part of the same event, so no part number
   * is assumed)?
   */
  has(network: string, chat: string, remoteId: string): boolean {
    return this.anyOfRemote.get(network, chat, remoteId) !== undefined;
  }

  /** Every Matrix event of a remote message, all parts, optionally in one room. */
  forRemote(network: string, chat: string, remoteId: string, roomId?: string): MappedEvent[] {
    const rows = roomId ? this.byRemoteInRoom.all(network, chat, remoteId, roomId) : this.byRemote.all(network, chat, remoteId);
    return (rows as Row[]).map(toMapped);
  }
}
