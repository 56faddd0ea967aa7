/**
 * The bridge runtime: wires the store, the Matrix layer, the appservice HTTP API, the per-room
 * queues and the networks together. Handlers get the narrow pieces they need, not this object.
 */
import type { Express, NextFunction, Request, Response } from 'express';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AdminRoomStore } from '../db/adminRooms.js';
import { type Db, migrate, openDatabase } from '../db/database.js';
import { GhostStore } from '../db/ghosts.js';
import { KvStore } from '../db/kv.js';
import { MessageStore } from '../db/messages.js';
import { PortalStore } from '../db/portals.js';
import { TxnStore } from '../db/txns.js';
import type { WorkItem } from '../db/workQueue.js';
import { WorkQueueStore } from '../db/workQueue.js';
import type { TrestleConfig } from '../config/schema.js';
import { CommandProcessor } from '../commands/processor.js';
import { builtinCommands, LINK_POWER, VERSION as TRESTLE_VERSION } from '../commands/builtins.js';
import { express } from '../http/express.js';
import { BridgeMetrics, matrixTypeLabel } from '../http/metrics.js';
import { provisioningRouter } from '../http/provisioning.js';
import { MediaLinks, mediaRouter } from '../http/media.js';
import { appserviceRouter, type EphemeralEvent, type MatrixEvent, type TransactionHandler, transactionListener } from '../matrix/appservice.js';
import { deterministicTxnId, MatrixClientLayer, MatrixError } from '../matrix/client.js';
import { type RegistrationFile, readRegistration, registrationDrift } from '../matrix/registration.js';
import { thirdPartyLookups } from './thirdParty.js';
import {
  type NetworkConnector, type NetworkContext, type PortalInfo, type PortalRef, type RemoteSender,
  supportsAliases, supportsCommands, supportsDirectChats, supportsLinkHook, supportsProvisioning, supportsReachability, supportsTyping, supportsUnlinkHook, supportsMatrixPresence,
} from '../network/contract.js';
import { createLogger, type Logger } from '../util/log.js';
import { BridgeInfoSync } from './bridgeInfo.js';
import { destinationNetwork, FromMatrix, MATRIX_KIND, type MatrixWork } from './fromMatrix.js';
import { REMOTE_KIND, RemoteDelivery, RemoteSink, type RemoteWork } from './fromRemote.js';
import { GhostManager } from './ghosts.js';
import { networkMatrix } from './networkMatrix.js';
import { OrderedQueues } from './queue.js';
import { createHash } from 'node:crypto';

export interface BridgeOptions {
  log?: Logger;
  /** Registration to use instead of reading `appservice.registration` (tests). */
  registration?: RegistrationFile;
  /** Fetch for ghost avatars (defaults to global fetch, 10 MB cap). */
  fetchAvatar?: (url: string) => Promise<{ data: Buffer; contentType: string } | undefined>;
}

export { VERSION as TRESTLE_VERSION } from '../commands/builtins.js';

async function defaultFetchAvatar(url: string): Promise<{ data: Buffer; contentType: string } | undefined> {
  const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  if (!res.ok) throw new Error(`avatar download failed: HTTP ${res.status}`);
  const data = Buffer.from(await res.arrayBuffer());
  if (data.length > 10 * 1024 * 1024) throw new Error('avatar larger than 10 MB');
  return { data, contentType: res.headers.get('content-type') ?? 'application/octet-stream' };
}

/** What a Matrix event is, in the words of a notice to its sender ("your message", "your topic change"...). */
export function whatEventIs(ev: { type: string; sender?: string; state_key?: string; content?: Record<string, unknown>; unsigned?: Record<string, unknown> }): string {
  switch (ev.type) {
    case 'm.room.message': case 'm.sticker': return 'message';
    case 'm.reaction': return 'reaction';
    case 'm.room.redaction': return 'deletion';
    case 'm.room.topic': return 'topic change';
    case 'm.room.name': return 'room name change';
    case 'm.room.power_levels': return 'power level change';
    case 'm.room.member': {
      const m = ev.content?.['membership'];
      if (m === 'ban') return 'ban';
      if (m !== 'leave' || ev.sender === ev.state_key) return 'membership change';
      const before = (ev.unsigned?.['prev_content'] as Record<string, unknown> | undefined)?.['membership'];
      return before === 'ban' ? 'unban' : 'kick';
    }
    default: return 'event';
  }
}

/** How long a stop lets HTTP requests in flight finish before cutting their connections. */
const HTTP_STOP_GRACE_MS = 2000;

export class TrestleBridge {
  readonly log: Logger;
  readonly metrics = new BridgeMetrics(true);
  readonly networks = new Map<string, NetworkConnector>();
  private db?: Db;
  private server?: Server;
  private stores?: {
    portals: PortalStore; messages: MessageStore; txns: TxnStore; kv: KvStore; ghosts: GhostStore; admin: AdminRoomStore; work: WorkQueueStore;
  };
  private matrixLayer?: MatrixClientLayer;
  private queues?: OrderedQueues;
  private commands?: CommandProcessor;
  private readonly typing = new Map<string, Set<string>>();
  private readonly opening = new Map<string, Promise<PortalInfo>>();
  private ghostMgr?: GhostManager;
  private media?: MediaLinks;
  private bridgeInfo?: BridgeInfoSync;
  private started = false;
  private pruneTimers: NodeJS.Timeout[] = [];

