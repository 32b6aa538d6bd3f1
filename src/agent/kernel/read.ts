/**
 * Reading the kernel's actual state: pure parsers from iproute2/nftables `-j` JSON into typed state, and
 * the reader that runs the dumps.
 *
 * One pass reads everything it needs once, in parallel:
 *   ip -j -d addr show              links with their kind/attributes AND their addresses (one dump, not two)
 *   ip -j neigh show nud permanent  the permanent neighbours (the only kind vxnet programs)
 *   bridge -j fdb show state static      the VXLAN devices' permanent and the bridges' static FDB entries
 *   nft -j list table ip vxnet      the installed firewall's version marker
 *   nft -j list table bridge vxnet  the anti-spoofing rules' marker and the endpoints in its sets
 * and keeps only what vxnet owns (`vxn*` devices, entries on `vxnv*` devices). The state filters matter
 * for speed: iproute2 only prints (and we only parse) the matching entries, so a bridge that has learned
 * thousands of MACs does not slow the read down.
 */
import { OWNED_NFT_TABLE, OWNED_PREFIX } from '../dataplane.ts';
import { readAntispoof, type AntispoofState } from './antispoof.ts';
import { FIREWALL6_MARKER, firewall6Matches } from './ipv6-firewall.ts';
import { listOwnedTable } from './nftables.ts';
import type { Runner } from './exec.ts';
import { UNDERLAY6_TABLE } from './underlay6.ts';

export interface VxlanAttributes {
  vni: number;
  port: number;
  local?: string;
  group?: string;
  /** underlay device (`dev`), shown as "link" */
  device?: string;
  ttl: number;
  learning: boolean;
  proxy: boolean;
}

export interface LinkState {
  name: string;
  /** ifindex: changes when a device is deleted and created again under the same name */
  index: number;
  /** linkinfo kind ("bridge", "vxlan", "veth", ...) or "" for plain devices */
  kind: string;
  mtu: number;
  /** administratively up */
  up: boolean;
  master?: string;
  mac: string;
  /** veth only: the peer is in another namespace (`link_netnsid` present) */
  peerElsewhere: boolean;
  /** veth only: name of the peer when it is in this namespace */
  peer?: string;
  /** a bridge port only: whether the bridge learns source MACs on it */
  learning?: boolean;
  vxlan?: VxlanAttributes;
  /** IPv4 addresses with prefix length, e.g. "192.168.1.1/24" */
  ipv4: string[];
  /** global IPv6 addresses with prefix length, e.g. "fd00:1::1/64" (link-local ones are the kernel's own) */
  ipv6?: string[];
}

export interface NeighbourEntry {
  dev: string;
  ip: string;
  mac: string;
}

export interface FdbEntry {
  dev: string;
  mac: string;
  /** the VTEP of a `self` entry, or BRIDGE_ENTRY for the bridge's static (`master`) entry on the device */
  dst: string;
}

/**
 * The `dst` of the bridge's own static entry for a MAC behind a VXLAN port: such an entry has no VTEP (the
 * port is where the bridge sends the frame; the VXLAN device's `self` entry then picks the VTEP).
 */
export const BRIDGE_ENTRY = 'bridge';

export interface FirewallState {
  present: boolean;
  /** the rules hash found in the installed table, if any */
  hash?: string;
  /** the hash of table ip6 vxnet that its marker rule names: the host has IPv6 networks (ipv6-firewall.ts) */
  hash6?: string;
  /**
   * Set when the table could not be read (nft missing, nf_tables not usable): the state is unknown, the
   * data plane tries to install the table and, failing that, fails closed (linux-dataplane.ts).
   */
  unreadable?: string;
  /** table ip6 vxnet_underlay (underlay6.ts), read over an IPv6 underlay only; absent: not read */
  underlay6?: { present: boolean; hash?: string };
}

export interface ActualState {
  /** owned links by name */
  links: Map<string, LinkState>;
  /** permanent neighbours on owned VXLAN devices */
  neighbours: NeighbourEntry[];
  /** permanent `self` FDB entries with a destination on owned VXLAN devices */
  fdb: FdbEntry[];
  firewall: FirewallState;
  /** table bridge vxnet (antispoof.ts); absent: not read, it is written whole */
  antispoof?: AntispoofState;
  ipForward: boolean;
}

