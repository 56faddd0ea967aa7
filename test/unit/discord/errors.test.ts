import { describe, expect, it } from 'vitest';
import { DiscordAPIError, HTTPError } from 'discord.js';
import { classifyLoginError } from '../../../packages/discord/src/client.js';
import { discordFailure, gatewayTrouble, toDeliveryError, troubleNotice, troubleOfLoginError } from '../../../packages/discord/src/errors.js';

const url = 'https://discord.com/api/v10/webhooks/1/tok';
const body = { body: { content: 'hi' } };
const httpError = (status: number, text: string) => new HTTPError(status, text, 'POST', url, body);
const apiError = (status: number, code: number, message: string) => new DiscordAPIError({ code, message }, code, status, 'POST', url, body);
const sysError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('discordFailure', () => {
  it.each([
    // what discord.js throws once its own retries are spent (5xx, reset, timeout) or the connection cannot be made
    ['503 after discord.js retries', httpError(503, 'Service Unavailable'), 'unreachable'],
    ['502', httpError(502, 'Bad Gateway'), 'unreachable'],
    ['504', httpError(504, 'Gateway Timeout'), 'unreachable'],
    ['522 (Cloudflare: Discord timed out)', httpError(522, 'Connection Timed Out'), 'unreachable'],
    ['500: this request may fail every time, so it is counted', httpError(500, 'Internal Server Error'), 'retry'],
    ['connection refused', sysError('ECONNREFUSED', 'connect ECONNREFUSED 162.159.128.233:443'), 'unreachable'],
    ['connection reset', sysError('ECONNRESET', 'read ECONNRESET'), 'unreachable'],
    ['DNS down', sysError('EAI_AGAIN', 'getaddrinfo EAI_AGAIN discord.com'), 'unreachable'],
    ['undici: socket closed', Object.assign(new Error('other side closed'), { name: 'SocketError', code: 'UND_ERR_SOCKET' }), 'unreachable'],
    ['undici: connect timeout', Object.assign(new Error('Connect Timeout Error'), { name: 'ConnectTimeoutError', code: 'UND_ERR_CONNECT_TIMEOUT' }), 'unreachable'],
    ['request timeout (discord.js aborts it)', Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }), 'unreachable'],
    ['fetch failed, refused underneath', new TypeError('fetch failed', { cause: sysError('ECONNREFUSED', 'connect ECONNREFUSED') }), 'unreachable'],
    ['refused on every address', Object.assign(new AggregateError([sysError('ECONNREFUSED', 'v4'), sysError('ECONNREFUSED', 'v6')]), { code: undefined }), 'unreachable'],
    // Discord answered: its decision stands
    ['403 missing permissions', apiError(403, 50013, 'Missing Permissions'), 'refused'],
    ['404 unknown webhook', apiError(404, 10015, 'Unknown Webhook'), 'refused'],
    ['400 invalid form body', apiError(400, 50035, 'Invalid Form Body'), 'refused'],
    ['429 passed on', apiError(429, 0, 'You are being rate limited.'), 'retry'],
    // anything else: retried, counted
    ['a plain error', new Error('something broke'), 'retry'],
    ['fetch failed for another reason', new TypeError('fetch failed', { cause: new Error('bad header') }), 'retry'],
    ['a string', 'weird', 'retry'],
  ] as const)('%s → %s', (_name, err, want) => {
    expect(discordFailure(err)).toBe(want);
  });

  it('makes DeliveryErrors that core waits out, gives up at once, or counts', () => {
    const down = toDeliveryError(httpError(503, 'Service Unavailable'), 'message');
    expect([down.permanent, down.unreachable, down.userMessage]).toEqual([false, true, 'Discord could not be reached for the message: Service Unavailable']);
    const refused = toDeliveryError(apiError(403, 50013, 'Missing Permissions'), 'edit');
    expect([refused.permanent, refused.unreachable, refused.userMessage]).toEqual([true, false, 'Discord refused the edit: Missing Permissions']);
    const other = toDeliveryError(new Error('something broke'), 'reaction');
    expect([other.permanent, other.unreachable]).toEqual([false, false]);
  });
});

describe('the gateway lost for good: what broke, in the admins\' words', () => {
  it.each([
    [4004, 'token'], [4014, 'intents'], [4013, 'invalid-intents'], [4010, 'sharding'], [4011, 'sharding'], [4012, 'version'], [4999, 'closed'],
  ])('close code %i is %s trouble', (code, trouble) => {
    expect(gatewayTrouble(code)).toBe(trouble);
  });

  it('reads a refused login as the same trouble as the close code behind it', () => {
    const said = (err: unknown): string => troubleOfLoginError(classifyLoginError(err, 'networks.discord').message);
    expect(said(Object.assign(new Error('An invalid token was provided.'), { code: 'TokenInvalid' }))).toBe('token');
    expect(said(new Error('Used disallowed intents'))).toBe('intents');
    expect(said(new Error('Used invalid intents'))).toBe('invalid-intents');
  });

  it('says what broke, what to change, what still works, and that it keeps trying', () => {
    const base = { configKey: 'networks.discord', privileged: ['Message Content Intent'], retryMaxMs: 60_000 };
    expect(troubleNotice({ ...base, trouble: 'intents', code: 4014, restWorks: true })).toBe('⚠ Discord refused the privileged intents the bridge ' +
      'asks for (gateway close code 4014), so nothing said on Discord reaches Matrix now. In the Discord developer portal, open your application → ' +
      'Bot → Privileged Gateway Intents and enable "Message Content Intent": the bridge picks that up without a restart. Or turn off in networks.discord ' +
      'what you do not want (messageContentIntent, serverMembersIntent, presence) and restart the bridge. Matrix → Discord may still work: it goes ' +
      'through the channels\' webhooks. The bridge keeps trying to connect (every 60 s at most) and says so here when it is back.');
    const token = troubleNotice({ ...base, trouble: 'token', restWorks: false });
    expect(token).toMatch(/^⚠ Discord refused the bridge's bot token \(networks\.discord\.token\), so nothing/);
    expect(token).toMatch(/restart the bridge: it reads the token only when it starts/);
    expect(token).toMatch(/Matrix messages for Discord wait, and go once the bridge is connected again\./);
  });
});
