/**
 * Hole 5 of the security audit (docs/security.md, "Revocation"), played as the audit played it: after
 * `vxnet token rotate worker` and `vxnet node rm --drain`, the removed node used its certificate to renew
 * it and to register again at an address of no member, which then went back onto every allow-list. Now
 * `node rm` revokes the certificate: renewal, registration and the watch are refused with raw API calls,
 * the agent still running says it was removed, the allow-lists keep the address out; and the node joins
 * again with the (new) worker token and works.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SimHost } from '../../src/testkit/cluster.ts';
import { isRoot, missingTools } from '../../src/testkit/preflight.ts';
import { pings, until } from './support/probes.ts';
import { BLUE, clusterSuite } from './support/setup.ts';
import { attackerKeys, nodeCertificate, rawCall } from './support/raw-api.ts';
import { logLines } from './support/resilience.ts';

const skip = !isRoot() ? 'needs root' : missingTools().length > 0 ? missingTools().join('; ') : false;
/** an underlay address no node has: where the removed node tried to come back */
const NON_MEMBER = '10.99.0.200';

describe('node rm revokes the node certificate', { skip }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 3, startDaemons: false },
    agentsOn: ['host1', 'host2', 'host3'],
    networks: [BLUE],
    attach: [['c1', 'host1', 'blue'], ['c3', 'host3', 'blue']],
  });

  const members = async (host: SimHost): Promise<string[]> => {
    const listed = await suite.cluster.exec(host.netns, ['nft', '-j', 'list', 'set', 'ip', 'vxnet', 'vxlan_peers']);
    assert.equal(listed.code, 0, listed.stderr);
    const set = (JSON.parse(listed.stdout) as { nftables: { set?: { elem?: string[] } }[] }).nftables.find((i) => i.set)?.set;
    return [...(set?.elem ?? [])].sort();
  };

  it('after token rotate worker and node rm --drain, the removed node can neither renew, register again nor watch', async () => {
    assert.equal((await suite.cluster.cli(['token', 'rotate', 'worker'])).code, 0);
    const removed = await suite.cluster.cli(['node', 'rm', 'host3', '--drain']);
    assert.equal(removed.code, 0, removed.stderr);
    await until('host3 to leave the allow-lists', async () => ((await members(suite.host(1))).join() === suite.host(2).address) || undefined);

    const as = nodeCertificate(suite.cluster, suite.host(3));
    const mine = attackerKeys(suite.cluster, 'removed');
    const renewed = await rawCall(suite.cluster, suite.host(3), { as, method: 'POST', path: '/v1/certificates/renew', body: { publicKey: mine.publicKey } });
    // what the audit did next: back at an address of no member, with the renewed certificate
    const credentials = renewed.status === 200 ? mine.save(renewed.body.certificate) : as;
    const registered = await rawCall(suite.cluster, suite.host(3), { as: credentials, method: 'POST', path: '/v1/nodes', body: { name: 'host3', address: NON_MEMBER, mtu: 1500 } });
    const watched = await rawCall(suite.cluster, suite.host(3), { as: credentials, path: '/v1/agent/watch?node=host3' });
    const answers = [renewed, registered, watched];
    assert.deepEqual(answers.map((a) => [a.status, a.body?.error?.code]), Array(3).fill([401, 'certificate_revoked']), JSON.stringify(answers.map((a) => a.body)));
    assert.equal(
      renewed.body.error.message,
      'the certificate of node host3 is revoked: the node was removed with "vxnet node rm"; join again with the worker token.',
    );
    assert.deepEqual((await suite.admin.listNodes()).map((n) => n.name), ['host1', 'host2']);
    // the allow-lists never take the address back
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await members(suite.host(1)), [suite.host(2).address]);
    assert.deepEqual(await members(suite.host(2)), [suite.host(1).address]);
  });

  it("the removed node's agent, still running, lost its watch stream and says it was removed with vxnet node rm", async () => {
    await until('host3 agent to log its removal', async () => logLines(suite.cluster, 'host3/agent', /no longer registered/).length > 0 || undefined, 15_000);
    assert.match(logLines(suite.cluster, 'host3/agent', /no longer registered/)[0]!, /removed with "vxnet node rm"/);
  });

  it('the node joins again with the new worker token (its agent restarted) and works', async () => {
    await suite.cluster.stopAgent(suite.host(3));
    await suite.cluster.startAgent(suite.host(3));
    assert.match(suite.cluster.daemon('host3/agent')!.output(), /was revoked \("vxnet node rm"\); joining again with the token/);
    assert.match(suite.cluster.daemon('host3/agent')!.output(), /joined the cluster as node host3/);
    await until('host3 to be a member again', async () => (await members(suite.host(1))).includes(suite.host(3).address) || undefined, 10_000);
    await suite.attach('c4', 'host3');
    assert.ok(await pings(suite.cluster, suite.c.c4!.netns, suite.c.c1!.endpoint.ip), 'c4 (host3, joined again) reaches c1 (host1)');
  });
});
