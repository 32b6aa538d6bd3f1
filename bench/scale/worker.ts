/**
 * A worker process of the scale harness: hosts many simulated agents. Each one is the real `Agent`
 * (src/agent/agent.ts: view, desired-state rendering, coalescing reconcile loop, status reports, heartbeats)
 * talking to the real manager through its own real `ManagerClient` (its own watch connection and keep-alive
 * pool), with a RecordingDataplane in place of the kernel.
 *
 * Why the full Agent rather than ClusterView + desiredState alone: the manager's load at scale is not only the
 * watch fan-out but what agents send back (a status report per new local endpoint, a heartbeat after every
 * pass, which endpoint deletes wait for); leaving those out would flatter the manager. The cost is memory and
 * CPU in the workers, which the harness reports.
 *
 * What it measures, with timestamps on the shared clock: for every endpoint an agent gains or loses, when
 * the watch message arrived and when a desired state reflecting it was handed to the data plane; the bytes
 * received on watch connections (counted on the sockets, HTTP framing included); messages; memory after GC.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { createWriteStream } from 'node:fs';
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { Agent, type AgentManagerApi } from '../../src/agent/agent.ts';
import type { DesiredState } from '../../src/agent/dataplane.ts';
import { join } from 'node:path';
import { ManagerClient } from '../../src/client/client.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { type AgentSpec, type Counters, type Delivery, type FromWorker, type Memory, type ToWorker, now, zeroCounters } from './protocol.ts';
import { RecordingDataplane } from './recording-dataplane.ts';
import { peerDigest } from './topology.ts';

interface Sim {
  spec: AgentSpec;
  /**
   * One per agent, as in a real agent process: every request an agent makes listens on its signal, and one
   * signal shared by 250 agents made adding and removing those listeners the worker's biggest cost.
   */
  stop: AbortController;
  agent: Agent;
  dataplane: RecordingDataplane;
  client: ManagerClient;
  /** changes applied to the view and not yet handed to the data plane */
  pending: [op: 0 | 1, network: string, ip: string, arrivedAt: number][];
  peers: number;
  locals: number;
  expect: { peers: number; locals: number } | undefined;
  matched: boolean;
  startedAt: number;
  matchedAt: number;
  snapshots: number;
}

const send = (message: FromWorker): void => {
  process.send!(message);
};
const log = (line: string): void => send({ type: 'log', line });

const counters: Counters = zeroCounters();
/**
 * VXNET_SCALE_AGENT_LOG_DIR=DIR: every agent log line, stamped with the shared clock, into DIR/agents-PID.log
 * (the harness shows only the first few per worker); to count reconnects and failed requests by kind.
 */
const agentLog = process.env.VXNET_SCALE_AGENT_LOG_DIR
  ? createWriteStream(join(process.env.VXNET_SCALE_AGENT_LOG_DIR, `agents-${process.pid}.log`))
  : undefined;
const sims: Sim[] = [];
const controller = new AbortController();
let recording = false;
let deliveries: Delivery[] = [];
let waitingForConvergence = false;
let loggedSamples = 0;

// Bytes on the wire, counted on the sockets themselves. A watch request gets a connection of its own.
const watchSockets = new Set<Socket>();
const apiSockets = new Set<Socket>();
let closedWatchBytes = 0;
let closedApiBytes = 0;
diagnostics_channel.subscribe('http.client.request.created', (message) => {
  const request = (message as { request: ClientRequest }).request;
  const isWatch = request.path.startsWith('/v1/agent/watch');
  const track = (socket: Socket) => {
    const set = isWatch ? watchSockets : apiSockets;
    if (set.has(socket)) return;
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (isWatch) closedWatchBytes += socket.bytesRead;
      else closedApiBytes += socket.bytesRead + socket.bytesWritten;
    });
  };
  if (request.socket) track(request.socket);
  else request.once('socket', track);
});

function readCounters(): Counters {
  let watch = closedWatchBytes;
  for (const s of watchSockets) watch += s.bytesRead;
  let api = closedApiBytes;
  for (const s of apiSockets) api += s.bytesRead + s.bytesWritten;
  const cpu = process.cpuUsage();
  let readyLocal = 0;
  for (const sim of sims) {
    for (const endpoint of sim.dataplane.last?.endpoints ?? []) if (sim.agent.view.endpoints.get(endpoint.id)?.status === 'ready') readyLocal++;
  }
  return { ...counters, watchBytes: watch, apiBytes: api, cpuMs: (cpu.user + cpu.system) / 1000, readyLocal };
}

