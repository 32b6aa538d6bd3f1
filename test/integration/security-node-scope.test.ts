/**
 * Hole 4 of the security audit (docs/security.md, "What a node certificate reaches"), played as the audit
 * played it, with raw API calls made with a node certificate: 251 reservations fired at a /24 in a fraction
 * of a second (they exhausted it), Docker endpoints on a network the node has no container on, a watch of
 * every network next to a refused `GET /v1/networks`, and networks created without the admin token. Now a
 * node holds at most --max-endpoints-per-node addresses on one network (quota_exceeded beyond), reads every
 * network definition both ways alike, and creates networks only once an admin ran `vxnet node update NODE
 * --allow-network-create`; the legitimate paths keep working.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { NodeStatus } from '../../src/core/model.ts';
import { isRoot, missingTools } from '../../src/testkit/preflight.ts';
import { pings } from './support/probes.ts';
import { nodeCertificate, rawCall } from './support/raw-api.ts';
import { BLUE, clusterSuite, RED } from './support/setup.ts';

const skip = !isRoot() ? 'needs root' : missingTools().length > 0 ? missingTools().join('; ') : false;
const BURST = join(import.meta.dirname, 'support/tls-burst.ts');
const LIMIT = 20;

describe('what a node certificate reaches', { skip }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 2, startDaemons: false, managerArgs: ['--max-endpoints-per-node', String(LIMIT)] },
    networks: [BLUE, RED],
    attach: [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue']],
  });

  /** `count` requests with host2's node certificate, 16 at a time. */
  async function burst(count: number, request: { method: string; path: string; body?: unknown; bodies?: unknown[] }) {
    const args = { url: suite.cluster.manager.url, ca: suite.cluster.manager.caFile, ...nodeCertificate(suite.cluster, suite.host(2)), count, concurrency: 16, ...request };
    const result = await suite.cluster.exec(suite.host(2).netns, [process.execPath, BURST, JSON.stringify(args)], { timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as { answers: [number, string | undefined][]; ms: number };
  }

  it('251 reservations from one node certificate do not exhaust a /24: the node gets its quota, then quota_exceeded', async (t) => {
    const { answers, ms } = await burst(251, { method: 'POST', path: '/v1/reservations', body: { network: 'blue', node: 'host2' } });
    t.diagnostic(`251 reservations in ${ms} ms: ${answers.filter(([s]) => s === 201).length} made`);
    const made = answers.filter(([status]) => status === 201).length;
    assert.equal(made, LIMIT - 1, 'the limit, less the address of c2');
    assert.ok(answers.every(([status, code]) => status === 201 || (status === 403 && code === 'quota_exceeded')), JSON.stringify(answers.slice(-3)));
    assert.equal((await suite.admin.listReservations({ network: 'blue', node: 'host2' })).length, LIMIT - 1);
    // the subnet still has room for everyone else
    await suite.attach('c3', 'host1');
    assert.ok(await pings(suite.cluster, suite.c.c3!.netns, suite.c.c2!.endpoint.ip), 'c3 (host1) reaches c2 (host2)');
    const own = await rawCall(suite.cluster, suite.host(1), { as: nodeCertificate(suite.cluster, suite.host(1)), method: 'POST', path: '/v1/reservations', body: { network: 'blue', node: 'host1' } });
    assert.equal(own.status, 201, JSON.stringify(own.body));
  });

  it('Docker endpoints on a network the node has nothing on count against the same quota', async () => {
    const bodies = Array.from({ length: 60 }, (_, i) => ({ network: 'red', node: 'host2', docker: i.toString(16).padStart(64, 'c') }));
    const { answers } = await burst(60, { method: 'POST', path: '/v1/endpoints?wait=0', bodies });
    assert.equal(answers.filter(([status]) => status === 201).length, LIMIT);
    assert.equal(answers.filter(([, code]) => code === 'quota_exceeded').length, 60 - LIMIT);
    assert.equal((await suite.admin.listEndpoints({ network: 'red', node: 'host2' })).length, LIMIT);
  });

  it('a node reads every network definition, through GET /v1/networks as through a networks=all watch', async () => {
    const as = nodeCertificate(suite.cluster, suite.host(2));
    const listed = await rawCall(suite.cluster, suite.host(2), { as, path: '/v1/networks' });
    const watched = await rawCall(suite.cluster, suite.host(2), { as, path: '/v1/agent/watch?node=host2&networks=all' });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.equal(watched.body.type, 'snapshot');
    assert.deepEqual(listed.body.map((n: { name: string }) => n.name), watched.body.networks.map((n: { name: string }) => n.name));
    assert.deepEqual(listed.body.map((n: { name: string }) => n.name), ['blue', 'red']);
  });

  it('a node creates networks only after vxnet node update --allow-network-create, and deletes only its own unused ones', async () => {
    const as = nodeCertificate(suite.cluster, suite.host(2));
    const refused = await rawCall(suite.cluster, suite.host(2), { as, method: 'POST', path: '/v1/networks', body: { name: 'docker-made', subnets: [{ cidr: '192.168.9.0/24' }] } });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.message, 'node host2 may not create networks: an administrator grants that with "vxnet node update host2 --allow-network-create".');

    const granted = await suite.cluster.cli(['node', 'update', 'host2', '--allow-network-create']);
    assert.equal(granted.code, 0, granted.stderr);
    // the RIGHTS column (WireGuard columns may follow it)
    assert.match(granted.stdout, /RIGHTS[^\n]*\n.*host2 .* network-create( |\n$)/);
    const nodes = JSON.parse((await suite.cluster.cli(['node', 'ls', '--json'])).stdout) as NodeStatus[];
    assert.deepEqual(nodes.map((n) => [n.name, n.allowNetworkCreate === true]), [['host1', false], ['host2', true]]);

    const created = await rawCall(suite.cluster, suite.host(2), { as, method: 'POST', path: '/v1/networks', body: { name: 'docker-made', subnets: [{ cidr: '192.168.9.0/24' }] } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.createdBy, 'host2');
    const notOwn = await rawCall(suite.cluster, suite.host(2), { as, method: 'DELETE', path: '/v1/networks/blue' });
    assert.equal(notOwn.status, 403);
    const removed = await rawCall(suite.cluster, suite.host(2), { as, method: 'DELETE', path: '/v1/networks/docker-made' });
    assert.equal(removed.status, 204, JSON.stringify(removed.body));

    const revoked = await suite.cluster.cli(['node', 'update', 'host2', '--no-allow-network-create']);
    assert.equal(revoked.code, 0, revoked.stderr);
    const again = await rawCall(suite.cluster, suite.host(2), { as, method: 'POST', path: '/v1/networks', body: { name: 'docker-made' } });
    assert.equal(again.status, 403);
    // and the node keeps working
    assert.ok(await pings(suite.cluster, suite.c.c1!.netns, suite.c.c2!.endpoint.ip), 'c1 reaches c2');
  });
});
