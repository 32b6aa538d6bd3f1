/**
 * The agent's identity in the cluster: a node certificate (O=vxnet-worker, CN=node name) issued by the
 * cluster CA, kept in the state directory (default /var/lib/vxnet/agent, mode 0700):
 *
 *   ca.pem     the cluster CA, the only one the agent trusts for the manager
 *   node.key   the node's ECDSA P-256 private key (0600); it never leaves this host
 *   node.pem   the node certificate
 *
 * First start: the join token pins the CA by digest. The client fetches the CA, refuses a manager whose CA
 * has another digest, then verifies the manager's certificate on every connection; the agent makes a key
 * pair and sends only the public key with `POST /v1/join`. Later starts use the stored certificate and need
 * no token. At two thirds of its lifetime the certificate is renewed over mTLS (a new key each time); if it
 * ever expires, the agent joins again when it was started with a token, and says so otherwise.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ManagerClient } from '../client/client.ts';
import { Backoff, MANAGER_RETRY, retryWithBackoff } from '../core/backoff.ts';
import { VxnetError, messageOf } from '../core/errors.ts';
import type { CertificateResponse } from '../core/model.ts';
import { readIfExists, writeFileAtomic } from '../pki/files.ts';
import { securePrivateDir } from '../pki/private-files.ts';
import { type CertificateIdentity, certificateDigest, checkIssuedBy, identityOf, renewalTime } from '../pki/identity.ts';
import { parseToken } from '../pki/token.ts';
import { type KeyPair, generateKeyPair } from '../pki/x509.ts';

export const DEFAULT_STATE_DIR = '/var/lib/vxnet/agent';
export const CA_FILE = 'ca.pem';
export const KEY_FILE = 'node.key';
export const CERT_FILE = 'node.pem';

export interface NodeCredentials {
  /** PEM texts */
  ca: string;
  cert: string;
  key: string;
  identity: CertificateIdentity;
}

export interface IdentityOptions {
  managerUrl: string;
  /** the worker join token; needed only when the state directory holds no usable certificate */
  token?: string | undefined;
  /** the cluster CA (PEM), instead of (or besides) the digest in the token */
  ca?: string | undefined;
  stateDir: string;
  /** node name */
  name: string;
  log: (line: string) => void;
}

/** The stored certificate when it is usable for `options`, or else the one a join gets. */
export async function obtainCredentials(options: IdentityOptions, signal: AbortSignal): Promise<NodeCredentials> {
  // node.key is the node's identity: refused in a directory another user owns or links to, made 0600 otherwise
  securePrivateDir(options.stateDir, { label: 'the state directory', daemon: 'the agent', publicFiles: [CA_FILE, CERT_FILE], log: options.log });
  let pinned: string | undefined;
  if (options.token !== undefined) {
    const token = parseToken(options.token);
    if (!token) throw new VxnetError('bad_request', 'the token is not a vxnet join token (VXN1-…): use the content of the manager\'s worker.token.');
    pinned = token.caDigest;
  }
  if (options.ca !== undefined) pinned = certificateDigest(options.ca);

  const stored = loadCredentials(options.stateDir);
  const unusable = whyUnusable(stored, options.name, pinned);
  if (unusable === undefined) {
    const { identity } = stored as NodeCredentials;
    options.log(`using the node certificate in ${options.stateDir} (serial ${identity.serialNumber}, valid until ${identity.notAfter.toISOString()})`);
    return stored as NodeCredentials;
  }
  if (options.token === undefined) {
    throw new VxnetError(
      'unauthorized',
      `no usable node certificate in ${options.stateDir} (${unusable}): start the agent with --token-file FILE (a copy of the manager's worker.token) to join the cluster.`,
    );
  }
  if (stored !== undefined) options.log(`not using the node certificate in ${options.stateDir}: ${unusable}; joining again`);
  return joinCluster(options, signal);
}

/** Joins with the token: a new key pair, its public half sent to the manager, the certificate stored. */
async function joinCluster(options: IdentityOptions, signal: AbortSignal): Promise<NodeCredentials> {
  const client = new ManagerClient({ url: options.managerUrl, token: options.token!, ...(options.ca === undefined ? {} : { ca: options.ca }) });
  try {
    const keys = generateKeyPair();
    const publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    // the manager may start after the agent: only its absence is retried, any other answer is final
    const answer = await retryWithBackoff(async () => {
      await refuseAdminToken(client, signal);
      return client.join({ name: options.name, publicKey }, signal);
    }, {
      backoff: new Backoff(MANAGER_RETRY),
      signal,
      retryable: (err) => err instanceof VxnetError && (err.code === 'unavailable' || err.code === 'timeout'),
      onRetry: (err, ms) => options.log(`could not join the cluster: ${messageOf(err)}; retrying in ${ms} ms`),
    });
    const credentials = save(options.stateDir, answer, keys);
    options.log(
      `joined the cluster as node ${options.name} (certificate serial ${credentials.identity.serialNumber}, valid until ${credentials.identity.notAfter.toISOString()})`,
    );
    return credentials;
  } finally {
    client.close();
  }
}

