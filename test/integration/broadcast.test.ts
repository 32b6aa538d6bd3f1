/**
 * Broadcast and multicast on one network spanning three hosts: by head-end replication (one all-zero-MAC
 * FDB entry per peer VTEP) by default, or through an underlay multicast group when the network has one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';

describe('three hosts: broadcast reaches every host', () => {
  let cluster: Cluster;
  let client: ManagerClient;

  before(async () => {
    cluster = await createCluster({ hosts: 3, outside: false });
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  });
  after(async () => {
    client?.close();
    await cluster?.destroy();
  });

  async function broadcastResponders(network: string, broadcast: string): Promise<{ expected: string[]; seen: string[] }> {
    const containers: { netns: string; ip: string }[] = [];
    for (const host of cluster.hosts) {
      const netns = await cluster.addContainer(`${network}-${host.index}`);
      // Containers answer broadcast pings (Linux ignores them by default).
      await cluster.exec(netns, ['sysctl', '-qw', 'net.ipv4.icmp_echo_ignore_broadcasts=0']);
      const endpoint = await client.createEndpoint({ network, node: host.name, netns });
      containers.push({ netns, ip: endpoint.ip });
    }
    const [first, ...others] = containers;
    const result = await cluster.exec(first!.netns, ['ping', '-b', '-c', '3', '-i', '0.3', '-W', '1', broadcast]);
    const seen = new Set<string>();
    for (const match of result.stdout.matchAll(/bytes from ([\d.]+)/g)) seen.add(match[1]!);
    return { expected: others.map((o) => o.ip).sort(), seen: [...seen].sort() };
  }

  it('replicates a broadcast to both other hosts (head-end replication)', async () => {
    await client.createNetwork({ name: 'her', subnets: [{ cidr: '192.168.50.0/24' }] });
    const { expected, seen } = await broadcastResponders('her', '192.168.50.255');
    for (const ip of expected) assert.ok(seen.includes(ip), `${ip} answered the broadcast (seen: ${seen})`);
    // in the network's namespace (the agent's --netns-prefix HOST-n<VNI>), where the VXLAN device is
    const her = (await client.inspectNetwork('her')).vni;
    const fdb = await cluster.exec(`${cluster.host(1).netns}-n${her}`, ['bridge', 'fdb', 'show', 'dev', `vxnv${her}`]);
    const floods = fdb.stdout.split('\n').filter((l) => l.startsWith('00:00:00:00:00:00'));
    assert.equal(floods.length, 2, `one flood entry per peer VTEP:\n${fdb.stdout}`);
  });

  it('delivers a broadcast through the underlay multicast group when the network has one', async () => {
    await client.createNetwork({ name: 'mc', subnets: [{ cidr: '192.168.60.0/24' }], multicastGroup: '239.1.1.60' });
    const { expected, seen } = await broadcastResponders('mc', '192.168.60.255');
    for (const ip of expected) assert.ok(seen.includes(ip), `${ip} answered the broadcast (seen: ${seen})`);
    const vni = (await client.inspectNetwork('mc')).vni;
    const link = await cluster.exec(`${cluster.host(1).netns}-n${vni}`, ['ip', '-j', '-d', 'link', 'show', `vxnv${vni}`]);
    const info = (JSON.parse(link.stdout) as { linkinfo: { info_data: { group?: string } } }[])[0]!.linkinfo.info_data;
    assert.equal(info.group, '239.1.1.60');
    const fdb = await cluster.exec(`${cluster.host(1).netns}-n${vni}`, ['bridge', 'fdb', 'show', 'dev', `vxnv${vni}`]);
    assert.ok(
      !fdb.stdout.split('\n').some((l) => l.startsWith('00:00:00:00:00:00') && !l.includes('239.1.1.60')),
      `no per-peer flood entries with a multicast group:\n${fdb.stdout}`,
    );
  });
});
