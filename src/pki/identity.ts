/**
 * Who a certificate of the cluster speaks for, and how it is checked.
 *
 * The identity lives in the subject: O is the role (`vxnet-worker`, `vxnet-admin`, `vxnet-manager`) and CN
 * the name (the node name for a worker). Only the cluster CA issues these certificates, and it writes the
 * role itself, so a certificate that chains to the CA cannot claim more than it was given. The CA is pinned
 * by the SHA-256 digest of its DER encoding (`openssl x509 -noout -fingerprint -sha256` shows the same
 * value with colons), which every join token carries.
 */
import type { X509Certificate } from 'node:crypto';
import { requireName } from '../core/names.ts';
import type { DistinguishedName } from './x509.ts';

export type CertificateRole = 'worker' | 'admin' | 'manager';

const ORGANIZATION: Record<CertificateRole, string> = {
  worker: 'vxnet-worker',
  admin: 'vxnet-admin',
  manager: 'vxnet-manager',
};

export interface CertificateIdentity {
  role: CertificateRole;
  /** node name (worker), admin name, or "vxnet-manager" */
  name: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

/** The subject of a certificate for `name` in `role`. */
export function subjectFor(role: CertificateRole, name: string): DistinguishedName {
  return { organization: ORGANIZATION[role], commonName: name };
}

/** The identity a certificate's subject names, or undefined when it is not one of the cluster's forms. */
export function identityOf(certificate: X509Certificate): CertificateIdentity | undefined {
  const fields = new Map<string, string[]>();
  for (const line of certificate.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) return undefined;
    const key = line.slice(0, eq);
    fields.set(key, [...(fields.get(key) ?? []), line.slice(eq + 1)]);
  }
  const organization = fields.get('O');
  const commonName = fields.get('CN');
  if (organization?.length !== 1 || commonName?.length !== 1 || fields.size !== 2) return undefined;
  const role = (Object.keys(ORGANIZATION) as CertificateRole[]).find((r) => ORGANIZATION[r] === organization[0]);
  if (!role) return undefined;
  try {
    requireName(commonName[0], 'certificate');
  } catch {
    return undefined;
  }
  return {
    role,
    name: commonName[0]!,
    serialNumber: certificate.serialNumber,
    notBefore: certificate.validFromDate,
    notAfter: certificate.validToDate,
  };
}

/** Lower-case hex SHA-256 of the certificate's DER encoding. */
export function certificateDigest(certificate: X509Certificate | string): string {
  // node:crypto is taken here, not imported: the CLI loads this module on every call and needs it only over
  // TLS, while loading node:crypto costs a unix-socket `vxnet network ls` ~5 ms of its start.
  const crypto = process.getBuiltinModule('node:crypto');
  const cert = typeof certificate === 'string' ? new crypto.X509Certificate(certificate) : certificate;
  return crypto.createHash('sha256').update(cert.raw).digest('hex');
}

/**
 * Why `certificate` is not a valid certificate of the CA at `now`, or undefined when it is: signed by the CA
 * (name chaining and signature), and inside its validity period. What TLS checks for a peer, for the places
 * that see a certificate outside a handshake.
 */
export function checkIssuedBy(certificate: X509Certificate, ca: X509Certificate, now: Date = new Date()): string | undefined {
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) return 'it is not signed by the cluster CA';
  if (now < certificate.validFromDate) return `it is not valid before ${certificate.validFromDate.toISOString()}`;
  if (now > certificate.validToDate) return `it expired at ${certificate.validToDate.toISOString()}`;
  return undefined;
}

/**
 * When a certificate should be renewed: at two thirds of its lifetime, as kubelet and Swarm do, which leaves
 * a third of it for retries while the manager is unreachable.
 */
export function renewalTime(certificate: { notBefore: Date; notAfter: Date }): Date {
  const from = certificate.notBefore.getTime();
  return new Date(from + ((certificate.notAfter.getTime() - from) * 2) / 3);
}
