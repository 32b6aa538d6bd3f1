/** `vxnet demo`: a two-host cluster in network namespaces on this machine. */
import { has, type CommandModule } from '../command.ts';

// Type-only: keeps the lazy import below typed without loading the demo for other commands.
type RunDemo = typeof import('../../demo/demo.ts').runDemo;

export interface DemoCommand {
  kind: 'demo';
  keep: boolean;
}

export const demo: CommandModule<DemoCommand> = {
  path: 'demo',
  summary: 'run a two-host cluster in network namespaces on this machine and ping across it (root)',
  args: [],
  synopsis: '[--keep]',
  flags: [{ name: 'keep', kind: 'boolean', help: 'leave the cluster running for exploration' }],
  connection: false,
  json: false,
  build: (p) => ({ kind: 'demo', keep: has(p, 'keep') }),
  async run(command, ctx) {
    const { runDemo }: { runDemo: RunDemo } = await import('../../demo/demo.ts');
    return runDemo({ keep: command.keep, log: (line) => ctx.stdout(`${line}\n`) }, ctx.signal);
  },
};
