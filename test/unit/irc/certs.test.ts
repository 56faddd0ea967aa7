import { createPrivateKey, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../../packages/core/src/db/database.js';
import { certFingerprint, makeClientCert, pemCertificates, untrustedChain } from '../../../packages/irc/src/certs.js';
import { certfpAnswer } from '../../../packages/irc/src/commands.js';
import { saslMechanisms } from '../../../packages/irc/src/sasl.js';
import { IrcStore, PasswordBox, ircMigrations } from '../../../packages/irc/src/store.js';
import { tempDir } from '../temp.js';

describe('client certificates made by the bridge (hand-encoded DER)', () => {
  it('makes a self-signed v3 certificate Node parses, signed by its own key, with the key it is given with', () => {
    const { cert, key } = makeClientCert('@alice:example.org on libera', 20, new Date('2026-01-10T12:00:00Z'));
    const x = new X509Certificate(cert);
    expect(x.subject).toBe('CN=@alice:example.org on libera');
    expect(x.issuer).toBe(x.subject);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(new Date(x.validFrom).toISOString()).toBe('2026-01-09T12:00:00.000Z');
    expect(new Date(x.validTo).toISOString()).toBe('2046-01-10T12:00:00.000Z');
    expect(x.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('encodes long names (DER lengths past 127 bytes) and differs each time (fresh key, random serial)', () => {
    const a = makeClientCert('x'.repeat(300));
    const b = makeClientCert('x'.repeat(300));
    expect(new X509Certificate(a.cert).subject).toBe(`CN=${'x'.repeat(300)}`);
    expect(new X509Certificate(a.cert).serialNumber).not.toBe(new X509Certificate(b.cert).serialNumber);
    expect(certFingerprint(a.cert)).not.toBe(certFingerprint(b.cert));
  });

  it('is accepted by OpenSSL as a self-signed certificate', () => {
    const dir = tempDir('trestle-cert-');
    const file = join(dir, 'c.pem');
    writeFileSync(file, makeClientCert('openssl check').cert);
    const out = execFileSync('openssl', ['verify', '-CAfile', file, file], { encoding: 'utf8' });
    expect(out.trim()).toBe(`${file}: OK`);
    // the fingerprint is OpenSSL's SHA-256 one, in the form services take it
    const fp = execFileSync('openssl', ['x509', '-in', file, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
    const opensslFp = fp.trim().split('=')[1]!.replace(/:/g, '').toLowerCase();
    expect(certFingerprint(pemOf(file))).toBe(opensslFp);
  });

  it('gives the fingerprint of the whole certificate as 64 lower-case hex digits', () => {
    const { cert } = makeClientCert('fp');
    expect(certFingerprint(cert)).toMatch(/^[0-9a-f]{64}$/);
    expect(certFingerprint(cert)).toBe(new X509Certificate(cert).fingerprint256.replace(/:/g, '').toLowerCase());
  });
});

const pemOf = (file: string): string => readFileSync(file, 'utf8');

describe('trusting a server certificate against tlsCa (the listener\'s own check)', () => {
  const dir = tempDir('trestle-ca-');
  const make = (name: string, args: string[]): X509Certificate => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
      '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`), ...args], { stdio: 'ignore' });
    return new X509Certificate(pemOf(join(dir, `${name}.pem`)));
  };
  const server = make('server', ['-subj', '/CN=irc.test', '-addext', 'subjectAltName=DNS:irc.test,IP:127.0.0.1']);
  const other = make('other', ['-subj', '/CN=irc.test', '-addext', 'subjectAltName=DNS:irc.test,IP:127.0.0.1']);

  it('trusts the pinned self-signed certificate for its names, and nothing else', () => {
    expect(untrustedChain([server], [server], 'irc.test')).toBeUndefined();
    expect(untrustedChain([server], [server], '127.0.0.1')).toBeUndefined();
    expect(untrustedChain([server], [server], 'evil.test')).toBe('the certificate is not for evil.test');
    expect(untrustedChain([other], [server], 'irc.test')).toBe('the certificate is not signed by one in tlsCa');
    expect(untrustedChain([], [server], 'irc.test')).toBe('the server sent no certificate');
    expect(untrustedChain([server], [server], 'irc.test', new Date(Date.now() + 60 * 86_400_000))).toMatch(/outside its dates/);
  });

  /** A certificate for `name` signed by `by` (its key next to it), with the extensions `ext` (openssl extfile lines). */
  const signed = (name: string, subject: string, by: string, ext: string[]): X509Certificate => {
    const file = (f: string): string => join(dir, f);
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', subject,
      '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`)], { stdio: 'ignore' });
    writeFileSync(file(`${name}.ext`), `${ext.join('\n')}\n`);
    execFileSync('openssl', ['x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${by}.pem`), '-CAkey', file(`${by}.key`),
      '-CAcreateserial', '-days', '30', '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`)], { stdio: 'ignore' });
    return new X509Certificate(pemOf(file(`${name}.pem`)));
  };

  it('trusts a chain through real authorities only: a certificate that is no CA cannot sign for the server', () => {
    const ca = make('ca', ['-subj', '/CN=Test CA']); // openssl marks it CA:TRUE
    const direct = signed('direct', '/CN=irc.test', 'ca', ['basicConstraints=critical,CA:FALSE', 'subjectAltName=DNS:irc.test']);
    const inter = signed('inter', '/CN=Test Intermediate', 'ca', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign']);
    const viaInter = signed('viainter', '/CN=irc.test', 'inter', ['basicConstraints=critical,CA:FALSE', 'subjectAltName=DNS:irc.test']);
    expect(untrustedChain([direct], [ca], 'irc.test')).toBeUndefined();
    expect(untrustedChain([viaInter, inter], [ca], 'irc.test')).toBeUndefined();
    // another server's certificate from the same CA (CA:FALSE, no key usage: what a plain
    // `openssl x509 -req` gives), used to sign one for our host: OpenSSL refuses such a chain
    const otherServer = signed('otherserver', '/CN=other.test', 'ca', ['basicConstraints=critical,CA:FALSE', 'subjectAltName=DNS:other.test']);
    const forged = signed('forged', '/CN=irc.test', 'otherserver', ['subjectAltName=DNS:irc.test']);
    expect(untrustedChain([forged, otherServer], [ca], 'irc.test')).toBe('the certificate is not signed by one in tlsCa');
    // a leaf put in tlsCa signs nothing either (it is trusted itself, by its fingerprint, as a pin)
    expect(untrustedChain([forged], [otherServer], 'irc.test')).toBe('the certificate is not signed by one in tlsCa');
    expect(untrustedChain([forged, otherServer], [ca, otherServer], 'irc.test')).toBe('the certificate is not signed by one in tlsCa');
  });

  it('reads every certificate of a PEM file', () => {
    expect(pemCertificates(`${pemOf(join(dir, 'server.pem'))}\n${pemOf(join(dir, 'other.pem'))}`).map((c) => c.fingerprint256))
      .toEqual([server.fingerprint256, other.fingerprint256]);
    expect(pemCertificates('nothing here')).toEqual([]);
  });
});

describe('SASL mechanism choice', () => {
  it.each([
    // have cert, have password, server's sasl value → mechanisms tried in order
    [true, true, 'PLAIN,EXTERNAL', ['EXTERNAL', 'PLAIN']],
    [true, false, 'PLAIN,EXTERNAL,SCRAM-SHA-256', ['EXTERNAL']],
    [false, true, 'PLAIN,EXTERNAL', ['PLAIN']],
    [true, true, 'PLAIN', ['PLAIN']], // no EXTERNAL offered: the password
    [true, false, 'PLAIN', []],
    [true, true, 'external,plain', ['EXTERNAL', 'PLAIN']],
    [true, true, '', ['EXTERNAL', 'PLAIN']], // mechanisms not listed: try both
    [true, true, undefined, []], // no sasl capability at all
    [false, false, 'PLAIN,EXTERNAL', []],
  ] as const)('cert %s, password %s, offered %j → %j', (cert, password, offered, want) => {
    expect(saslMechanisms({ cert, password }, offered)).toEqual(want);
  });
});

describe('certfp answer', () => {
  it('names the fingerprint and the commands to add it, and warns without TLS', () => {
    const fp = 'ab'.repeat(32);
    const tls = certfpAnswer({ key: 'libera', displayName: 'Libera', usesTls: () => true }, fp, true);
    expect(tls).toContain(`SHA-256 fingerprint is ${fp}`);
    expect(tls).toContain(`cmd libera PRIVMSG NickServ :CERT ADD ${fp}`);
    expect(tls).toContain('reconnect libera');
    expect(tls).not.toContain('not configured with TLS');
    expect(certfpAnswer({ key: 'x', displayName: 'X', usesTls: () => false }, fp, false)).toContain('not configured with TLS');
  });
});

describe('IrcStore client certificates', () => {
  const open = (): { s: IrcStore; raw: (col: string) => unknown } => {
    const dir = tempDir('trestle-irc-cert-');
    const db = openDatabase(join(dir, 'bridge.db'));
    migrate(db, 'irc', ircMigrations);
    return { s: new IrcStore(db, new PasswordBox(join(dir, 'irc.key'))), raw: (col) => (db.prepare(`SELECT ${col} AS v FROM irc_users`).get() as { v: unknown }).v };
  };

  it('keeps the private key sealed and gives it back, independently of the password', () => {
    const { s, raw } = open();
    const cert = makeClientCert('store');
    s.setPassword('@a:x', 'libera', 'pw');
    s.setCertificate('@a:x', 'libera', cert);
    expect(s.user('@a:x', 'libera')).toMatchObject({ password: 'pw', cert });
    expect(String(raw('cert_key_enc'))).toMatch(/^v1:/);
    expect(String(raw('cert_key_enc'))).not.toContain('PRIVATE KEY');
    expect(s.certificate('@a:x', 'libera')).toBe(cert.cert);
    s.setPassword('@a:x', 'libera', null); // removepass keeps the certificate
    expect(s.user('@a:x', 'libera').cert).toEqual(cert);
    s.setPassword('@a:x', 'libera', 'pw2');
    s.setCertificate('@a:x', 'libera', null); // removecert keeps the password
    expect(s.user('@a:x', 'libera')).toEqual({ password: 'pw2' });
    expect(s.certificate('@a:x', 'libera')).toBeUndefined();
  });
});
