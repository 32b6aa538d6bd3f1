/**
 * A client-side cache of cluster CAs fetched by pinned digest, so that a CLI call over https needs one TLS
 * handshake instead of two (the unverified `GET /v1/ca`, then the request): measured by bench/cli-start.ts,
 * that first handshake was ~40 ms of a `vxnet network ls`.
 *
 * The file is named by the digest the token pins and read back only if its content still hashes to it, so
 * the cache adds no trust: a file someone swapped is ignored and the CA fetched again, exactly as without a
 * cache. It is best-effort both ways: an unreadable or unwritable folder only costs the extra handshake.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { certificateDigest } from '../pki/identity.ts';
import { readIfExists, writeFileAtomic } from '../pki/files.ts';

/** Where the CLI keeps it: `$XDG_CACHE_HOME/vxnet`, else `~/.cache/vxnet`; undefined without either variable. */
export function defaultCaCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'vxnet');
  if (env.HOME) return join(env.HOME, '.cache', 'vxnet');
  return undefined;
}

/** The digest comes from a token: 64 hex characters only, so it can never name a path outside the folder. */
const DIGEST = /^[0-9a-f]{64}$/;

function fileOf(dir: string, digest: string): string {
  return join(dir, `ca-${digest}.pem`);
}

/** The cached CA whose SHA-256 is `digest`, or undefined (missing, unreadable, not a certificate, or another one). */
export function readCachedCa(dir: string, digest: string): string | undefined {
  if (!DIGEST.test(digest)) return undefined;
  try {
    const pem = readIfExists(fileOf(dir, digest));
    return pem !== undefined && certificateDigest(pem) === digest ? pem : undefined;
  } catch {
    return undefined;
  }
}

/** Keeps `pem` (already checked against `digest`) for the next call; failures are ignored (see above). */
export function cacheCa(dir: string, digest: string, pem: string): void {
  if (!DIGEST.test(digest)) return;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(fileOf(dir, digest), pem, 0o644);
  } catch {
    // best-effort: the next call fetches it again
  }
}
