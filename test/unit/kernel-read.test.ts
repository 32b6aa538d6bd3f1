/**
 * Parsers of the kernel data plane, on outputs captured from a real namespace by
 * test/fixtures/kernel/capture.sh (iproute2 6.1, nftables 1.0.6).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseBatchErrors } from '../../src/agent/kernel/exec.ts';
import { findUnderlay } from '../../src/agent/kernel/host.ts';
import { BRIDGE_ENTRY, parseFdb, parseFirewall, parseLinks, parseNeighbours } from '../../src/agent/kernel/read.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');
/** kernel dumps come in hash order: compare as sets */
const sorted = <T>(items: T[]): T[] => [...items].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

describe('parseLinks (ip -j -d addr show)', () => {
  const links = new Map(parseLinks(fixture('ip-addr-detail.json')).map((l) => [l.name, l]));

  it('reads every link of the namespace, owned or not, with its ifindex', () => {
    assert.equal(links.get('lo')!.index, 1);
    assert.deepEqual([...links.keys()], [
      'lo', 'u1', 'u0', 'br-other', 'vxnb42', 'vxnv42', 'vxnv43', 'vxnhaaaaaaaaaa', 'vxncbbbbbbbbbb', 'vxnhbbbbbbbbbb',
    ]);
  });

  it('reads a bridge with its MAC, MTU, state and IPv4 addresses (not its IPv6 link-local)', () => {
    assert.deepEqual(links.get('vxnb42'), {
      name: 'vxnb42',
      index: links.get('vxnb42')!.index,
      kind: 'bridge',
      mtu: 1450,
      up: true,
      mac: '02:78:c0:a8:01:01',
      peerElsewhere: false,
      ipv4: ['192.168.1.1/24', '192.168.2.1/24'],
    });
  });

  it('reads a unicast VXLAN device with its immutable attributes and master', () => {
    assert.deepEqual(links.get('vxnv42'), {
      name: 'vxnv42',
      index: links.get('vxnv42')!.index,
      kind: 'vxlan',
      mtu: 1450,
      up: true,
      master: 'vxnb42',
      learning: false,
      mac: links.get('vxnv42')!.mac,
      peerElsewhere: false,
      vxlan: { vni: 42, port: 4789, local: '10.99.0.1', ttl: 0, learning: false, proxy: true },
      ipv4: [],
    });
  });

  it('reads a multicast VXLAN device with group, underlay device and TTL', () => {
    const vx = links.get('vxnv43')!;
    assert.equal(vx.up, false);
    assert.equal(vx.master, undefined);
    assert.equal(vx.mtu, 1400);
    assert.deepEqual(vx.vxlan, { vni: 43, port: 4789, local: '10.99.0.1', group: '239.1.1.1', device: 'u0', ttl: 5, learning: false, proxy: true });
  });

  it('tells a veth whose peer went to another namespace from one whose peer is still here', () => {
    const done = links.get('vxnhaaaaaaaaaa')!;
    assert.equal(done.kind, 'veth');
    assert.equal(done.peerElsewhere, true);
    assert.equal(done.peer, undefined);
    assert.equal(done.master, 'vxnb42');
    assert.equal(done.up, true);
    const half = links.get('vxnhbbbbbbbbbb')!;
    assert.equal(half.peerElsewhere, false);
    assert.equal(half.peer, 'vxncbbbbbbbbbb');
    assert.equal(half.up, false);
  });
});

