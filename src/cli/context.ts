/**
 * What runners share to reach the outside world: a client for a connection, the token and CA files it
 * names, and the daemons' log line. Runners load this module; builders (command.ts) never do.
 */
import { readFileSync } from 'node:fs';
import type { ManagerClient } from '../client/client.ts';
import { VxnetError } from '../core/errors.ts';
import { readPrivateFile } from '../pki/private-files.ts';
import { formatJson } from './format.ts';
import type { AgentConnection, CommandContext, Connection } from './command.ts';

/** Runs `use` with a client for the connection, closing its idle sockets afterwards. */
export async function withClient<T>(connection: Connection, use: (client: ManagerClient) => Promise<T>): Promise<T> {
  const ca = connection.ca === undefined ? {} : { ca: readCaFile(connection.ca) };
  const token = tokenOf(connection)!;
  // Imported here, not at the top: node:http, node:https and node:tls are most of the CLI's start-up time,
  // and only the commands that talk to the manager need them.
  const { ManagerClient, defaultCaCacheDir } = await import('../client/client.ts');
  // The cache keeps the pinned CA and, sealed with the token, the TLS session (src/client/tls-session.ts).
  const cacheDir = defaultCaCacheDir();
  const client = new ManagerClient({ url: connection.url, token, ...ca, ...(cacheDir === undefined ? {} : { caCacheDir: cacheDir, sessionCacheDir: cacheDir }) });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/**
 * The runner of most commands: one request with a client for the command's connection, its answer printed
 * as JSON with --json, otherwise as `human` writes it. Exit status 0; errors are thrown.
 */
export async function requestAndPrint<T>(
  command: { connection: Connection; json?: boolean },
  ctx: CommandContext,
  request: (client: ManagerClient) => Promise<T>,
  human: (answer: T) => string,
): Promise<number> {
  const answer = await withClient(command.connection, request);
  ctx.stdout(command.json ? formatJson(answer) : human(answer));
  return 0;
}

/** The token of a connection: the one given, or the content of its token file (checked, trimmed). */
export function tokenOf(connection: AgentConnection): string | undefined {
  return connection.tokenFile === undefined ? connection.token : readTokenFile(connection.tokenFile.path, `the token file (${connection.tokenFile.from})`);
}

/** The token a file holds: a private regular file (src/pki/private-files.ts), surrounding whitespace trimmed. */
export function readTokenFile(path: string, what: string): string {
  const token = readPrivateFile(path, what);
  if (token === '') throw new VxnetError('bad_request', `${what} ${path} is empty.`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new VxnetError('bad_request', `${what} ${path} holds spaces or control characters inside the token.`);
  return token;
}

/** The PEM text of a --ca file. */
export function readCaFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new VxnetError('bad_request', `cannot read the CA certificate ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
  }
}
