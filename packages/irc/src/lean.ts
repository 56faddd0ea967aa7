/**
 * A lean IRC connection for Matrix users' own connections (the listener keeps irc-framework).
 *
 * A bridge with 1,000 Matrix users in one channel receives every channel line 1,000 times, once
 * per connection. A full client library parses each copy, tracks every channel member and emits
 * events nobody listens to; this one drops other people's channel traffic after a cheap prefix
 * check and keeps only what a user connection needs: registration (CAP, SASL PLAIN, nick
 * collisions), its own nick and channels, private messages (a draft/multiline one as one message),
 * the echoes that carry its msgids, and standard replies. Same send queue, reconnect and
 * labeled-echo contract as {@link IrcConnection}.
 *
 * Reading is where the CPU goes: each Matrix message sent to a channel of 100 bridged users comes
 * back 100 times. So a plain-TCP connection reads raw bytes into one buffer shared by all
 * connections (no stream machinery, no string for lines it drops), and a connection that is not
 * waiting for an answer *rests* after a read: it stops reading for `REST_MS` (longer while
 * it hears only chatter, up to `REST_MAX_MS`; resting.ts) and then takes everything that arrived
 * meanwhile in one read. A connection waiting for an echo or a reply reads at once. Order is
 * unaffected (one TCP stream per connection); a private message may wait up to
 * `REST_MAX_MS` longer.
 */
import { EventEmitter } from 'node:events';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { DeliveryError } from '@trestle/core';
import { Barriers, isErrorReply, type BarrierLine } from './barriers.js';
import { OpenBatches, type PrivateBatch } from './batches.js';
import { reconnectAfterLoss, registerDeadline } from './connection.js';
import { lineDecoder } from './convert/encoding.js';
import { CtcpLimiter, privateMessage } from './ctcp.js';
import { joinLines, Pacer } from './flood.js';
import { escapeTag, parseLine, type IrcLine } from './ircline.js';
import { OfferedCaps } from './offered.js';
import { LineReader } from './reader.js';
import { READ_BUFFER, REST_MAX_MS, REST_MS, rest, wake } from './resting.js';
import { ircLower, moveChannel } from './ids.js';
import { JoinWaits } from './joins.js';
import { NickServLogin } from './login.js';
import { nextNick, NickRegain } from './nicks.js';
import { BANNED, NICK_ERRORS } from './numerics.js';
import { SaslLogin } from './sasl.js';
import { LoginHold, NO_CAP_REPLIES, type Route } from './sts.js';
import { joinMultiline, type MultilinePart } from './convert/index.js';

import type { LeanOptions } from './leanOptions.js';

export type { LeanOptions };

type LineKind = 'PRIVMSG' | 'NOTICE' | 'ACTION' | 'TAGMSG' | 'REDACT' | 'TOPIC' | 'RAW' | 'MULTILINE';
interface Pending {
  command: LineKind; target: string; text: string; tags: Record<string, string>;
  /** For MULTILINE: the batch's lines and the command each is sent with. */
  multiline?: { command: 'PRIVMSG' | 'NOTICE'; parts: readonly MultilinePart[] };
  /** The turn it was queued in: the lines of one message are queued together (see onClosed). */
  turn: number;
  resolve: (id: string | undefined) => void; reject: (e: Error) => void;
}

/** A line on the wire waiting for its answer: `settle` answers it (echo msgid, or the server's refusal); `lost` fails it. */
interface Awaiting { turn: number; settle: (id: string | undefined, refusal?: string) => void; lost: () => void }

const WANTED_CAPS = ['echo-message', 'labeled-response', 'message-tags', 'server-time', 'batch', 'draft/message-redaction', 'draft/multiline', 'draft/channel-rename'];

