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
  /** the container's address with prefix */
  address: string;
}

/** Devices hbvx0 (VNI 4242), hbbr0 and hbveth0 on the host, eth0 in the container, all with `mtu`. */
export async function handBuiltVxlan(end: HandBuiltEnd, mtu = 1450): Promise<void> {
  const batch = [
    `link add hbvx0 type vxlan id 4242 local ${end.local} remote ${end.remote} dstport 4789 dev eth0`,
    `link set hbvx0 mtu ${mtu}`,
    'link add hbbr0 type bridge',
    'link set hbvx0 master hbbr0',
    `link add hbveth0 mtu ${mtu} type veth peer name hbc0 mtu ${mtu}`,
    'link set hbveth0 master hbbr0',
    `link set hbc0 netns ${end.container}`,
    'link set hbvx0 up',
    'link set hbbr0 up',
    'link set hbveth0 up',
  ].join('\n');
  await runChecked(['ip', 'netns', 'exec', end.hostNetns, 'ip', '-batch', '-'], { input: batch + '\n' });
  await runChecked(['nsenter', `--net=${end.container}`, 'ip', '-batch', '-'], {
    input: ['link set hbc0 name eth0', `addr add ${end.address} dev eth0`, 'link set eth0 up'].join('\n') + '\n',
  });
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
  await runChecked(['ip', 'netns', 'exec', end.hostNetns, 'ip', '-batch', '-'], {
    input: [`link add hsvx0 mtu ${mtu} type vxlan id 4243 local ${end.local} remote ${end.remote} dstport 4789 dev eth0`, `link set hsvx0 netns ${sandbox}`].join('\n') + '\n',
  });
  const inSandbox = [
    'link add hsbr0 type bridge',
    'link set hsvx0 master hsbr0',
    `link add hsveth0 mtu ${mtu} type veth peer name hsc0 mtu ${mtu}`,
    'link set hsveth0 master hsbr0',
    `link set hsc0 netns ${end.container}`,
    'link set hsvx0 up',
    'link set hsbr0 up',
    'link set hsveth0 up',
  ];
  await runChecked(['nsenter', `--net=${sandbox}`, 'ip', '-batch', '-'], { input: inSandbox.join('\n') + '\n' });
  await runChecked(['nsenter', `--net=${end.container}`, 'ip', '-batch', '-'], {
    input: ['link set hsc0 name eth0', `addr add ${end.address} dev eth0`, 'link set eth0 up'].join('\n') + '\n',
  });
}
