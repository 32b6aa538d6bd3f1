/**
 * The two bearer tokens: admin (everything) and worker (what agents need). Created at the first start,
 * saved in DATA_DIR with mode 0600, and compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Role = 'admin' | 'worker';

export interface Tokens {
  admin: string;
  worker: string;
}

export const ADMIN_TOKEN_FILE = 'admin.token';
export const WORKER_TOKEN_FILE = 'worker.token';

/** Reads both tokens, creating missing ones; `created` lists the ones made now (to be shown once). */
export function loadOrCreateTokens(dataDir: string): { tokens: Tokens; created: Role[] } {
  const created: Role[] = [];
  const get = (role: Role, file: string): string => {
    const path = join(dataDir, file);
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text) {
      chmodSync(path, 0o600);
      return text;
    }
    const token = `vxnet-${role}-${randomBytes(24).toString('base64url')}`;
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, token + '\n', { mode: 0o600, flag: 'w' });
    renameSync(tmp, path);
    created.push(role);
    return token;
  };
  return { tokens: { admin: get('admin', ADMIN_TOKEN_FILE), worker: get('worker', WORKER_TOKEN_FILE) }, created };
}

/** The role a request's Authorization header grants, or undefined. */
export function authenticate(header: string | undefined, tokens: Tokens): Role | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) return undefined;
  const given = digest(match[1]!);
  // Hashing first makes the comparison constant-time regardless of the lengths involved.
  if (timingSafeEqual(given, digest(tokens.admin))) return 'admin';
  if (timingSafeEqual(given, digest(tokens.worker))) return 'worker';
  return undefined;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
