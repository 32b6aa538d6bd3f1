/**
 * Every bad input the core issue lists, through the real CLI against a real cluster: one clear sentence,
 * a non-zero exit, and nothing changed anywhere — no store record, no address, no kernel object.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { ownedKernelObjects } from './support/probes.ts';

describe('bad input is refused with one sentence and changes nothing', () => {
  let cluster: Cluster;
  let c1: string;
  let c1ip: string;

  async function snapshot(): Promise<string> {
    const networks = await cluster.cli(['network', 'ls', '--json']);
    const endpoints = await cluster.cli(['endpoint', 'ls', '--json']);
    const kernel = await Promise.all(cluster.hosts.map((h) => ownedKernelObjects(cluster, h)));
    return JSON.stringify({ networks: networks.stdout, endpoints: endpoints.stdout, kernel });
  }

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false });
    assert.equal((await cluster.cli(['network', 'create', 'blue', '--vni', '1000', '--subnet', '192.168.1.0/24'])).code, 0);
    assert.equal((await cluster.cli(['network', 'create', 'tiny', '--subnet', '10.60.0.0/30'])).code, 0);
    c1 = await cluster.addContainer('c1');
    const attach = await cluster.cli(['attach', 'blue', '--node', 'host1', '--netns', c1]);
    assert.equal(attach.code, 0, attach.stderr);
    c1ip = attach.stdout.trim().split('/')[0]!;
  });
  after(async () => {
    await cluster?.destroy();
  });

  const cases: [string, () => string[], RegExp, Record<string, string>?][] = [
    ['VNI out of range (0)', () => ['network', 'create', 'n1', '--vni', '0', '--subnet', '10.1.0.0/24'], /VNI.*1.*16777215/i],
    ['VNI out of range (2^24)', () => ['network', 'create', 'n1', '--vni', '16777216', '--subnet', '10.1.0.0/24'], /VNI.*16777215/i],
    ['VNI already used', () => ['network', 'create', 'n1', '--vni', '1000', '--subnet', '10.1.0.0/24'], /VNI 1000.*(used|taken|blue)/i],
    ['malformed CIDR (host bits)', () => ['network', 'create', 'n1', '--subnet', '10.1.0.1/24'], /CIDR|subnet/i],
    ['malformed CIDR (prefix)', () => ['network', 'create', 'n1', '--subnet', '10.1.0.0/40'], /CIDR|subnet/i],
    ['subnet overlapping another network', () => ['network', 'create', 'n1', '--subnet', '192.168.1.128/25'], /overlap/i],
    ['gateway outside its subnet', () => ['network', 'create', 'n1', '--subnet', '10.1.0.0/24', '--gateway', '10.2.0.1'], /gateway.*(outside|not in)/i],
    ['MTU larger than the underlay allows', () => ['network', 'create', 'n1', '--subnet', '10.1.0.0/24', '--mtu', '1451'], /MTU.*1450/i],
    ['duplicate network name', () => ['network', 'create', 'blue', '--subnet', '10.1.0.0/24'], /blue.*exists/i],
    ['static IP outside the subnet', () => ['attach', 'blue', '--node', 'host2', '--netns', c1, '--ifname', 'eth1', '--ip', '10.9.9.9'], /outside|not in/i],
    ['static IP equal to the gateway', () => ['attach', 'blue', '--node', 'host2', '--netns', c1, '--ifname', 'eth1', '--ip', '192.168.1.1'], /gateway/i],
    ['static IP equal to the network address', () => ['attach', 'blue', '--node', 'host2', '--netns', c1, '--ifname', 'eth1', '--ip', '192.168.1.0'], /network address/i],
    ['static IP equal to the broadcast address', () => ['attach', 'blue', '--node', 'host2', '--netns', c1, '--ifname', 'eth1', '--ip', '192.168.1.255'], /broadcast/i],
    ['static IP taken', () => ['attach', 'blue', '--node', 'host2', '--netns', c1, '--ifname', 'eth1', '--ip', c1ip], /in use|taken/i],
    ['unknown network', () => ['attach', 'nope', '--node', 'host1', '--netns', c1, '--ifname', 'eth1'], /network.*nope/i],
    ['unknown node', () => ['attach', 'blue', '--node', 'host9', '--netns', c1, '--ifname', 'eth1'], /node.*host9/i],
    ['a target namespace that does not exist', () => ['attach', 'blue', '--node', 'host1', '--netns', 'vxt-no-such-ns'], /namespace.*does not exist/i],
    ['removing a network that still has endpoints', () => ['network', 'rm', 'blue'], /endpoint/i],
    ['a wrong token', () => ['network', 'create', 'n1', '--subnet', '10.1.0.0/24'], /token/i, { VXNET_TOKEN: 'vxnet-admin-wrong' }],
    ['a missing token', () => ['network', 'ls'], /token/i, { VXNET_TOKEN: '' }],
  ];

  for (const [what, args, message, env] of cases) {
    it(`refuses ${what}`, async () => {
      const before = await snapshot();
      const result = await runCli(cluster, args(), env);
      assert.notEqual(result.code, 0, `exit code for ${what}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line on stderr, got:\n${result.stderr}`);
      assert.match(lines[0]!, /^vxnet: /);
      assert.match(lines[0]!, message);
      assert.equal(await snapshot(), before, 'nothing changed');
    });
  }

  it('refuses an address once the subnet is full, and releases it on detach', async () => {
    const a = await cluster.addContainer('t1');
    const b = await cluster.addContainer('t2');
    const first = await cluster.cli(['attach', 'tiny', '--node', 'host1', '--netns', a]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.trim(), '10.60.0.2/30');
    const before = await snapshot();
    const full = await cluster.cli(['attach', 'tiny', '--node', 'host2', '--netns', b]);
    assert.notEqual(full.code, 0);
    assert.match(full.stderr, /no free address/i);
    assert.equal(await snapshot(), before, 'nothing changed');
    assert.equal((await cluster.cli(['detach', 'tiny', '--node', 'host1', '--netns', a])).code, 0);
    const again = await cluster.cli(['attach', 'tiny', '--node', 'host2', '--netns', b]);
    assert.equal(again.stdout.trim(), '10.60.0.2/30', 'the released address is handed out again');
  });
});

async function runCli(cluster: Cluster, args: string[], env?: Record<string, string>) {
  if (!env) return cluster.cli(args);
  const { run } = await import('../../src/testkit/processes.ts');
  const { DEFAULT_CLI_PATH } = await import('../../src/testkit/cluster.ts');
  return run([process.execPath, DEFAULT_CLI_PATH, ...args], { env: { ...process.env, ...cluster.cliEnv(), ...env } });
}
