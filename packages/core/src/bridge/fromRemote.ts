/**
 * remote → Matrix. A network reports events through {@link RemoteSink}; each is persisted in the
 * per-room queue of every room linked to the chat (so the network's promise resolves only once
 * the event is durable), then delivered by {@link RemoteDelivery} with deterministic transaction
 * ids and recorded in the message map.
 */
import { randomUUID } from 'node:crypto';
import type { KvStore } from '../db/kv.js';
import type { MappedEvent, MessageStore } from '../db/messages.js';
import type { PortalStore } from '../db/portals.js';
import { deterministicTxnId, type MatrixClientLayer, type MatrixError, toMatrixError } from '../matrix/client.js';
import {
  DeliveryError, type NetworkIdentity, type RemoteChatInfo, type RemoteDelete, type RemoteEdit, type RemoteEventSink,
  type RemoteMemberList, type RemoteMembership, type RemoteMessage, type RemotePowerLevels, type RemoteReaction, type RemoteRoomSettings, type RemoteSender,
} from '../network/contract.js';
import type { Logger } from '../util/log.js';
import type { GhostManager } from './ghosts.js';
import type { OrderedQueues } from './queue.js';

export type RemoteWork =
  | { t: 'message'; network: string; roomId: string; msg: RemoteMessage; receivedAt: number }
  | { t: 'edit'; network: string; roomId: string; edit: RemoteEdit; receivedAt: number }
  | { t: 'delete'; network: string; roomId: string; del: RemoteDelete; receivedAt: number }
  | { t: 'reaction'; network: string; roomId: string; reaction: RemoteReaction; receivedAt: number }
  | { t: 'membership'; network: string; roomId: string; change: RemoteMembership; receivedAt: number }
  | { t: 'memberList'; network: string; roomId: string; list: RemoteMemberList; receivedAt: number }
  | { t: 'chatInfo'; network: string; roomId: string; info: RemoteChatInfo; receivedAt: number; plumbed?: boolean }
  | { t: 'powerLevels'; network: string; roomId: string; change: RemotePowerLevels; receivedAt: number }
  | { t: 'roomSettings'; network: string; roomId: string; change: RemoteRoomSettings; receivedAt: number }
  | { t: 'notice'; network: string; roomId: string; text: string; receivedAt: number };

export const REMOTE_KIND = 'remote';

/** The {@link RemoteEventSink} handed to one network. */
export class RemoteSink implements RemoteEventSink {
  constructor(
    private readonly network: string,
    private readonly portals: PortalStore,
    private readonly queues: OrderedQueues,
    private readonly log: Logger,
    private readonly onIn: (type: string) => void,
    private readonly updateProfile: (user: RemoteSender) => Promise<void>,
    private readonly showTyping: (roomId: string, user: RemoteSender, typing: boolean) => Promise<void> = async () => undefined,
  ) {}

  async typing(change: { chat: string; user: RemoteSender; typing: boolean }): Promise<void> {
    for (const p of this.portals.forChat(this.network, change.chat)) {
      await this.showTyping(p.roomId, change.user, change.typing).catch((err: unknown) =>
        this.log.debug('typing not shown', { roomId: p.roomId, err: err as Error }));
    }
  }

  async powerLevels(change: RemotePowerLevels): Promise<void> {
    await this.enqueue(change.chat, 'powerLevels', undefined, (roomId) => ({ t: 'powerLevels', network: this.network, roomId, change, receivedAt: Date.now() }));
  }

  async roomSettings(change: RemoteRoomSettings): Promise<void> {
    await this.enqueue(change.chat, 'roomSettings', undefined, (roomId) => ({ t: 'roomSettings', network: this.network, roomId, change, receivedAt: Date.now() }));
  }

  async notice(change: { chat: string; text: string }): Promise<void> {
    await this.enqueue(change.chat, 'notice', undefined, (roomId) => ({ t: 'notice', network: this.network, roomId, text: change.text, receivedAt: Date.now() }));
  }

