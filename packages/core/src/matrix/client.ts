/**
 * The Matrix side of the bridge: intents for the bot and the ghosts, on matrix-appservice-bridge.
 * This directory is the only place that imports matrix-appservice-bridge.
 *
 * Sends that must survive a crash use deterministic transaction ids (`sendWithTxn`): the
 * homeserver answers a repeated PUT with the event id it already created, so a retry after a
 * restart never duplicates a message.
 */
import { AppServiceRegistration, Bridge, type Intent, Logger as LibraryLogger } from 'matrix-appservice-bridge';
import { createHash } from 'node:crypto';
import type { Logger } from '../util/log.js';
import { HomeserverHttp } from './http.js';
import type { RegistrationFile } from './registration.js';

export interface MatrixOptions {
  /** Let matrix-appservice-bridge's own (unstructured) logging through; off unless debugging. */
  libraryLogging?: boolean;
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
  private readonly bridge: Bridge;
  readonly botUserId: string;
  private readonly joined = new Set<string>();
  private readonly profiles = new Map<string, MemberProfile>();
  private readonly log: Logger;

  private readonly http: HomeserverHttp;

  constructor(private readonly opts: MatrixOptions) {
    this.log = opts.log;
    this.http = new HomeserverHttp(opts.homeserverUrl, opts.registration.as_token);
    // Errors the library logs (e.g. M_USER_IN_USE on registration) are handled and, where they
    // matter, logged by us with context; its own console output is noise unless debugging.
    LibraryLogger.configure({ console: opts.libraryLogging ? 'info' : 'off' });
    const reg = AppServiceRegistration.fromObject(opts.registration as unknown as Parameters<typeof AppServiceRegistration.fromObject>[0]);
    this.bridge = new Bridge({
      homeserverUrl: opts.homeserverUrl,
      domain: opts.domain,
      registration: reg,
      disableStores: true,
      disableContext: true,
      suppressEcho: false,
      controller: { onEvent: () => undefined },
    });
    this.botUserId = `@${opts.registration.sender_localpart}:${opts.domain}`;
  }

  get domain(): string { return this.opts.domain; }

  /** Check the homeserver answers and set up the intents. Does not open a listener. */
  async start(): Promise<void> {
    await this.bridge.initialise();
    await this.bot().ensureRegistered().catch((err: unknown) => {
      const m = toMatrixError(err);
      if (m.errcode !== 'M_USER_IN_USE') throw m;
    });
  }

  /** Close the idle keep-alive connections to the homeserver. */
  close(): void { this.http.close(); }

  bot(): Intent { return this.bridge.getIntent(); }
  intent(userId: string): Intent { return this.bridge.getIntent(userId); }

  /** Raw client-server request as `userId` (the bot if omitted). */
  async request<T = Record<string, unknown>>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown, userId?: string, qs?: Record<string, string>): Promise<T> {
    // node:http with keep-alive, the appservice token and ?user_id= masquerading: the hot path of
    // every bridged message, so it skips the SDK client and fetch (which costs several times more CPU).
    const params = new URLSearchParams(qs);
    if (userId && userId !== this.botUserId) params.set('user_id', userId);
    const query = params.size ? `?${params.toString()}` : '';
    let res: { status: number; text: string };
    try {
      res = await this.http.send(method, `${path}${query}`, body === undefined ? undefined : JSON.stringify(body));
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

  /** Send an event with a caller-chosen transaction id; returns the event id. */
  async sendWithTxn(userId: string, roomId: string, type: string, content: Record<string, unknown>, txnId: string): Promise<string> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/${encodeURIComponent(type)}/${encodeURIComponent(txnId)}`;
    const res = await this.request<{ event_id: string }>('PUT', path, content, userId);
    return res.event_id;
  }

  async redact(userId: string, roomId: string, eventId: string, txnId: string, reason?: string): Promise<string> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/${encodeURIComponent(txnId)}`;
    const res = await this.request<{ event_id: string }>('PUT', path, reason ? { reason } : {}, userId);
    return res.event_id;
  }

  async ensureRegistered(userId: string): Promise<void> {
    try {
      await this.intent(userId).ensureRegistered();
    } catch (err) {
      const m = toMatrixError(err);
      if (m.errcode !== 'M_USER_IN_USE') throw m;
    }
  }

  /** Join a room as `userId`, with the bot inviting first if a plain join is refused. Cached. */
  async ensureJoined(userId: string, roomId: string): Promise<void> {
    const key = `${userId}\u0000${roomId}`;
    if (this.joined.has(key)) return;
    try {
      await this.intent(userId).join(roomId);
    } catch (err) {
      throw toMatrixError(err);
    }
    this.joined.add(key);
  }

  /** Forget that a user is joined (after a kick or a refused send), so the next send re-joins. */
  forgetJoined(userId: string, roomId: string): void { this.joined.delete(`${userId}\u0000${roomId}`); }
  markJoined(userId: string, roomId: string): void { this.joined.add(`${userId}\u0000${roomId}`); }

  async setDisplayName(userId: string, name: string): Promise<void> {
    try { await this.intent(userId).setDisplayName(name); } catch (err) { throw toMatrixError(err); }
  }

  async setAvatar(userId: string, mxc: string): Promise<void> {
    try { await this.intent(userId).setAvatarUrl(mxc); } catch (err) { throw toMatrixError(err); }
  }

  /** Upload bytes to the media repository; returns the mxc:// URL. */
  async upload(data: Buffer, contentType: string, filename?: string, userId?: string): Promise<string> {
    const client = (userId ? this.intent(userId) : this.bot()).matrixClient;
    try { return await client.uploadContent(data, contentType, filename); } catch (err) { throw toMatrixError(err); }
  }

  /** Keep the member-profile cache right from the m.room.member events the homeserver sends us. */
  noteMember(roomId: string, userId: string, displayName: string | undefined, membership: string, avatarMxc?: string): void {
    const key = `${roomId}\u0000${userId}`;
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

  async createRoom(body: Record<string, unknown>, userId?: string): Promise<string> {
    const res = await this.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', body, userId);
    this.markJoined(userId ?? this.botUserId, res.room_id);
    return res.room_id;
  }
}
