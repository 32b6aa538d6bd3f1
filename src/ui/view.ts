/**
 * The dashboard's view of the cluster (`vxnet ui`): a pure function from the manager's answers to what the
 * page shows — hosts with their health, networks, endpoints, and per pair of hosts that share a network the
 * health of that peering — plus the topology's layout, so the page only draws (page-script.ts). Computed in
 * the CLI process, tested without a browser.
 *
 * A peering is judged from what the manager knows: both nodes up (heartbeats), both caught up with the
 * cluster's revision (their entries for each other are current), and for encrypted networks the WireGuard
 * tunnel each side last reported. The kernels themselves are `vxnet trace`'s business.
 */
import type { Endpoint, Info, NetworkDetail, NodeStatus } from '../core/model.ts';

export type Health = 'ok' | 'degraded' | 'down';

export interface HostView {
  name: string;
  address: string;
  state: NodeStatus['state'];
  lastSeen: string | null;
  /** revisions the node has still to apply (0: caught up) */
  behind: number;
  endpoints: number;
  health: Health;
  x: number;
  y: number;
}

export interface PeeringView {
  a: string;
  b: string;
  /** the networks the two share */
  networks: string[];
  health: Health;
  /** why it is not ok, one sentence; empty when ok */
  reason: string;
}

export interface EndpointView {
  id: string;
  network: string;
  node: string;
  ip: string;
  mac: string;
  status: Endpoint['status'];
  message?: string;
  /** where the dot goes: around its host */
  x: number;
  y: number;
  /** where its address is written, further out */
  labelX: number;
  labelY: number;
  color: string;
}

export interface NetworkView {
  name: string;
  vni: number;
  subnets: string[];
  endpoints: number;
  encrypted: boolean;
  internal: boolean;
  color: string;
}

export interface DashboardView {
  clusterId: string;
  revision: number;
  /** ISO 8601, when the manager was asked */
  at: string;
  hosts: HostView[];
  networks: NetworkView[];
  endpoints: EndpointView[];
  peerings: PeeringView[];
  /** the drawing's size (the page scales it) */
  width: number;
  height: number;
}

/** A node more revisions behind than this is shown degraded: it reports every 5 s, a few behind is normal. */
export const BEHIND_TOLERANCE = 50;
const PALETTE = ['#2f6fdf', '#d9480f', '#2b8a3e', '#9c36b5', '#c2255c', '#0b7285', '#e67700', '#5c940d'];
const SIZE = 600;
/** distance of endpoint dots from their host's centre (the host is drawn with radius 32) */
const ENDPOINT_RING = 58;