/**
 * Refuses to join with the admin token. Both tokens look alike (VXN1-digest-secret), so only the manager can
 * tell them apart: it answers `GET /v1/info` to the admin token and refuses it (403) to the worker token,
 * which admits nothing but `POST /v1/join`; an unknown token (401) is left for the join to refuse in its own
 * words. An agent holding the admin token would keep a credential for the whole cluster on every node.
 */
async function refuseAdminToken(client: ManagerClient, signal: AbortSignal): Promise<void> {
  try {
    await client.info(signal);
  } catch (err) {
    if (err instanceof VxnetError && (err.code === 'forbidden' || err.code === 'unauthorized')) return;
    throw err;
  }
  throw new VxnetError(
    'forbidden',
    "the agent was given the admin token and never joins with it: give it the worker token (the manager's DATA_DIR/worker.token) with --token-file FILE.",
  );
}

/**
 * Renews the certificate at two thirds of its lifetime, for as long as `signal` lets it; the client gets
 * each new certificate for its next connections. Failures are retried (a third of the lifetime is left for
 * that); an expired certificate means joining again, which needs the token.
 */
export async function keepRenewed(
  client: ManagerClient,
  initial: NodeCredentials,
  options: IdentityOptions,
  signal: AbortSignal,
): Promise<void> {
  let current = initial;
  const backoff = new Backoff(MANAGER_RETRY);
  while (!signal.aborted) {
    await sleepUntil(renewalTime(current.identity).getTime(), signal);
    if (signal.aborted) return;
    try {
      if (Date.now() >= current.identity.notAfter.getTime()) {
        if (options.token === undefined) {
          options.log(`the node certificate expired at ${current.identity.notAfter.toISOString()}; restart the agent with --token-file to join again`);
          return;
        }
        options.log('the node certificate has expired; joining again with the token');
        current = await joinCluster(options, signal);
      } else {
        const keys = generateKeyPair();
        const answer = await client.renewCertificate({ publicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }) as string }, signal);
        current = save(options.stateDir, answer, keys);
        options.log(`renewed the node certificate (serial ${current.identity.serialNumber}, valid until ${current.identity.notAfter.toISOString()})`);
      }
      client.setClientCertificate(current);
      backoff.reset();
    } catch (err) {
      if (signal.aborted) return;
      // retries come faster as the expiry nears: never more than a tenth of the time left
      const delay = backoff.next((current.identity.notAfter.getTime() - Date.now()) / 10);
      options.log(`renewing the node certificate failed: ${messageOf(err)}; retrying in ${delay} ms`);
      await sleepUntil(Date.now() + delay, signal);
    }
  }
}

/** What the state directory holds, or undefined when it holds no certificate. */
export function loadCredentials(stateDir: string): NodeCredentials | { problem: string } | undefined {
  const ca = readIfExists(join(stateDir, CA_FILE));
  const cert = readIfExists(join(stateDir, CERT_FILE));
  const key = readIfExists(join(stateDir, KEY_FILE));
  if (cert === undefined) return undefined;
  if (ca === undefined || key === undefined) return { problem: `${ca === undefined ? CA_FILE : KEY_FILE} is missing` };
  try {
    const x509 = new X509Certificate(cert);
    const identity = identityOf(x509);
    if (!identity || identity.role !== 'worker') return { problem: 'its certificate is not a node certificate' };
    const derived = createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'der' });
    if (!derived.equals(x509.publicKey.export({ type: 'spki', format: 'der' }))) return { problem: `${KEY_FILE} is not the key of ${CERT_FILE}` };
    const invalid = checkIssuedBy(x509, new X509Certificate(ca));
    if (invalid !== undefined) return { problem: `the certificate is no longer valid: ${invalid}` };
    return { ca, cert, key, identity };
  } catch (err) {
    return { problem: `the files cannot be read (${messageOf(err)})` };
  }
}

function whyUnusable(stored: ReturnType<typeof loadCredentials>, name: string, pinnedDigest: string | undefined): string | undefined {
  if (stored === undefined) return 'there is none yet';
  if ('problem' in stored) return stored.problem;
  if (stored.identity.name !== name) return `it is the certificate of node ${stored.identity.name}`;
  if (pinnedDigest !== undefined && certificateDigest(stored.ca) !== pinnedDigest) return 'it is of another cluster than the token';
  return undefined;
}

function save(stateDir: string, answer: CertificateResponse, keys: KeyPair): NodeCredentials {
  const identity = identityOf(new X509Certificate(answer.certificate));
  if (!identity) throw new VxnetError('internal', 'the manager answered with a certificate that names no node.');
  const key = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  // ca.pem is the same on every renewal; it is rewritten in case it was lost
  writeFileAtomic(join(stateDir, CA_FILE), answer.ca, 0o644);
  writeFileAtomic(join(stateDir, KEY_FILE), key, 0o600);
  writeFileAtomic(join(stateDir, CERT_FILE), answer.certificate, 0o644);
  return { ca: answer.ca, cert: answer.certificate, key, identity };
}

/** Sleeps until `deadline` (ms since the epoch) or the abort, in steps a timer can take (it overflows past ~24.8 days). */
async function sleepUntil(deadline: number, signal: AbortSignal): Promise<void> {
  while (!signal.aborted && Date.now() < deadline) {
    await delay(Math.min(deadline - Date.now(), 24 * 60 * 60 * 1000), undefined, { signal }).catch(() => {});
  }
}
