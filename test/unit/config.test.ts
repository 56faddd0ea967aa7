import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { builtinNetworkSchemas, readmeWithReference } from '../../packages/core/src/config/gen-sample.js';
import { tempDir } from './temp.js';
import {
  appserviceUrl,
  ConfigError,
  generateSample,
  loadConfig,
  parseConfig,
  renderConfigReference,
  renderSampleConfig,
  SAMPLE_CONFIG_PATH,
  sampleFileContents,
} from '../../packages/core/src/config/index.js';

const minimal = { homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' } };

/** A stand-in for a network package's own config section. */
const fakeIrcSchema = z
  .strictObject({
    servers: z
      .record(
        z.string(),
        z.strictObject({
          host: z.string().describe('Host name of the IRC server.'),
          port: z.int().min(1).max(65535).default(6697).describe('Port of the IRC server.'),
          nicks: z.array(z.string()).default([]).describe('Nicks to try, in order.'),
        }),
      )
      .meta({ examples: [{ libera: { host: 'irc.libera.chat' } }] })
      .describe('IRC servers to bridge, by name.'),
    mode: z.enum(['relay', 'puppet']).default('puppet').describe('How Matrix users appear on IRC.'),
  })
  .describe('The IRC network.');

/** Runs `fn`, which must throw a ConfigError, and returns that error's problems. */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

describe('parseConfig', () => {
  it('applies every default to a minimal config', () => {
    expect(parseConfig(minimal)).toEqual({
      homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' },
      appservice: {
        id: 'trestle',
        bindAddress: '127.0.0.1',
        port: 9000,
        registration: 'registration/trestle-registration.yaml',
        botLocalpart: 'trestle',
      },
      database: { path: 'data/trestle.db' },
      permissions: {},
      delivery: { maxAttempts: 8, initialBackoffMs: 500, maxBackoffMs: 60000 },
      logging: { level: 'info', format: 'pretty' },
      metrics: { enabled: true },
      provisioning: { enabled: false },
      bridgeInfo: { enabled: true },
      networks: {},
    });
  });

  it('keeps given values, fills in the rest of a section, and treats an empty section as absent', () => {
    const config = parseConfig({ ...minimal, appservice: { port: 29320 }, logging: { format: 'json' }, metrics: null });
    expect(config.appservice.port).toBe(29320);
    expect(config.appservice.id).toBe('trestle');
    expect(config.logging).toEqual({ level: 'info', format: 'json' });
    expect(config.metrics).toEqual({ enabled: true });
  });

  it('derives the appservice URL from the listener when it is not set', () => {
    expect(appserviceUrl(parseConfig(minimal).appservice)).toBe('http://127.0.0.1:9000');
    expect(appserviceUrl(parseConfig({ ...minimal, appservice: { bindAddress: '::1', port: 1234 } }).appservice)).toBe(
      'http://[::1]:1234',
    );
    const explicit = parseConfig({ ...minimal, appservice: { url: 'https://bridge.example.org' } });
    expect(appserviceUrl(explicit.appservice)).toBe('https://bridge.example.org');
  });

  it('reports every problem at once, one dotted path per line', () => {
    const raw = {
      homeserver: { url: 'ftp://example.org' },
      appservice: { port: 70000, bindAddress: 42 },
      logging: { level: 'verbose' },
      delivery: { maxAttempts: 0, initialBackoffMs: 1.5 },
    };
    let error: unknown;
    try {
      parseConfig(raw);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    expect(problems).toEqual([
      'homeserver.url: must be an http:// or https:// URL',
      'homeserver.domain: is required',
      'appservice.bindAddress: must be a string',
      'appservice.port: must be at most 65535',
      'delivery.maxAttempts: must be at least 1',
      'delivery.initialBackoffMs: must be an integer',
      'logging.level: must be one of: debug, info, warn, error',
    ]);
    expect(message.split('\n')).toEqual(['7 configuration problems:', ...problems.map((p) => `  ${p}`)]);
  });

  it('reports a missing homeserver section and a config that is not a mapping', () => {
    expect(problemsOf(() => parseConfig({}))).toEqual(['homeserver: is required']);
    expect(problemsOf(() => parseConfig(['homeserver']))).toEqual(['(top level): must be a mapping']);
  });

  it('reports misspelt keys in core sections and at the top level', () => {
    expect(problemsOf(() => parseConfig({ ...minimal, appservice: { prot: 9000 }, logLevel: 'debug' }))).toEqual([
      'appservice.prot: unknown key',
      'logLevel: unknown key',
    ]);
  });

  it('accepts "*", user ids and server names as permission keys, and rejects anything else', () => {
    const permissions = {
      '*': 'user',
      'example.org': 'user',
      'matrix.example.org:8448': 'user',
      localhost: 'user',
      '@admin:example.org': 'admin',
    } as const;
    expect(parseConfig({ ...minimal, permissions }).permissions).toEqual(permissions);

    const keyProblem =
      'key must be "*", a user id such as @alice:example.org or a server name such as example.org';
    const problems = problemsOf(() =>
      parseConfig({
        ...minimal,
        permissions: { alice: 'user', '@bob': 'admin', 'carol@example.org': 'user', '@dave:example.org': 'root' },
      }),
    );
    expect(problems).toEqual([
      `permissions.alice: ${keyProblem}`,
      `permissions.@bob: ${keyProblem}`,
      `permissions.carol@example.org: ${keyProblem}`,
      'permissions.@dave:example.org: must be one of: user, admin',
    ]);
  });

  it('requires a provisioning secret only when provisioning is enabled', () => {
    expect(parseConfig({ ...minimal, provisioning: { enabled: false } }).provisioning.enabled).toBe(false);
    expect(problemsOf(() => parseConfig({ ...minimal, provisioning: { enabled: true } }))).toEqual([
      'provisioning.secret: is required when provisioning.enabled is true',
    ]);
    const config = parseConfig({ ...minimal, provisioning: { enabled: true, secret: 's3cret' } });
    expect(config.provisioning).toEqual({ enabled: true, secret: 's3cret' });
  });

  it('rejects a backoff ceiling below the first backoff', () => {
    expect(problemsOf(() => parseConfig({ ...minimal, delivery: { initialBackoffMs: 5000, maxBackoffMs: 2000 } }))).toEqual(
      ['delivery.maxBackoffMs: must be at least initialBackoffMs (5000)'],
    );
  });
});

describe('parseConfig with network sections', () => {
  it('validates each network with its own schema and returns it with defaults applied', () => {
    const config = parseConfig(
      { ...minimal, networks: { irc: { servers: { libera: { host: 'irc.libera.chat' } } } } },
      { irc: fakeIrcSchema },
    );
    expect(config.networks['irc']).toEqual({
      servers: { libera: { host: 'irc.libera.chat', port: 6697, nicks: [] } },
      mode: 'puppet',
    });
  });

  it('reports nested network problems with full paths, array indexes included, alongside core ones', () => {
    const problems = problemsOf(() =>
      parseConfig(
        {
          homeserver: { url: 'http://127.0.0.1:8008' },
          networks: {
            irc: {
              servers: { libera: { host: 'irc.libera.chat', port: 66.5, nicks: ['trestle', 7], tls: true } },
              mode: 'ghost',
            },
          },
        },
        { irc: fakeIrcSchema },
      ),
    );
    expect(problems).toEqual([
      'homeserver.domain: is required',
      'networks.irc.servers.libera.port: must be an integer',
      'networks.irc.servers.libera.nicks.1: must be a string',
      'networks.irc.servers.libera.tls: unknown key',
      'networks.irc.mode: must be one of: relay, puppet',
    ]);
  });

  it('rejects a network nobody knows, but leaves one that names its module to the caller', () => {
    const known = { irc: fakeIrcSchema, discord: z.object({}) };
    expect(problemsOf(() => parseConfig({ ...minimal, networks: { slack: { token: 'x' } } }, known))).toEqual([
      'networks.slack: unknown network (known: discord, irc)',
    ]);
    expect(problemsOf(() => parseConfig({ ...minimal, networks: { slack: {} } }))).toEqual([
      'networks.slack: unknown network (known: none)',
    ]);
    const external = { module: '@example/trestle-slack', token: 'x' };
    expect(parseConfig({ ...minimal, networks: { slack: external } }, known).networks['slack']).toEqual(external);
  });

  it('reports a network section that is not a mapping once', () => {
    expect(problemsOf(() => parseConfig({ ...minimal, networks: { irc: 'yes' } }, { irc: fakeIrcSchema }))).toEqual([
      'networks.irc: must be a mapping',
    ]);
  });
});

describe('loadConfig', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  function writeConfig(text: string): string {
    dir = tempDir('trestle-config-');
    const path = join(dir, 'trestle.yaml');
    writeFileSync(path, text);
    return path;
  }

  it('reads and validates a YAML file', () => {
    const path = writeConfig('homeserver:\n  url: http://127.0.0.1:8008\n  domain: example.org\nlogging:\n  level: debug\n');
    const config = loadConfig(path);
    expect(config.logging.level).toBe('debug');
    expect(config.homeserver.domain).toBe('example.org');
  });

  it('names the file and lists problems found in it', () => {
    const path = writeConfig('homeserver:\n  url: http://127.0.0.1:8008\n  domain: example.org\nmetrics:\n  enabled: yes\n');
    expect(() => loadConfig(path)).toThrow(`Configuration problem in ${path}:\n  metrics.enabled: must be true or false`);
  });

  it('reports a YAML syntax error with its line number', () => {
    const path = writeConfig('homeserver:\n  url: http://127.0.0.1:8008\n  domain: [example.org\nlogging: {}\n');
    const problems = problemsOf(() => loadConfig(path));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^line 4, column 1: YAML syntax error: \S/);
    expect(problems[0]).not.toContain('\n');
  });

  it('reports duplicate keys as a YAML error', () => {
    const path = writeConfig('homeserver:\n  url: http://127.0.0.1:8008\n  url: http://other\n');
    expect(problemsOf(() => loadConfig(path))[0]).toMatch(/^line 3, column 3: YAML syntax error: Map keys must be unique/);
  });

  it('reports a missing file clearly', () => {
    const missing = join(tmpdir(), 'trestle-no-such-dir', 'trestle.yaml');
    let error: unknown;
    try {
      loadConfig(missing);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).source).toBe(missing);
    expect((error as ConfigError).message).toMatch(new RegExp(`in ${missing}:\\n  file not found`));
  });

  it('rejects a file whose top level is not a mapping, or that is empty', () => {
    expect(problemsOf(() => loadConfig(writeConfig('- homeserver\n- appservice\n')))).toEqual([
      'the top level must be a mapping of sections (homeserver:, appservice:, …), not a list',
    ]);
    expect(problemsOf(() => loadConfig(writeConfig('# nothing here\n')))).toEqual([
      'the file is empty; it needs at least a homeserver section',
    ]);
  });
});

