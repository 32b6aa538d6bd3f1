/**
 * The entry half of the planner: permanent neighbours, the VXLAN device's own (`self`) FDB entries, the
 * bridge's static (`master`) FDB entries and the flood entries, diffed against the dump (see plan.ts for
 * why each exists). The static entries stand in for what the bridge would otherwise learn on the VXLAN
 * port (learning is off there): without them every frame to a remote MAC would flood to every local port. Also the indexes used to find where a stopped entry batch failed.
 */
import type { DesiredNetwork, DesiredState } from '../dataplane.ts';
import { BRIDGE_ENTRY, type ActualState, type FdbEntry } from './read.ts';
import { isVtep, validatePeer, ZERO_MAC } from './validate.ts';

export type NeighbourStep =
  | { op: 'neigh-replace'; dev: string; ip: string; mac: string }
  | { op: 'neigh-del'; dev: string; ip: string };

export type FdbStep =
  | { op: 'fdb-replace'; dev: string; mac: string; dst: string }
  | { op: 'fdb-append'; dev: string; mac: string; dst: string }
  | { op: 'fdb-del'; dev: string; mac: string; dst: string }
  // the bridge's static entry for a remote MAC on the VXLAN port (dst BRIDGE_ENTRY)
  | { op: 'fdb-static'; dev: string; mac: string; dst: typeof BRIDGE_ENTRY }
  | { op: 'fdb-static-del'; dev: string; mac: string; dst: typeof BRIDGE_ENTRY };

export interface Rejected {
  kind: 'network' | 'peer' | 'flood' | 'endpoint';
  /** network name, endpoint id, or "vxlan ip" / "vxlan vtep" for entries */
  key: string;
  reason: string;
}

const key = (a: string, b: string): string => `${a} ${b}`;

interface Slot<T> {
  have: T | undefined;
  want: string | undefined;
}

function inner<T>(outer: Map<string, Map<string, T>>, dev: string): Map<string, T> {
  let map = outer.get(dev);
  if (!map) outer.set(dev, (map = new Map()));
  return map;
}

/**
 * Neighbour and FDB steps. One map per device and table, keyed by the plain IP/MAC strings of the dump,
 * holding both what the kernel has and what is wanted: a no-change pass over tens of thousands of entries
 * costs one insert and one lookup per entry, nothing more.
 */
