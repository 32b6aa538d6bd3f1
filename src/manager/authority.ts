/**
 * The cluster CA, kept by the manager in DATA_DIR: `ca.pem` (the certificate, 0644, public by design) and
 * `ca.key` (its ECDSA P-256 private key, 0600). Created at the first start and never changed afterwards:
 * its digest is in every join token, so replacing it means issuing new tokens and re-joining every node.
 *
 * The CA issues three kinds of certificates (src/pki/identity.ts for the subjects):
 * - the manager's TLS server certificate, made afresh at every start (and before it expires) for the
 *   addresses the manager listens on; its key never leaves memory;
 * - node certificates (role worker, CN = node name) for agents that join with the worker token;
 * - admin certificates for holders of the admin token who prefer a key pair to a bearer token.
 *
 * Every certificate starts a little before it is issued (at most a minute, at most a tenth of its
 * lifetime), so a node whose clock is slightly behind the manager's does not see it as "not yet valid".
 */
import { type KeyObject, X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { type CertificateIdentity, type CertificateRole, certificateDigest, checkIssuedBy, identityOf, subjectFor } from '../pki/identity.ts';
import { readIfExists, writeFileAtomic } from '../pki/files.ts';
import { createCertificate, generateKeyPair, isP256Key } from '../pki/x509.ts';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca.key';

const DAY_MS = 24 * 60 * 60 * 1000;
export const CA_LIFETIME_MS = 3650 * DAY_MS;
/** Node and admin certificates (`--cert-lifetime`); renewed by their holder at two thirds. */
export const DEFAULT_CERT_LIFETIME_MS = 30 * DAY_MS;
export const SERVER_CERT_LIFETIME_MS = 90 * DAY_MS;
const MAX_BACKDATE_MS = 60_000;

export interface IssuedCertificate {
  /** PEM */
  certificate: string;
  identity: CertificateIdentity;
}

export class ClusterAuthority {
  /** the CA certificate, PEM */
  readonly pem: string;
  readonly certificate: X509Certificate;
  /** hex SHA-256 of the CA certificate's DER: the digest join tokens carry */
  readonly digest: string;
  readonly #key: KeyObject;
  readonly #now: () => number;

  private constructor(pem: string, key: KeyObject, now: () => number) {
    this.pem = pem;
    this.certificate = new X509Certificate(pem);
    this.digest = certificateDigest(this.certificate);
    this.#key = key;
    this.#now = now;
  }

  /**
   * Loads the CA from `dataDir`, or creates it when neither file exists. A key without its certificate (or
   * the reverse) is refused rather than replaced: that would silently invalidate every token and node.
   */
  static loadOrCreate(dataDir: string, options: { commonName: string; now?: () => number }): { authority: ClusterAuthority; created: boolean } {
    const now = options.now ?? Date.now;
    const certPath = join(dataDir, CA_CERT_FILE);
    const keyPath = join(dataDir, CA_KEY_FILE);
    const certText = readIfExists(certPath);
    const keyText = readIfExists(keyPath);
    if (certText === undefined && keyText === undefined) {
      const keys = generateKeyPair();
      const issued = now();
      const pem = createCertificate({
        subject: { organization: 'vxnet', commonName: options.commonName },
        publicKey: keys.publicKey,
        selfSignKey: keys.privateKey,
        notBefore: new Date(issued - MAX_BACKDATE_MS),
        notAfter: new Date(issued + CA_LIFETIME_MS),
        isCa: true,
      });
      // the key first: a crash between the two writes leaves a key without a certificate, which is refused
      writeFileAtomic(keyPath, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
      writeFileAtomic(certPath, pem, 0o644);
      return { authority: new ClusterAuthority(pem, keys.privateKey, now), created: true };
    }
    if (certText === undefined || keyText === undefined) {
      const missing = certText === undefined ? CA_CERT_FILE : CA_KEY_FILE;
      throw new Error(`the cluster CA in ${dataDir} is incomplete: ${missing} is missing; restore it from a backup.`);
    }
    let key: KeyObject;
    let cert: X509Certificate;
    try {
      key = createPrivateKey(keyText);
      cert = new X509Certificate(certText);
    } catch (err) {
      throw new Error(`the cluster CA in ${dataDir} cannot be read: ${err instanceof Error ? err.message : String(err)}`);
    }
    const publicOfKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
    if (!isP256Key(key) || !cert.ca || !publicOfKey.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
      throw new Error(`the cluster CA in ${dataDir} is inconsistent: ${CA_KEY_FILE} is not the P-256 key of the CA certificate ${CA_CERT_FILE}.`);
    }
    return { authority: new ClusterAuthority(certText, key, now), created: false };
  }

  /** Issues a certificate for `name` in `role` to the holder of `publicKey`. */
  issue(request: { role: CertificateRole; name: string; publicKey: KeyObject; lifetimeMs: number; altNames?: { dns?: string[]; ip?: string[] } }): IssuedCertificate {
    const issued = this.#now();
    const notAfter = Math.min(issued + request.lifetimeMs, this.certificate.validToDate.getTime());
    const certificate = createCertificate({
      subject: subjectFor(request.role, request.name),
      publicKey: request.publicKey,
      issuer: { certificate: this.certificate, privateKey: this.#key },
      notBefore: new Date(issued - Math.min(MAX_BACKDATE_MS, request.lifetimeMs / 10)),
      notAfter: new Date(notAfter),
      extendedKeyUsage: request.role === 'manager' ? ['serverAuth'] : ['clientAuth'],
      ...(request.altNames ? { altNames: request.altNames } : {}),
    });
    return { certificate, identity: identityOf(new X509Certificate(certificate))! };
  }

  /**
   * A fresh key and server certificate for the manager's TLS listeners. `cert` holds the CA after the
   * leaf, so clients that pin the CA by digest can also see it in the handshake.
   */
  serverCredentials(altNames: { dns: string[]; ip: string[] }): { key: string; cert: string; notAfter: Date } {
    const keys = generateKeyPair();
    const { certificate, identity } = this.issue({
      role: 'manager',
      name: 'vxnet-manager',
      publicKey: keys.publicKey,
      lifetimeMs: SERVER_CERT_LIFETIME_MS,
      altNames,
    });
    return {
      key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      cert: certificate + this.pem,
      notAfter: identity.notAfter,
    };
  }

  /** Why `certificate` is not a valid certificate of this CA now, or undefined. */
  check(certificate: X509Certificate): string | undefined {
    return checkIssuedBy(certificate, this.certificate, new Date(this.#now()));
  }
}
