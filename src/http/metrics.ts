/**
 * The plain-HTTP `/metrics` listener of `--metrics-listen ADDR:PORT` (manager and agent): Prometheus
 * scrapes it without credentials, so it is meant for localhost or a scrape network, and it serves nothing
 * else. The figures are counts and durations, never names of tokens or keys.
 */
import { createServer } from 'node:http';
import { METRICS_CONTENT_TYPE, type Registry } from '../core/metrics.ts';
import { closeServer, listenOn, parseListen } from './server.ts';

export interface MetricsListener {
  /** what was bound, e.g. "127.0.0.1:9476" */
  readonly address: string;
  close(): Promise<void>;
}

/** A scrape that takes longer than this is cut: a slow collector must not pile connections up. */
const SCRAPE_TIMEOUT_MS = 10_000;

export async function serveMetrics(listen: string, registry: Registry): Promise<MetricsListener> {
  const address = parseListen(listen);
  if (address.kind !== 'tcp') throw new Error(`--metrics-listen ${listen}: Prometheus scrapes over TCP; use ADDR:PORT.`);
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only /metrics is served here\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('use GET\n');
      return;
    }
    registry.render().then(
      (text) => {
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      () => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collecting the metrics failed\n'),
    );
  });
  server.requestTimeout = SCRAPE_TIMEOUT_MS;
  server.headersTimeout = SCRAPE_TIMEOUT_MS;
  const bound = await listenOn(server, address);
  return { address: bound, close: () => closeServer(server, address) };
}