  async profile(user: RemoteSender): Promise<void> {
    this.onIn('profile');
    await this.updateProfile(user);
  }

  /** Persist the event for every room linked to the chat (one commit per event-loop turn); resolves once durable. */
  private async enqueue(chat: string, type: RemoteWork['t'], dedupe: string | undefined, make: (roomId: string) => RemoteWork): Promise<void> {
    const portals = this.portals.forChat(this.network, chat);
    if (portals.length === 0) {
      this.log.debug('remote event for a chat with no portal; ignored', { network: this.network, chat, type });
      return;
    }
    this.onIn(type);
    await this.queues.enqueueSoon(portals.map((p) => ({
      queueKey: p.roomId,
      kind: REMOTE_KIND,
      payload: make(p.roomId),
      dedupeKey: `r:${type}:${this.network}:${chat}:${dedupe ?? randomUUID()}:${p.roomId}`,
    })));
  }

  async message(msg: RemoteMessage): Promise<void> {
    await this.enqueue(msg.chat, 'message', msg.id, (roomId) => ({ t: 'message', network: this.network, roomId, msg, receivedAt: Date.now() }));
  }
  async edit(edit: RemoteEdit): Promise<void> {
    await this.enqueue(edit.chat, 'edit', edit.id, (roomId) => ({ t: 'edit', network: this.network, roomId, edit, receivedAt: Date.now() }));
  }
  async delete(del: RemoteDelete): Promise<void> {
    await this.enqueue(del.chat, 'delete', del.target, (roomId) => ({ t: 'delete', network: this.network, roomId, del, receivedAt: Date.now() }));
  }
  async reaction(reaction: RemoteReaction): Promise<void> {
    await this.enqueue(reaction.chat, 'reaction', undefined, (roomId) => ({ t: 'reaction', network: this.network, roomId, reaction, receivedAt: Date.now() }));
  }
  async membership(change: RemoteMembership): Promise<void> {
    await this.enqueue(change.chat, 'membership', undefined, (roomId) => ({ t: 'membership', network: this.network, roomId, change, receivedAt: Date.now() }));
  }
  async memberList(list: RemoteMemberList): Promise<void> {
    await this.enqueue(list.chat, 'memberList', undefined, (roomId) => ({ t: 'memberList', network: this.network, roomId, list, receivedAt: Date.now() }));
  }
  async chatInfo(info: RemoteChatInfo): Promise<void> {
    const plumbed = new Set(this.portals.forChat(this.network, info.chat).filter((p) => p.kind === 'plumbed').map((p) => p.roomId));
    await this.enqueue(info.chat, 'chatInfo', undefined, (roomId) => ({ t: 'chatInfo', network: this.network, roomId, info, receivedAt: Date.now(), plumbed: plumbed.has(roomId) }));
  }
}

const reactionKey = (target: string, sender: string, key: string): string => `reaction\u0000${target}\u0000${sender}\u0000${key}`;

/**
 * A refusal by the homeserver, which no retry changes: M_FORBIDDEN, or any other 403 (Synapse answers
 * the join of a banned user with M_BAD_STATE; other homeservers word refusals their own way).
 */
const refusal = (m: MatrixError): boolean => m.errcode === 'M_FORBIDDEN' || m.status === 403;

/** Delivers queued remote events to Matrix. */
export class RemoteDelivery {
  /** Rooms told this run that the bot lacks the power to mirror the remote chat's settings. */
  private readonly toldNoPower = new Set<string>();

  constructor(
    private readonly matrix: MatrixClientLayer,
    private readonly ghosts: GhostManager,
    private readonly messages: MessageStore,
    private readonly networkOf: (id: string) => NetworkIdentity | undefined,
    private readonly log: Logger,
    private readonly kv: KvStore,
    private readonly portals: PortalStore,
  ) {}

