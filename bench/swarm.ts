/**
 * The Docker section of `npm run bench`: vxnet side by side with Docker Swarm's overlay network, on the same
 * two simulated hosts, the same two Docker engines, in one run.
 *
 * Setup: one engine per host with Docker's normal configuration (iptables on, docker0), as Swarm needs;
 * `docker swarm init` on host1, `join` on host2; `docker network create -d overlay --attachable`; a vxnet
 * network, which the agents (linked to the engines) put into `docker network ls` on both hosts. The vxnet
 * network gets VNI 100: Swarm allocates VNIs from 4096 on the same UDP port 4789, and the kernel allows one
 * VXLAN device per VNI and port in a namespace (see docs/architecture.md, "Docker").
 *
 * Measured, alternating between the two networks so that drift of the machine hits both alike:
 *  - `docker run -d --network NET --ip IP` on host1 → reachable from a container on host2: a prober in that
 *    container's network namespace (bench/probe.ts) keeps connecting to IP until the kernel answers (a TCP
 *    RST), timed from the moment `docker run` is started; also when `docker run` returned;
 *  - iperf3 single stream and ping RTT container to container (the tools run in the containers' network
 *    namespaces), in interleaved rounds with the underlay (host ⇄ host) as the ceiling; the spread of the
 *    rounds is reported as the run-to-run noise.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ManagerClient } from '../src/client/client.ts';
import { createCluster } from '../src/testkit/cluster.ts';
import { BUSYBOX_IMAGE, type DockerEngine, destroyDockerEngines, dockerAgentArgs, startDockerEngines } from '../src/testkit/docker.ts';
import { run, sleep } from '../src/testkit/processes.ts';
import { fixed, median, percentile, ratio } from './stats.ts';

export interface SwarmComparisonOptions {
  /** `docker run`s per network */
  runs: number;
  rounds: number;
  seconds: number;
  log: (line: string) => void;
}

interface Path {
  name: string;
  /** network namespace paths of client and server, and the server's address */
  client: string;
  server: string;
  target: string;
}

const SWARM_NET = 'swarmnet';
const VXNET_NET = 'vxnetnet';
const NETS = [
  { label: 'Swarm overlay', network: SWARM_NET, prefix: '10.79' },
  { label: 'vxnet', network: VXNET_NET, prefix: '10.78' },
] as const;