describe('parseNeighbours (ip -j neigh show nud permanent)', () => {
  it('returns permanent entries with device, address and MAC', () => {
    assert.deepEqual(sorted(parseNeighbours(fixture('ip-neigh-permanent.json'))), sorted([
      { dev: 'vxnv42', ip: '192.168.1.21', mac: '02:78:c0:a8:01:15' },
      { dev: 'u0', ip: '10.99.0.7', mac: '02:00:00:00:00:07' },
      { dev: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14' },
    ]));
  });

  it('skips entries that are not permanent and handles empty output', () => {
    const text = JSON.stringify([{ dst: '10.0.0.1', dev: 'vxnv1', lladdr: '02:00:00:00:00:01', state: ['REACHABLE'] }]);
    assert.deepEqual(parseNeighbours(text), []);
    assert.deepEqual(parseNeighbours(''), []);
  });
});

describe('parseFdb (bridge -j fdb show state static)', () => {
  it('returns self entries with a destination (remote MACs, the flood list, the multicast default) and the bridge’s static entries', () => {
    assert.deepEqual(sorted(parseFdb(fixture('bridge-fdb-permanent.json'))), sorted([
      { dev: 'vxnv42', mac: '00:00:00:00:00:00', dst: '10.99.0.2' },
      { dev: 'vxnv42', mac: '00:00:00:00:00:00', dst: '10.99.0.3' },
      { dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: '10.99.0.2' },
      { dev: 'vxnv42', mac: '02:78:c0:a8:01:15', dst: '10.99.0.3' },
      { dev: 'vxnv43', mac: '00:00:00:00:00:00', dst: '239.1.1.1' },
      // the bridge's static entries for the remote MACs behind the VXLAN port; its local and learned ones are not vxnet's
      { dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: BRIDGE_ENTRY },
      { dev: 'vxnv42', mac: '02:78:c0:a8:01:15', dst: BRIDGE_ENTRY },
    ]));
  });
});

describe('parseFirewall (nft -j list table ip vxnet)', () => {
  it('finds the rules hash in the rule comment (nft 1.0.6 omits table comments from JSON)', () => {
    const rendered = fixture('nft-rendered.nft');
    const hash = /sha256:([0-9a-f]{16})/.exec(rendered)![1];
    assert.deepEqual(parseFirewall(fixture('nft-vxnet.json')), { present: true, hash });
  });

  it('reports a table of that name without our marker as present with no hash', () => {
    assert.deepEqual(parseFirewall(fixture('nft-unmarked.json')), { present: true });
  });

  it('reads the table comment when a newer nft prints it', () => {
    const text = JSON.stringify({ nftables: [{ table: { family: 'ip', name: 'vxnet', handle: 1, comment: 'vxnet rules sha256:0123456789abcdef' } }] });
    assert.deepEqual(parseFirewall(text), { present: true, hash: '0123456789abcdef' });
  });
});

describe('parseBatchErrors (stderr of -force -batch runs)', () => {
  it('attributes each failure of an ip link/addr batch to its 0-based line', () => {
    assert.deepEqual(parseBatchErrors(fixture('ip-batch-link.stderr')), {
      failures: [
        { line: 0, message: 'Cannot find device "nonexist"' },
        { line: 1, message: 'Error: ipv4: Address already assigned.' },
        { line: 3, message: 'Error: A VXLAN device with the specified VNI already exists.' },
      ],
      trailing: '',
    });
  });

  it('attributes FDB failures, which bridge reports line by line', () => {
    assert.deepEqual(parseBatchErrors(fixture('bridge-batch-fdb.stderr')), {
      failures: [
        { line: 1, message: 'RTNETLINK answers: No such file or directory' },
        { line: 2, message: 'Cannot find device "nonexist"' },
      ],
      trailing: '',
    });
  });

  it('shows that ip neigh stopped early: a message and no line number', () => {
    assert.deepEqual(parseBatchErrors(fixture('ip-batch-neigh.stderr')), {
      failures: [],
      trailing: 'RTNETLINK answers: No such file or directory',
    });
  });
});

describe('findUnderlay (ip -j addr show)', () => {
  it('finds the interface holding an address, with its MTU', () => {
    assert.deepEqual(findUnderlay(fixture('ip-addr.json'), '10.99.0.1'), { device: 'u0', mtu: 1500 });
    assert.deepEqual(findUnderlay(fixture('ip-addr.json'), '192.168.2.1'), { device: 'vxnb42', mtu: 1450 });
  });

  it('returns undefined for an address nobody holds (not a prefix match)', () => {
    assert.equal(findUnderlay(fixture('ip-addr.json'), '10.99.0.10'), undefined);
    assert.equal(findUnderlay(fixture('ip-addr.json'), '10.99.0'), undefined);
  });
});
