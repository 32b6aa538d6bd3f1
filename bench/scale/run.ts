/**
 * `npm run bench:scale`: the control plane at scale. One real manager process (`vxnet manager`, SQLite on
 * disk, listening on 127.0.0.1) and N worker processes hosting 1,000 simulated agents (the real Agent and
 * ManagerClient, a recording data plane instead of the kernel; see worker.ts), with 100,000 endpoints over
 * 100 networks (see topology.ts for the shape).
 *
 * Phases, each measured on its own:
 *  1. load: networks, node registrations, then every endpoint through the API (no agent connected yet);
 *  2. sync: every agent starts at once (as after a manager restart or a cold start), gets its snapshot, renders
 *     its desired state and reports its endpoints ready;
 *  3. churn: steady endpoint creates and deletes through the API (`wait` as the CLI uses it), each one
 *     timed from the API call until every interested agent handed a desired state with it to its data
 *     plane; the run then checks that every agent holds exactly the peers the harness expects;
 *  4. fan-out by network size: the same churn confined to one network at a time, to show what a change
 *     costs (messages, bytes, manager CPU) against the number of hosts in its network;
 *  5. a new agent's initial sync: a fresh process whose node has endpoints on networks totalling ~10,000
 *     endpoints, timed from start until its first desired state holds all of them, and its memory.
 *
 * Writes bench/results/<out>.json and .md (default "scale") and a chart <out>.svg.
 *
 * `--store etcd --managers 3` (issue 11): the same on a 3-member etcd cluster on loopback (src/testkit/etcd.ts)
 * with that many managers, the first creating the cluster and the others joining it with its admin token;
 * each agent is given every manager, starting with a different one (worker.ts), and the churn's writes go
 * through the first manager of the endpoint's node (see churn). Memory is reported per manager. Written as bench/results/scale-etcd.* unless
 * `--out` says otherwise.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { ManagerClient } from '../../src/client/client.ts';
import { fixed, percentile } from '../stats.ts';
import { distributionChart } from '../svg.ts';
import { type Ep, Model } from './model.ts';
import { diffCounters, managerGroup, type ManagerProcess, readProc, startManager, sumCounters, Worker } from './processes.ts';
import { type EtcdCluster, freePort, startEtcdCluster } from '../../src/testkit/etcd.ts';
import { type Counters, type Delivery, type Memory, now } from './protocol.ts';
import { buildTopology, describe, hostAddress, hostName, type Topology } from './topology.ts';

const { values: flags } = parseArgs({
  options: {
    agents: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100000' },
    networks: { type: 'string', default: '100' },
    memberships: { type: 'string', default: '2' },
    skew: { type: 'string', default: '0.6' },
    'no-cluster-wide': { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    workers: { type: 'string', default: '4' },
    'worker-heap-mib': { type: 'string', default: '6144' },
    rate: { type: 'string', default: '20' },
    'churn-seconds': { type: 'string', default: '60' },
    'size-changes': { type: 'string', default: '60' },
    'size-rate': { type: 'string', default: '10' },
    'newcomer-endpoints': { type: 'string', default: '10000' },
    'newcomer-runs': { type: 'string', default: '5' },
    'load-concurrency': { type: 'string', default: '32' },
    'sync-timeout': { type: 'string', default: '900' },
    listen: { type: 'string', default: '127.0.0.1:0' },
    out: { type: 'string' },
    /** "sqlite" (one manager, the default) or "etcd" (a 3-member etcd on loopback, `--managers` managers) */
    store: { type: 'string', default: 'sqlite' },
    managers: { type: 'string', default: '1' },
    label: { type: 'string', default: '' },
    keep: { type: 'boolean', default: false },
    /** e.g. --manager-node-option=--cpu-prof --manager-node-option=--cpu-prof-dir=/tmp/prof */
    'manager-node-option': { type: 'string', multiple: true, default: [] },
    /** the same for the worker processes */
    'worker-node-option': { type: 'string', multiple: true, default: [] },
    /** stop after this phase ("load" or "sync"), to profile or try something on one phase; no report */
    'stop-after': { type: 'string', default: '' },
  },
});
const N = (name: keyof typeof flags) => Number(flags[name]);
const ETCD = flags.store === 'etcd';
const MANAGERS = N('managers');
if ((flags.store !== 'sqlite' && !ETCD) || !Number.isInteger(MANAGERS) || MANAGERS < 1 || (MANAGERS > 1 && !ETCD)) {
  console.error('--store is "sqlite" (one manager) or "etcd" (with --managers N, 1 or more).');
  process.exit(2);
}
const OUT = flags.out ?? (ETCD ? 'scale-etcd' : 'scale');
const AGENTS = N('agents');
const WORKERS = Math.max(1, Math.min(N('workers'), AGENTS));
const MAX_IN_FLIGHT = 256;
const DELIVERY_TIMEOUT_MS = 30_000;

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 2 ** 20;

// ---------------------------------------------------------------------------------------------------------
// changes in flight and their deliveries

