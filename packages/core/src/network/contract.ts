/**
 * # The network contract
 *
 * This file is what a bridge author reads first. A *network* is one remote chat system (IRC,
 * Discord, ...). Trestle core knows Matrix; a network knows its remote side. They meet here.
 *
 * The shape follows mautrix-go's bridgev2 `networkinterface.go`: a small **required** interface
 * ({@link NetworkConnector}) plus **optional capabilities**, each its own interface, that core
 * detects at run time with the `supports*` guards at the bottom of this file. A network that
 * cannot edit simply does not implement {@link EditCapable}; core then never calls it, and tells
 * the Matrix user their edit could not be bridged instead of failing somewhere deep inside.
 *
 * ## Two directions, one ordered queue
 *
 * - **Matrix → remote**: core receives appservice transactions, persists them, and for each event
 *   in a room linked to one of your channels calls your handler (`handleMatrixMessage`, `handleMatrixEdit`,
 *   ...). Calls for one Matrix room are strictly sequential, in the order the homeserver sent
 *   them: you never see message 2 of a room before message 1 has finished. Throw a
 *   {@link DeliveryError} (or any error) to have core retry with backoff; after the configured
 *   number of attempts the sender is told in the room that the message did not reach you. Mark it
 *   `unreachable` when your network did not answer at all (down, disconnected): then it waits out
 *   the outage without spending attempts, and resumes as soon as your network answers again if
 *   you can tell core when that is ({@link ReachabilityCapable}).
 * - **remote → Matrix**: call the methods of {@link RemoteEventSink} (`ctx.remote`). Each call
 *   persists the event before it resolves, so once the promise resolves the event will reach
 *   Matrix even if the process is killed the next instant. Events from one remote chat keep
 *   their order. Send the remote message id: core derives deterministic Matrix transaction ids
 *   from it (a resend after a crash is deduplicated by the homeserver) and records the mapping
 *   in the message map, so later edits, deletions, replies and reactions find their Matrix events.
 *
 * ## Identity and ids
 *
 * Remote ids are opaque strings to core. Each network builds and parses them in its own
 * `ids.ts` (branded types there). Core only needs: the id of a remote chat ({@link RemoteChatId}),
 * a remote user ({@link RemoteUserId}) and a remote message ({@link RemoteMessageId}).
 * Ghost Matrix ids are `@<userPrefix><localpart>:<domain>`; the network chooses the localpart
 * for a remote user with {@link NetworkIdentity.ghostLocalpart} (must be valid Matrix localpart
 * characters: `a-z 0-9 . _ = - /`; core lower-cases and escapes anything else defensively).
 *
 * ## Portals
 *
 * A *portal* links one Matrix room to one remote chat. A room may have several portals (one IRC
 * channel and one Discord channel, or two IRC channels): a message from one is relayed to the
 * others by core, with the sender shown as a {@link MatrixSender} whose `ghostOf` names the
 * network it came from. Your handlers get called once per portal of yours in the room.
 */
import type { Logger } from '../util/log.js';

// ------------------------------------------------------------------ ids

/** The id of a chat on the remote network (an IRC channel `libera/#rust`, a Discord channel id). */
export type RemoteChatId = string;
/** The id of a user on the remote network (an IRC nick on a server, a Discord user id). */
export type RemoteUserId = string;
/** The id of a message on the remote network (an IRCv3 msgid, a Discord snowflake). */
export type RemoteMessageId = string;

/** A Matrix user id, `@local:server`. */
export type MatrixUserId = string;
/** A Matrix room id, `!opaque:server`. */
export type MatrixRoomId = string;
/** A Matrix event id, `$opaque`. */
export type MatrixEventId = string;

// ------------------------------------------------------------------ identity

export interface NetworkIdentity {
  /** Short stable id, used in the database, config (`networks.<id>`), metrics and commands. */
  readonly id: string;
  /** Human name, shown in help texts and notices ("IRC", "Discord"). */
  readonly displayName: string;
  /** Localpart prefix of this network's ghosts, e.g. `irc_` → `@irc_libera_alice:example.org`. */
  readonly userPrefix: string;
  /** Alias prefix of this network's portal rooms, e.g. `irc_` → `#irc_libera_#rust:example.org`. */
  readonly aliasPrefix?: string;
  /**
   * Further aliases of its portal rooms, as regular expressions on the whole alias localpart (e.g.
   * from an alias template in the network's config: `libera_.*`); registered and routed to
   * `portalForAlias` as the prefix is. Each must need a literal start of its own, or it claims
   * everyone's aliases.
   */
  readonly aliasPatterns?: readonly string[];
  /**
   * The third-party protocol this network answers for (e.g. `irc`), if it implements
   * {@link ThirdPartyCapable}: written into the registration (`protocols`), which is how the
   * homeserver knows to ask the bridge. Known without starting the network.
   */
  readonly protocol?: string;
  /** The ghost localpart (without the prefix) for a remote user. Pure and deterministic. */
  ghostLocalpart(user: RemoteUserId): string;
}

// ------------------------------------------------------------------ the required interface

export interface NetworkConnector {
  readonly identity: NetworkIdentity;

