/**
 * The agent's side of `vxnet trace`: reads what the kernel of this host holds for one network — its bridge,
 * VXLAN device and veths with their counters, the FDB and neighbour entries of the addresses asked about,
 * the VXLAN peer allow-list, the anti-spoofing elements and other tables' drop rules — and, for `--probe`,
 * pings from a local endpoint's namespace first. It changes nothing in the kernel. The request arrives on
 * the watch stream and the answer goes back to the manager with the node's certificate (schema/diagnose.ts);
 * the judgement is the CLI's (src/trace/judge.ts), a pure function over both hosts' reports.
 */
import { messageOf } from '../core/errors.ts';
import type { DiagnoseReport, DiagnoseRequest, LinkReport } from '../core/schema/diagnose.ts';
import type { ContainerNamespaces } from './agent-options.ts';
import { deviceNames, OWNED_NFT_TABLE } from './dataplane.ts';
import { readAntispoof } from './kernel/antispoof.ts';
import type { Runner } from './kernel/exec.ts';
import { inNamespace } from './kernel/netns.ts';
import { VXLAN_FILTER_CHAIN, VXLAN_PEERS_SET, VXLAN_PORTS_SET } from './kernel/nftables.ts';
import { UNDERLAY6_TABLE } from './kernel/underlay6.ts';
import { parseVxlanFilterDrops, readFdb, readFirewall, readLinks, readNeighbours, type LinkState } from './kernel/read.ts';
import { parseForeignDrops, parseLinkStats, parseSetElements } from './diagnose-parse.ts';
import type { ClusterView } from './view.ts';

/** a probe waits this long for each reply: a trace answers within the manager's relay deadline */
const PROBE_WAIT_SECONDS = 1;
const PROBE_INTERVAL_SECONDS = 0.2;

export interface DiagnoseContext {
  run: Runner;
  self: { name: string; address: string; underlayDevice: string };
  underlayMtu: number;
  containers?: ContainerNamespaces;
  /** the namespace of network VNI's bridge (kernel/netns.ts); absent: bridges are in this namespace */
  networkNamespace?: (vni: number) => string;
}

/** What the agent knows when a request arrives. */
export interface AgentSnapshot {
  view: ClusterView;
  reconciledRevision: number;
}

