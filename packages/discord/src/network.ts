/**
 * The Discord network: the bot's connection and how the parts fit together. Matrix → Discord
 * (Matrix users speak through a webhook per channel, under their own name) lives in toDiscord.ts;
 * Discord → Matrix in fromDiscord.ts; portal rooms on demand and plumbing in links.ts, with the
 * approval flow in approvals.ts; servers as spaces, names and topics in guilds.ts; members leaving,
 * kicked and banned in members.ts (wired up here, with the admins' kick, ban and unban commands);
 * presence (optional) in presence.ts.
 */
import {
  type AliasCapable, type BridgeInfoCapable, type BridgeInfoSection, type CommandCapable, type CommandInvocation, type EditCapable, type MatrixEdit, type MatrixMembership, type MatrixMessage,
  type MatrixReaction, type MatrixRedaction, type MatrixRoomMeta, type MatrixTyping, type MembershipCapable, type NetworkCommand,
  type NetworkConnector, type NetworkContext, type PortalInfo, type PortalLinkAware, type ProvisioningCapable, type ReachabilityCapable, type ReactionCapable,
  type RedactionCapable, type RoomMetadataCapable, type SendResult, type TypingCapable,
} from '@trestle/core';
import type { Client, Guild, GuildMember, PartialGuildMember, User } from 'discord.js';
import { LinkApprovals } from './approvals.js';
import { createClient, DiscordLoginError, login } from './client.js';
import { discordConfigSchema, type DiscordConfig } from './config.js';
import {
  discordAnswers, gatewayTrouble, notConnected, RECONNECTED_NOTICE, toDeliveryError, troubleNotice, troubleOfLoginError, type GatewayTrouble,
} from './errors.js';
import { FromDiscord } from './fromDiscord.js';
import { GuildSync } from './guilds.js';
import { channelChat, ghostLocalpart, isSnowflake, parseChat, type parseUser } from './ids.js';
import { Links } from './links.js';
import { EmojiBridge, StickerBridge } from './media.js';
import {
  applyMatrixRemoval, applyMatrixUnban, departureReason, Departures, moderationArgs, notMembers, staysInRoomNotice, type Departure,
} from './members.js';
import { PresenceBridge } from './presence.js';
import { DiscordStore, discordMigrations } from './store.js';
import { discordUserOfGhost, ToDiscord } from './toDiscord.js';
import { WebhookPool } from './webhooks.js';

export { toDeliveryError };

/** How long {@link DiscordNetwork.reachable} waits for Discord's answer. */
const REACHABLE_TIMEOUT_MS = 5000;

/** How long a member's departure from a server waits for the audit-log entry that says it was a kick. */
const DEPARTURE_GRACE_MS = 1500;

/** How many Matrix membership events are remembered as told about (a room with two links hears once). */
const TOLD_EVENTS = 200;

/** The longest pause between logins while Discord refuses the bot (see retryLogin). */
const REFUSED_RETRY_MAX_MS = 15 * 60_000;

