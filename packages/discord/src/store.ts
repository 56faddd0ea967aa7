/**
 * The Discord bridge's own tables (owner `discord`, numbered migrations; shipped ones are never edited).
 *
 * 1 — discord_webhooks: the webhook the bridge speaks through in each channel, and every webhook it
 *     ever made (their messages are its own: never bridged back); discord_emojis: custom emojis
 *     uploaded to the media repository (both ways: id → mxc for Discord → Matrix, mxc → emoji for
 *     Matrix → Discord); discord_links: who linked a channel (told about problems with it);
 *     discord_reactions: reactions the bot made on Discord for Matrix users, so the bot's reaction
 *     is only taken back when the last Matrix user took theirs back; discord_reply_quotes: the quote
 *     line a Matrix reply was sent with (webhooks cannot reply), so an edit of the reply keeps it.
 * 2 — discord_guilds: what Matrix shows of each Discord server (its space, name and icon, so a
 *     change made while the bridge was away is noticed); discord_space_children: the portal rooms in it with the
 *     order they were given; discord_stickers: stickers copied to the media repository;
 *     discord_chat_members: Discord users whose ghosts the bridge brought into a chat's rooms (the
 *     rooms a kick, ban or leave on Discord has to reach; a kick elsewhere would fail).
 * 3 — discord_link_requests: link requests waiting in a Discord channel for approval, so a restart
 *     does not lose them (they are re-armed, or expired with a notice if their time ran out meanwhile).
 * 4 — discord_channels: the name and topic of each channel with a portal room as last seen, so a
 *     rename or a new topic made while the bridge was away is noticed at the next login.
 */
import { type Migration, prepared } from '@trestle/core';
import type Database from 'better-sqlite3';

export const discordMigrations: Migration[] = [
  {
    version: 1,
    description: 'Discord webhooks, custom emojis, who linked a channel, reactions made for Matrix users, reply quotes',
    up: `
      CREATE TABLE discord_webhooks (
        webhook_id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL,
        token TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        gone INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX discord_webhooks_channel ON discord_webhooks (channel_id, gone);
      CREATE TABLE discord_emojis (
        emoji_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        animated INTEGER NOT NULL,
        mxc TEXT NOT NULL
      );
      CREATE INDEX discord_emojis_mxc ON discord_emojis (mxc);
      CREATE TABLE discord_links (
        room_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        linked_by TEXT NOT NULL,
        linked_at INTEGER NOT NULL,
        PRIMARY KEY (room_id, chat)
      );
      CREATE TABLE discord_reactions (
        event_id TEXT PRIMARY KEY,
        chat TEXT NOT NULL,
        message_ref TEXT NOT NULL,
        emoji TEXT NOT NULL
      );
      CREATE INDEX discord_reactions_target ON discord_reactions (chat, message_ref, emoji);
      CREATE TABLE discord_reply_quotes (
        chat TEXT NOT NULL,
        message_ref TEXT NOT NULL,
        quote TEXT NOT NULL,
        PRIMARY KEY (chat, message_ref)
      );
    `,
  },
  {
    version: 2,
    description: 'Discord server spaces and their rooms, stickers, which ghosts are in which chats\' rooms',
    up: `
      CREATE TABLE discord_guilds (
        guild_id TEXT PRIMARY KEY,
        space_room_id TEXT,
        name TEXT NOT NULL,
        icon_hash TEXT,
        icon_mxc TEXT
      );
      CREATE TABLE discord_space_children (
        room_id TEXT PRIMARY KEY,
        guild_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        order_key TEXT NOT NULL
      );
      CREATE INDEX discord_space_children_guild ON discord_space_children (guild_id);
      CREATE TABLE discord_stickers (
        sticker_id TEXT PRIMARY KEY,
        mxc TEXT NOT NULL,
        mimetype TEXT NOT NULL
      );
      CREATE TABLE discord_chat_members (
        chat TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (chat, user_id)
      );
      CREATE INDEX discord_chat_members_user ON discord_chat_members (user_id);
    `,
  },
  {
    version: 3,
    description: 'Link requests waiting for approval on Discord survive a restart',
    up: `
      CREATE TABLE discord_link_requests (
        message_id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        room_label TEXT NOT NULL,
        user_id TEXT NOT NULL,
        deadline INTEGER NOT NULL
      );
    `,
  },
  {
    version: 4,
    description: 'The name and topic of channels with portal rooms as last seen, to follow changes made while the bridge was away',
    up: `
      CREATE TABLE discord_channels (
        channel_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        topic TEXT
      );
    `,
  },
];

