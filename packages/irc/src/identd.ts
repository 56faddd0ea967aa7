/**
 * An ident server (RFC 1413) for the bridge's IRC connections, one for every configured server.
 *
 * An IRC server that gets a new connection asks the connecting host's port 113 who owns it:
 * `<port on our side>, <port on its side>`. Without an answer the user's ident is shown as
 * `~username` (not verified), and operators ban by ident. Every connection the bridge opens (the
 * listener and each Matrix user's) registers here as soon as its socket is connected, before it
 * says NICK and USER, and leaves when its socket closes; a query is answered with the username of
 * the connection between those two ports *and the querier's own address* (RFC 1413 §3: a host may
 * only ask about connections between it and us), anything else with NO-USER.
 *
 * With a server's `addressBlock`, connections have source addresses of their own, and two of them
 * may have the same local port (a port is only unique per address). The IRC server asks ident at
 * the address the connection came from, so a query is matched to the connection whose source
 * address is the one it arrived at; a connection registered alone under its ports answers
 * whatever the address (a host behind NAT is asked at its public address). For this the ident
 * server must listen on every address of the host (`ident.bindAddress` unset, or `::`/`0.0.0.0`),
 * which also covers an IPv6 block routed to the host with `ip -6 route add local`.
 *
 * Anyone can connect to it, so it trusts nothing it reads: lines are short or the client is
 * dropped, each line is one query with one answer, a silent client is closed, and there are at
 * most `maxClients` at a time (config `ident.maxClients`, `ident.idleSeconds`). Nothing it does
 * can throw into the bridge.
 */
import { createServer, isIPv4, type Server, type Socket } from 'node:net';
import type { Logger } from '@trestle/core';

/** The longest query line kept (a real one is at most 13 bytes: `65535 , 65535`). */
export const MAX_QUERY_BYTES = 100;
/** Ident clients connected at once, at most, unless configured (`ident.maxClients`): more are refused by closing them. */
export const MAX_CLIENTS = 64;
/** A client that asks nothing for this long is closed, unless configured (`ident.idleSeconds`; RFC 1413 recommends 60-180 s). */
export const IDLE_MS = 60_000;
/** Answers a client leaves unread past this many bytes: it is dropped. */
const MAX_UNREAD_BYTES = 4096;

/** The two ports of a query, our side first; undefined when the line is not two valid ports. */
export function parseIdentQuery(line: string): { local: number; remote: number } | undefined {
  const m = /^\s*(\d{1,5})\s*,\s*(\d{1,5})\s*$/.exec(line);
  if (!m) return undefined;
  const local = Number(m[1]), remote = Number(m[2]);
  if (local < 1 || local > 65535 || remote < 1 || remote > 65535) return undefined;
  return { local, remote };
}

/**
 * The answer line (without CR LF) to one query line: the owner's username from `owner`, asked with
 * the query's ports, else NO-USER; INVALID-PORT for a line that is not two ports from 1 to 65535
 * (echoing them only when they are numbers, never the client's other bytes).
 */
export function identAnswer(line: string, owner: (local: number, remote: number) => string | undefined): string {
  const q = parseIdentQuery(line);
  if (!q) {
    const digits = /^\s*(\d{1,10})\s*,\s*(\d{1,10})\s*$/.exec(line);
    return `${digits ? `${Number(digits[1])}, ${Number(digits[2])}` : '0, 0'} : ERROR : INVALID-PORT`;
  }
  const username = owner(q.local, q.remote)?.replace(/[\0\r\n:\s]/g, '');
  return `${q.local}, ${q.remote} : ${username ? `USERID : UNIX : ${username}` : 'ERROR : NO-USER'}`;
}

/** `::ffff:127.0.0.1` (an IPv4 peer of a dual-stack socket) and `127.0.0.1` are the same host. */
function hostOf(address: string): string {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return isIPv4(v4) ? v4 : address.toLowerCase();
}

/** Where connections say who owns them: what IrcConnection and LeanConnection are given. */
export interface IdentRegistry {
  /** A connected socket of the bridge's, owned by `username` until it closes. */
  register(socket: Socket, username: string): void;
}

export class IdentServer implements IdentRegistry {
  /**
   * `local port/remote host/remote port` → the connections with those ports, by their source
   * address: the owner of each (an object per registration).
   */
  private readonly owners = new Map<string, Map<string, { username: string }>>();
  private server?: Server;
  /** Ident clients connected now, closed at stop (close() would otherwise wait for them). */
  private readonly clients = new Set<Socket>();

