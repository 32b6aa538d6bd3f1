/**
 * `vxnet trace`: the judgement. A pure function over what the manager says (network, endpoints, nodes) and
 * what both hosts' agents read from their kernels (schema/diagnose.ts), walking the path a packet from one
 * endpoint takes to another — container → veth → bridge → neighbour/FDB entry → VXLAN device → underlay →
 * the peer's allow-list and firewall → VXLAN device → bridge → veth → container — and the entries the reply
 * needs on the way back. Every hop is judged; the first that fails is where the packet would stop.
 *
 * What it cannot see: the container's own namespace (its address and routes are the agent's work and show
 * in the endpoint's status), rules in chains reached by a jump, and whether the underlay carries the
 * datagram at all. `--probe` (probe.ts) answers the last two with a real packet and the kernels' counters.
 */
import { type Endpoint, type Network, type NodeStatus } from '../core/model.ts';
import { vxlanOverheadAt } from '../core/underlay.ts';
import type { DiagnoseReport, LinkReport } from '../core/schema/diagnose.ts';
import { deviceNames } from '../agent/dataplane.ts';
import { hostPortName } from '../agent/host-endpoint.ts';
import { contains, parseCidr, parseIPv4 } from '../core/ipv4.ts';

export type HopStatus = 'ok' | 'fail' | 'warn' | 'unknown';

export interface Hop {
  /** a stable name: agent, endpoint, veth, antispoof, bridge, neighbour, fdb, vxlan, mtu, firewall, underlay, allow-list, return-entry */
  hop: string;
  node: string;
  status: HopStatus;
  /** one sentence */
  detail: string;
}

export interface TraceResult {
  network: string;
  from: { endpoint: string; ip: string; node: string };
  to: { endpoint?: string; ip: string; node?: string };
  /** true when no hop fails */
  ok: boolean;
  /** the first failing hop: where the packet would stop */
  stop?: Hop;
  hops: Hop[];
}

/** A host's report, or why it could not be had (the agent is down, not connected, did not answer). */
export type Reading = { report: DiagnoseReport } | { error: string };

export interface TraceInput {
  network: Network;
  endpoints: readonly Endpoint[];
  nodes: readonly NodeStatus[];
  from: Endpoint;
  /** an endpoint of the network, or an address that may be none */
  to: Endpoint | { ip: string };
  /** the source's node, read */
  source: Reading;
  /** the target's node, read (absent when both are on one node, or the target is no endpoint) */
  target?: Reading;
}

const isEndpoint = (to: TraceInput['to']): to is Endpoint => 'id' in to;

export function judgeTrace(input: TraceInput): TraceResult {
  const { network, from } = input;
  const to = input.to;
  const hops: Hop[] = [];
  const add = (hop: string, node: string, status: HopStatus, detail: string) => hops.push({ hop, node, status, detail });
  const nodeOf = (name: string) => input.nodes.find((n) => n.name === name);
  const bridge = deviceNames.bridge(network.vni);
  const vxlan = deviceNames.vxlan(network.vni);
  const vtepOf = (name: string) => (network.encrypted === true ? nodeOf(name)?.tunnelAddress : nodeOf(name)?.address);

  const a = from.node;
  const ra = readingOn(input.source, a, nodeOf(a), add);
  endpointHop(from, add);
  if (ra) {
    portHops(ra, from, bridge, network, add, true);
    bridgeHop(ra, bridge, network, add);
  }

  const toIp = to.ip;
  const target = isEndpoint(to) ? to : input.endpoints.find((e) => e.network === network.name && e.ip === toIp);
  if (!target) {
    noEndpointHop(network, toIp, a, add);
    return result(input, hops, undefined);
  }
  const b = target.node;
  if (b === a) {
    if (ra) portHops(ra, target, bridge, network, add, false);
    endpointHop(target, add);
    return result(input, hops, target);
  }

  // across the underlay: the source's entries for the target, its VXLAN device, the MTU, its own firewall
  const vtepB = vtepOf(b);
  const vtepA = vtepOf(a);
  if (ra) {
    entryHops(ra, vxlan, target, vtepB, b, 'neighbour', 'fdb', add);
    vxlanHop(ra, vxlan, bridge, network, vtepA, add);
    mtuHop(ra, network, add);
    firewallHops(ra, network, 'out', add);
  }
  const nodeB = nodeOf(b);
  if (nodeB?.state === 'down') add('underlay', b, 'warn', `node ${b} sends no heartbeats (down): its kernel may still forward as programmed, but the manager cannot tell.`);
  else add('underlay', b, 'unknown', `the underlay from ${vtepA ?? a} to ${vtepB ?? b} on UDP ${network.port} cannot be read from a kernel: --probe tests it.`);

  const rb = input.target ? readingOn(input.target, b, nodeB, add) : undefined;
  if (rb) {
    allowListHop(rb, network, vtepA, a, add);
    firewallHops(rb, network, 'in', add);
    vxlanHop(rb, vxlan, bridge, network, vtepB, add);
    mtuHop(rb, network, add);
    bridgeHop(rb, bridge, network, add);
    portHops(rb, target, bridge, network, add, false);
    entryHops(rb, vxlan, from, vtepA, a, 'return-entry', 'return-entry', add);
  }
  endpointHop(target, add);
  return result(input, hops, target);
}