  /** Called once at start-up, after core's store and Matrix connection are ready. Connect here. */
  start(ctx: NetworkContext): Promise<void>;

  /** Called once at shutdown, after core has drained the queues. Disconnect cleanly. */
  stop(): Promise<void>;

  /**
   * Make sure the Matrix user has a presence on the remote network (an IRC connection, a
   * webhook...). Core calls it before the user's first message to one of your portals; networks
   * for which this means nothing return at once.
   */
  connectMatrixUser(user: MatrixSender): Promise<void>;

  /**
   * Deliver a Matrix message (text, notice, emote, media) to one portal's remote chat.
   * Return the remote message id(s) if the network has them, so edits/replies can find them.
   */
  handleMatrixMessage(msg: MatrixMessage): Promise<SendResult | void>;
}

/** What a network returns after delivering something to the remote side. */
export interface SendResult {
  /** The remote ids of what was sent, one per part (a long message may be split). */
  remoteIds?: RemoteMessageId[];
}

// ------------------------------------------------------------------ what core hands to a network

export interface MatrixSender {
  userId: MatrixUserId;
  /** Display name in the room, or the localpart if none is set. */
  displayName: string;
  avatarMxc?: string;
  /** Set when the sender is a ghost of some network (a relay from a room's other portal). */
  ghostOf?: { network: string; remoteUser?: RemoteUserId };
}

/** The portal the event is for: one Matrix room ↔ one remote chat of yours. */
export interface PortalRef {
  roomId: MatrixRoomId;
  remoteChat: RemoteChatId;
  kind: 'portal' | 'plumbed' | 'dm';
}

export interface MatrixMessage {
  portal: PortalRef;
  eventId: MatrixEventId;
  sender: MatrixSender;
  msgtype: 'm.text' | 'm.notice' | 'm.emote' | 'm.image' | 'm.file' | 'm.video' | 'm.audio' | string;
  /** Plain text body (for media: the file name). Reply fallbacks are already stripped. */
  body: string;
  /** HTML body (`org.matrix.custom.html`), reply fallbacks stripped, if the sender sent one. */
  formattedBody?: string;
  /** For media: the mxc URL, a public download URL for it, and what the sender said of it. */
  media?: { mxc: string; url: string; mimetype?: string; size?: number; filename?: string };
  /** When the message replies to another: the remote id of that message if it is mapped. */
  replyTo?: { eventId: MatrixEventId; remoteId?: RemoteMessageId; sender?: MatrixUserId; body?: string };
  /** The thread root if the event is in a Matrix thread, mapped like replyTo. */
  threadRoot?: { eventId: MatrixEventId; remoteId?: RemoteMessageId };
  /** Original Matrix timestamp (ms). */
  timestamp: number;
  /** The whole event content, for the rare network that needs more. */
  raw: Record<string, unknown>;
}

export interface MatrixEdit {
  portal: PortalRef;
  eventId: MatrixEventId;
  sender: MatrixSender;
  /** The edited message: its Matrix event and the remote ids it mapped to. */
  target: { eventId: MatrixEventId; remoteIds: RemoteMessageId[] };
  /** The new content (`m.new_content`): its msgtype (`m.text`, `m.emote`, `m.notice`…), body and HTML. */
  msgtype: string;
  body: string;
  formattedBody?: string;
  /** The previous body if core knows it (for `s/old/new/` style corrections). */
  previousBody?: string;
  timestamp: number;
}

export interface MatrixRedaction {
  portal: PortalRef;
  eventId: MatrixEventId;
  sender: MatrixSender;
  target: { eventId: MatrixEventId; remoteIds: RemoteMessageId[] };
  reason?: string;
}

export interface MatrixReaction {
  portal: PortalRef;
  eventId: MatrixEventId;
  sender: MatrixSender;
  target: { eventId: MatrixEventId; remoteIds: RemoteMessageId[] };
  /** The reaction key: an emoji, or an `mxc://` for a custom one. */
  key: string;
}

export interface MatrixMembership {
  portal: PortalRef;
  eventId: MatrixEventId;
  /** Who did it. */
  sender: MatrixSender;
  /** Whom it is about. */
  target: MatrixSender;
  /** `unban`: a ban lifted (the target's membership went from ban to leave). */
  membership: 'join' | 'leave' | 'ban' | 'invite' | 'kick' | 'unban';
  reason?: string;
}

export interface MatrixRoomMeta {
  portal: PortalRef;
  eventId: MatrixEventId;
  sender: MatrixSender;
  name?: string;
  topic?: string;
  avatarMxc?: string;
}

export interface MatrixPowerLevels {
  portal: PortalRef;
  eventId: MatrixEventId;
  sender: MatrixSender;
  /** User id → power level, only users whose level changed. */
  changed: Record<MatrixUserId, number>;
}

export interface MatrixTyping {
  portal: PortalRef;
  user: MatrixSender;
  typing: boolean;
}

/**
 * A Matrix user's presence changed (the homeserver's `m.presence`, for users who share a room with
 * the bridge): online, unavailable (idle, away) or offline, with their status message if they set
 * one. Not per room: a network shows it wherever the user is, if it shows it at all. Ghosts' and the
 * bot's own presence never arrive here.
 */
