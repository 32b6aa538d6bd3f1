/**
 * IPv6 through Docker (vxnet issue 15), end to end with real Docker engines on two simulated hosts, each
 * linked to its host's agent: a dual-stack network made with `docker network create --ipv6` on host1, which
 * the other host's agent gives its engine too; containers on both hosts with both addresses, reaching each
 * other over IPv6 (ICMPv6, TCP) and by name (AAAA), `--ip6` honoured and a taken one refused with vxnet's
 * sentence, the IPv6 reservation freed with its container, and `docker network rm` leaving nothing behind.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { endpointAddresses, type Network, type Reservation } from '../../src/core/model.ts';
import { BUSYBOX_IMAGE, INDEX_HTML, type DockerEngine, dockerAgentArgs } from '../../src/testkit/docker.ts';
import { dockerSuite } from './support/docker-cluster.ts';
import { until } from './support/probes.ts';

const NET = 'dual6';
const SUBNET4 = '10.61.0.0/24';
const SUBNET6 = 'fd00:61::/64';

describe('Docker networks with IPv6 (docker network create --ipv6)', { concurrency: false }, () => {
  const dir = mkdtempSync('/tmp/vxnet-ipv6-docker-');
  const resolvConf = join(dir, 'resolv.conf');

  before(() => writeFileSync(resolvConf, '# no upstream: vxnet names only\n'));
  const suite = dockerSuite({
    cluster: { hosts: 2, outside: false, prefix: 'vx6dk', daemonTimeoutMs: 60_000 },
    // the admin token, so that docker network create may create the vxnet network
    agent: (e) => ({ adminToken: true, args: [...dockerAgentArgs(e), '--resolv-conf', resolvConf] }),
    networks: [],
  });
  // after the suite's own after (hooks run in the order registered): the agents are gone
  after(() => rmSync(dir, { recursive: true, force: true }));

  const ip6Of = (engine: DockerEngine, container: string) =>
    engine.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").GlobalIPv6Address}}`, container]);
  const ip4Of = (engine: DockerEngine, container: string) =>
    engine.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`, container]);
  const reservations = async (): Promise<Reservation[]> => (await suite.cluster.api<Reservation[]>('GET', '/v1/reservations')).body;

  it('docker network create --ipv6 with an IPv4 and an IPv6 subnet makes one dual-stack vxnet network, on the other host too', async () => {
    await suite.engine(1).dockerOk(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--ipv6', '--subnet', SUBNET4, '--subnet', SUBNET6, NET]);
    const made = await until(`vxnet network ${NET}`, async () => (await suite.admin.listNetworks()).find((n: Network) => n.name === NET), 30_000);
    assert.deepEqual(made.subnets, [{ cidr: SUBNET4, gateway: '10.61.0.1' }, { cidr: SUBNET6, gateway: 'fd00:61::1' }]);
    // host2's agent gives its engine the network, IPv6 on, with both subnets
    await until(`${NET} on host2`, async () => (await suite.engine(2).docker(['network', 'inspect', NET])).code === 0, 30_000);
    for (const engine of suite.engines) {
      const inspect = JSON.parse(await engine.dockerOk(['network', 'inspect', NET]))[0];
      assert.equal(inspect.EnableIPv6, true, engine.host.name);
      // (host1's is the user's, without gateways; host2's is the agent's, with vxnet's)
      assert.deepEqual((inspect.IPAM.Config as { Subnet: string }[]).map((c) => c.Subnet).sort(), [SUBNET4, SUBNET6], engine.host.name);
      assert.equal(inspect.IPAM.Driver, 'vxnet');
    }
  });

  it('containers on both hosts get both addresses and reach each other over IPv6: ping6, TCP, and by name (AAAA)', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'web6', '--network', NET, BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    await suite.engine(2).dockerOk(['run', '-d', '--name', 'cli6', '--network', NET, BUSYBOX_IMAGE, 'sleep', '600']);
    const web = await ip6Of(suite.engine(1), 'web6');
    assert.match(web, /^fd00:61::[0-9a-f]+$/);
    assert.match(await ip4Of(suite.engine(1), 'web6'), /^10\.61\.0\.\d+$/);
    const inside = await suite.engine(1).dockerOk(['exec', 'web6', 'sh', '-c', 'ip -6 addr show dev eth0; ip -6 route']);
    assert.match(inside, new RegExp(`inet6 ${web}/64`));
    assert.match(inside, /default via fd00:61::1 dev eth0/);
    // the vxnet endpoint holds both addresses, each of them a reservation of host1 that it adopted
    const endpoint = (await suite.admin.listEndpoints({ network: NET, node: 'host1' })).find((e) => endpointAddresses(e).some((a) => a.ip === web));
    assert.ok(endpoint?.docker && endpoint.status === 'ready', JSON.stringify(endpoint));
    assert.deepEqual(endpointAddresses(endpoint).map((a) => a.ip.includes(':')), [false, true]);
    assert.deepEqual((await reservations()).filter((r) => r.endpoint === endpoint.id).map((r) => r.ip).sort(), endpointAddresses(endpoint).map((a) => a.ip).sort());

    const ping = await suite.engine(2).docker(['exec', 'cli6', 'ping6', '-c', '3', '-i', '0.2', '-W', '2', web]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const fetched = await suite.engine(2).docker(['exec', 'cli6', 'wget', '-qO-', `http://[${web}]/`]);
    assert.equal(fetched.stdout, INDEX_HTML, fetched.stderr);
    // the name answers with the IPv6 address through the gateway's DNS
    await until('web6 named on host1', async () => (await suite.admin.listEndpoints({ network: NET })).some((e) => e.dockerContainer === 'web6'), 40_000);
    const byName = await until('web6 resolving to AAAA on host2', async () => {
      const result = await suite.engine(2).docker(['exec', 'cli6', 'ping6', '-c', '1', '-W', '2', 'web6']);
      return result.code === 0 ? result : undefined;
    }, 20_000);
    assert.match(byName.stdout, new RegExp(`PING web6 \\(${web}\\)`));
  });

  it('--ip6 gives that address; the same --ip6 on the other host is refused with vxnet\'s sentence; docker rm frees it for a new container', async () => {
    await suite.engine(1).dockerOk(['run', '-d', '--name', 'fixed6', '--network', NET, '--ip6', 'fd00:61::77', BUSYBOX_IMAGE, 'sleep', '600']);
    assert.equal(await ip6Of(suite.engine(1), 'fixed6'), 'fd00:61::77');
    const before = (await reservations()).length;
    const taken = await suite.engine(2).docker(['run', '--rm', '--network', NET, '--ip6', 'fd00:61::77', BUSYBOX_IMAGE, 'true']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /address fd00:61::77 is already in use on network dual6/);
    // nothing half-made: host2's IPv4 reservation for the refused container went with it
    await until('no leftovers of the refused container', async () => (await reservations()).length === before, 20_000);
    assert.equal((await suite.admin.listEndpoints({ node: 'host2' })).filter((e) => e.docker !== undefined).length, 1);

    await suite.engine(1).dockerOk(['rm', '-f', 'fixed6']);
    await until('fd00:61::77 released', async () => !(await reservations()).some((r) => r.ip === 'fd00:61::77'), 20_000);
    await suite.engine(2).dockerOk(['run', '-d', '--name', 'again6', '--network', NET, '--ip6', 'fd00:61::77', BUSYBOX_IMAGE, 'sleep', '600']);
    assert.equal(await ip6Of(suite.engine(2), 'again6'), 'fd00:61::77');
    const ping = await suite.engine(1).docker(['exec', 'web6', 'ping6', '-c', '2', '-W', '2', 'fd00:61::77']);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
  });

  it('bad IPv6 input through Docker is refused with one sentence and makes nothing', async () => {
    const wide = await suite.engine(1).docker(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--ipv6', '--subnet', '10.62.0.0/24', '--subnet', 'fd00:62::/32', 'wide6']);
    assert.notEqual(wide.code, 0);
    assert.match(wide.stderr, /subnet fd00:62::\/32 has prefix \/32: use \/48 to \/126 for IPv6/);
    const overlap = await suite.engine(1).docker(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--ipv6', '--subnet', '10.63.0.0/24', '--subnet', 'fd00:61::/56', 'over6']);
    assert.notEqual(overlap.code, 0);
    assert.match(overlap.stderr, /overlaps fd00:61::\/64 of network dual6/);
    const held = (await reservations()).length;
    const outside = await suite.engine(1).docker(['run', '--rm', '--network', NET, '--ip6', 'fd00:99::5', BUSYBOX_IMAGE, 'true']);
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /fd00:99::5/);
    // Docker refuses it itself or after asking vxnet; either way its IPv4 reservation does not stay
    await until('no reservation left by the refused container', async () => (await reservations()).length === held, 20_000);
    assert.deepEqual((await suite.admin.listNetworks()).map((n) => n.name), [NET]);
  });

  it('docker network rm removes the vxnet network everywhere and leaves no record', async () => {
    await suite.engine(1).dockerOk(['rm', '-f', 'web6']);
    await suite.engine(2).dockerOk(['rm', '-f', 'cli6', 'again6']);
    await until('every reservation released', async () => (await reservations()).length === 0, 20_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(await reservations())}`);
    });
    await suite.engine(1).dockerOk(['network', 'rm', NET]);
    await until(`${NET} gone from vxnet`, async () => !(await suite.admin.listNetworks()).some((n: Network) => n.name === NET), 30_000);
    await until(`${NET} gone from host2's engine`, async () => (await suite.engine(2).docker(['network', 'inspect', NET])).code !== 0, 30_000);
    assert.deepEqual(await suite.admin.listEndpoints(), []);
    assert.deepEqual(await reservations(), []);
  });
});
