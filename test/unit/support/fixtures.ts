/**
 * Cluster records as the manager hands them out, for tests that feed the CLI or an agent by hand (two
 * nodes, the network `blue` and endpoints on it), and an agent of host1 run against stubs. Treat the
 * records as read-only; spread them to vary a field.
 */
import { Agent, type AgentManagerApi } from '../../../src/agent/agent.ts';
import { deviceNames, type Dataplane, type DesiredEndpoint, type DesiredNetwork, type DesiredState, type ReconcileResult } from '../../../src/agent/dataplane.ts';
import type { Endpoint, EndpointStatusRequest, Network, Node, WatchMessage } from '../../../src/core/model.ts';
import { until } from './until.ts';

/** host1 and host2 on the underlay 10.99.0.0/24; the agent of `agentOnStubs` is host1. */
export const twoNodes: Node[] = [
  { name: 'host1', address: '10.99.0.11', mtu: 1500, registeredAt: '' },
  { name: 'host2', address: '10.99.0.12', mtu: 1500, registeredAt: '' },
];

/** VNI 1000, one /24 with its gateway, MTU 1450 (a 1500-byte underlay less 50 bytes of VXLAN), port 4789. */
export function blueNetwork(createdAt: string): Network {
  return {
    name: 'blue',
    vni: 1000,
    subnets: [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }],
    mtu: 1450,
    port: 4789,
    internal: false,
    createdAt,
  };
}

/** A ready endpoint on `blue` at 192.168.1.<host>, with the MAC the manager derives from that address. */
export function blueEndpoint(fields: { id: string; node: string; netns: string; host: number; createdAt: string }): Endpoint {
  return {
    id: fields.id,
    network: 'blue',
    node: fields.node,
    netns: fields.netns,
    ifname: 'eth0',
    ip: `192.168.1.${fields.host}`,
    prefix: 24,
    gateway: '192.168.1.1',
    mac: `02:78:c0:a8:01:${fields.host.toString(16).padStart(2, '0')}`,
    status: 'ready',
    createdAt: fields.createdAt,
  };
}

/** A network record with one gateway (.1) per subnet, MTU 1450, port 4789; `extra` sets the VNI and the rest. */
export function networkRecord(name: string, cidrs: string[], extra: Partial<Network> & { vni: number }): Network {
  return {
    name,
    subnets: cidrs.map((cidr) => ({ cidr, gateway: cidr.replace(/\.0\/\d+$/, '.1') })),
    mtu: 1450,
    port: 4789,
    internal: false,
    createdAt: '',
    ...extra,
  };
}

/**
 * A network as the agent wants it in the kernel: VNI `vni` (devices named after it), 192.168.1.0/24 with
 * its gateway, MTU 1450, port 4789, local VTEP 10.99.0.1; `extra` changes the rest.
 */
export function desiredNetwork(vni: number, extra: Partial<DesiredNetwork> = {}): DesiredNetwork {
  return {
    name: `net${vni}`,
    vni,
    bridge: deviceNames.bridge(vni),
    vxlan: deviceNames.vxlan(vni),
    port: 4789,
    mtu: 1450,
    localAddress: '10.99.0.1',
    gatewayMac: '02:78:c0:a8:01:01',
    gatewayAddresses: ['192.168.1.1/24'],
    subnets: ['192.168.1.0/24'],
    internal: false,
    ...extra,
  };
}

/**
 * A local endpoint as the agent wants it: on the network of `vni`, at `ip`/24 with the MAC the manager
 * derives from it, in the namespace /run/netns/c-ID; `extra` changes the rest.
 */
