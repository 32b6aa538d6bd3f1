/**
 * The agent's side of the CNI plugin (src/cni/): a small HTTP/JSON API on a local unix socket
 * (/run/vxnet/cni.sock unless `vxnet agent --cni-socket PATH`, mode 0600) through which the plugin asks for
 * ADD, DEL and CHECK, and STATUS and GC (spec 1.1). The agent does each with its own node identity against
 * the manager, so a CNI container gets exactly the endpoint
 * `vxnet attach --netns` makes: `netns` = CNI_NETNS, `ifname` = CNI_IFNAME, created and confirmed ready by
 * this node before ADD answers. The endpoint carries the container id (`cni`), which is also what lets a
 * node certificate create and delete it (docs/security.md): a node may not touch other namespace endpoints.
 *
 * DEL never fails for want of the manager: the record is kept as `pendingDelete` and retried every
 * RETRY_MS, and a start of the agent marks every record whose namespace is gone (the container went while the
 * agent was down) the same way. So an address is released as soon as the manager can be told.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { VxnetError, messageOf, type ErrorCode } from '../core/errors.ts';
import type { CreateEndpointRequest, Endpoint } from '../core/model.ts';
import { BodyTooLargeError, closeServer, listenOn, readBody, sendJson } from '../http/server.ts';
import { CNI_API_PATHS, type CniAgentRefusal, type CniAgentRequest, type CniGcRequest, type CniStatusRequest } from '../cni/agent-api.ts';
import { CNI_ERRORS, DEFAULT_CNI_SOCKET, type AttachedEndpoint, type CniErrorName } from '../cni/protocol.ts';
import { type CniRecord, CniRecords } from './cni-records.ts';
import { CniRefusal, parseGcRequest, parseNetworkRequest, parseRequest } from './cni-requests.ts';

export { CniRefusal, parseRequest } from './cni-requests.ts';
import { inspectInterface, type InterfaceState } from './cni-inspect.ts';

/** How long ADD waits for this node to report the endpoint ready (the `vxnet attach` default). */
const READY_WAIT_SECONDS = 30;
/** How often DELs the manager could not be told about are retried. */
const RETRY_MS = 30_000;

export interface CniManagerApi {
  createEndpoint(req: CreateEndpointRequest, options?: { waitSeconds?: number }, signal?: AbortSignal): Promise<Endpoint>;
  deleteEndpoint(id: string, options?: { waitSeconds?: number }, signal?: AbortSignal): Promise<void>;
  listEndpoints(filter?: { network?: string; node?: string }, signal?: AbortSignal): Promise<Endpoint[]>;
}

export interface CniServiceOptions {
  api: CniManagerApi;
  node: string;
  stateDir: string;
  log: (line: string) => void;
  /** reads the interface in a namespace (CHECK); tests pass a fake */
  inspect?: (netns: string, ifname: string) => Promise<InterfaceState | undefined>;
  /** whether a namespace path still exists (the start-up sweep); tests pass a fake */
  netnsExists?: (path: string) => boolean;
}

/** ADD, DEL and CHECK, apart from HTTP (unit-tested with a fake manager). */
export class CniService {
  readonly #options: CniServiceOptions;
  readonly #records: CniRecords;
  #retrying = false;

  constructor(options: CniServiceOptions) {
    this.#options = options;
    this.#records = new CniRecords(options.stateDir);
    const exists = options.netnsExists ?? existsSync;
    for (const record of this.#records.all()) {
      if (!record.pendingDelete && !exists(record.netns)) this.#records.put({ ...record, pendingDelete: true });
    }
  }