  /** Deliver one queued remote event; may resolve with message-map writes for the queue to commit with the done mark. */
  async deliver(work: RemoteWork): Promise<void | (() => void)> {
    const network = this.networkOf(work.network);
    if (!network) {
      this.log.warn('queued event for a network that is no longer enabled; dropped', { network: work.network });
      return;
    }
    switch (work.t) {
      case 'message': return this.message(network, work.roomId, work.msg);
      case 'edit': return this.edit(network, work.roomId, work.edit);
      case 'delete': return this.remove(network, work.roomId, work.del);
      case 'reaction': return this.reaction(network, work.roomId, work.reaction, work.receivedAt);
      case 'membership': return this.membership(network, work.roomId, work.change);
      case 'memberList': return this.memberList(network, work.roomId, work.list);
      case 'chatInfo': return this.ifAllowed(network, work.roomId, () => this.chatInfo(work.roomId, work.info, work.plumbed === true));
      case 'powerLevels': return this.ifAllowed(network, work.roomId, () => this.powerLevels(network, work.roomId, work.change));
      case 'roomSettings': return this.ifAllowed(network, work.roomId, () => this.roomSettings(network, work.roomId, work.change));
      case 'notice': return this.matrix.sendNotice(work.roomId, work.text);
    }
  }

  /**
   * Room state the bot changes (topic, name, ranks, join rule). A refusal means the bot lacks the
   * power in this room (a plumbed room whose admin never gave it any), which no retry fixes:
   * retrying would only hold up the room's later messages for minutes and end in a warning per
   * change. So the change is skipped, logged, and the room is told once (per run) what to do.
   */
  private async ifAllowed(network: NetworkIdentity, roomId: string, change: () => Promise<void>): Promise<void> {
    try {
      await change();
    } catch (err) {
      const m = toMatrixError(err);
      if (!refusal(m)) throw m;
      this.log.warn('the bot may not change this room\'s settings; the remote change is not mirrored', { roomId, network: network.id, err: m.message });
      if (this.toldNoPower.has(roomId)) return;
      this.toldNoPower.add(roomId);
      const text = `ℹ I cannot mirror the ${network.displayName} topic and ranks in this room: the homeserver refused (${m.message}). ` +
        `Give ${this.matrix.botUserId} a power level high enough to change them (100 covers all) and later changes will follow.`;
      await this.matrix.sendNotice(roomId, text).catch((e: unknown) => {
        this.log.warn('could not tell the room either', { roomId, err: e as Error });
      });
    }
  }

