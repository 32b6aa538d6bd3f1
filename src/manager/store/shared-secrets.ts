/**
 * The cluster CA and the two tokens, shared by every manager of one etcd store.
 *
 * With SQLite they live only in the manager's DATA_DIR. With several managers each must sign node
 * certificates with the same CA and accept the same tokens, so they are kept in the store as well, at
 * META_SECRETS, in this form:
 * - `caCertificate`: the CA certificate in clear (it is public; its digest is in every token);
 * - `adminHash`, `workerHash`: SHA-256 of the two token secrets, exactly what each manager holds in memory;
 * - `sealed`: the CA private key and both tokens, encrypted (AES-256-GCM) with a random 256-bit cluster key;
 * - `wrappedKey`: that cluster key, encrypted with a key derived (HKDF-SHA256, random salt) from the admin
 *   token's secret (256 random bits, so no slow KDF is needed).
 * Whoever can read etcd (its operators, its backups, a stolen disk) learns neither the CA key nor a token
 * without the admin token. A manager joins by proving it has the admin token (`--token-file`): with it,
 * it unwraps the cluster key and writes ca.pem, ca.key, admin.token and worker.token into its own DATA_DIR.
 * A rotated token is re-sealed (and, for the admin token, the cluster key re-wrapped) by the manager that
 * rotated it; the others follow the record's watch and rewrite their token files.
 */
import { X509Certificate, createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readIfExists, writeFileAtomic } from '../../pki/files.ts';
import { certificateDigest } from '../../pki/identity.ts';
import { parseToken } from '../../pki/token.ts';
import { CA_CERT_FILE, CA_KEY_FILE, ClusterAuthority } from '../authority.ts';
import { ADMIN_TOKEN_FILE, JoinTokens, type Role, type Tokens, writeTokenFile } from '../tokens.ts';
import type { Store } from './store.ts';

export const META_SECRETS = '/meta/secrets';
const HKDF_INFO = 'vxnet cluster key v1';

interface Sealed {
  iv: string;
  tag: string;
  data: string;
}

interface SecretsRecord {
  version: 1;
  caCertificate: string;
  adminHash: string;
  workerHash: string;
  wrappedKey: Sealed & { salt: string };
  sealed: Sealed;
}

interface Contents {
  caKey: string;
  admin: string;
  worker: string;
}

export interface SharedSecrets {
  /** this manager made the cluster (the store held none) */
  created: boolean;
  /** the cluster key: re-seals the record after a rotation */
  clusterKey: Buffer;
  /** modRevision of the record as read or written */
  revision: number;
  /** what the first manager had to make in DATA_DIR (for the one-time print of the tokens) */
  made: { ca: boolean; tokens: Role[] };
}

/**
 * Makes DATA_DIR hold the cluster's CA and tokens as the store has them, creating the shared record when
 * the store has none yet (the first manager). `tokenFile` holds the admin token a joining manager proves
 * itself with; without it, the admin.token already in DATA_DIR (a manager that joined before) is used.
 */
export async function establishSharedSecrets(
  store: Store,
  options: { dataDir: string; tokenFile?: string; storeName: string; commonName: string },
): Promise<SharedSecrets> {
  const existing = await store.get(META_SECRETS);
  if (existing) return joinCluster(existing.value, existing.modRevision, options);
  if (options.tokenFile !== undefined) {
    throw new Error(`${options.storeName} holds no vxnet cluster yet: start the first manager without --token-file, then the others with it.`);
  }
  const hadCa = readIfExists(join(options.dataDir, CA_CERT_FILE)) !== undefined;
  const { authority, created: caMade } = ClusterAuthority.loadOrCreate(options.dataDir, { commonName: options.commonName });
  const { tokens, created: tokensMade } = JoinTokens.open(options.dataDir, authority.digest);
  const caKey = readIfExists(join(options.dataDir, CA_KEY_FILE))!;
  const clusterKey = randomBytes(32);
  const record = makeRecord(authority.pem, { caKey, ...tokens }, clusterKey);
  const result = await store.txn([{ key: META_SECRETS, modRevision: 0 }], [{ type: 'put', key: META_SECRETS, value: JSON.stringify(record) }]);
  if (!result.succeeded) {
    const made = hadCa ? '' : ` (remove the ${CA_CERT_FILE}, ${CA_KEY_FILE} and token files this attempt left in ${options.dataDir})`;
    throw new Error(`another manager created the cluster in ${options.storeName} at the same time: start this one again with --token-file ADMIN_TOKEN_FILE${made}.`);
  }
  return { created: true, clusterKey, revision: result.revision, made: { ca: caMade, tokens: tokensMade } };
}

