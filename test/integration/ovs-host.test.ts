/**
 * An Open vSwitch host in the same networks as kernel hosts: host1 and host2 run the Linux data plane,
 * host3 runs `vxnet agent --dataplane ovs` against a private OVS (testkit/ovs.ts, userspace datapath).
 * Network red has containers on host1 and host3, network blue on host2 and host3.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { createCluster, INTERNET_ADDRESS, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { startOvs, type OvsHost } from '../../src/testkit/ovs.ts';
import { switchPort } from '../../src/testkit/topology.ts';
import { sleep } from '../../src/testkit/processes.ts';
import { OVS_BRIDGE } from '../../src/agent/ovs/flows.ts';
import { capture } from './support/probes.ts';
import { echoRequests, sendVxlan, vxlanEcho } from './support/vxlan-inject.ts';

interface Container {
  netns: string;
  ip: string;
}

describe('an OVS host in the same networks as kernel hosts', () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let ovs: OvsHost | undefined;
  const c: Record<string, Container> = {};
  let redVni = 0;

  before(async () => {
    cluster = await createCluster({ hosts: 3, startDaemons: false, daemonTimeoutMs: 120_000, agentArgsFor: (host) => (ovs && host === ovs.host ? ovs.agentArgs : []) });
    await cluster.startManager();
    ovs = await startOvs(cluster, cluster.host(3));
    await Promise.all(cluster.hosts.map((host) => cluster.startAgent(host))).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${cluster.daemonLogs(20)}`);
    });
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    redVni = (await client.createNetwork({ name: 'red', subnets: [{ cidr: '192.168.71.0/24' }] })).vni;
    await client.createNetwork({ name: 'blue', subnets: [{ cidr: '192.168.72.0/24' }] });
    const attach = async (name: string, network: string, host: SimHost) => {
      const netns = await cluster.addContainer(name);
      const endpoint = await client.createEndpoint({ network, node: host.name, netns });
      c[name] = { netns, ip: endpoint.ip };
    };
    await attach('r1', 'red', cluster.host(1));
    await attach('r3', 'red', cluster.host(3));
    await attach('b2', 'blue', cluster.host(2));
    await attach('b3', 'blue', cluster.host(3));
  });
  after(async () => {
    client?.close();
    await cluster?.destroy();
  });

  const ping = (from: string, to: string, count = 2) => cluster.exec(c[from]!.netns, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', to]);

  async function flows(): Promise<Map<string, number>> {
    // match and actions → duration: a flow that was replaced or re-added starts again from 0
    const out = new Map<string, number>();
    for (const line of (await ovs!.ofctl(['-O', 'OpenFlow14', 'dump-flows', `unix:${ovs!.dir}/${OVS_BRIDGE}.mgmt`])).split('\n')) {
      const duration = /duration=([\d.]+)s/.exec(line);
      if (!duration) continue;
      const key = line.replace(/cookie=\S+ duration=\S+ /, '').replace(/ n_packets=\S+| n_bytes=\S+| idle_age=\S+| hard_age=\S+/g, '').trim();
      out.set(key, Number(duration[1]));
    }
    return out;
  }

  it('reaches containers both ways, kernel host ⇄ OVS host, on each network (ICMP and TCP)', async () => {
    for (const [from, to] of [['r1', 'r3'], ['r3', 'r1'], ['b2', 'b3'], ['b3', 'b2']] as const) {
      // the peers' agents program the other side in their own time: a few seconds at most
      let result = await ping(from, c[to]!.ip);
      for (let tries = 0; result.code !== 0 && tries < 10; tries++) result = await ping(from, c[to]!.ip);
      assert.equal(result.code, 0, `${from} → ${to}: ${result.stdout}${result.stderr}\n${cluster.daemonLogs(15)}`);
    }
    const server = cluster.spawn(c['r1']!.netns, ['iperf3', '-s', '-1', '--forceflush', '-B', c['r1']!.ip], { label: 'iperf3 server' });
    await server.waitFor(/Server listening/, 5000);
    const client3 = await cluster.exec(c['r3']!.netns, ['iperf3', '-c', c['r1']!.ip, '-t', '1', '-J'], { timeoutMs: 20_000 });
    assert.equal(client3.code, 0, `TCP from the OVS host's container: ${client3.stdout.slice(-400)}${client3.stderr}`);
  });

  it('isolates the networks from each other on the OVS host', async () => {
    assert.notEqual((await ping('r3', c['b3']!.ip, 1)).code, 0, 'red on host3 reaches blue on host3');
    assert.notEqual((await ping('r3', c['b2']!.ip, 1)).code, 0, 'red on host3 reaches blue on host2');
    assert.notEqual((await ping('b2', c['r3']!.ip, 1)).code, 0, 'blue on host2 reaches red on host3');
  });

  it('sends no ARP over the underlay, and broadcast only to the network\'s member hosts', async () => {
    for (const name of ['r1', 'r3']) await cluster.exec(c[name]!.netns, ['ip', 'neigh', 'flush', 'all']);
    await cluster.exec(c['r1']!.netns, ['sysctl', '-qw', 'net.ipv4.icmp_echo_ignore_broadcasts=0']);
    // inner EtherType at UDP offset 8 (UDP) + 8 (VXLAN) + 12 (MACs)
    const arp = cluster.spawn(cluster.switchNetns, ['tcpdump', '-l', '-n', '-i', switchPort(cluster.host(3)), 'udp port 4789 and udp[28:2] = 0x0806']);
    const toHost2 = cluster.spawn(cluster.switchNetns, ['tcpdump', '-l', '-n', '-i', switchPort(cluster.host(2)), `udp port 4789 and udp[12:4] = ${redVni * 256}`]);
    await Promise.all([arp.waitFor(/listening on/, 5000), toHost2.waitFor(/listening on/, 5000)]);
    assert.equal((await ping('r3', c['r1']!.ip)).code, 0);
    assert.equal((await ping('r1', c['r3']!.ip)).code, 0);
    const broadcast = await cluster.exec(c['r3']!.netns, ['ping', '-b', '-c', '2', '-i', '0.3', '-W', '1', '192.168.71.255']);
    assert.match(broadcast.stdout, new RegExp(`bytes from ${c['r1']!.ip.replaceAll('.', '\\.')}`), `the broadcast from the OVS host reached red on host1: ${broadcast.stdout}`);
    await sleep(500);
    await Promise.all([arp.stop('SIGINT'), toHost2.stop('SIGINT')]);
    const frames = (handle: typeof arp) => handle.output().split('\n').filter((l) => /IP .*> .*\.4789/.test(l));
    assert.deepEqual(frames(arp), [], 'no ARP inside VXLAN to or from the OVS host');
    assert.deepEqual(frames(toHost2), [], 'no frame of red went to host2, which has no red container');
  });

  it('takes VXLAN only from registered nodes, and only its own addresses from a container port', async () => {
    // the same forged frame (r1 → r3 on red's VNI) from a registered node and from a namespace that is not one
    const inner = (id: number) => ({ vni: redVni, srcMac: '02:78:c0:a8:47:02', dstMac: '02:78:c0:a8:47:03', srcIp: c['r1']!.ip, dstIp: c['r3']!.ip, id });
    const host3 = cluster.host(3).address;
    const frames = await capture(cluster, c['r3']!.netns, 'eth0', ['icmp'], async () => {
      await sendVxlan(cluster, cluster.host(2).netns, cluster.host(2).address, host3, vxlanEcho(inner(0x7101)));
      await sendVxlan(cluster, cluster.outside!.netns, cluster.outside!.address, host3, vxlanEcho(inner(0x7102)));
    });
    const ids = echoRequests(frames).map((e) => e.id);
    assert.ok(ids.includes(0x7101), `a registered node's VXLAN arrives (the probe works): ${ids}`);
    assert.ok(!ids.includes(0x7102), `VXLAN from a non-member reached a container on the OVS host: ${ids}`);

    // r3 takes another address and sends from it: dropped at its port
    await cluster.exec(c['r3']!.netns, ['ip', 'addr', 'add', '192.168.71.99/24', 'dev', 'eth0']);
    try {
      assert.equal((await ping('r3', c['r1']!.ip, 1)).code, 0);
      const spoofed = await cluster.exec(c['r3']!.netns, ['ping', '-c', '2', '-i', '0.2', '-W', '1', '-I', '192.168.71.99', c['r1']!.ip]);
      assert.notEqual(spoofed.code, 0, `a forged source address left the OVS host's container port: ${spoofed.stdout}`);
    } finally {
      await cluster.exec(c['r3']!.netns, ['ip', 'addr', 'del', '192.168.71.99/24', 'dev', 'eth0']);
    }
  });

  it('masquerades traffic out of the network on the OVS host', async () => {
    const result = await ping('r3', INTERNET_ADDRESS);
    assert.equal(result.code, 0, `r3 → the outside: ${result.stdout}${result.stderr}`);
  });

  it('restarts the OVS host\'s agent with no packet lost and no flow replaced', async () => {
    const before = await flows();
    assert.ok(before.size > 10, `flows are installed:\n${[...before.keys()].join('\n')}`);
    const pinger = cluster.spawn(c['r1']!.netns, ['ping', '-i', '0.05', '-w', '6', c['r3']!.ip], { label: 'ping across the restart' });
    await sleep(500);
    await cluster.restartAgent(cluster.host(3));
    await sleep(1500);
    const afterRestart = await flows();
    const exit = await pinger.exited;
    const summary = /(\d+) packets transmitted, (\d+) received/.exec(pinger.output());
    assert.ok(summary, pinger.output());
    assert.equal(summary[1], summary[2], `no packet lost across the restart: ${summary[0]} (exit ${exit.code})`);
    for (const [flow, duration] of before) {
      const now = afterRestart.get(flow);
      assert.ok(now !== undefined && now >= duration, `flow kept as it was: ${flow} (before ${duration} s, after ${now} s)`);
    }
    assert.equal(afterRestart.size, before.size);
  });

  it('withdraws a drained node\'s flows from the OVS host in under 2 s', async (t) => {
    const vtep = cluster.host(1).address;
    const r1 = c['r1']!;
    // what forwards to host1's endpoint: its MAC → tun_dst, the ARP answer for its address, the flood to host1
    const host1Flows = async () => [...(await flows()).keys()].filter((f) => f.includes(`${vtep}->tun_dst`) || f.includes(`arp_tpa=${r1.ip}`));
    assert.ok((await host1Flows()).length >= 3, `host1's endpoint has flows on the OVS host: ${await host1Flows()}`);
    // timed from the API request itself (what `vxnet node rm --drain` sends), as node-lifecycle.test.ts does
    const started = performance.now();
    const removal = cluster.api('DELETE', '/v1/nodes/host1?drain=true');
    let ms = Infinity;
    while (performance.now() - started < 10_000) {
      if ((await host1Flows()).length === 0) {
        ms = performance.now() - started;
        break;
      }
      await sleep(20);
    }
    assert.equal((await removal).status, 204);
    t.diagnostic(`node rm --drain: host1's flows gone from the OVS host after ${ms.toFixed(0)} ms (from the request)`);
    assert.ok(ms < 2000, `host1's flows left the OVS host after ${ms.toFixed(0)} ms\n${cluster.daemonLogs(8)}`);
    // and host1 is no longer a member: its VXLAN is not taken any more
    const deadline = performance.now() + 10_000;
    while ([...(await flows()).keys()].some((f) => f.includes(`tun_src=${vtep}`)) && performance.now() < deadline) await sleep(100);
    assert.ok(![...(await flows()).keys()].some((f) => f.includes(`tun_src=${vtep}`)), 'the allow-list still takes host1');
  });
});