function memory(): Memory {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  let peers = 0;
  for (const sim of sims) peers += sim.peers;
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, peers, agents: sims.length };
}

function onReconcile(sim: Sim, desired: DesiredState): void {
  counters.passes++;
  sim.peers = desired.peers.length;
  sim.locals = desired.endpoints.length;
  if (sim.pending.length > 0) {
    const t = now();
    for (const [op, network, ip, arrivedAt] of sim.pending) deliveries.push([sim.spec.index, op, network, ip, arrivedAt, t]);
    sim.pending = [];
  }
  if (!sim.matched && sim.expect && sim.peers === sim.expect.peers && sim.locals === sim.expect.locals) {
    sim.matched = true;
    sim.matchedAt = now();
    checkConvergence();
  }
}

function checkConvergence(): void {
  if (!waitingForConvergence) return;
  if (!sims.every((s) => s.matched)) return;
  waitingForConvergence = false;
  send({ type: 'converged', at: Math.max(...sims.map((s) => s.matchedAt)), syncMs: sims.map((s) => s.matchedAt - s.startedAt) });
}

/** Notes what a message changes for the agent, before the agent applies it (its pass may run at once). */
function observe(sim: Sim, message: WatchMessage): void {
  if (message.type === 'ping') return;
  counters.messages++;
  if (message.type === 'snapshot') {
    if (sim.snapshots++ > 0) counters.reconnects++;
    return;
  }
  if (!recording) return;
  const view = sim.agent.view;
  const t = now();
  switch (message.type) {
    case 'endpoint':
      if (!view.endpoints.has(message.endpoint.id)) sim.pending.push([0, message.endpoint.network, message.endpoint.ip, t]);
      return;
    case 'endpoint-deleted': {
      const gone = view.endpoints.get(message.id);
      if (gone) sim.pending.push([1, gone.network, gone.ip, t]);
      return;
    }
    case 'network-forgotten':
      for (const gone of view.endpointsOf(message.name)) sim.pending.push([1, gone.network, gone.ip, t]);
      return;
    default:
      return;
  }
}

/** How a simulated agent authenticates: as the real agent does (src/agent/main.ts). */
type Credentials = { token: string } | { ca: string; cert: string; key: string };

/**
 * With an https manager (mutual TLS), each agent gets a node certificate of its own, as `vxnet agent` does on
 * first start. The harness registers every node before any agent runs (run.ts), so only the admin token may
 * join under those names, and a real agent refuses to join with the admin token (src/agent/identity.ts): the
 * harness therefore makes the same join request itself, and keeps the credentials in memory only.
 */
async function credentialsFor(spec: AgentSpec, managerUrl: string, token: string): Promise<Credentials> {
  if (!managerUrl.startsWith('https:')) return { token };
  const keys = generateKeyPair();
  const client = new ManagerClient({ url: managerUrl, token });
  try {
    const answer = await client.join({ name: spec.name, publicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }) as string }, controller.signal);
    return { ca: answer.ca, cert: answer.certificate, key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  } finally {
    client.close();
  }
}

function createSim(spec: AgentSpec, managerUrl: string, credentials: Credentials): Sim {
  // the product's defaults, unless an experiment sets VXNET_SCALE_AGENT_CONNECTIONS
  const maxConnections = Number(process.env.VXNET_SCALE_AGENT_CONNECTIONS) || undefined;
  const client = new ManagerClient({ url: spreadOver(managerUrl, spec.index), ...credentials, timeoutMs: 60_000, ...(maxConnections ? { maxConnections } : {}) });
  const stop = new AbortController();
  controller.signal.addEventListener('abort', () => stop.abort(), { once: true });
  const sim = { spec, stop, client, pending: [], peers: 0, locals: 0, expect: undefined, matched: false, startedAt: 0, matchedAt: 0, snapshots: 0 } as unknown as Sim;
  const api: AgentManagerApi = {
    registerNode: (req, signal) => client.registerNode(req, signal),
    heartbeat: (node, req, signal) => {
      counters.heartbeats++;
      return client.heartbeat(node, req, signal);
    },
    setEndpointStatus: async (id, req, signal) => {
      counters.statusReports++;
      await client.setEndpointStatus(id, req, signal);
      counters.statusAcks++;
    },
    watch: (node, onMessage, signal, options) =>
      client.watch(
        node,
        (message) => {
          observe(sim, message);
          onMessage(message);
        },
        signal,
        options,
      ),
  };
  sim.dataplane = new RecordingDataplane((desired) => onReconcile(sim, desired));
  sim.agent = new Agent({
    api,
    dataplane: sim.dataplane,
    self: { name: spec.name, address: spec.address, underlayDevice: 'eth0' },
    underlayMtu: 1500,
    log: (line) => {
      counters.agentLogs++;
      if (agentLog) agentLog.write(`${now().toFixed(0)} ${spec.name}: ${line}\n`);
      if (loggedSamples < 10 && /fail|error|retry/i.test(line)) {
        loggedSamples++;
        log(`${spec.name}: ${line}`);
      }
    },
  });
  return sim;
}

