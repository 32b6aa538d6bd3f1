/**
 * The two tokens (format in src/pki/token.ts): **worker**, which admits an agent to `POST /v1/join` and
 * nothing else, and **admin**, the operator's credential for every call. Both carry the CA digest.
 *
 * The full tokens are written to DATA_DIR/worker.token and DATA_DIR/admin.token (0600) for the operator;
 * the manager itself keeps only the SHA-256 of each secret and compares in constant time. A token file that
 * is missing, or holds a token of another CA or of the old `vxnet-…` form, is replaced by a new token at
 * start (and printed once). `rotate()` replaces a secret while running: the old token stops working at once,
 * and certificates already issued with it are not affected.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { readIfExists, writeFileAtomic } from '../pki/files.ts';
import { formatToken, newSecret, parseToken } from '../pki/token.ts';

export type Role = 'admin' | 'worker';

export interface Tokens {
  admin: string;
  worker: string;
}

export const ADMIN_TOKEN_FILE = 'admin.token';
export const WORKER_TOKEN_FILE = 'worker.token';
const FILES: Record<Role, string> = { admin: ADMIN_TOKEN_FILE, worker: WORKER_TOKEN_FILE };

export class JoinTokens {
  readonly #dataDir: string;
  readonly #caDigest: string;
  readonly #hashes = new Map<Role, Buffer>();
  /** told of every rotation (several managers on etcd: store/shared-secrets.ts publishes it to the others) */
  onRotate: ((role: Role, token: string) => void) | undefined;

  private constructor(dataDir: string, caDigest: string) {
    this.#dataDir = dataDir;
    this.#caDigest = caDigest;
  }

  /**
   * Reads both tokens, making new ones where a file is missing or does not hold a token of this CA.
   * `tokens` are the full tokens as of now (for the one-time print and for tests); `created` lists the new.
   */
  static open(dataDir: string, caDigest: string): { keeper: JoinTokens; tokens: Tokens; created: Role[] } {
    const keeper = new JoinTokens(dataDir, caDigest);
    const created: Role[] = [];
    const load = (role: Role): string => {
      const path = join(dataDir, FILES[role]);
      const text = readIfExists(path)?.trim();
      const parsed = text === undefined ? undefined : parseToken(text);
      if (text !== undefined && parsed?.caDigest === caDigest) {
        chmodSync(path, 0o600);
        keeper.#hashes.set(role, hash(parsed.secret));
        return text;
      }
      created.push(role);
      return keeper.rotate(role);
    };
    const tokens = { admin: load('admin'), worker: load('worker') };
    return { keeper, tokens, created };
  }

  /** The role a presented token grants, or undefined (unknown, rotated away, or of another CA). */
  roleOf(token: string): Role | undefined {
    const parsed = parseToken(token);
    if (!parsed || parsed.caDigest !== this.#caDigest) return undefined;
    const given = hash(parsed.secret);
    let role: Role | undefined;
    // both compared every time, in constant time: no timing hint about which one nearly matched
    for (const [candidate, expected] of this.#hashes) if (timingSafeEqual(given, expected)) role = candidate;
    return role;
  }

  /** A new secret for `role`: saved to its file, the old one refused from now on. Returns the new token. */
  rotate(role: Role): string {
    const secret = newSecret();
    const token = formatToken(this.#caDigest, secret);
    writeFileAtomic(join(this.#dataDir, FILES[role]), `${token}\n`, 0o600);
    this.#hashes.set(role, hash(secret));
    this.onRotate?.(role, token);
    return token;
  }

  /**
   * Takes tokens another manager rotated (several managers on etcd): the old ones are refused from now on
   * and the files are rewritten. Tokens of another CA are ignored.
   */
  adopt(tokens: Tokens): void {
    for (const role of ['admin', 'worker'] as const) {
      const parsed = parseToken(tokens[role]);
      if (!parsed || parsed.caDigest !== this.#caDigest) continue;
      writeTokenFile(this.#dataDir, role, tokens[role]);
      this.#hashes.set(role, hash(parsed.secret));
    }
  }

  /** True when `token` has the form of a token but another CA's digest: worth its own error message. */
  isOfAnotherCluster(token: string): boolean {
    const parsed = parseToken(token);
    return parsed !== undefined && parsed.caDigest !== this.#caDigest;
  }
}

/** Writes DATA_DIR's file of `role` (0600) unless it already holds `token`. */
export function writeTokenFile(dataDir: string, role: Role, token: string): void {
  const path = join(dataDir, FILES[role]);
  if (readIfExists(path)?.trim() !== token) writeFileAtomic(path, `${token}\n`, 0o600);
}

function hash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}
