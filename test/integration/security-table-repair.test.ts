/**
 * vxnet's nftables tables changed behind the agent's back are repaired within moments (docs/security.md,
 * "Anti-spoofing per bridge port"): a firewall reload that flushes the ruleset, or an edit that deletes an
 * endpoint's anti-spoofing element, is seen by the agent's `nft monitor` as a foreign transaction and
 * answered with a pass, not left until the 30 s resync. Each case performs the change on a real host
 * namespace and times the return of the tables. Needs root.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deviceNames } from '../../src/agent/dataplane.ts';
import type { ManagerClient } from '../../src/client/client.ts';
import { createCluster, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { pings, until } from './support/probes.ts';
import { adminWithNetworks, type Attached, attachWithApi, BLUE, tearDown } from './support/setup.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
/** well under the agent's 30 s resync: only the monitor's trigger can make it */
const REPAIR_MS = 5_000;

describe('nftables tables repaired when changed behind the agent', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let host1: SimHost;
  let c: Record<string, Attached>;

  const nft = async (host: SimHost, args: string[]) => cluster.exec(host.netns, ['nft', ...args]);
  // the anti-spoofing table lives in the network's namespace (the agent's --netns-prefix HOST-n, VNI 1000)
  const nftBridge = async (host: SimHost, args: string[]) => cluster.exec(host.netns, ['nsenter', `--net=/run/netns/${host.netns}-n1000`, 'nft', ...args]);
  const element = () => `"${deviceNames.hostVeth(c.c1!.endpoint.id)}" . ${c.c1!.endpoint.mac}`;

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxrep' });
    host1 = cluster.host(1);
    client = await adminWithNetworks(cluster, [BLUE]);
    c = await attachWithApi(cluster, client, [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue']]);
    assert.ok(await pings(cluster, c.c1!.netns, c.c2!.endpoint.ip));
  });

  after(() => tearDown(cluster, client));

  it('a flushed ruleset comes back on its own within seconds, and traffic with it', async () => {
    assert.equal((await nft(host1, ['flush', 'ruleset'])).code, 0);
    assert.equal((await nftBridge(host1, ['flush', 'ruleset'])).code, 0);
    assert.notEqual((await nftBridge(host1, ['list', 'table', 'bridge', 'vxnet'])).code, 0, 'the flush took the table');
    const started = Date.now();
    await until('both tables are back', async () => {
      const bridge = await nftBridge(host1, ['list', 'table', 'bridge', 'vxnet']);
      const ip = await nft(host1, ['list', 'table', 'ip', 'vxnet']);
      return bridge.code === 0 && ip.code === 0 && bridge.stdout.includes(c.c1!.endpoint.mac);
    }, REPAIR_MS);
    assert.ok(Date.now() - started < REPAIR_MS);
    assert.ok(await pings(cluster, c.c1!.netns, c.c2!.endpoint.ip), 'c1 reaches c2 again');
  });

  it("a deleted anti-spoofing element is put back (the port's frames pass again)", async () => {
    const port = deviceNames.hostVeth(c.c1!.endpoint.id);
    const listed = await nftBridge(host1, ['list', 'set', 'bridge', 'vxnet', 'endpoint_macs']);
    assert.match(listed.stdout, new RegExp(port), 'the element names the port');
    assert.equal((await nftBridge(host1, ['delete', 'element', 'bridge', 'vxnet', 'endpoint_macs', `{ ${element()} }`])).code, 0);
    await until('the element is back', async () => (await nftBridge(host1, ['list', 'set', 'bridge', 'vxnet', 'endpoint_macs'])).stdout.includes(port), REPAIR_MS);
    assert.ok(await pings(cluster, c.c1!.netns, c.c2!.endpoint.ip));
  });
});
