/**
 * The simulated cluster's underlay: its addresses and the iproute2 batches that wire the namespaces to the
 * switch (see cluster.ts for the picture). Building a cluster and recreating a lost host use the same
 * lines, so a recreated host is wired exactly as it was.
 */
import { ipBatch } from './netns.ts';

export const DEFAULT_PREFIX = 'vxt';
export const UNDERLAY_SUBNET = '10.99.0.0/24';
export const UNDERLAY_PREFIX_LENGTH = 24;
export const SWITCH_ADDRESS = '10.99.0.1';
export const OUTSIDE_ADDRESS = '10.99.0.254';
/** TEST-NET-3 (RFC 5737): an address that is neither on the underlay nor in any overlay; held by "outside". */
export const INTERNET_ADDRESS = '203.0.113.1';
export const MANAGER_PORT = 7400;
export const UNDERLAY_DEVICE = 'eth0';
/** .11 .. .210: leaves .1 (switch) and .254 (outside) alone. */
export const MAX_HOSTS = 200;

export function hostAddress(index: number): string {
  return `10.99.0.${10 + index}`;
}

export interface SimHost {
  /** the node name its agent registers: "host1", "host2", ... */
  readonly name: string;
  /** 1-based */
  readonly index: number;
  readonly netns: string;
  /** underlay address, 10.99.0.(10 + index) */
  readonly address: string;
  readonly underlayDevice: string;
}

export interface Underlay {
  readonly switchNetns: string;
  readonly hosts: readonly SimHost[];
  readonly outside: { readonly netns: string; readonly address: string; readonly internetAddress: string } | undefined;
  readonly mtu: number;
}

/** The switch's port for a host: "h1", ... */
export function switchPort(host: SimHost): string {
  return `h${host.index}`;
}

/**
 * Wires namespaces that exist and are empty: the switch gets one bridge and one veth per host (and
 * outside), whose peers land in their namespaces as eth0 with the underlay address; hosts route by
 * default via the outside namespace, like a machine via its default gateway.
 */
export async function wireUnderlay(underlay: Underlay): Promise<void> {
  const { switchNetns, hosts, outside, mtu } = underlay;
  const switchLines = ['link set lo up', `link add br0 mtu ${mtu} type bridge mcast_snooping 0`];
  for (const host of hosts) switchLines.push(...switchPortLines(switchPort(host), host.netns, mtu));
  if (outside) switchLines.push(...switchPortLines('out', outside.netns, mtu));
  switchLines.push(`addr add ${SWITCH_ADDRESS}/${UNDERLAY_PREFIX_LENGTH} dev br0`, 'link set br0 up');
  await ipBatch(switchNetns, switchLines);
  await Promise.all([
    ...hosts.map((host) => ipBatch(host.netns, hostLines(underlay, host))),
    ...(outside ? [ipBatch(outside.netns, underlayLines(outside.address, [`addr add ${outside.internetAddress}/32 dev lo`]))] : []),
  ]);
}

/** Wires one host again, its namespace made anew and empty, its old switch port deleted: as wireUnderlay did. */
export async function rewireHost(underlay: Underlay, host: SimHost): Promise<void> {
  await ipBatch(underlay.switchNetns, switchPortLines(switchPort(host), host.netns, underlay.mtu));
  await ipBatch(host.netns, hostLines(underlay, host));
}

function switchPortLines(port: string, netns: string, mtu: number): string[] {
  return [
    `link add ${port} mtu ${mtu} type veth peer name ${UNDERLAY_DEVICE} netns ${netns} mtu ${mtu}`,
    `link set ${port} master br0`,
    `link set ${port} up`,
  ];
}

function hostLines(underlay: Underlay, host: SimHost): string[] {
  const { outside } = underlay;
  return underlayLines(host.address, outside ? [`route add default via ${outside.address} dev ${UNDERLAY_DEVICE}`] : []);
}

function underlayLines(address: string, extra: readonly string[]): string[] {
  return ['link set lo up', `link set ${UNDERLAY_DEVICE} up`, `addr add ${address}/${UNDERLAY_PREFIX_LENGTH} dev ${UNDERLAY_DEVICE}`, ...extra];
}
