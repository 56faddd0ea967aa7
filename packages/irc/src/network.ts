/**
 * The IRC network: Matrix → IRC delivery through each Matrix user's own connection, portal
 * rooms on demand, plumbing, direct chats, and the IRC admin commands. IRC → Matrix lives in
 * server.ts (the listening connection).
 *
 * No `reachable()` (core's ReachabilityCapable) on purpose: a delivery that finds its user's
 * connection down waits inside it (`route()` awaits the reconnect; lines queue meanwhile) and goes
 * out the moment the connection is registered again. Only a line lost in flight fails as an outage,
 * once per loss, and its retry is back in the connection's queue after core's backoff, short unless
 * the same line is lost again and again: no long wait for a probe to cut short. And what a room
 * waits for is one user's connection, which a network-wide "does IRC answer?" could not tell.
 */
import { isIPv4 } from 'node:net';
import { resolve } from 'node:path';
import {
  DeliveryError, type AliasCapable, type BridgeInfoCapable, type BridgeInfoSection, type CommandCapable, type DirectChatCapable, type EditCapable, type MatrixEdit,
  type MatrixMembership, type MatrixMessage, type MatrixProfileChange, type ProfileCapable, type MatrixPowerLevels, type MatrixReaction, type MatrixRedaction, type MatrixRoomMeta,
  type MatrixTyping, type MatrixUserPresence, type PresenceOutCapable, type MembershipCapable, type NetworkCommand, type NetworkConnector, type NetworkContext, type PortalInfo, type PowerLevelCapable, type ProvisioningCapable,
  type ReactionCapable, type RedactionCapable, type RoomMetadataCapable, type SendResult, type ThirdPartyCapable, type ThirdPartyLocation,
  type ThirdPartyProtocol, type ThirdPartyUser, type TypingCapable,
} from '@trestle/core';
import { OpApprovals, type LinkRequest } from './approvals.js';
import { ircCommands } from './commands.js';
import { ircConfigSchema, type IrcConfig } from './config.js';
import {
  applyLineLimit, formatSize, matrixToIrc, maxPayloadBytes, multilineParts, replyLine, splitFormattedForIrc, stripControls, truncateCodePoints, truncateUtf8, utf8Length,
} from './convert/index.js';
import { aliasTemplatePattern, channelChat, ghostLocalpart, ircLower, isChannel, parseAliasLocalpart, parseChat, parseLinkTarget, parseUser, pmChat } from './ids.js';
import { RoomDirectory, thirdPartyLocation, thirdPartyProtocol, thirdPartyUser } from './directory.js';
import { IdentServer } from './identd.js';
import { registerIrcMetrics } from './metrics.js';
import { Moderation } from './moderation.js';
import { currentChannel } from './renames.js';
import { IrcServer } from './server.js';
import { IrcStore, PasswordBox, ircMigrations } from './store.js';
import type { LeanConnection } from './lean.js';
import { TypingRelay } from './typing.js';

/** A short description of an edit: `s/old/new/` when one stretch changed, else `* new text`. */
export function describeEdit(previous: string | undefined, next: string): string {
  return editDiff(previous, next) ?? `* ${next}`;
}

/** `s/old/new/` when one stretch of a one-line message changed, in whole words and short; else undefined. */
export function editDiff(previous: string | undefined, next: string): string | undefined {
  if (previous === undefined || previous.includes('\n') || next.includes('\n')) return undefined;
  let start = 0;
  while (start < previous.length && start < next.length && previous[start] === next[start]) start++;
  let endP = previous.length, endN = next.length;
  while (endP > start && endN > start && previous[endP - 1] === next[endN - 1]) { endP--; endN--; }
  // widen to whole words so the correction reads naturally
  while (start > 0 && /\S/.test(previous[start - 1]!)) start--;
  while (endP < previous.length && /\S/.test(previous[endP]!)) { endP++; endN++; }
  const oldPart = previous.slice(start, endP), newPart = next.slice(start, endN);
  if (!oldPart || oldPart.includes('/') || newPart.includes('/') || oldPart.length + newPart.length > 60) return undefined;
  return `s/${oldPart}/${newPart}/`;
}

const HOST_ESTIMATE = 63; // we do not know our cloaked host: leave room for a long one