export function dashboardView(info: Info, nodes: readonly NodeStatus[], networks: readonly NetworkDetail[], now: Date): DashboardView {
  const sortedNodes = [...nodes].sort((p, q) => p.name.localeCompare(q.name));
  const sortedNetworks = [...networks].sort((p, q) => p.name.localeCompare(q.name));
  const colors = new Map(sortedNetworks.map((n, i) => [n.name, PALETTE[i % PALETTE.length]!]));
  const endpoints = sortedNetworks.flatMap((n) => n.endpoints);
  const perNode = new Map<string, Endpoint[]>();
  for (const e of endpoints) perNode.set(e.node, [...(perNode.get(e.node) ?? []), e]);

  // hosts on a circle; each host's endpoints on a small circle around it
  const centre = SIZE / 2;
  const radius = sortedNodes.length <= 1 ? 0 : SIZE * 0.3;
  const hosts: HostView[] = sortedNodes.map((n, i) => {
    const angle = (2 * Math.PI * i) / Math.max(sortedNodes.length, 1) - Math.PI / 2;
    const behind = Math.max(0, info.revision - n.reconciledRevision);
    return {
      name: n.name,
      address: n.address,
      state: n.state,
      lastSeen: n.lastSeen,
      behind,
      endpoints: perNode.get(n.name)?.length ?? 0,
      health: n.state === 'down' ? 'down' : behind > BEHIND_TOLERANCE ? 'degraded' : 'ok',
      x: round(centre + radius * Math.cos(angle)),
      y: round(centre + radius * Math.sin(angle)),
    };
  });
  const hostByName = new Map(hosts.map((h) => [h.name, h]));
  const endpointViews: EndpointView[] = [];
  hosts.forEach((host, index) => {
    const list = perNode.get(host.name) ?? [];
    // on an arc facing away from the centre, so that dots and labels stay clear of the peering lines
    const outward = (2 * Math.PI * index) / Math.max(hosts.length, 1) - Math.PI / 2;
    const spread = hosts.length <= 1 ? 2 * Math.PI : Math.min(Math.PI * 1.2, (list.length - 1) * 0.9);
    list.forEach((e, i) => {
      const ring = Math.floor(i / 16);
      const angle = hosts.length <= 1 ? (2 * Math.PI * i) / list.length - Math.PI / 2 : outward - spread / 2 + (list.length === 1 ? spread / 2 : (spread * i) / (list.length - 1));
      const r = ENDPOINT_RING + 14 * ring;
      endpointViews.push({
        id: e.id,
        network: e.network,
        node: e.node,
        ip: e.ip,
        mac: e.mac,
        status: e.status,
        ...(e.message !== undefined ? { message: e.message } : {}),
        x: round(host.x + r * Math.cos(angle)),
        y: round(host.y + r * Math.sin(angle)),
        labelX: round(host.x + (r + 30) * Math.cos(angle)),
        labelY: round(host.y + (r + 16) * Math.sin(angle) + 4),
        color: colors.get(e.network)!,
      });
    });
  });

  const peerings: PeeringView[] = [];
  const shared = new Map<string, Set<string>>();
  for (const network of sortedNetworks) {
    const members = [...new Set(network.endpoints.map((e) => e.node))].sort();
    for (let i = 0; i < members.length; i++) {
      for (let j = i + 1; j < members.length; j++) {
        const key = `${members[i]} ${members[j]}`;
        shared.set(key, (shared.get(key) ?? new Set()).add(network.name));
      }
    }
  }
  for (const [key, names] of [...shared].sort(([p], [q]) => p.localeCompare(q))) {
    const [a, b] = key.split(' ') as [string, string];
    const reasons: string[] = [];
    let health: Health = 'ok';
    for (const name of [a, b]) {
      const host = hostByName.get(name);
      if (!host || host.state === 'down') {
        health = 'down';
        reasons.push(`${name} is down`);
      } else if (host.health === 'degraded') {
        if (health === 'ok') health = 'degraded';
        reasons.push(`${name} is ${host.behind} revisions behind`);
      }
    }
    for (const network of sortedNetworks.filter((n) => names.has(n.name) && n.encrypted === true)) {
      for (const t of network.tunnels ?? []) {
        if (((t.from === a && t.to === b) || (t.from === b && t.to === a)) && !t.up) {
          if (health === 'ok') health = 'degraded';
          reasons.push(`the WireGuard tunnel from ${t.from} to ${t.to} has no recent handshake`);
        }
      }
    }
    peerings.push({ a, b, networks: [...names].sort(), health, reason: reasons.length > 0 ? `${[...new Set(reasons)].join('; ')}.` : '' });
  }

  return {
    clusterId: info.clusterId,
    revision: info.revision,
    at: now.toISOString(),
    hosts,
    networks: sortedNetworks.map((n) => ({
      name: n.name,
      vni: n.vni,
      subnets: n.subnets.map((s) => s.cidr),
      endpoints: n.endpoints.length,
      encrypted: n.encrypted === true,
      internal: n.internal,
      color: colors.get(n.name)!,
    })),
    endpoints: endpointViews,
    peerings,
    width: SIZE,
    height: SIZE,
  };
}

const round = (value: number): number => Math.round(value * 10) / 10;
