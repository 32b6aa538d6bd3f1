/**
 * One agent's CPU per watch message, without the harness around it: a real Agent whose watch stream is read
 * by the client's own reader (src/client/watch-reader.ts: line split, JSON.parse, schema check), a
 * RecordingDataplane, and a view shaped like a member of bench:scale's big networks (1,000 nodes; this node
 * in a network of `--big` endpoints over 145 hosts, the cluster-wide one and a small one). Then single-endpoint
 * create/delete messages in the big network, one at a time, each followed by the pass it triggers and its
 * status work: CPU µs per message.
 *
 * Why: in bench:scale at 1,000 agents, the 145 agents of such a network spent ~1 ms of CPU each per change,
 * and with all of them packed on two CPUs that set the p99 of change delivery (bench/results/scale-etcd.md).
 *
 * Given `--root` more than once (a checkout of another commit each, e.g. a `git worktree` of main), it loads
 * each tree's agent in this one process and measures them in turns, so that the machine's load falls on all
 * of them alike; the figure to compare is the ratio between trees, in the same run. `--cpu-prof` on node
 * gives the breakdown.
 *
 *   node bench/scale/agent-micro.ts [--root DIR ...] [--agents 1] [--idle 0] [--big 7000] [--messages 4000] [--rounds 5]
 */
import { EventEmitter } from 'node:events';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { AgentManagerApi } from '../../src/agent/agent-options.ts';
import { VXLAN_PORT, type Endpoint, type Network, type Node } from '../../src/core/model.ts';
import { fixed } from '../stats.ts';

const { values } = parseArgs({
  options: {
    root: { type: 'string', multiple: true, default: [resolve(import.meta.dirname, '../..')] },
    big: { type: 'string', default: '7000' },
    messages: { type: 'string', default: '4000' },
    rounds: { type: 'string', default: '5' },
    agents: { type: 'string', default: '1' },
    idle: { type: 'string', default: '0' },
  },
});
const BIG = Number(values.big);
const MESSAGES = Number(values.messages);
const ROUNDS = Number(values.rounds);
/** agents per tree, each with a view of its own: a bench:scale worker holds 250, and their heap is GC's work */
const AGENTS = Number(values.agents);
/** agents per tree that hold the same view but get no messages: the rest of a worker's heap, which GC walks */
const IDLE = Number(values.idle);
const HOSTS = 1_000;
/** hosts of the big network (bench:scale's largest non-cluster-wide network at 1,000 agents) */
const BIG_HOSTS = 145;
const SMALL = 250;
const SELF = 'h0';

