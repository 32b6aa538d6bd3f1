/**
 * `vxnet trace`'s judgement (src/trace/judge.ts, probe.ts) over reports built from kernel outputs captured
 * from real iproute2 and nftables (test/fixtures/kernel/capture.sh and capture-trace.sh): a healthy path,
 * then each kind of broken hop the issue names — missing entry, stale VTEP, MTU, allow-list, firewall, agent
 * down — found where it is and named, and the probe's counters read into where packets were lost.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseForeignDrops, parseLinkStats, parseSetElements } from '../../src/agent/diagnose-parse.ts';
import { parseFdb, parseLinks, parseNeighbours } from '../../src/agent/kernel/read.ts';
import type { Endpoint, Network, NodeStatus } from '../../src/core/model.ts';
import type { DiagnoseReport } from '../../src/core/schema/diagnose.ts';
import { formatTrace } from '../../src/trace/format.ts';
import { judgeTrace, type TraceInput } from '../../src/trace/judge.ts';
import { judgeProbe } from '../../src/trace/probe.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');

const network: Network = { name: 'front', vni: 42, subnets: [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }], mtu: 1450, port: 4789, internal: false, createdAt: 'T' };
const endpoint = (id: string, node: string, ip: string, mac: string): Endpoint => ({
  id, network: 'front', node, netns: `/run/netns/${id}`, ifname: 'eth0', ip, prefix: 24, gateway: '192.168.1.1', mac, status: 'ready', createdAt: 'T',
});
/** the captured namespace's endpoint a (vxnhaaaaaaaaaa on vxnb42) and the remote 192.168.1.20 its entries point at */
const c1 = endpoint('aaaaaaaaaaaa', 'h1', '192.168.1.2', '02:78:c0:a8:01:02');
const c2 = endpoint('cccccccccccc', 'h2', '192.168.1.20', '02:78:c0:a8:01:14');
const node = (name: string, address: string, state: 'up' | 'down' = 'up'): NodeStatus => ({ name, address, mtu: 1500, registeredAt: 'T', state, lastSeen: 'T', reconciledRevision: 9 });
const nodes = [node('h1', '10.99.0.1'), node('h2', '10.99.0.2')];

/** h1 as captured: bridge, VXLAN device, veth, entries, the allow-list; no table of anybody else */
function sourceReport(): DiagnoseReport {
  const stats = parseLinkStats(fixture('ip-link-stats.json'));
  const links = parseLinks(fixture('ip-addr-detail.json')).filter((l) => ['u0', 'vxnb42', 'vxnv42', 'vxnhaaaaaaaaaa'].includes(l.name));
  return {
    node: 'h1',
    reconciledRevision: 9,
    underlay: { device: 'u0', address: '10.99.0.1', mtu: 1500 },
    links: links.map((l) => ({
      name: l.name, kind: l.kind, mtu: l.mtu, up: l.up, mac: l.mac, ipv4: l.ipv4,
      ...(l.master ? { master: l.master } : {}),
      ...(l.vxlan ? { vxlan: { vni: l.vxlan.vni, port: l.vxlan.port, ...(l.vxlan.local ? { local: l.vxlan.local } : {}), learning: l.vxlan.learning } } : {}),
      ...(stats.has(l.name) ? { stats: stats.get(l.name)! } : {}),
    })),
    neighbours: parseNeighbours(fixture('ip-neigh-permanent.json')).filter((n) => n.dev === 'vxnv42'),
    fdb: parseFdb(fixture('bridge-fdb-permanent.json')).filter((f) => f.dev === 'vxnv42'),
    firewall: { present: true, peers: parseSetElements(fixture('nft-vxlan-peers.json')), ports: [4789], drops: 0 },
    antispoof: { macs: ['vxnhaaaaaaaaaa 02:78:c0:a8:01:02'], ips: ['vxnhaaaaaaaaaa 192.168.1.2'] },
    foreignDrops: [],
    errors: [],
  };
}

/** h2: the same kernel seen from the other side (its own VTEP, c2's veth, entries back to c1) */
function targetReport(): DiagnoseReport {
  const base = sourceReport();
  return {
    ...base,
    node: 'h2',
    underlay: { device: 'u0', address: '10.99.0.2', mtu: 1500 },
    links: base.links.map((l) =>
      l.name === 'vxnv42' ? { ...l, vxlan: { ...l.vxlan!, local: '10.99.0.2' } } : l.name === 'vxnhaaaaaaaaaa' ? { ...l, name: 'vxnhcccccccccc' } : l,
    ),
    neighbours: [{ dev: 'vxnv42', ip: c1.ip, mac: c1.mac }],
    fdb: [{ dev: 'vxnv42', mac: c1.mac, dst: '10.99.0.1' }, { dev: 'vxnv42', mac: c1.mac, dst: 'bridge' }],
    firewall: { present: true, peers: ['10.99.0.1'], ports: [4789], drops: 0 },
    antispoof: { macs: [`vxnhcccccccccc ${c2.mac}`], ips: [`vxnhcccccccccc ${c2.ip}`] },
  };
}

