/**
 * Discord servers and channels as Matrix rooms and spaces, both ways:
 * - each server is a Matrix space holding its channels' portal rooms (`m.space.child` with an `order`
 *   that follows Discord's categories and positions, `m.space.parent` in each room), named and
 *   pictured like the server;
 * - a portal room follows its channel's name and topic and shows the server's icon;
 * - a Matrix user renaming a portal room or changing its topic renames the channel / changes its
 *   topic when the bot has Manage Channels there; otherwise they are told it did not happen.
 * Only portal rooms take part: a plumbed room belongs to its people and keeps its own name, topic
 * and picture, and stays out of the space.
 */
import {
  DeliveryError, KeyedSerial, type Logger, type MatrixRoomMeta, type NetworkContext, type NetworkMatrix, type PortalInfo, type RemoteChatInfo,
} from '@trestle/core';
import {
  ChannelType, Events, PermissionFlagsBits, type Channel, type Client, type Guild, type NonThreadGuildBasedChannel,
} from 'discord.js';
import { channelChat, parseChat } from './ids.js';
import { download } from './media.js';
import type { DiscordStore, StoredGuild } from './store.js';
import { discordCode } from './webhooks.js';
import { toDeliveryError } from './errors.js';

const MISSING_PERMISSIONS = 50013;
const TOPIC_MAX = 1024;

/** A channel's topic (null: none, or a kind of channel without one). */
const topicOf = (ch: Channel): string | null => ('topic' in ch ? ch.topic ?? null : null);

/** The name of a channel's portal room. */
export function portalRoomName(channelName: string, guildName: string): string {
  return `#${channelName} (${guildName})`;
}

/**
 * The Discord channel name a Matrix user meant by a portal room name: without the `#` and the
 * ` (Server)` the bridge adds, in Discord's text-channel form (lower case, dashes for spaces).
 */
