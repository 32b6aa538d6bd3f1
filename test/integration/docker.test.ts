/**
 * End-to-end with real Docker engines (Debian's docker.io), one per simulated host, each linked to its
 * host's agent (`--docker-socket`, the plugin on that host's own /run/docker/plugins): `docker network`,
 * `docker run`, `docker network connect` exactly as users type them, and vxnet underneath. host3 runs an
 * agent without an engine. Each test states the behaviour it proves, and checks that a failure leaves
 * nothing behind: no endpoint, no reservation, no veth.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import type { Network, Reservation } from '../../src/core/model.ts';
import { createCluster } from '../../src/testkit/cluster.ts';
import { BUSYBOX_IMAGE, type DockerEngine, INDEX_HTML, destroyDockerEngines, dockerAgentArgs, startDockerEngines } from '../../src/testkit/docker.ts';
import { dockerSuite } from './support/docker-cluster.ts';
import { until } from './support/probes.ts';

describe('Docker engines on vxnet', () => {
  // the admin token, so that docker network create may create vxnet networks (worker: bind only)
  const agentOptions = (engine: DockerEngine) => ({ adminToken: true, args: dockerAgentArgs(engine) });

  const suite = dockerSuite({
    cluster: { hosts: 3, outside: false, prefix: 'vxdock' },
    engineHosts: 2,
    agent: agentOptions,
    networks: [
      { name: 'blue', subnets: [{ cidr: '10.31.0.0/24' }] },
      { name: 'red', subnets: [{ cidr: '10.32.0.0/24' }] },
    ],
  });

  async function names(engine: DockerEngine): Promise<string> {
    return (await engine.dockerOk(['network', 'ls', '--filter', 'driver=vxnet', '--format', '{{.Name}}'])).split('\n').sort().join(' ');
  }

  async function ipOf(engine: DockerEngine, container: string, network: string): Promise<string> {
    return engine.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
  }

  /** Runs a throwaway container on `network` and returns what `command` printed (or the failure). */
  function oneShot(engine: DockerEngine, network: string, command: string[]) {
    return engine.docker(['run', '--rm', '--network', network, BUSYBOX_IMAGE, ...command]);
  }

  /** Nothing of a failed or removed container is left: no endpoint or reservation of the node, no veth. */
  async function nothingLeftOn(engine: DockerEngine, expectedEndpoints = 0): Promise<void> {
    const node = engine.host.name;
    await until(`no leftovers on ${node}`, async () => {
      const endpoints = (await suite.admin.listEndpoints({ node })).filter((e) => e.docker !== undefined);
      const reservations = (await suite.cluster.api<Reservation[]>('GET', `/v1/reservations?node=${node}`)).body;
      const links = await suite.cluster.exec(engine.host.netns, ['ip', '-o', 'link', 'show']);
      const veths = links.stdout.split('\n').filter((l) => /vxn[hc]/.test(l)).length;
      return endpoints.length === expectedEndpoints && reservations.length === expectedEndpoints && veths === 2 * expectedEndpoints;
    }, 10_000);
  }

  it('every vxnet network shows up in docker network ls on every linked host, driver and IPAM vxnet', async () => {
    for (const engine of suite.engines) {
      const inspect = JSON.parse(await engine.dockerOk(['network', 'inspect', 'blue']))[0];
      assert.equal(inspect.Driver, 'vxnet');
      assert.equal(inspect.IPAM.Driver, 'vxnet');
      assert.deepEqual(inspect.IPAM.Config, [{ Subnet: '10.31.0.0/24', Gateway: '10.31.0.1' }]);
    }
  });

  it('docker run on host1, reached from a container on host2 (TCP via httpd/wget, ICMP), MTU and gateway from vxnet', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'web', '--network', 'blue', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    const ip = await ipOf(suite.engine(1), 'web', 'blue');
    assert.match(ip, /^10\.31\.0\.\d+$/);
    const fetched = await oneShot(suite.engine(2), 'blue', ['wget', '-qO-', `http://${ip}/`]);
    assert.equal(fetched.stdout, INDEX_HTML, fetched.stderr);
    const ping = await oneShot(suite.engine(2), 'blue', ['ping', '-c', '3', '-i', '0.2', '-W', '2', ip]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const inside = await suite.engine(1).dockerOk(['exec', 'web', 'sh', '-c', 'ip -o link show eth0; ip route']);
    assert.match(inside, /mtu 1450/);
    assert.match(inside, /link\/ether 02:78:0a:1f:00:/);
    assert.match(inside, /default via 10\.31\.0\.1 dev eth0/);
    // the endpoint is vxnet's, on host1, of the Docker kind
    const [endpoint] = (await suite.admin.listEndpoints({ network: 'blue', node: 'host1' })).filter((e) => e.ip === ip);
    assert.ok(endpoint?.docker && endpoint.status === 'ready' && endpoint.reserved);
    await suite.engine(1).dockerOk(['rm', '-f', 'web']);
    await nothingLeftOn(suite.engine(1));
  });

  it('containers started at the same time on both hosts get cluster-unique addresses, and reach each other', async () => {
    const started = await Promise.all(
      [suite.engine(1), suite.engine(2)].flatMap((engine, h) => [0, 1, 2, 3].map((i) => engine.dockerOk(['run', '-d', '--name', `par${h}${i}`, '--network', 'red', BUSYBOX_IMAGE, 'sleep', '600']).then(() => ({ engine, name: `par${h}${i}` })))),
    );
    const ips = await Promise.all(started.map(({ engine, name }) => ipOf(engine, name, 'red')));
    assert.equal(new Set(ips).size, 8, ips.join(' '));
    const vxnet = (await suite.admin.listEndpoints({ network: 'red' })).map((e) => e.ip).sort();
    assert.deepEqual(vxnet, [...ips].sort());
    const ping = await suite.engine(2).docker(['exec', 'par13', 'ping', '-c', '2', '-W', '2', ips[0]!]);
    assert.equal(ping.code, 0, ping.stdout);
    await suite.engine(1).dockerOk(['rm', '-f', 'par00', 'par01', 'par02', 'par03']);
    await suite.engine(2).dockerOk(['rm', '-f', 'par10', 'par11', 'par12', 'par13']);
    await nothingLeftOn(suite.engine(1));
    await nothingLeftOn(suite.engine(2));
  });

  it('--ip gives that address; the same --ip on the other host is refused with vxnet\'s reason, leaving nothing', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'fixed', '--network', 'blue', '--ip', '10.31.0.77', BUSYBOX_IMAGE, 'sleep', '600']);
    assert.equal(await ipOf(suite.engine(1), 'fixed', 'blue'), '10.31.0.77');
    const taken = await suite.engine(2).docker(['run', '--rm', '--network', 'blue', '--ip', '10.31.0.77', BUSYBOX_IMAGE, 'true']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /address 10\.31\.0\.77 is already in use on network blue/);
    await nothingLeftOn(suite.engine(2));
    // removal releases the address: it can be taken on the other host now
    await suite.engine(1).dockerOk(['rm', '-f', 'fixed']);
    await nothingLeftOn(suite.engine(1));
    await suite.engine(2).dockerOk(['run', '-d', '--name', 'fixed2', '--network', 'blue', '--ip', '10.31.0.77', BUSYBOX_IMAGE, 'sleep', '600']);
    assert.equal(await ipOf(suite.engine(2), 'fixed2', 'blue'), '10.31.0.77');
    await suite.engine(2).dockerOk(['rm', '-f', 'fixed2']);
    await nothingLeftOn(suite.engine(2));
  });

  it('docker network connect / disconnect add and remove a second vxnet interface on a running container', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'multi', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
    await suite.engine(2).dockerOk(['run', '-d', '--name', 'peer', '--network', 'red', BUSYBOX_IMAGE, 'sleep', '600']);
    await suite.engine(1).dockerOk(['network', 'connect', 'red', 'multi']);
    const redIp = await ipOf(suite.engine(1), 'multi', 'red');
    assert.match(redIp, /^10\.32\.0\./);
    assert.match(await suite.engine(1).dockerOk(['exec', 'multi', 'ip', '-o', '-4', 'addr']), new RegExp(`eth1\\s+inet ${redIp.replaceAll('.', '\\.')}/24`));
    assert.equal((await suite.engine(2).docker(['exec', 'peer', 'ping', '-c', '2', '-W', '2', redIp])).code, 0);
    await suite.engine(1).dockerOk(['network', 'disconnect', 'red', 'multi']);
    assert.doesNotMatch(await suite.engine(1).dockerOk(['exec', 'multi', 'ip', '-o', 'link']), /eth1/);
    assert.deepEqual((await suite.admin.listEndpoints({ network: 'red', node: 'host1' })).length, 0);
    await suite.engine(1).dockerOk(['rm', '-f', 'multi']);
    await suite.engine(2).dockerOk(['rm', '-f', 'peer']);
    await nothingLeftOn(suite.engine(1));
    await nothingLeftOn(suite.engine(2));
  });

  it('docker network create makes the vxnet network (named after it), which appears on the other host; docker network rm removes it everywhere', async () => {
    await suite.engine(1).dockerOk(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--subnet', '10.40.0.0/24', '-o', 'vni=4040', 'green']);
    const green = await until('vxnet network green', async () => (await suite.admin.listNetworks()).find((n: Network) => n.name === 'green'), 10_000);
    assert.deepEqual([green.vni, green.subnets], [4040, [{ cidr: '10.40.0.0/24', gateway: '10.40.0.1' }]]);
    await until('green on host2', async () => (await names(suite.engine(2))).includes('green'), 10_000);
    // a second docker network create on host2 with the same subnet is no new network; since vxnet issue 17
    // not a silent second name for green either (host2 has green already): refused, naming the one to use
    const alias = await suite.engine(2).docker(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--subnet', '10.40.0.0/24', '-o', 'vni=4040', 'green-too']);
    assert.match(alias.stderr, /Docker network green on this host already stands for: use --network green/);
    assert.equal((await suite.admin.listNetworks()).filter((n: Network) => n.subnets.some((s) => s.cidr === '10.40.0.0/24')).length, 1);
    await suite.engine(1).dockerOk(['network', 'rm', 'green']);
    await until('green gone from vxnet', async () => !(await suite.admin.listNetworks()).some((n: Network) => n.name === 'green'), 10_000);
    await until('green gone from host2', async () => !(await names(suite.engine(2))).includes('green'), 10_000);
  });

  it('bad input is refused through Docker\'s own error, with vxnet\'s reason, and leaves nothing on either side', async () => {
    const create = (args: string[]) => suite.engine(1).docker(['network', 'create', '-d', 'vxnet', ...args]);
    const refusals: [string[], RegExp][] = [
      [['--ipam-driver', 'vxnet', '--subnet', '10.31.0.0/16', 'wide'], /subnet 10\.31\.0\.0\/16 overlaps 10\.31\.0\.0\/24 of network blue/],
      [['--ipam-driver', 'vxnet', '--subnet', '10.41.0.0/24', '-o', 'color=red', 'opt'], /unknown option "-o color"/],
      [['--subnet', '10.41.0.0/24', 'noipam'], /add --ipam-driver vxnet/],
      // --ipv6 works since vxnet issue 15 (ipv6-docker.test.ts); an IPv6 subnet vxnet would not take is refused
      [['--ipam-driver', 'vxnet', '--ipv6', '--subnet', '10.41.0.0/24', '--subnet', 'fd00:41::/32', 'six'], /subnet fd00:41::\/32 has prefix \/32: use \/48 to \/126 for IPv6/],
      [['--ipam-driver', 'vxnet', '--subnet', '10.41.0.0/24', '--aux-address', 'a=10.41.0.9', 'aux'], /does not support --aux-address \(10\.41\.0\.9\)/],
      [['--ipam-driver', 'vxnet', '--subnet', '10.32.0.0/24', '-o', 'vni=9', 'red2'], /network red, but its VNI is \d+, not 9/],
    ];
    for (const [args, pattern] of refusals) {
      const result = await create(args);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, /Error response from daemon/);
      assert.match(result.stderr, pattern, args.join(' '));
    }
    assert.equal(await names(suite.engine(1)), 'blue red');
    assert.deepEqual((await suite.admin.listNetworks()).map((n: Network) => n.name).sort(), ['blue', 'red']);

    await suite.admin.createNetwork({ name: 'tiny', subnets: [{ cidr: '10.42.0.0/30' }] });
    await until('tiny on host1', async () => (await names(suite.engine(1))).includes('tiny'), 10_000);
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'only', '--network', 'tiny', BUSYBOX_IMAGE, 'sleep', '600']);
    const runs: [string[], RegExp][] = [
      [['--network', 'tiny'], /network tiny has no free address left in 10\.42\.0\.0\/30/],
      [['--network', 'blue', '--ip', '10.31.0.1'], /address 10\.31\.0\.1 is the gateway of 10\.31\.0\.0\/24/],
      [['--network', 'blue', '--mac-address', '02:00:00:00:00:01'], /--mac-address 02:00:00:00:00:01 cannot be used/],
    ];
    for (const [args, pattern] of runs) {
      const result = await suite.engine(2).docker(['run', '--rm', ...args, BUSYBOX_IMAGE, 'true']);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, pattern, args.join(' '));
    }
    await nothingLeftOn(suite.engine(2));
    await suite.engine(1).dockerOk(['rm', '-f', 'only']);
    await nothingLeftOn(suite.engine(1));
    await suite.admin.removeNetwork('tiny');
  });

  it('vxnet attach --container wires a container started with --net=none; detach unwires it; without an engine the reason says so', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'lone', '--network', 'none', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    const attached = await suite.cluster.cli(['attach', 'blue', '--node', 'host1', '--container', 'lone', '--ip', '10.31.0.88']);
    assert.equal(attached.code, 0, attached.stderr);
    assert.equal(attached.stdout.trim(), '10.31.0.88/24');
    assert.match(await suite.engine(1).dockerOk(['exec', 'lone', 'ip', '-o', '-4', 'addr']), /eth0\s+inet 10\.31\.0\.88\/24/);
    assert.equal((await oneShot(suite.engine(2), 'blue', ['wget', '-qO-', 'http://10.31.0.88/'])).stdout, INDEX_HTML);
    const detached = await suite.cluster.cli(['detach', 'blue', '--node', 'host1', '--container', 'lone']);
    assert.equal(detached.code, 0, detached.stderr);
    await until('eth0 gone from lone', async () => !/eth0/.test(await suite.engine(1).dockerOk(['exec', 'lone', 'ip', '-o', 'link'])), 10_000);
    await suite.engine(1).dockerOk(['rm', '-f', 'lone']);

    const noEngine = await suite.cluster.cli(['attach', 'blue', '--node', 'host3', '--container', 'lone', '--timeout', '10']);
    assert.equal(noEngine.code, 1);
    assert.match(noEngine.stderr, /not linked to a Docker engine \(start it with --docker-socket\), so it cannot attach container lone/);
    const missing = await suite.cluster.cli(['attach', 'blue', '--node', 'host2', '--container', 'nosuch', '--timeout', '10']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /container nosuch: no such container/);
    assert.equal((await suite.admin.listEndpoints({ network: 'blue' })).length, 0);
  });

  it('a restart of the agent does not disturb running containers (no ping lost)', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'steady', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
    const ip = await ipOf(suite.engine(1), 'steady', 'blue');
    const ping = oneShot(suite.engine(2), 'blue', ['ping', '-c', '40', '-i', '0.1', '-W', '1', ip]);
    await new Promise((r) => setTimeout(r, 800));
    await suite.cluster.stopAgent(suite.cluster.host(1), 'SIGKILL');
    await suite.cluster.startAgent(suite.cluster.host(1), agentOptions(suite.engine(1)));
    const result = await ping;
    assert.match(result.stdout, / 0% packet loss/, result.stdout);
    // and the plugin still works after the restart (the endpoint is found again for Leave/Delete)
    await suite.engine(1).dockerOk(['rm', '-f', 'steady']);
    await nothingLeftOn(suite.engine(1));
  });

  it('an engine restarted with containers running brings them back on vxnet (and frees what they held)', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'phoenix', '--restart', 'always', '--stop-timeout', '1', '--network', 'blue', '--ip', '10.31.0.99', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    await suite.engine(1).stopEngine();
    // the engine released the container's network on the way down
    await nothingLeftOn(suite.engine(1));
    await suite.engine(1).start();
    await until('phoenix back on vxnet', async () => (await suite.admin.listEndpoints({ network: 'blue', node: 'host1' })).some((e) => e.ip === '10.31.0.99' && e.status === 'ready'), 20_000);
    const fetched = await oneShot(suite.engine(2), 'blue', ['wget', '-qO-', 'http://10.31.0.99/']);
    assert.equal(fetched.stdout, INDEX_HTML, fetched.stderr);
    await suite.engine(1).dockerOk(['rm', '-f', 'phoenix']);
    await nothingLeftOn(suite.engine(1));
  });
});

