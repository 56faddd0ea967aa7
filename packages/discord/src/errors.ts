/** Discord API failures as core understands them. */
import { DeliveryError } from '@trestle/core';
import { GatewayCloseCodes, Routes, type REST } from 'discord.js';
import { discordStatus } from './webhooks.js';

/**
 * How a failed Discord API call should be retried:
 * - `refused`: Discord answered with a client error (4xx but 429): it will not take this call, ever.
 * - `unreachable`: Discord did not answer at all, or only that it is down: the connection was refused
 *   or lost, the request timed out, or a 502/503/504 (or Cloudflare's 52x) stayed after discord.js's
 *   own retries (it retries 5xx, resets and timeouts up to three times before throwing; not for the
 *   webhook posts, which are tried once and looked for on Discord before another try: webhooks.ts). A 500 is
 *   not: it may be this request's own, every time, and would then hold its room for good. Core waits such an outage out without
 *   spending the message's attempts.
 * - `retry`: anything else (a 429 that discord.js passed on, an unexpected error): retried, counted.
 */
export type DiscordFailure = 'refused' | 'unreachable' | 'retry';

/**
 * Error codes of a request that got no answer: Node's socket and DNS errors, and undici's (what
 * @discordjs/rest makes its requests with) for a closed socket or a timeout.
 */
const NO_ANSWER = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'ENOTFOUND', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_ABORTED',
]);

/** Did the request get no answer? Looks through `cause` (fetch's "fetch failed") and `errors` (a connect to several addresses). */
function noAnswer(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 4) return false;
  const e = err as { name?: unknown; code?: unknown; cause?: unknown; errors?: unknown };
  // discord.js aborts a request after its timeout (15 s by default) and throws the AbortError after its retries
  if (e.name === 'AbortError' || (typeof e.code === 'string' && NO_ANSWER.has(e.code))) return true;
  if (Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every((x) => noAnswer(x, depth + 1))) return true;
  return noAnswer(e.cause, depth + 1);
}

/** Classify a failed Discord API call (pure: looks only at the error). */
export function discordFailure(err: unknown): DiscordFailure {
  const status = discordStatus(err);
  if (typeof status === 'number') {
    // down or not reachable behind its proxies: 502/503/504 and Cloudflare's 520-527. A 500 is an error
    // in handling this request, which may come back every time: counted, so it cannot hold its room for good
    if (status === 502 || status === 503 || status === 504 || (status >= 520 && status <= 527)) return 'unreachable';
    return status >= 400 && status < 500 && status !== 429 ? 'refused' : 'retry';
  }
  return noAnswer(err) ? 'unreachable' : 'retry';
}

/** A Discord API failure as core understands it: a client error is permanent, an outage waits, the rest is retried. */
export function toDeliveryError(err: unknown, what: string): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const failure = discordFailure(err);
  const said = failure === 'refused' ? 'refused' : failure === 'unreachable' ? 'could not be reached for' : 'did not take';
  return new DeliveryError(`Discord ${said} the ${what}: ${message}`, failure === 'refused', { cause: err, unreachable: failure === 'unreachable' });
}

/** The error for a call made while the bridge has no Discord client: an outage, waited out like one. */
export const notConnected = (): DeliveryError =>
  new DeliveryError('the bridge is not connected to Discord right now', false, { unreachable: true });

/**
 * Does Discord answer now? One light call (`GET /users/@me`) through the bot's REST client, the way
 * deliveries go, judged as their failures are: anything but an outage ({@link discordFailure}'s
 * `unreachable`: no answer, a 502/503/504) is an answer, a refusal included. Never throws; gives up
 * after `timeoutMs` (false: no answer), discord.js's own retries of a 5xx included.
 */
export async function discordAnswers(rest: REST, timeoutMs: number): Promise<boolean> {
  try {
    await rest.get(Routes.user(), { signal: AbortSignal.timeout(timeoutMs) });
    return true;
  } catch (err) {
    return discordFailure(err) !== 'unreachable';
  }
}

// ------------------------------------------------------------------ the gateway lost for good

/**
 * Why the bridge has no gateway session and cannot get one by retrying alone: what the admins must change.
 * - `token`: Discord refused the bot token (close code 4004, or 401 on login).
 * - `intents`: Discord refused the privileged intents the bridge asks for (4014): switches in the developer portal.
 * - `invalid-intents`: Discord called the intents invalid (4013): a bug, not a setting.
 * - `sharding`: Discord wants the connection split in shards (4010, 4011), which the bridge does not do.
 * - `version`: Discord no longer takes the gateway version discord.js speaks (4012).
 * - `closed`: any other close discord.js does not reconnect from.
 */
