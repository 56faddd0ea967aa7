/**
 * A fake Discord for tests: REST API v10 and the v10 gateway on 127.0.0.1, close enough to the real
 * thing that an unmodified discord.js v14 Client logs in and works against it. The only client option
 * that changes is `rest: { api: fake.apiUrl, cdn: fake.cdnUrl }` (discord.js finds the gateway through
 * `GET /gateway/bot`). Tests build the world (guilds, channels, users), play the humans
 * (`injectUserMessage`, `addReaction`, `injectTyping`, `setPresence`, `updateMember`, `kickMember`, `banMember`, `deleteChannel`, `removeBot`, ...),
 * inject trouble (`failNext`, `failNextWebhookAfterStoring`, `forceReconnect`, `disconnectGateway`, `setGuildUnavailable`,
 * `setEchoOrder`, the privileged-intent switches, `tokenRefused`) and inspect what the bot did (`messages`,
 * `webhookExecutions`, `requests`).
 *
 *   const fake = new FakeDiscord();
 *   const guild = fake.addGuild({ name: 'G' });
 *   const general = fake.addChannel(guild.id, { name: 'general' });
 *   const { apiUrl, cdnUrl } = await fake.start();
 *   const client = new Client({ intents, rest: { api: apiUrl, cdn: cdnUrl } });
 *   await client.login(fake.token);
 *
 * Facts about discord.js this encodes are written next to the code that depends on them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  MessageType, PermissionFlagsBits, PollLayoutType, type APIAuditLogEntry, type APIOverwrite, type APIEmbed, type APIEmoji, type APIGuild, type APIGuildMember, type APIMessage, type APIPartialEmoji,
  type APIRole, type APISticker, type APIUser, type StickerFormatType,
} from 'discord-api-types/v10';
import type { EchoOrder, FakeSettings, UploadedFile } from './common.js';
import { Gateway, type GatewayStats } from './gateway.js';
import { RestServer, type FailOptions, type NoAnswer, type RequestRecord } from './rest.js';
import { discordRoutes, type WebhookExecution } from './routes.js';
import { World, type ChannelKind, type GuildChannel, type ModAction, type PresenceChange, type StoredWebhook } from './state.js';

export type { EchoOrder, UploadedFile } from './common.js';
export type { FailOptions, NoAnswer, RequestRecord } from './rest.js';
export type { WebhookExecution } from './routes.js';
export type { ChannelKind, GuildChannel, ModAction, PresenceChange } from './state.js';
export type { GatewayStats } from './gateway.js';

export interface FakeDiscordOptions {
  /** Default 'fake-bot-token'. */
  token?: string;
  botUsername?: string;
  /** HELLO's heartbeat_interval; default 41250 as on Discord. */
  heartbeatIntervalMs?: number;
  echoOrder?: EchoOrder;
  /** Gap kept between a write's echo and its response (default 15 ms). */
  echoDelayMs?: number;
  /** Gets one line per request / gateway event; default silent. */
  log?: (line: string) => void;
}

/** Extras for an injected user message. */
export interface InjectOptions {
  files?: UploadedFile[];
  /** Id of the message this one replies to. */
  replyTo?: string;
  /** Ids of the guild's stickers (addSticker) the message holds. */
  stickers?: string[];
  /** Embeds, as a bot or webhook posts them (type `rich`) or as Discord makes them for links. */
  embeds?: APIEmbed[];
  /** A poll (the message's content may be empty): its question and answers, plain or with a unicode emoji. */
  poll?: { question: string; answers: (string | { text: string; emoji: string })[]; multiselect?: boolean };
}

export class FakeDiscord {
  readonly token: string;
  private readonly settings: FakeSettings;
  private readonly world: World;
  private readonly gateway: Gateway;
  private readonly rest: RestServer;
  private readonly executions: WebhookExecution[] = [];
  private server: Server | undefined;
  private base = '';

  constructor(opts: FakeDiscordOptions = {}) {
    const log = opts.log ?? (() => {});
    this.token = opts.token ?? 'fake-bot-token';
    this.settings = {
      token: this.token, messageContentIntent: true, guildMembersIntent: true, presenceIntent: true,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 41_250, echoOrder: opts.echoOrder ?? 'gateway-first',
      echoDelayMs: opts.echoDelayMs ?? 15,
    };
    // The world sends events through the gateway; the gateway reads the world to build READY and chunks.
    let gateway: Gateway | undefined;
    this.world = new World(this.settings, { dispatch: (t, d, intent, redact) => gateway?.dispatch(t, d, intent, redact) },
      opts.botUsername ?? 'trestle-bot');
    this.gateway = gateway = new Gateway(this.world, this.settings, log);
    this.rest = new RestServer(discordRoutes(this.world, this.settings, this.executions, () => this.gatewayUrl), this.world,
      this.gateway, this.settings, log);
  }

