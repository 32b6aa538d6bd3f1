/** `vxnet token rotate worker|admin`. */
import { connection, has, UsageError, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';

export interface TokenRotateCommand {
  kind: 'token-rotate';
  connection: Connection;
  role: 'worker' | 'admin';
  /** --json: print the API answer, {"role", "token"} */
  json?: true;
}

export const tokenRotate: CommandModule<TokenRotateCommand> = {
  path: 'token rotate',
  summary: 'replace the worker or the admin token (prints the new one); joined nodes are not affected',
  args: ['worker|admin'],
  synopsis: 'worker|admin',
  flags: [],
  connection: true,
  json: true,
  build(p) {
    const role = p.positionals[0];
    if (role !== 'worker' && role !== 'admin') throw new UsageError(`"vxnet token rotate" takes worker or admin, not "${role}".`);
    return { kind: 'token-rotate', connection: connection(p), role, ...(has(p, 'json') ? { json: true as const } : {}) };
  },
  /** Prints the new token: the manager shows it only this once (and saves it in DATA_DIR). */
  run: (command, ctx) => requestAndPrint(command, ctx, (client) => client.rotateToken(command.role, ctx.signal), (answer) => `${answer.token}\n`),
};
