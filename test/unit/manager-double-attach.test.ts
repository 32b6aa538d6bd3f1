/**
 * One namespace, one interface per network (issue 17): a second attach of the same namespace to the same
 * network would give it a second default route, so the service refuses it with endpoint_exists.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BLUE_AND_RED, openTestManager, vxnetError } from './support/manager.ts';

const open = () => openTestManager({ nodes: ['host1', 'host2'], networks: BLUE_AND_RED });

describe('attaching a namespace twice to one network', () => {
  test('is refused whatever the interface name, and nothing is written', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const first = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    const revision = m.service.state.revision;
    await assert.rejects(
      m.service.createEndpoint({ network: 'blue', node: 'host1', netns: '/run/netns/c1', ifname: 'eth1' }),
      vxnetError(
        'endpoint_exists',
        new RegExp(
          `^/run/netns/c1 on node host1 is already attached to network blue \\(endpoint ${first.id}, interface eth0\\); ` +
            'a second interface on the same network would take its default route, so detach it first\\.$',
        ),
      ),
    );
    await assert.rejects(
      m.service.createEndpoint({ network: 'blue', node: 'host1', container: 'web', ifname: 'eth1' }).then(() =>
        m.service.createEndpoint({ network: 'blue', node: 'host1', container: 'web', ifname: 'eth2' }),
      ),
      vxnetError('endpoint_exists', /^container web on node host1 is already attached to network blue/),
    );
    assert.equal(m.service.listEndpoints({ network: 'blue' }).length, 2);
    assert.ok(m.service.state.revision > revision);
  });

  test('another network, another node or another namespace is fine', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    await m.service.createEndpoint({ network: 'red', node: 'host1', netns: 'c1', ifname: 'eth1' });
    await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c1' });
    await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2' });
    assert.equal(m.service.listEndpoints({}).length, 4);
  });

  test('after a detach, the namespace may attach again', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const first = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    await m.service.deleteEndpoint(first.id);
    await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', ifname: 'eth1' });
  });
});
