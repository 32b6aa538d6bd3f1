/** A chosen MAC for an endpoint (CNI_ARGS MAC=, `podman run --mac-address`): checked, unique in its network, kept. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningManager } from '../../src/manager/main.ts';
import { injectInto, startSocketManager } from './support/manager.ts';

describe('endpoint MAC chosen by the runtime', () => {
  let manager: RunningManager;
  const call = injectInto(() => manager);

  before(async () => {
    ({ manager } = await startSocketManager('vxnet-cni-mac-'));
    await manager.service.registerNode({ name: 'host1', address: '192.0.2.11', mtu: 1500 });
    await manager.service.createNetwork({ name: 'blue', vni: 100, subnets: [{ cidr: '10.9.0.0/24' }] });
    await manager.service.createNetwork({ name: 'red', vni: 101, subnets: [{ cidr: '10.8.0.0/24' }] });
  });
  after(() => manager.close());

  test('the endpoint keeps the MAC asked for (lower case); without one it is derived from the address', async () => {
    const chosen = await manager.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'm1', mac: '0A:BC:00:00:00:01' }, { waitMs: 0 });
    assert.equal(chosen.mac, '0a:bc:00:00:00:01');
    const derived = await manager.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'm2' }, { waitMs: 0 });
    assert.equal(derived.mac, `02:78:0a:09:00:${Number(derived.ip.split('.')[3]).toString(16).padStart(2, '0')}`);
  });

  test('a MAC in use in the network is refused (409); in another network it is free', async () => {
    await assert.rejects(manager.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'm3', mac: '0a:bc:00:00:00:01' }, { waitMs: 0 }), {
      code: 'address_in_use',
      message: /^MAC 0a:bc:00:00:00:01 is in use by endpoint [0-9a-f]{12} on network blue\.$/,
    });
    const red = await manager.service.createEndpoint({ network: 'red', node: 'host1', netns: 'm3', mac: '0a:bc:00:00:00:01' }, { waitMs: 0 });
    assert.equal(red.mac, '0a:bc:00:00:00:01');
  });

  test('malformed, multicast, zero and vxnet-range MACs are refused with one sentence over the API (400), and nothing is allocated', async () => {
    const before = (await manager.service.listEndpoints({ network: 'blue' })).length;
    for (const [mac, message] of [
      ['0a:bc:00:00:00', 'MAC "0a:bc:00:00:00" is invalid: use six hex bytes separated by ":".'],
      ['01:00:5e:00:00:01', 'MAC 01:00:5e:00:00:01 is a multicast address: an interface needs a unicast one.'],
      ['00:00:00:00:00:00', 'MAC 00:00:00:00:00:00 is not an interface address.'],
      ['02:78:0a:09:00:09', "MAC 02:78:0a:09:00:09 is in vxnet's own range 02:78:..., kept for MACs derived from addresses."],
    ]) {
      const answer = await call({ method: 'POST', path: '/v1/endpoints?wait=0', token: manager.tokens.admin, body: { network: 'blue', node: 'host1', netns: 'm9', mac } });
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.deepEqual([answer.body.error.code, answer.body.error.message], ['invalid_address', message]);
    }
    const typed = await call({ method: 'POST', path: '/v1/endpoints?wait=0', token: manager.tokens.admin, body: { network: 'blue', node: 'host1', netns: 'm9', mac: 7 } });
    assert.equal(typed.status, 400);
    assert.equal((await manager.service.listEndpoints({ network: 'blue' })).length, before);
  });
});