export class IrcNetwork implements NetworkConnector, PresenceOutCapable, EditCapable, RedactionCapable, ReactionCapable, MembershipCapable,
  RoomMetadataCapable, AliasCapable, ProvisioningCapable, DirectChatCapable, CommandCapable, TypingCapable, PowerLevelCapable, ProfileCapable, BridgeInfoCapable,
  ThirdPartyCapable {
  readonly identity;
  /** Each server's alias template, as a pattern for core and a regex that captures the channel. */
  private readonly aliasTemplates: { server: string; re: RegExp; pattern: string }[];
  readonly servers = new Map<string, IrcServer>();
  /** Set at stop: a connection attempt cut short by the stop is not an error. */
  private stopped = false;
  ctx?: NetworkContext;
  store?: IrcStore;
  /** Portal rooms in the room directory (directory.ts). */
  private directory?: RoomDirectory;
  readonly commands: NetworkCommand[];
  private readonly moderation = new Moderation(() => this.ctx!, (server, userId) => this.nickFor(server, userId));
  private readonly typing = new TypingRelay((err) => this.ctx?.log.debug('typing notification not sent', { err }));
  /** The ident server (config `ident`), one for every server's connections. */
  ident?: IdentServer;
  /** Link requests waiting for a channel operator's answer (config `linkApproval`). */
  private approvals?: OpApprovals;

  constructor(readonly id: string, readonly cfg: IrcConfig) {
    // servers' alias templates (dynamicChannels.aliasTemplate) name their portals too
    this.aliasTemplates = Object.entries(cfg.servers).flatMap(([key, s]) =>
      s.dynamicChannels.aliasTemplate ? [{ server: key, re: new RegExp(`^${aliasTemplatePattern(s.dynamicChannels.aliasTemplate, key)}$`), pattern: aliasTemplatePattern(s.dynamicChannels.aliasTemplate, key) }] : []);
    this.identity = {
      id, displayName: 'IRC', userPrefix: `${id}_`, aliasPrefix: `${id}_`, ghostLocalpart, protocol: id,
      ...(this.aliasTemplates.length ? { aliasPatterns: this.aliasTemplates.map((t) => t.pattern) } : {}),
    };
    this.commands = ircCommands(this);
  }

  async start(ctx: NetworkContext): Promise<void> {
    this.ctx = ctx;
    ctx.migrate(ircMigrations);
    this.store = new IrcStore(ctx.db, new PasswordBox(resolve(this.cfg.passwordKeyFile)));
    this.directory = new RoomDirectory(ctx);
    this.approvals = new OpApprovals({
      log: ctx.log.child({ component: 'link-approval' }),
      tell: (req, text) => ctx.matrix.notice(req.roomId, text).catch(() => ctx.notifyUser(req.userId, text)),
      notice: (server, nick, text) => this.servers.get(server)?.listener.raw(`NOTICE ${nick} :${text.replace(/[\r\n\0]+/g, ' ')}`),
      isOperator: (server, channel, nick) => this.servers.get(server)?.events.operators(channel).includes(ircLower(nick)) ?? false,
      // long enough for the bridge's connection to be back in the channel after a restart
      known: (server, channel) => this.servers.get(server)?.events.named(channel, 30_000) ?? Promise.resolve(),
      link: (req, op) => this.linkApproved(req, op),
      // the bridge's connection went into the channel to ask: out again, unless something else bridges it now
      ended: (req) => {
        const server = this.servers.get(req.server);
        if (server && ctx.portals.forChat(req.chat).length === 0 && !this.approvals!.waitingFor(req.server, req.chat)) server.listener.part(req.channel);
      },
      store: this.store,
    });
    if (this.cfg.ident.enabled) {
      const { port, bindAddress, maxClients, idleSeconds } = this.cfg.ident;
      this.ident = new IdentServer({ port, ...(bindAddress ? { bindAddress } : {}), maxClients, idleMs: idleSeconds * 1000, log: ctx.log.child({ component: 'identd' }) });
      await this.ident.start(); // listening before the first connection opens; a port it cannot have is logged, not fatal
      // `::` takes queries at every address (IPv4 ones too, on a dual-stack host); `0.0.0.0` at every IPv4 one
      const blocks = Object.entries(this.cfg.servers).filter(([, s]) => s.addressBlock).map(([k]) => k);
      const everyAddress = bindAddress === '::' ||
        (bindAddress === '0.0.0.0' && blocks.every((k) => isIPv4(this.cfg.servers[k]!.addressBlock!.split('/')[0]!)));
      if (bindAddress && !everyAddress && blocks.length) {
        ctx.log.warn('ident.bindAddress is one address, but servers with an addressBlock are asked ident at their users\' own ' +
          'addresses: those queries cannot reach it (leave ident.bindAddress unset)', { bindAddress, servers: blocks });
      }
    }
    for (const [key, scfg] of Object.entries(this.cfg.servers)) {
      for (const [configured, rooms] of Object.entries(scfg.mappings)) {
        // a channel renamed on IRC since is linked by its new name (renames.ts)
        const channel = currentChannel(ctx.kv, key, configured);
        if (channel !== configured) {
          ctx.log.warn('a channel in the config\'s mappings was renamed on IRC: its rooms follow the new name; update the config',
            { server: key, configured, now: channel });
        }
        for (const roomId of rooms) ctx.portals.link(roomId, channelChat(key, channel), { kind: 'plumbed', name: channel });
      }
      const server = new IrcServer(key, scfg, ctx, this.store, this.ident);
      server.onClientJoined = (userId, channel) => {
        void this.moderation.rankOnJoin(server, channel, userId).catch((err: Error) =>
          ctx.log.warn('could not give a joining Matrix user their rank on IRC', { server: key, channel, user: userId, err }));
      };
      server.onSecrecy = (channel, secret) => {
        void this.directory!.channelSecrecy(server, channel, secret).catch((err: Error) =>
          ctx.log.warn('could not update the room directory for a channel', { server: key, channel, err }));
      };
      server.onBridgeMessage = (nick, text) => {
        void this.approvals!.answered(key, nick, text).catch((err: Error) => ctx.log.warn('could not act on an answer to a link request', { server: key, nick, err }));
      };
      server.onClientInvited = (userId, byNick, channel) => {
        void this.invited(server, userId, byNick, channel).catch((err: Error) =>
          ctx.log.warn('could not bring an IRC invite to Matrix', { server: key, channel, user: userId, err }));
      };
      this.servers.set(key, server);
    }
    // link requests from before a restart wait on (or end, if their time ran out), the bridge's
    // connection back in their channels to see who the operators are
    for (const r of this.approvals.restore()) {
      void this.servers.get(r.server)?.listener.join(r.channel).catch((err: Error) =>
        ctx.log.warn('could not rejoin the channel of a waiting link request', { server: r.server, channel: r.channel, err }));
    }
    if (ctx.metrics) registerIrcMetrics(ctx.metrics, () => this.servers.values());
    // Connect in the background: an IRC server that is down must not keep the bridge from starting
    // (Matrix messages for it wait in their rooms' queues until it is back).
    for (const s of this.servers.values()) {
      void s.start().catch((err: Error) => {
        if (!this.stopped) ctx.log.error('could not start an IRC server connection', { server: s.key, err });
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.typing.clear();
    this.approvals?.stop();
    for (const s of this.servers.values()) s.stop();
    // presence changes already asked for go out before the homeserver connection closes
    await Promise.all([...this.servers.values()].map((s) => s.events.presence?.stop()));
    await this.ident?.stop();
  }

  server(key: string): IrcServer {
    const s = this.servers.get(key);
    if (!s) throw new DeliveryError(`unknown IRC server "${key}" (configured: ${[...this.servers.keys()].join(', ')})`, true);
    return s;
  }

  async connectMatrixUser(): Promise<void> {
    // Connections open lazily in handleMatrixMessage, so a user who only reads costs nothing.
  }

  /**
   * The connection of a Matrix user on the server of a chat, and where to send; undefined for a
   * user the server's `excludedUsers` keeps off IRC (what they do is not sent, by the operator's choice).
   */
  private async route(chat: string, userId: string, displayName: string): Promise<{ server: IrcServer; conn: LeanConnection; target: string; relayed: boolean } | undefined> {
    const parsed = parseChat(chat);
    if (!parsed) throw new DeliveryError(`not an IRC chat id: ${chat}`, true);
    const server = this.server(parsed.server);
    if (this.isExcluded(server, userId)) return undefined;
    const relayed = server.relayed(userId);
    if (relayed && parsed.kind !== 'channel') {
      throw new DeliveryError(`you are relayed on ${server.displayName} (relay.users), and the relay does not carry private messages`, true);
    }
    const conn = relayed ? server.relayClient() : server.clientFor(userId, displayName);
    await conn.connect();
    if (parsed.kind === 'channel') {
      await conn.join(parsed.channel);
      return { server, conn, target: parsed.channel, relayed };
    }
    // a private chat is with a ghost: to the nick it goes by now, never a guess (another nick bound to it may be someone else's)
    const nick = this.store!.nickOf(parsed.server, parsed.ghostKey);
    if (nick === undefined) {
      throw new DeliveryError(`the bridge does not know which nick ${parsed.ghostKey} uses on ${server.displayName} now (they left IRC under a nick ` +
        'they had changed to, or their last one is someone else\'s now), so this was not sent. Messages go through again once they are ' +
        'seen on IRC: in a channel the bridge is in, or writing to you', true);
    }
    return { server, conn, target: nick, relayed };
  }

  /** Per-room line limits set with `linelimit` (kept in this network's kv), read once per room: null = the server's. */
  private readonly lineLimits = new Map<string, number | null>();

  /** The line limit a room set with `linelimit`, if any. */
  roomLineLimit(roomId: string): number | undefined {
    let v = this.lineLimits.get(roomId);
    if (v === undefined) {
      const stored = Number(this.ctx?.kv.get(`lineLimit:${roomId}`));
      v = Number.isInteger(stored) && stored > 0 ? stored : null;
      this.lineLimits.set(roomId, v);
    }
    return v ?? undefined;
  }

  setRoomLineLimit(roomId: string, lines: number | undefined): void {
    if (lines === undefined) this.ctx!.kv.delete(`lineLimit:${roomId}`); else this.ctx!.kv.set(`lineLimit:${roomId}`, String(lines));
    this.lineLimits.set(roomId, lines ?? null);
  }

  /** Excluded users already logged, per server: the log says it once, not for every message. */
  private readonly excludedSeen = new Set<string>();

  /** Does the server's `excludedUsers` keep this Matrix user off IRC? */
  private isExcluded(server: IrcServer, userId: string): boolean {
    if (!server.excluded(userId)) return false;
    const key = `${server.key}\u0000${userId}`;
    if (!this.excludedSeen.has(key)) {
      this.excludedSeen.add(key);
      this.ctx!.log.info('a Matrix user in excludedUsers is active in a bridged room; nothing of theirs goes to IRC', { server: server.key, user: userId });
    }
    return true;
  }

  /** IRC nick for a Matrix user id: a ghost's nick, or a Matrix user's own IRC nick. */
  private nickFor(server: IrcServer, userId: string): string | undefined {
    const remote = this.ctx!.remoteUserOf(userId);
    const p = remote ? parseUser(remote) : undefined;
    if (p && p.server === server.key) return this.store!.nickOf(server.key, p.ghostKey);
    return server.clients.get(userId)?.nick;
  }

  async handleMatrixMessage(msg: MatrixMessage): Promise<SendResult> {
    const routed = await this.route(msg.portal.remoteChat, msg.sender.userId, msg.sender.displayName);
    if (!routed) return {};
    const { server, target } = routed;
    const text = (): string[] => this.ircLines(server, msg.body, msg.formattedBody);
    // a file goes as a link; a caption (a body that is not just the file name) follows it, so that a
    // long one cut by the line limit never takes the link with it
    const lines = msg.media
      ? [mediaLine(msg.media, msg.body), ...(msg.media.filename !== undefined && msg.body && msg.body !== msg.media.filename ? text() : [])]
      : text();
    if (lines.length === 0) return {};
    const tags: Record<string, string> = {};
    if (msg.replyTo) {
      const nick = msg.replyTo.sender ? this.nickFor(server, msg.replyTo.sender) : undefined;
      if (nick) lines[0] = this.replyText(server, target, msg.replyTo, nick, lines[0]!);
      if (msg.replyTo.remoteId && !msg.replyTo.remoteId.startsWith('local-')) tags['+draft/reply'] = msg.replyTo.remoteId;
    }
    const command = msg.msgtype === 'm.emote' ? 'ACTION' : msg.msgtype === 'm.notice' ? 'NOTICE' : 'PRIVMSG';
    return this.deliver(routed, msg, lines, msg.formattedBody ? undefined : msg.body, command, tags);
  }

  /** Matrix text as IRC lines: formatting as IRC codes, pills as the nicks they stand for. */
  private ircLines(server: IrcServer, body: string, formattedBody: string | undefined): string[] {
    return matrixToIrc({ body, ...(formattedBody ? { format: 'org.matrix.custom.html', formatted_body: formattedBody } : {}) },
      { pillToNick: (u) => this.nickFor(server, u) });
  }

  /**
   * Sends converted lines as one Matrix event's worth of IRC: past the line limit the whole text is
   * uploaded and linked (`full`, else the lines joined), several lines go as one multiline batch where
   * the server has it, and each line is cut to fit 512 bytes. Returns the msgids the server gave.
   */
  private async deliver(routed: { server: IrcServer; conn: LeanConnection; target: string; relayed: boolean },
    msg: { portal: MatrixMessage['portal']; eventId: string; sender: MatrixMessage['sender'] }, lines: string[], full: string | undefined,
    kind: 'ACTION' | 'NOTICE' | 'PRIVMSG', tags: Record<string, string>): Promise<SendResult> {
    const { server, conn, target } = routed;
    let command = kind;
    // the relay speaks for the user: their name starts each line it sends (an emote as `* Name does`)
    const lead = routed.relayed ? relayPrefix(msg.sender.displayName, command === 'ACTION') : '';
    if (routed.relayed && command === 'ACTION') command = 'PRIVMSG';
    const max = maxPayloadBytes(wirePrefix(conn), command === 'ACTION' ? 'PRIVMSG' : command, target) - (command === 'ACTION' ? 9 : 0);
    const room = max - Buffer.byteLength(lead); // a long line's every piece names the relayed user too
    // the limit counts the IRC lines the message becomes once cut to fit: one long paragraph is many
    const limited = applyLineLimit(lines, this.roomLineLimit(msg.portal.roomId) ?? server.cfg.lineLimit, room);
    let send = limited.send;
    if (limited.overflow) {
      const up = await this.ctx!.uploadMedia(Buffer.from(full ?? lines.join('\n'), 'utf8'), 'text/plain; charset=utf-8', 'message.txt');
      send = [...send, `(full message: ${up.url})`];
    }
    this.typing.sent(msg.sender.userId, server.key, target);
    // IRCv3 draft/multiline: a message of several lines stays one message (one msgid) for clients
    // that support it, and the server splits it into plain lines for those that do not
    const limits = command !== 'ACTION' && send.length > 1 ? conn.multilineLimits() : undefined;
    const parts = limits && multilineParts(lead ? send.map((line) => lead + line) : send, max, limits);
    if (parts) {
      const id = await conn.sendMultiline(command as 'PRIVMSG' | 'NOTICE', target, parts, tags);
      this.ctx!.log.debug('sent to IRC as one multiline batch', { chat: msg.portal.remoteChat, eventId: msg.eventId, lines: parts.length, msgid: id });
      if (isChannel(target)) server.recent.said(target, id ? [msg.eventId, id] : [msg.eventId], Date.now());
      return { remoteIds: id ? [id] : [] };
    }
    const sends: Promise<string | undefined>[] = [];
    send.forEach((line, i) => {
      for (const chunk of splitFormattedForIrc(line, room)) sends.push(conn.send(command, target, lead + chunk, i === 0 ? tags : {}));
    });
    const ids = await Promise.all(sends);
    this.ctx!.log.debug('sent to IRC', { chat: msg.portal.remoteChat, eventId: msg.eventId, msgids: ids });
    if (isChannel(target)) server.recent.said(target, [msg.eventId, ...ids.filter((x): x is string => !!x)], Date.now());
    return { remoteIds: ids.filter((x): x is string => !!x) };
  }

  /** The first line of a Matrix reply: `nick: text`, or quoting an old message where that is safe (replies.ts). */
  private replyText(server: IrcServer, target: string, replyTo: NonNullable<MatrixMessage['replyTo']>, nick: string, text: string): string {
    const keys = replyTo.remoteId ? [replyTo.eventId, replyTo.remoteId] : [replyTo.eventId];
    const form = isChannel(target) && replyTo.body ? server.recent.replyForm(target, keys, Date.now(), server.cfg.replies) : 'short';
    return replyLine({ nick, text, ...(form === 'quote' ? { quote: replyTo.body!, quoteLength: server.cfg.replies.quoteLength } : {}) });
  }

  /**
   * An edit as IRC users write one: `s/old/new/` when a few words of a one-line message changed, else
   * `* ` and the whole corrected text, carried like a message (formatting, nicks for pills, the line
   * limit and its upload) so that no line of it is lost. A notice's correction is a notice too (IRC
   * bots never answer notices); an emote's is a plain line (`* waves twice` reads as the correction).
   */
  async handleMatrixEdit(edit: MatrixEdit): Promise<void> {
    const routed = await this.route(edit.portal.remoteChat, edit.sender.userId, edit.sender.displayName);
    if (!routed) return;
    const diff = editDiff(edit.previousBody, edit.body);
    const lines = diff !== undefined ? matrixToIrc({ body: diff }) : this.ircLines(routed.server, edit.body, edit.formattedBody);
    if (lines.length === 0) return;
    if (diff === undefined) lines[0] = `* ${lines[0]}`;
    const full = diff === undefined && !edit.formattedBody ? `* ${edit.body}` : undefined;
    await this.deliver(routed, edit, lines, full, edit.msgtype === 'm.notice' ? 'NOTICE' : 'PRIVMSG', {});
  }

  async handleMatrixRedaction(r: MatrixRedaction): Promise<void> {
    const routed = await this.route(r.portal.remoteChat, r.sender.userId, r.sender.displayName);
    if (!routed) return;
    const { conn, target } = routed;
    if (!conn.caps.has('draft/message-redaction')) {
      this.ctx!.log.debug('server cannot redact; redaction not bridged', { chat: r.portal.remoteChat, eventId: r.eventId });
      return; // plain IRC cannot take a message back
    }
    this.ctx!.log.debug('redacting on IRC', { chat: r.portal.remoteChat, target: r.target });
    for (const id of r.target.remoteIds.filter((x) => !x.startsWith('local-'))) {
      // text = "<msgid>[ <reason>]"; a refusal (e.g. not allowed to delete) fails this delivery with the server's reason
      await conn.send('REDACT', target, redactText(id, r.reason, wirePrefix(conn), target));
    }
  }

  async handleMatrixReaction(r: MatrixReaction): Promise<SendResult | void> {
    const msgid = r.target.remoteIds.find((x) => !x.startsWith('local-'));
    const routed = await this.route(r.portal.remoteChat, r.sender.userId, r.sender.displayName);
    // a reaction from the relay would read as the relay's own: a relayed user's reactions stay on Matrix
    if (!routed || routed.relayed || !msgid || !routed.conn.caps.has('message-tags')) return;
    const { conn, target } = routed;
    // the TAGMSG's own msgid, mapped to the reaction: history fetched later knows it as the Matrix
    // user's and leaves it out; and redacting the reaction on Matrix redacts the TAGMSG (IRCv3
    // message-redaction names that as the way to take a reaction back)
    const id = await conn.send('TAGMSG', target, '', { '+draft/react': r.key, '+draft/reply': msgid });
    return id ? { remoteIds: [id] } : undefined;
  }

  async handleMatrixMembership(m: MatrixMembership): Promise<void> {
    const parsed = parseChat(m.portal.remoteChat);
    if (parsed?.kind === 'pm') {
      // the Matrix user is out of their DM room: it is given up, and the next private message opens a
      // new one they are invited to (core reuses a linked room), rather than going where nobody reads
      if (m.target.userId === parsed.matrixUser && (m.membership === 'leave' || m.membership === 'kick' || m.membership === 'ban')) {
        this.ctx!.portals.unlink(m.portal.roomId, m.portal.remoteChat);
        this.ctx!.log.info('a Matrix user left their private chat\'s room: unlinked, the next private message opens a new one',
          { roomId: m.portal.roomId, chat: m.portal.remoteChat, user: m.target.userId });
      }
      return;
    }
    if (parsed?.kind !== 'channel') return;
    const server = this.server(parsed.server);
    if (m.membership === 'join' && m.target.userId === m.sender.userId) {
      if (server.relayed(m.sender.userId) && !server.excluded(m.sender.userId)) return; // the relay joins when it first speaks for them
      if (this.isExcluded(server, m.sender.userId)) {
        const reason = server.excluded(m.sender.userId)?.kickReason;
        if (reason) {
          await this.ctx!.matrix.kick(m.portal.roomId, m.sender.userId, reason).catch((err: Error) =>
            this.ctx!.log.warn('could not kick a user in excludedUsers from a bridged room (does the bot have the power to kick?)', { roomId: m.portal.roomId, user: m.sender.userId, err }));
        }
        return;
      }
      const conn = server.clientFor(m.sender.userId, m.sender.displayName);
      await conn.join(parsed.channel);
    } else if ((m.membership === 'leave') && m.target.userId === m.sender.userId) {
      server.clients.get(m.sender.userId)?.part(parsed.channel, 'Left the Matrix room');
    } else if ((m.membership === 'kick' || m.membership === 'ban' || m.membership === 'unban') && this.ctx!.remoteUserOf(m.target.userId)) {
      await this.moderation.kickOrBan(server, parsed.channel, m);
    } else if (m.membership === 'kick' || m.membership === 'ban') {
      // a Matrix user put out of the room is out of the channel too: their connection must not stay there as them
      const how = m.membership === 'kick' ? 'Kicked from' : 'Banned from';
      server.clients.get(m.target.userId)?.part(parsed.channel, `${how} the Matrix room by ${m.sender.displayName}${m.reason ? `: ${m.reason}` : ''}`);
    }
  }

  /** A Matrix user's new display name: their nick follows where it was made from the old one (server.ts). */
  async handleMatrixProfile(change: MatrixProfileChange): Promise<void> {
    const parsed = parseChat(change.portal.remoteChat);
    const server = parsed && this.servers.get(parsed.server);
    server?.followDisplayName(change.user.userId, change.user.displayName);
  }

  /** A Matrix user's typing, shown on IRC where their connection is in the channel (IRCv3 `+typing`). */
  async handleMatrixTyping(t: MatrixTyping): Promise<void> {
    const parsed = parseChat(t.portal.remoteChat);
    const server = parsed && this.servers.get(parsed.server);
    const conn = server?.clients.get(t.user.userId);
    if (!parsed || !server || !conn || conn.state !== 'connected' || !conn.clientTagAllowed('+typing')) return;
    const target = parsed.kind === 'channel' ? parsed.channel : this.store!.nickOf(parsed.server, parsed.ghostKey);
    if (target === undefined || (parsed.kind === 'channel' && !conn.isIn(target))) return;
    this.typing.set(t.user.userId, server.key, conn, target, t.typing);
  }

  /** A Matrix user's presence → AWAY on their open connections, on servers with `awayFromPresence`. */
  async handleMatrixPresence(p: MatrixUserPresence): Promise<void> {
    for (const server of this.servers.values()) {
      if (!server.cfg.awayFromPresence) continue;
      server.clients.get(p.userId)?.setAway(p.presence === 'online' ? undefined : p.statusMsg ?? 'Away');
    }
  }

  /** Matrix users' power levels → their IRC nicks' channel modes (moderation.ts). */
  async handleMatrixPowerLevels(pl: MatrixPowerLevels): Promise<void> {
    const parsed = parseChat(pl.portal.remoteChat);
    if (parsed?.kind !== 'channel') return;
    await this.moderation.powerLevels(this.server(parsed.server), parsed.channel, pl);
  }

  async handleMatrixRoomMeta(meta: MatrixRoomMeta): Promise<void> {
    if (meta.topic === undefined) return;
    const routed = await this.route(meta.portal.remoteChat, meta.sender.userId, meta.sender.displayName);
    if (!routed) return;
    const { conn, target } = routed;
    if (isChannel(target)) await conn.send('TOPIC', target, topicText(meta.topic, wirePrefix(conn), target));
  }

  /**
   * An IRC user invited a Matrix user into a channel: the Matrix user is invited to its room (the
   * portal, opened if need be; the bridge's listener joins the channel), as the reference bridge
   * does. Their connection joins the channel when they join the room, the IRC invite still valid.
   * A channel the config does not allow, or one the listener cannot enter, is explained instead.
   */
  private async invited(server: IrcServer, userId: string, byNick: string, channel: string): Promise<void> {
    const ctx = this.ctx!;
    const refused = this.channelRefused(server, channel, true);
    const chat = channelChat(server.key, channel);
    if (refused && ctx.portals.forChat(chat).length === 0) {
      await ctx.notifyUser(userId, `${byNick} invited you to ${channel} on ${server.displayName}, which is not bridged here: ${refused}.`);
      return;
    }
    try {
      await server.listener.join(channel);
    } catch (err) {
      await ctx.notifyUser(userId, `${byNick} invited you to ${channel} on ${server.displayName}, but the bridge cannot join it ` +
        `(${(err as Error).message}): ask them to invite ${server.listener.nick} too.`);
      return;
    }
    // the rooms the channel is linked to already (plumbed ones too), else its portal, opened now
    const linked = ctx.portals.forChat(chat).filter((p) => p.kind !== 'dm');
    const rooms = linked.length ? linked.map((p) => p.roomId) : [(await ctx.openPortal({ chat, name: channel, invite: [userId] })).roomId];
    if (linked.length) {
      for (const roomId of rooms) {
        await ctx.matrix.invite(roomId, userId).catch((err: Error) => ctx.log.info('no room invite (already a member?)', { roomId, user: userId, err }));
      }
    }
    ctx.log.info('an IRC invite became a room invite', { server: server.key, channel, user: userId, by: byNick, rooms });
  }

  /** Is a channel allowed as a portal or link on this server? Returns why not, or undefined. */
  channelRefused(server: IrcServer, channel: string, dynamic: boolean): string | undefined {
    const dc = server.cfg.dynamicChannels;
    const lc = ircLower(channel);
    if (dc.exclude.some((c) => ircLower(c) === lc)) return `${channel} is excluded from bridging`;
    if (dynamic && !dc.enabled) return 'portal rooms on demand are switched off';
    if (dynamic && dc.whitelist.length && !dc.whitelist.some((c) => ircLower(c) === lc)) return `${channel} is not in the whitelist`;
    return undefined;
  }

  async portalForAlias(localpart: string): Promise<{ remoteChat: string; name?: string } | undefined> {
    const templated = this.aliasTemplates.map((t) => ({ server: t.server, m: t.re.exec(localpart) })).find((t) => t.m);
    const parsed = templated ? { server: templated.server, channel: templated.m![1]! } : parseAliasLocalpart(localpart, this.identity.aliasPrefix);
    const server = parsed && this.servers.get(parsed.server);
    if (!parsed || !server || this.channelRefused(server, parsed.channel, true)) return undefined;
    await server.listener.join(parsed.channel);
    return { remoteChat: channelChat(server.key, parsed.channel), name: parsed.channel };
  }

  /**
   * `link irc libera/#chan` (or `libera #chan`): validate, make the listener join. With `linkApproval`,
   * the channel's operators are asked first (approvals.ts), unless a bridge admin asks, or an operator
   * of the channel (their own connection is one).
   */
  async provisionLink(req: { roomId: string; remoteChat: string; userId: string; bridgeAdmin?: boolean }): Promise<{ remoteChat: string; name?: string }> {
    const target = parseLinkTarget(req.remoteChat);
    if (!target) throw new Error('say which server and channel, like libera/#channel');
    const server = this.server(target.server);
    const refused = this.channelRefused(server, target.channel, false);
    if (refused) throw new Error(refused);
    await server.listener.join(target.channel);
    const approval = server.cfg.linkApproval;
    if (approval.enabled && !req.bridgeAdmin && !this.ctx!.portals.forChat(target.chat).some((p) => p.roomId === req.roomId)) {
      await server.events.named(target.channel); // who the operators are, from the channel's NAMES
      // an operator of the channel asking from Matrix (through their own connection) approves it themselves
      const own = server.clients.get(req.userId);
      if (own?.isIn(target.channel) && server.events.modes.isOperator(target.channel, own.nick)) {
        return { remoteChat: target.chat, name: target.channel };
      }
      const ops = server.events.operators(target.channel);
      if (!ops.length) throw new Error(`${target.channel} has no operator to approve the link, and ${server.displayName} links only with their approval`);
      const alias = await this.ctx!.matrix.getState<{ alias?: string }>(req.roomId, 'm.room.canonical_alias').catch(() => undefined);
      const said = this.approvals!.ask({
        server: server.key, channel: target.channel, chat: target.chat, roomId: req.roomId, userId: req.userId,
        roomLabel: typeof alias?.alias === 'string' ? alias.alias : req.roomId,
      }, ops, approval.timeoutSeconds);
      throw new Error(`${target.channel}'s operators have to approve first. ${said} This room is linked when one of them says yes.`);
    }
    return { remoteChat: target.chat, name: target.channel };
  }

  /** A link request an operator approved (approvals.ts): the room is linked as `link` would. */
  private async linkApproved(req: LinkRequest, op: string): Promise<string> {
    const ctx = this.ctx!;
    // asked through the provisioning API, the bot may not be in the room yet
    await ctx.matrix.join(req.roomId).catch((err: unknown) => ctx.log.info('could not join a newly linked room', { roomId: req.roomId, err: err as Error }));
    const portal = ctx.portals.link(req.roomId, req.chat, { kind: 'plumbed', name: req.channel });
    await this.portalLinked(portal);
    ctx.log.info('linked a room to a channel after an operator approved', { roomId: req.roomId, chat: req.chat, op });
    return `Linked this room to irc ${req.chat}, approved on IRC by ${op}, an operator of ${req.channel}.`;
  }

  /** `unlink test/#Chan` names the link that `link test/#Chan` made (stored as `test/#chan`). */
  chatIdFor(words: string): string | undefined {
    return parseLinkTarget(words)?.chat;
  }

  /** A room was just linked: ask for the channel's names again so its members and ranks reach the room. */
  async portalLinked(portal: { remoteChat: string }): Promise<void> {
    const parsed = parseChat(portal.remoteChat);
    if (parsed?.kind !== 'channel') return;
    const server = this.servers.get(parsed.server);
    if (!server) return;
    server.events.modes.resync(parsed.channel); // the new room learns the channel's flags too
    server.listener.raw(`NAMES ${parsed.channel}`);
    server.listener.raw(`MODE ${parsed.channel}`);
  }

  /** A link moved to the room that replaced its room (an upgrade): the room's own line limit goes with it. */
  async portalUnlinked(portal: { roomId: string }, movedTo?: string): Promise<void> {
    await this.directory?.unlinked(portal.roomId);
    const limit = movedTo ? this.roomLineLimit(portal.roomId) : undefined;
    if (movedTo && limit !== undefined && this.roomLineLimit(movedTo) === undefined) this.setRoomLineLimit(movedTo, limit);
  }

  // third-party lookups (directory.ts): every server is an instance; answers come from config and store

  thirdPartyProtocol(): ThirdPartyProtocol { return thirdPartyProtocol(this.servers); }

  thirdPartyLocations(fields: Readonly<Record<string, string>>): ThirdPartyLocation[] {
    const ctx = this.ctx;
    if (!ctx) return [];
    return thirdPartyLocation({ servers: this.servers, fields, aliasPrefix: this.identity.aliasPrefix, domain: ctx.domain, refused: (s, c) => this.channelRefused(s, c, true) });
  }

  thirdPartyUsers(fields: Readonly<Record<string, string>>): ThirdPartyUser[] {
    const ctx = this.ctx, store = this.store;
    if (!ctx || !store) return [];
    return thirdPartyUser({ servers: this.servers, fields, ghostUserId: (u) => ctx.ghostUserId(u), ghostKey: (server, nick) => store.peekGhostKey(server, nick) });
  }

  /**
   * What clients show of a link (core's bridge info): the server, by its key and name, and the channel
   * (or, for a private chat, the ghost's key and the nick it goes by), with irc:// URLs (the draft IRC URL scheme). Nothing for a
   * server no longer in the config.
   */
  bridgeInfo(portal: PortalInfo): { network: BridgeInfoSection; channel: BridgeInfoSection } | undefined {
    const parsed = parseChat(portal.remoteChat);
    const server = parsed && this.servers.get(parsed.server);
    if (!parsed || !server) return undefined;
    const url = `${server.cfg.tls ? 'ircs' : 'irc'}://${server.cfg.host}:${server.cfg.port}`;
    const network = { id: server.key, displayname: server.displayName, external_url: url };
    if (parsed.kind === 'pm') return { network, channel: { id: parsed.ghostKey, displayname: this.store?.nickOf(parsed.server, parsed.ghostKey) ?? parsed.ghostKey } };
    return { network, channel: { id: parsed.channel, displayname: portal.name ?? parsed.channel, external_url: `${url}/${encodeURIComponent(parsed.channel)}` } };
  }

  async directChatFor(req: { matrixUser: string; remoteUser: string }): Promise<string | undefined> {
    const p = parseUser(req.remoteUser);
    const server = p && this.servers.get(p.server);
    if (!p || !server) return undefined;
    if (this.isExcluded(server, req.matrixUser) || server.relayed(req.matrixUser)) return undefined; // no connection of theirs to carry the PM
    return pmChat(p.server, req.matrixUser, p.ghostKey);
  }
}

/**
 * What starts a relayed user's line: `<Name> `, or `* Name ` for an emote. The name is the sender's
 * to choose: without line breaks or control codes (`Eve\x0301,01` would colour the whole line).
 */
export function relayPrefix(displayName: string, emote: boolean): string {
  // at most 40 characters: it starts every line, and a long line is cut into more pieces for it
  const name = truncateCodePoints(stripControls(displayName.replace(/\0/g, ' ')).trim(), 40).trim() || 'someone';
  return emote ? `* ${name} ` : `<${name}> `;
}

/** Who the server says a line is from (`nick!user@host`), with room for a long cloaked host we cannot know. */
function wirePrefix(conn: { nick: string; username: string }): string {
  return `${conn.nick}!${conn.username}@${'x'.repeat(HOST_ESTIMATE)}`;
}

/** A shared file as one IRC line: `name (size) url`. The name is the sender's: no controls (a CTCP `\x01DCC SEND …`). */
export function mediaLine(media: { filename?: string | undefined; size?: number | undefined; url: string }, body: string): string {
  const name = stripControls(media.filename ?? body).trim();
  return `${name ? `${name} ` : ''}${media.size ? `(${formatSize(media.size)}) ` : ''}${media.url}`;
}

/** A Matrix topic as `TOPIC`'s text: one line, cut (between code points) to fit `:prefix TOPIC target :text`. */
export function topicText(topic: string, prefix: string, target: string): string {
  return truncateUtf8(topic.replace(/[\r\n\0]+/g, ' '), maxPayloadBytes(prefix, 'TOPIC', target));
}

/** `REDACT`'s text, `msgid[ reason]`: the reason on one line, cut to fit `:prefix REDACT target msgid :reason`. */
export function redactText(msgid: string, reason: string | undefined, prefix: string, target: string): string {
  const room = maxPayloadBytes(prefix, 'REDACT', target) - utf8Length(msgid) - 1;
  const cut = reason && room > 0 ? truncateUtf8(reason.replace(/[\r\n\0]/g, ' '), room).trimEnd() : '';
  return cut ? `${msgid} ${cut}` : msgid;
}

export { ircConfigSchema };
