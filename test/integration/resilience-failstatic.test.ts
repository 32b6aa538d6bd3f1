/**
 * Fail-static: the data plane never depends on the control plane. Two hosts carry a 10 ms ping and a TCP
 * stream between containers while the manager is killed (-9), stays away for 5 s and comes back on the same
 * data directory. Proves: zero lost pings, no TCP reset, kernel state untouched during the outage, agents
 * retrying with growing back-off, and convergence afterwards (a new attach works and is reachable).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { pings, until } from './support/probes.ts';
import { assertNoLoss, blueAcrossTwoHosts, logLines, peerEntries, sleep, startTraffic } from './support/resilience.ts';

const OUTAGE_MS = 5000;

describe('fail-static: the manager killed under continuous traffic', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false });
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('loses no packet and resets no connection while the manager is down for 5 s, then converges', async (t) => {
    const host1 = cluster.host('host1');
    const host2 = cluster.host('host2');
    const { c1, c3, c3ip } = await blueAcrossTwoHosts(cluster);
    assert.ok(await pings(cluster, c1, c3ip), 'c1 reaches c3 before the outage');
    const kernelBefore = await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]);
    assert.ok(kernelBefore[0].fdb.length > 0 && kernelBefore[0].neigh.length > 0, 'host1 holds peer entries for c3');

    const traffic = await startTraffic(cluster, c1, c3, c3ip, 16_000);
    await sleep(1000);

    const killedAt = Date.now();
    await cluster.stopManager('SIGKILL');
    await sleep(OUTAGE_MS - 1000);
    // Well into the outage: every agent keeps its kernel state exactly as it was.
    const kernelDuring = await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]);
    assert.deepEqual(kernelDuring, kernelBefore, 'peer entries unchanged while the manager is down');
    await sleep(killedAt + OUTAGE_MS - Date.now());

    const restartAt = Date.now();
    await cluster.startManager();
    const managerUpMs = Date.now() - restartAt;
    // Both agents reconnect on their own (the manager knows nothing of them until they speak).
    await until(
      'both agents to reconnect',
      async () => {
        const nodes = await cluster.api<{ name: string; state: string; lastSeen: string | null }[]>('GET', '/v1/nodes');
        return nodes.body.every((n) => n.state === 'up' && Date.parse(n.lastSeen ?? '') >= restartAt) || undefined;
      },
      15_000,
    );
    const reconnectedAt = Date.now();
    const reconnectMs = reconnectedAt - restartAt;

    // Convergence: a change made now reaches both hosts.
    const c5 = await cluster.addContainer('c5');
    const attachAt = Date.now();
    const attach = await cluster.cli(['attach', 'blue', '--node', 'host2', '--netns', c5]);
    assert.equal(attach.code, 0, attach.stderr);
    const c5ip = attach.stdout.trim().split('/')[0]!;
    assert.ok(await pings(cluster, c1, c5ip), 'c1 (host1) reaches c5, attached on host2 after the manager returned');
    const attachMs = Date.now() - attachAt;

    const result = await traffic.result();
    t.diagnostic(`manager down ${OUTAGE_MS} ms; back up in ${managerUpMs} ms; both agents reconnected ${reconnectMs} ms after the restart`);
    t.diagnostic(`new attach to reachable after the restart: ${attachMs} ms`);
    assertNoLoss(t, result);
    assert.ok(result.ping.endedAt > reconnectedAt, 'the ping ran across the outage and the reconnection');

    // The agents noticed, said so, and backed off (100, 200, 400, ... ms) instead of hammering the manager.
    for (const host of [host1, host2]) {
      const retries = logLines(cluster, `${host.name}/agent`, /watch failed: .*retrying in \d+ ms/).map((line) =>
        Number(/retrying in (\d+) ms/.exec(line)![1]),
      );
      t.diagnostic(`${host.name} agent retry delays: ${retries.join(', ')} ms`);
      assert.ok(retries.length >= 3, `${host.name} retried at least 3 times: ${retries}`);
      assert.ok(retries.every((d, i) => i === 0 || d >= retries[i - 1]!), `${host.name} back-off never shrinks: ${retries}`);
      assert.ok(retries.at(-1)! > retries[0]!, `${host.name} back-off grows: ${retries}`);
      assert.match(logLines(cluster, `${host.name}/agent`, /kernel state is kept/)[0] ?? '', /kernel state is kept/);
    }
  });
});
