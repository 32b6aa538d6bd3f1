/**
 * Kernel programming at scale, run by bench/run.ts inside a namespace of its own that stands for a host
 * (no agent runs there: an agent's periodic pass would prune these devices as not desired):
 *   node --expose-gc bench/kernel-scale.ts PEERS CONTAINER_NETNS LOCAL_ADDRESS
 * One network with one local endpoint and PEERS remote endpoints spread over 100 remote VTEPs, first in the
 * layout the agent uses by default (the network's devices and entries in a namespace of their own), then in
 * the one without namespaces (`hostLayout`, no memory figures). For each, times the pass that programs them
 * from empty, passes with nothing to change (as the agent runs them: the entry
 * dumps are reused while `ip monitor neigh` reports nothing, see src/agent/kernel/entry-cache.ts), the same
 * passes re-reading every entry (what the agent does every 30 s and after any change), and the prune back to
 * nothing. Memory is this process's once programmed in the default layout and at rest (after the no-change passes): the data plane,
 * its cached entry dump and the desired state it was handed, i.e. the kernel side of an agent; heap after a
 * full GC (hence --expose-gc), RSS, and the peak RSS of the whole run.
 * Prints one JSON line with the figures.
 */
import { deviceNames, type DesiredState } from '../src/agent/dataplane.ts';
import { LinuxDataplane } from '../src/agent/kernel/linux-dataplane.ts';
import { formatIPv4, macForIPv4 } from '../src/core/ipv4.ts';
import { median } from './stats.ts';

const NO_CHANGE_PASSES = 20;
const FULL_READ_PASSES = 5;
const ONE_CHANGE_PASSES = 5;
const MiB = 2 ** 20;

const [peersArg, container, localAddress] = process.argv.slice(2);
const peers = Number(peersArg);
if (!Number.isInteger(peers) || peers < 1 || !container || !localAddress) {
  console.error('usage: node --expose-gc bench/kernel-scale.ts PEERS CONTAINER_NETNS LOCAL_ADDRESS');
  process.exit(2);
}

function memory(): { heapMiB: number; rssMiB: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  return { heapMiB: usage.heapUsed / MiB, rssMiB: usage.rss / MiB };
}
const baseline = memory();

const vni = 3000;
const vxlan = deviceNames.vxlan(vni);
const base = (10 << 24) | (128 << 16); // 10.128.0.0/10 leaves room for millions of endpoints
const vteps = Array.from({ length: 100 }, (_, i) => `10.99.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`);
const desired: DesiredState = {
  networks: [
    {
      name: 'scale',
      vni,
      bridge: deviceNames.bridge(vni),
      vxlan,
      port: 4789,
      mtu: 1450,
      localAddress,
      gatewayMac: macForIPv4(base + 1),
      gatewayAddresses: [`${formatIPv4(base + 1)}/10`],
      subnets: ['10.128.0.0/10'],
      internal: false,
    },
  ],
  peers: Array.from({ length: peers }, (_, i) => {
    const address = base + 10 + i;
    return { vxlan, ip: formatIPv4(address), mac: macForIPv4(address), vtep: vteps[i % vteps.length]! };
  }),
  floods: vteps.map((vtep) => ({ vxlan, vtep })),
  endpoints: [
    {
      id: 'b0b0b0b0b0b0',
      bridge: deviceNames.bridge(vni),
      hostVeth: deviceNames.hostVeth('b0b0b0b0b0b0'),
      peerVeth: deviceNames.peerVeth('b0b0b0b0b0b0'),
      netns: `/run/netns/${container}`,
      ifname: 'eth0',
      mac: macForIPv4(base + 2),
      address: `${formatIPv4(base + 2)}/10`,
      gateway: formatIPv4(base + 1),
      mtu: 1450,
      extraRoutes: [],
    },
  ],
  vxlanFilter: { ports: [4789], allowedSources: vteps },
};

async function noChangePasses(dataplane: LinuxDataplane, passes: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < passes; i++) {
    const started = performance.now();
    const pass = await dataplane.reconcile(desired);
    times.push(performance.now() - started);
    if (pass.error || pass.changes !== 0) throw new Error(`a pass with nothing to change made ${pass.changes} changes${pass.error ? `: ${pass.error}` : ''}`);
  }
  return times;
}

