/**
 * Whom the manager's client trusts over https (docs/security.md): a certificate of the cluster CA that
 * carries the manager's role, and a CA fetched before it is known only if its digest is the one pinned.
 */
import type { PeerCertificate } from 'node:tls';
import { VxnetError } from '../core/errors.ts';
import { certificateDigest } from '../pki/identity.ts';
import type { Schemas } from './watch-reader.ts';

/** The organisation (role) of the manager's server certificate (src/pki/identity.ts). */
const MANAGER_ORGANIZATION = 'vxnet-manager';

/**
 * The host name check plus the role: a certificate of the cluster CA that is not the manager's (a node's,
 * say) must never pass for the manager, whatever names it carries.
 */
export function checkManagerIdentity(host: string, cert: PeerCertificate): Error | undefined {
  // node:tls is taken here, when a TLS connection is checked, not at import: a CLI call over the manager's
  // unix socket never loads it (with node:crypto under it, ~10-30 ms of its start-up; bench/cli-start.ts).
  const mismatch = process.getBuiltinModule('node:tls').checkServerIdentity(host, cert);
  if (mismatch) return mismatch;
  const organization = cert.subject?.O;
  if (organization !== MANAGER_ORGANIZATION) {
    return Object.assign(new Error(`the certificate is not a vxnet manager's (O=${String(organization)})`), { code: 'NOT_A_MANAGER_CERT' });
  }
  return undefined;
}

/** The CA certificate in the manager's answer to `GET /v1/ca` (`body`), refused unless its digest is `pinned`. */
export function pinnedCa(url: string, body: string, pinned: string | undefined, schemas: Schemas): string {
  let certificate: string | undefined;
  let digest: string | undefined;
  try {
    const checked = schemas.check(schemas.CaResponseSchema, JSON.parse(body), 'response');
    if (checked.ok) {
      certificate = checked.value.certificate;
      digest = certificateDigest(certificate);
    }
  } catch {
    // reported below
  }
  if (certificate === undefined || digest === undefined) {
    throw new VxnetError('untrusted_manager', `the manager at ${url} did not send a CA certificate.`);
  }
  if (digest !== pinned) {
    throw new VxnetError(
      'untrusted_manager',
      `the manager at ${url} presented a CA that does not match the token (CA sha256 ${digest}, the token pins ${pinned}): refusing to trust it.`,
    );
  }
  return certificate;
}
