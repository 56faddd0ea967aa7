import { chmodSync, readFileSync, statSync } from 'node:fs';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildRegistration, readRegistration, registrationDrift, writeRegistration } from '../../../packages/core/src/matrix/registration.js';
import { tempDir } from '../temp.js';

const input = {
  id: 'trestle', url: 'http://127.0.0.1:9000', botLocalpart: 'trestle', domain: 'example.org',
  networks: [{ id: 'irc', userPrefix: 'irc_', aliasPrefix: 'irc_' }, { id: 'discord', userPrefix: 'discord_', aliasPrefix: 'discord_' }],
};

describe('registration', () => {
  it('derives exclusive namespaces from the networks and fresh random tokens each time', async () => {
    const a = await buildRegistration(input);
    const b = await buildRegistration(input);
    expect(a.as_token).not.toBe(b.as_token);
    expect(a.hs_token).not.toBe(b.hs_token);
    expect(a.as_token).not.toBe(a.hs_token);
    expect(a.as_token).toMatch(/^[0-9a-f]{32,}$/);
    expect(a).toMatchObject({
      id: 'trestle', url: 'http://127.0.0.1:9000', sender_localpart: 'trestle', rate_limited: false, receive_ephemeral: true,
      namespaces: {
        users: [{ exclusive: true, regex: '@irc_.*:example\\.org' }, { exclusive: true, regex: '@discord_.*:example\\.org' }],
        aliases: [{ exclusive: true, regex: '#irc_.*:example\\.org' }, { exclusive: true, regex: '#discord_.*:example\\.org' }],
        rooms: [],
      },
    });
    expect(new RegExp(`^${a.namespaces.users[0]!.regex}$`).test('@irc_libera_alice:example.org')).toBe(true);
    expect(new RegExp(`^${a.namespaces.users[0]!.regex}$`).test('@irc_alice:exampleXorg')).toBe(false);
  });

  it('says where a registration no longer matches the config, and nothing when it does', async () => {
    const reg = await buildRegistration({ ...input, networks: [{ id: 'irc', userPrefix: 'irc_', aliasPrefix: 'irc_', protocol: 'irc' }] });
    const now = { botLocalpart: 'trestle', domain: 'example.org', networks: [{ id: 'irc', userPrefix: 'irc_', aliasPrefix: 'irc_', protocol: 'irc' }] };
    expect(registrationDrift(reg, now)).toEqual([]);
    // Discord enabled since, and the bot renamed in the config
    const later = { ...now, botLocalpart: 'bridge', networks: [...now.networks, { id: 'discord', userPrefix: 'discord_', aliasPrefix: 'discord_', protocol: 'discord' }] };
    const drift = registrationDrift(reg, later);
    expect(drift).toHaveLength(4);
    expect(drift[0]).toMatch(/bot is @trestle:example.org, not appservice.botLocalpart "bridge"/);
    expect(drift[1]).toMatch(/network "discord": its users \(@discord_…\) are outside/);
    expect(drift[2]).toMatch(/network "discord": its room aliases/);
    expect(drift[3]).toMatch(/protocol "discord"/);
  });

  it('claims the further alias patterns a network names (an IRC alias template), anchored to the domain', async () => {
    const reg = await buildRegistration({ ...input, networks: [{ id: 'irc', userPrefix: 'irc_', aliasPrefix: 'irc_', aliasPatterns: ['libera_([#&+!][^\\s,:]{1,199})'] }] });
    expect(reg.namespaces.aliases).toEqual([
      { exclusive: true, regex: '#irc_.*:example\\.org' }, { exclusive: true, regex: '#(?:libera_([#&+!][^\\s,:]{1,199})):example\\.org' },
    ]);
    const re = new RegExp(`^${reg.namespaces.aliases[1]!.regex}$`);
    expect(re.test('#libera_#rust:example.org')).toBe(true);
    expect(re.test('#libera_#rust:example.org.evil')).toBe(false);
  });

  it('lists the third-party protocols networks answer for, once each, and none when no network does', async () => {
    const reg = await buildRegistration({ ...input, networks: [
      { id: 'irc', userPrefix: 'irc_', protocol: 'irc' }, { id: 'irc2', userPrefix: 'irc2_', protocol: 'irc2' }, { id: 'discord', userPrefix: 'discord_' },
    ] });
    expect(reg.protocols).toEqual(['irc', 'irc2']);
    expect((await buildRegistration({ ...input, networks: [{ id: 'discord', userPrefix: 'discord_' }] })).protocols).toBeUndefined();
  });

  it('writes a file only its owner can read, which reads back', async () => {
    const path = `${tempDir('trestle-r-')}/sub/reg.yaml`;
    const reg = await buildRegistration(input);
    writeRegistration(path, reg);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(YAML.parse(readFileSync(path, 'utf8'))).toEqual(reg);
    expect(readRegistration(path).hs_token).toBe(reg.hs_token);
    // written again over one that others could read (made by hand, or by an older version): its new tokens are not
    chmodSync(path, 0o644);
    writeRegistration(path, await buildRegistration(input));
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('explains a missing or incomplete registration file', async () => {
    expect(() => readRegistration('/nonexistent/reg.yaml')).toThrow(/generate-registration/);
    const path = `${tempDir('trestle-r-')}/reg.yaml`;
    writeRegistration(path, { ...await buildRegistration(input), hs_token: '' });
    expect(() => readRegistration(path)).toThrow(/lacks: hs_token/);
  });
});