describe('Docker engines with their own packet filter (iptables on, as Docker is by default)', () => {
  it('vxnet traffic passes Docker\'s FORWARD drop policy: the agent accepts it in DOCKER-USER', async () => {
    const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxdockf', startDaemons: false });
    let engines: DockerEngine[] = [];
    const client = () => new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    try {
      await cluster.startManager();
      engines = await startDockerEngines(cluster, cluster.hosts, { mode: 'normal' });
      const [e1, e2] = engines as [DockerEngine, DockerEngine];
      await Promise.all(cluster.hosts.map((h, i) => cluster.startAgent(h, { adminToken: true, args: dockerAgentArgs(engines[i]!) })));
      const forward = await cluster.exec(cluster.host(1).netns, ['iptables', '-S', 'FORWARD']);
      assert.match(forward.stdout, /-P FORWARD DROP/, 'Docker set its drop policy');
      const c = client();
      await c.createNetwork({ name: 'blue', subnets: [{ cidr: '10.31.0.0/24' }] });
      c.close();
      await until('blue on both engines', async () => (await Promise.all(engines.map((e) => e.docker(['network', 'inspect', 'blue'])))).every((r) => r.code === 0), 10_000);
      await e1.dockerOk(['run', '-d', '--name', 'web', '--network', 'blue', '--ip', '10.31.0.10', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
      const fetched = await e2.docker(['run', '--rm', '--network', 'blue', BUSYBOX_IMAGE, 'wget', '-qO-', 'http://10.31.0.10/']);
      assert.equal(fetched.stdout, INDEX_HTML, fetched.stderr);
      for (const host of cluster.hosts) {
        const rules = await cluster.exec(host.netns, ['iptables', '-S', 'DOCKER-USER']);
        // since vxnet issue 9: a network's own traffic, not everything from a vxnet bridge
        assert.match(rules.stdout, /-A DOCKER-USER -i vxnb\+ -o vxnb\+ -m comment --comment vxnet -j ACCEPT/);
        assert.match(rules.stdout, /-A DOCKER-USER -o vxnb\+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment vxnet -j ACCEPT/);
      }
    } finally {
      await destroyDockerEngines(engines);
      await cluster.destroy();
    }
  });
});
