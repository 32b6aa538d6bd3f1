/**
 * X.509 v3 certificates (RFC 5280) for vxnet's cluster PKI, built with the DER writer and signed with
 * node:crypto; parsing and verification are left to `crypto.X509Certificate` and to OpenSSL inside `tls`.
 *
 * Only what the cluster needs: ECDSA P-256 keys (small, fast to generate, supported by every TLS stack),
 * signatures ecdsa-with-SHA256, and the extensions that decide how OpenSSL treats a certificate:
 * - basicConstraints (critical): CA:TRUE with pathLen 0 on the cluster CA, CA:FALSE on every other;
 * - keyUsage (critical): keyCertSign + cRLSign on the CA, digitalSignature on leaves (ECDHE does the rest);
 * - extKeyUsage: serverAuth for the manager, clientAuth for nodes and admins. OpenSSL checks it as the
 *   "purpose" of the peer's certificate, so a node certificate can never serve as a manager's;
 * - subjectAltName: the manager's IP addresses and DNS names, checked by clients against the URL's host;
 * - subject/authorityKeyIdentifier: RFC 7093 method 1 (leftmost 160 bits of SHA-256 of the public key).
 */
import { type KeyObject, type X509Certificate, createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import * as der from './der.ts';

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** KeyUsage bit numbers (RFC 5280 4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

export interface DistinguishedName {
  commonName: string;
  organization?: string;
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A new ECDSA P-256 key pair. */
export function generateKeyPair(): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

/** True for an ECDSA P-256 key (public or private), the only kind the cluster issues for or signs with. */
export function isP256Key(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

export interface Issuer {
  certificate: X509Certificate;
  privateKey: KeyObject;
}

export interface CertificateOptions {
  subject: DistinguishedName;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** the signing CA; omitted: self-signed with `selfSignKey` (which must match `publicKey`) */
  issuer?: Issuer;
  selfSignKey?: KeyObject;
  /** a CA certificate (CA:TRUE, pathLen 0, keyCertSign) instead of a leaf */
  isCa?: boolean;
  extendedKeyUsage?: readonly ('serverAuth' | 'clientAuth')[];
  altNames?: { dns?: readonly string[]; ip?: readonly string[] };
  /** default: 16 random octets (positive, RFC 5280 4.1.2.2 allows up to 20) */
  serialNumber?: Uint8Array;
}

/** Builds and signs a certificate; returns it as PEM. */
export function createCertificate(options: CertificateOptions): string {
  const { publicKey } = options;
  if (!isP256Key(publicKey)) throw new TypeError('createCertificate: the subject key must be an ECDSA P-256 key.');
  const signingKey = options.issuer?.privateKey ?? options.selfSignKey;
  if (!signingKey || !isP256Key(signingKey) || signingKey.type !== 'private') {
    throw new TypeError('createCertificate: an ECDSA P-256 private key must sign (issuer.privateKey or selfSignKey).');
  }
  if (!(options.notAfter.getTime() > options.notBefore.getTime())) {
    throw new RangeError('createCertificate: notAfter must come after notBefore.');
  }

  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const subject = encodeName(options.subject);
  const issuerName = options.issuer ? subjectNameOf(options.issuer.certificate) : subject;
  const authorityKeyId = options.issuer ? keyIdentifier(options.issuer.certificate.publicKey) : keyIdentifier(publicKey);
  const algorithm = der.sequence(der.oid(OID.ecdsaWithSha256));

  const extensions: der.Der[] = [];
  extensions.push(
    extension(OID.basicConstraints, true, options.isCa ? der.sequence(der.boolean(true), der.integer(0)) : der.sequence()),
    extension(
      OID.keyUsage,
      true,
      der.namedBits(options.isCa ? [KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign] : [KEY_USAGE.digitalSignature]),
    ),
  );
  if (options.extendedKeyUsage && options.extendedKeyUsage.length > 0) {
    extensions.push(extension(OID.extKeyUsage, false, der.sequence(...options.extendedKeyUsage.map((usage) => der.oid(OID[usage])))));
  }
  const names = altNames(options.altNames);
  if (names.length > 0) extensions.push(extension(OID.subjectAltName, false, der.sequence(...names)));
  extensions.push(
    extension(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(publicKey))),
    extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, authorityKeyId))),
  );

  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // v3
    der.integer(options.serialNumber ?? randomSerial()),
    algorithm,
    issuerName,
    der.sequence(der.time(options.notBefore), der.time(options.notAfter)),
    subject,
    spki,
    der.explicit(3, der.sequence(...extensions)),
  );
  // node:crypto signs EC keys as a DER ECDSA-Sig-Value, which is what X.509 carries in the BIT STRING.
  const signature = sign('sha256', tbs, signingKey);
  return toPem(der.sequence(tbs, algorithm, der.bitString(new Uint8Array(signature))), 'CERTIFICATE');
}

