/**
 * What the IRC e2e suites share: starting the bridge on the suite's config (with overrides for the
 * `test` IRC server), IRC users on ergo, and plumbed rooms. Each suite file starts its own bridge.
 */
import { execFileSync } from 'node:child_process';
import { createLogger, loadEverything, TrestleBridge, type DeliveryConfig, type TrestleConfig } from '@trestle/core';
import { IrcUser } from '../harness/irc-user.js';
import { MatrixUser, type MatrixEventJson } from '../harness/matrix-user.js';
import { e2e, until } from './env.js';

export const ircPort = Number(process.env['TRESTLE_E2E_IRC_PORT'] ?? 0);
export const body = (e: MatrixEventJson): string => String(e.content['body'] ?? '');
export const ghost = (nick: string): string => `@irc_test_${nick.toLowerCase()}:localhost`;
/** A raw IRC line as the harness records it, without its tags and line ending: `:nick!user@host COMMAND ...`. */
export const untag = (line: string): string => line.trimEnd().replace(/^@\S+ /, '');

/**
 * Restart the suite's ergo with these extra settings (dotted keys, one per line; none: as e2e.sh
 * starts it), and `env` for ergo-up.sh (e.g. ERGO_IPV6=1).
 */
export function restartErgo(settings = '', env: Record<string, string> = {}): void {
  const work = process.env['TRESTLE_E2E_ERGO_WORK']!;
  execFileSync('bash', ['test/harness/ergo-down.sh', work, String(ircPort)], { stdio: 'ignore' });
  execFileSync('bash', ['test/harness/ergo-up.sh', work, String(ircPort)], { stdio: 'ignore', env: { ...process.env, ...env, ERGO_EXTRA_SETTINGS: settings } });
}

/** Have the running ergo rehash its config written again with `settings` (clients stay connected). */
export function rehashErgo(settings = ''): void {
  const work = process.env['TRESTLE_E2E_ERGO_WORK']!;
  execFileSync('bash', ['test/harness/ergo-up.sh', work, String(ircPort)], { stdio: 'ignore', env: { ...process.env, ERGO_EXTRA_SETTINGS: settings, ERGO_REHASH: '1' } });
}

/** IRC users on ergo (or the server on `port`), remembered so the suite can make them all quit at the end. */
export class IrcUsers {
  readonly all: IrcUser[] = [];
  constructor(private readonly port = ircPort) {}
  async add(nick: string, channels: string[] = [], caps: string[] = []): Promise<IrcUser> {
    if (!this.port) throw new Error('TRESTLE_E2E_IRC_PORT is not set: run through test/harness/e2e.sh');
    const u = new IrcUser('127.0.0.1', this.port, nick, caps);
    this.all.push(u);
    await u.connect();
    for (const c of channels) await u.join(c);
    return u;
  }
  /** An IRC operator (ergo's `admin` oper of the harness) in `channels`. */
  async addOper(nick: string, channels: string[] = []): Promise<IrcUser> {
    const u = await this.add(nick, channels);
    u.client.raw('OPER admin oper-pass');
    await u.waitForRaw((l) => / 381 /.test(l));
    return u;
  }
  quitAll(): void { for (const u of this.all) u.quit(); }
}

/** A room `admin` creates, with the bridge's bot invited, joined and made room admin: ready to link. */
export async function roomWithBot(admin: MatrixUser, botId: string, name: string): Promise<string> {
  const roomId = await admin.createRoom({ name });
  await admin.invite(roomId, botId);
  await until(async () => (await admin.joinedMembers(roomId)).includes(botId), 'the bot to join');
  await admin.setPowerLevel(roomId, botId, 100); // as a room admin does, so the bridge can sync topic and membership
  return roomId;
}

/**
 * A DM room of `user` with the bridge's bot (its admin room, once the bot has said so), and `ask`:
 * say a command there and get the bot's first answer after it that `expected` accepts.
 */
export async function adminRoom(user: MatrixUser, botId: string): Promise<{ roomId: string; ask: (cmd: string, expected: (b: string) => boolean) => Promise<string> }> {
  const roomId = await user.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [botId] });
  await user.waitForEvent(roomId, (e) => e.sender === botId && body(e).includes('admin room'));
  const ask = async (cmd: string, expected: (b: string) => boolean): Promise<string> => {
    const since = Date.now();
    await user.sendText(roomId, cmd);
    return body(await user.waitForEvent(roomId, (e) => e.sender === botId && e.origin_server_ts >= since && expected(body(e))));
  };
  return { roomId, ask };
}

/** A room `admin` creates and links to `channel` with the in-room `link` command. */
export async function plumbedRoom(admin: MatrixUser, botId: string, channel: string): Promise<string> {
  const roomId = await roomWithBot(admin, botId, `plumbed ${channel}`);
  await admin.sendText(roomId, `!trestle link irc test/${channel}`);
  await admin.waitForEvent(roomId, (e) => e.sender === botId && body(e).startsWith('Linked this room'));
  return roomId;
}

/**
 * Start the bridge on the suite's config, with `server` overriding keys of the `test` IRC server,
 * `delivery` keys of the queue's retry policy and `network` keys of the `irc` section (`ident`...);
 * `tweak` changes anything else of the config.
 */
export async function startIrcBridge(
  server: Record<string, unknown> = {}, delivery: Partial<DeliveryConfig> = {}, network: Record<string, unknown> = {},
  tweak?: (config: TrestleConfig) => void,
): Promise<TrestleBridge> {
  const { config, modules } = await loadEverything(e2e.config);
  config.delivery = { ...config.delivery, ...delivery };
  tweak?.(config);
  const sections = config.networks as Record<string, Record<string, unknown>>;
  const servers = sections['irc']!['servers'] as Record<string, Record<string, unknown>>;
  sections['irc'] = { ...sections['irc'], ...network, servers: { ...servers, test: { ...servers['test'], ...server } } };
  // the IRC suites run without the fake Discord: a Discord network would only log that it cannot connect
  const networks = [...modules].filter(([id]) => id !== 'discord').map(([id, m]) => m.create(sections[id], id));
  const b = new TrestleBridge(config, networks, { log: createLogger({ level: config.logging.level, format: 'pretty' }) });
  await b.start();
  return b;
}

/**
 * A suite's start: the bridge, its bot's id, and a fresh Matrix user (localpart `<prefix><time>`).
 * Give each suite's user a display name of its own: an earlier suite may have registered its
 * user's nick with NickServ, and ergo then keeps that nick for the account. `server` overrides keys
 * of the `test` IRC server, as in {@link startIrcBridge}.
 */
export async function startSuite(prefix: string, displayName = 'Alice', server: Record<string, unknown> = {}): Promise<{ bridge: TrestleBridge; botId: string; user: MatrixUser }> {
  if (!ircPort) throw new Error('TRESTLE_E2E_IRC_PORT is not set: run through test/harness/e2e.sh');
  const bridge = await startIrcBridge(server);
  const user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `${prefix}${Date.now()}`, { displayName });
  return { bridge, botId: bridge.matrix.botUserId, user };
}
