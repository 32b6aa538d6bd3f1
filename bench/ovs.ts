/**
 * `npm run bench`, section ovs: a kernel host and an Open vSwitch host (userspace datapath, testkit/ovs.ts),
 * container to container in both directions — vxnet (host1 `--dataplane linux`, host2 `--dataplane ovs`)
 * next to the hand-built OVS-to-kernel VXLAN between the same hosts (seed 000's way: the kernel side as
 * bench/hand-built.ts makes it, the OVS side `ovs-vsctl add-br`, a vxlan port with `options:key=VNI
 * remote_ip=PEER`, the container's veth as a port, the bridge's default NORMAL flow, the container's veth
 * with `tx off` as OVS needs). Target: vxnet ≥ 0.9× the hand-built path.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ManagerClient } from '../src/client/client.ts';
import { createCluster } from '../src/testkit/cluster.ts';
import { startOvs, type OvsHost } from '../src/testkit/ovs.ts';
import { nsenterArgv } from '../src/testkit/netns.ts';
import { run, runChecked } from '../src/testkit/processes.ts';
import { handBuiltVxlan } from './hand-built.ts';
import { fixed, median, ratio, spread } from './stats.ts';
import { measureTraffic, noise, summariseTraffic, type TrafficPath, type TrafficSummary } from './traffic.ts';

export interface OvsComparison {
  json: { paths: TrafficSummary[]; vswitchdCpu: VswitchdCost[] };
  markdown: string[];
}

/** the VNI bench/hand-built.ts gives its kernel side */
const HAND_VNI = 4242;