const input = (change: Partial<TraceInput> = {}): TraceInput => ({
  network, endpoints: [c1, c2], nodes, from: c1, to: c2, source: { report: sourceReport() }, target: { report: targetReport() }, ...change,
});

describe('judgeTrace', () => {
  it('a healthy path across two hosts: every hop ok, the underlay left to --probe', () => {
    const trace = judgeTrace(input());
    assert.equal(trace.ok, true, JSON.stringify(trace.stop));
    assert.deepEqual(trace.hops.map((h) => `${h.node} ${h.hop} ${h.status}`), [
      'h1 agent ok', 'h1 endpoint ok', 'h1 veth ok', 'h1 antispoof ok', 'h1 bridge ok', 'h1 neighbour ok', 'h1 fdb ok', 'h1 vxlan ok', 'h1 mtu ok', 'h1 firewall ok',
      'h2 underlay unknown', 'h2 agent ok', 'h2 allow-list ok', 'h2 firewall ok', 'h2 vxlan ok', 'h2 mtu ok', 'h2 bridge ok', 'h2 veth ok', 'h2 antispoof ok',
      'h2 return-entry ok', 'h2 return-entry ok', 'h2 endpoint ok',
    ]);
    assert.match(formatTrace(trace), /\npath ok: no hop would stop the packet\.\n$/);
  });

  it('a missing FDB entry on the source', () => {
    const source = sourceReport();
    source.fdb = source.fdb.filter((f) => f.mac !== c2.mac);
    const trace = judgeTrace(input({ source: { report: source } }));
    assert.equal(trace.ok, false);
    assert.deepEqual([trace.stop!.hop, trace.stop!.node], ['fdb', 'h1']);
    assert.equal(trace.stop!.detail, 'missing entry: no FDB entry for 02:78:c0:a8:01:14 on vxnv42 of h1, so the frame has no VTEP to go to.');
    assert.match(formatTrace(trace), /\nstops at fdb on h1: missing entry: no FDB entry/);
  });

  it('a stale VTEP: the entry sends to an address the target node no longer has', () => {
    const trace = judgeTrace(input({ nodes: [node('h1', '10.99.0.1'), node('h2', '10.99.0.5')] }));
    assert.deepEqual([trace.stop!.hop, trace.stop!.node], ['fdb', 'h1']);
    assert.equal(trace.stop!.detail, 'stale VTEP: the FDB entry for 02:78:c0:a8:01:14 on h1 sends to 10.99.0.2, but node h2 is at 10.99.0.5.');
  });

  it('a missing neighbour entry, and a missing return entry on the target', () => {
    const source = sourceReport();
    source.neighbours = [];
    assert.equal(judgeTrace(input({ source: { report: source } })).stop!.detail, 'missing entry: no neighbour entry for 192.168.1.20 on vxnv42 of h1, so ARP for it gets no answer.');
    const target = targetReport();
    target.fdb = [];
    const trace = judgeTrace(input({ target: { report: target } }));
    assert.deepEqual([trace.stop!.hop, trace.stop!.node], ['return-entry', 'h2']);
    assert.match(trace.stop!.detail, /^missing entry: for the reply, no FDB entry for 02:78:c0:a8:01:02/);
  });

  it('an MTU the underlay cannot carry with the VXLAN header', () => {
    const source = sourceReport();
    source.underlay = { ...source.underlay, mtu: 1400 };
    const trace = judgeTrace(input({ source: { report: source } }));
    assert.deepEqual([trace.stop!.hop, trace.stop!.node], ['mtu', 'h1']);
    assert.equal(trace.stop!.detail, 'MTU: network front has MTU 1450, but u0 on h1 (MTU 1400) carries at most 1350 after the 50-byte VXLAN header; larger packets are dropped.');
  });

  it('the target\'s allow-list without the source\'s VTEP', () => {
    const target = targetReport();
    target.firewall = { ...target.firewall, peers: ['10.99.0.3'], drops: 7 };
    const trace = judgeTrace(input({ target: { report: target } }));
    assert.deepEqual([trace.stop!.hop, trace.stop!.node], ['allow-list', 'h2']);
    assert.equal(trace.stop!.detail, 'allow-list: 10.99.0.1 (node h1) is not in set vxlan_peers of h2, which drops its VXLAN (7 dropped so far).');
  });

  it('another table\'s drop of VXLAN on the target: the rule is named; narrowed rules on other ports and forward policies are not the stop', () => {
    const target = targetReport();
    target.foreignDrops = parseForeignDrops(fixture('nft-ruleset-foreign.json'));
    const trace = judgeTrace(input({ target: { report: target } }));
    assert.deepEqual([trace.stop!.hop, trace.stop!.node], ['firewall', 'h2']);
    assert.equal(trace.stop!.detail, 'firewall: drops incoming VXLAN on h2: table inet blocker chain inbound (hook input): udp dport 4789 counter drop.');
    // the same ruleset on the sender: its output chain rejects ICMP only, not VXLAN
    const source = sourceReport();
    source.foreignDrops = target.foreignDrops;
    assert.equal(judgeTrace(input({ source: { report: source } })).ok, true);
  });

  it('an agent down: named with the node\'s state, and the other host still judged', () => {
    const trace = judgeTrace(input({ nodes: [node('h1', '10.99.0.1'), node('h2', '10.99.0.2', 'down')], target: { error: 'the agent of node h2 is not connected to the manager.' } }));
    assert.deepEqual([trace.stop!.hop, trace.stop!.node], ['agent', 'h2']);
    assert.equal(trace.stop!.detail, 'agent down: node h2 is down (last heartbeat T) and its kernel could not be read (the agent of node h2 is not connected to the manager.); its entries stay as last programmed.');
    assert.ok(trace.hops.some((h) => h.hop === 'fdb' && h.node === 'h1' && h.status === 'ok'));
    assert.ok(trace.hops.some((h) => h.hop === 'underlay' && h.status === 'warn'));
  });

  it('a missing veth, a port without anti-spoofing elements, a pending endpoint', () => {
    const source = sourceReport();
    source.links = source.links.filter((l) => l.name !== 'vxnhaaaaaaaaaa');
    assert.match(judgeTrace(input({ source: { report: source } })).stop!.detail, /^missing veth: vxnhaaaaaaaaaa, the host end of endpoint aaaaaaaaaaaa, does not exist on h1\.$/);
    const unguarded = sourceReport();
    unguarded.antispoof = { macs: [], ips: [] };
    assert.equal(judgeTrace(input({ source: { report: unguarded } })).stop!.hop, 'antispoof');
    assert.equal(judgeTrace(input({ to: { ...c2, status: 'pending' } })).stop!.detail, 'endpoint cccccccccccc is not set up yet (pending on node h2).');
  });

  it('an address instead of an endpoint: no endpoint has it, the gateway, outside the network', () => {
    const nobody = judgeTrace(input({ to: { ip: '192.168.1.77' }, target: undefined }));
    assert.deepEqual([nobody.stop!.hop, nobody.stop!.detail], ['neighbour', 'no endpoint of network front has address 192.168.1.77: ARP for it gets no answer.']);
    assert.equal(judgeTrace(input({ to: { ip: '192.168.1.1' }, target: undefined })).ok, true);
    const outside = judgeTrace(input({ to: { ip: '10.1.2.3' }, target: undefined }));
    assert.equal(outside.ok, true);
    assert.match(outside.hops.at(-1)!.detail, /leaves through the gateway of h1, masqueraded/);
    assert.equal(judgeTrace(input({ network: { ...network, internal: true }, to: { ip: '10.1.2.3' }, target: undefined })).ok, false);
  });

  it('two endpoints on one host: only the host\'s ports and bridge', () => {
    const c3 = { ...endpoint('bbbbbbbbbbbb', 'h1', '192.168.1.3', '02:78:c0:a8:01:03') };
    const source = sourceReport();
    source.links.push({ ...source.links.find((l) => l.name === 'vxnhaaaaaaaaaa')!, name: 'vxnhbbbbbbbbbb' });
    source.antispoof.macs.push(`vxnhbbbbbbbbbb ${c3.mac}`);
    source.antispoof.ips.push(`vxnhbbbbbbbbbb ${c3.ip}`);
    const trace = judgeTrace(input({ endpoints: [c1, c2, c3], to: c3, source: { report: source }, target: undefined }));
    assert.equal(trace.ok, true);
    assert.deepEqual(trace.hops.map((h) => h.hop), ['agent', 'endpoint', 'veth', 'antispoof', 'bridge', 'veth', 'antispoof', 'endpoint']);
  });
});