interface Change {
  op: 0 | 1;
  network: string;
  ip: string;
  t0: number;
  /** hosts interested: every host with an endpoint on the network (the endpoint's own host included) */
  expected: number;
  got: number;
  lastArrived: number;
  lastProgrammed: number;
  /** per delivery: programmed − t0 */
  deliveryMs: number[];
  apiMs?: number;
  error?: string;
}

const changes = new Map<string, Change>();
const changeKey = (op: number, network: string, ip: string) => `${op}|${network}|${ip}`;

function onDeliveries(list: Delivery[]): void {
  for (const [, op, network, ip, arrivedAt, programmedAt] of list) {
    const change = changes.get(changeKey(op, network, ip));
    if (!change) continue;
    change.got++;
    if (arrivedAt > change.lastArrived) change.lastArrived = arrivedAt;
    if (programmedAt > change.lastProgrammed) change.lastProgrammed = programmedAt;
    change.deliveryMs.push(programmedAt - change.t0);
  }
}

// ---------------------------------------------------------------------------------------------------------

interface Phase {
  name: string;
  wallMs: number;
  managerCpuMs: number;
  managerRssMiB: number;
  /** with `--store etcd`: the CPU of its members, which share the machine with the managers and agents */
  etcdCpuMs?: number;
  workers?: Counters;
}

/** the etcd members' processes (`--store etcd`), whose CPU each phase reports beside the managers' */
const etcdPids: number[] = [];
const etcdCpuMs = () => etcdPids.reduce((sum, pid) => sum + readProc(pid).cpuMs, 0);

