/**
 * Many raw requests to the manager's TLS listener as fast as one process sends them, run by the security
 * tests inside a host namespace: what an attacker holding a node certificate does to exhaust a subnet.
 * Argument: JSON {url, ca, cert, key, count, concurrency, method, path, bodies: unknown[] | body}, with
 * ca/cert/key as file paths; request i sends bodies[i] (or body). Prints JSON {answers: [[status, code]...],
 * ms}.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  ca: string;
  cert: string;
  key: string;
  count: number;
  concurrency: number;
  method: string;
  path: string;
  body?: unknown;
  bodies?: unknown[];
};
const target = new URL(args.url);
const agent = new Agent({ keepAlive: true, maxSockets: args.concurrency });
const tls = { ca: [readFileSync(args.ca, 'utf8')], cert: readFileSync(args.cert, 'utf8'), key: readFileSync(args.key, 'utf8') };

function one(i: number): Promise<[number, string | undefined]> {
  const text = JSON.stringify(args.bodies?.[i] ?? args.body);
  return new Promise((resolve) => {
    const req = request(
      { host: target.hostname, port: Number(target.port), path: args.path, method: args.method, agent, ...tls, headers: { 'content-type': 'application/json' } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => resolve([res.statusCode ?? 0, data === '' ? undefined : (JSON.parse(data) as { error?: { code?: string } }).error?.code]));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve([0, err.code ?? err.message]));
    req.end(text);
  });
}

const started = performance.now();
const answers: [number, string | undefined][] = new Array(args.count);
let next = 0;
await Promise.all(
  Array.from({ length: args.concurrency }, async () => {
    while (next < args.count) {
      const i = next++;
      answers[i] = await one(i);
    }
  }),
);
agent.destroy();
console.log(JSON.stringify({ answers, ms: Math.round(performance.now() - started) }));