export interface MatrixUserPresence {
  userId: MatrixUserId;
  presence: MatrixPresence;
  statusMsg?: string;
}

/**
 * A Matrix user changed their display name: a join → join member event whose `displayname` differs,
 * passed on only when it is their global profile name (a name set for one room alone is not, so a
 * network that keeps one name per user does not flip between rooms). The same change arrives once
 * per linked room the user is in: act on it once.
 */
export interface MatrixProfileChange {
  portal: PortalRef;
  eventId: MatrixEventId;
  /** The user, with the new display name. */
  user: MatrixSender;
  previousDisplayName?: string;
}

// ------------------------------------------------------------------ optional capabilities

export interface EditCapable { handleMatrixEdit(edit: MatrixEdit): Promise<SendResult | void> }
export interface RedactionCapable { handleMatrixRedaction(redaction: MatrixRedaction): Promise<void> }
export interface ReactionCapable {
  handleMatrixReaction(reaction: MatrixReaction): Promise<SendResult | void>;
  /** Called when a bridged reaction is redacted on Matrix. */
  handleMatrixReactionRemove?(reaction: MatrixReaction): Promise<void>;
}
/** Replies are carried in {@link MatrixMessage.replyTo}; this marks that the network renders them natively. */
export interface ReplyCapable { readonly nativeReplies: true }
export interface TypingCapable { handleMatrixTyping(typing: MatrixTyping): Promise<void> }
export interface PresenceOutCapable { handleMatrixPresence(presence: MatrixUserPresence): Promise<void> }
export interface MembershipCapable { handleMatrixMembership(change: MatrixMembership): Promise<void> }
export interface ProfileCapable { handleMatrixProfile(change: MatrixProfileChange): Promise<void> }
export interface RoomMetadataCapable { handleMatrixRoomMeta(meta: MatrixRoomMeta): Promise<void> }
export interface PowerLevelCapable { handleMatrixPowerLevels(pl: MatrixPowerLevels): Promise<void> }

/**
 * "Does the remote network answer now?" While Matrix → remote deliveries to this network wait out an
 * outage (they failed with an `unreachable` {@link DeliveryError}), core asks this every couple of
 * seconds; once it has seen a `false` and then a `true`, every room waiting for this network (and for
 * no other network still down) is retried at once. Without it such rooms retry only at the end of
 * their capped backoff: up to `delivery.maxBackoffMs` (a minute by default) after the network is back.
 *
 * What it must do:
 * - answer what a delivery would meet now: go the way deliveries go (same client, same address,
 *   same credentials) and judge the outcome as your deliveries' errors are judged. `true` means a
 *   delivery made now would not fail as `unreachable`; an answer that refuses (a 4xx, say) is still
 *   an answer: `true`.
 * - be cheap and quick: one light request or a look at connection state, with a short timeout of
 *   its own (a few seconds); it is asked again and again for as long as rooms wait.
 * - never throw and never hang: resolve `false` on any doubt (an error, a timeout, not started or
 *   stopped yet). A wrong `true` costs one retry; a wrong `false` only leaves the rooms to their
 *   backoff.
 *
 * What it must not do: change anything on either side (no reconnecting, no sending, no marking
 * messages), nor wait for a reconnect to finish; nor be used to decide that a delivery failed:
 * that is the delivery's own error.
 */
export interface ReachabilityCapable { reachable(): Promise<boolean> }

/** A command a network adds to the admin room / in-room command processor (see commands/). */
export interface NetworkCommand {
  name: string;
  /** One line of help. */
  help: string;
  /** Argument names, `?` suffix for optional ones, `...` prefix for the rest of the line. */
  args?: string[];
  permission: 'user' | 'admin';
  /** Power level needed in the room (checked unless the sender is a bridge admin). */
  roomPower?: number;
  /** Only in the sender's admin room (e.g. commands that take a password). */
  adminRoomOnly?: boolean;
  /**
   * The command's text holds a secret (a password): the bridge removes the message from the room
   * as soon as it has read it, wherever it was said and whether or not the command runs.
   */
  secret?: boolean;
  run(ctx: CommandInvocation): Promise<string | void>;
}

export interface CommandInvocation {
  sender: MatrixUserId;
  roomId: MatrixRoomId;
  /** Named arguments, as declared in `args`. */
  args: Record<string, string | undefined>;
  /** Power level of the sender in the room the command was issued in (0 if unknown). */
  powerLevel: number;
  /** True when issued in the sender's admin room (a DM with the bridge bot). */
  inAdminRoom: boolean;
  isAdmin: boolean;
  reply(text: string): Promise<void>;
  /**
   * The sender's display name (as the room shows it, else their profile's, else their user id),
   * asked for only when needed: e.g. to name a connection a command opens before any message has.
   */
  senderName(): Promise<string>;
}

export interface CommandCapable { readonly commands: NetworkCommand[] }