async function measure<T>(name: string, manager: ManagerProcess, workers: Worker[], fn: () => Promise<T>): Promise<{ result: T; phase: Phase }> {
  const c0 = workers.length ? sumCounters(await Promise.all(workers.map((w) => w.counters()))) : undefined;
  const m0 = manager.sample();
  const e0 = etcdCpuMs();
  const t0 = performance.now();
  const result = await fn();
  const wallMs = performance.now() - t0;
  const m1 = manager.sample();
  const e1 = etcdCpuMs();
  const c1 = workers.length ? sumCounters(await Promise.all(workers.map((w) => w.counters()))) : undefined;
  const phase: Phase = { name, wallMs, managerCpuMs: m1.cpuMs - m0.cpuMs, managerRssMiB: m1.rss / MiB };
  if (etcdPids.length > 0) phase.etcdCpuMs = e1 - e0;
  if (c0 && c1) phase.workers = diffCounters(c1, c0);
  const etcdCpu = phase.etcdCpuMs === undefined ? '' : `, etcd CPU ${fixed(phase.etcdCpuMs / 1000, 1)} s`;
  log(`${name}: ${fixed(wallMs / 1000, 1)} s, manager CPU ${fixed(phase.managerCpuMs / 1000, 1)} s${etcdCpu}, RSS ${fixed(phase.managerRssMiB, 0)} MiB`);
  return { result, phase };
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

interface ChurnResult {
  changes: Change[];
  skipped: number;
  errors: string[];
  incomplete: number;
}

/**
 * Steady churn: `rate` changes per second for `seconds`, alternating a create on a random member host of a
 * network and a delete of a random endpoint of the same network (from a host that keeps at least one there).
 * Calls are issued on schedule without waiting for earlier ones (open loop), as independent users would.
 */
async function churn(writers: ManagerClient[], model: Model, rate: number, seconds: number, among?: number[]): Promise<ChurnResult> {
  const list: Change[] = [];
  const errors: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const start = performance.now();
  let skipped = 0;
  let net = 0;
  for (let k = 0; k < total; k++) {
    const wait = start + k * interval - performance.now();
    if (wait > 0) await sleep(wait);
    if (inFlight.size >= MAX_IN_FLIGHT) {
      skipped++;
      continue;
    }
    let call: () => Promise<void>;
    let change: Change;
    // With several managers, each change goes through the first manager of the endpoint's node (worker.ts
    // spreads the agents the same way): a delete waits until the node confirms it in a heartbeat, and
    // heartbeats are known only to the manager that received them (liveness is not shared through etcd), so
    // a delete sent through another manager would wait its 30 s out.
    const through = (host: number) => writers[host % writers.length]!;
    if (k % 2 === 0) {
      net = model.pickNetwork(among);
      const host = model.pickMember(net);
      const state = model.nets[net]!;
      const ep = model.allocate(net, host);
      const seq = state.next - 1;
      change = newChange(0, state.sim.name, ep.ip, state.countByHost.size);
      call = async () => {
        const created = await through(host).createEndpoint(
          { network: state.sim.name, node: hostName(host), netns: `n${net}-${seq}`, ip: ep.ip },
          { waitSeconds: 30 },
        ).catch((err: unknown) => {
          model.remove(ep);
          throw err;
        });
        ep.id = created.id;
        ep.busy = false;
      };
    } else {
      const ep = model.pickDeletable(net);
      if (!ep) {
        skipped++;
        continue;
      }
      const state = model.nets[net]!;
      change = newChange(1, state.sim.name, ep.ip, state.countByHost.size);
      ep.busy = true;
      model.remove(ep);
      call = () => through(ep.host).deleteEndpoint(ep.id, { waitSeconds: 30 });
    }
    changes.set(changeKey(change.op, change.network, change.ip), change);
    list.push(change);
    const t = performance.now();
    const p = call().then(
      () => {
        change.apiMs = performance.now() - t;
      },
      (err: unknown) => {
        change.error = String(err);
        if (errors.length < 10) errors.push(change.error);
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }
  await Promise.all(inFlight);
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  while (list.some((c) => !c.error && c.got < c.expected) && Date.now() < deadline) await sleep(100);
  for (const c of list) changes.delete(changeKey(c.op, c.network, c.ip));
  return { changes: list, skipped, errors, incomplete: list.filter((c) => !c.error && c.got < c.expected).length };
}

function newChange(op: 0 | 1, network: string, ip: string, expected: number): Change {
  return { op, network, ip, t0: now(), expected, got: 0, lastArrived: 0, lastProgrammed: 0, deliveryMs: [] };
}

function latencies(list: Change[], op?: 0 | 1): number[] {
  return list.filter((c) => (op === undefined || c.op === op) && !c.error && c.got >= c.expected).map((c) => c.lastProgrammed - c.t0);
}

function dist(values: number[]): { n: number; p50: number; p95: number; p99: number; max: number } {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: values.length ? values.reduce((a, b) => Math.max(a, b)) : Number.NaN,
  };
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const topology = buildTopology({
    agents: AGENTS,
    endpoints: N('endpoints'),
    networks: N('networks'),
    membershipsPerHost: N('memberships'),
    skew: N('skew'),
    clusterWide: !flags['no-cluster-wide'],
    seed: N('seed'),
  });
  const shape = describe(topology);
  log(`topology: ${JSON.stringify(shape)}`);
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    label: flags.label,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', node: process.version, commit: gitCommit() },
    options: { ...flags },
    topology: shape,
  };

  const dataDir = mkdtempSync(join(tmpdir(), 'vxnet-scale-'));
  const { manager, etcd } = await startManagers(dataDir);
  log(`manager pid ${manager.pid} at ${manager.url}, data in ${dataDir}`);
  // Interrupted (Ctrl-C, timeout): the manager is not our process group's only member and would outlive us;
  // the workers end on their own when their IPC channel closes.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const { pid } of manager.members) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      for (const member of etcd?.members ?? []) void member.kill();
      if (!flags.keep) rmSync(dataDir, { recursive: true, force: true });
      process.exit(130);
    });
  }
  // many calls in flight at once (creates and deletes that wait for the agents): a large connection pool
  const admin = new ManagerClient({ url: manager.url, token: manager.adminToken, timeoutMs: 120_000, maxConnections: MAX_IN_FLIGHT + 64 });
  // the churn's writes, one client per manager (see churn)
  const writers = manager.members.length === 1 ? [admin] : manager.members.map((m) => new ManagerClient({ url: m.url, token: manager.adminToken, timeoutMs: 120_000, maxConnections: MAX_IN_FLIGHT + 64 }));
  // nodes are registered up front (as the agents will again, unchanged) so that endpoints can be loaded
  // before any agent runs; only an agent's own certificate or the admin token may register a node
  const registrar = admin;
  const model = new Model(topology, N('seed'));
  const workers: Worker[] = [];
  const phases: Phase[] = [];
  try {
    // 1. load --------------------------------------------------------------------------------------------
    phases.push(
      (
        await measure('load: networks and nodes', manager, [], async () => {
          for (const n of topology.networks) await admin.createNetwork({ name: n.name, vni: n.vni, subnets: [{ cidr: n.cidr }] });
          await pool(topology.hosts, 16, async (h) => {
            await registrar.registerNode({ name: h.name, address: h.address, mtu: 1500 });
          });
        })
      ).phase,
    );
    const loadList: Ep[] = [];
    for (const n of topology.networks) {
      n.members.forEach((host, i) => {
        for (let k = 0; k < n.perMember[i]!; k++) loadList.push(model.allocate(n.index, host));
      });
    }
    let loaded = 0;
    const load = await measure('load: endpoints', manager, [], () =>
      pool(loadList, N('load-concurrency'), async (ep) => {
        const net = topology.networks[ep.net]!;
        const seq = ep.ip;
        const created = await admin.createEndpoint(
          { network: net.name, node: hostName(ep.host), netns: `n${ep.net}-${seq.split('.').slice(2).join('-')}`, ip: ep.ip },
          { waitSeconds: 0 },
        );
        ep.id = created.id;
        ep.busy = false;
        if (++loaded % 10_000 === 0) log(`  ${loaded} endpoints created`);
      }),
    );
    phases.push(load.phase);
    report.load = {
      endpoints: loadList.length,
      perSecond: loadList.length / (load.phase.wallMs / 1000),
      managerCpuMsPerEndpoint: load.phase.managerCpuMs / loadList.length,
      managerRssMiB: load.phase.managerRssMiB,
    };
    if (flags['stop-after'] === 'load') {
      log(JSON.stringify(report.load));
      return;
    }

    // 2. sync --------------------------------------------------------------------------------------------
    const specs = topology.hosts.map((h) => ({ index: h.index, name: h.name, address: h.address }));
    for (let w = 0; w < WORKERS; w++) {
      const mine = specs.filter((_, i) => i % WORKERS === w);
      // the nodes are registered already (above): only the admin token may join under a registered name
      workers.push(
        new Worker(mine, manager.url, manager.adminToken, join(dataDir, 'agents'), { onDeliveries, onLog: (line) => log(`worker ${w}: ${line}`) }, N('worker-heap-mib'), flags['worker-node-option']),
      );
    }
    await Promise.all(workers.map((w) => w.ready()));
    const joinMs = Math.max(...workers.map((w) => w.joinMs));
    if (joinMs > 0) log(`  ${AGENTS} agents joined the cluster (node certificates over mutual TLS) in ${fixed(joinMs, 0)} ms`);
    const expectAll = () =>
      Promise.all(workers.map((w) => w.expect(model.expectations(w.agents.map((a) => a.index)))));
    const sync = await measure('sync: all agents start at once', manager, workers, async () => {
      const converged = expectAll();
      const t0 = now();
      for (const w of workers) w.send({ type: 'start' });
      const limit = N('sync-timeout') * 1000;
      const results = await Promise.race([converged, sleep(limit).then(() => undefined)]);
      if (!results) throw new Error(`the agents did not all reach their desired state within ${flags['sync-timeout']} s`);
      const syncedMs = Math.max(...results.map((r) => r.at)) - t0;
      log(`  every agent holds its full desired state after ${fixed(syncedMs, 0)} ms; waiting for status reports`);
      const total = model.endpointCount();
      let acked = 0;
      for (let i = 0; ; i++) {
        const c = sumCounters(await Promise.all(workers.map((w) => w.counters())));
        // ready as the manager says: the status the agents' own views got back on their watch streams
        acked = c.readyLocal;
        if (acked >= total || now() - t0 > limit) break;
        if (i % 20 === 19) log(`  ${acked} of ${total} endpoints ready (${c.statusReports} status reports sent, ${c.reconnects} reconnects, ${c.agentLogs} agent log lines)`);
        await sleep(500);
      }
      return { syncedMs, perAgentMs: results.flatMap((r) => r.syncMs), statusesAcked: acked, statusesExpected: total };
    });
    phases.push(sync.phase);
    const memories = await Promise.all(workers.map((w) => w.memory()));
    const agentMemory = memoryFigures(memories, workers.map((w) => w.baseline!));
    report.sync = {
      joinMs,
      allAgentsSyncedMs: sync.result.syncedMs,
      perAgentSyncMs: dist(sync.result.perAgentMs),
      untilAllReadyMs: sync.phase.wallMs,
      statusesAcked: sync.result.statusesAcked,
      statusesExpected: sync.result.statusesExpected,
      watchBytes: sync.phase.workers!.watchBytes,
      managerCpuMs: sync.phase.managerCpuMs,
      statusReports: sync.phase.workers!.statusReports,
      workerMemory: agentMemory,
    };
    log(`  agents: ${fixed(agentMemory.heapBytesPerPeer, 0)} B heap per remote endpoint (${agentMemory.peers} remote endpoints held)`);
    if (flags['stop-after'] === 'sync') {
      const peak = manager.samples.reduce((a, s) => Math.max(a, s.peakRss), 0);
      log(JSON.stringify({ ...(report.sync as object), managerPeakRssMiB: peak / MiB }));
      return;
    }

    // at rest: nothing changes, the agents only heartbeat (every 5 s) and get pings (every 10 s)
    const idle = await measure('idle: 20 s without changes', manager, workers, () => sleep(20_000));
    phases.push(idle.phase);
    report.idle = {
      managerCpuPercent: (idle.phase.managerCpuMs / idle.phase.wallMs) * 100,
      heartbeatsPerSecond: idle.phase.workers!.heartbeats / (idle.phase.wallMs / 1000),
      managerCpuMsPerHeartbeat: idle.phase.managerCpuMs / Math.max(1, idle.phase.workers!.heartbeats),
      apiBytesPerSecond: idle.phase.workers!.apiBytes / (idle.phase.wallMs / 1000),
    };
    log(`  ${JSON.stringify(report.idle)}`);

    // 3. churn -------------------------------------------------------------------------------------------
    const rate = N('rate');
    for (const w of workers) w.send({ type: 'record', on: true });
    const samplesFrom = manager.samples.length;
    const steady = await measure(`churn: ${rate} changes/s for ${flags['churn-seconds']} s`, manager, workers, () =>
      churn(writers, model, rate, N('churn-seconds')),
    );
    phases.push(steady.phase);
    const cpuTimeline = manager.samples.slice(samplesFrom);
    report.churn = churnFigures(steady.result, steady.phase, rate, cpuTimeline);
    log(`  ${JSON.stringify(report.churn)}`);

    // consistency: every agent holds exactly the peers the model says
    const verify = await measure('verify: every agent holds exactly the expected peers', manager, workers, async () => {
      // a write that failed for the harness (no answer from etcd in time) may still have been applied: the
      // agents then never match, and the digests below say by how much instead of the run waiting for ever
      const matched = await Promise.race([expectAll().then(() => true), sleep(DELIVERY_TIMEOUT_MS).then(() => false)]);
      if (!matched) log(`  WARNING: not every agent reached the expected peers within ${DELIVERY_TIMEOUT_MS / 1000} s`);
      const expected = model.digests();
      let checked = 0;
      let mismatched = 0;
      for (const w of workers) {
        for (const [index, peers, digest] of await w.digests()) {
          const e = expected.get(index) ?? { peers: 0, digest: 0 };
          checked++;
          if (e.peers !== peers || e.digest !== digest) mismatched++;
        }
      }
      return { checked, mismatched };
    });
    phases.push(verify.phase);
    report.verify = verify.result;
    if (verify.result.mismatched > 0) log(`  WARNING: ${verify.result.mismatched} agents hold other peers than expected`);

    // 4. fan-out by network size --------------------------------------------------------------------------
    const bySize = [...model.nets].sort((a, b) => b.countByHost.size - a.countByHost.size || a.sim.index - b.sim.index);
    const picks = [...new Set([bySize[0]!, bySize[1]!, bySize[Math.floor(bySize.length / 2)]!, bySize.at(-1)!])];
    const sizes: Record<string, number>[] = [];
    for (const state of picks) {
      const hosts = state.countByHost.size;
      const m = await measure(`fan-out: ${state.sim.name} (${hosts} hosts)`, manager, workers, () =>
        churn(writers, model, N('size-rate'), N('size-changes') / N('size-rate'), [state.sim.index]),
      );
      phases.push(m.phase);
      const done = m.result.changes.filter((c) => !c.error);
      const count = Math.max(1, done.length);
      const w = m.phase.workers!;
      sizes.push({
        hosts,
        endpoints: state.live.length,
        changes: done.length,
        messagesPerChange: w.messages / count,
        watchBytesPerChange: w.watchBytes / count,
        deliveriesPerChange: done.reduce((a, c) => a + c.got, 0) / count,
        heartbeatsPerChange: w.heartbeats / count,
        managerCpuMsPerChange: m.phase.managerCpuMs / count,
        agentCpuMsPerChange: w.cpuMs / count,
        p50Ms: percentile(latencies(done), 50),
        p99Ms: percentile(latencies(done), 99),
      });
      log(`  ${JSON.stringify(sizes.at(-1))}`);
    }
    for (const w of workers) w.send({ type: 'record', on: false });
    report.fanout = sizes;

    // 5. a new agent's initial sync -----------------------------------------------------------------------
    report.newcomer = await newcomer(topology, model, manager, admin, registrar);

    const peakOf = (m: ManagerProcess) => m.samples.reduce((a, s) => Math.max(a, s.peakRss), 0) / MiB;
    const peaks = manager.members.map(peakOf);
    report.manager = { peakRssMiB: Math.max(...peaks), cpuMsTotal: manager.sample().cpuMs };
    report.managers = manager.members.map((m, i) => ({ peakRssMiB: peaks[i], cpuMsTotal: m.sample().cpuMs }));
    report.store = ETCD ? { kind: 'etcd', members: etcd!.members.length } : { kind: 'sqlite' };
    report.phases = phases;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    admin.close();
    for (const writer of writers) if (writer !== admin) writer.close();
    await manager.stop();
    await etcd?.stop();
    if (!flags.keep) rmSync(dataDir, { recursive: true, force: true });
  }
  await writeReport(report);
}

