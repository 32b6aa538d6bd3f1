/** The kernel data plane's planner: a pure diff of desired against actual state. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DesiredEndpoint, DesiredState } from '../../src/agent/dataplane.ts';
import { deviceNames } from '../../src/agent/dataplane.ts';
import { planReconcile, type Plan } from '../../src/agent/kernel/plan.ts';
import { desiredEndpoint, desiredNetwork } from './support/fixtures.ts';
import { BRIDGE_ENTRY, parseFdb, parseLinks, parseNeighbours, type ActualState, type LinkState } from '../../src/agent/kernel/read.ts';

const network = desiredNetwork;
const endpoint = (id: string, vni: number, extra: Partial<DesiredEndpoint> = {}): DesiredEndpoint => desiredEndpoint(id, vni, '192.168.1.2', extra);

const desired = (extra: Partial<DesiredState> = {}): DesiredState => ({
  networks: [], peers: [], floods: [], endpoints: [], vxlanFilter: { ports: [], allowedSources: [] }, ...extra,
});

/** What the kernel looks like after a perfect pass for `state`. */
function converged(state: DesiredState): ActualState {
  const links = new Map<string, LinkState>();
  for (const net of state.networks) {
    links.set(net.bridge, { name: net.bridge, index: 10 + net.vni, kind: 'bridge', mtu: net.mtu, up: true, mac: net.gatewayMac, peerElsewhere: false, ipv4: [...net.gatewayAddresses] });
    links.set(net.vxlan, {
      name: net.vxlan, index: 20 + net.vni, kind: 'vxlan', mtu: net.mtu, up: true, master: net.bridge, learning: false, mac: '66:00:00:00:00:01', peerElsewhere: false, ipv4: [],
      vxlan: {
        vni: net.vni, port: net.port, local: net.localAddress, ttl: net.multicastGroup ? 5 : 0, learning: false, proxy: true,
        ...(net.multicastGroup ? { group: net.multicastGroup, device: net.underlayDevice } : {}),
      },
    });
  }
  for (const ep of state.endpoints) {
    links.set(ep.hostVeth, { name: ep.hostVeth, index: 100 + links.size, kind: 'veth', mtu: ep.mtu, up: true, master: ep.bridge, mac: '66:00:00:00:00:02', peerElsewhere: true, ipv4: [] });
  }
  return {
    links,
    neighbours: state.peers.map((p) => ({ dev: p.vxlan, ip: p.ip, mac: p.mac })),
    fdb: [
      ...state.peers.map((p) => ({ dev: p.vxlan, mac: p.mac, dst: p.vtep })),
      ...state.peers.map((p) => ({ dev: p.vxlan, mac: p.mac.toLowerCase(), dst: BRIDGE_ENTRY })),
      ...state.floods.map((f) => ({ dev: f.vxlan, mac: '00:00:00:00:00:00', dst: f.vtep })),
      ...state.networks.filter((n) => n.multicastGroup).map((n) => ({ dev: n.vxlan, mac: '00:00:00:00:00:00', dst: n.multicastGroup! })),
    ],
    firewall: { present: false },
    ipForward: true,
  };
}

const nothingToDo = (plan: Plan) => plan.links.length === 0 && plan.neighbours.length === 0 && plan.fdb.length === 0 && plan.endpoints.create.length === 0;

const peers = (vni: number, count: number, vtep = '10.99.0.2') =>
  Array.from({ length: count }, (_, i) => ({
    vxlan: deviceNames.vxlan(vni),
    ip: `192.168.1.${10 + i}`,
    mac: `02:78:c0:a8:01:${(10 + i).toString(16).padStart(2, '0')}`,
    vtep,
  }));

