/**
 * The one choke point through which the kernel data plane runs host tools (ip, bridge, nft, nsenter) and
 * touches /proc/sys.
 *
 * Why it looks like this:
 * - argv arrays and spawn() without a shell: no value is ever interpreted by a shell.
 * - Batches go in on stdin (`ip -batch -`, `bridge -batch -`, `nft -f -`): one process for thousands of
 *   changes instead of one process per change.
 * - stdout goes to an already-unlinked temporary file, not a pipe. iproute2 flushes after every object it
 *   prints, so `ip -j neigh show` with 10,000 entries does 10,000 write() calls; through a pipe each one
 *   wakes the event loop (measured here: 35-45 ms per dump), into a file they are cheap (22-28 ms).
 *   Unlinking before the child starts means nothing is left behind, even if we crash.
 * - A non-zero exit throws HostToolError carrying argv, exit code and stderr, unless the caller asks for
 *   the result (batches run with -force and report failed lines on stderr; the caller attributes them).
 * - Runner is a small interface: unit tests of the apply logic use a recording fake, and namespace tests
 *   run the real tools inside a throwaway namespace through `createRunner({ netns })`.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, open, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { ErrorCode } from '../../core/errors.ts';

export interface RunOptions {
  /** written to the child's stdin (batch scripts) */
  input?: string;
  signal?: AbortSignal;
  /** resolve with the result instead of throwing when the exit code is not 0 */
  allowFailure?: boolean;
}

export interface RunResult {
  argv: readonly string[];
  /** exit code; 127 when the program could not be started, 128+N when killed by signal N */
  code: number;
  stdout: string;
  stderr: string;
  /** the process id the tool ran as, when it was started (our own writes are told apart by it: table-cache.ts) */
  pid?: number;
}

/** A long-running process whose output is delivered line by line (e.g. `ip monitor neigh`). */
export interface Watch {
  readonly pid: number | undefined;
  /** resolves with the exit code when the process has ended */
  readonly exited: Promise<number>;
  /** terminates the process; `exited` resolves once it is gone */
  stop(): void;
}

export interface Runner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /**
   * Starts a long-running tool and hands every output line to `onLine`. The process never keeps the
   * caller alive and is killed when the caller exits. Optional: without it the data plane reads all
   * entries on every pass.
   */
  watch?(argv: readonly string[], onLine: (line: string, stream: 'stdout' | 'stderr') => void): Watch;
  /** contents of a file such as /proc/sys/net/ipv4/ip_forward as seen from the runner's namespace; undefined when absent */
  readFile(path: string): Promise<string | undefined>;
  writeFile(path: string, content: string): Promise<void>;
  /** whether a path exists in the file system (namespace paths such as /run/netns/NAME) */
  exists(path: string): Promise<boolean>;
  /**
   * The names in a folder of the file system (such as /run/netns), undefined when it is absent. Optional:
   * without it the data plane asks a tool (`ip -j netns list`), one process more per pass.
   */
  listDir?(path: string): Promise<string[] | undefined>;
}

/**
 * Not a VxnetError: the edges translate only VxnetErrors into answers of their own (an HTTP status, a Docker
 * plugin's `Err`), and a failed host tool stays an internal failure there; its code names it in logs and
 * status reports.
 */
export class HostToolError extends Error {
  readonly code = 'host_tool_failed' satisfies ErrorCode;
  readonly argv: readonly string[];
  readonly exitCode: number;
  readonly stderr: string;
  constructor(argv: readonly string[], exitCode: number, stderr: string) {
    const detail = stderr.trim().split('\n').filter(Boolean).slice(-3).join(' / ') || 'no error output';
    super(`${argv.join(' ')} failed (exit ${exitCode}): ${detail}`);
    this.name = 'HostToolError';
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

const DEFAULT_TIMEOUT_MS = 120_000;

let outputDir: string | undefined;
async function outputDirectory(): Promise<string> {
  if (outputDir === undefined) {
    try {
      await access('/dev/shm', fsConstants.W_OK);
      outputDir = '/dev/shm';
    } catch {
      outputDir = tmpdir();
    }
  }
  return outputDir;
}

/** Runs argv directly (no shell); stdout is collected through an unlinked temporary file. */
export async function execute(argv: readonly string[], options: RunOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
  if (argv.length === 0) throw new TypeError('execute: empty argv');
  options.signal?.throwIfAborted();
  const dir = await outputDirectory();
  const path = `${dir}/vxnet-out-${process.pid}-${randomBytes(6).toString('hex')}`;
  // O_EXCL: never follow a planted symlink in a world-writable directory.
  const out = await open(path, 'wx+', 0o600);
  try {
    await unlink(path);
    const { code, stderr, pid } = await new Promise<{ code: number; stderr: string; pid?: number }>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        stdio: [options.input === undefined ? 'ignore' : 'pipe', out.fd, 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
        signal: options.signal,
      });
      // Our own timer rather than spawn's `timeout`: Node leaves that one armed when the program cannot be
      // started (nodejs/node#65504), and it then holds the process for the whole timeout.
      const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      const errChunks: Buffer[] = [];
      let spawnError: NodeJS.ErrnoException | undefined;
      child.stderr!.on('data', (chunk: Buffer) => errChunks.push(chunk));
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.name === 'AbortError') reject(options.signal?.reason ?? err);
        else spawnError = err;
      });
      if (child.stdin) {
        // A tool that stops early (ip neigh exits on the first kernel error) closes its stdin: ignore EPIPE.
        child.stdin.on('error', () => {});
        child.stdin.end(options.input);
      }
      child.on('close', (exitCode, signal) => {
        clearTimeout(timer);
        if (options.signal?.aborted) return reject(options.signal.reason);
        let stderrText = Buffer.concat(errChunks).toString('utf8');
        if (spawnError) {
          const missing = spawnError.code === 'ENOENT';
          return resolve({
            code: 127,
            stderr: missing ? `${argv[0]}: command not found` : `${argv[0]}: ${spawnError.message}`,
          });
        }
        if (signal) stderrText += `${stderrText ? '\n' : ''}killed by ${signal}`;
        const code = exitCode ?? 128 + (signal ? osConstants.signals[signal] : 0);
        resolve(child.pid === undefined ? { code, stderr: stderrText } : { code, stderr: stderrText, pid: child.pid });
      });
    });
    const { size } = await out.stat();
    const buffer = Buffer.allocUnsafe(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await out.read(buffer, offset, size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    const result: RunResult = { argv, code, stdout: buffer.toString('utf8', 0, offset), stderr, ...(pid === undefined ? {} : { pid }) };
    if (code !== 0 && !options.allowFailure) throw new HostToolError(argv, code, stderr);
    return result;
  } finally {
    await out.close();
  }
}