/**
 * The manager, or with `--store etcd` a 3-member etcd on loopback and `--managers` managers on it: the first
 * makes the cluster, the others join with its admin token, as an operator adds managers (README, "Several
 * managers on etcd").
 */
async function startManagers(dataDir: string): Promise<{ manager: ManagerProcess & { members: ManagerProcess[] }; etcd?: EtcdCluster }> {
  if (!ETCD) return { manager: managerGroup([await startManager(dataDir, flags.listen, flags['manager-node-option'])]) };
  const specs = [];
  for (const name of ['etcd1', 'etcd2', 'etcd3']) specs.push({ name, address: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort() });
  const etcd = await startEtcdCluster(specs, { scratch: dataDir, token: `vxnet-scale-${process.pid}` });
  log(`etcd: 3 members at ${etcd.url}`);
  for (const member of etcd.members) if (member.handle?.pid !== undefined) etcdPids.push(member.handle.pid);
  const members: ManagerProcess[] = [];
  try {
    for (let i = 0; i < MANAGERS; i++) {
      const dir = join(dataDir, `manager${i + 1}`);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const joining = i === 0 ? [] : ['--token-file', join(members[0]!.dataDir, 'admin.token')];
      members.push(await startManager(dir, flags.listen, flags['manager-node-option'], ['--store', etcd.url, ...joining]));
    }
  } catch (err) {
    await Promise.all(members.map((m) => m.stop()));
    await etcd.stop();
    throw err;
  }
  return { manager: managerGroup(members), etcd };
}

