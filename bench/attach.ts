/**
 * Section 1 of bench/run.ts: `vxnet attach` → reachable from a container on another host, in the agent's
 * default layout (a namespace per network) and in the one without namespaces (`--no-network-namespaces`,
 * two more simulated hosts with a manager of their own), the attaches of both interleaved (the order
 * alternates every round) so that both see the same load on a shared machine.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ManagerClient } from '../src/client/client.ts';
import { createCluster, type Cluster } from '../src/testkit/cluster.ts';

export interface AttachSamples {
  /** attach start → reachable from host2, ms */
  reachable: number[];
  /** attach start → `vxnet attach` returned (the endpoint ready on its node), ms */
  ready: number[];
}

export interface AttachLayouts {
  namespaces: AttachSamples;
  hostLayout: AttachSamples;
}

interface Layout {
  cluster: Cluster;
  client: ManagerClient;
  samples: AttachSamples;
  targets: string[];
  prober?: ReturnType<typeof spawn>;
  answers?: AsyncIterator<string>;
}

/** `cluster`/`client`: the bench's two hosts (default layout); the other layout's hosts are made and removed here. */
export async function attachBothLayouts(cluster: Cluster, client: ManagerClient, attaches: number, log: (line: string) => void): Promise<AttachLayouts> {
  log(`attach → reachable: ${attaches} attaches on host1 per layout (a namespace per network, and none), probed from a container on host2 ...`);
  const other = await createCluster({ hosts: 2, outside: false, prefix: 'vxbenchh', agentArgs: ['--no-network-namespaces'] });
  const otherClient = new ManagerClient({ url: other.manager.socketUrl, token: other.manager.adminToken });
  const layouts: Layout[] = [
    { cluster, client, samples: { reachable: [], ready: [] }, targets: [] },
    { cluster: other, client: otherClient, samples: { reachable: [], ready: [] }, targets: [] },
  ];
  try {
    for (const layout of layouts) {
      await layout.client.createNetwork({ name: 'bench', subnets: [{ cidr: '10.77.0.0/16' }] });
      const probeNetns = await layout.cluster.addContainer('probe');
      await layout.client.createEndpoint({ network: 'bench', node: 'host2', netns: probeNetns });
      // Resolve unknown neighbours quickly: the prober's ARP for a not-yet-programmed peer is retried
      // every 10 ms instead of every second, so the figure measures vxnet, not the ARP timer.
      await layout.cluster.exec(probeNetns, ['sysctl', '-qw', 'net.ipv4.neigh.eth0.retrans_time_ms=10', 'net.ipv4.neigh.eth0.mcast_solicit=100']);
      for (let i = 0; i < attaches; i++) layout.targets.push(await layout.cluster.addContainer(`a${i}`));
      layout.prober = spawn('ip', ['netns', 'exec', probeNetns, process.execPath, join(import.meta.dirname, 'probe.ts')], { stdio: ['pipe', 'pipe', 'inherit'] });
      layout.answers = createInterface({ input: layout.prober.stdout! })[Symbol.asyncIterator]();
    }
    for (let i = 0; i < attaches; i++) {
      for (const layout of i % 2 === 0 ? layouts : [...layouts].reverse()) {
        const ip = `10.77.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`;
        const started = performance.now();
        layout.prober!.stdin!.write(`${ip}\n`);
        await layout.client.createEndpoint({ network: 'bench', node: 'host1', netns: layout.targets[i]!, ip });
        layout.samples.ready.push(performance.now() - started);
        const answer = (await layout.answers!.next()).value as string;
        const ms = Number(answer.split(' ')[1]);
        if (!Number.isFinite(ms)) throw new Error(`${ip} never became reachable from host2`);
        layout.samples.reachable.push(ms);
      }
      if ((i + 1) % 25 === 0) log(`  ${i + 1} of ${attaches} attaches per layout`);
    }
    for (const layout of layouts) {
      layout.prober!.kill();
      for (const ep of await layout.client.listEndpoints({ network: 'bench' })) await layout.client.deleteEndpoint(ep.id);
      await layout.client.removeNetwork('bench');
    }
  } finally {
    for (const layout of layouts) layout.prober?.kill();
    otherClient.close();
    await other.destroy();
  }
  return { namespaces: layouts[0]!.samples, hostLayout: layouts[1]!.samples };
}