export type GatewayTrouble = 'token' | 'intents' | 'invalid-intents' | 'sharding' | 'version' | 'closed';

/** The trouble a gateway close code after which discord.js does not reconnect (`shardDisconnect`) stands for. */
export function gatewayTrouble(code: number): GatewayTrouble {
  switch (code) {
    case GatewayCloseCodes.AuthenticationFailed: return 'token';
    case GatewayCloseCodes.DisallowedIntents: return 'intents';
    case GatewayCloseCodes.InvalidIntents: return 'invalid-intents';
    case GatewayCloseCodes.InvalidShard: case GatewayCloseCodes.ShardingRequired: return 'sharding';
    case GatewayCloseCodes.InvalidAPIVersion: return 'version';
    default: return 'closed';
  }
}

/** The trouble a refused login (client.ts's DiscordLoginError, whose message says what it was) stands for. */
export function troubleOfLoginError(message: string): GatewayTrouble {
  if (/bot token/i.test(message)) return 'token';
  if (/4014|privileged intents/i.test(message)) return 'intents';
  if (/4013|invalid intents/i.test(message)) return 'invalid-intents';
  return 'closed';
}

/** What the admins are told when the bridge loses its gateway session for good, and what they can do about it. */
export interface TroubleNotice {
  trouble: GatewayTrouble;
  /** The close code, when Discord closed a session (none for a refused login). */
  code?: number;
  /** `networks.<id>`, for the settings named. */
  configKey: string;
  /** The privileged intents the bridge asks for, as the developer portal names them. */
  privileged: string[];
  /** Whether the bridge still has a client whose REST calls Discord takes (Matrix → Discord goes on through the webhooks). */
  restWorks: boolean;
  /** The longest pause between two logins tried meanwhile. */
  retryMaxMs: number;
}

/**
 * The notice for the admins (plain words: what broke, what to change, what still works), said once per
 * cause while the bridge is not connected; {@link RECONNECTED_NOTICE} follows when it is back.
 */
export function troubleNotice(n: TroubleNotice): string {
  const code = n.code !== undefined ? ` (gateway close code ${n.code})` : '';
  const k = n.configKey;
  let what: string;
  let todo: string;
  switch (n.trouble) {
    case 'token':
      what = `Discord refused the bridge's bot token (${k}.token)${code}`;
      todo = 'Copy the token again from the Discord developer portal (your application → Bot → Reset Token), put it in ' +
        `${k}.token and restart the bridge: it reads the token only when it starts. (If Discord refused a token that is right, ` +
        'the bridge gets back on its own.)';
      break;
    case 'intents': {
      const asked = n.privileged.length ? n.privileged.map((i) => `"${i}"`).join(', ') : 'the privileged intents';
      what = `Discord refused the privileged intents the bridge asks for${code}`;
      todo = `In the Discord developer portal, open your application → Bot → Privileged Gateway Intents and enable ${asked}: ` +
        `the bridge picks that up without a restart. Or turn off in ${k} what you do not want (messageContentIntent, ` +
        'serverMembersIntent, presence) and restart the bridge.';
      break;
    }
    case 'invalid-intents':
      what = `Discord called the intents the bridge asks for invalid${code}`;
      todo = 'No setting changes that: it is a fault in the bridge or the discord.js it uses. Update the bridge.';
      break;
    case 'sharding':
      what = `Discord wants the bot's gateway connection split into shards${code}, which the bridge does not do`;
      todo = 'Discord asks for that once a bot is in more than 2,500 servers: take the bot out of the servers it does not bridge.';
      break;
    case 'version':
      what = `Discord no longer accepts the gateway version the bridge speaks${code}`;
      todo = 'Update the bridge.';
      break;
    default:
      what = `Discord closed the bridge's gateway connection${code} and would not let it reconnect`;
      todo = 'Look at the bridge\'s log and at Discord\'s status page.';
  }
  const matrixSide = n.restWorks
    ? 'Matrix → Discord may still work: it goes through the channels\' webhooks.'
    : 'Matrix messages for Discord wait, and go once the bridge is connected again.';
  return `⚠ ${what}, so nothing said on Discord reaches Matrix now. ${todo} ${matrixSide} The bridge keeps trying to connect ` +
    `(every ${Math.max(1, Math.round(n.retryMaxMs / 1000))} s at most) and says so here when it is back.`;
}

/** Told to the admins when the bridge is connected again after a {@link troubleNotice}. */
export const RECONNECTED_NOTICE = '✅ The bridge is reconnected to Discord: what is said there reaches Matrix again, starting with ' +
  'what was said while it was away.';
