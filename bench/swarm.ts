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
 *  - iperf3 with one TCP stream and with several (`-P`), and ping RTT, container to container (the tools run
 *    in the containers' network namespaces), in interleaved rounds with the underlay (host ⇄ host) as the
 *    ceiling (bench/traffic.ts); the spread of the rounds is reported as the run-to-run noise. Next to them,
 *    the hand-built kernel VXLAN path between the same hosts (bench/hand-built.ts; DOCKER-USER accepts its
 *    bridge's traffic, as anyone running it next to Docker has to); with `layouts` also the hand-built path
 *    rebuilt in Swarm's layout (bridge and VXLAN device in a namespace of their own), all measured again
 *    without Docker's iptables rules (bench/dataplane-variants.ts); with `variants`, vxnet networks that undo
 *    one thing each (on a jumbo underlay: the MTU).
 *
 * With `runs: 0` the `docker run` part is left out (the jumbo underlay section measures the data plane only).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ManagerClient } from '../src/client/client.ts';
import { createCluster } from '../src/testkit/cluster.ts';
import { BUSYBOX_IMAGE, type DockerEngine, destroyDockerEngines, dockerAgentArgs, startDockerEngines } from '../src/testkit/docker.ts';
import { run, sleep } from '../src/testkit/processes.ts';
import {
  HAND_BUILT_LABEL,
  HAND_SANDBOX_LABEL,
  SWARM_LABEL,
  VXNET_LABEL,
  dropDockerRules,
  interfaceMtu,
  phasesMarkdown,
  type Phase,
  type VariantNetwork,
} from './dataplane-variants.ts';
import { handBuiltSandbox, handBuiltVxlan } from './hand-built.ts';
import { distribution, fixed, ratio, rounded } from './stats.ts';
import { measureTraffic, noise, summariseTraffic, type TrafficPath, type TrafficRounds, type TrafficSummary } from './traffic.ts';

export interface SwarmComparisonOptions {
  /** `docker run`s per network */
  runs: number;
  rounds: number;
  seconds: number;
  /** parallel TCP streams of the multi-stream measurement */
  streams: number;
  /** MTU of the underlay links (default 1500) */
  underlayMtu?: number;
  /** vxnet networks that each undo one thing (on a jumbo underlay: the MTU) */
  variants?: readonly VariantNetwork[];
  /** also the hand-built path in Swarm's layout, and every path again without Docker's iptables rules */
  layouts?: boolean;
  log: (line: string) => void;
}

/** Samples in milliseconds, in the order they were taken. */
export interface DockerRunSamples {
  reachable: number[];
  returned: number[];
}

export interface SwarmComparison {
  json: Record<string, unknown>;
  markdown: string[];
  samples: { swarm: DockerRunSamples; vxnet: DockerRunSamples };
  traffic: Map<string, TrafficRounds>;
  /** the data plane: with Docker's rules, and (with `variants`) without them */
  phases: Phase[];
  /** notes on the run's paths (none today; kept in the JSON's shape) */
  notes: string[];
}

const SWARM_NET = 'swarmnet';
const VXNET_NET = 'vxnetnet';
const NETS = [
  { label: SWARM_LABEL, network: SWARM_NET, prefix: '10.79' },
  { label: VXNET_LABEL, network: VXNET_NET, prefix: '10.78' },
] as const;
export const UNDERLAY_PATH = 'underlay (host ⇄ host, the ceiling)';

export async function swarmComparison(options: SwarmComparisonOptions): Promise<SwarmComparison> {
  const { log } = options;
  const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxswarm', startDaemons: false, underlayMtu: options.underlayMtu });
  const variants = options.variants ?? [];
  let engines: DockerEngine[] = [];
  let client: ManagerClient | undefined;
  try {
    await cluster.startManager();
    engines = await startDockerEngines(cluster, cluster.hosts, { mode: 'normal' });
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    await Promise.all(cluster.hosts.map((host, i) => cluster.startAgent(host, { adminToken: true, args: dockerAgentArgs(engines[i]!) })));
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });

    log('docker: swarm init/join, overlay network, vxnet network ...');
    await e1.dockerOk(['swarm', 'init', '--advertise-addr', cluster.host(1).address]);
    const token = await e1.dockerOk(['swarm', 'join-token', '-q', 'worker']);
    await e2.dockerOk(['swarm', 'join', '--advertise-addr', cluster.host(2).address, '--token', token, `${cluster.host(1).address}:2377`]);
    await e1.dockerOk(['network', 'create', '-d', 'overlay', '--attachable', '--subnet', '10.79.0.0/16', SWARM_NET]);
    await client.createNetwork({ name: VXNET_NET, vni: 100, subnets: [{ cidr: '10.78.0.0/16' }] });
    for (const v of variants) {
      await client.createNetwork({ name: v.network, vni: v.vni, subnets: [{ cidr: `${v.prefix}.0.0/16` }], ...(v.kind === 'mtu-1450' ? { mtu: 1450 } : {}) });
    }
    for (const engine of engines) {
      for (const network of [VXNET_NET, ...variants.map((v) => v.network)]) {
        for (let i = 0; !(await engine.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes(network); i++) {
          if (i > 200) throw new Error(`docker network ${network} never appeared on ${engine.host.name}`);
          await sleep(50);
        }
      }
    }

    // ---- docker run → reachable
    const samples = new Map<string, DockerRunSamples>(NETS.map((n) => [n.network, { reachable: [], returned: [] }]));
    if (options.runs > 0) await dockerRuns(e1, e2, options, samples);

    // ---- data plane
    log(`docker: iperf3 ${options.seconds}s (1 and ${options.streams} streams) × ${options.rounds} rounds per path, ping RTT ...`);
    const [h1, h2] = [cluster.host(1), cluster.host(2)];
    const paths: TrafficPath[] = [{ name: UNDERLAY_PATH, client: `/run/netns/${h1.netns}`, server: `/run/netns/${h2.netns}`, target: h2.address }];
    for (const { label, network } of [...NETS, ...variants.map((v) => ({ label: v.label, network: v.network }))]) {
      await e1.dockerOk(['run', '-d', '--name', `cli-${network}`, '--network', network, BUSYBOX_IMAGE, 'sleep', '100000']);
      await e2.dockerOk(['run', '-d', '--name', `srv-${network}`, '--network', network, BUSYBOX_IMAGE, 'sleep', '100000']);
      const target = await e2.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, `srv-${network}`]);
      paths.push({ name: label, client: `/proc/${await e1.pidOf(`cli-${network}`)}/ns/net`, server: `/proc/${await e2.pidOf(`srv-${network}`)}/ns/net`, target });
    }
    // the hand-built path in two more containers of the same engines, at the MTU vxnet derives
    const vxnetMtu = (options.underlayMtu ?? 1500) - 50;
    for (const [i, engine] of [e1, e2].entries()) {
      await engine.dockerOk(['run', '-d', '--name', 'hand', '--network', 'none', BUSYBOX_IMAGE, 'sleep', '100000']);
      const [self, peer] = i === 0 ? [h1, h2] : [h2, h1];
      const container = `/proc/${await engine.pidOf('hand')}/ns/net`;
      await handBuiltVxlan({ hostNetns: self.netns, local: self.address, remote: peer.address, container, address: `172.30.0.${i + 1}/24` }, vxnetMtu);
      await run(['ip', 'netns', 'exec', self.netns, 'iptables', '-w', '5', '-I', 'DOCKER-USER', '1', '-i', 'hbbr0', '-o', 'hbbr0', '-j', 'ACCEPT']);
    }
    paths.push({ name: HAND_BUILT_LABEL, client: `/proc/${await e1.pidOf('hand')}/ns/net`, server: `/proc/${await e2.pidOf('hand')}/ns/net`, target: '172.30.0.2' });
    if (options.layouts) {
      // the structural candidate, prototyped by hand: the same path with its bridge and VXLAN device in a
      // namespace of their own; that namespace is a container with no network, so the engine cleans it up
      for (const [i, engine] of [e1, e2].entries()) {
        await engine.dockerOk(['run', '-d', '--name', 'handsb', '--network', 'none', BUSYBOX_IMAGE, 'sleep', '100000']);
        await engine.dockerOk(['run', '-d', '--name', 'handsbc', '--network', 'none', BUSYBOX_IMAGE, 'sleep', '100000']);
        const [self, peer] = i === 0 ? [h1, h2] : [h2, h1];
        const sandbox = `/proc/${await engine.pidOf('handsb')}/ns/net`;
        const container = `/proc/${await engine.pidOf('handsbc')}/ns/net`;
        await handBuiltSandbox({ hostNetns: self.netns, local: self.address, remote: peer.address, container, address: `172.31.0.${i + 1}/24` }, sandbox, vxnetMtu);
      }
      paths.push({ name: HAND_SANDBOX_LABEL, client: `/proc/${await e1.pidOf('handsbc')}/ns/net`, server: `/proc/${await e2.pidOf('handsbc')}/ns/net`, target: '172.31.0.2' });
    }
    const mtus = new Map<string, number>();
    for (const path of paths) mtus.set(path.name, await interfaceMtu(path));

    const traffic = await measureTraffic(paths, options);
    const phases: Phase[] = [{ title: "Docker's iptables rules on", mtus, summary: summariseTraffic(paths, traffic) }];
    const notes: string[] = [];
    if (options.layouts) {
      log("docker: the same without Docker's iptables rules ...");
      for (const host of [h1, h2]) await dropDockerRules(host.netns);
      const without = await measureTraffic(paths, options);
      phases.push({ title: "without Docker's iptables rules", mtus, summary: summariseTraffic(paths, without) });
    }
    const summary = options.runs > 0 ? summarise(samples, paths, traffic, options) : { json: {}, markdown: [] };
    const json = { ...summary.json, underlayMtu: options.underlayMtu ?? 1500, phases: phases.map((p) => ({ ...p, mtus: Object.fromEntries(p.mtus) })), notes };
    const markdown = summary.markdown.length
      ? [...summary.markdown, ...variantsSection(phases, notes, options)]
      : [...phasesMarkdown(phases, options.streams), ''];
    return { json, markdown, samples: { swarm: samples.get(SWARM_NET)!, vxnet: samples.get(VXNET_NET)! }, traffic, phases, notes };
  } finally {
    client?.close();
    for (const engine of engines) await engine.docker(['swarm', 'leave', '--force']).catch(() => undefined);
    await destroyDockerEngines(engines);
    await cluster.destroy();
  }
}

