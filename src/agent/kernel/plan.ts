/**
 * The planner: a pure diff of desired state against the kernel's actual state, producing ordered steps.
 *
 * Why it works this way:
 * - Reconcile, never replay: the same diff serves start-up, restart adoption and every change. Objects
 *   that already match produce no step at all, so an unchanged pass writes nothing.
 * - Devices are "ensured" like flannel does: an existing device whose immutable attributes match (VNI,
 *   port, local, group, learning/proxy) is adopted and mutable ones (mtu, master, up, address) are fixed in
 *   place; otherwise it is deleted and recreated, and the plan says why.
 * - Remote endpoints become one permanent neighbour (IP → MAC, answered locally by the VXLAN device's ARP
 *   proxy so ARP never floods the underlay) and one permanent FDB entry (MAC → VTEP). Permanent entries are
 *   never aged out or garbage-collected by the kernel, so they stay exactly as long as the control plane
 *   wants them. Stale ones are deleted with the same family and flags they were added with (`self`), a
 *   mismatch there is a known source of leaked entries in other overlays.
 * - Entries of a device that goes away (or is recreated) are not deleted one by one: they die with it.
 * - A local endpoint is "present" when its host veth is enslaved to the right bridge, up, with the right
 *   MTU and its peer in another namespace (for a Docker endpoint, handed over, the peer may also still be
 *   here: libnetwork moves it after the plugin's Join; it is kept, never pruned, while its host end is). The last step of setting one up enslaves and raises the host end
 *   in a single netlink message, so this is a reliable "setup completed" mark; it is read from the one link
 *   dump instead of entering every container namespace on every pass. A host veth without that mark is a
 *   setup that did not complete: it is deleted (taking its peer along) and the endpoint set up again.
 * - Desired objects are validated before anything is rendered: a malformed value would stop a whole batch,
 *   so it is rejected with a reason instead, and the rest goes ahead.
 */
import type { DesiredEndpoint, DesiredNetwork, DesiredState } from '../dataplane.ts';
import { deviceNames } from '../dataplane.ts';
import { planEntries, type FdbStep, type NeighbourStep, type Rejected } from './plan-entries.ts';
import type { ActualState, LinkState } from './read.ts';
import { validateEndpoint, validateNetwork } from './validate.ts';

// defined with the entry planner, which makes them; re-exported for the modules that render and apply steps
export type { FdbStep, NeighbourStep, Rejected } from './plan-entries.ts';

/** TTL of multicast VXLAN traffic: enough for a routed underlay, bounded so it cannot leak far. */
export const MULTICAST_TTL = 5;

/** Who a step belongs to, so that a failure can be reported against the right network or endpoint. */
export interface Owner {
  /** bridge name of the network */
  network?: string;
  endpoint?: string;
}

export type LinkStep =
  | ({ op: 'link-del'; name: string; why: string } & Owner)
  // `mac` absent: a bridge inside a network's namespace, which holds no gateway (netns.ts)
  | ({ op: 'bridge-add'; name: string; mac?: string; mtu: number } & Owner)
  | ({
      op: 'vxlan-add';
      name: string;
      vni: number;
      port: number;
      local: string;
      mtu: number;
      group?: string;
      device?: string;
      ttl?: number;
    } & Owner)
  | ({ op: 'link-set'; name: string; mtu?: number; mac?: string; master?: string; up?: boolean } & Owner)
  // moves a device made in the host namespace (a VXLAN device: its socket stays there) into a network's
  | ({ op: 'link-netns'; name: string; netns: string } & Owner)
  // a network's gateway: `name` (host namespace, gateway MAC) paired with `peer`, a port of the bridge in `netns`
  | ({ op: 'gateway-add'; name: string; peer: string; mac: string; mtu: number; netns: string } & Owner)
  // a bridge port's attributes; a separate line, after the one that makes the device a port
  | ({ op: 'port-set'; name: string; learning: boolean } & Owner)
  | ({ op: 'addr-add' | 'addr-del'; dev: string; cidr: string } & Owner);

export type Step = LinkStep | NeighbourStep | FdbStep;

export interface Plan {
  /** one `ip -batch`: deletions, then creations, then attribute fixes, then addresses */
  links: LinkStep[];
  /** one `ip -batch`: deletions, then replacements */
  neighbours: NeighbourStep[];
  /** one `bridge -batch`: deletions, then replacements/appends */
  fdb: FdbStep[];
  endpoints: {
    /** to be set up from scratch (their leftovers, if any, are deleted by `links`) */
    create: DesiredEndpoint[];
    /** present; any in-place fixes are `links` steps owned by the endpoint */
    adopted: string[];
  };
  /** networks whose devices are valid and desired (firewall input) */
  networks: DesiredNetwork[];
  /** valid local endpoints, present or to be created (anti-spoofing input) */
  local: DesiredEndpoint[];
  /** names of objects that belong to rejected networks or endpoints: neither changed nor pruned */
  untouchable: ReadonlySet<string>;
  enableForwarding: boolean;
  rejected: Rejected[];
  /** human-readable reasons for recreations, for the log */
  notes: string[];
}

