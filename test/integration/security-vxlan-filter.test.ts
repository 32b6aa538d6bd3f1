/**
 * The VXLAN peer allow-list against real kernels and real packets (docs/security.md).
 *
 * VXLAN carries no authentication: whoever can send a UDP datagram to a VTEP's port 4789 with a valid VNI
 * puts an Ethernet frame onto that network. These tests craft such frames with vxnet's own codecs (an ICMP
 * echo request to a container's MAC and IP, wrapped by `encapsulate`), and send the VXLAN part (header +
 * inner frame) as a plain UDP datagram from a namespace on the underlay; the sender's kernel adds the outer
 * IPv4/UDP headers. Whether the frame reached the container is read from a capture inside the container's
 * namespace, and the filter's drop counter says who stopped it.
 *
 * The second part runs the data plane in a namespace with a runner that refuses `nft`: it must attach
 * nothing new and say why (fail closed), keep what runs (fail-static), and catch up once nft works.
 *
 * Needs root. Every namespace and process is the test kit's and is removed afterwards, also on failure.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DesiredState } from '../../src/agent/dataplane.ts';
import { createRunner, HostToolError, type RunOptions, type RunResult, type Runner } from '../../src/agent/kernel/exec.ts';
import { LinuxDataplane } from '../../src/agent/kernel/linux-dataplane.ts';
import { parseLinks, parseVxlanFilterDrops } from '../../src/agent/kernel/read.ts';
import { createCluster, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { netnsPath } from '../../src/testkit/netns.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { capture, pings, until } from './support/probes.ts';
import { BLUE, clusterSuite, RED } from './support/setup.ts';
import { desiredEndpoint, desiredNetwork } from '../unit/support/fixtures.ts';
import { echoRequests, sendVxlan, vxlanEcho, type InnerEcho } from './support/vxlan-inject.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';

describe('VXLAN peer allow-list: crafted frames on the underlay', { skip, concurrency: false }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 3, outside: true, prefix: 'vxsec' },
    networks: [BLUE, RED],
    attach: [['c1', 'host1', 'blue'], ['c2', 'host1', 'red'], ['c3', 'host2', 'blue']],
  });
  let nextId = 0x5a00;

  const drops = async (host: SimHost): Promise<number> => {
    const listed = await suite.cluster.exec(host.netns, ['nft', '-j', 'list', 'chain', 'ip', 'vxnet', 'vxlan_input']);
    assert.equal(listed.code, 0, listed.stderr);
    return parseVxlanFilterDrops(listed.stdout) ?? -1;
  };
  // the anti-spoofing table is in the network's namespace (the agent's --netns-prefix HOST-n): red's, VNI 2000
  const antispoofDrops = async (host: SimHost): Promise<number> => {
    const listed = await suite.cluster.exec(`${host.netns}-n2000`, ['nft', '-j', 'list', 'chain', 'bridge', 'vxnet', 'antispoof']);
    assert.equal(listed.code, 0, listed.stderr);
    return parseVxlanFilterDrops(listed.stdout) ?? -1;
  };
  const members = async (host: SimHost): Promise<string[]> => {
    const listed = await suite.cluster.exec(host.netns, ['nft', '-j', 'list', 'set', 'ip', 'vxnet', 'vxlan_peers']);
    assert.equal(listed.code, 0, listed.stderr);
    const set = (JSON.parse(listed.stdout) as { nftables: { set?: { elem?: string[] } }[] }).nftables.find((i) => i.set)?.set;
    return [...(set?.elem ?? [])].sort();
  };
  /** Sends `count` copies of a crafted frame from namespace `from` (bound to `source`) while capturing in `watch`. */
  async function inject(
    from: string,
    source: string,
    inner: Omit<InnerEcho, 'id'>,
    watch: string[],
    options: { count?: number; destination?: string } = {},
  ): Promise<{ id: number; seen: boolean[] }> {
    const id = nextId++;
    const destination = options.destination ?? suite.host(1).address;
    const payload = vxlanEcho({ ...inner, id });
    const captures: Uint8Array[][] = watch.map(() => []);
    const send = () => sendVxlan(suite.cluster, from, source, destination, payload, options.count ?? 5);
    // nested captures: every watched namespace listens while the frames are sent
    const run = async (i: number): Promise<void> => {
      if (i === watch.length) return send();
      captures[i] = await capture(suite.cluster, watch[i]!, 'eth0', ['icmp'], () => run(i + 1));
    };
    await run(0);
    return { id, seen: captures.map((frames) => echoRequests(frames).some((e) => e.id === id)) };
  }
  /** a frame for c1 (blue, host1) that looks like it comes from c3 (blue, host2) */
  const toC1 = (): Omit<InnerEcho, 'id'> => ({
    vni: 1000, srcMac: suite.c.c3!.endpoint.mac, dstMac: suite.c.c1!.endpoint.mac, srcIp: suite.c.c3!.endpoint.ip, dstIp: suite.c.c1!.endpoint.ip,
  });

  it('installs the filter on every node: the other members are allowed, the node itself and strangers are not', async () => {
    assert.deepEqual(await members(suite.host(1)), [suite.host(2).address, suite.host(3).address].sort());
    assert.deepEqual(await members(suite.host(2)), [suite.host(1).address, suite.host(3).address].sort());
    // host3 has no network at all, and still guards the port
    assert.deepEqual(await members(suite.host(3)), [suite.host(1).address, suite.host(2).address].sort());
    for (const host of [suite.host(1), suite.host(2), suite.host(3)]) {
      const rules = await suite.cluster.exec(host.netns, ['nft', 'list', 'chain', 'ip', 'vxnet', 'vxlan_input']);
      assert.match(rules.stdout, /type filter hook input priority raw - 10; policy accept;/);
      const ports = await suite.cluster.exec(host.netns, ['nft', 'list', 'set', 'ip', 'vxnet', 'vxlan_ports']);
      assert.match(ports.stdout, /elements = \{ 4789 \}/);
    }
    // and the overlay works through it
    assert.ok(await pings(suite.cluster, suite.c.c1!.netns, suite.c.c3!.endpoint.ip), 'c1 -> c3 across the filter');
  });

  it('drops a crafted frame from a non-member on the underlay: it never reaches the container, and the drop is counted', async () => {
    const before = await drops(suite.host(1));
    const { seen } = await inject(suite.cluster.outside!.netns, suite.cluster.outside!.address, toC1(), [suite.c.c1!.netns]);
    assert.deepEqual(seen, [false], 'the frame from the outside namespace reached c1');
    assert.ok((await drops(suite.host(1))) >= before + 5, `drop counter went from ${before} to ${await drops(suite.host(1))}`);
  });

  it('delivers the same frame from a member (host2, from its underlay address), and does not count it', async () => {
    const before = await drops(suite.host(1));
    const { seen } = await inject(suite.host(2).netns, suite.host(2).address, toC1(), [suite.c.c1!.netns]);
    assert.deepEqual(seen, [true], 'the frame from host2 should reach c1: the crafted frame is valid');
    assert.equal(await drops(suite.host(1)), before);
  });

  it('owes that to the filter: without table ip vxnet the stranger’s frame gets in, and a restarted agent puts it back', async () => {
    assert.equal((await suite.cluster.exec(suite.host(1).netns, ['nft', 'delete', 'table', 'ip', 'vxnet'])).code, 0);
    const open = await inject(suite.cluster.outside!.netns, suite.cluster.outside!.address, toC1(), [suite.c.c1!.netns]);
    assert.deepEqual(open.seen, [true], 'without the filter the crafted frame is decapsulated and delivered');
    await suite.cluster.restartAgent(suite.host(1));
    await until('the restarted agent to install the filter', async () =>
      (await suite.cluster.exec(suite.host(1).netns, ['nft', 'list', 'set', 'ip', 'vxnet', 'vxlan_peers'])).code === 0 || undefined, 10_000);
    assert.deepEqual(await members(suite.host(1)), [suite.host(2).address, suite.host(3).address].sort());
    const closed = await inject(suite.cluster.outside!.netns, suite.cluster.outside!.address, toC1(), [suite.c.c1!.netns]);
    assert.deepEqual(closed.seen, [false]);
  });

  it('never lets a frame with another network’s VNI into blue, neither bridged nor routed, even from a member', async () => {
    // VNI of red, addressed to blue's c1 by MAC and IP: it lands on red's bridge (flooded to red's c2, which
    // proves it was decapsulated), never on blue's
    const bridged = await inject(suite.host(2).netns, suite.host(2).address, { ...toC1(), vni: 2000 }, [suite.c.c1!.netns, suite.c.c2!.netns]);
    assert.deepEqual(bridged.seen, [false, true], 'seen in [c1 (blue), c2 (red)]');
    // VNI of red, addressed to red's gateway MAC: host1 routes it towards blue, and the isolation rules drop it
    const gatewayMac = '02:78:c0:a8:02:01';
    const routed = await inject(suite.host(2).netns, suite.host(2).address, { ...toC1(), vni: 2000, dstMac: gatewayMac, srcIp: '192.168.2.77' }, [suite.c.c1!.netns]);
    assert.deepEqual(routed.seen, [false], 'a red frame routed by host1 reached blue');
  });

  it('drops frames spoofing a member’s address from a container on the node, and from the node itself', async () => {
    // c2 (red, on host1) claims host2's underlay address and sends blue frames to host1's VTEP through its gateway
    const claim = await suite.cluster.exec(suite.c.c2!.netns, ['ip', 'addr', 'add', `${suite.host(2).address}/32`, 'dev', 'lo']);
    assert.equal(claim.code, 0, claim.stderr);
    try {
      // since vxnet issue 9 the bridge port drops them first (a source that is not c2's: antispoof.ts), or
      // already c2's ARP request for its gateway, which claims the same address
      const before = await antispoofDrops(suite.host(1));
      const { seen } = await inject(suite.c.c2!.netns, suite.host(2).address, toC1(), [suite.c.c1!.netns]);
      assert.deepEqual(seen, [false], 'a container spoofing host2 injected a frame into blue');
      assert.ok((await antispoofDrops(suite.host(1))) > before);
    } finally {
      await suite.cluster.exec(suite.c.c2!.netns, ['ip', 'addr', 'del', `${suite.host(2).address}/32`, 'dev', 'lo']);
    }
    // a process on host1 itself (source: host1's own address) is no member of the allow-list either
    const before = await drops(suite.host(1));
    const { seen } = await inject(suite.host(1).netns, suite.host(1).address, toC1(), [suite.c.c1!.netns]);
    assert.deepEqual(seen, [false]);
    assert.ok((await drops(suite.host(1))) >= before + 5);
  });

  it('follows a node leaving and joining again', async () => {
    // host3 leaves the cluster: its address leaves every allow-list and its frames are dropped
    await suite.cluster.stopAgent(suite.host(3));
    await suite.admin.removeNode('host3');
    await until('host3 to leave the allow-lists', async () =>
      (await members(suite.host(1))).join() === suite.host(2).address && (await members(suite.host(2))).join() === suite.host(1).address || undefined,
    );
    const left = await inject(suite.host(3).netns, suite.host(3).address, toC1(), [suite.c.c1!.netns]);
    assert.deepEqual(left.seen, [false], 'a node that left can still inject');
    // it comes back (its agent registers again): accepted again
    await suite.cluster.startAgent(suite.host(3));
    await until('host3 to be a member again', async () => (await members(suite.host(1))).includes(suite.host(3).address) || undefined, 10_000);
    const back = await inject(suite.host(3).netns, suite.host(3).address, toC1(), [suite.c.c1!.netns]);
    assert.deepEqual(back.seen, [true]);
  });

  it('keeps the filter when the last network is gone', async () => {
    for (const label of ['c1', 'c2', 'c3']) await suite.admin.deleteEndpoint(suite.c[label]!.endpoint.id, { waitSeconds: 20 });
    for (const name of ['blue', 'red']) await suite.admin.removeNetwork(name);
    for (const host of [suite.host(1), suite.host(2)]) {
      await until(`${host.name} to drop its network chains`, async () => {
        const table = await suite.cluster.exec(host.netns, ['nft', 'list', 'table', 'ip', 'vxnet']);
        return (table.code === 0 && !/chain forward/.test(table.stdout)) || undefined;
      });
      const table = await suite.cluster.exec(host.netns, ['nft', 'list', 'table', 'ip', 'vxnet']);
      assert.match(table.stdout, /chain vxlan_input/);
      assert.doesNotMatch(table.stdout, /hook postrouting|chain forward/);
    }
    assert.deepEqual(await members(suite.host(1)), [suite.host(2).address, suite.host(3).address].sort());
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('the data plane fails closed when nft does not work (real namespaces)', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let host: SimHost;
  const dataplanes: LinuxDataplane[] = [];

  before(async () => {
    cluster = await createCluster({ hosts: 1, outside: false, startDaemons: false, prefix: 'vxsecfc' });
    host = cluster.host(1);
  });

  after(async () => {
    await Promise.all(dataplanes.map((d) => d.close()));
    await cluster?.destroy();
  });

  /** The real tools inside the host namespace, except that `nft` fails as if it were not installed while `broken` is set. */
  function runner(): Runner & { broken: boolean } {
    const real = createRunner({ netns: netnsPath(host.netns) });
    const wrapped = {
      ...real,
      broken: false,
      async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
        if (!wrapped.broken || argv[0] !== 'nft') return real.run(argv, options);
        // what the real runner reports for a program that is not installed
        const stderr = 'nft: command not found';
        if (!options.allowFailure) throw new HostToolError(argv, 127, stderr);
        return { argv, code: 127, stdout: '', stderr };
      },
    };
    return wrapped;
  }

  const network = desiredNetwork(1000, { name: 'blue', localAddress: '10.99.0.11' });
  const endpoint = (id: string, netns: string, ip: string) => desiredEndpoint(id, 1000, ip, { netns: netnsPath(netns) });
  const ownedLinks = async () =>
    parseLinks((await cluster.exec(host.netns, ['ip', '-j', '-d', 'addr', 'show'])).stdout).map((l) => l.name).filter((n) => n.startsWith('vxn')).sort();
  const interfaces = async (netns: string) => parseLinks((await cluster.exec(netns, ['ip', '-j', 'addr', 'show'])).stdout).map((l) => l.name).sort();

  it('attaches nothing new without the filter, says why, keeps what runs, and catches up once nft works', async () => {
    const c1 = await cluster.addContainer('c1');
    const c2 = await cluster.addContainer('c2');
    const run = runner();
    const dataplane = new LinuxDataplane({ run, tuneNeighbourTable: false });
    dataplanes.push(dataplane);
    const one: DesiredState = {
      networks: [network], peers: [], floods: [], endpoints: [endpoint('aaaaaaaaaaaa', c1, '192.168.1.2')],
      vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.12'] },
    };

    // 1. nft missing from the start: no VXLAN device, no veth, the endpoint is told why
    run.broken = true;
    const refused = await dataplane.reconcile(one);
    assert.match(
      refused.endpointErrors.get('aaaaaaaaaaaa') ?? '',
      /^VXLAN peer filter could not be installed: nft -f - failed \(exit 127\): nft: command not found; no new endpoint is attached until it is$/,
    );
    assert.deepEqual(refused.readyEndpoints, new Set());
    assert.match(refused.error ?? '', /applying the nftables table ip vxnet failed/);
    const links = await ownedLinks();
    assert.ok(!links.includes('vxnv1000') && !links.some((n) => n.startsWith('vxnh')), `no VXLAN socket or veth: ${links}`);
    assert.deepEqual(await interfaces(c1), ['lo']);
    assert.notEqual((await cluster.exec(host.netns, ['nft', 'list', 'table', 'ip', 'vxnet'])).code, 0);
    // retrying changes nothing while nft is still missing
    assert.equal((await dataplane.reconcile(one)).endpointErrors.size, 1);

    // 2. nft works: the filter goes in first, then everything else
    run.broken = false;
    const fixed = await dataplane.reconcile(one);
    assert.equal(fixed.error, undefined);
    assert.deepEqual(fixed.readyEndpoints, new Set(['aaaaaaaaaaaa']));
    assert.ok((await ownedLinks()).includes('vxnv1000'));
    const set = await cluster.exec(host.netns, ['nft', 'list', 'set', 'ip', 'vxnet', 'vxlan_peers']);
    assert.match(set.stdout, /elements = \{ 10\.99\.0\.12 \}/);
    assert.ok(await pings(cluster, c1, '192.168.1.1'), 'c1 reaches its gateway');

    // 3. nft breaks again while a member joins and a second container arrives: c1 keeps working, c2 waits
    run.broken = true;
    const two: DesiredState = {
      ...one,
      endpoints: [...one.endpoints, endpoint('bbbbbbbbbbbb', c2, '192.168.1.3')],
      vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.12', '10.99.0.13'] },
    };
    const partial = await dataplane.reconcile(two);
    assert.deepEqual(partial.readyEndpoints, new Set(['aaaaaaaaaaaa']));
    assert.match(partial.endpointErrors.get('bbbbbbbbbbbb') ?? '', /^VXLAN peer filter could not be installed: /);
    assert.deepEqual(await interfaces(c2), ['lo']);
    assert.ok(await pings(cluster, c1, '192.168.1.1'), 'c1 still reaches its gateway (fail-static)');
    // the table in the kernel is the last one that could be installed: old members, nothing opened
    assert.match((await cluster.exec(host.netns, ['nft', 'list', 'set', 'ip', 'vxnet', 'vxlan_peers'])).stdout, /elements = \{ 10\.99\.0\.12 \}/);

    // 4. and catches up
    run.broken = false;
    const done = await dataplane.reconcile(two);
    assert.equal(done.error, undefined);
    assert.deepEqual(done.readyEndpoints, new Set(['aaaaaaaaaaaa', 'bbbbbbbbbbbb']));
    assert.match((await cluster.exec(host.netns, ['nft', 'list', 'set', 'ip', 'vxnet', 'vxlan_peers'])).stdout, /elements = \{ 10\.99\.0\.12, 10\.99\.0\.13 \}/);
    assert.ok(await pings(cluster, c2, '192.168.1.2'), 'c2 is attached and reaches c1');
  });
});
