/**
 * A network namespace per network (docs/architecture.md, "A namespace per network"): the bridge, the VXLAN
 * device, the containers' host-side veth ends, their anti-spoofing table and the remote endpoints' entries
 * live in namespace PREFIX<VNI>; the host namespace keeps the gateway (veth `vxnb<VNI>`, paired with the
 * bridge's port `vxng<VNI>`) and the VXLAN device's socket (the device is made there and moved).
 *
 * Why a namespace of its own: bridged frames then meet no hook of the host (br_netfilter walks the host's
 * iptables and conntrack for every bridged frame where an engine like Docker turned it on, and a bridge in
 * the host namespace cannot opt out: see "Forwarding path of a frame"). Why the gateway stays in the host
 * namespace: egress NAT, isolation between networks, DNS on the gateways and Docker's and CNI's hand-over
 * keep working there unchanged; only traffic leaving a network pays the second veth hop.
 *
 * This module holds the pure parts (names, the host side's plan) and the reads; linux-netns.ts applies.
 * Each namespace is read with one process per kind of state (links, neighbours, FDB, anti-spoofing table),
 * so a pass costs per network, never per endpoint; the links, entries and the table are kept between passes
 * while a monitor inside the namespace vouches for them (LinuxDataplane), so a settled network costs no read.
 */
import { deviceNames, type DesiredEndpoint, type DesiredFlood, type DesiredNetwork, type DesiredPeer, type DesiredState } from '../dataplane.ts';
import { readAntispoof, type AntispoofState } from './antispoof.ts';
import type { Runner } from './exec.ts';
import type { LinkStep } from './plan.ts';
import { readEntries, readOwnedLinks, type EntryState, type FdbEntry, type LinkState, type NeighbourEntry } from './read.ts';

/** Where `ip netns add` pins namespaces (iproute2's NETNS_RUN_DIR): `ip -n NAME` finds them there. */
export const NETNS_RUN_DIR = '/run/netns';
export const DEFAULT_NETNS_PREFIX = 'vxnet-';

export const netnsPath = (name: string): string => `${NETNS_RUN_DIR}/${name}`;
export const networkNamespace = (prefix: string, vni: number): string => `${prefix}${vni}`;

/**
 * Set once in a new network namespace. br_netfilter's switches off: no rule is registered there, and with
 * them on every bridged frame would still be prepared for the IP hooks (`-e`: absent without the module).
 * IPv6 forwarding on, as the host's is with IPv6 networks: the namespace's own devices (bridge, gateway
 * port, VXLAN device, which keeps IPv6 for the neighbour proxy) then send no router solicitations, which
 * would otherwise cross the tunnel.
 */
export const NETNS_SYSCTLS = [
  'net.bridge.bridge-nf-call-iptables=0',
  'net.bridge.bridge-nf-call-ip6tables=0',
  'net.bridge.bridge-nf-call-arptables=0',
  'net.ipv6.conf.all.forwarding=1',
  'net.ipv6.conf.default.forwarding=1',
  // no IPv6 of their own on the devices made here (they would send MLD reports across the tunnel); the VXLAN
  // device of a network with IPv6 gets it back (linux-netns.ts): its neighbour proxy needs it
  'net.ipv6.conf.default.disable_ipv6=1',
];

/** What one network's namespace holds of vxnet's. */
export interface NamespaceState {
  name: string;
  vni: number;
  links: ReadonlyMap<string, LinkState>;
  neighbours: NeighbourEntry[];
  fdb: FdbEntry[];
  antispoof: AntispoofState;
}

/**
 * A Runner whose tools act inside namespace `name`: `ip -n` and `bridge -n` (no extra process), anything else
 * (and a watched tool such as `nft monitor`, and reading a file) under `nsenter --net`; files are not written.
 */