export interface ProvisioningCapable {
  /**
   * Validate and link a Matrix room to a remote chat for the provisioning API / `link` command.
   * `bridgeAdmin`: the user has `admin` in `permissions` (a network that asks the remote side's
   * consent may skip that for them). Throw to refuse, with what the user is told, or to say the link
   * waits for an approval (the network links it itself later, with `ctx.portals.link`).
   */
  provisionLink(req: { roomId: MatrixRoomId; remoteChat: string; userId: MatrixUserId; bridgeAdmin?: boolean }): Promise<{ remoteChat: RemoteChatId; name?: string }>;
  provisionUnlink?(req: { roomId: MatrixRoomId; remoteChat: RemoteChatId; userId: MatrixUserId }): Promise<void>;
  /**
   * The chat id that a user's words for a chat name (the words `provisionLink` accepts), without
   * I/O; undefined when they are not such words. Lets `unlink` find a link given in the same words
   * as `link`, where the network normalises them (case, separators). Without it, unlink takes the
   * words as the chat id.
   */
  chatIdFor?(words: string): RemoteChatId | undefined;
}

/**
 * Portal rooms on demand: a Matrix user joins `#<aliasPrefix>...:domain`, the homeserver asks the
 * bridge whether the alias exists, and core asks the network which remote chat it names. Core
 * then creates the room with that alias and links it.
 */
export interface AliasCapable {
  portalForAlias(aliasLocalpart: string): Promise<{ remoteChat: RemoteChatId; name?: string; topic?: string } | undefined>;
}

/**
 * Direct chats started from Matrix: a Matrix user invites a ghost to a DM. The network returns
 * the chat id for that pair (or undefined to refuse); core makes the ghost join and links the room.
 */
export interface DirectChatCapable {
  directChatFor(req: { matrixUser: MatrixUserId; remoteUser: RemoteUserId }): Promise<RemoteChatId | undefined>;
}

/** Told when a room is linked to one of its chats (command, provisioning, alias), e.g. to sync members. */
export interface PortalLinkAware {
  portalLinked(portal: PortalInfo): Promise<void>;
  /**
   * Optional: told when core removed a link (the `unlink` command, the provisioning API, or a room
   * upgrade that moved the link away), so the network can undo what it keeps or set up for that room
   * (e.g. take the room out of a space, forget who linked it). `portal` is the link as it was. On an
   * upgrade, `movedTo` is the room that has the link now, and `portalLinked` for it came first: records
   * worth keeping follow the link there. Not called for links the network removes itself
   * (`ctx.portals.unlink`). Failures are logged; the link is gone either way.
   */
  portalUnlinked?(portal: PortalInfo, movedTo?: MatrixRoomId): Promise<void>;
}

/**
 * Third-party lookups (Matrix application-service API, `/thirdparty/...`): how clients find a
 * network's chats and users without knowing the bridge's alias and user id formats. Element's
 * "Explore rooms" lists each {@link ThirdPartyProtocol.instances} entry as a network to browse; it
 * shows the rooms published in that instance's room list ({@link NetworkMatrix.publishRoom}), and
 * for what a user types it asks {@link thirdPartyLocations} which alias to join.
 *
 * The homeserver forwards a client's lookup to the bridge only for the protocols in the
 * registration, so the network names its protocol in {@link NetworkIdentity.protocol} too.
 * Answers are quick and do no remote I/O (read config and store): a client waits on them.
 * Fields are strings as the client typed them: validate them, and answer `[]` for what you do not
 * know or would not bridge (never throw for bad input).
 */
export interface ThirdPartyCapable {
  thirdPartyProtocol(): ThirdPartyProtocol;
  /** The portal aliases for a location's fields (e.g. `{ domain, channel }`); joining one opens the portal. */
  thirdPartyLocations(fields: Readonly<Record<string, string>>): ThirdPartyLocation[];
  /** The ghosts for a user's fields (e.g. `{ domain, nick }`). */
  thirdPartyUsers(fields: Readonly<Record<string, string>>): ThirdPartyUser[];
}

export interface ThirdPartyProtocol {
  /** Fields that together name a user, in the order a client asks for them. */
  userFields: string[];
  /** Fields that together name a chat (a location). */
  locationFields: string[];
  /** What each field looks like: a regular expression a client may check input with, and a placeholder. */
  fieldTypes: Record<string, { regexp: string; placeholder: string }>;
  /** An mxc:// URL of the protocol's picture (clients show a default without). */
  icon?: string;
  /**
   * The places of this protocol the bridge serves (IRC servers). `networkId` is the stable id of the
   * instance's room list; `fields` are the preset fields a client searches it by.
   */
  instances: { networkId: string; desc: string; fields: Record<string, string>; icon?: string }[];
}

export interface ThirdPartyLocation { alias: string; fields: Record<string, string> }
export interface ThirdPartyUser { userId: MatrixUserId; fields: Record<string, string> }

/** One part of a link's description in a room's bridge info (MSC2346): the network, or the chat. */
export interface BridgeInfoSection {
  /** Stable id, lower case where the network's ids fold case (part of the state key: it must not change). */
  id: string;
  /** What clients show, e.g. `Libera.Chat`, `#rust`. */
  displayname?: string;
  /** An mxc:// URL of its picture. */
  avatar_url?: string;
  /** A link to it outside Matrix, where one makes sense (`https://discord.com/channels/<guild>/<channel>`). */
  external_url?: string;
}