// ---------------------------------------------------------------------------------------------------------
// diff

/** Why an existing VXLAN device cannot be adopted for `net`, or undefined when it can. */
export function vxlanMismatch(net: DesiredNetwork, link: LinkState, moved = false): string | undefined {
  if (link.kind !== 'vxlan' || !link.vxlan) return `${link.name} is a ${link.kind || 'plain'} device, not a VXLAN device`;
  const a = link.vxlan;
  const differs = (what: string, have: unknown, want: unknown) => `${what} is ${have ?? 'unset'}, want ${want ?? 'unset'}`;
  const reasons: string[] = [];
  if (a.vni !== net.vni) reasons.push(differs('VNI', a.vni, net.vni));
  if (a.port !== net.port) reasons.push(differs('port', a.port, net.port));
  if (a.local !== net.localAddress) reasons.push(differs('local', a.local, net.localAddress));
  if (a.group !== net.multicastGroup) reasons.push(differs('group', a.group, net.multicastGroup));
  if (net.multicastGroup !== undefined) {
    // moved into a network's namespace, the underlay device is an index of the host's namespace, which the
    // dump there names after whatever device has that index inside (or "ifN"): it cannot be compared
    if (a.device !== net.underlayDevice && !moved) reasons.push(differs('dev', a.device, net.underlayDevice));
    if (a.ttl !== MULTICAST_TTL) reasons.push(differs('ttl', a.ttl, MULTICAST_TTL));
  } else if (a.device !== undefined && !moved) {
    reasons.push(differs('dev', a.device, undefined));
  }
  if (a.learning) reasons.push('learning is on, want nolearning');
  if (!a.proxy) reasons.push('proxy is off, want proxy');
  return reasons.length ? `${link.name}: ${reasons.join(', ')}` : undefined;
}


/** The valid networks and endpoints of `desired`; what is not valid is rejected and its devices protected. */
export function validDesired(desired: Pick<DesiredState, 'networks' | 'endpoints'>): {
  networks: DesiredNetwork[];
  endpoints: DesiredEndpoint[];
  rejected: Rejected[];
  protectedNames: Set<string>;
} {
  const rejected: Rejected[] = [];

  // --- validate networks; devices of an invalid network are left alone (neither changed nor pruned)
  const networks: DesiredNetwork[] = [];
  const protectedNames = new Set<string>();
  const seenVni = new Set<number>();
  for (const net of desired.networks) {
    let reason = validateNetwork(net);
    if (!reason && seenVni.has(net.vni)) reason = `VNI ${net.vni} is used by another network on this node`;
    if (reason) {
      rejected.push({ kind: 'network', key: String(net.name), reason });
      if (typeof net.bridge === 'string') protectedNames.add(net.bridge);
      if (typeof net.vxlan === 'string') protectedNames.add(net.vxlan);
      continue;
    }
    seenVni.add(net.vni);
    networks.push(net);
  }
  const byBridge = new Set(networks.map((n) => n.bridge));

  // --- validate endpoints
  const endpoints: DesiredEndpoint[] = [];
  const seenEndpoint = new Set<string>();
  for (const ep of desired.endpoints) {
    let reason = validateEndpoint(ep);
    if (!reason && !byBridge.has(ep.bridge)) reason = `bridge ${ep.bridge} does not belong to a valid network on this node`;
    if (!reason && seenEndpoint.has(ep.hostVeth)) reason = `another endpoint uses host veth ${ep.hostVeth}`;
    if (reason) {
      rejected.push({ kind: 'endpoint', key: String(ep.id), reason });
      if (typeof ep.hostVeth === 'string') protectedNames.add(ep.hostVeth);
      continue;
    }
    seenEndpoint.add(ep.hostVeth);
    endpoints.push(ep);
  }

  return { networks, endpoints, rejected, protectedNames };
}

export interface NamespaceOptions {
  /** the network's namespace: the plan is of its devices (called once per network, netns.ts) */
  name: string;
  /** its gateway port, and whether the host side makes that veth pair (again) in this pass */
  gatewayPort: string;
  gatewayFresh: boolean;
}

