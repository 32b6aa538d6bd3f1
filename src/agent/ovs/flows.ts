/**
 * The OpenFlow rules of the OVS data plane, rendered from the same DesiredState the Linux data plane gets.
 * Pure: the flow file is a function of the desired state and the ports that exist, so `ovs-ofctl diff-flows`
 * against the switch tells exactly what differs and a restarted agent changes nothing that is right.
 *
 * Control-plane forwarding, not flood-and-learn (the kernel path's FDB strategy, in OpenFlow):
 *
 *   table 0  ingress. A frame from a container port passes only with that endpoint's MAC and IPv4 (ARP:
 *            sender MAC and address; probes from 0.0.0.0; IPv6 with its MAC), and is tagged with its
 *            network's VNI in reg0. A frame from a network's gateway port is tagged the same way. VXLAN
 *            from a tunnel port passes only from the underlay address of a registered node (the peer
 *            allow-list). Everything else: dropped.
 *   table 1  from the tunnel: by VNI and inner destination MAC to the local port; broadcast and multicast
 *            to the network's local ports. A VNI with no local network, or an unknown MAC: dropped.
 *   table 2  from a local port, by reg0: ARP requests for any address vxnet knows (remote and local
 *            endpoints, gateways) are answered right here (no ARP on the wire); other ARP broadcasts stay
 *            on the host; known unicast goes to its local port, or gets tun_dst (the remote VTEP) and tun_id
 *            (the VNI) and leaves through the network's tunnel port; broadcast and multicast go to the local
 *            ports and to the network's member hosts only (head-end replication). Unknown unicast: dropped.
 *
 * `ovs-ofctl replace-flows` rejects `table=0,` in its input, so table 0's rules carry no table field.
 */
import type { DesiredEndpoint, DesiredNetwork, DesiredState } from '../dataplane.ts';

/** The one OVS bridge vxnet owns on a host: one set of tables for every network, isolated by VNI. */
export const OVS_BRIDGE = 'vxnovs';
/** Marks vxnet's flows (ASCII "vx"); the bridge is vxnet's alone, the cookie makes dumps readable. */
export const FLOW_COOKIE = '0x7678';

/** One tunnel port per UDP port in use (`options:key=flow remote_ip=flow`), shared by all its networks. */
export const tunnelPort = (udpPort: number): string => `vxnt${udpPort}`;

export const TABLE_INGRESS = 0;
export const TABLE_FROM_TUNNEL = 1;
export const TABLE_FROM_LOCAL = 2;

const MULTICAST = '01:00:00:00:00:00/01:00:00:00:00:00';

/**
 * The OpenFlow port number of each port on the bridge, by name. Rules name ports by number: `diff-flows`
 * reads a flow file without asking the switch for its port names, and a rule may only name a port the
 * switch has, or the whole file fails.
 */
export type PresentPorts = ReadonlyMap<string, number>;

