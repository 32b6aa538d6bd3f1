/**
 * `npm run bench`: measures vxnet side by side with its references in one run on simulated hosts, and
 * prints ratios (absolute numbers on a shared machine are noisy; ratios within one run are not).
 *
 *  1. attach → reachable from a container on another host (p50/p99 over N attaches);
 *  2. kernel programming: 10,000 remote endpoints on one node, and a pass with nothing to change;
 *  3. data plane: single-stream TCP (iperf3) and ping RTT container to container across hosts —
 *     vxnet vs a hand-built kernel VXLAN path between the same hosts (the tutorial's
 *     `ip link add ... type vxlan` + bridge + veth) vs the bare underlay (the ceiling);
 *  4. Docker: vxnet vs Docker Swarm's overlay on the same two engines — `docker run` → reachable from the
 *     other host, iperf3 and ping between containers (bench/swarm.ts; its own simulated hosts).
 *
 * Writes bench/results/latest.json and bench/results/latest.md.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ManagerClient } from '../src/client/client.ts';
import { createCluster, type Cluster, type SimHost } from '../src/testkit/cluster.ts';
import { runChecked } from '../src/testkit/processes.ts';
import { fixed, median, percentile, ratio } from './stats.ts';
import { swarmComparison } from './swarm.ts';

const { values: flags } = parseArgs({
  options: {
    attaches: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '4' },
    peers: { type: 'string', default: '10000' },
    'docker-runs': { type: 'string', default: '40' },
    skip: { type: 'string', multiple: true, default: [] },
  },
});
const ATTACHES = Number(flags.attaches);
const ROUNDS = Number(flags.rounds);
const SECONDS = Number(flags.seconds);
const PEERS = Number(flags.peers);
const skip = new Set(flags.skip);

const report: Record<string, unknown> = { date: new Date().toISOString() };
const markdown: string[] = [];
const log = (line: string) => console.log(line);

const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxbench' });
const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
try {
  if (!skip.has('attach')) await attachToReachable(cluster, client);
  if (!skip.has('kernel')) await kernelProgramming(cluster);
  if (!skip.has('dataplane')) await dataPlane(cluster, client);
} finally {
  client.close();
  await cluster.destroy();
}
if (!skip.has('docker')) {
  const docker = await swarmComparison({ runs: Number(flags['docker-runs']), rounds: ROUNDS, seconds: SECONDS, log });
  report.docker = docker.json;
  markdown.push(...docker.markdown);
}
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(join(import.meta.dirname, 'results', 'latest.json'), JSON.stringify(report, null, 2) + '\n');
await writeFile(join(import.meta.dirname, 'results', 'latest.md'), markdown.join('\n') + '\n');
log('');
log(markdown.join('\n'));

// ---------------------------------------------------------------------------------------------------

async function attachToReachable(cluster: Cluster, client: ManagerClient): Promise<void> {
  log(`attach → reachable: ${ATTACHES} attaches on host1, probed from a container on host2 ...`);
  await client.createNetwork({ name: 'bench', subnets: [{ cidr: '10.77.0.0/16' }] });
  const probeNetns = await cluster.addContainer('probe');
  await client.createEndpoint({ network: 'bench', node: 'host2', netns: probeNetns });
  // Resolve unknown neighbours quickly: the prober's ARP for a not-yet-programmed peer is retried
  // every 10 ms instead of every second, so the figure measures vxnet, not the ARP timer.
  await cluster.exec(probeNetns, ['sysctl', '-qw', 'net.ipv4.neigh.eth0.retrans_time_ms=10', 'net.ipv4.neigh.eth0.mcast_solicit=100']);
  const targets: string[] = [];
  for (let i = 0; i < ATTACHES; i++) targets.push(await cluster.addContainer(`a${i}`));

  const prober = spawn('ip', ['netns', 'exec', probeNetns, process.execPath, join(import.meta.dirname, 'probe.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const answers = createInterface({ input: prober.stdout! })[Symbol.asyncIterator]();
  const reachable: number[] = [];
  const ready: number[] = [];
  try {
    for (let i = 0; i < ATTACHES; i++) {
      const ip = `10.77.1.${10 + i}`;
      const started = performance.now();
      prober.stdin!.write(`${ip}\n`);
      await client.createEndpoint({ network: 'bench', node: 'host1', netns: targets[i]!, ip });
      ready.push(performance.now() - started);
      const answer = (await answers.next()).value as string;
      const ms = Number(answer.split(' ')[1]);
      if (!Number.isFinite(ms)) throw new Error(`${ip} never became reachable from host2`);
      reachable.push(ms);
    }
  } finally {
    prober.kill();
  }
  const row = {
    attaches: ATTACHES,
    readyP50: percentile(ready, 50),
    readyP99: percentile(ready, 99),
    reachableP50: percentile(reachable, 50),
    reachableP99: percentile(reachable, 99),
    reachableMax: Math.max(...reachable),
    readyMs: ready.map((v) => Number(v.toFixed(1))),
    reachableMs: reachable.map((v) => Number(v.toFixed(1))),
  };
  report.attach = row;
  markdown.push(
    '### Attach → reachable from another host (2 hosts)',
    '',
    '| measure | p50 | p99 | target |',
    '| --- | --- | --- | --- |',
    `| \`vxnet attach\` returns (endpoint ready on its node) | ${fixed(row.readyP50)} ms | ${fixed(row.readyP99)} ms | |`,
    `| attach start → reachable from a container on host2 | ${fixed(row.reachableP50)} ms | ${fixed(row.reachableP99)} ms | p99 < 250 ms |`,
    '',
  );
  for (const ep of await client.listEndpoints({ network: 'bench' })) await client.deleteEndpoint(ep.id);
  await client.removeNetwork('bench');
}

async function kernelProgramming(cluster: Cluster): Promise<void> {
  log(`kernel programming: ${PEERS} remote endpoints on one node ...`);
  const host = cluster.host('host1');
  const container = await cluster.addContainer('kscale');
  const result = await runChecked(
    ['ip', 'netns', 'exec', host.netns, process.execPath, join(import.meta.dirname, 'kernel-scale.ts'), String(PEERS), container, host.address],
    { timeoutMs: 120_000 },
  );
  const figures = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
  report.kernel = figures;
  markdown.push(
    `### Kernel programming on one node (${PEERS} remote endpoints, real namespace)`,
    '',
    '| measure | result | target |',
    '| --- | --- | --- |',
    `| program ${PEERS} remote endpoints from empty (neigh + FDB + flood entries) | ${fixed(figures.programMs!)} ms | < 2000 ms |`,
    `| reconcile pass with nothing to change | ${fixed(figures.noChangeMs!)} ms (median of ${figures.noChangePasses}) | < 100 ms |`,
    `| remove them all (prune) | ${fixed(figures.pruneMs!)} ms | |`,
    `| agent-side heap after programming | ${fixed(figures.heapMiB!)} MiB | |`,
    '',
  );
}

interface PathResult {
  gbps: number[];
  rttMs: number[];
}

async function dataPlane(cluster: Cluster, client: ManagerClient): Promise<void> {
  log(`data plane: iperf3 ${SECONDS}s × ${ROUNDS} rounds per path, ping RTT ...`);
  const [h1, h2] = [cluster.host('host1'), cluster.host('host2')];
  // vxnet path
  await client.createNetwork({ name: 'perf', subnets: [{ cidr: '10.88.0.0/24' }] });
  const v1 = await cluster.addContainer('v1');
  const v2 = await cluster.addContainer('v2');
  await client.createEndpoint({ network: 'perf', node: 'host1', netns: v1 });
  const ev2 = await client.createEndpoint({ network: 'perf', node: 'host2', netns: v2 });
  // hand-built path between the same hosts, as the tutorials do it
  const m1 = await cluster.addContainer('m1');
  const m2 = await cluster.addContainer('m2');
  await handBuiltVxlan(cluster, h1, h2, m1, '172.30.0.1/24');
  await handBuiltVxlan(cluster, h2, h1, m2, '172.30.0.2/24');

  const paths: { name: string; client: string; server: string; target: string }[] = [
    { name: 'underlay (host ⇄ host veth, the ceiling)', client: h1.netns, server: h2.netns, target: h2.address },
    { name: 'hand-built kernel VXLAN (tutorial)', client: m1, server: m2, target: '172.30.0.2' },
    { name: 'vxnet', client: v1, server: v2, target: ev2.ip },
  ];
  const results = new Map<string, PathResult>(paths.map((p) => [p.name, { gbps: [], rttMs: [] }]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const path of paths) {
      const r = results.get(path.name)!;
      r.gbps.push(await iperf(cluster, path.client, path.server, path.target));
      r.rttMs.push(await rtt(cluster, path.client, path.target));
      log(`  round ${round + 1} ${path.name}: ${fixed(r.gbps.at(-1)!, 2)} Gbit/s, ${fixed(r.rttMs.at(-1)! * 1000, 0)} µs`);
    }
  }
  const summary = paths.map((p) => ({ name: p.name, gbps: median(results.get(p.name)!.gbps), rttMs: median(results.get(p.name)!.rttMs) }));
  report.dataplane = { rounds: ROUNDS, seconds: SECONDS, paths: summary, raw: Object.fromEntries(results) };
  const [underlay, hand, vx] = summary as [typeof summary[0], typeof summary[0], typeof summary[0]];
  markdown.push(
    `### Data plane, container to container across hosts (median of ${ROUNDS} interleaved rounds, ${SECONDS} s iperf3 each)`,
    '',
    '| path | TCP single stream | vs underlay | vs hand-built | ping RTT | vs hand-built |',
    '| --- | --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.name} | ${fixed(s.gbps, 2)} Gbit/s | ${ratio(s.gbps, underlay.gbps)} | ${ratio(s.gbps, hand.gbps)} | ${fixed(s.rttMs * 1000, 0)} µs | ${ratio(s.rttMs, hand.rttMs)} |`,
    ),
    '',
    `Targets: vxnet throughput ≥ 0.97× hand-built (seen: ${ratio(vx.gbps, hand.gbps)}), RTT ≤ 1.1× hand-built (seen: ${ratio(vx.rttMs, hand.rttMs)}).`,
    '',
  );
}

async function handBuiltVxlan(cluster: Cluster, host: SimHost, peer: SimHost, container: string, address: string): Promise<void> {
  const batch = [
    `link add hbvx0 type vxlan id 4242 local ${host.address} remote ${peer.address} dstport 4789 dev eth0`,
    'link set hbvx0 mtu 1450',
    'link add hbbr0 type bridge',
    'link set hbvx0 master hbbr0',
    'link add hbveth0 mtu 1450 type veth peer name hbc0 mtu 1450',
    'link set hbveth0 master hbbr0',
    `link set hbc0 netns ${container}`,
    'link set hbvx0 up',
    'link set hbbr0 up',
    'link set hbveth0 up',
  ].join('\n');
  await runChecked(['ip', 'netns', 'exec', host.netns, 'ip', '-batch', '-'], { input: batch + '\n' });
  await runChecked(['ip', 'netns', 'exec', container, 'ip', '-batch', '-'], {
    input: ['link set hbc0 name eth0', `addr add ${address} dev eth0`, 'link set eth0 up'].join('\n') + '\n',
  });
}

async function iperf(cluster: Cluster, clientNetns: string, serverNetns: string, target: string): Promise<number> {
  const server = cluster.spawn(serverNetns, ['iperf3', '-s', '-1', '-p', '5301', '--forceflush'], { label: 'iperf3 -s' });
  await server.waitFor(/listening/i, 5000);
  const result = await cluster.exec(clientNetns, ['iperf3', '-c', target, '-p', '5301', '-t', String(SECONDS), '-J'], {
    timeoutMs: (SECONDS + 15) * 1000,
  });
  await server.stop();
  if (result.code !== 0) throw new Error(`iperf3 to ${target} failed: ${result.stdout.slice(-300)}`);
  const json = JSON.parse(result.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return json.end.sum_received.bits_per_second / 1e9;
}

async function rtt(cluster: Cluster, netns: string, target: string): Promise<number> {
  const result = await cluster.exec(netns, ['ping', '-c', '200', '-i', '0.005', '-q', target]);
  const match = /= [\d.]+\/([\d.]+)\//.exec(result.stdout);
  if (!match) throw new Error(`ping to ${target} failed: ${result.stdout}`);
  return Number(match[1]);
}
