/** IPv6 inside networks (issue 15), the agent's half: what the renderers write and the validators let through. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredEndpoint, DesiredNetwork } from '../../src/agent/dataplane.ts';
import { desiredState } from '../../src/agent/desired.ts';
import { ClusterView } from '../../src/agent/view.ts';
import { planAntispoof, parseAntispoof, portBindings, renderAntispoofTable } from '../../src/agent/kernel/antispoof.ts';
import { ipv6Sysctls } from '../../src/agent/kernel/endpoint-setup.ts';
import { devicesNeedingIpv6, enableIpv6, isIpv6AddressStep, parseFirewall6Hash, renderFirewall6 } from '../../src/agent/kernel/ipv6-firewall.ts';
import { planFirewall, renderFirewall } from '../../src/agent/kernel/nftables.ts';
import { parseFirewall } from '../../src/agent/kernel/read.ts';
import { renderEndpointInside, renderLinkStep } from '../../src/agent/kernel/render.ts';
import { validateEndpoint, validateNetwork } from '../../src/agent/kernel/validate.ts';
import type { Endpoint, Network } from '../../src/core/model.ts';

const dual: DesiredEndpoint = {
  id: 'aaaaaaaaaaaa',
  bridge: 'vxnb3100',
  hostVeth: 'vxnhaaaaaaaaaa',
  peerVeth: 'vxncaaaaaaaaaa',
  netns: '/run/netns/c1',
  ifname: 'eth0',
  mac: '02:78:c0:a8:1f:02',
  address: '192.168.31.2/24',
  gateway: '192.168.31.1',
  addresses: [
    { address: '192.168.31.2/24', gateway: '192.168.31.1' },
    { address: 'fd00:61::2/64', gateway: 'fd00:61::1' },
  ],
  mtu: 1450,
  extraRoutes: ['192.168.32.0/24', 'fd00:62::/64'],
};
const only6: DesiredEndpoint = { ...dual, id: 'bbbbbbbbbbbb', hostVeth: 'vxnhbbbbbbbbbb', peerVeth: 'vxncbbbbbbbbbb', mac: '02:79:00:00:00:02', address: 'fd00:60::2/64', gateway: 'fd00:60::1', extraRoutes: [] };
delete (only6 as { addresses?: unknown }).addresses;

const net = (name: string, vni: number, subnets: string[], gateways: string[], internal = false): DesiredNetwork => ({
  name,
  vni,
  bridge: `vxnb${vni}`,
  vxlan: `vxnv${vni}`,
  port: 4789,
  mtu: 1450,
  localAddress: '10.99.0.11',
  gatewayMac: '02:79:00:00:00:01',
  gatewayAddresses: gateways,
  subnets,
  internal,
});
const six = net('six', 3000, ['fd00:60::/64'], ['fd00:60::1/64']);
const both = net('dual', 3100, ['192.168.31.0/24', 'fd00:61::/64'], ['192.168.31.1/24', 'fd00:61::1/64']);
const plain = net('blue', 1000, ['192.168.1.0/24'], ['192.168.1.1/24']);

describe('IPv6 endpoints in the kernel', () => {
  it('adds IPv6 addresses nodad, with a ::/0 default route and other subnets via the gateway of their family', () => {
    assert.deepEqual(renderEndpointInside(dual), [
      'link set dev vxncaaaaaaaaaa name eth0',
      'addr add 192.168.31.2/24 dev eth0',
      'addr add fd00:61::2/64 dev eth0 nodad',
      'link set dev eth0 up',
      'link set dev lo up',
      'route replace default via 192.168.31.1 dev eth0',
      'route replace ::/0 via fd00:61::1 dev eth0',
      'route replace 192.168.32.0/24 via 192.168.31.1 dev eth0',
      'route replace fd00:62::/64 via fd00:61::1 dev eth0',
    ]);
    assert.deepEqual(renderEndpointInside(only6).slice(1, 2), ['addr add fd00:60::2/64 dev eth0 nodad']);
    assert.equal(renderLinkStep({ op: 'addr-add', dev: 'vxnb3000', cidr: 'fd00:60::1/64' }), 'addr add fd00:60::1/64 dev vxnb3000 nodad');
    assert.equal(renderLinkStep({ op: 'addr-add', dev: 'vxnb1000', cidr: '192.168.1.1/24' }), 'addr add 192.168.1.1/24 dev vxnb1000');
  });

  it('turns router advertisements off on IPv6 endpoints only, before the peer is renamed', () => {
    assert.deepEqual(ipv6Sysctls(only6), ['sysctl', '-q', '-w', 'net.ipv6.conf.vxncbbbbbbbbbb.accept_ra=0', 'net.ipv6.conf.vxncbbbbbbbbbb.disable_ipv6=0']);
    assert.equal(ipv6Sysctls({ ...only6, address: '10.0.0.2/24', gateway: '10.0.0.1' }), undefined);
  });

  it('lets canonical IPv6 through validation and refuses what iproute2 would print differently or mix families', () => {
    assert.equal(validateEndpoint(dual), undefined);
    assert.equal(validateEndpoint(only6), undefined);
    assert.equal(validateNetwork(six), undefined);
    assert.equal(validateNetwork(both), undefined);
    assert.match(validateEndpoint({ ...only6, address: 'FD00:60:0::2/64' }) ?? '', /is not of the form/);
    assert.match(validateEndpoint({ ...only6, gateway: '192.168.31.1' }) ?? '', /not an address of the family/);
    assert.match(validateEndpoint({ ...only6, address: 'fd00:60::2/129' }) ?? '', /is not of the form/);
    assert.match(validateEndpoint({ ...dual, address: '192.168.31.9/24' }) ?? '', /not the first of its addresses/);
  });
});

describe('IPv6 anti-spoofing elements', () => {
  it('binds each IPv6 address to its port as a 128-bit number, and reads it back as the address', () => {
    const bindings = portBindings([dual, only6]);
    assert.deepEqual(bindings, [
      { port: 'vxnhaaaaaaaaaa', mac: '02:78:c0:a8:1f:02', ip: '192.168.31.2', ips6: ['fd00:61::2'] },
      { port: 'vxnhbbbbbbbbbb', mac: '02:79:00:00:00:02', ips6: ['fd00:60::2'] },
    ]);
    const table = renderAntispoofTable([], [], ['vxnhbbbbbbbbbb fd00:60::2']);
    assert.match(table, /set endpoint_ips6 \{\n\t\ttypeof iifname \. @nh,64,128\n\t\telements = \{ "vxnhbbbbbbbbbb" \. 0xfd000060000000000000000000000002 \}/);
    assert.match(table, /chain ndp_out \{[\s\S]*oifname "vxnv\*" icmpv6 type \{ nd-router-solicit, nd-router-advert, nd-neighbor-advert/);
    const installed = parseAntispoof(JSON.stringify({
      nftables: [
        { table: { family: 'bridge', name: 'vxnet' } },
        { set: { family: 'bridge', table: 'vxnet', name: 'endpoint_ips6', elem: [{ concat: ['vxnhbbbbbbbbbb', '0xfd000060000000000000000000000002'] }] } },
      ],
    }));
    assert.deepEqual(installed.ips6, ['vxnhbbbbbbbbbb fd00:60::2']);
    const plan = planAntispoof(bindings, { ...installed, hash: planAntispoof([], { present: false, macs: [], ips: [] }).after.hash!, macs: bindings.map((b) => `${b.port} ${b.mac}`), ips: ['vxnhaaaaaaaaaa 192.168.31.2'] });
    assert.deepEqual(plan.lines, ['add element bridge vxnet endpoint_ips6 { "vxnhaaaaaaaaaa" . 0xfd000061000000000000000000000002 }']);
  });
});

describe('table ip6 vxnet', () => {
  it('masquerades IPv6 subnets, isolates every network over IPv6 and closes other networks\' IPv6 gateways', () => {
    const rendered = renderFirewall6([plain, six, both])!;
    assert.match(rendered.table, /ip6 saddr fd00:60::\/64 oifname != "vxnb3000" masquerade comment "network six"/);
    assert.match(rendered.table, /ip6 saddr fd00:61::\/64 oifname != "vxnb3100" masquerade/);
    assert.match(rendered.table, /iifname "vxnb1000" oifname "vxnb\*" oifname != "vxnb1000" drop comment "network blue"/);
    assert.match(rendered.table, /iifname "vxnb3000" ip6 daddr \{ fd00:61::1 \} drop/);
    assert.equal(parseFirewall6Hash(JSON.stringify({ nftables: [{ rule: { family: 'ip6', table: 'vxnet', comment: `vxnet rules6 sha256:${rendered.hash}` } }] })), rendered.hash);
    assert.equal(renderFirewall6([plain]), undefined, 'no IPv6 network, no IPv6 table');
  });

  it('keeps table ip vxnet IPv4-only, naming the IPv6 table\'s hash, and replaces or removes both in one script', () => {
    const rendered = renderFirewall([plain, both]);
    assert.doesNotMatch(rendered.table, /fd00/);
    assert.match(rendered.table, new RegExp(`counter comment "vxnet rules6 sha256:${rendered.hash6}"`));
    assert.equal(renderFirewall([plain]).hash6, undefined);
    const installed = parseFirewall(JSON.stringify({ nftables: [{ table: { family: 'ip', name: 'vxnet' } }, { rule: { table: 'vxnet', comment: `vxnet rules6 sha256:${rendered.hash6}` } }] }));
    assert.equal(installed.hash6, rendered.hash6);
    const replace = planFirewall([plain, both], { present: false });
    assert.ok(replace.action === 'replace' && replace.script.includes('table ip6 vxnet {') && replace.hash6 === rendered.hash6);
    // the IPv6 network is gone: table ip6 vxnet goes with the replacement of table ip vxnet
    const shrink = planFirewall([plain], { present: true, hash: rendered.hash, hash6: rendered.hash6! });
    assert.ok(shrink.action === 'replace' && shrink.script.endsWith('table ip6 vxnet\ndelete table ip6 vxnet\n'));
    const gone = planFirewall([], { present: true, hash: rendered.hash, hash6: rendered.hash6! });
    assert.ok(gone.action === 'delete' && gone.script.includes('delete table ip6 vxnet'));
  });
});

describe('desired state of IPv6 networks', () => {
  it('programs one neighbour entry per address of a remote dual-stack endpoint, with one MAC and VTEP', () => {
    const network: Network = {
      name: 'dual', vni: 3100, mtu: 1450, port: 4789, internal: false, createdAt: '',
      subnets: [{ cidr: '192.168.31.0/24', gateway: '192.168.31.1' }, { cidr: 'fd00:61::/64', gateway: 'fd00:61::1' }],
    };
    const endpoint = (id: string, node: string, n: number): Endpoint => ({
      id, network: 'dual', node, netns: `/run/netns/${id}`, ifname: 'eth0', ip: `192.168.31.${n}`, prefix: 24, gateway: '192.168.31.1',
      addresses: [{ ip: `192.168.31.${n}`, prefix: 24, gateway: '192.168.31.1' }, { ip: `fd00:61::${n}`, prefix: 64, gateway: 'fd00:61::1' }],
      mac: `02:78:c0:a8:1f:0${n}`, status: 'ready', createdAt: '',
    });
    const view = new ClusterView();
    view.apply({
      type: 'snapshot', revision: 1,
      nodes: [{ name: 'n1', address: '10.99.0.11', mtu: 1500, registeredAt: '' }, { name: 'n2', address: '10.99.0.12', mtu: 1500, registeredAt: '' }],
      networks: [network],
      endpoints: [endpoint('aaaaaaaaaaaa', 'n1', 2), endpoint('bbbbbbbbbbbb', 'n2', 3)],
    });
    const state = desiredState(view, { name: 'n1', address: '10.99.0.11', underlayDevice: 'eth0' });
    assert.deepEqual(state.peers.map((p) => `${p.ip} ${p.mac} ${p.vtep}`), ['192.168.31.3 02:78:c0:a8:1f:03 10.99.0.12', 'fd00:61::3 02:78:c0:a8:1f:03 10.99.0.12']);
    assert.deepEqual(state.networks[0]!.gatewayAddresses, ['192.168.31.1/24', 'fd00:61::1/64']);
    assert.equal(state.networks[0]!.gatewayMac, '02:78:c0:a8:1f:01', 'the IPv4 gateway\'s MAC, as before IPv6');
    assert.deepEqual(state.endpoints[0]!.addresses, [{ address: '192.168.31.2/24', gateway: '192.168.31.1' }, { address: 'fd00:61::2/64', gateway: 'fd00:61::1' }]);
    assert.equal(state.floods.length, 1);
  });
});

describe('IPv6 on the devices that get an IPv6 address', () => {
  it('is turned on only where it is off, and only for the devices given', async () => {
    const files = new Map([
      ['/proc/sys/net/ipv6/conf/vxnb3100/disable_ipv6', '1\n'],
      ['/proc/sys/net/ipv6/conf/vxnb3200/disable_ipv6', '0\n'],
    ]);
    const written: string[] = [];
    const run = {
      readFile: async (path: string) => files.get(path),
      writeFile: async (path: string, text: string) => void written.push(`${path}=${text.trim()}`),
    };
    const logged: string[] = [];
    const errors: string[] = [];
    assert.equal(await enableIpv6(run, ['vxnb3100', 'vxnb3200'], (line) => logged.push(line), errors), 1);
    assert.deepEqual(written, ['/proc/sys/net/ipv6/conf/vxnb3100/disable_ipv6=0']);
    assert.deepEqual(logged, ['enabled IPv6 on vxnb3100 (net.ipv6.conf.vxnb3100.disable_ipv6=0)']);
    assert.deepEqual(errors, []);
  });

  it('says which device failed, and goes on with the others', async () => {
    const run = {
      readFile: async () => '1\n',
      writeFile: async (path: string) => {
        if (path.includes('vxnb3100')) throw new Error('EACCES');
      },
    };
    const errors: string[] = [];
    assert.equal(await enableIpv6(run, ['vxnb3100', 'vxnb3200'], () => {}, errors), 1);
    assert.deepEqual(errors, ['enabling IPv6 on vxnb3100 failed: EACCES']);
  });

  it('sets IPv6 addresses apart from every other link step (they wait for IPv6 on their device)', () => {
    const owner = { network: 'vxnb3100' };
    assert.equal(isIpv6AddressStep({ op: 'addr-add', dev: 'vxnb3100', cidr: 'fd00:61::1/64', ...owner }), true);
    assert.equal(isIpv6AddressStep({ op: 'addr-add', dev: 'vxnb3100', cidr: '192.168.31.1/24', ...owner }), false);
    assert.equal(isIpv6AddressStep({ op: 'addr-del', dev: 'vxnb3100', cidr: 'fd00:61::1/64', ...owner }), false);
  });

  it('covers the bridge and the VXLAN device of IPv6 networks whose devices are made or addressed in the pass', () => {
    const net = (vni: number, cidrs: string[]) => ({ bridge: `vxnb${vni}`, vxlan: `vxnv${vni}`, gatewayAddresses: cidrs }) as unknown as DesiredNetwork;
    const networks = [net(3100, ['192.168.31.1/24', 'fd00:61::1/64']), net(3200, ['fd00:62::1/64']), net(3300, ['192.168.33.1/24'])];
    const owner = { network: 'x' };
    assert.deepEqual(
      devicesNeedingIpv6(networks, [
        { op: 'vxlan-add', name: 'vxnv3100', vni: 3100, port: 4789, local: '10.0.0.1', mtu: 1450, ...owner },
        { op: 'bridge-add', name: 'vxnb3300', mac: '02:78:00:00:00:01', mtu: 1450, ...owner },
      ]),
      ['vxnb3100', 'vxnv3100'],
      'an IPv4-only network needs nothing',
    );
    assert.deepEqual(devicesNeedingIpv6(networks, [{ op: 'addr-add', dev: 'vxnb3200', cidr: 'fd00:62::1/64', ...owner }]), ['vxnb3200', 'vxnv3200']);
    assert.deepEqual(devicesNeedingIpv6(networks, []), [], 'nothing touched, nothing read');
  });
});