  async add(req: CniAgentRequest, signal?: AbortSignal): Promise<AttachedEndpoint> {
    const known = this.#records.get(req.containerId, req.ifname);
    if (known?.pendingDelete) {
      // The same container id again before the manager heard of its last DEL: that endpoint goes first.
      try {
        await this.#deleteEndpoint(known.endpointId, signal);
      } catch (err) {
        throw refusalOf(err);
      }
      this.#records.remove(known.containerId, known.ifname);
    } else if (known) {
      throw new CniRefusal(
        CNI_ERRORS.vxnet_refused,
        `container ${req.containerId} already has interface ${req.ifname} on network ${known.network}: DEL it first.`,
        'endpoint_exists',
      );
    }
    const { api, node } = this.#options;
    let endpoint: Endpoint;
    try {
      endpoint = await api.createEndpoint(
        { network: req.network, node, netns: req.netns, ifname: req.ifname, cni: req.containerId, ...(req.ip !== undefined ? { ip: req.ip } : {}), ...(req.mac !== undefined ? { mac: req.mac } : {}) },
        { waitSeconds: READY_WAIT_SECONDS },
        signal,
      );
    } catch (err) {
      throw refusalOf(err);
    }
    try {
      this.#records.put({ containerId: req.containerId, ifname: req.ifname, network: req.network, netns: endpoint.netns ?? req.netns, endpointId: endpoint.id });
    } catch (err) {
      // Without the record DEL could not find the endpoint: undo it rather than leave its address behind.
      await api.deleteEndpoint(endpoint.id, { waitSeconds: 0 }).catch(() => {});
      throw new CniRefusal(CNI_ERRORS.io_failure, `cannot record the endpoint of container ${req.containerId}: ${messageOf(err)}`);
    }
    this.#options.log(`cni: ADD container ${req.containerId} ${req.ifname} on ${req.network}: endpoint ${endpoint.id} ${endpoint.ip}/${endpoint.prefix}`);
    return attachedOf(endpoint);
  }

  /** Succeeds when there is nothing (left) to delete; keeps the record for a retry when the manager is unreachable. */
  async del(req: CniAgentRequest, signal?: AbortSignal, known?: CniRecord): Promise<void> {
    let record = this.#records.get(req.containerId, req.ifname) ?? known;
    if (!record) {
      // The record was lost (a new state directory): the manager knows the endpoint by its container id.
      const found = await this.#findRemote(req, signal).catch(() => undefined);
      if (found) record = { containerId: req.containerId, ifname: req.ifname, network: req.network, netns: req.netns, endpointId: found.id };
    }
    if (!record) return;
    try {
      await this.#deleteEndpoint(record.endpointId, signal);
      this.#records.remove(record.containerId, record.ifname);
      this.#options.log(`cni: DEL container ${req.containerId} ${req.ifname}: endpoint ${record.endpointId} deleted`);
    } catch (err) {
      this.#records.put({ ...record, pendingDelete: true });
      this.#options.log(`cni: DEL container ${req.containerId} ${req.ifname}: endpoint ${record.endpointId} is deleted later: ${messageOf(err)}`);
    }
  }

  async check(req: CniAgentRequest, signal?: AbortSignal): Promise<AttachedEndpoint> {
    const record = this.#records.get(req.containerId, req.ifname);
    if (!record || record.pendingDelete) {
      throw new CniRefusal(CNI_ERRORS.unknown_container, `container ${req.containerId} has no interface ${req.ifname} from vxnet on this node.`);
    }
    let endpoints: Endpoint[];
    try {
      endpoints = await this.#options.api.listEndpoints({ network: record.network, node: this.#options.node }, signal);
    } catch (err) {
      throw refusalOf(err);
    }
    const endpoint = endpoints.find((e) => e.id === record.endpointId);
    if (!endpoint) throw new CniRefusal(CNI_ERRORS.check_failed, `the endpoint ${record.endpointId} of container ${req.containerId} no longer exists.`);
    if (endpoint.status !== 'ready') {
      throw new CniRefusal(CNI_ERRORS.check_failed, `the endpoint ${endpoint.id} of container ${req.containerId} is ${endpoint.status}${endpoint.message ? `: ${endpoint.message}` : ''}.`);
    }
    const inspect = this.#options.inspect ?? inspectInterface;
    const actual = await inspect(req.netns, req.ifname);
    if (!actual) throw new CniRefusal(CNI_ERRORS.check_failed, `interface ${req.ifname} is missing in the namespace ${req.netns} of container ${req.containerId}.`);
    if (actual.mac.toLowerCase() !== endpoint.mac.toLowerCase()) {
      throw new CniRefusal(CNI_ERRORS.check_failed, `interface ${req.ifname} of container ${req.containerId} has MAC ${actual.mac}, not ${endpoint.mac}.`);
    }
    const cidr = `${endpoint.ip}/${endpoint.prefix}`;
    if (!actual.addresses.includes(cidr)) {
      throw new CniRefusal(CNI_ERRORS.check_failed, `interface ${req.ifname} of container ${req.containerId} does not hold ${cidr}.`);
    }
    return attachedOf(endpoint);
  }

