/**
 * Bridge info state (MSC2346): every link of a room is announced in the room's state, so clients
 * (Element: Room settings → Bridges) can show what the room is bridged to. One state event per link,
 * sent as both `m.bridge` and the older `uk.half-shot.bridge` (as mautrix bridges do), with a state
 * key unique per link: a room linked to an IRC channel and a Discord channel shows both.
 *
 * Best effort and never in the way: links are announced off the rooms' queues, one room at a time;
 * a room where the bot may not set state (a plumbed room that gave it no power) is logged once and
 * left alone; a failure is logged and tried again at the next start. What was sent is recorded (core
 * kv), so a start sends only the links that lack it or whose description changed.
 */
import { createHash } from 'node:crypto';
import type { KvStore } from '../db/kv.js';
import type { PortalObserver } from '../db/portals.js';
import { MatrixError } from '../matrix/client.js';
import { type BridgeInfoSection, type NetworkConnector, type PortalInfo, type PortalRef, supportsBridgeInfo } from '../network/contract.js';
import type { Logger } from '../util/log.js';

/** The two event types the same content is sent as: the MSC's stable name and the one clients read before it. */
export const BRIDGE_INFO_TYPES = ['m.bridge', 'uk.half-shot.bridge'] as const;

export interface BridgeInfoInput {
  /** The bridge bot's user id. */
  bot: string;
  /** The network as core knows it: its id (config key) and display name. */
  protocol: { id: string; displayname: string };
  kind: PortalRef['kind'];
  /** Who linked the room, if known. */
  creator?: string | undefined;
  network?: BridgeInfoSection | undefined;
  channel: BridgeInfoSection;
}

