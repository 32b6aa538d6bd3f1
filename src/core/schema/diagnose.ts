/**
 * `vxnet trace` (src/trace/): what an administrator asks a node's agent to read, and what the agent answers.
 * The manager relays both (src/manager/watch-stream.ts, DiagnoseRelay): the request goes down the node's
 * watch stream as a `diagnose` message, the answer comes back as `PUT /v1/nodes/:name/diagnose/:id` with
 * the node's certificate. Only the entries about the addresses asked for are read back, so that the answer
 * stays small on a node with tens of thousands of peers.
 */
import * as v from 'valibot';
import { Integer } from './resources.ts';

/** The most probe packets one trace may send (it is a diagnosis, not a load generator). */
export const MAX_PROBE_COUNT = 20;

export const DiagnoseRequestSchema = v.object({
  network: v.string(),
  /** MAC addresses whose FDB entries (on the network's VXLAN device) the answer includes */
  macs: v.pipe(v.array(v.string()), v.maxLength(16)),
  /** IPv4 addresses whose neighbour entries (on the network's VXLAN device) the answer includes */
  ips: v.pipe(v.array(v.string()), v.maxLength(16)),
  /** `--probe`: send ICMP echo requests from local endpoint `endpoint`'s namespace to `to` */
  probe: v.exactOptional(v.object({ endpoint: v.string(), to: v.string(), count: v.pipe(Integer, v.minValue(1), v.maxValue(MAX_PROBE_COUNT)) })),
});

export const LinkReportSchema = v.object({
  name: v.string(),
  kind: v.string(),
  mtu: Integer,
  up: v.boolean(),
  master: v.exactOptional(v.string()),
  mac: v.string(),
  ipv4: v.array(v.string()),
  vxlan: v.exactOptional(v.object({ vni: Integer, port: Integer, local: v.exactOptional(v.string()), learning: v.boolean() })),
  /** `ip -s link` counters, when read */
  stats: v.exactOptional(v.object({ rxPackets: Integer, txPackets: Integer, rxDropped: Integer, txDropped: Integer })),
});

/** A rule of a table that is not vxnet's, on a hook the overlay's packets cross, that drops or rejects. */
export const ForeignDropSchema = v.object({
  family: v.string(),
  table: v.string(),
  chain: v.string(),
  hook: v.string(),
  /** the rule in nft's words as far as they were understood ("udp dport 4789 drop"), or "policy drop" */
  rule: v.string(),
  /** the UDP destination port it matches, when it matches one */
  udpPort: v.exactOptional(Integer),
  /** it matches on something other than a UDP port too (an address, an interface), so it may not concern the overlay */
  narrowed: v.boolean(),
  packets: v.exactOptional(Integer),
});

export const DiagnoseReportSchema = v.object({
  node: v.string(),
  /** the highest revision this agent has applied to its kernel */
  reconciledRevision: Integer,
  underlay: v.object({ device: v.string(), address: v.string(), mtu: Integer }),
  /** the network's bridge, VXLAN device and the host ends of its veths, and the underlay device */
  links: v.array(LinkReportSchema),
  neighbours: v.array(v.object({ dev: v.string(), ip: v.string(), mac: v.string() })),
  fdb: v.array(v.object({ dev: v.string(), mac: v.string(), dst: v.string() })),
  /** table ip vxnet: installed, and its VXLAN peer allow-list */
  firewall: v.object({
    present: v.boolean(),
    unreadable: v.exactOptional(v.string()),
    peers: v.array(v.string()),
    ports: v.array(Integer),
    /** VXLAN datagrams dropped from non-members since the table was last replaced */
    drops: v.exactOptional(Integer),
  }),
  /** table bridge vxnet: "port mac" and "port ip" elements of the ports on this network's bridge */
  antispoof: v.object({ macs: v.array(v.string()), ips: v.array(v.string()) }),
  foreignDrops: v.array(ForeignDropSchema),
  probe: v.exactOptional(v.object({ sent: Integer, received: Integer, error: v.exactOptional(v.string()) })),
  /** what could not be read (the rest of the report is what could) */
  errors: v.array(v.string()),
});

export type DiagnoseRequest = v.InferOutput<typeof DiagnoseRequestSchema>;
export type LinkReport = v.InferOutput<typeof LinkReportSchema>;
export type ForeignDrop = v.InferOutput<typeof ForeignDropSchema>;
export type DiagnoseReport = v.InferOutput<typeof DiagnoseReportSchema>;