  /** STATUS: whether ADD could succeed now — the manager answers and knows the network. */
  async status(req: CniStatusRequest, signal?: AbortSignal): Promise<void> {
    try {
      await this.#options.api.listEndpoints({ network: req.network, node: this.#options.node }, signal);
    } catch (err) {
      throw refusalOf(err);
    }
  }

  /**
   * GC: deletes this node's CNI endpoints on the network whose container interface the runtime no longer
   * lists, found in the records and at the manager (a record may be lost). Never Docker or plain namespace
   * endpoints: only those carrying a container id. What the manager cannot be told now is retried later.
   */
  async gc(req: CniGcRequest, signal?: AbortSignal): Promise<{ deleted: number }> {
    const keep = new Set(req.valid.map((a) => `${a.containerId}/${a.ifname}`));
    const stale = new Map<string, CniRecord>();
    for (const record of this.#records.all()) {
      if (record.network === req.network && !keep.has(`${record.containerId}/${record.ifname}`)) stale.set(record.endpointId, record);
    }
    const remote = await this.#options.api.listEndpoints({ network: req.network, node: this.#options.node }, signal).catch(() => []);
    for (const e of remote) {
      if (e.cni === undefined || keep.has(`${e.cni}/${e.ifname}`) || stale.has(e.id)) continue;
      stale.set(e.id, { containerId: e.cni, ifname: e.ifname, network: e.network, netns: e.netns ?? '', endpointId: e.id });
    }
    for (const record of stale.values()) {
      await this.del({ containerId: record.containerId, ifname: record.ifname, network: record.network, netns: record.netns }, signal, record);
    }
    if (stale.size > 0) this.#options.log(`cni: GC on ${req.network}: ${stale.size} endpoint(s) of containers the runtime no longer has`);
    return { deleted: stale.size };
  }

  /** Deletes what DEL (or a start) left for later; quietly keeps what still fails. One round at a time. */
  async retryPending(signal?: AbortSignal): Promise<void> {
    if (this.#retrying) return;
    this.#retrying = true;
    try {
      await this.#retryRound(signal);
    } finally {
      this.#retrying = false;
    }
  }

  async #retryRound(signal?: AbortSignal): Promise<void> {
    for (const record of this.#records.all()) {
      if (!record.pendingDelete) continue;
      try {
        await this.#deleteEndpoint(record.endpointId, signal);
        this.#records.remove(record.containerId, record.ifname);
        this.#options.log(`cni: endpoint ${record.endpointId} of the removed container ${record.containerId} deleted`);
      } catch {
        // still unreachable: the next round tries again
      }
    }
  }

  async #deleteEndpoint(id: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.#options.api.deleteEndpoint(id, { waitSeconds: READY_WAIT_SECONDS }, signal);
    } catch (err) {
      if (err instanceof VxnetError && err.code === 'endpoint_not_found') return;
      throw err;
    }
  }

  async #findRemote(req: CniAgentRequest, signal?: AbortSignal): Promise<Endpoint | undefined> {
    const endpoints = await this.#options.api.listEndpoints({ node: this.#options.node }, signal);
    return endpoints.find((e) => e.cni === req.containerId && e.ifname === req.ifname && e.network === req.network);
  }
}

function attachedOf(endpoint: Endpoint): AttachedEndpoint {
  const attached: AttachedEndpoint = { ifname: endpoint.ifname, mac: endpoint.mac, ip: endpoint.ip, prefix: endpoint.prefix, gateway: endpoint.gateway };
  // a dual-stack endpoint: the CNI result lists both addresses (protocol.ts addResult)
  if (endpoint.addresses !== undefined) attached.addresses = endpoint.addresses.map((a) => ({ ip: a.ip, prefix: a.prefix, gateway: a.gateway }));
  return attached;
}

/** vxnet's error codes as CNI codes: the network's name is the configuration's, the namespace the container's. */
const CNI_CODE_OF: Partial<Record<ErrorCode, CniErrorName>> = {
  network_not_found: 'invalid_config',
  netns_not_found: 'unknown_container',
  unavailable: 'try_again_later',
  timeout: 'try_again_later',
};

function refusalOf(err: unknown): CniRefusal {
  if (err instanceof CniRefusal) return err;
  if (err instanceof VxnetError) return new CniRefusal(CNI_ERRORS[CNI_CODE_OF[err.code] ?? 'vxnet_refused'], err.message, err.code);
  return new CniRefusal(CNI_ERRORS.io_failure, messageOf(err));
}

export interface CniServer {
  address: string;
  close(): Promise<void>;
}

