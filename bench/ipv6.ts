/**
 * The IPv6 section of `npm run bench` (vxnet issue 15): container to container across two simulated hosts
 * over IPv6 inside a vxnet network, next to the same traffic over a hand-built IPv6-in-VXLAN path between
 * the same hosts (the tutorial's devices, as bench/hand-built.ts makes them, with IPv6 addresses inside),
 * vxnet's IPv4 inside the same kind of network, and the bare underlay, in one run of interleaved rounds
 * (bench/traffic.ts). The reference for vxnet's IPv6 overhead is the hand-built path: same kernel devices,
 * no control plane, no firewall, no anti-spoofing.
 *
 * The section first checks the MTU arithmetic it relies on: a full inner IPv6 packet (the network's MTU)
 * with don't-fragment crosses vxnet's network.
 */
import { endpointAddresses } from '../src/core/model.ts';
import { netnsPath } from '../src/testkit/netns.ts';
import { comparisonTable, measureSection, withAdminClient, type DataPlaneOptions, type DataPlaneResult } from './data-plane-section.ts';
import { handBuiltVxlan } from './hand-built.ts';
import { ratio } from './stats.ts';
import type { TrafficPath, TrafficSummary } from './traffic.ts';

export type Ipv6BenchOptions = DataPlaneOptions;
export type Ipv6BenchResult = DataPlaneResult;

/** The hand-built path's containers: fd00:4242::1 and ::2, apart from vxnet's network. */
const HAND_BUILT_PREFIX = 'fd00:4242::';

export async function ipv6DataPlane(options: Ipv6BenchOptions): Promise<Ipv6BenchResult> {
  const { log } = options;
  log(`ipv6: iperf3 ${options.seconds}s (1 and ${options.streams} streams) × ${options.rounds} rounds per path, ping RTT ...`);
  return withAdminClient({ hosts: 2, outside: false, ipv6: true, prefix: 'vxbsix' }, async (cluster, client) => {
    const [h1, h2] = [cluster.host('host1'), cluster.host('host2')];
    const six = await client.createNetwork({ name: 'six', subnets: [{ cidr: 'fd00:70::/64' }] });
    await client.createNetwork({ name: 'four', subnets: [{ cidr: '10.87.0.0/24' }] });
    const [s1, s2, f1, f2, hb1, hb2] = await Promise.all(['s1', 's2', 'f1', 'f2', 'hb1', 'hb2'].map((name) => cluster.addContainer(name)));
    const attach = (network: string, node: string, netns: string) => client.createEndpoint({ network, node, netns }, { waitSeconds: 20 });
    const [, es2, , ef2] = await Promise.all([attach('six', 'host1', s1!), attach('six', 'host2', s2!), attach('four', 'host1', f1!), attach('four', 'host2', f2!)]);
    const ns = netnsPath;
    await handBuiltVxlan({ hostNetns: h1.netns, local: h1.address, remote: h2.address, container: ns(hb1!), address: `${HAND_BUILT_PREFIX}1/64` }, six.mtu);
    await handBuiltVxlan({ hostNetns: h2.netns, local: h2.address, remote: h1.address, container: ns(hb2!), address: `${HAND_BUILT_PREFIX}2/64` }, six.mtu);
    const target6 = endpointAddresses(es2!)[0]!.ip;
    // a full inner IPv6 packet with DF crosses: MTU - 40 (IPv6) - 8 (ICMPv6) bytes of payload
    const df = await cluster.exec(s1!, ['ping', '-c', '3', '-W', '2', '-M', 'do', '-s', String(six.mtu - 48), target6]);
    if (df.code !== 0) throw new Error(`a ${six.mtu}-byte IPv6 packet with DF did not cross the network: ${df.stdout}${df.stderr}`);
    const handBuilt = await cluster.exec(hb1!, ['ping', '-c', '3', '-W', '2', `${HAND_BUILT_PREFIX}2`]);
    if (handBuilt.code !== 0) throw new Error(`the hand-built IPv6 path does not carry a ping: ${handBuilt.stdout}${handBuilt.stderr}`);
    log(`  IPv6 network MTU ${six.mtu}: a ${six.mtu}-byte packet with DF crosses; the hand-built path answers`);

    const paths: TrafficPath[] = [
      { name: 'underlay (host ⇄ host veth)', client: ns(h1.netns), server: ns(h2.netns), target: h2.address },
      { name: 'hand-built IPv6-in-VXLAN (the reference)', client: ns(hb1!), server: ns(hb2!), target: `${HAND_BUILT_PREFIX}2` },
      { name: 'vxnet IPv6', client: ns(s1!), server: ns(s2!), target: target6 },
      { name: 'vxnet IPv4', client: ns(f1!), server: ns(f2!), target: ef2!.ip },
    ];
    const { summary, json } = await measureSection(paths, options, six.mtu);
    return { json, markdown: markdownOf(summary, options, six.mtu) };
  });
}

function markdownOf(summary: TrafficSummary[], options: Ipv6BenchOptions, mtu: number): string[] {
  const [, reference, six] = summary as [TrafficSummary, TrafficSummary, TrafficSummary, TrafficSummary];
  return [
    `### IPv6 inside networks: vxnet vs hand-built IPv6-in-VXLAN (2 hosts, IPv4 underlay, median of ${options.rounds} interleaved rounds, ${options.seconds} s iperf3 each)`,
    '',
    ...comparisonTable(summary, reference, 'hand-built', options.streams, 3),
    '',
    `vxnet IPv6 is ${ratio(six.singleGbps, reference.singleGbps)} of the hand-built path with 1 stream and ${ratio(six.multiGbps, reference.multiGbps)} with ` +
      `${options.streams}; both carry IPv6 in VXLAN over the same IPv4 underlay with MTU ${mtu}, checked to cross with DF set.`,
    '',
  ];
}
