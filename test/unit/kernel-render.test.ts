/** Renderers of the kernel data plane: batch lines and the nftables table. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DesiredEndpoint, DesiredNetwork } from '../../src/agent/dataplane.ts';
import { deleteScript, planFirewall, renderFirewall, replaceScript } from '../../src/agent/kernel/nftables.ts';
import {
  batchInput,
  renderEndpointAttach,
  renderEndpointCreate,
  renderEndpointInside,
  renderEndpointUndo,
  renderFdbStep,
  renderLinkStep,
  renderNeighbourStep,
} from '../../src/agent/kernel/render.ts';

describe('batch line renderers', () => {
  it('renders link steps for ip -batch', () => {
    assert.equal(renderLinkStep({ op: 'bridge-add', name: 'vxnb42', mac: '02:78:c0:a8:01:01', mtu: 1450 }), 'link add name vxnb42 address 02:78:c0:a8:01:01 mtu 1450 type bridge');
    assert.equal(
      renderLinkStep({ op: 'vxlan-add', name: 'vxnv42', vni: 42, port: 4789, local: '10.99.0.1', mtu: 1450 }),
      'link add name vxnv42 mtu 1450 type vxlan id 42 dstport 4789 local 10.99.0.1 nolearning proxy',
    );
    assert.equal(
      renderLinkStep({ op: 'vxlan-add', name: 'vxnv43', vni: 43, port: 8472, local: '10.99.0.1', mtu: 1400, group: '239.1.1.1', device: 'eth0', ttl: 5 }),
      'link add name vxnv43 mtu 1400 type vxlan id 43 dstport 8472 local 10.99.0.1 group 239.1.1.1 dev eth0 ttl 5 nolearning proxy',
    );
    assert.equal(renderLinkStep({ op: 'link-set', name: 'vxnv42', master: 'vxnb42', mtu: 1450, up: true }), 'link set dev vxnv42 master vxnb42 mtu 1450 up');
    assert.equal(renderLinkStep({ op: 'link-set', name: 'vxnb42', mac: '02:78:c0:a8:01:01' }), 'link set dev vxnb42 address 02:78:c0:a8:01:01');
    assert.equal(renderLinkStep({ op: 'link-del', name: 'vxnb42', why: 'x' }), 'link del dev vxnb42');
    assert.equal(renderLinkStep({ op: 'addr-add', dev: 'vxnb42', cidr: '192.168.1.1/24' }), 'addr add 192.168.1.1/24 dev vxnb42');
    assert.equal(renderLinkStep({ op: 'addr-del', dev: 'vxnb42', cidr: '192.168.9.1/24' }), 'addr del 192.168.9.1/24 dev vxnb42');
  });

  it('renders permanent neighbours and their deletion', () => {
    assert.equal(
      renderNeighbourStep({ op: 'neigh-replace', dev: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14' }),
      'neigh replace 192.168.1.20 lladdr 02:78:c0:a8:01:14 dev vxnv42 nud permanent',
    );
    assert.equal(renderNeighbourStep({ op: 'neigh-del', dev: 'vxnv42', ip: '192.168.1.20' }), 'neigh del 192.168.1.20 dev vxnv42');
  });

  it('renders FDB adds as self permanent and deletes with the same self flag and destination', () => {
    assert.equal(
      renderFdbStep({ op: 'fdb-replace', dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: '10.99.0.2' }),
      'fdb replace 02:78:c0:a8:01:14 dev vxnv42 dst 10.99.0.2 self permanent',
    );
    assert.equal(
      renderFdbStep({ op: 'fdb-append', dev: 'vxnv42', mac: '00:00:00:00:00:00', dst: '10.99.0.2' }),
      'fdb append 00:00:00:00:00:00 dev vxnv42 dst 10.99.0.2 self permanent',
    );
    assert.equal(
      renderFdbStep({ op: 'fdb-del', dev: 'vxnv42', mac: '00:00:00:00:00:00', dst: '10.99.0.2' }),
      'fdb del 00:00:00:00:00:00 dev vxnv42 dst 10.99.0.2 self',
    );
  });

  it('renders the endpoint setup: host side, inside the namespace, attach, undo', () => {
    const ep: DesiredEndpoint = {
      id: 'aaaaaaaaaaaa', bridge: 'vxnb42', hostVeth: 'vxnhaaaaaaaaaa', peerVeth: 'vxncaaaaaaaaaa', netns: '/proc/123/ns/net',
      ifname: 'eth1', mac: '02:78:C0:A8:01:02', address: '192.168.1.2/24', gateway: '192.168.1.1', mtu: 1450,
      extraRoutes: ['192.168.10.0/24'],
    };
    assert.deepEqual(renderEndpointCreate(ep), [
      'link add name vxnhaaaaaaaaaa mtu 1450 type veth peer name vxncaaaaaaaaaa mtu 1450 address 02:78:c0:a8:01:02 netns /proc/123/ns/net',
    ]);
    assert.deepEqual(renderEndpointInside(ep), [
      'link set dev vxncaaaaaaaaaa name eth1',
      'addr add 192.168.1.2/24 dev eth1',
      'link set dev eth1 up',
      'link set dev lo up',
      'route replace default via 192.168.1.1 dev eth1',
      'route replace 192.168.10.0/24 via 192.168.1.1 dev eth1',
    ]);
    assert.equal(renderEndpointAttach(ep), 'link set dev vxnhaaaaaaaaaa master vxnb42 up');
    assert.equal(renderEndpointUndo(ep), 'link del dev vxnhaaaaaaaaaa');
    assert.equal(batchInput(['a', 'b']), 'a\nb\n');
    assert.equal(batchInput([]), '');
  });
});

function network(vni: number, name: string, subnet: string, gateway: string, internal = false): DesiredNetwork {
  return {
    name, vni, bridge: `vxnb${vni}`, vxlan: `vxnv${vni}`, port: 4789, mtu: 1450, localAddress: '10.99.0.1',
    gatewayMac: '02:78:c0:a8:01:01', gatewayAddresses: [gateway], subnets: [subnet], internal,
  };
}

describe('nftables table', () => {
  const front = network(42, 'front', '192.168.1.0/24', '192.168.1.1/24');
  const back = network(43, 'back', '192.168.3.0/24', '192.168.3.1/24', true);

  it('renders the table the capture script installed in a real namespace', () => {
    const fixture = readFileSync(join(import.meta.dirname, '../fixtures/kernel/nft-rendered.nft'), 'utf8');
    assert.equal(replaceScript(renderFirewall([front, back])), fixture);
  });

  it('masquerades non-internal subnets leaving through any other interface, never internal ones', () => {
    const { table } = renderFirewall([front, back]);
    assert.match(table, /ip saddr 192\.168\.1\.0\/24 oifname != "vxnb42" masquerade/);
    assert.doesNotMatch(table, /192\.168\.3\.0\/24/);
  });

  it('isolates networks from each other and internal networks from everything else', () => {
    const { table } = renderFirewall([front, back]);
    assert.match(table, /iifname "vxnb42" oifname "vxnb\*" oifname != "vxnb42" drop/);
    assert.match(table, /iifname "vxnb43" oifname != "vxnb43" drop/);
    assert.match(table, /oifname "vxnb43" iifname != "vxnb43" drop/);
    assert.match(table, /type filter hook forward priority filter - 10; policy accept;/);
  });

  it('drops packets addressed to another network’s gateway', () => {
    const { table } = renderFirewall([front, back, network(44, 'third', '192.168.4.0/24', '192.168.4.1/24')]);
    assert.match(table, /iifname "vxnb42" ip daddr \{ 192\.168\.3\.1, 192\.168\.4\.1 \} drop/);
    assert.match(table, /iifname "vxnb43" ip daddr \{ 192\.168\.1\.1, 192\.168\.4\.1 \} drop/);
  });

  it('has a hash that ignores input order and changes with the rules', () => {
    const a = renderFirewall([front, back]);
    assert.equal(renderFirewall([back, front]).hash, a.hash);
    assert.notEqual(renderFirewall([front]).hash, a.hash);
    assert.notEqual(renderFirewall([front, { ...back, internal: false }]).hash, a.hash);
    assert.match(a.table, new RegExp(`comment "vxnet rules sha256:${a.hash}"`));
  });

  it('is replaced atomically, only when the installed hash differs, and deleted when no network is left', () => {
    const { hash } = renderFirewall([front]);
    assert.deepEqual(planFirewall([front], { present: true, hash }), { action: 'none' });
    const replace = planFirewall([front], { present: true, hash: '0000000000000000' });
    assert.equal(replace.action, 'replace');
    assert.ok(replace.action === 'replace' && replace.script.startsWith('table ip vxnet\ndelete table ip vxnet\ntable ip vxnet {\n'));
    assert.equal(planFirewall([front], { present: false }).action, 'replace');
    assert.deepEqual(planFirewall([], { present: true }), { action: 'delete', script: deleteScript() });
    assert.deepEqual(planFirewall([], { present: false }), { action: 'none' });
  });
});
