/**
 * Plumbing with the Discord side's consent: `!discord link <server> <channel>` posts a request in the
 * Discord channel, and only a member who may manage the channel's webhooks (Manage Webhooks, the
 * permission the bridge itself needs there) can approve it, by reacting ✅ or replying "approve"
 * (❌ or "deny" refuses). Nobody answering within the timeout ends the request; the Matrix side is
 * told each outcome. Waiting requests are kept in the store: after a restart they wait on for the
 * rest of their time, or end at once (with the usual notice) if it ran out while the bridge was away.
 */
import { durationWords, type Logger } from '@trestle/core';
import {
  Events, PermissionFlagsBits, Routes, type Client, type GuildTextBasedChannel, type Message, type MessageReaction, type PartialMessageReaction,
  type PartialUser, type User,
} from 'discord.js';
import { defuseEveryone, escapeDiscordMarkdown } from './convert/index.js';
import type { DiscordStore } from './store.js';

export const APPROVE_EMOJI = '✅';
export const DENY_EMOJI = '❌';

/**
 * What a reply to a request says: approve, deny, or nothing we understand. It starts with the word;
 * a question is no answer: a manager asking "ok, who sent this?" has not approved bridging a
 * stranger's room.
 */
export function replyVerdict(content: string): 'approve' | 'deny' | undefined {
  const t = content.trim().toLowerCase();
  if (t.includes('?')) return undefined;
  if (/^(approved?|yes|ok|okay|accept(ed)?|allow(ed)?)\b/.test(t)) return 'approve';
  if (/^(deny|denied|no|refused?|reject(ed)?)\b/.test(t)) return 'deny';
  return undefined;
}

export interface LinkAsk {
  channel: GuildTextBasedChannel;
  roomId: string;
  /** How the room is named on Discord (its name or alias, else its id). */
  roomLabel: string;
  userId: string;
  /** Tell the Matrix side an outcome (in the room, or the requester's admin room). */
  answer(text: string): Promise<void>;
}

interface Pending extends LinkAsk { messageId: string; timer: NodeJS.Timeout }

export interface ApprovalsDeps {
  log: Logger;
  store: DiscordStore;
  /** How the Matrix side of a request restored after a restart is told an outcome (the requester's room, or their admin room). */
  answerer(roomId: string, userId: string): (text: string) => Promise<void>;
  timeoutSeconds(): number;
  /** Link the room once approved; throws with a message for the Matrix user if it cannot be done any more. */
  link(ask: LinkAsk, approver: string): Promise<string>;
}

/** How long, and how many, answers to a message not (yet) known as a request are kept (see {@link LinkApprovals.early}). */
const EARLY_MS = 30_000;
const EARLY_MAX = 200;

/** Link requests one Matrix user may have waiting at once (see LinkApprovals.ask). */
export const MAX_WAITING_PER_USER = 3;

export class LinkApprovals {
  private readonly pending = new Map<string, Pending>();
  /**
   * Answers (approve/deny) to messages that are not waiting requests: the answer to a request can
   * come over the gateway before the REST reply to the request's own post has given the bridge its
   * message id (a quick member, or a bot). Kept briefly; taken when the request is armed.
   */
  private readonly early = new Map<string, { at: number; answer: (p: Pending) => Promise<void> }[]>();
  private client?: Client;

  constructor(private readonly d: ApprovalsDeps) {}

  attach(client: Client): void {
    this.client = client;
    const warn = (err: unknown): void => this.d.log.warn('could not handle an answer to a link request', { err: err as Error });
    client.on(Events.MessageReactionAdd, (rx, user) => { void this.onReaction(rx, user).catch(warn); });
    client.on(Events.MessageCreate, (m) => { void this.onReply(m).catch(warn); });
  }

  /** Whether a request for this room and channel is waiting. */
  waiting(roomId: string, channelId: string): boolean {
    return [...this.pending.values()].some((p) => p.roomId === roomId && p.channel.id === channelId);
  }

  /** Requests being posted (no message id yet), by Matrix user and by channel: they count as waiting. */
  private readonly posting: { userId: string; channelId: string }[] = [];

  /**
   * Post the request in the channel; returns what to tell the Matrix user now. Each request is a
   * message of the bot's in a Discord channel, which anyone on Matrix may ask for in a room of their
   * own: one user has at most {@link MAX_WAITING_PER_USER} waiting, and a channel one, so that
   * nobody can fill Discord channels with the bot's requests.
   */
  async ask(a: LinkAsk): Promise<string> {
    const client = this.client;
    if (!client?.user) throw new Error('the bridge is not connected to Discord right now; try again in a minute');
    const timeout = this.d.timeoutSeconds();
    const waiting = [...this.pending.values(), ...this.posting];
    const mine = waiting.filter((p) => p.userId === a.userId).length;
    if (mine >= MAX_WAITING_PER_USER) {
      throw new Error(`you have ${mine} link requests waiting for an answer on Discord already: ask again once one is answered, ` +
        `or has expired (within ${durationWords(timeout)})`);
    }
    if (waiting.some((p) => ('channel' in p ? p.channel.id : p.channelId) === a.channel.id)) {
      throw new Error(`a link request already waits for an answer in #${a.channel.name}: ask again once it is answered, or has expired ` +
        `(within ${durationWords(timeout)})`);
    }
    const slot = { userId: a.userId, channelId: a.channel.id };
    this.posting.push(slot);
    try {
      return await this.post(a, client, timeout);
    } finally {
      this.posting.splice(this.posting.indexOf(slot), 1);
    }
  }