describe('judgeProbe', () => {
  const bump = (report: DiagnoseReport, counts: Record<string, [rx: number, tx: number]>): DiagnoseReport => ({
    ...report,
    links: report.links.map((l) => (counts[l.name] && l.stats ? { ...l, stats: { ...l.stats, rxPackets: l.stats.rxPackets + counts[l.name]![0], txPackets: l.stats.txPackets + counts[l.name]![1] } } : l)),
  });
  const before = { source: sourceReport(), target: { ...targetReport(), links: targetReport().links.map((l) => (l.name === 'vxnhcccccccccc' ? { ...l, stats: { rxPackets: 0, txPackets: 0, rxDropped: 0, txDropped: 0 } } : l)) } };

  it('answered probes are seen on all eight counters', () => {
    const probe = judgeProbe({
      vni: 42, from: c1, to: c2, probe: { sent: 3, received: 3 },
      sourceBefore: before.source, sourceAfter: bump(before.source, { vxnhaaaaaaaaaa: [3, 3], vxnv42: [3, 3] }),
      targetBefore: before.target, targetAfter: bump(before.target, { vxnhcccccccccc: [3, 3], vxnv42: [3, 3] }),
    });
    assert.deepEqual(probe.sightings.map((s) => s.seen), [true, true, true, true, true, true, true, true]);
    assert.equal(probe.verdict, 'all 3 probes were answered.');
  });

  it('probes dropped on the target before its VXLAN device: lost after the source encapsulated them', () => {
    const probe = judgeProbe({
      vni: 42, from: c1, to: c2, probe: { sent: 3, received: 0 },
      sourceBefore: before.source, sourceAfter: bump(before.source, { vxnhaaaaaaaaaa: [3, 0], vxnv42: [0, 3] }),
      targetBefore: before.target, targetAfter: { ...before.target, firewall: { ...before.target.firewall, drops: 3 } },
    });
    assert.deepEqual(probe.sightings.slice(0, 3).map((s) => [s.device, s.node, s.seen]), [['vxnhaaaaaaaaaa', 'h1', true], ['vxnv42', 'h1', true], ['vxnv42', 'h2', false]]);
    assert.equal(probe.allowListDrops, 3);
    assert.equal(probe.verdict, '0 of 3 probes were answered: lost after "request was encapsulated by the source VXLAN device" (vxnv42 on h1), not counted where the request was decapsulated by the target VXLAN device (vxnv42 rx on h2) (the target\'s VXLAN allow-list dropped 3).');
    assert.match(formatTrace(judgeTrace(input()), probe), /\nprobe: 3 sent, 0 answered\n {2}seen request left the source container/);
  });

  it('without the target\'s counters its devices are unknown, and a probe that could not run says why', () => {
    const probe = judgeProbe({ vni: 42, from: c1, to: c2, probe: { sent: 0, received: 0, error: 'ping did not run' }, sourceBefore: before.source, sourceAfter: before.source });
    assert.equal(probe.sightings[2]!.seen, 'unknown');
    assert.equal(probe.verdict, 'the probe could not be sent: ping did not run');
  });
});