/** The flow file for `ovs-ofctl replace-flows`/`diff-flows`: sorted lines, so equal states give equal text. */
export function renderFlows(desired: Pick<DesiredState, 'networks' | 'peers' | 'floods' | 'endpoints' | 'vxlanFilter'>, present: PresentPorts): string[] {
  const lines: string[] = [];
  const n = (name: string): number => present.get(name)!;
  const add = (table: number, priority: number, match: string, actions: string) => {
    const head = table === TABLE_INGRESS ? '' : `table=${table},`;
    lines.push(`${head}cookie=${FLOW_COOKIE},priority=${priority}${match ? `,${match}` : ''},actions=${actions}`);
  };
  for (const table of [TABLE_INGRESS, TABLE_FROM_TUNNEL, TABLE_FROM_LOCAL]) add(table, 0, '', 'drop');

  const networks = desired.networks.filter((n) => supported(n) === undefined && present.has(n.bridge) && present.has(tunnelPort(n.port)));
  const byBridge = new Map(networks.map((n) => [n.bridge, n]));
  const byVxlan = new Map(networks.map((n) => [n.vxlan, n]));
  const locals = groupBy(desired.endpoints.filter((ep) => byBridge.has(ep.bridge) && present.has(ep.hostVeth)), (ep) => ep.bridge);
  const peers = groupBy(desired.peers.filter((p) => byVxlan.has(p.vxlan)), (p) => p.vxlan);
  const floods = groupBy(desired.floods.filter((f) => byVxlan.has(f.vxlan)), (f) => f.vxlan);

  // the peer allow-list, per tunnel port in use
  const ports = [...new Set(networks.map((n) => n.port))];
  for (const port of ports) {
    for (const source of desired.vxlanFilter.allowedSources) {
      add(TABLE_INGRESS, 100, `in_port=${n(tunnelPort(port))},tun_src=${source}`, `resubmit(,${TABLE_FROM_TUNNEL})`);
    }
  }

  for (const net of networks) {
    const tag = `set_field:${net.vni}->reg0,resubmit(,${TABLE_FROM_LOCAL})`;
    const here = locals.get(net.bridge) ?? [];
    const remote = peers.get(net.vxlan) ?? [];
    const tunnel = n(tunnelPort(net.port));

    // table 0: anti-spoofing on container ports, the gateway port
    for (const ep of here) {
      const port = `in_port=${n(ep.hostVeth)},dl_src=${mac(ep.mac)}`;
      const ip = addressOf(ep);
      add(TABLE_INGRESS, 100, `${port},ip,nw_src=${ip}`, tag);
      add(TABLE_INGRESS, 100, `${port},arp,arp_spa=${ip},arp_sha=${mac(ep.mac)}`, tag);
      add(TABLE_INGRESS, 100, `${port},arp,arp_spa=0.0.0.0,arp_sha=${mac(ep.mac)}`, tag);
      add(TABLE_INGRESS, 100, `${port},ipv6`, tag);
    }
    add(TABLE_INGRESS, 100, `in_port=${n(net.bridge)}`, tag);

    // table 1: from the tunnel, isolated by VNI
    const fromTunnel = `in_port=${tunnel},tun_id=${net.vni}`;
    for (const ep of here) add(TABLE_FROM_TUNNEL, 100, `${fromTunnel},dl_dst=${mac(ep.mac)}`, `output:${n(ep.hostVeth)}`);
    const localPorts = [...here.map((ep) => n(ep.hostVeth)), n(net.bridge)];
    add(TABLE_FROM_TUNNEL, 50, `${fromTunnel},dl_dst=${MULTICAST}`, outputs(localPorts));

    // table 2: ARP responder for every address vxnet knows in the network
    const known = new Map<string, string>();
    for (const gw of net.gatewayAddresses) known.set(gw.split('/')[0]!, net.gatewayMac);
    for (const ep of here) known.set(addressOf(ep), ep.mac);
    for (const p of remote) known.set(p.ip, p.mac);
    const reg = `reg0=${net.vni}`;
    for (const [ip, owner] of known) add(TABLE_FROM_LOCAL, 200, `${reg},arp,arp_op=1,arp_tpa=${ip}`, arpReply(ip, owner));
    // an ARP request nobody knows the answer to stays on this host: ARP never goes on the wire
    add(TABLE_FROM_LOCAL, 150, `${reg},arp,dl_dst=${MULTICAST}`, outputs(localPorts));

    // known unicast
    add(TABLE_FROM_LOCAL, 100, `${reg},dl_dst=${mac(net.gatewayMac)}`, `output:${n(net.bridge)}`);
    for (const ep of here) add(TABLE_FROM_LOCAL, 100, `${reg},dl_dst=${mac(ep.mac)}`, `output:${n(ep.hostVeth)}`);
    for (const p of remote) {
      add(TABLE_FROM_LOCAL, 100, `${reg},dl_dst=${mac(p.mac)}`, `set_field:${p.vtep}->tun_dst,set_field:${net.vni}->tun_id,output:${tunnel}`);
    }

    // broadcast and multicast: local ports, then each member host of the network once
    const replicas = (floods.get(net.vxlan) ?? []).map((f) => `set_field:${f.vtep}->tun_dst,output:${tunnel}`);
    const flood = [outputs(localPorts), ...(replicas.length ? [`set_field:${net.vni}->tun_id`, ...replicas] : [])].join(',');
    add(TABLE_FROM_LOCAL, 50, `${reg},dl_dst=${MULTICAST}`, flood);
  }
  return [...new Set(lines)].sort();
}

/** Why the OVS data plane cannot carry this network (undefined: it can). */
export function supported(net: DesiredNetwork): string | undefined {
  if (net.multicastGroup !== undefined) return `network ${net.name}: the OVS data plane replicates broadcast to member hosts and does not join underlay multicast groups`;
  if (net.encrypted) return `network ${net.name}: the OVS data plane does not carry encrypted networks (WireGuard) yet`;
  return undefined;
}

/** An ARP reply built in place from the request and sent back where it came from. */
function arpReply(ip: string, owner: string): string {
  return [
    'move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]',
    `set_field:${mac(owner)}->eth_src`,
    'set_field:2->arp_op',
    'move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]',
    'move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]',
    `set_field:${mac(owner)}->arp_sha`,
    `set_field:${ip}->arp_spa`,
    'IN_PORT',
  ].join(',');
}

function outputs(ports: readonly number[]): string {
  return ports.map((p) => `output:${p}`).join(',');
}

function addressOf(ep: DesiredEndpoint): string {
  return ep.address.split('/')[0]!;
}

function mac(value: string): string {
  return value.toLowerCase();
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

