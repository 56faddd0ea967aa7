/** Discord API failures as core understands them. */
import { DeliveryError } from '@trestle/core';
import { Routes, type REST } from 'discord.js';
import { discordStatus } from './webhooks.js';

/**
 * How a failed Discord API call should be retried:
 * - `refused`: Discord answered with a client error (4xx but 429): it will not take this call, ever.
 * - `unreachable`: Discord did not answer at all, or only that it is down: the connection was refused
 *   or lost, the request timed out, or a 502/503/504 (or Cloudflare's 52x) stayed after discord.js's
 *   own retries (it retries 5xx, resets and timeouts up to three times before throwing). A 500 is
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
