/**
 * `vxnet demo`: the hands-on two-host VXLAN tutorial, automated on this one machine. Two simulated hosts
 * (network namespaces on a shared underlay) run a real manager and real agents; two networks (VNI 1000
 * and VNI 2000) get one container on each host; then every container pings every other one and the
 * "outside" namespace, and the result is printed as a matrix.
 */
import { ManagerClient } from '../client/client.ts';
import { messageOf } from '../core/errors.ts';
import { createCluster, type Cluster } from '../testkit/cluster.ts';
import { defaultTools, isRoot, missingTools } from '../testkit/preflight.ts';

interface DemoContainer {
  label: string;
  netns: string;
  host: string;
  network: string;
  ip: string;
}

export async function runDemo(options: { keep: boolean; log: (line: string) => void }, signal: AbortSignal): Promise<number> {
  const { log } = options;
  if (!isRoot()) {
    log('vxnet demo: run as root — it creates network namespaces and programs the kernel.');
    return 1;
  }
  const missing = missingTools(defaultTools);
  if (missing.length > 0) {
    for (const line of missing) log(`vxnet demo: ${line}`);
    return 1;
  }

  log('Building 2 simulated hosts (network namespaces on a shared underlay 10.99.0.0/24) ...');
  const cluster = await createCluster({ hosts: 2, outside: true, prefix: 'vxdemo' });
  try {
    const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    log(`Manager on ${cluster.manager.url}; agents on ${cluster.hosts.map((h) => `${h.name} (${h.address})`).join(', ')}`);

    for (const [name, vni, subnet] of [
      ['blue', 1000, '192.168.1.0/24'],
      ['red', 2000, '192.168.2.0/24'],
    ] as const) {
      const network = await client.createNetwork({ name, vni, subnets: [{ cidr: subnet }] }, signal);
      log(`network ${network.name}: VNI ${network.vni}, ${network.subnets[0]!.cidr}, MTU ${network.mtu}`);
    }

    const containers: DemoContainer[] = [];
    const plan = [
      ['c1', 0, 'blue'],
      ['c2', 0, 'red'],
      ['c3', 1, 'blue'],
      ['c4', 1, 'red'],
    ] as const;
    for (const [label, hostIndex, network] of plan) {
      const host = cluster.hosts[hostIndex]!;
      const netns = await cluster.addContainer(label);
      const started = performance.now();
      const endpoint = await client.createEndpoint({ network, node: host.name, netns }, { waitSeconds: 30 }, signal);
      log(
        `attached ${label} on ${host.name} to ${network}: ${endpoint.ip}/${endpoint.prefix} ` +
          `(ready in ${(performance.now() - started).toFixed(0)} ms)`,
      );
      containers.push({ label, netns, host: host.name, network, ip: endpoint.ip });
    }

    const matrix = await connectivityMatrix(cluster, containers);
    const egress = await Promise.all(
      containers.map(async (c) => ({ c, ok: await pings(cluster, c.netns, cluster.outside!.address) })),
    );

    log('');
    log('Connectivity (ping from row to column):');
    const width = 16;
    log(''.padEnd(width) + containers.map((c) => `${c.label}/${c.network}`.padEnd(width)).join(''));
    let correct = true;
    for (const from of containers) {
      let row = `${from.label}@${from.host}`.padEnd(width);
      for (const to of containers) {
        if (from === to) {
          row += '-'.padEnd(width);
          continue;
        }
        const ok = matrix.get(`${from.label}>${to.label}`) ?? false;
        const expected = from.network === to.network;
        if (ok !== expected) correct = false;
        row += `${ok ? 'reachable' : 'blocked'}${ok === expected ? '' : ' (!)'}`.padEnd(width);
      }
      log(row);
    }
    log('');
    log(`Egress to the outside (${cluster.outside!.address}, through NAT on each container's own host):`);
    for (const { c, ok } of egress) {
      log(`  ${c.label} (${c.network}) -> outside: ${ok ? 'reachable' : 'blocked (!)'}`);
      if (!ok) correct = false;
    }
    log('');
    log(
      correct
        ? 'Result: same VNI reachable across hosts, different VNI blocked, egress works.'
        : 'Result: UNEXPECTED — see the cells marked (!).',
    );
    if (options.keep) {
      log('');
      log(`--keep: the cluster stays up. Namespaces: ${[cluster.switchNetns, ...cluster.hosts.map((h) => h.netns)].join(' ')} ...`);
      log(`  export VXNET_MANAGER=${cluster.cliEnv().VXNET_MANAGER} VXNET_TOKEN_FILE=${cluster.manager.dataDir}/admin.token`);
      log(`  then e.g. "npx vxnet network inspect blue"; "ip netns exec ${containers[0]!.netns} ping ${containers[2]!.ip}".`);
      log('  Press Ctrl-C to tear everything down.');
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    }
    return correct ? 0 : 1;
  } catch (err) {
    log(`vxnet demo failed: ${messageOf(err)}`);
    log(cluster.daemonLogs());
    return 1;
  } finally {
    await cluster.destroy();
    log('Torn down: no namespace, device or process of the demo is left.');
  }
}

async function connectivityMatrix(cluster: Cluster, containers: DemoContainer[]): Promise<Map<string, boolean>> {
  const results = new Map<string, boolean>();
  await Promise.all(
    containers.flatMap((from) =>
      containers
        .filter((to) => to !== from)
        .map(async (to) => results.set(`${from.label}>${to.label}`, await pings(cluster, from.netns, to.ip))),
    ),
  );
  return results;
}

async function pings(cluster: Cluster, netns: string, address: string): Promise<boolean> {
  const result = await cluster.exec(netns, ['ping', '-c', '2', '-i', '0.2', '-W', '1', '-q', address]);
  return result.code === 0;
}