/**
 * With several managers (`--managers`), each agent is given all of them, starting with a different one (its
 * index modulo their number), as an operator would spread `--manager` lists: the agents are spread evenly and
 * each fails over to the others.
 */
function spreadOver(managerUrl: string, index: number): string {
  const urls = managerUrl.split(',');
  const first = index % urls.length;
  return [...urls.slice(first), ...urls.slice(0, first)].join(',');
}

function digests(): [number, number, number][] {
  return sims.map((sim) => {
    let digest = 0;
    const peers = sim.dataplane.last?.peers ?? [];
    for (const p of peers) digest = (digest + peerDigest(p.vxlan, p.ip, p.mac, p.vtep)) >>> 0;
    return [sim.spec.index, peers.length, digest];
  });
}

setInterval(() => {
  if (deliveries.length === 0) return;
  const list = deliveries;
  deliveries = [];
  send({ type: 'deliveries', list });
}, 100).unref();

process.on('message', (raw) => {
  const message = raw as ToWorker;
  switch (message.type) {
    case 'init': {
      void (async () => {
        const started = now();
        const credentials: Credentials[] = [];
        for (let i = 0; i < message.agents.length; i += 16) {
          const batch = message.agents.slice(i, i + 16);
          credentials.push(...(await Promise.all(batch.map((spec) => credentialsFor(spec, message.managerUrl, message.token)))));
        }
        const joinMs = now() - started;
        const baseline = memory();
        message.agents.forEach((spec, i) => sims.push(createSim(spec, message.managerUrl, credentials[i]!)));
        send({ type: 'ready', baseline, joinMs });
      })().catch((err: unknown) => {
        log(`init failed: ${String(err)}`);
        process.exit(1);
      });
      return;
    }
    case 'start':
      for (const sim of sims) {
        sim.startedAt = now();
        sim.agent.run(sim.stop.signal).catch((err: unknown) => log(`agent ${sim.spec.name} stopped: ${String(err)}`));
      }
      return;
    case 'expect': {
      const byIndex = new Map(message.expectations.map(([index, peers, locals]) => [index, { peers, locals }]));
      for (const sim of sims) {
        const e = byIndex.get(sim.spec.index);
        if (!e) continue;
        sim.expect = e;
        sim.matched = sim.peers === e.peers && sim.locals === e.locals;
        if (sim.matched) sim.matchedAt = now();
      }
      waitingForConvergence = true;
      checkConvergence();
      return;
    }
    case 'record':
      recording = message.on;
      if (!recording) for (const sim of sims) sim.pending = [];
      void profile(message.on);
      return;
    case 'counters':
      send({ type: 'counters', id: message.id, counters: readCounters() });
      return;
    case 'memory':
      send({ type: 'memory', id: message.id, memory: memory() });
      return;
    case 'digests':
      send({ type: 'digests', id: message.id, digests: digests() });
      return;
    case 'stop':
      controller.abort();
      for (const sim of sims) sim.client.close();
      setTimeout(() => process.exit(0), 200).unref();
      return;
  }
});

process.on('disconnect', () => process.exit(0));

/**
 * VXNET_SCALE_PROFILE_DIR=DIR: a CPU profile of this worker while changes are recorded (the churn phases),
 * written as DIR/worker-PID-N.cpuprofile; the start-up sync, which dominates a whole-process profile, is
 * left out.
 */
let profiler: import('node:inspector/promises').Session | undefined;
let profiles = 0;
async function profile(on: boolean): Promise<void> {
  const dir = process.env.VXNET_SCALE_PROFILE_DIR;
  if (!dir) return;
  const { Session } = await import('node:inspector/promises');
  if (on && !profiler) {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  } else if (!on && profiler) {
    const session = profiler;
    profiler = undefined;
    const { profile: result } = await session.post('Profiler.stop');
    session.disconnect();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, `worker-${process.pid}-${profiles++}.cpuprofile`), JSON.stringify(result));
  }
}
