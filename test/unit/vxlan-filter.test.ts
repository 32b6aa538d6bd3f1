/**
 * The VXLAN peer allow-list without a kernel: who is on it (desired.ts), how it is rendered into table
 * ip vxnet (nftables.ts), and how the data plane fails closed when it cannot be installed (against a
 * recording fake runner). The real kernel and real packets: test/integration/security-vxlan-filter.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DesiredEndpoint, DesiredNetwork, DesiredState, VxlanFilter } from '../../src/agent/dataplane.ts';
import { desiredState, vxlanFilterOf } from '../../src/agent/desired.ts';
import { HostToolError, type RunOptions, type RunResult, type Runner } from '../../src/agent/kernel/exec.ts';
import { LinuxDataplane } from '../../src/agent/kernel/linux-dataplane.ts';
import { effectiveVxlanFilter, planFirewall, renderFirewall } from '../../src/agent/kernel/nftables.ts';
import { parseFirewall, parseVxlanFilterDrops, readFirewall } from '../../src/agent/kernel/read.ts';
import { ClusterView } from '../../src/agent/view.ts';
import type { Endpoint, Network, Node } from '../../src/core/model.ts';

const self = { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' };
const node = (name: string, address: string): Node => ({ name, address, mtu: 1500, registeredAt: '' });
const network = (name: string, vni: number, port = 4789): Network => ({
  name, vni, subnets: [{ cidr: `192.168.${vni % 250}.0/24`, gateway: `192.168.${vni % 250}.1` }], mtu: 1450, port, internal: false, createdAt: '',
});
const endpoint = (id: string, networkName: string, nodeName: string, ip: string): Endpoint => ({
  id, network: networkName, node: nodeName, netns: `/run/netns/${id}`, ifname: 'eth0', ip, prefix: 24,
  gateway: ip.replace(/\.\d+$/, '.1'), mac: '02:78:c0:a8:01:02', status: 'pending', createdAt: '',
});

function view(nodes: Node[], networks: Network[] = [], endpoints: Endpoint[] = []): ClusterView {
  const v = new ClusterView();
  v.apply({ type: 'snapshot', revision: 1, nodes, networks, endpoints });
  return v;
}

describe('VXLAN allow-list in the desired state (desired.ts)', () => {
  it('allows every other registered node, never this node, and guards 4789 before any network exists', () => {
    const v = view([node('host1', '10.99.0.11'), node('host2', '10.99.0.12'), node('host10', '10.99.0.110'), node('host3', '10.99.0.13')]);
    const desired = desiredState(v, self);
    assert.deepEqual(desired.networks, []);
    // numeric order, our own 10.99.0.11 left out
    assert.deepEqual(desired.vxlanFilter, { ports: [4789], allowedSources: ['10.99.0.12', '10.99.0.13', '10.99.0.110'], underlayDevice: 'eth0' });
  });

  it('follows nodes joining and leaving', () => {
    const v = view([node('host1', '10.99.0.11'), node('host2', '10.99.0.12')]);
    assert.deepEqual(vxlanFilterOf(v, self).allowedSources, ['10.99.0.12']);
    v.apply({ type: 'node', revision: 2, node: node('host3', '10.99.0.13') });
    assert.deepEqual(vxlanFilterOf(v, self).allowedSources, ['10.99.0.12', '10.99.0.13']);
    v.apply({ type: 'node-deleted', revision: 3, name: 'host2' });
    assert.deepEqual(vxlanFilterOf(v, self).allowedSources, ['10.99.0.13']);
    // a node re-registering with a new address replaces the old one
    v.apply({ type: 'node', revision: 4, node: node('host3', '10.99.0.33') });
    assert.deepEqual(vxlanFilterOf(v, self).allowedSources, ['10.99.0.33']);
  });

  it('is membership, not liveness or shared networks: a node with no endpoint anywhere is a member', () => {
    const v = view(
      [node('host1', '10.99.0.11'), node('host2', '10.99.0.12'), node('idle', '10.99.0.50')],
      [network('blue', 1000)],
      [endpoint('aaaaaaaaaaaa', 'blue', 'host1', '192.168.232.2'), endpoint('bbbbbbbbbbbb', 'blue', 'host2', '192.168.232.3')],
    );
    assert.deepEqual(desiredState(v, self).vxlanFilter.allowedSources, ['10.99.0.12', '10.99.0.50']);
  });

  it('leaves out a node claiming our address or holding no IPv4 address', () => {
    const v = view([node('host1', '10.99.0.11'), node('impostor', '10.99.0.11'), node('broken', 'not-an-address'), node('host2', '10.99.0.12')]);
    assert.deepEqual(vxlanFilterOf(v, self).allowedSources, ['10.99.0.12']);
  });

  it('guards the port of every network the node knows of, plus 4789', () => {
    const v = view([node('host1', '10.99.0.11')], [network('blue', 1000, 8472), network('red', 2000, 4789), network('green', 3000, 4790)]);
    assert.deepEqual(vxlanFilterOf(v, self).ports, [4789, 4790, 8472]);
  });
});

const net42: DesiredNetwork = {
  name: 'front', vni: 42, bridge: 'vxnb42', vxlan: 'vxnv42', port: 4789, mtu: 1450, localAddress: '10.99.0.1',
  gatewayMac: '02:78:c0:a8:01:01', gatewayAddresses: ['192.168.1.1/24', '192.168.2.1/24'],
  subnets: ['192.168.1.0/24', '192.168.2.0/24'], internal: false,
};
const filter: VxlanFilter = { ports: [4789], allowedSources: ['10.99.0.2', '10.99.0.3'] };

describe('VXLAN peer filter in table ip vxnet (nftables.ts)', () => {
  it('drops and counts UDP to the VXLAN ports from anyone but the members, in an input chain before every standard one', () => {
    const { table } = renderFirewall([net42], { ports: [8472, 4789], allowedSources: ['10.99.0.13', '10.99.0.2'] });
    const chain = /\tchain vxlan_input \{\n([^}]*)\n\t\}/.exec(table)?.[1]?.split('\n').map((l) => l.trim());
    assert.deepEqual(chain?.slice(0, 1), ['type filter hook input priority raw - 10; policy accept;']);
    assert.match(chain![1]!, /^udp dport @vxlan_ports iifname != "vxn\*" ip saddr @vxlan_peers accept comment "vxnet rules sha256:[0-9a-f]{16}"$/);
    assert.equal(chain![2], 'udp dport @vxlan_ports counter drop comment "VXLAN from a non-member"');
    assert.equal(chain!.length, 3);
    // sets, sorted numerically, declared before the chain that uses them
    assert.match(table, /\tset vxlan_ports \{\n\t\ttype inet_service\n\t\telements = \{ 4789, 8472 \}\n\t\}\n\tset vxlan_peers \{\n\t\ttype ipv4_addr\n\t\telements = \{ 10\.99\.0\.2, 10\.99\.0\.13 \}\n\t\}\n\tchain vxlan_input/);
    // the network chains are still there, and the hash marker moved to the filter
    assert.match(table, /chain postrouting[^]*chain forward[^]*chain input \{/);
    assert.doesNotMatch(table, /oifname != "vxnb\*" accept comment/);
    assert.deepEqual(parseFirewall(JSON.stringify({ nftables: [] })), { present: false });
  });

  it('accepts VXLAN only on the underlay interface, and drops UDP to a member VTEP routed in from anywhere else (vxnet issue 9)', () => {
    const { table } = renderFirewall([net42], { ...filter, underlayDevice: 'eth0' });
    const input = /\tchain vxlan_input \{\n([^}]*)\n\t\}/.exec(table)?.[1]?.split('\n').map((l) => l.trim());
    assert.match(input![1]!, /^udp dport @vxlan_ports iifname "eth0" ip saddr @vxlan_peers accept comment "vxnet rules sha256:[0-9a-f]{16}"$/);
    assert.equal(input![2], 'udp dport @vxlan_ports counter drop comment "VXLAN from a non-member"');
    const forward = /\tchain vxlan_forward \{\n([^}]*)\n\t\}/.exec(table)?.[1]?.split('\n').map((l) => l.trim());
    assert.deepEqual(forward, [
      'type filter hook forward priority raw - 10; policy accept;',
      'udp dport @vxlan_ports ip daddr @vxlan_peers iifname != "eth0" counter drop comment "VXLAN routed from a non-underlay interface"',
    ]);
    // the device is part of the rules: another underlay interface is another table
    assert.notEqual(renderFirewall([net42], { ...filter, underlayDevice: 'eth1' }).hash, renderFirewall([net42], { ...filter, underlayDevice: 'eth0' }).hash);
    // without a known device: from anything but vxnet's own interfaces, and nothing routed in from them
    const fallback = renderFirewall([net42], filter).table;
    assert.match(fallback, /udp dport @vxlan_ports ip daddr @vxlan_peers iifname "vxn\*" counter drop/);
    // a malformed device name is left out (and named), never written into the script
    const bad = effectiveVxlanFilter({ ...filter, underlayDevice: 'eth0 accept' }, []);
    assert.equal(bad.filter.underlayDevice, undefined);
    assert.deepEqual(bad.rejected, ['VXLAN filter underlay device "eth0 accept" is not an interface name']);
  });

  it('exists alone with no network (no NAT chain) and with an empty member set', () => {
    const { table } = renderFirewall([], { ports: [4789], allowedSources: [] });
    assert.match(table, /\tset vxlan_peers \{\n\t\ttype ipv4_addr\n\t\}/);
    assert.doesNotMatch(table, /chain postrouting|chain forward|hook nat/);
    assert.match(table, /chain vxlan_input/);
  });

  it('changes its hash when a member joins or leaves or a port is added, not with input order', () => {
    const base = renderFirewall([net42], filter).hash;
    assert.equal(renderFirewall([net42], { ports: [4789], allowedSources: ['10.99.0.3', '10.99.0.2'] }).hash, base);
    assert.notEqual(renderFirewall([net42], { ...filter, allowedSources: ['10.99.0.2'] }).hash, base);
    assert.notEqual(renderFirewall([net42], { ...filter, allowedSources: [...filter.allowedSources, '10.99.0.4'] }).hash, base);
    assert.notEqual(renderFirewall([net42], { ...filter, ports: [4789, 8472] }).hash, base);
    // without a filter the table is exactly what it was before the filter existed
    assert.equal(renderFirewall([net42]).table, renderFirewall([net42], { ports: [], allowedSources: ['10.99.0.2'] }).table);
  });

  it('keeps the table while a filter is wanted, even without networks, and rewrites an unreadable one', () => {
    const alone = { ports: [4789], allowedSources: ['10.99.0.2'] };
    const { hash } = renderFirewall([], alone);
    assert.deepEqual(planFirewall([], { present: true, hash }, alone), { action: 'none' });
    assert.equal(planFirewall([], { present: true, hash: renderFirewall([net42], alone).hash }, alone).action, 'replace');
    assert.equal(planFirewall([], { present: false }, alone).action, 'replace');
    assert.equal(planFirewall([net42], { present: false, unreadable: 'nft: command not found' }, alone).action, 'replace');
    assert.equal(planFirewall([], { present: false, unreadable: 'nft: command not found' }).action, 'delete');
    assert.equal(planFirewall([], { present: true, hash }).action, 'delete');
  });

  it('guards the ports of desired networks and present devices too, and leaves malformed values out', () => {
    const result = effectiveVxlanFilter(
      { ports: [4789, 0, 70000], allowedSources: ['10.99.0.3', 'bogus', '10.99.0.2', '10.99.0.3'] },
      [{ ...net42, port: 8472 }],
      [4790],
    );
    assert.deepEqual(result.filter, { ports: [4789, 4790, 8472], allowedSources: ['10.99.0.2', '10.99.0.3'] });
    assert.deepEqual(result.rejected, [
      'VXLAN filter port 0 is outside 1..65535',
      'VXLAN filter port 70000 is outside 1..65535',
      'VXLAN filter source "bogus" is not an IPv4 address',
    ]);
    // a caller that passes no filter at all still gets its networks' ports guarded (and nobody allowed)
    assert.deepEqual(effectiveVxlanFilter(undefined, [net42]).filter, { ports: [4789], allowedSources: [] });
  });

  it('reads the drop counter back from nft -j list chain', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { chain: { family: 'ip', table: 'vxnet', name: 'vxlan_input', hook: 'input', prio: -310 } },
        { rule: { chain: 'vxlan_input', expr: [{ match: {} }, { accept: null }] } },
        { rule: { chain: 'vxlan_input', expr: [{ match: {} }, { counter: { packets: 7, bytes: 826 } }, { drop: null }] } },
      ],
    });
    assert.equal(parseVxlanFilterDrops(json), 7);
    assert.equal(parseVxlanFilterDrops(JSON.stringify({ nftables: [] })), undefined);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Fail closed, against a recording runner

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');
const endpointA: DesiredEndpoint = {
  id: 'aaaaaaaaaaaa', bridge: 'vxnb42', hostVeth: 'vxnhaaaaaaaaaa', peerVeth: 'vxncaaaaaaaaaa', netns: '/run/netns/c1',
  ifname: 'eth0', mac: '02:78:c0:a8:01:02', address: '192.168.1.2/24', gateway: '192.168.1.1', mtu: 1450, extraRoutes: [],
};
const endpointB: DesiredEndpoint = {
  ...endpointA, id: 'bbbbbbbbbbbb', hostVeth: 'vxnhbbbbbbbbbb', peerVeth: 'vxncbbbbbbbbbb', netns: '/run/netns/c2', mac: '02:78:c0:a8:01:03', address: '192.168.1.3/24',
};
const state = (extra: Partial<DesiredState> = {}): DesiredState => ({ networks: [net42], peers: [], floods: [], endpoints: [endpointA], vxlanFilter: filter, ...extra });

/** A host whose kernel answers like the capture in test/fixtures/kernel; `nft` can be made to fail. */
class Host implements Runner {
  readonly calls: { line: string; input?: string }[] = [];
  links: unknown[] = [];
  firewall: string | undefined;
  /** when set, every nft call fails like this */
  nftFailure: Partial<RunResult> | 'throw' | undefined;

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const line = argv.join(' ');
    this.calls.push({ line, ...(options.input !== undefined ? { input: options.input } : {}) });
    let reply: Partial<RunResult> = {};
    const failure = argv[0] === 'nft' ? this.nftFailure : undefined;
    if (failure === 'throw') throw new Error('spawn nft EACCES');
    if (failure) reply = failure;
    else if (line === 'ip -j -d addr show') reply = { stdout: JSON.stringify(this.links) };
    else if (line === 'ip -j neigh show nud permanent' || line === 'bridge -j fdb show state permanent') reply = { stdout: '[]' };
    else if (line === 'nft -j list table ip vxnet') {
      reply = this.firewall ? { stdout: this.firewall } : { code: 1, stderr: 'Error: No such file or directory\n' };
    }
    const result: RunResult = { argv, code: reply.code ?? 0, stdout: reply.stdout ?? '', stderr: reply.stderr ?? '' };
    if (result.code !== 0 && !options.allowFailure) throw new HostToolError(argv, result.code, result.stderr);
    return result;
  }
  async readFile(path: string) {
    return path.endsWith('ip_forward') ? '1\n' : undefined;
  }
  async writeFile() {}
  async exists() {
    return true;
  }
  /** the captured namespace: bridge, VXLAN device and endpoint A in place, with a firewall of the given hash */
  converged(hash?: string): this {
    const keep = new Set(['lo', 'u0', 'u1', 'br-other', 'vxnb42', 'vxnv42', 'vxnhaaaaaaaaaa']);
    this.links = (JSON.parse(fixture('ip-addr-detail.json')) as { ifname: string }[]).filter((l) => keep.has(l.ifname));
    if (hash) {
      this.firewall = JSON.stringify({
        nftables: [
          { table: { family: 'ip', name: 'vxnet' } },
          { rule: { family: 'ip', table: 'vxnet', chain: 'vxlan_input', expr: [], comment: `vxnet rules sha256:${hash}` } },
        ],
      });
    }
    return this;
  }
  writes(): { line: string; input?: string }[] {
    return this.calls.filter((c) => !/^(ip -j|bridge -j|nft -j list)/.test(c.line));
  }
}

