/**
 * Host endpoints (`vxnet attach NET --node N --host`): the node itself gets an address on a network, so that
 * its own processes reach the network's containers on every host. Set up beside the data plane, after each
 * pass (the pass has made the network's bridge: a host endpoint counts as a local endpoint there, and remote
 * nodes program their entries for it like for any endpoint).
 *
 * How, and why this way:
 * - A veth pair: `vxhp<id>` is a port of the network's bridge, `vxh<VNI>` (the endpoint's ifname) stays in
 *   the host namespace with the endpoint's MAC and address. Remote containers' replies reach it as they
 *   reach any endpoint: their proxy answers ARP with its MAC, their FDB sends it to this node's VTEP, and the
 *   bridge delivers it to the port where it learned the MAC.
 * - The bridge already holds the network's gateway address and its subnet route. The host's own traffic to
 *   the network must leave through `vxh<VNI>` instead (from the gateway address it would reach local
 *   containers only: every node's bridge answers for the gateway). So the address is added without its
 *   prefix route, and the subnet is routed through `vxh<VNI>` in table HOST_TABLE, looked up (rule `iif lo`)
 *   for the host's own packets only: forwarded traffic (containers' NAT return, routing between subnets)
 *   keeps using the bridge, untouched.
 * - Isolation: the host namespace forwards (ip_forward is on for masquerade), and vxnet's forward rules name
 *   bridges; a container could otherwise send to `vxh<VNI>`'s MAC to be routed into another network. Table
 *   `ip vxnethost` (its own, so vxnet's table is never edited) drops anything forwarded from or to a `vxh`
 *   interface and anything that arrives there for an address other than its own. `arp_ignore 1` keeps it
 *   from answering ARP for the host's other addresses.
 * - Anti-spoofing is untouched: `vxhp*` ports are not container ports, and the host is trusted anyway.
 * - With a namespace per network (kernel/netns.ts) the port `vxhp<id>` is made in the network's namespace,
 *   where the bridge is; `vxh<VNI>` stays here. The host namespace's route to the subnet is then on the
 *   gateway's veth, which leads to the same bridge, so nothing else changes.
 * Owned names start with `vxh`; what no host endpoint of this node wants is removed.
 */
import { messageOf } from '../core/errors.ts';
import { contains, formatIPv4, parseCidr, parseIPv4 } from '../core/ipv4.ts';
import type { Endpoint, EndpointStatusRequest } from '../core/model.ts';
import { deviceNames } from './dataplane.ts';
import type { Runner } from './kernel/exec.ts';
import { inNamespace } from './kernel/netns.ts';
import { parseLinks } from './kernel/read.ts';
import type { ClusterView } from './view.ts';

/** the routing table and rule priority of host endpoints' routes (before main, 32766) */
export const HOST_TABLE = 4789;
export const HOST_RULE_PRIORITY = 4789;
export const HOST_NFT_TABLE = 'vxnethost';
export const hostPortName = (id: string) => `vxhp${id.slice(0, 10)}`;
const HOST_IFNAME = /^vxh\d+$/;

export interface HostEndpointOptions {
  run: Runner;
  self: { name: string };
  setEndpointStatus(id: string, req: EndpointStatusRequest, signal?: AbortSignal): Promise<void>;
  log: (line: string) => void;
  /** the namespace of network VNI's bridge (kernel/netns.ts); absent: bridges are in this namespace */
  networkNamespace?: (vni: number) => string;
}

/** Pure: the two halves of a subnet, more specific than its route on the bridge ("192.168.1.0/24" → /25s). */
export function subnetHalves(cidr: string): string[] {
  const parsed = parseCidr(cidr);
  if (!parsed || parsed.prefix >= 32) return [];
  const half = 2 ** (32 - parsed.prefix - 1);
  return [`${formatIPv4(parsed.network)}/${parsed.prefix + 1}`, `${formatIPv4(parsed.network + half)}/${parsed.prefix + 1}`];
}