function result(input: TraceInput, hops: Hop[], target: Endpoint | undefined): TraceResult {
  const stop = hops.find((h) => h.status === 'fail');
  return {
    network: input.network.name,
    from: { endpoint: input.from.id, ip: input.from.ip, node: input.from.node },
    to: target ? { endpoint: target.id, ip: target.ip, node: target.node } : { ip: input.to.ip },
    ok: stop === undefined,
    ...(stop ? { stop } : {}),
    hops,
  };
}

type Add = (hop: string, node: string, status: HopStatus, detail: string) => void;

function readingOn(reading: Reading, node: string, status: NodeStatus | undefined, add: Add): DiagnoseReport | undefined {
  if ('error' in reading) {
    const state = status === undefined ? 'is not registered' : status.state === 'down' ? `is down (last heartbeat ${status.lastSeen ?? 'never'})` : 'is up by its last heartbeat';
    add('agent', node, 'fail', `agent down: node ${node} ${state} and its kernel could not be read (${reading.error}); its entries stay as last programmed.`);
    return undefined;
  }
  const errors = reading.report.errors;
  add('agent', node, errors.length > 0 ? 'warn' : 'ok', errors.length > 0 ? `the agent answered, but could not read: ${errors.join('; ')}` : `the agent of ${node} answered (applied revision ${reading.report.reconciledRevision}).`);
  return reading.report;
}

function endpointHop(endpoint: Endpoint, add: Add): void {
  if (endpoint.status === 'ready') add('endpoint', endpoint.node, 'ok', `endpoint ${endpoint.id} (${endpoint.ip}) is ready.`);
  else if (endpoint.status === 'error') add('endpoint', endpoint.node, 'fail', `endpoint ${endpoint.id} failed to be set up: ${endpoint.message ?? 'no reason given'}`);
  else add('endpoint', endpoint.node, 'fail', `endpoint ${endpoint.id} is not set up yet (pending on node ${endpoint.node}).`);
}

const link = (report: DiagnoseReport, name: string): LinkReport | undefined => report.links.find((l) => l.name === name);

/** The host end of an endpoint's veth: present, up, a port of the bridge; and its anti-spoofing elements. */
function portHops(report: DiagnoseReport, endpoint: Endpoint, bridge: string, network: Network, add: Add, sending: boolean): void {
  const node = report.node;
  const name = portOf(endpoint);
  const veth = link(report, name);
  if (!veth) add('veth', node, 'fail', `missing veth: ${name}, the host end of endpoint ${endpoint.id}, does not exist on ${node}.`);
  else if (!veth.up) add('veth', node, 'fail', `veth ${name} of endpoint ${endpoint.id} is down on ${node}.`);
  else if (veth.master !== bridge) add('veth', node, 'fail', `veth ${name} of endpoint ${endpoint.id} is not a port of bridge ${bridge} on ${node} (master: ${veth.master ?? 'none'}).`);
  else if (veth.mtu !== network.mtu) add('veth', node, 'warn', `veth ${name} has MTU ${veth.mtu}, the network ${network.mtu}.`);
  else add('veth', node, 'ok', `veth ${name} is up and a port of ${bridge}.`);
  if (endpoint.host === true) return add('antispoof', node, 'ok', `${name} is the host's own port (vxnet attach --host): the host is not checked.`);
  const mac = `${name} ${endpoint.mac.toLowerCase()}`;
  const ip = `${name} ${endpoint.ip}`;
  const missing = [report.antispoof.macs.includes(mac) ? undefined : `MAC ${endpoint.mac}`, report.antispoof.ips.includes(ip) ? undefined : `address ${endpoint.ip}`].filter(Boolean);
  if (missing.length > 0) {
    add('antispoof', node, 'fail', `anti-spoofing: table bridge vxnet has no element for ${missing.join(' and ')} on ${name}, so ${sending ? 'its frames' : 'its replies'} are dropped.`);
  } else add('antispoof', node, 'ok', `anti-spoofing lets ${endpoint.mac} / ${endpoint.ip} through on ${name}.`);
}