  /**
   * `idleMs`: how long a silent client is kept (default {@link IDLE_MS}); `maxClients`: clients at
   * once (default {@link MAX_CLIENTS}).
   */
  constructor(private readonly opts: { port: number; bindAddress?: string; log: Logger; idleMs?: number; maxClients?: number }) {}

  /** Connections registered now (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const m of this.owners.values()) n += m.size;
    return n;
  }

  register(socket: Socket, username: string): void {
    const { localAddress, localPort, remotePort, remoteAddress } = socket;
    if (!localPort || !remotePort || !remoteAddress) return; // not connected (closed already)
    const key = `${localPort}/${hostOf(remoteAddress)}/${remotePort}`;
    const from = hostOf(localAddress ?? '');
    const entry = { username };
    let byAddress = this.owners.get(key);
    if (!byAddress) this.owners.set(key, byAddress = new Map());
    byAddress.set(from, entry);
    socket.once('close', () => {
      const m = this.owners.get(key);
      if (m?.get(from) !== entry) return;
      m.delete(from);
      if (m.size === 0) this.owners.delete(key);
    });
  }

  /**
   * The owner of our connection from `local` to `remote` on the host `querier`, if it is ours;
   * `at`: the address of ours the query arrived at, which tells apart connections of different
   * source addresses with the same ports.
   */
  owner(local: number, querier: string, remote: number, at?: string): string | undefined {
    const m = this.owners.get(`${local}/${hostOf(querier)}/${remote}`);
    if (!m) return undefined;
    const exact = at !== undefined ? m.get(hostOf(at)) : undefined;
    if (exact) return exact.username;
    return m.size === 1 ? m.values().next().value!.username : undefined;
  }

  /**
   * Listen. A port that cannot be had (in use; 113 without CAP_NET_BIND_SERVICE) is logged, not
   * thrown: the bridge works without ident, its users are only shown with `~`. Resolves whether
   * it listens.
   */
  start(): Promise<boolean> {
    const { port, bindAddress, log } = this.opts;
    const server = createServer((sock) => this.serve(sock));
    const max = this.opts.maxClients ?? MAX_CLIENTS;
    server.maxConnections = max;
    server.on('drop', (d?: { remoteAddress?: string }) => log.warn('too many ident clients at once; closed one (ident.maxClients)', { from: d?.remoteAddress, max }));
    this.server = server;
    return new Promise((resolve) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'EACCES' ? ' (a port below 1024 needs CAP_NET_BIND_SERVICE, or redirect it to a high port)' : '';
        log.error(`the ident server cannot listen${hint}; IRC servers will show usernames as unverified (~)`, { port, bindAddress, err });
        this.server = undefined;
        resolve(false);
      });
      server.listen({ port, ...(bindAddress ? { host: bindAddress } : {}) }, () => {
        server.on('error', (err) => log.warn('ident server error', { err }));
        log.info('ident server listening', { port, bindAddress: bindAddress ?? '(all addresses)' });
        resolve(true);
      });
    });
  }

  /** The address it listens on (tests: with port 0). */
  address(): { port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { port: a.port } : undefined;
  }

  stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const sock of this.clients) sock.destroy();
    return closed;
  }

  private serve(sock: Socket): void {
    const querier = sock.remoteAddress ?? '';
    const at = sock.localAddress;
    const log = this.opts.log;
    let buffered = '';
    this.clients.add(sock);
    sock.once('close', () => this.clients.delete(sock));
    sock.setEncoding('latin1'); // bytes as they are: a query is ASCII, anything else is not a port
    sock.setTimeout(this.opts.idleMs ?? IDLE_MS, () => sock.destroy());
    sock.on('error', (err) => log.debug('ident client error', { from: querier, err }));
    sock.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        if (line.length > MAX_QUERY_BYTES) { this.tooLong(sock, querier); return; }
        const answer = identAnswer(line, (local, remote) => this.owner(local, querier, remote, at));
        log.debug('ident query answered', { from: querier, answer });
        sock.write(`${answer}\r\n`);
        if (sock.writableLength > MAX_UNREAD_BYTES) { sock.destroy(); return; }
      }
      if (buffered.length > MAX_QUERY_BYTES) this.tooLong(sock, querier);
    });
  }

  private tooLong(sock: Socket, querier: string): void {
    this.opts.log.debug('ident query line too long; closing the client', { from: querier });
    sock.removeAllListeners('data');
    sock.end('0, 0 : ERROR : INVALID-PORT\r\n', () => sock.destroy());
  }
}
