/**
 * The configuration schema of core: one zod schema per section, and the types inferred from them.
 *
 * Each field's `.describe()` text becomes its comment in the generated sample config
 * (`config/trestle.sample.yaml`) and its row in the config reference, and `examples` metadata
 * becomes the sample value of a field that has no default. Core sections are strict objects, so
 * a misspelt key is reported instead of silently ignored. Network sections are only checked to
 * be mappings here: each network package validates its own section (see `parseConfig`).
 */
import { z } from 'zod';

/** A Matrix server name: a DNS name, IPv4 address or bracketed IPv6 address, with an optional port. */
const SERVER_NAME = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?)(?::\d{1,5})?$/;
/** A Matrix user id, `@localpart:server.name` (historical localparts allow most printable ASCII). */
const USER_ID = /^@[\x21-\x39\x3B-\x7E]+:(.+)$/;
/** The characters the Matrix spec allows in a new user id's localpart. */
const LOCALPART = /^[a-z0-9._=\-/+]+$/;

/** Whether `value` is a plausible Matrix server name, such as `example.org` or `localhost:8448`. */
function isServerName(value: string): boolean {
  return SERVER_NAME.test(value);
}

/**
 * Whether `value` looks like a real server name rather than a slip: a dotted name, `localhost` or
 * an IP literal. A bare word such as `alice` is a valid host name, but as a permissions key it is
 * far more likely a user id missing its `@` and server.
 */
function isPlausibleServerName(value: string): boolean {
  const host = value.replace(/:\d+$/, '');
  return isServerName(value) && (host.includes('.') || host === 'localhost' || host.startsWith('['));
}

/** Whether `value` is a Matrix user id such as `@alice:example.org`. */
function isUserId(value: string): boolean {
  const server = USER_ID.exec(value)?.[1];
  return server !== undefined && isServerName(server);
}

const httpUrl = () => z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });
const nonEmpty = () => z.string().min(1);

export const homeserverSchema = z
  .strictObject({
    url: httpUrl()
      .meta({ examples: ['http://127.0.0.1:8008'] })
      .describe('URL the bridge uses to reach the homeserver client-server API.'),
    domain: z
      .string()
      .regex(SERVER_NAME, { error: 'must be a server name such as example.org' })
      .meta({ examples: ['example.org'] })
      .describe('Server name of the homeserver: the part after the colon in user ids.'),
  })
  .describe('The Matrix homeserver the bridge is registered with.');

export const appserviceSchema = z
  .strictObject({
    id: nonEmpty().default('trestle').describe('Application service id, unique on the homeserver.'),
    bindAddress: nonEmpty()
      .default('127.0.0.1')
      .describe('Address the application-service HTTP listener binds to.'),
    port: z.int().min(1).max(65535).default(9000).describe('Port the application-service HTTP listener binds to.'),
    url: httpUrl()
      .optional()
      .meta({ examples: ['http://127.0.0.1:9000'] })
      .describe('URL the homeserver uses to reach the bridge; defaults to http://<bindAddress>:<port>.'),
    registration: nonEmpty()
      .default('registration/trestle-registration.yaml')
      .describe('Path of the registration YAML file to give the homeserver.'),
    botLocalpart: z
      .string()
      .regex(LOCALPART, { error: 'must contain only a-z, 0-9 and . _ = - / +' })
      .default('trestle')
      .describe("Localpart of the bridge bot's user id."),
    publicUrl: httpUrl()
      .optional()
      .meta({ examples: ['https://bridge.example.org'] })
      .describe(
        'URL where people on the remote networks can reach this bridge\'s HTTP listener: media links ' +
          '(files, long messages) point here. Defaults to appservice.url.',
      ),
  })
  .describe('How the bridge registers and listens as an application service.');

export const databaseSchema = z
  .strictObject({
    path: nonEmpty().default('data/trestle.db').describe('Path of the SQLite database file.'),
  })
  .describe('Where the bridge keeps its state.');

/**
 * `presenceRefreshSeconds` of a network that mirrors remote presence to ghosts (core's
 * GhostPresences): one field, one wording, for every network that has it.
 */
export const presenceRefreshSecondsSchema = z.int().min(0).default(25)
  .describe('With presence on: how often the presence of ghosts that are not offline is said again, as homeservers turn ' +
    'users who never sync offline after a while (Synapse: 30 s). 0 = never.');

export const permissionLevelSchema = z.enum(['user', 'admin']);

const permissionKeySchema = z.string().refine((key) => key === '*' || isUserId(key) || isPlausibleServerName(key), {
  error: 'key must be "*", a user id such as @alice:example.org or a server name such as example.org',
});