describe('planReconcile', () => {
  it('creates a network from nothing: bridge and VXLAN device, enslaved, up, with the gateway addresses', () => {
    const state = desired({ networks: [network(42, { gatewayAddresses: ['192.168.1.1/24', '192.168.2.1/24'] })] });
    const plan = planReconcile(state, { ...converged(desired()), ipForward: false });
    assert.deepEqual(plan.links, [
      { op: 'bridge-add', name: 'vxnb42', mac: '02:78:c0:a8:01:01', mtu: 1450, network: 'vxnb42' },
      { op: 'vxlan-add', name: 'vxnv42', vni: 42, port: 4789, local: '10.99.0.1', mtu: 1450, network: 'vxnb42' },
      { op: 'link-set', name: 'vxnb42', up: true, network: 'vxnb42' },
      { op: 'link-set', name: 'vxnv42', master: 'vxnb42', up: true, network: 'vxnb42' },
      { op: 'port-set', name: 'vxnv42', learning: false, network: 'vxnb42' },
      { op: 'addr-add', dev: 'vxnb42', cidr: '192.168.1.1/24', network: 'vxnb42' },
      { op: 'addr-add', dev: 'vxnb42', cidr: '192.168.2.1/24', network: 'vxnb42' },
    ]);
    assert.equal(plan.enableForwarding, true);
    assert.deepEqual(plan.rejected, []);
  });

  it('adopts a converged kernel state with zero steps (networks, multicast, peers, floods, endpoints)', () => {
    const state = desired({
      networks: [network(42), network(43, { multicastGroup: '239.1.1.1', underlayDevice: 'eth0', gatewayAddresses: ['192.168.3.1/24'] })],
      peers: peers(42, 100),
      floods: [{ vxlan: 'vxnv42', vtep: '10.99.0.2' }, { vxlan: 'vxnv42', vtep: '10.99.0.3' }],
      endpoints: [endpoint('aaaaaaaaaaaa', 42)],
    });
    const plan = planReconcile(state, converged(state));
    assert.ok(nothingToDo(plan), JSON.stringify(plan));
    assert.deepEqual(plan.endpoints.adopted, ['aaaaaaaaaaaa']);
    assert.equal(plan.enableForwarding, false);
  });

  it('adopts the real captured namespace for the network it was built as', () => {
    const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');
    const actual: ActualState = {
      links: new Map(parseLinks(fixture('ip-addr-detail.json')).filter((l) => l.name.startsWith('vxn')).map((l) => [l.name, l])),
      neighbours: parseNeighbours(fixture('ip-neigh-permanent.json')).filter((n) => n.dev.startsWith('vxnv')),
      fdb: parseFdb(fixture('bridge-fdb-permanent.json')).filter((n) => n.dev.startsWith('vxnv')),
      firewall: { present: false },
      ipForward: true,
    };
    const state = desired({
      networks: [network(42, { gatewayAddresses: ['192.168.1.1/24', '192.168.2.1/24'] })],
      peers: [
        { vxlan: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14', vtep: '10.99.0.2' },
        { vxlan: 'vxnv42', ip: '192.168.1.21', mac: '02:78:C0:A8:01:15', vtep: '10.99.0.3' },
      ],
      floods: [{ vxlan: 'vxnv42', vtep: '10.99.0.2' }, { vxlan: 'vxnv42', vtep: '10.99.0.3' }],
      endpoints: [endpoint('aaaaaaaaaaaa', 42)],
    });
    const plan = planReconcile(state, actual);
    // only the leftovers are removed: the unwanted multicast device and the half-made endpoint (one delete: its peer goes with it)
    assert.deepEqual(plan.links.map((s) => s.op === 'link-del' && s.name), ['vxnhbbbbbbbbbb', 'vxnv43']);
    assert.deepEqual(plan.neighbours, []);
    assert.deepEqual(plan.fdb, []);
    assert.deepEqual(plan.endpoints, { create: [], adopted: ['aaaaaaaaaaaa'] });
  });

  it('fixes mutable attributes in place: MTU, bridge MAC, master, up', () => {
    const state = desired({ networks: [network(42)], endpoints: [endpoint('aaaaaaaaaaaa', 42)] });
    const actual = converged(state);
    actual.links.get('vxnb42')!.mtu = 1500;
    actual.links.get('vxnb42')!.mac = '02:00:00:00:00:09';
    actual.links.get('vxnv42')!.up = false;
    delete actual.links.get('vxnv42')!.master;
    actual.links.get('vxnv42')!.mtu = 1500;
    actual.links.get('vxnhaaaaaaaaaa')!.up = false;
    const plan = planReconcile(state, actual);
    assert.deepEqual(plan.links, [
      { op: 'link-set', name: 'vxnb42', mtu: 1450, mac: '02:78:c0:a8:01:01', network: 'vxnb42' },
      { op: 'link-set', name: 'vxnv42', mtu: 1450, master: 'vxnb42', up: true, network: 'vxnb42' },
      { op: 'port-set', name: 'vxnv42', learning: false, network: 'vxnb42' },
      { op: 'link-set', name: 'vxnhaaaaaaaaaa', up: true, network: 'vxnb42', endpoint: 'aaaaaaaaaaaa' },
    ]);
    assert.deepEqual(plan.endpoints.adopted, ['aaaaaaaaaaaa']);
    assert.deepEqual(plan.endpoints.create, []);
  });

  it('recreates a VXLAN device whose VNI, port, local, group or flags differ, and says why', () => {
    const state = desired({ networks: [network(42)], peers: peers(42, 2) });
    for (const [change, why] of [
      [{ vni: 7 }, /VNI is 7, want 42/],
      [{ port: 8472 }, /port is 8472, want 4789/],
      [{ local: '10.99.0.5' }, /local is 10\.99\.0\.5, want 10\.99\.0\.1/],
      [{ group: '239.0.0.1', device: 'eth0' }, /group is 239\.0\.0\.1, want unset/],
      [{ learning: true }, /learning is on/],
      [{ proxy: false }, /proxy is off/],
    ] as const) {
      const actual = converged(state);
      Object.assign(actual.links.get('vxnv42')!.vxlan!, change);
      const plan = planReconcile(state, actual);
      assert.deepEqual(plan.links.map((s) => `${s.op} ${'name' in s ? s.name : s.dev}`), [
        'link-del vxnv42',
        'vxlan-add vxnv42',
        'link-set vxnv42',
        'port-set vxnv42',
      ]);
      assert.match(plan.notes.join('\n'), why);
      // the recreated device starts empty: its entries are programmed again, none deleted one by one
      assert.equal(plan.neighbours.filter((s) => s.op === 'neigh-replace').length, 2);
      assert.equal(plan.fdb.filter((s) => s.op === 'fdb-replace').length, 2);
      assert.equal(plan.neighbours.filter((s) => s.op === 'neigh-del').length + plan.fdb.filter((s) => s.op === 'fdb-del').length, 0);
    }
  });

  it('creates a multicast network with group, underlay device and TTL 5 and keeps the group default entry', () => {
    const state = desired({ networks: [network(43, { multicastGroup: '239.1.1.1', underlayDevice: 'eth0' })] });
    const plan = planReconcile(state, converged(desired()));
    assert.deepEqual(plan.links[1], {
      op: 'vxlan-add', name: 'vxnv43', vni: 43, port: 4789, local: '10.99.0.1', mtu: 1450, group: '239.1.1.1', device: 'eth0', ttl: 5, network: 'vxnb43',
    });
    const again = planReconcile(state, converged(state));
    assert.deepEqual(again.fdb, []);
  });

  it('recreates a device of the wrong kind under a bridge name and re-attaches its ports', () => {
    const state = desired({ networks: [network(42)], endpoints: [endpoint('aaaaaaaaaaaa', 42)] });
    const actual = converged(state);
    actual.links.set('vxnb42', { name: 'vxnb42', index: 99, kind: 'veth', mtu: 1450, up: true, mac: '02:78:c0:a8:01:01', peerElsewhere: true, ipv4: [] });
    const plan = planReconcile(state, actual);
    assert.deepEqual(plan.links.map((s) => `${s.op} ${'name' in s ? s.name : s.dev}`), [
      'link-del vxnb42',
      'bridge-add vxnb42',
      'link-set vxnb42',
      'link-set vxnv42',
      'port-set vxnv42',
      'link-set vxnhaaaaaaaaaa',
      'addr-add vxnb42',
    ]);
    assert.equal((plan.links[3] as { master?: string }).master, 'vxnb42');
    assert.equal((plan.links[5] as { master?: string }).master, 'vxnb42');
  });

  it('replaces a peer whose MAC or VTEP changed and removes a stale one with mirrored ops', () => {
    const state = desired({ networks: [network(42)], peers: peers(42, 3) });
    const actual = converged(state);
    actual.neighbours[0]!.mac = '02:00:00:00:00:99'; // MAC changed
    actual.fdb[1]!.dst = '10.99.0.9'; // peer moved to another host
    actual.neighbours.push({ dev: 'vxnv42', ip: '192.168.1.99', mac: '02:78:c0:a8:01:63' });
    actual.fdb.push({ dev: 'vxnv42', mac: '02:78:c0:a8:01:63', dst: '10.99.0.4' });
    const plan = planReconcile(state, actual);
    assert.deepEqual(plan.neighbours, [
      { op: 'neigh-del', dev: 'vxnv42', ip: '192.168.1.99' },
      { op: 'neigh-replace', dev: 'vxnv42', ip: '192.168.1.10', mac: '02:78:c0:a8:01:0a' },
    ]);
    assert.deepEqual(plan.fdb, [
      { op: 'fdb-del', dev: 'vxnv42', mac: '02:78:c0:a8:01:63', dst: '10.99.0.4' },
      { op: 'fdb-replace', dev: 'vxnv42', mac: '02:78:c0:a8:01:0b', dst: '10.99.0.2' },
    ]);
    assert.deepEqual(plan.links, []);
  });

  it('keeps the flood list equal to the desired VTEPs: append missing, delete stale by destination', () => {
    const state = desired({ networks: [network(42)], floods: [{ vxlan: 'vxnv42', vtep: '10.99.0.2' }, { vxlan: 'vxnv42', vtep: '10.99.0.4' }] });
    const actual = converged(desired({ networks: [network(42)], floods: [{ vxlan: 'vxnv42', vtep: '10.99.0.2' }, { vxlan: 'vxnv42', vtep: '10.99.0.3' }] }));
    const plan = planReconcile(state, actual);
    assert.deepEqual(plan.fdb, [
      { op: 'fdb-del', dev: 'vxnv42', mac: '00:00:00:00:00:00', dst: '10.99.0.3' },
      { op: 'fdb-append', dev: 'vxnv42', mac: '00:00:00:00:00:00', dst: '10.99.0.4' },
    ]);
  });

  it('cleans a MAC that somebody appended a second destination to', () => {
    const state = desired({ networks: [network(42)], peers: peers(42, 1) });
    const actual = converged(state);
    actual.fdb.push({ dev: 'vxnv42', mac: '02:78:c0:a8:01:0a', dst: '10.99.0.7' });
    assert.deepEqual(planReconcile(state, actual).fdb, [{ op: 'fdb-del', dev: 'vxnv42', mac: '02:78:c0:a8:01:0a', dst: '10.99.0.7' }]);
  });

  it('removes a network no longer desired by deleting its devices, not its entries one by one', () => {
    const before = desired({ networks: [network(42), network(43)], peers: [...peers(42, 50), ...peers(43, 50)], floods: [{ vxlan: 'vxnv43', vtep: '10.99.0.2' }] });
    const after = desired({ networks: [network(42)], peers: peers(42, 50) });
    const plan = planReconcile(after, converged(before));
    assert.deepEqual(plan.links, [
      { op: 'link-del', name: 'vxnv43', why: 'no longer desired' },
      { op: 'link-del', name: 'vxnb43', why: 'no longer desired' },
    ]);
    assert.deepEqual(plan.neighbours, []);
    assert.deepEqual(plan.fdb, []);
  });

  it('removes endpoints no longer desired with one delete of the host veth; everything when nothing is desired', () => {
    const before = desired({ networks: [network(42)], endpoints: [endpoint('aaaaaaaaaaaa', 42), endpoint('bbbbbbbbbbbb', 42)] });
    const plan = planReconcile(desired({ networks: [network(42)], endpoints: [endpoint('aaaaaaaaaaaa', 42)] }), converged(before));
    assert.deepEqual(plan.links, [{ op: 'link-del', name: 'vxnhbbbbbbbbbb', why: 'no longer desired' }]);
    const empty = planReconcile(desired(), converged(before));
    assert.deepEqual(empty.links.map((s) => 'name' in s && s.name), ['vxnhaaaaaaaaaa', 'vxnhbbbbbbbbbb', 'vxnv42', 'vxnb42']);
    assert.equal(empty.enableForwarding, false);
  });

  it('sets an endpoint up again when its last setup did not complete or its MTU changed', () => {
    const state = desired({ networks: [network(42)], endpoints: [endpoint('aaaaaaaaaaaa', 42), endpoint('bbbbbbbbbbbb', 42), endpoint('cccccccccccc', 42)] });
    const actual = converged(state);
    Object.assign(actual.links.get('vxnhaaaaaaaaaa')!, { up: false, master: undefined }); // crashed before the last step
    Object.assign(actual.links.get('vxnhbbbbbbbbbb')!, { peerElsewhere: false, peer: 'vxncbbbbbbbbbb' }); // crashed before the move
    actual.links.set('vxncbbbbbbbbbb', { name: 'vxncbbbbbbbbbb', index: 98, kind: 'veth', mtu: 1450, up: false, mac: '02:00:00:00:00:01', peerElsewhere: false, peer: 'vxnhbbbbbbbbbb', ipv4: [] });
    actual.links.get('vxnhcccccccccc')!.mtu = 1500;
    const plan = planReconcile(state, actual);
    assert.deepEqual(plan.links.map((s) => s.op === 'link-del' && s.name), ['vxnhaaaaaaaaaa', 'vxnhbbbbbbbbbb', 'vxnhcccccccccc']);
    assert.deepEqual(plan.endpoints.create.map((e) => e.id), ['aaaaaaaaaaaa', 'bbbbbbbbbbbb', 'cccccccccccc']);
    assert.equal(plan.notes.length, 3);
  });

  it('never touches devices it does not own, and leaves an invalid network’s devices alone', () => {
    const state = desired({ networks: [network(42), network(43, { gatewayMac: 'nonsense' })], peers: peers(43, 2) });
    const actual = converged(desired({ networks: [network(42), network(43)], peers: peers(43, 2) }));
    const plan = planReconcile(state, actual);
    assert.ok(nothingToDo(plan), JSON.stringify(plan.links));
    assert.deepEqual(plan.rejected.map((r) => [r.kind, r.key]), [['network', 'net43']]);
    assert.match(plan.rejected[0]!.reason, /gateway MAC "nonsense"/);
  });

  it('rejects malformed entries and endpoints instead of rendering them, and keeps going', () => {
    const state = desired({
      networks: [network(42)],
      peers: [
        ...peers(42, 1),
        { vxlan: 'vxnv42', ip: '192.168.1.77', mac: '02:78:c0:a8:01', vtep: '10.99.0.2' },
        { vxlan: 'vxnv42', ip: '192.168.1.78 x', mac: '02:78:c0:a8:01:4e', vtep: '10.99.0.2' },
        { vxlan: 'vxnv99', ip: '192.168.1.79', mac: '02:78:c0:a8:01:4f', vtep: '10.99.0.2' },
      ],
      floods: [{ vxlan: 'vxnv42', vtep: 'host2' }],
      endpoints: [endpoint('aaaaaaaaaaaa', 42, { netns: 'relative/path' }), endpoint('bbbbbbbbbbbb', 42)],
    });
    const plan = planReconcile(state, converged(desired({ networks: [network(42)] })));
    assert.deepEqual(plan.rejected.map((r) => `${r.kind} ${r.key}`), [
      'endpoint aaaaaaaaaaaa',
      'peer vxnv42 192.168.1.77',
      'peer vxnv42 192.168.1.78 x',
      'peer vxnv99 192.168.1.79',
      'flood vxnv42 host2',
    ]);
    assert.equal(plan.neighbours.length, 1);
    assert.equal(plan.fdb.length, 2); // the VXLAN device's entry and the bridge's static one
    assert.deepEqual(plan.endpoints.create.map((e) => e.id), ['bbbbbbbbbbbb']);
  });

  it('programs the first of two peers claiming the same IP and leaves the entry alone while that holds', () => {
    const state = desired({
      networks: [network(42)],
      peers: [
        { vxlan: 'vxnv42', ip: '192.168.1.10', mac: '02:78:c0:a8:01:0a', vtep: '10.99.0.2' },
        { vxlan: 'vxnv42', ip: '192.168.1.10', mac: '02:78:c0:a8:01:0b', vtep: '10.99.0.3' },
      ],
    });
    const plan = planReconcile(state, converged(desired({ networks: [network(42)] })));
    assert.deepEqual(plan.neighbours, [{ op: 'neigh-replace', dev: 'vxnv42', ip: '192.168.1.10', mac: '02:78:c0:a8:01:0a' }]);
    assert.equal(plan.fdb.length, 4); // both MACs are reachable at their VTEPs, through the VXLAN port
  });

  it('turns learning off on the VXLAN port and keeps one static bridge entry per remote MAC (vxnet issue 9, hole 3)', () => {
    const state = desired({ networks: [network(42)], peers: peers(42, 2) });
    // a port that learns (as a device made before this rule): learning goes off, nothing else changes
    const learning = converged(state);
    learning.links.get('vxnv42')!.learning = true;
    assert.deepEqual(planReconcile(state, learning).links, [{ op: 'port-set', name: 'vxnv42', learning: false, network: 'vxnb42' }]);
    // a missing static entry is added, one nobody wants any more is deleted (after the VXLAN device's)
    const actual = converged(state);
    actual.fdb = actual.fdb.filter((e) => !(e.dst === BRIDGE_ENTRY && e.mac === '02:78:c0:a8:01:0a'));
    actual.fdb.push({ dev: 'vxnv42', mac: '02:78:c0:a8:01:99', dst: BRIDGE_ENTRY }, { dev: 'vxnv42', mac: '02:78:c0:a8:01:99', dst: '10.99.0.9' });
    assert.deepEqual(planReconcile(state, actual).fdb, [
      { op: 'fdb-del', dev: 'vxnv42', mac: '02:78:c0:a8:01:99', dst: '10.99.0.9' },
      { op: 'fdb-static-del', dev: 'vxnv42', mac: '02:78:c0:a8:01:99', dst: BRIDGE_ENTRY },
      { op: 'fdb-static', dev: 'vxnv42', mac: '02:78:c0:a8:01:0a', dst: BRIDGE_ENTRY },
    ]);
    // made a port of its bridge again (the bridge was recreated): the bridge's entries start empty
    const moved = converged(state);
    delete moved.links.get('vxnv42')!.master;
    const plan = planReconcile(state, moved);
    assert.deepEqual(plan.links.map((l) => l.op), ['link-set', 'port-set']);
    assert.deepEqual(plan.fdb.map((e) => `${e.op} ${e.mac}`), ['fdb-static 02:78:c0:a8:01:0a', 'fdb-static 02:78:c0:a8:01:0b']);
  });
});
