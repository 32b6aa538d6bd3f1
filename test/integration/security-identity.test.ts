/**
 * Control-plane identity end to end: a real manager (TLS on the underlay, its CA in DATA_DIR) and real
 * agents in simulated hosts that join with the worker token and then talk mutually authenticated TLS with
 * their node certificates. Node certificates live 10 s here, so every agent renews several times during
 * the run and the tests show the cluster does not notice.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import type { NodeStatus } from '../../src/core/model.ts';
import { DEFAULT_CLI_PATH, type SimHost } from '../../src/testkit/cluster.ts';
import { isRoot, missingTools } from '../../src/testkit/preflight.ts';
import { BLUE, clusterSuite } from './support/setup.ts';
import { pings, until } from './support/probes.ts';

const skip = !isRoot() ? 'needs root' : missingTools().length > 0 ? missingTools().join('; ') : false;
const PROBE = join(import.meta.dirname, 'support/tls-probe.ts');
const CERT_LIFETIME_SECONDS = 10;

describe('control-plane identity', { skip }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 3, startDaemons: false, managerArgs: ['--cert-lifetime', String(CERT_LIFETIME_SECONDS)] },
    agentsOn: ['host1', 'host2'],
    networks: [BLUE],
    attach: [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue']],
  });

  /** One raw https request from inside a host namespace, as `tls-probe.ts` makes it. */
  async function probe(
    host: SimHost,
    request: { path: string; method?: string; body?: unknown; token?: string; cert?: 'node' | 'none' },
  ): Promise<{ status?: number; body?: any; error?: string }> {
    const stateDir = suite.cluster.agentStateDir(host);
    const args = {
      url: suite.cluster.manager.url,
      path: request.path,
      method: request.method ?? 'GET',
      ca: suite.cluster.manager.caFile,
      ...(request.cert === 'node' ? { cert: join(stateDir, 'node.pem'), key: join(stateDir, 'node.key') } : {}),
      ...(request.token ? { token: request.token } : {}),
      ...(request.body === undefined ? {} : { body: request.body }),
    };
    const result = await suite.cluster.exec(host.netns, [process.execPath, PROBE, JSON.stringify(args)], { timeoutMs: 15_000 });
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as { status?: number; body?: any; error?: string };
  }

  /** `vxnet ARGS` run inside a host namespace, reaching the manager over https like a remote operator. */
  function remoteCli(host: SimHost, args: string[]) {
    return suite.cluster.exec(host.netns, [process.execPath, DEFAULT_CLI_PATH, ...args], { timeoutMs: 30_000 });
  }

  async function node(name: string): Promise<NodeStatus | undefined> {
    return (await suite.admin.listNodes()).find((n) => n.name === name);
  }

  it('joins agents with the token: the node certificate is in the state directory, for the node, from the cluster CA', () => {
    const stateDir = suite.cluster.agentStateDir(suite.host(1));
    const cert = new X509Certificate(readFileSync(join(stateDir, 'node.pem')));
    assert.equal(cert.subject, 'O=vxnet-worker\nCN=host1');
    assert.ok(cert.checkIssued(new X509Certificate(readFileSync(suite.cluster.manager.caFile))));
    assert.equal(readFileSync(join(stateDir, 'ca.pem'), 'utf8'), readFileSync(suite.cluster.manager.caFile, 'utf8'));
    assert.match(suite.cluster.daemon('host1/agent')!.output(), /joined the cluster as node host1/);
    assert.match(suite.cluster.daemon('manager')!.output(), /issued the worker certificate of host1/);
  });

  it('an agent whose token pins another CA refuses the manager, says why, and joins nothing', async () => {
    const token = suite.cluster.manager.workerToken;
    const wrong = `VXN1-${'0'.repeat(64)}${token.slice(69)}`;
    const stateDir = join(suite.cluster.tmpDir, 'wrong-digest');
    const result = await suite.cluster.exec(
      suite.host(3).netns,
      [process.execPath, DEFAULT_CLI_PATH, 'agent', '--manager', suite.cluster.manager.url, '--token', wrong, '--state-dir', stateDir, '--advertise-addr', suite.host(3).address, '--name', suite.host(3).name],
      { timeoutMs: 30_000 },
    );
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /vxnet: the manager at https:\/\/10\.99\.0\.1:7400 presented a CA that does not match the token/);
    assert.ok(!result.stderr.includes(token.slice(70)), 'the secret is not printed');
    assert.ok(!existsSync(join(stateDir, 'node.pem')));
    assert.equal(await node('host3'), undefined);
  });

  it("a node certificate cannot report another node's endpoints, create networks or watch another node (403)", async () => {
    // Not the store revision: with this file's short certificate lifetime the agents renew meanwhile, and each
    // renewal records the certificate it honours (docs/security.md, "Revocation").
    const state = async () => JSON.stringify([await suite.admin.listNetworks(), await suite.admin.listEndpoints({})]);
    const before = await state();
    const refused = [
      await probe(suite.host(1), { cert: 'node', method: 'PUT', path: `/v1/endpoints/${suite.c.c2!.endpoint.id}/status`, body: { status: 'error', message: 'sabotage' } }),
      await probe(suite.host(1), { cert: 'node', method: 'POST', path: '/v1/networks', body: { name: 'evil' } }),
      await probe(suite.host(1), { cert: 'node', path: '/v1/agent/watch?node=host2' }),
      await probe(suite.host(1), { cert: 'node', method: 'POST', path: '/v1/nodes/host2/heartbeat', body: { reconciledRevision: 0 } }),
    ];
    assert.deepEqual(refused.map((r) => [r.status, r.body?.error?.code]), Array(4).fill([403, 'forbidden']));
    assert.match(refused[0]!.body.error.message, /node host1 may only report the status of endpoints of its own node, not of node host2/);
    assert.equal(await state(), before, 'nothing changed');
    assert.equal((await suite.admin.inspectNetwork('blue')).endpoints.find((e) => e.node === 'host2')?.status, 'ready');
    // its own: allowed
    const own = await probe(suite.host(1), { cert: 'node', method: 'PUT', path: `/v1/endpoints/${suite.c.c1!.endpoint.id}/status`, body: { status: 'ready' } });
    assert.equal(own.status, 204);
    const watch = await probe(suite.host(1), { cert: 'node', path: '/v1/agent/watch?node=host1' });
    assert.equal(watch.status, 200);
    assert.equal(watch.body.type, 'snapshot');
  });

  it('over TCP, a request without a client certificate is refused, and so is the worker token for agent calls', async () => {
    const anonymous = await probe(suite.host(1), { path: '/v1/nodes' });
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.body.error.message, /needs a client certificate of this cluster or the admin token/);
    const worker = await probe(suite.host(1), { token: suite.cluster.manager.workerToken, method: 'POST', path: '/v1/nodes', body: { name: 'host1', address: suite.host(1).address, mtu: 1500 } });
    assert.equal(worker.status, 403);
    assert.match(worker.body.error.message, /^the worker token only admits POST \/v1\/join/);
    // plain HTTP to the TLS port gets no API answer at all
    const plain = await suite.cluster.exec(suite.host(1).netns, [
      process.execPath,
      '-e',
      `require('node:http').get('http://10.99.0.1:7400/v1/ca', (r) => console.log('HTTP', r.statusCode)).on('error', (e) => console.log(e.code))`,
    ]);
    assert.doesNotMatch(plain.stdout, /HTTP 200/);
  });

  it('the admin token works over https from the CLI: the CA is pinned by the digest inside the token', async () => {
    const listed = await remoteCli(suite.host(1), ['network', 'ls', '--json', '--manager', suite.cluster.manager.url, '--token', suite.cluster.manager.adminToken]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as { name: string }[]).map((n) => n.name), ['blue']);
    const withCa = await remoteCli(suite.host(1), ['node', 'ls', '--json', '--manager', suite.cluster.manager.url, '--token', suite.cluster.manager.adminToken, '--ca', suite.cluster.manager.caFile]);
    assert.equal(withCa.code, 0, withCa.stderr);
    const wrong = `VXN1-${'f'.repeat(64)}${suite.cluster.manager.adminToken.slice(69)}`;
    const refused = await remoteCli(suite.host(1), ['network', 'ls', '--manager', suite.cluster.manager.url, '--token', wrong]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^vxnet: the manager at https:\/\/10\.99\.0\.1:7400 presented a CA that does not match the token/);
  });

  it('renews node certificates before they expire; the nodes keep working past the first certificate', async () => {
    const stateDir = suite.cluster.agentStateDir(suite.host(2));
    const first = new X509Certificate(readFileSync(join(stateDir, 'node.pem')));
    await until(
      "host2's first node certificate to expire",
      async () => Date.now() > first.validToDate.getTime() + 1000,
      (CERT_LIFETIME_SECONDS + 5) * 1000,
    );
    const now = new X509Certificate(readFileSync(join(stateDir, 'node.pem')));
    assert.notEqual(now.serialNumber, first.serialNumber);
    assert.ok(now.validToDate.getTime() > Date.now());
    assert.match(suite.cluster.daemon('host2/agent')!.output(), /renewed the node certificate \(serial [0-9A-F]+, valid until /);
    // heartbeats and status reports still get through: the node is up, and a new endpoint on it becomes ready
    await until('host2 to be seen with its renewed certificate', async () => {
      const status = await node('host2');
      return status?.state === 'up' && status.lastSeen !== null && Date.parse(status.lastSeen!) > first.validToDate.getTime();
    }, 10_000);
    await suite.attach('c4', 'host2');
    assert.ok(await pings(suite.cluster, suite.c.c4!.netns, suite.c.c1!.endpoint.ip), 'c4 (host2) -> c1 (host1)');
  });

  it('token rotation: the old worker token joins nothing, joined agents keep working (also after a restart), the new token joins', async () => {
    const oldToken = suite.cluster.manager.workerToken;
    const rotated = await suite.cluster.cli(['token', 'rotate', 'worker']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newToken = rotated.stdout.trim();
    assert.match(newToken, /^VXN1-[0-9a-f]{64}-[a-z2-7]{52}$/);
    assert.equal(newToken.slice(0, 69), oldToken.slice(0, 69), 'same CA digest');
    assert.equal(suite.cluster.manager.workerToken, newToken, 'saved in DATA_DIR/worker.token');

    // the old token cannot join a new node
    const refused = await suite.cluster.exec(
      suite.host(3).netns,
      [process.execPath, DEFAULT_CLI_PATH, 'agent', '--manager', suite.cluster.manager.url, '--token', oldToken, '--state-dir', suite.cluster.agentStateDir(suite.host(3)), '--advertise-addr', suite.host(3).address, '--name', suite.host(3).name],
      { timeoutMs: 30_000 },
    );
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /vxnet: this token was rotated or is unknown: join with the current worker token/);
    assert.equal(await node('host3'), undefined);

    // joined agents go on: a new endpoint on host1 becomes ready and reaches host2
    await suite.attach('c5', 'host1');
    assert.ok(await pings(suite.cluster, suite.c.c5!.netns, suite.c.c2!.endpoint.ip), 'c5 (host1) -> c2 (host2)');
    // and after a restart without any token, from the certificate in the state directory
    await suite.cluster.stopAgent(suite.host(1));
    await suite.cluster.startAgent(suite.host(1), { token: false });
    assert.match(suite.cluster.daemon('host1/agent')!.output(), /using the node certificate in /);
    await suite.attach('c6', 'host1');
    assert.ok(await pings(suite.cluster, suite.c.c6!.netns, suite.c.c2!.endpoint.ip), 'c6 (host1, restarted agent) -> c2 (host2)');

    // the new token joins
    await suite.cluster.startAgent(suite.host(3));
    assert.equal((await node('host3'))?.state, 'up');
    assert.match(suite.cluster.daemon('host3/agent')!.output(), /joined the cluster as node host3/);
    await suite.attach('c7', 'host3');
    assert.ok(await pings(suite.cluster, suite.c.c7!.netns, suite.c.c1!.endpoint.ip), 'c7 (host3) -> c1 (host1)');
  });

  it('rotating the admin token refuses the old one at once, over https and the unix socket', async () => {
    const oldToken = suite.cluster.manager.adminToken;
    const rotated = await remoteCli(suite.host(1), ['token', 'rotate', 'admin', '--manager', suite.cluster.manager.url, '--token', oldToken]);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newToken = rotated.stdout.trim();
    assert.equal(suite.cluster.manager.adminToken, newToken);
    const old = await remoteCli(suite.host(1), ['network', 'ls', '--manager', suite.cluster.manager.url, '--token', oldToken]);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /this token was rotated or is unknown: use the current admin token/);
    const local = new ManagerClient({ url: suite.cluster.manager.socketUrl, token: oldToken });
    await assert.rejects(local.listNetworks(), { code: 'unauthorized' });
    local.close();
    const fresh = await remoteCli(suite.host(1), ['network', 'ls', '--manager', suite.cluster.manager.url, '--token', newToken]);
    assert.equal(fresh.code, 0, fresh.stderr);
    // the nodes did not notice
    assert.deepEqual((await suite.cluster.cli(['node', 'ls', '--json'])).code, 0);
    assert.ok(await pings(suite.cluster, suite.c.c1!.netns, suite.c.c2!.endpoint.ip));
  });
});
