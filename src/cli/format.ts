/**
 * What the CLI prints: aligned tables for people, the API's JSON for scripts. Pure functions of their
 * input (and of `now` for relative times), tested in-process.
 */
import { endpointAddresses, type Endpoint, type Network, type NetworkDetail, type NodeStatus } from '../core/model.ts';
import { defaultEndpointName } from '../core/names.ts';

const COLUMN_GAP = '   ';

/** A header row and rows, columns padded to the widest cell; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    header
      .map((_, column) => (cells[column] ?? '').padEnd(widths[column]!))
      .join(COLUMN_GAP)
      .trimEnd();
  return [header, ...rows].map(line).join('\n') + '\n';
}

/** Pretty JSON with a final newline. */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function formatNetworkTable(networks: readonly Network[]): string {
  const rows = networks.map((n) => [
    n.name,
    String(n.vni),
    n.subnets.map((s) => s.cidr).join(',') || '-',
    String(n.mtu),
    String(n.port),
    n.internal ? 'yes' : 'no',
    n.multicastGroup ?? '-',
  ]);
  const headers = ['NAME', 'VNI', 'SUBNETS', 'MTU', 'PORT', 'INTERNAL', 'MULTICAST'];
  // the column appears once a network is encrypted, so a cluster without any reads as it always did
  if (!networks.some((n) => n.encrypted === true)) return formatTable(headers, rows);
  return formatTable([...headers, 'ENCRYPTED'], rows.map((row, i) => [...row, networks[i]!.encrypted === true ? 'yes' : 'no']));
}

/** One line for `network create`: name, VNI, subnets with their gateways, MTU. */
export function formatNetworkCreated(network: Network): string {
  const subnets = network.subnets.map((s) => `${s.cidr} (gateway ${s.gateway})`).join(', ');
  const label = network.subnets.length === 1 ? 'subnet' : 'subnets';
  return `created network ${network.name}: vni ${network.vni}, ${label} ${subnets}, mtu ${network.mtu}${network.encrypted ? ', encrypted (WireGuard)' : ''}\n`;
}

/** `network inspect`: always JSON, with the fields in a reading order and multicastGroup always present. */
export function formatNetworkDetail(detail: NetworkDetail): string {
  return formatJson({
    name: detail.name,
    vni: detail.vni,
    subnets: detail.subnets.map((s) => ({ cidr: s.cidr, gateway: s.gateway })),
    mtu: detail.mtu,
    port: detail.port,
    internal: detail.internal,
    multicastGroup: detail.multicastGroup ?? null,
    ...(detail.encrypted ? { encrypted: true } : {}),
    createdAt: detail.createdAt,
    endpoints: detail.endpoints,
    ...(detail.tunnels ? { tunnels: detail.tunnels } : {}),
    ...(detail.implementations ? { implementations: detail.implementations } : {}),
    ...(detail.warnings ? { warnings: detail.warnings } : {}),
  });
}

export function formatNodeTable(nodes: readonly NodeStatus[], now: Date): string {
  const headers = ['NAME', 'ADDRESS', 'MTU', 'STATE', 'LAST-SEEN'];
  const rows = nodes.map((n) => [n.name, n.address, String(n.mtu), n.state, formatLastSeen(n.lastSeen, now)]);
  // the column appears once a node holds a right beyond its own node (`vxnet node update`)
  if (nodes.some((n) => n.allowNetworkCreate === true)) {
    headers.push('RIGHTS');
    rows.forEach((row, i) => row.push(nodes[i]!.allowNetworkCreate === true ? 'network-create' : '-'));
  }
  // and once a node reports WireGuard: which implementation carries its encrypted networks, and its tunnel address
  if (nodes.some((n) => n.wireguard !== undefined)) {
    headers.push('WIREGUARD', 'TUNNEL', 'PEERS-UP');
    rows.forEach((row, i) => {
      const n = nodes[i]!;
      const peers = n.tunnels ? `${n.tunnels.filter((t) => t.up).length}/${n.tunnels.length}` : '-';
      row.push(n.wireguard?.implementation ?? 'none', n.tunnelAddress ?? '-', peers);
    });
  }
  return formatTable(headers, rows);
}

