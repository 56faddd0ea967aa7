/**
 * Client certificates (certfp) and SASL EXTERNAL against ergo's TLS listener: the bridge makes the
 * key and certificate itself, the user adds its fingerprint to their account through their own
 * connection, and from then on the connection logs in with the certificate alone. The whole bridge
 * (its listener too) connects over TLS here, trusting ergo's self-signed certificate via `tlsCa`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type TrestleBridge } from '@trestle/core';
import { IrcConnection, ReconnectLimiter } from '../../packages/irc/src/connection.js';
import { LeanConnection } from '../../packages/irc/src/lean.js';
import { MatrixUser } from '../harness/matrix-user.js';
import { e2e, sleep } from './env.js';
import { adminRoom, startIrcBridge } from './irc-env.js';

const tlsPort = Number(process.env['TRESTLE_E2E_IRC_TLS_PORT'] ?? 0);
const ergoWork = process.env['TRESTLE_E2E_ERGO_WORK'] ?? '';
let bridge: TrestleBridge;
let user: MatrixUser;
let botId: string;

beforeAll(async () => {
  if (!tlsPort || !ergoWork) throw new Error('TRESTLE_E2E_IRC_TLS_PORT / TRESTLE_E2E_ERGO_WORK are not set: run through test/harness/e2e.sh');
  bridge = await startIrcBridge({ port: tlsPort, tls: true, tlsCa: `${ergoWork}/tls.crt` });
  botId = bridge.matrix.botUserId;
  // a display name of its own: ergo keeps a registered nick for its account across suites
  user = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `certfp${Date.now()}`, { displayName: 'Certina' });
});

afterAll(async () => {
  await bridge?.stop();
});

const row = (): { password_enc: string | null; cert_pem: string | null; cert_key_enc: string | null } =>
  bridge.database.prepare('SELECT password_enc, cert_pem, cert_key_enc FROM irc_users WHERE user_id = ? AND server = ?').get(user.userId, 'test') as
    { password_enc: string | null; cert_pem: string | null; cert_key_enc: string | null };
const fingerprintIn = (answer: string): string => /fingerprint is ([0-9a-f]{64})/.exec(answer)?.[1] ?? `no fingerprint in: ${answer}`;

describe('IRC bridge: client certificates and SASL EXTERNAL', () => {
  it('logs in with a certificate the bridge made, with no password stored; falls back to PLAIN when EXTERNAL fails', async () => {
    const { ask } = await adminRoom(user, botId);
    const whois = (): Promise<string> => ask('whois test Certina[m]', (b) => b.includes('Certina[m]'));

    // an account for the user's nick, registered through their own (TLS) connection; it logs them in
    await ask('cmd test PRIVMSG NickServ :REGISTER cert-acct-pw', (b) => b.startsWith('Sent:'));
    await sleep(1000);

    const first = await ask('certfp test', (b) => b.includes('fingerprint'));
    expect(first).toMatch(/^Made a client certificate for ErgoTest/);
    const fp = fingerprintIn(first);
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(first).toContain(`cmd test PRIVMSG NickServ :CERT ADD ${fp}`);
    // asked again: the same certificate, not a new one
    const again = await ask('certfp test', (b) => b.includes('fingerprint'));
    expect(again).toMatch(/^Your client certificate for ErgoTest/);
    expect(fingerprintIn(again)).toBe(fp);
    // stored: the certificate in clear (it is public), the key sealed; no password
    expect(row().cert_pem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(row().cert_key_enc).toMatch(/^v1:/);
    expect(row().cert_key_enc).not.toContain('PRIVATE KEY');
    expect(row().password_enc).toBeNull();

    await ask(`cmd test PRIVMSG NickServ :CERT ADD ${fp}`, (b) => b.startsWith('Sent:'));
    await sleep(1000);
    await ask('reconnect test', (b) => b.startsWith('Reconnected'));
    // nothing but the certificate could have logged this connection in
    expect(await whois()).toContain('logged in as Certina[m]');
    expect(row().password_enc).toBeNull();

    // a certificate services do not know (a new one after removecert) and a stored password:
    // EXTERNAL is refused, PLAIN logs in
    expect(await ask('removecert test', (b) => b.includes('forgotten'))).toContain('Client certificate for ErgoTest forgotten');
    expect(row().cert_pem).toBeNull();
    await ask('storepass test cert-acct-pw', (b) => b.startsWith('Password stored'));
    const fresh = fingerprintIn(await ask('certfp test', (b) => b.includes('fingerprint')));
    expect(fresh).not.toBe(fp);
    await ask('reconnect test', (b) => b.startsWith('Reconnected'));
    expect(await whois()).toContain('logged in as Certina[m]');
    // removepass leaves the certificate alone
    expect(await ask('removepass test', (b) => b.startsWith('Password removed'))).toBe('Password removed. Your client certificate stays ("removecert" forgets it).');
    expect(row().password_enc).toBeNull();
    expect(row().cert_pem).toMatch(/^-----BEGIN CERTIFICATE-----/);

  });
});

describe('IRC bridge: trusting the server certificate with tlsCa', () => {
  /** Both kinds of connection to ergo's TLS port trusting `caFile`; did each register within a few seconds, and what was logged. */
  async function tryBoth(caFile: string): Promise<{ registered: boolean[]; log: string }> {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', format: 'json', sink: { write: (l) => { lines.push(l); } } });
    const common = {
      host: '127.0.0.1', port: tlsPort, tls: true, tlsCa: readFileSync(caFile, 'utf8'), username: 'catest', realname: 'tlsCa test',
      reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 }, limiter: new ReconnectLimiter(2), log,
    };
    const conns = [
      new IrcConnection({ ...common, nick: `calist${Date.now() % 100_000}`, timeouts: { registerMs: 30_000 } }),
      new LeanConnection({ ...common, nick: `calean${Date.now() % 100_000}`, timeouts: { registerMs: 30_000, answerMs: 10_000 } }),
    ];
    const registered = await Promise.all(conns.map((c) => Promise.race([
      c.connect().then(() => true, () => false), sleep(4000).then(() => false),
    ])));
    for (const c of conns) c.quit('done');
    return { registered, log: lines.join('') };
  }

  it('connects the listener and users\' connections to a server whose certificate is in tlsCa, and to no other', async () => {
    expect((await tryBoth(`${ergoWork}/tls.crt`)).registered).toEqual([true, true]);
    // another self-signed certificate for the same names: ergo's is not signed by it
    const dir = mkdtempSync(join(tmpdir(), 'trestle-ca-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'other.key'), '-out', join(dir, 'other.crt')], { stdio: 'ignore' });
    const other = await tryBoth(join(dir, 'other.crt'));
    expect(other.registered).toEqual([false, false]);
    expect(other.log).toContain("refusing the IRC server's TLS certificate"); // the listener's own check
    expect(other.log).toContain('the certificate is not signed by one in tlsCa');
  });
});