export async function diagnose(ctx: DiagnoseContext, agent: AgentSnapshot, request: DiagnoseRequest, signal?: AbortSignal): Promise<DiagnoseReport> {
  const { run, self } = ctx;
  const errors: string[] = [];
  const attempt = async <T>(what: string, read: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await read();
    } catch (err) {
      if (signal?.aborted) throw err;
      errors.push(`${what}: ${messageOf(err)}`);
      return fallback;
    }
  };
  const network = agent.view.networks.get(request.network);
  if (!network) errors.push(`node ${self.name} has no endpoint on network ${request.network}, so its agent does not follow it.`);
  const bridge = network ? deviceNames.bridge(network.vni) : undefined;
  const vxlan = network ? deviceNames.vxlan(network.vni) : undefined;

  // the probe goes first, so that the counters read below include it
  const probe = request.probe ? await sendProbe(ctx, agent, request.probe, signal) : undefined;

  const text = async (argv: string[]) => (await run.run(argv, { signal })).stdout;
  // with a namespace per network, the bridge, its ports, the VXLAN device, the entries and the anti-spoofing
  // table are read there; the host namespace gives the underlay and the gateway's addresses
  const ns = network && ctx.networkNamespace ? ctx.networkNamespace(network.vni) : undefined;
  const inside = ns === undefined ? run : inNamespace(run, ns);
  const insideText = async (argv: string[]) => (await inside.run(argv, { signal })).stdout;
  // over an IPv6 underlay the allow-list's sets and counter are in table ip6 vxnet_underlay (kernel/underlay6.ts)
  const filterTable = self.address.includes(':') ? ['ip6', UNDERLAY6_TABLE] : ['ip', OWNED_NFT_TABLE];
  const [hostLinks, insideLinks, hostStats, stats, neighbours, fdb, firewall, peers, ports, drops, antispoof, foreign] = await Promise.all([
    attempt('ip -j -d addr show', () => readLinks(run, signal), [] as LinkState[]),
    ns === undefined ? [] : attempt(`ip -n ${ns} -j -d addr show`, () => readLinks(inside, signal), [] as LinkState[]),
    ns === undefined ? new Map() : attempt('ip -j -s link show', async () => parseLinkStats(await text(['ip', '-j', '-s', 'link', 'show'])), new Map()),
    attempt('ip -j -s link show', async () => parseLinkStats(await insideText(['ip', '-j', '-s', 'link', 'show'])), new Map()),
    attempt('ip -j neigh show', () => readNeighbours(inside, signal), []),
    attempt('bridge -j fdb show', () => readFdb(inside, signal), []),
    readFirewall(run, signal),
    attempt(`nft set ${VXLAN_PEERS_SET}`, async () => parseSetElements(await text(['nft', '-j', 'list', 'set', ...filterTable, VXLAN_PEERS_SET])), []),
    attempt(`nft set ${VXLAN_PORTS_SET}`, async () => parseSetElements(await text(['nft', '-j', 'list', 'set', ...filterTable, VXLAN_PORTS_SET])), []),
    attempt(`nft chain ${VXLAN_FILTER_CHAIN}`, async () => parseVxlanFilterDrops(await text(['nft', '-j', 'list', 'chain', ...filterTable, VXLAN_FILTER_CHAIN])), undefined),
    readAntispoof(inside, signal),
    attempt('nft -j list ruleset', async () => parseForeignDrops(await text(['nft', '-j', 'list', 'ruleset'])), []),
  ]);
  const links = ns === undefined ? hostLinks : [...hostLinks.filter((l) => l.name === self.underlayDevice), ...withGateway(insideLinks, hostLinks, bridge)];
  if (ns !== undefined) for (const [name, s] of hostStats) if (name === self.underlayDevice) stats.set(name, s);
  const kept = links.filter((l) => l.name === self.underlayDevice || (bridge !== undefined && (l.name === bridge || l.name === vxlan || l.master === bridge)));
  const bridgePorts = new Set(kept.filter((l) => l.master === bridge).map((l) => l.name));
  const portOf = (element: string) => element.split(' ')[0]!;
  const macs = new Set(request.macs.map((m) => m.toLowerCase()));
  const ips = new Set(request.ips);
  return {
    node: self.name,
    reconciledRevision: agent.reconciledRevision,
    underlay: { device: self.underlayDevice, address: self.address, mtu: ctx.underlayMtu },
    links: kept.map((l) => linkReport(l, stats.get(l.name))),
    neighbours: neighbours.filter((n) => n.dev === vxlan && ips.has(n.ip)),
    fdb: fdb.filter((f) => f.dev === vxlan && macs.has(f.mac.toLowerCase())),
    firewall: {
      present: firewall.present,
      ...(firewall.unreadable !== undefined ? { unreadable: firewall.unreadable } : {}),
      peers: firewall.present ? peers : [],
      ports: firewall.present ? ports.map(Number).filter(Number.isSafeInteger) : [],
      ...(drops !== undefined ? { drops } : {}),
    },
    antispoof: { macs: antispoof.macs.filter((e) => bridgePorts.has(portOf(e))), ips: antispoof.ips.filter((e) => bridgePorts.has(portOf(e))) },
    foreignDrops: foreign,
    ...(probe ? { probe } : {}),
    errors: antispoof.unreadable !== undefined ? [...errors, antispoof.unreadable] : errors,
  };
}

/**
 * The bridge of a network's namespace as the report shows it: with the gateway's addresses (held by its
 * veth in the host namespace, one hop away), up only while both are.
 */
