/** `vxnet status` from the manager's answers: counts, per node, and the problems it names. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterStatus, formatStatus } from '../../src/cli/commands/status.ts';
import type { Endpoint, Network, NodeStatus } from '../../src/core/model.ts';

const now = new Date('2026-12-05T05:00:00Z');
const node = (name: string, state: 'up' | 'down', reconciledRevision: number, lastSeen: string | null): NodeStatus =>
  ({ name, address: '10.0.0.1', mtu: 1500, state, lastSeen, reconciledRevision, registeredAt: '2026-12-05T04:00:00Z' });
const endpoint = (id: string, node: string, status: Endpoint['status'], message?: string): Endpoint =>
  ({ id, network: 'blue', node, ifname: 'eth0', ip: '192.168.1.2', prefix: 24, gateway: '192.168.1.1', mac: '02:00:00:00:00:02', status, ...(message ? { message } : {}), createdAt: '2026-12-05T04:00:00Z' }) as Endpoint;

describe('vxnet status', () => {
  it('counts nodes and endpoints and names nothing when all is well', () => {
    const status = clusterStatus({ clusterId: 'c1', revision: 7 }, [node('h1', 'up', 7, '2026-12-05T04:59:58Z'), node('h2', 'up', 5, '2026-12-05T04:59:59Z')], [{ name: 'blue' } as Network], [endpoint('e1', 'h1', 'ready')], now);
    assert.deepEqual(status.nodes, { total: 2, up: 2, down: 0 });
    assert.deepEqual(status.endpoints, { total: 1, ready: 1, pending: 0, error: 0 });
    assert.deepEqual(status.problems, []);
    const text = formatStatus(status, now);
    assert.match(text, /^cluster {3}c1 at revision 7$/m);
    assert.match(text, /^h1 +up +1 +7 +2s ago$/m);
    assert.match(text, /^h2 +up +0 +5 \(2 behind\) +1s ago$/m, 'a node behind is shown, not called a problem');
    assert.match(text, /^no problems found$/m);
  });

  it('names a down node, a failed endpoint and an endpoint waiting on a down node', () => {
    const status = clusterStatus(
      { clusterId: 'c1', revision: 9 },
      [node('h1', 'up', 9, '2026-12-05T04:59:59Z'), node('h2', 'down', 3, '2026-12-05T04:58:00Z'), node('h3', 'down', 0, null)],
      [],
      [endpoint('e1', 'h1', 'error', 'network namespace /run/netns/x does not exist'), endpoint('e2', 'h2', 'pending'), endpoint('e3', 'h1', 'pending')],
      now,
    );
    assert.deepEqual(status.problems, [
      'node h2 is down (no heartbeat: last seen 2m ago); its endpoints keep forwarding as programmed but get no updates.',
      'node h3 is down (no heartbeat: it has never sent one); its endpoints keep forwarding as programmed but get no updates.',
      'endpoint e1 (blue on h1) failed: network namespace /run/netns/x does not exist',
      'endpoint e2 (blue on h2) waits for node h2, which is down.',
    ]);
    assert.match(formatStatus(status, now), /^problems \(4\):\n {2}node h2 is down/m);
  });
});
