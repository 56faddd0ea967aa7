/**
 * The appservice HTTP API the homeserver calls: transactions, user and alias queries, ping,
 * third-party lookups.
 * Tokens are checked before anything is read; malformed bodies get a 400 with a reason; a
 * transaction is acknowledged only after its events are persisted (so a crash right after the
 * 200 loses nothing), and a transaction id already processed is acknowledged and ignored.
 */
import type { Request, Response, Router } from 'express';
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { express } from '../http/express.js';
import type { Logger } from '../util/log.js';

/** The fields of a client event the bridge relies on; validated before it is persisted. */
export interface MatrixEvent {
  type: string;
  room_id: string;
  sender: string;
  event_id: string;
  origin_server_ts?: number;
  state_key?: string;
  content: Record<string, unknown>;
  redacts?: string;
  unsigned?: Record<string, unknown>;
}

export interface EphemeralEvent {
  type: string;
  room_id?: string;
  /** Whose it is, on `m.presence`. */
  sender?: string;
  content: Record<string, unknown>;
}

export interface TransactionHandler {
  /** Synchronously persist the transaction's events (and record the id), or throw. */
  persistTransaction(txnId: string, events: MatrixEvent[]): void;
  /**
   * True if this transaction id was already processed. Gets the transaction's valid events: a
   * handler that would store none of them (its own echoes) may answer false without a lookup.
   */
  seenTransaction(txnId: string, events: MatrixEvent[]): boolean;
  /** Ephemeral events (typing, receipts) are handled at once and not persisted. */
  onEphemeral(events: EphemeralEvent[]): void;
  /** Should a user in our namespace exist? Create it and resolve true, or resolve false. */
  queryUser(userId: string): Promise<boolean>;
  /** Should an alias in our namespace exist? Create the room and resolve true, or false. */
  queryAlias(alias: string): Promise<boolean>;
  /** A transaction was refused to fill a gap in the homeserver's numbering: a ping makes it resend at once. */
  onTransactionGap?(missing: string): void;
  /**
   * Whether the gap guard found, at an earlier start, that this homeserver's transaction ids are not
   * consecutive (see {@link TransactionGapGuard}), and where to note that it just did: it then stays
   * off, rather than refusing a few transactions at every start.
   */
  gapGuard?: { foundOff(): boolean; switchedOff(): void };
  /** Count of malformed events skipped, for metrics. */
  onMalformed?(reason: string): void;
  onTransactionMetrics?(events: number, outcome: 'ok' | 'duplicate' | 'rejected' | 'error'): void;
  /** Third-party lookups (`/thirdparty/...`); without them those paths answer 404. */
  thirdParty?: ThirdPartyLookups;
}

/** Answers to the homeserver's third-party lookups, as the spec shapes them; undefined = no such protocol. */
export interface ThirdPartyLookups {
  protocol(name: string): Record<string, unknown> | undefined;
  locations(protocol: string, fields: Record<string, string>): { alias: string; protocol: string; fields: Record<string, string> }[] | undefined;
  users(protocol: string, fields: Record<string, string>): { userid: string; protocol: string; fields: Record<string, string> }[] | undefined;
}

/** Query parameters as express parses them (`?a=1&a=2` is an array): one string each, the first given. */
function fieldsOf(query: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) {
    if (k === 'access_token') continue;
    const first = Array.isArray(v) ? v[0] : v;
    if (typeof first === 'string') out[k] = first;
  }
  return out;
}

