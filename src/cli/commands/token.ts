/** `vxnet token rotate worker|admin`. */
import type { Command } from '../args.ts';
import { withClient, type CommandContext } from './context.ts';

/** Prints the new token: the manager shows it only this once (and saves it in DATA_DIR). */
export async function tokenRotate(command: Extract<Command, { kind: 'token-rotate' }>, ctx: CommandContext): Promise<number> {
  const answer = await withClient(command.connection, (client) => client.rotateToken(command.role, ctx.signal));
  ctx.stdout(`${answer.token}\n`);
  return 0;
}