function withGateway(inside: LinkState[], host: LinkState[], bridge: string | undefined): LinkState[] {
  const gateway = host.find((l) => l.name === bridge);
  return inside.map((l) => (l.name === bridge && l.kind === 'bridge' ? { ...l, ipv4: gateway?.ipv4 ?? [], up: l.up && gateway?.up === true } : l));
}

function linkReport(link: LinkState, stats: LinkReport['stats'] | undefined): LinkReport {
  return {
    name: link.name,
    kind: link.kind,
    mtu: link.mtu,
    up: link.up,
    ...(link.master !== undefined ? { master: link.master } : {}),
    mac: link.mac,
    ipv4: link.ipv4,
    ...(link.vxlan
      ? { vxlan: { vni: link.vxlan.vni, port: link.vxlan.port, ...(link.vxlan.local !== undefined ? { local: link.vxlan.local } : {}), learning: link.vxlan.learning } }
      : {}),
    ...(stats ? { stats } : {}),
  };
}

/** Pings `to` from the namespace of local endpoint `endpoint`; the counts come from ping's own summary. */
async function sendProbe(
  ctx: DiagnoseContext,
  agent: AgentSnapshot,
  probe: NonNullable<DiagnoseRequest['probe']>,
  signal?: AbortSignal,
): Promise<NonNullable<DiagnoseReport['probe']>> {
  const failed = (error: string) => ({ sent: 0, received: 0, error });
  const endpoint = agent.view.endpoints.get(probe.endpoint);
  if (!endpoint || endpoint.node !== ctx.self.name) return failed(`endpoint ${probe.endpoint} is not on node ${ctx.self.name}.`);
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(probe.to)) return failed(`${probe.to} is not an IPv4 address.`);
  let netns = endpoint.netns;
  try {
    if (endpoint.container !== undefined) netns = await ctx.containers?.resolve(endpoint.container, signal);
  } catch (err) {
    return failed(`container ${endpoint.container} cannot be found: ${messageOf(err)}`);
  }
  if (netns === undefined && endpoint.host !== true) return failed(`endpoint ${endpoint.id} belongs to Docker, which holds its namespace: probe from another endpoint.`);
  // the host's own endpoint pings from the agent's namespace, the host's, through its interface
  const inside = netns === undefined ? ['-I', endpoint.ifname] : [];
  const argv = [...(netns === undefined ? [] : ['nsenter', `--net=${netns}`]), 'ping', ...inside, '-n', '-q', '-c', String(probe.count), '-i', String(PROBE_INTERVAL_SECONDS), '-W', String(PROBE_WAIT_SECONDS), probe.to];
  const result = await ctx.run.run(argv, { signal, allowFailure: true });
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(result.stdout);
  if (!counts) return failed(`ping did not run (exit ${result.code}): ${result.stderr.trim().split('\n')[0] ?? ''}`);
  return { sent: Number(counts[1]), received: Number(counts[2]) };
}

/**
 * The agent's `diagnose` option: each request is read and answered beside the reconcile loop (a trace never
 * delays a pass), and a failure to answer is logged; the administrator's request then times out.
 */
export function diagnoseHandler(
  ctx: DiagnoseContext & {
    answer: (id: string, report: DiagnoseReport, signal?: AbortSignal) => Promise<void>;
    log: (line: string) => void;
    signal?: AbortSignal;
  },
): (message: { id: string; request: DiagnoseRequest }, agent: AgentSnapshot) => void {
  return (message, agent) => {
    const snapshot = { view: agent.view, reconciledRevision: agent.reconciledRevision };
    void diagnose(ctx, snapshot, message.request, ctx.signal)
      .then((report) => ctx.answer(message.id, report, ctx.signal))
      .catch((err) => ctx.log(`warning: could not answer diagnose request ${message.id}: ${messageOf(err)}`));
  };
}