/** The figures of one layout (memory apart): program, no-change passes with and without the kept dumps, one change, prune. */
export interface LayoutFigures {
  changes: number;
  programMs: number;
  noChangeMs: number;
  noChangeMaxMs: number;
  noChangePasses: number;
  noChangeFullReadMs: number;
  noChangeFullReadPasses: number;
  oneChangeMs: number;
  afterOneChangeMs: number;
  oneChangePasses: number;
  pruneMs: number;
}

/**
 * One layout from empty to empty. `namespaces`: the agent's default, a namespace per network (named after
 * this process, so that two runs never share one); without it, every device in this namespace
 * (`--no-network-namespaces`). `atRest` runs once the no-change passes are done (the memory reading).
 */
async function measure(namespaces: boolean, atRest: () => void = () => {}): Promise<LayoutFigures> {
  const layout = namespaces ? { networkNamespaces: { prefix: `vxks${process.pid}-` } } : {};
  const dataplane = new LinuxDataplane(layout);
  const fullRead = new LinuxDataplane({ ...layout, watchEntries: false });
  try {
    let started = performance.now();
    const first = await dataplane.reconcile(desired);
    const programMs = performance.now() - started;
    if (first.error || first.endpointErrors.size) throw new Error(first.error ?? [...first.endpointErrors.values()].join('; '));

    // the first pass after programming re-reads what the writes changed; the rest reuse that dump
    const noChange = await noChangePasses(dataplane, NO_CHANGE_PASSES);
    // measured now rather than right after programming: an agent at rest also holds that cached dump
    atRest();
    const noChangeFullRead = await noChangePasses(fullRead, FULL_READ_PASSES);

    // one peer moves to another VTEP, as when a container is re-created elsewhere: the renderer hands over a new
    // list; the pass writes two entries, and the one after it should not have to read everything back
    const moves: number[] = [];
    const afterMoves: number[] = [];
    let current = desired;
    for (let i = 0; i < ONE_CHANGE_PASSES; i++) {
      const peersNow = current.peers.slice();
      const index = (i * 7919) % peersNow.length;
      const moved = peersNow[index]!;
      peersNow[index] = { ...moved, vtep: vteps[(vteps.indexOf(moved.vtep) + 1) % vteps.length]! };
      current = { ...current, peers: peersNow };
      started = performance.now();
      const pass = await dataplane.reconcile(current);
      moves.push(performance.now() - started);
      if (pass.error || pass.changes === 0) throw new Error(`moving one peer made ${pass.changes} changes${pass.error ? `: ${pass.error}` : ''}`);
      started = performance.now();
      const next = await dataplane.reconcile(current);
      afterMoves.push(performance.now() - started);
      if (next.error || next.changes !== 0) throw new Error(`the pass after moving one peer made ${next.changes} changes`);
    }

    started = performance.now();
    const prune = await dataplane.reconcile({ networks: [], peers: [], floods: [], endpoints: [], vxlanFilter: { ports: [], allowedSources: [] } });
    const pruneMs = performance.now() - started;
    if (prune.error) throw new Error(`pruning failed: ${prune.error}`);
    return {
      changes: first.changes,
      programMs,
      noChangeMs: median(noChange),
      noChangeMaxMs: Math.max(...noChange),
      noChangePasses: noChange.length,
      noChangeFullReadMs: median(noChangeFullRead),
      noChangeFullReadPasses: noChangeFullRead.length,
      oneChangeMs: median(moves),
      afterOneChangeMs: median(afterMoves),
      oneChangePasses: moves.length,
      pruneMs,
    };
  } finally {
    await Promise.all([dataplane.close(), fullRead.close()]);
  }
}

// the layout the agent uses by default first (its memory is the one reported), then the one without namespaces
let programmed = baseline;
const figures = await measure(true, () => (programmed = memory()));
const hostLayout = await measure(false);
console.log(
  JSON.stringify({
    peers,
    ...figures,
    baselineHeapMiB: baseline.heapMiB,
    baselineRssMiB: baseline.rssMiB,
    heapMiB: programmed.heapMiB,
    rssMiB: programmed.rssMiB,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    hostLayout,
  }),
);
