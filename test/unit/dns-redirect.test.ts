/**
 * Docker's forwarded DNS steered to the gateways (src/agent/dns/redirect.ts): the table is rendered whole,
 * for this node's Docker endpoints only, and deleted when none is left.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dockerRedirects } from '../../src/agent/dns/service.ts';
import { DnsRedirect, renderRedirect } from '../../src/agent/dns/redirect.ts';
import type { Runner } from '../../src/agent/kernel/exec.ts';
import { ClusterView } from '../../src/agent/view.ts';
import { blueEndpoint, blueNetwork, twoNodes } from './support/fixtures.ts';

test('the script replaces the table whole: one DNAT rule per bridge and gateway, sources sorted', () => {
  const script = renderRedirect([{ bridge: 'vxnb1000', gateway: '192.168.1.1', sources: ['192.168.1.9', '192.168.1.3'] }]);
  assert.equal(
    script,
    [
      'table ip vxnet_dns {}',
      'delete table ip vxnet_dns',
      'table ip vxnet_dns {',
      '\tchain prerouting {',
      '\t\ttype nat hook prerouting priority dstnat - 5; policy accept;',
      '\t\tiifname "vxnb1000" ip saddr { 192.168.1.3, 192.168.1.9 } ip daddr != 192.168.1.1 meta l4proto { udp, tcp } th dport 53 dnat to 192.168.1.1 comment "Docker\'s forwarded DNS to the gateway"',
      '\t}',
      '}',
      '',
    ].join('\n'),
  );
  assert.equal(renderRedirect([]), 'table ip vxnet_dns {}\ndelete table ip vxnet_dns\n', 'nothing to steer: no table');
  assert.equal(renderRedirect([{ bridge: 'vxnb1000', gateway: '192.168.1.1', sources: [] }]), renderRedirect([]));
});

test("only this node's Docker endpoints are steered, never a namespace attached with vxnet attach", () => {
  const view = new ClusterView();
  const self = { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' };
  const docker = (id: string, host: number, node: string) => ({ ...blueEndpoint({ id, node, netns: '', host, createdAt: '' }), netns: undefined, docker: id.repeat(64).slice(0, 64) });
  const { netns: _n, ...dockerLocal } = docker('a', 2, 'host1');
  const { netns: _m, ...dockerRemote } = docker('b', 3, 'host2');
  view.apply({
    type: 'snapshot',
    revision: 1,
    nodes: twoNodes,
    networks: [blueNetwork('')],
    endpoints: [dockerLocal, dockerRemote, blueEndpoint({ id: 'c', node: 'host1', netns: '/run/netns/c1', host: 4, createdAt: '' })],
  });
  assert.deepEqual(dockerRedirects(view, self), [{ bridge: 'vxnb1000', gateway: '192.168.1.1', sources: ['192.168.1.2'] }]);
});

test('the same rules are not written again; a failure is logged and written again next time', async () => {
  const runs: string[] = [];
  let fail = true;
  const runner = {
    async run(argv: readonly string[], options: { input?: string } = {}) {
      runs.push(options.input ?? '');
      return { argv, code: fail ? 1 : 0, stdout: '', stderr: fail ? 'Error: No such file or directory' : '' };
    },
  } as unknown as Runner;
  const logs: string[] = [];
  const redirect = new DnsRedirect(runner, (line) => logs.push(line));
  const rules = [{ bridge: 'vxnb1000', gateway: '192.168.1.1', sources: ['192.168.1.2'] }];
  await redirect.apply(rules);
  assert.match(logs[0]!, /^warning: DNS: could not steer Docker's forwarded queries to the gateways: Error: No such file/);
  fail = false;
  await redirect.apply(rules);
  await redirect.apply(rules);
  assert.equal(runs.length, 2);
  await redirect.remove();
  assert.equal(runs.at(-1), 'table ip vxnet_dns {}\ndelete table ip vxnet_dns\n');
});
