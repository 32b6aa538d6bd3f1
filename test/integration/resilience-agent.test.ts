/**
 * Agent restarts and node recovery, on two simulated hosts with two networks:
 * - an agent killed (-9) and restarted, on each host in turn, under a 10 ms ping and a TCP stream: the
 *   restarted agent adopts the kernel state as it finds it, so not one packet is lost and the connection
 *   is never reset;
 * - a host whose namespace is destroyed outright (agent killed, every device, veth, FDB/neighbour entry and
 *   nftables rule gone with it) and made again with the same name and underlay address: a new agent
 *   rebuilds everything from the manager alone — bridges, VXLAN devices, peer entries, the isolation rules
 *   and the interfaces of the endpoints whose container namespaces still exist (same address, same MAC).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { ownedKernelObjects, pings, until } from './support/probes.ts';
import { assertNoLoss, peerEntries, sleep, startTraffic } from './support/resilience.ts';
import { attachWithCli, cliOk } from './support/setup.ts';

describe('agent restart and node recovery', () => {
  let cluster: Cluster;
  const c: Record<string, { netns: string; ip: string }> = {};

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false });
    await cliOk(cluster, ['network', 'create', 'blue', '--vni', '1000', '--subnet', '192.168.1.0/24']);
    await cliOk(cluster, ['network', 'create', 'red', '--vni', '2000', '--subnet', '192.168.2.0/24']);
    Object.assign(c, await attachWithCli(cluster, [['c1', 'host1', 'blue'], ['c2', 'host1', 'red'], ['c3', 'host2', 'blue'], ['c4', 'host2', 'red']]));
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('loses no packet and resets no TCP connection while each agent is killed (-9) and restarted', async (t) => {
    const host1 = cluster.host('host1');
    const host2 = cluster.host('host2');
    const before = await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]);
    const traffic = await startTraffic(cluster, c.c1!.netns, c.c3!.netns, c.c3!.ip, 8000);
    await sleep(1000);
    const restarts: number[] = [];
    for (const host of [host1, host2]) {
      const started = Date.now();
      await cluster.restartAgent(host, 'SIGKILL');
      restarts.push(Date.now() - started);
      await sleep(1500);
    }
    const result = await traffic.result();
    t.diagnostic(`agent kill -9 + restart (until registered): host1 ${restarts[0]} ms, host2 ${restarts[1]} ms`);
    assertNoLoss(t, result);
    const afterRestart = await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]);
    assert.deepEqual(afterRestart, before, 'the restarted agents kept every peer entry as it was');
  });

  it('rebuilds a destroyed host from the manager: devices, peer entries, isolation and the endpoints of surviving containers', async (t) => {
    const host1 = cluster.host('host1');
    const host2 = cluster.host('host2');
    const objectsBefore = await ownedKernelObjects(cluster, host2);
    const peersBefore = await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]);
    const eth0 = async (netns: string) => {
      const shown = await cluster.exec(netns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
      if (shown.code !== 0) return undefined;
      const [link] = JSON.parse(shown.stdout) as { address: string; mtu: number; addr_info: { local: string; prefixlen: number }[] }[];
      return link && { mac: link.address, mtu: link.mtu, addresses: link.addr_info.map((a) => `${a.local}/${a.prefixlen}`) };
    };
    const interfacesBefore = { c3: await eth0(c.c3!.netns), c4: await eth0(c.c4!.netns) };
    assert.ok(interfacesBefore.c3 && interfacesBefore.c4);

    await cluster.recreateHost(host2);
    // The machine is gone and back empty: no vxnet device, no table, and the containers lost their interface.
    assert.deepEqual(await ownedKernelObjects(cluster, host2), { links: [], nftTable: false });
    // The kernel tears a deleted namespace down in the background (a work queue), and the veth pairs with
    // it: the containers' ends vanish soon after, not necessarily by the time `ip netns del` returns.
    await until('c3 and c4 to lose eth0 with the host', async () =>
      (await eth0(c.c3!.netns)) === undefined && (await eth0(c.c4!.netns)) === undefined,
    );

    const started = Date.now();
    await cluster.startAgent(host2);
    await until('c1 to reach c3 again', () => pings(cluster, c.c1!.netns, c.c3!.ip), 20_000);
    const recoveredMs = Date.now() - started;
    t.diagnostic(`destroyed host rebuilt by a new agent: c1 reaches c3 ${recoveredMs} ms after the agent started`);

    assert.deepEqual(await ownedKernelObjects(cluster, host2), objectsBefore, 'same bridges, VXLAN devices, veths and nftables table');
    assert.deepEqual(
      await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]),
      peersBefore,
      'same FDB and neighbour entries on both hosts',
    );
    assert.deepEqual({ c3: await eth0(c.c3!.netns), c4: await eth0(c.c4!.netns) }, interfacesBefore, 'same address, MAC and MTU');
    assert.ok(await pings(cluster, c.c3!.netns, c.c1!.ip), 'c3 -> c1 (blue)');
    assert.ok(await pings(cluster, c.c4!.netns, c.c2!.ip), 'c4 -> c2 (red)');
    assert.equal(await pings(cluster, c.c3!.netns, c.c2!.ip), false, 'blue c3 still cannot reach red c2: isolation rebuilt');
  });
});
