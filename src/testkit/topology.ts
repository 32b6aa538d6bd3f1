/**
 * The simulated cluster's underlay: its addresses and the iproute2 batches that wire the namespaces to the
 * switch (see cluster.ts for the picture). Building a cluster and recreating a lost host use the same
 * lines, so a recreated host is wired exactly as it was.
 */
import { ipBatch, setSysctls } from './netns.ts';

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

/**
 * An IPv6 underlay (`underlay: 'ipv6'`, docs/architecture.md "IPv6 underlay"): eth0 holds only fd99::(10 +
 * index)/64 (unique local, RFC 4193), and the IPv4 address moves to a second link, CONTROL_DEVICE, on the
 * same switch: the control plane (the manager at SWITCH_ADDRESS) stays IPv4 while VXLAN runs over IPv6.
 */
export const UNDERLAY6_PREFIX = 'fd99::';
export const UNDERLAY6_PREFIX_LENGTH = 64;
export const CONTROL_DEVICE = 'ctl0';
export function hostAddress6(index: number): string {
  return `${UNDERLAY6_PREFIX}${10 + index}`;
}

export interface SimHost {
  /** the node name its agent registers: "host1", "host2", ... */
  readonly name: string;
  /** 1-based */
  readonly index: number;
  readonly netns: string;
  /** underlay address, 10.99.0.(10 + index), or fd99::(10 + index) over an IPv6 underlay */
  readonly address: string;
  readonly underlayDevice: string;
  /** over an IPv6 underlay: the host's IPv4 address 10.99.0.(10 + index), on CONTROL_DEVICE */
  readonly controlAddress?: string;
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
  for (const host of hosts) switchLines.push(...hostPortLines(host, mtu));
  if (outside) switchLines.push(...switchPortLines('out', outside.netns, mtu));
  switchLines.push(`addr add ${SWITCH_ADDRESS}/${UNDERLAY_PREFIX_LENGTH} dev br0`, 'link set br0 up');
  await ipBatch(switchNetns, switchLines);
  await Promise.all([
    ...hosts.map(async (host) => {
      if (host.controlAddress !== undefined) await setSysctls(host.netns, UNDERLAY6_DEVICE_SYSCTLS);
      await ipBatch(host.netns, hostLines(underlay, host));
    }),
    ...(outside ? [ipBatch(outside.netns, underlayLines(outside.address, [`addr add ${outside.internetAddress}/32 dev lo`]))] : []),
  ]);
}

/** Wires one host again, its namespace made anew and empty, its old switch port deleted: as wireUnderlay did. */
export async function rewireHost(underlay: Underlay, host: SimHost): Promise<void> {
  await ipBatch(underlay.switchNetns, hostPortLines(host, underlay.mtu));
  if (host.controlAddress !== undefined) await setSysctls(host.netns, UNDERLAY6_DEVICE_SYSCTLS);
  await ipBatch(host.netns, hostLines(underlay, host));
}

/** The switch port of a host's control link (IPv6 underlay only): "c1", ... */
export function controlPort(host: SimHost): string {
  return `c${host.index}`;
}

function hostPortLines(host: SimHost, mtu: number): string[] {
  return [
    ...switchPortLines(switchPort(host), host.netns, mtu),
    ...(host.controlAddress !== undefined ? switchPortLines(controlPort(host), host.netns, mtu, CONTROL_DEVICE) : []),
  ];
}

function switchPortLines(port: string, netns: string, mtu: number, device = UNDERLAY_DEVICE): string[] {
  return [
    `link add ${port} mtu ${mtu} type veth peer name ${device} netns ${netns} mtu ${mtu}`,
    `link set ${port} master br0`,
    `link set ${port} up`,
  ];
}

function hostLines(underlay: Underlay, host: SimHost): string[] {
  const { outside } = underlay;
  if (host.controlAddress !== undefined) {
    // nodad: the address is usable at once (the kit hands out unique addresses)
    return [
      'link set lo up',
      `link set ${UNDERLAY_DEVICE} up`,
      `addr add ${host.address}/${UNDERLAY6_PREFIX_LENGTH} dev ${UNDERLAY_DEVICE} nodad`,
      `link set ${CONTROL_DEVICE} up`,
      `addr add ${host.controlAddress}/${UNDERLAY_PREFIX_LENGTH} dev ${CONTROL_DEVICE}`,
      ...(outside ? [`route add default via ${outside.address} dev ${CONTROL_DEVICE}`] : []),
    ];
  }
  return underlayLines(host.address, outside ? [`route add default via ${outside.address} dev ${UNDERLAY_DEVICE}`] : []);
}

/**
 * Sysctls of a host on an IPv6 underlay, before it is wired: IPv6 on, but off by default on links made later
 * (vxnet's bridges, VXLAN devices and veths stay quiet, as with IPv6 off), no router solicitations.
 */
export const UNDERLAY6_HOST_SYSCTLS: Record<string, string> = {
  'net.ipv6.conf.all.disable_ipv6': '0',
  'net.ipv6.conf.default.disable_ipv6': '1',
  'net.ipv6.conf.default.router_solicitations': '0',
  'net.ipv6.conf.default.accept_ra': '0',
  'net.ipv6.conf.lo.disable_ipv6': '0',
};

/** …and once eth0 exists (it was made with the default's IPv6 off): IPv6 on eth0 alone. */
export const UNDERLAY6_DEVICE_SYSCTLS: Record<string, string> = {
  [`net.ipv6.conf.${UNDERLAY_DEVICE}.disable_ipv6`]: '0',
};

function underlayLines(address: string, extra: readonly string[]): string[] {
  return ['link set lo up', `link set ${UNDERLAY_DEVICE} up`, `addr add ${address}/${UNDERLAY_PREFIX_LENGTH} dev ${UNDERLAY_DEVICE}`, ...extra];
}