/** `/` separates the parts of the state key: escaped inside a part (as the MSC says), and `%` with it so no two ids collide. */
const part = (id: string): string => id.replace(/%/g, '%25').replace(/\//g, '%2F');

/** Only the fields that are set (a client shows an empty string as a name). */
function section(s: BridgeInfoSection): BridgeInfoSection {
  const out: BridgeInfoSection = { id: s.id };
  if (s.displayname) out.displayname = s.displayname;
  if (s.avatar_url) out.avatar_url = s.avatar_url;
  if (s.external_url) out.external_url = s.external_url;
  return out;
}

/** The state key and content of one link's bridge info event. Pure. */
export function bridgeInfoEvent(input: BridgeInfoInput): { stateKey: string; content: Record<string, unknown> } {
  const stateKey = `trestle://${[input.protocol.id, ...(input.network ? [input.network.id] : []), input.channel.id].map(part).join('/')}`;
  const content: Record<string, unknown> = {
    bridgebot: input.bot,
    ...(input.creator ? { creator: input.creator } : {}),
    protocol: section(input.protocol),
    ...(input.network ? { network: section(input.network) } : {}),
    channel: section(input.channel),
    // what mautrix bridges mark their direct chats with (Beeper and others group rooms by it)
    ...(input.kind === 'dm' ? { 'com.beeper.room_type': 'dm' } : {}),
  };
  return { stateKey, content };
}

/** What was last sent for a link: its state key, a digest of the content, who linked it, and whether the room refused it. */
interface SentRecord { k?: string; h?: string; c?: string; refused?: true }

export interface BridgeInfoDeps {
  enabled: boolean;
  bot: string;
  kv: KvStore;
  network(id: string): NetworkConnector | undefined;
  /** Send a state event, as `asUser` (default: the bot). */
  setState(roomId: string, type: string, stateKey: string, content: Record<string, unknown>, asUser?: string): Promise<void>;
  log: Logger;
}

type Outcome = 'sent' | 'refused' | 'failed';

/** Keeps each room's bridge info in step with its links. Told of links by the portal store. */
export class BridgeInfoSync implements PortalObserver {
  private readonly rooms = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(private readonly d: BridgeInfoDeps) {}

  /** A link was made, or made again: announce it if it is not, or not like this. */
  linked(p: PortalInfo): void {
    if (this.d.enabled) this.inRoom(p.roomId, () => this.announce(p));
  }

  /** A link was removed: empty its state event, so clients stop showing it. */
  unlinked(p: PortalInfo): void {
    if (this.d.enabled) this.inRoom(p.roomId, () => this.withdraw(p));
  }

  /**
   * Remember who linked a room (the `link` command, the provisioning API), for the link about to be
   * made. A link made again is announced again, even where the room refused it before (its admins
   * may have given the bot the power since).
   */
  noteCreator(roomId: string, network: string, chat: string, userId: string | undefined): void {
    if (!userId) return;
    const key = recordKey(roomId, network, chat);
    const rec = this.read(key);
    this.d.kv.set('core', key, JSON.stringify({ ...(rec?.k && !rec.refused ? { k: rec.k } : {}), c: userId } satisfies SentRecord));
  }

  /** A link moves to the room that replaces its room (an upgrade): whoever linked it, linked it there too. */
  moving(from: string, to: string, network: string, chat: string): void {
    this.noteCreator(to, network, chat, this.read(recordKey(from, network, chat))?.c);
  }

  /**
   * Announce every link that lacks its bridge info or whose description changed since (links made
   * before this version, names changed while the bridge was down). In the background, one link at a
   * time, yielding between links: start-up does not wait for it.
   */
  async catchUp(portals: PortalInfo[]): Promise<void> {
    if (!this.d.enabled) return;
    let sent = 0;
    for (const p of portals) {
      if (this.stopped) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
      let done: Promise<void> | undefined;
      this.inRoom(p.roomId, async () => { if (await this.announce(p)) sent++; }, (q) => { done = q; });
      await done;
    }
    if (sent) this.d.log.info('bridge info set in rooms that lacked it or had an old one', { links: sent, of: portals.length });
  }

  /** No more sending (the bridge stops). */
  stop(): void { this.stopped = true; }

  /** Resolves once every room's pending bridge info work is done (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.rooms.size) await Promise.all([...this.rooms.values()]);
  }

  /** Run `task` after the room's earlier bridge info work, so a link and its unlink land in order. */
  private inRoom(roomId: string, task: () => Promise<unknown>, started?: (p: Promise<void>) => void): void {
    const prev = this.rooms.get(roomId) ?? Promise.resolve();
    const next: Promise<void> = prev.then(async () => { if (!this.stopped) await task(); }).catch((err: unknown) => {
      this.d.log.warn('bridge info not updated', { roomId, err: err as Error });
    }).finally(() => { if (this.rooms.get(roomId) === next) this.rooms.delete(roomId); });
    this.rooms.set(roomId, next);
    started?.(next);
  }

  /** Returns true when something was sent. */
  private async announce(p: PortalInfo): Promise<boolean> {
    const n = this.d.network(p.network);
    if (!n) return false;
    const key = recordKey(p.roomId, p.network, p.remoteChat);
    const rec = this.read(key);
    const described = supportsBridgeInfo(n) ? n.bridgeInfo(p) : { channel: { id: p.remoteChat, ...(p.name ? { displayname: p.name } : {}) } };
    if (!described) return false; // the network cannot say now; the next start (or its refresh) tries again
    const creator = described.creator ?? rec?.c;
    const { stateKey, content } = bridgeInfoEvent({
      bot: this.d.bot, protocol: { id: n.identity.id, displayname: n.identity.displayName }, kind: p.kind, creator,
      network: described.network, channel: described.channel,
    });
    const h = createHash('sha256').update(JSON.stringify([stateKey, content])).digest('base64url').slice(0, 22);
    if (rec?.k === stateKey && rec.h === h) return false; // sent already (or refused: not asked again for the same thing)
    const as = senderIn(p);
    if (rec?.k && rec.k !== stateKey && !rec.refused) await this.send(p.roomId, rec.k, {}, as); // the old key must not stay behind
    const outcome = await this.send(p.roomId, stateKey, content, as);
    if (outcome === 'failed') return false;
    this.d.kv.set('core', key, JSON.stringify({ k: stateKey, h, ...(creator ? { c: creator } : {}), ...(outcome === 'refused' ? { refused: true } : {}) } satisfies SentRecord));
    if (outcome === 'refused') {
      this.d.log.info('the bridge may not set bridge info state in this room (its power level is too low); the link works without it',
        { roomId: p.roomId, network: p.network, chat: p.remoteChat });
    }
    return outcome === 'sent';
  }

  private async withdraw(p: PortalInfo): Promise<void> {
    const key = recordKey(p.roomId, p.network, p.remoteChat);
    const rec = this.read(key);
    this.d.kv.delete('core', key);
    if (!rec?.k || rec.refused) return; // nothing of ours to take down
    await this.send(p.roomId, rec.k, {}, senderIn(p));
  }

  /** Both event types; a refusal of the first is not asked again with the second. */
  private async send(roomId: string, stateKey: string, content: Record<string, unknown>, asUser?: string): Promise<Outcome> {
    for (const type of BRIDGE_INFO_TYPES) {
      try {
        await this.d.setState(roomId, type, stateKey, content, asUser);
      } catch (err) {
        if (err instanceof MatrixError && (err.errcode === 'M_FORBIDDEN' || err.status === 403)) return 'refused';
        this.d.log.warn('could not set bridge info state; tried again at the next start', { roomId, type, stateKey, err: err as Error });
        return 'failed';
      }
    }
    return 'sent';
  }

  private read(key: string): SentRecord | undefined {
    const raw = this.d.kv.get('core', key);
    if (!raw) return undefined;
    try { return JSON.parse(raw) as SentRecord; } catch { return undefined; }
  }
}

/** Room ids and network ids hold no space; the chat id comes last, so whatever it holds is its own. */
function recordKey(roomId: string, network: string, chat: string): string {
  return `bridgeinfo:${roomId} ${network} ${chat}`;
}

/**
 * Who sends a link's bridge info: the bot, except in a direct chat, where the remote user's ghost
 * does (it is the room's other member; the bot may not be in a DM a Matrix user opened with a ghost).
 */
function senderIn(p: PortalInfo): string | undefined {
  return p.kind === 'dm' && typeof p.data['ghost'] === 'string' ? p.data['ghost'] : undefined;
}
