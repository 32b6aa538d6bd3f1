/**
 * The kernel data plane over an IPv6 underlay (docs/architecture.md, "IPv6 underlay"): VXLAN devices with an
 * IPv6 `local` and FDB destinations read back from real iproute2 output so that a restarted agent changes
 * nothing, the peer allow-list in table ip6 vxnet_underlay (rendered, loaded by the kernel when captured,
 * read back, replaced when it drifts), multicast groups refused with a sentence.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DesiredState } from '../../src/agent/dataplane.ts';
import { effectiveVxlanFilter, planFirewall, renderFirewall } from '../../src/agent/kernel/nftables.ts';
import { planReconcile } from '../../src/agent/kernel/plan.ts';
import { parseFdb, parseLinks, parseUnderlay6, type ActualState, type LinkState } from '../../src/agent/kernel/read.ts';
import { renderFdbStep, renderLinkStep } from '../../src/agent/kernel/render.ts';
import { concernsOwnedTables } from '../../src/agent/kernel/table-cache.ts';
import { UNDERLAY6_TABLE } from '../../src/agent/kernel/underlay6.ts';
import { vxlanFilterOf } from '../../src/agent/desired.ts';
import { ClusterView } from '../../src/agent/view.ts';
import { desiredNetwork } from './support/fixtures.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');
const net = desiredNetwork(9, { localAddress: 'fd99::3', mtu: 1430 });
const peer = { vxlan: 'vxnv9', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14', vtep: 'fd99::5' };
const filter6 = { ports: [4789], allowedSources: ['fd99::2', 'fd99::1'], underlayDevice: 'u0', ipv6Underlay: true };

describe('VXLAN devices and entries over an IPv6 underlay', () => {
  it('creates the device with its IPv6 local and the FDB entries with IPv6 destinations', () => {
    const desired: DesiredState = { networks: [net], peers: [peer], floods: [{ vxlan: 'vxnv9', vtep: 'fd99::4' }], endpoints: [], vxlanFilter: filter6 };
    const empty: ActualState = { links: new Map(), neighbours: [], fdb: [], firewall: { present: false }, ipForward: true };
    const plan = planReconcile(desired, empty);
    assert.deepEqual(plan.rejected, []);
    const add = plan.links.find((s) => s.op === 'vxlan-add')!;
    assert.equal(renderLinkStep(add), 'link add name vxnv9 mtu 1430 type vxlan id 9 dstport 4789 local fd99::3 nolearning proxy');
  });

  it('reads local6 and IPv6 FDB destinations as iproute2 prints them, so a converged device is adopted with nothing to do', () => {
    const link = parseLinks(fixture('ip-addr-vxlan6.json')).find((l) => l.name === 'vxnv9')!;
    assert.equal(link.vxlan?.local, 'fd99::3');
    const fdb = parseFdb('[{"mac":"02:78:c0:a8:01:14","ifname":"vxnv9","dst":"fd99::5","flags":["self"],"state":"permanent"},' +
      '{"mac":"00:00:00:00:00:00","ifname":"vxnv9","dst":"fd99::4","flags":["self"],"state":"permanent"}]');
    assert.deepEqual(fdb.map((e) => e.dst), ['fd99::5', 'fd99::4']);
    const state: DesiredState = { networks: [{ ...net, mtu: link.mtu }], peers: [peer], floods: [{ vxlan: 'vxnv9', vtep: 'fd99::4' }], endpoints: [], vxlanFilter: filter6 };
    const bridge: LinkState = { name: 'vxnb9', index: 2, kind: 'bridge', mtu: link.mtu, up: true, mac: net.gatewayMac, peerElsewhere: false, ipv4: [...net.gatewayAddresses] };
    const actual: ActualState = {
      links: new Map([['vxnb9', bridge], ['vxnv9', { ...link, up: true, master: 'vxnb9', learning: false }]]),
      neighbours: [{ dev: 'vxnv9', ip: peer.ip, mac: peer.mac }],
      fdb: [...fdb, { dev: 'vxnv9', mac: peer.mac, dst: 'bridge' }],
      firewall: { present: false },
      ipForward: true,
    };
    const plan = planReconcile(state, actual);
    assert.deepEqual([plan.links, plan.neighbours, plan.fdb, plan.notes, plan.rejected], [[], [], [], [], []]);
  });

  it('a device whose local is the IPv4 address of before is recreated, saying why', () => {
    const link = parseLinks(fixture('ip-addr-vxlan6.json')).find((l) => l.name === 'vxnv9')!;
    const actual: ActualState = { links: new Map([['vxnv9', { ...link, vxlan: { ...link.vxlan!, local: '10.99.0.3' } }]]), neighbours: [], fdb: [], firewall: { present: false }, ipForward: true };
    const plan = planReconcile({ networks: [net], peers: [], floods: [], endpoints: [], vxlanFilter: filter6 }, actual);
    assert.match(plan.notes.join(' '), /recreating vxnv9: local is 10\.99\.0\.3, want fd99::3/);
  });

  it('FDB lines carry the IPv6 destination; a VTEP not in RFC 5952 form (which the dump would never match) is refused', () => {
    assert.equal(renderFdbStep({ op: 'fdb-replace', dev: 'vxnv9', mac: peer.mac, dst: 'fd99::5' }), 'fdb replace 02:78:c0:a8:01:14 dev vxnv9 dst fd99::5 self permanent');
    const plan = planReconcile(
      { networks: [net], peers: [{ ...peer, vtep: 'FD99:0::5' }], floods: [], endpoints: [], vxlanFilter: filter6 },
      { links: new Map(), neighbours: [], fdb: [], firewall: { present: false }, ipForward: true },
    );
    assert.deepEqual(plan.rejected.map((r) => r.reason), ['VTEP "FD99:0::5" is not an IPv4 or IPv6 address']);
  });

  it('a multicast group over an IPv6 underlay is refused with a sentence', () => {
    const plan = planReconcile(
      { networks: [{ ...net, multicastGroup: '239.1.1.1', underlayDevice: 'u0' }], peers: [], floods: [], endpoints: [], vxlanFilter: filter6 },
      { links: new Map(), neighbours: [], fdb: [], firewall: { present: false }, ipForward: true },
    );
    assert.deepEqual(plan.rejected.map((r) => r.reason), ['multicast group "239.1.1.1" needs an IPv4 underlay, but this node\'s underlay address fd99::3 is IPv6']);
    assert.deepEqual(plan.links, []);
  });
});

describe('the VXLAN peer allow-list over an IPv6 underlay', () => {
  const node = (name: string, address: string) => ({ name, address, mtu: 1500, registeredAt: '' });

  it('the members are the other nodes\' IPv6 addresses, and the node says its underlay is IPv6', () => {
    const view = new ClusterView();
    view.apply({ type: 'snapshot', revision: 1, nodes: [node('h1', 'fd99::1'), node('h2', 'fd99::10'), node('h3', 'fd99::2')], networks: [], endpoints: [] });
    const filter = vxlanFilterOf(view, { name: 'h1', address: 'fd99::1', underlayDevice: 'u0' });
    assert.deepEqual(filter, { ports: [4789], allowedSources: ['fd99::10', 'fd99::2'], underlayDevice: 'u0', ipv6Underlay: true });
  });

  it('renders table ip6 vxnet_underlay beside table ip vxnet (left with no IPv4 member), in one transaction with one hash', () => {
    const { filter } = effectiveVxlanFilter(filter6, [net]);
    assert.deepEqual(filter.allowedSources, ['fd99::1', 'fd99::2']);
    const rendered = renderFirewall([net], filter);
    assert.match(rendered.table, /set vxlan_peers \{\n\t\ttype ipv4_addr\n\t\}/, 'no IPv4 member: VXLAN over IPv4 is dropped from everyone');
    const body = rendered.underlay6!.join('\n');
    assert.match(body, /set vxlan_peers \{\n\t\ttype ipv6_addr\n\t\telements = \{ fd99::1, fd99::2 \}/);
    assert.match(body, /udp dport @vxlan_ports iifname "u0" ip6 saddr @vxlan_peers accept comment "vxnet rules sha256:[0-9a-f]{16}"/);
    assert.match(body, /udp dport @vxlan_ports counter drop comment "VXLAN from a non-member"/);
    assert.match(body, /udp dport @vxlan_ports ip6 daddr @vxlan_peers iifname != "u0" counter drop/);
    const plan = planFirewall([net], { present: false }, filter);
    assert.ok(plan.action === 'replace' && plan.underlay6 === true);
    assert.match(plan.script, /^table ip vxnet\ndelete table ip vxnet\ntable ip vxnet \{[^]*\n\}\ntable ip6 vxnet_underlay\ndelete table ip6 vxnet_underlay\ntable ip6 vxnet_underlay \{\n/);
    // a member more changes the hash, although table ip vxnet itself stays the same
    const more = renderFirewall([net], effectiveVxlanFilter({ ...filter6, allowedSources: [...filter6.allowedSources, 'fd99::7'] }, [net]).filter);
    assert.equal(more.table.replace(/sha256:\w+/g, ''), rendered.table.replace(/sha256:\w+/g, ''));
    assert.notEqual(more.hash, rendered.hash);
  });

  it('is left alone when both tables carry the hash, and put back when the IPv6 one is gone or stale', () => {
    const { filter } = effectiveVxlanFilter(filter6, [net]);
    const { hash } = renderFirewall([net], filter);
    assert.deepEqual(planFirewall([net], { present: true, hash, underlay6: { present: true, hash } }, filter), { action: 'none' });
    assert.equal(planFirewall([net], { present: true, hash, underlay6: { present: false } }, filter).action, 'replace');
    assert.equal(planFirewall([net], { present: true, hash, underlay6: { present: true, hash: '0123456789abcdef' } }, filter).action, 'replace');
    assert.equal(planFirewall([net], { present: true, hash }, filter).action, 'replace', 'not read: not known to be there');
    // no filter and no network wanted: both tables go
    const gone = planFirewall([], { present: true, hash, underlay6: { present: true, hash } });
    assert.ok(gone.action === 'delete' && gone.script.endsWith('table ip6 vxnet_underlay\ndelete table ip6 vxnet_underlay\n'));
  });

  it('reads the hash back from what nft printed for the rendered table (captured from the kernel)', () => {
    assert.deepEqual(parseUnderlay6(fixture('nft-underlay6.json')), { present: true, hash: '58a109a507a3546d' });
    assert.deepEqual(parseUnderlay6('{"nftables": [{"metainfo": {}}]}'), { present: false });
  });

  it('a foreign change to table ip6 vxnet_underlay is noticed by the table cache', () => {
    assert.equal(concernsOwnedTables(`delete table ip6 ${UNDERLAY6_TABLE}`), true);
    assert.equal(concernsOwnedTables('delete table ip6 other'), false);
  });

  it('an IPv4 node keeps only table ip vxnet, as before', () => {
    const rendered = renderFirewall([desiredNetwork(9)], { ports: [4789], allowedSources: ['10.99.0.2'] });
    assert.equal(rendered.underlay6, undefined);
  });
});
