/**
 * The dashboard server of `vxnet ui`: serves one page and an event stream of DashboardViews, on loopback, with
 * the CLI's own credentials. Why not in the manager: a browser page there would need a second way to log in
 * (cookies, CSRF defences) on the address every agent talks to; here the admin token never reaches the
 * browser, and the manager's API stays the only door.
 *
 * What guards it, since any local process can reach a loopback port:
 * - a session secret, random per start, in the URL the command prints: every request without it gets 403;
 * - the Host header must be the address it listens on, so a web page elsewhere cannot reach it through a
 *   DNS name rebound to 127.0.0.1 (and read the cluster with the secret it does not have anyway);
 * - a Content-Security-Policy that allows only the page's own script (by nonce) and connections to itself.
 *
 * The manager is asked (its four lists) every `pollMs` while at least one page is open, and each page gets
 * a new view only when something changed; with no page open it is not asked at all.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { ManagerClient } from '../client/client.ts';
import { closeServer, listenOn, type ListenAddress } from '../http/server.ts';
import { dashboardPage } from './page.ts';
import { dashboardView } from './view.ts';

export interface DashboardOptions {
  listen: ListenAddress & { kind: 'tcp' };
  client: ManagerClient;
  /** how often the manager is asked while a page is open (default 2 s) */
  pollMs?: number;
  now?: () => Date;
}

export interface Dashboard {
  /** the URL to open, session secret included */
  readonly url: string;
  close(): Promise<void>;
}

const DEFAULT_POLL_MS = 2_000;
/** Keeps idle event streams from being cut by proxies or the browser: an SSE comment line. */
const KEEPALIVE_MS = 15_000;

function sameSecret(given: string | null, secret: string): boolean {
  if (given === null || given.length !== secret.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(secret));
}

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const secret = randomBytes(24).toString('base64url');
  const now = options.now ?? (() => new Date());
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const streams = new Set<ServerResponse>();
  let last: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  let bound = '';

  const send = (res: ServerResponse, data: string): void => {
    res.write(`data: ${data}\n\n`);
  };

  const poll = async (): Promise<void> => {
    if (polling) return;
    polling = true;
    try {
      const { client } = options;
      const [info, nodes, networks, endpoints] = await Promise.all([client.info(), client.listNodes(), client.listNetworks(), client.listEndpoints()]);
      const { at, ...rest } = dashboardView(info, nodes, networks, endpoints, now());
      const unchanged = JSON.stringify(rest);
      if (unchanged === last) return;
      last = unchanged;
      const data = JSON.stringify({ ...rest, at });
      for (const res of streams) send(res, data);
    } catch (err) {
      last = undefined;
      const data = JSON.stringify({ error: `the manager could not be asked: ${err instanceof Error ? err.message : String(err)}` });
      for (const res of streams) send(res, data);
    } finally {
      polling = false;
    }
  };

  const startPolling = (): void => {
    timer ??= setInterval(() => void poll(), pollMs);
  };
  const stopPolling = (): void => {
    if (timer) clearInterval(timer);
    timer = undefined;
    last = undefined;
  };

  const refuse = (res: ServerResponse, status: number, text: string): void => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(`${text}\n`);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const host = req.headers.host ?? '';
    if (host !== bound && host !== bound.replace(/^127\.0\.0\.1:/, 'localhost:')) {
      refuse(res, 421, 'this dashboard answers only at the address vxnet ui printed');
      return;
    }
    const url = new URL(req.url ?? '/', `http://${bound}`);
    if (!sameSecret(url.searchParams.get('session'), secret)) {
      refuse(res, 403, 'open the URL vxnet ui printed: it carries the session secret');
      return;
    }
    if (req.method !== 'GET') {
      refuse(res, 405, 'use GET');
      return;
    }
    if (url.pathname === '/') {
      const nonce = randomBytes(16).toString('base64');
      const page = dashboardPage(nonce);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(page),
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
        'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
      });
      res.end(page);
      return;
    }
    if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': vxnet dashboard\n\n');
      streams.add(res);
      const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
      res.on('close', () => {
        clearInterval(keepalive);
        streams.delete(res);
        if (streams.size === 0) stopPolling();
      });
      // a new page gets the current view at once, not at the next change
      last = undefined;
      startPolling();
      void poll();
      return;
    }
    refuse(res, 404, 'not found');
  };

  const server = createServer(handle);
  bound = await listenOn(server, options.listen);
  return {
    url: `http://${bound}/?session=${secret}`,
    async close() {
      stopPolling();
      for (const res of streams) res.end();
      await closeServer(server, options.listen);
    },
  };
}