export function desiredEndpoint(id: string, vni: number, ip = '192.168.1.2', extra: Partial<DesiredEndpoint> = {}): DesiredEndpoint {
  const last = Number(ip.split('.')[3]);
  return {
    id,
    bridge: deviceNames.bridge(vni),
    hostVeth: deviceNames.hostVeth(id),
    peerVeth: deviceNames.peerVeth(id),
    netns: `/run/netns/c-${id}`,
    ifname: 'eth0',
    mac: `02:78:c0:a8:01:${last.toString(16).padStart(2, '0')}`,
    address: `${ip}/24`,
    gateway: '192.168.1.1',
    mtu: 1450,
    extraRoutes: [],
    ...extra,
  };
}

/**
 * The agent of host1 over a stub manager API and a dataplane that changes nothing: the dataplane records
 * every desired state it is given (`passes`) and reports every local endpoint ready; the log goes to `logs`.
 */
export function agentOnStubs(api: AgentManagerApi, options: { watchIdleMs?: number } = {}) {
  const logs: string[] = [];
  const dataplane = new ScriptedDataplane();
  const passes = dataplane.calls;
  const agent = new Agent({
    api,
    dataplane,
    self: { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' },
    underlayMtu: 1500,
    log: (line) => logs.push(line),
    ...options,
  });
  return { agent, logs, passes };
}

/**
 * A manager API that answers at once and records what the agent tells it (statuses, heartbeats, the watch
 * options); the test feeds the open watch with `push` and ends it with `endStream`.
 */
export class ScriptedApi implements AgentManagerApi {
  readonly statuses: [string, EndpointStatusRequest][] = [];
  readonly heartbeats: number[] = [];
  push: ((m: WatchMessage) => void) | undefined;
  watchOptions: unknown;
  watchCalls = 0;
  #end: (() => void) | undefined;

  async registerNode(req: { name: string; address: string; mtu: number }): Promise<Node> {
    return { ...req, registeredAt: '' };
  }
  async heartbeat(_node: string, req: { reconciledRevision: number }): Promise<void> {
    this.heartbeats.push(req.reconciledRevision);
  }
  async setEndpointStatus(id: string, req: EndpointStatusRequest): Promise<void> {
    this.statuses.push([id, req]);
  }
  watch(_node: string, onMessage: (m: WatchMessage) => void, signal: AbortSignal, options?: unknown): Promise<void> {
    this.watchCalls++;
    this.push = onMessage;
    this.watchOptions = options;
    return new Promise((resolve, reject) => {
      this.#end = resolve;
      signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });
  }
  endStream(): void {
    this.#end?.();
  }
}

/** The agent of host1 running on a ScriptedApi and a ScriptedDataplane, returned once its watch is open. */
export async function runScriptedAgent(options: Partial<ConstructorParameters<typeof Agent>[0]> = {}) {
  const api = new ScriptedApi();
  const dataplane = new ScriptedDataplane();
  const agent = new Agent({ api, dataplane, self: { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' }, underlayMtu: 1500, ...options });
  const controller = new AbortController();
  const running = agent.run(controller.signal).catch(() => {});
  await until(() => api.push !== undefined, 'watch');
  return {
    api,
    dataplane,
    agent,
    /** aborts the agent and waits until it has stopped */
    async stop(): Promise<void> {
      controller.abort();
      await running;
    },
  };
}

/**
 * A data plane that changes nothing: it records every desired state it is given (`calls`), takes `delayMs`
 * per pass, and reports each local endpoint ready unless its namespace has a reason in `failures`.
 */
export class ScriptedDataplane implements Dataplane {
  readonly calls: DesiredState[] = [];
  /** namespace path → the reason an endpoint in it fails */
  readonly failures = new Map<string, string>();
  delayMs = 0;

  async reconcile(desired: DesiredState): Promise<ReconcileResult> {
    this.calls.push(desired);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const endpointErrors = new Map<string, string>();
    const readyEndpoints = new Set<string>();
    for (const e of desired.endpoints) {
      const failure = this.failures.get(e.netns ?? '');
      if (failure !== undefined) endpointErrors.set(e.id, failure);
      else readyEndpoints.add(e.id);
    }
    return { changes: 0, endpointErrors, readyEndpoints };
  }
}