/** Pure: table ip vxnethost for these endpoints (docs above), replaced whole by one `nft -f -`. */
export function renderHostTable(endpoints: readonly { ifname: string; ip: string }[]): string {
  const input = endpoints.map((e) => `\t\tiifname "${e.ifname}" ip daddr != ${e.ip} drop`);
  return [
    `table ip ${HOST_NFT_TABLE}`,
    `delete table ip ${HOST_NFT_TABLE}`,
    `table ip ${HOST_NFT_TABLE} {`,
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter - 10; policy accept;',
    '\t\tiifname "vxh*" drop',
    '\t\toifname "vxh*" drop',
    '\t}',
    '\tchain input {',
    '\t\ttype filter hook input priority filter - 10; policy accept;',
    ...input,
    '\t}',
    '}',
    '',
  ].join('\n');
}

export class HostEndpoints {
  readonly #o: HostEndpointOptions;
  /** endpoint id → what was last reported for it ("ready" or the error) */
  readonly #reported = new Map<string, string>();
  #table = '';
  /** the last pass found no host endpoint and nothing of theirs: until one is wanted, nothing is read */
  #clean = false;

  constructor(options: HostEndpointOptions) {
    this.#o = options;
  }

  /** Makes the kernel hold exactly this node's host endpoints of `view`; reports each one's status once. */
  async reconcile(view: ClusterView, signal?: AbortSignal): Promise<void> {
    const { run } = this.#o;
    const wanted = [...view.endpoints.values()].filter((e) => e.node === this.#o.self.name && e.host === true && HOST_IFNAME.test(e.ifname));
    if (wanted.length === 0 && this.#clean) return;
    let links;
    try {
      links = new Map(parseLinks((await run.run(['ip', '-j', '-d', 'addr', 'show'], { signal })).stdout).map((l) => [l.name, l]));
    } catch (err) {
      this.#o.log(`warning: host endpoints: cannot read links: ${messageOf(err)}`);
      return;
    }
    // what no endpoint wants goes first (deleting the host side removes the pair and its routes)
    const keep = new Set(wanted.flatMap((e) => [e.ifname, hostPortName(e.id)]));
    for (const name of links.keys()) {
      if (/^vxh(p|\d)/.test(name) && !keep.has(name)) await run.run(['ip', 'link', 'del', 'dev', name], { signal, allowFailure: true });
    }
    // the isolation rules go in before any host interface exists or is reported ready
    await this.#ensureTable(wanted, signal);
    const ready: Endpoint[] = [];
    for (const e of wanted) {
      try {
        await this.#ensure(e, view, links, signal);
        ready.push(e);
        await this.#report(e, 'ready', signal);
      } catch (err) {
        await this.#report(e, messageOf(err), signal);
      }
    }
    await this.#ensureRule(ready.length > 0, signal);
    for (const id of this.#reported.keys()) if (!wanted.some((e) => e.id === id)) this.#reported.delete(id);
    this.#clean = wanted.length === 0;
  }

  async #ensure(e: Endpoint, view: ClusterView, links: Map<string, ReturnType<typeof parseLinks>[number]>, signal?: AbortSignal): Promise<void> {
    const network = view.networks.get(e.network);
    if (!network) throw new Error(`network ${e.network} is not known here yet`);
    const bridge = deviceNames.bridge(network.vni);
    const ns = this.#o.networkNamespace?.(network.vni);
    const bridgeSide = ns === undefined ? links : await this.#links(inNamespace(this.#o.run, ns), signal);
    if (!bridgeSide.has(bridge)) throw new Error(`bridge ${bridge} of network ${e.network} does not exist yet`);
    const port = hostPortName(e.id);
    const host = links.get(e.ifname);
    const address = `${e.ip}/${e.prefix}`;
    const complete =
      host && bridgeSide.get(port)?.master === bridge && bridgeSide.get(port)?.up && host.up && host.mac === e.mac.toLowerCase() && host.ipv4.includes(address);
    const ip = parseIPv4(e.ip);
    const subnet = network.subnets.find((s) => {
      const c = parseCidr(s.cidr);
      return c !== undefined && ip !== undefined && contains(c, ip);
    })?.cidr;
    const lines: string[] = [];
    if (!complete) {
      if (host || links.has(port)) await this.#o.run.run(['ip', 'link', 'del', 'dev', host ? e.ifname : port], { signal, allowFailure: true });
      if (ns !== undefined && bridgeSide.has(port)) await this.#o.run.run(['ip', '-n', ns, 'link', 'del', 'dev', port], { signal, allowFailure: true });
      lines.push(
        `link add ${e.ifname} address ${e.mac} mtu ${network.mtu} type veth peer name ${port} mtu ${network.mtu}${ns === undefined ? '' : ` netns ${ns}`}`,
        `addr add ${address} dev ${e.ifname} noprefixroute`,
        `link set dev ${e.ifname} up`,
        ...(ns === undefined ? [`link set dev ${port} master ${bridge} up`] : []),
      );
    }
    for (const half of subnet ? subnetHalves(subnet) : []) lines.push(`route replace ${half} dev ${e.ifname} src ${e.ip} table ${HOST_TABLE}`);
    await this.#o.run.run(['ip', '-batch', '-'], { input: `${lines.join('\n')}\n`, signal });
    if (!complete && ns !== undefined) await this.#o.run.run(['ip', '-n', ns, 'link', 'set', 'dev', port, 'master', bridge, 'up'], { signal });
    if (!complete) await this.#o.run.writeFile(`/proc/sys/net/ipv4/conf/${e.ifname}/arp_ignore`, '1');
  }

  async #links(run: Runner, signal?: AbortSignal): Promise<Map<string, ReturnType<typeof parseLinks>[number]>> {
    return new Map(parseLinks((await run.run(['ip', '-j', '-d', 'addr', 'show'], { signal })).stdout).map((l) => [l.name, l]));
  }

  /** The rule to table HOST_TABLE while there are host endpoints, none without. */
  async #ensureRule(wanted: boolean, signal?: AbortSignal): Promise<void> {
    const { run } = this.#o;
    const rules = (await run.run(['ip', '-j', 'rule', 'show', 'pref', String(HOST_RULE_PRIORITY)], { signal, allowFailure: true })).stdout.trim();
    const hasRule = rules !== '' && rules !== '[]';
    if (wanted && !hasRule) await run.run(['ip', 'rule', 'add', 'pref', String(HOST_RULE_PRIORITY), 'iif', 'lo', 'lookup', String(HOST_TABLE)], { signal });
    if (!wanted && hasRule) await run.run(['ip', 'rule', 'del', 'pref', String(HOST_RULE_PRIORITY)], { signal, allowFailure: true });
  }

