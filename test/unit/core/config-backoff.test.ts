// Retry and reconnect waits: floors that rule out a busy loop, and a ceiling no lower than the first wait.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../packages/core/src/config/index.js';
import { discordConfigSchema } from '../../../packages/discord/src/config.js';
import { ircConfigSchema } from '../../../packages/irc/src/config.js';

const minimal = { homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' } };
const schemas = { irc: ircConfigSchema, discord: discordConfigSchema };

function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw, schemas);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

const irc = (reconnect: Record<string, number>) => ({ servers: { libera: { host: 'irc.libera.chat', reconnect } } });
const discord = (reconnect: Record<string, number>) => ({ token: 'abc', reconnect });

describe('retry and reconnect waits', () => {
  it('refuses delivery waits of 0 (a hot retry loop) and a ceiling under a second', () => {
    expect(problemsOf({ ...minimal, delivery: { initialBackoffMs: 0, maxBackoffMs: 0 } })).toEqual([
      'delivery.initialBackoffMs: must be at least 50',
      'delivery.maxBackoffMs: must be at least 1000',
    ]);
    expect(problemsOf({ ...minimal, delivery: { initialBackoffMs: 50, maxBackoffMs: 999 } })).toEqual([
      'delivery.maxBackoffMs: must be at least 1000',
    ]);
    expect(parseConfig({ ...minimal, delivery: { initialBackoffMs: 50, maxBackoffMs: 1000 } }).delivery)
      .toMatchObject({ initialBackoffMs: 50, maxBackoffMs: 1000 });
  });

  it('refuses IRC reconnect waits of 0 and a ceiling below the first wait, naming the keys', () => {
    expect(problemsOf({ ...minimal, networks: { irc: irc({ initialDelayMs: 0, maxDelayMs: 0 }) } })).toEqual([
      'networks.irc.servers.libera.reconnect.initialDelayMs: must be at least 50',
      'networks.irc.servers.libera.reconnect.maxDelayMs: must be at least 1000',
    ]);
    expect(problemsOf({ ...minimal, networks: { irc: irc({ initialDelayMs: 5000, maxDelayMs: 2000 }) } })).toEqual([
      'networks.irc.servers.libera.reconnect.maxDelayMs: must be at least reconnect.initialDelayMs (5000)',
    ]);
    const ok = parseConfig({ ...minimal, networks: { irc: irc({ initialDelayMs: 300, maxDelayMs: 2000 }) } }, schemas);
    expect((ok.networks['irc'] as { servers: Record<string, { reconnect: unknown }> }).servers['libera']!.reconnect)
      .toEqual({ initialDelayMs: 300, maxDelayMs: 2000, maxConcurrent: 10 });
  });

  it('refuses Discord login retry waits of 0 and a ceiling below the first wait, naming the keys', () => {
    expect(problemsOf({ ...minimal, networks: { discord: discord({ initialDelayMs: 0, maxDelayMs: 0 }) } })).toEqual([
      'networks.discord.reconnect.initialDelayMs: must be at least 50',
      'networks.discord.reconnect.maxDelayMs: must be at least 1000',
    ]);
    expect(problemsOf({ ...minimal, networks: { discord: discord({ initialDelayMs: 30_000, maxDelayMs: 10_000 }) } })).toEqual([
      'networks.discord.reconnect.maxDelayMs: must be at least reconnect.initialDelayMs (30000)',
    ]);
    // the defaults pass their own checks
    const ok = parseConfig({ ...minimal, networks: { discord: { token: 'abc' } } }, schemas);
    expect((ok.networks['discord'] as { reconnect: unknown }).reconnect).toEqual({ initialDelayMs: 1000, maxDelayMs: 60_000 });
  });
});
