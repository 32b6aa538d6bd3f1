/**
 * `npm run bench`: measures vxnet side by side with its references in one run on simulated hosts, and
 * prints ratios (absolute numbers on a shared machine are noisy; ratios within one run are not).
 *
 *  1. attach → reachable from a container on another host (p50/p95/p99 over --attaches, default 100), with a
 *     namespace per network and without (two more hosts, attaches interleaved: bench/attach.ts);
 *  2. kernel programming on a real namespace: for each of --peers (default 10,000 and 50,000) remote
 *     endpoints on one node, the pass that programs them, passes with nothing to change, the prune, and the
 *     memory of the process that did it (bench/kernel-scale.ts);
 *  3. data plane: TCP with one stream and with --streams (default 4) parallel streams (iperf3), and ping RTT,
 *     container to container across hosts — vxnet vs a hand-built kernel VXLAN path between the same hosts
 *     (the tutorial's `ip link add ... type vxlan` + bridge + veth) vs the bare underlay (the ceiling);
 *  4. Docker: vxnet vs Docker Swarm's overlay on the same two engines — `docker run` → reachable from the
 *     other host (--docker-runs per network, default 100), the same traffic measurements between containers
 *     (bench/swarm.ts; its own simulated hosts); next to them the hand-built path in the host namespace and
 *     in Swarm's layout (bridge and VXLAN device in a namespace of their own, as vxnet's agent now builds
 *     them), with Docker's iptables rules and again without them (bench/dataplane-variants.ts);
 *  5. jumbo: the data plane of section 4 on a 9000-byte underlay (vxnet derives 8950, Swarm keeps 1450);
 *  6. cli: `vxnet --version` and a `vxnet network ls` round trip from an installed build, p50/p99 over 50 runs
 *     next to `node -e 0` (bench/cli-start.ts, also `npm run bench:cli` on its own);
 *  7. control plane at scale: not measured here. The latest report of `npm run bench:scale` (about 7 minutes
 *     on every CPU) is included when bench/results/scale.md exists; `--with-scale` runs that harness first.
 *  8. encrypt: an encrypted vxnet network vs wireguard-go host to host (its ceiling), the plain network and
 *     the underlay, in one run (bench/encrypt.ts);
 *  9. dns: queries per second and p99 from one namespace to its gateway, next to a bare UDP reflector on the
 *     same address (bench/dns.ts);
 * 10. store: the manager's write latency and throughput on SQLite and on a 3-member etcd, side by side
 *     (bench/store-writes.ts; --store-writes per kind, default 200);
 * 11. ovs: a kernel host ⇄ an Open vSwitch host (userspace datapath), vxnet next to the hand-built OVS-to-kernel
 *     VXLAN, both directions (bench/ovs.ts).
 * 12. ipv6: IPv6 inside a vxnet network vs a hand-built IPv6-in-VXLAN path between the same hosts, in one run
 *     (bench/ipv6.ts).
 * 13. ipv6-underlay: vxnet over an IPv6-only underlay next to the hand-built VXLAN-over-IPv6 path and the bare
 *     underlay, in one run (bench/ipv6-underlay.ts).
 *
 * Data-plane rounds are interleaved (bench/traffic.ts), `docker run`s alternate between the networks.
 * Writes bench/results/latest.{json,md} and latest.svg (the distributions: attach → reachable, `docker run`
 * → reachable, the throughput and RTT rounds); `--update-readme` also puts the tables into README.md.
 * `--skip attach|kernel|dataplane|docker|jumbo|cli|scale|encrypt|dns|store|ovs|ipv6|ipv6-underlay` leaves a section out (the report then goes to partial.* instead,
 * so that the full one stays); `--kernel-node-option=--cpu-prof`
 * (repeatable) passes Node options to bench/kernel-scale.ts, e.g. to profile kernel programming.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ManagerClient } from '../src/client/client.ts';
import { createCluster, type Cluster } from '../src/testkit/cluster.ts';
import { runChecked } from '../src/testkit/processes.ts';
import { MTU_VARIANTS } from './dataplane-variants.ts';
import type { LayoutFigures } from './kernel-scale.ts';
import { handBuiltVxlan } from './hand-built.ts';
import { ipv6UnderlayDataPlane } from './ipv6-underlay.ts';
import { ovsComparison } from './ovs.ts';
import { demoteHeadings, updateReadme } from './readme.ts';
import { attachBothLayouts } from './attach.ts';
import { measureCliStart } from './cli-start.ts';
import { dnsBench } from './dns.ts';
import { encryptedDataPlane } from './encrypt.ts';
import { ipv6DataPlane } from './ipv6.ts';
import { loadScaleReport } from './scale-report.ts';
import { measureStoreWrites } from './store-writes.ts';
import { distribution, fixed, ratio, rounded } from './stats.ts';
import { distributionChart, type Panel, type Series } from './svg.ts';
import { swarmComparison, type SwarmComparison } from './swarm.ts';
import { measureTraffic, noise, summariseTraffic, type TrafficPath, type TrafficRounds, type TrafficSummary } from './traffic.ts';

const SECTIONS = ['attach', 'kernel', 'dataplane', 'docker', 'jumbo', 'cli', 'scale', 'encrypt', 'dns', 'store', 'ovs', 'ipv6', 'ipv6-underlay'] as const;
type Section = (typeof SECTIONS)[number];

const { values: flags } = parseArgs({
  options: {
    attaches: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '4' },
    streams: { type: 'string', default: '4' },
    /** remote endpoints on one node, one kernel-programming run per comma-separated size */
    peers: { type: 'string', default: '10000,50000' },
    'docker-runs': { type: 'string', default: '100' },
    skip: { type: 'string', multiple: true, default: [] },
    'with-scale': { type: 'boolean', default: false },
    /** bench/results/NAME.{md,json} of `npm run bench:scale` to include (and to write, with --with-scale) */
    'scale-report': { type: 'string', default: 'scale' },
    'kernel-node-option': { type: 'string', multiple: true, default: [] },
    'update-readme': { type: 'boolean', default: false },
    'store-writes': { type: 'string', default: '200' },
  },
});

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}
const ATTACHES = positiveInteger('attaches', flags.attaches);
const ROUNDS = positiveInteger('rounds', flags.rounds);
const SECONDS = positiveInteger('seconds', flags.seconds);
const STREAMS = positiveInteger('streams', flags.streams);
const DOCKER_RUNS = positiveInteger('docker-runs', flags['docker-runs']);
const PEER_SIZES = flags.peers.split(',').map((size) => positiveInteger('peers', size.trim()));
const skip = new Set(flags.skip);
for (const name of skip) {
  if (!(SECTIONS as readonly string[]).includes(name)) {
    console.error(`--skip takes one of ${SECTIONS.join(', ')}, got ${JSON.stringify(name)}`);
    process.exit(2);
  }
}
const runs = (section: Section) => !skip.has(section);
// A run that leaves sections out must not replace the full report the README quotes (the control-plane
// section is only ever read, so leaving it out is no loss).
const OUT = [...skip].some((section) => section !== 'scale') ? 'partial' : 'latest';
if (flags['update-readme'] && OUT !== 'latest') {
  console.error('--update-readme needs every section: the README shows a full run.');
  process.exit(2);
}

