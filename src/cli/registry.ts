/**
 * Every command of `vxnet`, in the order `vxnet --help` lists them. A new command is one module in
 * commands/ and one line here; the Command type below follows from the list.
 */
import type { CommandModule } from './command.ts';
import { agent } from './commands/agent.ts';
import { attach } from './commands/attach.ts';
import { capture } from './commands/capture.ts';
import { cniConfig } from './commands/cni-config.ts';
import { cniInstall } from './commands/cni-install.ts';
import { demo } from './commands/demo.ts';
import { detach } from './commands/detach.ts';
import { endpointList } from './commands/endpoint-ls.ts';
import { endpointInspect, nodeInspect } from './commands/inspect.ts';
import { manager } from './commands/manager.ts';
import { migrate } from './commands/manager-migrate.ts';
import { networkCreate } from './commands/network-create.ts';
import { networkInspect } from './commands/network-inspect.ts';
import { networkList } from './commands/network-ls.ts';
import { networkRemove } from './commands/network-rm.ts';
import { nodeList } from './commands/node-ls.ts';
import { nodeRemove } from './commands/node-rm.ts';
import { nodeRotateKey } from './commands/node-rotate-key.ts';
import { nodeUpdate } from './commands/node-update.ts';
import { status } from './commands/status.ts';
import { tokenRotate } from './commands/token-rotate.ts';
import { trace } from './commands/trace.ts';
import { ui } from './commands/ui.ts';
import { version } from './commands/version.ts';

export const COMMANDS = [
  manager,
  agent,
  status,
  networkCreate,
  networkList,
  networkInspect,
  networkRemove,
  nodeList,
  nodeInspect,
  nodeRemove,
  nodeUpdate,
  nodeRotateKey,
  endpointList,
  endpointInspect,
  attach,
  detach,
  tokenRotate,
  capture,
  trace,
  ui,
  cniConfig,
  cniInstall,
  demo,
  version,
  migrate,
] as const;

/** First words that name a group of commands ("network create"), with the group's summary. */
export const GROUPS: Readonly<Record<string, string>> = {
  network: 'manage networks',
  node: 'list, update and remove nodes',
  endpoint: 'list endpoints',
  token: 'manage the join and admin tokens',
  cni: 'the CNI plugin for podman, Kubernetes and other CNI runtimes',
};

/** Help is answered by the parser itself; every other command is what its module's builder returns. */
export type Command = { kind: 'help'; text: string } | CommandOf<(typeof COMMANDS)[number]>;

type CommandOf<M> = M extends CommandModule<infer C> ? C : never;

export function findCommand(path: string): CommandModule | undefined {
  const list: readonly CommandModule[] = COMMANDS;
  return list.find((c) => c.path === path);
}