export function formatEndpointTable(endpoints: readonly Endpoint[]): string {
  // DNS names (vxnet issue 12) get a column once any endpoint was given one
  const names = endpoints.some((e) => e.name !== undefined || e.aliases !== undefined);
  return formatTable(
    ['ID', 'NETWORK', 'NODE', 'TARGET', ...(names ? ['NAMES'] : []), 'IFNAME', 'ADDRESS', 'MAC', 'STATUS'],
    endpoints.map((e) => [
      e.id,
      e.network,
      e.node,
      formatEndpointTarget(e),
      ...(names ? [formatEndpointNames(e)] : []),
      e.ifname,
      formatEndpointAddresses(e),
      e.mac,
      e.status === 'error' && e.message ? `error: ${oneLine(e.message)}` : e.status,
    ]),
  );
}

/** "web,api": the name (or the namespace name it answers to without one), then the aliases; "-" for none. */
export function formatEndpointNames(endpoint: Endpoint): string {
  const first = endpoint.name ?? defaultEndpointName(endpoint);
  const all = [...(first !== undefined ? [first] : []), ...(endpoint.aliases ?? [])];
  return all.length > 0 ? all.join(',') : '-';
}

/**
 * Where the interface goes: the namespace path, "container:NAME", or for Docker's endpoints "docker:NAME",
 * the container's name once the node's plugin has told it, "docker:ENDPOINT-ID" (12 characters) until then.
 */
export function formatEndpointTarget(endpoint: Pick<Endpoint, 'netns' | 'container' | 'docker' | 'dockerContainer'>): string {
  if (endpoint.container !== undefined) return `container:${endpoint.container}`;
  if (endpoint.docker !== undefined) return `docker:${endpoint.dockerContainer ?? endpoint.docker.slice(0, 12)}`;
  return endpoint.netns ?? '';
}

/** "192.168.1.2/24" */
export function formatEndpointAddress(endpoint: Pick<Endpoint, 'ip' | 'prefix'>): string {
  return `${endpoint.ip}/${endpoint.prefix}`;
}

/** Every address of an endpoint, comma-joined (IPv4 first): "192.168.1.2/24,fd00:1::2/64" on a dual-stack network. */
export function formatEndpointAddresses(endpoint: Pick<Endpoint, 'ip' | 'prefix' | 'gateway' | 'addresses'>): string {
  return endpointAddresses(endpoint).map(formatEndpointAddress).join(',');
}

/** "never", "just now", "12s ago", "5m ago", "3h ago", "2d ago". */
export function formatLastSeen(lastSeen: string | null, now: Date): string {
  if (lastSeen === null) return 'never';
  const then = Date.parse(lastSeen);
  if (Number.isNaN(then)) return lastSeen;
  const seconds = Math.floor((now.getTime() - then) / 1000);
  if (seconds < 1) return 'just now';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

/** The `vxnet: ...` error line: one line whatever the message holds. */
export function formatError(message: string): string {
  return `vxnet: ${oneLine(message)}\n`;
}

export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/**
 * The API's sentences name its own fields and query parameters (`multicastGroup`, `force`), which is right
 * for an API caller and puzzling at a shell prompt. The CLI rewrites the few that have a flag of another
 * name; everything else reaches the user as the manager wrote it. Each pair: API wording, CLI wording.
 */
const REWRITES: readonly [RegExp, string][] = [
  [/^multicastGroup\b/, '--multicast-group'],
  [/ or use force\.$/, ' or pass --force.'],
];

export function cliWording(message: string): string {
  return REWRITES.reduce((text, [pattern, replacement]) => text.replace(pattern, replacement), message);
}