const RESULTS_DIR = join(import.meta.dirname, 'results');
/** 100 µs per remote endpoint: the targets are 10,000 in < 1 s and 50,000 in < 5 s. */
const programTargetMs = (peers: number) => peers * 0.1;
const NO_CHANGE_TARGET_MS = 50;
/** runs per command of the cli section (vxnet issue 17: p50/p99 over 50) */
const CLI_RUNS = 50;
/** the `local` address of the kernel-programming run's VXLAN device, in a namespace of its own */
const LOCAL_UNDERLAY_ADDRESS = '10.98.0.1';
/** the jumbo section's underlay MTU */
const JUMBO_MTU = 9000;
const log = (line: string) => console.log(line);

const report: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? '', node: process.version, commit: gitCommit(), loadAtStart: loadavg() },
  options: { attaches: ATTACHES, rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, peers: PEER_SIZES, dockerRuns: DOCKER_RUNS, skip: [...skip] },
};
const markdown = new Map<Section, string[]>();
/** Samples for the chart, filled in by the sections that ran. */
const chart: {
  attach?: { reachable: number[]; ready: number[] };
  traffic?: { paths: TrafficPath[]; rounds: Map<string, TrafficRounds> };
  docker?: SwarmComparison;
} = {};

if (flags['with-scale'] && runs('scale')) await runScaleHarness(flags['scale-report']);

