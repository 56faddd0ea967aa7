// Network names (the keys under `networks:`) and sections that would run the same built-in network twice.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadEverything } from '../../../packages/core/src/cli/loadAll.js';
import { ConfigError, parseConfig } from '../../../packages/core/src/config/index.js';
import { tempDir } from '../temp.js';

const minimal = { homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' } };
/** Stand-ins for the networks' own schemas: these tests are about core's checks of the names and modules. */
const anySection = z.record(z.string(), z.unknown());
const schemas = { irc: anySection, discord: anySection, libera: anySection, oftc: anySection, chat: anySection, irc2: anySection };

function problemsOf(networks: Record<string, unknown>): string[] {
  try {
    parseConfig({ ...minimal, networks }, schemas);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

const NAME_RULE = 'a network name must be a lowercase letter followed by lowercase letters and digits (no spaces, "_" or "-"), ' +
  'such as irc, libera or discord2: it becomes the prefix of its users\' Matrix ids';

describe('network names', () => {
  it('refuses a name that cannot prefix a Matrix user id, once, without also calling it unknown', () => {
    expect(problemsOf({ 'My IRC': { module: './my-irc.js' } })).toEqual([`networks.My IRC: ${NAME_RULE}`]);
    expect(problemsOf({ Irc: {}, '2irc': {}, 'irc-x': {} })).toEqual([
      `networks.Irc: ${NAME_RULE}`, `networks.2irc: ${NAME_RULE}`, `networks.irc-x: ${NAME_RULE}`,
    ]);
  });

  it('refuses "_", so that no network\'s ghost prefix can hold another\'s (irc_ and irc_x_)', () => {
    expect(problemsOf({ irc: {}, irc_x: { module: './other.js' } })).toEqual([`networks.irc_x: ${NAME_RULE}`]);
  });

  it('accepts lowercase names with digits', () => {
    const config = parseConfig({ ...minimal, networks: { irc: {}, irc2: { module: './irc2.js' }, discord: {} } }, schemas);
    expect(Object.keys(config.networks)).toEqual(['irc', 'irc2', 'discord']);
  });
});

describe('one section per built-in network', () => {
  it('refuses two sections loading @trestle/irc, and says one section holds several servers', () => {
    expect(problemsOf({ libera: { module: '@trestle/irc' }, oftc: { module: '@trestle/irc' } })).toEqual([
      'networks.oftc: runs @trestle/irc, as networks.libera does, but a built-in network runs in one section only; ' +
        'one section bridges any number of IRC servers: move the servers of networks.oftc under networks.libera.servers',
    ]);
  });

  it('counts the section named after a built-in network, which loads it without a module key', () => {
    expect(problemsOf({ irc: {}, chat: { module: '@trestle/irc' } })).toEqual([
      'networks.chat: runs @trestle/irc, as networks.irc does, but a built-in network runs in one section only; ' +
        'one section bridges any number of IRC servers: move the servers of networks.chat under networks.irc.servers',
    ]);
    expect(problemsOf({ discord: {}, chat: { module: '@trestle/discord' } })).toEqual([
      'networks.chat: runs @trestle/discord, as networks.discord does, but a built-in network runs in one section only; ' +
        'one section\'s bot bridges every Discord server (guild) it is invited to: invite the bot of networks.discord there ' +
        'and remove networks.chat (guilds: limits which servers it bridges)',
    ]);
  });

  it('is reported along with a misnamed section, not only once that is fixed', () => {
    expect(problemsOf({ 'My IRC': {}, libera: { module: '@trestle/irc' }, oftc: { module: '@trestle/irc' } })).toEqual([
      `networks.My IRC: ${NAME_RULE}`,
      'networks.oftc: runs @trestle/irc, as networks.libera does, but a built-in network runs in one section only; ' +
        'one section bridges any number of IRC servers: move the servers of networks.oftc under networks.libera.servers',
    ]);
  });

  it('lets a switched-off section stay, and one module of your own run in several sections', () => {
    const config = parseConfig({ ...minimal, networks: {
      irc: {}, libera: { module: '@trestle/irc', enabled: false },
      // a network module of one's own may well serve several sections (the e2e test network does)
      oftc: { module: './test-network.js' }, chat: { module: './test-network.js' },
    } }, schemas);
    expect(Object.keys(config.networks)).toEqual(['irc', 'libera', 'oftc', 'chat']);
  });

  it('is reported by loadEverything as a config problem, before anything starts', async () => {
    const dir = tempDir('trestle-networks-');
    const path = join(dir, 'trestle.yaml');
    writeFileSync(path, [
      'homeserver: { url: "http://127.0.0.1:8008", domain: example.org }',
      'networks:',
      '  libera: { module: "@trestle/irc", servers: { libera: { host: irc.libera.chat } } }',
      '  oftc: { module: "@trestle/irc", servers: { oftc: { host: irc.oftc.net } } }',
    ].join('\n'));
    const error = await loadEverything(path).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'networks.oftc: runs @trestle/irc, as networks.libera does, but a built-in network runs in one section only; ' +
        'one section bridges any number of IRC servers: move the servers of networks.oftc under networks.libera.servers',
    ]);
  });
});
