/**
 * The cluster PKI: the DER writer against known encodings (X.690), the certificates it builds read back by
 * Node's X509Certificate, by `openssl x509 -text` / `openssl verify` when openssl is installed, and used
 * in real TLS handshakes with node:tls, where OpenSSL decides what is trusted.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, test } from 'node:test';
import * as der from '../../src/pki/der.ts';
import { certificateDigest, checkIssuedBy, identityOf, renewalTime, subjectFor } from '../../src/pki/identity.ts';
import { formatToken, newSecret, parseToken } from '../../src/pki/token.ts';
import { type KeyPair, createCertificate, generateKeyPair, ipBytes, keyIdentifier } from '../../src/pki/x509.ts';
import { temporaryDirectory } from './support/temporary.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const HOUR = 3600_000;

describe('DER writer', () => {
  test('INTEGER: minimal, positive, from numbers, bigints and magnitudes', () => {
    assert.equal(hex(der.integer(0)), '020100');
    assert.equal(hex(der.integer(127)), '02017f');
    assert.equal(hex(der.integer(128)), '02020080');
    assert.equal(hex(der.integer(256)), '02020100');
    assert.equal(hex(der.integer(2n ** 64n)), '0209010000000000000000');
    assert.equal(hex(der.integer(Uint8Array.of(0, 0, 0x12))), '020112');
    assert.equal(hex(der.integer(Uint8Array.of(0xff))), '020200ff');
    assert.throws(() => der.integer(-1), RangeError);
  });

  test('OBJECT IDENTIFIER: first two arcs in one octet, base-128 arcs', () => {
    assert.equal(hex(der.oid('1.2.840.10045.2.1')), '06072a8648ce3d0201');
    assert.equal(hex(der.oid('2.5.29.19')), '0603551d13');
    assert.equal(hex(der.oid('1.3.6.1.5.5.7.3.2')), '06082b06010505070302');
    assert.equal(der.readOid(der.read(der.oid('1.2.840.10045.4.3.2'))), '1.2.840.10045.4.3.2');
    for (const bad of ['1', '3.1', '1.40', '1.2.x', '1..2']) assert.throws(() => der.oid(bad), RangeError, bad);
  });

  test('lengths: short form below 128, long form above, minimal', () => {
    assert.equal(hex(der.octetString(new Uint8Array(127))).slice(0, 4), '047f');
    assert.equal(hex(der.octetString(new Uint8Array(128))).slice(0, 6), '048180');
    assert.equal(hex(der.octetString(new Uint8Array(300))).slice(0, 8), '0482012c');
    assert.throws(() => der.read(Uint8Array.of(0x04, 0x81, 0x05, 1, 2, 3, 4, 5)), /non-minimal length/);
    assert.throws(() => der.read(Uint8Array.of(0x04, 0x05, 1, 2)), /past the end/);
  });

  test('BOOLEAN TRUE is 0xff; named bits drop trailing zeros; SET OF is sorted', () => {
    assert.equal(hex(der.boolean(true)), '0101ff');
    assert.equal(hex(der.namedBits([5, 6])), '03020106'); // keyCertSign, cRLSign
    assert.equal(hex(der.namedBits([0])), '03020780'); // digitalSignature
    assert.equal(hex(der.namedBits([0, 8])), '0303078080');
    assert.equal(hex(der.set(der.integer(2), der.integer(1))), '3106020101020102');
  });

  test('times: UTCTime until 2049, GeneralizedTime from 2050, whole seconds in UTC', () => {
    assert.equal(Buffer.from(der.read(der.time(new Date('2026-01-02T03:04:05.678Z'))).content).toString(), '260102030405Z');
    assert.equal(der.time(new Date('2049-12-31T23:59:59Z'))[0], der.TAG.UTC_TIME);
    const late = der.read(der.time(new Date('2050-01-01T00:00:00Z')));
    assert.equal(late.tag, der.TAG.GENERALIZED_TIME);
    assert.equal(Buffer.from(late.content).toString(), '20500101000000Z');
  });

  test('iPAddress octets for IPv4 and IPv6', () => {
    assert.equal(hex(ipBytes('10.99.0.1')), '0a630001');
    assert.equal(hex(ipBytes('::1')), '00000000000000000000000000000001');
    assert.equal(hex(ipBytes('2001:db8::8:800:200c:417a')), '20010db80000000000080800200c417a');
    assert.equal(hex(ipBytes('::ffff:192.0.2.1')), '00000000000000000000ffffc0000201');
    assert.throws(() => ipBytes('host'), RangeError);
  });
});

interface Pki {
  caKeys: KeyPair;
  caPem: string;
  ca: X509Certificate;
}

function makeCa(commonName = 'vxnet cluster CA test'): Pki {
  const caKeys = generateKeyPair();
  const now = Date.now();
  const caPem = createCertificate({
    subject: { organization: 'vxnet', commonName },
    publicKey: caKeys.publicKey,
    selfSignKey: caKeys.privateKey,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * HOUR),
    isCa: true,
  });
  return { caKeys, caPem, ca: new X509Certificate(caPem) };
}

function issue(
  pki: Pki,
  role: 'worker' | 'admin' | 'manager',
  name: string,
  options: { altNames?: { dns?: string[]; ip?: string[] }; notBefore?: number; notAfter?: number } = {},
): { keys: KeyPair; pem: string; cert: X509Certificate } {
  const keys = generateKeyPair();
  const now = Date.now();
  const pem = createCertificate({
    subject: subjectFor(role, name),
    publicKey: keys.publicKey,
    issuer: { certificate: pki.ca, privateKey: pki.caKeys.privateKey },
    notBefore: new Date(options.notBefore ?? now - 60_000),
    notAfter: new Date(options.notAfter ?? now + HOUR),
    extendedKeyUsage: role === 'manager' ? ['serverAuth'] : ['clientAuth'],
    ...(options.altNames ? { altNames: options.altNames } : {}),
  });
  return { keys, pem, cert: new X509Certificate(pem) };
}

describe('X.509 certificates', () => {
  const pki = makeCa();

  test('the CA is self-signed, a CA, and names itself as issuer', () => {
    assert.equal(pki.ca.ca, true);
    assert.equal(pki.ca.subject, 'O=vxnet\nCN=vxnet cluster CA test');
    assert.equal(pki.ca.issuer, pki.ca.subject);
    assert.ok(pki.ca.checkIssued(pki.ca));
    assert.ok(pki.ca.verify(pki.caKeys.publicKey));
    assert.equal(pki.ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(pki.ca.serialNumber, /^[4-7][0-9A-F]{31}$/);
  });

  test('a node certificate chains to the CA and carries its identity and usage', () => {
    const node = issue(pki, 'worker', 'host1');
    assert.equal(node.cert.ca, false);
    assert.equal(node.cert.issuer, pki.ca.subject);
    assert.ok(node.cert.checkIssued(pki.ca));
    assert.ok(node.cert.verify(pki.ca.publicKey));
    assert.deepEqual(node.cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(checkIssuedBy(node.cert, pki.ca), undefined);
    const identity = identityOf(node.cert);
    assert.deepEqual({ role: identity?.role, name: identity?.name }, { role: 'worker', name: 'host1' });
    assert.equal(identity?.notAfter.getTime(), node.cert.validToDate.getTime());
  });

  test('the manager certificate carries its addresses and names as subjectAltName', () => {
    const server = issue(pki, 'manager', 'vxnet-manager', { altNames: { ip: ['10.99.0.1', '::1'], dns: ['localhost', 'm.example'] } });
    assert.equal(server.cert.subjectAltName, 'DNS:localhost, DNS:m.example, IP Address:10.99.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(server.cert.checkIP('10.99.0.1'), '10.99.0.1');
    assert.equal(server.cert.checkHost('m.example'), 'm.example');
    assert.equal(server.cert.checkIP('10.99.0.2'), undefined);
    assert.deepEqual(server.cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  });

  test('checkIssuedBy names what is wrong: another CA, expired, not yet valid', () => {
    const other = makeCa('another cluster');
    assert.equal(checkIssuedBy(issue(other, 'worker', 'x').cert, pki.ca), 'it is not signed by the cluster CA');
    // same issuer name, different key: the signature check catches it
    const impostor = makeCa('vxnet cluster CA test');
    assert.equal(checkIssuedBy(issue(impostor, 'worker', 'x').cert, pki.ca), 'it is not signed by the cluster CA');
    const now = Date.now();
    const expired = issue(pki, 'worker', 'old', { notBefore: now - 2 * HOUR, notAfter: now - HOUR });
    assert.match(checkIssuedBy(expired.cert, pki.ca) ?? '', /^it expired at /);
    const future = issue(pki, 'worker', 'new', { notBefore: now + HOUR, notAfter: now + 2 * HOUR });
    assert.match(checkIssuedBy(future.cert, pki.ca) ?? '', /^it is not valid before /);
  });

  test('identityOf accepts only the cluster subjects', () => {
    assert.equal(identityOf(pki.ca), undefined); // O=vxnet is no role
    assert.equal(identityOf(new X509Certificate(createCertificate({
      subject: { commonName: 'host1' },
      publicKey: generateKeyPair().publicKey,
      issuer: { certificate: pki.ca, privateKey: pki.caKeys.privateKey },
      notBefore: new Date(),
      notAfter: new Date(Date.now() + HOUR),
    }))), undefined);
    assert.equal(identityOf(issue(pki, 'admin', 'ops').cert)?.role, 'admin');
    assert.equal(identityOf(issue(pki, 'worker', 'bad name').cert), undefined, 'the name must be a valid node name');
  });

  test('the digest is the SHA-256 of the DER, as openssl prints it; renewal is due at two thirds', () => {
    assert.match(certificateDigest(pki.caPem), /^[0-9a-f]{64}$/);
    assert.equal(certificateDigest(pki.caPem), certificateDigest(pki.ca));
    const when = renewalTime({ notBefore: new Date(0), notAfter: new Date(30_000) });
    assert.equal(when.getTime(), 20_000);
  });

  test('the key identifiers link a certificate to its issuer', () => {
    const node = issue(pki, 'worker', 'h');
    const ext = (cert: X509Certificate, oid: string): der.Element | undefined => {
      const tbs = der.children(der.read(new Uint8Array(cert.raw)))[0]!;
      const extensions = der.children(der.children(der.children(tbs).at(-1)!)[0]!);
      const found = extensions.find((e) => der.readOid(der.children(e)[0]!) === oid);
      return found ? der.read(der.children(found).at(-1)!.content) : undefined;
    };
    const ski = ext(pki.ca, '2.5.29.14')!;
    assert.equal(hex(ski.content), hex(keyIdentifier(pki.caKeys.publicKey)));
    const aki = ext(node.cert, '2.5.29.35')!;
    assert.equal(hex(der.children(aki)[0]!.content), hex(keyIdentifier(pki.caKeys.publicKey)));
    // basicConstraints and keyUsage are critical
    const tbs = der.children(der.read(new Uint8Array(node.cert.raw)))[0]!;
    const extensions = der.children(der.children(der.children(tbs).at(-1)!)[0]!);
    const critical = extensions.filter((e) => der.children(e).length === 3).map((e) => der.readOid(der.children(e)[0]!));
    assert.deepEqual(critical.sort(), ['2.5.29.15', '2.5.29.19']);
  });
});

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;

describe('certificates as openssl sees them', { skip: openssl ? false : 'openssl is not installed' }, () => {
  const pki = makeCa();
  const dir = temporaryDirectory('vxnet-pki-');
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const ossl = (...args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });
  const caFile = file('ca.pem', pki.caPem);

  test('x509 -text shows the extensions; the fingerprint is our digest', () => {
    const text = ossl('x509', '-in', caFile, '-noout', '-text').stdout;
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /NIST CURVE: P-256/);
    const fingerprint = ossl('x509', '-in', caFile, '-noout', '-fingerprint', '-sha256').stdout;
    assert.equal(fingerprint.trim().split('=')[1]!.replaceAll(':', '').toLowerCase(), certificateDigest(pki.caPem));

    const node = file('node.pem', issue(pki, 'worker', 'host1').pem);
    const nodeText = ossl('x509', '-in', node, '-noout', '-text').stdout;
    assert.match(nodeText, /Subject: O ?= ?vxnet-worker, CN ?= ?host1/);
    assert.match(nodeText, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(nodeText, /X509v3 Key Usage: critical\s+Digital Signature/);
    assert.match(nodeText, /X509v3 Extended Key Usage:\s+TLS Web Client Authentication/);
  });

  test('verify: chains to the CA, for the right purpose only, and not to another CA', () => {
    const server = file('server.pem', issue(pki, 'manager', 'vxnet-manager', { altNames: { ip: ['127.0.0.1'] } }).pem);
    const node = file('node2.pem', issue(pki, 'worker', 'host2').pem);
    assert.equal(ossl('verify', '-CAfile', caFile, '-purpose', 'sslserver', server).status, 0);
    assert.equal(ossl('verify', '-CAfile', caFile, '-purpose', 'sslclient', node).status, 0);
    assert.notEqual(ossl('verify', '-CAfile', caFile, '-purpose', 'sslserver', node).status, 0, 'a node certificate is no server certificate');
    const otherCa = file('other.pem', makeCa().caPem);
    assert.notEqual(ossl('verify', '-CAfile', otherCa, node).status, 0);
    assert.equal(ossl('asn1parse', '-in', node, '-strparse', '4', '-noout').status, 0);
  });
});

describe('TLS handshakes with the certificates', () => {
  const pki = makeCa();
  const server = issue(pki, 'manager', 'vxnet-manager', { altNames: { ip: ['127.0.0.1'], dns: ['localhost'] } });

  /** One handshake: what the server saw of the client, or the client's error. */
  async function handshake(
    client: { cert?: string; key?: string; ca?: string; servername?: string },
    serverCreds: { cert: string; key: string } = { cert: server.pem, key: server.keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string },
  ): Promise<{ authorized: boolean; error?: string; subject?: string; clientError?: string }> {
    let seen: { authorized: boolean; error?: string; subject?: string } | undefined;
    const tlsServer = tls.createServer({ ...serverCreds, ca: [pki.caPem], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (socket) => {
      const peer = socket.getPeerX509Certificate();
      seen = { authorized: socket.authorized, ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}), ...(peer ? { subject: peer.subject } : {}) };
      socket.end('ok');
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    const port = (tlsServer.address() as AddressInfo).port;
    try {
      const clientError = await new Promise<string | undefined>((resolve) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ...(client.servername ? { servername: client.servername } : {}),
          ca: [client.ca ?? pki.caPem],
          ...(client.cert ? { cert: client.cert, key: client.key } : {}),
          minVersion: 'TLSv1.3',
        });
        socket.on('data', () => {});
        socket.on('end', () => resolve(undefined));
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      return { ...(seen ?? { authorized: false }), ...(clientError ? { clientError } : {}) };
    } finally {
      tlsServer.close();
    }
  }

  const pemKey = (keys: KeyPair) => keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

  test('a node certificate of the CA is verified by the server and names the node', async () => {
    const node = issue(pki, 'worker', 'host1');
    const seen = await handshake({ cert: node.pem, key: pemKey(node.keys) });
    assert.deepEqual(seen, { authorized: true, subject: 'O=vxnet-worker\nCN=host1' });
  });

  test('no client certificate: the connection stands, unauthenticated', async () => {
    const seen = await handshake({});
    assert.equal(seen.authorized, false);
    assert.equal(seen.subject, undefined);
    assert.equal(seen.clientError, undefined);
  });

  test("another CA's certificate is not authorized; nor is an expired one", async () => {
    const foreign = issue(makeCa(), 'worker', 'host1');
    const a = await handshake({ cert: foreign.pem, key: pemKey(foreign.keys) });
    assert.equal(a.authorized, false);
    assert.match(a.error ?? '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    const now = Date.now();
    const expired = issue(pki, 'worker', 'host1', { notBefore: now - 2 * HOUR, notAfter: now - HOUR });
    const b = await handshake({ cert: expired.pem, key: pemKey(expired.keys) });
    assert.equal(b.authorized, false);
    assert.equal(b.error, 'CERT_HAS_EXPIRED');
  });

  test('the client refuses a server outside the CA, with the wrong name, or with a node certificate', async () => {
    // (the server sends the CA after its certificate, as Node does when it finds it in its `ca`)
    assert.match((await handshake({ ca: makeCa().caPem })).clientError ?? '', /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/);
    assert.equal((await handshake({ servername: 'elsewhere.example' })).clientError, 'ERR_TLS_CERT_ALTNAME_INVALID');
    // a node certificate that even names the right address: OpenSSL's purpose check refuses clientAuth-only
    const node = issue(pki, 'worker', 'host1', { altNames: { ip: ['127.0.0.1'] } });
    const seen = await handshake({}, { cert: node.pem, key: pemKey(node.keys) });
    assert.equal(seen.clientError, 'INVALID_PURPOSE');
  });
});

describe('join tokens', () => {
  const digest = 'ab'.repeat(32);

  test('VXN1-<64 hex CA digest>-<52 base32 secret>, parsed back', () => {
    const secret = newSecret();
    assert.match(secret, /^[a-z2-7]{52}$/);
    assert.notEqual(newSecret(), secret);
    const token = formatToken(digest, secret);
    assert.equal(token, `VXN1-${digest}-${secret}`);
    assert.deepEqual(parseToken(token), { caDigest: digest, secret });
    assert.deepEqual(parseToken(`${token}\n`), { caDigest: digest, secret });
  });

  test('anything else is not a token', () => {
    const secret = newSecret();
    for (const text of ['', 'vxnet-admin-abc', `VXN2-${digest}-${secret}`, `VXN1-${digest.toUpperCase()}-${secret}`, `VXN1-${digest}-${secret}x`, `VXN1-${digest.slice(2)}-${secret}`]) {
      assert.equal(parseToken(text), undefined, text);
    }
    assert.throws(() => formatToken('nothex', secret), RangeError);
  });
});