function variantsSection(phases: readonly Phase[], notes: readonly string[], options: SwarmComparisonOptions): string[] {
  if (phases.length < 2 && phases[0]!.summary.length <= 4) return [];
  return [
    `#### Data plane side by side: Swarm, vxnet, its variants and the hand-built path (median of ${options.rounds} interleaved rounds per setting)`,
    '',
    ...phasesMarkdown(phases, options.streams),
    '',
    ...notes.map((note) => `- ${note}`),
    '',
    ...targetLines(phases, options.streams),
    '',
  ];
}

/**
 * vxnet issue 19's targets, read off the table: vxnet ≥ 1.0× Swarm and the hand-built path at 1 and N streams
 * and RTT ≤ 1.1× both, in every setting; and what the per-network namespace is worth to the hand-built path.
 */
function targetLines(phases: readonly Phase[], streams: number): string[] {
  const lines: string[] = [];
  for (const phase of phases) {
    const find = (label: string) => phase.summary.find((s) => s.name === label);
    const [vx, swarm, hand, sandbox] = [VXNET_LABEL, SWARM_LABEL, HAND_BUILT_LABEL, HAND_SANDBOX_LABEL].map(find);
    if (!vx || !swarm || !hand) continue;
    const against = (ref: TrafficSummary, name: string) =>
      `÷ ${name}: 1 stream ${ratio(vx.singleGbps, ref.singleGbps)} (noise ${noise(Math.max(vx.singleNoise, ref.singleNoise))}), ` +
      `${streams} streams ${ratio(vx.multiGbps, ref.multiGbps)} (${noise(Math.max(vx.multiNoise, ref.multiNoise))}), ` +
      `RTT ${ratio(vx.rttMs, ref.rttMs)} (${noise(Math.max(vx.rttNoise, ref.rttNoise))}), min RTT ${ratio(vx.rttMinMs, ref.rttMinMs)}, ` +
      `CPU per Gbit ${ratio(vx.singleCpuMsPerGbit, ref.singleCpuMsPerGbit)}`;
    lines.push(`- ${phase.title}: vxnet ${against(swarm, 'Swarm')}; ${against(hand, 'hand-built')}.`);
    if (sandbox) {
      lines.push(
        `  The hand-built path in a namespace of its own ÷ the same in the host namespace: 1 stream ${ratio(sandbox.singleGbps, hand.singleGbps)}, ` +
          `${streams} streams ${ratio(sandbox.multiGbps, hand.multiGbps)}, RTT ${ratio(sandbox.rttMs, hand.rttMs)}, min RTT ${ratio(sandbox.rttMinMs, hand.rttMinMs)}, ` +
          `CPU per Gbit ${ratio(sandbox.singleCpuMsPerGbit, hand.singleCpuMsPerGbit)}; ÷ Swarm: 1 stream ${ratio(sandbox.singleGbps, swarm.singleGbps)}, ` +
          `${streams} streams ${ratio(sandbox.multiGbps, swarm.multiGbps)}, CPU per Gbit ${ratio(sandbox.singleCpuMsPerGbit, swarm.singleCpuMsPerGbit)}.`,
      );
    }
  }
  if (lines.length) {
    lines.unshift(`Targets (vxnet issue 19): vxnet ≥ 1.0× Swarm and ≥ 1.0× the hand-built path at 1 and ${streams} streams within the noise, RTT ≤ 1.1× both. Seen:`, '');
  }
  return lines;
}

