/**
 * End-to-end: a real manager and real agents in two simulated hosts, containers as namespaces, real
 * packets. Each test states the behaviour it proves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManagerClient } from '../../src/client/client.ts';
import { decodeArp } from '../../src/packet/arp.ts';
import { decodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../../src/packet/ethernet.ts';
import { decodeIpv4, IPPROTO_ICMP } from '../../src/packet/ipv4.ts';
import { decapsulate } from '../../src/packet/vxlan.ts';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { capture, noPacketLostDuring, ownedKernelObjects, pings, TCP_ECHO_CLIENT, TCP_ECHO_SERVER, until } from './support/probes.ts';
import { adminWithNetworks, type Attached, attachWithApi, BLUE, RED, tearDown } from './support/setup.ts';

describe('two hosts, two networks', () => {
  let cluster: Cluster;
  let client: ManagerClient;
  const c: Record<string, Attached> = {};

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: true });
    client = await adminWithNetworks(cluster, [BLUE, RED]);
    Object.assign(c, await attachWithApi(cluster, client, [['c1', 'host1', 'blue'], ['c2', 'host1', 'red'], ['c3', 'host2', 'blue'], ['c4', 'host2', 'red']]));
  });

  after(() => tearDown(cluster, client));

  it('gives cluster-unique addresses and stable MACs derived from them', () => {
    const ips = Object.values(c).map((x) => x.endpoint.ip);
    assert.deepEqual(ips, ['192.168.1.2', '192.168.2.2', '192.168.1.3', '192.168.2.3']);
    assert.equal(c.c1!.endpoint.mac, '02:78:c0:a8:01:02');
    assert.equal(c.c1!.endpoint.status, 'ready');
  });

  it('reaches a container on the same network on the other host (ICMP and TCP)', async () => {
    assert.ok(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip), 'c1 -> c3 ping');
    assert.ok(await pings(cluster, c.c4!.netns, c.c2!.endpoint.ip), 'c4 -> c2 ping');
    const server = cluster.spawn(c.c3!.netns, [process.execPath, '-e', TCP_ECHO_SERVER, '7000'], { label: 'echo' });
    try {
      await server.waitFor(/listening/, 5000);
      const result = await cluster.exec(c.c1!.netns, [process.execPath, '-e', TCP_ECHO_CLIENT, c.c3!.endpoint.ip, '7000', 'hello over vxlan']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), 'hello over vxlan');
    } finally {
      await server.stop();
    }
  });

  it('isolates networks from each other, on the same host and across hosts', async () => {
    const [sameHost, crossHost, gateway] = await Promise.all([
      pings(cluster, c.c1!.netns, c.c2!.endpoint.ip),
      pings(cluster, c.c1!.netns, c.c4!.endpoint.ip),
      pings(cluster, c.c1!.netns, '192.168.2.1'),
    ]);
    assert.equal(sameHost, false, 'blue c1 must not reach red c2 on the same host');
    assert.equal(crossHost, false, 'blue c1 must not reach red c4 on the other host');
    assert.equal(gateway, false, "blue c1 must not reach red's gateway");
  });

  it('carries the network\'s VNI and UDP port 4789 on the wire, between the two VTEPs', async () => {
    const host1 = cluster.host('host1');
    const frames = await capture(cluster, host1.netns, 'eth0', ['udp', 'port', '4789'], () =>
      pings(cluster, c.c1!.netns, c.c3!.endpoint.ip),
    );
    const decoded = frames.map((f) => decapsulate(f)).filter((d) => d !== undefined);
    assert.ok(decoded.length >= 4, `expected >= 4 VXLAN packets, got ${decoded.length}`);
    for (const packet of decoded) {
      assert.equal(packet.vni, 1000);
      assert.equal(packet.outerUdp.dstPort, 4789);
      assert.deepEqual([packet.outerIp.src, packet.outerIp.dst].sort(), ['10.99.0.11', '10.99.0.12']);
      const inner = decodeEthernet(packet.inner);
      assert.equal(inner.ethertype, ETHERTYPE_IPV4);
      const ip = decodeIpv4(inner.payload);
      assert.equal(ip.protocol, IPPROTO_ICMP);
      assert.deepEqual([ip.src, ip.dst].sort(), ['192.168.1.2', '192.168.1.3']);
    }
  });

  it('sends no ARP across the underlay when peers are known (answered by the local VXLAN proxy)', async () => {
    const host1 = cluster.host('host1');
    await cluster.exec(c.c1!.netns, ['ip', 'neigh', 'flush', 'all']);
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      assert.ok(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip));
    });
    let innerArp = 0;
    let innerIcmp = 0;
    let underlayArpForOverlay = 0;
    for (const frame of frames) {
      const outer = decodeEthernet(frame);
      if (outer.ethertype === ETHERTYPE_ARP) {
        const arp = decodeArp(outer.payload);
        if (arp.targetIp.startsWith('192.168.')) underlayArpForOverlay++;
        continue;
      }
      const packet = decapsulate(frame);
      if (!packet) continue;
      const inner = decodeEthernet(packet.inner);
      if (inner.ethertype === ETHERTYPE_ARP) innerArp++;
      if (inner.ethertype === ETHERTYPE_IPV4) innerIcmp++;
    }
    assert.ok(innerIcmp >= 4, 'the ping itself crossed the underlay');
    assert.equal(innerArp, 0, 'no ARP inside VXLAN');
    assert.equal(underlayArpForOverlay, 0, 'no overlay ARP on the underlay');
    const neigh = await cluster.exec(c.c1!.netns, ['ip', '-j', 'neigh', 'show', c.c3!.endpoint.ip]);
    assert.equal((JSON.parse(neigh.stdout) as { lladdr: string }[])[0]?.lladdr, c.c3!.endpoint.mac);
  });

  it('gives containers MTU 1450 on a 1500 underlay, and a 1422-byte don\'t-fragment ping passes', async () => {
    const link = await cluster.exec(c.c1!.netns, ['ip', '-j', 'link', 'show', 'eth0']);
    assert.equal((JSON.parse(link.stdout) as { mtu: number }[])[0]!.mtu, 1450);
    assert.ok(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip, ['-M', 'do', '-s', '1422']), '1422 + 28 = 1450 passes');
    assert.equal(
      await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip, ['-M', 'do', '-s', '1423']),
      false,
      'one byte more does not fit with DF set',
    );
  });

  it('reaches the outside through NAT on the container\'s own host', async () => {
    const outside = cluster.outside!;
    const frames = await capture(cluster, outside.netns, 'eth0', ['icmp'], async () => {
      assert.ok(await pings(cluster, c.c1!.netns, outside.address), 'c1 -> outside');
      assert.ok(await pings(cluster, c.c4!.netns, outside.address), 'c4 -> outside');
    });
    const sources = new Set(
      frames
        .map((f) => decodeEthernet(f))
        .filter((e) => e.ethertype === ETHERTYPE_IPV4)
        .map((e) => decodeIpv4(e.payload))
        .filter((ip) => ip.dst === outside.address)
        .map((ip) => ip.src),
    );
    assert.deepEqual([...sources].sort(), ['10.99.0.11', '10.99.0.12'], 'masqueraded to each host\'s underlay address');
  });

  it('gives an internal network no egress, but keeps it reachable across hosts', async () => {
    await client.createNetwork({ name: 'vault', internal: true, subnets: [{ cidr: '10.50.0.0/24' }] });
    const a = await cluster.addContainer('v1');
    const b = await cluster.addContainer('v2');
    const ea = await client.createEndpoint({ network: 'vault', node: 'host1', netns: a });
    const eb = await client.createEndpoint({ network: 'vault', node: 'host2', netns: b });
    assert.ok(await pings(cluster, a, eb.ip), 'same internal network across hosts');
    assert.equal(await pings(cluster, a, cluster.outside!.address), false, 'no egress from an internal network');
    assert.equal(await pings(cluster, a, c.c1!.endpoint.ip), false, 'no path to another network');
    await client.deleteEndpoint(ea.id);
    await client.deleteEndpoint(eb.id);
    await client.removeNetwork('vault');
  });

  it('loses no packet of a 10 ms ping while both agents are killed (-9) and restarted', async () => {
    await noPacketLostDuring(cluster, c.c1!.netns, c.c3!.endpoint.ip, async () => {
      await cluster.restartAgent(cluster.host('host1'), 'SIGKILL');
      await cluster.restartAgent(cluster.host('host2'), 'SIGKILL');
    });
    // The restarted agents adopted the kernel state and report it as reconciled with nothing to change.
    await until('agents reconciled', async () => {
      const nodes = await client.listNodes();
      return nodes.every((n) => n.state === 'up' && n.reconciledRevision > 0) || undefined;
    });
  });

  it('leaves no kernel object behind after detach and network rm', async () => {
    const detach = await cluster.cli(['detach', 'blue', '--node', 'host1', '--netns', c.c1!.netns]);
    assert.equal(detach.code, 0, detach.stderr);
    const host1 = cluster.host('host1');
    const afterDetach = await ownedKernelObjects(cluster, host1);
    assert.ok(!afterDetach.links.some((l) => l === 'vxnb1000' || l === 'vxnv1000'), `blue devices gone from host1: ${afterDetach.links}`);
    assert.ok(afterDetach.links.includes('vxnb2000'), 'red stays on host1');

    const rmBusy = await cluster.cli(['network', 'rm', 'red']);
    assert.notEqual(rmBusy.code, 0);
    assert.match(rmBusy.stderr, /endpoint/);
    for (const name of ['blue', 'red']) {
      const rm = await cluster.cli(['network', 'rm', name, '--force']);
      assert.equal(rm.code, 0, rm.stderr);
    }
    for (const host of cluster.hosts) {
      const owned = await until(`${host.name} to be clean`, async () => {
        const objects = await ownedKernelObjects(cluster, host);
        return objects.links.length === 0 && !objects.nftTable ? objects : undefined;
      });
      assert.deepEqual(owned, { links: [], nftTable: false });
      const fdb = await cluster.exec(host.netns, ['bridge', 'fdb', 'show']);
      assert.doesNotMatch(fdb.stdout, /vxn/);
    }
    for (const label of ['c1', 'c2', 'c3', 'c4']) {
      const links = await cluster.exec(c[label]!.netns, ['ip', '-o', 'link', 'show']);
      assert.doesNotMatch(links.stdout, /eth0/, `${label} has no interface left`);
    }
    assert.deepEqual(await client.listEndpoints(), []);
  });
});