  // ---------- lifecycle ----------

  /** Listen on 127.0.0.1 (`port` 0: any free port). */
  async start(port = 0): Promise<{ apiUrl: string; cdnUrl: string }> {
    if (this.server) throw new Error('fake-discord: already started');
    const server = createServer((req, res) => {
      this.rest.handle(req, res).catch((e: unknown) => {
        // A bug in the fake, not a simulated failure: say so loudly (discord.js would only see a retried 500).
        console.error('[fake-discord] handler crashed', e);
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: '500: Internal Server Error', code: 0 }));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.world.apiUrl = this.apiUrl;
    this.world.cdnUrl = this.cdnUrl;
    this.gateway.attach(server, this.gatewayUrl);
    return { apiUrl: this.apiUrl, cdnUrl: this.cdnUrl };
  }

  /** Drop every connection and stop listening. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.gateway.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** `rest.api` for discord.js. */
  get apiUrl(): string {
    return `${this.base}/api`;
  }

  /** `rest.cdn` for discord.js; uploaded attachments are served under it too. */
  get cdnUrl(): string {
    return `${this.base}/cdn`;
  }

  get gatewayUrl(): string {
    return this.base.replace(/^http/, 'ws') + '/gateway';
  }

  // ---------- developer-portal switches and behaviour ----------

  /** The MessageContent privileged intent in the developer portal. Off: IDENTIFY asking for it closes with 4014,
   *  and REST reads blank other people's message content. Sessions without the intent always get blank content. */
  get messageContentIntent(): boolean {
    return this.settings.messageContentIntent;
  }

  set messageContentIntent(on: boolean) {
    this.settings.messageContentIntent = on;
  }

  /** The GuildMembers privileged intent in the developer portal (off: IDENTIFY asking for it closes with 4014). */
  get guildMembersIntent(): boolean {
    return this.settings.guildMembersIntent;
  }

  set guildMembersIntent(on: boolean) {
    this.settings.guildMembersIntent = on;
  }

  /** The GuildPresences privileged intent in the developer portal. */
  get presenceIntent(): boolean {
    return this.settings.presenceIntent;
  }

  set presenceIntent(on: boolean) {
    this.settings.presenceIntent = on;
  }

  /**
   * The bot token refused, as after a Reset Token in the developer portal: while on, the token the bot has
   * (`token`) gets 401 from REST and a gateway close with 4004 at IDENTIFY and RESUME. Off: taken again.
   */
  get tokenRefused(): boolean {
    return this.settings.token !== this.token;
  }

  set tokenRefused(on: boolean) {
    this.settings.token = on ? `${this.token}-reset` : this.token;
  }

  /** Whether a REST write's gateway echo reaches the client before ('gateway-first') or after its HTTP response. */
  setEchoOrder(order: EchoOrder): void {
    this.settings.echoOrder = order;
  }

  // ---------- building the world ----------

  /** The bot's own user. */
  get bot(): APIUser {
    return this.world.bot;
  }

  addUser(opts: { username: string; globalName?: string | null; bot?: boolean; avatar?: UploadedFile }): APIUser {
    return this.world.addUser(opts);
  }

  /** A guild with the bot in it (holding an Administrator role). After start, the bot "joins": GUILD_CREATE. */
  addGuild(opts: { name: string; ownerId?: string }): APIGuild {
    return this.world.addGuild(opts).guild;
  }

  /**
   * Text (default), announcement, category, or thread (PublicThread/PrivateThread/AnnouncementThread, needs parentId).
   * `permissionOverwrites` as Discord keeps them on the channel: `{ id, type, allow, deny }` (type 0 a role,
   * 1 a member; the @everyone role's id is the guild id), e.g. a staff channel denies @everyone View Channel.
   */
  addChannel(guildId: string, opts: { name: string; type?: ChannelKind; parentId?: string | null; topic?: string | null;
    ownerId?: string; permissionOverwrites?: APIOverwrite[] }): GuildChannel {
    return this.world.addChannel(guildId, opts);
  }

  /** A channel or thread is deleted (as a member with Manage Channels does it): CHANNEL_DELETE (THREAD_DELETE for a thread). */
  deleteChannel(channelId: string): void {
    this.world.deleteChannel(channelId);
  }

  /** The guild's owner removes the bot from the guild: GUILD_DELETE without `unavailable`. */
  removeBot(guildId: string): void {
    this.world.removeBot(guildId);
  }

  /** A Discord outage makes a guild unavailable (GUILD_DELETE with `unavailable: true`), or ends (GUILD_CREATE). */
  setGuildUnavailable(guildId: string, unavailable: boolean): void {
    this.world.setGuildUnavailable(guildId, unavailable);
  }

  addMember(guildId: string, userId: string, opts: { roles?: string[]; nick?: string | null } = {}): APIGuildMember {
    return this.world.addMember(guildId, userId, opts);
  }

  /** A moderator changes a member's roles (the whole list) or nickname: GUILD_MEMBER_UPDATE, to sessions with the GuildMembers intent. */
  updateMember(guildId: string, userId: string, patch: { roles?: string[]; nick?: string | null }): APIGuildMember {
    return this.world.updateMember(guildId, userId, patch);
  }

  addRole(guildId: string, opts: { name: string; permissions?: string; color?: number; mentionable?: boolean }): APIRole {
    return this.world.addRole(guildId, opts);
  }

  /** A custom emoji; `image` is served at `${cdnUrl}/emojis/<id>.<any extension>`. */
  addEmoji(guildId: string, opts: { name: string; animated?: boolean; image?: UploadedFile }): APIEmoji {
    return this.world.addEmoji(guildId, opts);
  }

  /** A guild sticker; `image` is served at `${cdnUrl}/stickers/<id>.<any extension>` (Lottie ones have none). */
  addSticker(guildId: string, opts: { name: string; formatType: StickerFormatType; image?: UploadedFile }): APISticker {
    return this.world.addSticker(guildId, opts);
  }

  /** The guild's name or icon changes (as its owner would do it): GUILD_UPDATE. */
  updateGuild(guildId: string, patch: { name?: string; icon?: UploadedFile | null }): APIGuild {
    return this.world.updateGuild(guildId, patch);
  }

  /** A role's name or permissions change: GUILD_ROLE_UPDATE. */
  updateRole(guildId: string, roleId: string, patch: { name?: string; permissions?: string }): APIRole {
    return this.world.updateRole(guildId, roleId, patch);
  }

  /** The role every guild gives the bot (Administrator unless changed with updateRole). */
  botRole(guildId: string): APIRole {
    const rec = this.world.guildRecord(guildId);
    const id = rec.members.get(this.world.bot.id)?.roles[0];
    const role = rec.guild.roles.find((r) => r.id === id);
    if (!role) throw new Error(`fake-discord: the bot has no role in guild ${guildId}`);
    return role;
  }

  // ---------- playing the humans ----------

  /** A human posts in a channel or thread: stored, and MESSAGE_CREATE goes out. */
  injectUserMessage(channelId: string, userId: string, content: string, opts: InjectOptions = {}): APIMessage {
    const poll = opts.poll && {
      question: { text: opts.poll.question },
      answers: opts.poll.answers.map((a, i) => ({ answer_id: i + 1, poll_media: typeof a === 'string' ? { text: a } : { text: a.text, emoji: { id: null, name: a.emoji } } })),
      expiry: new Date(Date.now() + 24 * 3600_000).toISOString(), allow_multiselect: opts.poll.multiselect ?? false, layout_type: PollLayoutType.Default,
      results: { is_finalized: false, answer_counts: [] },
    };
    const stored = this.world.createMessage({ channelId, author: this.world.user(userId), content, files: opts.files ?? [],
      ...(opts.replyTo ? { replyTo: opts.replyTo } : {}), ...(opts.stickers ? { stickerIds: opts.stickers } : {}), ...(poll ? { poll } : {}),
      ...(opts.embeds ? { embeds: opts.embeds } : {}) });
    return this.world.wireMessage(stored);
  }

  /** A human forwards a message (of any channel the bot sees) into a channel: a content-less message with its snapshot. */
  forwardMessage(channelId: string, userId: string, messageId: string): APIMessage {
    return this.world.wireMessage(this.world.createMessage({ channelId, author: this.world.user(userId), content: '', forwardOf: messageId }));
  }

  /**
   * A poll ends: Discord's system message (type POLL_RESULT) from the poll's author, whose embed
   * (type `poll_result`) names the question, the top answer and the votes in fields.
   */
  endPoll(channelId: string, pollMessageId: string, result: { top?: string; topVotes?: number; totalVotes: number }): APIMessage {
    const poll = this.world.message(pollMessageId, channelId).msg;
    const field = (name: string, value: string): { name: string; value: string; inline: boolean } => ({ name, value, inline: false });
    const stored = this.world.createMessage({
      channelId, author: poll.author, content: '', system: { type: MessageType.PollResult, refersTo: pollMessageId },
      embeds: [{ type: 'poll_result' as APIEmbed['type'], fields: [
        field('poll_question_text', poll.poll?.question.text ?? ''), field('total_votes', String(result.totalVotes)),
        ...(result.top ? [field('victor_answer_text', result.top), field('victor_answer_votes', String(result.topVotes ?? 0))] : []),
      ] }],
    });
    return this.world.wireMessage(stored);
  }

  /** A human edits their message: MESSAGE_UPDATE. */
  editUserMessage(channelId: string, messageId: string, content: string): APIMessage {
    return this.world.wireMessage(this.world.editMessage(this.world.message(messageId, channelId), { content }));
  }

  /** A message is deleted (by its author or a moderator): MESSAGE_DELETE. */
  deleteUserMessage(channelId: string, messageId: string): void {
    this.world.deleteMessage(this.world.message(messageId, channelId));
  }

  /** `emoji`: unicode text, or a custom emoji of the guild (`{ id }` or `'name:id'`). */
  addReaction(channelId: string, messageId: string, userId: string, emoji: string | Pick<APIPartialEmoji, 'id'>): void {
    const stored = this.world.message(messageId, channelId);
    this.world.addReaction(stored, this.world.user(userId).id, this.resolveEmoji(emoji, stored.guildId));
  }

  removeReaction(channelId: string, messageId: string, userId: string, emoji: string | Pick<APIPartialEmoji, 'id'>): void {
    const stored = this.world.message(messageId, channelId);
    this.world.removeReaction(stored, userId, this.resolveEmoji(emoji, stored.guildId));
  }

  /** A member leaves the guild on their own: GUILD_MEMBER_REMOVE (no audit-log entry). */
  memberLeaves(guildId: string, userId: string): void {
    this.world.removeMember(guildId, userId, 'leave');
  }

  /** A moderator (`by`, a user id) kicks a member: GUILD_MEMBER_REMOVE, then the audit-log entry. */
  kickMember(guildId: string, userId: string, act: ModAction = {}): void {
    if (act.by) this.world.requirePermission(guildId, act.by, PermissionFlagsBits.KickMembers);
    this.world.removeMember(guildId, userId, 'kick', act);
  }

  /** A moderator bans a user: GUILD_BAN_ADD, GUILD_MEMBER_REMOVE (if a member), then the audit-log entry. */
  banMember(guildId: string, userId: string, act: ModAction = {}): void {
    if (act.by) this.world.requirePermission(guildId, act.by, PermissionFlagsBits.BanMembers);
    this.world.removeMember(guildId, userId, 'ban', act);
  }

  /** A moderator lifts a ban: GUILD_BAN_REMOVE and the audit-log entry. */
  unbanMember(guildId: string, userId: string, act: ModAction = {}): void {
    if (act.by) this.world.requirePermission(guildId, act.by, PermissionFlagsBits.BanMembers);
    this.world.unban(guildId, userId, act);
  }

  /** A human starts typing: TYPING_START. */
  injectTyping(channelId: string, userId: string): void {
    this.world.typing(channelId, userId);
  }

  /**
   * A member's status or activities change: PRESENCE_UPDATE, only to sessions with the GuildPresences intent.
   * The guild keeps it: sessions that start later find it in GUILD_CREATE's `presences` (until set offline).
   */
  setPresence(guildId: string, userId: string, change: PresenceChange): void {
    this.world.presence(guildId, userId, change);
  }

  // ---------- trouble ----------

  /**
   * Make the next request(s) matching `route` fail: 429 (with Retry-After; `global` for a global limit) or any
   * other status, e.g. 500. `route`: `'POST /channels/:id/messages'` (method optional) or a RegExp tested
   * against `'METHOD /path'` (path without `/api/v10`). `{ forMs }` makes it an outage: all of them, for a time.
   * `status` 'hang' leaves the request unanswered, 'reset' closes its connection (see NoAnswer); `{ afterHandling }`
   * carries the request out before failing its answer.
   */
  failNext(route: string | RegExp, status: number | NoAnswer, opts: FailOptions = {}): void {
    this.rest.failNext(route, status, opts);
  }

  /**
   * The next webhook execute(s) (`times`, default 1; or all for `forMs`) store their message, and its
   * MESSAGE_CREATE goes out, but the answer fails, as when Discord took a message and its answer was
   * lost: '500' answers 500 Internal Server Error, 'hang' never answers (the client times out), 'reset'
   * closes the connection. A bridge that posts again shows the message twice.
   */
  failNextWebhookAfterStoring(how: '500' | NoAnswer, opts: Pick<FailOptions, 'times' | 'forMs'> = {}): void {
    this.rest.failNext('POST /webhooks/:webhook/:token', how === '500' ? 500 : how, { ...opts, afterHandling: true });
  }

  /**
   * Op 7 RECONNECT to every connected session. Resolves when their sockets have closed, i.e. while the client
   * is reconnecting: events caused now are buffered and replayed after its RESUME.
   */
  forceReconnect(): Promise<void> {
    return this.gateway.forceReconnect();
  }

  /**
   * Close every gateway socket with `code` (default 4000, resumable), as a network outage would. A code Discord
   * closes with for good (4004 token refused, 4010-4014: sharding, API version, intents) ends the sessions:
   * discord.js emits `shardDisconnect` and does not reconnect. Pair it with the matching switch
   * (`tokenRefused`, the intent switches) for the client's next login to be refused too.
   */
  disconnectGateway(code?: number): Promise<void> {
    return this.gateway.disconnectAll(code);
  }

  // ---------- inspection ----------

  /** Messages in a channel or thread, oldest first, as REST would return them. */
  messages(channelId: string): APIMessage[] {
    return [...this.world.messages.values()].filter((m) => m.msg.channel_id === channelId).map((m) => this.world.wireMessage(m));
  }

  /** A message by id, or undefined once deleted. */
  message(messageId: string): APIMessage | undefined {
    const stored = this.world.messages.get(messageId);
    return stored && this.world.wireMessage(stored);
  }

  channel(channelId: string): GuildChannel | undefined {
    return this.world.channels.get(channelId);
  }

  /** A guild member, or undefined when the user is not (or no longer) in the guild. */
  member(guildId: string, userId: string): APIGuildMember | undefined {
    return this.world.guildRecord(guildId).members.get(userId);
  }

  /** The guild's bans: user id → reason. */
  bans(guildId: string): Map<string, string | null> {
    return new Map([...this.world.guildRecord(guildId).bans].map(([id, b]) => [id, b.reason]));
  }

  /** The guild's audit log, oldest first. */
  auditLog(guildId: string): readonly APIAuditLogEntry[] {
    return this.world.guildRecord(guildId).auditLog;
  }

  /** Webhooks of a channel (or all), with their tokens. */
  webhooks(channelId?: string): StoredWebhook[] {
    return [...this.world.webhooks.values()].filter((w) => channelId === undefined || w.channel_id === channelId);
  }

  /** Every webhook execution, in order, with the username and avatar URL the bridge asked for. */
  get webhookExecutions(): readonly WebhookExecution[] {
    return this.executions;
  }

  /** Every REST request, in arrival order, with the status the fake answered. */
  get requests(): readonly RequestRecord[] {
    return this.rest.requests;
  }

  /** Gateway counters: connections, identifies, resumes, heartbeats, replayed events, close codes sent. */
  get gatewayStats(): Readonly<GatewayStats> {
    return this.gateway.stats;
  }

  private resolveEmoji(emoji: string | Pick<APIPartialEmoji, 'id'>, guildId: string | undefined): APIPartialEmoji {
    if (typeof emoji !== 'string') {
      const found = guildId ? this.world.guilds.get(guildId)?.guild.emojis.find((e) => e.id === emoji.id) : undefined;
      if (!found) throw new Error(`fake-discord: no emoji ${emoji.id ?? 'null'} in guild ${guildId ?? '(none)'}`);
      return { id: found.id, name: found.name, animated: found.animated ?? false };
    }
    return this.world.emoji(emoji, guildId);
  }
}

