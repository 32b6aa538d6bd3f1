/**
 * Encrypted networks (vxnet issue 10), the pure parts and the manager's side: keys, the tunnel's rendering,
 * MTU arithmetic, the desired state of encrypted networks, the firewall rules for the tunnel, fail-closed
 * stripping without WireGuard, and the manager's tunnel addresses.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Dataplane, DesiredState } from '../../src/agent/dataplane.ts';
import { desiredState } from '../../src/agent/desired.ts';
import { renderFirewall } from '../../src/agent/kernel/nftables.ts';
import { ClusterView } from '../../src/agent/view.ts';
import { TunnelledDataplane } from '../../src/agent/wireguard/dataplane.ts';
import { generatePrivateKey, loadOrCreateKeys, PRIVATE_KEY_FILE, publicKeyOf } from '../../src/agent/wireguard/keys.ts';
import { desiredTunnel, parseWgDump, StatusReports, tunnelDeviceName, tunnelStatus, wgSetArgs } from '../../src/agent/wireguard/render.ts';
import type { Endpoint, Network, Node } from '../../src/core/model.ts';
import { isWireguardKey, tunnelMtu } from '../../src/core/wireguard.ts';
import { mtuBound, resolveNetwork } from '../../src/manager/validation.ts';
import { openTestManager, vxnetError } from './support/manager.ts';
import { recordedTunnel } from './support/tunnel.ts';

const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
const KEY_A = publicKeyOf(generatePrivateKey());
const KEY_B = publicKeyOf(generatePrivateKey());

describe('keys', () => {
  test('the public key of a private key is X25519 of the base point (RFC 7748 §6.1, Alice)', () => {
    const privateKey = b64('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    assert.equal(publicKeyOf(privateKey), b64('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'));
  });

  test('keys are 32 bytes of base64 as wg writes them', () => {
    assert.ok(isWireguardKey(generatePrivateKey()));
    assert.ok(isWireguardKey(KEY_A));
    for (const bad of ['', 'abc', `${KEY_A}x`, KEY_A.replace('=', 'A'), 42]) assert.equal(isWireguardKey(bad), false, String(bad));
  });

  test('the private key is made once in the state directory, mode 0600, and kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxnet-wg-'));
    const first = loadOrCreateKeys(dir);
    assert.equal(first.privateKeyFile, join(dir, PRIVATE_KEY_FILE));
    assert.equal(statSync(first.privateKeyFile).mode & 0o777, 0o600);
    assert.equal(publicKeyOf(readFileSync(first.privateKeyFile, 'utf8').trim()), first.publicKey);
    assert.deepEqual(loadOrCreateKeys(dir), first);
  });

  test('a damaged private key file is refused in one sentence', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxnet-wg-'));
    writeFileSync(join(dir, PRIVATE_KEY_FILE), 'not a key\n', { mode: 0o600 });
    assert.throws(() => loadOrCreateKeys(dir), /is not 32 bytes in base64: delete the file to make a new key\.$/);
  });
});

describe('MTU', () => {
  test('WireGuard takes 60 bytes on IPv4 and 80 on IPv6 from the underlay', () => {
    assert.equal(tunnelMtu(1500), 1440);
    assert.equal(tunnelMtu(1500, true), 1420);
  });

  test('an encrypted network leaves room for WireGuard and VXLAN: 1500 - 60 - 50', () => {
    const nodes: Node[] = [{ name: 'a', address: '10.0.0.1', mtu: 1500, registeredAt: '' }];
    assert.equal(mtuBound(nodes).limit, 1450);
    assert.equal(mtuBound(nodes, true).limit, 1390);
    const ctx = { networks: [], vnis: new Map(), nodes, now: new Date(0) };
    assert.equal(resolveNetwork({ name: 'e', encrypted: true }, ctx).mtu, 1390);
    assert.equal(resolveNetwork({ name: 'e', encrypted: true }, ctx).encrypted, true);
    assert.equal('encrypted' in resolveNetwork({ name: 'p' }, ctx), false, 'a plain network is stored as before');
    assert.throws(
      () => resolveNetwork({ name: 'e', encrypted: true, mtu: 1400 }, ctx),
      /: MTU 1400 is larger than the underlay allows: at most 1390 \(node a has an underlay MTU of 1500, minus 50 bytes of VXLAN overhead and 60 of WireGuard\)\.$/,
    );
    assert.throws(() => resolveNetwork({ name: 'e', encrypted: true, multicastGroup: '239.1.1.1' }, ctx), /: an encrypted network cannot use a multicast group/);
  });
});

describe('tunnel rendering', () => {
  const nodes: Node[] = [
    { name: 'me', address: '10.99.0.1', mtu: 1500, registeredAt: '', wireguard: { publicKey: KEY_A, port: 51820, implementation: 'wireguard-go' }, tunnelAddress: '10.201.0.1' },
    { name: 'b', address: '10.99.0.2', mtu: 1500, registeredAt: '', wireguard: { publicKey: KEY_B, port: 51821, implementation: 'kernel' }, tunnelAddress: '10.201.0.2' },
    { name: 'nokey', address: '10.99.0.3', mtu: 1500, registeredAt: '', tunnelAddress: '10.201.0.3' },
  ];
  const net = (vxlan: string, encrypted: boolean) => ({ vxlan, ...(encrypted ? { encrypted: true } : {}) }) as never;

  test('peers are the nodes behind the encrypted networks\' flood entries, nothing else', () => {
    const tunnel = desiredTunnel(nodes, 'me', [net('vxnv1', true), net('vxnv2', false)], [
      { vxlan: 'vxnv1', vtep: '10.201.0.2' },
      { vxlan: 'vxnv1', vtep: '10.201.0.3' },
      { vxlan: 'vxnv2', vtep: '10.99.0.2' },
    ]);
    assert.deepEqual(tunnel, {
      address: '10.201.0.1/16',
      peers: [{ node: 'b', publicKey: KEY_B, endpoint: '10.99.0.2:51821', tunnelAddress: '10.201.0.2' }],
    });
  });

  test('no tunnel without an encrypted network, or without our own tunnel address', () => {
    assert.equal(desiredTunnel(nodes, 'me', [net('vxnv2', false)], []), undefined);
    assert.equal(desiredTunnel(nodes, 'nobody', [net('vxnv1', true)], []), undefined);
  });

  test('wg set states every wanted peer and removes the others', () => {
    const peers = [{ node: 'b', publicKey: KEY_B, endpoint: '10.99.0.2:51821', tunnelAddress: '10.201.0.2' }];
    assert.deepEqual(wgSetArgs('vxw0', '/s/wireguard.key', 51820, peers, [KEY_A, KEY_B]), [
      'wg', 'set', 'vxw0', 'listen-port', '51820', 'private-key', '/s/wireguard.key',
      'peer', KEY_B, 'endpoint', '10.99.0.2:51821', 'allowed-ips', '10.201.0.2/32', 'persistent-keepalive', '25',
      'peer', KEY_A, 'remove',
    ]);
  });

  test('peers are up while their last handshake is younger than a session (180 s)', () => {
    const peers = [
      { node: 'b', publicKey: KEY_B, endpoint: '10.99.0.2:51820', tunnelAddress: '10.201.0.2' },
      { node: 'c', publicKey: KEY_A, endpoint: '10.99.0.3:51820', tunnelAddress: '10.201.0.3' },
    ];
    assert.deepEqual(tunnelStatus(peers, [{ publicKey: KEY_B, latestHandshake: 1000 }], 1179), [
      { node: 'b', up: true, latestHandshake: '1970-01-01T00:16:40.000Z' },
      { node: 'c', up: false, latestHandshake: null },
    ]);
    assert.equal(tunnelStatus(peers, [{ publicKey: KEY_B, latestHandshake: 1000 }], 1180)[0]!.up, false);
  });

  test('heartbeats carry the peers only when up/down changed or a minute passed, and [] once when the tunnel went', () => {
    const reports = new StatusReports();
    const up = [{ node: 'b', up: true, latestHandshake: '2026-01-01T00:00:00.000Z' }];
    const later = [{ node: 'b', up: true, latestHandshake: '2026-01-01T00:02:00.000Z' }];
    assert.equal(reports.next(undefined, 0), undefined);
    assert.deepEqual(reports.next(up, 0), up);
    assert.equal(reports.next(later, 5_000), undefined);
    assert.deepEqual(reports.next([{ ...up[0]!, up: false }], 10_000), [{ ...up[0]!, up: false }]);
    assert.deepEqual(reports.next([{ ...up[0]!, up: false }], 70_000), [{ ...up[0]!, up: false }]);
    assert.deepEqual(reports.next(undefined, 75_000), []);
    assert.equal(reports.next(undefined, 80_000), undefined);
  });

  test('wg show dump: peers and their latest handshake', () => {
    const dump = `PRIV\t${KEY_A}\t51820\toff\n${KEY_B}\t(none)\t10.99.0.2:51820\t10.201.0.2/32\t1733370000\t100\t200\t25\n`;
    assert.deepEqual(parseWgDump(dump), [{ publicKey: KEY_B, latestHandshake: 1733370000 }]);
  });

  test('device names are unique per state directory, within IFNAMSIZ, and outside the data plane\'s prefix', () => {
    const a = tunnelDeviceName('/var/lib/vxnet/agent');
    assert.match(a, /^vxw[0-9a-f]{10}$/);
    assert.notEqual(a, tunnelDeviceName('/tmp/other/agent'));
  });
});

describe('desired state of an encrypted network', () => {
  const network = (name: string, vni: number, encrypted: boolean): Network => ({
    name, vni, subnets: [{ cidr: `192.168.${vni % 250}.0/24`, gateway: `192.168.${vni % 250}.1` }], mtu: 1390, port: 4789, internal: false,
    ...(encrypted ? { encrypted: true } : {}), createdAt: '',
  });
  const node = (i: number): Node => ({
    name: `n${i}`, address: `10.99.0.${i}`, mtu: 1500, registeredAt: '',
    wireguard: { publicKey: i === 1 ? KEY_A : KEY_B, port: 51820, implementation: 'wireguard-go' }, tunnelAddress: `10.201.0.${i}`,
  });
  const endpoint = (id: string, net: Network, nodeName: string, ip: string): Endpoint => ({
    id, network: net.name, node: nodeName, netns: `/run/netns/${id}`, ifname: 'eth0', ip, prefix: 24, gateway: net.subnets[0]!.gateway,
    mac: '02:78:00:00:00:01', status: 'ready', createdAt: '',
  });

  function render(): DesiredState {
    const secret = network('secret', 10, true);
    const plain = network('plain', 20, false);
    const view = new ClusterView();
    view.apply({
      type: 'snapshot', revision: 1, nodes: [node(1), node(2)], networks: [secret, plain],
      endpoints: [
        endpoint('aaaaaaaaaaaa', secret, 'n1', '192.168.10.2'), endpoint('bbbbbbbbbbbb', secret, 'n2', '192.168.10.3'),
        endpoint('cccccccccccc', plain, 'n1', '192.168.20.2'), endpoint('dddddddddddd', plain, 'n2', '192.168.20.3'),
      ],
    });
    return desiredState(view, { name: 'n1', address: '10.99.0.1', underlayDevice: 'eth0' });
  }

  test('sends from and to tunnel addresses; the plain network keeps the underlay', () => {
    const desired = render();
    const byName = new Map(desired.networks.map((n) => [n.name, n]));
    assert.equal(byName.get('secret')!.localAddress, '10.201.0.1');
    assert.equal(byName.get('secret')!.encrypted, true);
    assert.equal(byName.get('plain')!.localAddress, '10.99.0.1');
    assert.equal(byName.get('plain')!.encrypted, undefined);
    assert.deepEqual(desired.peers.map((p) => [p.vxlan, p.vtep]), [['vxnv20', '10.99.0.2'], ['vxnv10', '10.201.0.2']]);
    assert.deepEqual(desired.tunnel, { address: '10.201.0.1/16', peers: [{ node: 'n2', publicKey: KEY_B, endpoint: '10.99.0.2:51820', tunnelAddress: '10.201.0.2' }] });
  });

  test('without WireGuard on the node, the encrypted network is left out and its endpoints told why (fail closed)', async () => {
    const seen: DesiredState[] = [];
    const inner: Dataplane = {
      reconcile: async (state) => {
        seen.push(state);
        return { changes: 0, endpointErrors: new Map(), readyEndpoints: new Set() };
      },
    };
    const result = await new TunnelledDataplane(inner, undefined, 'this host has no WireGuard').reconcile(render());
    assert.deepEqual(seen[0]!.networks.map((n) => n.name), ['plain']);
    assert.deepEqual(seen[0]!.peers.map((p) => p.vxlan), ['vxnv20']);
    assert.deepEqual(seen[0]!.endpoints.map((e) => e.id), ['cccccccccccc']);
    assert.equal(seen[0]!.tunnel, undefined);
    assert.deepEqual([...result.endpointErrors], [['aaaaaaaaaaaa', 'its network is encrypted and this host has no WireGuard']]);
  });
});

describe('firewall', () => {
  test('VXLAN of an encrypted VNI is taken only from the tunnel, and nothing is routed into it', () => {
    const script = renderFirewall([], { ports: [4789], allowedSources: ['10.99.0.2'], underlayDevice: 'eth0', tunnelDevice: 'vxw0123456789', encryptedVnis: [10] }).table;
    assert.match(script, /udp dport @vxlan_ports iifname != "vxw0123456789" @th,96,24 \{ 10 \} counter drop/);
    assert.match(script, /udp dport @vxlan_ports iifname "vxw0123456789" accept/);
    assert.match(script, /oifname "vxw0123456789" counter drop/);
    const plain = renderFirewall([], { ports: [4789], allowedSources: ['10.99.0.2'], underlayDevice: 'eth0' }).table;
    assert.doesNotMatch(plain, /vxw|@th/);
  });
});

describe('manager: tunnel addresses', () => {
  const wireguard = (publicKey: string) => ({ publicKey, port: 51820, implementation: 'wireguard-go' as const });

  test('each node with WireGuard gets its own address, kept on re-registration and released with the node', async () => {
    const m = await openTestManager();
    try {
      const a = await m.service.registerNode({ name: 'a', address: '10.99.0.1', mtu: 1500, wireguard: wireguard(KEY_A) });
      const b = await m.service.registerNode({ name: 'b', address: '10.99.0.2', mtu: 1500, wireguard: wireguard(KEY_B) });
      const plain = await m.service.registerNode({ name: 'c', address: '10.99.0.3', mtu: 1500 });
      assert.deepEqual([a.tunnelAddress, b.tunnelAddress, plain.tunnelAddress], ['10.201.0.1', '10.201.0.2', undefined]);
      const again = await m.service.registerNode({ name: 'a', address: '10.99.0.1', mtu: 1500, wireguard: wireguard(KEY_B) });
      assert.deepEqual([again.tunnelAddress, again.wireguard?.publicKey], ['10.201.0.1', KEY_B]);
      await m.service.deleteNode('a');
      const d = await m.service.registerNode({ name: 'd', address: '10.99.0.4', mtu: 1500, wireguard: wireguard(KEY_A) });
      assert.equal(d.tunnelAddress, '10.201.0.1', 'the removed node\'s address is free again');
      const without = await m.service.registerNode({ name: 'b', address: '10.99.0.2', mtu: 1500 });
      assert.equal(without.tunnelAddress, undefined);
      assert.equal(without.wireguard, undefined);
      assert.equal(await m.store.get('/tunnel-addresses/10.201.0.2'), undefined);
    } finally {
      await m.close();
    }
  });

  test('heartbeats carry the tunnels: the node shows them, an encrypted network shows them between its members', async () => {
    const m = await openTestManager();
    try {
      await m.service.registerNode({ name: 'a', address: '10.99.0.1', mtu: 1500, wireguard: wireguard(KEY_A) });
      await m.service.registerNode({ name: 'b', address: '10.99.0.2', mtu: 1500, wireguard: wireguard(KEY_B) });
      await m.service.createNetwork({ name: 'secret', encrypted: true });
      await m.service.createEndpoint({ network: 'secret', node: 'a', netns: '/run/netns/x' });
      await m.service.createEndpoint({ network: 'secret', node: 'b', netns: '/run/netns/y' });
      const up = { node: 'b', up: true, latestHandshake: '2026-01-01T00:00:00.000Z' };
      m.service.heartbeat('a', { reconciledRevision: 1, tunnels: [up] });
      assert.deepEqual(m.service.getNode('a').tunnels, [up]);
      assert.equal(m.service.getNode('b').tunnels, undefined);
      assert.deepEqual(m.service.getNetwork('secret').tunnels, [
        { from: 'a', to: 'b', up: true, latestHandshake: '2026-01-01T00:00:00.000Z' },
        { from: 'b', to: 'a', up: false, latestHandshake: null },
      ]);
      m.service.heartbeat('a', { reconciledRevision: 2 });
      assert.deepEqual(m.service.getNode('a').tunnels, [up], 'a heartbeat without tunnels keeps the last report');
      m.service.heartbeat('a', { reconciledRevision: 3, tunnels: [] });
      assert.equal(m.service.getNode('a').tunnels, undefined, 'an empty list clears it');
    } finally {
      await m.close();
    }
  });

  test('rotate-key moves the node\'s keyRotation; a node without WireGuard is refused in one sentence', async () => {
    const m = await openTestManager();
    try {
      await m.service.registerNode({ name: 'a', address: '10.99.0.1', mtu: 1500, wireguard: wireguard(KEY_A) });
      await m.service.registerNode({ name: 'plain', address: '10.99.0.2', mtu: 1500 });
      assert.equal((await m.service.updateNode('a', { rotateKey: true })).keyRotation, 1);
      assert.equal((await m.service.updateNode('a', { rotateKey: true })).keyRotation, 2);
      const rekeyed = await m.service.registerNode({ name: 'a', address: '10.99.0.1', mtu: 1500, wireguard: wireguard(KEY_B) });
      assert.deepEqual([rekeyed.keyRotation, rekeyed.wireguard?.publicKey, rekeyed.tunnelAddress], [2, KEY_B, '10.201.0.1']);
      await assert.rejects(m.service.updateNode('plain', { rotateKey: true }), vxnetError('bad_request', /^node plain has no WireGuard key to rotate: its agent found no WireGuard\.$/));
    } finally {
      await m.close();
    }
  });

  test('a bad public key is refused in one sentence', async () => {
    const m = await openTestManager();
    try {
      await assert.rejects(
        m.service.registerNode({ name: 'a', address: '10.99.0.1', mtu: 1500, wireguard: wireguard('nope') }),
        vxnetError('bad_request', /^field "wireguard.publicKey" must be a WireGuard public key/),
      );
    } finally {
      await m.close();
    }
  });

  test('an endpoint of an encrypted network needs a node with WireGuard', async () => {
    const m = await openTestManager();
    try {
      await m.service.registerNode({ name: 'plain', address: '10.99.0.1', mtu: 1500 });
      await m.service.createNetwork({ name: 'secret', encrypted: true });
      await assert.rejects(
        m.service.createEndpoint({ network: 'secret', node: 'plain', netns: '/run/netns/x' }),
        vxnetError('bad_request', /^node plain cannot join encrypted network secret: its agent found no WireGuard/),
      );
    } finally {
      await m.close();
    }
  });
});

describe('tunnel lifecycle (recorded host tools)', () => {
  test('the blackhole route comes before the device, then address, MTU and peers; no tunnel wanted: the device goes, the route stays', async () => {
    const { tunnel, calls } = recordedTunnel('vxw0000000000', KEY_A);
    const peer = { node: 'b', publicKey: KEY_B, endpoint: '10.99.0.2:51820', tunnelAddress: '10.201.0.2' };
    await tunnel.apply({ address: '10.201.0.1/16', peers: [peer] });
    assert.deepEqual(calls, [
      'ip route replace blackhole 10.201.0.0/16 metric 4242',
      'ip link show dev vxw0000000000',
      'ip link add vxw0000000000 type wireguard',
      'ip link set vxw0000000000 mtu 1440 up',
      'ip addr replace 10.201.0.1/16 dev vxw0000000000',
      'wg show vxw0000000000 peers',
      `wg set vxw0000000000 listen-port 51820 private-key /s/wireguard.key peer ${KEY_B} endpoint 10.99.0.2:51820 allowed-ips 10.201.0.2/32 persistent-keepalive 25`,
      'wg show vxw0000000000 dump',
    ]);
    assert.equal(tunnel.blackholed, true);
    assert.deepEqual(tunnel.status(), [{ node: 'b', up: false, latestHandshake: null }]);
    calls.length = 0;
    await tunnel.apply(undefined);
    assert.deepEqual(calls, ['ip link show dev vxw0000000000', 'ip link del vxw0000000000']);
    calls.length = 0;
    await tunnel.apply(undefined);
    assert.deepEqual(calls, [], 'a node without encrypted networks pays nothing per pass');
    assert.equal(tunnel.status(), undefined);
    tunnel.close();
  });
});
