/**
 * `vxnet attach NET --node N --host` (issue 16, seed 001's first experiment): the host itself gets an
 * address on the network and its own processes reach the containers of every host, and are reached by them;
 * containers' other paths stay as they were (NAT to the outside); a container cannot use the host's
 * interface to reach another network (the attack is performed); `detach --host` removes all of it. Needs root.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManagerClient } from '../../src/client/client.ts';
import { createCluster, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { pings } from './support/probes.ts';
import { adminWithNetworks, type Attached, attachWithApi, BLUE, cliOk, tearDown } from './support/setup.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';

describe('vxnet attach --host', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let host1: SimHost;
  let attached: Record<string, Attached>;
  let hostIp: string;

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: true, prefix: 'vxhep' });
    host1 = cluster.host(1);
    client = await adminWithNetworks(cluster, [BLUE, { name: 'red', vni: 1001, subnets: [{ cidr: '192.168.2.0/24' }] }]);
    attached = await attachWithApi(cluster, client, [['c2', 'host2', 'blue'], ['c1', 'host1', 'blue'], ['r1', 'host1', 'red']]);
  });

  after(() => tearDown(cluster, client));

  it('gives the host an address, printed like any attach, on interface vxh<VNI>', async () => {
    const printed = (await cliOk(cluster, ['attach', 'blue', '--node', 'host1', '--host'])).trim();
    assert.match(printed, /^192\.168\.1\.\d+\/24$/);
    hostIp = printed.split('/')[0]!;
    const link = await cluster.exec(host1.netns, ['ip', '-j', 'addr', 'show', 'dev', 'vxh1000']);
    assert.equal(link.code, 0, link.stderr);
    assert.deepEqual((JSON.parse(link.stdout) as { addr_info: { local: string }[] }[])[0]!.addr_info.map((a) => a.local), [hostIp]);
    const listed = await client.listEndpoints({ network: 'blue', node: 'host1' });
    assert.deepEqual(listed.filter((e) => e.host).map((e) => [e.ip, e.ifname, e.status]), [[hostIp, 'vxh1000', 'ready']]);
    // the same again is refused, as for a namespace attached twice
    const twice = await cluster.cli(['attach', 'blue', '--node', 'host1', '--host']);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /^vxnet: node host1 already has endpoint [0-9a-f]{12} on interface vxh1000 in the host\.\n$/);
  });

  it('host processes reach containers on both hosts, and containers reach the host', async () => {
    assert.ok(await pings(cluster, host1.netns, attached.c2!.endpoint.ip), 'host1 -> c2 on host2');
    assert.ok(await pings(cluster, host1.netns, attached.c1!.endpoint.ip), 'host1 -> c1 on host1');
    assert.ok(await pings(cluster, attached.c2!.netns, hostIp), 'c2 on host2 -> host1');
    // the source is the host's own address on the network, not the gateway every node's bridge answers for
    const route = await cluster.exec(host1.netns, ['ip', '-j', 'route', 'get', attached.c2!.endpoint.ip]);
    assert.equal((JSON.parse(route.stdout) as { prefsrc: string; dev: string }[])[0]!.prefsrc, hostIp);
    // and vxnet trace walks the path from the host's endpoint, a probe included
    const host = (await client.listEndpoints({ network: 'blue', node: 'host1' })).find((e) => e.host)!;
    const traced = await cluster.cli(['trace', 'blue', '--from', host.id, '--to', attached.c2!.endpoint.id, '--probe', '--json']);
    assert.equal(traced.code, 0, traced.stdout + traced.stderr);
    const answer = JSON.parse(traced.stdout) as { trace: { ok: boolean }; probe: { received: number; sightings: { seen: unknown }[] } };
    assert.equal(answer.probe.received, 3);
    assert.ok(answer.probe.sightings.every((s) => s.seen === true), traced.stdout);
  });

  it('leaves the containers\' own paths alone: NAT to the outside still answers', async () => {
    assert.ok(await pings(cluster, attached.c1!.netns, cluster.outside!.address), 'c1 -> outside');
    assert.ok(await pings(cluster, attached.r1!.netns, cluster.outside!.address), 'r1 -> outside');
  });

  it('a container cannot route through the host\'s interface into another network', async () => {
    const c1 = attached.c1!;
    const r1 = attached.r1!;
    const host = (await client.listEndpoints({ network: 'blue', node: 'host1' })).find((e) => e.host)!;
    // c1 (blue) sends to red by the host interface's own MAC (the bridge answers ARP for every host address,
    // so the attacker pins it) and lets the host route: red's r1 must see none of it
    const received = async () => Number((JSON.parse((await cluster.exec(r1.netns, ['ip', '-j', '-s', 'link', 'show', 'dev', 'eth0'])).stdout) as { stats64: { rx: { packets: number } } }[])[0]!.stats64.rx.packets);
    const setup = [
      ['ip', 'neigh', 'replace', hostIp, 'lladdr', host.mac, 'dev', 'eth0', 'nud', 'permanent'],
      ['ip', 'route', 'add', `${r1.endpoint.ip}/32`, 'via', hostIp],
    ];
    for (const argv of setup) assert.equal((await cluster.exec(c1.netns, argv)).code, 0, argv.join(' '));
    try {
      const before = await received();
      await cluster.exec(c1.netns, ['ping', '-c', '3', '-i', '0.2', '-W', '1', r1.endpoint.ip]);
      assert.equal(await received(), before, 'blue reached red through the host interface');
    } finally {
      await cluster.exec(c1.netns, ['ip', 'route', 'del', `${r1.endpoint.ip}/32`]);
      await cluster.exec(c1.netns, ['ip', 'neigh', 'del', hostIp, 'dev', 'eth0']);
    }
  });

  it('detach --host removes the interface, its routes and its rules', async () => {
    await cliOk(cluster, ['detach', 'blue', '--node', 'host1', '--host']);
    const link = await cluster.exec(host1.netns, ['ip', 'link', 'show', 'dev', 'vxh1000']);
    assert.notEqual(link.code, 0, 'vxh1000 is gone');
    const rule = await cluster.exec(host1.netns, ['ip', 'rule', 'show', 'pref', '4789']);
    assert.equal(rule.stdout.trim(), '');
    const table = await cluster.exec(host1.netns, ['nft', 'list', 'table', 'ip', 'vxnethost']);
    assert.notEqual(table.code, 0, 'table ip vxnethost is gone');
    assert.ok(await pings(cluster, attached.c1!.netns, attached.c2!.endpoint.ip), 'the containers still talk');
    const gone = await cluster.cli(['detach', 'blue', '--node', 'host1', '--host']);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, 'vxnet: network blue has no endpoint on node host1 in the host with interface eth0.\n');
  });
});
