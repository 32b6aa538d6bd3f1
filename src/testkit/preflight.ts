/**
 * What a simulated cluster needs from the machine: root (namespaces, links, nftables) and a few tools.
 * The demo and the integration tests check this first and say exactly what to install, instead of failing
 * somewhere inside an `ip` call.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface RequiredTool {
  command: string;
  debianPackage: string;
}

export const DEFAULT_TOOLS: readonly RequiredTool[] = [
  { command: 'ip', debianPackage: 'iproute2' },
  { command: 'bridge', debianPackage: 'iproute2' },
  { command: 'nft', debianPackage: 'nftables' },
  { command: 'nsenter', debianPackage: 'util-linux' },
  { command: 'ping', debianPackage: 'iputils-ping' },
  { command: 'tcpdump', debianPackage: 'tcpdump' },
  { command: 'iperf3', debianPackage: 'iperf3' },
];
export const defaultTools = DEFAULT_TOOLS;

/** Where commands are looked up: PATH, plus the sbin folders a non-login root shell may lack. */
function searchPath(): string[] {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  return dirs;
}

export function findCommand(command: string): string | undefined {
  if (command.includes('/')) return isExecutable(command) ? command : undefined;
  for (const dir of searchPath()) {
    const candidate = join(dir, command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The commands of `tools` that are not installed, in the order given. */
export function missingCommands(tools: readonly RequiredTool[] = DEFAULT_TOOLS): string[] {
  return tools.filter((tool) => findCommand(tool.command) === undefined).map((tool) => tool.command);
}

/**
 * One line per missing tool, ready to print, e.g. `command "nft" not found: apt-get install -y nftables`.
 * Empty when everything is installed.
 */
export function missingTools(tools: readonly RequiredTool[] = DEFAULT_TOOLS): string[] {
  return tools
    .filter((tool) => findCommand(tool.command) === undefined)
    .map((tool) => `command "${tool.command}" not found: apt-get install -y ${tool.debianPackage}`);
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * One clear paragraph about what is missing, or undefined when the machine is ready, e.g.
 * "missing commands: nft, iperf3. Install them with: apt-get install -y nftables iperf3".
 */
export function preflightProblems(tools: readonly RequiredTool[] = DEFAULT_TOOLS): string | undefined {
  const problems: string[] = [];
  if (!isRoot()) problems.push('must run as root (it creates network namespaces, links and nftables rules).');
  const missing = missingCommands(tools);
  if (missing.length > 0) {
    const packages = [...new Set(tools.filter((tool) => missing.includes(tool.command)).map((tool) => tool.debianPackage))];
    problems.push(`missing commands: ${missing.join(', ')}. Install them with: apt-get install -y ${packages.join(' ')}`);
  }
  return problems.length === 0 ? undefined : problems.join('\n');
}
