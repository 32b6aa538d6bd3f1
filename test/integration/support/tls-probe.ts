/**
 * One raw request to the manager's TLS listener, run by the security tests inside a host namespace (the
 * listener is only reachable from there). Argument: JSON {url, path, method?, ca, cert?, key?, token?,
 * body?}, with ca/cert/key as file paths. Prints JSON {status, body} or, when no HTTP answer came, {error}.
 * Raw node:https on purpose: the test wants the status the manager answers, not a client's interpretation.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  path: string;
  method?: string;
  ca: string;
  cert?: string;
  key?: string;
  token?: string;
  body?: unknown;
};
const target = new URL(args.url);
const text = args.body === undefined ? undefined : JSON.stringify(args.body);
const req = request(
  {
    host: target.hostname,
    port: Number(target.port),
    path: args.path,
    method: args.method ?? 'GET',
    ca: [readFileSync(args.ca, 'utf8')],
    ...(args.cert && args.key ? { cert: readFileSync(args.cert, 'utf8'), key: readFileSync(args.key, 'utf8') } : {}),
    headers: {
      ...(args.token ? { authorization: `Bearer ${args.token}` } : {}),
      ...(text === undefined ? {} : { 'content-type': 'application/json' }),
    },
    agent: false,
    timeout: 5000,
  },
  (res) => {
    let data = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      data += chunk;
      // a watch stream that was admitted: its first line is enough
      if (res.statusCode === 200 && res.headers['content-type'] === 'application/x-ndjson' && data.includes('\n')) res.destroy();
    });
    const done = () => console.log(JSON.stringify({ status: res.statusCode, body: data === '' ? undefined : JSON.parse(data.split('\n')[0]!) }));
    res.on('end', done);
    res.on('close', () => {
      if (!res.complete) done();
    });
  },
);
req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
req.on('error', (err: NodeJS.ErrnoException) => console.log(JSON.stringify({ error: err.code ?? err.message })));
req.end(text);
