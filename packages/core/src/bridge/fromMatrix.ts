/**
 * Matrix → remote. Each persisted Matrix event is handled here, in its room's queue: commands,
 * the bot's own invites, then delivery to every portal of the room, skipping the portal a ghost's
 * message came from (echo suppression) but relaying it to the room's other portals.
 */
import type { MappedEvent, MessageStore } from '../db/messages.js';
import type { PortalStore } from '../db/portals.js';
import type { MatrixEvent } from '../matrix/appservice.js';
import type { MatrixClientLayer } from '../matrix/client.js';
import {
  DeliveryError, type MatrixMessage, type MatrixSender, type NetworkConnector, type PortalInfo, type SendResult,
  supportsEdits, supportsMembership, supportsPowerLevels, supportsProfiles, supportsReactions, supportsRedactions, supportsRoomMeta,
} from '../network/contract.js';
import type { Logger } from '../util/log.js';
import { locationText, POLL_END_TYPES, POLL_START_TYPES, pollEndText, pollStartText } from './matrixText.js';
import { failureSays } from './queue.js';

export const MATRIX_KIND = 'matrix';

export interface MatrixWork {
  event: MatrixEvent;
  receivedAt: number;
}

export interface FromMatrixDeps {
  matrix: MatrixClientLayer;
  portals: PortalStore;
  messages: MessageStore;
  networks: ReadonlyMap<string, NetworkConnector>;
  log: Logger;
  /** The network whose ghost namespace holds this user, if any. */
  ghostNetwork(userId: string): string | undefined;
  /** The remote user a ghost stands for, if the bridge knows it. */
  ghostRemoteUser(userId: string): string | undefined;
  /** Permission level of a Matrix user from the config. */
  permission(userId: string): 'none' | 'user' | 'admin';
  /** Handle a command; true if the event was a command (and so is not bridged). */
  tryCommand(event: MatrixEvent): Promise<boolean>;
  /** The bot was invited to a room. */
  onBotInvite(event: MatrixEvent): Promise<void>;
  /** A ghost was invited to a room (a Matrix user starting a direct chat with a remote user). */
  onGhostInvite(event: MatrixEvent, network: string): Promise<void>;
  /** Someone left a room or was removed from it (the bot included): an admin room may be gone. */
  onLeave(event: MatrixEvent): Promise<void>;
  /** A bridged room was upgraded (`m.room.tombstone`): its links follow to the room that replaces it. */
  onRoomUpgrade(event: MatrixEvent): Promise<void>;
  /** A public download URL for an mxc:// URL. */
  mediaUrl(mxc: string, filename?: string): string | undefined;
  onDelivered(network: string, type: string): void;
}

/** One target of a Matrix event: a portal of some network in the room. */
interface Target { portal: PortalInfo; network: NetworkConnector }

/** Progress of one work item across its targets, so a retry does not deliver twice. */
const delivered = new WeakMap<MatrixWork, Set<string>>();

const FALLBACK_RE = /^<mx-reply>[\s\S]*?<\/mx-reply>/;

/** The queue's name for a network as a destination rooms wait for (see {@link combinedFailure}). */
export const networkDestination = (networkId: string): string => `network:${networkId}`;
/** The network a destination of {@link networkDestination} names, or undefined for any other. */
export const destinationNetwork = (destination: string): string | undefined =>
  destination.startsWith('network:') ? destination.slice('network:'.length) : undefined;

/**
 * The failures of one Matrix event's deliveries to several portals as one error for the queue:
 * the first one's message; permanent only if every failure is; and waiting out an outage without
 * spending attempts (`unreachable`) if every failure to be retried is an outage, since counting
 * attempts then would give the message up while its networks are merely down. `networks[i]` is
 * the id of the network `errors[i]` came from: an outage then names, in `waitsFor`, the networks
 * it waits for, so that the queue can resume the room as soon as they all answer again.
 */