/**
 * How a link shows in clients' "Bridges" room settings. Core keeps one bridge info state event
 * (MSC2346, sent as both `m.bridge` and `uk.half-shot.bridge`, as mautrix bridges do) per link of a
 * room, with state key `trestle://<network id>/<network.id>/<channel.id>`, and fills in the bridge
 * bot, the protocol (your {@link NetworkIdentity}) and who linked it (the `link` command or the
 * provisioning API) itself. Without this capability a link is described by its remote chat id and
 * portal name alone.
 *
 * - Quick and synchronous: no requests (read your caches, store and config); core asks it for every
 *   link at start-up, in the background, and sends only what changed since it last sent.
 * - `network`: the part of your protocol the chat is on (an IRC server, a Discord server), if any.
 * - `creator`: who linked the room, if you know better than core (a link you made after an approval).
 * - Return `undefined` when you cannot say now (not connected yet): nothing is sent for that link
 *   until the next start or {@link NetworkContext} `portals.refreshBridgeInfo` for its chat.
 *
 * The ids end up in the state key, so they must stay the same for the life of the link; names may
 * change: call `ctx.portals.refreshBridgeInfo(chat)` when they do (a channel renamed).
 */
export interface BridgeInfoCapable {
  bridgeInfo(portal: PortalInfo): { network?: BridgeInfoSection; channel: BridgeInfoSection; creator?: MatrixUserId } | undefined;
}

// ------------------------------------------------------------------ remote → Matrix

export interface RemoteSender {
  id: RemoteUserId;
  displayName: string;
  /** An http(s) URL core fetches and uploads, or an mxc:// URL used as-is. */
  avatarUrl?: string;
}

export interface RemoteMessage {
  chat: RemoteChatId;
  /** The remote message id. Networks without ids (plain IRC) make one that is unique per chat. */
  id: RemoteMessageId;
  sender: RemoteSender;
  /** One entry per Matrix event this message becomes (text, then one per attachment). */
  parts: RemoteMessagePart[];
  replyTo?: RemoteMessageId;
  threadRoot?: RemoteMessageId;
  /** Remote timestamp (ms); used for the message age check after an outage. */
  timestamp?: number;
  /**
   * Said a while ago and delivered late: fetched from the remote chat's history after the bridge
   * was away (restarting, disconnected). Its Matrix events get `timestamp` as their
   * origin_server_ts, so they show when they were said, not when they arrived.
   */
  backfill?: boolean;
}

export interface RemoteMessagePart {
  /** Defaults to m.room.message. */
  type?: string;
  /** The Matrix event content (msgtype, body, format, formatted_body, url...). */
  content: Record<string, unknown>;
}

export interface RemoteEdit {
  chat: RemoteChatId;
  /** Id of the message being edited. */
  target: RemoteMessageId;
  /** Unique id of this edit (e.g. `${target}:edit:${editedTimestamp}`), for deterministic txn ids. */
  id: string;
  sender: RemoteSender;
  /** New content of part 0 (the text part). */
  content: Record<string, unknown>;
}

export interface RemoteDelete {
  chat: RemoteChatId;
  target: RemoteMessageId;
  sender?: RemoteSender;
  reason?: string;
}

export interface RemoteReaction {
  chat: RemoteChatId;
  target: RemoteMessageId;
  sender: RemoteSender;
  key: string;
  /**
   * The reaction's own id on the remote side, where it has one (IRC: the msgid of its TAGMSG): a
   * deletion naming it ({@link RemoteDelete} with this as `target`) takes the reaction back.
   */
  id?: RemoteMessageId;
  /** True when the reaction is removed. */
  remove?: boolean;
  /**
   * Made a while ago and delivered late, fetched from the remote chat's history (see
   * {@link RemoteMessage.backfill}): left out when this sender's reaction with this key to this
   * message is in the room already, and its Matrix event gets `timestamp` as its origin_server_ts.
   */
  backfill?: boolean;
  /** Remote timestamp (ms) of the reaction; used with `backfill`. */
  timestamp?: number;
}

export interface RemoteMembership {
  chat: RemoteChatId;
  user: RemoteSender;
  /** `unban` lifts a ban of the ghost (it does not join again until it has something to say). */
  membership: 'join' | 'leave' | 'kick' | 'ban' | 'unban';
  reason?: string;
  /** For kick/ban: who did it. */
  by?: RemoteSender;
}

/**
 * Everyone in a remote chat now, as the network saw on (re)joining it (IRC's NAMES): ghosts of this
 * network in the chat's rooms who are not listed leave, with `reason`. They left while the bridge
 * was not looking (stopped, or its connection down), and would otherwise stay in the room for good.
 * Joins of those listed are reported as {@link RemoteMembership} as usual. A room linked to more
 * than one chat of the network is left as it is: whose ghost belongs to which chat cannot be told.
 */
export interface RemoteMemberList {
  chat: RemoteChatId;
  users: RemoteUserId[];
  reason?: string;
}

export interface RemotePowerLevels {
  chat: RemoteChatId;
  /** Remote user → Matrix power level for their ghost (0 removes the entry). Applied as one change. */
  users: Record<RemoteUserId, number>;
}