export interface RunnerOptions {
  /**
   * Run every tool inside this network namespace (absolute path, e.g. /run/netns/host1) through
   * `nsenter --net=PATH`. Used by tests that let a namespace stand for a host; the agent itself runs in
   * the host namespace and leaves this unset.
   */
  netns?: string;
  timeoutMs?: number;
}

/** The real runner. */
export function createRunner(options: RunnerOptions = {}): Runner {
  const prefix = options.netns ? ['nsenter', `--net=${options.netns}`] : [];
  const timeoutMs = options.timeoutMs;
  const run = (argv: readonly string[], runOptions: RunOptions = {}): Promise<RunResult> =>
    execute([...prefix, ...argv], { ...runOptions, timeoutMs });
  return {
    run,
    async readFile(path) {
      if (options.netns) {
        // /proc/sys/net is resolved in the namespace of the process that opens it.
        const result = await run(['cat', path], { allowFailure: true });
        return result.code === 0 ? result.stdout : undefined;
      }
      try {
        return await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async writeFile(path, content) {
      if (options.netns) {
        await run(['tee', path], { input: content });
        return;
      }
      await writeFile(path, content);
    },
    watch(argv, onLine) {
      // setpriv (util-linux) asks the kernel to SIGTERM the tool when we die, even by SIGKILL: a monitor
      // must never outlive the data plane (it would also keep a test's deleted namespace alive)
      return startWatch([...prefix, 'setpriv', '--pdeathsig', 'TERM', ...argv], onLine);
    },
    async exists(path) {
      try {
        await access(path);
        return true;
      } catch {
        return false;
      }
    },
    // the file system is the same whichever network namespace a tool runs in (`nsenter --net` keeps the mounts)
    async listDir(path) {
      try {
        return await readdir(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
  };
}

function startWatch(argv: readonly string[], onLine: (line: string, stream: 'stdout' | 'stderr') => void): Watch {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  const kill = () => child.kill('SIGTERM');
  // when the caller exits normally without stopping us (pdeathsig covers the rest)
  process.once('exit', kill);
  const exited = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('close', (code) => {
      process.removeListener('exit', kill);
      resolve(code ?? 128);
    });
  });
  for (const [stream, name] of [
    [child.stdout!, 'stdout'],
    [child.stderr!, 'stderr'],
  ] as const) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop()!;
      for (const line of parts) if (line) onLine(line, name);
    });
    // pipes from spawn() are sockets: unref so that watching never keeps the process alive
    (stream as unknown as { unref?: () => void }).unref?.();
  }
  child.unref();
  return {
    pid: child.pid,
    exited,
    stop() {
      child.ref(); // keep the caller alive until the process is reaped
      kill();
    },
  };
}

/** One failed line of a `-batch` run: its 0-based index in the script and the messages printed for it. */
export interface BatchLineFailure {
  line: number;
  message: string;
}

/**
 * iproute2 (`ip`, `bridge`) in `-batch` mode prints the error of a failed line followed by
 * "Command failed -:N" (N 1-based). Text after the last such marker, when the tool exited non-zero, means
 * it stopped early without naming a line (`ip neigh` exits on the first kernel error even with -force).
 */
export function parseBatchErrors(stderr: string): { failures: BatchLineFailure[]; trailing: string } {
  const failures: BatchLineFailure[] = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const marker = /^Command failed (?:-|[^:]*):(\d+)$/.exec(line);
    if (marker) {
      failures.push({ line: Number(marker[1]) - 1, message: pending.join(' / ') || 'failed' });
      pending = [];
    } else {
      pending.push(line);
    }
  }
  return { failures, trailing: pending.join(' / ') };
}