  private async post(a: LinkAsk, client: Client, timeout: number): Promise<string> {
    const text = `**Bridge request**: ${escapeDiscordMarkdown(defuseEveryone(a.userId))} asks to bridge this channel with the Matrix room ` +
      `${escapeDiscordMarkdown(defuseEveryone(a.roomLabel))}.\nA member with the Manage Webhooks permission can approve by reacting ` +
      `${APPROVE_EMOJI} or replying "approve" (${DENY_EMOJI} or "deny" refuses). This request expires in ${durationWords(timeout)}.`;
    let messageId: string;
    try {
      messageId = ((await client.rest.post(Routes.channelMessages(a.channel.id), { body: { content: text, allowed_mentions: { parse: [] } } })) as { id: string }).id;
    } catch (err) {
      throw new Error(`could not post the approval request in #${a.channel.name}: ${(err as Error).message}`, { cause: err });
    }
    const deadline = Date.now() + timeout * 1000;
    this.d.store.putLinkRequest({ messageId, channelId: a.channel.id, roomId: a.roomId, roomLabel: a.roomLabel, userId: a.userId, deadline });
    this.arm(a, messageId, deadline);
    for (const emoji of [APPROVE_EMOJI, DENY_EMOJI]) {
      await client.rest.put(Routes.channelMessageOwnReaction(a.channel.id, messageId, encodeURIComponent(emoji)))
        .catch((err: unknown) => this.d.log.info('could not add the answer reactions to a link request', { err: err as Error }));
    }
    this.d.log.info('asked a Discord channel to approve a link', { channelId: a.channel.id, roomId: a.roomId, by: a.userId });
    return `Asked in #${a.channel.name} (${a.channel.guild.name}) for approval: a member with Manage Webhooks there can approve by ` +
      `reacting ${APPROVE_EMOJI} or replying "approve", within ${durationWords(timeout)}.`;
  }

  /** Wait for an answer to a posted request until `deadline`. */
  private arm(a: LinkAsk, messageId: string, deadline: number): void {
    const timer = setTimeout(() => { void this.expire(messageId).catch((err: unknown) => this.d.log.warn('could not end an expired link request', { err: err as Error })); },
      Math.max(0, deadline - Date.now()));
    timer.unref();
    const p: Pending = { ...a, messageId, timer };
    this.pending.set(messageId, p);
    const early = this.early.get(messageId);
    this.early.delete(messageId);
    for (const e of early ?? []) {
      void e.answer(p).catch((err: unknown) => this.d.log.warn('could not handle an answer to a link request', { err: err as Error }));
    }
  }

  /** Keep an answer to a message that is not a waiting request, in case it is one whose post has not returned yet. */
  private keepEarly(messageId: string, answer: (p: Pending) => Promise<void>): void {
    const now = Date.now();
    for (const [id, list] of this.early) if (list.every((e) => now - e.at > EARLY_MS)) this.early.delete(id);
    if (this.early.size >= EARLY_MAX && !this.early.has(messageId)) return;
    this.early.set(messageId, [...(this.early.get(messageId) ?? []), { at: now, answer }]);
  }

  /**
   * After (re)connecting: wait again for the requests stored before a restart, for the rest of their
   * time; those whose time ran out meanwhile end now. Requests in channels the bot no longer sees are dropped.
   */
  restore(): void {
    const client = this.client;
    if (!client) return;
    for (const r of this.d.store.linkRequests()) {
      if (this.pending.has(r.messageId)) continue;
      const ch = client.channels.cache.get(r.channelId);
      if (!ch || ch.isDMBased() || !ch.isTextBased()) {
        this.d.store.removeLinkRequest(r.messageId);
        this.d.log.info('a link request waited in a channel the bot no longer sees; dropped', { channelId: r.channelId, roomId: r.roomId });
        continue;
      }
      this.arm({ channel: ch, roomId: r.roomId, roomLabel: r.roomLabel, userId: r.userId, answer: this.d.answerer(r.roomId, r.userId) }, r.messageId, r.deadline);
      this.d.log.info('waiting again for the approval of a link request from before the restart', { channelId: r.channelId, roomId: r.roomId,
        leftMs: Math.max(0, r.deadline - Date.now()) });
    }
  }