/** Channel chatter from others: `[@tags ]:prefix PRIVMSG|NOTICE|TAGMSG #chan`; dropped unless it carries our label. */
const CHANNEL_CHATTER = /(?:@\S+ )?:\S+ (?:PRIVMSG|NOTICE|TAGMSG) [#&+!]/y; // sticky: tested at a line's start

/** The longest wait, after our QUIT, for the answers of lines written before it (at most `answerMs`). */
const QUIT_GRACE_MS = 5000;
/** A line not sent or not confirmed on a connection quit on purpose: an outage, retried through the pool's new connection. */
const closedError = (): DeliveryError => new DeliveryError('the IRC connection was closed before the server confirmed the message', false, { unreachable: true });
/** A line not confirmed on a connection lost: an outage, not a refusal (the retry waits in the reconnecting connection's queue, spending no attempt). */
const lostError = (): DeliveryError => new DeliveryError('the IRC connection was lost before the server confirmed the message', false, { unreachable: true });

export class LeanConnection extends EventEmitter {
  state: 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed' = 'idle';
  private currentNick: string;
  /** The nick registration asks for: the configured one, then each one a NICK written here asked for and got (not one forced or taken instead). */
  private wantedNick: string;
  private askedNick?: string; // (the last NICK written after registration, until the server makes it)
  /** Called when the nick changes (the server keeps an index of its connections' nicks). */
  onNickChange?: () => void;
  get nick(): string { return this.currentNick; }
  set nick(nick: string) {
    if (nick === this.currentNick) return;
    this.currentNick = nick;
    this.onNickChange?.();
  }
  readonly channels = new Map<string, string | undefined>();
  lastActive = Date.now();
  readonly caps = new Set<string>();
  nickLen = 30;
  /** Client-only tags the server refuses to relay (ISUPPORT CLIENTTAGDENY): `*` and exceptions `-tag`. */
  private tagDeny: string[] = [];
  private socket?: Socket;
  /** Where the current socket went: the configured port and transport, or TLS under an STS policy. */
  private route: Route;
  /** The server asked this plaintext connection to use TLS (STS): it opens again at once, with TLS. */
  private upgrading = false;
  /** How long the socket rests after the current read (see REST_MS). */
  private restMs = REST_MS;
  /** Cuts the socket's reads into lines (reader.ts). */
  private readonly reader: LineReader;
  private readonly joined = new Set<string>();
  private queue: Pending[] = [];
  /** Lines written with a label and not yet answered (echo, refusal, or the PONG of a check): label → how to settle. */
  private readonly awaiting = new Map<string, Awaiting>();
  private labelSeq = 0;
  /** A pump of the send queue is due at the end of this turn (see enqueue). */
  private pumpQueued = false;
  /** Counts the turns lines were queued in (Pending.turn). */
  private turns = 0;
  /** Paces the send queue (LeanOptions.flood; flood.ts). */
  private readonly pacer: Pacer;
  /** Lines written without a label, by the PING written after them (their barrier), and the refusals heard meanwhile (barriers.ts). */
  private readonly barriers = new Barriers();
  private readonly joinWaits = new JoinWaits();
  /**
   * The check of a connection whose server is slow to answer (see suspect()): the PING's token, the
   * labels written before it, whether a later line also went unanswered too long, and the timer
   * that takes the connection for dead.
   */
  private probe?: { token: string; before: string[]; again: boolean; timer: NodeJS.Timeout };
  private probeSeq = 0;
  private attempts = 0;
  private nickAttempt = 0;
  /** The nick asked for, when registration had to take another: taken back once free (nicks.ts). */
  private readonly regain = new NickRegain();
  /** This connection attempt's SASL login (set when the server's capabilities are known). */
  private sasl?: SaslLogin;
  /** This attempt's CAP END is written: negotiation is over (a later CAP ACK, of a cap-notify CAP REQ, starts nothing). */
  private capEnded = false;
  /** Capabilities the server offers, with their values (offered.ts). */
  private readonly offered: OfferedCaps;
  private batchSeq = 0;
  /**
   * Open batches (batches.ts): `labeled-response` ones (a command answered with several lines, a
   * message to an away user: the echo and RPL_AWAY; the label is on the batch, the msgid on the
   * echo inside it), and `draft/multiline` private messages, emitted as one 'pm' when they close.
   */
  private readonly batches: OpenBatches;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private timer?: NodeJS.Timeout;
  /** Drops a connection the server has not registered in time (see LeanOptions.timeouts). */
  private registerTimer?: NodeJS.Timeout;
  private intentionalQuit = false;
  /**
   * Why the server refused to register this connection (banned: 465 or an ERROR naming a ban, a
   * bad server password: 464): it closes, and no reconnect changes that. Set before registration only.
   */
  private refusedWhy?: string;
  /** PASS, NICK and USER of a plaintext connection with a server password, until the server's CAP LS (sts.ts). */
  private readonly loginHold = new LoginHold();
  /** The NickServ IDENTIFY after registration, if any: the JOINs, the send queue and connect() wait for its answer (login.ts). */
  private readonly nickserv: NickServLogin;
  /** What to tell the user when the socket could not take its source address (see LeanOptions.localAddress). */
  private cannotBind?: string;

  private readonly ctcpLimit = new CtcpLimiter();
  /** Reads a line's bytes: UTF-8, or `encodingFallback` for a line that is not (convert/encoding.ts). */
  private readonly decode: (buf: Buffer, start: number, end: number) => string;

  constructor(private readonly opts: LeanOptions) {
    super();
    this.decode = lineDecoder(opts.encodingFallback);
    this.pacer = new Pacer(opts.flood);
    this.reader = new LineReader(opts.log);
    this.offered = new OfferedCaps(opts.log);
    this.batches = new OpenBatches(opts.log, (pm) => this.onPrivateBatch(pm));
    this.nickserv = new NickServLogin(opts, (line) => this.write(line), () => this.ready(), (why) => this.emit('login refused', why));
    this.currentNick = this.wantedNick = opts.nick;
    if (opts.nickLen) this.nickLen = opts.nickLen;
    this.route = { port: opts.port, tls: opts.tls };
  }

  /** The transport of the current connection: TLS or not, and the port (TLS may be an STS policy's, not the config's). */
  get via(): Route { return this.route; }

  /** The away message set (AWAY), kept across reconnects; undefined: not away. */
  private awayText?: string;

  /** Mark the user away on IRC with `text`, or back (undefined). Said only when it changes; set again after a reconnect. */
  setAway(text: string | undefined): void {
    const t = text?.replace(/[\r\n\0]+/g, ' ').trim().slice(0, 200) || (text === undefined ? undefined : 'Away');
    if (t === this.awayText) return;
    this.awayText = t;
    if (this.state === 'connected') this.write(t === undefined ? 'AWAY' : `AWAY :${t}`);
  }

  get username(): string { return this.opts.username; }
  isIn(channel: string): boolean { return this.joined.has(ircLower(channel)); }

  connect(): Promise<void> {
    if (this.state === 'connected' && !this.nickserv.holding) return Promise.resolve();
    // quit for good: opening again would make a connection its server no longer knows (see enqueue)
    if (this.state === 'closed' && this.intentionalQuit) return Promise.reject(closedError());
    const p = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    if (this.state === 'idle' || this.state === 'closed') { this.intentionalQuit = false; this.open(); }
    return p;
  }

  private open(): void {
    this.state = 'connecting';
    this.caps.clear();
    this.offered.clear();
    this.sasl = undefined;
    this.capEnded = false;
    this.tagDeny = [];
    this.batches.clear();
    this.nickAttempt = 0;
    this.regain.reset();
    this.reader.reset();
    this.refusedWhy = undefined;
    this.cannotBind = undefined;
    this.upgrading = false;
    const o = this.opts;
    if (o.cannotOpen) { this.refused(o.cannotOpen); return; }
    const route = this.route = o.sts?.route() ?? { port: o.port, tls: o.tls };
    // the server's name is looked up in the family of the source address
    const from = o.localAddress ? { localAddress: o.localAddress, family: isIP(o.localAddress) } : {};
    let sock: Socket;
    if (route.tls) {
      sock = tlsConnect({
        host: o.host, port: route.port, ...from, ...(isIP(o.host) ? {} : { servername: o.host }), ...(o.tlsCa ? { ca: o.tlsCa } : {}),
        ...(o.clientCert ? { cert: o.clientCert.cert, key: o.clientCert.key } : {}),
      });
      sock.on('data', (chunk: Buffer) => this.onBytes(chunk, chunk.length));
    } else {
      sock = netConnect({
        host: o.host, port: route.port, ...from,
        onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.onBytes(buf as Buffer, n) },
      });
    }
    this.socket = sock;
    clearTimeout(this.registerTimer);
    this.registerTimer = registerDeadline(o.timeouts.registerMs, o.log, () => sock.destroy());
    sock.setKeepAlive(true, 60_000);
    // the server may ask ident as soon as it accepts the connection (listeners run in order: this one first)
    if (o.ident) sock.once('connect', () => o.ident!.register(sock, o.username));
    sock.once(route.tls ? 'secureConnect' : 'connect', () => {
      this.write('CAP LS 302');
      // a server password on plaintext waits for the server's STS answer (sts.ts LoginHold)
      if (!route.tls && o.password && o.sts) this.loginHold.begin();
      const login = (): void => {
        if (o.password) this.write(`PASS :${o.password}`);
        this.write(`NICK ${this.wantedNick}`);
        this.write(`USER ${o.username} 0 * :${o.realname}`);
      };
      if (!this.loginHold.hold(login)) login();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      // a TLS failure is worth a warning: the certificate, or a TLS port (an STS policy's) that does not answer
      if (route.tls && this.state !== 'connected') this.opts.log.warn('could not connect with TLS', { port: route.port, err: err.message });
      else this.opts.log.debug('IRC socket error', { err });
      if (err.code === 'EADDRNOTAVAIL' && o.localAddress && this.state !== 'connected') {
        this.cannotBind = `the bridge cannot use the address ${o.localAddress} for your IRC connection (an administrator must route its address block to the bridge's host)`;
        this.emit('address unavailable', o.localAddress, err);
      }
    });
    sock.on('close', () => { wake(sock); if (this.socket === sock) this.onClosed(); });
  }

  /** The last guard against command injection: no line leaves with CR, LF or NUL inside it. */
  private write(line: string): void {
    wake(this.socket); // what we send is usually answered: read the answer as soon as it comes
    this.restMs = REST_MS;
    this.pacer.written(); // the server counts every line
    this.socket?.write(line.replace(/[\r\n\0]/g, '') + '\r\n');
  }

  /**
   * Bytes from the socket (`buf` may be the shared read buffer: used only during this call).
   * Returns false to rest the socket (plain TCP only; see the class comment).
   */
  private onBytes(buf: Buffer, n: number): boolean {
    // the lines dropped (nearly all of them under load) cost no substring and no UTF-8: the
    // chatter test reads the read's one latin1 copy
    let forUs = false;
    this.reader.read(buf, n, (view, text, start, end) => {
      if (this.isChatter(text, start, end)) return;
      forUs = true;
      const line = parseLine(this.decode(view, start, end));
      if (line) this.onLine(line);
    });
    this.restMs = forUs ? REST_MS : Math.min(REST_MAX_MS, this.restMs * 2);
    const sock = this.socket;
    if (!sock || this.route.tls || this.state !== 'connected' || this.awaiting.size > 0 || this.queue.length > 0 || this.nickserv.holding) return true;
    rest(sock, this.restMs);
    return false;
  }

  /** Someone else's message in a channel: nothing to this connection, unless it answers our label. */
  private isChatter(text: string, start: number, end: number): boolean {
    CHANNEL_CHATTER.lastIndex = start;
    if (!CHANNEL_CHATTER.test(text)) return false;
    if (text.charCodeAt(start) !== 64 /* @: no tags, no label */) return true;
    const tags = text.slice(start, text.indexOf(' ', start)); // bounded: never search past this line
    return !tags.includes('label=') && !(this.batches.anyLabeled && tags.includes('batch='));
  }

  private onLine(l: IrcLine): void {
    const p = l.params;
    if (this.loginHold.holding && NO_CAP_REPLIES.has(l.command)) this.loginHold.release();
    if (this.nickserv.holding) this.nickserv.heard(l);
    const mine = l.nick !== '' && ircLower(l.nick) === ircLower(this.nick);
    // the label of the command this line answers: on the line itself, or on the batch it is in
    const label = l.tags['label'] ?? (l.tags['batch'] ? this.batches.labelOf(l.tags['batch']) : undefined);
    switch (l.command) {
      case 'PING': this.write(`PONG :${p[p.length - 1] ?? ''}`); return;
      case 'PONG': {
        const token = p[p.length - 1] ?? '';
        if (this.probe && token === this.probe.token) this.passed();
        else for (const b of this.barriers.answered(token)) this.settle(b.key, undefined, b.refusal);
        return;
      }
      case 'CAP': return this.onCap(p);
      case 'AUTHENTICATE': {
        const answer = this.sasl?.answer(p[0] ?? '');
        if (answer) for (const line of answer) this.write(line);
        else if (!this.capEnded) { // a question PLAIN and EXTERNAL have no answer to: given up, not left hanging (sasl.ts)
          this.opts.log.warn('the IRC server asked a SASL question the login cannot answer; continuing without SASL', { challenge: (p[0] ?? '').slice(0, 40) });
          this.write('AUTHENTICATE *');
          this.endCap();
        }
        return;
      }
      case '902': case '903': case '904': case '905': case '906': case '907':
        if (this.capEnded && l.command !== '903') return; // the 906 of a login given up (above)
        if ((l.command === '904' || l.command === '905') && this.nextSasl(p)) return;
        if (l.command === '903' && this.sasl) this.sasl.loggedIn = true;
        else {
          this.opts.log.warn('SASL login failed; continuing without it', { reply: p.join(' ') });
          // with NickServ as the fallback, that one's answer is the one to tell; 902 (ERR_NICKLOCKED:
          // the account must use its own nick) is no other mechanism's to mend
          if ((l.command === '904' || l.command === '902') && this.opts.identify?.mode !== 'fallback') this.emit('login refused', p[p.length - 1] ?? 'SASL authentication failed');
        }
        this.endCap();
        return;
      case '001':
        this.nick = p[0] ?? this.nick;
        clearTimeout(this.registerTimer);
        this.state = 'connected';
        this.attempts = 0;
        this.pacer.restart();
        this.opts.log.info('IRC connection registered', { nick: this.nick });
        this.nickserv.registered(this.sasl?.loggedIn === true);
        if (this.opts.userModes) this.write(`MODE ${this.nick} ${this.opts.userModes}`);
        if (this.awayText !== undefined) this.write(`AWAY :${this.awayText}`);
        this.regain.registered(this.wantedNick, this.nick);
        this.emit('registered', this.nick);
        if (!this.nickserv.holding) this.ready();
        return;
      case '005': {
        const nl = p.find((x) => x.startsWith('NICKLEN='));
        if (nl) this.nickLen = Number(nl.slice(8)) || this.nickLen;
        const deny = p.find((x) => x.startsWith('CLIENTTAGDENY='));
        if (deny) this.tagDeny = deny.slice(14).split(',').filter(Boolean);
        if (p.some((x) => x === 'MONITOR' || x.startsWith('MONITOR='))) for (const line of this.regain.monitorOffered()) this.write(line);
        return;
      }
      case '731': { // RPL_MONOFFLINE: the nick to take back may be free
        const free = this.regain.offline((p[p.length - 1] ?? '').split(','));
        if (free) {
          this.opts.log.debug('the nick asked for is free again; taking it back', { nick: free });
          this.write(`NICK ${free}`);
        }
        return;
      }
      // in use, invalid, collided, temporarily unavailable (a nick delay, a reserved nick): another one,
      // or registration waits for an answer that never comes, until it times out, at every reconnect.
      // Only one in use is watched to be taken back (MONITOR says a delayed nick is free: it is not)
      case '433': case '432': case '436': case '437':
        if (this.state !== 'connected') {
          this.nickAttempt++;
          this.regain.refused(l.command === '433');
          this.write(`NICK ${l.command === '432' ? `M${Date.now().toString(36)}` : nextNick(this.wantedNick, this.nickAttempt, this.nickLen)}`);
          return;
        }
        break;
      case 'BATCH': {
        const ref = p[0] ?? '';
        if (ref.startsWith('+') && l.tags['label']) {
          // (only for a label still waiting: a server's batches for labels of its own would only take memory)
          if (p[1] === 'labeled-response') { if (this.awaiting.has(l.tags['label'])) this.batches.openLabeled(ref.slice(1), l.tags['label']); }
          else this.settle(l.tags['label'], l.tags['msgid']); // the echo of our multiline message: the msgid is on its opening line
        } else if (ref.startsWith('+') && p[1] === 'draft/multiline' && !mine && p[2] && ircLower(p[2]) === ircLower(this.nick)) {
          this.batches.openPrivate(ref.slice(1), l.nick, l.tags);
        } else if (ref.startsWith('-')) {
          const open = this.batches.close(ref.slice(1)); // (a private message is emitted)
          if (open) this.settle(open, undefined); // answered without an echo: sent, id unknown
        }
        return;
      }
      case 'NICK':
        if (mine) {
          this.nick = p[0] ?? this.nick;
          if (this.askedNick !== undefined && ircLower(this.nick) === ircLower(this.askedNick)) { this.wantedNick = this.nick; this.askedNick = undefined; }
          for (const line of this.regain.nickChanged()) this.write(line);
          this.emit('own nick', this.nick);
        }
        return;
      case 'JOIN':
        if (mine && p[0]) { this.joined.add(ircLower(p[0])); this.joinWaits.answered(ircLower(p[0])); this.emit('joined', ircLower(p[0])); }
        return;
      case 'PART':
        if (mine && p[0]) this.joined.delete(ircLower(p[0]));
        return;
      case 'RENAME':
        // IRCv3 draft/channel-rename: the server moved the channel, and this connection with it
        if (p[0] && p[1]) { moveChannel(this.channels, p[0], p[1]); moveChannel(this.joined, p[0], p[1]); }
        return;
      case 'KICK':
        if (p[1] && ircLower(p[1]) === ircLower(this.nick) && p[0]) {
          this.joined.delete(ircLower(p[0]));
          this.channels.delete(ircLower(p[0]));
          this.emit('kicked', { channel: p[0], nick: l.nick, reason: p[2] });
        }
        return;
      case 'TOPIC':
        if (label) this.settle(label, undefined); // our topic, set
        return;
      case 'INVITE':
        // someone invites this connection's user into a channel
        if (p[1] && p[0] && ircLower(p[0]) === ircLower(this.nick)) this.emit('invited', { nick: l.nick, channel: p[1] });
        return;
      case 'PRIVMSG': case 'NOTICE': case 'TAGMSG': case 'REDACT': case 'ACK': {
        if (label) this.settle(label, l.tags['msgid']);
        const ref = l.tags['batch'];
        if (ref !== undefined && (l.command === 'PRIVMSG' || l.command === 'NOTICE') && this.batches.line(ref, l.command, p[1] ?? '', 'draft/multiline-concat' in l.tags)) return;
        if ((l.command === 'PRIVMSG' || l.command === 'NOTICE') && !mine && p[0] && ircLower(p[0]) === ircLower(this.nick)) this.onPrivate(l);
        return;
      }
      case 'FAIL':
        this.opts.log.warn('the IRC server refused a command', { reply: p.join(' ') });
        // a server that lets only logged-in users in (ergo's require-sasl; IRCv3 account-required):
        // without a working login, no reconnect helps (`storepass` does)
        if (p[1] === 'ACCOUNT_REQUIRED' && this.state !== 'connected') {
          this.refusedWhy = `${p[p.length - 1] ?? 'an account is required'} (store your account's password with storepass)`;
        }
        if (p[0] === 'NICK' && this.state === 'connected') this.emit('nick error', p[p.length - 1] ?? 'refused');
        if (label) this.settle(label, undefined, p[p.length - 1] ?? 'refused');
        return;
      case '501': // ERR_UMODEUNKNOWNFLAG: a mode of userModes the server does not have
        this.opts.log.warn('the IRC server refused a user mode (check userModes)', { userModes: this.opts.userModes, reply: p.slice(1).join(' ') });
        return;
      case 'ERROR':
        if (this.intentionalQuit) this.opts.log.debug('IRC connection closed', { reason: p[0] });
        else this.opts.log.warn('the IRC server closed the connection', { reason: p[0] });
        if (this.state !== 'connected' && !this.refusedWhy && BANNED.test(p[0] ?? '')) this.refusedWhy = p[0];
        return;
    }
    if ((l.command === '465' || l.command === '464') && this.state !== 'connected') this.refusedWhy = p[p.length - 1] ?? 'refused';
    // (437 names a channel when it refuses a JOIN: a channel held after a split)
    if (NICK_ERRORS[l.command] && this.state === 'connected' && !/^[#&+!]/.test(p[1] ?? '')) {
      this.emit('nick error', NICK_ERRORS[l.command]!(p[1] ?? '', p[p.length - 1] ?? ''));
    }
    // ERR_UNKNOWNERROR about NICK (ergo: "You must use your account name as your nickname")
    if (l.command === '400' && p[1] === 'NICK' && this.state === 'connected') this.emit('nick error', p[p.length - 1] ?? 'refused');
    this.joinWaits.refusal(l.command, p); // the listener's rule too (connection.ts): one place says what refuses a JOIN
    if (!isErrorReply(l.command)) return;
    // an error reply to a labeled command (404 cannot send to channel: banned, +m...) refuses it;
    // without labels, perhaps the first line to its target under the oldest barrier (barriers.ts)
    if (label) this.settle(label, undefined, p.slice(1).join(' '));
    else if (p[1]) this.barriers.error(l.command, ircLower(p[1]), p.slice(1).join(' '));
  }

  private onCap(p: string[]): void {
    const sub = p[1];
    if (sub === 'LS') {
      const more = p[2] === '*';
      this.offered.add(p[more ? 3 : 2]);
      if (more || this.sasl) return; // (an LS unasked, after ours was answered, starts nothing again)
      // IRCv3 STS: asked to use TLS, this plaintext connection closes before any login is sent (see sts.ts)
      if (this.stsOffered(this.offered.get('sts') ?? this.offered.get('draft/sts'))) return;
      this.loginHold.release();
      const want = WANTED_CAPS.filter((c) => this.offered.has(c));
      // nickserv.identify 'only': no SASL at all, NickServ IDENTIFY after registration instead
      this.sasl = new SaslLogin(this.opts.sasl, this.route.tls && this.opts.clientCert !== undefined, this.opts.identify?.mode === 'only' ? undefined : this.offered.get('sasl'));
      if (this.sasl.wanted) want.push('sasl');
      if (want.length) this.write(`CAP REQ :${want.join(' ')}`); else this.endCap();
    } else if (sub === 'ACK') {
      for (const c of (p[2] ?? '').split(' ').filter(Boolean)) this.caps.add(c);
      if (this.state === 'connected') return; // caps offered later (NEW), granted: nothing more to negotiate
      if (!this.capEnded && this.caps.has('sasl') && this.sasl?.wanted) this.write(this.sasl.begin()); else this.endCap();
    } else if (sub === 'NAK') {
      this.endCap();
    } else if (sub === 'NEW') {
      // a policy announced later (cap-notify, implied by CAP LS 302) is acted on as at registration:
      // refreshed or withdrawn over TLS; in plaintext the connection moves to TLS now (its unanswered
      // lines are sent again there)
      const names = this.offered.add(p[2]);
      const sts = names.includes('sts') ? this.offered.get('sts') : names.includes('draft/sts') ? this.offered.get('draft/sts') : undefined;
      if (this.stsOffered(sts)) return;
      // others wanted (a module loaded, multiline enabled): asked for as at registration (before it,
      // the REQ of CAP LS is under way: another would end the negotiation early, SASL and all)
      const want = WANTED_CAPS.filter((c) => names.includes(c) && !this.caps.has(c));
      if (this.state === 'connected' && want.length) this.write(`CAP REQ :${want.join(' ')}`);
    } else if (sub === 'DEL') {
      // withdrawn (cap-notify): no longer relied on, so a message is not sent as a multiline batch or
      // with a label the server no longer answers. Not sts: the STS spec forbids taking a policy away
      // so (a policy ends with duration=0), and a server that may not be trusted must not be able to.
      for (const name of this.offered.remove(p[2], ['sts', 'draft/sts'])) this.caps.delete(name);
    }
  }

  /** Ends capability negotiation, once per connection attempt: the server registers the connection after it. */
  private endCap(): void {
    if (this.capEnded) return;
    this.capEnded = true;
    this.write('CAP END');
  }

  /** An STS policy offered (`CAP LS` or `CAP NEW`): true if it moves this connection to TLS, closed for that now. */
  private stsOffered(sts: string | undefined): boolean {
    if (sts === undefined || this.opts.sts?.offered(sts, this.route) === undefined) return false;
    this.upgrading = true;
    this.socket?.destroy();
    return true;
  }

  /** Registered, and logged in if it logs in through NickServ: back into its channels, connect() resolves, the queue goes out. */
  private ready(): void {
    for (const line of joinLines(this.channels)) this.write(line); // few lines, not one per channel: flood.ts
    for (const w of this.readyWaiters.splice(0)) w.resolve();
    this.pump();
  }

  /** A SASL mechanism failed (904/905): try the next one, if any. */
  private nextSasl(reply: string[]): boolean {
    const step = this.sasl?.next();
    if (!step) return false;
    this.opts.log.info(`SASL ${step.failed ?? ''} login failed; trying ${step.next}`, { reply: reply.join(' ') });
    this.write(step.line);
    return true;
  }

  private onPrivate(l: IrcLine): void {
    const { show, answer } = privateMessage(l.command === 'NOTICE' ? 'NOTICE' : 'PRIVMSG', l.params[1] ?? '', new Date());
    if (answer && l.nick && this.ctcpLimit.allow(Date.now())) this.write(`NOTICE ${l.nick} :${answer}`);
    if (show) this.emit('pm', { type: show.type, nick: l.nick, target: l.params[0], message: show.text, tags: l.tags });
  }

  /** A `draft/multiline` private message, whole: one 'pm' with its lines joined and the batch's tags (msgid, time). */
  private onPrivateBatch({ nick, command, lines, tags }: PrivateBatch): void {
    const type = command === 'NOTICE' ? 'notice' : 'privmsg';
    this.emit('pm', { type, nick, target: this.nick, message: joinMultiline(lines), tags });
  }

  private settle(label: string, msgid: string | undefined, refusal?: string): void {
    const waiting = this.awaiting.get(label);
    if (!waiting) return;
    this.awaiting.delete(label);
    waiting.settle(msgid, refusal);
    if (!this.probe) return;
    // an answer during a check: the server is at work on our lines, only slow
    clearTimeout(this.probe.timer);
    if (this.awaiting.size === 0) this.probe = undefined;
    else this.probe.timer = this.deadline();
  }

  /**
   * A labeled line has had no answer for `answerMs`. The server may be slow (under load) or gone
   * without the socket knowing (a half-open TCP connection, a frozen server): counting the line as
   * sent would lose it silently in the second case, failing it at once would send it twice in the
   * first. So ask: a server answers a connection's commands in order, so the PONG of a PING written
   * now comes after the answers of every line written before it. The PONG settles those still
   * unanswered as sent (the server had them and said nothing), and each answer meanwhile shows the
   * server at work and restarts the wait. Nothing at all for `answerMs`: the connection is dead.
   * It is destroyed, which fails the unanswered lines as lost (retryable: core's queue sends them
   * again once the connection is back; one the server did get shows twice, which is seen, where a
   * loss is not) and reconnects it.
   */
  private suspect(): void {
    if (this.state !== 'connected') return;
    if (this.probe) { this.probe.again = true; return; }
    const token = `trestle${++this.probeSeq}`;
    this.probe = { token, before: [...this.awaiting.keys()], again: false, timer: this.deadline() };
    this.opts.log.debug('the IRC server is slow to answer; checking the connection', { unanswered: this.awaiting.size });
    this.write(`PING :${token}`);
  }

  private deadline(): NodeJS.Timeout {
    const sock = this.socket;
    return setTimeout(() => {
      this.opts.log.warn('the IRC server answers nothing; dropping the connection to reconnect', {
        unanswered: this.awaiting.size, silentMs: this.opts.timeouts.answerMs,
      });
      sock?.destroy();
    }, this.opts.timeouts.answerMs);
  }

  /** The PONG of the check: what was written before the PING and is still unanswered was sent. */
  private passed(): void {
    const { before, again, timer } = this.probe!;
    clearTimeout(timer);
    this.probe = undefined;
    for (const label of before) this.settle(label, undefined);
    if (again && this.awaiting.size > 0) this.suspect(); // a later line also waited too long: check again
  }

  private onClosed(): void {
    clearTimeout(this.registerTimer);
    this.pacer.stop();
    this.loginHold.drop();
    this.nickserv.drop();
    clearTimeout(this.probe?.timer);
    this.probe = undefined;
    this.joined.clear();
    this.opts.sts?.closed(this.route);
    const unanswered = [...this.awaiting.values()];
    this.awaiting.clear();
    this.barriers.clear();
    if (this.intentionalQuit || this.state === 'closed') {
      // written before our QUIT, unanswered until the close: perhaps never had (a frozen server);
      // sent again, as after a loss (a line shown twice is seen, a line lost is not)
      for (const w of unanswered) w.lost();
      this.state = 'closed';
      for (const w of this.readyWaiters.splice(0)) w.reject(closedError());
      return;
    }
    if (this.refusedWhy) { this.refused(`the IRC server refuses the connection: ${this.refusedWhy}`); return; }
    if (this.cannotBind) { this.refused(this.cannotBind); return; }
    // Lost: a line with no answer yet may never have reached the server. A socket is not known to be
    // dead until it is read (a resting one is read only when written to), so a line may even have
    // been written after the server was gone. Failing it lets the room's queue send it again once
    // the connection is back instead of calling it sent; an outage, so it spends none of its attempts.
    for (const w of unanswered) w.lost();
    // What the flood pacer still held may be the rest of a message one of whose lines was just
    // failed: core sends that whole message again, so its rest fails with it instead of going out
    // on its own after the reconnect (the channel would see the message's end, then all of it).
    // Core retries a failed message at the head of its room's queue: nothing of that room
    // overtakes it. A message's lines are queued in one turn; the rest of one whose written lines
    // were all confirmed, and lines queued from now on, wait for the reconnect.
    const failed = new Set(unanswered.map((w) => w.turn));
    const kept = this.queue.filter((l) => !failed.has(l.turn));
    for (const l of this.queue) if (failed.has(l.turn)) l.reject(lostError());
    this.queue = kept;
    this.state = 'reconnecting';
    this.timer = reconnectAfterLoss({
      conn: this, attempt: this.upgrading ? this.attempts : ++this.attempts, upgrade: this.upgrading, policy: this.opts.reconnect, limiter: this.opts.limiter, log: this.opts.log, fields: { queued: this.queue.length },
      open: () => this.open(), cancelled: () => this.intentionalQuit,
    });
  }

  async join(channel: string, key?: string): Promise<void> {
    const lc = ircLower(channel);
    this.channels.set(lc, key);
    await this.connect();
    if (this.joined.has(lc)) return;
    await this.joinWaits.join(lc, channel, () => this.write(`JOIN ${channel}${key ? ` ${key}` : ''}`), () => this.channels.delete(lc));
  }

  part(channel: string, reason?: string): void {
    const lc = ircLower(channel);
    const wasIn = this.channels.delete(lc) || this.joined.has(lc); // wanted or in (a JOIN may be on its way)
    this.joined.delete(lc);
    if (this.state === 'connected' && wasIn) this.write(`PART ${channel}${reason ? ` :${reason}` : ''}`); // not in it (kicked): nothing to leave
  }

  send(command: Exclude<LineKind, 'MULTILINE'>, target: string, text: string, tags: Record<string, string> = {}): Promise<string | undefined> {
    return this.enqueue({ command, target, text, tags });
  }

  /**
   * The limits of IRCv3 `draft/multiline` on this connection, or undefined when the server does
   * not offer it (then a message of several lines goes as several PRIVMSGs).
   */
  multilineLimits(): { maxBytes?: number; maxLines?: number } | undefined {
    if (!this.caps.has('draft/multiline') || !this.caps.has('batch')) return undefined;
    return this.offered.multiline();
  }

  /** Send several lines as one IRCv3 multiline message; resolves with its msgid (from the echo). */
  sendMultiline(command: 'PRIVMSG' | 'NOTICE', target: string, parts: readonly MultilinePart[], tags: Record<string, string> = {}): Promise<string | undefined> {
    return this.enqueue({ command: 'MULTILINE', target, text: '', tags, multiline: { command, parts } });
  }

  /** May this client-only tag (`+typing`...) be sent, or does the server's CLIENTTAGDENY refuse it? */
  clientTagAllowed(tag: string): boolean {
    if (!this.caps.has('message-tags')) return false;
    const name = tag.replace(/^\+/, '');
    if (this.tagDeny.includes(`-${name}`)) return true;
    return !this.tagDeny.includes('*') && !this.tagDeny.includes(name);
  }

  private enqueue(item: Omit<Pending, 'resolve' | 'reject' | 'turn'>): Promise<string | undefined> {
    // quit on purpose (idle, evicted): the pool let go of it, and reopened it would hold the nick with nobody to close it
    if (this.state === 'closed' && this.intentionalQuit) return Promise.reject(closedError());
    this.lastActive = Date.now();
    const turn = this.pumpQueued ? this.turns : ++this.turns;
    return new Promise((resolve, reject) => {
      this.queue.push({ ...item, turn, resolve, reject });
      if (this.state === 'idle' || this.state === 'closed') this.connect().catch(reject);
      // at the end of this turn: the lines of one message, sent together, go out together (on a
      // server without labels, under one PING)
      if (this.pumpQueued) return;
      this.pumpQueued = true;
      queueMicrotask(() => { this.pumpQueued = false; this.pump(); });
    });
  }

  /**
   * Write queued lines in order; each line's promise settles with its echo (msgid) or refusal, and
   * fails when the connection is lost before either (the server may never have had it). Paced: a
   * line the flood bucket has no room for stops the pump, with all behind it, until it has.
   */
  private pump(): void {
    let unlabeled: BarrierLine[] = [];
    while (this.queue.length && this.state === 'connected' && !this.nickserv.holding) {
      const ml = this.queue[0]!.multiline;
      if (!this.pacer.ready(ml ? ml.parts.length + 2 : 1, () => this.pump())) break;
      const line = this.queue.shift()!;
      const tags = { ...line.tags };
      // a TOPIC is answered by the TOPIC itself or a refusal (482: not an operator), so it can wait for either
      const labeled = this.caps.has('labeled-response') &&
        (line.command === 'REDACT' || line.command === 'TOPIC' || (this.caps.has('echo-message') && line.command !== 'RAW'));
      let label: string | undefined;
      if (labeled) { label = `t${++this.labelSeq}`; tags['label'] = label; }
      // no labeled echo (most networks: Libera's servers have no labeled-response): a PING written
      // after the lines (one for all those written now) is answered once the server has processed
      // them, so they count as sent only then (a connection lost before is a retry, not a loss)
      // and the room's next message waits for them (order across connections)
      const unlabeledKey = !labeled && line.command !== 'RAW' ? `b${++this.labelSeq}` : undefined;
      const token = label ?? unlabeledKey;
      const tagText = this.caps.has('message-tags') || label
        ? Object.entries(tags).filter(([k]) => this.caps.has('message-tags') || k === 'label').map(([k, v]) => (v === '' ? k : `${k}=${escapeTag(v)}`)).join(';')
        : '';
      const prefix = tagText ? `@${tagText} ` : '';
      if (token) {
        const t = setTimeout(() => this.suspect(), this.opts.timeouts.answerMs);
        if (unlabeledKey && line.command !== 'RAW') unlabeled.push({ key: unlabeledKey, kind: line.command, target: ircLower(line.target) });
        this.awaiting.set(token, {
          turn: line.turn,
          settle: (id, refusal) => {
            clearTimeout(t);
            if (refusal) line.reject(new DeliveryError(`the IRC server refused it: ${refusal}`, true)); else line.resolve(id);
          },
          lost: () => { clearTimeout(t); line.reject(lostError()); },
        });
      }
      switch (line.command) {
        case 'PRIVMSG': case 'NOTICE': this.write(`${prefix}${line.command} ${line.target} :${line.text}`); break;
        case 'ACTION': this.write(`${prefix}PRIVMSG ${line.target} :\x01ACTION ${line.text}\x01`); break;
        case 'TAGMSG': this.write(`${prefix}TAGMSG ${line.target}`); break;
        case 'REDACT': {
          const sp = line.text.indexOf(' ');
          this.write(`${prefix}REDACT ${line.target} ${sp < 0 ? line.text : `${line.text.slice(0, sp)} :${line.text.slice(sp + 1)}`}`);
          break;
        }
        case 'TOPIC': this.write(`${prefix}TOPIC ${line.target} :${line.text}`); break;
        case 'RAW': this.askedNick = /^NICK (\S+)/i.exec(line.text)?.[1] ?? this.askedNick; this.write(line.text); break;
        case 'MULTILINE': {
          const ref = `ml${++this.batchSeq}`;
          const { command, parts } = line.multiline!;
          this.write(`${prefix}BATCH +${ref} draft/multiline ${line.target}`);
          for (const part of parts) this.write(`@batch=${ref}${part.concat ? ';draft/multiline-concat' : ''} ${command} ${line.target} :${part.text}`);
          this.write(`BATCH -${ref}`);
          break;
        }
      }
      if (!token) line.resolve(undefined);
    }
    if (unlabeled.length === 0) return;
    const token = `b${++this.labelSeq}`;
    this.barriers.add(token, unlabeled);
    unlabeled = [];
    this.write(`PING :${token}`);
  }

  /**
   * The server will not have this connection (a ban, a wrong server password), or it cannot be
   * made (a source address the host cannot use, none left in the block): what waits for it
   * fails for good, so the rooms it holds up move on and the sender is told why, instead of
   * waiting through reconnects that cannot succeed. The next line tries again from scratch.
   */
  private refused(message: string): void {
    this.refusedWhy = undefined;
    this.cannotBind = undefined;
    this.state = 'closed';
    this.opts.log.warn('the IRC connection cannot be made; not trying again until the next message', { reason: message });
    const err = new DeliveryError(message, true);
    for (const l of this.queue.splice(0)) l.reject(err);
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
    this.emit('closed'); // ends a reconnect attempt in progress (its limiter place)
  }

  /** Close for good (later sends fail: enqueue). Unconfirmed lines settle as the server answers before it closes, else fail (onClosed). */
  quit(message = 'Bye'): void {
    this.intentionalQuit = true;
    if (this.timer) clearTimeout(this.timer);
    clearTimeout(this.registerTimer);
    clearTimeout(this.probe?.timer);
    this.probe = undefined;
    this.nickserv.drop();
    if (this.state === 'connected') this.pump(); // lines sent this turn go before the QUIT, as they were sent before it (as paced)
    this.pacer.stop();
    for (const l of this.queue.splice(0)) l.reject(closedError());
    if (this.state === 'connected') this.write(`QUIT :${message}`);
    this.state = 'closed';
    const sock = this.socket;
    const grace = setTimeout(() => {
      if (sock && !sock.destroyed) this.opts.log.info('the IRC server did not close the connection after QUIT; dropping it', { unanswered: this.awaiting.size });
      sock?.destroy();
    }, Math.min(this.opts.timeouts.answerMs, QUIT_GRACE_MS)).unref();
    sock?.once('close', () => clearTimeout(grace)).end();
    for (const w of this.readyWaiters.splice(0)) w.reject(closedError());
    this.emit('closed'); // ends a reconnect attempt in progress (its limiter place)
  }
}
