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
import { BUILTIN_NETWORKS } from '../network/load.js';

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
      .describe(
        'Path of the registration YAML file to give the homeserver. A relative path is resolved against the ' +
          'working directory the bridge is started in (not the folder of this file).',
      ),
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
    path: nonEmpty()
      .default('data/trestle.db')
      .describe(
        'Path of the SQLite database file. A relative path is resolved against the working directory the bridge ' +
          'is started in (not the folder of this file): start the bridge from the same directory every time, or ' +
          'give an absolute path, or it opens a new, empty database elsewhere.',
      ),
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
  // (on the record itself: the sample and reference, made from the input side, do not see through the transform)
  .meta({ examples: [{ 'example.org': 'user', '@admin:example.org': 'admin' }] })
  // The bridge looks users and servers up by key (`permissions[userId] ?? permissions[server]`). In a
  // plain object, a key nobody configured such as "constructor" or "toString" would find a method of
  // Object.prototype, a truthy value taken for a permission; an object without a prototype finds
  // nothing. (Serialising it is unaffected: JSON.stringify and YAML read own keys only.)
  .transform((levels): Record<string, PermissionLevel> => Object.assign(Object.create(null), levels))
  // prefault, not default: the default goes through the transform as well
  .prefault({})
  .describe(
    'Who may use the bridge. Keys are a user id (@alice:example.org), a server name (example.org) ' +
      'or "*" for everyone; values are "user" (may bridge) or "admin" (may also administer the bridge).',
  );

/**
 * Floors of the retry and reconnect waits (core's delivery, and the networks' reconnect sections).
 * Not tuning advice, only a guard against a busy loop: a first wait of 0 stays 0 however often it
 * doubles, and a ceiling of a few milliseconds retries flat out for as long as the peer is away.
 */
const MIN_INITIAL_BACKOFF_MS = 50;
const MIN_MAX_BACKOFF_MS = 1000;

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
    initialBackoffMs: z
      .int()
      .min(MIN_INITIAL_BACKOFF_MS)
      .default(500)
      .describe(
        `Wait before the first retry, in milliseconds. At least ${MIN_INITIAL_BACKOFF_MS}: with 0 the wait never grows ` +
          '(it doubles from 0), and a failing message would be retried in a tight loop.',
      ),
    maxBackoffMs: z
      .int()
      .min(MIN_MAX_BACKOFF_MS)
      .default(60_000)
      .describe(
        'Longest wait between retries, in milliseconds; the wait doubles after each retry. At least ' +
          `${MIN_MAX_BACKOFF_MS} (a second): it is how often each room retries while the homeserver or network is ` +
          'down, for as long as the outage lasts, and a shorter one floods the logs and the peer coming back.',
      ),
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

/**
 * What a network's name (its key under `networks:`) may be. The name is the prefix of its ghosts'
 * user ids and room aliases (`@<name>_…`), the owner of its tables' migrations and a metrics label,
 * so it must be valid in a Matrix localpart; and with no `_` in it, no network's prefix can start
 * another's (`irc` and `irc_x` would give `@irc_…` and `@irc_x_…`, one namespace inside the other).
 */
export const NETWORK_NAME = /^[a-z][a-z0-9]*$/;

/**
 * What to do instead of a second section of a built-in network, by module: each can serve many
 * servers from one section (a built-in network's tables exist once in the database, so it runs once).
 */
const ONE_SECTION_FIX: Record<string, (first: string, again: string) => string> = {
  '@trestle/irc': (first, again) =>
    `one section bridges any number of IRC servers: move the servers of networks.${again} under networks.${first}.servers`,
  '@trestle/discord': (first, again) =>
    `one section's bot bridges every Discord server (guild) it is invited to: invite the bot of networks.${first} ` +
    `there and remove networks.${again} (guilds: limits which servers it bridges)`,
};

/** The module a network section runs, as `loadNetworkModules` picks it: its `module`, else the built-in of its name. */
function moduleOf(name: string, section: Record<string, unknown>): string | undefined {
  return typeof section['module'] === 'string' ? section['module'] : BUILTIN_NETWORKS[name];
}

export const networksSchema = z
  .record(
    z.string().regex(NETWORK_NAME, {
      error: 'a network name must be a lowercase letter followed by lowercase letters and digits (no spaces, ' +
        '"_" or "-"), such as irc, libera or discord2: it becomes the prefix of its users\' Matrix ids',
    }),
    z.record(z.string(), z.unknown()),
  )
  .superRefine((networks, ctx) => {
    // Two sections running the same built-in module would both create its tables (irc_users, …):
    // the second fails at start with a migration error. A disabled section does not run.
    const firstOf = new Map<string, string>();
    for (const [name, section] of Object.entries(networks)) {
      // (with `when` below, sections that are not mappings reach here too: already reported)
      if (typeof section !== 'object' || section === null || Array.isArray(section)) continue;
      if (section['enabled'] === false) continue;
      const module = moduleOf(name, section);
      if (module === undefined || !Object.values(BUILTIN_NETWORKS).includes(module)) continue;
      const first = firstOf.get(module);
      if (first === undefined) {
        firstOf.set(module, name);
        continue;
      }
      const fix = ONE_SECTION_FIX[module]?.(first, name) ?? `merge it into networks.${first}`;
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `runs ${module}, as networks.${first} does, but a built-in network runs in one section only; ${fix}`,
      });
    }
  }, {
    // check the valid sections even when another is misnamed, so every problem is reported at once
    when: (payload) => typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value),
  })
  .default({})
  .describe(
    'Settings of each remote network, keyed by network name: a lowercase letter, then lowercase letters and ' +
      'digits (the name prefixes its users\' Matrix ids: @<name>_…). Each network validates its own section; ' +
      'a section with a "module" key belongs to a network loaded from that module (a relative module path is ' +
      'resolved against the folder of this file), and a built-in network (irc, discord) may have one section only.',
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