/** The bridge port of an endpoint: the host end of its veth, or for the host's own endpoint its port. */
export function portOf(endpoint: Endpoint): string {
  return endpoint.host === true ? hostPortName(endpoint.id) : deviceNames.hostVeth(endpoint.id);
}

function bridgeHop(report: DiagnoseReport, bridge: string, network: Network, add: Add): void {
  const node = report.node;
  const br = link(report, bridge);
  if (!br) return add('bridge', node, 'fail', `missing bridge: ${bridge} of network ${network.name} does not exist on ${node}.`);
  if (!br.up) return add('bridge', node, 'fail', `bridge ${bridge} is down on ${node}.`);
  const gateways = network.subnets.map((s) => s.gateway).filter((g) => !br.ipv4.some((a) => a.split('/')[0] === g));
  if (gateways.length > 0) return add('bridge', node, 'warn', `bridge ${bridge} on ${node} lacks gateway address ${gateways.join(', ')}: traffic leaving the network stops there.`);
  add('bridge', node, 'ok', `bridge ${bridge} is up with the gateway address.`);
}

/** The neighbour and FDB entries one node needs to send to `endpoint` on node `peer` (VTEP `vtep`). */
function entryHops(report: DiagnoseReport, vxlan: string, endpoint: Endpoint, vtep: string | undefined, peer: string, neighbourHop: string, fdbHop: string, add: Add): void {
  const node = report.node;
  const what = neighbourHop === 'return-entry' ? 'for the reply, ' : '';
  const neighbour = report.neighbours.find((n) => n.dev === vxlan && n.ip === endpoint.ip);
  if (!neighbour) add(neighbourHop, node, 'fail', `missing entry: ${what}no neighbour entry for ${endpoint.ip} on ${vxlan} of ${node}, so ARP for it gets no answer.`);
  else if (neighbour.mac.toLowerCase() !== endpoint.mac.toLowerCase()) add(neighbourHop, node, 'fail', `stale entry: ${what}the neighbour entry on ${node} gives ${endpoint.ip} MAC ${neighbour.mac}, the endpoint has ${endpoint.mac}.`);
  else add(neighbourHop, node, 'ok', `neighbour entry ${endpoint.ip} → ${endpoint.mac} on ${vxlan}.`);
  const fdb = report.fdb.filter((f) => f.dev === vxlan && f.mac.toLowerCase() === endpoint.mac.toLowerCase() && f.dst !== 'bridge');
  if (fdb.length === 0) add(fdbHop, node, 'fail', `missing entry: ${what}no FDB entry for ${endpoint.mac} on ${vxlan} of ${node}, so the frame has no VTEP to go to.`);
  else if (vtep !== undefined && !fdb.some((f) => f.dst === vtep)) add(fdbHop, node, 'fail', `stale VTEP: ${what}the FDB entry for ${endpoint.mac} on ${node} sends to ${fdb.map((f) => f.dst).join(', ')}, but node ${peer} is at ${vtep}.`);
  else add(fdbHop, node, 'ok', `FDB entry ${endpoint.mac} → VTEP ${vtep ?? fdb[0]!.dst} on ${vxlan}.`);
}

function vxlanHop(report: DiagnoseReport, vxlan: string, bridge: string, network: Network, local: string | undefined, add: Add): void {
  const node = report.node;
  const dev = link(report, vxlan);
  if (!dev) return add('vxlan', node, 'fail', `missing VXLAN device: ${vxlan} (VNI ${network.vni}) does not exist on ${node}.`);
  if (!dev.up) return add('vxlan', node, 'fail', `VXLAN device ${vxlan} is down on ${node}.`);
  if (dev.master !== bridge) return add('vxlan', node, 'fail', `VXLAN device ${vxlan} is not a port of ${bridge} on ${node}.`);
  if (dev.vxlan && dev.vxlan.vni !== network.vni) return add('vxlan', node, 'fail', `VXLAN device ${vxlan} on ${node} carries VNI ${dev.vxlan.vni}, the network ${network.vni}.`);
  if (dev.vxlan && dev.vxlan.port !== network.port) return add('vxlan', node, 'fail', `VXLAN device ${vxlan} on ${node} uses UDP port ${dev.vxlan.port}, the network ${network.port}.`);
  if (dev.vxlan && local !== undefined && dev.vxlan.local !== local) return add('vxlan', node, 'fail', `VXLAN device ${vxlan} on ${node} sends from ${dev.vxlan.local ?? 'no address'}, the node's VTEP is ${local}.`);
  add('vxlan', node, 'ok', `VXLAN device ${vxlan} is up, VNI ${network.vni}, UDP ${network.port}.`);
}

