/**
 * End-to-end with real podman (Debian's 4.3, CNI backend, private configuration per host) on two simulated
 * hosts, each agent serving the CNI plugin on its own socket: `podman run --network blue` exactly as users
 * type it, and vxnet underneath. Each test states the behaviour it proves.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { destroyPodman, PODMAN_IMAGE, podmanAgentArgs, podmanProblems, preparePodman, type PodmanHost } from '../../src/testkit/podman.ts';
import { run } from '../../src/testkit/processes.ts';
import { pings, until } from './support/probes.ts';
import { clusterSuite } from './support/setup.ts';

const SUBNET = '10.41.0.0/24';

describe('podman on vxnet through the CNI plugin', { skip: podmanProblems() }, () => {
  let hosts: PodmanHost[] = [];
  let p1: PodmanHost;
  let p2: PodmanHost;

  // registered before the suite's own after, so that it runs first: the containers go while their agents run
  after(() => destroyPodman(hosts));
  const suite = clusterSuite({
    cluster: { hosts: 2, outside: false, prefix: 'vxcni', startDaemons: false },
    agent: (host, cluster) => ({ args: podmanAgentArgs(cluster, host) }),
    networks: [{ name: 'blue', subnets: [{ cidr: SUBNET }] }],
  });

  before(async () => {
    hosts = await Promise.all(suite.cluster.hosts.map((host) => preparePodman(suite.cluster, host, ['blue'])));
    [p1, p2] = hosts as [PodmanHost, PodmanHost];
  });

  /** The container's address on eth0, as the container itself sees it. */
  async function addressOf(p: PodmanHost, container: string): Promise<string> {
    const out = await p.podmanOk(['exec', container, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    const match = /inet (\d+\.\d+\.\d+\.\d+)\/24/.exec(out);
    assert.ok(match, out);
    return match[1]!;
  }

  /** The plugin run the way a runtime runs it: environment and the network configuration on stdin. */
  function plugin(p: PodmanHost, env: Record<string, string>) {
    const config = JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'vxnet', network: 'blue', socket: p.cniSocket });
    return run([join(p.dir, 'bin', 'vxnet')], { env: { CNI_PATH: join(p.dir, 'bin'), ...env }, input: config });
  }

  it('podman run --network blue on each host: the containers reach each other across hosts; --ip is honoured', async () => {
    await p1.podmanOk(['run', '-d', '--name', 'c1', '--network', 'blue', PODMAN_IMAGE, 'httpd', '-f', '-h', '/www']);
    await p2.podmanOk(['run', '-d', '--name', 'c2', '--network', 'blue', '--ip', '10.41.0.50', PODMAN_IMAGE, 'sleep', '600']);
    const ip1 = await addressOf(p1, 'c1');
    assert.equal(await addressOf(p2, 'c2'), '10.41.0.50');
    assert.equal(await p1.podmanOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "blue").IPAddress}}', 'c1']), ip1);
    const endpoints = await suite.admin.listEndpoints({ network: 'blue' });
    assert.deepEqual(endpoints.map((e) => [e.node, e.ip, e.status]).sort(), [[suite.cluster.host(1).name, ip1, 'ready'], [suite.cluster.host(2).name, '10.41.0.50', 'ready']].sort());
    assert.ok(endpoints.every((e) => e.netns?.startsWith('/run/netns/')), 'the endpoints are in podman\'s namespaces');
    await p1.podmanOk(['exec', 'c1', 'ping', '-c', '2', '-W', '2', '10.41.0.50']);
    await p2.podmanOk(['exec', 'c2', 'ping', '-c', '2', '-W', '2', ip1]);
    // TCP too: c1 serves busybox httpd, c2 on the other host asks for the page with nc. busybox-static's
    // wget died of SIGSEGV (exit 139, no output) in the podman container here, while the same fetch of
    // 127.0.0.1 inside c1 worked; not investigated further.
    const page = await p2.podman(['exec', 'c2', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${ip1} 80`]);
    assert.match(page.stdout, /^HTTP\/1\.[01] 200 OK[\s\S]*\r\n\r\nhello from vxnet\n$/, page.stderr);
  });

  it('a podman container and a namespace attached with vxnet attach reach each other', async () => {
    const netns = await suite.cluster.addContainer('plain');
    const endpoint = await suite.admin.createEndpoint({ network: 'blue', node: suite.cluster.host(2).name, netns }, { waitSeconds: 20 });
    assert.ok(await pings(suite.cluster, netns, await addressOf(p1, 'c1')));
    await p1.podmanOk(['exec', 'c1', 'ping', '-c', '2', '-W', '2', endpoint.ip]);
    await suite.admin.deleteEndpoint(endpoint.id, { waitSeconds: 20 });
    await suite.cluster.removeContainer(netns);
  });

  it('CHECK passes on an intact container and detects a deleted interface (code 101)', async () => {
    const id = await p1.podmanOk(['inspect', '-f', '{{.Id}}', 'c1']);
    const netns = await p1.podmanOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', 'c1']);
    const env = { CNI_COMMAND: 'CHECK', CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0' };
    const good = await plugin(p1, env);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    const del = await run(['nsenter', `--net=${netns}`, 'ip', 'link', 'del', 'eth0']);
    assert.equal(del.code, 0, del.stderr);
    const bad = await plugin(p1, env);
    assert.equal(bad.code, 1);
    const error = JSON.parse(bad.stdout);
    assert.equal(error.code, 101);
    assert.match(error.msg, new RegExp(`^interface eth0 is missing in the namespace ${netns} of container ${id}\\.$`));
  });

  it('removing a container releases its address: another container takes it at once', async () => {
    await p2.podmanOk(['rm', '--force', '--time', '0', 'c2']);
    await until('the endpoint of c2 is gone', async () => (await suite.admin.listEndpoints({ node: suite.cluster.host(2).name })).length === 0, 10_000);
    await p1.podmanOk(['run', '-d', '--name', 'c3', '--network', 'blue', '--ip', '10.41.0.50', PODMAN_IMAGE, 'sleep', '600']);
    assert.equal(await addressOf(p1, 'c3'), '10.41.0.50');
  });

  it('DEL succeeds while the agent is down; the agent releases the address when it starts again', async () => {
    const host2 = suite.cluster.host(2);
    await p2.podmanOk(['run', '-d', '--name', 'c4', '--network', 'blue', PODMAN_IMAGE, 'sleep', '600']);
    const [endpoint] = await suite.admin.listEndpoints({ node: host2.name });
    assert.ok(endpoint?.cni, 'the endpoint names its container');
    await suite.cluster.stopAgent(host2);
    await p2.podmanOk(['rm', '--force', '--time', '0', 'c4']);
    assert.deepEqual((await suite.admin.listEndpoints({ node: host2.name })).map((e) => e.id), [endpoint.id], 'the manager was not told yet');
    await suite.cluster.startAgent(host2, { args: podmanAgentArgs(suite.cluster, host2) });
    await until('the endpoint of c4 is released', async () => (await suite.admin.listEndpoints({ node: host2.name })).length === 0, 15_000);
  });

  it('an address already in use fails podman run with vxnet\'s sentence, and leaves nothing behind', async () => {
    const before = (await suite.admin.listEndpoints({ network: 'blue' })).length;
    const result = await p2.podman(['run', '--rm', '--network', 'blue', '--ip', '10.41.0.50', PODMAN_IMAGE, 'true']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /10\.41\.0\.50/);
    assert.equal((await suite.admin.listEndpoints({ network: 'blue' })).length, before);
  });

  it('podman run --mac-address: the container has that MAC, and a container on the other host reaches it', async () => {
    const mac = '0a:58:00:00:00:07';
    await p2.podmanOk(['run', '-d', '--name', 'c6', '--network', 'blue', '--mac-address', mac, PODMAN_IMAGE, 'sleep', '600']);
    const link = await p2.podmanOk(['exec', 'c6', 'cat', '/sys/class/net/eth0/address']);
    assert.equal(link, mac);
    const endpoint = (await suite.admin.listEndpoints({ node: suite.cluster.host(2).name })).find((e) => e.mac === mac);
    assert.ok(endpoint, 'the manager keeps the chosen MAC');
    await p1.podmanOk(['exec', 'c1', 'ping', '-c', '2', '-W', '2', endpoint.ip]);
    await p2.podmanOk(['rm', '--force', '--time', '0', 'c6']);
  });

  it('podman run -p: the chained portmap plugin publishes the port on the host\'s address; removal unpublishes it', async () => {
    const host1 = suite.cluster.host(1);
    await p1.podmanOk(['run', '-d', '--name', 'web', '--network', 'blue', '-p', '8080:80', PODMAN_IMAGE, 'httpd', '-f', '-h', '/www']);
    const fetch = () => suite.cluster.exec(suite.cluster.host(2).netns, ['curl', '-sS', '--max-time', '5', `http://${host1.address}:8080/`], { timeoutMs: 10_000 });
    const page = await fetch();
    assert.equal(page.stdout, 'hello from vxnet\n', page.stderr);
    await p1.podmanOk(['rm', '--force', '--time', '0', 'web']);
    const gone = await fetch();
    assert.notEqual(gone.code, 0, 'nothing answers on the published port any more');
    const rules = await suite.cluster.exec(host1.netns, ['iptables-save', '-t', 'nat']);
    assert.doesNotMatch(rules.stdout, /dport 8080/, 'portmap removed its DNAT rule');
  });

  it('STATUS answers 0 from a serving agent; GC removes an endpoint the runtime no longer lists and keeps the listed ones', async () => {
    const status = await plugin(p1, { CNI_COMMAND: 'STATUS' });
    assert.deepEqual([status.code, status.stdout], [0, ''], status.stderr);
    const netns = await suite.cluster.addContainer('stale');
    const add = await plugin(p1, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'stale0', CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'eth0' });
    assert.equal(add.code, 0, add.stdout);
    const host1 = suite.cluster.host(1).name;
    const cni = async () => (await suite.admin.listEndpoints({ node: host1 })).map((e) => e.cni).sort();
    const running = await Promise.all(['c1', 'c3'].map((c) => p1.podmanOk(['inspect', '-f', '{{.Id}}', c])));
    assert.deepEqual(await cni(), [...running, 'stale0'].sort());
    const config = JSON.stringify({
      cniVersion: '1.1.0', name: 'blue', type: 'vxnet', network: 'blue', socket: p1.cniSocket,
      'cni.dev/valid-attachments': running.map((id) => ({ containerID: id, ifname: 'eth0' })),
    });
    const gc = await run([join(p1.dir, 'bin', 'vxnet')], { env: { CNI_COMMAND: 'GC', CNI_PATH: join(p1.dir, 'bin') }, input: config });
    assert.deepEqual([gc.code, gc.stdout], [0, ''], gc.stderr);
    assert.deepEqual(await cni(), [...running].sort());
    await p1.podmanOk(['exec', 'c1', 'ping', '-c', '1', '-W', '2', '10.41.0.50']);
    await suite.cluster.removeContainer(netns);
  });

  it('ADD with the agent down fails podman run with a sentence naming the socket, and leaves nothing behind', async () => {
    const host2 = suite.cluster.host(2);
    const links = async () => (await suite.cluster.exec(host2.netns, ['ip', '-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(':')[1]?.trim()).sort();
    const endpointsBefore = (await suite.admin.listEndpoints({ network: 'blue' })).length;
    const linksBefore = await links();
    await suite.cluster.stopAgent(host2);
    try {
      const result = await p2.podman(['run', '--name', 'orphan', '--network', 'blue', PODMAN_IMAGE, 'true']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, new RegExp(`the vxnet agent does not answer on ${p2.cniSocket.replaceAll('.', '\\.')} `));
      assert.equal((await suite.admin.listEndpoints({ network: 'blue' })).length, endpointsBefore, 'no endpoint was made');
      assert.deepEqual(await links(), linksBefore, 'no interface was left on the host');
      await p2.podmanOk(['rm', '--force', 'orphan']);
    } finally {
      await suite.cluster.startAgent(host2, { args: podmanAgentArgs(suite.cluster, host2) });
    }
  });
});
