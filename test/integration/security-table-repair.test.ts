/**
 * vxnet's nftables tables changed behind the agent's back are repaired within moments (docs/security.md,
 * "Anti-spoofing per bridge port"): a firewall reload that flushes the ruleset, or an edit that deletes an
 * endpoint's anti-spoofing element, is seen by the agent's `nft monitor` as a foreign transaction and
 * answered with a pass, not left until the 30 s resync. Each case performs the change on a real host
 * namespace and times the return of the tables. Needs root.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { deviceNames } from '../../src/agent/dataplane.ts';
import type { SimHost } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { pings, until } from './support/probes.ts';
import { BLUE, clusterSuite } from './support/setup.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
/** well under the agent's 30 s resync: only the monitor's trigger can make it */
const REPAIR_MS = 5_000;

describe('nftables tables repaired when changed behind the agent', { skip, concurrency: false }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 2, outside: false, prefix: 'vxrep' },
    networks: [BLUE],
    attach: [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue']],
  });

  const nft = async (host: SimHost, args: string[]) => suite.cluster.exec(host.netns, ['nft', ...args]);
  // the anti-spoofing table lives in the network's namespace (the agent's --netns-prefix HOST-n, VNI 1000)
  const nftBridge = async (host: SimHost, args: string[]) => suite.cluster.exec(host.netns, ['nsenter', `--net=/run/netns/${host.netns}-n1000`, 'nft', ...args]);
  const element = () => `"${deviceNames.hostVeth(suite.c.c1!.endpoint.id)}" . ${suite.c.c1!.endpoint.mac}`;

  before(async () => {
    assert.ok(await pings(suite.cluster, suite.c.c1!.netns, suite.c.c2!.endpoint.ip));
  });

  it('a flushed ruleset comes back on its own within seconds, and traffic with it', async () => {
    assert.equal((await nft(suite.host(1), ['flush', 'ruleset'])).code, 0);
    assert.equal((await nftBridge(suite.host(1), ['flush', 'ruleset'])).code, 0);
    assert.notEqual((await nftBridge(suite.host(1), ['list', 'table', 'bridge', 'vxnet'])).code, 0, 'the flush took the table');
    const started = Date.now();
    await until('both tables are back', async () => {
      const bridge = await nftBridge(suite.host(1), ['list', 'table', 'bridge', 'vxnet']);
      const ip = await nft(suite.host(1), ['list', 'table', 'ip', 'vxnet']);
      return bridge.code === 0 && ip.code === 0 && bridge.stdout.includes(suite.c.c1!.endpoint.mac);
    }, REPAIR_MS);
    assert.ok(Date.now() - started < REPAIR_MS);
    assert.ok(await pings(suite.cluster, suite.c.c1!.netns, suite.c.c2!.endpoint.ip), 'c1 reaches c2 again');
  });

  it("a deleted anti-spoofing element is put back (the port's frames pass again)", async () => {
    const port = deviceNames.hostVeth(suite.c.c1!.endpoint.id);
    const listed = await nftBridge(suite.host(1), ['list', 'set', 'bridge', 'vxnet', 'endpoint_macs']);
    assert.match(listed.stdout, new RegExp(port), 'the element names the port');
    assert.equal((await nftBridge(suite.host(1), ['delete', 'element', 'bridge', 'vxnet', 'endpoint_macs', `{ ${element()} }`])).code, 0);
    await until('the element is back', async () => (await nftBridge(suite.host(1), ['list', 'set', 'bridge', 'vxnet', 'endpoint_macs'])).stdout.includes(port), REPAIR_MS);
    assert.ok(await pings(suite.cluster, suite.c.c1!.netns, suite.c.c2!.endpoint.ip));
  });
});