async function dockerRuns(e1: DockerEngine, e2: DockerEngine, options: SwarmComparisonOptions, samples: Map<string, DockerRunSamples>): Promise<void> {
  const { log } = options;
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
  try {
    for (let i = 0; i < options.runs; i++) {
      for (const { network, prefix } of i % 2 === 0 ? NETS : [...NETS].reverse()) {
        const ip = `${prefix}.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`;
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
      if ((i + 1) % 20 === 0) log(`  ${i + 1} of ${options.runs} docker runs per network`);
    }
  } finally {
    for (const probe of probes.values()) probe.stop();
  }
}

function summarise(
  samples: Map<string, DockerRunSamples>,
  paths: TrafficPath[],
  traffic: Map<string, TrafficRounds>,
  options: SwarmComparisonOptions,
): { json: Record<string, unknown>; markdown: string[] } {
  const swarm = samples.get(SWARM_NET)!;
  const vx = samples.get(VXNET_NET)!;
  const reach = { swarm: distribution(swarm.reachable), vxnet: distribution(vx.reachable) };
  const returned = { swarm: distribution(swarm.returned), vxnet: distribution(vx.returned) };
  const summary = summariseTraffic(paths, traffic);
  const [underlay, sw, vn] = summary as [(typeof summary)[0], (typeof summary)[0], (typeof summary)[0]];
  const json = {
    runs: options.runs,
    rounds: options.rounds,
    seconds: options.seconds,
    streams: options.streams,
    dockerRunToReachableMs: reach,
    dockerRunReturnsMs: returned,
    paths: summary,
    raw: {
      samples: Object.fromEntries([...samples].map(([net, s]) => [net, { reachable: rounded(s.reachable), returned: rounded(s.returned) }])),
      dataplane: Object.fromEntries(traffic),
    },
  };
  const ms = (v: number) => `${fixed(v)} ms`;
  const reachRow = (label: string, p: 'p50' | 'p95' | 'p99') =>
    `| ${label}, ${p} | ${ms(reach.swarm[p])} | ${ms(reach.vxnet[p])} | ${ratio(reach.vxnet[p], reach.swarm[p])} | |`;
  const gbpsRow = (label: string, key: 'singleGbps' | 'multiGbps', noiseKey: 'singleNoise' | 'multiNoise') =>
    `| ${label} | ${fixed(sw[key], 2)} Gbit/s (${noise(sw[noiseKey])}) | ${fixed(vn[key], 2)} Gbit/s (${noise(vn[noiseKey])}) | ${ratio(vn[key], sw[key])} | ${fixed(underlay[key], 2)} Gbit/s |`;
  const markdown = [
    `### Docker: vxnet vs Docker Swarm overlay (2 hosts, the same two engines, one run)`,
    '',
    `\`docker run -d --network NET --ip IP\` on host1, ${options.runs} per network, alternating; probed from a container on host2. ` +
      `Data plane: median of ${options.rounds} interleaved rounds, ${options.seconds} s iperf3 each, container to container across hosts.`,
    '',
    '| measure | Swarm overlay | vxnet | vxnet ÷ Swarm | underlay (ceiling) |',
    '| --- | --- | --- | --- | --- |',
    reachRow('`docker run` → reachable from host2', 'p50'),
    reachRow('`docker run` → reachable from host2', 'p95'),
    reachRow('`docker run` → reachable from host2', 'p99'),
    `| \`docker run\` returns, p50 / p95 / p99 | ${fixed(returned.swarm.p50)} / ${fixed(returned.swarm.p95)} / ${fixed(returned.swarm.p99)} ms | ` +
      `${fixed(returned.vxnet.p50)} / ${fixed(returned.vxnet.p95)} / ${fixed(returned.vxnet.p99)} ms | ` +
      `${ratio(returned.vxnet.p50, returned.swarm.p50)} / ${ratio(returned.vxnet.p95, returned.swarm.p95)} / ${ratio(returned.vxnet.p99, returned.swarm.p99)} | |`,
    gbpsRow('TCP single stream (iperf3)', 'singleGbps', 'singleNoise'),
    gbpsRow(`TCP ${options.streams} streams (iperf3 -P ${options.streams})`, 'multiGbps', 'multiNoise'),
    `| ping RTT | ${fixed(sw.rttMs * 1000, 0)} µs (${noise(sw.rttNoise)}) | ${fixed(vn.rttMs * 1000, 0)} µs (${noise(vn.rttNoise)}) | ${ratio(vn.rttMs, sw.rttMs)} | ${fixed(underlay.rttMs * 1000, 0)} µs |`,
    '',
    `Targets: \`docker run\` → reachable p99 at or below Swarm's (seen: ${ratio(reach.vxnet.p99, reach.swarm.p99)}); throughput and RTT no worse than ` +
      `Swarm's by more than the run-to-run noise (seen: 1 stream ${ratio(vn.singleGbps, sw.singleGbps)} with noise ${noise(Math.max(sw.singleNoise, vn.singleNoise))}, ` +
      `${options.streams} streams ${ratio(vn.multiGbps, sw.multiGbps)} with noise ${noise(Math.max(sw.multiNoise, vn.multiNoise))}, ` +
      `RTT ${ratio(vn.rttMs, sw.rttMs)} with noise ${noise(Math.max(sw.rttNoise, vn.rttNoise))}). ` +
      'Noise: half the range of the rounds, relative to their median.',
    '',
  ];
  return { json, markdown };
}