/** PEM armour: base64 in 64-character lines between BEGIN/END markers (RFC 7468). */
export function toPem(bytes: Uint8Array, label: string): string {
  const base64 = Buffer.from(bytes).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Uint8Array {
  const spki = der.read(new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })));
  const bits = der.children(spki)[1];
  if (!bits || bits.tag !== der.TAG.BIT_STRING) throw new TypeError('keyIdentifier: malformed SubjectPublicKeyInfo.');
  return new Uint8Array(createHash('sha256').update(bits.content.subarray(1)).digest().subarray(0, 20));
}

function randomSerial(): Uint8Array {
  const serial = new Uint8Array(randomBytes(16));
  // positive and exactly 16 octets long: top bit clear, next bit set
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
  return serial;
}

function encodeName(name: DistinguishedName): der.Der {
  const rdns: der.Der[] = [];
  const attribute = (type: string, value: string) => der.set(der.sequence(der.oid(type), der.utf8String(value)));
  if (name.organization !== undefined) rdns.push(attribute(OID.organization, name.organization));
  rdns.push(attribute(OID.commonName, name.commonName));
  return der.sequence(...rdns);
}

/** The subject Name of a certificate, byte for byte (an issued certificate's issuer must equal it). */
function subjectNameOf(certificate: X509Certificate): der.Der {
  const tbs = der.children(der.read(new Uint8Array(certificate.raw)))[0];
  if (!tbs) throw new TypeError('malformed certificate: no TBSCertificate.');
  const fields = der.children(tbs);
  // version [0] is optional (absent in v1 certificates); subject follows serial, signature, issuer, validity
  const subject = fields[fields[0]?.tag === 0xa0 ? 5 : 4];
  if (!subject || subject.tag !== der.TAG.SEQUENCE) throw new TypeError('malformed certificate: no subject Name.');
  return subject.raw;
}

function extension(id: string, critical: boolean, value: der.Der): der.Der {
  return critical
    ? der.sequence(der.oid(id), der.boolean(true), der.octetString(value))
    : der.sequence(der.oid(id), der.octetString(value));
}

function altNames(names: CertificateOptions['altNames']): der.Der[] {
  const out: der.Der[] = [];
  for (const dns of names?.dns ?? []) {
    // dNSName is an IA5String (RFC 5280 4.2.1.6): printable ASCII, and here no spaces either
    if (!/^[\x21-\x7e]{1,253}$/.test(dns)) throw new RangeError(`"${dns}" cannot be a DNS name in a certificate.`);
    out.push(der.implicitPrimitive(2, new TextEncoder().encode(dns)));
  }
  for (const ip of names?.ip ?? []) out.push(der.implicitPrimitive(7, ipBytes(ip)));
  return out;
}

/** The 4 or 16 octets of an IPv4 or IPv6 address, as an iPAddress GeneralName carries them. */
export function ipBytes(text: string): Uint8Array {
  const version = isIP(text);
  if (version === 4) return Uint8Array.from(text.split('.').map(Number));
  if (version !== 6) throw new RangeError(`"${text}" is not an IP address.`);
  let address = text;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (v4) {
    tail.push(...v4[1]!.split('.').map(Number));
    address = `${address.slice(0, -v4[1]!.length)}0:0`;
  }
  const [head = '', rest] = address.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  if (tail.length === 4) bytes.set(tail, 12);
  return bytes;
}