export function inNamespace(run: Runner, name: string): Runner {
  return {
    run: (argv, options) =>
      run.run(argv[0] === 'ip' || argv[0] === 'bridge' ? [argv[0], '-n', name, ...argv.slice(1)] : ['nsenter', `--net=${netnsPath(name)}`, ...argv], options),
    ...(run.watch ? { watch: (argv: readonly string[], onLine: Parameters<NonNullable<Runner['watch']>>[1]) => run.watch!(['nsenter', `--net=${netnsPath(name)}`, ...argv], onLine) } : {}),
    // /proc/net and /proc/sys/net show the reading process's namespace: read by a process inside
    readFile: async (path) => {
      const read = await run.run(['nsenter', `--net=${netnsPath(name)}`, 'cat', path], { allowFailure: true });
      return read.code === 0 ? read.stdout : undefined;
    },
    writeFile: () => Promise.reject(new Error(`files of namespace ${name} are not writable from here`)),
    exists: (path) => run.exists(path),
    ...(run.listDir ? { listDir: (path: string) => run.listDir!(path) } : {}),
  };
}

/** Pure: `ip -j netns list` → the namespaces named PREFIX<VNI>, by VNI. */
export function parseNamespaces(text: string, prefix: string): Map<number, string> {
  const trimmed = text.trim();
  const items: unknown = trimmed === '' ? [] : JSON.parse(trimmed);
  if (!Array.isArray(items)) return new Map();
  return namespacesByVni(items.map((item: { name?: unknown } | null) => item?.name).filter((name) => typeof name === 'string'), prefix);
}

/** Pure: of the namespace names (as /run/netns lists them), those named PREFIX<VNI>, by VNI. */
export function namespacesByVni(names: readonly string[], prefix: string): Map<number, string> {
  const found = new Map<number, string>();
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    if (/^[1-9]\d{0,7}$/.test(rest)) found.set(Number(rest), name);
  }
  return found;
}

/** The agent's network namespaces: the folder read directly where the runner can (no process), else `ip netns list`. */
async function listNamespaces(run: Runner, prefix: string, signal?: AbortSignal): Promise<Map<number, string>> {
  if (run.listDir) return namespacesByVni((await run.listDir(NETNS_RUN_DIR)) ?? [], prefix);
  const listed = await run.run(['ip', '-j', 'netns', 'list'], { signal });
  return parseNamespaces(listed.stdout, prefix);
}

/**
 * How a pass knows what it keeps between passes per namespace (the data plane keeps both while a monitor
 * inside the namespace vouches for them, as for the host's tables and entries); default: read them.
 */
export interface NamespaceReaders {
  /** the namespace's owned links (link-cache.ts) */
  links?: (name: string, inside: Runner) => Promise<ReadonlyMap<string, LinkState>>;
  antispoof?: (name: string, inside: Runner) => Promise<AntispoofState>;
  /** the namespace's entries, given its links as read in the same pass */
  entries?: (name: string, inside: Runner, links: Promise<ReadonlyMap<string, LinkState>>) => Promise<EntryState>;
}

/** Every network namespace of this agent (PREFIX<VNI>) with what it holds, read in parallel. */
export async function readNamespaces(run: Runner, prefix: string, signal?: AbortSignal, readers: NamespaceReaders = {}): Promise<Map<number, NamespaceState>> {
  const names = await listNamespaces(run, prefix, signal);
  const states = await Promise.all(
    [...names].map(async ([vni, name]): Promise<NamespaceState> => {
      const inside = inNamespace(run, name);
      const links = readers.links ? readers.links(name, inside) : readOwnedLinks(inside, signal);
      const [have, entries, table] = await Promise.all([
        links,
        readers.entries ? readers.entries(name, inside, links) : readEntries(inside, signal),
        readers.antispoof ? readers.antispoof(name, inside) : readAntispoof(inside, signal),
      ]);
      return { name, vni, links: have, ...entries, antispoof: table };
    }),
  );
  return new Map(states.map((s) => [s.vni, s]));
}

/**
 * Pure: the part of `desired` that belongs to each network (its peers, floods and endpoints), by bridge, in
 * one walk over the lists (one filter per network would cost networks × peers). The lists keep the order and
 * the very objects of `desired`, so that a network whose peers did not change gets the same items again.
 */
export function desiredPerNetwork(desired: DesiredState): Map<string, DesiredState> {
  type Part = DesiredState & { peers: DesiredPeer[]; floods: DesiredFlood[]; endpoints: DesiredEndpoint[] };
  const parts = new Map<string, Part>();
  const byVxlan = new Map<string, Part>();
  for (const net of desired.networks) {
    const part: Part = { networks: [net], peers: [], floods: [], endpoints: [], vxlanFilter: desired.vxlanFilter };
    parts.set(net.bridge, part);
    byVxlan.set(net.vxlan, part);
  }
  for (const peer of desired.peers) byVxlan.get(peer.vxlan)?.peers.push(peer);
  for (const flood of desired.floods) byVxlan.get(flood.vxlan)?.floods.push(flood);
  for (const ep of desired.endpoints) parts.get(ep.bridge)?.endpoints.push(ep);
  return parts;
}

