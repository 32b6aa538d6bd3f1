/**
 * Directories and files that hold secrets: the manager's DATA_DIR, the agent's state directory and token
 * files. They are checked at every start, not only when vxnet makes them: a directory made by hand or
 * restored from a backup keeps whatever mode it was given (0755 with 0644 files under a usual umask), and
 * a symbolic link or a foreign owner would let another user read or swap what vxnet keeps there.
 *
 * A directory is made 0700 and every file in it 0600 (group and others lose every bit), except the files
 * named public (certificates), which only lose write access for group and others. A symbolic link, or a
 * directory or entry owned by another user, is refused rather than fixed: vxnet cannot tell who else
 * relies on it.
 */
import { chmodSync, closeSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { VxnetError } from '../core/errors.ts';

export interface PrivateDirOptions {
  /** how messages name the directory, e.g. "DATA_DIR" or "the state directory" */
  label: string;
  /** who uses it, for messages: "the manager", "the agent" */
  daemon: string;
  /** files that others may read (certificates); every other file is made private */
  publicFiles: readonly string[];
  /** told once, in one line, when a mode had to be tightened */
  log: (line: string) => void;
  /** the owner every entry must have (default: this process's user) */
  uid?: number;
}

/**
 * Creates `dir` if needed (0700), refuses it when it or an entry in it is a symbolic link or belongs to
 * another user, and tightens the modes of the directory and its files. Subdirectories are not entered.
 */
export function securePrivateDir(dir: string, options: PrivateDirOptions): void {
  const uid = options.uid ?? process.getuid!();
  let own = lstatIfExists(dir);
  if (own === undefined) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    own = lstatSync(dir);
  }
  if (own.isSymbolicLink()) {
    throw new VxnetError('bad_request', `${options.label} ${dir} is a symbolic link: give ${options.daemon} the directory itself, owned by the user it runs as.`);
  }
  if (!own.isDirectory()) throw new VxnetError('bad_request', `${options.label} ${dir} is not a directory.`);
  refuseForeign(own, uid, `${options.label} ${dir} is owned`, options);
  const fixed: string[] = [];
  // the directory first: once it is 0700 nobody else can add, remove or rename entries while they are checked
  if ((own.mode & 0o777) !== 0o700) {
    chmodSync(dir, 0o700);
    fixed.push(`${dir} ${octal(own.mode)} -> 0700`);
  }
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const entry = lstatSync(path);
    if (entry.isSymbolicLink()) {
      throw new VxnetError(
        'bad_request',
        `${options.label} ${dir} holds a symbolic link, ${name}: replace it with the file itself, owned by the user ${options.daemon} runs as.`,
      );
    }
    refuseForeign(entry, uid, `${options.label} ${dir} holds ${name}, owned`, options);
    if (!entry.isFile()) continue;
    const mode = entry.mode & 0o777;
    const wanted = options.publicFiles.includes(name) ? mode & ~0o022 : mode & 0o700;
    if (wanted !== mode) {
      chmodSync(path, wanted);
      fixed.push(`${name} ${octal(mode)} -> ${octal(wanted)}`);
    }
  }
  if (fixed.length > 0) options.log(`made ${options.label} ${dir} private to its owner: ${fixed.join(', ')}`);
}

/** Creates `path` empty with mode 0600 unless it exists (an existing file keeps its content and mode). */
export function createPrivateFile(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
}

/**
 * The text of a file holding a secret (a token), trimmed. It must be a regular file (a link to one is
 * fine), owned by this process's user or root, and neither readable nor writable by group and others:
 * otherwise another local user could read the secret, or replace it with one that pins their own manager.
 */
export function readPrivateFile(path: string, what: string, uid: number = process.getuid!()): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new VxnetError('bad_request', `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
  }
  try {
    // checked on the open file, so the file read is the file checked
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new VxnetError('bad_request', `${what} ${path} is not a regular file: keep the token in a file of its own, mode 0600.`);
    if (stats.uid !== uid && stats.uid !== 0) {
      throw new VxnetError('bad_request', `${what} ${path} is owned by uid ${stats.uid}, who could change it: chown it to the user vxnet runs as.`);
    }
    if ((stats.mode & 0o077) !== 0) {
      throw new VxnetError('bad_request', `${what} ${path} is open to other users (mode ${octal(stats.mode)}): run "chmod 600 ${path}".`);
    }
    if (stats.size > MAX_SECRET_FILE_BYTES) throw new VxnetError('bad_request', `${what} ${path} is too large to hold a token (${stats.size} bytes).`);
    return readFileSync(fd, 'utf8').trim();
  } finally {
    closeSync(fd);
  }
}

/** A token is about 125 characters; anything much larger is the wrong file. */
const MAX_SECRET_FILE_BYTES = 4096;

function lstatIfExists(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function refuseForeign(stats: Stats, uid: number, subject: string, options: PrivateDirOptions): void {
  if (stats.uid === uid) return;
  throw new VxnetError(
    'bad_request',
    `${subject} by uid ${stats.uid}, not by the user ${options.daemon} runs as (uid ${uid}): chown it to that user, or run ${options.daemon} as its owner.`,
  );
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}