describe('sample config', () => {
  it('parses without problems and carries the documented defaults', () => {
    const sample = renderSampleConfig();
    const config = parseConfig(parse(sample));
    expect(config.homeserver).toEqual({ url: 'http://127.0.0.1:8008', domain: 'example.org' });
    expect(config.permissions).toEqual({ 'example.org': 'user', '@admin:example.org': 'admin' });
    expect(config.appservice.port).toBe(9000);
  });

  it('comments every key with its description and comments out optional keys without a default', () => {
    const sample = renderSampleConfig();
    expect(sample).toContain('  # Port the application-service HTTP listener binds to.\n  port: 9000\n');
    expect(sample).toContain('\n  # url: http://127.0.0.1:9000\n');
    expect(sample).toContain('\n  # secret: change-me-to-a-long-random-string\n');
    expect(sample).toContain('  # One of: debug, info, warn, error.\n  level: info\n');
    expect(sample).toContain('\nnetworks: {}\n');
  });

  it('includes network sections from their schemas, still parses, and does not depend on their order', () => {
    const other = z.strictObject({ token: z.string().meta({ examples: ['abc'] }).describe('Bot token.') });
    const sample = renderSampleConfig({ irc: fakeIrcSchema, other });
    expect(sample).toBe(renderSampleConfig({ other, irc: fakeIrcSchema }));
    expect(sample).toContain('  # The IRC network.\n  irc:\n    # IRC servers to bridge, by name.\n');
    expect(sample).toContain('    servers:\n      libera:\n        host: irc.libera.chat\n');
    const config = parseConfig(parse(sample), { irc: fakeIrcSchema, other });
    expect(config.networks).toEqual({
      irc: { servers: { libera: { host: 'irc.libera.chat', port: 6697, nicks: [] } }, mode: 'puppet' },
      other: { token: 'abc' },
    });
  });

  it('is the committed config/trestle.sample.yaml (regenerate with npm run gen:config)', async () => {
    const committed = readFileSync(resolve(process.cwd(), SAMPLE_CONFIG_PATH), 'utf8');
    // the installed built-in networks' sections, as `npm run gen:config` renders them (needs a build)
    const schemas = await builtinNetworkSchemas();
    expect(Object.keys(schemas)).toContain('irc');
    expect(committed).toBe(sampleFileContents(schemas));
    expect(committed.endsWith(renderSampleConfig(schemas))).toBe(true);
    const readme = readFileSync(resolve(process.cwd(), 'README.md'), 'utf8');
    expect(readme).toContain('### Config reference');
    expect(readmeWithReference(readme, schemas)).toBe(readme);
    expect(committed).toMatch(/^# Trestle sample configuration\.\n#\n# GENERATED /);
  });

  it('generateSample writes the file, then reports it unchanged; --check mode only compares', () => {
    const root = tempDir('trestle-sample-');
    try {
      expect(generateSample({}, { root, check: true }).changed).toBe(true);
      const written = generateSample({}, { root });
      expect(written).toEqual({ path: join(root, SAMPLE_CONFIG_PATH), changed: true });
      expect(readFileSync(written.path, 'utf8')).toBe(sampleFileContents());
      expect(generateSample({}, { root, check: true }).changed).toBe(false);
      writeFileSync(written.path, `${sampleFileContents()}# edited by hand\n`);
      expect(generateSample({}, { root, check: true }).changed).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('renderConfigReference', () => {
  it('renders one Markdown row per key with type, default and description', () => {
    const reference = renderConfigReference({ irc: fakeIrcSchema });
    const lines = reference.trimEnd().split('\n');
    expect(lines[0]).toBe('| Key | Type | Default | Description |');
    expect(lines).toContain(
      '| `homeserver.url` | URL | **required** | URL the bridge uses to reach the homeserver client-server API. |',
    );
    expect(lines).toContain(
      '| `appservice.port` | integer (1–65535) | `9000` | Port the application-service HTTP listener binds to. |',
    );
    expect(lines).toContain(
      '| `logging.level` | "debug" \\| "info" \\| "warn" \\| "error" | `info` | Minimum level of messages to log. |',
    );
    expect(lines).toContain('| `networks.irc.servers.<name>.port` | integer (1–65535) | `6697` | Port of the IRC server. |');
    expect(reference).toBe(renderConfigReference({ irc: fakeIrcSchema }));
  });
});
