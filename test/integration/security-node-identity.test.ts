/**
 * Hole 3 of the security audit (docs/security.md, "Node names and addresses are identities"), played as the
 * audit played it, with raw API calls: the worker token taking the name of a registered node (and then
 * registering it at the attacker's address, which would send that node's traffic to the attacker), and a
 * node certificate registering another node's address, loopback, unspecified, link-local, multicast and
 * broadcast addresses. Each is refused and changes nothing; the legitimate paths keep working.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeStatus } from '../../src/core/model.ts';
import { isRoot, missingTools } from '../../src/testkit/preflight.ts';
import { pings } from './support/probes.ts';
import { BLUE, clusterSuite } from './support/setup.ts';
import { attackerKeys, nodeCertificate, rawCall } from './support/raw-api.ts';

const skip = !isRoot() ? 'needs root' : missingTools().length > 0 ? missingTools().join('; ') : false;

describe('node names and underlay addresses are identities', { skip }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 3, startDaemons: false },
    agentsOn: ['host1', 'host2'],
    networks: [BLUE],
    attach: [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue']],
  });

  async function node(name: string): Promise<NodeStatus | undefined> {
    return (await suite.admin.listNodes()).find((n) => n.name === name);
  }

  it('the worker token cannot take the name of a registered node, so it cannot move that node to its own address', async () => {
    const revision = (await suite.admin.info()).revision;
    const attacker = attackerKeys(suite.cluster, 'takeover');
    const joined = await rawCall(suite.cluster, suite.host(3), {
      method: 'POST',
      path: '/v1/join',
      token: suite.cluster.manager.workerToken,
      body: { name: 'host1', publicKey: attacker.publicKey },
    });
    if (joined.status === 200) {
      // what the audit did next: host1 registered at the attacker's address, and every peer followed
      await rawCall(suite.cluster, suite.host(3), {
        as: attacker.save(joined.body.certificate),
        method: 'POST',
        path: '/v1/nodes',
        body: { name: 'host1', address: suite.host(3).address, mtu: 1500 },
      });
    }
    assert.equal(joined.status, 409, JSON.stringify(joined.body));
    assert.equal(joined.body.error.code, 'node_exists');
    assert.match(joined.body.error.message, /^node host1 is registered already, .*"vxnet node rm host1"/);
    assert.equal((await node('host1'))?.address, suite.host(1).address);
    assert.equal((await suite.admin.info()).revision, revision, 'nothing changed');
    assert.ok(await pings(suite.cluster, suite.c.c2!.netns, suite.c.c1!.endpoint.ip), 'c2 still reaches c1 on host1');
  });

  it("a node certificate cannot register another node's address, nor loopback, unspecified, link-local, multicast or broadcast", async () => {
    const revision = (await suite.admin.info()).revision;
    const as = nodeCertificate(suite.cluster, suite.host(2));
    const addresses = [suite.host(1).address, '127.0.0.1', '0.0.0.0', '169.254.1.1', '224.0.0.5', '255.255.255.255'];
    const answers = [];
    for (const address of addresses) {
      answers.push(await rawCall(suite.cluster, suite.host(2), { as, method: 'POST', path: '/v1/nodes', body: { name: 'host2', address, mtu: 1500 } }));
    }
    assert.deepEqual(
      answers.map((a) => [a.status, a.body?.error?.code]),
      [[409, 'address_in_use'], ...Array(5).fill([400, 'invalid_address'])],
      JSON.stringify(answers.map((a) => a.body)),
    );
    assert.equal(answers[0]!.body.error.message, `underlay address ${suite.host(1).address} is already registered by node host1: every node needs an address of its own.`);
    assert.match(answers[1]!.body.error.message, /^node address 127\.0\.0\.1 is a loopback address/);
    assert.equal((await node('host2'))?.address, suite.host(2).address);
    assert.equal((await suite.admin.info()).revision, revision, 'nothing changed');
    assert.ok(await pings(suite.cluster, suite.c.c1!.netns, suite.c.c2!.endpoint.ip), 'c1 still reaches c2 on host2');
  });

  it('the legitimate paths work: a node re-registers its own address, a new name joins, a removed name joins again', async () => {
    const own = await rawCall(suite.cluster, suite.host(2), {
      as: nodeCertificate(suite.cluster, suite.host(2)),
      method: 'POST',
      path: '/v1/nodes',
      body: { name: 'host2', address: suite.host(2).address, mtu: 1500 },
    });
    assert.equal(own.status, 200, JSON.stringify(own.body));

    await suite.cluster.startAgent(suite.host(3));
    assert.equal((await node('host3'))?.address, suite.host(3).address);
    await suite.attach('c3', 'host3');
    assert.ok(await pings(suite.cluster, suite.c.c3!.netns, suite.c.c1!.endpoint.ip), 'c3 (host3) reaches c1 (host1)');

    await suite.cluster.stopAgent(suite.host(3));
    await suite.admin.removeNode('host3', { drain: true });
    const again = await rawCall(suite.cluster, suite.host(3), {
      method: 'POST',
      path: '/v1/join',
      token: suite.cluster.manager.workerToken,
      body: { name: 'host3', publicKey: attackerKeys(suite.cluster, 'rejoin').publicKey },
    });
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });
});