export class DiscordNetwork implements NetworkConnector, EditCapable, RedactionCapable, ReactionCapable, TypingCapable, AliasCapable,
  ProvisioningCapable, PortalLinkAware, CommandCapable, RoomMetadataCapable, MembershipCapable, ReachabilityCapable, BridgeInfoCapable {
  readonly identity;
  readonly commands: NetworkCommand[];
  /** Set once logged in; REST works through gateway reconnects, so it stays set. */
  client?: Client;
  ctx?: NetworkContext;
  store?: DiscordStore;
  webhooks?: WebhookPool;
  emojis?: EmojiBridge;
  fromDiscord?: FromDiscord;
  guilds?: GuildSync;
  approvals?: LinkApprovals;
  departures?: Departures;
  toDiscord?: ToDiscord;
  links?: Links;
  /** Set when `presence` is on. */
  presence?: PresenceBridge;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  /**
   * What the admins were told keeps the bridge off Discord's gateway, since it was last connected: each
   * cause once, however many logins fail for it; cleared (and the admins told) when a login works.
   */
  private readonly toldTrouble = new Set<GatewayTrouble>();
  /** The client whose gateway session Discord ended for good, while a new login is tried. */
  private lostClient?: Client;
  /** Matrix kicks, bans and unbans whose room was told they stay there (by event id). */
  private readonly toldStaysInRoom = new Set<string>();

  constructor(readonly id: string, readonly cfg: DiscordConfig) {
    this.identity = { id, displayName: 'Discord', userPrefix: `${id}_`, aliasPrefix: `${id}_`, ghostLocalpart };
    this.commands = [{
      name: 'channels', permission: 'user', help: 'List the Discord channels the bridge can open, with their room aliases',
      run: async () => this.links!.listChannels(),
    }, {
      name: 'link', args: ['...channel'], roomPower: 50, permission: 'user',
      help: 'Link this room to a Discord channel (<server id> <channel id>) once a member with Manage Webhooks approves there (power level 50 needed)',
      run: async (inv) => this.links!.linkCommand(inv),
    }, ...(['kick', 'ban', 'unban'] as const).map((kind): NetworkCommand => ({
      name: kind, args: ['...user'], permission: 'admin',
      help: `${{ kick: 'Kick a Discord user from', ban: 'Ban a Discord user from', unban: 'Lift a Discord user\'s ban in' }[kind]} the Discord server ` +
        `of this room (<user> [reason]; the user: their ghost or Discord id). A Matrix ${kind} of a ghost stays in its room`,
      run: async (inv) => this.moderationCommand(kind, inv),
    }))];
  }

  private get configKey(): string { return `networks.${this.id}`; }

  // ------------------------------------------------------------------ lifecycle

  async start(ctx: NetworkContext): Promise<void> {
    this.ctx = ctx;
    this.stopped = false;
    ctx.migrate(discordMigrations);
    const store = new DiscordStore(ctx.db);
    this.store = store;
    for (const [channelId, rooms] of Object.entries(this.cfg.mappings)) {
      for (const roomId of rooms) ctx.portals.link(roomId, channelChat(channelId), { kind: 'plumbed' });
    }
    const forgotten = store.keepLinks(ctx.portals.all().map((p) => ({ roomId: p.roomId, chat: p.remoteChat })));
    if (forgotten) ctx.log.info('forgot who linked links that are gone', { count: forgotten });
    this.webhooks = new WebhookPool(store, () => this.requireClient().rest, () => this.client?.user?.id, this.cfg.webhookName, ctx.log);
    this.emojis = new EmojiBridge(store, ctx, (id, animated) => this.requireClient().rest.cdn.emoji(id, { extension: animated ? 'gif' : 'png' }), ctx.log);
    const client = (): Client | undefined => this.client;
    const toDiscord = new ToDiscord({
      ctx, cfg: this.cfg, aliasPrefix: this.identity.aliasPrefix, store, webhooks: this.webhooks, emojis: this.emojis, client, remoteUserOf: (mxid) => this.remoteUserOf(mxid),
    });
    this.toDiscord = toDiscord;
    this.fromDiscord = new FromDiscord({
      ctx, cfg: this.cfg, configKey: this.configKey, aliasPrefix: this.identity.aliasPrefix, webhooks: this.webhooks,
      emojis: this.emojis, stickers: new StickerBridge(store, ctx, ctx.log), store, deletedByUs: (id) => toDiscord.deletedByUs(id),
      // after the messages missed (a member may have spoken, then left): who left meanwhile
      caughtUp: (client) => {
        if (!this.cfg.serverMembersIntent) return;
        void this.departedWhileAway(client).catch((err: unknown) => ctx.log.warn('could not check who left the Discord servers while the bridge was away', { err: err as Error }));
      },
    });
    const fromDiscord = this.fromDiscord;
    this.guilds = new GuildSync({
      ctx, store, spaces: this.cfg.spaces, log: ctx.log, inOrder: (chat, what, task) => fromDiscord.inOrder(chat, what, task),
    });
    const links = new Links({
      ctx, cfg: this.cfg, aliasPrefix: this.identity.aliasPrefix, store, client, approvals: () => this.approvals!,
      portalLinked: (portal) => this.portalLinked(portal), portalUnlinked: (portal) => this.guilds!.portalUnlinked(portal),
      inOrder: (chat, what, task) => fromDiscord.inOrder(chat, what, task),
    });
    this.links = links;
    this.approvals = new LinkApprovals({
      log: ctx.log, store, answerer: (roomId, userId) => (text) => links.announce(roomId, userId, text), timeoutSeconds: () => this.cfg.linkApproval.timeoutSeconds, link: (ask, approver) => links.linkApproved(ask, approver),
    });
    this.departures = new Departures({
      graceMs: DEPARTURE_GRACE_MS, report: (guild, user, member, d) => this.reportDeparture(guild, user, member, d),
      unbanned: (guild, user) => this.unbanGhost(guild, user),
      onError: (err) => ctx.log.warn('could not bridge a departure from a Discord server', { err: err as Error }),
    });
    if (this.cfg.presence) {
      this.presence = new PresenceBridge({
        setPresence: (user, presence, statusMsg) => ctx.matrix.setPresence(user, presence, statusMsg),
        refreshSeconds: this.cfg.presenceRefreshSeconds, log: ctx.log,
      });
    }
    await this.connect(true, this.cfg.reconnect.initialDelayMs);
  }

  /**
   * Log in. A refused token or refused intents make the first attempt (start) throw with what to do.
   * Later (Discord was unreachable at start, or its gateway session ended for good: {@link gatewayLost})
   * nothing is thrown to: the admins are told once per cause what to change, and the login is tried
   * again with growing pauses, so a fix in the developer portal takes effect without a restart. Discord
   * being unreachable is retried the same way, as a state, not a crash.
   */
  private async connect(first: boolean, delay: number): Promise<void> {
    const ctx = this.ctx!;
    const client = createClient(this.cfg);
    this.fromDiscord!.attach(client);
    this.guilds!.attach(client);
    this.links!.attach(client);
    this.approvals!.attach(client);
    this.departures!.attach(client);
    this.presence?.attach(client);
    // emitted only for close codes discord.js does not reconnect from: the session is over for good
    client.on('shardDisconnect', (e, shard) => this.gatewayLost(client, e.code, shard));
    client.on('shardResume', (shard, replayed) => ctx.log.info('Discord gateway resumed', { shard, replayed }));
    client.on('error', (err) => ctx.log.warn('Discord client error', { err }));
    try {
      await login(client, this.cfg.token, this.configKey);
    } catch (err) {
      await client.destroy().catch(() => undefined);
      if (err instanceof DiscordLoginError && first) throw err;
      if (this.stopped) return;
      if (err instanceof DiscordLoginError) {
        ctx.log.error(err.message, { retryInMs: delay });
        this.tellTrouble(troubleOfLoginError(err.message));
      } else {
        // loud the first time, then quieter while it keeps failing
        (first ? ctx.log.error : ctx.log.warn).call(ctx.log, 'could not connect to Discord; will keep trying', { err: err as Error, retryInMs: delay });
      }
      this.retryLogin(delay);
      return;
    }
    if (this.stopped) { await client.destroy(); return; }
    const before = this.client;
    this.client = client;
    this.lostClient = undefined;
    // a client whose gateway session ended served Matrix → Discord (REST) until now
    if (before && before !== client) void before.destroy().catch(() => undefined);
    this.approvals!.restore();
    ctx.log.info('connected to Discord', { user: client.user?.tag, guilds: client.guilds.cache.size });
    if (this.toldTrouble.size) {
      this.toldTrouble.clear();
      void ctx.notifyAdmins(RECONNECTED_NOTICE).catch((err: unknown) => ctx.log.warn('could not tell the admins the bridge is back on Discord', { err: err as Error }));
    }
    // connected only after start-up: core's start could not describe the links then (bridge info)
    if (!first) for (const chat of new Set(ctx.portals.all().map((p) => p.remoteChat))) ctx.portals.refreshBridgeInfo(chat);
    void this.guilds!.reconcile(client).catch((err: unknown) => ctx.log.warn('could not bring the server spaces up to date', { err: err as Error }));
  }

  /**
   * Try logging in again after `delay`; the pause after that one doubles, up to `reconnect.maxDelayMs`,
   * or, while Discord refuses the bot (its token, its intents: the admins were told), up to 15 minutes
   * at least: each login starts a session, and Discord allows a bot about 1,000 a day before it
   * resets the token, which a refusal at every minute would use up in 17 hours.
   */
  private retryLogin(delay: number): void {
    clearTimeout(this.retryTimer);
    const cap = this.toldTrouble.size ? Math.max(this.cfg.reconnect.maxDelayMs, REFUSED_RETRY_MAX_MS) : this.cfg.reconnect.maxDelayMs;
    const next = Math.min(Math.max(delay * 2, 1), cap);
    this.retryTimer = setTimeout(() => {
      void this.connect(false, next).catch((err: unknown) => this.ctx!.log.error('could not connect to Discord', { err: err as Error }));
    }, delay);
  }

  /**
   * Discord ended the gateway session with a close code discord.js does not reconnect from (a refused
   * token or intents, sharding, an API version): nothing from Discord arrives any more, and discord.js
   * will not try again. The admins are told what broke and what to change; a new login is tried in the
   * background at the reconnect pauses, and the admins hear when it works. A refused token is refused
   * for the bot's REST calls too: that client goes, and Matrix → Discord waits as for an outage
   * ({@link reachable} says no). Otherwise its REST calls (the webhooks) go on until the new login.
   */
  private gatewayLost(client: Client, code: number, shard: number): void {
    if (client !== this.client || this.lostClient === client || this.stopped) return;
    this.lostClient = client;
    const trouble = gatewayTrouble(code);
    this.ctx!.log.error('Discord closed the gateway session for good; logging in again in the background', { shard, code, trouble });
    if (trouble === 'token') {
      this.client = undefined;
      void client.destroy().catch(() => undefined);
    }
    this.tellTrouble(trouble, code);
    this.retryLogin(this.cfg.reconnect.initialDelayMs);
  }

  /** Tell the admins why the bridge is off Discord's gateway and what to do: once per cause until it is back. */
  private tellTrouble(trouble: GatewayTrouble, code?: number): void {
    if (this.toldTrouble.has(trouble)) return;
    this.toldTrouble.add(trouble);
    const ctx = this.ctx!;
    const privileged = [
      ...(this.cfg.messageContentIntent ? ['Message Content Intent'] : []), ...(this.cfg.serverMembersIntent ? ['Server Members Intent'] : []),
      ...(this.cfg.presence ? ['Presence Intent'] : []),
    ];
    const text = troubleNotice({
      trouble, ...(code !== undefined ? { code } : {}), configKey: this.configKey, privileged,
      restWorks: this.client !== undefined, retryMaxMs: this.cfg.reconnect.maxDelayMs,
    });
    void ctx.notifyAdmins(text).catch((err: unknown) => ctx.log.error('could not tell the admins why the bridge is off Discord', { err: err as Error, text }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.approvals?.stop();
    this.departures?.flush();
    await this.presence?.stop();
    await this.guilds?.idle();
    this.fromDiscord?.flushNotices();
    await this.fromDiscord?.idle();
    this.fromDiscord?.stopTyping();
    await this.client?.destroy();
    this.client = undefined;
  }

  async connectMatrixUser(): Promise<void> {
    // Matrix users need nothing on Discord: they speak through the channel's webhook.
  }

  /**
   * Does Discord answer now? Asked by core while Matrix messages wait out a Discord outage: they go
   * on as soon as it does. Not logged in (yet, or any more: its token was refused): no. A client whose
   * gateway session ended for some other cause still sends (REST, the webhooks): asked like any.
   */
  async reachable(): Promise<boolean> {
    const client = this.client;
    if (!client || this.stopped) return false;
    return discordAnswers(client.rest, REACHABLE_TIMEOUT_MS);
  }

  private requireClient(): Client {
    if (!this.client) throw notConnected();
    return this.client;
  }

  private remoteUserOf(mxid: string): ReturnType<typeof parseUser> {
    return discordUserOfGhost(this.ctx!, this.identity.userPrefix, mxid);
  }

  // ------------------------------------------------------------------ Matrix → Discord (toDiscord.ts)

  handleMatrixMessage(msg: MatrixMessage): Promise<SendResult> { return this.toDiscord!.message(msg); }
  handleMatrixEdit(edit: MatrixEdit): Promise<void> { return this.toDiscord!.edit(edit); }
  handleMatrixRedaction(r: MatrixRedaction): Promise<void> { return this.toDiscord!.redaction(r); }
  handleMatrixReaction(reaction: MatrixReaction): Promise<SendResult> { return this.toDiscord!.reaction(reaction); }
  handleMatrixTyping(typing: MatrixTyping): Promise<void> { return this.toDiscord!.typing(typing); }

  // ------------------------------------------------------------------ portals and links (links.ts)

  provisionLink(req: { roomId: string; remoteChat: string; userId: string }): Promise<{ remoteChat: string; name?: string }> {
    return this.links!.provisionLink(req);
  }

  portalForAlias(localpart: string): Promise<{ remoteChat: string; name?: string; topic?: string } | undefined> {
    return this.links!.portalForAlias(localpart);
  }

  /** A room was linked: members' power levels (from their roles) reach it at once; a portal room joins its server's space. */
  async portalLinked(portal: PortalInfo): Promise<void> {
    const chat = parseChat(portal.remoteChat);
    const ch = chat ? this.client?.channels.cache.get(chat.channelId) : undefined;
    if (!ch || ch.isDMBased()) return;
    await this.fromDiscord!.syncPowers(portal.remoteChat, ch.guild);
    await this.guilds!.portalLinked(ch.guild, portal);
  }

  /**
   * What clients show of a link (core's bridge info): the server (its id, name and icon) and the
   * channel, with their discord.com addresses, and who asked for the link if it was approved here.
   * Nothing while the channel is not known (not connected yet, or deleted).
   */
  bridgeInfo(portal: PortalInfo): { network?: BridgeInfoSection; channel: BridgeInfoSection; creator?: string } | undefined {
    const chat = parseChat(portal.remoteChat);
    const ch = chat ? this.client?.channels.cache.get(chat.channelId) : undefined;
    if (!chat || !ch) return undefined;
    if (ch.isDMBased()) return { channel: { id: portal.remoteChat, ...(portal.name ? { displayname: portal.name } : {}) } };
    const guild = ch.guild;
    const thread = chat.threadId ? this.client?.channels.cache.get(chat.threadId) : undefined;
    const name = thread && 'name' in thread && thread.name ? thread.name : ch.name;
    const creator = this.store?.linkedBy(portal.remoteChat).find((l) => l.roomId === portal.roomId)?.userId;
    const icon = this.store?.guild(guild.id)?.iconMxc;
    return {
      network: { id: guild.id, displayname: guild.name, external_url: `https://discord.com/channels/${guild.id}`, ...(icon ? { avatar_url: icon } : {}) },
      channel: { id: portal.remoteChat, displayname: `#${name}`, external_url: `https://discord.com/channels/${guild.id}/${chat.threadId ?? chat.channelId}` },
      ...(creator ? { creator } : {}),
    };
  }

  /**
   * A link was removed (`unlink`), or moved to the room that replaced its room (an upgrade): who linked
   * it is forgotten, or follows it; a portal room leaves its server's space (the new room joined it in
   * {@link portalLinked}).
   */
  async portalUnlinked(portal: PortalInfo, movedTo?: string): Promise<void> {
    if (movedTo) this.store!.moveLink(portal.roomId, movedTo, portal.remoteChat);
    else this.store!.removeLink(portal.roomId, portal.remoteChat);
    await this.guilds!.portalUnlinked(portal);
  }


  // ------------------------------------------------------------------ room metadata and members

  async handleMatrixRoomMeta(meta: MatrixRoomMeta): Promise<void> {
    await this.guilds!.roomMetaFromMatrix(meta);
  }

  /**
   * A Matrix user joining a portal room is invited to its server's space. A Matrix kick, ban or unban
   * of a Discord user's ghost stays in its room: the moderator of one Matrix room is no moderator of
   * the Discord server (core does not say whether they are a bridge admin; admins have the `kick`,
   * `ban` and `unban` commands). The room is told so, once.
   */
  async handleMatrixMembership(change: MatrixMembership): Promise<void> {
    const c = parseChat(change.portal.remoteChat);
    const ch = c ? this.client?.channels.cache.get(c.channelId) : undefined;
    if (!ch || ch.isDMBased()) return;
    const guild = ch.guild;
    if (change.membership === 'join') {
      if (change.portal.kind === 'portal' && !change.target.ghostOf) await this.guilds!.inviteToSpace(guild, change.target.userId);
      return;
    }
    if (change.membership !== 'kick' && change.membership !== 'ban' && change.membership !== 'unban') return;
    const target = this.remoteUserOf(change.target.userId);
    if (!target) return; // a Matrix user: nobody on Discord
    const name = change.target.displayName;
    if (target.kind === 'webhook') {
      if (change.membership !== 'unban') await this.tellStaysInRoom(change, staysInRoomNotice(change.membership, name, 'webhook', `!${this.id}`));
      return;
    }
    if (change.membership === 'unban') {
      // lifted here only; said when the ban came from Discord, whose ban stays (and keeps the ghost out of the other rooms)
      const fromDiscord = this.bannedIn(guild.id, target.userId).includes(change.portal.remoteChat);
      if (!fromDiscord) return;
      this.bannedIn(guild.id, target.userId, (chats) => chats.filter((chat) => chat !== change.portal.remoteChat));
      await this.tellStaysInRoom(change, staysInRoomNotice('unban', name, 'member', `!${this.id}`));
      return;
    }
    // out of this chat's rooms: what happens to the member on Discord later no longer concerns them
    this.store!.removeChatMember(change.portal.remoteChat, target.userId);
    await this.tellStaysInRoom(change, staysInRoomNotice(change.membership, name, 'member', `!${this.id}`));
  }

  /** Tell a room that a kick, ban or unban stays there: once per event, however many of the room's links it came through. */
  private async tellStaysInRoom(change: MatrixMembership, text: string): Promise<void> {
    if (this.toldStaysInRoom.has(change.eventId)) return;
    this.toldStaysInRoom.add(change.eventId);
    if (this.toldStaysInRoom.size > TOLD_EVENTS) this.toldStaysInRoom.delete(this.toldStaysInRoom.values().next().value!);
    await this.ctx!.matrix.notice(change.portal.roomId, text).catch((err: unknown) =>
      this.ctx!.log.warn('could not tell a room that a kick or ban stays there', { roomId: change.portal.roomId, eventId: change.eventId, err: err as Error }));
  }

  /**
   * `kick`, `ban` and `unban` (bridge admins): act on the Discord server of the room the command is said
   * in; Discord's echo then reaches the user's ghost in every room of the server.
   */
  private async moderationCommand(kind: 'kick' | 'ban' | 'unban', inv: CommandInvocation): Promise<string> {
    const { who, reason } = moderationArgs(inv.args['user'] ?? '');
    const target = isSnowflake(who) ? { kind: 'user' as const, userId: who } : this.remoteUserOf(who);
    if (!target) throw new Error(`say whom: a Discord user's ghost (@${this.identity.userPrefix}<id>:${this.ctx!.domain}) or their Discord user id`);
    if (target.kind === 'webhook') throw new Error(`${target.name} posts through a webhook on Discord: there is no member to ${kind}`);
    const guild = this.guildOfRoom(inv.roomId);
    const sender = { userId: inv.sender, displayName: await inv.senderName() };
    const change = { sender, ...(reason ? { reason } : {}) };
    return kind === 'unban' ? applyMatrixUnban(guild, target.userId, change) : applyMatrixRemoval(guild, target.userId, { ...change, membership: kind });
  }

  /** The one Discord server whose channels a room is linked to, or an error saying what to do. */
  private guildOfRoom(roomId: string): Guild {
    const client = this.requireClient();
    const guilds = new Map<string, Guild>();
    for (const p of this.ctx!.portals.forRoom(roomId)) {
      const c = parseChat(p.remoteChat);
      const ch = c ? client.channels.cache.get(c.channelId) : undefined;
      if (ch && !ch.isDMBased()) guilds.set(ch.guild.id, ch.guild);
    }
    const [only, ...more] = guilds.values();
    if (!only) throw new Error('say it in a room linked to a channel of the Discord server');
    if (more.length) throw new Error('this room is linked to channels of more than one Discord server: say it in a room linked to one');
    return only;
  }

  /** A member left a server, or was kicked or banned: their ghost leaves, or is kicked or banned from, the rooms it is in. */
  private async reportDeparture(guild: Guild, user: User, member: GuildMember | PartialGuildMember | undefined, d: Departure): Promise<void> {
    const client = this.client;
    if (!client || user.id === client.user?.id) return;
    const chats = this.store!.chatsOfMember(user.id).filter((chat) => {
      const c = parseChat(chat);
      const ch = c ? client.channels.cache.get(c.channelId) : undefined;
      return ch !== undefined && !ch.isDMBased() && ch.guild.id === guild.id;
    });
    if (chats.length === 0) return;
    for (const chat of chats) this.store!.removeChatMember(chat, user.id);
    let executor: string | undefined;
    if (d.executorId) {
      executor = guild.members.cache.get(d.executorId)?.displayName
        ?? (await client.users.fetch(d.executorId).then((u) => u.globalName ?? u.username, () => undefined));
    }
    const reason = departureReason(d, executor);
    await this.fromDiscord!.reportMembership(chats, { user: this.fromDiscord!.userSender(user, member), membership: d.kind, ...(reason ? { reason } : {}) });
    if (d.kind === 'ban') this.bannedIn(guild.id, user.id, (known) => [...new Set([...known, ...chats])]);
  }

  /**
   * The Discord users whose ghosts are in a server's rooms, looked up again: the ghosts of those no
   * longer members leave those rooms, as for a departure seen live.
   */
  private async departedWhileAway(client: Client): Promise<void> {
    const byGuild = new Map<string, { guild: Guild; users: Set<string> }>();
    for (const { chat, userId } of this.store!.chatMembers()) {
      const c = parseChat(chat);
      const ch = c ? client.channels.cache.get(c.channelId) : undefined;
      if (!ch || ch.isDMBased()) continue;
      const entry = byGuild.get(ch.guild.id) ?? { guild: ch.guild, users: new Set<string>() };
      entry.users.add(userId);
      byGuild.set(ch.guild.id, entry);
    }
    for (const { guild, users } of byGuild.values()) {
      const gone = await notMembers(guild, [...users]);
      if (gone.length) this.ctx!.log.info('members left a Discord server while the bridge was away; their ghosts leave', { guild: guild.id, count: gone.length });
      for (const id of gone) {
        const user = await client.users.fetch(id).catch(() => undefined);
        if (user) await this.reportDeparture(guild, user, undefined, { kind: 'leave', executorId: null, reason: null });
      }
    }
  }

  /** The chats whose rooms a Discord user's ghost was banned from for a ban on Discord, changed by `update`. */
  private bannedIn(guildId: string, userId: string, update?: (chats: string[]) => string[]): string[] {
    const kv = this.ctx!.kv;
    const key = `banned:${guildId}:${userId}`;
    const chats = JSON.parse(kv.get(key) ?? '[]') as string[];
    if (!update) return chats;
    const next = update(chats);
    if (next.length) kv.set(key, JSON.stringify(next));
    else kv.delete(key);
    return next;
  }

  /** A ban was lifted on Discord: the ghost's bans are lifted in the rooms it was banned from for it. */
  private async unbanGhost(guild: Guild, user: User): Promise<void> {
    const chats = this.bannedIn(guild.id, user.id);
    if (chats.length === 0) return;
    this.bannedIn(guild.id, user.id, () => []);
    await this.fromDiscord!.reportMembership(chats, { user: this.fromDiscord!.userSender(user, undefined), membership: 'unban' });
  }

}

export { discordConfigSchema };