export async function ovsComparison(options: { rounds: number; seconds: number; streams: number; log: (line: string) => void }): Promise<OvsComparison> {
  const { log } = options;
  log(`ovs: kernel host ⇄ OVS host, vxnet vs the hand-built OVS-to-kernel VXLAN, ${options.rounds} rounds ...`);
  let ovs: OvsHost | undefined;
  const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxbovs', startDaemons: false, daemonTimeoutMs: 120_000, agentArgsFor: (h) => (ovs && h === ovs.host ? ovs.agentArgs : []) });
  const client = () => new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  try {
    await cluster.startManager();
    const [h1, h2] = [cluster.host(1), cluster.host(2)];
    ovs = await startOvs(cluster, h2);
    await Promise.all(cluster.hosts.map((h) => cluster.startAgent(h)));
    const api = client();
    await api.createNetwork({ name: 'perf', subnets: [{ cidr: '10.88.0.0/24' }] });
    const v1 = await cluster.addContainer('v1');
    const v2 = await cluster.addContainer('v2');
    const e1 = await api.createEndpoint({ network: 'perf', node: h1.name, netns: v1 });
    const e2 = await api.createEndpoint({ network: 'perf', node: h2.name, netns: v2 });
    api.close();

    const m1 = await cluster.addContainer('m1');
    const m2 = await cluster.addContainer('m2');
    await handBuiltVxlan({ hostNetns: h1.netns, local: h1.address, remote: h2.address, container: `/run/netns/${m1}`, address: '172.30.0.1/24' }, 1450);
    // the OVS side by hand: its own bridge, a vxlan port with a fixed remote and key, NORMAL forwarding
    await ovs.vsctl([
      'add-br', 'hbovs', '--', 'set', 'bridge', 'hbovs', 'datapath_type=netdev',
      '--', 'add-port', 'hbovs', 'hbvx0', '--', 'set', 'interface', 'hbvx0', 'type=vxlan', `options:key=${HAND_VNI}`, `options:remote_ip=${h1.address}`,
    ]);
    const inHost = (argv: string[]) => runChecked(nsenterArgv(h2.netns, argv));
    await inHost(['ip', 'link', 'add', 'hbveth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'hbc0', 'mtu', '1450', 'netns', `/run/netns/${m2}`]);
    await inHost(['ip', 'link', 'set', 'hbveth0', 'up']);
    await ovs.vsctl(['add-port', 'hbovs', 'hbveth0']);
    await runChecked(nsenterArgv(m2, ['ip', 'link', 'set', 'hbc0', 'name', 'eth0']));
    await runChecked(nsenterArgv(m2, ['ip', 'addr', 'add', '172.30.0.2/24', 'dev', 'eth0']));
    await runChecked(nsenterArgv(m2, ['ip', 'link', 'set', 'eth0', 'up']));
    await runChecked(nsenterArgv(m2, ['ethtool', '-K', 'eth0', 'tx', 'off']));

    const ns = (name: string) => `/run/netns/${name}`;
    const paths: TrafficPath[] = [
      { name: 'hand-built: kernel → OVS', client: ns(m1), server: ns(m2), target: '172.30.0.2' },
      { name: 'vxnet: kernel → OVS', client: ns(v1), server: ns(v2), target: e2.ip },
      { name: 'hand-built: OVS → kernel', client: ns(m2), server: ns(m1), target: '172.30.0.1' },
      { name: 'vxnet: OVS → kernel', client: ns(v2), server: ns(v1), target: e1.ip },
    ];
    const rounds = await measureTraffic(paths, { rounds: options.rounds, seconds: options.seconds, streams: options.streams, log });
    const summary = summariseTraffic(paths, rounds);
    const costs = await vswitchdCost(paths, ovs.vswitchdPid!, { rounds: options.rounds, seconds: options.seconds, log });
    const gbps = (value: number, spread: number) => `${fixed(value, 2)} Gbit/s (${noise(spread)})`;
    const reference = (s: TrafficSummary) => summary.find((r) => r.name === s.name.replace('vxnet', 'hand-built'))!;
    return {
      json: { paths: summary, vswitchdCpu: costs },
      markdown: [
        `### Open vSwitch host (userspace datapath) ⇄ kernel host, container to container (median of ${options.rounds} interleaved rounds, ${options.seconds} s iperf3 each)`,
        '',
        `| path | TCP 1 stream | vs hand-built | TCP ${options.streams} streams | vs hand-built | ping RTT | vs hand-built |`,
        '| --- | --- | --- | --- | --- | --- | --- |',
        ...summary.map((s) => {
          const ref = reference(s);
          return (
            `| ${s.name} | ${gbps(s.singleGbps, s.singleNoise)} | ${ratio(s.singleGbps, ref.singleGbps)} | ${gbps(s.multiGbps, s.multiNoise)} | ` +
            `${ratio(s.multiGbps, ref.multiGbps)} | ${fixed(s.rttMs * 1000, 0)} µs (${noise(s.rttNoise)}) | ${ratio(s.rttMs, ref.rttMs)} |`
          );
        }),
        '',
        'The hand-built path is seed 000\'s: a vxlan port with a fixed key and remote and the NORMAL action on the OVS side. vxnet forwards by ' +
          'OpenFlow rules (tun_dst and tun_id per remote MAC) with anti-spoofing and the peer allow-list. Target: vxnet ≥ 0.9× the hand-built path.',
        '',
        `The throughput of both paths is whatever share of a CPU ovs-vswitchd's main thread gets (it forwards every frame of kernel ports on ` +
          `the userspace datapath), so on a shared machine it follows the load. What the path costs does not: ovs-vswitchd's CPU time per ` +
          `Gbit at a fixed ${COST_RATE_MBPS} Mbit/s TCP (median of ${options.rounds} interleaved rounds, ${options.seconds} s each):`,
        '',
        '| path | ovs-vswitchd CPU per Gbit | vs hand-built |',
        '| --- | --- | --- |',
        ...costs.map((c) => {
          const ref = costs.find((r) => r.name === c.name.replace('vxnet', 'hand-built'))!;
          return `| ${c.name} | ${fixed(c.cpuMsPerGbit, 0)} ms (${noise(c.noise)}) | ${ratio(c.cpuMsPerGbit, ref.cpuMsPerGbit)} |`;
        }),
        '',
      ],
    };
  } finally {
    await cluster.destroy();
  }
}

/** the offered rate of the cost measurement: below what ovs-vswitchd forwards even on a loaded machine */
const COST_RATE_MBPS = 100;
const COST_PORT = '5302';

export interface VswitchdCost {
  name: string;
  /** median of the rounds: ovs-vswitchd's CPU time (user + system, all threads) per Gbit received */
  cpuMsPerGbit: number;
  noise: number;
}

/**
 * ovs-vswitchd's CPU time per Gbit of each path at a fixed offered rate, in interleaved rounds. Both paths
 * run through the same daemon, so the difference is what each path's flows and ports cost it per frame
 * (tables walked, actions, upcalls), free of how much CPU the rest of the machine left it.
 */
async function vswitchdCost(paths: readonly TrafficPath[], pid: number, options: { rounds: number; seconds: number; log: (line: string) => void }): Promise<VswitchdCost[]> {
  const samples = new Map(paths.map((p) => [p.name, [] as number[]]));
  const ticks = () => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after "(comm) "; clock ticks of 10 ms
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
  for (let round = 0; round < options.rounds; round++) {
    for (const path of round % 2 === 0 ? paths : [...paths].reverse()) {
      const server = spawn('nsenter', [`--net=${path.server}`, 'iperf3', '-s', '-1', '-p', COST_PORT], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => server.once('close', () => resolve()));
      try {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const before = ticks();
        const argv = ['nsenter', `--net=${path.client}`, 'iperf3', '-c', path.target, '-p', COST_PORT, '-t', String(options.seconds), '-b', `${COST_RATE_MBPS}M`, '-J'];
        const result = await run(argv, { timeoutMs: (options.seconds + 15) * 1000 });
        const cpuMs = ticks() - before;
        if (result.code !== 0) throw new Error(`iperf3 -b ${COST_RATE_MBPS}M to ${path.target} (${path.name}) failed: ${result.stdout.slice(-300)}${result.stderr.slice(-300)}`);
        const bytes = (JSON.parse(result.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes;
        samples.get(path.name)!.push(cpuMs / ((bytes * 8) / 1e9));
        options.log(`  round ${round + 1} ${path.name}: ovs-vswitchd ${fixed(samples.get(path.name)!.at(-1)!, 0)} ms CPU per Gbit at ${COST_RATE_MBPS} Mbit/s`);
      } finally {
        server.kill();
        await exited;
      }
    }
  }
  return paths.map((p) => ({ name: p.name, cpuMsPerGbit: median(samples.get(p.name)!), noise: spread(samples.get(p.name)!) }));
}