  /** Table ip vxnethost for these endpoints, replaced whole when it differs or went missing; deleted without any. */
  async #ensureTable(endpoints: readonly Endpoint[], signal?: AbortSignal): Promise<void> {
    const { run } = this.#o;
    const table = endpoints.length > 0 ? renderHostTable(endpoints) : '';
    // also a table removed behind the agent's back is written again (the isolation of host endpoints depends
    // on it), and one left by an earlier run that no endpoint wants any more goes
    const exists = (await run.run(['nft', 'list', 'table', 'ip', HOST_NFT_TABLE], { signal, allowFailure: true })).code === 0;
    if (table === '') {
      if (exists) await run.run(['nft', '-f', '-'], { input: `table ip ${HOST_NFT_TABLE}\ndelete table ip ${HOST_NFT_TABLE}\n`, signal, allowFailure: true });
    } else if (table !== this.#table || !exists) {
      await run.run(['nft', '-f', '-'], { input: table, signal });
    }
    this.#table = table;
  }

  async #report(e: Endpoint, outcome: string, signal?: AbortSignal): Promise<void> {
    if (this.#reported.get(e.id) === outcome) return;
    if (outcome === 'ready' && e.status === 'ready') {
      this.#reported.set(e.id, outcome);
      return;
    }
    try {
      await this.#o.setEndpointStatus(e.id, outcome === 'ready' ? { status: 'ready' } : { status: 'error', message: outcome }, signal);
      this.#reported.set(e.id, outcome);
      if (outcome !== 'ready') this.#o.log(`warning: host endpoint ${e.id} on ${e.network}: ${outcome}`);
    } catch (err) {
      this.#o.log(`warning: could not report status of host endpoint ${e.id}: ${messageOf(err)}`);
    }
  }
}