/**
 * `entriesSettled`: the caller knows the neighbour and FDB entries are exactly as wanted (see
 * LinuxDataplane: nothing changed them or the wanted lists since a pass that found nothing to do), so
 * they are not diffed again.
 * `namespace`: plan the devices inside one network's namespace (netns.ts): the bridge holds no gateway (its
 * port `gatewayPort` leads to it), and a new VXLAN device is made in the host namespace and moved in.
 */
export function planReconcile(
  desired: DesiredState,
  actual: ActualState,
  options: { entriesSettled?: boolean; namespace?: NamespaceOptions } = {},
): Plan {
  const inside = options.namespace;
  const { networks, endpoints, rejected, protectedNames } = validDesired(desired);
  const notes: string[] = [];
  const byBridge = new Map(networks.map((n) => [n.bridge, n]));
  const byVxlan = new Map(networks.map((n) => [n.vxlan, n]));

  const dels: LinkStep[] = [];
  const adds: LinkStep[] = [];
  const sets: LinkStep[] = [];
  const addrs: LinkStep[] = [];
  const deleted = new Set<string>();
  /** devices created in this pass: they start without entries, addresses or ports */
  const fresh = new Set<string>();
  /** VXLAN devices (made) a port of their bridge in this pass: the bridge's entries for them start empty */
  const remastered = new Set<string>();
  const del = (name: string, why: string, owner: Owner) => {
    if (deleted.has(name)) return;
    deleted.add(name);
    dels.push({ op: 'link-del', name, why, ...owner });
  };

  // --- networks
  for (const net of networks) {
    const owner = { network: net.bridge };
    const br = actual.links.get(net.bridge);
    if (br && br.kind !== 'bridge') {
      notes.push(`recreating ${net.bridge}: it is a ${br.kind || 'plain'} device, not a bridge`);
      del(net.bridge, 'not a bridge', owner);
    }
    if (!br || br.kind !== 'bridge') {
      fresh.add(net.bridge);
      adds.push({ op: 'bridge-add', name: net.bridge, ...(inside ? {} : { mac: net.gatewayMac.toLowerCase() }), mtu: net.mtu, ...owner });
      sets.push({ op: 'link-set', name: net.bridge, up: true, ...owner });
      if (!inside) for (const cidr of net.gatewayAddresses) addrs.push({ op: 'addr-add', dev: net.bridge, cidr, ...owner });
    } else {
      const fix: LinkStep & { op: 'link-set' } = { op: 'link-set', name: net.bridge, ...owner };
      if (br.mtu !== net.mtu) fix.mtu = net.mtu;
      if (!inside && br.mac !== net.gatewayMac.toLowerCase()) fix.mac = net.gatewayMac.toLowerCase();
      if (!br.up) fix.up = true;
      if (fix.mtu !== undefined || fix.mac !== undefined || fix.up) sets.push(fix);
      const want = new Set(inside ? [] : net.gatewayAddresses);
      // IPv6 gateways too (issue 15); link-local addresses are not read, so never pruned
      const held = br.ipv6 ? [...br.ipv4, ...br.ipv6] : br.ipv4;
      for (const cidr of held) if (!want.has(cidr)) addrs.push({ op: 'addr-del', dev: net.bridge, cidr, ...owner });
      const have = new Set(held);
      for (const cidr of want) if (!have.has(cidr)) addrs.push({ op: 'addr-add', dev: net.bridge, cidr, ...owner });
    }

    if (inside) {
      // the gateway's veth pair is made by the host side (netns.ts); here it only joins the bridge
      const port = actual.links.get(inside.gatewayPort);
      if (inside.gatewayFresh || fresh.has(net.bridge) || port?.master !== net.bridge || !port.up) {
        sets.push({ op: 'link-set', name: inside.gatewayPort, master: net.bridge, up: true, ...owner });
      }
    }

    const vx = actual.links.get(net.vxlan);
    const mismatch = vx ? vxlanMismatch(net, vx, inside !== undefined) : undefined;
    if (vx && mismatch) {
      notes.push(`recreating ${mismatch}`);
      del(net.vxlan, mismatch, owner);
    }
    if (!vx || mismatch) {
      fresh.add(net.vxlan);
      const add: LinkStep & { op: 'vxlan-add' } = {
        op: 'vxlan-add',
        name: net.vxlan,
        vni: net.vni,
        port: net.port,
        local: net.localAddress,
        mtu: net.mtu,
        ...owner,
      };
      if (net.multicastGroup !== undefined) {
        add.group = net.multicastGroup;
        add.device = net.underlayDevice!;
        add.ttl = MULTICAST_TTL;
      }
      adds.push(add);
      if (inside) adds.push({ op: 'link-netns', name: net.vxlan, netns: inside.name, ...owner });
      sets.push({ op: 'link-set', name: net.vxlan, master: net.bridge, up: true, ...owner });
      remastered.add(net.vxlan);
    } else {
      const fix: LinkStep & { op: 'link-set' } = { op: 'link-set', name: net.vxlan, ...owner };
      if (vx!.mtu !== net.mtu) fix.mtu = net.mtu;
      if (vx!.master !== net.bridge || fresh.has(net.bridge)) fix.master = net.bridge;
      if (!vx!.up) fix.up = true;
      if (fix.mtu !== undefined || fix.master !== undefined || fix.up) sets.push(fix);
      if (fix.master !== undefined) remastered.add(net.vxlan);
    }
    // No learning on the VXLAN port: remote MACs are known from the control plane (static entries below),
    // so a withdrawn one cannot linger for the ageing time, and no learned MAC churns the entry dump.
    // A new port starts with learning on, so the line follows every enslaving.
    if (remastered.has(net.vxlan) || vx?.learning === true) sets.push({ op: 'port-set', name: net.vxlan, learning: false, ...owner });
  }

  // --- endpoints
  const create: DesiredEndpoint[] = [];
  const adopted: string[] = [];
  const keepVeth = new Set<string>();
  for (const ep of endpoints) {
    const owner = { network: ep.bridge, endpoint: ep.id };
    const host = actual.links.get(ep.hostVeth);
    let redo: string | undefined;
    if (!host) {
      create.push(ep);
      continue;
    }
    if (host.kind !== 'veth') redo = `it is a ${host.kind || 'plain'} device, not a veth`;
    // a handed-over peer is present wherever it is: here until Docker takes it, in the container after
    else if (!host.peerElsewhere && ep.netns !== undefined) redo = 'its peer never left this namespace (setup did not complete)';
    else if (host.mtu !== ep.mtu) redo = `MTU is ${host.mtu}, want ${ep.mtu}`;
    else if (host.master !== ep.bridge && !host.up) redo = 'it was never enslaved and raised (setup did not complete)';
    if (redo) {
      notes.push(`setting up endpoint ${ep.id} again: ${ep.hostVeth}: ${redo}`);
      del(ep.hostVeth, redo, owner);
      create.push(ep);
      continue;
    }
    keepVeth.add(ep.hostVeth);
    adopted.push(ep.id);
    const fix: LinkStep & { op: 'link-set' } = { op: 'link-set', name: ep.hostVeth, ...owner };
    if (host.master !== ep.bridge || fresh.has(ep.bridge)) fix.master = ep.bridge;
    if (!host.up) fix.up = true;
    if (fix.master !== undefined || fix.up) sets.push(fix);
  }

  // --- prune owned links nobody wants
  const wanted = new Set<string>([...byBridge.keys(), ...byVxlan.keys(), ...keepVeth, ...protectedNames, ...(inside ? [inside.gatewayPort] : [])]);
  const stale = [...actual.links.values()].filter((l) => !wanted.has(l.name) && !deleted.has(l.name));
  // host veths first (their peers go with them), then VXLAN devices (their entries go with them), then the rest
  const hostVethPrefix = deviceNames.hostVeth('');
  const rank = (l: LinkState) =>
    l.kind === 'veth' ? (l.name.startsWith(hostVethPrefix) ? 0 : 1) : l.kind === 'vxlan' ? 2 : 3;
  stale.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  for (const link of stale) {
    // a veth whose peer is in this namespace and deleted too vanishes with it
    if (link.kind === 'veth' && link.peer !== undefined && (deleted.has(link.peer) || keepVeth.has(link.peer))) continue;
    del(link.name, 'no longer desired', {});
  }

  // --- entries, only on kept (not fresh, not deleted) VXLAN devices; fresh ones start empty
  const entryDevices = new Set(byVxlan.keys());
  const readable = (dev: string) => entryDevices.has(dev) && !fresh.has(dev);

  const { neighbours, fdb } = options.entriesSettled
    ? { neighbours: [], fdb: [] }
    : planEntries(desired, actual, byVxlan, readable, (dev) => readable(dev) && !remastered.has(dev), protectedNames, rejected);

  return {
    links: [...dels, ...adds, ...sets, ...addrs.filter((s) => s.op === 'addr-del'), ...addrs.filter((s) => s.op === 'addr-add')],
    neighbours,
    fdb,
    endpoints: { create, adopted },
    networks,
    local: endpoints,
    untouchable: protectedNames,
    enableForwarding: networks.length > 0 && !actual.ipForward,
    rejected,
    notes,
  };
}
