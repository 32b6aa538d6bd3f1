/**
 * The CLI run in-process (src/cli/main.ts) against a stub manager: an HTTP server on a free loopback port
 * that the test answers as it likes, and a runner that collects what the CLI prints.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before } from 'node:test';
import { type CliIo, main } from '../../../src/cli/main.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `vxnet argv` in this process with `env` as its environment; `io` adds to the collectors (a clock, a signal). */
export async function runCli(argv: string[], env: Record<string, string>, io: Omit<CliIo, 'stdout' | 'stderr'> = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, env, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    ...io,
  });
  return { code, stdout, stderr };
}

/**
 * An HTTP server on 127.0.0.1 that answers with `handler`, listening before the first test of the calling
 * suite (or file) and closed, with its open connections, after the last. `url()` is its address from then on.
 */
export function stubManager(handler: http.RequestListener): { url(): string } {
  const server = http.createServer(handler);
  let url = '';
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: () => url };
}
