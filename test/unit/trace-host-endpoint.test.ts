/** Host endpoints' pure parts (src/agent/host-endpoint.ts) and the --host flag of attach and detach. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { renderHostTable, subnetHalves } from '../../src/agent/host-endpoint.ts';
import { UsageError } from '../../src/cli/command.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { openTestManager, vxnetError } from './support/manager.ts';

const ENV = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 'tok-env' };
const parse = (line: string) => parseCommandLine(line.split(' '), ENV);

describe('host endpoints', () => {
  test('the subnet is routed by its two halves, more specific than the bridge\'s route', () => {
    assert.deepEqual(subnetHalves('192.168.1.0/24'), ['192.168.1.0/25', '192.168.1.128/25']);
    assert.deepEqual(subnetHalves('10.8.0.0/14'), ['10.8.0.0/15', '10.10.0.0/15']);
    assert.deepEqual(subnetHalves('nonsense'), []);
  });

  test('table ip vxnethost: nothing forwarded from or to a host interface; only its own address reached through it', () => {
    assert.equal(renderHostTable([{ ifname: 'vxh1000', ip: '192.168.1.3' }]), [
      'table ip vxnethost',
      'delete table ip vxnethost',
      'table ip vxnethost {',
      '\tchain forward {',
      '\t\ttype filter hook forward priority filter - 10; policy accept;',
      '\t\tiifname "vxh*" drop',
      '\t\toifname "vxh*" drop',
      '\t}',
      '\tchain input {',
      '\t\ttype filter hook input priority filter - 10; policy accept;',
      '\t\tiifname "vxh1000" ip daddr != 192.168.1.3 drop',
      '\t}',
      '}',
      '',
    ].join('\n'));
  });

  test('attach and detach --host', () => {
    assert.deepEqual((parse('attach blue --node host1 --host') as { request: unknown }).request, { network: 'blue', node: 'host1', host: true });
    assert.equal((parse('detach blue --node host1 --host') as { host?: true }).host, true);
    for (const line of ['attach blue --node host1 --host --netns c1', 'detach blue --node host1 --host --container x', 'attach blue --node host1 --host --ifname eth1']) {
      assert.throws(() => parse(line), (err: unknown) => err instanceof UsageError && /^"vxnet (attach|detach)" takes --host or --(netns|container|ifname), not both\.$/.test(err.message));
    }
  });
});

describe('host endpoints in the manager', () => {
  test('one per network and node, on interface vxh<VNI>; no ifname, no second target', async () => {
    const m = await openTestManager({ nodes: ['host1'], networks: [{ name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24' }] }, { name: 'red', vni: 1001 }] });
    try {
      const blue = await m.service.createEndpoint({ network: 'blue', node: 'host1', host: true }, { waitMs: 0 });
      assert.deepEqual([blue.host, blue.ifname, blue.netns], [true, 'vxh1000', undefined]);
      const red = await m.service.createEndpoint({ network: 'red', node: 'host1', host: true }, { waitMs: 0 });
      assert.equal(red.ifname, 'vxh1001');
      await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', host: true }, { waitMs: 0 }), vxnetError('endpoint_exists'));
      await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', host: true, ifname: 'eth1' }, { waitMs: 0 }), vxnetError('bad_request', /^a host endpoint takes no ifname/));
      await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', host: true, netns: 'c1' }, { waitMs: 0 }), vxnetError('bad_request', /exactly one target/));
    } finally {
      await m.close();
    }
  });
});