export function combinedFailure(errors: readonly unknown[], networks: readonly string[] = []): DeliveryError & { waitsFor?: string[] } {
  const first = errors[0];
  const userMessage = first instanceof DeliveryError ? first.userMessage : first instanceof Error ? first.message : String(first);
  const permanent = errors.every((e) => failureSays(e, 'permanent'));
  const unreachable = !permanent && errors.every((e) => failureSays(e, 'permanent') || failureSays(e, 'unreachable'));
  const out: DeliveryError & { waitsFor?: string[] } = new DeliveryError(userMessage, permanent, { cause: first, unreachable });
  if (unreachable && networks.length === errors.length) {
    // every failure to retry is an outage: what the room waits for is those networks answering again
    out.waitsFor = [...new Set(networks.filter((_, i) => !failureSays(errors[i], 'permanent')).map(networkDestination))];
  }
  return out;
}

/** Strip the reply fallback (`> <@x> quoted` lines and `<mx-reply>`) from a reply's body. */
export function stripReplyFallback(body: string, formatted?: string): { body: string; formatted?: string } {
  const lines = body.split('\n');
  let i = 0;
  if (lines[0]?.startsWith('> ')) {
    while (i < lines.length && lines[i]!.startsWith('>')) i++;
    if (lines[i] === '') i++;
  }
  const out: { body: string; formatted?: string } = { body: lines.slice(i).join('\n') };
  if (formatted !== undefined) out.formatted = formatted.replace(FALLBACK_RE, '');
  return out;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export class FromMatrix {
  /** Users told once per room that they may not use the bridge. */
  private readonly toldNoPermission = new Set<string>();
  /** Rooms told (this run) that the bridge cannot read their encrypted messages. */
  private readonly toldEncrypted = new Set<string>();

  constructor(private readonly d: FromMatrixDeps) {}

  /**
   * Deliver one Matrix event to the room's portals. Resolves with the message-map writes of what
   * was delivered, for the queue to commit together with the item's done mark.
   */
  async handle(work: MatrixWork): Promise<void | (() => void)> {
    const ev = work.event;
    const { matrix } = this.d;
    this.d.log.debug('matrix event', { type: ev.type, roomId: ev.room_id, eventId: ev.event_id, sender: ev.sender });
    if (ev.type === 'm.room.member' && ev.state_key) {
      matrix.noteMember(ev.room_id, ev.state_key, str(ev.content['displayname']), str(ev.content['membership']) ?? '', str(ev.content['avatar_url']));
    }
    if (ev.type === 'm.room.member' && ev.state_key && (ev.content['membership'] === 'leave' || ev.content['membership'] === 'ban')) await this.d.onLeave(ev);
    if (ev.sender === matrix.botUserId) return;
    // deleted before the bridge saw it: a homeserver catching up after an outage sends such a
    // message with its content stripped, and there is nothing left to send
    if (ev.state_key === undefined && ev.unsigned?.['redacted_because'] !== undefined) {
      this.d.log.debug('skipping a message deleted before it was bridged', { roomId: ev.room_id, eventId: ev.event_id });
      return;
    }
    if (ev.type === 'm.room.member' && ev.state_key === matrix.botUserId) {
      if (ev.content['membership'] === 'invite') await this.d.onBotInvite(ev);
      return;
    }
    if (ev.type === 'm.room.member' && ev.state_key && ev.content['membership'] === 'invite') {
      const invitedNet = this.d.ghostNetwork(ev.state_key);
      if (invitedNet && !this.d.ghostNetwork(ev.sender)) { await this.d.onGhostInvite(ev, invitedNet); return; }
    }
    const ghostOf = this.d.ghostNetwork(ev.sender);
    if (!ghostOf && ev.type === 'm.room.message' && (await this.d.tryCommand(ev))) return;

    const portals = this.d.portals.forRoom(ev.room_id);
    if (!ghostOf && (ev.type === 'm.room.encrypted' || (ev.type === 'm.room.encryption' && ev.state_key === ''))) {
      await this.tellEncrypted(ev, portals);
      return;
    }
    if (portals.length === 0) return;
    if (ev.type === 'm.room.tombstone' && ev.state_key === '' && !ghostOf) { await this.d.onRoomUpgrade(ev); return; }

    let targets = portals.flatMap((p): Target[] => {
      const network = this.d.networks.get(p.network);
      return network ? [{ portal: p, network }] : [];
    });
    if (ghostOf) {
      // A ghost's event: never back to where it came from. Only messages are relayed to other portals.
      if (!['m.room.message', 'm.sticker', 'm.reaction', 'm.room.redaction'].includes(ev.type)) return;
      const origin = this.d.messages.forEvent(ev.event_id);
      targets = origin.length > 0
        ? targets.filter((t) => !origin.some((o) => o.network === t.portal.network && o.remoteChat === t.portal.remoteChat))
        : targets.filter((t) => t.portal.network !== ghostOf);
      if (targets.length === 0) return;
    } else if (this.d.permission(ev.sender) === 'none') {
      await this.tellNoPermission(ev);
      return;
    }

    const sender = await this.sender(ev.room_id, ev.sender, ghostOf);
    // a retry after a restart (the payload read back from the store) knows no progress: the portals
    // an earlier attempt reached are in the message map, written even when another portal failed
    const done = delivered.get(work) ?? new Set<string>(targets.length > 1
      ? this.d.messages.forEvent(ev.event_id).map((m) => `${m.network}\u0000${m.remoteChat}`) : []);
    delivered.set(work, done);
    const errors: unknown[] = [];
    const failedAt: string[] = []; // the network of each error
    const mapWrites: MappedEvent[] = [];
    for (const t of targets) {
      const key = `${t.portal.network}\u0000${t.portal.remoteChat}`;
      if (done.has(key)) continue;
      try {
        await this.deliver(ev, t, sender, mapWrites);
        done.add(key);
      } catch (err) {
        errors.push(err);
        failedAt.push(t.portal.network);
        this.d.log.warn('delivery to a network failed', {
          network: t.portal.network, chat: t.portal.remoteChat, roomId: ev.room_id, eventId: ev.event_id, err: err as Error,
        });
      }
    }
    if (errors.length) {
      for (const m of mapWrites) this.d.messages.add(m); // what did arrive stays mapped, whatever becomes of the rest
      // Retry only what failed (done keeps the others)
      throw Object.assign(combinedFailure(errors, failedAt), {
        failedNetworks: targets.filter((t) => !done.has(`${t.portal.network}\u0000${t.portal.remoteChat}`)).map((t) => t.network.identity.displayName),
      });
    }
    if (mapWrites.length) return () => { for (const m of mapWrites) this.d.messages.add(m); };
  }

  /** Deliver to one portal; what reached the remote side is pushed to `mapWrites` (the caller stores it). */
  private async deliver(ev: MatrixEvent, t: Target, sender: MatrixSender, mapWrites: MappedEvent[]): Promise<void> {
    const { network, portal } = t;
    const net = network.identity.id;
    const ref = { roomId: portal.roomId, remoteChat: portal.remoteChat, kind: portal.kind };
    const mapped = (eventId: string): string[] =>
      this.d.messages.forEvent(eventId).filter((m) => m.network === net && m.remoteChat === portal.remoteChat).map((m) => m.remoteId);
    const record = (res: SendResult | void, body?: string): void => {
      (res?.remoteIds ?? []).forEach((remoteId, part) => mapWrites.push({
        network: net, remoteChat: portal.remoteChat, remoteId, part, roomId: portal.roomId, eventId: ev.event_id, sender: ev.sender,
        ...(body !== undefined ? { body } : {}),
      }));
    };
    const sendMessage = async (msg: MatrixMessage): Promise<void> => {
      if (!sender.ghostOf) await network.connectMatrixUser(sender);
      record(await network.handleMatrixMessage(msg), msg.body);
      this.d.onDelivered(net, 'message');
    };
    const c = ev.content;
    const rel = isObj(c['m.relates_to']) ? c['m.relates_to'] : undefined;

    const poll = POLL_START_TYPES.includes(ev.type) ? pollStartText(c) : POLL_END_TYPES.includes(ev.type) ? pollEndText(c) : null;
    if (poll !== null) {
      // no remote network has Matrix polls: the question and answers (or the end) go as a line of text
      if (poll === undefined) {
        this.d.log.info('a poll without a question; not bridged', { roomId: ev.room_id, eventId: ev.event_id });
        return;
      }
      await sendMessage({ portal: ref, eventId: ev.event_id, sender, msgtype: 'm.text', body: poll, timestamp: ev.origin_server_ts ?? Date.now(), raw: c });
      return;
    }
    switch (ev.type) {
      case 'm.room.message':
      case 'm.sticker': {
        // a client's key verification with another Matrix user: its body only tells Matrix clients without in-room verification to upgrade
        if (c['msgtype'] === 'm.key.verification.request') return;
        if (rel?.['rel_type'] === 'm.replace' && typeof rel['event_id'] === 'string') {
          const target = rel['event_id'];
          if (!supportsEdits(network)) throw new DeliveryError(`${network.identity.displayName} does not support edits`, true);
          const nc = isObj(c['m.new_content']) ? c['m.new_content'] : c;
          const prev = this.d.messages.forEvent(target).find((m) => m.network === net && m.remoteChat === portal.remoteChat);
          // not mapped (a network that gave the message no id, e.g. an IRC server without message-tags): the
          // homeserver still has the original, so the network can still describe the change (s/old/new/)
          const previousBody = prev?.body ?? str((await this.d.matrix.eventContent(ev.room_id, target))?.['body']);
          const edit = {
            portal: ref, eventId: ev.event_id, sender, target: { eventId: target, remoteIds: mapped(target) },
            msgtype: str(nc['msgtype']) ?? str(c['msgtype']) ?? 'm.text', body: str(nc['body']) ?? '', timestamp: ev.origin_server_ts ?? Date.now(),
            ...(str(nc['formatted_body']) !== undefined ? { formattedBody: str(nc['formatted_body'])! } : {}),
            ...(previousBody !== undefined ? { previousBody } : {}),
          };
          await network.connectMatrixUser(sender);
          record(await network.handleMatrixEdit(edit));
          this.d.onDelivered(net, 'edit');
          return;
        }
        await sendMessage(this.toMessage(ev, ref, sender, mapped));
        return;
      }
      case 'm.room.redaction': {
        const target = ev.redacts ?? str(c['redacts']);
        if (!target) return;
        this.d.messages.forgetBody(target);
        const remoteIds = mapped(target);
        if (remoteIds.length === 0) {
          this.d.log.debug('redaction of an event that never reached this chat; nothing to take back', { network: net, chat: portal.remoteChat, target });
          return;
        }
        if (!supportsRedactions(network)) throw new DeliveryError(`${network.identity.displayName} does not support deleting messages`, true);
        await network.handleMatrixRedaction({
          portal: ref, eventId: ev.event_id, sender, target: { eventId: target, remoteIds },
          ...(str(c['reason']) !== undefined ? { reason: str(c['reason'])! } : {}),
        });
        this.d.onDelivered(net, 'redaction');
        return;
      }
      case 'm.reaction': {
        if (!rel || typeof rel['event_id'] !== 'string' || typeof rel['key'] !== 'string') return;
        if (!supportsReactions(network)) return; // reactions are optional decoration: not an error
        record(await network.handleMatrixReaction({
          portal: ref, eventId: ev.event_id, sender, key: rel['key'],
          target: { eventId: rel['event_id'], remoteIds: mapped(rel['event_id']) },
        }));
        this.d.onDelivered(net, 'reaction');
        return;
      }
      case 'm.room.member': {
        // (the ghosts' own joins and leaves never get here: a ghost's events stop at the top of handle())
        if (!ev.state_key) return;
        const m = str(c['membership']);
        const prevContent = isObj(ev.unsigned?.['prev_content']) ? (ev.unsigned['prev_content'] as Record<string, unknown>) : {};
        const prev = str(prevContent['membership']);
        if (m === 'join' && prev === 'join') { await this.profileChange(ev, t, sender, str(prevContent['displayname'])); return; }
        if (!supportsMembership(network)) return;
        let membership: 'join' | 'leave' | 'ban' | 'invite' | 'kick' | 'unban';
        if (m === 'join') membership = 'join';
        else if (m === 'leave') membership = prev === 'ban' ? 'unban' : ev.sender !== ev.state_key ? 'kick' : 'leave';
        else if (m === 'ban' || m === 'invite') membership = m;
        else return;
        await network.handleMatrixMembership({
          portal: ref, eventId: ev.event_id, sender, membership,
          target: ev.state_key === ev.sender ? sender : await this.sender(ev.room_id, ev.state_key, undefined),
          ...(str(c['reason']) !== undefined ? { reason: str(c['reason'])! } : {}),
        });
        return;
      }
      case 'm.room.name':
      case 'm.room.topic':
      case 'm.room.avatar': {
        if (!supportsRoomMeta(network)) return;
        await network.handleMatrixRoomMeta({
          portal: ref, eventId: ev.event_id, sender,
          ...(ev.type === 'm.room.name' ? { name: str(c['name']) ?? '' } : {}),
          ...(ev.type === 'm.room.topic' ? { topic: str(c['topic']) ?? '' } : {}),
          ...(ev.type === 'm.room.avatar' ? { avatarMxc: str(c['url']) ?? '' } : {}),
        });
        return;
      }
      case 'm.room.power_levels': {
        if (!supportsPowerLevels(network)) return;
        const now = isObj(c['users']) ? (c['users'] as Record<string, number>) : {};
        const prevC = isObj(ev.unsigned?.['prev_content']) ? (ev.unsigned['prev_content'] as Record<string, unknown>) : {};
        const before = isObj(prevC['users']) ? (prevC['users'] as Record<string, number>) : {};
        const changed: Record<string, number> = {};
        for (const u of new Set([...Object.keys(now), ...Object.keys(before)])) {
          if (now[u] !== before[u]) changed[u] = now[u] ?? 0;
        }
        if (Object.keys(changed).length) await network.handleMatrixPowerLevels({ portal: ref, eventId: ev.event_id, sender, changed });
        return;
      }
      default:
        return;
    }
  }

  /**
   * A join → join member event: a profile change. A new display name that is the user's global one
   * goes to networks that take it; one set for this room alone does not (see MatrixProfileChange).
   */
  private async profileChange(ev: MatrixEvent, t: Target, sender: MatrixSender, previous: string | undefined): Promise<void> {
    const name = str(ev.content['displayname']);
    if (!supportsProfiles(t.network) || ev.state_key !== ev.sender || !name || name === previous) return;
    // a nicety not worth holding up the room for: when the profile cannot be read, the change is skipped
    const global = await this.d.matrix.globalDisplayName(ev.sender).catch((err: unknown) => {
      this.d.log.info('could not read the global profile of a user who renamed; the new name is not passed on', { sender: ev.sender, err: err as Error });
      return undefined;
    });
    if (global !== name) {
      this.d.log.debug('a display name for this room only; not passed on', { roomId: ev.room_id, sender: ev.sender });
      return;
    }
    await t.network.handleMatrixProfile({
      portal: { roomId: t.portal.roomId, remoteChat: t.portal.remoteChat, kind: t.portal.kind }, eventId: ev.event_id,
      user: { ...sender, displayName: name }, ...(previous !== undefined ? { previousDisplayName: previous } : {}),
    });
  }

  private toMessage(ev: MatrixEvent, portal: MatrixMessage['portal'], sender: MatrixSender, mapped: (e: string) => string[]): MatrixMessage {
    const c = ev.content;
    const rel = isObj(c['m.relates_to']) ? c['m.relates_to'] : undefined;
    const inReply = rel && isObj(rel['m.in_reply_to']) ? str(rel['m.in_reply_to']['event_id']) : undefined;
    const isThread = rel?.['rel_type'] === 'm.thread' && typeof rel['event_id'] === 'string';
    const replyId = isThread && rel?.['is_falling_back'] === true ? undefined : inReply;
    const html = c['format'] === 'org.matrix.custom.html' ? str(c['formatted_body']) : undefined;
    const stripped = replyId ? stripReplyFallback(str(c['body']) ?? '', html) : { body: str(c['body']) ?? '', ...(html !== undefined ? { formatted: html } : {}) };
    const msgtype = ev.type === 'm.sticker' ? 'm.sticker' : (str(c['msgtype']) ?? 'm.text');
    const msg: MatrixMessage = {
      portal, eventId: ev.event_id, sender, msgtype, body: stripped.body, timestamp: ev.origin_server_ts ?? Date.now(), raw: c,
    };
    if (stripped.formatted !== undefined) msg.formattedBody = stripped.formatted;
    if (msgtype === 'm.location') {
      // a geo: URI means nothing to most remote clients; a map link does (the body stays if the URI is bad)
      const text = locationText(c);
      if (text !== undefined) { msg.body = text; delete msg.formattedBody; }
    }
    const mxc = str(c['url']);
    if (mxc?.startsWith('mxc://')) {
      const info = isObj(c['info']) ? c['info'] : {};
      const filename = str(c['filename']) ?? stripped.body;
      msg.media = {
        mxc, url: this.d.mediaUrl(mxc, filename) ?? mxc,
        ...(str(info['mimetype']) !== undefined ? { mimetype: str(info['mimetype'])! } : {}),
        ...(typeof info['size'] === 'number' ? { size: info['size'] } : {}),
        filename,
      };
    }
    if (replyId) {
      const orig = this.d.messages.forEvent(replyId)[0];
      const remote = mapped(replyId)[0];
      msg.replyTo = { eventId: replyId, ...(remote !== undefined ? { remoteId: remote } : {}), ...(orig ? { sender: orig.sender } : {}), ...(orig?.body !== undefined ? { body: orig.body } : {}) };
    }
    if (isThread) {
      const root = rel!['event_id'] as string;
      const remote = mapped(root)[0];
      msg.threadRoot = { eventId: root, ...(remote !== undefined ? { remoteId: remote } : {}) };
    }
    return msg;
  }

  private async sender(roomId: string, userId: string, ghostOf: string | undefined): Promise<MatrixSender> {
    const { displayName, avatarMxc } = await this.d.matrix.memberProfile(roomId, userId);
    const remoteUser = ghostOf ? this.d.ghostRemoteUser(userId) : undefined;
    return {
      userId, displayName, ...(avatarMxc ? { avatarMxc } : {}),
      ...(ghostOf ? { ghostOf: { network: ghostOf, ...(remoteUser ? { remoteUser } : {}) } } : {}),
    };
  }

  /**
   * The bridge has no end-to-end encryption (see the crypto stand-in in the README): in an
   * encrypted room it reads nothing, commands included. Rather than drop what is said there
   * without a word, it says so, once per room (per run), when encryption is turned on in a bridged
   * room or at the first encrypted message. Links stay: what comes from the remote side still arrives.
   */
  private async tellEncrypted(ev: MatrixEvent, portals: readonly PortalInfo[]): Promise<void> {
    if (this.toldEncrypted.has(ev.room_id)) return;
    if (ev.type === 'm.room.encryption' && portals.length === 0) return; // nothing bridged here yet: said when someone speaks
    this.toldEncrypted.add(ev.room_id);
    const names = [...new Set(portals.map((p) => this.d.networks.get(p.network)?.identity.displayName ?? p.network))].join(' and ');
    const what = ev.type === 'm.room.encryption' ? 'End-to-end encryption was turned on in this room' : 'This room is end-to-end encrypted';
    const text = portals.length
      ? `${what}, and this bridge cannot read encrypted messages: nothing said here reaches ${names} any more (messages from there still arrive). ` +
        'Encryption cannot be turned off in a room: to bridge both ways, link a room without encryption instead.'
      : `${what}, and this bridge cannot read encrypted messages: it does not see what is said here, commands included. Use a room without encryption.`;
    this.d.log.warn('an encrypted room: the bridge cannot read it', { roomId: ev.room_id, sender: ev.sender, type: ev.type, bridged: portals.length > 0 });
    await this.d.matrix.sendNotice(ev.room_id, text).catch((err: unknown) => this.d.log.warn('could not send the encryption notice', { err: err as Error }));
  }

  private async tellNoPermission(ev: MatrixEvent): Promise<void> {
    const key = `${ev.room_id}\u0000${ev.sender}`;
    if (this.toldNoPermission.has(key) || ev.type !== 'm.room.message') return;
    this.toldNoPermission.add(key);
    this.d.log.info('message from a user without bridge permission; not bridged', { roomId: ev.room_id, sender: ev.sender });
    await this.d.matrix.sendNotice(ev.room_id, `${ev.sender}: you are not allowed to use this bridge, so your messages here are not bridged.`)
      .catch((err: unknown) => this.d.log.warn('could not send the permission notice', { err: err as Error }));
  }
}
