/** The untracked forwarding path of a network's own traffic in table ip vxnet (vxnet issue 19). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredNetwork } from '../../src/agent/dataplane.ts';
import { rangesWithout, renderFirewall } from '../../src/agent/kernel/nftables.ts';

function network(vni: number, subnets: string[], gateways: string[], internal = false): DesiredNetwork {
  return {
    name: `n${vni}`, vni, bridge: `vxnb${vni}`, vxlan: `vxnv${vni}`, port: 4789, mtu: 1450, localAddress: '10.99.0.1',
    gatewayMac: '02:78:c0:a8:01:01', gatewayAddresses: gateways, subnets, internal,
  };
}

const chainLines = (table: string, name: string) =>
  new RegExp(`\\tchain ${name} \\{\\n([^}]*)\\n\\t\\}`).exec(table)?.[1]?.split('\n').map((l) => l.trim());
const setElements = (table: string, name: string) => new RegExp(`\\tset ${name} \\{\\n[^}]*?elements = \\{ ([^}]*) \\}`).exec(table)?.[1];

describe('rangesWithout', () => {
  it('cuts the gateway addresses out of a subnet', () => {
    assert.deepEqual(rangesWithout('192.168.1.0/24', ['192.168.1.1']), ['192.168.1.0-192.168.1.0', '192.168.1.2-192.168.1.255']);
    assert.deepEqual(rangesWithout('10.0.0.0/30', ['10.0.0.3', '10.0.0.0']), ['10.0.0.1-10.0.0.2']);
    assert.deepEqual(rangesWithout('10.0.0.0/30', []), ['10.0.0.0-10.0.0.3']);
  });

  it('ignores addresses outside the subnet, duplicates and malformed input', () => {
    assert.deepEqual(rangesWithout('10.0.0.0/30', ['10.0.1.1', '10.0.0.1', '10.0.0.1', 'nope']), ['10.0.0.0-10.0.0.0', '10.0.0.2-10.0.0.3']);
    assert.deepEqual(rangesWithout('not a subnet', ['10.0.0.1']), []);
  });
});

describe('the forwarding path of a network’s own traffic', () => {
  const multi = network(42, ['192.168.1.0/24', '192.168.2.0/24'], ['192.168.1.1/24', '192.168.2.1/24']);
  const internal = network(43, ['192.168.3.0/24'], ['192.168.3.1/24'], true);

  it('exempts traffic on a bridge to its own subnets from connection tracking, before conntrack (-200)', () => {
    const { table } = renderFirewall([multi, internal]);
    assert.deepEqual(chainLines(table, 'untracked'), [
      'type filter hook prerouting priority raw; policy accept;',
      'iifname . ip daddr @bridged notrack comment "a network\'s own traffic, never NATed"',
    ]);
    assert.equal(
      setElements(table, 'bridged'),
      [
        '"vxnb42" . 192.168.1.0-192.168.1.0', '"vxnb42" . 192.168.1.2-192.168.1.255',
        '"vxnb42" . 192.168.2.0-192.168.2.0', '"vxnb42" . 192.168.2.2-192.168.2.255',
        '"vxnb43" . 192.168.3.0-192.168.3.0', '"vxnb43" . 192.168.3.2-192.168.3.255',
      ].join(', '),
    );
    assert.match(table, /set bridged \{\n\t\ttype ifname \. ipv4_addr\n\t\tflags interval\n/);
  });

  it('keeps tracking what reaches a gateway (the host) and what leaves the network, so egress NAT still works', () => {
    const { table } = renderFirewall([multi]);
    const elements = setElements(table, 'bridged')!;
    assert.doesNotMatch(elements, /192\.168\.1\.1-|-192\.168\.1\.1,|192\.168\.2\.1-|-192\.168\.2\.1,/);
    // the masquerade rule is untouched: it sees every connection that leaves the bridge
    assert.match(table, /ip saddr 192\.168\.1\.0\/24 oifname != "vxnb42" masquerade/);
    // no other statement of the table untracks anything
    assert.equal(table.match(/notrack/g)?.length, 1);
  });

  it('accepts a bridge’s own frames with one lookup, before the per-network rules', () => {
    const { table } = renderFirewall([multi, internal]);
    const forward = chainLines(table, 'forward')!;
    assert.equal(forward[2], 'iifname . oifname @same_bridge accept comment "a bridge\'s own traffic"');
    assert.match(forward[3]!, /^iifname "vxnb42" oifname "vxnb\*" oifname != "vxnb42" drop/);
    assert.equal(setElements(table, 'same_bridge'), '"vxnb42" . "vxnb42", "vxnb43" . "vxnb43"');
  });

  it('is absent from a table without networks', () => {
    const { table } = renderFirewall([], { ports: [4789], allowedSources: ['10.99.0.2'] });
    assert.doesNotMatch(table, /untracked|bridged|same_bridge/);
  });
});
