/**
 * Child processes for the test kit: one-shot commands that resolve with their exit code and output (never
 * rejecting on a non-zero exit), and long-running processes whose output is kept line by line in a ring
 * buffer so that a failing test can show what a daemon said last.
 *
 * Everything is spawned from an argv array, never through a shell.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunResult {
  /** exit code; 124 (as timeout(1)) when the command was killed for taking too long, 127 if it could not start */
  code: number;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export const DEFAULT_RUN_TIMEOUT_MS = 30_000;

/** Runs argv to completion. Resolves also on failure; the caller decides what a non-zero exit means. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [command, ...args] = argv;
  if (command === undefined) return Promise.reject(new Error('run: empty argv'));
  const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let err = Buffer.concat(stderr).toString('utf8');
      let exitCode = code ?? (signal ? 128 + signalNumber(signal) : 1);
      if (spawnError) {
        err += `${err && !err.endsWith('\n') ? '\n' : ''}${spawnError.message}\n`;
        exitCode = 127;
      }
      if (timedOut) {
        err += `${err && !err.endsWith('\n') ? '\n' : ''}killed after ${timeoutMs} ms: ${argv.join(' ')}\n`;
        exitCode = 124;
      }
      const result: RunResult = { code: exitCode, stdout: Buffer.concat(stdout).toString('utf8'), stderr: err };
      if (timedOut) result.timedOut = true;
      resolve(result);
    });
    // A child that exits without reading its stdin makes the write fail with EPIPE: not our error.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/**
 * Thrown by runChecked: carries argv, exit code and stderr. Not in the error catalogue: the test kit runs
 * only under tests, the demo and the benchmark, which report it as it is.
 */
export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly result: RunResult;
  constructor(argv: readonly string[], result: RunResult) {
    super(`${argv.join(' ')} exited with code ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'CommandError';
    this.argv = argv;
    this.result = result;
  }
}

/** Runs argv and rejects with a CommandError unless it exits 0. */
export async function runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(argv, options);
  if (result.code !== 0) throw new CommandError(argv, result);
  return result;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
function signalNumber(signal: NodeJS.Signals): number {
  return SIGNAL_NUMBERS[signal] ?? 0;
}

/** The last `capacity` lines written to it. */
export class RingBuffer<T = string> {
  readonly capacity: number;
  #lines: T[] = [];
  #start = 0;
  #dropped = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  push(line: T): void {
    if (this.#lines.length < this.capacity) {
      this.#lines.push(line);
      return;
    }
    this.#lines[this.#start] = line;
    this.#start = (this.#start + 1) % this.capacity;
    this.#dropped++;
  }

  /** Lines dropped because the buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  lines(): T[] {
    return [...this.#lines.slice(this.#start), ...this.#lines.slice(0, this.#start)];
  }
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildProcessHandle {
  readonly process: ChildProcess;
  readonly pid: number | undefined;
  /** a short name used in logs, e.g. "host1/agent" */
  readonly label: string;
  /** stdout and stderr lines as they came, joined with newlines (the last `capacity` lines) */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** undefined while the process runs */
  readonly exitInfo: ExitInfo | undefined;
  /** settles when the process has exited (never rejects) */
  readonly exited: Promise<ExitInfo>;
  /**
   * Resolves with the first output line (seen so far or later) that matches; rejects when the process
   * exits first or after timeoutMs.
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /**
   * Sends `signal` (default SIGTERM) and waits for the exit; escalates to SIGKILL after graceMs
   * (default 3000). Resolves at once if the process has already exited.
   */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitInfo>;
}

export interface StartOptions {
  label: string;
  /** lines kept per process (default 2000) */
  capacity?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** every output line also goes here, prefixed with the label */
  log?: (line: string) => void;
}

interface Line {
  stream: 'out' | 'err';
  text: string;
}

/** Starts a long-running process and keeps its output. */
export function start(argv: readonly string[], options: StartOptions): ChildProcessHandle {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('start: empty argv');
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  const buffer = new RingBuffer<Line>(options.capacity ?? 2000);
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  let exitInfo: ExitInfo | undefined;

  const addLine = (line: Line): void => {
    buffer.push(line);
    options.log?.(`[${options.label}] ${line.text}`);
    for (const waiter of waiters) {
      if (waiter.pattern.test(line.text)) waiter.resolve(line.text);
    }
  };
  const splitter = (stream: 'out' | 'err') => {
    let partial = '';
    return {
      data(chunk: Buffer): void {
        const parts = (partial + chunk.toString('utf8')).split('\n');
        partial = parts.pop() ?? '';
        for (const part of parts) addLine({ stream, text: part.replace(/\r$/, '') });
      },
      end(): void {
        if (partial) addLine({ stream, text: partial });
        partial = '';
      },
    };
  };
  const out = splitter('out');
  const err = splitter('err');
  child.stdout.on('data', out.data);
  child.stderr.on('data', err.data);

  const exited = new Promise<ExitInfo>((resolve) => {
    child.on('error', (error) => {
      // spawn failure (e.g. ENOENT): no 'close' follows when the process never started
      if (child.pid === undefined) {
        addLine({ stream: 'err', text: `failed to start: ${error.message}` });
        exitInfo = { code: 127, signal: null };
        resolve(exitInfo);
      }
    });
    child.on('close', (code, signal) => {
      out.end();
      err.end();
      exitInfo ??= { code, signal };
      resolve(exitInfo);
    });
  });

  const linesOf = (stream?: 'out' | 'err'): string =>
    buffer.lines()
      .filter((line) => stream === undefined || line.stream === stream)
      .map((line) => line.text)
      .join('\n');

  const handle: ChildProcessHandle = {
    process: child,
    pid: child.pid,
    label: options.label,
    output: () => linesOf(),
    stdout: () => linesOf('out'),
    stderr: () => linesOf('err'),
    get exitInfo() {
      return exitInfo;
    },
    exited,
    waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
      for (const line of buffer.lines()) {
        if (pattern.test(line.text)) return Promise.resolve(line.text);
      }
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (line: string) => {
            cleanup();
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${options.label}: no output line matching ${pattern} within ${timeoutMs} ms`));
        }, timeoutMs);
        const onExit = (info: ExitInfo) => {
          if (!waiters.has(waiter)) return;
          cleanup();
          reject(new Error(`${options.label} exited (${describeExit(info)}) before printing a line matching ${pattern}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(waiter);
        };
        waiters.add(waiter);
        void exited.then(onExit);
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<ExitInfo> {
      if (exitInfo) return exitInfo;
      child.kill(signal);
      if (signal === 'SIGKILL') return exited;
      let timer: NodeJS.Timeout | undefined;
      const escalate = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      const first = await Promise.race([exited, escalate.then(() => undefined)]);
      clearTimeout(timer);
      if (first) return first;
      child.kill('SIGKILL');
      return exited;
    },
  };
  return handle;
}

export function describeExit(info: ExitInfo | undefined): string {
  if (!info) return 'running';
  if (info.signal) return `killed by ${info.signal}`;
  return `exit code ${info.code}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
