/**
 * Every command by its words, each module loaded only when its command runs. registry.ts imports all
 * twenty-five modules (help lists them, "did you mean" compares them), and with them the builders' and
 * runners' dependencies: ~60 KB of bundle that a `vxnet network ls` parsed and linked but never ran, ~20 ms
 * of a call (bench/cli-start.ts). A command line naming a command here is parsed against that one module
 * (flags.ts, the same rules and sentences as parse.ts); help, `vxnet help`, a bare group and a mistyped
 * command take parse.ts as before. test/unit/cli-registry.test.ts checks this index against the registry.
 */
import type { CommandModule, Env } from './command.ts';
import { invoke, isHelpToken, parseFlags, splitCommandWords, untilDoubleDash, type Invocation } from './flags.ts';

type Load = () => Promise<CommandModule>;

/** In the registry's order; each entry loads the module that declares the command with these words. */
export const COMMAND_INDEX: Readonly<Record<string, Load>> = {
  manager: async () => (await import('./commands/manager.ts')).manager,
  agent: async () => (await import('./commands/agent.ts')).agent,
  status: async () => (await import('./commands/status.ts')).status,
  'network create': async () => (await import('./commands/network-create.ts')).networkCreate,
  'network ls': async () => (await import('./commands/network-ls.ts')).networkList,
  'network inspect': async () => (await import('./commands/network-inspect.ts')).networkInspect,
  'network rm': async () => (await import('./commands/network-rm.ts')).networkRemove,
  'node ls': async () => (await import('./commands/node-ls.ts')).nodeList,
  'node inspect': async () => (await import('./commands/inspect.ts')).nodeInspect,
  'node rm': async () => (await import('./commands/node-rm.ts')).nodeRemove,
  'node update': async () => (await import('./commands/node-update.ts')).nodeUpdate,
  'node rotate-key': async () => (await import('./commands/node-rotate-key.ts')).nodeRotateKey,
  'endpoint ls': async () => (await import('./commands/endpoint-ls.ts')).endpointList,
  'endpoint inspect': async () => (await import('./commands/inspect.ts')).endpointInspect,
  attach: async () => (await import('./commands/attach.ts')).attach,
  detach: async () => (await import('./commands/detach.ts')).detach,
  'token rotate': async () => (await import('./commands/token-rotate.ts')).tokenRotate,
  capture: async () => (await import('./commands/capture.ts')).capture,
  trace: async () => (await import('./commands/trace.ts')).trace,
  ui: async () => (await import('./commands/ui.ts')).ui,
  'cni config': async () => (await import('./commands/cni-config.ts')).cniConfig,
  'cni install': async () => (await import('./commands/cni-install.ts')).cniInstall,
  demo: async () => (await import('./commands/demo.ts')).demo,
  version: async () => (await import('./commands/version.ts')).version,
  migrate: async () => (await import('./commands/manager-migrate.ts')).migrate,
};

/** A first word that only ever starts longer commands ("network"), as registry.ts's GROUPS are. */
export function isIndexedGroup(word: string): boolean {
  return !Object.hasOwn(COMMAND_INDEX, word) && Object.keys(COMMAND_INDEX).some((path) => path.startsWith(`${word} `));
}

/**
 * The invocation of a command line that names an indexed command and asks for no help, its module alone
 * loaded; undefined for every other line, which parse.ts then answers (it words every error of those).
 */
export async function resolveIndexed(argv: readonly string[], env: Env): Promise<Invocation | undefined> {
  const { words, leading, rest } = splitCommandWords(argv, isIndexedGroup);
  const path = words.join(' ');
  if (!Object.hasOwn(COMMAND_INDEX, path)) return undefined;
  if ([...leading, ...untilDoubleDash(rest)].some(isHelpToken)) return undefined;
  const spec = await COMMAND_INDEX[path]!();
  return invoke(spec, parseFlags(spec, [...leading, ...rest], env));
}