/** The network's MTU plus the VXLAN overhead (RFC 7348: 50 bytes over IPv4, 70 over IPv6) must fit the underlay's. */
function mtuHop(report: DiagnoseReport, network: Network, add: Add): void {
  const node = report.node;
  const overhead = vxlanOverheadAt(report.underlay.address);
  const room = report.underlay.mtu - overhead;
  if (network.mtu > room) {
    add('mtu', node, 'fail', `MTU: network ${network.name} has MTU ${network.mtu}, but ${report.underlay.device} on ${node} (MTU ${report.underlay.mtu}) carries at most ${room} after the ${overhead}-byte VXLAN header; larger packets are dropped.`);
  } else add('mtu', node, 'ok', `MTU ${network.mtu} fits the underlay's ${report.underlay.mtu} with the VXLAN header.`);
}

/** A VXLAN datagram from `peer` (VTEP `vtep`) passes table ip vxnet's allow-list on the receiving node. */
function allowListHop(report: DiagnoseReport, network: Network, vtep: string | undefined, peer: string, add: Add): void {
  const node = report.node;
  const fw = report.firewall;
  if (fw.unreadable !== undefined) return add('allow-list', node, 'unknown', `table ip vxnet on ${node} could not be read: ${fw.unreadable}`);
  if (!fw.present) return add('allow-list', node, 'warn', `table ip vxnet is missing on ${node}: no VXLAN peer allow-list (and no isolation) there.`);
  if (network.encrypted === true) return add('allow-list', node, 'ok', 'the network is encrypted: its VXLAN is accepted only from the WireGuard tunnel.');
  if (!fw.ports.includes(network.port)) return add('allow-list', node, 'warn', `UDP ${network.port} is not among the guarded VXLAN ports on ${node}.`);
  if (vtep === undefined || !fw.peers.includes(vtep)) {
    return add('allow-list', node, 'fail', `allow-list: ${vtep ?? peer} (node ${peer}) is not in set vxlan_peers of ${node}, which drops its VXLAN${fw.drops !== undefined ? ` (${fw.drops} dropped so far)` : ''}.`);
  }
  add('allow-list', node, 'ok', `${vtep} (node ${peer}) is in the VXLAN peer allow-list of ${node}.`);
}

/** Other tables' drops on the hooks the datagram crosses: output on the sender, input (and before) on the receiver. */
function firewallHops(report: DiagnoseReport, network: Network, direction: 'in' | 'out', add: Add): void {
  const node = report.node;
  const hooks = direction === 'in' ? ['ingress', 'prerouting', 'input'] : ['output', 'postrouting'];
  const where = (d: DiagnoseReport['foreignDrops'][number]) => `table ${d.family} ${d.table} chain ${d.chain} (hook ${d.hook}): ${d.rule}`;
  let worst: HopStatus = 'ok';
  const found: string[] = [];
  for (const drop of report.foreignDrops) {
    if (drop.family === 'bridge' || drop.family === 'arp') continue;
    if (hooks.includes(drop.hook)) {
      const port = drop.udpPort === undefined || drop.udpPort === network.port;
      if (!port) continue;
      const status: HopStatus = drop.narrowed || drop.rule === 'policy drop' ? 'warn' : 'fail';
      if (status === 'fail' || worst === 'ok') worst = status;
      found.push(where(drop));
    }
  }
  if (found.length === 0) return add('firewall', node, 'ok', `no other table on ${node} drops ${direction === 'in' ? 'incoming' : 'outgoing'} VXLAN on UDP ${network.port}.`);
  const verdict = worst === 'fail' ? 'firewall: drops' : 'firewall: may drop';
  add('firewall', node, worst, `${verdict} ${direction === 'in' ? 'incoming' : 'outgoing'} VXLAN on ${node}: ${found.join('; ')}.`);
}

function noEndpointHop(network: Network, ip: string, node: string, add: Add): void {
  const subnet = network.subnets.find((s) => inSubnet(ip, s.cidr));
  if (network.subnets.some((s) => s.gateway === ip)) return add('bridge', node, 'ok', `${ip} is the gateway: the packet ends on the bridge of ${node} (the host).`);
  if (subnet) return add('neighbour', node, 'fail', `no endpoint of network ${network.name} has address ${ip}: ARP for it gets no answer.`);
  if (network.internal) return add('bridge', node, 'fail', `${ip} is outside network ${network.name}, which is internal: nothing leaves it.`);
  add('bridge', node, 'ok', `${ip} is outside network ${network.name}: the packet leaves through the gateway of ${node}, masqueraded (not traced further).`);
}

function inSubnet(ip: string, cidr: string): boolean {
  const address = parseIPv4(ip);
  const subnet = parseCidr(cidr);
  return address !== undefined && subnet !== undefined && contains(subnet, address);
}
