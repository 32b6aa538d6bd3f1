/**
 * Temporary folders of the unit tests, removed after the last test of the file that made them. They live
 * in /dev/shm (tmpfs) where the machine has it: the manager's store fsyncs every commit (synchronous=FULL),
 * which on a disk costs milliseconds a write and would make the suite wait on the disk rather than test
 * the logic. Nothing here survives a reboot, and nothing a unit test proves needs to.
 */
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

function inMemoryBase(): string | undefined {
  try {
    if (!statSync('/dev/shm').isDirectory()) return undefined;
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return undefined;
  }
}

const base = inMemoryBase() ?? tmpdir();
const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A new empty folder, removed after the last test of the file. */
export function temporaryDirectory(prefix = 'vxnet-test-'): string {
  const dir = mkdtempSync(join(base, prefix));
  made.push(dir);
  return dir;
}

/** The path of a database file that does not exist yet, in a folder of its own. */
export function temporaryDatabasePath(prefix = 'vxnet-test-'): string {
  return join(temporaryDirectory(prefix), 'vxnet.db');
}
