/**
 * What an Agent (agent.ts) is built from: the part of the manager API it uses, the data plane it drives,
 * and the optional links (Docker containers, WireGuard, an observer); kept apart so the loop's module holds
 * only the loop.
 */
import type { EndpointStatusRequest, HeartbeatRequest, Node, RegisterNodeRequest, TunnelStatus, WatchMessage, WireguardReport } from '../core/model.ts';
import type { Dataplane } from './dataplane.ts';
import type { DnsService } from './dns/service.ts';
import type { Self } from './desired.ts';
import type { AgentObserver } from './metrics.ts';
import type { ClusterView } from './view.ts';

/** The part of the manager API the agent uses (ManagerClient implements it). */
export interface AgentManagerApi {
  registerNode(req: RegisterNodeRequest, signal?: AbortSignal): Promise<Node>;
  heartbeat(node: string, req: HeartbeatRequest, signal?: AbortSignal): Promise<void>;
  setEndpointStatus(id: string, req: EndpointStatusRequest, signal?: AbortSignal): Promise<void>;
  watch(node: string, onMessage: (message: WatchMessage) => void, signal: AbortSignal, options?: WatchOptions): Promise<void>;
}

/** A `vxnet trace` request as the watch stream carries it (src/agent/diagnose.ts answers it). */
export type DiagnoseMessage = Extract<WatchMessage, { type: 'diagnose' }>;

export interface WatchOptions {
  /** every network, not only those where the node has endpoints */
  allNetworks?: boolean;
  /** called whenever bytes arrive on the stream, whole messages or not */
  onData?: () => void;
  /** the revision up to which the caller holds everything: resume after it rather than from a snapshot */
  since?: number;
}

/** The namespaces of the containers of this node's Docker engine (`vxnet attach --container`). */
export interface ContainerNamespaces {
  /** `/proc/PID/ns/net` of a running container, by name or id; throws with the reason otherwise */
  resolve(ref: string, signal?: AbortSignal): Promise<string>;
}

export interface AgentOptions {
  api: AgentManagerApi;
  dataplane: Dataplane;
  self: Self;
  underlayMtu: number;
  /** this node's WireGuard, registered with the node (src/agent/wireguard/); absent: none */
  wireguard?: WireguardReport;
  /** its WireGuard peers' status, sent with each heartbeat (absent or undefined: none) */
  tunnels?: () => TunnelStatus[] | undefined;
  log?: (line: string) => void;
  heartbeatIntervalMs?: number;
  /** a full pass also runs this often, to repair drift made behind vxnet's back */
  resyncIntervalMs?: number;
  /** reconnect when the watch has carried nothing (not even a ping) for this long (default WATCH_IDLE_MS in agent.ts) */
  watchIdleMs?: number;
  /** watch every network, not only those with local endpoints (an agent keeping Docker networks in sync) */
  watchAllNetworks?: boolean;
  /** told about every pass and every lost watch (the metrics, metrics.ts) */
  observer?: AgentObserver;
  /** set when the agent is linked to a Docker engine: endpoints attached to its containers can be set up */
  containers?: ContainerNamespaces;
  /** the DNS on the gateways (src/agent/dns/), brought up to date after every pass; absent: no DNS */
  dns?: DnsService;
  /**
   * Answers an administrator's diagnose request (`vxnet trace`, src/agent/diagnose.ts) with what the agent
   * knows now; runs beside the loop and reports its own failures. Absent: such requests are ignored.
   */
  diagnose?: (message: DiagnoseMessage, agent: { view: ClusterView; reconciledRevision: number }) => void;
  /** runs at the end of every pass, before its revision counts as applied (host endpoints: src/agent/host-endpoint.ts) */
  afterPass?: (view: ClusterView, signal?: AbortSignal) => Promise<void>;
}