export async function swarmComparison(options: SwarmComparisonOptions): Promise<{ json: Record<string, unknown>; markdown: string[] }> {
  const { log } = options;
  const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxswarm', startDaemons: false });
  let engines: DockerEngine[] = [];
  let client: ManagerClient | undefined;
  try {
    await cluster.startManager();
    engines = await startDockerEngines(cluster, cluster.hosts, { mode: 'normal' });
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    await Promise.all(cluster.hosts.map((host, i) => cluster.startAgent(host, { token: cluster.manager.adminToken, args: dockerAgentArgs(engines[i]!) })));
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });

    log('docker: swarm init/join, overlay network, vxnet network ...');
    await e1.dockerOk(['swarm', 'init', '--advertise-addr', cluster.host(1).address]);
    const token = await e1.dockerOk(['swarm', 'join-token', '-q', 'worker']);
    await e2.dockerOk(['swarm', 'join', '--advertise-addr', cluster.host(2).address, '--token', token, `${cluster.host(1).address}:2377`]);
    await e1.dockerOk(['network', 'create', '-d', 'overlay', '--attachable', '--subnet', '10.79.0.0/16', SWARM_NET]);
    await client.createNetwork({ name: VXNET_NET, vni: 100, subnets: [{ cidr: '10.78.0.0/16' }] });
    for (const engine of engines) {
      for (let i = 0; !(await engine.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes(VXNET_NET); i++) {
        if (i > 200) throw new Error(`docker network ${VXNET_NET} never appeared on ${engine.host.name}`);
        await sleep(50);
      }
    }

    // ---- docker run → reachable
    log(`docker: ${options.runs} × docker run on host1 per network, probed from a container on host2 ...`);
    const probes = new Map<string, { write: (ip: string) => void; next: () => Promise<string>; stop: () => void }>();
    for (const { network } of NETS) {
      await e2.dockerOk(['run', '-d', '--name', `probe-${network}`, '--network', network, BUSYBOX_IMAGE, 'sleep', '100000']);
      const netns = `/proc/${await e2.pidOf(`probe-${network}`)}/ns/net`;
      // resolve unknown neighbours quickly: the figure measures the network, not the ARP retry timer
      await run(['nsenter', `--net=${netns}`, 'sysctl', '-qw', 'net.ipv4.neigh.eth0.retrans_time_ms=10', 'net.ipv4.neigh.eth0.mcast_solicit=100']);
      const prober = spawn('nsenter', [`--net=${netns}`, process.execPath, join(import.meta.dirname, 'probe.ts')], { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines = createInterface({ input: prober.stdout! })[Symbol.asyncIterator]();
      probes.set(network, {
        write: (ip) => prober.stdin!.write(`${ip}\n`),
        next: async () => (await lines.next()).value as string,
        stop: () => prober.kill(),
      });
    }
    const samples = new Map<string, { reachable: number[]; returned: number[] }>(NETS.map((n) => [n.network, { reachable: [], returned: [] }]));
    try {
      for (let i = 0; i < options.runs; i++) {
        for (const { network, prefix } of i % 2 === 0 ? NETS : [...NETS].reverse()) {
          const ip = `${prefix}.1.${10 + i}`;
          const probe = probes.get(network)!;
          const started = performance.now();
          probe.write(ip);
          await e1.dockerOk(['run', '-d', '--name', `r-${network}-${i}`, '--network', network, '--ip', ip, BUSYBOX_IMAGE, 'sleep', '100000']);
          const returned = performance.now() - started;
          const answer = await probe.next();
          const ms = Number(answer.split(' ')[1]);
          if (!Number.isFinite(ms)) throw new Error(`${ip} on ${network} never became reachable from host2`);
          samples.get(network)!.reachable.push(ms);
          samples.get(network)!.returned.push(returned);
        }
      }
    } finally {
      for (const probe of probes.values()) probe.stop();
    }

    // ---- data plane
    log(`docker: iperf3 ${options.seconds}s × ${options.rounds} rounds per path, ping RTT ...`);
    const paths: Path[] = [{ name: 'underlay (host ⇄ host, the ceiling)', client: `/run/netns/${cluster.host(1).netns}`, server: `/run/netns/${cluster.host(2).netns}`, target: cluster.host(2).address }];
    for (const { label, network } of NETS) {
      await e1.dockerOk(['run', '-d', '--name', `cli-${network}`, '--network', network, BUSYBOX_IMAGE, 'sleep', '100000']);
      await e2.dockerOk(['run', '-d', '--name', `srv-${network}`, '--network', network, BUSYBOX_IMAGE, 'sleep', '100000']);
      const target = await e2.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, `srv-${network}`]);
      paths.push({ name: label, client: `/proc/${await e1.pidOf(`cli-${network}`)}/ns/net`, server: `/proc/${await e2.pidOf(`srv-${network}`)}/ns/net`, target });
    }
    const results = new Map(paths.map((p) => [p.name, { gbps: [] as number[], rttMs: [] as number[] }]));
    for (let round = 0; round < options.rounds; round++) {
      for (const path of paths) {
        const r = results.get(path.name)!;
        r.gbps.push(await iperf(path, options.seconds));
        r.rttMs.push(await rtt(path));
        log(`  round ${round + 1} ${path.name}: ${fixed(r.gbps.at(-1)!, 2)} Gbit/s, ${fixed(r.rttMs.at(-1)! * 1000, 0)} µs`);
      }
    }
    return summarise(samples, paths, results, options);
  } finally {
    client?.close();
    for (const engine of engines) await engine.docker(['swarm', 'leave', '--force']).catch(() => undefined);
    await destroyDockerEngines(engines);
    await cluster.destroy();
  }
}

