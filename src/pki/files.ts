/**
 * Key and certificate files: written whole or not at all (a temporary file in the same folder, then
 * rename), with their mode set at creation so a private key is never readable by others, not even briefly.
 */
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/** Writes `text` to `path` atomically with `mode` (0600 for secrets, 0644 for certificates). */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { mode, flag: 'w' });
    chmodSync(tmp, mode); // an existing leftover keeps its old mode through writeFileSync
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** The file's text, or undefined when it does not exist. */
export function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
