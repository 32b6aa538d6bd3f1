/**
 * What the OVS data plane reads back and how it decides what to change there: the ports of vxnet's bridge
 * (OVSDB, through `ovs-vsctl --format=json`), the internal gateway ports as the kernel sees them
 * (`ip -j addr`), and the OVSDB commands that bring the ports to the desired state. Parsers and planners
 * are pure and tested on real output (test/unit/ovs-state.test.ts).
 */
import { OWNED_PREFIX, type DesiredEndpoint, type DesiredNetwork } from '../dataplane.ts';
import { OVS_BRIDGE, tunnelPort } from './flows.ts';

/** One interface of vxnet's bridge as OVSDB holds it. */
export interface OvsInterface {
  readonly name: string;
  readonly type: string;
  readonly options: Readonly<Record<string, string>>;
  /** OpenFlow port number; absent while ovs-vswitchd has not (or could not) set the port up */
  readonly ofport?: number;
  readonly endpoint?: string;
}

export interface OvsState {
  /** whether vxnet's bridge exists, and its datapath type ("" when the default) */
  readonly bridge: { present: false } | { present: true; datapathType: string };
  /** interfaces of ports on vxnet's bridge, by name */
  readonly interfaces: ReadonlyMap<string, OvsInterface>;
}

/** A gateway port (or any vxn* link) as `ip -j addr show` reports it. */
export interface KernelLink {
  readonly name: string;
  readonly mac: string;
  readonly mtu: number;
  readonly up: boolean;
  /** "192.168.1.1/24" */
  readonly addresses: readonly string[];
}

type OvsdbValue = string | number | boolean | [string, unknown];

/** `ovs-vsctl --format=json list TABLE` → rows as objects, OVSDB's ["map", ...] and ["set", ...] unwrapped. */
export function parseOvsdbTable(text: string): Record<string, unknown>[] {
  const parsed = JSON.parse(text) as { headings?: string[]; data?: OvsdbValue[][] };
  if (!Array.isArray(parsed.headings) || !Array.isArray(parsed.data)) throw new Error('ovs-vsctl --format=json: expected {"headings": [...], "data": [...]}');
  return parsed.data.map((row) => Object.fromEntries(parsed.headings!.map((h, i) => [h, unwrap(row[i])])));
}

function unwrap(value: OvsdbValue | undefined): unknown {
  if (!Array.isArray(value)) return value;
  const [kind, inner] = value;
  if (kind === 'map') return Object.fromEntries((inner as [unknown, unknown][]).map(([k, v]) => [String(unwrap(k as OvsdbValue)), String(unwrap(v as OvsdbValue))]));
  if (kind === 'set') return (inner as OvsdbValue[]).map(unwrap);
  if (kind === 'uuid' || kind === 'named-uuid') return String(inner);
  return value;
}

/**
 * The bridge row (`list Bridge`, columns name, datapath_type, ports), the port rows (`list Port`: _uuid,
 * interfaces) and the interface rows (`list Interface`: _uuid, name, type, options, ofport, external_ids) → the
 * state of vxnet's bridge.
 */
export function parseOvsState(bridges: string, ports: string, interfaces: string): OvsState {
  const bridge = parseOvsdbTable(bridges).find((row) => row['name'] === OVS_BRIDGE);
  if (!bridge) return { bridge: { present: false }, interfaces: new Map() };
  const portIds = new Set(asList(bridge['ports']));
  const ifaceIds = new Set(parseOvsdbTable(ports).filter((row) => portIds.has(String(row['_uuid']))).flatMap((row) => asList(row['interfaces'])));
  const out = new Map<string, OvsInterface>();
  for (const row of parseOvsdbTable(interfaces)) {
    if (!ifaceIds.has(String(row['_uuid']))) continue;
    const name = String(row['name']);
    const ids = (row['external_ids'] ?? {}) as Record<string, string>;
    const ofport = row['ofport'];
    out.set(name, {
      name,
      type: String(row['type'] ?? ''),
      ...(typeof ofport === 'number' && ofport > 0 ? { ofport } : {}),
      options: (row['options'] ?? {}) as Record<string, string>,
      ...(ids['vxnet-endpoint'] ? { endpoint: ids['vxnet-endpoint'] } : {}),
    });
  }
  return { bridge: { present: true, datapathType: String(bridge['datapath_type'] ?? '') }, interfaces: out };
}

/** A single uuid or a set of them, as `unwrap` leaves it. */
function asList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  return value === undefined ? [] : [String(value)];
}