function tokenMatches(given: string | undefined, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given), b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The homeserver's token: `Authorization: Bearer …`, else the (deprecated) `access_token` query parameter. */
function tokenOf(authorization: string | undefined, accessToken: unknown): string | undefined {
  if (authorization?.startsWith('Bearer ')) return authorization.slice(7).trim();
  return typeof accessToken === 'string' ? accessToken : undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why an event cannot be used, or undefined if it can. */
export function eventProblem(ev: unknown): string | undefined {
  if (!isObj(ev)) return 'event is not an object';
  for (const k of ['type', 'room_id', 'sender', 'event_id'] as const) {
    if (typeof ev[k] !== 'string' || !(ev[k] as string).length) return `event lacks a string "${k}"`;
  }
  if (!isObj(ev['content'])) return `event ${String(ev['event_id'])} has no content object`;
  // read as strings and objects further on: a number there would fail each delivery attempt
  if (ev['state_key'] !== undefined && typeof ev['state_key'] !== 'string') return `event ${String(ev['event_id'])} has a state_key that is not a string`;
  if (ev['redacts'] !== undefined && typeof ev['redacts'] !== 'string') return `event ${String(ev['event_id'])} has a "redacts" that is not a string`;
  if (ev['unsigned'] !== undefined && !isObj(ev['unsigned'])) return `event ${String(ev['event_id'])} has an "unsigned" that is not an object`;
  return undefined;
}

/**
 * Synapse numbers an appservice's transactions 1, 2, 3... and sends them in order; but a race when
 * it ends recovery after the bridge was down can leave one stored and unsent until the bridge next
 * refuses something (seen with 1.160: transaction N held back while N+1, N+2... were delivered).
 * On such a gap the guard refuses the next transaction once: the homeserver then retries from its
 * oldest unsent one, so the missing events arrive, and in order. A homeserver whose ids are not
 * consecutive numbers costs a few refusals and then the guard switches itself off, for good: the
 * bridge remembers it across restarts.
 */
export class TransactionGapGuard {
  private last?: number;
  private refused?: number;
  private falseAlarms = 0;

  /**
   * `off`: found off before (Synapse numbers the transactions of all its appservices from one
   * sequence, so with another appservice on the homeserver, gaps are the rule);
   * `onOff`: told when it switches itself off, to remember it.
   */
  constructor(private off = false, private readonly onOff?: () => void) {}

  /** 'accept', or 'refuse' (answer with an error so the homeserver resends what it holds, from the oldest). */
  check(txnId: string): { verdict: 'accept' } | { verdict: 'refuse'; missing: string } {
    if (this.off || !/^\d{1,15}$/.test(txnId)) return { verdict: 'accept' };
    const n = Number(txnId);
    if (this.last === undefined || n <= this.last + 1) return { verdict: 'accept' };
    if (this.refused === n) {
      // retried without the gap being filled: nothing was held back (or another instance took it)
      this.refused = undefined;
      if (++this.falseAlarms >= 3) { this.off = true; this.onOff?.(); }
      return { verdict: 'accept' };
    }
    this.refused = n;
    return { verdict: 'refuse', missing: this.last + 2 === n ? String(this.last + 1) : `${this.last + 1}..${n - 1}` };
  }

  /** A transaction was taken (persisted, or already seen). */
  accepted(txnId: string): void {
    if (!/^\d{1,15}$/.test(txnId)) return;
    const n = Number(txnId);
    if (this.last === undefined || n > this.last) this.last = n;
    if (this.refused !== undefined && this.refused <= n) this.refused = undefined;
  }
}

/** The transaction body's size limit (a homeserver's transactions are far smaller). */
const MAX_TRANSACTION_BYTES = 50 * 1024 * 1024;
const TRANSACTION_PATH = /^\/(?:_matrix\/app\/v1\/)?transactions\/([^/?]+)(?:\?(.*))?$/;
const PING_PATH = /^\/_matrix\/app\/v1\/ping\/?(?:\?(.*))?$/;

/**
 * The transaction endpoint as a plain node:http handler: every Matrix event arrives through it, so
 * it skips express's routing and body parsing. The homeserver's ping (which the bridge asks for
 * as it starts) is answered here too, so that start-up never waits for express. Returns false for
 * any other request (for express).
 */
export function transactionListener(hsToken: string, handler: TransactionHandler, log: Logger): (req: IncomingMessage, res: ServerResponse) => boolean {
  const gaps = new TransactionGapGuard(handler.gapGuard?.foundOff() ?? false, () => {
    log.info('transaction ids from this homeserver are not consecutive (several appservices share its numbering): gaps are no longer refused');
    handler.gapGuard?.switchedOff();
  });
  const answer = (res: ServerResponse, status: number, body: Record<string, unknown>): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  };
  return (req, res) => {
    const ping = req.method === 'POST' && req.url ? PING_PATH.exec(req.url) : null;
    if (ping) {
      // the body (an optional transaction_id) says nothing the answer depends on
      req.resume();
      if (!tokenMatches(tokenOf(req.headers.authorization, new URLSearchParams(ping[1] ?? '').get('access_token')), hsToken)) {
        handler.onTransactionMetrics?.(0, 'rejected');
        answer(res, 403, { errcode: 'M_FORBIDDEN', error: 'Bad or missing homeserver token' });
      } else answer(res, 200, {});
      return true;
    }
    const m = req.method === 'PUT' && req.url ? TRANSACTION_PATH.exec(req.url) : null;
    if (!m) return false;
    if (!tokenMatches(tokenOf(req.headers.authorization, new URLSearchParams(m[2] ?? '').get('access_token')), hsToken)) {
      handler.onTransactionMetrics?.(0, 'rejected');
      answer(res, 403, { errcode: 'M_FORBIDDEN', error: 'Bad or missing homeserver token' });
      req.resume();
      return true;
    }
    let txnId: string;
    try { txnId = decodeURIComponent(m[1]!); } catch {
      handler.onTransactionMetrics?.(0, 'error');
      answer(res, 400, { errcode: 'M_INVALID_PARAM', error: 'The transaction id is not valid percent-encoding' });
      req.resume();
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_TRANSACTION_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_TRANSACTION_BYTES) { answer(res, 413, { errcode: 'M_TOO_LARGE', error: 'Transaction too large' }); return; }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        handler.onTransactionMetrics?.(0, 'error');
        answer(res, 400, { errcode: 'M_NOT_JSON', error: `Malformed JSON: ${(err as Error).message}` });
        return;
      }
      const gap = gaps.check(txnId);
      if (gap.verdict === 'refuse') {
        log.warn('a transaction from the homeserver is missing; asking for it again', { txnId, missing: gap.missing });
        answer(res, 503, { errcode: 'M_UNKNOWN', error: `Transaction ${gap.missing} has not arrived; resend from the oldest unsent one` });
        handler.onTransactionGap?.(gap.missing);
        return;
      }
      let out: ReturnType<typeof processTransaction>;
      try {
        out = processTransaction(txnId, body, handler, log);
      } catch (err) { // e.g. the store closed under a transaction arriving during shutdown: the homeserver retries
        log.error('could not handle a transaction; the homeserver will retry it', { txnId, err: err as Error });
        answer(res, 500, { errcode: 'M_UNKNOWN', error: 'Could not handle the transaction; retry later' });
        return;
      }
      if (out.status === 200) gaps.accepted(txnId);
      answer(res, out.status, out.body);
      if (out.ephemeral?.length) {
        try { handler.onEphemeral(out.ephemeral); } catch (err) { log.warn('ephemeral events failed', { err: err as Error }); }
      }
    });
    req.on('error', (err) => log.warn('reading a transaction failed', { txnId, err }));
    return true;
  };
}

