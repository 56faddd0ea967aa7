/**
 * Client certificates for SASL EXTERNAL (CertFP): a key pair and a self-signed X.509 certificate
 * made by the bridge for one Matrix user on one IRC server, so the private key never travels
 * through Matrix. IRC services only compare the certificate's fingerprint with the ones the
 * account holder added (`NickServ CERT ADD`); nobody checks a chain, so self-signed is all it takes.
 *
 * Node can parse certificates (X509Certificate) but not make them, so the few DER structures of a
 * minimal v3 certificate (RFC 5280 §4.1, no extensions) are encoded here: the public key comes
 * already DER-encoded from Node (SubjectPublicKeyInfo) and the signature is Node's ECDSA in DER.
 * That is ~50 lines against a library with a dozen dependencies (a DI container among them).
 */
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

/** A DER element: tag, definite length, contents. */
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...c: Buffer[]): Buffer => der(0x30, ...c);
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const v of rest) {
    const groups = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) groups.unshift(0x80 | (x & 0x7f));
    out.push(...groups);
  }
  return der(0x06, Buffer.from(out));
}
/** A positive INTEGER from big-endian bytes (a leading 0 when the top bit is set). */
const uint = (bytes: Buffer): Buffer => der(0x02, bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
/** A Name of one common name: SEQUENCE { SET { SEQUENCE { id-at-commonName, UTF8String } } }. */
const name = (cn: string): Buffer => seq(der(0x31, seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn, 'utf8')))));
/** GeneralizedTime (valid for any year, where UTCTime stops at 2049). */
const time = (d: Date): Buffer => der(0x18, Buffer.from(d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z'), 'ascii'));

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

export interface ClientCert {
  /** PEM of the certificate (public). */
  cert: string;
  /** PEM of the private key (PKCS#8): stored sealed, given to the TLS connection only. */
  key: string;
}

/**
 * A new ECDSA P-256 key and a self-signed certificate for it, named `commonName` (an account hint
 * for the server operators who look; services use the fingerprint). Valid from a day ago (clocks
 * differ) for `years`.
 */
export function makeClientCert(commonName: string, years = 20, now = new Date()): ClientCert {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const algorithm = seq(oid(ECDSA_WITH_SHA256));
  const from = new Date(now.getTime() - 86_400_000);
  const until = new Date(now);
  until.setUTCFullYear(until.getUTCFullYear() + years);
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f || 1; // positive, and no leading zero byte to trim
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))), // [0] version: v3
    uint(serial), algorithm, name(commonName), seq(time(from), time(until)), name(commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const certDer = seq(tbs, algorithm, der(0x03, Buffer.from([0]), signature));
  const b64 = certDer.toString('base64').replace(/.{1,64}/g, '$&\n');
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/**
 * The certificate's SHA-256 fingerprint as services take it (ergo, Atheme's `CERT ADD`): 64 lower
 * case hex digits, no colons: a hash of the whole DER certificate.
 */
export function certFingerprint(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

/**
 * Why a server's certificate chain (leaf first, as the TLS socket gives it) is not to be trusted
 * for `host` against the PEM certificates of `tlsCa`, or undefined when it is: a certificate of the
 * chain is one of them, or signed by one that is an authority, every link is signed by the next
 * (an authority), the leaf names the host and every certificate is within its dates. Node checks all this itself where a `ca` option
 * can be given (the Matrix users' connections); irc-framework, under the listener, takes none.
 */
export function untrustedChain(chain: readonly X509Certificate[], trusted: readonly X509Certificate[], host: string, now = new Date()): string | undefined {
  const leaf = chain[0];
  if (!leaf) return 'the server sent no certificate';
  for (const c of chain) {
    if (new Date(c.validFrom) > now || new Date(c.validTo) < now) return `certificate "${c.subject}" is outside its dates (${c.validFrom} – ${c.validTo})`;
  }
  if (!(isIP(host) ? leaf.checkIP(host) : leaf.checkHost(host))) return `the certificate is not for ${host}`;
  // a certificate signs another only if it is an authority (basicConstraints CA:TRUE): else any
  // server's certificate from the same CA could sign one for our host (OpenSSL: "invalid CA
  // certificate"); checkIssued() checks keyCertSign only when a key usage is present at all
  const signs = (issuer: X509Certificate, c: X509Certificate): boolean => issuer.ca && c.checkIssued(issuer) && c.verify(issuer.publicKey);
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i]!;
    if (trusted.some((t) => t.fingerprint256 === c.fingerprint256 || signs(t, c))) return undefined;
    const next = chain[i + 1];
    if (!next || !signs(next, c)) break;
  }
  return 'the certificate is not signed by one in tlsCa';
}

/** The certificates of a PEM file's text (one or more). */
export function pemCertificates(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c));
}