function joinCluster(value: string, revision: number, options: { dataDir: string; tokenFile?: string; storeName: string }): SharedSecrets {
  const record = JSON.parse(value) as SecretsRecord;
  const digest = certificateDigest(new X509Certificate(record.caCertificate));
  const source = options.tokenFile ?? join(options.dataDir, ADMIN_TOKEN_FILE);
  const text = readIfExists(source);
  if (text === undefined) {
    throw new Error(
      options.tokenFile !== undefined
        ? `cannot read the admin token file ${options.tokenFile}.`
        : `${options.storeName} already holds vxnet cluster ${digest.slice(0, 16)}…: give this manager the cluster's admin token with --token-file FILE to join it.`,
    );
  }
  const token = parseToken(text);
  if (!token) throw new Error(`${source} does not hold a vxnet token (VXN1-…).`);
  if (token.caDigest !== digest) throw new Error(`the admin token in ${source} is of another cluster than the one in ${options.storeName}.`);
  if (sha256(token.secret) !== record.adminHash) throw new Error(`the token in ${source} is not the current admin token of the cluster in ${options.storeName}.`);
  const clusterKey = unwrapKey(record.wrappedKey, token.secret);
  const contents = JSON.parse(unseal(clusterKey, record.sealed).toString('utf8')) as Contents;
  const localCa = readIfExists(join(options.dataDir, CA_CERT_FILE));
  if (localCa !== undefined && localCa !== record.caCertificate) {
    throw new Error(`${options.dataDir} holds the CA of another cluster than the one in ${options.storeName}: use an empty --data-dir for this manager.`);
  }
  // the key first, as ClusterAuthority does: a key without its certificate is refused, never replaced
  writeFileAtomic(join(options.dataDir, CA_KEY_FILE), contents.caKey, 0o600);
  writeFileAtomic(join(options.dataDir, CA_CERT_FILE), record.caCertificate, 0o644);
  writeTokenFile(options.dataDir, 'admin', contents.admin);
  writeTokenFile(options.dataDir, 'worker', contents.worker);
  return { created: false, clusterKey, revision, made: { ca: false, tokens: [] } };
}

/** The record's contents after a change by another manager (a rotation), or undefined if unreadable. */
export function openRecord(value: string, clusterKey: Buffer): Tokens | undefined {
  try {
    const record = JSON.parse(value) as SecretsRecord;
    const contents = JSON.parse(unseal(clusterKey, record.sealed).toString('utf8')) as Contents;
    return { admin: contents.admin, worker: contents.worker };
  } catch {
    return undefined;
  }
}

/**
 * Publishes a rotated token: re-seals the record (re-wrapping the cluster key for a new admin token), with a
 * compare-and-swap so that two rotations on two managers do not undo each other.
 */
export async function publishRotation(store: Store, clusterKey: Buffer, role: Role, token: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const kv = await store.get(META_SECRETS);
    if (!kv) throw new Error('the shared cluster secrets are missing from the store.');
    const record = JSON.parse(kv.value) as SecretsRecord;
    const contents = JSON.parse(unseal(clusterKey, record.sealed).toString('utf8')) as Contents;
    contents[role] = token;
    const next = makeRecord(record.caCertificate, contents, clusterKey);
    const result = await store.txn([{ key: META_SECRETS, modRevision: kv.modRevision }], [{ type: 'put', key: META_SECRETS, value: JSON.stringify(next) }]);
    if (result.succeeded) return;
  }
  throw new Error('could not publish the rotated token: the shared cluster secrets kept changing.');
}

function makeRecord(caCertificate: string, contents: Contents, clusterKey: Buffer): SecretsRecord {
  const admin = parseToken(contents.admin)!;
  const worker = parseToken(contents.worker)!;
  return {
    version: 1,
    caCertificate,
    adminHash: sha256(admin.secret),
    workerHash: sha256(worker.secret),
    wrappedKey: wrapKey(clusterKey, admin.secret),
    sealed: seal(clusterKey, Buffer.from(JSON.stringify(contents))),
  };
}

function wrapKey(clusterKey: Buffer, adminSecret: string): Sealed & { salt: string } {
  const salt = randomBytes(16);
  return { salt: salt.toString('base64'), ...seal(deriveKey(adminSecret, salt), clusterKey) };
}

function unwrapKey(wrapped: Sealed & { salt: string }, adminSecret: string): Buffer {
  return unseal(deriveKey(adminSecret, Buffer.from(wrapped.salt, 'base64')), wrapped);
}

function deriveKey(secret: string, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, HKDF_INFO, 32));
}

function seal(key: Buffer, plaintext: Buffer): Sealed {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

function unseal(key: Buffer, sealed: Sealed): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