/** Validate, de-duplicate and persist one transaction; the answer for the homeserver, and the ephemeral events to handle after it. */
function processTransaction(txnId: string, body: unknown, handler: TransactionHandler, log: Logger):
  { status: number; body: Record<string, unknown>; ephemeral?: EphemeralEvent[] } {
  if (!isObj(body) || !Array.isArray(body['events'])) {
    handler.onTransactionMetrics?.(0, 'error');
    return { status: 400, body: { errcode: 'M_BAD_JSON', error: 'The transaction body must be a JSON object with an "events" array' } };
  }
  const events: MatrixEvent[] = [];
  for (const ev of body['events'] as unknown[]) {
    const problem = eventProblem(ev);
    if (problem) {
      log.warn('skipping a malformed event in a transaction', { txnId, problem });
      handler.onMalformed?.(problem);
      continue;
    }
    events.push(ev as MatrixEvent);
  }
  if (handler.seenTransaction(txnId, events)) {
    log.debug('transaction already processed; acknowledging', { txnId });
    handler.onTransactionMetrics?.(0, 'duplicate');
    return { status: 200, body: {} };
  }
  const ephemeral = [body['ephemeral'], body['de.sorunome.msc2409.ephemeral']]
    .filter(Array.isArray).flat().filter((e): e is EphemeralEvent => isObj(e) && typeof e['type'] === 'string' && isObj(e['content']));
  try {
    handler.persistTransaction(txnId, events);
  } catch (err) {
    log.error('could not persist a transaction; the homeserver will retry it', { txnId, err: err as Error });
    handler.onTransactionMetrics?.(events.length, 'error');
    return { status: 500, body: { errcode: 'M_UNKNOWN', error: 'Could not store the transaction; retry later' } };
  }
  handler.onTransactionMetrics?.(events.length, 'ok');
  return { status: 200, body: {}, ephemeral };
}

