/**
 * Reachability prober, run inside a container namespace. Reads target addresses on stdin, one per line,
 * and for each keeps trying a TCP connection to a closed port until the target answers (a RST, i.e.
 * ECONNREFUSED, proves the path both ways as well as an accept would), then prints "ADDRESS MILLISECONDS"
 * measured from when the line arrived. Gives up after 10 s ("ADDRESS timeout").
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const PORT = 9;
const ATTEMPT_MS = 25;

function attempt(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: PORT });
    const timer = setTimeout(() => finish(false), ATTEMPT_MS);
    socket.once('connect', () => finish(true));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED'));
    function finish(ok: boolean) {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    }
  });
}

for await (const line of createInterface({ input: process.stdin })) {
  const address = line.trim();
  if (!address) continue;
  const started = performance.now();
  let result = 'timeout';
  while (performance.now() - started < 10_000) {
    if (await attempt(address)) {
      result = (performance.now() - started).toFixed(2);
      break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  process.stdout.write(`${address} ${result}\n`);
}
