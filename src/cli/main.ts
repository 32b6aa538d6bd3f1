/**
 * The `vxnet` command. `main` takes argv, the environment and its output channels and returns the exit
 * status, so tests run it in-process; only the few lines at the bottom touch `process`.
 *
 * Exit status: 0 success, 1 an error from the manager (or the host), 2 a mistake in the command line,
 * 130 interrupted. Every error is one line, `vxnet: <sentence>`, on stderr.
 */
import { VxnetError } from '../core/errors.ts';
import type { CommandContext, Env } from './command.ts';
import { version } from './commands/version.ts';
import { cliWording, formatError } from './format.ts';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** aborted on SIGINT/SIGTERM; never aborted when omitted */
  signal?: AbortSignal;
  /** clock for relative times (tests pin it) */
  now?: () => Date;
  /** stderr is a terminal */
  stderrIsTTY?: boolean;
}

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export async function main(argv: readonly string[], env: Env, io: CliIo): Promise<number> {
  const signal = io.signal ?? new AbortController().signal;
  const ctx: CommandContext = {
    stdout: io.stdout,
    stderr: io.stderr,
    signal,
    now: io.now ?? (() => new Date()),
    ...(io.stderrIsTTY !== undefined ? { stderrIsTTY: io.stderrIsTTY } : {}),
  };
  try {
    // `vxnet --version` is what scripts call most and the start-up benchmark: it is answered before the
    // parser and the fourteen command modules are loaded (a third of the CLI's start-up time untranspiled).
    if (argv.length === 1 && (argv[0] === '--version' || argv[0] === 'version')) return await version.run({ kind: 'version' }, ctx);
    // A line naming one command loads that command's module alone (command-index.ts); help, a bare group
    // or a mistyped command load them all (parse.ts).
    const { resolveIndexed } = await import('./command-index.ts');
    const indexed = await resolveIndexed(argv, env);
    if (indexed) return await indexed.run(ctx);
    const { resolveCommandLine } = await import('./parse.ts');
    return await resolveCommandLine(argv, env).run(ctx);
  } catch (err) {
    if (err instanceof VxnetError && err.code === 'usage') {
      io.stderr(formatError(err.message));
      return EXIT_USAGE;
    }
    if (signal.aborted && (err === signal.reason || (err instanceof Error && err.name === 'AbortError'))) {
      io.stderr(formatError('interrupted.'));
      return EXIT_INTERRUPTED;
    }
    io.stderr(formatError(err instanceof VxnetError ? cliWording(err.message) : err instanceof Error ? err.message : String(err)));
    return EXIT_ERROR;
  }
}

if (import.meta.main) {
  const controller = new AbortController();
  // The first SIGINT/SIGTERM asks for a clean stop; the handlers are then removed, so a second one kills.
  const stop = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    controller.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // `vxnet network ls | head -1`: a reader that goes away is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  const code = await main(process.argv.slice(2), process.env, {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    signal: controller.signal,
    stderrIsTTY: process.stderr.isTTY === true,
  });
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.exitCode = code;
  // Every runner has awaited its work by now: exit once what was written has reached stdout and stderr,
  // instead of when the event loop runs dry. That skips Node's teardown of a natural end (the environment's
  // cleanup, then freeing the heap page by page): from the answer to the exit took 26 ms, now 5 (strace of
  // a `vxnet network ls` on a loaded machine; bench/cli-start.ts).
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  // Should a write never complete (a reader that stopped reading), do not hang.
  setTimeout(() => process.exit(code), 2_000).unref();
}