/** The rest of the appservice API (user and alias queries, third-party lookups), on express. */
export function appserviceRouter(hsToken: string, handler: TransactionHandler, log: Logger): Router {
  const router = express().Router();

  const auth = (req: Request, res: Response, next: () => void): void => {
    if (!tokenMatches(tokenOf(req.header('authorization'), req.query['access_token']), hsToken)) {
      handler.onTransactionMetrics?.(0, 'rejected');
      res.status(403).json({ errcode: 'M_FORBIDDEN', error: 'Bad or missing homeserver token' });
      return;
    }
    next();
  };

  const query = (kind: 'user' | 'alias') => async (req: Request, res: Response): Promise<void> => {
    const id = req.params['id'] ?? '';
    try {
      const exists = kind === 'user' ? await handler.queryUser(id) : await handler.queryAlias(id);
      if (exists) res.status(200).json({});
      else res.status(404).json({ errcode: 'M_NOT_FOUND', error: `No such ${kind} here` });
    } catch (err) {
      log.warn(`${kind} query failed`, { id, err: err as Error });
      res.status(404).json({ errcode: 'M_NOT_FOUND', error: `Could not create ${kind}: ${(err as Error).message}` });
    }
  };

  for (const prefix of ['/_matrix/app/v1', '']) {
    router.get(`${prefix}/users/:id`, auth, query('user'));
    router.get(`${prefix}/rooms/:id`, auth, query('alias'));
  }
  // third-party lookups: an unknown protocol, or nothing found, is a 404 (the homeserver then answers [])
  const notFound = (res: Response, what: string): void => { res.status(404).json({ errcode: 'M_NOT_FOUND', error: `No ${what} found` }); };
  router.get('/_matrix/app/v1/thirdparty/protocol/:protocol', auth, (req, res) => {
    const p = handler.thirdParty?.protocol(req.params['protocol'] ?? '');
    if (p) res.status(200).json(p); else notFound(res, 'such protocol');
  });
  for (const kind of ['location', 'user'] as const) {
    router.get(`/_matrix/app/v1/thirdparty/${kind}/:protocol`, auth, (req, res) => {
      const protocol = req.params['protocol'] ?? '';
      const fields = fieldsOf(req.query as Record<string, unknown>);
      const found = kind === 'location' ? handler.thirdParty?.locations(protocol, fields) : handler.thirdParty?.users(protocol, fields);
      if (found?.length) res.status(200).json(found); else notFound(res, found ? `${kind}s for these fields` : 'such protocol');
    });
  }
  return router;
}