/**
 * A chat's name, topic or avatar changed. Names and avatars are applied to portal rooms only
 * (a plumbed room belongs to its admins); topics to every linked room.
 */
/**
 * A chat's rules changed (IRC `+m`, `+i`/`+k`, ranks in the same line): applied as ONE
 * `m.room.power_levels` event (users and `events_default`) plus `m.room.join_rules` if asked.
 * `sendLevel: null` and `inviteOnly: false` put back what the room had before the bridge changed it.
 */
export interface RemoteRoomSettings {
  chat: RemoteChatId;
  users?: Record<RemoteUserId, number>;
  sendLevel?: number | null;
  inviteOnly?: boolean;
}

export interface RemoteChatInfo {
  chat: RemoteChatId;
  name?: string;
  topic?: string;
  avatarUrl?: string;
  by?: RemoteSender;
}

/**
 * How a network reports what happened on its side. Every method resolves once the event is
 * persisted for delivery (durable), not once it is on Matrix.
 */
export interface RemoteEventSink {
  message(msg: RemoteMessage): Promise<void>;
  edit(edit: RemoteEdit): Promise<void>;
  delete(del: RemoteDelete): Promise<void>;
  reaction(reaction: RemoteReaction): Promise<void>;
  membership(change: RemoteMembership): Promise<void>;
  /** The whole member list of a chat, seen anew: see {@link RemoteMemberList}. */
  memberList(list: RemoteMemberList): Promise<void>;
  chatInfo(info: RemoteChatInfo): Promise<void>;
  /** Remote users' ranks changed (IRC channel modes, Discord roles): one power-levels event. */
  powerLevels(change: RemotePowerLevels): Promise<void>;
  /** The chat's rules changed (who may talk, who may join), possibly with ranks: see {@link RemoteRoomSettings}. */
  roomSettings(change: RemoteRoomSettings): Promise<void>;
  /** A remote user's name or avatar changed (e.g. an IRC nick change): update their ghost's profile. */
  profile(user: RemoteSender): Promise<void>;
  /** A remote user started or stopped typing: shown at once by their ghost, not queued (typing is ephemeral). */
  typing(change: { chat: RemoteChatId; user: RemoteSender; typing: boolean }): Promise<void>;
  /**
   * The bot tells the chat's rooms something about the bridging itself (e.g. that part of what was
   * said while the bridge was away could not be fetched), in the chat's queue: after what was
   * reported before it, where `ctx.matrix.notice` would go at once.
   */
  notice(change: { chat: RemoteChatId; text: string }): Promise<void>;
}

// ------------------------------------------------------------------ what core gives a network

/** A Matrix presence state, as `PUT /presence/{userId}/status` takes it. */
export type MatrixPresence = 'online' | 'unavailable' | 'offline';

/**
 * The homeserver, reached as the bridge bot, for what a network keeps on Matrix besides what core
 * does for it (portal rooms, ghosts, messages): spaces of its own (a Discord server's), state it
 * reads or writes in rooms the bot is in, invites and notices. Small on purpose: ask for a new
 * capability here rather than calling the homeserver around core. A refusal rejects with an error
 * that carries the Matrix `errcode` and HTTP `status`.
 */
export interface NetworkMatrix {
  /** The bridge bot's user id. */
  readonly botUserId: MatrixUserId;
  /** A state event's content, or undefined when the room has none. */
  getState<T = Record<string, unknown>>(roomId: MatrixRoomId, type: string, stateKey?: string): Promise<T | undefined>;
  /** Write a state event as the bot (it needs the power for it in the room). */
  setState(roomId: MatrixRoomId, type: string, stateKey: string, content: Record<string, unknown>): Promise<void>;
  /** A user's power level in a room, as the spec reads it from `m.room.power_levels` (0 when unreadable). */
  powerLevel(roomId: MatrixRoomId, userId: MatrixUserId): Promise<number>;
  /** The bot joins a room it was invited to or may join (e.g. one linked through the provisioning API). */
  join(roomId: MatrixRoomId): Promise<void>;
  invite(roomId: MatrixRoomId, userId: MatrixUserId): Promise<void>;
  /** Remove a user from a room as the bot (it needs the power to kick there), e.g. one who left the remote chat by a command. */
  kick(roomId: MatrixRoomId, userId: MatrixUserId, reason?: string): Promise<void>;
  /** Say something in a room as the bot (an `m.notice`). */
  notice(roomId: MatrixRoomId, text: string): Promise<void>;
  /**
   * Set the presence of a remote user's ghost, as the ghost (`PUT /presence/{ghost}/status`), with
   * `statusMsg` as its status message (none clears it). Only for a ghost the bridge has made already:
   * for any other user nothing is sent and it resolves false (presence alone registers nobody).
   * Homeservers time presence out (Synapse: a user who does not sync goes offline 30 s after their
   * last update), so a network keeping a ghost online says so again before then.
   */
  setPresence(remoteUser: RemoteUserId, presence: MatrixPresence, statusMsg?: string): Promise<boolean>;
  spaces: {
    /** Create a space the bot owns: only the bot changes it (it mirrors the remote side); anyone in it may invite. */
    create(opts: { name: string; topic?: string; avatarMxc?: string }): Promise<MatrixRoomId>;
    /**
     * Put a room in a space (`m.space.child` with `order`, lexicographic as the spec says) and, with
     * `parent`, point the room at the space (`m.space.parent`, canonical). Again with a new order moves it.
     */
    addChild(spaceId: MatrixRoomId, roomId: MatrixRoomId, opts?: { order?: string; parent?: boolean }): Promise<void>;
    /** Take a room out of a space. */
    removeChild(spaceId: MatrixRoomId, roomId: MatrixRoomId): Promise<void>;
  };
  /**
   * List a room in (or take it out of) the room list of one of this network's third-party
   * instances (`networkId` of {@link ThirdPartyProtocol.instances}): the homeserver's directory as a
   * client browses that instance, apart from the server's main list. Idempotent.
   */
  publishRoom(roomId: MatrixRoomId, networkId: string, listed: boolean): Promise<void>;
}

