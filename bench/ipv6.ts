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
import { ManagerClient } from '../src/client/client.ts';
import { endpointAddresses } from '../src/core/model.ts';
import { createCluster, type Cluster } from '../src/testkit/cluster.ts';
import { netnsPath } from '../src/testkit/netns.ts';
import { runChecked } from '../src/testkit/processes.ts';
import { fixed, ratio } from './stats.ts';
import { measureTraffic, noise, summariseTraffic, type TrafficPath, type TrafficSummary } from './traffic.ts';

export interface Ipv6BenchOptions {
  rounds: number;
  seconds: number;
  streams: number;
  log: (line: string) => void;
}

export interface Ipv6BenchResult {
  json: Record<string, unknown>;
  markdown: string[];
}

const HAND_BUILT_PREFIX = 'fd00:4242::';

/**
 * The hand-built IPv6-in-VXLAN path between two hosts: devices hb6vx0 (VNI 4243), hb6br0, hb6veth0 on each
 * host, eth0 in the container with `fd00:4242::N/64` (nodad, as vxnet does, so both start at once).
 */
async function handBuiltVxlan6(cluster: Cluster, host: { netns: string; address: string }, remote: string, container: string, index: number, mtu: number): Promise<void> {
  const batch = [
    `link add hb6vx0 type vxlan id 4243 local ${host.address} remote ${remote} dstport 4789 dev eth0`,
    `link set hb6vx0 mtu ${mtu}`,
    'link add hb6br0 type bridge',
    'link set hb6vx0 master hb6br0',
    `link add hb6veth0 mtu ${mtu} type veth peer name hb6c0 mtu ${mtu}`,
    'link set hb6veth0 master hb6br0',
    `link set hb6c0 netns ${netnsPath(container)}`,
    'link set hb6vx0 up',
    'link set hb6br0 up',
    'link set hb6veth0 up',
  ];
  const made = await cluster.exec(host.netns, ['ip', '-batch', '-'], { input: `${batch.join('\n')}\n` });
  if (made.code !== 0) throw new Error(`hand-built IPv6 path on ${host.netns}: ${made.stderr}`);
  await runChecked(['nsenter', `--net=${netnsPath(container)}`, 'ip', '-batch', '-'], {
    input: ['link set hb6c0 name eth0', `addr add ${HAND_BUILT_PREFIX}${index}/64 dev eth0 nodad`, 'link set eth0 up'].join('\n') + '\n',
  });
}

export async function ipv6DataPlane(options: Ipv6BenchOptions): Promise<Ipv6BenchResult> {
  const { log } = options;
  log(`ipv6: iperf3 ${options.seconds}s (1 and ${options.streams} streams) × ${options.rounds} rounds per path, ping RTT ...`);
  const cluster = await createCluster({ hosts: 2, outside: false, ipv6: true, prefix: 'vxbsix' });
  const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  try {
    const [h1, h2] = [cluster.host('host1'), cluster.host('host2')];
    const six = await client.createNetwork({ name: 'six', subnets: [{ cidr: 'fd00:70::/64' }] });
    await client.createNetwork({ name: 'four', subnets: [{ cidr: '10.87.0.0/24' }] });
    const [s1, s2, f1, f2, hb1, hb2] = await Promise.all(['s1', 's2', 'f1', 'f2', 'hb1', 'hb2'].map((name) => cluster.addContainer(name)));
    const attach = (network: string, node: string, netns: string) => client.createEndpoint({ network, node, netns }, { waitSeconds: 20 });
    const [, es2, , ef2] = await Promise.all([attach('six', 'host1', s1!), attach('six', 'host2', s2!), attach('four', 'host1', f1!), attach('four', 'host2', f2!)]);
    await handBuiltVxlan6(cluster, h1, h2.address, hb1!, 1, six.mtu);
    await handBuiltVxlan6(cluster, h2, h1.address, hb2!, 2, six.mtu);
    const target6 = endpointAddresses(es2!)[0]!.ip;
    // a full inner IPv6 packet with DF crosses: MTU - 40 (IPv6) - 8 (ICMPv6) bytes of payload
    const df = await cluster.exec(s1!, ['ping', '-c', '3', '-W', '2', '-M', 'do', '-s', String(six.mtu - 48), target6]);
    if (df.code !== 0) throw new Error(`a ${six.mtu}-byte IPv6 packet with DF did not cross the network: ${df.stdout}${df.stderr}`);
    const handBuilt = await cluster.exec(hb1!, ['ping', '-c', '3', '-W', '2', `${HAND_BUILT_PREFIX}2`]);
    if (handBuilt.code !== 0) throw new Error(`the hand-built IPv6 path does not carry a ping: ${handBuilt.stdout}${handBuilt.stderr}`);
    log(`  IPv6 network MTU ${six.mtu}: a ${six.mtu}-byte packet with DF crosses; the hand-built path answers`);

    const ns = netnsPath;
    const paths: TrafficPath[] = [
      { name: 'underlay (host ⇄ host veth)', client: ns(h1.netns), server: ns(h2.netns), target: h2.address },
      { name: 'hand-built IPv6-in-VXLAN (the reference)', client: ns(hb1!), server: ns(hb2!), target: `${HAND_BUILT_PREFIX}2` },
      { name: 'vxnet IPv6', client: ns(s1!), server: ns(s2!), target: target6 },
      { name: 'vxnet IPv4', client: ns(f1!), server: ns(f2!), target: ef2!.ip },
    ];
    const rounds = await measureTraffic(paths, { rounds: options.rounds, seconds: options.seconds, streams: options.streams, log });
    const summary = summariseTraffic(paths, rounds);
    return {
      json: { rounds: options.rounds, seconds: options.seconds, streams: options.streams, mtu: six.mtu, paths: summary, raw: Object.fromEntries(rounds) },
      markdown: markdownOf(summary, options, six.mtu),
    };
  } finally {
    client.close();
    await cluster.destroy();
  }
}

function markdownOf(summary: TrafficSummary[], options: Ipv6BenchOptions, mtu: number): string[] {
  const [, reference, six] = summary as [TrafficSummary, TrafficSummary, TrafficSummary, TrafficSummary];
  const gbps = (value: number, spread: number) => `${fixed(value, 3)} Gbit/s (${noise(spread)})`;
  return [
    `### IPv6 inside networks: vxnet vs hand-built IPv6-in-VXLAN (2 hosts, IPv4 underlay, median of ${options.rounds} interleaved rounds, ${options.seconds} s iperf3 each)`,
    '',
    `| path | TCP 1 stream | vs hand-built | TCP ${options.streams} streams | vs hand-built | ping RTT | vs hand-built |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.name} | ${gbps(s.singleGbps, s.singleNoise)} | ${ratio(s.singleGbps, reference.singleGbps)} | ${gbps(s.multiGbps, s.multiNoise)} | ` +
        `${ratio(s.multiGbps, reference.multiGbps)} | ${fixed(s.rttMs * 1000, 0)} µs (${noise(s.rttNoise)}) | ${ratio(s.rttMs, reference.rttMs)} |`,
    ),
    '',
    `vxnet IPv6 is ${ratio(six.singleGbps, reference.singleGbps)} of the hand-built path with 1 stream and ${ratio(six.multiGbps, reference.multiGbps)} with ` +
      `${options.streams}; both carry IPv6 in VXLAN over the same IPv4 underlay with MTU ${mtu}, checked to cross with DF set.`,
    '',
  ];
}
