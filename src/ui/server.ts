/**
 * `vxnet ui`'s web server: the dashboard page (page.ts) and its view (view.ts), on a loopback address of
 * the operator's machine. Why here and not on the manager: the manager's listeners face the cluster's
 * network, and a browser page there would need the admin credential in the browser (a cookie is open to
 * cross-site requests, a stored token to any script injection). Here the admin token stays in the CLI
 * process, which asks the manager only for reads; the browser gets a read-only view and nothing it could
 * send would change the cluster. Other users and pages of the same machine are kept out by a random secret
 * in every path (printed once, like a Jupyter token), a Host header that must name the listener (against DNS
 * rebinding), and a Content-Security-Policy that allows only this origin's own script.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { closeServer, listenOn, type ListenAddress } from '../http/server.ts';
import { isLoopback } from './loopback.ts';
import { PAGE_CSS, PAGE_HTML, PAGE_ICON, PAGE_SCRIPT } from './page.ts';
import type { DashboardView } from './view.ts';

export interface DashboardServer {
  /** the page, with its secret: http://127.0.0.1:PORT/SECRET/ */
  readonly url: string;
  close(): Promise<void>;
}

export interface DashboardOptions {
  listen: ListenAddress & { kind: 'tcp' };
  /** reads the cluster (the manager's answers) and builds the view */
  view: () => Promise<DashboardView>;
  /** the path secret (default: 128 random bits) */
  secret?: string;
  /** the view is read at most this often, however many tabs poll (default 1 s) */
  minIntervalMs?: number;
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const FILES: Record<string, { type: string; body: string }> = {
  '': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  'style.css': { type: 'text/css; charset=utf-8', body: PAGE_CSS },
  'app.js': { type: 'text/javascript; charset=utf-8', body: PAGE_SCRIPT },
  'icon.svg': { type: 'image/svg+xml', body: PAGE_ICON },
};

export async function serveDashboard(options: DashboardOptions): Promise<DashboardServer> {
  if (!isLoopback(options.listen.host)) throw new Error('the dashboard listens on a loopback address only (127.0.0.1 or ::1).');
  const secret = Buffer.from(options.secret ?? randomBytes(16).toString('base64url'));
  const minInterval = options.minIntervalMs ?? 1000;
  let cached: { at: number; view: Promise<DashboardView> } | undefined;
  const current = (): Promise<DashboardView> => {
    const now = performance.now();
    if (!cached || now - cached.at >= minInterval) {
      const view = options.view();
      cached = { at: now, view };
      // a failure is not kept: the next poll asks again
      view.catch(() => {
        if (cached?.view === view) cached = undefined;
      });
    }
    return cached.view;
  };
  let bound = '';
  const server = createServer((req, res) => {
    const refuse = (status: number, text: string) => send(res, status, 'text/plain; charset=utf-8', `${text}\n`);
    if (req.headers.host !== bound) return refuse(421, 'this dashboard answers only to its own address');
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(405, 'the dashboard is read-only: use GET');
    const path = (req.url ?? '/').split('?')[0]!;
    const match = /^\/([^/]+)\/(.*)$/.exec(path);
    const given = match ? Buffer.from(match[1]!) : Buffer.alloc(0);
    if (!match || given.length !== secret.length || !timingSafeEqual(given, secret)) return refuse(404, 'not found');
    const name = match[2]!;
    if (name === 'view.json') {
      current().then(
        (view) => send(res, 200, 'application/json; charset=utf-8', JSON.stringify(view), req.method === 'HEAD'),
        (err: unknown) => send(res, 502, 'application/json; charset=utf-8', JSON.stringify({ error: err instanceof Error ? err.message : String(err) })),
      );
      return;
    }
    const file = FILES[name];
    if (!file) return refuse(404, 'not found');
    send(res, 200, file.type, file.body, req.method === 'HEAD');
  });
  server.requestTimeout = 30_000;
  bound = await listenOn(server, options.listen);
  return {
    url: `http://${bound}/${secret.toString()}/`,
    close: () => closeServer(server, options.listen),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string, head = false): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}
