/**
 * The `vxnet-cni` executable: the process around plugin.ts. It reads stdin, talks HTTP to the agent's unix
 * socket and prints the result. It loads nothing but node:http and the two protocol modules: a runtime
 * starts it for every verb of every container (podman: VERSION, ADD, VERSION, DEL).
 */
import type { CniAgentBody } from './agent-api.ts';
import { runPlugin } from './plugin.ts';

/** ADD waits for the agent, which waits for the manager to confirm the endpoint ready (up to 30 s). */
const AGENT_TIMEOUT_MS = 60_000;

function post(socket: string, path: string, body: CniAgentBody): Promise<{ status: number; body: unknown }> {
  const http = process.getBuiltinModule('node:http');
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: socket, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }, timeout: AGENT_TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try {
            parsed = raw === '' ? null : JSON.parse(raw);
          } catch {
            // a body that is not JSON: the status alone speaks
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${AGENT_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end(text);
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const outcome = await runPlugin(process.env, await readStdin(), post);
if (outcome.stderr !== undefined) process.stderr.write(`${outcome.stderr}\n`);
process.stdout.write(outcome.stdout);
process.exitCode = outcome.exitCode;