export interface PortalInfo extends PortalRef {
  network: string;
  name?: string;
  /** Network-specific data stored with the portal. */
  data: Record<string, unknown>;
}

export interface NetworkContext {
  log: Logger;
  /** This network's config section, validated by its own schema. */
  config: unknown;
  /** The Matrix server name ghosts and rooms live on. */
  domain: string;
  remote: RemoteEventSink;
  portals: {
    /** Portals of this network for a remote chat. */
    forChat(chat: RemoteChatId): PortalInfo[];
    /** Portals of this network in a Matrix room. */
    forRoom(roomId: MatrixRoomId): PortalInfo[];
    all(): PortalInfo[];
    /** Link a Matrix room to a remote chat of this network (what `link` does). */
    link(roomId: MatrixRoomId, chat: RemoteChatId, opts?: { kind?: PortalRef['kind']; name?: string; data?: Record<string, unknown> }): PortalInfo;
    unlink(roomId: MatrixRoomId, chat: RemoteChatId): boolean;
    /**
     * A remote chat now has another id (an IRC channel renamed): its links move to `to` (with `name`
     * as their name, if given), and so does the message map, so that replies, reactions and
     * deletions on the remote side still find the messages from before. Atomic.
     */
    moveChat(from: RemoteChatId, to: RemoteChatId, opts?: { name?: string }): void;
    /**
     * How a chat is described ({@link BridgeInfoCapable}) changed, e.g. it was renamed: core asks
     * again and updates its rooms' bridge info where it differs. Returns at once; never fails.
     */
    refreshBridgeInfo(chat: RemoteChatId): void;
  };
  /** This network's own key-value state (checkpoints, tokens...), persisted in core's store. */
  kv: {
    get(key: string): string | undefined;
    set(key: string, value: string): void;
    delete(key: string): void;
  };
  /** Run this network's own numbered migrations in core's database (owner = network id). */
  migrate(migrations: Migration[]): void;
  /** The shared database handle (better-sqlite3) for the network's own tables. */
  db: import('better-sqlite3').Database;
  /** Tell a Matrix user something (a notice in their admin room, created if needed). */
  notifyUser(userId: MatrixUserId, text: string): Promise<void>;
  /** Tell the bridge's admins (the user ids with `admin` in `permissions`) something that needs them. */
  notifyAdmins(text: string): Promise<void>;
  /** The Matrix id of the ghost of a remote user. */
  ghostUserId(remoteUser: RemoteUserId): MatrixUserId;
  /**
   * Is this remote message already bridged: is its id in the message map for this chat, in
   * either direction, any part, any room? For a network fetching what it missed (a remote
   * chat's history): a line it delivered before, or one a Matrix user sent out through the
   * bridge, must not come to Matrix again. Answers from the database at once.
   */
  bridged(chat: RemoteChatId, remoteId: RemoteMessageId): boolean;
  /** The remote user a ghost stands for, if the id is one of this network's ghosts the bridge made. */
  remoteUserOf(ghost: MatrixUserId): RemoteUserId | undefined;
  /**
   * Open (or find) a direct chat between a remote user's ghost and a Matrix user, e.g. for an
   * incoming private message. Concurrent calls for the same chat share one room.
   */
  openDirectChat(req: { chat: RemoteChatId; matrixUser: MatrixUserId; remoteUser: RemoteSender }): Promise<PortalInfo>;
  /** Create (or find) the portal room of a remote chat, e.g. for an admin `join` command. */
  openPortal(req: { chat: RemoteChatId; name?: string; topic?: string; alias?: string; invite?: MatrixUserId[] }): Promise<PortalInfo>;
  /** Upload a file to the media repository; returns its mxc:// URL and a public download URL. */
  uploadMedia(data: Buffer, contentType: string, filename: string): Promise<{ mxc: string; url: string }>;
  /** A public download URL for an mxc:// URL. */
  mediaUrl(mxc: string): string;
  /** The homeserver as the bridge bot: spaces, room state, invites, notices (see {@link NetworkMatrix}). */
  matrix: NetworkMatrix;
  /**
   * Core's Prometheus registry (prom-client), served at `/metrics`: a network registers its own
   * metrics here (named `trestle_<network>_...`). Absent where nothing serves metrics (unit tests).
   */
  metrics?: import('prom-client').Registry;
}