  /**
   * Send as a ghost, joining first, and once more if the homeserver says it is not in the room (a
   * kick, or a join remembered from before). Undefined if the room has banned the ghost: what its
   * remote user says is not for this room, by the room's own choice, so it is dropped (logged, not
   * retried, not reported). Any other refusal after the second try is permanent: retrying it would
   * hold up the room's later messages for minutes and end the same way.
   */
  private async sendAs(userId: string, roomId: string, type: string, content: Record<string, unknown>, txnId: string, ts?: number): Promise<string | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.matrix.ensureJoined(userId, roomId);
        return await this.matrix.sendWithTxn(userId, roomId, type, content, txnId, ts);
      } catch (err) {
        const m = toMatrixError(err);
        if (!refusal(m)) throw m;
        this.matrix.forgetJoined(userId, roomId);
        if (attempt === 1) continue; // join again, and send once more
        if (await this.banned(userId, roomId)) {
          this.log.info('the room has banned this remote user; their message is not delivered', { roomId, userId, type });
          return undefined;
        }
        throw new DeliveryError(`the homeserver refused it: ${m.message}`, true, { cause: m });
      }
    }
  }

  /** Is `userId` banned from the room (as the bot sees its member state)? False when that cannot be read. */
  private async banned(userId: string, roomId: string): Promise<boolean> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(userId)}`;
    const member = await this.matrix.request<{ membership?: string }>('GET', path).catch(() => undefined);
    return member?.membership === 'ban';
  }

  private firstEvent(network: string, chat: string, remoteId: string | undefined, roomId: string): string | undefined {
    if (!remoteId) return undefined;
    return this.messages.forRemote(network, chat, remoteId, roomId)[0]?.eventId;
  }

  private async message(network: NetworkIdentity, roomId: string, msg: RemoteMessage): Promise<() => void> {
    const userId = await this.ghosts.ensure(network, msg.sender);
    const sent: MappedEvent[] = [];
    const record = (): void => { for (const m of sent) this.messages.add(m); };
    const already = new Set(this.messages.forRemote(network.id, msg.chat, msg.id, roomId).map((m) => m.part));
    const replyEvent = this.firstEvent(network.id, msg.chat, msg.replyTo, roomId);
    const threadEvent = this.firstEvent(network.id, msg.chat, msg.threadRoot, roomId);
    for (const [i, part] of msg.parts.entries()) {
      if (already.has(i)) continue; // sent before a crash; the map says so
      const content: Record<string, unknown> = { ...part.content };
      if (threadEvent) {
        content['m.relates_to'] = { rel_type: 'm.thread', event_id: threadEvent, is_falling_back: !replyEvent,
          'm.in_reply_to': { event_id: replyEvent ?? threadEvent } };
      } else if (replyEvent && i === 0) {
        content['m.relates_to'] = { 'm.in_reply_to': { event_id: replyEvent } };
      }
      const txnId = deterministicTxnId('msg', network.id, msg.chat, msg.id, String(i), roomId);
      let eventId: string | undefined;
      try {
        eventId = await this.sendAs(userId, roomId, part.type ?? 'm.room.message', content, txnId, msg.backfill ? msg.timestamp : undefined);
      } catch (err) {
        record(); // the parts that did arrive stay mapped, whatever becomes of this one
        throw err;
      }
      if (eventId === undefined) break; // banned from the room: nor are the other parts for it
      const body = typeof content['body'] === 'string' ? content['body'] : undefined;
      sent.push({ network: network.id, remoteChat: msg.chat, remoteId: msg.id, part: i, roomId, eventId, sender: userId, ...(body !== undefined ? { body } : {}) });
    }
    return record;
  }

  private async edit(network: NetworkIdentity, roomId: string, edit: RemoteEdit): Promise<void> {
    const target = this.messages.forRemote(network.id, edit.chat, edit.target, roomId)[0];
    if (!target) {
      this.log.info('edit of a message the bridge never saw; not bridged', { network: network.id, chat: edit.chat, target: edit.target, roomId });
      return;
    }
    const userId = await this.ghosts.ensure(network, edit.sender);
    const newContent = { ...edit.content };
    const content: Record<string, unknown> = {
      ...newContent,
      body: `* ${String(newContent['body'] ?? '')}`,
      ...(typeof newContent['formatted_body'] === 'string' ? { formatted_body: `* ${newContent['formatted_body']}` } : {}),
      'm.new_content': newContent,
      'm.relates_to': { rel_type: 'm.replace', event_id: target.eventId },
    };
    await this.sendAs(userId, roomId, 'm.room.message', content, deterministicTxnId('edit', network.id, edit.chat, edit.id, roomId));
  }

  private async remove(network: NetworkIdentity, roomId: string, del: RemoteDelete): Promise<void> {
    const events = this.messages.forRemote(network.id, del.chat, del.target, roomId);
    if (events.length === 0) {
      this.log.info('deletion of a message the bridge never saw; not bridged', { network: network.id, chat: del.chat, target: del.target, roomId });
      return;
    }
    for (const ev of events) {
      this.messages.forgetBody(ev.eventId); // deleted at its source: not quoted in a reply from here on
      // The ghost that sent it redacts it (always allowed); the bot is the fallback for others' events.
      const txn = deterministicTxnId('redact', ev.eventId);
      try {
        await this.matrix.redact(ev.sender, roomId, ev.eventId, txn, del.reason);
      } catch (err) {
        if (!refusal(toMatrixError(err))) throw err;
        await this.matrix.redact(this.matrix.botUserId, roomId, ev.eventId, txn, del.reason);
      }
    }
  }

  private async reaction(network: NetworkIdentity, roomId: string, r: RemoteReaction, receivedAt: number): Promise<void> {
    const userId = await this.ghosts.ensure(network, r.sender);
    const key = reactionKey(r.target, r.sender.id, r.key);
    if (r.remove) {
      for (const ev of this.messages.forRemote(network.id, r.chat, key, roomId)) {
        await this.matrix.redact(userId, roomId, ev.eventId, deterministicTxnId('unreact', ev.eventId));
      }
      return;
    }
    const target = this.firstEvent(network.id, r.chat, r.target, roomId);
    if (!target) {
      this.log.info('reaction to a message the bridge never saw; not bridged', { network: network.id, chat: r.chat, target: r.target });
      return;
    }
    if (r.backfill && this.messages.forRemote(network.id, r.chat, key, roomId).length) {
      this.log.debug('reaction fetched from history is in the room already', { network: network.id, chat: r.chat, target: r.target, roomId });
      return;
    }
    const content = { 'm.relates_to': { rel_type: 'm.annotation', event_id: target, key: r.key } };
    const eventId = await this.sendAs(userId, roomId, 'm.reaction', content, deterministicTxnId('react', network.id, r.chat, key, roomId, String(receivedAt)),
      r.backfill ? r.timestamp : undefined);
    if (eventId === undefined) return;
    this.messages.add({ network: network.id, remoteChat: r.chat, remoteId: key, part: 0, roomId, eventId, sender: userId });
    // its own id too, for a deletion that names the reaction (IRC: a REDACT of its TAGMSG)
    if (r.id !== undefined) this.messages.add({ network: network.id, remoteChat: r.chat, remoteId: r.id, part: 0, roomId, eventId, sender: userId });
  }

  private async membership(network: NetworkIdentity, roomId: string, c: RemoteMembership): Promise<void> {
    const userId = await this.ghosts.ensure(network, c.user);
    switch (c.membership) {
      case 'join':
        try {
          await this.matrix.ensureJoined(userId, roomId);
        } catch (err) {
          const m = toMatrixError(err);
          if (!refusal(m) || !(await this.banned(userId, roomId))) throw m;
          this.log.info('the room has banned this remote user; their join is not mirrored', { roomId, userId });
        }
        return;
      case 'leave':
        await this.ghostLeaves(userId, roomId, c.reason);
        return;
      case 'kick':
      case 'ban':
      case 'unban':
        try {
          await this.matrix.moderate(c.membership, roomId, userId, c.reason);
        } catch (err) {
          const m = toMatrixError(err);
          if (!refusal(m)) throw m;
          // the bot may not kick or ban here (or the ghost is not in the room): the ghost is gone
          // from the chat all the same, so it leaves (always allowed); an unban has nothing to undo
          this.log.warn(`the homeserver refused the ${c.membership}; the ghost leaves instead`, { roomId, userId, err: m.message });
          if (c.membership !== 'unban') await this.ghostLeaves(userId, roomId, c.reason);
        }
        return;
    }
  }

  /**
   * Ghosts of this network in the room but not in the chat's member list leave. Run in the room's
   * queue, after every join reported before the list and before any reported after it, so a ghost
   * joined since is never taken out by a list older than its join.
   */
  private async memberList(network: NetworkIdentity, roomId: string, list: RemoteMemberList): Promise<void> {
    if (this.portals.forRoom(roomId).filter((p) => p.network === network.id).length > 1) {
      this.log.debug('member list not applied: the room is linked to more than one chat of the network', { roomId, network: network.id, chat: list.chat });
      return;
    }
    const listed = new Set(list.users.map((u) => this.ghosts.userIdFor(network, u)));
    // tidying, not a message: a failure is logged and the room's queue goes on (the next list tries again)
    try {
      const joined = await this.matrix.request<{ joined?: Record<string, unknown> }>('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`);
      const gone = Object.keys(joined.joined ?? {}).filter((userId) => !listed.has(userId) && this.ghosts.networkOf(userId) === network.id);
      if (gone.length) this.log.info('ghosts whose remote users left the chat unseen leave the room', { roomId, chat: list.chat, count: gone.length });
      for (const userId of gone) await this.ghostLeaves(userId, roomId, list.reason);
    } catch (err) {
      this.log.warn('could not take out the ghosts of those no longer in the chat', { roomId, chat: list.chat, err: toMatrixError(err).message });
    }
  }

  /** A ghost leaves the room; one the homeserver says is not in it (403) has nothing to leave, and no retry changes that. */
  private async ghostLeaves(userId: string, roomId: string, reason?: string): Promise<void> {
    try {
      await this.matrix.leave(userId, roomId, reason);
    } catch (err) {
      const m = toMatrixError(err);
      if (!refusal(m)) throw m;
      this.log.debug('the ghost was not in the room; nothing to leave', { roomId, userId, err: m.message });
    }
  }

  private powerLevels(network: NetworkIdentity, roomId: string, change: RemotePowerLevels): Promise<void> {
    return this.roomSettings(network, roomId, { chat: change.chat, users: change.users });
  }

  /** One power-levels event (ranks and send level) and the join rule, remembering what the room had before. */
  private async roomSettings(network: NetworkIdentity, roomId: string, change: RemoteRoomSettings): Promise<void> {
    const bot = this.matrix.botUserId;
    const state = (type: string): string => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${type}/`;
    const savedKey = `room-settings:${roomId}`;
    const saved = JSON.parse(this.kv.get('core', savedKey) ?? '{}') as { eventsDefault?: number; joinRule?: string };
    if (change.users || change.sendLevel !== undefined) {
      const pl = await this.matrix.request<{ users?: Record<string, number>; events_default?: number }>('GET', state('m.room.power_levels'));
      const users = { ...(pl.users ?? {}) };
      let changed = false;
      for (const [remoteUser, level] of Object.entries(change.users ?? {})) {
        const userId = this.ghosts.userIdFor(network, remoteUser);
        if ((users[userId] ?? 0) === level) continue;
        changed = true;
        if (level === 0) delete users[userId]; else users[userId] = level;
      }
      let eventsDefault = pl.events_default ?? 0;
      if (typeof change.sendLevel === 'number' && change.sendLevel !== eventsDefault) {
        saved.eventsDefault ??= eventsDefault;
        eventsDefault = change.sendLevel;
        changed = true;
      } else if (change.sendLevel === null && saved.eventsDefault !== undefined) {
        changed ||= saved.eventsDefault !== eventsDefault;
        eventsDefault = saved.eventsDefault;
        delete saved.eventsDefault;
      }
      if (changed) await this.matrix.request('PUT', state('m.room.power_levels'), { ...pl, users, events_default: eventsDefault }, bot);
    }
    if (change.inviteOnly !== undefined) {
      const { join_rule: rule } = await this.matrix.request<{ join_rule: string }>('GET', state('m.room.join_rules'));
      if (change.inviteOnly && rule !== 'invite') {
        saved.joinRule = rule;
        await this.matrix.request('PUT', state('m.room.join_rules'), { join_rule: 'invite' }, bot);
      } else if (!change.inviteOnly && saved.joinRule && rule === 'invite') {
        await this.matrix.request('PUT', state('m.room.join_rules'), { join_rule: saved.joinRule }, bot);
        delete saved.joinRule;
      }
    }
    this.kv.set('core', savedKey, JSON.stringify(saved));
  }

  private async chatInfo(roomId: string, info: RemoteChatInfo, plumbed: boolean): Promise<void> {
    const bot = this.matrix.botUserId;
    const put = (type: string, content: Record<string, unknown>): Promise<unknown> =>
      this.matrix.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${type}/`, content, bot);
    if (info.name !== undefined && !plumbed) await put('m.room.name', { name: info.name });
    if (info.topic !== undefined) await put('m.room.topic', { topic: info.topic });
    if (info.avatarUrl?.startsWith('mxc://') && !plumbed) await put('m.room.avatar', { url: info.avatarUrl });
  }
}
