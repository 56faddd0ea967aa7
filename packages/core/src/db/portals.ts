import type { PortalInfo, PortalRef } from '../network/contract.js';
import type { Db } from './database.js';

interface Row { room_id: string; network: string; remote_chat: string; kind: PortalRef['kind']; name: string | null; data: string }

const toInfo = (r: Row): PortalInfo => ({
  roomId: r.room_id, network: r.network, remoteChat: r.remote_chat, kind: r.kind,
  ...(r.name != null ? { name: r.name } : {}), data: JSON.parse(r.data) as Record<string, unknown>,
});

/** Told of every link made (or made again) and every link removed, after the store has it. Must not throw or block. */
export interface PortalObserver {
  linked(p: PortalInfo): void;
  unlinked(p: PortalInfo): void;
}

/** Portals: Matrix room ↔ remote chat. A room may have several; so may a chat. Cached in memory. */
export class PortalStore {
  private byRoom = new Map<string, PortalInfo[]>();
  private byChat = new Map<string, PortalInfo[]>();
  private observer?: PortalObserver;

  constructor(private readonly db: Db) {
    for (const r of db.prepare('SELECT * FROM portals ORDER BY id').all() as Row[]) this.index(toInfo(r));
  }

  private static chatKey(network: string, chat: string): string { return `${network}\u0000${chat}`; }

  private index(p: PortalInfo): void {
    const rk = p.roomId, ck = PortalStore.chatKey(p.network, p.remoteChat);
    this.byRoom.set(rk, [...(this.byRoom.get(rk) ?? []).filter((x) => !(x.network === p.network && x.remoteChat === p.remoteChat)), p]);
    this.byChat.set(ck, [...(this.byChat.get(ck) ?? []).filter((x) => x.roomId !== p.roomId), p]);
  }

  /** Whom to tell of links made and removed (one observer: the bridge info). */
  observe(observer: PortalObserver): void { this.observer = observer; }

  forRoom(roomId: string): PortalInfo[] { return this.byRoom.get(roomId) ?? []; }
  forChat(network: string, chat: string): PortalInfo[] { return this.byChat.get(PortalStore.chatKey(network, chat)) ?? []; }
  all(): PortalInfo[] { return [...this.byRoom.values()].flat(); }

  link(p: Omit<PortalInfo, 'data'> & { data?: Record<string, unknown> }): PortalInfo {
    const info: PortalInfo = { ...p, data: p.data ?? {} };
    this.db.prepare(
      `INSERT INTO portals (room_id, network, remote_chat, kind, name, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (network, remote_chat, room_id) DO UPDATE SET kind = excluded.kind, name = excluded.name, data = excluded.data`,
    ).run(info.roomId, info.network, info.remoteChat, info.kind, info.name ?? null, JSON.stringify(info.data), Date.now());
    this.index(info);
    this.observer?.linked(info);
    return info;
  }

  unlink(network: string, chat: string, roomId: string): boolean {
    const res = this.db.prepare('DELETE FROM portals WHERE network = ? AND remote_chat = ? AND room_id = ?').run(network, chat, roomId);
    const gone = this.forRoom(roomId).find((x) => x.network === network && x.remoteChat === chat);
    const ck = PortalStore.chatKey(network, chat);
    this.byRoom.set(roomId, this.forRoom(roomId).filter((x) => !(x.network === network && x.remoteChat === chat)));
    this.byChat.set(ck, this.forChat(network, chat).filter((x) => x.roomId !== roomId));
    if (gone && res.changes > 0) this.observer?.unlinked(gone);
    return res.changes > 0;
  }
}
