/**
 * What the dashboard (`vxnet ui`) shows, computed from the manager's four lists: the cluster at a glance with
 * its problems (the same judgement as `vxnet status`), every host with its endpoints, and every network with
 * the hosts it spans and the health of each host-to-host path in it. Pure: the server polls, this decides.
 */
import { clusterStatus, type ClusterStatus } from '../cli/commands/status.ts';
import type { Endpoint, Info, Network, NodeStatus } from '../core/model.ts';
import { formatEndpointTarget } from '../cli/format.ts';

/**
 * A path between two hosts of a network: `ok` when both are up (and, on an encrypted network, the tunnel
 * between them is up as their agents last reported it); `down` when either host is down; `tunnel-down`
 * when both are up but either reports their WireGuard tunnel down, or neither has reported it yet: the
 * network's frames between them are dropped until it is up (encryption fails closed).
 */
export type PathHealth = 'ok' | 'down' | 'tunnel-down';

export interface DashboardHost {
  name: string;
  address: string;
  state: NodeStatus['state'];
  lastSeen: string | null;
  reconciledRevision: number;
  /** "kernel", "wireguard-go", or absent when the node has no WireGuard */
  wireguard?: string;
  endpoints: { id: string; network: string; ip: string; status: Endpoint['status']; target: string; message?: string }[];
}

export interface DashboardNetwork {
  name: string;
  vni: number;
  subnets: string[];
  encrypted: boolean;
  /** hosts with at least one endpoint in the network, by name */
  hosts: string[];
  endpoints: number;
  paths: { a: string; b: string; health: PathHealth }[];
}

export interface DashboardView {
  status: ClusterStatus;
  hosts: DashboardHost[];
  networks: DashboardNetwork[];
  /** ISO 8601: when the manager was asked */
  at: string;
}

/** On an encrypted network: whether either host reports the tunnel to the other as down. */
function tunnelDown(a: NodeStatus, b: NodeStatus): boolean {
  const reported = [a.tunnels?.find((t) => t.node === b.name), b.tunnels?.find((t) => t.node === a.name)];
  return reported.some((t) => t !== undefined && !t.up) || reported.every((t) => t === undefined);
}

export function dashboardView(info: Info, nodes: readonly NodeStatus[], networks: readonly Network[], endpoints: readonly Endpoint[], now: Date): DashboardView {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const hosts: DashboardHost[] = [...nodes]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((n) => ({
      name: n.name,
      address: n.address,
      state: n.state,
      lastSeen: n.lastSeen,
      reconciledRevision: n.reconciledRevision,
      ...(n.wireguard ? { wireguard: n.wireguard.implementation } : {}),
      endpoints: endpoints
        .filter((ep) => ep.node === n.name)
        .map((ep) => ({
          id: ep.id,
          network: ep.network,
          ip: ep.ip,
          status: ep.status,
          target: formatEndpointTarget(ep),
          ...(ep.message !== undefined ? { message: ep.message } : {}),
        })),
    }));
  const views: DashboardNetwork[] = [...networks]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((network) => {
      const members = endpoints.filter((ep) => ep.network === network.name);
      const names = [...new Set(members.map((ep) => ep.node))].sort();
      const paths: DashboardNetwork['paths'] = [];
      for (let i = 0; i < names.length; i++) {
        for (let j = i + 1; j < names.length; j++) {
          const a = byName.get(names[i]!);
          const b = byName.get(names[j]!);
          const health: PathHealth = !a || !b || a.state !== 'up' || b.state !== 'up' ? 'down' : network.encrypted && tunnelDown(a, b) ? 'tunnel-down' : 'ok';
          paths.push({ a: names[i]!, b: names[j]!, health });
        }
      }
      return {
        name: network.name,
        vni: network.vni,
        subnets: network.subnets.map((s) => s.cidr),
        encrypted: network.encrypted === true,
        hosts: names,
        endpoints: members.length,
        paths,
      };
    });
  return { status: clusterStatus(info, nodes, networks, endpoints, now), hosts, networks: views, at: now.toISOString() };
}
