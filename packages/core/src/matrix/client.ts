/**
 * The Matrix side of the bridge: client-server requests as the bot and as the ghosts (appservice
 * token with `?user_id=` masquerading), on plain node:http.
 *
 * This once went through matrix-appservice-bridge's intents. The bridge needs only a dozen simple
 * endpoints (register, join with the bot's invite as a fallback, leave, invite, kick, ban, profile,
 * upload, send); doing them here takes the library (a third of a second to load, and its own
 * per-request overhead) off start-up and off the path of every message. The library is still used
 * for generating registrations (registration.ts).
 *
 * Sends that must survive a crash use deterministic transaction ids (`sendWithTxn`): the
 * homeserver answers a repeated PUT with the event id it already created, so a retry after a
 * restart never duplicates a message.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../util/log.js';
import { HomeserverHttp, HttpExchangeError } from './http.js';
import type { RegistrationFile } from './registration.js';

export interface MatrixOptions {
  homeserverUrl: string;
  domain: string;
  registration: RegistrationFile;
  log: Logger;
}

/** An error from the homeserver, with its Matrix errcode and HTTP status when known. */
export class MatrixError extends Error {
  constructor(message: string, public readonly errcode?: string, public readonly status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MatrixError';
  }
  /** 4xx other than 429 will not get better by retrying (except a lost membership, handled by callers). */
  get permanent(): boolean {
    return this.status !== undefined && this.status >= 400 && this.status < 500 && this.status !== 429 && this.errcode !== 'M_FORBIDDEN';
  }
  /**
   * The homeserver is away: it did not answer at all, or a proxy in front of it answered 502, 503
   * or 504 without a Matrix error. Nothing reaches Matrix until it is back, so the delivery queue
   * waits for it without spending the message's attempts (an outage must not turn into losses).
   */
  get unreachable(): boolean {
    if (this.status === undefined) return this.cause instanceof HttpExchangeError && this.cause.unreachable;
    return (this.status === 502 || this.status === 503 || this.status === 504) && this.errcode === undefined;
  }
}

export function toMatrixError(err: unknown): MatrixError {
  if (err instanceof MatrixError) return err;
  const e = err as { body?: { errcode?: string; error?: string }; statusCode?: number; errcode?: string; message?: string };
  const errcode = e?.body?.errcode ?? e?.errcode;
  const text = e?.body?.error ?? e?.message ?? String(err);
  return new MatrixError(errcode ? `${errcode}: ${text}` : text, errcode, e?.statusCode, { cause: err });
}

export interface MemberProfile { displayName: string; avatarMxc?: string }

const localpartOf = (userId: string): string => userId.slice(1).split(':')[0] ?? userId;

/** A Matrix transaction id derived from stable parts (remote ids), safe for the URL path. */
export function deterministicTxnId(...parts: string[]): string {
  return 'trestle-' + createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 32);
}

export class MatrixClientLayer {
  readonly botUserId: string;
  private readonly joined = new Set<string>();
  private readonly registered = new Set<string>();
  private readonly profiles = new Map<string, MemberProfile>();
  private readonly log: Logger;
  private readonly http: HomeserverHttp;

  constructor(private readonly opts: MatrixOptions) {
    this.log = opts.log;
    this.http = new HomeserverHttp(opts.homeserverUrl, opts.registration.as_token);
    this.botUserId = `@${opts.registration.sender_localpart}:${opts.domain}`;
  }

  get domain(): string { return this.opts.domain; }

  /** Check the homeserver answers and accepts our token (registering the bot if needed). */
  async start(): Promise<void> {
    await this.ensureRegistered(this.botUserId);
  }

  /** Close the idle keep-alive connections to the homeserver. */
  close(): void { this.http.close(); }

