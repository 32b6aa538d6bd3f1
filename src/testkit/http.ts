/**
 * A minimal JSON-over-HTTP client for the test kit, speaking to the manager over TCP (`http://ADDR:PORT`)
 * or its unix socket (`unix:/path`). The kit uses it to wait for the manager and the agents; tests may use
 * it to look at the API directly. It does not interpret error bodies: the answer's status is returned.
 */
import { request } from 'node:http';
import { readBounded } from '../http/client.ts';

export interface JsonResponse<T = unknown> {
  status: number;
  /** parsed JSON, or undefined for an empty body */
  body: T;
  /** the raw text, for messages */
  text: string;
}

export interface JsonRequestOptions {
  url: string;
  token?: string;
  method?: string;
  path: string;
  body?: unknown;
  /** sent as it is instead of `body` (malformed or oversized input for tests of the API's edge) */
  rawBody?: string;
  timeoutMs?: number;
}

export function requestJson<T = unknown>(options: JsonRequestOptions): Promise<JsonResponse<T>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  let target: { socketPath: string } | { hostname: string; port: number };
  if (options.url.startsWith('unix:')) {
    target = { socketPath: options.url.slice('unix:'.length) };
  } else {
    const url = new URL(options.url);
    if (url.protocol !== 'http:') throw new Error(`unsupported manager URL ${options.url}`);
    target = { hostname: url.hostname, port: Number(url.port || 80) };
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { ...target, method: options.method ?? 'GET', path: options.path, headers, timeout: timeoutMs, agent: false },
      (res) => {
        readBounded(res).then((text) => {
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            reject(new Error(`${options.method ?? 'GET'} ${options.path}: answer is not JSON (status ${res.statusCode}): ${text.slice(0, 200)}`));
            return;
          }
          resolve({ status: res.statusCode ?? 0, body: body as T, text });
        }, reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${options.path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
