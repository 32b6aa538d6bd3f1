/**
 * The agent's side of `vxnet trace`: a `diagnose` line from the watch stream goes to the diagnose handler and
 * nowhere else (no pass, no revision), and `diagnose()` reads the kernel through the runner — on outputs
 * captured from real iproute2 and nftables — keeping only the network's devices and the entries asked about;
 * `--probe` pings from the namespace of a local endpoint only, with argv, never a shell.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { diagnose } from '../../src/agent/diagnose.ts';
import type { Runner } from '../../src/agent/kernel/exec.ts';
import { ClusterView } from '../../src/agent/view.ts';
import type { DiagnoseMessage } from '../../src/agent/agent-options.ts';
import type { Endpoint, Network } from '../../src/core/model.ts';
import { runScriptedAgent, twoNodes } from './support/fixtures.ts';
import { until } from './support/until.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');
const front: Network = { name: 'front', vni: 42, subnets: [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }], mtu: 1450, port: 4789, internal: false, createdAt: '' };
const local: Endpoint = { id: 'aaaaaaaaaaaa', network: 'front', node: 'host1', netns: '/run/netns/c1', ifname: 'eth0', ip: '192.168.1.2', prefix: 24, gateway: '192.168.1.1', mac: '02:78:c0:a8:01:02', status: 'ready', createdAt: '' };
const remote: Endpoint = { ...local, id: 'cccccccccccc', node: 'host2', netns: '/run/netns/c2', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14' };

/** A runner answering each read with its captured output; records every argv. */
function capturedRunner(ping = '3 packets transmitted, 2 received, 33% packet loss, time 404ms\n'): Runner & { argvs: string[][] } {
  const argvs: string[][] = [];
  const out: Record<string, string> = {
    'ip -j -d addr show': fixture('ip-addr-detail.json'),
    'ip -j -s link show': fixture('ip-link-stats.json'),
    'ip -j neigh show nud permanent': fixture('ip-neigh-permanent.json'),
    'bridge -j fdb show state static': fixture('bridge-fdb-permanent.json'),
    'nft -j list table ip vxnet': fixture('nft-vxnet.json'),
    'nft -j list set ip vxnet vxlan_peers': fixture('nft-vxlan-peers.json'),
    'nft -j list set ip vxnet vxlan_ports': '{"nftables": [{"set": {"family": "ip", "name": "vxlan_ports", "table": "vxnet", "elem": [4789]}}]}',
    'nft -j list chain ip vxnet vxlan_input': '{"nftables": []}',
    'nft -j list table bridge vxnet': '{"nftables": []}',
    'nft -j list ruleset': fixture('nft-ruleset-foreign.json'),
  };
  return {
    argvs,
    async run(argv) {
      argvs.push([...argv]);
      if (argv[0] === 'nsenter') return { argv, code: 1, stdout: ping, stderr: '' };
      const stdout = out[argv.join(' ')];
      if (stdout === undefined) throw new Error(`unexpected ${argv.join(' ')}`);
      return { argv, code: 0, stdout, stderr: '' };
    },
    readFile: async () => undefined,
    writeFile: async () => {},
    exists: async () => true,
  };
}

function view(): ClusterView {
  const v = new ClusterView();
  v.apply({ type: 'snapshot', revision: 7, nodes: twoNodes, networks: [front], endpoints: [local, remote] });
  return v;
}
const ctx = (run: Runner) => ({ run, self: { name: 'host1', address: '10.99.0.1', underlayDevice: 'u0' }, underlayMtu: 1500 });

describe('diagnose (agent side)', () => {
  it('reads the network\'s devices with counters, the entries asked about, the allow-list and other tables\' drops', async () => {
    const report = await diagnose(ctx(capturedRunner()), { view: view(), reconciledRevision: 7 }, { network: 'front', macs: [remote.mac], ips: [remote.ip] });
    assert.deepEqual(report.links.map((l) => l.name).sort(), ['u0', 'vxnb42', 'vxnhaaaaaaaaaa', 'vxnv42']);
    assert.ok(report.links.find((l) => l.name === 'vxnv42')!.stats, 'counters merged in');
    assert.deepEqual(report.neighbours, [{ dev: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14' }]);
    assert.deepEqual(report.fdb.map((f) => f.dst).sort(), ['10.99.0.2', 'bridge']);
    assert.deepEqual(report.firewall, { present: true, peers: ['10.99.0.2', '10.99.0.3'], ports: [4789] });
    assert.equal(report.foreignDrops.length, 4);
    assert.deepEqual(report.errors, []);
    assert.equal(report.probe, undefined);
  });

  it('a network the node does not follow is said in the report, not thrown', async () => {
    const report = await diagnose(ctx(capturedRunner()), { view: view(), reconciledRevision: 7 }, { network: 'other', macs: [], ips: [] });
    assert.deepEqual(report.links.map((l) => l.name), ['u0']);
    assert.deepEqual(report.errors, ['node host1 has no endpoint on network other, so its agent does not follow it.']);
  });

  it('--probe pings from a local endpoint\'s namespace, as argv; a remote endpoint or a non-address is refused', async () => {
    const run = capturedRunner();
    const report = await diagnose(ctx(run), { view: view(), reconciledRevision: 7 }, { network: 'front', macs: [], ips: [], probe: { endpoint: local.id, to: remote.ip, count: 3 } });
    assert.deepEqual(report.probe, { sent: 3, received: 2 });
    assert.deepEqual(run.argvs.find((a) => a[0] === 'nsenter'), ['nsenter', '--net=/run/netns/c1', 'ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', '192.168.1.20']);
    const elsewhere = await diagnose(ctx(capturedRunner()), { view: view(), reconciledRevision: 7 }, { network: 'front', macs: [], ips: [], probe: { endpoint: remote.id, to: local.ip, count: 1 } });
    assert.equal(elsewhere.probe!.error, 'endpoint cccccccccccc is not on node host1.');
    const injected = capturedRunner();
    const bad = await diagnose(ctx(injected), { view: view(), reconciledRevision: 7 }, { network: 'front', macs: [], ips: [], probe: { endpoint: local.id, to: '1.2.3.4; reboot', count: 1 } });
    assert.equal(bad.probe!.error, '1.2.3.4; reboot is not an IPv4 address.');
    assert.ok(!injected.argvs.some((a) => a[0] === 'nsenter'));
  });
});

describe('the agent and diagnose lines', () => {
  it('hands the line to the diagnose handler with its view; no pass, no revision', async () => {
    const seen: { message: DiagnoseMessage; revision: number }[] = [];
    const { api, agent, dataplane, stop } = await runScriptedAgent({ diagnose: (message, a) => seen.push({ message, revision: a.view.revision }) });
    try {
      api.push!({ type: 'snapshot', revision: 7, nodes: twoNodes, networks: [front], endpoints: [local, remote] });
      await until(() => dataplane.calls.length === 1, 'first pass');
      await agent.idle();
      api.push!({ type: 'diagnose', revision: 0, id: 'r1', request: { network: 'front', macs: [], ips: [] } });
      await until(() => seen.length === 1, 'diagnose handled');
      assert.equal(seen[0]!.message.id, 'r1');
      assert.equal(seen[0]!.revision, 7);
      await agent.idle();
      assert.equal(dataplane.calls.length, 1, 'no pass for a diagnose line');
    } finally {
      await stop();
    }
  });
});