  private async onReaction(rx: MessageReaction | PartialMessageReaction, user: User | PartialUser): Promise<void> {
    if (user.id === this.client?.user?.id) return;
    const verdict = rx.emoji.name === APPROVE_EMOJI ? 'approve' : rx.emoji.name === DENY_EMOJI ? 'deny' : undefined;
    if (!verdict) return;
    const p = this.pending.get(rx.message.id);
    if (p) await this.answer(p, user.id, verdict);
    else this.keepEarly(rx.message.id, (q) => this.answer(q, user.id, verdict));
  }

  private async onReply(m: Message): Promise<void> {
    const ref = m.reference?.messageId;
    if (!ref || m.author.id === this.client?.user?.id || m.webhookId) return;
    const verdict = replyVerdict(m.content);
    if (!verdict) return;
    const p = this.pending.get(ref);
    if (p) await this.answer(p, m.author.id, verdict);
    else this.keepEarly(ref, (q) => this.answer(q, m.author.id, verdict));
  }

  private async answer(p: Pending, userId: string, verdict: 'approve' | 'deny'): Promise<void> {
    const member = p.channel.guild.members.cache.get(userId) ?? await p.channel.guild.members.fetch(userId).catch(() => undefined);
    if (!member || !p.channel.permissionsFor(member).has(PermissionFlagsBits.ManageWebhooks)) {
      this.d.log.info('a link request was answered by someone without Manage Webhooks; ignored', { channelId: p.channel.id, userId });
      return;
    }
    if (this.pending.get(p.messageId) !== p) return; // answered meanwhile
    this.finish(p);
    const who = member.displayName;
    if (verdict === 'deny') {
      await this.edit(p, `${DENY_EMOJI} ${escapeDiscordMarkdown(who)} refused to bridge this channel with ${escapeDiscordMarkdown(p.roomLabel)}.`);
      await this.tell(p, `${who} refused on Discord to bridge #${p.channel.name} with this room.`);
      return;
    }
    let said: string;
    try {
      said = await this.d.link(p, who);
    } catch (err) {
      await this.edit(p, `Approved by ${escapeDiscordMarkdown(who)}, but the bridge could not link: ${escapeDiscordMarkdown((err as Error).message)}`);
      await this.tell(p, `${who} approved on Discord, but the room could not be linked: ${(err as Error).message}`);
      return;
    }
    await this.edit(p, `${APPROVE_EMOJI} Approved by ${escapeDiscordMarkdown(who)}: this channel is bridged with ${escapeDiscordMarkdown(p.roomLabel)}.`);
    await this.tell(p, said);
  }

  private async expire(messageId: string): Promise<void> {
    const p = this.pending.get(messageId);
    if (!p) return;
    this.finish(p);
    const timeout = durationWords(this.d.timeoutSeconds());
    await this.edit(p, `⌛ Nobody approved within ${timeout}: this channel is not bridged with ${escapeDiscordMarkdown(p.roomLabel)}.`);
    await this.tell(p, `Nobody approved bridging #${p.channel.name} within ${timeout}, so this room is not linked. ` +
      `Ask again with "!discord link ${p.channel.guild.id} ${p.channel.id}".`);
  }

  /**
   * Channels are gone (deleted, or out of the bot's reach for good), `why` each: the requests waiting
   * in them end, and their Matrix side is told; stored ones not waited for yet go too.
   */
  async channelsGone(why: ReadonlyMap<string, string>): Promise<void> {
    for (const p of [...this.pending.values()]) {
      const text = why.get(p.channel.id);
      if (!text) continue;
      this.finish(p);
      this.d.log.info('a link request waited in a channel that is gone; ended', { channelId: p.channel.id, roomId: p.roomId });
      await this.tell(p, `${text}: the request to link it to this room has ended.`);
    }
    for (const r of this.d.store.linkRequests()) if (why.has(r.channelId)) this.d.store.removeLinkRequest(r.messageId);
  }

  /** The bridge is stopping: waiting requests stay stored and wait on after the restart. */
  stop(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.early.clear();
  }

  /** Tell the Matrix side; a failure to do so is logged (the outcome on Discord stands). */
  private async tell(p: Pending, text: string): Promise<void> {
    await p.answer(text).catch((err: unknown) => this.d.log.warn('could not tell the Matrix side how a link request ended', { roomId: p.roomId, err: err as Error }));
  }

  private finish(p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(p.messageId);
    this.d.store.removeLinkRequest(p.messageId);
  }

  private async edit(p: Pending, content: string): Promise<void> {
    await this.client?.rest.patch(Routes.channelMessage(p.channel.id, p.messageId), { body: { content, allowed_mentions: { parse: [] } } })
      .catch((err: unknown) => this.d.log.info('could not update a link request message', { err: err as Error }));
  }
}
