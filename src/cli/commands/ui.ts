/**
 * `vxnet ui`: a live dashboard of the cluster in the browser, served on loopback by this command with its own
 * credentials (src/ui/server.ts says why not by the manager), until interrupted.
 */
import { checkListen, connection, one, UsageError, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';

export interface UiCommand {
  kind: 'ui';
  connection: Connection;
  listen: string;
}

export const DEFAULT_UI_LISTEN = '127.0.0.1:7480';

/** Loopback only: whoever reaches the page reads the cluster with this command's admin token. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export const ui: CommandModule<UiCommand> = {
  path: 'ui',
  summary: 'a live dashboard of hosts, networks and endpoints in the browser, on localhost',
  args: [],
  synopsis: '[--listen 127.0.0.1:PORT]',
  flags: [{ name: 'listen', kind: 'string', value: 'ADDR:PORT', help: `loopback address to serve the dashboard on (default: ${DEFAULT_UI_LISTEN})` }],
  connection: true,
  json: false,

  build(p) {
    const listen = one(p, 'listen') ?? DEFAULT_UI_LISTEN;
    if (listen.startsWith('unix:')) throw new UsageError(`--listen ${listen} is invalid: a browser connects over TCP; use 127.0.0.1:PORT.`);
    checkListen('listen', listen, false);
    const host = listen.slice(0, listen.lastIndexOf(':'));
    if (!isLoopback(host)) {
      throw new UsageError(
        `--listen ${listen} is refused: the dashboard reads the cluster with your admin token, so it listens on loopback only (127.0.0.1 or [::1]); from another machine, use ssh -L 7480:127.0.0.1:7480 and open it there.`,
      );
    }
    return { kind: 'ui', connection: connection(p), listen };
  },

  async run(command, ctx) {
    const [{ startDashboard }, { parseListen }] = await Promise.all([import('../../ui/server.ts'), import('../../http/server.ts')]);
    return withClient(command.connection, async (client) => {
      // the manager answers before the page opens, so a wrong address or token fails here, not in the browser
      await client.info(ctx.signal);
      const address = parseListen(command.listen);
      if (address.kind !== 'tcp') throw new UsageError(`--listen ${command.listen} is invalid: use 127.0.0.1:PORT.`);
      const dashboard = await startDashboard({ listen: address, client });
      ctx.stdout(`vxnet dashboard: ${dashboard.url}\n(open it in a browser on this machine; Ctrl-C stops it)\n`);
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await dashboard.close();
      return 0;
    });
  },
};