/**
 * The agent's CNI plugin as `vxnet agent` starts it: on by default at DEFAULT_CNI_SOCKET (the issue's
 * "default under /run/vxnet"), so a host where `vxnet cni install` put the plugin needs no agent flag.
 * A socket named with `--cni-socket` must be served (failing stops the agent); the default one is served
 * when it can be, and otherwise the agent says why and runs on without it — its main work, the overlay,
 * does not depend on the plugin, and the plugin then tells the runtime that no agent answers there.
 */
export async function startCniPlugin(
  options: { api: CniManagerApi; node: string; stateDir: string; log: (line: string) => void; socket?: string; off?: boolean },
  defaultSocket: string = DEFAULT_CNI_SOCKET,
): Promise<CniServer | undefined> {
  if (options.off) return undefined;
  const path = options.socket ?? defaultSocket;
  try {
    const service = new CniService({ api: options.api, node: options.node, stateDir: options.stateDir, log: options.log });
    const server = await serveCni(service, path, options.log);
    options.log(`serving the CNI plugin on ${server.address}`);
    return server;
  } catch (err) {
    if (options.socket !== undefined) throw err;
    options.log(`warning: the CNI plugin is not served: ${messageOf(err)} (give --cni-socket PATH, or --no-cni to say it is not wanted)`);
    return undefined;
  }
}

/** Whether a process answers on the unix socket `path` (a live listener, not a file left by a crash). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Serves `service` on the unix socket `path` until `close()`; retries pending DELs meanwhile. Refuses a path
 * another process serves (a second agent on the host): taking it over would send that agent's containers here.
 */
export async function serveCni(service: CniService, path: string, log: (line: string) => void): Promise<CniServer> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (await socketAnswers(path)) {
    throw new Error(`another process already serves ${path} (a second agent on this host?): give this agent its own --cni-socket PATH.`);
  }
  const closing = new AbortController();
  const server: Server = createServer((req, res) => {
    void handle(service, req, res, closing.signal).catch((err) => {
      log(`cni request failed: ${messageOf(err)}`);
      if (!res.headersSent) sendJson(res, 500, { cniCode: CNI_ERRORS.io_failure, message: `internal error: ${messageOf(err)}` });
    });
  });
  const address = { kind: 'unix' as const, path };
  const shown = await listenOn(server, address);
  const retry = setInterval(() => void service.retryPending(closing.signal), RETRY_MS);
  void service.retryPending(closing.signal);
  return {
    address: shown,
    async close() {
      clearInterval(retry);
      closing.abort();
      await closeServer(server, address);
    },
  };
}

async function handle(service: CniService, req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const verb = (Object.keys(CNI_API_PATHS) as (keyof typeof CNI_API_PATHS)[]).find((v) => CNI_API_PATHS[v] === req.url);
  if (req.method !== 'POST' || verb === undefined) {
    return refuse(res, 404, new CniRefusal(CNI_ERRORS.io_failure, `the agent's CNI socket has no ${req.method} ${req.url}.`));
  }
  let text: string;
  try {
    text = await readBody(req, res);
  } catch (err) {
    const message = err instanceof BodyTooLargeError ? err.message : messageOf(err);
    return refuse(res, 400, new CniRefusal(CNI_ERRORS.decode_failure, message));
  }
  try {
    if (verb === 'STATUS') {
      await service.status(parseNetworkRequest(text, verb), signal);
      return sendJson(res, 200, {});
    }
    if (verb === 'GC') {
      await service.gc(parseGcRequest(text), signal);
      return sendJson(res, 200, {});
    }
    const body = parseRequest(text, verb);
    if (verb === 'ADD') return sendJson(res, 200, await service.add(body, signal));
    if (verb === 'CHECK') return sendJson(res, 200, await service.check(body, signal));
    await service.del(body, signal);
    sendJson(res, 200, {});
  } catch (err) {
    const refusal = refusalOf(err);
    refuse(res, refusal.cniCode === CNI_ERRORS.decode_failure ? 400 : refusal.cniCode === CNI_ERRORS.io_failure ? 500 : 409, refusal);
  }
}

function refuse(res: ServerResponse, status: number, refusal: CniRefusal): void {
  const body: CniAgentRefusal = { cniCode: refusal.cniCode, message: refusal.message, ...(refusal.details !== undefined ? { details: refusal.details } : {}) };
  sendJson(res, status, body);
}
