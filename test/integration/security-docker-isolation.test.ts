/**
 * vxnet issue 9, hole 2: the agent's `DOCKER-USER -i vxnb+ -j ACCEPT` accepted every connection a vxnet
 * container opened, before Docker's own isolation chains: a vxnet container reached a container on an
 * `--internal` Docker bridge network (which nothing outside it may reach). With a real dockerd in its
 * default mode (iptables on, FORWARD policy DROP) on a simulated host with a way out:
 * - the attack: a container on the vxnet network blue pings and fetches from a container on an
 *   `--internal` Docker network of the same host; both must fail (before the fix both worked);
 * - the legitimate paths: the same container reaches the outside world (egress, masqueraded by vxnet)
 *   and another container on blue, through Docker's drop policy; and the internal container still
 *   reaches its own network.
 *
 * Needs root and docker.io; slow (a real dockerd), so it shares one engine across its tests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManagerClient } from '../../src/client/client.ts';
import type { Cluster } from '../../src/testkit/cluster.ts';
import { BUSYBOX_IMAGE, type DockerEngine, INDEX_HTML, destroyDockerCluster, dockerAgentArgs, dockerProblems } from '../../src/testkit/docker.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { startDockerCluster } from './support/docker-cluster.ts';
import { until } from './support/probes.ts';

const skip = !isRoot() ? 'needs root (network namespaces)' : dockerProblems() ?? false;

describe('Docker’s isolation still holds for vxnet containers (vxnet issue 9, hole 2)', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let engines: DockerEngine[] = [];
  let engine: DockerEngine;
  let vaultIp: string;

  before(async () => {
    ({ cluster, client, engines } = await startDockerCluster({
      cluster: { hosts: 1, outside: true, prefix: 'vxdiso' },
      engines: { mode: 'normal' },
      agent: (e) => ({ adminToken: true, args: dockerAgentArgs(e) }),
      networks: [{ name: 'blue', subnets: [{ cidr: '10.31.0.0/24' }] }],
    }));
    engine = engines[0]!;
    try {
      // Docker's own internal network with a server on it
      await engine.dockerOk(['network', 'create', '--internal', '--subnet', '172.29.0.0/24', 'secret']);
      await engine.dockerOk(['run', '-d', '--name', 'vault', '--network', 'secret', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
      vaultIp = await engine.dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "secret").IPAddress}}', 'vault']);
      await engine.dockerOk(['run', '-d', '--name', 'web', '--network', 'blue', '--ip', '10.31.0.10', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
      await engine.dockerOk(['run', '-d', '--name', 'probe', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
      // the agent has written its rules once the sync ran
      await until('vxnet rules in DOCKER-USER', async () => /--comment vxnet/.test((await cluster.exec(cluster.host(1).netns, ['iptables', '-S', 'DOCKER-USER'])).stdout), 10_000);
    } catch (err) {
      await destroyDockerCluster(engines, cluster);
      throw err;
    }
  });

  after(() => destroyDockerCluster(engines, cluster, client));

  const fromProbe = (command: string[]) => engine.docker(['exec', 'probe', ...command]);

  it('a vxnet container cannot reach a container on an --internal Docker network', async () => {
    assert.match(vaultIp, /^172\.29\.0\.\d+$/);
    const ping = await fromProbe(['ping', '-c', '2', '-i', '0.2', '-W', '1', vaultIp]);
    assert.notEqual(ping.code, 0, `the vxnet container pinged the internal container: ${ping.stdout}`);
    const fetched = await fromProbe(['timeout', '3', 'wget', '-qO-', `http://${vaultIp}/`]);
    assert.notEqual(fetched.stdout, INDEX_HTML, 'the vxnet container fetched from the internal container');
    const rules = (await cluster.exec(cluster.host(1).netns, ['iptables', '-S', 'DOCKER-USER'])).stdout;
    assert.doesNotMatch(rules, /-A DOCKER-USER -i vxnb\+ -m comment --comment vxnet -j ACCEPT/);
  });

  it('still reaches the outside world and its own network through Docker’s FORWARD drop policy', async () => {
    const forward = await cluster.exec(cluster.host(1).netns, ['iptables', '-S', 'FORWARD']);
    assert.match(forward.stdout, /-P FORWARD DROP/, 'Docker set its drop policy');
    const out = await fromProbe(['ping', '-c', '2', '-i', '0.2', '-W', '2', cluster.outside!.internetAddress]);
    assert.equal(out.code, 0, `egress: ${out.stdout}${out.stderr}`);
    const local = await fromProbe(['timeout', '5', 'wget', '-qO-', 'http://10.31.0.10/']);
    assert.equal(local.stdout, INDEX_HTML, `blue: ${local.stderr}`);
    const inside = await engine.docker(['run', '--rm', '--network', 'secret', BUSYBOX_IMAGE, 'timeout', '5', 'wget', '-qO-', `http://${vaultIp}/`]);
    assert.equal(inside.stdout, INDEX_HTML, `the internal network itself: ${inside.stderr}`);
  });
});
