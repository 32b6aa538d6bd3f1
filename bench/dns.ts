/**
 * The DNS section of `npm run bench` (vxnet issue 12): queries per second and latency from one container
 * namespace to its network's gateway, for a name of a container on the other host, against a reference on
 * the same path: a bare UDP responder in the same host namespace on the same gateway address (port 5353)
 * that turns each query into an empty answer without looking at it. The ratio says what vxnet's decoding,
 * lookup and encoding cost on top of Node's UDP and the kernel's path. Rounds alternate between the two.
 */
import { join } from 'node:path';
import { ManagerClient } from '../src/client/client.ts';
import { createCluster } from '../src/testkit/cluster.ts';
import { distribution, fixed, median, ratio } from './stats.ts';

const REFLECTOR_PORT = 5353;
/** Flips the QR bit of whatever arrives and sends it back: the least a DNS server can do. */
const REFLECTOR = `
const socket = require('node:dgram').createSocket('udp4');
socket.on('message', (m, from) => { m[2] |= 0x80; socket.send(m, from.port, from.address); });
socket.bind(${REFLECTOR_PORT}, process.argv[1], () => console.log('listening'));
`;

export interface DnsBenchOptions {
  queries: number;
  concurrency: number;
  rounds: number;
  log: (line: string) => void;
}

interface Round {
  qps: number;
  latencies: number[];
  lost: number;
}

export async function dnsBench(options: DnsBenchOptions): Promise<{ json: unknown; markdown: string[] }> {
  const { queries, concurrency, rounds, log } = options;
  log(`dns: ${rounds} rounds of ${queries} queries, ${concurrency} in flight, from one namespace to its gateway ...`);
  const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxdnsb', daemonTimeoutMs: 60_000 });
  const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  try {
    await client.createNetwork({ name: 'dnsbench', subnets: [{ cidr: '10.78.0.0/24' }] });
    const web = await cluster.addContainer('web');
    await client.createEndpoint({ network: 'dnsbench', node: 'host2', netns: web, name: 'web' }, { waitSeconds: 30 });
    const asker = await cluster.addContainer('asker');
    await client.createEndpoint({ network: 'dnsbench', node: 'host1', netns: asker }, { waitSeconds: 30 });
    const gateway = '10.78.0.1';
    const reflector = cluster.spawn(cluster.host(1).netns, [process.execPath, '-e', REFLECTOR, gateway], { label: 'reflector' });
    await reflector.waitFor(/listening/, 10_000);
    const load = async (port: number): Promise<Round> => {
      const argv = [process.execPath, join(import.meta.dirname, 'dns-load.ts'), gateway, String(port), 'web', String(queries), String(concurrency)];
      const result = await cluster.exec(asker, argv, { timeoutMs: 300_000 });
      if (result.code !== 0) throw new Error(`dns-load failed: ${result.stderr}`);
      return JSON.parse(result.stdout) as Round;
    };
    // one small round each first, so that neither side pays its warm-up in the figures
    await load(53);
    await load(REFLECTOR_PORT);
    const vxnet: Round[] = [];
    const reference: Round[] = [];
    for (let i = 0; i < rounds; i++) {
      vxnet.push(await load(53));
      reference.push(await load(REFLECTOR_PORT));
      log(`  round ${i + 1}: vxnet ${Math.round(vxnet.at(-1)!.qps)} q/s, reflector ${Math.round(reference.at(-1)!.qps)} q/s`);
    }
    await reflector.stop();
    const summary = (r: Round[]) => {
      const all = distribution(r.flatMap((x) => x.latencies));
      return { qps: median(r.map((x) => x.qps)), p50Ms: all.p50, p99Ms: all.p99, lost: r.reduce((n, x) => n + x.lost, 0) };
    };
    const v = summary(vxnet);
    const ref = summary(reference);
    return {
      json: { queries, concurrency, rounds, vxnet: v, reference: ref },
      markdown: [
        `### DNS on the gateway (one namespace, ${concurrency} queries in flight, ${rounds} rounds of ${queries}; measured under load)`,
        '',
        '| responder | queries/s (median round) | p50 ms | p99 ms | lost |',
        '| --- | --- | --- | --- | --- |',
        `| vxnet (\`web\`, a container on the other host) | ${Math.round(v.qps)} | ${fixed(v.p50Ms, 2)} | ${fixed(v.p99Ms, 2)} | ${v.lost} |`,
        `| bare UDP reflector, same address (reference) | ${Math.round(ref.qps)} | ${fixed(ref.p50Ms, 2)} | ${fixed(ref.p99Ms, 2)} | ${ref.lost} |`,
        '',
        `vxnet answers at ${ratio(v.qps, ref.qps)} the reference's rate; a name change costs one watch line per host of the network (test/unit/dns-names.test.ts).`,
        '',
      ],
    };
  } finally {
    client.close();
    await cluster.destroy();
  }
}