  constructor(readonly config: TrestleConfig, networks: NetworkConnector[], private readonly opts: BridgeOptions = {}) {
    this.log = opts.log ?? createLogger({ level: config.logging.level, format: config.logging.format });
    for (const n of networks) this.networks.set(n.identity.id, n);
  }

  get matrix(): MatrixClientLayer { if (!this.matrixLayer) throw new Error('bridge not started'); return this.matrixLayer; }
  get portals(): PortalStore { if (!this.stores) throw new Error('bridge not started'); return this.stores.portals; }
  get messages(): MessageStore { if (!this.stores) throw new Error('bridge not started'); return this.stores.messages; }
  get database(): Db { if (!this.db) throw new Error('bridge not started'); return this.db; }

  /** The address the appservice API listens on, once started. */
  address(): { host: string; port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  commandsHelp(isAdmin: boolean): string { return this.commands?.helpText(isAdmin) ?? ''; }

  permission(userId: string): 'none' | 'user' | 'admin' {
    const p = this.config.permissions as Record<string, 'user' | 'admin'>;
    const server = userId.slice(userId.indexOf(':') + 1);
    return p[userId] ?? p[server] ?? p['*'] ?? 'none';
  }

  ghostNetwork(userId: string): string | undefined {
    if (!userId.endsWith(`:${this.config.homeserver.domain}`)) return undefined;
    for (const n of this.networks.values()) if (userId.startsWith(`@${n.identity.userPrefix}`)) return n.identity.id;
    return undefined;
  }

  /**
   * A ghost's own event in a room linked only to the ghost's network: it came from there and has
   * nowhere else to go, so it is not stored or queued at all (every remote message comes back to
   * the bridge like this: skipping it halves the work per remote message).
   */
  private onlyOwnEcho(ev: MatrixEvent): boolean {
    if (ev.type === 'm.room.member') return false;
    const ghostOf = this.ghostNetwork(ev.sender);
    if (!ghostOf) return false;
    const portals = this.portals.forRoom(ev.room_id);
    return portals.length === 0 || (portals.length === 1 && portals[0]!.network === ghostOf);
  }

  async start(): Promise<void> {
    const { config, log } = this;
    const t0 = Date.now();
    const registration = this.opts.registration ?? readRegistration(config.appservice.registration);
    this.db = openDatabase(config.database.path, log);
    const db = this.db;
    const work = new WorkQueueStore(db);
    this.stores = {
      portals: new PortalStore(db), messages: new MessageStore(db), txns: new TxnStore(db), kv: new KvStore(db),
      ghosts: new GhostStore(db), admin: new AdminRoomStore(db), work,
    };
    const { portals, messages, txns, kv, ghosts, admin } = this.stores;
    this.matrixLayer = new MatrixClientLayer({ homeserverUrl: config.homeserver.url, domain: config.homeserver.domain, registration, log });
    const matrix = this.matrixLayer;
    log.info('connecting to the homeserver', { url: config.homeserver.url });
    await matrix.start();

    const bridgeInfo = new BridgeInfoSync({
      enabled: config.bridgeInfo.enabled, bot: matrix.botUserId, kv, network: (id) => this.networks.get(id), log,
      setState: async (roomId, type, stateKey, content, asUser) => {
        await matrix.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`, content, asUser);
      },
    });
    this.bridgeInfo = bridgeInfo;
    portals.observe(bridgeInfo); // every link made or removed, whoever makes it, is announced in its room

    const ghostMgr = new GhostManager(ghosts, matrix, log, this.opts.fetchAvatar ?? defaultFetchAvatar);
    this.ghostMgr = ghostMgr;
    const publicUrl = config.appservice.publicUrl ?? config.appservice.url ?? `http://${hostForUrl(config.appservice.bindAddress)}:${config.appservice.port}`;
    if (!config.appservice.publicUrl) {
      log.warn('appservice.publicUrl is not set: links to files and long messages sent to remote networks point at ' +
        `${publicUrl}, the address the homeserver uses, which people elsewhere can likely not open. Set publicUrl to where ` +
        'this bridge\'s HTTP listener can be reached from outside (a reverse proxy for /_trestle/media/)', { publicUrl });
    }
    this.media = new MediaLinks(createHash('sha256').update(`trestle-media\u0000${registration.as_token}`).digest('hex'), publicUrl);
    const media = this.media;
    const remoteDelivery = new RemoteDelivery(matrix, ghostMgr, messages, (id) => this.networks.get(id)?.identity, log, kv, portals);
    this.commands = new CommandProcessor({
      permission: (u) => this.permission(u),
      powerLevel: (roomId, userId) => matrix.userPower(roomId, userId),
      adminRoomOwner: (roomId) => admin.isAdminRoom(roomId),
      reply: (roomId, text) => matrix.sendNotice(roomId, text),
      memberName: (roomId, userId) => matrix.memberName(roomId, userId),
      replyFailed: (roomId, command, err) => log.warn('a command ran but its reply could not be sent', { roomId, command, err }),
      removeMessage: async (roomId, eventId, reason) => { await matrix.redact(matrix.botUserId, roomId, eventId, deterministicTxnId('secret', eventId), reason); },
    });
    for (const spec of builtinCommands(this)) this.commands.add(spec);
    for (const n of this.networks.values()) if (supportsCommands(n)) for (const c of n.commands) this.commands.add(c, n.identity.id);

    const fromMatrix = new FromMatrix({
      matrix, portals, messages, networks: this.networks, log,
      ghostNetwork: (u) => this.ghostNetwork(u),
      ghostRemoteUser: (u) => ghosts.get(u)?.remoteUser,
      permission: (u) => this.permission(u),
      tryCommand: (ev) => this.commands!.tryHandle(ev.room_id, ev.sender, typeof ev.content['body'] === 'string' ? ev.content['body'] : '', ev.event_id),
      onBotInvite: (ev) => this.onBotInvite(ev),
      onRoomUpgrade: (ev) => this.onRoomUpgrade(ev),
      onGhostInvite: (ev, network) => this.onGhostInvite(ev, network),
      onLeave: (ev) => this.onLeave(ev),
      mediaUrl: (mxc, filename) => media.url(mxc, filename),
      onDelivered: (network, type) => this.metrics.eventsOut.inc({ network, type }),
    });

    this.queues = new OrderedQueues(work, config.delivery, {
      handle: async (item: WorkItem) => {
        // one delivery, counted: a failed attempt (retried or not) and, on success, the latency
        const measured = async <T>(to: 'remote' | 'matrix', receivedAt: number, deliver: () => Promise<T>): Promise<T> => {
          let out: T;
          try {
            out = await deliver();
          } catch (err) {
            this.metrics.sendFailures.inc({ network: to, final: 'false' });
            throw err;
          }
          this.metrics.latency.observe({ direction: to === 'matrix' ? 'remote_to_matrix' : 'matrix_to_remote' }, (Date.now() - receivedAt) / 1000);
          return out;
        };
        if (item.kind === MATRIX_KIND) {
          const w = item.payload as MatrixWork;
          return measured('remote', w.receivedAt, () => fromMatrix.handle(w));
        } else if (item.kind === REMOTE_KIND) {
          const w = item.payload as RemoteWork;
          const writes = await measured('matrix', w.receivedAt, () => remoteDelivery.deliver(w));
          this.metrics.eventsOut.inc({ network: 'matrix', type: w.t });
          return writes;
        } else {
          log.warn('unknown work item kind; dropped', { kind: item.kind, item: item.id });
        }
        return undefined;
      },
      onGiveUp: (item, err) => this.reportGiveUp(item, err),
      onDepth: () => this.metrics.queueDepth.set(this.queues?.totalDepth() ?? 0),
      // deliveries to Matrix wait for the homeserver; those to networks (fromMatrix's combinedFailure) name
      // the networks they wait for: each is asked if it can tell, else its rooms wait out their (capped) backoff
      reachable: (destination) => {
        if (destination === REMOTE_KIND) return matrix.reachable();
        const network = this.networks.get(destinationNetwork(destination) ?? '');
        return network && supportsReachability(network) ? network.reachable() : Promise.resolve(false);
      },
    }, log);

    const asHandler: TransactionHandler = {
      // a transaction of only our ghosts' echoes stores nothing, so whether it was seen does not matter: no lookup
      seenTransaction: (id, events) => events.some((ev) => !this.onlyOwnEcho(ev)) && txns.seen(id, events.map((ev) => ev.event_id)),
      persistTransaction: (txnId, events) => {
        const receivedAt = Date.now();
        for (const ev of events) this.metrics.eventsIn.inc({ network: 'matrix', type: matrixTypeLabel(ev.type) });
        const wanted = events.filter((ev) => !this.onlyOwnEcho(ev));
        // nothing to store (only our own ghosts' echoes): nothing to commit either; a replay of it is as harmless
        if (wanted.length === 0) return;
        this.queues!.enqueueAll(wanted.map((event) => ({
          queueKey: event.room_id, kind: MATRIX_KIND, payload: { event, receivedAt } satisfies MatrixWork, dedupeKey: `m:${event.event_id}`,
        })), () => txns.record(txnId, events.map((ev) => ev.event_id)));
      },
      onEphemeral: (events) => this.onEphemeral(events),
      queryUser: async (userId) => {
        if (!this.ghostNetwork(userId)) return false;
        await matrix.ensureRegistered(userId);
        return true;
      },
      queryAlias: (alias) => this.queryAlias(alias),
      onMalformed: () => this.metrics.malformed.inc(),
      // Synapse retries a refused transaction after a backoff; a ping once it has noted the refusal makes that immediate
      onTransactionGap: () => { setTimeout(() => { void matrix.ping(config.appservice.id).catch(() => undefined); }, 250).unref(); },
      gapGuard: { foundOff: () => kv.get('core', 'txn-gap-guard') === 'off', switchedOff: () => kv.set('core', 'txn-gap-guard', 'off') },
      onTransactionMetrics: (_n, outcome) => this.metrics.transactions.inc({ outcome }),
      thirdParty: thirdPartyLookups(this.networks, log.child({ component: 'thirdparty' })),
    };
    for (const problem of registrationDrift(registration, { botLocalpart: config.appservice.botLocalpart, domain: config.homeserver.domain, networks: [...this.networks.values()].map((n) => n.identity) })) {
      log.warn(`the registration file does not match the config: ${problem}`, { registration: config.appservice.registration });
    }
    const transactions = transactionListener(registration.hs_token, asHandler, log);
    // what the homeserver needs first is served without express: transactions (above) and /health
    const health = (req: IncomingMessage, res: ServerResponse): boolean => {
      if ((req.method !== 'GET' && req.method !== 'HEAD') || !/^\/health\/?(?:\?|$)/.test(req.url ?? '')) return false;
      const body = JSON.stringify({ status: 'ok', version: TRESTLE_VERSION, networks: [...this.networks.keys()], queueDepth: this.queues?.totalDepth() ?? 0 });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    };
    // the rest of the API (user and alias queries, provisioning, media, metrics) is built on express at its first request
    let app: Express | undefined;
    const rest = (): Express => {
      if (app) return app;
      app = express()();
      app.disable('x-powered-by');
      app.use(appserviceRouter(registration.hs_token, asHandler, log));
      if (config.metrics.enabled) {
        app.get('/metrics', (_req, res) => {
          this.metrics.registry.metrics().then((text) => {
            res.setHeader('Content-Type', this.metrics.registry.contentType);
            res.send(text);
          }, (err: unknown) => res.status(500).send(String(err)));
        });
      }
      app.use('/_trestle/media/v1', mediaRouter(media, config.homeserver.url, registration.as_token, log));
      if (config.provisioning.enabled && config.provisioning.secret) {
        app.use('/_trestle/provision/v1', provisioningRouter(config.provisioning.secret, this));
      }
      // anything a route threw (a body that is not JSON, a network's lookup failing): a Matrix-style
      // JSON error, never express's HTML page with a stack trace
      app.use((err: Error & { status?: number; statusCode?: number }, req: Request, res: Response, next: NextFunction) => {
        if (res.headersSent) { next(err); return; }
        const status = err.status ?? err.statusCode ?? 500;
        if (status >= 500) log.warn('an HTTP request failed', { path: req.path, err });
        res.status(status).json({ errcode: status === 400 ? 'M_BAD_JSON' : status === 413 ? 'M_TOO_LARGE' : 'M_UNKNOWN', error: status >= 500 ? 'internal error' : err.message });
      });
      return app;
    };

    // networks may report events while they start (IRC connects, Discord catches up): those wait
    // until the events pending from before the last stop are queued ahead of them (restore, below)
    this.queues.hold();
    for (const n of this.networks.values()) {
      const id = n.identity.id;
      const nlog = log.child({ network: id });
      const ctx: NetworkContext = {
        log: nlog,
        config: (config.networks as Record<string, unknown>)[id],
        domain: config.homeserver.domain,
        remote: new RemoteSink(id, portals, this.queues, nlog, (type) => this.metrics.eventsIn.inc({ network: id, type }),
          async (user) => { await ghostMgr.ensure(n.identity, user); },
          async (roomId, user, typing) => {
            const ghost = await ghostMgr.ensure(n.identity, user);
            await matrix.ensureJoined(ghost, roomId);
            await matrix.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(ghost)}`,
              { typing, ...(typing ? { timeout: 30_000 } : {}) }, ghost);
          }),
        portals: {
          forChat: (chat) => portals.forChat(id, chat),
          forRoom: (roomId) => portals.forRoom(roomId).filter((p) => p.network === id),
          all: () => portals.all().filter((p) => p.network === id),
          link: (roomId, chat, o) => portals.link({
            roomId: this.currentRoom(roomId), network: id, remoteChat: chat, kind: o?.kind ?? 'plumbed', ...(o?.name !== undefined ? { name: o.name } : {}), ...(o?.data ? { data: o.data } : {}),
          }),
          unlink: (roomId, chat) => portals.unlink(id, chat, roomId),
          moveChat: (from, to, o) => db.transaction(() => {
            for (const p of portals.forChat(id, from)) {
              portals.link({ ...p, remoteChat: to, ...(o?.name !== undefined ? { name: o.name } : {}) });
              portals.unlink(id, from, p.roomId);
            }
            messages.moveChat(id, from, to);
          })(),
          refreshBridgeInfo: (chat) => { for (const p of portals.forChat(id, chat)) bridgeInfo.linked(p); },
        },
        kv: kv.scoped(id),
        migrate: (ms) => { migrate(db, id, ms, nlog); },
        db,
        notifyUser: (userId, text) => this.notifyUser(userId, text),
        notifyAdmins: (text) => this.notifyAdmins(text),
        ghostUserId: (remoteUser) => ghostMgr.userIdFor(n.identity, remoteUser),
        bridged: (chat, remoteId) => messages.has(id, chat, remoteId),
        remoteUserOf: (ghost) => { const g = ghosts.get(ghost); return g?.network === id ? g.remoteUser : undefined; },
        openDirectChat: (req) => this.openDirectChat(id, req),
        openPortal: (req) => this.openPortal(id, req),
        uploadMedia: async (data, contentType, filename) => {
          const mxc = await matrix.upload(data, contentType, filename);
          return { mxc, url: media.url(mxc, filename) ?? mxc };
        },
        mediaUrl: (mxc) => media.url(mxc) ?? mxc,
        matrix: networkMatrix(matrix, (remoteUser) => {
          const ghost = ghostMgr.userIdFor(n.identity, remoteUser);
          return ghosts.get(ghost)?.registered ? ghost : undefined;
        }),
        metrics: this.metrics.registry,
      };
      nlog.info('starting network');
      await n.start(ctx);
    }

    const restored = this.queues.restore();
    if (restored) log.info('resuming undelivered events from before the last stop', { count: restored });

    await new Promise<void>((resolve, reject) => {
      const server = createServer((req, res) => {
        if (transactions(req, res) || health(req, res)) return;
        let handle: Express;
        try { handle = rest(); } catch (err) { // (express could not be loaded: the request fails, the bridge goes on)
          log.error('could not build the HTTP API', { err: err as Error });
          res.writeHead(500, { 'content-type': 'application/json' }).end('{"errcode":"M_UNKNOWN","error":"the bridge could not build this API"}');
          return;
        }
        handle(req, res);
      });
      server.listen(config.appservice.port, config.appservice.bindAddress, () => resolve());
      server.once('error', reject);
      this.server = server;
    });
    this.started = true;
    // finished work and transaction ids older than a week have done their job (dedupe): deleted now and then
    const prune = (): void => {
      if (!this.started || this.db !== db) return; // stopped (the store is closed), or started again on another
      const week = 7 * 24 * 3600 * 1000;
      try {
        const gone = txns.prune(week) + work.prune(week);
        if (gone) log.debug('pruned old work and transaction records', { rows: gone });
      } catch (err) {
        log.warn('could not prune old work and transaction records; trying again later', { err: err as Error });
      }
    };
    this.pruneTimers = [setTimeout(prune, 1000).unref(), setInterval(prune, 6 * 3600 * 1000).unref()];
    void bridgeInfo.catchUp(portals.all()); // in the background: start-up does not wait for it
    await matrix.ping(config.appservice.id).then(
      (ms) => log.info('the homeserver reaches the bridge', { pingMs: ms }),
      (err: unknown) => log.warn('the homeserver could not ping the bridge: check appservice.url in the registration', { err: err as Error }),
    );
    log.info('bridge started', { listen: `${config.appservice.bindAddress}:${this.address()?.port}`, networks: [...this.networks.keys()], ms: Date.now() - t0 });
  }

  /** Graceful stop: no new transactions, in-flight deliveries finish, networks disconnect, the store closes. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.started && !this.db) return;
    this.started = false;
    for (const t of this.pruneTimers.splice(0)) clearTimeout(t);
    this.bridgeInfo?.stop();
    this.log.info('stopping: draining queues');
    const server = this.server;
    if (server) {
      // close() waits for every request in flight, and one may never end (a media download to a
      // slow reader, a client stalled mid-body): they get a moment, then their connections are cut
      // (an unanswered transaction is sent again by the homeserver)
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const grace = setTimeout(() => server.closeAllConnections(), HTTP_STOP_GRACE_MS);
      await closed;
      clearTimeout(grace);
    }
    const drained = await this.queues?.stop(timeoutMs);
    if (drained === false) this.log.warn('some deliveries were still running at stop; they stay queued for the next start');
    for (const n of this.networks.values()) {
      try { await n.stop(); } catch (err) { this.log.warn('network stop failed', { network: n.identity.id, err: err as Error }); }
    }
    this.matrixLayer?.close();
    this.queues?.flushSoon(); // events the networks reported up to their stop: stored for the next start
    this.db?.close();
    this.db = undefined;
    this.log.info('stopped');
  }

  // ---------------------------------------------------------------- linking (commands, provisioning)

  async link(roomId: string, networkId: string, chat: string, userId: string): Promise<PortalInfo> {
    const n = this.networks.get(networkId);
    if (!n) throw new Error(`unknown network "${networkId}" (enabled: ${[...this.networks.keys()].join(', ') || 'none'})`);
    // the bridge cannot read an encrypted room (it has no end-to-end encryption): refused, if it can tell
    // (the bot is in the room already) before the network does anything for the link
    const encrypted = new Error('this room is end-to-end encrypted, and the bridge cannot read encrypted messages: link a room without encryption');
    const known = await this.isEncrypted(roomId).catch(() => undefined);
    if (known) throw encrypted;
    let remoteChat = chat;
    let name: string | undefined;
    if (supportsProvisioning(n)) ({ remoteChat, name } = await n.provisionLink({ roomId, remoteChat: chat, userId, bridgeAdmin: this.permission(userId) === 'admin' }));
    await this.matrix.ensureJoined(this.matrix.botUserId, roomId);
    if (known === undefined && await this.isEncrypted(roomId)) throw encrypted;
    this.bridgeInfo?.noteCreator(roomId, networkId, remoteChat, userId);
    const portal = this.portals.link({ roomId, network: networkId, remoteChat, kind: 'plumbed', ...(name !== undefined ? { name } : {}) });
    await this.afterLink(n, portal);
    return portal;
  }

  /** Why `userId` may not change the links of `roomId` through the provisioning API: the `link` command's rules. */
  async linkRefusal(roomId: string, userId: string): Promise<string | undefined> {
    const level = this.permission(userId);
    if (level === 'none') return `${userId} is not allowed to use this bridge`;
    if (level === 'admin') return undefined;
    try {
      await this.matrix.ensureJoined(this.matrix.botUserId, roomId);
    } catch {
      return 'the bridge bot cannot join the room: invite it first';
    }
    const power = await this.matrix.userPower(roomId, userId);
    return power >= LINK_POWER ? undefined : `${userId} needs power level ${LINK_POWER} in the room to change its links (has ${power})`;
  }

  /** Does the room have `m.room.encryption` (which cannot be removed)? */
  private async isEncrypted(roomId: string): Promise<boolean> {
    try {
      await this.matrix.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`);
      return true;
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === 'M_NOT_FOUND') return false;
      throw err;
    }
  }

  private async afterLink(n: NetworkConnector, portal: PortalInfo): Promise<void> {
    if (!supportsLinkHook(n)) return;
    await n.portalLinked(portal).catch((err: unknown) => this.log.warn('network could not sync a new link', { network: n.identity.id, chat: portal.remoteChat, err: err as Error }));
  }

  async unlink(roomId: string, networkId: string, chat: string, userId: string): Promise<boolean> {
    const n = this.networks.get(networkId);
    const provisioning = n && supportsProvisioning(n) ? n : undefined;
    const remoteChat = provisioning?.chatIdFor?.(chat) ?? chat; // the words `link` took name the same link
    if (provisioning?.provisionUnlink) await provisioning.provisionUnlink({ roomId, remoteChat, userId });
    const gone = this.portals.forRoom(roomId).find((p) => p.network === networkId && p.remoteChat === remoteChat);
    if (!this.portals.unlink(networkId, remoteChat, roomId)) return false;
    if (n && gone) await this.afterUnlink(n, gone);
    return true;
  }

  private async afterUnlink(n: NetworkConnector, portal: PortalInfo, movedTo?: string): Promise<void> {
    if (!supportsUnlinkHook(n)) return;
    await n.portalUnlinked(portal, movedTo).catch((err: unknown) => this.log.warn('network could not clean up after a removed link', { network: n.identity.id, chat: portal.remoteChat, roomId: portal.roomId, err: err as Error }));
  }

  /** The homeserver asks about an alias in our namespace: create the portal room if a network knows the chat. */
  private async queryAlias(alias: string): Promise<boolean> {
    const localpart = alias.slice(1).split(':')[0] ?? '';
    for (const n of this.networks.values()) {
      const prefix = n.identity.aliasPrefix;
      const ours = (prefix && localpart.startsWith(prefix)) || n.identity.aliasPatterns?.some((p) => new RegExp(`^(?:${p})$`).test(localpart));
      if (!ours || !supportsAliases(n)) continue;
      const target = await n.portalForAlias(localpart);
      if (!target) return false;
      const existing = this.portals.forChat(n.identity.id, target.remoteChat).find((p) => p.kind === 'portal');
      if (existing) {
        // the chat has a portal already (made by a command, or under another alias): point this alias at it
        await this.matrix.request('PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, { room_id: existing.roomId });
        return true;
      }
      const portal = await this.openPortal(n.identity.id, { chat: target.remoteChat, alias, ...(target.name ? { name: target.name } : {}), ...(target.topic ? { topic: target.topic } : {}) });
      // made under another alias meanwhile (the same channel asked for in another case at once): this
      // one too, else the homeserver hears "yes" and still finds no room (409: made with this alias)
      await this.matrix.request('PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, { room_id: portal.roomId })
        .catch((err: unknown) => { if (!(err instanceof MatrixError && err.status === 409)) throw err; });
      return true;
    }
    return false;
  }

  /** Create (once, even under concurrent calls) the portal room of a remote chat. */
  private openPortal(networkId: string, req: { chat: string; name?: string; topic?: string; alias?: string; invite?: string[] }): Promise<PortalInfo> {
    return this.once(`portal\u0000${networkId}\u0000${req.chat}`, async () => {
      const existing = this.portals.forChat(networkId, req.chat).find((p) => p.kind === 'portal');
      if (existing) {
        for (const u of req.invite ?? []) await this.matrix.invite(existing.roomId, u).catch(() => undefined);
        return existing;
      }
      const roomId = await this.matrix.createRoom({
        visibility: 'private', preset: 'public_chat',
        ...(req.name ? { name: req.name } : {}), ...(req.topic ? { topic: req.topic } : {}),
        ...(req.alias ? { room_alias_name: req.alias.slice(1).split(':')[0] } : {}),
        ...(req.invite?.length ? { invite: req.invite } : {}),
        power_level_content_override: { users: { [this.matrix.botUserId]: 100 } },
      });
      this.log.info('created a portal room', { network: networkId, chat: req.chat, roomId });
      const portal = this.portals.link({ roomId, network: networkId, remoteChat: req.chat, kind: 'portal', ...(req.name ? { name: req.name } : {}) });
      await this.afterLink(this.networks.get(networkId)!, portal);
      return portal;
    });
  }

  /** Create (once) the DM room between a remote user's ghost and a Matrix user. */
  private openDirectChat(networkId: string, req: { chat: string; matrixUser: string; remoteUser: RemoteSender }): Promise<PortalInfo> {
    return this.once(`dm\u0000${networkId}\u0000${req.chat}`, async () => {
      const existing = this.portals.forChat(networkId, req.chat)[0];
      if (existing) return existing;
      const network = this.networks.get(networkId)!;
      const ghost = await this.ghostMgr!.ensure(network.identity, req.remoteUser);
      const roomId = await this.matrix.createRoom({
        preset: 'trusted_private_chat', is_direct: true, invite: [req.matrixUser, this.matrix.botUserId],
      }, ghost);
      await this.matrix.ensureJoined(this.matrix.botUserId, roomId).catch(() => undefined);
      this.log.info('opened a direct chat', { network: networkId, chat: req.chat, roomId, ghost, user: req.matrixUser });
      return this.portals.link({ roomId, network: networkId, remoteChat: req.chat, kind: 'dm', data: { matrixUser: req.matrixUser, ghost } });
    });
  }

  private async once<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.opening.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = fn().finally(() => this.opening.delete(key));
    this.opening.set(key, p as Promise<never>);
    return p;
  }

  /** A Matrix user invited a ghost: start a direct chat with that remote user if the network allows it. */
  private async onGhostInvite(ev: MatrixEvent, networkId: string): Promise<void> {
    const network = this.networks.get(networkId)!;
    const ghost = ev.state_key!;
    const remoteUser = this.stores!.ghosts.get(ghost)?.remoteUser;
    if (!remoteUser || !supportsDirectChats(network) || this.permission(ev.sender) === 'none') {
      await this.matrix.leave(ghost, ev.room_id, 'This user cannot be messaged from here').catch(() => undefined);
      return;
    }
    // a private chat goes to whoever is in the room: only a direct chat of the inviter's own, never
    // a group room or one already bridged (the ghost's private messages would be read by all there)
    if (ev.content['is_direct'] !== true || this.portals.forRoom(ev.room_id).length > 0) {
      await this.matrix.leave(ghost, ev.room_id, 'Private chats with bridged users happen in a direct chat of your own: start one with them. To bridge this room to a channel, use "link".').catch(() => undefined);
      return;
    }
    const chat = await network.directChatFor({ matrixUser: ev.sender, remoteUser });
    if (!chat) { await this.matrix.leave(ghost, ev.room_id).catch(() => undefined); return; }
    await this.matrix.ensureJoined(ghost, ev.room_id);
    if ((await this.othersIn(ev.room_id, ghost, ev.sender)).length > 0) {
      await this.matrix.leave(ghost, ev.room_id, 'This direct chat has other people in it: private messages need a chat of your own with this user.').catch(() => undefined);
      return;
    }
    this.portals.link({ roomId: ev.room_id, network: networkId, remoteChat: chat, kind: 'dm', data: { matrixUser: ev.sender, ghost } });
  }

  /** People in a room or invited to it besides `user`, the bridge's bot and its ghosts (as `asUser` sees it). */
  private async othersIn(roomId: string, asUser: string, user: string): Promise<string[]> {
    const members = await this.matrix.presentMembers(roomId, asUser);
    return members.filter((u) => u !== user && u !== this.matrix.botUserId && !this.ghostNetwork(u));
  }

  // ---------------------------------------------------------------- admin rooms and notices

  private async onBotInvite(ev: MatrixEvent): Promise<void> {
    const matrix = this.matrix;
    if (this.ghostNetwork(ev.sender)) {
      // the bridge's own ghosts invite the bot to rooms they make (direct chats): join, nothing more
      await matrix.ensureJoined(matrix.botUserId, ev.room_id);
      return;
    }
    if (this.permission(ev.sender) === 'none') {
      this.log.info('invite from a user without permission; declined', { roomId: ev.room_id, sender: ev.sender });
      await matrix.leave(matrix.botUserId, ev.room_id).catch(() => undefined);
      return;
    }
    await matrix.ensureJoined(matrix.botUserId, ev.room_id);
    const upgradedFrom = this.stores!.kv.get('core', `upgrade:${ev.room_id}`);
    if (upgradedFrom) { await this.moveLinks(upgradedFrom, ev.room_id); return; }
    if (ev.content['is_direct'] === true) {
      if ((await this.othersIn(ev.room_id, matrix.botUserId, ev.sender)).length > 0) {
        // command replies would be read by everyone there, and a group room is no one's admin room
        await matrix.sendNotice(ev.room_id, 'This room has other people in it, so it cannot be your admin room: invite me to a direct chat of your own. To bridge this room, use "link".');
        return;
      }
      this.stores!.admin.set(ev.sender, ev.room_id);
      await matrix.sendNotice(ev.room_id, `Hello! This is your Trestle admin room. Say "help" for the commands.`);
    }
  }

  /**
   * A bridged room was upgraded: its tombstone names the room that replaces it. The bot joins that
   * room and the links move there, as users do; if it may not join (a private room whose upgrader
   * did not invite it), the old room is told, and the move happens when the bot is invited.
   */
  private async onRoomUpgrade(ev: MatrixEvent): Promise<void> {
    const next = typeof ev.content['replacement_room'] === 'string' ? ev.content['replacement_room'] : undefined;
    if (!next || next === ev.room_id) return;
    const bot = this.matrix.botUserId;
    try {
      await this.matrix.ensureJoined(bot, next);
    } catch (err) {
      this.log.warn('could not join the room that replaces a bridged room; the links move when the bot is invited', { roomId: ev.room_id, replacement: next, err: err as Error });
      this.stores!.kv.set('core', `upgrade:${next}`, ev.room_id);
      await this.matrix.sendNotice(ev.room_id, `This room was upgraded to ${next}, which I could not join (${(err as Error).message}). ` +
        `Invite ${bot} there and the bridge moves with you.`).catch(() => undefined);
      return;
    }
    await this.moveLinks(ev.room_id, next);
  }

  /**
   * The room that stands for `roomId` now: itself, or the room that replaced it after upgrades
   * (so a link a network makes from its config, a static mapping, follows the room, not its tombstone).
   */
  private currentRoom(roomId: string): string {
    let room = roomId;
    for (let hops = 0; hops < 20; hops++) { // a chain of upgrades; the cap only guards against a loop
      const next = this.stores!.kv.get('core', `upgraded:${room}`);
      if (!next) break;
      room = next;
    }
    if (room !== roomId) this.log.warn('a room in the config was upgraded; linking the room that replaces it (update the config)', { configured: roomId, linked: room });
    return room;
  }

  /** Move every link of room `from` to room `to` (a room upgrade), telling the new room. */
  private async moveLinks(from: string, to: string): Promise<void> {
    this.stores!.kv.delete('core', `upgrade:${to}`);
    this.stores!.kv.set('core', `upgraded:${from}`, to);
    const moved: string[] = [];
    for (const p of this.portals.forRoom(from)) {
      // linked in the new room before unlinked in the old, so the remote chat is never without a room
      this.bridgeInfo?.moving(from, to, p.network, p.remoteChat);
      const portal = this.portals.link({ roomId: to, network: p.network, remoteChat: p.remoteChat, kind: p.kind, data: p.data, ...(p.name !== undefined ? { name: p.name } : {}) });
      this.portals.unlink(p.network, p.remoteChat, from);
      const n = this.networks.get(p.network);
      if (n) { await this.afterLink(n, portal); await this.afterUnlink(n, p, to); }
      moved.push(`${n?.identity.displayName ?? p.network} ${p.name ?? p.remoteChat}`);
    }
    if (moved.length === 0) return;
    this.log.info('a bridged room was upgraded; its links moved to the new room', { from, to, links: moved });
    await this.matrix.sendNotice(to, `This room replaces ${from}; the bridge to ${moved.join(', ')} continues here.`).catch(() => undefined);
  }

  /** Tell a user something in their admin room, creating one if they have none. */
  async notifyUser(userId: string, text: string): Promise<void> {
    const admin = this.stores!.admin;
    // once, even when two networks have news for the user at the same moment (two rooms, else)
    const roomId = admin.roomOf(userId) ?? await this.once(`admin\u0000${userId}`, async () => {
      const made = admin.roomOf(userId) ?? await this.matrix.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [userId], name: 'Trestle' });
      admin.set(userId, made);
      return made;
    });
    await this.matrix.sendNotice(roomId, text);
  }

  /** A user left their admin room, or the bot was removed from one: forgotten, so the next notice makes a new one. */
  private async onLeave(ev: MatrixEvent): Promise<void> {
    const admin = this.stores!.admin;
    const owner = admin.isAdminRoom(ev.room_id);
    if (!owner || (ev.state_key !== owner && ev.state_key !== this.matrix.botUserId)) return;
    admin.forget(owner);
    this.log.info('an admin room was left; the next notice for its user opens a new one', { roomId: ev.room_id, user: owner, left: ev.state_key });
    if (ev.state_key === owner) await this.matrix.leave(this.matrix.botUserId, ev.room_id).catch(() => undefined);
  }

  /** Tell every admin user named in `permissions` (server-wide entries cannot be messaged). */
  async notifyAdmins(text: string): Promise<void> {
    const admins = Object.entries(this.config.permissions as Record<string, string>).filter(([k, v]) => v === 'admin' && k.startsWith('@')).map(([k]) => k);
    if (admins.length === 0) this.log.warn('no admin user in permissions to tell', { text });
    for (const a of admins) await this.notifyUser(a, text).catch((err: unknown) => this.log.warn('could not notify an admin', { admin: a, err: err as Error }));
  }

  private async reportGiveUp(item: WorkItem, err: unknown): Promise<void> {
    const reason = err instanceof Error ? err.message : String(err);
    if (item.kind === MATRIX_KIND) {
      const ev = (item.payload as MatrixWork).event;
      const where = (err as { failedNetworks?: string[] }).failedNetworks?.join(', ') ?? 'the remote network';
      this.metrics.sendFailures.inc({ network: 'remote', final: 'true' });
      await this.matrix.sendNotice(ev.room_id, `⚠ ${ev.sender}: your ${whatEventIs(ev)} (${ev.event_id}) could not be delivered to ${where}: ${reason}`);
    } else if (item.kind === REMOTE_KIND) {
      const w = item.payload as RemoteWork;
      this.metrics.sendFailures.inc({ network: 'matrix', final: 'true' });
      const name = this.networks.get(w.network)?.identity.displayName ?? w.network;
      await this.matrix.sendNotice(w.roomId, `⚠ A ${w.t} from ${name} could not be delivered to this room: ${reason}`);
    }
  }

  private onEphemeral(events: EphemeralEvent[]): void {
    for (const ev of events) {
      if (ev.type === 'm.presence') { this.onPresence(ev); continue; }
      if (ev.type !== 'm.typing' || !ev.room_id) continue;
      const now = new Set(Array.isArray(ev.content['user_ids']) ? (ev.content['user_ids'] as string[]) : []);
      const before = this.typing.get(ev.room_id) ?? new Set<string>();
      this.typing.set(ev.room_id, now);
      const changes = [...new Set([...now, ...before])].filter((u) => now.has(u) !== before.has(u) && !this.ghostNetwork(u) && u !== this.matrix.botUserId);
      for (const p of this.portals.forRoom(ev.room_id)) {
        const n = this.networks.get(p.network);
        if (!n || !supportsTyping(n)) continue;
        for (const u of changes) {
          void n.handleMatrixTyping({ portal: p, user: { userId: u, displayName: u }, typing: now.has(u) })
            .catch((err: unknown) => this.log.debug('typing not bridged', { err: err as Error }));
        }
      }
    }
  }

  /** A Matrix user's presence (`m.presence`): to every network that shows it (PresenceOutCapable). */
  private onPresence(ev: EphemeralEvent): void {
    const userId = ev.sender;
    const presence = ev.content['presence'];
    if (typeof userId !== 'string' || this.ghostNetwork(userId) || userId === this.matrix.botUserId) return;
    if (presence !== 'online' && presence !== 'unavailable' && presence !== 'offline') return;
    const statusMsg = typeof ev.content['status_msg'] === 'string' && ev.content['status_msg'] ? ev.content['status_msg'] : undefined;
    for (const n of this.networks.values()) {
      if (!supportsMatrixPresence(n)) continue;
      void n.handleMatrixPresence({ userId, presence, ...(statusMsg ? { statusMsg } : {}) })
        .catch((err: unknown) => this.log.debug('presence not bridged', { err: err as Error }));
    }
  }
}

/** An address as a URL's host: an IPv6 one in brackets. */
function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
