/**
 * The discord.js client: which intents and partials the bridge needs, and logging in with errors
 * sorted into the ones that will not get better by retrying (a refused token, refused intents),
 * reported with what to do about them, and the ones that will (Discord unreachable).
 */
import { Client, Events, GatewayIntentBits as I, Partials } from 'discord.js';
import type { DiscordConfig } from './config.js';

/** A login that retrying cannot fix; the message says what the admin should do. */
export class DiscordLoginError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DiscordLoginError';
  }
}

export function createClient(cfg: Pick<DiscordConfig, 'messageContentIntent' | 'serverMembersIntent' | 'presence' | 'restUrl' | 'cdnUrl'>): Client {
  // GuildModeration: bans and audit-log entries (kicks); not privileged
  const intents = [I.Guilds, I.GuildMessages, I.GuildMessageReactions, I.GuildMessageTyping, I.GuildWebhooks, I.GuildExpressions, I.GuildModeration];
  if (cfg.messageContentIntent) intents.push(I.MessageContent);
  if (cfg.serverMembersIntent) intents.push(I.GuildMembers); // members leaving, kicked
  if (cfg.presence) intents.push(I.GuildPresences); // privileged: only when presence is bridged
  return new Client({
    intents,
    // Edits, deletions and reactions of messages from before the bridge started arrive as partials.
    partials: [Partials.Message, Partials.Channel, Partials.Reaction, Partials.User, Partials.GuildMember],
    rest: { ...(cfg.restUrl ? { api: cfg.restUrl } : {}), ...(cfg.cdnUrl ? { cdn: cfg.cdnUrl } : {}) },
    // Nothing the bot itself sends pings anyone unless a call says otherwise.
    allowedMentions: { parse: [], repliedUser: false },
  });
}

/** Turn a login failure into a {@link DiscordLoginError} if retrying cannot help; else return it as is. */
export function classifyLoginError(err: unknown, configKey: string): Error {
  const e = err as { code?: unknown; status?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (e?.code === 'TokenInvalid' || e?.status === 401 || /authentication failed|invalid token/i.test(message)) {
    return new DiscordLoginError(`Discord refused the bot token (${configKey}.token). Copy it again from the Discord developer ` +
      'portal (your application → Bot → Reset Token).', { cause: err });
  }
  if (/disallowed intents/i.test(message)) {
    return new DiscordLoginError('Discord refused the privileged intents the bridge asks for (gateway close code 4014). In the Discord ' +
      'developer portal, open your application → Bot → Privileged Gateway Intents and enable "Message Content Intent" and "Server ' +
      `Members Intent"; or set ${configKey}.messageContentIntent: false (the bridge then cannot read what Discord users write) or ` +
      `${configKey}.serverMembersIntent: false (it then does not see members leave or get kicked). With ${configKey}.presence: true ` +
      'enable "Presence Intent" as well, or turn presence off.', { cause: err });
  }
  if (/invalid intents/i.test(message)) {
    return new DiscordLoginError(`Discord refused the intents the bridge asks for (gateway close code 4013): ${message}`, { cause: err });
  }
  return err instanceof Error ? err : new Error(message);
}

/** Log in and wait until the client is ready (guilds and channels cached). */
export async function login(client: Client, token: string, configKey: string, readyTimeoutMs = 60_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onReady: (() => void) | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = (): void => resolve();
    client.once(Events.ClientReady, onReady);
    timer = setTimeout(() => reject(new Error(`Discord did not get ready within ${readyTimeoutMs / 1000} s`)), readyTimeoutMs);
  });
  ready.catch(() => undefined); // awaited below; not an unhandled rejection if login fails first
  try {
    await client.login(token);
    await ready;
  } catch (err) {
    throw classifyLoginError(err, configKey);
  } finally {
    clearTimeout(timer);
    if (onReady) client.off(Events.ClientReady, onReady);
  }
}
