/**
 * Docker containers find each other by name across hosts (vxnet issue 12), with real Docker engines on two
 * simulated hosts, each linked to its host's agent: no per-container flag. Docker's embedded resolver
 * answers its own engine's containers and forwards the rest; the agent steers those forwarded queries to
 * the network's gateway (src/agent/dns/redirect.ts), which knows every host's containers. The agents'
 * resolv.conf is empty: nothing is forwarded further.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX_IMAGE, dockerAgentArgs } from '../../src/testkit/docker.ts';
import { dockerSuite } from './support/docker-cluster.ts';
import { until } from './support/probes.ts';

describe('Docker container names across hosts', () => {
  const dir = mkdtempSync('/tmp/vxnet-dns-docker-');
  const resolvConf = join(dir, 'resolv.conf');

  before(() => writeFileSync(resolvConf, '# no upstream: vxnet names only\n'));
  const suite = dockerSuite({
    cluster: { hosts: 2, outside: false, prefix: 'vxdns', daemonTimeoutMs: 60_000 },
    agent: (e) => ({ args: [...dockerAgentArgs(e), '--resolv-conf', resolvConf] }),
    networks: [
      { name: 'blue', subnets: [{ cidr: '10.41.0.0/24' }] },
      { name: 'red', subnets: [{ cidr: '10.42.0.0/24' }] },
    ],
  });
  // after the suite's own after (hooks run in the order registered): the agents are gone
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** `ping -c1 NAME` from a throwaway container on host2 */
  const pingFromHost2 = (name: string) => suite.engine(2).docker(['run', '--rm', '--network', 'blue', BUSYBOX_IMAGE, 'ping', '-c', '1', '-W', '2', name], { timeoutMs: 30_000 });

  it('docker run --name web on host1; ping -c1 web from a container on host2 succeeds; docker rm removes the name', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'web', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
    const ip = await suite.engine(1).dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "blue").IPAddress}}', 'web']);
    // the plugin learns the container's name right after Join
    await until('web named on host1', async () => (await suite.admin.listEndpoints({ network: 'blue' })).some((e) => e.dockerContainer === 'web'), 15_000);
    const ping = await pingFromHost2('web');
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, new RegExp(`PING web \\(${ip.replace(/\./g, '\\.')}\\)`));

    await suite.engine(1).dockerOk(['rm', '-f', 'web']);
    const gone = await until('web no longer resolving on host2', async () => {
      const result = await pingFromHost2('web');
      return result.code !== 0 && /bad address/.test(result.stdout + result.stderr) ? result : undefined;
    }, 20_000);
    assert.notEqual(gone.code, 0);
  });

  it('--network-alias names resolve across hosts too', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'cache', '--network', 'blue', '--network-alias', 'store', BUSYBOX_IMAGE, 'sleep', '600']);
    await until('store named on host1', async () => (await suite.admin.listEndpoints({ network: 'blue' })).some((e) => e.aliases?.includes('store')), 15_000);
    const ping = await pingFromHost2('store');
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    await suite.engine(1).dockerOk(['rm', '-f', 'cache']);
  });

  it('docker network connect of a running container registers its name on that network', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'late', '--network', 'red', BUSYBOX_IMAGE, 'sleep', '600']);
    await suite.engine(1).dockerOk(['network', 'connect', 'blue', 'late']);
    await until('late named on blue', async () => (await suite.admin.listEndpoints({ network: 'blue' })).some((e) => e.dockerContainer === 'late'), 15_000);
    const ping = await pingFromHost2('late');
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    await suite.engine(1).dockerOk(['rm', '-f', 'late']);
  });
});