export function planEntries(
  desired: DesiredState,
  actual: ActualState,
  byVxlan: ReadonlyMap<string, DesiredNetwork>,
  readable: (dev: string) => boolean,
  /** whether the bridge's entries on this VXLAN port are as dumped (not when it was made a port this pass) */
  bridgeReadable: (dev: string) => boolean,
  protectedNames: ReadonlySet<string>,
  rejected: Rejected[],
): { neighbours: NeighbourStep[]; fdb: FdbStep[] } {
  const neigh = new Map<string, Map<string, Slot<string>>>();
  const macs = new Map<string, Map<string, Slot<string[]>>>();
  const floods = new Map<string, { have: Set<string>; want: Set<string> }>();
  /** the bridge's static entries on each VXLAN port: MAC → whether it is wanted */
  const statics = new Map<string, Map<string, boolean>>();
  const floodsOf = (dev: string) => {
    let entry = floods.get(dev);
    if (!entry) floods.set(dev, (entry = { have: new Set(), want: new Set() }));
    return entry;
  };

  for (const entry of actual.neighbours) {
    if (readable(entry.dev)) inner(neigh, entry.dev).set(entry.ip, { have: entry.mac, want: undefined });
  }
  for (const entry of actual.fdb) {
    if (entry.dst === BRIDGE_ENTRY) {
      if (bridgeReadable(entry.dev)) inner(statics, entry.dev).set(entry.mac, false);
      continue;
    }
    if (!readable(entry.dev)) continue;
    if (entry.mac === ZERO_MAC) {
      // the default destination a multicast device creates for its group belongs to the device itself
      if (entry.dst !== byVxlan.get(entry.dev)?.multicastGroup) floodsOf(entry.dev).have.add(entry.dst);
      continue;
    }
    const table = inner(macs, entry.dev);
    const slot = table.get(entry.mac);
    if (slot) slot.have!.push(entry.dst);
    else table.set(entry.mac, { have: [entry.dst], want: undefined });
  }

  const fdbStatic: FdbStep[] = [];
  const unknownDevice = (dev: unknown) => `VXLAN device ${dev} does not belong to a valid network on this node`;
  for (const peer of desired.peers) {
    if (!byVxlan.has(peer.vxlan)) {
      if (!protectedNames.has(peer.vxlan)) rejected.push({ kind: 'peer', key: key(String(peer.vxlan), String(peer.ip)), reason: unknownDevice(peer.vxlan) });
      continue;
    }
    const reason = validatePeer(peer);
    if (reason) {
      rejected.push({ kind: 'peer', key: key(peer.vxlan, String(peer.ip)), reason });
      continue;
    }
    // two peers claiming one IP or MAC (a transient state of the control plane): the first one wins
    const mac = peer.mac.toLowerCase();
    const ips = inner(neigh, peer.vxlan);
    const n = ips.get(peer.ip);
    if (!n) ips.set(peer.ip, { have: undefined, want: mac });
    else n.want ??= mac;
    const table = inner(macs, peer.vxlan);
    const f = table.get(mac);
    if (!f) table.set(mac, { have: undefined, want: peer.vtep });
    else f.want ??= peer.vtep;
    const bridged = inner(statics, peer.vxlan);
    if (bridged.has(mac)) bridged.set(mac, true);
    else {
      bridged.set(mac, true);
      fdbStatic.push({ op: 'fdb-static', dev: peer.vxlan, mac, dst: BRIDGE_ENTRY });
    }
  }
  for (const flood of desired.floods) {
    if (!byVxlan.has(flood.vxlan)) {
      if (!protectedNames.has(flood.vxlan)) rejected.push({ kind: 'flood', key: key(String(flood.vxlan), String(flood.vtep)), reason: unknownDevice(flood.vxlan) });
      continue;
    }
    if (!isVtep(flood.vtep)) {
      rejected.push({ kind: 'flood', key: key(flood.vxlan, String(flood.vtep)), reason: `VTEP ${JSON.stringify(flood.vtep)} is not an IPv4 or IPv6 address` });
      continue;
    }
    floodsOf(flood.vxlan).want.add(flood.vtep);
  }

  // deletions first, then additions
  const neighDel: NeighbourStep[] = [];
  const neighSet: NeighbourStep[] = [];
  for (const [dev, ips] of neigh) {
    for (const [ip, slot] of ips) {
      if (slot.want === undefined) neighDel.push({ op: 'neigh-del', dev, ip });
      else if (slot.have !== slot.want) neighSet.push({ op: 'neigh-replace', dev, ip, mac: slot.want });
    }
  }
  const fdbDel: FdbStep[] = [];
  const fdbSet: FdbStep[] = [];
  for (const [dev, table] of macs) {
    for (const [mac, slot] of table) {
      const have = slot.have ?? [];
      if (slot.want === undefined) {
        for (const dst of have) fdbDel.push({ op: 'fdb-del', dev, mac, dst });
      } else if (have.includes(slot.want)) {
        for (const dst of have) if (dst !== slot.want) fdbDel.push({ op: 'fdb-del', dev, mac, dst });
      } else {
        // `replace` rewrites the first destination in place (no window without an entry); drop the others
        fdbSet.push({ op: 'fdb-replace', dev, mac, dst: slot.want });
        for (const dst of have.slice(1)) fdbDel.push({ op: 'fdb-del', dev, mac, dst });
      }
    }
  }
  for (const [dev, { have, want }] of floods) {
    for (const dst of have) if (!want.has(dst)) fdbDel.push({ op: 'fdb-del', dev, mac: ZERO_MAC, dst });
    for (const dst of want) if (!have.has(dst)) fdbSet.push({ op: 'fdb-append', dev, mac: ZERO_MAC, dst });
  }
  for (const [dev, table] of statics) {
    for (const [mac, wanted] of table) if (!wanted) fdbDel.push({ op: 'fdb-static-del', dev, mac, dst: BRIDGE_ENTRY });
  }
  // the VXLAN device's entry (where the frame goes) before the bridge's (that it goes to the VXLAN port)
  return { neighbours: neighDel.concat(neighSet), fdb: fdbDel.concat(fdbSet, fdbStatic) };
}

/** Values by device, then by a second key (IP or MAC). */
export class ByDevice<V> {
  readonly #devices = new Map<string, Map<string, V>>();
  get(dev: string, k: string): V | undefined {
    return this.#devices.get(dev)?.get(k);
  }
  has(dev: string, k: string): boolean {
    return this.#devices.get(dev)?.has(k) ?? false;
  }
  set(dev: string, k: string, value: V): void {
    let inner = this.#devices.get(dev);
    if (!inner) this.#devices.set(dev, (inner = new Map()));
    inner.set(k, value);
  }
  *values(): IterableIterator<V> {
    for (const inner of this.#devices.values()) yield* inner.values();
  }
  *entries(): IterableIterator<[string, string, V]> {
    for (const [dev, inner] of this.#devices) for (const [k, value] of inner) yield [dev, k, value];
  }
}

/** Whether a step's effect is visible in freshly read entries (used to find where a stopped batch failed). */
export function entryInEffect(step: NeighbourStep | FdbStep, neighbours: ByDevice<string>, fdb: ByDevice<Set<string>>): boolean {
  switch (step.op) {
    case 'neigh-replace':
      return neighbours.get(step.dev, step.ip) === step.mac;
    case 'neigh-del':
      return !neighbours.has(step.dev, step.ip);
    case 'fdb-replace':
    case 'fdb-append':
    case 'fdb-static':
      return fdb.get(step.dev, step.mac)?.has(step.dst) ?? false;
    case 'fdb-del':
    case 'fdb-static-del':
      return !(fdb.get(step.dev, step.mac)?.has(step.dst) ?? false);
  }
}

export function indexNeighbours(entries: readonly { dev: string; ip: string; mac: string }[]): ByDevice<string> {
  const index = new ByDevice<string>();
  for (const e of entries) index.set(e.dev, e.ip, e.mac);
  return index;
}

export function indexFdb(entries: readonly FdbEntry[]): ByDevice<Set<string>> {
  const index = new ByDevice<Set<string>>();
  for (const e of entries) {
    const set = index.get(e.dev, e.mac);
    if (set) set.add(e.dst);
    else index.set(e.dev, e.mac, new Set([e.dst]));
  }
  return index;
}