if (runs('attach') || runs('kernel') || runs('dataplane')) {
  const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxbench' });
  const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  try {
    if (runs('attach')) await attachToReachable(cluster, client);
    if (runs('kernel')) await kernelProgramming(cluster);
    if (runs('dataplane')) await dataPlane(cluster, client);
  } finally {
    client.close();
    await cluster.destroy();
  }
}
const docker = await sectionModule('docker', 'docker', () =>
  swarmComparison({ runs: DOCKER_RUNS, rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, layouts: true, log }),
);
if (docker) chart.docker = docker;
if (runs('jumbo')) await jumboUnderlay();
await sectionModule('ovs', 'ovs', () => ovsComparison({ rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, log }));
if (runs('cli')) await cliStart();
if (runs('scale')) await includeScaleReport(flags['scale-report']);
await sectionModule('encrypt', 'encrypt', () => encryptedDataPlane({ rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, log }));
// section 9 (vxnet issue 12): DNS on the gateways, bench/dns.ts
await sectionModule('dns', 'dns', () => dnsBench({ queries: 20_000, concurrency: 32, rounds: ROUNDS, log }));
// section 12 (vxnet issue 15): IPv6 inside networks, bench/ipv6.ts
await sectionModule('ipv6', 'ipv6', () => ipv6DataPlane({ rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, log }));
await sectionModule('store', 'store', () => measureStoreWrites({ writes: positiveInteger('store-writes', flags['store-writes']), log }));
await sectionModule('ipv6-underlay', 'ipv6Underlay', () => ipv6UnderlayDataPlane({ rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, log }));

(report.machine as Record<string, unknown>).loadAtEnd = loadavg();
const load = (key: string) => ((report.machine as Record<string, number[]>)[key] ?? []).map((v) => v.toFixed(2)).join(' / ');
const header = [
  `# vxnet benchmark, ${String(report.date).slice(0, 16).replace('T', ' ')} UTC`,
  '',
  `Commit ${(report.machine as { commit: string }).commit || 'unknown'}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}. ` +
    'Compare ratios within this run, not absolute figures across runs: the machine is shared ' +
    `(load average 1 / 5 / 15 min: ${load('loadAtStart')} at the start, ${load('loadAtEnd')} at the end).`,
  '',
];
const body = SECTIONS.flatMap((section) => markdown.get(section) ?? []);
await mkdir(RESULTS_DIR, { recursive: true });
await writeFile(join(RESULTS_DIR, `${OUT}.json`), JSON.stringify(report, null, 2) + '\n');
await writeFile(join(RESULTS_DIR, `${OUT}.md`), [...header, ...body].join('\n') + '\n');
await writeFile(join(RESULTS_DIR, `${OUT}.svg`), chartSvg());
if (flags['update-readme']) await updateReadmeSections();
log('');
log(body.join('\n'));
log(`written: ${join(RESULTS_DIR, OUT)}.{json,md,svg}`);

// ---------------------------------------------------------------------------------------------------

