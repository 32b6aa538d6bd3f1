/**
 * The manager's CPU per heartbeat, without sockets: a whole manager (main.ts, SQLite) with `--nodes` nodes
 * registered, and heartbeats sent through its HTTP pipeline in-process (http.ts `inject`: routing,
 * authorisation, body schema, service, liveness), round robin over the nodes as the agents send them.
 *
 * Why: bench:scale's at-rest figure (manager CPU ÷ heartbeats over 20 s) also holds pings, timers and
 * garbage collection, and two runs of it differ by more than the heartbeat's own cost. Given `--root` more
 * than once (a checkout of another commit each, e.g. a `git worktree` of the commit before), it loads each
 * tree's manager in this one process and measures them in turns, so that the machine's load falls on all of
 * them alike; the figure to compare is the ratio between trees, in the same run.
 *
 * `--tls`: the heartbeats go over the manager's real TLS listener instead, each node on its own kept-alive
 * connection with its own node certificate, as the agents send them (the process then also holds the clients'
 * side, the same for every tree).
 *
 *   node bench/scale/heartbeat-micro.ts [--root DIR ...] [--nodes 1000] [--beats 100000] [--rounds 5] [--tls]
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { fixed } from '../stats.ts';

const { values } = parseArgs({
  options: {
    root: { type: 'string', multiple: true, default: [resolve(import.meta.dirname, '../..')] },
    nodes: { type: 'string', default: '1000' },
    beats: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '5' },
    tls: { type: 'boolean', default: false },
  },
});
const nodes = Number(values.nodes);
const beats = Number(values.beats);
const rounds = Number(values.rounds);

interface Tree {
  root: string;
  call: (node: string, revision: number) => Promise<number>;
  close: () => Promise<void>;
  /** CPU µs per heartbeat, one figure per round */
  perBeat: number[];
}

const scratch = mkdtempSync(join(tmpdir(), 'vxnet-heartbeat-micro-'));
const trees: Tree[] = [];
try {
  for (const [i, root] of values.root.entries()) {
    const main = (await import(pathToFileURL(join(root, 'src/manager/main.ts')).href)) as typeof import('../../src/manager/main.ts');
    const http = (await import(pathToFileURL(join(root, 'src/manager/http.ts')).href)) as typeof import('../../src/manager/http.ts');
    const dataDir = join(scratch, `m${i}`, 'data');
    const listen = values.tls ? '127.0.0.1:0' : `unix:${join(scratch, `m${i}`, 'm.sock')}`;
    const manager = await main.startManager({ dataDir, listen: [listen] });
    const register = async (n: number) => manager.service.registerNode({ name: `sim${n}`, address: `10.9.${n >> 8}.${n & 255}`, mtu: 1500 });
    if (!values.tls) for (let n = 0; n < nodes; n++) await register(n);
    const ctx = { service: manager.service, hub: manager.hub, security: manager.security };
    const token = manager.tokens.admin;
    if (!values.tls) {
      trees.push({
        root,
        call: async (node, revision) => (await http.inject(ctx, { method: 'POST', path: `/v1/nodes/${node}/heartbeat`, token, body: { reconciledRevision: revision } })).status,
        close: () => manager.close(),
        perBeat: [],
      });
      continue;
    }
    // each node joins (a certificate of its own) and keeps one connection, as an agent does
    const port = Number(manager.addresses[0]!.split(':').at(-1));
    const agents = new Map<string, Agent>();
    for (let n = 0; n < nodes; n++) {
      const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const joined = await http.inject(ctx, { method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: `sim${n}`, publicKey } });
      if (joined.status !== 200) throw new Error(`${root}: joining sim${n} was answered ${joined.status}`);
      const key = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      await register(n);
      agents.set(`sim${n}`, new Agent({ keepAlive: true, maxSockets: 1, ca: [manager.caCertificate], cert: joined.body.certificate as string, key }));
    }
    trees.push({
      root,
      call: (node, revision) =>
        new Promise<number>((resolve, reject) => {
          const body = JSON.stringify({ reconciledRevision: revision });
          const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };
          const req = request({ host: '127.0.0.1', port, path: `/v1/nodes/${node}/heartbeat`, method: 'POST', agent: agents.get(node)!, headers }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          });
          req.on('error', reject);
          req.end(body);
        }),
      close: async () => {
        for (const agent of agents.values()) agent.destroy();
        await manager.close();
      },
      perBeat: [],
    });
  }
  const run = async (tree: Tree, count: number) => {
    for (let b = 0; b < count; b++) {
      const status = await tree.call(`sim${b % nodes}`, 1 + (b >> 12));
      if (status !== 204) throw new Error(`${tree.root}: a heartbeat was answered ${status}`);
    }
  };
  for (const tree of trees) await run(tree, Math.min(beats, 20_000)); // warm-up: compiled, maps full
  for (let r = 0; r < rounds; r++) {
    for (const tree of trees) {
      const cpu = process.cpuUsage();
      await run(tree, beats);
      const used = process.cpuUsage(cpu);
      tree.perBeat.push((used.user + used.system) / beats);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const reference = median(trees[0]!.perBeat);
  for (const tree of trees) {
    const m = median(tree.perBeat);
    console.log(
      `${tree.root}: ${fixed(m, 1)} µs CPU per heartbeat (median of ${rounds} rounds of ${beats}, ${nodes} nodes; rounds ${tree.perBeat.map((x) => fixed(x, 1)).join(', ')})` +
        (tree === trees[0] ? '' : `, ${fixed(m / reference, 2)}× the first`),
    );
  }
} finally {
  for (const tree of trees) await tree.close();
  rmSync(scratch, { recursive: true, force: true });
}
