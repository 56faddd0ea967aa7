// The CLI as a user runs it (needs `npm run build`, which `npm test` does first).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';

const cli = (...args: string[]) => spawnSync(process.execPath, ['packages/core/dist/cli/main.js', ...args], { encoding: 'utf8' });

// each test starts the CLI (the whole bridge's code) a few times: seconds on a busy machine, so a
// generous limit; it guards against a hang, it measures nothing
describe('trestle CLI', { timeout: 60_000 }, () => {
  it('check-config lists every problem by dotted path and exits 1, with no stack trace', () => {
    const dir = tempDir('trestle-cli-');
    writeFileSync(join(dir, 'bad.yaml'), [
      'homeserver: { url: "ftp://x", domain: example.org }',
      'appservice: { port: "nine" }',
      'networks:',
      '  irc: { servers: { libera: { host: irc.libera.chat, port: 70000 } } }',
      '  mystery: {}',
    ].join('\n'));
    const r = cli('check-config', '--config', join(dir, 'bad.yaml'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('homeserver.url: must be an http:// or https:// URL');
    expect(r.stderr).toContain('appservice.port: must be an integer');
    expect(r.stderr).toContain('networks.irc.servers.libera.port: must be at most 65535');
    expect(r.stderr).toContain('networks.mystery: unknown network');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('generate-registration writes namespaces for the enabled networks and fresh tokens; check-config accepts the sample', () => {
    const dir = tempDir('trestle-cli-');
    const cfg = join(dir, 'ok.yaml');
    writeFileSync(cfg, 'homeserver: { url: "http://127.0.0.1:8008", domain: example.org }\nnetworks:\n  irc: { servers: { libera: { host: irc.libera.chat } } }\n');
    expect(cli('check-config', '--config', cfg).status).toBe(0);
    const out = join(dir, 'reg.yaml');
    expect(cli('generate-registration', '--config', cfg, '--output', out).status).toBe(0);
    const reg = YAML.parse(readFileSync(out, 'utf8')) as { namespaces: { users: { regex: string }[] }; as_token: string };
    expect(reg.namespaces.users.map((u) => u.regex)).toEqual(['@irc_.*:example\\.org']);
    expect(cli('generate-registration', '--config', cfg, '--output', out + '2').status).toBe(0);
    expect((YAML.parse(readFileSync(out + '2', 'utf8')) as { as_token: string }).as_token).not.toBe(reg.as_token);
    expect(cli('check-config', '--config', 'config/trestle.sample.yaml').status).toBe(0);
  });

  it('start refuses a missing registration with a hint, exit 1', () => {
    const dir = tempDir('trestle-cli-');
    const cfg = join(dir, 'ok.yaml');
    writeFileSync(cfg, `homeserver: { url: "http://127.0.0.1:1", domain: example.org }\nappservice: { registration: ${join(dir, 'none.yaml')} }\n`);
    const r = cli('start', '--config', cfg);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('generate-registration');
  });
});
