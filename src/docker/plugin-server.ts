/**
 * The protocol shell of the Docker plugin: HTTP on a unix socket that the engine discovers
 * (`/run/docker/plugins/vxnet.sock` by default), every call a POST of `/Plugin.Activate`,
 * `/NetworkDriver.*` or `/IpamDriver.*` with a JSON body. Thin by design: it parses bodies (api.ts), calls
 * the drivers and translates errors, nothing else.
 *
 * Errors: a vxnet refusal is answered 200 with `{"Err": sentence}` (network driver) or `{"Error": sentence}`
 * (IPAM driver); libnetwork prefixes "remote: " and the docker CLI prints it after "Error response from
 * daemon:". A malformed request is 400 with the same body (a body over MAX_BODY_BYTES, src/http/server.ts,
 * included); an unknown call 404 (libnetwork reads that as "not implemented").
 */
import { mkdirSync } from 'node:fs';
import { type IncomingMessage, type RequestListener, type ServerResponse, createServer } from 'node:http';
import { dirname } from 'node:path';
import { VxnetError, messageOf } from '../core/errors.ts';
import { BodyTooLargeError, closeServer, listenOn, readBody, sendJson } from '../http/server.ts';
import {
  PLUGIN_CONTENT_TYPE,
  PluginRequestError,
  parseCreateEndpoint,
  parseCreateNetwork,
  parseEndpoint,
  parseJoin,
  parseNetworkId,
  parsePoolId,
  parseReleaseAddress,
  parseRequestAddress,
  parseRequestPool,
} from './api.ts';
import type { IpamDriver } from './ipam-driver.ts';
import type { NetworkDriver } from './network-driver.ts';

export interface PluginRoute {
  /** where a refusal goes in the answer: network driver `Err`, IPAM driver `Error` */
  errorField: 'Err' | 'Error';
  run(body: unknown, signal: AbortSignal): unknown;
}

/** Every call vxnet answers, by path (without the leading slash). */
export function pluginRoutes(network: NetworkDriver, ipam: IpamDriver): Map<string, PluginRoute> {
  const net = (run: PluginRoute['run']): PluginRoute => ({ errorField: 'Err', run });
  const addr = (run: PluginRoute['run']): PluginRoute => ({ errorField: 'Error', run });
  const nothing = (): Record<string, never> => ({});
  return new Map<string, PluginRoute>([
    ['Plugin.Activate', net(() => ({ Implements: ['NetworkDriver', 'IpamDriver'] }))],
    ['NetworkDriver.GetCapabilities', net(() => network.getCapabilities())],
    ['NetworkDriver.CreateNetwork', net((b) => network.createNetwork(parseCreateNetwork(b)))],
    ['NetworkDriver.DeleteNetwork', net((b, s) => network.deleteNetwork(parseNetworkId(b, 'DeleteNetwork'), s))],
    // swarm-scope calls; a local-scope driver does not get them, but answering is harmless
    ['NetworkDriver.AllocateNetwork', net(() => ({ Options: {} }))],
    ['NetworkDriver.FreeNetwork', net(nothing)],
    ['NetworkDriver.CreateEndpoint', net((b, s) => network.createEndpoint(parseCreateEndpoint(b), s))],
    ['NetworkDriver.DeleteEndpoint', net((b, s) => network.deleteEndpoint(parseEndpoint(b, 'DeleteEndpoint'), s))],
    ['NetworkDriver.EndpointOperInfo', net((b) => network.endpointOperInfo(parseEndpoint(b, 'EndpointOperInfo')))],
    ['NetworkDriver.Join', net((b, s) => network.join(parseJoin(b), s))],
    ['NetworkDriver.Leave', net((b) => network.leave(parseEndpoint(b, 'Leave')))],
    // vxnet's egress is the node's masquerade rule; nothing per endpoint to program
    ['NetworkDriver.ProgramExternalConnectivity', net((b) => (parseEndpoint(b, 'ProgramExternalConnectivity'), {}))],
    ['NetworkDriver.RevokeExternalConnectivity', net((b) => (parseEndpoint(b, 'RevokeExternalConnectivity'), {}))],
    ['NetworkDriver.DiscoverNew', net(nothing)],
    ['NetworkDriver.DiscoverDelete', net(nothing)],
    ['IpamDriver.GetCapabilities', addr(() => ipam.getCapabilities())],
    ['IpamDriver.GetDefaultAddressSpaces', addr(() => ipam.getDefaultAddressSpaces())],
    ['IpamDriver.RequestPool', addr((b, s) => ipam.requestPool(parseRequestPool(b), s))],
    ['IpamDriver.ReleasePool', addr((b) => ipam.releasePool(parsePoolId(b, 'ReleasePool')))],
    ['IpamDriver.RequestAddress', addr((b, s) => ipam.requestAddress(parseRequestAddress(b), s))],
    ['IpamDriver.ReleaseAddress', addr((b, s) => ipam.releaseAddress(parseReleaseAddress(b), s))],
  ]);
}

export function createPluginHandler(routes: ReadonlyMap<string, PluginRoute>, log: (line: string) => void = () => {}): RequestListener {
  return (req, res) => {
    void handle(routes, log, req, res).catch((err) => {
      log(`plugin request failed: ${messageOf(err)}`);
      if (!res.headersSent) answer(res, 500, { Err: `internal error: ${messageOf(err)}` });
      else res.destroy();
    });
  };
}

async function handle(routes: ReadonlyMap<string, PluginRoute>, log: (line: string) => void, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = (req.url ?? '/').replace(/^\//, '').split('?')[0]!;
  const route = req.method === 'POST' ? routes.get(method) : undefined;
  if (!route) {
    req.resume();
    answer(res, 404, { Err: `the vxnet plugin does not implement ${req.method} /${method}.` });
    return;
  }
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(new Error('the Docker engine closed the connection'));
  });
  let body: unknown;
  try {
    let text: string;
    try {
      text = await readBody(req, res);
    } catch (err) {
      throw err instanceof BodyTooLargeError ? new PluginRequestError(`${method}: ${err.message}`) : err;
    }
    try {
      body = text.trim() === '' ? {} : JSON.parse(text);
    } catch (err) {
      throw new PluginRequestError(`${method}: the body is not JSON (${messageOf(err)}).`);
    }
    const result = await route.run(body, abort.signal);
    answer(res, 200, result ?? {});
  } catch (err) {
    if (err instanceof PluginRequestError) {
      log(`plugin ${method}: malformed request: ${err.message}`);
      answer(res, 400, { [route.errorField]: err.message });
      return;
    }
    const message = err instanceof VxnetError ? err.message : `vxnet plugin error: ${messageOf(err)}`;
    log(`plugin ${method} refused: ${message}`);
    answer(res, 200, { [route.errorField]: message });
  }
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  sendJson(res, status, body, PLUGIN_CONTENT_TYPE);
}

export interface PluginServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/**
 * Serves the plugin on a unix socket (its folder is created; a stale socket from an earlier run is
 * replaced, anything else at the path is refused). Removes the socket on close.
 */
export async function servePlugin(socketPath: string, handler: RequestListener): Promise<PluginServer> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  // Docker keeps connections to plugins open; they must not hold the agent up when it stops
  const server = createServer({ keepAliveTimeout: 60_000 }, handler);
  const address = { kind: 'unix', path: socketPath } as const;
  await listenOn(server, address);
  return { socketPath, close: () => closeServer(server, address) };
}