export interface Migration {
  /** 1, 2, 3... in order; never edit a shipped migration, add the next one. */
  version: number;
  /** Why this migration exists (kept in the file header and logged when it runs). */
  description: string;
  up: string | ((db: import('better-sqlite3').Database) => void);
}

/** What a network package exports as its default: a factory plus its config schema. */
export interface NetworkModule {
  id: string;
  /** zod schema of `networks.<id>`; core validates the section with it before `create`. */
  configSchema?: import('zod').ZodType;
  /** Build the connector; `id` is the key of its config section (`networks.<id>`), normally equal to `NetworkModule.id`. */
  create(config: unknown, id: string): NetworkConnector;
}

// ------------------------------------------------------------------ errors

/**
 * An error whose message is fit for the Matrix user, and which says how core should go on:
 *
 * - `permanent`: the remote network refused this message for good (e.g. "nick is banned from
 *   #channel", a missing permission). Not retried: the sender is told at once.
 * - `unreachable` (in `options`): the remote network did not answer at all or is down (connection
 *   refused or lost, a timeout, a 502/503/504 after the client library's own retries, not
 *   connected right now). The message waits at the head of its room, retried with the capped backoff, *without
 *   spending one of its `delivery.maxAttempts`*, for as long as the outage lasts (retried within
 *   seconds of its end if you implement {@link ReachabilityCapable}): giving it up would lose it
 *   for no fault of its own. Use it only where the network did not take a decision
 *   on the message; a refusal that merely might pass later is neither (plain retry, counted).
 * - neither: retried with backoff; after `delivery.maxAttempts` failures the sender is told in the
 *   room that the message did not reach the network.
 *
 * `permanent` wins if both are set.
 */
export class DeliveryError extends Error {
  /** The remote network did not answer or is down: retries do not count as attempts. */
  readonly unreachable: boolean;
  constructor(
    public readonly userMessage: string,
    public readonly permanent = false,
    options?: { cause?: unknown; unreachable?: boolean },
  ) {
    super(userMessage, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'DeliveryError';
    this.unreachable = options?.unreachable === true;
  }
}

// ------------------------------------------------------------------ capability detection

function has<K extends string>(n: object, key: K): n is Record<K, unknown> {
  return key in n && (n as Record<K, unknown>)[key] !== undefined;
}

export const supportsEdits = (n: NetworkConnector): n is NetworkConnector & EditCapable =>
  has(n, 'handleMatrixEdit');
export const supportsRedactions = (n: NetworkConnector): n is NetworkConnector & RedactionCapable =>
  has(n, 'handleMatrixRedaction');
export const supportsReactions = (n: NetworkConnector): n is NetworkConnector & ReactionCapable =>
  has(n, 'handleMatrixReaction');
export const supportsReplies = (n: NetworkConnector): n is NetworkConnector & ReplyCapable =>
  has(n, 'nativeReplies');
export const supportsTyping = (n: NetworkConnector): n is NetworkConnector & TypingCapable =>
  has(n, 'handleMatrixTyping');
export const supportsMatrixPresence = (n: NetworkConnector): n is NetworkConnector & PresenceOutCapable =>
  has(n, 'handleMatrixPresence');
export const supportsMembership = (n: NetworkConnector): n is NetworkConnector & MembershipCapable =>
  has(n, 'handleMatrixMembership');
export const supportsProfiles = (n: NetworkConnector): n is NetworkConnector & ProfileCapable =>
  has(n, 'handleMatrixProfile');
export const supportsRoomMeta = (n: NetworkConnector): n is NetworkConnector & RoomMetadataCapable =>
  has(n, 'handleMatrixRoomMeta');
export const supportsPowerLevels = (n: NetworkConnector): n is NetworkConnector & PowerLevelCapable =>
  has(n, 'handleMatrixPowerLevels');
export const supportsCommands = (n: NetworkConnector): n is NetworkConnector & CommandCapable =>
  has(n, 'commands');
export const supportsAliases = (n: NetworkConnector): n is NetworkConnector & AliasCapable =>
  has(n, 'portalForAlias');
export const supportsDirectChats = (n: NetworkConnector): n is NetworkConnector & DirectChatCapable =>
  has(n, 'directChatFor');
export const supportsLinkHook = (n: NetworkConnector): n is NetworkConnector & PortalLinkAware =>
  has(n, 'portalLinked');
export const supportsUnlinkHook = (n: NetworkConnector): n is NetworkConnector & Required<Pick<PortalLinkAware, 'portalUnlinked'>> =>
  has(n, 'portalUnlinked');
export const supportsReachability = (n: NetworkConnector): n is NetworkConnector & ReachabilityCapable =>
  has(n, 'reachable');
export const supportsBridgeInfo = (n: NetworkConnector): n is NetworkConnector & BridgeInfoCapable =>
  has(n, 'bridgeInfo');
export const supportsThirdParty = (n: NetworkConnector): n is NetworkConnector & ThirdPartyCapable =>
  has(n, 'thirdPartyProtocol');
export const supportsProvisioning = (n: NetworkConnector): n is NetworkConnector & ProvisioningCapable =>
  has(n, 'provisionLink');
