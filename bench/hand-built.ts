/**
 * The hand-built kernel VXLAN path of `npm run bench`, as the tutorials make it: `ip link add ... type vxlan`
 * with one remote, a bridge, a veth into a container namespace. It is the reference for vxnet's own
 * overhead: the same kernel devices with no control plane, no firewall and no anti-spoofing of their own.
 */
import { runChecked } from '../src/testkit/processes.ts';

export interface HandBuiltEnd {
  /** network namespace of the host */
  hostNetns: string;
  /** underlay addresses of this host and its peer */
  local: string;
  remote: string;
  /** container namespace path (/run/netns/NAME or /proc/PID/ns/net) */
  container: string;
  /** the container's address with prefix (IPv4, or IPv6 as in bench/ipv6.ts) */
  address: string;
}

/** Devices hbvx0 (VNI 4242), hbbr0 and hbveth0 on the host, eth0 in the container, all with `mtu`. */
export async function handBuiltVxlan(end: HandBuiltEnd, mtu = 1450): Promise<void> {
  const batch = [
    `link add hbvx0 type vxlan id 4242 local ${end.local} remote ${end.remote} dstport 4789 dev eth0`,
    `link set hbvx0 mtu ${mtu}`,
    ...bridgedVeth('hb', end.container, mtu),
  ];
  await ipBatch(['ip', 'netns', 'exec', end.hostNetns], batch);
  await containerEth0('hb', end);
}

/**
 * The hand-built path laid out as Swarm lays out its overlay (vxnet issue 19, candidate (d)): the VXLAN device
 * is created in the host namespace, so that its UDP socket stays there on the underlay, and then moved with
 * a bridge into a namespace of its own (`sandbox`, a namespace with no rules and no connection tracking);
 * the container's veth joins that bridge. Frames between containers then never meet the host's netfilter
 * hooks (br_netfilter, Docker's chains, conntrack): only the encapsulated datagrams do. Devices hsvx0 (VNI
 * 4243) in the host namespace until the move, hsbr0 and hsveth0 in the sandbox, eth0 in the container.
 */
export async function handBuiltSandbox(end: HandBuiltEnd, sandbox: string, mtu = 1450): Promise<void> {
  await ipBatch(['ip', 'netns', 'exec', end.hostNetns], [
    `link add hsvx0 mtu ${mtu} type vxlan id 4243 local ${end.local} remote ${end.remote} dstport 4789 dev eth0`,
    `link set hsvx0 netns ${sandbox}`,
  ]);
  await ipBatch(['nsenter', `--net=${sandbox}`], bridgedVeth('hs', end.container, mtu));
  await containerEth0('hs', end);
}

/**
 * Both layouts' bridge, in whichever namespace holds the VXLAN device `<p>vx0`: bridge `<p>br0` with that
 * device and veth `<p>veth0` as ports, the veth's peer `<p>c0` moved into the container, all up.
 */
function bridgedVeth(p: string, container: string, mtu: number): string[] {
  return [
    `link add ${p}br0 type bridge`,
    `link set ${p}vx0 master ${p}br0`,
    `link add ${p}veth0 mtu ${mtu} type veth peer name ${p}c0 mtu ${mtu}`,
    `link set ${p}veth0 master ${p}br0`,
    `link set ${p}c0 netns ${container}`,
    `link set ${p}vx0 up`,
    `link set ${p}br0 up`,
    `link set ${p}veth0 up`,
  ];
}

/**
 * The peer `<p>c0` in the container becomes eth0 with the end's address. An IPv6 address skips duplicate
 * address detection (nodad, as vxnet does), so that both ends answer at once.
 */
function containerEth0(p: string, end: HandBuiltEnd): Promise<unknown> {
  const nodad = end.address.includes(':') ? ' nodad' : '';
  return ipBatch(['nsenter', `--net=${end.container}`], [`link set ${p}c0 name eth0`, `addr add ${end.address} dev eth0${nodad}`, 'link set eth0 up']);
}

/** `ip -batch -` run by `enter` (the argv that puts it in a namespace) with these lines. */
function ipBatch(enter: readonly string[], lines: readonly string[]): Promise<unknown> {
  return runChecked([...enter, 'ip', '-batch', '-'], { input: `${lines.join('\n')}\n` });
}
