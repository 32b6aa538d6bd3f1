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
import { before, describe, it } from 'node:test';
import { BUSYBOX_IMAGE, INDEX_HTML, dockerAgentArgs, dockerProblems } from '../../src/testkit/docker.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { dockerSuite } from './support/docker-cluster.ts';
import { until } from './support/probes.ts';

const skip = !isRoot() ? 'needs root (network namespaces)' : dockerProblems() ?? false;

describe('Docker’s isolation still holds for vxnet containers (vxnet issue 9, hole 2)', { skip, concurrency: false }, () => {
  const suite = dockerSuite({
    cluster: { hosts: 1, outside: true, prefix: 'vxdiso' },
    engines: { mode: 'normal' },
    agent: (e) => ({ adminToken: true, args: dockerAgentArgs(e) }),
    networks: [{ name: 'blue', subnets: [{ cidr: '10.31.0.0/24' }] }],
  });
  let vaultIp: string;

  // after the suite's set-up; if this fails half-way, the suite's after tears the engine down
  before(async () => {
    // Docker's own internal network with a server on it
    await suite.engine(1).dockerOk(['network', 'create', '--internal', '--subnet', '172.29.0.0/24', 'secret']);
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'vault', '--network', 'secret', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    vaultIp = await suite.engine(1).dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "secret").IPAddress}}', 'vault']);
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'web', '--network', 'blue', '--ip', '10.31.0.10', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'probe', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
    // the agent has written its rules once the sync ran
    await until('vxnet rules in DOCKER-USER', async () => /--comment vxnet/.test((await suite.cluster.exec(suite.cluster.host(1).netns, ['iptables', '-S', 'DOCKER-USER'])).stdout), 10_000);
  });

  const fromProbe = (command: string[]) => suite.engine(1).docker(['exec', 'probe', ...command]);

  it('a vxnet container cannot reach a container on an --internal Docker network', async () => {
    assert.match(vaultIp, /^172\.29\.0\.\d+$/);
    const ping = await fromProbe(['ping', '-c', '2', '-i', '0.2', '-W', '1', vaultIp]);
    assert.notEqual(ping.code, 0, `the vxnet container pinged the internal container: ${ping.stdout}`);
    const fetched = await fromProbe(['timeout', '3', 'wget', '-qO-', `http://${vaultIp}/`]);
    assert.notEqual(fetched.stdout, INDEX_HTML, 'the vxnet container fetched from the internal container');
    const rules = (await suite.cluster.exec(suite.cluster.host(1).netns, ['iptables', '-S', 'DOCKER-USER'])).stdout;
    assert.doesNotMatch(rules, /-A DOCKER-USER -i vxnb\+ -m comment --comment vxnet -j ACCEPT/);
  });

  it('still reaches the outside world and its own network through Docker’s FORWARD drop policy', async () => {
    const forward = await suite.cluster.exec(suite.cluster.host(1).netns, ['iptables', '-S', 'FORWARD']);
    assert.match(forward.stdout, /-P FORWARD DROP/, 'Docker set its drop policy');
    const out = await fromProbe(['ping', '-c', '2', '-i', '0.2', '-W', '2', suite.cluster.outside!.internetAddress]);
    assert.equal(out.code, 0, `egress: ${out.stdout}${out.stderr}`);
    const local = await fromProbe(['timeout', '5', 'wget', '-qO-', 'http://10.31.0.10/']);
    assert.equal(local.stdout, INDEX_HTML, `blue: ${local.stderr}`);
    const inside = await suite.engine(1).docker(['run', '--rm', '--network', 'secret', BUSYBOX_IMAGE, 'timeout', '5', 'wget', '-qO-', `http://${vaultIp}/`]);
    assert.equal(inside.stdout, INDEX_HTML, `the internal network itself: ${inside.stderr}`);
  });
});
