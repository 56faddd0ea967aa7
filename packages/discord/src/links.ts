/**
 * Which Discord channels can be bridged, and linking them: portal rooms on demand (an alias names a
 * server and channel), `!discord link` and the provisioning API (both ask the channel for approval,
 * see approvals.ts), the room limit, and the `channels` list; and unlinking the channels that are
 * gone (deleted, or in a server the bot is no longer in).
 *
 * Portal rooms are public and anyone on Matrix may join their alias, so only a channel everyone in
 * its server can see has one (and is listed): a channel closed to @everyone (staff, moderators) is
 * bridged only by plumbing a room, with the channel's approval.
 */
import type { CommandInvocation, NetworkContext, PortalInfo } from '@trestle/core';
import {
  ChannelType, Events, GatewayDispatchEvents, PermissionFlagsBits, type Client, type NewsChannel, type NonThreadGuildBasedChannel, type TextChannel,
} from 'discord.js';
import type { LinkApprovals, LinkAsk } from './approvals.js';
import type { DiscordConfig } from './config.js';
import { portalRoomName } from './guilds.js';
import { aliasLocalpart, channelChat, parseAliasLocalpart, parseChat, parseLinkTarget } from './ids.js';
import type { DiscordStore } from './store.js';

export interface LinksDeps {
  ctx: NetworkContext;
  cfg: DiscordConfig;
  aliasPrefix: string;
  store: DiscordStore;
  client(): Client | undefined;
  approvals(): LinkApprovals;
  /** Bring a newly linked room up to date (power levels, space). */
  portalLinked(portal: PortalInfo): Promise<void>;
  /** Undo what a link set up in its room (the space), for a link the network removes itself. */
  portalUnlinked(portal: PortalInfo): Promise<void>;
  /** Report something about a chat after what was reported of it before. */
  inOrder(chat: string, what: string, task: () => Promise<void>): Promise<void>;
}

/**
 * Whether everyone in the channel's server can see it: the @everyone role's permissions with the
 * channel's overwrites for @everyone, as Discord computes them.
 */
export function everyoneSees(ch: NonThreadGuildBasedChannel): boolean {
  return ch.permissionsFor(ch.guild.roles.everyone).has(PermissionFlagsBits.ViewChannel);
}

export class Links {
  constructor(private readonly d: LinksDeps) {}

  /**
   * Follow channels going away: deleted (CHANNEL_DELETE, THREAD_DELETE), or the bot removed from their
   * server, or the server deleted (GUILD_DELETE without `unavailable`; with it, the server is only
   * down for a while and comes back).
   */
  attach(client: Client): void {
    const warn = (err: unknown): void => this.d.ctx.log.warn('could not unlink a Discord channel that is gone', { err: err as Error });
    client.on(Events.ChannelDelete, (ch) => {
      if (!ch.isDMBased()) void this.channelsGone(new Map([[ch.id, `The Discord channel #${ch.name} (${ch.guild.name}) was deleted`]])).catch(warn);
    });
    client.on(Events.ThreadDelete, (th) => {
      void this.channelsGone(new Map([[th.id, `The Discord thread ${th.name} (${th.guild.name}) was deleted`]])).catch(warn);
    });
    // discord.js forgets a server's channels before it emits guildDelete: they are read here, as the
    // packet arrives (this runs before discord.js handles it)
    client.ws.on(GatewayDispatchEvents.GuildDelete, (data: { id: string; unavailable?: boolean }) => {
      if (data.unavailable) return;
      const guild = client.guilds.cache.get(data.id);
      if (!guild) return;
      const gone = new Map([...guild.channels.cache.values()].map((ch): [string, string] =>
        [ch.id, `The bridge bot is no longer in the Discord server ${guild.name} (it was removed, or the server deleted), so #${ch.name} is out of reach`]));
      void this.channelsGone(gone).catch(warn);
    });
  }

