/**
 * The few Matrix client-server calls the Discord network makes itself, as the bridge bot with the
 * appservice token, because core's network contract does not offer them yet: making a space and
 * writing `m.space.child` / `m.space.parent`, reading a room's power levels (for @everyone),
 * inviting to a space, unbanning a ghost, and a notice in a room. Configured by `networks.<id>.matrix`.
 * When core hands networks a Matrix handle for these, this file and that config section go.
 */
import { readRegistration } from '@trestle/core';

/** An error answer of the homeserver, with its errcode. */
export class HomeserverError extends Error {
  constructor(message: string, readonly errcode: string | undefined, readonly status: number) {
    super(message);
    this.name = 'HomeserverError';
  }
}

export interface PowerLevelsContent {
  users?: Record<string, number>;
  users_default?: number;
  notifications?: { room?: number };
}

export class MatrixApi {
  readonly botUserId: string;
  private readonly asToken: string;
  private txn = 0;

  constructor(private readonly homeserverUrl: string, registrationPath: string, readonly domain: string) {
    const reg = readRegistration(registrationPath); // throws a RegistrationError that says what is wrong
    this.asToken = reg.as_token;
    this.botUserId = `@${reg.sender_localpart}:${domain}`;
  }

  async request<T = Record<string, unknown>>(method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.homeserverUrl.replace(/\/+$/, '')}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.asToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try { json = text ? (JSON.parse(text) as Record<string, unknown>) : {}; } catch { /* not JSON: the status says enough */ }
    if (!res.ok) {
      const errcode = typeof json['errcode'] === 'string' ? json['errcode'] : undefined;
      throw new HomeserverError(`${method} ${path.split('?')[0]}: ${errcode ?? `HTTP ${res.status}`} ${typeof json['error'] === 'string' ? json['error'] : ''}`.trim(),
        errcode, res.status);
    }
    return json as T;
  }

  private room(roomId: string): string { return `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`; }

  async createRoom(body: Record<string, unknown>): Promise<string> {
    return (await this.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', body)).room_id;
  }

  async putState(roomId: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<void> {
    await this.request('PUT', `${this.room(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`, content);
  }

  /** A state event's content, or undefined when the room has none. */
  async getState<T = Record<string, unknown>>(roomId: string, type: string, stateKey = ''): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', `${this.room(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`);
    } catch (err) {
      if (err instanceof HomeserverError && err.errcode === 'M_NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** A user's power level in a room, as the spec computes it from m.room.power_levels. */
  async powerLevel(roomId: string, userId: string): Promise<number> {
    const pl = await this.getState<PowerLevelsContent>(roomId, 'm.room.power_levels');
    return pl?.users?.[userId] ?? pl?.users_default ?? 0;
  }

  async invite(roomId: string, userId: string): Promise<void> {
    await this.request('POST', `${this.room(roomId)}/invite`, { user_id: userId });
  }

  async unban(roomId: string, userId: string): Promise<void> {
    await this.request('POST', `${this.room(roomId)}/unban`, { user_id: userId });
  }

  async join(roomId: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
  }

  async notice(roomId: string, text: string): Promise<void> {
    await this.request('PUT', `${this.room(roomId)}/send/m.room.message/trestle-discord-${Date.now()}-${this.txn++}`, { msgtype: 'm.notice', body: text });
  }
}