  /** Raw client-server request as `userId` (the bot if omitted). */
  async request<T = Record<string, unknown>>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown, userId?: string, qs?: Record<string, string>): Promise<T> {
    // node:http with keep-alive, the appservice token and ?user_id= masquerading: the hot path of
    // every bridged message, so it skips the SDK client and fetch (which costs several times more CPU).
    const params = new URLSearchParams(qs);
    if (userId && userId !== this.botUserId) params.set('user_id', userId);
    const query = params.size ? `?${params.toString()}` : '';
    let res: { status: number; text: string };
    try {
      res = await this.http.send(method, `${path}${query}`, body === undefined ? undefined : JSON.stringify(body), 'application/json');
    } catch (err) {
      throw new MatrixError(`cannot reach the homeserver: ${(err as Error).message}`, undefined, undefined, { cause: err });
    }
    let json: Record<string, unknown> = {};
    try { json = res.text ? (JSON.parse(res.text) as Record<string, unknown>) : {}; } catch { /* not JSON: keep the status */ }
    if (res.status < 200 || res.status >= 300) {
      const errcode = typeof json['errcode'] === 'string' ? json['errcode'] : undefined;
      const msg = typeof json['error'] === 'string' ? json['error'] : `HTTP ${res.status}`;
      throw new MatrixError(errcode ? `${errcode}: ${msg}` : msg, errcode, res.status);
    }
    return json as T;
  }

  private get baseUrl(): string { return this.opts.homeserverUrl.replace(/\/+$/, ''); }

  /**
   * Send an event with a caller-chosen transaction id; returns the event id. `ts` (ms) becomes the
   * event's origin_server_ts (appservice timestamp massaging), for a message delivered late.
   */
  async sendWithTxn(userId: string, roomId: string, type: string, content: Record<string, unknown>, txnId: string, ts?: number): Promise<string> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/${encodeURIComponent(type)}/${encodeURIComponent(txnId)}`;
    const res = await this.request<{ event_id?: unknown }>('PUT', path, content, userId, ts !== undefined ? { ts: String(Math.round(ts)) } : undefined);
    return sentEventId(res);
  }

  async redact(userId: string, roomId: string, eventId: string, txnId: string, reason?: string): Promise<string> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/${encodeURIComponent(txnId)}`;
    const res = await this.request<{ event_id?: unknown }>('PUT', path, reason ? { reason } : {}, userId);
    return sentEventId(res);
  }

  /** Register an appservice user (a ghost, or the bot) unless it exists. Cached. */
  async ensureRegistered(userId: string): Promise<void> {
    if (this.registered.has(userId)) return;
    try {
      await this.request('POST', '/_matrix/client/v3/register', { type: 'm.login.application_service', username: localpartOf(userId), inhibit_login: true });
    } catch (err) {
      const m = toMatrixError(err);
      if (m.errcode !== 'M_USER_IN_USE') throw m;
    }
    this.registered.add(userId);
  }

  /** Join a room as `userId`, with the bot inviting first if a plain join is refused. Cached. */
  async ensureJoined(userId: string, roomId: string): Promise<void> {
    const key = `${userId}\u0000${roomId}`;
    if (this.joined.has(key)) return;
    await this.ensureRegistered(userId);
    const join = (): Promise<unknown> => this.request('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {}, userId);
    try {
      await join();
    } catch (err) {
      const m = toMatrixError(err);
      if (userId === this.botUserId || m.errcode !== 'M_FORBIDDEN') throw m;
      // not invited (a private room): the bot, if it is in the room, invites and the join is tried again
      await this.invite(roomId, userId);
      await join();
    }
    this.joined.add(key);
  }

  /** Forget that a user is joined (after a kick or a refused send), so the next send re-joins. */
  forgetJoined(userId: string, roomId: string): void { this.joined.delete(`${userId}\u0000${roomId}`); }
  markJoined(userId: string, roomId: string): void { this.joined.add(`${userId}\u0000${roomId}`); }

  /** Invite `userId` as `inviter` (the bot by default, joining first if needed). */
  async invite(roomId: string, userId: string, inviter = this.botUserId): Promise<void> {
    await this.ensureJoined(inviter, roomId);
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, { user_id: userId }, inviter);
  }

  async leave(userId: string, roomId: string, reason?: string): Promise<void> {
    this.forgetJoined(userId, roomId);
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, reason ? { reason } : {}, userId);
  }

  /** Kick, ban or unban `userId` as the bot. */
  async moderate(action: 'kick' | 'ban' | 'unban', roomId: string, userId: string, reason?: string): Promise<void> {
    this.forgetJoined(userId, roomId);
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/${action}`, { user_id: userId, ...(reason ? { reason } : {}) });
  }

  async setDisplayName(userId: string, name: string): Promise<void> {
    await this.ensureRegistered(userId);
    await this.request('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(userId)}/displayname`, { displayname: name }, userId);
  }

  async setAvatar(userId: string, mxc: string): Promise<void> {
    await this.ensureRegistered(userId);
    await this.request('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(userId)}/avatar_url`, { avatar_url: mxc }, userId);
  }

  /** Upload bytes to the media repository; returns the mxc:// URL. */
  async upload(data: Buffer, contentType: string, filename?: string, userId?: string): Promise<string> {
    const qs = new URLSearchParams(filename ? { filename } : {});
    if (userId && userId !== this.botUserId) qs.set('user_id', userId);
    let res: { status: number; text: string };
    try {
      res = await this.http.send('POST', `/_matrix/media/v3/upload${qs.size ? `?${qs.toString()}` : ''}`, data, contentType);
    } catch (err) {
      throw new MatrixError(`cannot reach the homeserver: ${(err as Error).message}`, undefined, undefined, { cause: err });
    }
    let json: Record<string, unknown> = {};
    try { json = JSON.parse(res.text) as Record<string, unknown>; } catch { /* not JSON */ }
    if (res.status !== 200 || typeof json['content_uri'] !== 'string') {
      const errcode = typeof json['errcode'] === 'string' ? json['errcode'] : undefined;
      throw new MatrixError(`upload refused: ${typeof json['error'] === 'string' ? json['error'] : `HTTP ${res.status}`}`, errcode, res.status);
    }
    return json['content_uri'];
  }

  /** Keep the member-profile cache right from the m.room.member events the homeserver sends us. */
  noteMember(roomId: string, userId: string, displayName: string | undefined, membership: string, avatarMxc?: string): void {
    const key = `${roomId}\u0000${userId}`;
    // left, kicked or banned (on Matrix, by anyone): the next send as this user must join again
    if (membership !== 'join') this.forgetJoined(userId, roomId);
    if (membership === 'join') {
      this.profiles.set(key, { displayName: displayName || localpartOf(userId), ...(avatarMxc ? { avatarMxc } : {}) });
    } else this.profiles.delete(key);
    if (this.profiles.size > 100_000) this.profiles.clear();
  }

  /** Display name and avatar of a member of a room (falls back to the global profile, then the localpart). Cached. */
  async memberProfile(roomId: string, userId: string): Promise<MemberProfile> {
    const key = `${roomId}\u0000${userId}`;
    const cached = this.profiles.get(key);
    if (cached !== undefined) return cached;
    const profile = await this.fetchMemberProfile(roomId, userId);
    this.profiles.set(key, profile);
    return profile;
  }

  /** A user's global display name (their profile, not any room's), or undefined when they have none. */
  async globalDisplayName(userId: string): Promise<string | undefined> {
    const p = await this.request<{ displayname?: unknown }>('GET', `/_matrix/client/v3/profile/${encodeURIComponent(userId)}/displayname`);
    return typeof p.displayname === 'string' ? p.displayname : undefined;
  }

  async memberName(roomId: string, userId: string): Promise<string> {
    return (await this.memberProfile(roomId, userId)).displayName;
  }

  private async fetchMemberProfile(roomId: string, userId: string): Promise<MemberProfile> {
    type Profile = { displayname?: string; avatar_url?: string };
    const pick = (p: Profile): MemberProfile | undefined =>
      p.displayname ? { displayName: p.displayname, ...(p.avatar_url ? { avatarMxc: p.avatar_url } : {}) } : undefined;
    try {
      const found = pick(await this.request<Profile>('GET',
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(userId)}`));
      if (found) return found;
    } catch { /* not a member or not visible to the bot: fall through */ }
    try {
      const found = pick(await this.request<Profile>('GET', `/_matrix/client/v3/profile/${encodeURIComponent(userId)}`));
      if (found) return found;
    } catch { /* no profile */ }
    return { displayName: localpartOf(userId) };
  }

  /** An event's content as the bot sees it (the original, not an edit's), or undefined when it cannot be read. */
  async eventContent(roomId: string, eventId: string): Promise<Record<string, unknown> | undefined> {
    try {
      const ev = await this.request<{ content?: unknown }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(eventId)}`);
      return typeof ev.content === 'object' && ev.content !== null ? ev.content as Record<string, unknown> : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A user's power level in a room. From room version 12 on, the room's creators (the create event's
   * sender and its `additional_creators`) are above every level and absent from the power levels.
   */
  async userPower(roomId: string, userId: string): Promise<number> {
    const room = encodeURIComponent(roomId);
    const create = await this.request<{ room_version?: unknown; additional_creators?: unknown }>('GET', `/_matrix/client/v3/rooms/${room}/state/m.room.create/`).catch(() => undefined);
    if (create && creatorsArePrivileged(create.room_version)) {
      if (Array.isArray(create.additional_creators) && create.additional_creators.includes(userId)) return CREATOR_POWER;
      // in these versions the room id is the create event's reference hash: its event id is the same hash
      const ev = await this.request<{ sender?: unknown }>('GET', `/_matrix/client/v3/rooms/${room}/event/${encodeURIComponent(`$${roomId.slice(1)}`)}`).catch(() => undefined);
      if (ev?.sender === userId) return CREATOR_POWER;
    }
    const pl = await this.powerLevels(roomId);
    return pl?.users?.[userId] ?? pl?.users_default ?? 0;
  }

  /** Who is in a room or invited to it, as `asUser` (who must be in the room) sees it. */
  async presentMembers(roomId: string, asUser: string): Promise<string[]> {
    const r = await this.request<{ chunk?: { state_key?: unknown; content?: { membership?: unknown } }[] }>('GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/members`, undefined, asUser, { not_membership: 'leave' });
    return (r.chunk ?? []).filter((e) => e.content?.membership === 'join' || e.content?.membership === 'invite')
      .map((e) => e.state_key).filter((u): u is string => typeof u === 'string');
  }

  async powerLevels(roomId: string): Promise<{ users?: Record<string, number>; users_default?: number } | undefined> {
    try {
      return await this.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`);
    } catch {
      return undefined;
    }
  }

  async sendNotice(roomId: string, text: string, userId?: string): Promise<void> {
    const sender = userId ?? this.botUserId;
    await this.ensureJoined(sender, roomId);
    await this.request('PUT',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${deterministicTxnId('notice', roomId, String(Date.now()), String(Math.random()))}`,
      { msgtype: 'm.notice', body: text }, sender);
  }

  /**
   * Ask the homeserver to ping us (MSC2659). Besides checking the set-up, a successful ping makes
   * Synapse resend at once what it held back while the bridge was down, instead of at its next backoff.
   */
  async ping(appserviceId: string): Promise<number> {
    const t0 = Date.now();
    await this.request('POST', `/_matrix/client/v1/appservice/${encodeURIComponent(appserviceId)}/ping`, {});
    return Date.now() - t0;
  }

  /** Does the homeserver answer (its unauthenticated versions endpoint)? For noticing the end of an outage. */
  async reachable(): Promise<boolean> {
    try {
      await this.request('GET', '/_matrix/client/versions');
      return true;
    } catch {
      return false;
    }
  }

  async createRoom(body: Record<string, unknown>, userId?: string): Promise<string> {
    const res = await this.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', body, userId);
    this.markJoined(userId ?? this.botUserId, res.room_id);
    return res.room_id;
  }
}

/**
 * The event id a send answered with. A 2xx without one (an empty or HTML body from a proxy in
 * front of the homeserver) is not taken as sent: the caller would map nothing, and an undefined
 * id reads as "the ghost may not send here" further up, which drops the message without a word.
 */
function sentEventId(res: { event_id?: unknown }): string {
  if (typeof res.event_id !== 'string' || res.event_id === '') {
    throw new MatrixError('the homeserver accepted the event but answered without its event_id', undefined, undefined);
  }
  return res.event_id;
}

/** What {@link MatrixClientLayer.userPower} answers for a room's creator: above any level a room can set. */
export const CREATOR_POWER = Number.MAX_SAFE_INTEGER;

/** Room versions where creators hold unlimited power (12 and later, and its draft "hydra" versions). */
export function creatorsArePrivileged(version: unknown): boolean {
  if (typeof version !== 'string') return false;
  return /^\d+$/.test(version) ? Number(version) >= 12 : version.startsWith('org.matrix.hydra.');
}