const NOT_INSTALLED = /^VXLAN peer filter could not be installed: .*; no new endpoint is attached until it is$/;

describe('LinuxDataplane fails closed without the VXLAN peer filter', () => {
  it('on a fresh host without nft: no VXLAN device, no endpoint, and every pending endpoint says why', async () => {
    const host = new Host();
    host.nftFailure = { code: 127, stderr: 'nft: command not found' };
    const result = await new LinuxDataplane({ run: host, tuneNeighbourTable: false }).reconcile(state({ endpoints: [endpointA, endpointB] }));
    for (const id of ['aaaaaaaaaaaa', 'bbbbbbbbbbbb']) {
      assert.equal(
        result.endpointErrors.get(id),
        'VXLAN peer filter could not be installed: nft -f - failed (exit 127): nft: command not found; no new endpoint is attached until it is',
      );
    }
    assert.deepEqual(result.readyEndpoints, new Set());
    assert.match(result.error!, /applying the nftables table ip vxnet failed: nft -f - failed \(exit 127\)/);
    const written = host.writes();
    assert.equal(written[0]!.line, 'nft -f -', 'the firewall is tried before any link');
    const ipLines = written.filter((c) => c.line === 'ip -force -batch -').flatMap((c) => (c.input ?? '').trim().split('\n'));
    // the bridge may exist (it cannot receive anything from the underlay); the VXLAN socket and the veths may not
    assert.ok(!ipLines.some((l) => /type vxlan|vxnv42/.test(l)), ipLines.join('\n'));
    assert.ok(!ipLines.some((l) => /veth|vxnh|vxnc/.test(l)), ipLines.join('\n'));
    assert.ok(!written.some((c) => c.line.startsWith('nsenter')));
  });

  it('when the nft script is refused: running endpoints stay (fail-static), new ones wait with the reason', async () => {
    const host = new Host().converged(renderFirewall([net42], filter).hash);
    host.nftFailure = { code: 1, stderr: '/dev/stdin:12:3-40: Error: Could not process rule: Operation not supported\n' };
    // a new member joined (the table must change) and a second container arrives
    const result = await new LinuxDataplane({ run: host, tuneNeighbourTable: false }).reconcile(
      state({ endpoints: [endpointA, endpointB], vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.2', '10.99.0.3', '10.99.0.4'] } }),
    );
    assert.deepEqual(result.readyEndpoints, new Set(['aaaaaaaaaaaa']));
    assert.match(result.endpointErrors.get('bbbbbbbbbbbb')!, NOT_INSTALLED);
    assert.match(result.endpointErrors.get('bbbbbbbbbbbb')!, /Error: Could not process rule: Operation not supported/);
    assert.equal(result.endpointErrors.size, 1);
    // the new container's veth pair was prepared while nft ran (no device changes in this pass); it is never
    // attached to the bridge, and it is deleted again
    const written = host.writes();
    assert.equal(written[0]!.line, 'nft -f -');
    const ipLines = written.filter((c) => c.line === 'ip -force -batch -').flatMap((c) => (c.input ?? '').trim().split('\n'));
    assert.ok(!ipLines.some((l) => / master /.test(l)), ipLines.join('\n'));
    assert.equal(ipLines.at(-1), 'link del dev vxnhbbbbbbbbbb');
  });

  it('when nft cannot even be started (the runner throws)', async () => {
    const host = new Host().converged();
    host.nftFailure = 'throw';
    const result = await new LinuxDataplane({ run: host, tuneNeighbourTable: false }).reconcile(state({ endpoints: [endpointA, endpointB] }));
    assert.deepEqual(result.readyEndpoints, new Set(['aaaaaaaaaaaa']));
    assert.match(result.endpointErrors.get('bbbbbbbbbbbb')!, /^VXLAN peer filter could not be installed: spawn nft EACCES/);
  });

  it('keeps the old VXLAN device instead of recreating it unguarded', async () => {
    const host = new Host().converged(renderFirewall([net42], filter).hash);
    host.nftFailure = { code: 1, stderr: 'Error: Could not process rule: No buffer space available\n' };
    const moved = state({ networks: [{ ...net42, port: 8472 }] });
    const result = await new LinuxDataplane({ run: host, tuneNeighbourTable: false }).reconcile(moved);
    const ipLines = host.writes().filter((c) => c.line === 'ip -force -batch -').flatMap((c) => (c.input ?? '').trim().split('\n'));
    assert.ok(!ipLines.some((l) => l.includes('vxnv42')), ipLines.join('\n'));
    assert.deepEqual(result.readyEndpoints, new Set(['aaaaaaaaaaaa']));
  });

  it('installs once nft works again: the next pass puts the filter in and attaches the waiting endpoint', async () => {
    const host = new Host().converged(renderFirewall([net42], filter).hash);
    const dataplane = new LinuxDataplane({ run: host, tuneNeighbourTable: false });
    host.nftFailure = { code: 1, stderr: 'Error: Could not process rule: Operation not supported\n' };
    const wanted = state({ endpoints: [endpointA, endpointB], vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.2'] } });
    assert.match((await dataplane.reconcile(wanted)).endpointErrors.get('bbbbbbbbbbbb')!, NOT_INSTALLED);
    host.nftFailure = undefined;
    host.calls.length = 0;
    const retry = await dataplane.reconcile(wanted);
    assert.deepEqual(retry.readyEndpoints, new Set(['aaaaaaaaaaaa', 'bbbbbbbbbbbb']));
    assert.equal(retry.endpointErrors.size, 0);
    assert.equal(retry.error, undefined);
    const written = host.writes();
    assert.equal(written[0]!.line, 'nft -f -');
    assert.match(written[0]!.input!, /set vxlan_peers \{\n\t\ttype ipv4_addr\n\t\telements = \{ 10\.99\.0\.2 \}/);
    assert.ok(written.some((c) => c.line.startsWith('nsenter --net=/run/netns/c2')));
  });

  it('grows the port set before a device with a new port appears, and shrinks it only after the old one is gone', async () => {
    const host = new Host().converged(renderFirewall([net42], filter).hash);
    // a leftover VXLAN device on 8472 that is no longer wanted
    const leftover = (JSON.parse(fixture('ip-addr-detail.json')) as { ifname: string; linkinfo?: { info_data?: { port?: number } } }[])
      .find((l) => l.ifname === 'vxnv43')!;
    leftover.linkinfo!.info_data!.port = 8472;
    host.links.push(leftover);
    const result = await new LinuxDataplane({ run: host, tuneNeighbourTable: false }).reconcile(state());
    assert.equal(result.error, undefined);
    const written = host.writes();
    assert.deepEqual(written.map((c) => c.line), ['nft -f -', 'ip -force -batch -', 'nft -f -']);
    assert.match(written[0]!.input!, /elements = \{ 4789, 8472 \}/);
    assert.match(written[1]!.input!, /^link del dev vxnv43$/m);
    assert.match(written[2]!.input!, /set vxlan_ports \{\n\t\ttype inet_service\n\t\telements = \{ 4789 \}/);
    assert.equal(written[2]!.input!.match(/vxnet rules sha256:([0-9a-f]{16})/)![1], renderFirewall([net42], filter).hash);
  });
});

describe('readFirewall', () => {
  it('reports an unreadable table instead of failing the pass', async () => {
    const host = new Host();
    host.nftFailure = { code: 127, stderr: 'nft: command not found' };
    assert.deepEqual(await readFirewall(host), {
      present: false,
      unreadable: 'nft -j list table ip vxnet failed (exit 127): nft: command not found',
    });
    host.nftFailure = 'throw';
    assert.deepEqual(await readFirewall(host), { present: false, unreadable: 'spawn nft EACCES' });
    host.nftFailure = undefined;
    assert.deepEqual(await readFirewall(host), { present: false });
  });
});
