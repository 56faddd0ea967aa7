/** Types and small pieces the fake's parts (world, gateway, REST) share. */
import type { GatewayDispatchEvents, GatewayDispatchPayload } from 'discord-api-types/v10';

/** Settings of the fake, shared by reference between its parts and changed by tests at run time. */
export interface FakeSettings {
  /** The bot token; REST needs `Authorization: Bot <token>`, IDENTIFY/RESUME need it too. */
  token: string;
  /** The developer-portal switches for privileged intents. Requesting a disabled one closes the gateway with 4014. */
  messageContentIntent: boolean;
  guildMembersIntent: boolean;
  presenceIntent: boolean;
  /** Sent in HELLO. discord.js sends its first heartbeat after a random fraction of it. */
  heartbeatIntervalMs: number;
  /** Whether a REST write's gateway echo reaches the client before or after its HTTP response. */
  echoOrder: EchoOrder;
  /** How far apart the echo and the response are kept, so the client sees them in the chosen order. */
  echoDelayMs: number;
}

/** Real Discord guarantees neither order; a bridge must cope with both. */
export type EchoOrder = 'gateway-first' | 'http-first';

/** The `d` of a dispatch payload whose `t` is `E`, as discord-api-types declares it. */
export type DispatchData<E extends GatewayDispatchEvents> = GatewayDispatchPayload extends infer P
  ? P extends { t: infer T; d: infer D }
    ? E extends T
      ? D
      : never
    : never
  : never;

/**
 * Per-session rewrite of an event (e.g. blanking message content for a session without the intent); `largeThreshold`
 * is the session's IDENTIFY `large_threshold` (see World.guildCreatePayload).
 */
export type Redactor<D> = (d: D, sessionIntents: number, largeThreshold: number) => D;

/** Where the world sends the events its changes cause: the gateway, which fans them out to sessions. */
export interface EventSink {
  /** Send `t` to every session whose intents include `intent` (0: every session). */
  dispatch<E extends GatewayDispatchEvents>(t: E, d: DispatchData<E>, intent: number, redact?: Redactor<DispatchData<E>>): void;
}

/** A file uploaded in a multipart request (`files[N]`), or attached to an injected user message. */
export interface UploadedFile {
  name: string;
  data: Buffer;
  contentType?: string;
}

/** A Discord API error: the JSON body is `{ message, code, errors? }` with Discord's own message text. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    readonly discordMessage: string,
    detail?: string,
    readonly errors?: Record<string, unknown>,
  ) {
    super(detail ? `${discordMessage} (${detail})` : discordMessage);
    this.name = 'ApiError';
  }

  body(): Record<string, unknown> {
    return { message: this.discordMessage, code: this.code, ...(this.errors ? { errors: this.errors } : {}) };
  }
}

/** The 400 "Invalid Form Body" Discord returns for a bad field, in its nested `errors` shape. */
export function formError(field: string, code: string, message: string): ApiError {
  return new ApiError(400, 50035, 'Invalid Form Body', `${field}: ${message}`, {
    [field]: { _errors: [{ code, message }] },
  });
}