function summarise(
  samples: Map<string, { reachable: number[]; returned: number[] }>,
  paths: Path[],
  results: Map<string, { gbps: number[]; rttMs: number[] }>,
  options: SwarmComparisonOptions,
): { json: Record<string, unknown>; markdown: string[] } {
  const swarm = samples.get(SWARM_NET)!;
  const vx = samples.get(VXNET_NET)!;
  const stat = (values: number[]) => ({ p50: percentile(values, 50), p99: percentile(values, 99) });
  const reach = { swarm: stat(swarm.reachable), vxnet: stat(vx.reachable) };
  const returned = { swarm: stat(swarm.returned), vxnet: stat(vx.returned) };
  const summary = paths.map((p) => {
    const r = results.get(p.name)!;
    return { name: p.name, gbps: median(r.gbps), rttMs: median(r.rttMs), gbpsNoise: spread(r.gbps), rttNoise: spread(r.rttMs) };
  });
  const [underlay, sw, vn] = summary as [(typeof summary)[0], (typeof summary)[0], (typeof summary)[0]];
  const noise = Math.max(sw.gbpsNoise, vn.gbpsNoise);
  const rttNoise = Math.max(sw.rttNoise, vn.rttNoise);
  const json = {
    runs: options.runs,
    rounds: options.rounds,
    seconds: options.seconds,
    dockerRunToReachableMs: reach,
    dockerRunReturnsMs: returned,
    paths: summary,
    raw: { samples: Object.fromEntries(samples), dataplane: Object.fromEntries(results) },
  };
  const pct = (x: number) => `±${fixed(x * 50, 0)}%`;
  const markdown = [
    `### Docker: vxnet vs Docker Swarm overlay (2 hosts, the same two engines, one run)`,
    '',
    `\`docker run -d --network NET --ip IP\` on host1, ${options.runs} per network, alternating; probed from a container on host2. ` +
      `Data plane: median of ${options.rounds} interleaved rounds, ${options.seconds} s iperf3 each, container to container across hosts.`,
    '',
    '| measure | Swarm overlay | vxnet | vxnet ÷ Swarm | underlay (ceiling) |',
    '| --- | --- | --- | --- | --- |',
    `| \`docker run\` → reachable from host2, p50 | ${fixed(reach.swarm.p50)} ms | ${fixed(reach.vxnet.p50)} ms | ${ratio(reach.vxnet.p50, reach.swarm.p50)} | |`,
    `| \`docker run\` → reachable from host2, p99 | ${fixed(reach.swarm.p99)} ms | ${fixed(reach.vxnet.p99)} ms | ${ratio(reach.vxnet.p99, reach.swarm.p99)} | |`,
    `| \`docker run\` returns, p50 / p99 | ${fixed(returned.swarm.p50)} / ${fixed(returned.swarm.p99)} ms | ${fixed(returned.vxnet.p50)} / ${fixed(returned.vxnet.p99)} ms | ${ratio(returned.vxnet.p50, returned.swarm.p50)} / ${ratio(returned.vxnet.p99, returned.swarm.p99)} | |`,
    `| TCP single stream (iperf3) | ${fixed(sw.gbps, 2)} Gbit/s (${pct(sw.gbpsNoise)}) | ${fixed(vn.gbps, 2)} Gbit/s (${pct(vn.gbpsNoise)}) | ${ratio(vn.gbps, sw.gbps)} | ${fixed(underlay.gbps, 2)} Gbit/s |`,
    `| ping RTT | ${fixed(sw.rttMs * 1000, 0)} µs (${pct(sw.rttNoise)}) | ${fixed(vn.rttMs * 1000, 0)} µs (${pct(vn.rttNoise)}) | ${ratio(vn.rttMs, sw.rttMs)} | ${fixed(underlay.rttMs * 1000, 0)} µs |`,
    '',
    `Targets: \`docker run\` → reachable p99 at or below Swarm's (seen: ${ratio(reach.vxnet.p99, reach.swarm.p99)}); throughput and RTT no worse than ` +
      `Swarm's by more than the run-to-run noise (seen: throughput ${ratio(vn.gbps, sw.gbps)} with noise ${pct(noise)}, RTT ${ratio(vn.rttMs, sw.rttMs)} with noise ${pct(rttNoise)}). ` +
      'Noise: half the range of the rounds, relative to their median.',
    '',
  ];
  return { json, markdown };
}

/** (max − min) / median of the rounds: how far one run may land from another on this machine. */
function spread(values: number[]): number {
  const m = median(values);
  return m > 0 ? (Math.max(...values) - Math.min(...values)) / m : 0;
}

async function iperf(path: Path, seconds: number): Promise<number> {
  const server = spawn('nsenter', [`--net=${path.server}`, 'iperf3', '-s', '-1', '-p', '5301', '--forceflush'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('iperf3 -s did not start')), 5000);
      server.stdout!.on('data', (chunk: Buffer) => {
        if (/listening/i.test(chunk.toString())) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const result = await run(['nsenter', `--net=${path.client}`, 'iperf3', '-c', path.target, '-p', '5301', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 15) * 1000 });
    if (result.code !== 0) throw new Error(`iperf3 to ${path.target} (${path.name}) failed: ${result.stdout.slice(-300)}`);
    const json = JSON.parse(result.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return json.end.sum_received.bits_per_second / 1e9;
  } finally {
    server.kill();
  }
}

async function rtt(path: Path): Promise<number> {
  const result = await run(['nsenter', `--net=${path.client}`, 'ping', '-c', '200', '-i', '0.005', '-q', path.target]);
  const match = /= [\d.]+\/([\d.]+)\//.exec(result.stdout);
  if (!match) throw new Error(`ping to ${path.target} (${path.name}) failed: ${result.stdout}`);
  return Number(match[1]);
}
