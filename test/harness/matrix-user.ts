/**
 * A plain Matrix client for tests: a real user on the test Synapse, registered with the shared
 * secret, talking the client-server API with fetch. Nothing of the bridge is used here.
 */
import { createHmac, randomBytes } from 'node:crypto';

export interface MatrixEventJson {
  type: string;
  event_id: string;
  sender: string;
  room_id?: string;
  state_key?: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
  redacts?: string;
  unsigned?: Record<string, unknown>;
}

export class MatrixUser {
  private txn = 0;
  constructor(readonly baseUrl: string, readonly userId: string, readonly accessToken: string) {}

  /** Register a new user through Synapse's shared-secret admin API. */
  static async register(baseUrl: string, sharedSecret: string, localpart: string, opts: { admin?: boolean; displayName?: string } = {}): Promise<MatrixUser> {
    const nonceRes = await fetch(`${baseUrl}/_synapse/admin/v1/register`);
    const { nonce } = (await nonceRes.json()) as { nonce: string };
    const password = randomBytes(12).toString('hex');
    const admin = opts.admin ?? false;
    const mac = createHmac('sha1', sharedSecret).update(`${nonce}\0${localpart}\0${password}\0${admin ? 'admin' : 'notadmin'}`).digest('hex');
    const res = await fetch(`${baseUrl}/_synapse/admin/v1/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ nonce, username: localpart, password, admin, mac, ...(opts.displayName ? { displayname: opts.displayName } : {}) }),
    });
    const body = (await res.json()) as { user_id?: string; access_token?: string; error?: string };
    if (!res.ok || !body.access_token || !body.user_id) throw new Error(`register ${localpart}: HTTP ${res.status} ${JSON.stringify(body)}`);
    return new MatrixUser(baseUrl, body.user_id, body.access_token);
  }

  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.accessToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    const json = (text ? JSON.parse(text) : {}) as T & { errcode?: string; error?: string };
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: HTTP ${res.status} ${text}`), { status: res.status, errcode: json.errcode });
    return json;
  }

  async createRoom(opts: Record<string, unknown> = {}): Promise<string> {
    const r = await this.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', ...opts });
    return r.room_id;
  }

  async join(roomIdOrAlias: string): Promise<string> {
    const r = await this.request<{ room_id: string }>('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomIdOrAlias)}`, {});
    return r.room_id;
  }

  async invite(roomId: string, userId: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, { user_id: userId });
  }

  async sendEvent(roomId: string, type: string, content: Record<string, unknown>): Promise<string> {
    const txn = `t${Date.now()}-${this.txn++}`;
    const r = await this.request<{ event_id: string }>('PUT',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/${encodeURIComponent(type)}/${txn}`, content);
    return r.event_id;
  }

  sendText(roomId: string, body: string, extra: Record<string, unknown> = {}): Promise<string> {
    return this.sendEvent(roomId, 'm.room.message', { msgtype: 'm.text', body, ...extra });
  }

  async redact(roomId: string, eventId: string, reason?: string): Promise<string> {
    const r = await this.request<{ event_id: string }>('PUT',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/r${Date.now()}-${this.txn++}`,
      reason ? { reason } : {});
    return r.event_id;
  }

  async setPowerLevel(roomId: string, userId: string, level: number): Promise<void> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`;
    const pl = await this.request<{ users?: Record<string, number> }>('GET', path);
    await this.request('PUT', path, { ...pl, users: { ...(pl.users ?? {}), [userId]: level } });
  }

  /** The room's timeline, oldest first (up to `limit` most recent events). */
  async timeline(roomId: string, limit = 1000): Promise<MatrixEventJson[]> {
    const r = await this.request<{ chunk: MatrixEventJson[] }>('GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=${limit}`);
    return r.chunk.reverse();
  }

  async getEvent(roomId: string, eventId: string): Promise<MatrixEventJson> {
    return this.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(eventId)}`);
  }

  async displayName(userId: string): Promise<string | undefined> {
    try {
      const r = await this.request<{ displayname?: string }>('GET', `/_matrix/client/v3/profile/${encodeURIComponent(userId)}`);
      return r.displayname;
    } catch { return undefined; }
  }

  async joinedMembers(roomId: string): Promise<string[]> {
    const r = await this.request<{ joined: Record<string, unknown> }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`);
    return Object.keys(r.joined);
  }

  /** Poll the timeline until `pred` holds for the events; returns them. */
  async waitForTimeline(roomId: string, pred: (events: MatrixEventJson[]) => boolean, timeoutMs = 30_000, limit = 1000): Promise<MatrixEventJson[]> {
    const until = Date.now() + timeoutMs;
    let last: MatrixEventJson[] = [];
    while (Date.now() < until) {
      last = await this.timeline(roomId, limit);
      if (pred(last)) return last;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`timeline of ${roomId} did not reach the expected state within ${timeoutMs} ms; last ${last.length} events: ` +
      JSON.stringify(last.slice(-5).map((e) => ({ type: e.type, sender: e.sender, body: e.content['body'] }))));
  }

  async waitForEvent(roomId: string, pred: (e: MatrixEventJson) => boolean, timeoutMs = 30_000): Promise<MatrixEventJson> {
    const events = await this.waitForTimeline(roomId, (evs) => evs.some(pred), timeoutMs);
    return events.find(pred)!;
  }
}

export const messagesOf = (events: MatrixEventJson[]): MatrixEventJson[] =>
  events.filter((e) => e.type === 'm.room.message' && !(e.content['m.relates_to'] as { rel_type?: string } | undefined)?.rel_type);
