/**
 * `vxnet ui [--listen 127.0.0.1:PORT]`: a live dashboard of the cluster in the browser — hosts, networks,
 * endpoints, the health of each peering, the topology drawn — served on a loopback address by this process,
 * which keeps the admin token to itself and only reads (why not on the manager: src/ui/server.ts). Prints the
 * page's address, with its secret, and runs until interrupted.
 */
import { parseListen } from '../../http/server.ts';
import { isLoopback } from '../../ui/loopback.ts';
import { connection, one, UsageError, type CommandModule, type Connection } from '../command.ts';

export const DEFAULT_UI_LISTEN = '127.0.0.1:7948';

export interface UiCommand {
  kind: 'ui';
  connection: Connection;
  listen: { kind: 'tcp'; host: string; port: number };
}

export const ui: CommandModule<UiCommand> = {
  path: 'ui',
  summary: 'serve a live dashboard of the cluster on this machine\'s loopback address',
  args: [],
  synopsis: '[--listen 127.0.0.1:PORT]',
  flags: [{ name: 'listen', kind: 'string', value: 'ADDR:PORT', help: `loopback address to serve on (default: ${DEFAULT_UI_LISTEN}; port 0: any free one)` }],
  connection: true,
  json: false,
  build(p) {
    const text = one(p, 'listen') ?? DEFAULT_UI_LISTEN;
    let listen;
    try {
      listen = parseListen(text);
    } catch {
      throw new UsageError(`--listen ${text} is invalid: expected ADDR:PORT.`);
    }
    if (listen.kind !== 'tcp' || listen.host === undefined || !isLoopback(listen.host)) {
      throw new UsageError(`--listen ${text} is not a loopback address: the dashboard is served on 127.0.0.1 or ::1 only.`);
    }
    return { kind: 'ui', connection: connection(p), listen: { kind: 'tcp', host: listen.host, port: listen.port } };
  },
  async run(command, ctx) {
    const { withClient } = await import('../context.ts');
    const { serveDashboard } = await import('../../ui/server.ts');
    const { readDashboard } = await import('../../ui/source.ts');
    return withClient(command.connection, async (client) => {
      await client.info(ctx.signal); // a wrong token or address fails here, in one sentence, before anything is served
      const server = await serveDashboard({ listen: command.listen, view: () => readDashboard(client, ctx.now, ctx.signal) });
      ctx.stdout(`dashboard on ${server.url} (Ctrl-C stops it)\n`);
      await new Promise<void>((resolve) => (ctx.signal.aborted ? resolve() : ctx.signal.addEventListener('abort', () => resolve(), { once: true })));
      await server.close();
      return 0;
    });
  },
};
