/**
 * The fake gateway (v10, JSON, no compression): HELLO, IDENTIFY → READY + one GUILD_CREATE per guild (with
 * the presences of members who are not offline, for a session with the GuildPresences intent),
 * heartbeats, RESUME with replay of missed events, op 7 RECONNECT on request, op 8 → GUILD_MEMBERS_CHUNK,
 * per-session sequence numbers and intents, and Discord's close codes for the mistakes a bot can make.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  GatewayCloseCodes, GatewayDispatchEvents, GatewayIntentBits, GatewayOpcodes, type GatewayDispatchPayload,
  type GatewayIdentifyData, type GatewayReceivePayload, type GatewayRequestGuildMembersData, type GatewayResumeData,
} from 'discord-api-types/v10';
import type { DispatchData, EventSink, FakeSettings, Redactor } from './common.js';
import type { World } from './state.js';

const API_VERSION = 10;
const REPLAY_BUFFER = 1000;
const MEMBERS_PER_CHUNK = 1000;
/** IDENTIFY's `large_threshold` when it has none, and its bounds, as on Discord. */
const LARGE_THRESHOLD = { default: 50, min: 50, max: 250 };
const ALL_INTENTS = Object.values(GatewayIntentBits).reduce<number>((a, b) => (typeof b === 'number' ? a | b : a), 0);
const PRIVILEGED: [bit: number, setting: 'messageContentIntent' | 'guildMembersIntent' | 'presenceIntent'][] = [
  [GatewayIntentBits.MessageContent, 'messageContentIntent'],
  [GatewayIntentBits.GuildMembers, 'guildMembersIntent'],
  [GatewayIntentBits.GuildPresences, 'presenceIntent'],
];

interface Session {
  id: string;
  seq: number;
  intents: number;
  /** IDENTIFY's `large_threshold`: in a guild with more members, GUILD_CREATE leaves out the offline ones. */
  largeThreshold: number;
  /** Recent dispatches, replayed on RESUME from the client's last seen sequence number. */
  buffer: GatewayDispatchPayload[];
  conn: Connection | null;
}

interface Connection {
  ws: WebSocket;
  session: Session | null;
  closed: Promise<number>;
}

export interface GatewayStats {
  connections: number;
  identifies: number;
  resumes: number;
  heartbeats: number;
  /** Events sent again on RESUME because the client missed them. */
  replayedEvents: number;
  /** Close codes the fake sent (4004, 4014, ...), in order. */
  closeCodes: number[];
}

export class Gateway implements EventSink {
  readonly stats: GatewayStats = { connections: 0, identifies: 0, resumes: 0, heartbeats: 0, replayedEvents: 0, closeCodes: [] };
  /** Dispatch calls so far; REST compares it before/after a write to know whether the write had an echo. */
  dispatchCount = 0;
  private wss: WebSocketServer | undefined;
  private url = '';
  private readonly sessions = new Map<string, Session>();
  private readonly conns = new Set<Connection>();
  private held: (() => void)[] | null = null;

  constructor(
    private readonly world: World,
    private readonly settings: FakeSettings,
    private readonly log: (line: string) => void,
  ) {}

  /** Serve the gateway on `server` at `/gateway`; `url` is what READY's resume_gateway_url points at. */
  attach(server: Server, url: string): void {
    this.url = url;
    this.wss = new WebSocketServer({ server, path: '/gateway' });
    this.wss.on('connection', (ws, req) => this.onConnection(ws, req));
  }

  close(): void {
    for (const c of this.conns) c.ws.terminate();
    this.wss?.close();
    this.sessions.clear();
  }

  dispatch<E extends GatewayDispatchEvents>(t: E, d: DispatchData<E>, intent: number, redact?: Redactor<DispatchData<E>>): void {
    if (this.held) {
      this.held.push(() => this.dispatch(t, d, intent, redact));
      return;
    }
    this.dispatchCount++;
    for (const s of this.sessions.values()) {
      if (intent && !(s.intents & intent)) continue;
      this.sendDispatch(s, t, redact ? redact(d, s.intents, s.largeThreshold) : d);
    }
  }

  /** Run `fn`, keeping the events it causes back until `release()` (for the 'http-first' echo order). */
  hold<T>(fn: () => T): { result: T; release: () => void } {
    const held: (() => void)[] = [];
    this.held = held;
    try {
      return { result: fn(), release: () => held.forEach((f) => f()) };
    } catch (e) {
      for (const f of held) f(); // the events of a half-done write still happened
      throw e;
    } finally {
      this.held = null;
    }
  }

  /** Send op 7 RECONNECT to every connected session; resolves once their old sockets have closed. */
  forceReconnect(): Promise<void> {
    const closing: Promise<number>[] = [];
    for (const c of this.conns) {
      if (!c.session) continue;
      this.send(c, { op: GatewayOpcodes.Reconnect, d: null });
      closing.push(c.closed);
    }
    return Promise.all(closing).then(() => undefined);
  }