/**
 * Pure: the host namespace's side of the networks: per network the gateway veth `vxnb<VNI>` (gateway MAC,
 * MTU, addresses, up) paired with `vxng<VNI>` in the network's namespace; everything else vxnet-owned in the
 * host namespace that nobody wants is deleted (the devices of the layout without namespaces, for one), except
 * the container ends Docker has not taken yet (`keep`). `gatewayFresh`: the bridges whose pair is made now.
 */
export function planHost(
  networks: readonly DesiredNetwork[],
  hostLinks: ReadonlyMap<string, LinkState>,
  spaces: ReadonlyMap<number, NamespaceState>,
  prefix: string,
  keep: ReadonlySet<string>,
): { steps: LinkStep[]; gatewayFresh: Set<string>; notes: string[] } {
  const dels: LinkStep[] = [];
  const adds: LinkStep[] = [];
  const addrs: LinkStep[] = [];
  const notes: string[] = [];
  const gatewayFresh = new Set<string>();
  const wanted = new Set(keep);
  for (const net of networks) {
    const owner = { network: net.bridge };
    const name = net.bridge;
    const peer = deviceNames.gatewayPort(net.vni);
    const mac = net.gatewayMac.toLowerCase();
    wanted.add(name);
    const have = hostLinks.get(name);
    const port = spaces.get(net.vni)?.links.get(peer);
    let redo: string | undefined;
    if (have && have.kind !== 'veth') redo = `${name} is a ${have.kind || 'plain'} device, not the gateway's veth`;
    else if (have && (!have.peerElsewhere || port === undefined)) redo = `${name}'s peer is not ${peer} in ${networkNamespace(prefix, net.vni)}`;
    if (redo) {
      notes.push(`recreating the gateway of ${net.name}: ${redo}`);
      dels.push({ op: 'link-del', name, why: redo, ...owner });
    }
    if (!have || redo) {
      gatewayFresh.add(net.bridge);
      adds.push({ op: 'gateway-add', name, peer, mac, mtu: net.mtu, netns: networkNamespace(prefix, net.vni), ...owner });
      adds.push({ op: 'link-set', name, up: true, ...owner });
      for (const cidr of net.gatewayAddresses) addrs.push({ op: 'addr-add', dev: name, cidr, ...owner });
      continue;
    }
    const fix: LinkStep & { op: 'link-set' } = { op: 'link-set', name, ...owner };
    if (have.mtu !== net.mtu) fix.mtu = net.mtu;
    if (have.mac !== mac) fix.mac = mac;
    if (!have.up) fix.up = true;
    if (fix.mtu !== undefined || fix.mac !== undefined || fix.up) adds.push(fix);
    const want = new Set(net.gatewayAddresses);
    const held = have.ipv6 ? [...have.ipv4, ...have.ipv6] : have.ipv4;
    for (const cidr of held) if (!want.has(cidr)) addrs.push({ op: 'addr-del', dev: name, cidr, ...owner });
    const present = new Set(held);
    for (const cidr of want) if (!present.has(cidr)) addrs.push({ op: 'addr-add', dev: name, cidr, ...owner });
  }
  const stale = [...hostLinks.values()].filter((l) => !wanted.has(l.name)).sort((a, b) => a.name.localeCompare(b.name));
  const deleted = new Set<string>();
  for (const link of stale) {
    // a veth whose peer is here and deleted too vanishes with it
    if (link.kind === 'veth' && link.peer !== undefined && deleted.has(link.peer)) continue;
    deleted.add(link.name);
    dels.push({ op: 'link-del', name: link.name, why: 'no longer desired (or left by the layout without namespaces)' });
  }
  return {
    steps: [...dels, ...adds, ...addrs.filter((s) => s.op === 'addr-del'), ...addrs.filter((s) => s.op === 'addr-add')],
    gatewayFresh,
    notes,
  };
}