/** `ip -j addr show` → the links whose names start with vxn. */
export function parseKernelLinks(text: string): Map<string, KernelLink> {
  const out = new Map<string, KernelLink>();
  const rows = JSON.parse(text) as { ifname: string; address?: string; mtu: number; flags?: string[]; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
  for (const row of rows) {
    if (!row.ifname.startsWith(OWNED_PREFIX)) continue;
    out.set(row.ifname, {
      name: row.ifname,
      mac: (row.address ?? '').toLowerCase(),
      mtu: row.mtu,
      up: (row.flags ?? []).includes('UP'),
      addresses: (row.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    });
  }
  return out;
}

/** The tunnel port's interface settings: the remote and the key come from each flow (`set_field`). */
export function tunnelOptions(udpPort: number): Record<string, string> {
  return { remote_ip: 'flow', key: 'flow', dst_port: String(udpPort) };
}

export interface PortPlan {
  /** one `ovs-vsctl` transaction (argv after the tool and its --db): bridge, tunnel and gateway ports */
  readonly ensure: string[][];
  /** ports to delete once the flows no longer name them */
  readonly remove: string[];
  /** local endpoints whose port and veth are in place */
  readonly ready: DesiredEndpoint[];
  /** local endpoints to set up (a stale host veth of theirs, if any, goes first) */
  readonly create: DesiredEndpoint[];
  /** host veths to delete before those are created again (an earlier attempt that did not finish) */
  readonly staleVeths: string[];
}

/**
 * What to change in OVSDB. An endpoint is ready when its port is on the bridge, marked with its id, and its
 * host veth exists; everything vxnet owns on the bridge that nobody wants is removed. Nothing here is
 * changed in place unless it differs, so a pass over a correct bridge plans nothing.
 */
export function planPorts(
  networks: readonly DesiredNetwork[],
  endpoints: readonly DesiredEndpoint[],
  actual: OvsState,
  links: ReadonlyMap<string, KernelLink>,
  datapathType: string,
): PortPlan {
  const ensure: string[][] = [];
  if (!actual.bridge.present) {
    ensure.push(['add-br', OVS_BRIDGE], ['set', 'bridge', OVS_BRIDGE, `datapath_type=${datapathType}`, 'fail_mode=secure', 'protocols=OpenFlow10,OpenFlow14']);
  } else if (actual.bridge.datapathType !== datapathType) {
    ensure.push(['set', 'bridge', OVS_BRIDGE, `datapath_type=${datapathType}`]);
  }
  // the bridge's own (local) port carries its name
  const wanted = new Set<string>([OVS_BRIDGE]);
  for (const port of [...new Set(networks.map((n) => n.port))].sort((a, b) => a - b)) {
    const name = tunnelPort(port);
    wanted.add(name);
    const have = actual.interfaces.get(name);
    const options = tunnelOptions(port);
    const same = have?.type === 'vxlan' && Object.keys(options).every((k) => have.options[k] === options[k]) && Object.keys(have.options).length === 3;
    if (same) continue;
    // an existing port with other options: cleared and set in the same transaction
    ensure.push(have ? ['clear', 'interface', name, 'options'] : ['add-port', OVS_BRIDGE, name]);
    ensure.push(['set', 'interface', name, 'type=vxlan', ...Object.entries(options).map(([k, v]) => `options:${k}=${v}`)]);
  }
  for (const net of networks) {
    wanted.add(net.bridge);
    const have = actual.interfaces.get(net.bridge);
    if (have?.type === 'internal') continue;
    if (!have) ensure.push(['add-port', OVS_BRIDGE, net.bridge]);
    ensure.push(['set', 'interface', net.bridge, 'type=internal']);
  }
  const ready: DesiredEndpoint[] = [];
  const create: DesiredEndpoint[] = [];
  const staleVeths: string[] = [];
  for (const ep of endpoints) {
    wanted.add(ep.hostVeth);
    const port = actual.interfaces.get(ep.hostVeth);
    if (port?.endpoint === ep.id && links.has(ep.hostVeth)) {
      ready.push(ep);
      continue;
    }
    create.push(ep);
    if (links.has(ep.hostVeth)) staleVeths.push(ep.hostVeth);
  }
  const remove = [...actual.interfaces.keys()].filter((name) => name.startsWith(OWNED_PREFIX) && !wanted.has(name)).sort();
  return { ensure, remove, ready, create, staleVeths };
}

/** `ip -batch` lines that give each network's gateway port its MAC, MTU, addresses and the up state. */
export function planGatewayPorts(networks: readonly DesiredNetwork[], links: ReadonlyMap<string, KernelLink>): string[] {
  const lines: string[] = [];
  for (const net of networks) {
    const link = links.get(net.bridge);
    const mac = net.gatewayMac.toLowerCase();
    if (!link || link.mac !== mac || link.mtu !== net.mtu || !link.up) lines.push(`link set dev ${net.bridge} address ${mac} mtu ${net.mtu} up`);
    const have = new Set(link?.addresses ?? []);
    for (const address of net.gatewayAddresses) if (!have.has(address)) lines.push(`addr add ${address} dev ${net.bridge}`);
    const want = new Set(net.gatewayAddresses);
    for (const address of have) if (!want.has(address)) lines.push(`addr del ${address} dev ${net.bridge}`);
  }
  return lines;
}

/** The OpenFlow port numbers of the bridge's ports that have one. */
export function portNumbers(state: OvsState): Map<string, number> {
  const out = new Map<string, number>();
  for (const iface of state.interfaces.values()) if (iface.ofport !== undefined) out.set(iface.name, iface.ofport);
  return out;
}