export const isOwnedName = (name: string): boolean => name.startsWith(OWNED_PREFIX);
export const isOwnedVxlanName = (name: string): boolean => name.startsWith(`${OWNED_PREFIX}v`);

type Json = Record<string, unknown>;

function parseArray(text: string, what: string): Json[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const value: unknown = JSON.parse(trimmed);
  if (!Array.isArray(value)) throw new Error(`${what}: expected a JSON array`);
  return value.filter((item): item is Json => typeof item === 'object' && item !== null);
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const num = (value: unknown): number | undefined => (typeof value === 'number' ? value : undefined);

/** `ip -j -d addr show` (or `ip -j -d link show`, then without addresses) → every link in the namespace. */
export function parseLinks(text: string): LinkState[] {
  return parseArray(text, 'ip -j -d addr show').flatMap((item): LinkState[] => {
    const name = str(item.ifname);
    if (!name) return [];
    const flags = Array.isArray(item.flags) ? item.flags : [];
    const linkinfo = (item.linkinfo ?? {}) as Json;
    const kind = str(linkinfo.info_kind) ?? '';
    const link: LinkState = {
      name,
      index: num(item.ifindex) ?? 0,
      kind,
      mtu: num(item.mtu) ?? 0,
      up: flags.includes('UP'),
      mac: (str(item.address) ?? '').toLowerCase(),
      peerElsewhere: kind === 'veth' && item.link_netnsid !== undefined,
      ipv4: [],
    };
    const master = str(item.master);
    if (master) link.master = master;
    const port = (linkinfo.info_slave_data ?? {}) as Json;
    if (linkinfo.info_slave_kind === 'bridge' && typeof port.learning === 'boolean') link.learning = port.learning;
    if (kind === 'veth' && item.link_netnsid === undefined) {
      const peer = str(item.link);
      if (peer) link.peer = peer;
    }
    if (kind === 'vxlan') {
      const data = (linkinfo.info_data ?? {}) as Json;
      const vxlan: VxlanAttributes = {
        vni: num(data.id) ?? -1,
        port: num(data.port) ?? -1,
        ttl: num(data.ttl) ?? 0,
        learning: data.learning === true,
        proxy: data.proxy === true,
      };
      // over an IPv6 underlay iproute2 names them local6 and group6
      const local = str(data.local) ?? str(data.local6);
      const group = str(data.group) ?? str(data.group6);
      const device = str(data.link);
      if (local) vxlan.local = local;
      if (group) vxlan.group = group;
      if (device) vxlan.device = device;
      link.vxlan = vxlan;
    }
    const addrs = Array.isArray(item.addr_info) ? (item.addr_info as Json[]) : [];
    for (const addr of addrs) {
      const local = str(addr.local);
      const prefix = num(addr.prefixlen);
      if (addr.family === 'inet' && local && prefix !== undefined) link.ipv4.push(`${local}/${prefix}`);
      if (addr.family === 'inet6' && addr.scope === 'global' && local && prefix !== undefined) (link.ipv6 ??= []).push(`${local}/${prefix}`);
    }
    return [link];
  });
}

/** `ip -j neigh show [nud permanent]` → permanent entries with a link-layer address. */
export function parseNeighbours(text: string): NeighbourEntry[] {
  return parseArray(text, 'ip -j neigh show').flatMap((item): NeighbourEntry[] => {
    const dev = str(item.dev);
    const ip = str(item.dst);
    const mac = str(item.lladdr);
    const state = Array.isArray(item.state) ? item.state : [];
    if (!dev || !ip || !mac || !state.includes('PERMANENT')) return [];
    return [{ dev, ip, mac: mac.toLowerCase() }];
  });
}

/**
 * `bridge -j fdb show [state static]` → the device's own (`self`) permanent entries that have a `dst`, and
 * the bridge's static (`master`) entries (dst BRIDGE_ENTRY). Learned and local entries are not vxnet's.
 */
export function parseFdb(text: string): FdbEntry[] {
  return parseArray(text, 'bridge -j fdb show').flatMap((item): FdbEntry[] => {
    const dev = str(item.ifname);
    const mac = str(item.mac);
    const dst = str(item.dst);
    const flags = Array.isArray(item.flags) ? item.flags : [];
    if (!dev || !mac) return [];
    if (dst && flags.includes('self') && item.state === 'permanent') return [{ dev, mac: mac.toLowerCase(), dst }];
    if (!dst && !flags.includes('self') && str(item.master) && item.state === 'static') return [{ dev, mac: mac.toLowerCase(), dst: BRIDGE_ENTRY }];
    return [];
  });
}

/** The comment that carries the hash of vxnet's rendered rules (see nftables.ts). */
export const FIREWALL_MARKER = /^vxnet rules sha256:([0-9a-f]{16})$/;

/**
 * `nft -j list table ip vxnet` → whether the table exists and which rules hash it carries. The hash is
 * looked for in the table's comment (printed by newer nft) and in rule comments (nft 1.0.6 omits table
 * and chain comments from JSON but keeps rule comments).
 */
export function parseFirewall(text: string): FirewallState {
  const value: unknown = JSON.parse(text);
  const items = (value as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new Error('nft -j list table: expected {"nftables": [...]}');
  let present = false;
  let hash: string | undefined;
  let hash6: string | undefined;
  for (const item of items as Json[]) {
    const table = item.table as Json | undefined;
    if (table && table.family === 'ip' && table.name === OWNED_NFT_TABLE) {
      present = true;
      const match = FIREWALL_MARKER.exec(str(table.comment) ?? '');
      if (match) hash ??= match[1];
    }
    const rule = item.rule as Json | undefined;
    if (rule && rule.table === OWNED_NFT_TABLE) {
      const match = FIREWALL_MARKER.exec(str(rule.comment) ?? '');
      if (match) hash ??= match[1];
      const six = FIREWALL6_MARKER.exec(str(rule.comment) ?? '');
      if (six) hash6 ??= six[1];
    }
  }
  const state: FirewallState = hash === undefined ? { present } : { present, hash };
  if (hash6 !== undefined) state.hash6 = hash6;
  return state;
}

export async function readLinks(run: Runner, signal?: AbortSignal): Promise<LinkState[]> {
  const result = await run.run(['ip', '-j', '-d', 'addr', 'show'], { signal });
  return parseLinks(result.stdout);
}

export async function readNeighbours(run: Runner, signal?: AbortSignal): Promise<NeighbourEntry[]> {
  const result = await run.run(['ip', '-j', 'neigh', 'show', 'nud', 'permanent'], { signal });
  return parseNeighbours(result.stdout).filter((entry) => isOwnedVxlanName(entry.dev));
}

export async function readFdb(run: Runner, signal?: AbortSignal): Promise<FdbEntry[]> {
  // NUD_NOARP: the `self permanent` entries (NOARP|PERMANENT) and the bridge's static ones, not the
  // learned ones nor the bridge's local (PERMANENT only) ones, however many there are
  const result = await run.run(['bridge', '-j', 'fdb', 'show', 'state', 'static'], { signal });
  return parseFdb(result.stdout).filter((entry) => isOwnedVxlanName(entry.dev));
}

/**
 * Reads the installed firewall. A failure to read it does not fail the pass (that would leave pending
 * endpoints without a reason): it comes back as `unreadable`, and applying the table decides.
 */
export async function readFirewall(run: Runner, signal?: AbortSignal): Promise<FirewallState> {
  const listed = await listOwnedTable(run, 'ip', signal);
  if ('json' in listed) return parseFirewall(listed.json);
  return 'absent' in listed ? { present: false } : { present: false, unreadable: listed.unreadable };
}

/**
 * `nft -j list chain ip vxnet vxlan_input` → packets dropped by the VXLAN peer filter since the table was
 * last replaced; undefined when the chain holds no counter.
 */
export function parseVxlanFilterDrops(text: string): number | undefined {
  const value: unknown = JSON.parse(text);
  const items = (value as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new Error('nft -j list chain: expected {"nftables": [...]}');
  let drops: number | undefined;
  for (const item of items as Json[]) {
    const rule = item.rule as Json | undefined;
    if (!rule || !Array.isArray(rule.expr)) continue;
    const exprs = rule.expr as Json[];
    const counter = exprs.find((e) => e.counter !== undefined)?.counter as Json | undefined;
    if (counter && exprs.some((e) => 'drop' in e)) drops = (drops ?? 0) + (num(counter.packets) ?? 0);
  }
  return drops;
}

export const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/** Neighbour and FDB entries of owned VXLAN devices: the two large dumps. */
export interface EntryState {
  neighbours: NeighbourEntry[];
  fdb: FdbEntry[];
}

export async function readEntries(run: Runner, signal?: AbortSignal): Promise<EntryState> {
  const [neighbours, fdb] = await Promise.all([readNeighbours(run, signal), readFdb(run, signal)]);
  return { neighbours, fdb };
}

/** What one pass knows of vxnet's two nftables tables. */
export interface TablesState {
  firewall: FirewallState;
  antispoof: AntispoofState;
}

/** `underlay6`: this node's underlay is IPv6, so table ip6 vxnet_underlay is read as well (underlay6.ts). */
export async function readTables(run: Runner, signal?: AbortSignal, underlay6 = false): Promise<TablesState> {
  const [read, antispoof, six] = await Promise.all([
    readFirewall(run, signal),
    readAntispoof(run, signal),
    underlay6 ? readUnderlay6(run, signal) : undefined,
  ]);
  const firewall =
    six === undefined ? read : typeof six === 'string' ? { ...read, unreadable: read.unreadable ?? six } : { ...read, underlay6: six };
  // a host with IPv6 networks also checks their table; one that differs makes both be written again
  if (firewall.hash6 !== undefined && !(await firewall6Matches(run, firewall.hash6, signal))) {
    const { hash: _outdated, ...rest } = firewall;
    return { firewall: rest, antispoof };
  }
  return { firewall, antispoof };
}

/** `nft -j list table ip6 vxnet_underlay` → whether it exists and its rules hash; a string: why it could not be read. */
async function readUnderlay6(run: Runner, signal?: AbortSignal): Promise<{ present: boolean; hash?: string } | string> {
  const argv = ['nft', '-j', 'list', 'table', 'ip6', UNDERLAY6_TABLE];
  let result;
  try {
    result = await run.run(argv, { signal, allowFailure: true });
  } catch (err) {
    if (signal?.aborted) throw err;
    return err instanceof Error ? err.message : String(err);
  }
  if (result.code !== 0) {
    if (/No such file or directory/.test(result.stderr)) return { present: false };
    return `${argv.join(' ')} failed (exit ${result.code}): ${result.stderr.trim().split('\n')[0] || 'no error output'}`;
  }
  return parseUnderlay6(result.stdout);
}

/** Pure: `nft -j list table ip6 vxnet_underlay` → presence and the rules hash its accept rule carries. */
export function parseUnderlay6(text: string): { present: boolean; hash?: string } {
  const items = (JSON.parse(text) as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new Error('nft -j list table: expected {"nftables": [...]}');
  let present = false;
  let hash: string | undefined;
  for (const item of items as Json[]) {
    const table = item.table as Json | undefined;
    if (table && table.family === 'ip6' && table.name === UNDERLAY6_TABLE) present = true;
    const rule = item.rule as Json | undefined;
    if (rule && rule.family === 'ip6' && rule.table === UNDERLAY6_TABLE) hash ??= FIREWALL_MARKER.exec(str(rule.comment) ?? '')?.[1];
  }
  return hash === undefined ? { present } : { present, hash };
}

/** The owned links of the runner's namespace, by name. */
export async function readOwnedLinks(run: Runner, signal?: AbortSignal): Promise<Map<string, LinkState>> {
  return new Map((await readLinks(run, signal)).filter((link) => isOwnedName(link.name)).map((link) => [link.name, link]));
}

/**
 * Everything but the entries: owned links, the two tables, IPv4 forwarding. `tables`: the tables as known
 * without reading them (table-cache.ts), or their read already under way; `links` likewise (link-cache.ts).
 */
export async function readBase(
  run: Runner,
  signal?: AbortSignal,
  tables: TablesState | Promise<TablesState> = readTables(run, signal),
  links: Promise<ReadonlyMap<string, LinkState>> = readOwnedLinks(run, signal),
): Promise<Omit<ActualState, keyof EntryState>> {
  const [owned, { firewall, antispoof }, forward] = await Promise.all([links, tables, run.readFile(IP_FORWARD)]);
  return {
    links: new Map(owned), // a copy: a kept read (link-cache.ts) must stay as read
    firewall,
    antispoof,
    ipForward: forward?.trim() === '1',
  };
}

/** Everything one pass needs, read once and in parallel. */
export async function readActualState(run: Runner, signal?: AbortSignal): Promise<ActualState> {
  const [base, entries] = await Promise.all([readBase(run, signal), readEntries(run, signal)]);
  return { ...base, ...entries };
}
