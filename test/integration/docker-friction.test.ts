/**
 * What a new user met with Docker (vxnet issue 17), each with real engines on two simulated hosts: host1's
 * agent has the admin token, host2's only its node certificate (a worker host).
 *
 * (a) `docker run` with the agent stopped: fails within seconds with a sentence naming the agent, not after
 *     Docker's 15 s of plugin-socket retries with a raw socket error (src/docker/stand-in.ts);
 * (b) `docker network rm` on a worker host: Docker deletes a network whatever a remote driver answers, so
 *     the refusal shows in the engine's log and the agent's, and the network is restored with the reason in
 *     a label, not silently;
 * (c) a second Docker network with the subnet of an existing one is refused, naming the one to use;
 * (d) `vxnet endpoint ls` names a `docker run` container by its name.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { Network } from '../../src/core/model.ts';
import { BUSYBOX_IMAGE, dockerAgentArgs, dockerProblems } from '../../src/testkit/docker.ts';
import { dockerSuite } from './support/docker-cluster.ts';
import { until } from './support/probes.ts';

/** pids of processes whose command line mentions `text` (the stand-in's names its socket) */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

describe('Docker friction points', { skip: dockerProblems(), timeout: 300_000 }, () => {
  const suite = dockerSuite({
    cluster: { hosts: 2, outside: false, prefix: 'vxfrict' },
    // host1's agent has the admin token, host2's only the worker token
    agent: (e) => ({ adminToken: e.host.name === 'host1', args: dockerAgentArgs(e) }),
    networks: [{ name: 'blue', subnets: [{ cidr: '10.31.0.0/24' }] }],
  });

  it('(a) docker run with the agent stopped fails within seconds, saying the agent on this host is not running and how to start it', async () => {
    await suite.cluster.stopAgent(suite.cluster.host(2), 'SIGTERM');
    const started = Date.now();
    const result = await suite.engine(2).docker(['run', '--rm', '--network', 'blue', BUSYBOX_IMAGE, 'true']);
    const ms = Date.now() - started;
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /the vxnet agent on this host \(node host2\) is not running, so Docker cannot use vxnet networks here: start it with "systemctl start vxnet-agent" or run "vxnet agent \.\.\." again\./);
    assert.doesNotMatch(result.stderr, /dial unix|connect: /);
    // was 15 s: Docker's plugin client retries a failed connection after 1, 2, 4 and 8 s
    assert.ok(ms < 5_000, `docker run took ${ms} ms`);
    assert.equal(processesMentioning(suite.engine(2).pluginSocket).length, 1, 'one stand-in serves the socket');

    // the agent back: it takes the socket over, the stand-in leaves, and docker run works again
    await suite.cluster.startAgent(suite.cluster.host(2), { args: dockerAgentArgs(suite.engine(2)) });
    const ok = await suite.engine(2).docker(['run', '--rm', '--network', 'blue', BUSYBOX_IMAGE, 'true']);
    assert.equal(ok.code, 0, ok.stderr);
    await until('the stand-in gone', async () => processesMentioning(suite.engine(2).pluginSocket).every((pid) => pid === suite.cluster.daemon('host2/agent')?.pid), 5_000);
  });

  it('(b) docker network rm on a worker host: the refusal is in the engine\'s and the agent\'s log, and the network comes back labelled with why', async () => {
    const rm = await suite.engine(2).docker(['network', 'rm', 'blue']);
    // Docker deletes the network whatever a remote driver answers (only its own ForbiddenError stops it)
    assert.equal(rm.code, 0, rm.stderr);
    const reason = /docker network rm cannot delete vxnet network blue from node host2 \(that needs the admin token, or the right to create networks and to have created it\), so its Docker network is restored: use "vxnet network rm blue" instead\./;
    const restored = await until('blue back on host2', async () => {
      const inspect = await suite.engine(2).docker(['network', 'inspect', 'blue']);
      return inspect.code === 0 ? (JSON.parse(inspect.stdout)[0] as { Labels: Record<string, string> }) : undefined;
    }, 10_000);
    assert.match(restored.Labels['io.vxnet.restored'] ?? '', reason);
    assert.match(suite.engine(2).process!.output(), /driver error deleting network blue : remote: docker network rm cannot delete vxnet network blue/);
    const agentLog = suite.cluster.daemon('host2/agent')!.output();
    assert.match(agentLog, /warn.*restored docker network blue after a docker network rm on this host: docker network rm cannot delete/);
    assert.ok((await suite.admin.listNetworks()).some((n: Network) => n.name === 'blue'), 'the vxnet network stays');
    // and it works as before
    const run = await suite.engine(2).docker(['run', '--rm', '--network', 'blue', BUSYBOX_IMAGE, 'true']);
    assert.equal(run.code, 0, run.stderr);
  });

  it('(c) a second Docker network with the subnet of vxnet network blue is refused, naming the one to use', async () => {
    const result = await suite.engine(1).docker(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--subnet', '10.31.0.0/24', 'blue-again']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /subnet 10\.31\.0\.0\/24 is vxnet network blue's, which Docker network blue on this host already stands for: use --network blue instead of a second Docker network for it\./);
    assert.equal((await suite.engine(1).docker(['network', 'inspect', 'blue-again'])).code, 1);
    assert.deepEqual((await suite.admin.listNetworks()).map((n: Network) => n.name), ['blue']);
  });

  it('(d) vxnet endpoint ls names a docker run container by its name, not its endpoint id', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'web', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
    const listed = await until('the container named', async () => {
      const out = await suite.cluster.cli(['endpoint', 'ls', '--network', 'blue']);
      return /docker:web\s/.test(out.stdout) ? out.stdout : undefined;
    }, 10_000);
    assert.doesNotMatch(listed, /docker:[0-9a-f]{12}/);
    const [endpoint] = await suite.admin.listEndpoints({ network: 'blue', node: 'host1' });
    assert.equal(endpoint?.dockerContainer, 'web');
    await suite.engine(1).dockerOk(['rm', '-f', 'web']);
  });
});