/** HEAD, with "-dirty" when the working tree differs from it: then the figures are not HEAD's alone. */
function gitCommit(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=7'], { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

/**
 * A section measured by a module of its own (bench/swarm.ts, ovs.ts, ...): run unless skipped, its JSON filed
 * in the report under `key`, its markdown under the section's name. Undefined when skipped.
 */
async function sectionModule<T extends { json: unknown; markdown: string[] }>(section: Section, key: string, measure: () => Promise<T>): Promise<T | undefined> {
  if (!runs(section)) return undefined;
  const result = await measure();
  report[key] = result.json;
  markdown.set(section, result.markdown);
  return result;
}

/** Section 5: the Docker section's data plane on a 9000-byte underlay, no `docker run`s, no variants. */
async function jumboUnderlay(): Promise<void> {
  log(`jumbo underlay: Swarm, vxnet and the hand-built path on MTU ${JUMBO_MTU} links ...`);
  const jumbo = await swarmComparison({ runs: 0, rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, underlayMtu: JUMBO_MTU, variants: MTU_VARIANTS, log });
  report.jumbo = jumbo.json;
  const summary = jumbo.phases[0]!.summary;
  const [swarm, vx] = ['Swarm overlay', 'vxnet'].map((name) => summary.find((s) => s.name === name)!) as [TrafficSummary, TrafficSummary];
  markdown.set('jumbo', [
    `### Jumbo underlay (MTU ${JUMBO_MTU}): vxnet vs Docker Swarm overlay (2 hosts, the same two engines, median of ${ROUNDS} interleaved rounds)`,
    '',
    ...jumbo.markdown,
    `vxnet gives its network the underlay's MTU less the 50 bytes of VXLAN; Swarm's overlay keeps 1450; the hand-built path has vxnet's MTU, ` +
      "and one more vxnet network is made with Swarm's, to tell what the MTU is worth from what vxnet's path costs. Target: ≥ 1.05× Swarm " +
      `(seen: 1 stream ${ratio(vx.singleGbps, swarm.singleGbps)}, ${STREAMS} streams ${ratio(vx.multiGbps, swarm.multiGbps)}).`,
    '',
  ]);
}

/** Section 6: CLI start-up and a `network ls` round trip, from a temporary installation (bench/cli-start.ts). */
async function cliStart(): Promise<void> {
  log('cli: installing a temporary build and timing vxnet --version and vxnet network ls ...');
  const cli = await measureCliStart({ runs: CLI_RUNS });
  report.cli = { runs: cli.runs, rows: cli.rows };
  markdown.set('cli', ['### CLI start-up (`npm run bench:cli`)', '', ...cli.markdown, '']);
}

async function runScaleHarness(name: string): Promise<void> {
  log(`control plane at scale: node bench/scale/run.ts --out ${name} (about 7 minutes) ...`);
  const child = spawn(process.execPath, [join(import.meta.dirname, 'scale', 'run.ts'), '--out', name], { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  });
  if (code !== 0) throw new Error(`bench/scale/run.ts --out ${name} failed (exit ${code}); nothing else was measured`);
}

async function includeScaleReport(name: string): Promise<void> {
  const scale = await loadScaleReport(RESULTS_DIR, name);
  if (!scale) {
    report.scale = null;
    markdown.set('scale', [
      '### Control plane at scale',
      '',
      `No bench/results/${name}.md yet: it is written by \`npm run bench:scale\` (about 7 minutes on all CPUs), or by \`npm run bench -- --with-scale\`.`,
      '',
    ]);
    return;
  }
  report.scale = scale.json;
  markdown.set('scale', ['### Control plane at scale (`npm run bench:scale`)', '', ...demoteHeadings(scale.markdown)]);
}

async function attachToReachable(cluster: Cluster, client: ManagerClient): Promise<void> {
  const { namespaces, hostLayout } = await attachBothLayouts(cluster, client, ATTACHES, log);
  const { reachable, ready } = namespaces;
  const readyMs = distribution(ready);
  const reachableMs = distribution(reachable);
  const host = { readyMs: distribution(hostLayout.ready), reachableMs: distribution(hostLayout.reachable) };
  report.attach = {
    attaches: ATTACHES,
    readyMs,
    reachableMs,
    raw: { readyMs: rounded(ready, 1), reachableMs: rounded(reachable, 1) },
    // the layout without namespaces (--no-network-namespaces), interleaved with the default one (bench/attach.ts)
    hostLayout: { ...host, raw: { readyMs: rounded(hostLayout.ready, 1), reachableMs: rounded(hostLayout.reachable, 1) } },
  };
  chart.attach = { reachable, ready };
  const row = (label: string, d: typeof readyMs, target: string) =>
    `| ${label} | ${fixed(d.p50)} ms | ${fixed(d.p95)} ms | ${fixed(d.p99)} ms | ${fixed(d.max)} ms |${target ? ` ${target} ` : ' '}|`;
  markdown.set('attach', [
    `### Attach → reachable from another host (2 hosts, ${ATTACHES} attaches)`,
    '',
    '| measure | p50 | p95 | p99 | max | target |',
    '| --- | --- | --- | --- | --- | --- |',
    row('`vxnet attach` returns (endpoint ready on its node)', readyMs, ''),
    row('attach start → reachable from a container on host2', reachableMs, `p99 < 250 ms ${reachableMs.p99 < 250 ? '✅' : '❌'}`),
    row('the same without namespaces (`--no-network-namespaces`): `vxnet attach` returns', host.readyMs, ''),
    row('the same without namespaces: attach start → reachable', host.reachableMs, `p50 ${ratio(reachableMs.p50, host.reachableMs.p50)}, p99 ${ratio(reachableMs.p99, host.reachableMs.p99)} of this`),
    '',
    `Both layouts on two hosts each, their attaches interleaved (bench/attach.ts); the ratios are namespaces ÷ none.`,
    '',
  ]);
}

/** What bench/kernel-scale.ts prints. */
interface KernelFigures extends LayoutFigures {
  peers: number;
  baselineHeapMiB: number;
  baselineRssMiB: number;
  heapMiB: number;
  rssMiB: number;
  peakRssMiB: number;
  /** the same passes without namespaces (`--no-network-namespaces`), in the same process right after */
  hostLayout?: LayoutFigures;
}

async function kernelProgramming(cluster: Cluster): Promise<void> {
  const figures: KernelFigures[] = [];
  for (const peers of PEER_SIZES) {
    log(`kernel programming: ${peers} remote endpoints on one node ...`);
    // A namespace of its own stands for the host: the agent of a simulated host would prune the bench's
    // devices as not desired on its periodic pass, and replace the bench's nftables table with its own.
    const host = await cluster.addContainer(`khost${peers}`);
    const container = await cluster.addContainer(`kcont${peers}`);
    try {
      await runChecked(['ip', '-n', host, '-batch', '-'], {
        input: ['link add kul0 type veth peer name kul1', `addr add ${LOCAL_UNDERLAY_ADDRESS}/24 dev kul0`, 'link set kul0 up', 'link set kul1 up'].join('\n') + '\n',
      });
      const argv = [
        ...['ip', 'netns', 'exec', host, process.execPath, '--expose-gc', ...flags['kernel-node-option']],
        ...[join(import.meta.dirname, 'kernel-scale.ts'), String(peers), container, LOCAL_UNDERLAY_ADDRESS],
      ];
      const result = await runChecked(argv, { timeoutMs: 120_000 + peers * 10 });
      const f = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as KernelFigures;
      figures.push(f);
      log(`  programmed in ${fixed(f.programMs)} ms, no-change pass ${fixed(f.noChangeMs)} ms, heap ${fixed(f.heapMiB)} MiB, RSS ${fixed(f.rssMiB)} MiB`);
    } finally {
      await cluster.removeContainer(container);
      await cluster.removeContainer(host);
    }
  }
  report.kernel = figures;
  const mark = (ok: boolean) => (ok ? '✅' : '❌');
  const cells = (cell: (f: KernelFigures) => string) => figures.map(cell).join(' | ');
  const sizes = figures.map((f) => f.peers.toLocaleString('en-US'));
  markdown.set('kernel', [
    `### Kernel programming on one node (${sizes.join(' and ')} remote endpoints, real namespace)`,
    '',
    `| measure | ${sizes.map((s) => `${s} endpoints`).join(' | ')} | target |`,
    `| --- | ${figures.map(() => '---').join(' | ')} | --- |`,
    `| program them from empty (neigh + FDB + flood entries) | ${cells((f) => `${fixed(f.programMs)} ms ${mark(f.programMs < programTargetMs(f.peers))}`)} | ` +
      `${figures.map((f, i) => `${sizes[i]}: < ${fixed(programTargetMs(f.peers) / 1000, 1)} s`).join(', ')} |`,
    `| reconcile pass with nothing to change (median of ${figures[0]?.noChangePasses ?? 0}; max) | ` +
      `${cells((f) => `${fixed(f.noChangeMs)} ms ${mark(f.noChangeMs < NO_CHANGE_TARGET_MS)} (${fixed(f.noChangeMaxMs)} ms)`)} | < ${NO_CHANGE_TARGET_MS} ms |`,
    `| the same, re-reading every entry (every 30 s, or after a change made behind vxnet's back; median of ${figures[0]?.noChangeFullReadPasses ?? 0}) | ${cells((f) => `${fixed(f.noChangeFullReadMs)} ms`)} | |`,
    `| one peer moves to another VTEP: that pass / the pass after it (median of ${figures[0]?.oneChangePasses ?? 0}) | ${cells((f) => `${fixed(f.oneChangeMs)} / ${fixed(f.afterOneChangeMs)} ms`)} | |`,
    `| remove them all (prune) | ${cells((f) => `${fixed(f.pruneMs)} ms`)} | |`,
    `| memory once programmed, at rest: heap (after GC) / RSS | ${cells((f) => `${fixed(f.heapMiB)} / ${fixed(f.rssMiB)} MiB`)} | |`,
    `| the same, growth over the process before the desired state was built | ${cells((f) => `${fixed(f.heapMiB - f.baselineHeapMiB)} / ${fixed(f.rssMiB - f.baselineRssMiB)} MiB`)} | |`,
    `| peak RSS during the run | ${cells((f) => `${fixed(f.peakRssMiB)} MiB`)} | |`,
    `| without namespaces (\`--no-network-namespaces\`): program / no-change pass / re-reading every entry / one peer moves, that pass / the pass after / prune | ` +
      `${cells((f) => (f.hostLayout ? [f.hostLayout.programMs, f.hostLayout.noChangeMs, f.hostLayout.noChangeFullReadMs, f.hostLayout.oneChangeMs, f.hostLayout.afterOneChangeMs, f.hostLayout.pruneMs].map((ms) => fixed(ms)).join(' / ') + ' ms' : '–'))} | |`,
    `| namespace per network ÷ without: program / no-change pass / one peer moves | ` +
      `${cells((f) => (f.hostLayout ? `${fixed(f.programMs / f.hostLayout.programMs, 2)}× / ${fixed(f.noChangeMs / f.hostLayout.noChangeMs, 2)}× / ${fixed(f.oneChangeMs / f.hostLayout.oneChangeMs, 2)}×` : '–'))} | |`,
    '',
    'The rows above the last two measure the layout the agent uses by default: the network\'s bridge, VXLAN device and entries in a namespace of its own (`vxnet-<VNI>`), ' +
      'its entries kept between passes by an `ip monitor neigh` inside that namespace. The last two are the layout without namespaces, measured in the same process right after.',
    '',
    "Memory is that of the process that programmed the kernel (bench/kernel-scale.ts: the agent's LinuxDataplane, its cached entry dump and the " +
      "desired state it was handed), not a whole agent's. The no-change pass reuses the last entry dump while `ip monitor neigh` reports nothing " +
      '(src/agent/kernel/entry-cache.ts); its max is the first pass after programming, which reads the entries back. ' +
      "After vxnet's own writes the cached dump is updated rather than read again (write-through), so the pass after a change costs the diff, not the dump.",
    '',
  ]);
}

async function dataPlane(cluster: Cluster, client: ManagerClient): Promise<void> {
  log(`data plane: iperf3 ${SECONDS}s (1 and ${STREAMS} streams) × ${ROUNDS} rounds per path, ping RTT ...`);
  const [h1, h2] = [cluster.host('host1'), cluster.host('host2')];
  await client.createNetwork({ name: 'perf', subnets: [{ cidr: '10.88.0.0/24' }] });
  const v1 = await cluster.addContainer('v1');
  const v2 = await cluster.addContainer('v2');
  await client.createEndpoint({ network: 'perf', node: 'host1', netns: v1 });
  const ev2 = await client.createEndpoint({ network: 'perf', node: 'host2', netns: v2 });
  // the hand-built path between the same hosts, as the tutorials do it
  const m1 = await cluster.addContainer('m1');
  const m2 = await cluster.addContainer('m2');
  await handBuiltVxlan({ hostNetns: h1.netns, local: h1.address, remote: h2.address, container: `/run/netns/${m1}`, address: '172.30.0.1/24' });
  await handBuiltVxlan({ hostNetns: h2.netns, local: h2.address, remote: h1.address, container: `/run/netns/${m2}`, address: '172.30.0.2/24' });

  const ns = (name: string) => `/run/netns/${name}`;
  const paths: TrafficPath[] = [
    { name: 'underlay (host ⇄ host veth, the ceiling)', client: ns(h1.netns), server: ns(h2.netns), target: h2.address },
    { name: 'hand-built kernel VXLAN (tutorial)', client: ns(m1), server: ns(m2), target: '172.30.0.2' },
    { name: 'vxnet', client: ns(v1), server: ns(v2), target: ev2.ip },
  ];
  const rounds = await measureTraffic(paths, { rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, log });
  chart.traffic = { paths, rounds };
  const summary = summariseTraffic(paths, rounds);
  report.dataplane = { rounds: ROUNDS, seconds: SECONDS, streams: STREAMS, paths: summary, raw: Object.fromEntries(rounds) };
  const [underlay, hand, vx] = summary as [(typeof summary)[0], (typeof summary)[0], (typeof summary)[0]];
  const gbps = (value: number, spread: number) => `${fixed(value, 2)} Gbit/s (${noise(spread)})`;
  markdown.set('dataplane', [
    `### Data plane, container to container across hosts (median of ${ROUNDS} interleaved rounds, ${SECONDS} s iperf3 each)`,
    '',
    `| path | TCP 1 stream | vs underlay | vs hand-built | TCP ${STREAMS} streams | vs underlay | vs hand-built | ping RTT | vs hand-built |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.name} | ${gbps(s.singleGbps, s.singleNoise)} | ${ratio(s.singleGbps, underlay.singleGbps)} | ${ratio(s.singleGbps, hand.singleGbps)} | ` +
        `${gbps(s.multiGbps, s.multiNoise)} | ${ratio(s.multiGbps, underlay.multiGbps)} | ${ratio(s.multiGbps, hand.multiGbps)} | ` +
        `${fixed(s.rttMs * 1000, 0)} µs (${noise(s.rttNoise)}) | ${ratio(s.rttMs, hand.rttMs)} |`,
    ),
    '',
    `Targets: vxnet throughput ≥ 0.97× hand-built (seen: ${ratio(vx.singleGbps, hand.singleGbps)} with 1 stream, ${ratio(vx.multiGbps, hand.multiGbps)} with ${STREAMS}), ` +
      `RTT ≤ 1.1× hand-built (seen: ${ratio(vx.rttMs, hand.rttMs)}). Noise: half the range of the rounds, relative to their median.`,
    '',
  ]);
}

