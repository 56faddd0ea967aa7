// The CLI in-process (from the sources, not dist/): errors a user can fix become one line naming what
// to change; bugs keep their stack. Importing cli/main.ts does not run it (it runs only as the program).
import { createServer, type Server } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main, userFixableProblem } from '../../../packages/core/src/cli/main.js';
import { parseConfig } from '../../../packages/core/src/config/index.js';
import { openDatabase } from '../../../packages/core/src/db/database.js';
import { MatrixClientLayer } from '../../../packages/core/src/matrix/client.js';
import { readRegistration, RegistrationError } from '../../../packages/core/src/matrix/registration.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { tempDir } from '../temp.js';

const registration = {
  id: 'trestle', url: 'http://127.0.0.1:9000', as_token: 'a'.repeat(32), hs_token: 'h'.repeat(32), sender_localpart: 'trestle',
  rate_limited: false, receive_ephemeral: true, namespaces: { users: [], aliases: [], rooms: [] },
};

/** A config file (and its folder) with `extra` YAML lines after a homeserver nobody listens on. */
function configFile(...extra: string[]): { dir: string; path: string } {
  const dir = tempDir('trestle-cli-errors-');
  const path = join(dir, 'trestle.yaml');
  writeFileSync(path, ['homeserver: { url: "http://127.0.0.1:1", domain: example.org }', ...extra].join('\n') + '\n');
  return { dir, path };
}

/** What `main` rejected with, or a failure when it did not. */
async function rejection(argv: string[]): Promise<unknown> {
  return main(argv).then((code) => { throw new Error(`main resolved with ${code}`); }, (err: unknown) => err);
}

/** A server holding a port, so that listening on it again fails. */
const held: Server[] = [];
afterEach(async () => { await Promise.all(held.splice(0).map((s) => new Promise((r) => s.close(r)))); });

/** The error Node.js gives a listener on `port` of `host`. */
function listenError(port: number, host: string): Promise<Error> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', resolve);
    server.listen(port, host, () => { server.close(); reject(new Error(`listening on ${host}:${port} worked`)); });
  });
}

const oneLine = (text: string | undefined): void => {
  expect(text).toBeDefined();
  expect(text).not.toContain('\n');
};

describe('trestle generate-registration', () => {
  it('brackets an IPv6 bindAddress in the registration url', async () => {
    const { dir, path } = configFile('appservice: { bindAddress: "::", port: 29300 }');
    const out = join(dir, 'reg.yaml');
    const said = vi.spyOn(process.stdout, 'write').mockReturnValue(true); // "Wrote …": not for the test's output
    try {
      await expect(main(['generate-registration', '--config', path, '--output', out])).resolves.toBe(0);
    } finally {
      said.mockRestore();
    }
    expect((YAML.parse(readFileSync(out, 'utf8')) as { url: string }).url).toBe('http://[::]:29300');
  });
});

describe('errors a user can fix', () => {
  it('a malformed registration file: a RegistrationError naming the file, one line', () => {
    const { dir } = configFile();
    const file = join(dir, 'registration.yaml');
    writeFileSync(file, 'id: trestle\nas_token: [unclosed\nhs_token: x\n');
    let error: unknown;
    try { readRegistration(file); } catch (err) { error = err; }
    expect(error).toBeInstanceOf(RegistrationError);
    expect((error as Error).message).toMatch(new RegExp(`^the registration file ${file} is not valid YAML \\(line 3, column 1: `));
    oneLine(userFixableProblem(error));
  });

  it('a database of a newer Trestle: one line naming the database file, from `trestle start`', async () => {
    const { dir, path } = configFile(`appservice: { registration: ${join('%DIR%', 'reg.yaml')} }`, 'database: { path: %DIR%/bridge.db }');
    writeFileSync(path, readFileSync(path, 'utf8').replaceAll('%DIR%', dir));
    writeFileSync(join(dir, 'reg.yaml'), YAML.stringify(registration));
    const db = openDatabase(join(dir, 'bridge.db'));
    db.prepare("UPDATE schema_versions SET version = 999 WHERE owner = 'core'").run();
    db.close();
    const err = await rejection(['start', '--config', path]);
    const line = userFixableProblem(err);
    oneLine(line);
    expect(line).toMatch(new RegExp(`^${dir}/bridge\\.db \\(database\\.path\\): the database has core schema version 999, newer than this Trestle`));
  });

  it('the appservice port in use, or below 1024 without the privilege: one line naming appservice.bindAddress and port', async () => {
    const holder = createServer();
    held.push(holder);
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    const config = parseConfig({ homeserver: { url: 'http://127.0.0.1:1', domain: 'example.org' }, appservice: { port } });
    const inUse = userFixableProblem(await listenError(port, '127.0.0.1'), config);
    oneLine(inUse);
    expect(inUse).toBe(`cannot listen on appservice.bindAddress 127.0.0.1, appservice.port ${port}: the port is in use ` +
      '(another Trestle still running, or another program); stop it, or choose another appservice.port and generate the registration again');
    // the tests run as root, where binding port 80 works: this is the error Node.js gives anyone else
    const denied = Object.assign(new Error('listen EACCES: permission denied 127.0.0.1:80'),
      { code: 'EACCES', errno: -13, syscall: 'listen', address: '127.0.0.1', port: 80 });
    const low = parseConfig({ homeserver: { url: 'http://127.0.0.1:1', domain: 'example.org' }, appservice: { port: 80 } });
    expect(userFixableProblem(denied, low)).toMatch(/^cannot listen on appservice.bindAddress 127.0.0.1, appservice.port 80: permission denied/);
    // a file the bridge may not open is not the listener's problem
    const file = Object.assign(new Error("EACCES: permission denied, open 'data/trestle.db'"), { code: 'EACCES', syscall: 'open' });
    expect(userFixableProblem(file, low)).toBeUndefined();
  });

  it('a bindAddress that does not resolve is the listener\'s problem, not "cannot reach the homeserver"', async () => {
    const host = 'no-such-host.invalid';
    const config = parseConfig({ homeserver: { url: 'http://127.0.0.1:1', domain: 'example.org' }, appservice: { bindAddress: host } });
    const line = userFixableProblem(await listenError(0, host), config);
    oneLine(line);
    expect(line).toMatch(/^cannot listen on appservice.bindAddress no-such-host.invalid, appservice.port 9000: no-such-host.invalid is not a host name/);
    expect(line).not.toContain('homeserver');
    // nor is a name some other part fails to resolve: that is not known to be the user's to fix here
    const other = Object.assign(new Error('getaddrinfo ENOTFOUND irc.example'), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: 'irc.example' });
    expect(userFixableProblem(other, config)).toBeUndefined();
  });

  it('the homeserver away: one line naming homeserver.url', async () => {
    const config = parseConfig({ homeserver: { url: 'http://127.0.0.1:1', domain: 'example.org' } });
    const matrix = new MatrixClientLayer({ homeserverUrl: config.homeserver.url, domain: 'example.org', registration, log: silentLogger });
    const err = await matrix.start().then(() => undefined, (e: unknown) => e);
    matrix.close();
    const line = userFixableProblem(err, config);
    oneLine(line);
    expect(line).toMatch(/^cannot reach the homeserver: .*\(homeserver.url http:\/\/127.0.0.1:1: is the homeserver running, and is the URL right\?\)$/);
  });

  it('anything else is a bug: no line of its own, so its stack is printed', () => {
    expect(userFixableProblem(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBeUndefined();
    expect(userFixableProblem(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6667'), { code: 'ECONNREFUSED', syscall: 'connect' })))
      .toBeUndefined();
  });
});