export function channelNameFromRoomName(roomName: string, guildName: string): string {
  let n = roomName.trim();
  const suffix = ` (${guildName})`;
  if (n.endsWith(suffix)) n = n.slice(0, -suffix.length);
  n = n.replace(/^#+/, '').trim().toLowerCase().replace(/\s+/g, '-');
  return [...n].slice(0, 100).join('');
}

/** A topic Discord takes (at most 1024 characters). */
export function discordTopic(topic: string): string {
  return topic.length > TOPIC_MAX ? `${topic.slice(0, TOPIC_MAX - 1)}…` : topic;
}

export interface ChannelPlace { id: string; parentId: string | null; rawPosition: number; category: boolean }

/**
 * The `order` of each non-category channel in its server's space, as Discord lists them: channels
 * outside any category first, then each category in its position, channels by position within it
 * (ties by id, as Discord breaks them). Orders are compared as strings by Matrix clients.
 */
export function spaceOrders(channels: ChannelPlace[]): Map<string, string> {
  const byPos = (a: ChannelPlace, b: ChannelPlace): number =>
    a.rawPosition - b.rawPosition || (BigInt(a.id) < BigInt(b.id) ? -1 : BigInt(a.id) > BigInt(b.id) ? 1 : 0);
  const categories = channels.filter((c) => c.category).sort(byPos);
  const group = new Map<string | null, number>([[null, 0], ...categories.map((c, i): [string, number] => [c.id, i + 1])]);
  const out = new Map<string, string>();
  const members = channels.filter((c) => !c.category).sort(byPos);
  const seen = new Map<number, number>();
  for (const c of members) {
    const g = group.get(c.parentId) ?? 0;
    const n = seen.get(g) ?? 0;
    seen.set(g, n + 1);
    out.set(c.id, `${String(g).padStart(3, '0')}.${String(n).padStart(4, '0')}`);
  }
  return out;
}

export interface GuildSyncDeps {
  ctx: NetworkContext;
  store: DiscordStore;
  /** Whether servers show as spaces (`networks.<id>.spaces`). */
  spaces: boolean;
  log: Logger;
  /** Report something about a chat in that chat's order with its messages. */
  inOrder(chat: string, what: string, task: () => Promise<void>): Promise<void>;
}

export class GuildSync {
  private readonly serial = new KeyedSerial();
  /** What the bridge itself just set on a channel from Matrix: its CHANNEL_UPDATE echo is not sent back. */
  private readonly fromMatrix = new Map<string, { name?: string; topic?: string }>();
  private client?: Client;

  constructor(private readonly d: GuildSyncDeps) {}

  private get spacesOn(): boolean { return this.d.spaces; }
  private get matrix(): NetworkMatrix { return this.d.ctx.matrix; }

  attach(client: Client): void {
    this.client = client;
    const { log } = this.d;
    client.on(Events.ChannelUpdate, (before, after) => { void this.onChannelUpdate(before, after).catch((err: unknown) => log.warn('could not follow a channel change', { err: err as Error })); });
    client.on(Events.ChannelCreate, (ch) => { if (!ch.isThread()) this.reorderSoon(ch.guild); });
    client.on(Events.ChannelDelete, (ch) => { if (!ch.isDMBased()) void this.onChannelDelete(ch.guild, ch.id); });
    client.on(Events.GuildUpdate, (_before, after) => this.refreshGuild(after));
  }

  /** Wait for the space work queued so far (tests, shutdown). */
  idle(): Promise<void> { return this.serial.idle(); }

  private run(guildId: string, what: string, task: () => Promise<void>): Promise<void> {
    return this.serial.run(`guild:${guildId}`, task, (err) => this.d.log.warn(`could not ${what}`, { guildId, err: err as Error }));
  }

  // ------------------------------------------------------------------ portals

  /** Whether a chat has a portal room (core gives names and pictures to portal rooms only). */
  private hasPortalRoom(chat: string): boolean {
    return this.d.ctx.portals.forChat(chat).some((p) => p.kind === 'portal');
  }

  /** Whether every room of a chat is a portal room: only then does a topic follow the channel (a plumbed room keeps its people's). */
  private onlyPortalRooms(chat: string): boolean {
    const all = this.d.ctx.portals.forChat(chat);
    return all.length > 0 && all.every((p) => p.kind === 'portal');
  }

  /** A portal room was made for a channel: it shows the server's icon and joins the server's space. */
  portalLinked(guild: Guild, portal: PortalInfo): Promise<void> {
    if (portal.kind !== 'portal') return Promise.resolve();
    const ch = guild.channels.cache.get(parseChat(portal.remoteChat)?.channelId ?? '');
    if (ch && !ch.isThread()) this.noteChannel(ch);
    return this.run(guild.id, 'put a portal room in its server space', async () => {
      const rec = await this.record(guild);
      const icon = rec.iconMxc;
      if (icon) await this.chatInfo({ chat: portal.remoteChat, avatarUrl: icon });
      if (rec.spaceRoomId) await this.placeChildren(guild, rec.spaceRoomId, [portal]);
    });
  }

  /**
   * A room's link to a channel was removed (unlinked, or moved to the room that replaced it): the room
   * leaves the server's space, both ways (the space's child and the room's parent), so the space lists
   * only rooms that bridge. Nothing to do for a room that was not in a space (a plumbed room).
   */
  portalUnlinked(portal: PortalInfo): Promise<void> {
    const known = this.d.store.spaceChild(portal.roomId);
    if (known?.chat !== portal.remoteChat) return Promise.resolve();
    return this.run(known.guildId, 'take an unlinked room out of its server space', () => this.leaveSpace(known.guildId, portal.roomId));
  }

  /** Take a room out of its server's space, both ways, and forget it was there. Run in the server's queue. */
  private async leaveSpace(guildId: string, roomId: string): Promise<void> {
    const space = this.d.store.guild(guildId)?.spaceRoomId;
    if (space) await this.matrix.spaces.removeChild(space, roomId);
    this.d.store.removeSpaceChild(roomId);
    if (!space) return;
    // the room may live on (unlinked) or be a tombstone; either way it stops claiming the space
    await this.matrix.setState(roomId, 'm.space.parent', space, {}).catch((err: unknown) =>
      this.d.log.info('could not take the space parent out of a room that left the space', { roomId, err: err as Error }));
  }

  /**
   * After login: spaces for portal rooms made before (or while spaces were off),
   * and what changed on Discord while the bridge was away (server name and icon, channel order);
   * rooms that no longer bridge their channel leave the space (unlinked or upgraded while versions
   * before {@link portalUnlinked} left them there).
   */
  async reconcile(client: Client): Promise<void> {
    const linked = new Set(this.d.ctx.portals.all().map((p) => `${p.roomId}\u0000${p.remoteChat}`));
    const stale = this.d.store.allSpaceChildren().filter((c) => !linked.has(`${c.roomId}\u0000${c.chat}`));
    await Promise.all(stale.map((c) => this.run(c.guildId, 'take a room that no longer bridges out of its server space', () => this.leaveSpace(c.guildId, c.roomId))));
    const byGuild = new Map<string, PortalInfo[]>();
    for (const p of this.d.ctx.portals.all()) {
      const c = p.kind === 'portal' ? parseChat(p.remoteChat) : undefined;
      const ch = c && !c.threadId ? client.channels.cache.get(c.channelId) : undefined;
      if (!ch || ch.isDMBased()) continue;
      byGuild.set(ch.guild.id, [...(byGuild.get(ch.guild.id) ?? []), p]);
    }
    await Promise.all([...byGuild].map(([guildId, portals]) => {
      const guild = client.guilds.cache.get(guildId);
      if (!guild) return Promise.resolve();
      return this.run(guildId, 'bring a server space up to date', async () => {
        // channels renamed (or given a new topic) while the bridge was away
        for (const chat of new Set(portals.map((p) => p.remoteChat))) {
          const ch = guild.channels.cache.get(parseChat(chat)!.channelId);
          if (!ch || ch.isThread()) continue;
          const seen = this.d.store.seenChannel(ch.id);
          if (!seen) this.noteChannel(ch); // (a portal room made before the bridge kept this)
          else if (seen.name !== ch.name || seen.topic !== topicOf(ch)) await this.channelChanged(seen, ch);
        }
        await this.updateGuild(guild);
        const rec = await this.record(guild);
        if (rec.spaceRoomId) await this.placeChildren(guild, rec.spaceRoomId, portals);
      });
    }));
  }

  // ------------------------------------------------------------------ the space

  /** What Matrix shows of the server, made on first use: its space (when spaces are on) and its icon. */
  private async record(guild: Guild): Promise<StoredGuild> {
    let rec = this.d.store.guild(guild.id);
    if (!rec) {
      rec = { guildId: guild.id, spaceRoomId: null, name: guild.name, iconHash: guild.icon, iconMxc: (await this.iconMxc(guild)) ?? null };
      this.d.store.putGuild(rec);
    }
    if (rec.spaceRoomId || !this.spacesOn) return rec;
    const roomId = await this.matrix.spaces.create({
      name: rec.name, topic: `The Discord server ${rec.name}`, ...(rec.iconMxc ? { avatarMxc: rec.iconMxc } : {}),
    });
    rec = { ...rec, spaceRoomId: roomId };
    this.d.store.putGuild(rec);
    this.d.log.info('created the space of a Discord server', { guildId: guild.id, roomId });
    return rec;
  }

  /** The server's icon in the media repository, uploaded once per icon. */
  private async iconMxc(guild: Guild): Promise<string | undefined> {
    if (!guild.icon) return undefined;
    const stored = this.d.store.guild(guild.id);
    if (stored?.iconHash === guild.icon && stored.iconMxc) return stored.iconMxc;
    const url = guild.iconURL({ extension: 'png', size: 512 });
    if (!url) return undefined;
    try {
      const got = await download(url, 10 * 1024 * 1024, 20_000);
      if ('tooBig' in got) return undefined;
      return (await this.d.ctx.uploadMedia(got.data, got.contentType ?? 'image/png', `${guild.id}.png`)).mxc;
    } catch (err) {
      this.d.log.warn('could not copy a Discord server icon', { guildId: guild.id, err: err as Error });
      return undefined;
    }
  }

  /** Put portal rooms in the space (child and parent events) with their order; only what changed is written. */
  private async placeChildren(guild: Guild, spaceRoomId: string, portals: PortalInfo[]): Promise<void> {
    const orders = spaceOrders(this.places(guild));
    for (const p of portals) {
      const c = parseChat(p.remoteChat);
      const order = c ? orders.get(c.channelId) : undefined;
      if (!order) continue;
      const known = this.d.store.spaceChild(p.roomId);
      if (known?.order === order) continue;
      await this.matrix.spaces.addChild(spaceRoomId, p.roomId, { order, parent: !known });
      this.d.store.putSpaceChild(guild.id, { roomId: p.roomId, chat: p.remoteChat, order });
    }
  }

  private places(guild: Guild): ChannelPlace[] {
    return [...guild.channels.cache.values()].filter((c): c is NonThreadGuildBasedChannel => !c.isThread()).map((c) => ({
      id: c.id, parentId: c.parentId, rawPosition: c.rawPosition, category: c.type === ChannelType.GuildCategory,
    }));
  }

  /** Channels were added, moved or removed: give the space's rooms their new order (once for a burst of changes). */
  private readonly reorderPending = new Set<string>();
  private reorderSoon(guild: Guild): void {
    if (!this.spacesOn || this.reorderPending.has(guild.id) || !this.d.store.guild(guild.id)?.spaceRoomId) return;
    this.reorderPending.add(guild.id);
    setTimeout(() => {
      this.reorderPending.delete(guild.id);
      void this.run(guild.id, 'reorder a server space', async () => {
        const space = this.d.store.guild(guild.id)?.spaceRoomId;
        if (!space) return;
        const portals = this.d.store.spaceChildren(guild.id).flatMap((c) => this.d.ctx.portals.forChat(c.chat).filter((p) => p.roomId === c.roomId));
        await this.placeChildren(guild, space, portals);
      });
    }, 200).unref();
  }

  private async onChannelDelete(guild: Guild, channelId: string): Promise<void> {
    const space = this.d.store.guild(guild.id)?.spaceRoomId;
    if (!space) return;
    await this.run(guild.id, 'take a deleted channel out of its space', async () => {
      for (const c of this.d.store.spaceChildren(guild.id).filter((x) => x.chat === channelChat(channelId))) {
        await this.matrix.spaces.removeChild(space, c.roomId);
        this.d.store.removeSpaceChild(c.roomId);
      }
    });
    this.reorderSoon(guild);
  }

  // ------------------------------------------------------------------ Discord → Matrix

  private async onChannelUpdate(before: Channel, after: Channel): Promise<void> {
    if (after.isDMBased() || after.isThread() || before.isDMBased() || before.isThread()) return;
    if (before.rawPosition !== after.rawPosition || before.parentId !== after.parentId) this.reorderSoon(after.guild);
    await this.channelChanged({ name: before.name, topic: topicOf(before) }, after);
  }

  /**
   * A channel's name or topic may not be what it was (`before`): told live (CHANNEL_UPDATE), or found
   * at login against what was last seen (changed while the bridge was away). Its portal rooms follow,
   * and what it is now is noted for the next login.
   */
  private async channelChanged(before: { name: string; topic: string | null }, after: NonThreadGuildBasedChannel): Promise<void> {
    const chat = channelChat(after.id);
    const topicAfter = topicOf(after);
    if (this.hasPortalRoom(chat)) this.noteChannel(after);
    if (before.name !== after.name) this.d.ctx.portals.refreshBridgeInfo(chat); // its rooms' bridge info names it
    const echo = this.fromMatrix.get(chat);
    const info: { name?: string; topic?: string } = {};
    if (before.name !== after.name && this.hasPortalRoom(chat)) {
      if (echo?.name === after.name) delete echo.name;
      else info.name = portalRoomName(after.name, after.guild.name);
    }
    if (before.topic !== topicAfter && this.onlyPortalRooms(chat)) {
      if (echo?.topic === (topicAfter ?? '')) delete echo.topic;
      else info.topic = topicAfter ?? '';
    }
    if (echo && echo.name === undefined && echo.topic === undefined) this.fromMatrix.delete(chat);
    if (info.name !== undefined || info.topic !== undefined) await this.chatInfo({ chat, ...info });
  }

  /** What a channel with a portal room is now, for the next login to compare with. */
  private noteChannel(ch: NonThreadGuildBasedChannel): void {
    this.d.store.putSeenChannel({ channelId: ch.id, name: ch.name, topic: topicOf(ch) });
  }

  /** The server's name or icon changed: its space, and its portal rooms (named after it, showing its icon). */
  private refreshGuild(guild: Guild): void {
    void this.run(guild.id, 'follow a server change', async () => {
      await this.updateGuild(guild);
      // the bridge info of every room linked to the server names it and shows its icon
      for (const chat of new Set(this.d.ctx.portals.all().map((p) => p.remoteChat))) {
        const c = parseChat(chat);
        if (c && guild.channels.cache.has(c.channelId)) this.d.ctx.portals.refreshBridgeInfo(chat);
      }
    });
  }

  private async updateGuild(guild: Guild): Promise<void> {
    const stored = this.d.store.guild(guild.id);
    const chats = [...new Set(this.d.ctx.portals.all().map((p) => p.remoteChat))].filter((chat) => {
      const c = parseChat(chat);
      return c !== undefined && !c.threadId && guild.channels.cache.has(c.channelId) && this.hasPortalRoom(chat);
    });
    if (!stored && chats.length === 0) return; // a server Matrix shows nothing of
    const nameChanged = stored !== undefined && stored.name !== guild.name;
    // a server first seen here may have portal rooms from before icons were shown: they get it now
    const iconChanged = stored !== undefined ? stored.iconHash !== guild.icon : guild.icon !== null;
    if (!nameChanged && !iconChanged) return;
    const iconMxc = iconChanged ? (await this.iconMxc(guild)) ?? null : stored?.iconMxc ?? null;
    if (stored?.spaceRoomId) {
      if (nameChanged) await this.matrix.setState(stored.spaceRoomId, 'm.room.name', '', { name: guild.name });
      if (iconChanged) await this.matrix.setState(stored.spaceRoomId, 'm.room.avatar', '', iconMxc ? { url: iconMxc } : {});
    }
    this.d.store.putGuild({ guildId: guild.id, spaceRoomId: stored?.spaceRoomId ?? null, name: guild.name, iconHash: guild.icon, iconMxc });
    for (const chat of chats) {
      const ch = guild.channels.cache.get(parseChat(chat)!.channelId)!;
      await this.chatInfo({
        chat, ...(nameChanged ? { name: portalRoomName(ch.name, guild.name) } : {}), ...(iconChanged && iconMxc ? { avatarUrl: iconMxc } : {}),
      });
    }
  }

  private chatInfo(info: RemoteChatInfo): Promise<void> {
    return this.d.inOrder(info.chat, 'a channel or server change', () => this.d.ctx.remote.chatInfo(info));
  }

  /** A Matrix user joined a portal room of the server: invite them to its space, if they are not in it. */
  async inviteToSpace(guild: Guild, userId: string): Promise<void> {
    if (!this.spacesOn) return;
    const m = this.matrix;
    await this.run(guild.id, 'invite a user to a server space', async () => {
      const space = this.d.store.guild(guild.id)?.spaceRoomId;
      if (!space) return;
      const member = await m.getState<{ membership?: string }>(space, 'm.room.member', userId);
      if (member?.membership === 'join' || member?.membership === 'invite' || member?.membership === 'ban') return;
      await m.invite(space, userId).catch((err: unknown) => {
        if ((err as { status?: number }).status !== 403) throw err; // not allowed to invite them (e.g. they left it)
      });
    });
  }

  // ------------------------------------------------------------------ Matrix → Discord

  /** A Matrix user renamed a portal room or changed its topic: do the same to the channel, or say why not. */
  async roomMetaFromMatrix(meta: MatrixRoomMeta): Promise<void> {
    if (meta.portal.kind !== 'portal') return; // a plumbed room's name and topic are its own
    const c = parseChat(meta.portal.remoteChat);
    const ch = c && !c.threadId ? this.client?.channels.cache.get(c.channelId) : undefined;
    if (!ch || ch.isDMBased() || ch.isThread()) throw new DeliveryError('the Discord channel is gone or the bot cannot see it', true);
    const wanted: { name?: string; topic?: string } = {};
    if (meta.name !== undefined) {
      const name = channelNameFromRoomName(meta.name, ch.guild.name);
      if (!name) throw new DeliveryError(`#${ch.name} keeps its name on Discord: a Discord channel cannot be nameless`, true);
      if (name !== ch.name) wanted.name = name;
    }
    if (meta.topic !== undefined && 'topic' in ch && (ch.topic ?? '') !== discordTopic(meta.topic)) wanted.topic = discordTopic(meta.topic);
    if (meta.avatarMxc !== undefined && wanted.name === undefined && wanted.topic === undefined) {
      throw new DeliveryError('Discord channels have no picture: the room picture stays on Matrix only', true);
    }
    if (wanted.name === undefined && wanted.topic === undefined) return;
    const what = wanted.name !== undefined ? (wanted.topic !== undefined ? 'name and topic' : 'name') : 'topic';
    const me = ch.guild.members.me;
    if (!me || !ch.permissionsFor(me).has(PermissionFlagsBits.ManageChannels)) {
      throw new DeliveryError(`#${ch.name} keeps its ${what} on Discord: the bridge bot lacks the Manage Channels permission there`, true);
    }
    const chat = channelChat(ch.id);
    this.fromMatrix.set(chat, { ...this.fromMatrix.get(chat), ...wanted });
    try {
      await ch.edit({ ...wanted, reason: `changed on Matrix by ${meta.sender.userId}` });
    } catch (err) {
      this.fromMatrix.delete(chat);
      if (discordCode(err) === MISSING_PERMISSIONS) {
        throw new DeliveryError(`#${ch.name} keeps its ${what} on Discord: the bridge bot lacks the Manage Channels permission there`, true, { cause: err });
      }
      throw toDeliveryError(err, `channel ${what}`);
    }
  }
}