  /**
   * Channels (or threads) are gone for good, `why` each (a sentence): their links are removed, each
   * room told why first (after what was reported of the chat before), and link requests waiting in
   * them end. A link that could only fail for ever would otherwise warn at every Matrix message, and
   * count against `roomLimit`.
   */
  async channelsGone(why: ReadonlyMap<string, string>): Promise<void> {
    const ctx = this.d.ctx;
    const chats = [...new Set(ctx.portals.all().map((p) => p.remoteChat))].flatMap((chat): [string, string][] => {
      const c = parseChat(chat);
      const text = c && (why.get(c.threadId ?? '') ?? why.get(c.channelId));
      return text ? [[chat, text]] : [];
    });
    // queued at once, behind what the channel said before it went
    const unlinked = chats.map(([chat, text]) => this.d.inOrder(chat, 'the end of a link to a channel that is gone', async () => {
      const portals = ctx.portals.forChat(chat);
      if (portals.length === 0) return;
      await ctx.remote.notice({ chat, text: `ℹ ${text}: this room is no longer linked to it.` });
      for (const p of portals) {
        ctx.portals.unlink(p.roomId, chat);
        this.d.store.removeLink(p.roomId, chat);
        await this.d.portalUnlinked(p).catch((err: unknown) => ctx.log.warn('could not take an unlinked room out of its space', { roomId: p.roomId, err: err as Error }));
      }
      this.d.store.removeChat(chat);
      ctx.log.info('unlinked a Discord channel that is gone', { chat, rooms: portals.map((p) => p.roomId) });
    }));
    await this.d.approvals().channelsGone(why);
    await Promise.all(unlinked);
  }

  /** The bridgeable text channel `channelId` of guild `guildId`, or an error saying why not. */
  private bridgeableChannel(guildId: string, channelId: string): TextChannel | NewsChannel {
    const client = this.d.client();
    if (!client) throw new Error('the bridge is not connected to Discord right now; try again in a minute');
    if (this.d.cfg.guilds.length && !this.d.cfg.guilds.includes(guildId)) throw new Error('that Discord server is not enabled in the bridge config');
    const guild = client.guilds.cache.get(guildId);
    if (!guild) throw new Error('the bridge bot is not in that Discord server (invite it first)');
    const ch = guild.channels.cache.get(channelId);
    if (!ch || (ch.type !== ChannelType.GuildText && ch.type !== ChannelType.GuildAnnouncement)) {
      throw new Error('that server has no text channel with that id');
    }
    const me = guild.members.me;
    const perms = me ? ch.permissionsFor(me) : null;
    if (!perms?.has(PermissionFlagsBits.ViewChannel)) throw new Error(`the bridge bot cannot see #${ch.name}`);
    if (!perms.has(PermissionFlagsBits.ManageWebhooks)) {
      throw new Error(`the bridge bot needs the Manage Webhooks permission in #${ch.name} to speak for Matrix users`);
    }
    return ch;
  }

  private withinRoomLimit(chat: string): boolean {
    if (!this.d.cfg.roomLimit) return true;
    const chats = new Set(this.d.ctx.portals.all().map((p) => p.remoteChat));
    return chats.has(chat) || chats.size < this.d.cfg.roomLimit;
  }

  /** Check a link request (`<server id> <channel id>`) and build it; throws what the Matrix user should hear. */
  private async prepareAsk(roomId: string, target: string, userId: string, answer: (text: string) => Promise<void>): Promise<LinkAsk> {
    const t = parseLinkTarget(target);
    if (!t) throw new Error('say which server and channel, like <server id> <channel id> (Discord ids: enable Developer Mode, right-click → Copy ID)');
    const channel = this.bridgeableChannel(t.guildId, t.channelId);
    const chat = channelChat(channel.id);
    if (this.d.ctx.portals.forRoom(roomId).some((p) => p.remoteChat === chat)) throw new Error(`this room is already linked to #${channel.name}`);
    if (this.d.approvals().waiting(roomId, channel.id)) throw new Error(`this room already waits for #${channel.name} to approve`);
    if (!this.withinRoomLimit(chat)) throw new Error(`the bridge already bridges its limit of ${this.d.cfg.roomLimit} Discord channels`);
    return { channel, roomId, roomLabel: await this.roomLabel(roomId), userId, answer };
  }

  /** How a room is called on Discord: its name or alias when the bridge can read them, else its id. */
  private async roomLabel(roomId: string): Promise<string> {
    const m = this.d.ctx.matrix;
    const name = await m.getState<{ name?: string }>(roomId, 'm.room.name').catch(() => undefined);
    const alias = await m.getState<{ alias?: string }>(roomId, 'm.room.canonical_alias').catch(() => undefined);
    return [name?.name, alias?.alias].filter(Boolean).join(' ') || roomId;
  }

  /** `!discord link <server> <channel>`: ask the channel; the room is linked when someone there approves. */
  async linkCommand(inv: CommandInvocation): Promise<string> {
    return this.d.approvals().ask(await this.prepareAsk(inv.roomId, inv.args['channel']!, inv.sender, inv.reply));
  }

