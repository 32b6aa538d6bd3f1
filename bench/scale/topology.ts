/**
 * The simulated cluster of the scale harness: hosts, networks, which hosts take part in which network, and
 * the endpoints loaded before the measurements. Deterministic (seeded), so two runs load the same cluster and
 * a before/after comparison measures the code, not a different shape.
 *
 * Shape, chosen to look like a real cluster rather than a uniform grid:
 * - optionally one cluster-wide network with one endpoint on every host (a monitoring or logging agent on
 *   every machine): a change there concerns every host, the worst case for fan-out;
 * - the other networks' sizes follow a Zipf-like law (a few networks span hundreds of hosts, most span a few
 *   dozen), with `membershipsPerHost` memberships per host on average;
 * - a network's endpoints are spread evenly over its hosts (so every member has several, and steady churn
 *   does not make hosts join and leave networks all the time).
 */
import { formatIPv4, macForIPv4 } from '../../src/core/ipv4.ts';
import { deviceNames } from '../../src/agent/dataplane.ts';

export interface TopologyOptions {
  agents: number;
  endpoints: number;
  networks: number;
  /** average number of (non cluster-wide) networks a host takes part in */
  membershipsPerHost: number;
  /** Zipf exponent of network sizes (0 = all equal) */
  skew: number;
  /** network 0 spans every host with one endpoint each */
  clusterWide: boolean;
  seed: number;
}

export interface SimNetwork {
  index: number;
  name: string;
  vni: number;
  /** a /16 per network: 10.<index>.0.0/16 (room for 65,533 endpoints) */
  cidr: string;
  /** the first address endpoints get (network + 2; +1 is the gateway) */
  base: number;
  /** host indexes taking part */
  members: number[];
  /** endpoints loaded before the measurements, as (member position → count) */
  perMember: number[];
}

export interface SimHost {
  index: number;
  name: string;
  address: string;
}

export interface Topology {
  options: TopologyOptions;
  hosts: SimHost[];
  networks: SimNetwork[];
  /** total endpoints loaded */
  endpoints: number;
}

/** mulberry32: small, fast, good enough for shuffling */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hostName(index: number): string {
  return `sim${String(index).padStart(4, '0')}`;
}

/** Underlay address of simulated host `index` (never routed anywhere: the data plane only records). */
export function hostAddress(index: number): string {
  return `10.${200 + (index >> 16)}.${(index >> 8) & 255}.${index & 255}`;
}

export function buildTopology(options: TopologyOptions): Topology {
  const random = prng(options.seed);
  const hosts: SimHost[] = Array.from({ length: options.agents }, (_, i) => ({ index: i, name: hostName(i), address: hostAddress(i) }));
  const networks: SimNetwork[] = [];
  const wide = options.clusterWide ? 1 : 0;
  const sized = options.networks - wide;
  if (sized < 1) throw new Error('need at least one network besides the cluster-wide one');

  // sizes of the other networks: Zipf weights scaled to the wanted number of memberships
  const weights = Array.from({ length: sized }, (_, i) => 1 / (i + 1) ** options.skew);
  const total = weights.reduce((a, b) => a + b, 0);
  const minHosts = Math.min(options.agents, 3);
  const hostsPer = weights.map((w) =>
    Math.max(minHosts, Math.min(options.agents, Math.round((w / total) * options.agents * options.membershipsPerHost))),
  );
  const memberships = hostsPer.reduce((a, b) => a + b, 0);
  const spread = options.endpoints - (wide ? options.agents : 0);
  const endpointsPer = hostsPer.map((h) => Math.floor((spread * h) / memberships));
  endpointsPer[0]! += spread - endpointsPer.reduce((a, b) => a + b, 0);

  const pick = (count: number): number[] => {
    const all = hosts.map((h) => h.index);
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(random() * (all.length - i));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, count).sort((a, b) => a - b);
  };
  const even = (endpoints: number, members: number): number[] =>
    Array.from({ length: members }, (_, i) => Math.floor(endpoints / members) + (i < endpoints % members ? 1 : 0));

  for (let i = 0; i < options.networks; i++) {
    const index = i;
    const base = ((10 << 24) | (index << 16)) >>> 0;
    const network: SimNetwork = {
      index,
      name: `net${String(index).padStart(3, '0')}`,
      vni: 10_000 + index,
      cidr: `${formatIPv4(base)}/16`,
      base: base + 2,
      members: [],
      perMember: [],
    };
    if (wide && i === 0) {
      network.members = hosts.map((h) => h.index);
      network.perMember = network.members.map(() => 1);
    } else {
      const k = i - wide;
      network.members = pick(hostsPer[k]!);
      network.perMember = even(endpointsPer[k]!, network.members.length);
    }
    if (network.perMember.reduce((a, b) => a + b, 0) > 65_000) throw new Error(`network ${network.name} would not fit its /16`);
    networks.push(network);
  }
  return { options, hosts, networks, endpoints: options.endpoints };
}

/** The n-th endpoint address of a network (n from 0), as the harness requests it explicitly. */
export function endpointIp(network: SimNetwork, n: number): string {
  return formatIPv4(network.base + n);
}

/**
 * An order-independent digest of a set of peers as the agent's desired state holds them (VXLAN device, IP,
 * MAC, VTEP): the harness compares every agent's digest with the one computed from its own model.
 */
export function peerDigest(vxlan: string, ip: string, mac: string, vtep: string): number {
  // FNV-1a over the four fields
  let h = 0x811c9dc5;
  const text = `${vxlan} ${ip} ${mac} ${vtep}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function expectedPeerDigest(network: SimNetwork, ip: string, vtep: string): number {
  const parts = ip.split('.').map(Number);
  const address = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  return peerDigest(deviceNames.vxlan(network.vni), ip, macForIPv4(address), vtep);
}

/** Summary figures of a topology, for the report. */
export function describe(topology: Topology): Record<string, number> {
  const sizes = topology.networks.map((n) => n.members.length);
  const endpointsOf = topology.networks.map((n) => n.perMember.reduce((a, b) => a + b, 0));
  let visible = 0;
  const perHost = new Array<number>(topology.hosts.length).fill(0);
  topology.networks.forEach((n, i) => {
    for (const h of n.members) perHost[h]! += endpointsOf[i]!;
    visible += n.members.length * endpointsOf[i]!;
  });
  const memberships = sizes.reduce((a, b) => a + b, 0);
  return {
    hosts: topology.hosts.length,
    networks: topology.networks.length,
    endpoints: endpointsOf.reduce((a, b) => a + b, 0),
    membershipsPerHost: memberships / topology.hosts.length,
    largestNetworkHosts: Math.max(...sizes),
    smallestNetworkHosts: Math.min(...sizes),
    largestNetworkEndpoints: Math.max(...endpointsOf),
    endpointsSeenPerHostAvg: visible / topology.hosts.length,
    endpointsSeenPerHostMax: Math.max(...perHost),
    viewRecordsTotal: visible,
  };
}
