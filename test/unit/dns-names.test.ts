/**
 * Endpoint names (vxnet issue 12): `vxnet attach --name/--alias`, a name unique per network (without regard
 * to case) and refused in one sentence otherwise, aliases shared, the name freed with its endpoint.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../../src/cli/command.ts';
import { formatEndpointTable } from '../../src/cli/format.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { BLUE_AND_RED, openTestManager, openTestManagerWithHub, vxnetError } from './support/manager.ts';
import { until } from './support/until.ts';

const ENV = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 'tok-env' };

const open = () => openTestManager({ nodes: ['host1', 'host2'], networks: BLUE_AND_RED });

describe('vxnet attach --name/--alias', () => {
  test('are sent as given; without them nothing is added', () => {
    const command = parseCommandLine('attach blue --node h1 --netns c1 --name web --alias api --alias www'.split(' '), ENV);
    assert.ok(command.kind === 'attach');
    assert.deepEqual(command.request, { network: 'blue', node: 'h1', netns: 'c1', name: 'web', aliases: ['api', 'www'] });
    const plain = parseCommandLine('attach blue --node h1 --netns c1'.split(' '), ENV);
    assert.ok(plain.kind === 'attach');
    assert.deepEqual(plain.request, { network: 'blue', node: 'h1', netns: 'c1' });
  });

  test('a name that is not one DNS label is a usage error', () => {
    for (const bad of ['web.blue', '-web', 'a'.repeat(64), 'wéb']) {
      assert.throws(
        () => parseCommandLine(['attach', 'blue', '--node', 'h1', '--netns', 'c1', '--name', bad], ENV),
        (err: unknown) => err instanceof UsageError && /^endpoint name .* is invalid: use 1-63 letters/.test(err.message),
      );
    }
    assert.throws(() => parseCommandLine(['attach', 'blue', '--node', 'h1', '--netns', 'c1', '--alias', 'a.b'], ENV), /endpoint alias "a.b" is invalid/);
  });
});

test('vxnet agent --resolv-conf names the file the gateways forward with; it must be absolute', () => {
  const argv = ['agent', '--manager', 'https://10.0.0.1:7400', '--advertise-addr', '10.0.0.2'];
  const command = parseCommandLine([...argv, '--resolv-conf', '/etc/vxnet/resolv.conf'], ENV);
  assert.ok(command.kind === 'agent');
  assert.equal(command.resolvConf, '/etc/vxnet/resolv.conf');
  const plain = parseCommandLine(argv, ENV);
  assert.ok(plain.kind === 'agent' && !('resolvConf' in plain));
  assert.throws(() => parseCommandLine([...argv, '--resolv-conf', 'resolv.conf'], ENV), /^UsageError: --resolv-conf needs an absolute path, not "resolv.conf"\.$/);
});

describe('endpoint names in the manager', () => {
  test('a name is unique per network, whatever its case; another network or an alias may reuse it', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const web = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', name: 'web', aliases: ['api'] });
    assert.equal(web.name, 'web');
    assert.deepEqual(web.aliases, ['api']);
    const revision = m.service.state.revision;
    await assert.rejects(
      m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c2', name: 'WEB' }),
      vxnetError('endpoint_exists', new RegExp(`^name WEB is already taken on network blue by endpoint ${web.id} on node host1; choose another with --name \\(aliases may be shared\\)\\.$`)),
    );
    assert.equal(m.service.state.revision, revision, 'nothing written, no address taken');
    await m.service.createEndpoint({ network: 'red', node: 'host2', netns: 'c2', name: 'web' });
    const shared = await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c3', name: 'db', aliases: ['api', 'web', 'API'] });
    assert.deepEqual(shared.aliases, ['api', 'web'], 'repeats dropped');
  });

  test('the name is free again once its endpoint goes (detach, network or node removal)', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const first = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', name: 'web' });
    await m.service.deleteEndpoint(first.id);
    const again = await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c2', name: 'web' });
    assert.equal(again.name, 'web');
    assert.equal((await m.store.get('/names/blue/web'))?.value, again.id);
    await m.service.deleteNetwork('blue', { force: true });
    assert.equal(await m.store.get('/names/blue/web'), undefined);
  });

  test('bad names and too many aliases are refused in one sentence', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', name: 'a.b' }), vxnetError('invalid_name', /^endpoint name "a.b" is invalid/));
    const many = Array.from({ length: 17 }, (_, i) => `a${i}`);
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', aliases: many }), vxnetError('bad_request', /^an endpoint takes at most 16 aliases, not 17\.$/));
  });
});

test('endpoint ls shows a NAMES column once an endpoint has a name', () => {
  const base = { network: 'blue', node: 'h1', ifname: 'eth0', prefix: 24, gateway: '10.1.0.1', mac: '02:78:0a:01:00:02', status: 'ready' as const, createdAt: '' };
  const table = formatEndpointTable([
    { ...base, id: 'e1', netns: '/run/netns/c1', ip: '10.1.0.2', name: 'web', aliases: ['api'] },
    { ...base, id: 'e2', netns: '/run/netns/c2', ip: '10.1.0.3' },
    { ...base, id: 'e3', netns: '/proc/1/ns/net', ip: '10.1.0.4' },
  ]);
  const rows = table.trimEnd().split('\n').map((line) => line.split(/\s{3,}/));
  assert.deepEqual(rows.map((r) => r[4]), ['NAMES', 'web,api', 'c2', '-']);
});

test("a Docker endpoint takes its container's --network-alias es with its name; the same again writes nothing", async (t) => {
  const m = await open();
  t.after(() => m.close());
  const made = await m.service.createEndpoint({ network: 'blue', node: 'host1', docker: 'd'.repeat(64) });
  await m.service.setDockerContainer(made.id, 'web', ['store', 'cache']);
  assert.deepEqual(m.service.getEndpoint(made.id).aliases, ['store', 'cache']);
  assert.equal(m.service.getEndpoint(made.id).dockerContainer, 'web');
  const revision = m.service.state.revision;
  await m.service.setDockerContainer(made.id, 'web', ['store', 'cache']);
  await m.service.setDockerContainer(made.id, 'web');
  assert.equal(m.service.state.revision, revision);
  await assert.rejects(m.service.setDockerContainer(made.id, 'web', ['a.b']), vxnetError('invalid_name', /^endpoint alias "a.b" is invalid/));
});

test("a name change costs one watch line per host of the endpoint's network, none elsewhere", async (t) => {
  const hosts = ['host1', 'host2', 'host3', 'host4', 'host5', 'host6'];
  const m = await openTestManagerWithHub({
    nodes: hosts,
    networks: BLUE_AND_RED,
  });
  t.after(() => m.close());
  for (const [i, host] of hosts.entries()) await m.service.createEndpoint({ network: i < 3 ? 'blue' : 'red', node: host, netns: `c${i}` });
  const docker = await m.service.createEndpoint({ network: 'blue', node: 'host1', docker: 'e'.repeat(64) });
  const seen = new Map<string, WatchMessage[]>();
  for (const host of hosts) {
    const lines: WatchMessage[] = [];
    seen.set(host, lines);
    m.hub.attach(host, {
      write: (text: string) => void lines.push(...text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as WatchMessage)),
      bufferedBytes: 0,
      close: () => {},
    });
  }
  await until(() => hosts.every((h) => seen.get(h)!.some((msg) => msg.type === 'snapshot')), 'snapshots');
  for (const lines of seen.values()) lines.length = 0;
  await m.service.setDockerContainer(docker.id, 'web', ['store']);
  await until(() => ['host1', 'host2', 'host3'].every((h) => seen.get(h)!.length === 1), 'the name on blue');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(hosts.map((h) => seen.get(h)!.length), [1, 1, 1, 0, 0, 0]);
  const line = seen.get('host2')![0]!;
  assert.ok(line.type === 'endpoint' && line.endpoint.dockerContainer === 'web' && line.endpoint.aliases?.[0] === 'store');
});
