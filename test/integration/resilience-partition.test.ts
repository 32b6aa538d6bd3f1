/**
 * Fail-static when the manager is unreachable rather than dead: every packet to and from its API port is
 * silently dropped (no reset, the agents' connections simply go quiet), and while that lasts the manager is
 * killed and restarted, so the agents' watch streams are dead without either side ever saying so. (Left to
 * itself the manager host's kernel would keep retransmitting the dead sockets' FIN and tell the agents once
 * the path is back; here it gives up after one retry, as it does after a longer outage or a reboot.) Proves:
 * zero lost pings and no TCP reset between containers throughout, kernel state untouched, and the agents
 * noticing the silence (`--watch-timeout`, here 12 s against the manager's 10 s pings), reconnecting on
 * their own once the path is back, and converging (a new attach works and is reachable).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCluster, MANAGER_PORT, type Cluster } from '../../src/testkit/cluster.ts';
import { pings, until } from './support/probes.ts';
import { assertNoLoss, blueAcrossTwoHosts, logLines, peerEntries, sleep, startTraffic } from './support/resilience.ts';

const PARTITION_MS = 5000;
const WATCH_TIMEOUT_SECONDS = 12;
const PARTITION_TABLE = 'vxtpartition';

describe('fail-static: the manager unreachable (packets dropped) and restarted meanwhile', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false, agentArgs: ['--watch-timeout', String(WATCH_TIMEOUT_SECONDS)] });
    const orphans = await cluster.exec(cluster.switchNetns, ['sysctl', '-q', '-w', 'net.ipv4.tcp_orphan_retries=1']);
    assert.equal(orphans.code, 0, orphans.stderr);
  });
  after(async () => {
    await cluster?.destroy();
  });

  /** Drops every packet to and from the manager's API port in the switch namespace, where the manager runs. */
  async function partition(on: boolean): Promise<void> {
    const script = on
      ? `table inet ${PARTITION_TABLE} {
           chain in { type filter hook input priority -400; tcp dport ${MANAGER_PORT} drop; }
           chain out { type filter hook output priority -400; tcp sport ${MANAGER_PORT} drop; }
         }\n`
      : `delete table inet ${PARTITION_TABLE}\n`;
    const result = await cluster.exec(cluster.switchNetns, ['nft', '-f', '-'], { input: script });
    assert.equal(result.code, 0, result.stderr);
  }

  it('loses no packet while the manager is unreachable for 5 s, and the agents find the restarted manager on their own', async (t) => {
    const host1 = cluster.host('host1');
    const host2 = cluster.host('host2');
    const { c1, c3, c3ip } = await blueAcrossTwoHosts(cluster);
    const kernelBefore = await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]);

    const traffic = await startTraffic(cluster, c1, c3, c3ip, 26_000);
    await sleep(1000);
    const partitionedAt = Date.now();
    await partition(true);
    await sleep(1000);
    // The manager dies while nobody can hear it: its resets are dropped too, so the agents' streams stay open.
    await cluster.stopManager('SIGKILL');
    await cluster.startManager();
    await sleep(partitionedAt + PARTITION_MS - Date.now());
    const kernelDuring = await Promise.all([peerEntries(cluster, host1), peerEntries(cluster, host2)]);
    assert.deepEqual(kernelDuring, kernelBefore, 'peer entries unchanged while the manager is unreachable');
    await partition(false);
    const healedAt = Date.now();

    // Convergence: a change made on the restarted manager reaches both hosts, which needs both watches back.
    const c5 = await cluster.addContainer('c5');
    const attach = await cluster.cli(['attach', 'blue', '--node', 'host2', '--netns', c5, '--timeout', '40'], { timeoutMs: 60_000 });
    assert.equal(attach.code, 0, attach.stderr);
    const c5ip = attach.stdout.trim().split('/')[0]!;
    await until('c1 (host1) to reach c5', () => pings(cluster, c1, c5ip), 30_000);
    const convergedMs = Date.now() - healedAt;

    const result = await traffic.result();
    t.diagnostic(`manager API unreachable for ${PARTITION_MS} ms (killed and restarted meanwhile); converged ${convergedMs} ms after the path came back`);
    assertNoLoss(t, result);
    assert.ok(result.ping.endedAt > healedAt, 'the ping ran across the partition');
    for (const host of [host1, host2]) {
      const silent = logLines(cluster, `${host.name}/agent`, /the manager has sent nothing for/);
      assert.ok(silent.length >= 1, `${host.name} noticed the silent stream:\n${cluster.daemonLogs(15)}`);
    }
  });
});