  /** Close every gateway socket with `code` (4000 is resumable; 4009 is not), as an outage would. */
  disconnectAll(code: number = GatewayCloseCodes.UnknownError): Promise<void> {
    const closing = [...this.conns].map((c) => {
      this.closeWith(c, code, 'fake-discord: disconnected by test');
      return c.closed;
    });
    return Promise.all(closing).then(() => undefined);
  }

  // ---------- connections ----------

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    let resolveClosed!: (code: number) => void;
    const conn: Connection = { ws, session: null, closed: new Promise((r) => (resolveClosed = r)) };
    this.conns.add(conn);
    this.stats.connections++;
    this.log(`gateway connect ${req.url ?? ''}`);
    ws.on('close', (code) => {
      this.conns.delete(conn);
      this.log(`gateway close ${code}`);
      const s = conn.session;
      if (s && s.conn === conn) {
        s.conn = null;
        // A client closing with 1000/1001 ends its session; any other code (discord.js uses 4200) keeps it resumable.
        if (code === 1000 || code === 1001) this.sessions.delete(s.id);
      }
      resolveClosed(code);
    });
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    if (q.get('v') && Number(q.get('v')) !== API_VERSION) return this.closeWith(conn, GatewayCloseCodes.InvalidAPIVersion, 'Invalid API version');
    if ((q.get('encoding') ?? 'json') !== 'json') return this.closeWith(conn, GatewayCloseCodes.DecodeError, 'Only json is supported');
    if (q.get('compress')) return this.closeWith(conn, GatewayCloseCodes.DecodeError, 'The fake does not compress');
    ws.on('message', (raw, isBinary) => this.onMessage(conn, raw, isBinary));
    this.send(conn, { op: GatewayOpcodes.Hello, d: { heartbeat_interval: this.settings.heartbeatIntervalMs } });
  }

  private onMessage(conn: Connection, raw: RawData, isBinary: boolean): void {
    let p: { op?: unknown; d?: unknown };
    try {
      if (isBinary) throw new Error('binary frame');
      p = JSON.parse(rawText(raw)) as { op?: unknown; d?: unknown };
    } catch {
      return this.closeWith(conn, GatewayCloseCodes.DecodeError, 'Decode error');
    }
    const op = p.op;
    if (op === GatewayOpcodes.Heartbeat) {
      this.stats.heartbeats++;
      return this.send(conn, { op: GatewayOpcodes.HeartbeatAck });
    }
    if (op === GatewayOpcodes.Identify) return this.identify(conn, p.d as GatewayIdentifyData);
    if (op === GatewayOpcodes.Resume) return this.resume(conn, p.d as GatewayResumeData);
    if (!conn.session) return this.closeWith(conn, GatewayCloseCodes.NotAuthenticated, 'Not authenticated');
    if (op === GatewayOpcodes.RequestGuildMembers) return this.requestMembers(conn.session, p.d as GatewayRequestGuildMembersData);
    if (op === GatewayOpcodes.PresenceUpdate || op === GatewayOpcodes.VoiceStateUpdate) return;
    return this.closeWith(conn, GatewayCloseCodes.UnknownOpcode, 'Unknown opcode');
  }

  private identify(conn: Connection, d: GatewayIdentifyData | undefined): void {
    if (conn.session) return this.closeWith(conn, GatewayCloseCodes.AlreadyAuthenticated, 'Already authenticated');
    if (d?.token !== this.settings.token) return this.closeWith(conn, GatewayCloseCodes.AuthenticationFailed, 'Authentication failed');
    const intents = Number(d.intents ?? 0);
    if (!Number.isInteger(intents) || intents & ~ALL_INTENTS) return this.closeWith(conn, GatewayCloseCodes.InvalidIntents, 'Invalid intent(s)');
    if (PRIVILEGED.some(([bit, setting]) => intents & bit && !this.settings[setting])) {
      return this.closeWith(conn, GatewayCloseCodes.DisallowedIntents, 'Disallowed intent(s)');
    }
    const asked = Number(d.large_threshold ?? LARGE_THRESHOLD.default);
    const largeThreshold = Number.isFinite(asked) ? Math.min(LARGE_THRESHOLD.max, Math.max(LARGE_THRESHOLD.min, asked)) : LARGE_THRESHOLD.default;
    const s: Session = { id: randomBytes(16).toString('hex'), seq: 0, intents, largeThreshold, buffer: [], conn };
    this.sessions.set(s.id, s);
    conn.session = s;
    this.stats.identifies++;
    const guilds = [...this.world.guilds.values()].filter((g) => g.members.has(this.world.bot.id));
    const application = this.world.application();
    // discord.js throws an unhandled TypeError on a READY without `application`.
    this.sendDispatch(s, GatewayDispatchEvents.Ready, {
      v: API_VERSION, user: { ...this.world.bot, verified: true, mfa_enabled: false },
      guilds: guilds.map((g) => ({ id: g.guild.id, unavailable: true })), session_id: s.id, resume_gateway_url: this.url,
      shard: d.shard ?? [0, 1], application: { ...application, flags_new: String(application.flags) },
    });
    // discord.js waits (15 s) for a GUILD_CREATE for every guild READY listed before it emits clientReady.
    for (const g of guilds) this.sendDispatch(s, GatewayDispatchEvents.GuildCreate, this.world.guildCreatePayload(g, s.intents, s.largeThreshold));
  }

  private resume(conn: Connection, d: GatewayResumeData | undefined): void {
    const s = d ? this.sessions.get(d.session_id) : undefined;
    const oldest = s?.buffer[0]?.s ?? 1;
    if (!s || !d || d.token !== this.settings.token || d.seq > s.seq || d.seq < oldest - 1) {
      return this.send(conn, { op: GatewayOpcodes.InvalidSession, d: false });
    }
    if (s.conn && s.conn !== conn) this.closeWith(s.conn, GatewayCloseCodes.SessionTimedOut, 'Resumed elsewhere');
    conn.session = s;
    s.conn = conn;
    this.stats.resumes++;
    for (const ev of s.buffer) {
      if (ev.s <= d.seq) continue;
      this.stats.replayedEvents++;
      this.send(conn, ev);
    }
    this.sendDispatch(s, GatewayDispatchEvents.Resumed, undefined);
  }

  private requestMembers(s: Session, d: GatewayRequestGuildMembersData): void {
    const rec = this.world.guilds.get(d.guild_id);
    let members = rec ? [...rec.members.values()] : [];
    let notFound: string[] = [];
    if ('user_ids' in d && d.user_ids !== undefined) {
      const want = ([] as string[]).concat(d.user_ids);
      members = members.filter((m) => want.includes(m.user.id));
      notFound = want.filter((id) => !members.some((m) => m.user.id === id));
    } else if ('query' in d) {
      const query = d.query.toLowerCase();
      if (query) members = members.filter((m) => m.user.username.toLowerCase().startsWith(query) || m.nick?.toLowerCase().startsWith(query));
      if (d.limit) members = members.slice(0, d.limit);
    }
    // Discord treats `presences: true` as false for a session without the GuildPresences intent.
    const withPresences = d.presences === true && (s.intents & GatewayIntentBits.GuildPresences) !== 0;
    const chunkCount = Math.max(1, Math.ceil(members.length / MEMBERS_PER_CHUNK));
    for (let i = 0; i < chunkCount; i++) {
      const chunk = members.slice(i * MEMBERS_PER_CHUNK, (i + 1) * MEMBERS_PER_CHUNK);
      const presences = withPresences ? chunk.flatMap((m) => {
        const p = rec?.presences.get(m.user.id);
        if (!p) return []; // offline members have no presence here, as in GUILD_CREATE
        const { guild_id: _g, ...rest } = p;
        return [rest];
      }) : undefined;
      this.sendDispatch(s, GatewayDispatchEvents.GuildMembersChunk, {
        guild_id: d.guild_id, members: chunk, chunk_index: i,
        chunk_count: chunkCount, ...(i === 0 && notFound.length ? { not_found: notFound } : {}),
        ...(presences ? { presences } : {}), ...(d.nonce !== undefined ? { nonce: d.nonce } : {}),
      });
    }
  }

  // ---------- sending ----------

  private sendDispatch<E extends GatewayDispatchEvents>(s: Session, t: E, d: DispatchData<E>): void {
    const ev = { op: GatewayOpcodes.Dispatch, t, s: ++s.seq, d: d ?? null } as GatewayDispatchPayload;
    s.buffer.push(ev);
    if (s.buffer.length > REPLAY_BUFFER) s.buffer.shift();
    if (s.conn) this.send(s.conn, ev);
  }

  private send(conn: Connection, payload: GatewayReceivePayload | { op: GatewayOpcodes; d?: unknown }): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    conn.ws.send(JSON.stringify({ s: null, t: null, d: null, ...payload }));
  }

  private closeWith(conn: Connection, code: number, reason: string): void {
    this.stats.closeCodes.push(code);
    if (conn.session && conn.session.conn === conn) {
      conn.session.conn = null;
      // Only codes Discord documents as resumable keep the session.
      if (code !== GatewayCloseCodes.UnknownError && code !== GatewayCloseCodes.SessionTimedOut) this.sessions.delete(conn.session.id);
    }
    conn.ws.close(code, reason);
  }
}

function rawText(raw: RawData): string {
  if (Array.isArray(raw)) return Buffer.concat(raw).toString('utf8');
  return Buffer.from(raw as ArrayBuffer).toString('utf8');
}