  /**
   * `!trestle link discord ...` and the provisioning API: Discord channels are linked only with their
   * approval, so this asks the channel and refuses the immediate link, saying so; the room is linked
   * when they approve (and the requester told in the room, or in their admin room).
   */
  async provisionLink(req: { roomId: string; remoteChat: string; userId: string }): Promise<{ remoteChat: string; name?: string }> {
    const ask = await this.prepareAsk(req.roomId, req.remoteChat, req.userId, (text) => this.announce(req.roomId, req.userId, text));
    const said = await this.d.approvals().ask(ask);
    throw new Error(`the Discord channel has to approve first. ${said} This room is linked when they do.`);
  }

  /** Link an approved request; returns what to tell the Matrix side. */
  async linkApproved(ask: LinkAsk, approver: string): Promise<string> {
    const ctx = this.d.ctx;
    const chat = channelChat(ask.channel.id);
    if (!this.withinRoomLimit(chat)) throw new Error(`the bridge already bridges its limit of ${this.d.cfg.roomLimit} Discord channels`);
    // asked through the provisioning API, the bot may not be in the room yet
    await ctx.matrix.join(ask.roomId).catch((err: unknown) => ctx.log.info('could not join a newly linked room', { roomId: ask.roomId, err: err as Error }));
    const portal = ctx.portals.link(ask.roomId, chat, { kind: 'plumbed', name: `#${ask.channel.name}` });
    this.d.store.setLinkedBy(ask.roomId, chat, ask.userId);
    await this.d.portalLinked(portal).catch((err: unknown) => ctx.log.warn('could not sync a new link', { chat, err: err as Error }));
    ctx.log.info('linked a room to a Discord channel after approval', { roomId: ask.roomId, chat, approver });
    return `Linked this room to discord ${chat} (#${ask.channel.name} in ${ask.channel.guild.name}), approved on Discord by ${approver}.`;
  }

  /** Say something in a room (a notice from the bot), or to the user in their admin room when the bot cannot speak there. */
  async announce(roomId: string, userId: string, text: string): Promise<void> {
    await this.d.ctx.matrix.notice(roomId, text).catch(() => this.d.ctx.notifyUser(userId, text));
  }

  async portalForAlias(localpart: string): Promise<{ remoteChat: string; name?: string; topic?: string } | undefined> {
    const p = parseAliasLocalpart(localpart, this.d.aliasPrefix);
    if (!p) return undefined;
    let ch: TextChannel | NewsChannel;
    try {
      ch = this.bridgeableChannel(p.guildId, p.channelId);
    } catch (err) {
      this.d.ctx.log.info('no portal for an alias', { localpart, why: (err as Error).message });
      return undefined;
    }
    if (!everyoneSees(ch)) {
      // a portal room is public: it would show anyone on Matrix what only some of the server may read
      this.d.ctx.log.info('no portal for an alias of a channel not everyone in its server can see (plumb a room instead)', { localpart });
      return undefined;
    }
    const chat = channelChat(ch.id);
    if (!this.withinRoomLimit(chat)) return undefined;
    const topic = 'topic' in ch && typeof ch.topic === 'string' && ch.topic ? ch.topic : undefined;
    return { remoteChat: chat, name: portalRoomName(ch.name, ch.guild.name), ...(topic ? { topic } : {}) };
  }

  listChannels(): string {
    const client = this.d.client();
    if (!client) return 'The bridge is not connected to Discord right now.';
    const lines: string[] = [];
    let unlisted = false;
    const note = 'Channels not everyone in their server can see have no alias and are not listed; a room is linked to one with "link".';
    for (const guild of client.guilds.cache.values()) {
      if (this.d.cfg.guilds.length && !this.d.cfg.guilds.includes(guild.id)) continue;
      lines.push(`${guild.name} (${guild.id}):`);
      for (const ch of guild.channels.cache.values()) {
        if (ch.type !== ChannelType.GuildText && ch.type !== ChannelType.GuildAnnouncement) continue;
        if (!everyoneSees(ch)) { unlisted = true; continue; }
        lines.push(`  #${ch.name}: #${aliasLocalpart(this.d.aliasPrefix, guild.id, ch.id)}:${this.d.ctx.domain}`);
        if (lines.length >= 60) return [...lines, '  …', ...(unlisted ? [note] : [])].join('\n');
      }
    }
    if (!lines.length) return 'The bridge bot is in no Discord server yet.';
    return [...lines, ...(unlisted ? [note] : [])].join('\n');
  }
}