/** A channel's name and topic as the bridge last saw them (null: no topic). */
export interface SeenChannel { channelId: string; name: string; topic: string | null }

/** A link request waiting in a Discord channel (the bot's request message) until `deadline` (ms). */
export interface StoredLinkRequest { messageId: string; channelId: string; roomId: string; roomLabel: string; userId: string; deadline: number }

export interface StoredWebhook { id: string; channelId: string; token: string }
export interface StoredEmoji { id: string; name: string; animated: boolean; mxc: string }

export class DiscordStore {
  constructor(private readonly db: Database.Database) {}

  // ---------- webhooks

  webhookFor(channelId: string): StoredWebhook | undefined {
    const r = prepared(this.db, 'SELECT webhook_id, channel_id, token FROM discord_webhooks WHERE channel_id = ? AND gone = 0 ORDER BY created_at DESC LIMIT 1')
      .get(channelId) as { webhook_id: string; channel_id: string; token: string } | undefined;
    return r && { id: r.webhook_id, channelId: r.channel_id, token: r.token };
  }

  addWebhook(w: StoredWebhook): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_webhooks (webhook_id, channel_id, token, created_at, gone) VALUES (?, ?, ?, ?, 0)')
      .run(w.id, w.channelId, w.token, Date.now());
  }

  /** The webhook was deleted on Discord: never used again, but its old messages stay ours. */
  webhookGone(id: string): void {
    prepared(this.db, 'UPDATE discord_webhooks SET gone = 1 WHERE webhook_id = ?').run(id);
  }

  /** Every webhook the bridge ever made. */
  allWebhookIds(): string[] {
    return (prepared(this.db, 'SELECT webhook_id FROM discord_webhooks').all() as { webhook_id: string }[]).map((r) => r.webhook_id);
  }

  // ---------- emojis

  emoji(id: string): StoredEmoji | undefined {
    const r = prepared(this.db, 'SELECT emoji_id, name, animated, mxc FROM discord_emojis WHERE emoji_id = ?').get(id) as EmojiRow | undefined;
    return r && toEmoji(r);
  }

  emojiByMxc(mxc: string): StoredEmoji | undefined {
    const r = prepared(this.db, 'SELECT emoji_id, name, animated, mxc FROM discord_emojis WHERE mxc = ? LIMIT 1').get(mxc) as EmojiRow | undefined;
    return r && toEmoji(r);
  }

  putEmoji(e: StoredEmoji): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_emojis (emoji_id, name, animated, mxc) VALUES (?, ?, ?, ?)').run(e.id, e.name, e.animated ? 1 : 0, e.mxc);
  }

  // ---------- links

  setLinkedBy(roomId: string, chat: string, userId: string): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_links (room_id, chat, linked_by, linked_at) VALUES (?, ?, ?, ?)').run(roomId, chat, userId, Date.now());
  }

  linkedBy(chat: string): { roomId: string; userId: string }[] {
    return (prepared(this.db, 'SELECT room_id, linked_by FROM discord_links WHERE chat = ?').all(chat) as { room_id: string; linked_by: string }[])
      .map((r) => ({ roomId: r.room_id, userId: r.linked_by }));
  }

  removeLink(roomId: string, chat: string): void {
    prepared(this.db, 'DELETE FROM discord_links WHERE room_id = ? AND chat = ?').run(roomId, chat);
  }

  /**
   * Forget who linked the links that are gone (`current`: every link the bridge has now). Each
   * unlink forgets its own row, but not in the same transaction: one cut short by a crash, or made
   * by an older version, would be kept for ever, and its user told about a channel they unlinked.
   * Returns how many rows went.
   */
  keepLinks(current: readonly { roomId: string; chat: string }[]): number {
    const keep = new Set(current.map((l) => `${l.roomId}\u0000${l.chat}`));
    const rows = prepared(this.db, 'SELECT room_id, chat FROM discord_links').all() as { room_id: string; chat: string }[];
    const gone = rows.filter((r) => !keep.has(`${r.room_id}\u0000${r.chat}`));
    for (const r of gone) this.removeLink(r.room_id, r.chat);
    return gone.length;
  }

  /** The link moved to another room (a room upgrade): whoever linked it is still the one told. */
  moveLink(fromRoomId: string, toRoomId: string, chat: string): void {
    prepared(this.db, 'UPDATE OR REPLACE discord_links SET room_id = ? WHERE room_id = ? AND chat = ?').run(toRoomId, fromRoomId, chat);
  }

  // ---------- link requests waiting for approval

  putLinkRequest(r: StoredLinkRequest): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_link_requests (message_id, channel_id, room_id, room_label, user_id, deadline) VALUES (?, ?, ?, ?, ?, ?)')
      .run(r.messageId, r.channelId, r.roomId, r.roomLabel, r.userId, r.deadline);
  }

  linkRequests(): StoredLinkRequest[] {
    return (prepared(this.db, 'SELECT message_id, channel_id, room_id, room_label, user_id, deadline FROM discord_link_requests').all() as
      { message_id: string; channel_id: string; room_id: string; room_label: string; user_id: string; deadline: number }[])
      .map((r) => ({ messageId: r.message_id, channelId: r.channel_id, roomId: r.room_id, roomLabel: r.room_label, userId: r.user_id, deadline: r.deadline }));
  }

  removeLinkRequest(messageId: string): void {
    prepared(this.db, 'DELETE FROM discord_link_requests WHERE message_id = ?').run(messageId);
  }

  // ---------- reactions made for Matrix users

  addReaction(eventId: string, chat: string, messageRef: string, emoji: string): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_reactions (event_id, chat, message_ref, emoji) VALUES (?, ?, ?, ?)').run(eventId, chat, messageRef, emoji);
  }

  /** Forget one Matrix reaction; returns how many Matrix reactions with that emoji remain on the message. */
  removeReaction(eventId: string, chat: string, messageRef: string, emoji: string): number {
    prepared(this.db, 'DELETE FROM discord_reactions WHERE event_id = ?').run(eventId);
    const r = prepared(this.db, 'SELECT COUNT(*) AS n FROM discord_reactions WHERE chat = ? AND message_ref = ? AND emoji = ?')
      .get(chat, messageRef, emoji) as { n: number };
    return r.n;
  }

  // ---------- reply quotes

  setReplyQuote(chat: string, messageRef: string, quote: string): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_reply_quotes (chat, message_ref, quote) VALUES (?, ?, ?)').run(chat, messageRef, quote);
  }

  replyQuote(chat: string, messageRef: string): string | undefined {
    const r = prepared(this.db, 'SELECT quote FROM discord_reply_quotes WHERE chat = ? AND message_ref = ?').get(chat, messageRef) as { quote: string } | undefined;
    return r?.quote;
  }

  // ---------- servers and their spaces

  guild(guildId: string): StoredGuild | undefined {
    const r = prepared(this.db, 'SELECT guild_id, space_room_id, name, icon_hash, icon_mxc FROM discord_guilds WHERE guild_id = ?').get(guildId) as
      { guild_id: string; space_room_id: string | null; name: string; icon_hash: string | null; icon_mxc: string | null } | undefined;
    return r && { guildId: r.guild_id, spaceRoomId: r.space_room_id, name: r.name, iconHash: r.icon_hash, iconMxc: r.icon_mxc };
  }

  seenChannel(channelId: string): SeenChannel | undefined {
    const r = prepared(this.db, 'SELECT name, topic FROM discord_channels WHERE channel_id = ?').get(channelId) as { name: string; topic: string | null } | undefined;
    return r && { channelId, name: r.name, topic: r.topic };
  }

  putSeenChannel(c: SeenChannel): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_channels (channel_id, name, topic) VALUES (?, ?, ?)').run(c.channelId, c.name, c.topic);
  }

  putGuild(g: StoredGuild): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_guilds (guild_id, space_room_id, name, icon_hash, icon_mxc) VALUES (?, ?, ?, ?, ?)')
      .run(g.guildId, g.spaceRoomId, g.name, g.iconHash, g.iconMxc);
  }

  spaceChildren(guildId: string): StoredSpaceChild[] {
    return (prepared(this.db, 'SELECT room_id, chat, order_key FROM discord_space_children WHERE guild_id = ?').all(guildId) as
      { room_id: string; chat: string; order_key: string }[]).map((r) => ({ roomId: r.room_id, chat: r.chat, order: r.order_key }));
  }

  /** Every room in every server's space. */
  allSpaceChildren(): PlacedSpaceChild[] {
    return (prepared(this.db, 'SELECT room_id, guild_id, chat, order_key FROM discord_space_children').all() as SpaceChildRow[]).map(toSpaceChild);
  }

  spaceChild(roomId: string): PlacedSpaceChild | undefined {
    const r = prepared(this.db, 'SELECT room_id, guild_id, chat, order_key FROM discord_space_children WHERE room_id = ?').get(roomId) as SpaceChildRow | undefined;
    return r && toSpaceChild(r);
  }

  putSpaceChild(guildId: string, c: StoredSpaceChild): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_space_children (room_id, guild_id, chat, order_key) VALUES (?, ?, ?, ?)')
      .run(c.roomId, guildId, c.chat, c.order);
  }

  removeSpaceChild(roomId: string): void {
    prepared(this.db, 'DELETE FROM discord_space_children WHERE room_id = ?').run(roomId);
  }

  // ---------- stickers

  sticker(id: string): { mxc: string; mimetype: string } | undefined {
    return prepared(this.db, 'SELECT mxc, mimetype FROM discord_stickers WHERE sticker_id = ?').get(id) as { mxc: string; mimetype: string } | undefined;
  }

  putSticker(id: string, mxc: string, mimetype: string): void {
    prepared(this.db, 'INSERT OR REPLACE INTO discord_stickers (sticker_id, mxc, mimetype) VALUES (?, ?, ?)').run(id, mxc, mimetype);
  }

  // ---------- ghosts in chats' rooms

  private readonly knownMembers = new Set<string>();

  /** The ghost of `userId` was brought into the rooms of `chat` (it spoke or reacted there). */
  addChatMember(chat: string, userId: string): void {
    const key = `${chat}\u0000${userId}`;
    if (this.knownMembers.has(key)) return;
    prepared(this.db, 'INSERT OR IGNORE INTO discord_chat_members (chat, user_id) VALUES (?, ?)').run(chat, userId);
    this.knownMembers.add(key);
  }

  /** The chats whose rooms hold the ghost of `userId`. */
  chatsOfMember(userId: string): string[] {
    return (prepared(this.db, 'SELECT chat FROM discord_chat_members WHERE user_id = ?').all(userId) as { chat: string }[]).map((r) => r.chat);
  }

  /** Every chat and Discord user whose ghost the bridge brought into the chat's rooms. */
  chatMembers(): { chat: string; userId: string }[] {
    return (prepared(this.db, 'SELECT chat, user_id FROM discord_chat_members').all() as { chat: string; user_id: string }[])
      .map((r) => ({ chat: r.chat, userId: r.user_id }));
  }

  removeChatMember(chat: string, userId: string): void {
    prepared(this.db, 'DELETE FROM discord_chat_members WHERE chat = ? AND user_id = ?').run(chat, userId);
    this.knownMembers.delete(`${chat}\u0000${userId}`);
  }

  /** The chat is gone (its channel deleted): nobody's ghost is in its rooms on its account any more. */
  removeChat(chat: string): void {
    prepared(this.db, 'DELETE FROM discord_chat_members WHERE chat = ?').run(chat);
    for (const key of this.knownMembers) if (key.startsWith(`${chat}\u0000`)) this.knownMembers.delete(key);
  }
}

/** What Matrix shows of a Discord server: its space (if made), and the name and icon last shown. */
export interface StoredGuild { guildId: string; spaceRoomId: string | null; name: string; iconHash: string | null; iconMxc: string | null }
export interface StoredSpaceChild { roomId: string; chat: string; order: string }
/** A room in a space, with the server whose space it is. */
export interface PlacedSpaceChild extends StoredSpaceChild { guildId: string }

interface SpaceChildRow { room_id: string; guild_id: string; chat: string; order_key: string }
const toSpaceChild = (r: SpaceChildRow): PlacedSpaceChild => ({ roomId: r.room_id, guildId: r.guild_id, chat: r.chat, order: r.order_key });

interface EmojiRow { emoji_id: string; name: string; animated: number; mxc: string }
const toEmoji = (r: EmojiRow): StoredEmoji => ({ id: r.emoji_id, name: r.name, animated: r.animated === 1, mxc: r.mxc });