function memoryFigures(memories: Memory[], baselines: Memory[]) {
  const peers = memories.reduce((a, m) => a + m.peers, 0);
  const heap = memories.reduce((a, m, i) => a + m.heapUsed - baselines[i]!.heapUsed, 0);
  const rss = memories.reduce((a, m, i) => a + m.rss - baselines[i]!.rss, 0);
  return {
    agents: memories.reduce((a, m) => a + m.agents, 0),
    peers,
    heapMiB: heap / MiB,
    rssMiB: rss / MiB,
    heapBytesPerPeer: heap / Math.max(1, peers),
    rssBytesPerPeer: rss / Math.max(1, peers),
  };
}

function churnFigures(result: ChurnResult, phase: Phase, rate: number, timeline: { t: number; cpuMs: number }[]) {
  const done = result.changes.filter((c) => !c.error);
  const w = phase.workers!;
  const interested = done.reduce((a, c) => a + c.expected, 0);
  const cpuPercent: number[] = [];
  for (let i = 4; i < timeline.length; i += 4) {
    const a = timeline[i - 4]!;
    const b = timeline[i]!;
    cpuPercent.push(((b.cpuMs - a.cpuMs) / (b.t - a.t)) * 100);
  }
  return {
    rate,
    changes: result.changes.length,
    creates: done.filter((c) => c.op === 0).length,
    deletes: done.filter((c) => c.op === 1).length,
    errors: result.changes.length - done.length,
    errorSamples: result.errors,
    skipped: result.skipped,
    incomplete: result.incomplete,
    meanInterestedHosts: interested / Math.max(1, done.length),
    untilEveryAgentMs: dist(latencies(done)),
    createUntilEveryAgentMs: dist(latencies(done, 0)),
    deleteUntilEveryAgentMs: dist(latencies(done, 1)),
    untilArrivedEverywhereMs: dist(done.filter((c) => c.got >= c.expected).map((c) => c.lastArrived - c.t0)),
    perDeliveryMs: dist(done.flatMap((c) => c.deliveryMs)),
    createApiMs: dist(done.filter((c) => c.op === 0 && c.apiMs !== undefined).map((c) => c.apiMs!)),
    deleteApiMs: dist(done.filter((c) => c.op === 1 && c.apiMs !== undefined).map((c) => c.apiMs!)),
    messagesPerChange: w.messages / Math.max(1, done.length),
    messagesPerInterestedHost: w.messages / Math.max(1, interested),
    watchBytesPerChange: w.watchBytes / Math.max(1, done.length),
    apiBytesPerChange: w.apiBytes / Math.max(1, done.length),
    heartbeatsPerChange: w.heartbeats / Math.max(1, done.length),
    agentPassesPerChange: w.passes / Math.max(1, done.length),
    managerCpuMsPerChange: phase.managerCpuMs / Math.max(1, done.length),
    ...(phase.etcdCpuMs === undefined ? {} : { etcdCpuMsPerChange: phase.etcdCpuMs / Math.max(1, done.length) }),
    managerCpuPercent: phase.managerCpuMs / phase.wallMs * 100,
    managerCpuPercentP99: percentile(cpuPercent, 99),
    workersCpuMsPerChange: w.cpuMs / Math.max(1, done.length),
    samples: {
      createMs: latencies(done, 0).map((v) => Number(v.toFixed(2))),
      deleteMs: latencies(done, 1).map((v) => Number(v.toFixed(2))),
    },
  };
}

