/**
 * `node --expose-gc bench/scale/render-micro.ts`: one agent's rendering without the harness around it — the
 * cost of applying one watch change to an agent that holds 12,000 remote endpoints (4 networks of 3,000 on
 * 1,000 hosts), and the heap each remote endpoint takes in the view and the renderer (its DNS zones
 * included). CPU time, not wall time: it holds on a shared machine. Found where the DNS names made agents
 * heavier (bench/results/scale-dns.md).
 */
import { ClusterView } from '../../src/agent/view.ts';
import { desiredState, dnsZones } from '../../src/agent/desired.ts';
import type { Endpoint, Network, Node } from '../../src/core/model.ts';

const ENDPOINTS = 12_000;
const NETWORKS = 4;
const HOSTS = 1_000;
/** views held at once, for the heap figure */
const VIEWS = 20;
const CHANGES = 20_000;

const self = { name: 'h0', address: '10.0.0.1', underlayDevice: 'eth0' };
const nodes: Node[] = Array.from({ length: HOSTS }, (_, i) => ({ name: `h${i}`, address: `10.0.${i >> 8}.${(i & 255) + 1}`, mtu: 1500, registeredAt: '' }));
const networks: Network[] = Array.from({ length: NETWORKS }, (_, n) => ({
  name: `net${n}`,
  vni: 100 + n,
  port: 4789,
  mtu: 1450,
  internal: false,
  subnets: [{ cidr: `10.${100 + n}.0.0/16`, gateway: `10.${100 + n}.0.1` }],
  createdAt: '',
})) as Network[];
/** endpoint i of network n: the first on this node, the others spread over the rest; each answers to its namespace's name */
const endpoint = (i: number, n: number): Endpoint =>
  ({
    id: `e${n}-${i}`,
    network: `net${n}`,
    node: i === 0 ? 'h0' : `h${1 + (i % (HOSTS - 1))}`,
    ip: `10.${100 + n}.${i >> 8}.${(i & 255) + 2}`,
    prefix: 16,
    mac: '02:00:00:00:00:01',
    gateway: `10.${100 + n}.0.1`,
    ifname: 'eth0',
    netns: `/run/netns/n${n}-${i}`,
    status: 'ready',
    createdAt: '',
  }) as Endpoint;
const perNetwork = ENDPOINTS / NETWORKS;
const endpoints: Endpoint[] = [];
for (let n = 0; n < NETWORKS; n++) for (let i = 0; i < perNetwork; i++) endpoints.push(endpoint(i, n));

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const cpuMs = (since: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
};
const render = (view: ClusterView) => {
  desiredState(view, self);
  dnsZones(view, self);
};

gc();
const heapBefore = process.memoryUsage().heapUsed;
const views: ClusterView[] = [];
let firstRenderMs = 0;
for (let v = 0; v < VIEWS; v++) {
  const view = new ClusterView();
  view.apply({ type: 'snapshot', revision: 1, nodes, networks, endpoints: endpoints.map((e) => ({ ...e })) });
  const started = process.cpuUsage();
  render(view);
  if (v === 0) firstRenderMs = cpuMs(started);
  views.push(view);
}
gc();
const heapPerEndpoint = (process.memoryUsage().heapUsed - heapBefore) / VIEWS / ENDPOINTS;

const view = views[0]!;
let revision = 2;
const started = process.cpuUsage();
for (let k = 0; k < CHANGES; k++) {
  const n = k % NETWORKS;
  const i = perNetwork + k;
  view.apply({ type: 'endpoint', revision: revision++, endpoint: endpoint(i, n) });
  render(view);
  view.apply({ type: 'endpoint-deleted', revision: revision++, id: `e${n}-${i}`, network: `net${n}` });
  render(view);
}
const perChangeUs = (cpuMs(started) * 1000) / (2 * CHANGES);
console.log(
  JSON.stringify({
    remoteEndpoints: ENDPOINTS,
    heapKiBPerRemoteEndpoint: Number((heapPerEndpoint / 1024).toFixed(3)),
    firstRenderCpuMs: Number(firstRenderMs.toFixed(1)),
    perChangeCpuUs: Number(perChangeUs.toFixed(1)),
  }),
);