describe('diagnose parsers (capture-trace.sh)', () => {
  it('link counters, the allow-list set, other tables\' drops', () => {
    const stats = parseLinkStats(fixture('ip-link-stats.json'));
    assert.ok(stats.has('vxnv42') && stats.has('vxnhaaaaaaaaaa'));
    assert.equal(typeof stats.get('u0')!.rxPackets, 'number');
    assert.deepEqual(parseSetElements(fixture('nft-vxlan-peers.json')), ['10.99.0.2', '10.99.0.3']);
    const drops = parseForeignDrops(fixture('nft-ruleset-foreign.json'));
    assert.deepEqual(drops.map((d) => [d.table, d.chain, d.hook, d.rule, d.udpPort, d.narrowed]), [
      ['blocker', 'forwarding', 'forward', 'policy drop', undefined, false],
      ['blocker', 'inbound', 'input', 'udp dport 4789 counter drop', 4789, false],
      ['blocker', 'inbound', 'input', 'ip saddr 10.99.0.9 udp dport 8472 drop', 8472, true],
      ['blocker', 'outbound', 'output', 'meta l4proto icmp reject', undefined, true],
    ]);
    // vxnet's own tables are never listed, whatever they drop
    assert.ok(!drops.some((d) => d.table === 'vxnet'));
  });
});
