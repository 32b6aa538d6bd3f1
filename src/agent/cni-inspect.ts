/** CHECK's look at a container's interface: its MAC and IPv4 addresses, read with `ip -j` inside its namespace. */
import { execute } from './kernel/exec.ts';

export interface InterfaceState {
  mac: string;
  /** "192.168.1.2/24" */
  addresses: string[];
}

/** The interface `ifname` in the namespace at `netns`, or undefined when it (or the namespace) is not there. */
export async function inspectInterface(netns: string, ifname: string): Promise<InterfaceState | undefined> {
  const result = await execute(['nsenter', `--net=${netns}`, 'ip', '-j', 'addr', 'show', 'dev', ifname], { allowFailure: true });
  if (result.code !== 0) return undefined;
  return parseAddrShow(result.stdout);
}

export function parseAddrShow(json: string): InterfaceState | undefined {
  const links = JSON.parse(json) as { address?: string; addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[];
  const link = links[0];
  if (!link || typeof link.address !== 'string') return undefined;
  const addresses = (link.addr_info ?? []).filter((a) => a.family === 'inet' && a.local !== undefined).map((a) => `${a.local}/${a.prefixlen}`);
  return { mac: link.address, addresses };
}
