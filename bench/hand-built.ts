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
