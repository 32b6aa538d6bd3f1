/**
 * The IPv6-underlay section of `npm run bench` (vxnet issue 15): two simulated hosts whose underlay link holds
 * only an IPv6 address (the test kit's `underlay: 'ipv6'`), container to container on a vxnet network, next
 * to the hand-built kernel VXLAN path over the same IPv6 underlay (bench/hand-built.ts with IPv6 `local` and
 * `remote`) and the bare underlay (host to host over IPv6, the ceiling), in one run of interleaved rounds
 * (bench/traffic.ts). Both VXLAN paths have the same MTU, the underlay's minus the 70 bytes of VXLAN over
 * IPv6, and the section checks that a full inner packet crosses vxnet's path with DF set.
 */
import { vxlanOverheadOf } from '../src/core/underlay.ts';
import { comparisonTable, measureSection, withAdminClient, type DataPlaneOptions, type DataPlaneResult } from './data-plane-section.ts';
import { handBuiltVxlan } from './hand-built.ts';
import { ratio } from './stats.ts';
import type { TrafficPath, TrafficSummary } from './traffic.ts';

export type Ipv6UnderlayBenchOptions = DataPlaneOptions;
export type Ipv6UnderlayBenchResult = DataPlaneResult;

/** The hand-built path's containers: a subnet of their own, apart from vxnet's network. */
const HAND_BUILT_NET = '10.86.0';

export async function ipv6UnderlayDataPlane(options: Ipv6UnderlayBenchOptions): Promise<Ipv6UnderlayBenchResult> {
  const { log } = options;
  log(`ipv6-underlay: iperf3 ${options.seconds}s (1 and ${options.streams} streams) × ${options.rounds} rounds per path, ping RTT ...`);
  return withAdminClient({ hosts: 2, outside: false, prefix: 'vxbsix', underlay: 'ipv6' }, async (cluster, client) => {
    const [h1, h2] = [cluster.host('host1'), cluster.host('host2')];
    const network = await client.createNetwork({ name: 'six', subnets: [{ cidr: '10.87.0.0/24' }] });
    const expected = cluster.underlayMtu - vxlanOverheadOf('IPv6');
    if (network.mtu !== expected) throw new Error(`network MTU ${network.mtu} on an IPv6 underlay of ${cluster.underlayMtu}: expected ${expected}`);
    const [v1, v2, b1, b2] = await Promise.all(['v1', 'v2', 'b1', 'b2'].map((name) => cluster.addContainer(name)));
    const [, ev2] = await Promise.all([
      client.createEndpoint({ network: 'six', node: 'host1', netns: v1! }, { waitSeconds: 20 }),
      client.createEndpoint({ network: 'six', node: 'host2', netns: v2! }, { waitSeconds: 20 }),
    ]);
    const ns = (name: string) => `/run/netns/${name}`;
    await handBuiltVxlan({ hostNetns: h1.netns, local: h1.address, remote: h2.address, container: ns(b1!), address: `${HAND_BUILT_NET}.1/24` }, network.mtu);
    await handBuiltVxlan({ hostNetns: h2.netns, local: h2.address, remote: h1.address, container: ns(b2!), address: `${HAND_BUILT_NET}.2/24` }, network.mtu);
    for (const [netns, target, what] of [[b1!, `${HAND_BUILT_NET}.2`, 'the hand-built path'], [v1!, ev2!.ip, 'vxnet\'s network']] as const) {
      const probe = await cluster.exec(netns, ['ping', '-c', '3', '-W', '2', '-M', 'do', '-s', String(network.mtu - 28), target]);
      if (probe.code !== 0) throw new Error(`a ${network.mtu}-byte packet with DF did not cross ${what}: ${probe.stdout}${probe.stderr}`);
    }
    log(`  MTU ${network.mtu} on both VXLAN paths: a ${network.mtu}-byte packet with DF crosses each (no fragmentation)`);

    const paths: TrafficPath[] = [
      { name: 'underlay (host ⇄ host over IPv6)', client: ns(h1.netns), server: ns(h2.netns), target: h2.address },
      { name: 'hand-built VXLAN over IPv6', client: ns(b1!), server: ns(b2!), target: `${HAND_BUILT_NET}.2` },
      { name: 'vxnet over IPv6', client: ns(v1!), server: ns(v2!), target: ev2!.ip },
    ];
    const { summary, json } = await measureSection(paths, options, network.mtu);
    return { json, markdown: markdownOf(summary, options, network.mtu) };
  });
}

function markdownOf(summary: TrafficSummary[], options: Ipv6UnderlayBenchOptions, mtu: number): string[] {
  const hand = summary[1]!;
  const vxnet = summary[2]!;
  return [
    `### IPv6 underlay: vxnet vs hand-built VXLAN over IPv6 (2 hosts, median of ${options.rounds} interleaved rounds, ${options.seconds} s iperf3 each)`,
    '',
    ...comparisonTable(summary, hand, 'hand-built', options.streams, 2),
    '',
    `vxnet over the IPv6 underlay reaches ${ratio(vxnet.singleGbps, hand.singleGbps)} of the hand-built path with 1 stream and ` +
      `${ratio(vxnet.multiGbps, hand.multiGbps)} with ${options.streams}. Both VXLAN paths have MTU ${mtu} (underlay 1500 − 70: outer IPv6 40 + UDP 8 + ` +
      'VXLAN 8 + inner Ethernet 14), checked to cross with DF set.',
    '',
  ];
}
