/**
 * What a command gets from the outside world. Passed in (never taken from `process`) so that `main` can be
 * run in-process by the tests with captured output.
 */
import { ManagerClient } from '../../client/client.ts';
import type { Connection } from '../args.ts';

export interface CommandContext {
  stdout(text: string): void;
  stderr(text: string): void;
  /** aborted on SIGINT/SIGTERM */
  signal: AbortSignal;
  now(): Date;
}

/** Runs `use` with a client for the connection, closing its idle sockets afterwards. */
export async function withClient<T>(connection: Connection, use: (client: ManagerClient) => Promise<T>): Promise<T> {
  const client = new ManagerClient({ url: connection.url, token: connection.token });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}