async function newcomer(topology: Topology, model: Model, manager: ManagerProcess, admin: ManagerClient, registrar: ManagerClient) {
  const target = N('newcomer-endpoints');
  const runs = N('newcomer-runs');
  const index = topology.hosts.length;
  const spec = { index, name: hostName(index), address: hostAddress(index) };
  await registrar.registerNode({ name: spec.name, address: spec.address, mtu: 1500 });
  // networks, largest first, until they hold the wanted number of endpoints
  const chosen: number[] = [];
  let sum = 0;
  for (const state of [...model.nets].sort((a, b) => b.live.length - a.live.length)) {
    if (sum >= target) break;
    if (sum + state.live.length > target * 1.25) continue;
    chosen.push(state.sim.index);
    sum += state.live.length;
  }
  for (const net of chosen) {
    const ep = model.allocate(net, index);
    const state = model.nets[net]!;
    const created = await admin.createEndpoint(
      { network: state.sim.name, node: spec.name, netns: `new-${net}`, ip: ep.ip },
      { waitSeconds: 0 },
    );
    ep.id = created.id;
    ep.busy = false;
  }
  await sleep(1000);
  const [expectation] = model.expectations([index]);
  log(`newcomer: ${spec.name} with endpoints on ${chosen.length} networks, ${expectation![1]} remote endpoints`);
  const syncMs: number[] = [];
  const heapPerPeer: number[] = [];
  const rssPerPeer: number[] = [];
  let snapshotBytes = 0;
  for (let run = 0; run < runs; run++) {
    // registered already (above): the admin token joins it, a new certificate per run
    const worker = new Worker([spec], manager.url, manager.adminToken, join(manager.dataDir, 'newcomer', String(run)), { onDeliveries: () => {}, onLog: (line) => log(`newcomer: ${line}`) }, 1024);
    try {
      await worker.ready();
      const converged = worker.expect([expectation!]);
      worker.send({ type: 'start' });
      const result = await converged;
      syncMs.push(result.syncMs[0]!);
      const memory = await worker.memory();
      heapPerPeer.push((memory.heapUsed - worker.baseline!.heapUsed) / memory.peers);
      rssPerPeer.push((memory.rss - worker.baseline!.rss) / memory.peers);
      snapshotBytes = (await worker.counters()).watchBytes;
    } finally {
      await worker.stop();
    }
  }
  log(`newcomer: initial sync ${syncMs.map((v) => fixed(v, 0)).join(', ')} ms; ${fixed(heapPerPeer[0]!, 0)} B heap per remote endpoint`);
  return {
    networks: chosen.length,
    remoteEndpoints: expectation![1],
    runs,
    syncMs: dist(syncMs),
    syncSamplesMs: syncMs,
    snapshotBytes,
    heapBytesPerPeer: percentile(heapPerPeer, 50),
    rssBytesPerPeer: percentile(rssPerPeer, 50),
  };
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------------------
// report

type Json = any;

export function scaleMarkdown(r: Json): string[] {
  const ok = (pass: boolean) => (pass ? '✅' : '❌');
  const ms = (v: number) => `${fixed(v, v < 10 ? 1 : 0)} ms`;
  const c = r.churn;
  const t = r.topology;
  const sizes: Json[] = r.fanout ?? [];
  const perHost = sizes.map((s) => s.messagesPerChange / s.hosts);
  const proportional = sizes.length > 0 && perHost.every((x) => x > 0.9 && x < 1.6);
  const kib = (b: number) => `${fixed(b / 1024, 2)} KiB`;
  return [
    `### Control plane at scale: ${t.hosts} agents, ${t.endpoints} endpoints, ${t.networks} networks`,
    '',
    (r.store?.kind === 'etcd'
      ? `${r.managers.length} real managers on a ${r.store.members}-member etcd cluster (all on loopback, each agent given every manager, starting with a different one; each change sent through its node's first manager: a delete waits for the node to confirm it in a heartbeat, which reaches the other managers through src/manager/shared-liveness.ts) and ${r.options.workers} worker processes hosting the agents `
      : `One real manager (SQLite on disk, HTTP on ${r.options.listen}) and ${r.options.workers} worker processes hosting the agents `) +
      `(real Agent, ManagerClient and watch protocol; a recording data plane instead of the kernel) on ${r.machine.cpus} CPUs. ` +
      `Each host is in ${fixed(t.membershipsPerHost, 1)} networks on average (largest ${t.largestNetworkHosts} hosts, smallest ${t.smallestNetworkHosts}); ` +
      `an agent holds ${fixed(t.endpointsSeenPerHostAvg, 0)} remote endpoints on average, ${t.endpointsSeenPerHostMax} at most.`,
    '',
    '| target | measured | |',
    '| --- | --- | --- |',
    `| change → every interested agent has it, p99 ≤ 1 s (steady churn, ${c.rate}/s) | p50 ${ms(c.untilEveryAgentMs.p50)}, p95 ${ms(c.untilEveryAgentMs.p95)}, **p99 ${ms(c.untilEveryAgentMs.p99)}** (${c.untilEveryAgentMs.n} changes, ${fixed(c.meanInterestedHosts, 0)} hosts each on average) | ${ok(c.untilEveryAgentMs.p99 <= 1000 && c.incomplete === 0 && c.errors === 0)} |`,
    `| work per change ∝ hosts in its network, not cluster size | watch messages per change ÷ hosts in the network: ${perHost.map((x, i) => `${fixed(x, 2)} (${sizes[i].hosts} hosts)`).join(', ')} | ${ok(proportional)} |`,
    `| manager memory ≤ 1 GiB | peak RSS ${(r.managers ?? [r.manager]).map((m: Json) => `${fixed(m.peakRssMiB, 0)} MiB`).join(' / ')}${(r.managers?.length ?? 1) > 1 ? ' (per manager)' : ''} | ${ok(r.manager.peakRssMiB <= 1024)} |`,
    `| agent ≤ 10 KiB per remote endpoint | ${kib(r.newcomer.heapBytesPerPeer)} heap (${kib(r.newcomer.rssBytesPerPeer)} RSS) in a lone agent with ${r.newcomer.remoteEndpoints}; ${kib(r.sync.workerMemory.heapBytesPerPeer)} heap averaged over all ${r.sync.workerMemory.agents} agents | ${ok(r.newcomer.heapBytesPerPeer <= 10240 && r.newcomer.rssBytesPerPeer <= 10240)} |`,
    `| new agent's initial sync of ${r.newcomer.remoteEndpoints} endpoints < 1 s | median ${ms(r.newcomer.syncMs.p50)}, max ${ms(r.newcomer.syncMs.max)} (${r.newcomer.runs} fresh processes; snapshot ${fixed(r.newcomer.snapshotBytes / MiB, 1)} MiB) | ${ok(r.newcomer.syncMs.max < 1000)} |`,
    `| every agent ends with exactly the expected peers | ${r.verify.checked - r.verify.mismatched} of ${r.verify.checked} agents match | ${ok(r.verify.mismatched === 0)} |`,
    '',
    `Steady churn (${c.changes} changes: ${c.creates} creates, ${c.deletes} deletes, ${c.errors} failed, ${c.skipped} skipped): ` +
      `create → on every agent p99 ${ms(c.createUntilEveryAgentMs.p99)}, delete p99 ${ms(c.deleteUntilEveryAgentMs.p99)}; ` +
      `\`attach\` (create, wait until ready) p50 ${ms(c.createApiMs.p50)} p99 ${ms(c.createApiMs.p99)}; ` +
      `\`detach\` (delete, wait until its node confirms) p50 ${ms(c.deleteApiMs.p50)} p99 ${ms(c.deleteApiMs.p99)}. ` +
      `Per change: ${fixed(c.messagesPerChange, 1)} watch messages (${fixed(c.messagesPerInterestedHost, 2)} per interested host), ` +
      `${fixed(c.watchBytesPerChange / 1024, 1)} KiB on watch streams, ${fixed(c.heartbeatsPerChange, 1)} heartbeats, ` +
      `manager CPU ${ms(c.managerCpuMsPerChange)} (${fixed(c.managerCpuPercent, 0)}% of a core on average)` +
      (c.etcdCpuMsPerChange === undefined ? '.' : `, etcd CPU ${ms(c.etcdCpuMsPerChange)} (its 3 members).`),
    '',
    `At rest (no changes, ${fixed(r.idle?.heartbeatsPerSecond ?? NaN, 0)} heartbeats/s): manager CPU ${fixed(r.idle?.managerCpuPercent ?? NaN, 1)}% of a core, ` +
      `${fixed(r.idle?.managerCpuMsPerHeartbeat ?? NaN, 2)} ms per heartbeat.`,
    '',
    `Start-up: ${t.endpoints} endpoints created through the API at ${fixed(r.load.perSecond, 0)}/s; then all ${t.hosts} agents started at once ` +
      `held their full desired state after ${ms(r.sync.allAgentsSyncedMs)} (per agent p50 ${ms(r.sync.perAgentSyncMs.p50)}, p99 ${ms(r.sync.perAgentSyncMs.p99)}; ` +
      `${fixed(r.sync.watchBytes / MiB, 0)} MiB of snapshots); ${r.sync.statusesAcked} of ${r.sync.statusesExpected} endpoints were reported ready after ${fixed(r.sync.untilAllReadyMs / 1000, 1)} s ` +
      `(${r.sync.statusReports} status reports sent).`,
    '',
    '| network | hosts | endpoints | watch msgs / change | KiB / change | heartbeats / change | manager CPU / change | agents CPU / change | p50 | p99 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...sizes.map(
      (s) =>
        `| ${s.hosts === t.hosts ? 'cluster-wide' : ''} | ${s.hosts} | ${s.endpoints} | ${fixed(s.messagesPerChange, 1)} | ${fixed(s.watchBytesPerChange / 1024, 1)} | ${fixed(s.heartbeatsPerChange, 1)} | ${ms(s.managerCpuMsPerChange)} | ${ms(s.agentCpuMsPerChange)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} |`,
    ),
    '',
  ];
}

export function scaleSvg(r: Json): string {
  return distributionChart(
    [
      {
        title: `Change → every interested agent has it (${r.churn.rate} changes/s, ${r.topology.hosts} agents)`,
        unit: 'ms',
        log: true,
        series: [
          { name: 'create', values: r.churn.samples.createMs },
          { name: 'delete', values: r.churn.samples.deleteMs },
        ],
      },
    ],
    `vxnet control plane at scale (${r.label || r.date})`,
  );
}

async function writeReport(report: Json): Promise<void> {
  const dir = join(import.meta.dirname, '..', 'results');
  await mkdir(dir, { recursive: true });
  const base = join(dir, OUT);
  const md = scaleMarkdown(report);
  await writeFile(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
  await writeFile(`${base}.md`, md.join('\n') + '\n');
  await writeFile(`${base}.svg`, scaleSvg(report));
  console.log('');
  console.log(md.join('\n'));
  console.log(`written: ${base}.{json,md,svg}`);
}

if (import.meta.main) {
  await main();
  // The report is written and every process the run started has stopped: nothing left is worth waiting for
  // (a finished run once stayed alive for minutes on requests queued to the stopped manager).
  process.exit(0);
}