const nodes: Node[] = Array.from({ length: HOSTS }, (_, i) => ({ name: `h${i}`, address: `10.9.${i >> 8}.${(i & 255) + 1}`, mtu: 1500, registeredAt: '' }));
const network = (n: number): Network => {
  const subnet = `10.${100 + n}.0`;
  return { name: `net${n}`, vni: 100 + n, port: VXLAN_PORT, mtu: 1450, internal: false, subnets: [{ cidr: `${subnet}.0/16`, gateway: `${subnet}.1` }], createdAt: '' };
};
const networks = [network(0), network(1), network(2)];
/** endpoint i of network n, on host `host`; the first of each network is this node's */
const endpoint = (n: number, i: number, host: number): Endpoint => ({
  id: `e${n}-${i}`,
  network: `net${n}`,
  node: `h${host}`,
  ip: `10.${100 + n}.${(i + 2) >> 8}.${(i + 2) & 255}`,
  prefix: 16,
  mac: `02:00:${n.toString(16).padStart(2, '0')}:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  gateway: `10.${100 + n}.0.1`,
  ifname: 'eth0',
  netns: `/run/netns/n${n}-${i}`,
  status: 'ready',
  createdAt: '',
});
const endpoints: Endpoint[] = [];
// net0: the big one, over BIG_HOSTS hosts; net1: cluster-wide, one per host; net2: a small one
for (let i = 0; i < BIG; i++) endpoints.push(endpoint(0, i, i % BIG_HOSTS));
for (let i = 0; i < HOSTS; i++) endpoints.push(endpoint(1, i, i));
for (let i = 0; i < SMALL; i++) endpoints.push(endpoint(2, i, (i * 7) % 40));
const snapshotLine = `${JSON.stringify({ type: 'snapshot', revision: 1, nodes, networks, endpoints })}\n`;
/** message k: a create (even) or the delete of the endpoint just created (odd), on a remote host of net0 */
const messageLine = (k: number, revision: number): string => {
  const i = BIG + (k >> 1);
  if (k % 2 === 1) return `${JSON.stringify({ type: 'endpoint-deleted', revision, id: `e0-${i}`, network: 'net0' })}\n`;
  return `${JSON.stringify({ type: 'endpoint', revision, endpoint: endpoint(0, i, 1 + (i % (BIG_HOSTS - 1))) })}\n`;
};

/** The watch answer the reader consumes: chunks are pushed into it as the manager's would arrive. */
class FakeStream extends EventEmitter {
  complete = false;
  setEncoding(): this {
    return this;
  }
  destroy(): this {
    return this;
  }
}

interface Tree {
  root: string;
  push: (line: string) => void;
  idle: () => Promise<void>;
  passes: () => number;
  stop: () => Promise<void>;
  revision: number;
  /** CPU µs per message, one figure per round */
  perMessage: number[];
}

/** `count` agents of one tree, taking every message in turn, as the agents of one worker do */
const load = async (root: string, count: number): Promise<Tree> => {
  const agents = await Promise.all(Array.from({ length: count }, () => loadOne(root)));
  const idle = await Promise.all(Array.from({ length: IDLE }, () => loadOne(root)));
  return {
    root,
    push: (line) => {
      for (const agent of agents) agent.push(line);
    },
    idle: async () => {
      for (const agent of agents) await agent.idle();
    },
    passes: () => agents.reduce((sum, agent) => sum + agent.passes(), 0) / count,
    stop: async () => {
      for (const agent of [...agents, ...idle]) await agent.stop();
    },
    revision: 2,
    perMessage: [],
  };
};

const loadOne = async (root: string): Promise<Tree> => {
  const from = <T>(path: string): Promise<T> => import(pathToFileURL(join(root, path)).href) as Promise<T>;
  const { Agent } = await from<typeof import('../../src/agent/agent.ts')>('src/agent/agent.ts');
  const { readWatchLines } = await from<typeof import('../../src/client/watch-reader.ts')>('src/client/watch-reader.ts');
  const schemas = await from<typeof import('../../src/core/schema/index.ts')>('src/core/schema/index.ts');
  const { RecordingDataplane } = await from<typeof import('./recording-dataplane.ts')>('bench/scale/recording-dataplane.ts');
  let stream: FakeStream | undefined;
  const opened = Promise.withResolvers<void>();
  const stop = new AbortController();
  // typed by this tree's interface; another tree's Agent takes it as its own (the same shape on main)
  const api: AgentManagerApi = {
    registerNode: async () => nodes[0]!,
    heartbeat: async () => {},
    setEndpointStatus: async () => {},
    watch: (_node, onMessage, signal, options) => {
      stream = new FakeStream();
      opened.resolve();
      const cut = () => new Error('cut') as never;
      return readWatchLines(stream as never, signal, { url: 'micro', schemas, onMessage, ...(options?.onData ? { onData: options.onData } : {}), cut });
    },
  };
  const agent = new Agent({
    api: api as never,
    dataplane: new RecordingDataplane(),
    self: { name: SELF, address: nodes[0]!.address, underlayDevice: 'eth0' },
    underlayMtu: 1500,
  });
  const running = agent.run(stop.signal);
  await opened.promise;
  const push = (line: string): void => void stream!.emit('data', line);
  push(snapshotLine);
  await agent.idle();
  if (!agent.view.synced) throw new Error(`${root}: the agent did not take the snapshot`);
  return {
    root,
    push,
    idle: () => agent.idle(),
    passes: () => agent.passes,
    stop: async () => {
      stop.abort();
      await running.catch(() => {});
    },
    revision: 2,
    perMessage: [],
  };
};

const run = async (tree: Tree, count: number): Promise<void> => {
  // the lines are made outside the measurement: the manager writes them, not the agent
  const lines = Array.from({ length: count }, (_, k) => messageLine(k, tree.revision + k));
  tree.revision += count;
  const before = tree.passes();
  const cpu = process.cpuUsage();
  for (const line of lines) {
    tree.push(line);
    await tree.idle();
  }
  const used = process.cpuUsage(cpu);
  if (tree.passes() - before !== count) throw new Error(`${tree.root}: ${tree.passes() - before} passes for ${count} messages`);
  tree.perMessage.push((used.user + used.system) / count / AGENTS);
};

const trees: Tree[] = [];
try {
  for (const root of values.root) trees.push(await load(root, AGENTS));
  for (const tree of trees) {
    await run(tree, Math.min(MESSAGES, 2_000)); // warm-up: compiled, caches full
    tree.perMessage = [];
  }
  for (let r = 0; r < ROUNDS; r++) for (const tree of trees) await run(tree, MESSAGES);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const reference = median(trees[0]!.perMessage);
  for (const tree of trees) {
    const m = median(tree.perMessage);
    console.log(
      `${tree.root}: ${fixed(m, 1)} µs CPU per watch message per agent (${AGENTS} agents, ${IDLE} idle; median of ${ROUNDS} rounds of ${MESSAGES}; ${endpoints.length - 3} remote endpoints, ` +
        `changes in a network of ${BIG}; rounds ${tree.perMessage.map((x) => fixed(x, 1)).join(', ')})` +
        (tree === trees[0] ? '' : `, ${fixed(m / reference, 2)}× the first`),
    );
  }
} finally {
  for (const tree of trees) await tree.stop();
}
