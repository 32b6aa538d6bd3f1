/**
 * The test kit itself: the simulated underlay works, and nothing of a run survives it — not after
 * destroy(), not after a failed createCluster, not after the process exits or is terminated without
 * destroying. Needs root (network namespaces).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { cleanupStale, createCluster, withCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { listNetns } from '../../src/testkit/netns.ts';
import { isRoot, missingTools } from '../../src/testkit/preflight.ts';
import type { NodeStatus } from '../../src/core/model.ts';

const CLUSTER_MODULE = join(import.meta.dirname, '../../src/testkit/cluster.ts');
const skip = !isRoot() ? 'needs root' : missingTools().length > 0 ? missingTools().join('; ') : false;

function namespacesOf(runId: string): string[] {
  return listNetns().filter((name) => name.includes(`-${runId}-`));
}

function namespacesOfThisProcess(prefix: string): string[] {
  return listNetns().filter((name) => name.startsWith(`${prefix}-${process.pid}`));
}

async function ping(cluster: Cluster, netns: string, address: string, extra: string[] = []): Promise<boolean> {
  const result = await cluster.exec(netns, ['ping', '-c', '1', '-W', '2', ...extra, address]);
  return result.code === 0;
}

describe('test kit', { skip }, () => {
  it('builds hosts on one switch that reach each other, the switch and the outside over an underlay with the given MTU', async (t) => {
    // a namespace named like another live run of this process: destroy() must leave it alone
    const neighbour = `vxt-${process.pid}zzz-h1`;
    spawnSync('ip', ['netns', 'add', neighbour]);
    const started = performance.now();
    const cluster = await createCluster({ hosts: 3, underlayMtu: 1400, startDaemons: false });
    const built = performance.now();
    let destroyedAt = 0;
    try {
      assert.match(cluster.runId, new RegExp(`^${process.pid}[a-z]{3}$`));
      assert.equal(cluster.hosts.length, 3);
      assert.deepEqual(
        cluster.hosts.map((h) => [h.name, h.address, h.underlayDevice]),
        [
          ['host1', '10.99.0.11', 'eth0'],
          ['host2', '10.99.0.12', 'eth0'],
          ['host3', '10.99.0.13', 'eth0'],
        ],
      );
      assert.ok(cluster.outside);
      const outside = cluster.outside;
      const mine = [cluster.switchNetns, ...cluster.hosts.map((h) => h.netns), outside.netns];
      assert.deepEqual(namespacesOf(cluster.runId).sort(), [...mine].sort());
      for (const name of mine) assert.ok(name.length <= 24, `${name} is short`);

      // every host reaches every other host, the switch and the outside (and the outside's "internet" address
      // through its default route)
      const checks: [string, string, string][] = [];
      for (const from of cluster.hosts) {
        for (const to of cluster.hosts) if (to !== from) checks.push([from.name, from.netns, to.address]);
        checks.push([from.name, from.netns, '10.99.0.1'], [from.name, from.netns, outside.address]);
        checks.push([from.name, from.netns, outside.internetAddress]);
      }
      checks.push(['outside', outside.netns, '10.99.0.11']);
      const results = await Promise.all(checks.map(async ([name, netns, to]) => [name, to, await ping(cluster, netns, to)] as const));
      assert.deepEqual(results.filter(([, , ok]) => !ok), [], 'pings that failed');

      // the underlay MTU is on every link, and it is the real limit: 1400 - 20 (IPv4) - 8 (ICMP) fits, one more does not
      for (const host of cluster.hosts) {
        const link = await cluster.exec(host.netns, ['ip', '-j', 'link', 'show', 'eth0']);
        assert.equal(link.code, 0, link.stderr);
        assert.equal((JSON.parse(link.stdout) as { mtu: number }[])[0]?.mtu, 1400);
      }
      const bridge = await cluster.exec(cluster.switchNetns, ['ip', '-j', '-d', 'link', 'show', 'br0']);
      const br = (JSON.parse(bridge.stdout) as { mtu: number; linkinfo: { info_data: { mcast_snooping: number } } }[])[0];
      assert.equal(br?.mtu, 1400);
      assert.equal(br?.linkinfo.info_data.mcast_snooping, 0);
      const host1 = cluster.host(1);
      const host2 = cluster.host('host2');
      assert.ok(await ping(cluster, host1.netns, host2.address, ['-M', 'do', '-s', '1372']));
      const tooBig = await cluster.exec(host1.netns, ['ping', '-c', '1', '-W', '1', '-M', 'do', '-s', '1373', host2.address]);
      assert.notEqual(tooBig.code, 0);

      // IPv6 is off unless asked for: quiet captures
      const v6 = await cluster.exec(host1.netns, ['sysctl', '-n', 'net.ipv6.conf.eth0.disable_ipv6']);
      assert.equal(v6.stdout.trim(), '1');

      // containers: empty namespaces with lo up
      const container = await cluster.addContainer('web');
      assert.equal(container, `vxt-${cluster.runId}-cweb`);
      assert.ok(listNetns().includes(container));
      const links = await cluster.exec(container, ['ip', '-j', 'link', 'show']);
      const parsed = JSON.parse(links.stdout) as { ifname: string; flags: string[] }[];
      assert.deepEqual(parsed.map((l) => l.ifname), ['lo']);
      assert.ok(parsed[0]?.flags.includes('UP'));
      await assert.rejects(cluster.addContainer('web'), /already exists/);

      // exec reports failures instead of throwing, and passes stdin
      const failed = await cluster.exec(host1.netns, ['ip', 'link', 'show', 'nosuchdev']);
      assert.notEqual(failed.code, 0);
      assert.match(failed.stderr, /nosuchdev/);
      const echoed = await cluster.exec(host1.netns, ['cat'], { input: 'hello' });
      assert.deepEqual([echoed.code, echoed.stdout], [0, 'hello']);
      const slow = await cluster.exec(host1.netns, ['sleep', '5'], { timeoutMs: 200 });
      assert.equal(slow.code, 124);

      // spawn: a long-running process whose output can be awaited, stopped on demand
      const pinger = cluster.spawn(host1.netns, ['ping', '-i', '0.2', host2.address]);
      await pinger.waitFor(/bytes from 10\.99\.0\.12/, 5000);
      const exit = await pinger.stop('SIGINT');
      assert.equal(exit.code, 0);
      assert.match(pinger.output(), /packets transmitted/);

      // a container can be removed on its own; a second one stays until destroy()
      await cluster.removeContainer(container);
      assert.ok(!listNetns().includes(container));
      await cluster.addContainer('db');
      // left running on purpose: destroy() must stop it, and whatever runs inside its namespaces
      const leftover = cluster.spawn(host2.netns, ['sleep', '600']);
      const orphan = await cluster.exec(host3(cluster), ['sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $!']);
      const orphanPid = Number(orphan.stdout.trim());
      assert.ok(orphanPid > 0);

      const tDestroy = performance.now();
      await cluster.destroy();
      destroyedAt = performance.now() - tDestroy;
      assert.ok(leftover.exitInfo, 'spawned process stopped');
      assert.equal(pidExists(orphanPid), false, 'process started inside a namespace killed');
      assert.deepEqual(namespacesOf(cluster.runId), []);
      assert.equal(existsSync(cluster.tmpDir), false);
      // nobody else's namespace was touched
      assert.ok(listNetns().includes(neighbour));
      // idempotent, and the cluster refuses new work
      await cluster.destroy();
      await assert.rejects(cluster.addContainer('late'), /destroyed/);
    } finally {
      await cluster.destroy();
      spawnSync('ip', ['netns', 'del', neighbour]);
    }
    t.diagnostic(`3 hosts + outside built in ${(built - started).toFixed(0)} ms, destroyed in ${destroyedAt.toFixed(0)} ms`);
  });

  it('rejects hosts: 0 with a clear error and builds nothing', async () => {
    const before = namespacesOfThisProcess('vxt');
    await assert.rejects(createCluster({ hosts: 0, startDaemons: false }), /hosts must be an integer from 1 to 200 \(got 0\)/);
    await assert.rejects(createCluster({ hosts: 1, underlayMtu: 20, startDaemons: false }), /underlayMtu/);
    await assert.rejects(createCluster({ hosts: 1, prefix: 'Bad-Prefix', startDaemons: false }), /prefix/);
    assert.deepEqual(namespacesOfThisProcess('vxt'), before);
  });

  it('removes everything it built when createCluster fails half-way (manager that cannot start)', async () => {
    const before = namespacesOfThisProcess('vxtf');
    await assert.rejects(
      createCluster({ hosts: 2, prefix: 'vxtf', cliPath: '/nonexistent/vxnet-main.ts', daemonTimeoutMs: 5000 }),
      (err: Error) => {
        assert.match(err.message, /createCluster failed: .*manager/);
        assert.match(err.message, /--- manager \(pid \d+, exit code \d+\) ---/, 'the daemon output is in the message');
        return true;
      },
    );
    assert.deepEqual(namespacesOfThisProcess('vxtf'), before);
  });

  it('withCluster destroys the cluster also when the callback throws', async () => {
    let runId = '';
    await assert.rejects(
      withCluster({ hosts: 1, outside: false, startDaemons: false }, async (cluster) => {
        runId = cluster.runId;
        assert.equal(cluster.outside, undefined);
        assert.equal(namespacesOf(runId).length, 2);
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.notEqual(runId, '');
    assert.deepEqual(namespacesOf(runId), []);
  });

  it('cleanupStale deletes namespaces of dead runs and leaves live runs alone', async () => {
    const dead = spawnSync('true').pid;
    assert.ok(dead && dead > 0);
    const deadNs = `vxts-${dead}abc-h1`;
    const liveNs = `vxts-${process.pid}abc-h1`;
    try {
      spawnSync('ip', ['netns', 'add', deadNs]);
      spawnSync('ip', ['netns', 'add', liveNs]);
      const removed = await cleanupStale('vxts');
      // (a concurrent run of this test may have removed deadNs first: that is cleanupStale doing its job)
      assert.ok(!removed.includes(liveNs));
      assert.ok(!listNetns().includes(deadNs));
      assert.ok(listNetns().includes(liveNs));
    } finally {
      spawnSync('ip', ['netns', 'del', deadNs]);
      spawnSync('ip', ['netns', 'del', liveNs]);
    }
  });

  for (const ending of ['process.exit', 'SIGTERM', 'SIGKILL'] as const) {
    const title =
      ending === 'SIGKILL'
        ? 'cleans up after a run killed with SIGKILL on the next cleanupStale (namespaces and processes)'
        : `deletes the run's namespaces and processes when the process ends by ${ending} without destroy()`;
    it(title, async () => {
      const script = [
        `import { createCluster } from ${JSON.stringify(CLUSTER_MODULE)};`,
        `const cluster = await createCluster({ hosts: 2, startDaemons: false, prefix: 'vxtx' });`,
        `await cluster.addContainer('a');`,
        `const sleeper = cluster.spawn(cluster.hosts[0].netns, ['sleep', '600']);`,
        `const orphan = await cluster.exec(cluster.hosts[1].netns, ['sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $!']);`,
        `console.log(cluster.runId, sleeper.pid, orphan.stdout.trim());`,
        ending === 'process.exit' ? `process.exit(3);` : `setInterval(() => {}, 1000);`,
      ].join('\n');
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const [runId, pids] = await new Promise<[string, number[]]>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /^(\d+[a-z]{3}) (\d+) (\d+)$/m.exec(stdout);
          if (match?.[1]) resolve([match[1], [Number(match[2]), Number(match[3])]]);
        });
        child.on('close', (code) => reject(new Error(`child exited (${code}) before printing its run id: ${stderr}`)));
      });
      assert.equal(namespacesOf(runId).length, 5, 'switch, 2 hosts, outside, container');
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, signal) => resolve({ code, signal })),
      );
      if (ending !== 'process.exit') child.kill(ending);
      const result = await exited;
      assert.deepEqual(result, ending === 'process.exit' ? { code: 3, signal: null } : { code: null, signal: ending });
      if (ending === 'SIGKILL') {
        // nothing could run in the killed process: the leftovers are found by the pid in their names
        // (a concurrent run of this file may get there first: its createCluster calls cleanupStale too)
        await cleanupStale('vxtx');
      }
      assert.deepEqual(namespacesOf(runId), []);
      assert.deepEqual(pids.filter(pidExists), [], 'processes of the run still alive');
    });
  }
});

describe('test kit with daemons', { skip }, () => {
  it('starts a manager in the switch and an agent per host; every host is a registered, live node', async (t) => {
    const timings: string[] = [];
    let runId = '';
    const started = performance.now();
    await withCluster({ hosts: 2 }, async (cluster) => {
      timings.push(`ready with daemons in ${(performance.now() - started).toFixed(0)} ms`);
      runId = cluster.runId;
      assert.equal(cluster.manager.url, 'https://10.99.0.1:7400');
      assert.match(cluster.manager.socketUrl, /^unix:\/.*manager\.sock$/);
      assert.ok(cluster.manager.adminToken && cluster.manager.workerToken);
      assert.notEqual(cluster.manager.adminToken, cluster.manager.workerToken);

      const nodes = await cluster.api<NodeStatus[]>('GET', '/v1/nodes');
      assert.equal(nodes.status, 200, nodes.text);
      assert.deepEqual(
        nodes.body.map((n) => [n.name, n.address, n.mtu, n.state]).sort(),
        [
          ['host1', '10.99.0.11', 1500, 'up'],
          ['host2', '10.99.0.12', 1500, 'up'],
        ],
        cluster.daemonLogs(),
      );

      // the CLI runs against the cluster with cliEnv()
      const listed = await cluster.cli(['node', 'ls', '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual((JSON.parse(listed.stdout) as NodeStatus[]).map((n) => n.name).sort(), ['host1', 'host2']);

      // kill -9 an agent and start it again: it registers anew
      const host1 = cluster.host(1);
      const before = cluster.daemon('host1/agent');
      const restartedAt = performance.now();
      await cluster.restartAgent(host1, 'SIGKILL');
      timings.push(`agent restarted (kill -9) in ${(performance.now() - restartedAt).toFixed(0)} ms`);
      assert.equal(before?.exitInfo?.signal, 'SIGKILL');
      assert.ok(cluster.daemon('host1/agent'));
      assert.notEqual(cluster.daemon('host1/agent'), before);

      // the manager keeps its tokens across a restart
      const { adminToken } = cluster.manager;
      await cluster.stopManager();
      assert.equal(cluster.daemon('manager'), undefined);
      await cluster.startManager();
      assert.equal(cluster.manager.adminToken, adminToken);

      const logs = cluster.daemonLogs();
      for (const label of ['manager', 'host1/agent', 'host2/agent']) assert.match(logs, new RegExp(`--- ${label} \\(pid \\d+`));
      assert.match(logs, /host1\/agent \(pid \d+, killed by SIGKILL\)/);
    });
    const destroyed = performance.now();
    assert.deepEqual(namespacesOf(runId), []);
    t.diagnostic(timings.join('; '));
    t.diagnostic(`total with teardown ${(destroyed - started).toFixed(0)} ms`);
  });
});

function host3(cluster: Cluster): string {
  return cluster.host(3).netns;
}

/** Alive and not a zombie waiting for its reaper. */
function pidExists(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}
