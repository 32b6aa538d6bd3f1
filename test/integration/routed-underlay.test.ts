/**
 * Hosts on two different L2 segments joined by a router (seed 002, issue 16): VXLAN is plain UDP between
 * the VTEPs' addresses, so a host behind a router must work as well as one on the same segment. host3 is
 * taken off the underlay switch and put on a segment of its own (10.98.3.0/24) that the switch namespace
 * routes to; host1 and host2 reach it only through that router (no ARP across, TTL decremented). The
 * agents then run as on real hosts, host3 advertising its routed address.
 *
 * Needs root. Every namespace and process is the test kit's and is removed afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManagerClient } from '../../src/client/client.ts';
import { createCluster, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { SWITCH_ADDRESS, switchPort } from '../../src/testkit/topology.ts';
import { capture, pings } from './support/probes.ts';
import { adminWithNetworks, type Attached, attachWithApi, BLUE, tearDown } from './support/setup.ts';
import { decapsulate } from '../../src/packet/vxlan.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
const ROUTER_ADDRESS = '10.98.3.1';
const HOST3_ADDRESS = '10.98.3.13';

describe('a host behind a router', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let admin: ManagerClient;
  let host1: SimHost;
  let host2: SimHost;
  let host3: SimHost;
  let c: Record<string, Attached>;

  const ip = async (netns: string, lines: string[]) => {
    const result = await cluster.exec(netns, ['ip', '-batch', '-'], { input: `${lines.join('\n')}\n` });
    assert.equal(result.code, 0, result.stderr);
  };

  before(async () => {
    cluster = await createCluster({ hosts: 3, outside: false, startDaemons: false, prefix: 'vxrt' });
    [host1, host2, host3] = [cluster.host(1), cluster.host(2), cluster.host(3)];
    // the switch namespace becomes the router: host3's port leaves the bridge and gets the segment's gateway
    await ip(cluster.switchNetns, [`link set ${switchPort(host3)} nomaster`, `addr add ${ROUTER_ADDRESS}/24 dev ${switchPort(host3)}`]);
    assert.equal((await cluster.exec(cluster.switchNetns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])).code, 0);
    await ip(host3.netns, [`addr flush dev ${host3.underlayDevice}`, `addr add ${HOST3_ADDRESS}/24 dev ${host3.underlayDevice}`, `route replace default via ${ROUTER_ADDRESS}`]);
    for (const host of [host1, host2]) await ip(host.netns, [`route add 10.98.3.0/24 via ${SWITCH_ADDRESS}`]);
    await cluster.startManager();
    await Promise.all([cluster.startAgent(host1), cluster.startAgent(host2), cluster.startAgent(host3, { advertiseAddress: HOST3_ADDRESS })]);
    admin = await adminWithNetworks(cluster, [BLUE]);
    c = await attachWithApi(cluster, admin, [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue'], ['c3', 'host3', 'blue']]);
  });

  after(() => tearDown(cluster, admin));

  it('is really routed: host1 reaches host3 through the router, one hop away', async () => {
    const route = await cluster.exec(host1.netns, ['ip', 'route', 'get', HOST3_ADDRESS]);
    assert.match(route.stdout, new RegExp(`via ${SWITCH_ADDRESS.replace(/\./g, '\\.')}`));
    const nodes = await admin.listNodes();
    assert.equal(nodes.find((n) => n.name === 'host3')?.address, HOST3_ADDRESS);
  });

  it('containers reach each other across the router as on one segment, in both directions', async () => {
    assert.ok(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip), 'c1 → c3 (host1 → router → host3)');
    assert.ok(await pings(cluster, c.c3!.netns, c.c1!.endpoint.ip), 'c3 → c1');
    assert.ok(await pings(cluster, c.c3!.netns, c.c2!.endpoint.ip), 'c3 → c2');
    assert.ok(await pings(cluster, c.c1!.netns, c.c2!.endpoint.ip), 'c1 → c2 (same segment, unchanged)');
  });

  it('on the routed segment the frames are VXLAN between the VTEP addresses, TTL lowered by the router', async () => {
    const frames = await capture(cluster, host3.netns, host3.underlayDevice, ['udp', 'port', '4789'], async () => {
      await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip);
    });
    const vxlan = frames.map((f) => decapsulate(f)).filter((d) => d !== undefined);
    assert.ok(vxlan.length > 0, 'no VXLAN frame seen on host3');
    const fromHost1 = vxlan.find((d) => d!.outerIp.src === host1.address);
    assert.ok(fromHost1, `no VXLAN from ${host1.address}: ${vxlan.map((d) => d!.outerIp.src).join(', ')}`);
    assert.equal(fromHost1!.outerIp.dst, HOST3_ADDRESS);
    assert.equal(fromHost1!.vni, 1000);
    assert.ok(fromHost1!.outerIp.ttl < 64, `TTL ${fromHost1!.outerIp.ttl}: not routed`);
  });
});
