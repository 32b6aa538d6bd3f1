/**
 * A network namespace per network (src/agent/kernel/netns.ts, linux-netns.ts): the pure plan of the host
 * side and of one network's namespace, the lines they render to, the namespace list, and the commands one
 * pass issues against a recording fake runner. The real kernel: test/integration/kernel-dataplane-netns.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredState } from '../../src/agent/dataplane.ts';
import type { RunOptions, RunResult, Runner } from '../../src/agent/kernel/exec.ts';
import { LinuxDataplane } from '../../src/agent/kernel/linux-dataplane.ts';
import { inNamespace, namespacesByVni, parseNamespaces, planHost, type NamespaceState } from '../../src/agent/kernel/netns.ts';
import { planReconcile } from '../../src/agent/kernel/plan.ts';
import type { ActualState, LinkState } from '../../src/agent/kernel/read.ts';
import { renderEndpointCreate, renderLinkStep } from '../../src/agent/kernel/render.ts';
import { desiredEndpoint, desiredNetwork } from './support/fixtures.ts';

const net = desiredNetwork(42);
const link = (name: string, extra: Partial<LinkState>): LinkState => ({ name, index: 1, kind: 'veth', mtu: 1450, up: true, mac: '66:00:00:00:00:01', peerElsewhere: true, ipv4: [], ...extra });
const space = (links: LinkState[]): NamespaceState => ({
  name: 'vxnet-42', vni: 42, links: new Map(links.map((l) => [l.name, l])), neighbours: [], fdb: [], antispoof: { present: false, macs: [], ips: [] },
});
const empty: ActualState = { links: new Map(), neighbours: [], fdb: [], firewall: { present: false }, ipForward: true };

describe('network namespaces: names and reads', () => {
  it('finds only PREFIX<VNI> namespaces in `ip -j netns list`', () => {
    const listed = JSON.stringify([{ name: 'vxnet-42', id: 0 }, { name: 'vxnet-4097' }, { name: 'vxnet-x' }, { name: 'vxnet-042' }, { name: 'other-7' }, { name: 'vxnet-' }]);
    assert.deepEqual([...parseNamespaces(listed, 'vxnet-')], [[42, 'vxnet-42'], [4097, 'vxnet-4097']]);
    assert.deepEqual([...parseNamespaces('', 'vxnet-')], []);
    // the same from the folder's names, as the data plane lists /run/netns without a process
    assert.deepEqual([...namespacesByVni(['vxnet-42', 'vxnet-4097', 'vxnet-x', 'vxnet-042', 'other-7', 'vxnet-'], 'vxnet-')], [[42, 'vxnet-42'], [4097, 'vxnet-4097']]);
  });

  it('runs ip and bridge with -n, anything else under nsenter', async () => {
    const calls: string[][] = [];
    const run: Runner = {
      run: async (argv: readonly string[], _options?: RunOptions): Promise<RunResult> => (calls.push([...argv]), { argv, code: 0, stdout: '', stderr: '' }),
      readFile: async () => undefined,
      writeFile: async () => {},
      exists: async () => true,
    };
    const inside = inNamespace(run, 'vxnet-42');
    await inside.run(['ip', '-force', '-batch', '-']);
    await inside.run(['bridge', '-j', 'fdb', 'show']);
    await inside.run(['nft', '-f', '-']);
    assert.deepEqual(calls, [
      ['ip', '-n', 'vxnet-42', '-force', '-batch', '-'],
      ['bridge', '-n', 'vxnet-42', '-j', 'fdb', 'show'],
      ['nsenter', '--net=/run/netns/vxnet-42', 'nft', '-f', '-'],
    ]);
    await assert.rejects(inside.writeFile('/proc/sys/x', '1'), /not writable/);
    await inside.readFile('/proc/net/netlink');
    assert.deepEqual(calls.at(-1), ['nsenter', '--net=/run/netns/vxnet-42', 'cat', '/proc/net/netlink']);
  });
});

describe('network namespaces: the host side', () => {
  it('makes the gateway a veth pair into the namespace, with the gateway MAC and addresses', () => {
    const plan = planHost([net], new Map(), new Map(), 'vxnet-', new Set());
    assert.deepEqual(plan.steps.map(renderLinkStep), [
      'link add name vxnb42 address 02:78:c0:a8:01:01 mtu 1450 type veth peer name vxng42 mtu 1450 netns vxnet-42',
      'link set dev vxnb42 up',
      'addr add 192.168.1.1/24 dev vxnb42',
    ]);
    assert.deepEqual([...plan.gatewayFresh], ['vxnb42']);
  });

  it('adopts a complete gateway and changes nothing', () => {
    const host = new Map([['vxnb42', link('vxnb42', { mac: '02:78:c0:a8:01:01', ipv4: ['192.168.1.1/24'] })]]);
    const plan = planHost([net], host, new Map([[42, space([link('vxng42', { master: 'vxnb42' })])]]), 'vxnet-', new Set());
    assert.deepEqual(plan.steps, []);
    assert.equal(plan.gatewayFresh.size, 0);
  });

  it("replaces the layout without namespaces (the host's bridge, VXLAN device and ports) but keeps Docker's waiting container ends", () => {
    const host = new Map([
      ['vxnb42', link('vxnb42', { kind: 'bridge', peerElsewhere: false, mac: '02:78:c0:a8:01:01', ipv4: ['192.168.1.1/24'] })],
      ['vxnv42', link('vxnv42', { kind: 'vxlan', peerElsewhere: false, master: 'vxnb42' })],
      ['vxnhaaaaaaaaaa', link('vxnhaaaaaaaaaa', { master: 'vxnb42' })],
      ['vxncdddddddddd', link('vxncdddddddddd', {})],
    ]);
    const plan = planHost([net], host, new Map(), 'vxnet-', new Set(['vxncdddddddddd']));
    const lines = plan.steps.map(renderLinkStep);
    assert.deepEqual(lines.slice(0, 3), ['link del dev vxnb42', 'link del dev vxnhaaaaaaaaaa', 'link del dev vxnv42']);
    assert.ok(lines.includes('link add name vxnb42 address 02:78:c0:a8:01:01 mtu 1450 type veth peer name vxng42 mtu 1450 netns vxnet-42'));
    assert.ok(!lines.some((l) => l.includes('vxncdddddddddd')));
  });

  it("leaves a rejected network's gateway alone (kept names are neither changed nor pruned)", () => {
    const host = new Map([['vxnb7', link('vxnb7', { mac: '02:78:c0:a8:07:01' })]]);
    assert.deepEqual(planHost([], host, new Map(), 'vxnet-', new Set(['vxnb7'])).steps, []);
    assert.deepEqual(planHost([], host, new Map(), 'vxnet-', new Set()).steps.map(renderLinkStep), ['link del dev vxnb7']);
  });

  it('makes the pair again when its namespace end is gone', () => {
    const host = new Map([['vxnb42', link('vxnb42', { mac: '02:78:c0:a8:01:01', ipv4: ['192.168.1.1/24'] })]]);
    const plan = planHost([net], host, new Map([[42, space([])]]), 'vxnet-', new Set());
    assert.equal(renderLinkStep(plan.steps[0]!), 'link del dev vxnb42');
    assert.ok(plan.gatewayFresh.has('vxnb42'));
  });
});

describe("network namespaces: a network's own namespace", () => {
  const namespace = { name: 'vxnet-42', gatewayPort: 'vxng42', gatewayFresh: true };
  const state: DesiredState = { networks: [net], peers: [], floods: [], endpoints: [desiredEndpoint('aaaaaaaaaaaa', 42)], vxlanFilter: { ports: [4789], allowedSources: [] } };

  it('makes a bridge without gateway, a VXLAN device made here and moved, and enslaves the gateway port', () => {
    const plan = planReconcile(state, empty, { namespace });
    assert.deepEqual(plan.links.map(renderLinkStep), [
      'link add name vxnb42 mtu 1450 type bridge',
      'link add name vxnv42 mtu 1450 type vxlan id 42 dstport 4789 local 10.99.0.1 nolearning proxy',
      'link set dev vxnv42 netns vxnet-42',
      'link set dev vxnb42 up',
      'link set dev vxng42 master vxnb42 up',
      'link set dev vxnv42 master vxnb42 up',
      'link set dev vxnv42 type bridge_slave learning off',
    ]);
    assert.deepEqual(plan.endpoints.create.map((e) => e.id), ['aaaaaaaaaaaa']);
  });

  it('adopts what is there, the gateway port included, without touching its MAC or addresses', () => {
    const actual: ActualState = {
      ...empty,
      links: new Map([
        ['vxnb42', link('vxnb42', { kind: 'bridge', peerElsewhere: false, mac: '66:00:00:00:00:09' })],
        ['vxng42', link('vxng42', { master: 'vxnb42' })],
        ['vxnv42', link('vxnv42', { kind: 'vxlan', peerElsewhere: false, master: 'vxnb42', learning: false, vxlan: { vni: 42, port: 4789, local: '10.99.0.1', ttl: 0, learning: false, proxy: true } })],
        ['vxnhaaaaaaaaaa', link('vxnhaaaaaaaaaa', { master: 'vxnb42' })],
      ]),
    };
    const plan = planReconcile(state, actual, { namespace: { ...namespace, gatewayFresh: false } });
    assert.deepEqual(plan.links, []);
    assert.deepEqual(plan.endpoints.adopted, ['aaaaaaaaaaaa']);
  });

  it("makes a container's host end in the network's namespace, in the same message", () => {
    const ep = desiredEndpoint('aaaaaaaaaaaa', 42);
    assert.deepEqual(renderEndpointCreate(ep, 'vxnet-42'), [
      'link add name vxnhaaaaaaaaaa mtu 1450 netns vxnet-42 type veth peer name vxncaaaaaaaaaa mtu 1450 address 02:78:c0:a8:01:02 netns /run/netns/c-aaaaaaaaaaaa',
    ]);
  });
});

describe('network namespaces: one pass', () => {
  it('creates the namespace, writes the firewall, moves the VXLAN device, then works inside the namespace', async () => {
    const calls: { argv: string[]; input?: string }[] = [];
    const run: Runner = {
      run: async (argv: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
        calls.push({ argv: [...argv], ...(options.input !== undefined ? { input: options.input } : {}) });
        const line = argv.join(' ');
        if (line.startsWith('nft -j list')) return { argv, code: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
        if (line === 'ip -j netns list') return { argv, code: 0, stdout: '', stderr: '' };
        return { argv, code: 0, stdout: line.includes('-j') ? '[]' : '', stderr: '' };
      },
      readFile: async (path: string) => (path.endsWith('ip_forward') ? '1\n' : undefined),
      writeFile: async () => {},
      exists: async () => true,
    };
    const dataplane = new LinuxDataplane({ run, networkNamespaces: { prefix: 'vxnet-' }, tuneNeighbourTable: false, watchTables: false });
    const state: DesiredState = {
      networks: [net],
      peers: [{ vxlan: 'vxnv42', ip: '192.168.1.3', mac: '02:78:c0:a8:01:03', vtep: '10.99.0.2' }],
      floods: [{ vxlan: 'vxnv42', vtep: '10.99.0.2' }],
      endpoints: [desiredEndpoint('aaaaaaaaaaaa', 42)],
      vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.2'] },
    };
    const result = await dataplane.reconcile(state);
    assert.equal(result.error, undefined);
    assert.deepEqual([...result.readyEndpoints], ['aaaaaaaaaaaa']);
    const writes = calls.filter((c) => !/ -j /.test(` ${c.argv.join(' ')} `));
    const order = writes.map((c) => c.argv.join(' '));
    const at = (text: string) => order.findIndex((line) => line.startsWith(text));
    assert.ok(at('ip netns add vxnet-42') >= 0, order.join('\n'));
    assert.ok(at('ip netns add') < at('nft -f -'), 'the namespace exists before its table');
    assert.ok(at('nft -f -') < at('nsenter --net=/run/netns/vxnet-42 nft -f -'), 'the host firewall before the anti-spoofing');
    const host = writes.find((c) => c.argv.join(' ') === 'ip -force -batch -' && c.input?.includes('type vxlan'))!;
    assert.match(host.input!, /link add name vxnv42 .*\nlink set dev vxnv42 netns vxnet-42\n/);
    assert.match(host.input!, /link add name vxnb42 address 02:78:c0:a8:01:01 mtu 1450 type veth peer name vxng42 mtu 1450 netns vxnet-42/);
    const antispoof = writes.find((c) => c.argv.join(' ') === 'nsenter --net=/run/netns/vxnet-42 nft -f -')!;
    assert.match(antispoof.input!, /"vxnhaaaaaaaaaa" \. 02:78:c0:a8:01:02/);
    assert.ok(at('nsenter --net=/run/netns/vxnet-42 nft -f -') < order.findIndex((l, i) => l === 'ip -n vxnet-42 -force -batch -' && writes[i]!.input?.includes('master vxnb42 up') && writes[i]!.input?.includes('vxnh')));
    assert.ok(writes.some((c) => c.argv.join(' ') === 'bridge -n vxnet-42 -force -batch -' && c.input?.includes('fdb replace 02:78:c0:a8:01:03 dev vxnv42 dst 10.99.0.2 self permanent')));
    assert.ok(writes.some((c) => c.argv.join(' ') === 'ip -n vxnet-42 -force -batch -' && c.input?.includes('neigh replace 192.168.1.3 lladdr 02:78:c0:a8:01:03 dev vxnv42 nud permanent')));
    assert.ok(!writes.some((c) => c.input?.includes('table bridge vxnet') && c.argv[0] === 'nft'), 'the host keeps no bridge table');
  });

  for (const [failedLine, undone] of [[1, false], [3, true]] as const) {
    it(`reports a container-made pair failing at line ${failedLine}, and deletes its host end only if it was made`, async () => {
      const calls: string[] = [];
      const run: Runner = {
        run: async (argv: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
          const line = argv.join(' ');
          calls.push(options.input === undefined ? line : `${line} < ${options.input.trim().replaceAll('\n', '; ')}`);
          if (line.startsWith('nsenter --net=/run/netns/c-aaaaaaaaaaaa ip -batch -')) return { argv, code: 1, stdout: '', stderr: `RTNETLINK answers: File exists\nCommand failed -:${failedLine}\n` };
          if (line.includes('nft -j list')) return { argv, code: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
          return { argv, code: 0, stdout: line.includes('-j') ? '[]' : '', stderr: '' };
        },
        readFile: async (path: string) => (path.endsWith('ip_forward') ? '1\n' : undefined),
        writeFile: async () => {},
        exists: async () => true,
      };
      const dataplane = new LinuxDataplane({ run, networkNamespaces: { prefix: 'vxnet-' }, tuneNeighbourTable: false, watchTables: false });
      const result = await dataplane.reconcile({ networks: [net], peers: [], floods: [], endpoints: [desiredEndpoint('aaaaaaaaaaaa', 42)], vxlanFilter: { ports: [4789], allowedSources: [] } });
      assert.ok(!result.readyEndpoints.has('aaaaaaaaaaaa'));
      assert.match(result.endpointErrors.get('aaaaaaaaaaaa') ?? '', failedLine === 1 ? /^creating the veth pair failed at "link add name vxncaaaaaaaaaa .* netns vxnet-42": RTNETLINK answers: File exists$/ : /^configuring eth0 in \/run\/netns\/c-aaaaaaaaaaaa failed at "addr add /);
      assert.ok(!calls.some((c) => c.includes('dev vxnhaaaaaaaaaa master')), 'never attached');
      assert.equal(calls.includes('ip -n vxnet-42 -force -batch - < link del dev vxnhaaaaaaaaaa'), undone, calls.join('\n'));
      assert.ok(!calls.some((c) => c.startsWith('ip -force -batch - < link add name vxnh')), 'no pair made from the host');
    });
  }

  it('deletes the namespace of a network that is gone, its VXLAN device first', async () => {
    const calls: string[] = [];
    const run: Runner = {
      run: async (argv: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
        const line = argv.join(' ');
        calls.push(options.input === undefined ? line : `${line} < ${options.input.trim().replaceAll('\n', '; ')}`);
        if (line === 'ip -j netns list') return { argv, code: 0, stdout: '[{"name":"vxnet-42"}]', stderr: '' };
        if (line === 'ip -n vxnet-42 -j -d addr show') return { argv, code: 0, stdout: JSON.stringify([{ ifname: 'vxnv42', ifindex: 3, mtu: 1450, flags: ['UP'], linkinfo: { info_kind: 'vxlan', info_data: { id: 42, port: 4789 } } }]), stderr: '' };
        if (line.includes('nft -j list')) return { argv, code: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
        return { argv, code: 0, stdout: line.includes('-j') ? '[]' : '', stderr: '' };
      },
      readFile: async () => '1\n',
      writeFile: async () => {},
      exists: async () => true,
    };
    const dataplane = new LinuxDataplane({ run, networkNamespaces: { prefix: 'vxnet-' }, tuneNeighbourTable: false, watchTables: false });
    const result = await dataplane.reconcile({ networks: [], peers: [], floods: [], endpoints: [], vxlanFilter: { ports: [4789], allowedSources: [] } });
    assert.equal(result.error, undefined);
    const del = calls.indexOf('ip -n vxnet-42 -force -batch - < link del dev vxnv42');
    assert.ok(del >= 0 && del < calls.indexOf('ip netns del vxnet-42'), calls.join('\n'));
  });
});