export const permissionsSchema = z
  .record(permissionKeySchema, permissionLevelSchema)
  .default({})
  .meta({ examples: [{ 'example.org': 'user', '@admin:example.org': 'admin' }] })
  .describe(
    'Who may use the bridge. Keys are a user id (@alice:example.org), a server name (example.org) ' +
      'or "*" for everyone; values are "user" (may bridge) or "admin" (may also administer the bridge).',
  );

export const deliverySchema = z
  .strictObject({
    maxAttempts: z
      .int()
      .min(1)
      .default(8)
      .describe(
        'How many times a message is tried before its sender is told it was not delivered. Tries that ' +
          'find the homeserver or the remote network unreachable (down, not answering) do not count: a ' +
          'message waits out an outage however long.',
      ),
    initialBackoffMs: z.int().min(0).default(500).describe('Wait before the first retry, in milliseconds.'),
    maxBackoffMs: z
      .int()
      .min(0)
      .default(60_000)
      .describe('Longest wait between retries, in milliseconds; the wait doubles after each retry.'),
  })
  .superRefine((delivery, ctx) => {
    if (delivery.maxBackoffMs < delivery.initialBackoffMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxBackoffMs'],
        message: `must be at least initialBackoffMs (${delivery.initialBackoffMs})`,
      });
    }
  })
  .describe('Retry policy for messages that fail to deliver.');

export const loggingSchema = z
  .strictObject({
    level: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Minimum level of messages to log.'),
    format: z
      .enum(['pretty', 'json'])
      .default('pretty')
      .describe('"pretty" for people reading a terminal, "json" for log collectors.'),
  })
  .describe('Logging.');

export const metricsSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Expose Prometheus metrics.'),
  })
  .describe('Prometheus metrics.');

export const provisioningSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Serve the provisioning API used by integration managers.'),
    secret: nonEmpty()
      .optional()
      .meta({ examples: ['change-me-to-a-long-random-string'] })
      .describe('Shared secret clients of the provisioning API send; required when it is enabled.'),
  })
  .superRefine((provisioning, ctx) => {
    if (provisioning.enabled && provisioning.secret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: 'is required when provisioning.enabled is true' });
    }
  })
  .describe('Provisioning API.');

export const bridgeInfoSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Announce each link of a room in its state (MSC2346 `m.bridge` and `uk.half-shot.bridge` events), ' +
          'which clients show in the room settings ("Bridges"). Best effort: a room where the bot may not ' +
          'set state is bridged without it.',
      ),
  })
  .describe('Bridge info state events in bridged rooms.');

export const networksSchema = z
  .record(z.string(), z.record(z.string(), z.unknown()))
  .default({})
  .describe(
    'Settings of each remote network, keyed by network name. Each network validates its own section; ' +
      'a section with a "module" key belongs to a network loaded from that module.',
  );

/** The whole configuration file. Sections other than `homeserver` may be left out. */
export const coreConfigSchema = z.strictObject({
  homeserver: homeserverSchema,
  appservice: appserviceSchema.prefault({}),
  database: databaseSchema.prefault({}),
  permissions: permissionsSchema,
  delivery: deliverySchema.prefault({}),
  logging: loggingSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  provisioning: provisioningSchema.prefault({}),
  bridgeInfo: bridgeInfoSchema.prefault({}),
  networks: networksSchema,
});

/** Schemas of the network sections, keyed by network name (the key under `networks:`). */
export type NetworkSchemas = Record<string, z.ZodType>;

/** The validated configuration, with defaults applied. */
export type TrestleConfig = z.infer<typeof coreConfigSchema>;
/** The configuration as written in the file, before defaults are applied. */
export type TrestleConfigInput = z.input<typeof coreConfigSchema>;
export type HomeserverConfig = z.infer<typeof homeserverSchema>;
export type AppserviceConfig = z.infer<typeof appserviceSchema>;
export type DatabaseConfig = z.infer<typeof databaseSchema>;
export type PermissionLevel = z.infer<typeof permissionLevelSchema>;
export type PermissionsConfig = z.infer<typeof permissionsSchema>;
export type DeliveryConfig = z.infer<typeof deliverySchema>;
export type LoggingConfig = z.infer<typeof loggingSchema>;
export type MetricsConfig = z.infer<typeof metricsSchema>;
export type ProvisioningConfig = z.infer<typeof provisioningSchema>;
export type BridgeInfoConfig = z.infer<typeof bridgeInfoSchema>;
export type NetworksConfig = z.infer<typeof networksSchema>;

/** The URL the homeserver uses to reach the bridge: `appservice.url`, or one derived from the listener. */
export function appserviceUrl(appservice: AppserviceConfig): string {
  if (appservice.url !== undefined) return appservice.url;
  const address = appservice.bindAddress;
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return `http://${host}:${appservice.port}`;
}
