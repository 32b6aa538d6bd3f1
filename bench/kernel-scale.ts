/**
 * Kernel programming at scale, run inside a simulated host's namespace by bench/run.ts:
 *   node bench/kernel-scale.ts PEERS CONTAINER_NETNS LOCAL_ADDRESS
 * One network with one local endpoint and PEERS remote endpoints spread over 100 remote VTEPs; times the
 * pass that programs them from empty, passes with nothing to change, and the prune back to nothing.
 * Prints one JSON line with the figures.
 */
import { deviceNames, type DesiredState } from '../src/agent/dataplane.ts';
import { LinuxDataplane } from '../src/agent/kernel/linux-dataplane.ts';
import { formatIPv4, macForIPv4 } from '../src/core/ipv4.ts';
import { median } from './stats.ts';

const [peersArg, container, localAddress] = process.argv.slice(2);
const peers = Number(peersArg);
const vni = 3000;
const vxlan = deviceNames.vxlan(vni);
const base = (10 << 24) | (128 << 16); // 10.128.0.0/10 leaves room for 50k+ endpoints
const desired: DesiredState = {
  networks: [
    {
      name: 'scale',
      vni,
      bridge: deviceNames.bridge(vni),
      vxlan,
      port: 4789,
      mtu: 1450,
      localAddress: localAddress!,
      gatewayMac: macForIPv4(base + 1),
      gatewayAddresses: [`${formatIPv4(base + 1)}/10`],
      subnets: ['10.128.0.0/10'],
      internal: false,
    },
  ],
  peers: [],
  floods: [],
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
  vxlanFilter: { ports: [4789], allowedSources: [] },
};
const vteps = Array.from({ length: 100 }, (_, i) => `10.99.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`);
for (let i = 0; i < peers; i++) {
  const address = base + 10 + i;
  desired.peers.push({ vxlan, ip: formatIPv4(address), mac: macForIPv4(address), vtep: vteps[i % vteps.length]! });
}
desired.floods = vteps.map((vtep) => ({ vxlan, vtep }));
desired.vxlanFilter.allowedSources = vteps;

const dataplane = new LinuxDataplane();
try {
  let started = performance.now();
  const first = await dataplane.reconcile(desired);
  const programMs = performance.now() - started;
  if (first.error || first.endpointErrors.size) throw new Error(first.error ?? [...first.endpointErrors.values()].join('; '));

  const noChange: number[] = [];
  for (let i = 0; i < 20; i++) {
    started = performance.now();
    const pass = await dataplane.reconcile(desired);
    noChange.push(performance.now() - started);
    if (pass.changes !== 0) throw new Error(`a pass with nothing to change made ${pass.changes} changes`);
  }
  const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;

  started = performance.now();
  await dataplane.reconcile({ networks: [], peers: [], floods: [], endpoints: [], vxlanFilter: { ports: [], allowedSources: [] } });
  const pruneMs = performance.now() - started;
  console.log(JSON.stringify({ peers, programMs, noChangeMs: median(noChange), noChangePasses: noChange.length, pruneMs, heapMiB, changes: first.changes }));
} finally {
  await dataplane.close();
}