function chartSvg(): string {
  const panels: Panel[] = [];
  const reachable: Series[] = [];
  const returned: Series[] = [];
  if (chart.attach) {
    reachable.push({ name: 'vxnet attach → reachable', values: chart.attach.reachable });
    returned.push({ name: 'vxnet attach returns', values: chart.attach.ready });
  }
  if (chart.docker) {
    const { vxnet, swarm } = chart.docker.samples;
    reachable.push({ name: 'docker run on vxnet → reachable', values: vxnet.reachable }, { name: 'docker run on Swarm overlay → reachable', values: swarm.reachable });
    returned.push({ name: 'docker run on vxnet returns', values: vxnet.returned }, { name: 'docker run on Swarm overlay returns', values: swarm.returned });
  }
  if (reachable.length) {
    panels.push({ title: 'Attach / docker run on host1 → reachable from a container on host2', unit: 'ms', log: true, percentiles: [50, 95, 99], series: reachable });
    panels.push({ title: 'Attach / docker run on host1: until the command returns', unit: 'ms', log: true, percentiles: [50, 95, 99], series: returned });
  }
  // the rounds of both data-plane sections, one panel per measure
  const rounds: { prefix: string; paths: readonly { name: string }[]; results: ReadonlyMap<string, TrafficRounds> }[] = [];
  if (chart.traffic) rounds.push({ prefix: '', paths: chart.traffic.paths, results: chart.traffic.rounds });
  if (chart.docker) rounds.push({ prefix: 'docker: ', paths: [...chart.docker.traffic.keys()].map((name) => ({ name })), results: chart.docker.traffic });
  const roundSeries = (pick: (r: TrafficRounds) => number[], scale = 1): Series[] =>
    rounds.flatMap(({ prefix, paths, results }) => paths.map((p) => ({ name: `${prefix}${p.name}`, values: pick(results.get(p.name)!).map((v) => v * scale) })));
  if (rounds.length) {
    const per = `per round (${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, ${SECONDS} s each)`;
    panels.push({ title: `TCP throughput, 1 stream, ${per}`, unit: 'Gbit/s', percentiles: [50], series: roundSeries((r) => r.singleGbps) });
    panels.push({ title: `TCP throughput, ${STREAMS} streams, ${per}`, unit: 'Gbit/s', percentiles: [50], series: roundSeries((r) => r.multiGbps) });
    panels.push({ title: `ping RTT (mean of 200 pings), ${per}`, unit: 'µs', percentiles: [50], series: roundSeries((r) => r.rttMs, 1000) });
  }
  return distributionChart(panels, `vxnet benchmark, ${String(report.date).slice(0, 16).replace('T', ' ')} UTC`);
}

/** README.md: the tables of this run between its bench markers, for each part measured in full. */
async function updateReadmeSections(): Promise<void> {
  const sections = new Map<string, string[]>();
  if (runs('attach') && runs('kernel') && runs('dataplane')) {
    sections.set('bench', demoteHeadings((['attach', 'kernel', 'dataplane'] as const).flatMap((s) => markdown.get(s)!)));
  }
  // README gives the Docker comparison a heading and an introduction of its own
  const docker = markdown.get('docker');
  if (docker) sections.set('bench-docker', docker.slice(docker.findIndex((line) => line === '') + 1));
  if (sections.size === 0) return log('README.md not updated: no section was measured in full');
  await updateReadme(join(import.meta.dirname, '..', 'README.md'), sections);
  log(`README.md updated: ${[...sections.keys()].join(', ')}`);
}
