/**
 * `vxnet manager`, `vxnet agent`, `vxnet demo`: long-running commands that hand over to their module.
 * Each module is imported only when its command runs, so `vxnet network ls` loads none of them.
 * The annotations pin the signatures this file relies on; a change there fails the typecheck here.
 */
import type { Command } from '../args.ts';
import { type CommandContext, readCaFile } from './context.ts';

// Type-only imports: they keep the lazy imports below typed without loading the daemons for other commands.
type RunManager = typeof import('../../manager/main.ts').runManager;
type RunAgent = typeof import('../../agent/main.ts').runAgent;
type RunDemo = typeof import('../../demo/demo.ts').runDemo;

/** Daemon logs go to stderr, one line each; stdout stays free for output. */
function logTo(ctx: CommandContext): (line: string) => void {
  return (line) => ctx.stderr(`${line}\n`);
}

export async function manager(command: Extract<Command, { kind: 'manager' }>, ctx: CommandContext): Promise<number> {
  const { runManager }: { runManager: RunManager } = await import('../../manager/main.ts');
  const options: Parameters<RunManager>[0] = { dataDir: command.dataDir, listen: command.listen, log: logTo(ctx) };
  if (command.nodeDownAfterSeconds !== undefined) options.nodeDownAfterMs = command.nodeDownAfterSeconds * 1000;
  if (command.certLifetimeSeconds !== undefined) options.certLifetimeMs = command.certLifetimeSeconds * 1000;
  if (command.subjectAltNames !== undefined) options.subjectAltNames = command.subjectAltNames;
  await runManager(options, ctx.signal);
  return 0;
}

export async function agent(command: Extract<Command, { kind: 'agent' }>, ctx: CommandContext): Promise<number> {
  const { runAgent }: { runAgent: RunAgent } = await import('../../agent/main.ts');
  const options: Parameters<RunAgent>[0] = {
    managerUrl: command.connection.url,
    advertiseAddress: command.advertiseAddress,
    log: logTo(ctx),
  };
  // Without --name the agent uses the host name; without --token, the certificate in its state directory.
  if (command.name !== undefined) options.name = command.name;
  if (command.connection.token !== undefined) options.token = command.connection.token;
  if (command.connection.ca !== undefined) options.ca = readCaFile(command.connection.ca);
  if (command.stateDir !== undefined) options.stateDir = command.stateDir;
  if (command.watchTimeoutSeconds !== undefined) options.watchIdleMs = command.watchTimeoutSeconds * 1000;
  if (command.dockerSocket !== undefined) options.dockerSocket = command.dockerSocket;
  if (command.pluginSocket !== undefined) options.pluginSocket = command.pluginSocket;
  await runAgent(options, ctx.signal);
  return 0;
}

export async function demo(command: Extract<Command, { kind: 'demo' }>, ctx: CommandContext): Promise<number> {
  const { runDemo }: { runDemo: RunDemo } = await import('../../demo/demo.ts');
  return runDemo({ keep: command.keep, log: (line) => ctx.stdout(`${line}\n`) }, ctx.signal);
}
