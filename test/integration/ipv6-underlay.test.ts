/**
 * vxnet over an IPv6 underlay (vxnet issue 15; docs/architecture.md, "IPv6 underlay"), on real kernels: three
 * simulated hosts whose underlay link holds only an IPv6 address (fd99::N, topology.ts `underlay: 'ipv6'`),
 * agents advertising it, the control plane on IPv4. IPv4 networks across them (ping, TCP), what the
 * underlay carries (VXLAN in UDP in IPv6, decoded with vxnet's codecs), the 70-byte MTU accounting, an
 * agent restart that loses no packet and changes nothing, the VXLAN injection tests of
 * security-vxlan-filter.test.ts repeated over IPv6 (table ip6 vxnet_underlay), IPv6-only and dual-stack
 * networks inside (IPv6 in IPv6: ping6, TCP, no NDP crossing, the DF probe), and a node of the other family
 * refused.
 *
 * A fourth host runs no agent: the stranger that injects frames, and later the node of the wrong family.
 * Needs root. Every namespace and process is the test kit's and is removed afterwards, also on failure.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decapsulateIpv6 } from '../../src/capture/describe.ts';
import { parseVxlanFilterDrops } from '../../src/agent/kernel/read.ts';
import { UNDERLAY6_TABLE } from '../../src/agent/kernel/underlay6.ts';
import { tunnelDeviceName } from '../../src/agent/wireguard/render.ts';
import { ManagerClient } from '../../src/client/client.ts';
import { decodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/packet/ethernet.ts';
import { decodeIpv4, IPPROTO_ICMP } from '../../src/packet/ipv4.ts';
import { decodeIpv6, IPPROTO_ICMPV6, IPPROTO_IPV6_FRAGMENT } from '../../src/packet/ipv6.ts';
import { decodeIcmpv6, ICMPV6_ECHO_REQUEST } from '../../src/packet/icmpv6.ts';
import { endpointAddresses } from '../../src/core/model.ts';
import { VXLAN_PORT } from '../../src/packet/vxlan.ts';
import { createCluster, DEFAULT_CLI_PATH, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { findCommand, isRoot } from '../../src/testkit/preflight.ts';
import { decodeUdp } from '../../src/packet/udp.ts';
import { capture, noPacketLostDuring, pings, TCP6_ECHO_SERVER, TCP_ECHO_CLIENT, TCP_ECHO_SERVER, until } from './support/probes.ts';
import { attachWithApi, type Attached } from './support/setup.ts';
import { echoRequests, sendVxlan, vxlanEcho, type InnerEcho } from './support/vxlan-inject.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
const wireguardMissing = ['wireguard-go', 'wg'].some((tool) => !findCommand(tool)) ? 'needs wireguard-go and wg' : false;

describe('vxnet over an IPv6 underlay', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let host1: SimHost;
  let host2: SimHost;
  let host3: SimHost;
  let stranger: SimHost;
  const c: Record<string, Attached> = {};
  let nextId = 0x6a00;

  before(async () => {
    cluster = await createCluster({ hosts: 4, outside: true, prefix: 'vxsix', underlay: 'ipv6', startDaemons: false });
    [host1, host2, host3, stranger] = [cluster.host(1), cluster.host(2), cluster.host(3), cluster.host(4)];
    await cluster.startManager();
    await Promise.all([host1, host2, host3].map((host) => cluster.startAgent(host)));
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    await client.createNetwork({ name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24' }] });
    await client.createNetwork({ name: 'red', vni: 2000, subnets: [{ cidr: '192.168.2.0/24' }] });
    Object.assign(c, await attachWithApi(cluster, client, [['c1', 'host1', 'blue'], ['c2', 'host1', 'red'], ['c3', 'host2', 'blue'], ['c4', 'host3', 'blue']]));
  });

  after(async () => {
    client?.close();
    const devices = cluster ? cluster.hosts.map((host) => tunnelDeviceName(cluster.agentStateDir(host))) : [];
    await cluster?.destroy();
    // wireguard-go killed with the namespaces (-9) leaves its control socket, which is machine-wide
    for (const device of devices) rmSync(`/var/run/wireguard/${device}.sock`, { force: true });
  });

  const nft = async (host: SimHost, args: string[]) => {
    const listed = await cluster.exec(host.netns, ['nft', '-j', 'list', ...args]);
    assert.equal(listed.code, 0, listed.stderr);
    return listed.stdout;
  };
  const drops6 = async (host: SimHost): Promise<number> => parseVxlanFilterDrops(await nft(host, ['chain', 'ip6', UNDERLAY6_TABLE, 'vxlan_input'])) ?? -1;
  const members6 = async (host: SimHost): Promise<string[]> => {
    const set = (JSON.parse(await nft(host, ['set', 'ip6', UNDERLAY6_TABLE, 'vxlan_peers'])) as { nftables: { set?: { elem?: string[] } }[] }).nftables.find((i) => i.set)?.set;
    return [...(set?.elem ?? [])].sort();
  };
  const tableHandle = async (host: SimHost): Promise<number | undefined> =>
    (JSON.parse(await nft(host, ['table', 'ip6', UNDERLAY6_TABLE])) as { nftables: { table?: { handle: number } }[] }).nftables.find((i) => i.table)?.table?.handle;
  const vxlanDevice = async (host: SimHost, name: string) => {
    // in the network's namespace (the agent's --netns-prefix HOST-n; vxnv<VNI>)
    const shown = await cluster.exec(`${host.netns}-n${name.slice('vxnv'.length)}`, ['ip', '-j', '-d', 'link', 'show', name]);
    assert.equal(shown.code, 0, shown.stderr);
    return (JSON.parse(shown.stdout) as { ifindex: number; linkinfo: { info_data: { local6?: string } } }[])[0]!;
  };

  /** Sends `count` copies of a crafted frame from `from` (bound to `source`) to host1 while capturing in `watch`. */
  async function inject(from: string, source: string, inner: Omit<InnerEcho, 'id'>, watch: string[], count = 5): Promise<boolean[]> {
    const id = nextId++;
    const payload = vxlanEcho({ ...inner, id });
    const send = () => sendVxlan(cluster, from, source, host1.address, payload, count);
    const captures: Uint8Array[][] = watch.map(() => []);
    const run = async (i: number): Promise<void> => {
      if (i === watch.length) return send();
      captures[i] = await capture(cluster, watch[i]!, 'eth0', ['icmp'], () => run(i + 1));
    };
    await run(0);
    return captures.map((frames) => echoRequests(frames).some((e) => e.id === id));
  }
  /** a frame for c1 (blue, host1) that looks like it comes from c3 (blue, host2) */
  const toC1 = (): Omit<InnerEcho, 'id'> => ({
    vni: 1000, srcMac: c.c3!.endpoint.mac, dstMac: c.c1!.endpoint.mac, srcIp: c.c3!.endpoint.ip, dstIp: c.c1!.endpoint.ip,
  });

  it('registers every node with its IPv6 underlay address and builds VXLAN devices on it', async () => {
    const nodes = await client.listNodes();
    assert.deepEqual(nodes.map((n) => [n.name, n.address]), [['host1', 'fd99::11'], ['host2', 'fd99::12'], ['host3', 'fd99::13']]);
    assert.equal((await vxlanDevice(host1, 'vxnv1000')).linkinfo.info_data.local6, 'fd99::11');
    const fdb = await cluster.exec(`${host1.netns}-n1000`, ['bridge', '-j', 'fdb', 'show', 'dev', 'vxnv1000']);
    const dsts = (JSON.parse(fdb.stdout) as { dst?: string }[]).flatMap((e) => (e.dst ? [e.dst] : []));
    assert.ok(dsts.includes('fd99::12') && dsts.includes('fd99::13'), `FDB destinations: ${dsts.join(', ')}`);
  });

  it('carries IPv4 networks across hosts: ping and TCP', async () => {
    assert.ok(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip), 'c1 (host1) -> c3 (host2)');
    assert.ok(await pings(cluster, c.c3!.netns, c.c4!.endpoint.ip), 'c3 (host2) -> c4 (host3)');
    const server = cluster.spawn(c.c4!.netns, [process.execPath, '-e', TCP_ECHO_SERVER, '7001'], { label: 'tcp echo' });
    await server.waitFor(/listening/, 5000);
    const echoed = await cluster.exec(c.c1!.netns, [process.execPath, '-e', TCP_ECHO_CLIENT, c.c4!.endpoint.ip, '7001', 'over an IPv6 underlay']);
    assert.equal(echoed.code, 0, echoed.stderr);
    assert.equal(echoed.stdout.trim(), 'over an IPv6 underlay');
    await server.stop('SIGTERM');
    // isolation still holds: blue does not reach red
    assert.equal(await pings(cluster, c.c1!.netns, c.c2!.endpoint.ip), false, 'blue reached red');
  });

  it('vxnet trace judges the path over the IPv6 underlay ok: allow-list, MTU with 70 bytes, entries', async () => {
    const result = await cluster.cli(['trace', 'blue', '--from', c.c1!.endpoint.id, '--to', c.c3!.endpoint.id, '--json'], { timeoutMs: 30_000 });
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    const hops = (JSON.parse(result.stdout) as { trace: { hops: { hop: string; status: string }[] } }).trace.hops;
    // the underlay hop is never read from a kernel ('unknown' without --probe, which the other tests here stand for)
    assert.deepEqual(hops.filter((h) => h.status !== 'ok' && h.hop !== 'underlay'), []);
    for (const hop of ['allow-list', 'mtu', 'fdb', 'vxlan']) assert.ok(hops.some((h) => h.hop === hop && h.status === 'ok'), `hop ${hop} is judged ok`);
  });

  it('puts VXLAN in UDP in IPv6 on the underlay, and nothing in IPv4', async () => {
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      assert.ok(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip));
    });
    let vxlan = 0;
    for (const frame of frames) {
      const eth = decodeEthernet(frame);
      assert.notEqual(eth.ethertype, ETHERTYPE_IPV4, 'an IPv4 packet on the IPv6-only underlay');
      assert.notEqual(eth.ethertype, ETHERTYPE_ARP, 'ARP on the IPv6-only underlay');
      if (eth.ethertype !== ETHERTYPE_IPV6) continue;
      const outer = decapsulateIpv6(eth.payload, [VXLAN_PORT]);
      if (!outer) continue;
      vxlan++;
      assert.equal(outer.vni, 1000);
      assert.deepEqual([outer.src, outer.dst].sort(), [host1.address, host2.address]);
      const inner = decodeEthernet(outer.inner);
      assert.equal(inner.ethertype, ETHERTYPE_IPV4, 'the overlay frame is IPv4 (its ARP is answered locally)');
      const ip = decodeIpv4(inner.payload);
      assert.equal(ip.protocol, IPPROTO_ICMP);
      assert.deepEqual([ip.src, ip.dst].sort(), [c.c1!.endpoint.ip, c.c3!.endpoint.ip].sort());
    }
    assert.ok(vxlan >= 4, `VXLAN frames on host1's underlay: ${vxlan}`);
  });

  it('takes 70 bytes of overhead: MTU 1430 inside, a 1430-byte don\'t-fragment packet fills the 1500-byte underlay unfragmented', async () => {
    const link = await cluster.exec(c.c1!.netns, ['ip', '-j', 'link', 'show', 'eth0']);
    assert.equal((JSON.parse(link.stdout) as { mtu: number }[])[0]!.mtu, 1430);
    const frames = await capture(cluster, host2.netns, 'eth0', ['ip6'], async () => {
      assert.ok(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip, ['-M', 'do', '-s', '1402']), '1402 + 28 = 1430 passes');
    });
    const packets = frames.map((f) => decodeEthernet(f).payload).filter((_, i) => decodeEthernet(frames[i]!).ethertype === ETHERTYPE_IPV6);
    assert.equal(packets.filter((p) => decodeIpv6(p).nextHeader === IPPROTO_IPV6_FRAGMENT).length, 0, 'outer packets were fragmented');
    const outerSizes = packets.filter((p) => decapsulateIpv6(p, [VXLAN_PORT]) !== undefined).map((p) => p.length);
    assert.ok(outerSizes.length >= 4 && outerSizes.every((size) => size === 1500), `outer IPv6 packet sizes: ${outerSizes.join(', ')}`);
    assert.equal(await pings(cluster, c.c1!.netns, c.c3!.endpoint.ip, ['-M', 'do', '-s', '1403']), false, 'one byte more does not fit with DF set');
  });

  it('restarts an agent without losing a packet and without changing anything', async () => {
    const [device, handle] = [await vxlanDevice(host1, 'vxnv1000'), await tableHandle(host1)];
    await noPacketLostDuring(cluster, c.c1!.netns, c.c3!.endpoint.ip, () => cluster.restartAgent(host1));
    await until('host1 to have reconciled after its restart', async () => (await client.listNodes()).find((n) => n.name === 'host1')?.state === 'up' || undefined);
    assert.equal((await vxlanDevice(host1, 'vxnv1000')).ifindex, device.ifindex, 'the VXLAN device was recreated');
    assert.equal(await tableHandle(host1), handle, 'table ip6 vxnet_underlay was replaced');
  });

  it('installs the IPv6 allow-list: the other members are allowed, the node itself and strangers are not', async () => {
    assert.deepEqual(await members6(host1), [host2.address, host3.address].sort());
    assert.deepEqual(await members6(host3), [host1.address, host2.address].sort());
    // VXLAN over IPv4 is refused from everyone: table ip vxnet keeps the filter, with no member
    const v4 = (JSON.parse(await nft(host1, ['set', 'ip', 'vxnet', 'vxlan_peers'])) as { nftables: { set?: { elem?: string[] } }[] }).nftables.find((i) => i.set)?.set;
    assert.equal(v4?.elem, undefined);
  });

  it('drops a crafted frame from a non-member on the IPv6 underlay, and counts it', async () => {
    const before = await drops6(host1);
    assert.deepEqual(await inject(stranger.netns, stranger.address, toC1(), [c.c1!.netns]), [false], 'the stranger\'s frame reached c1');
    assert.ok((await drops6(host1)) >= before + 5, `drop counter went from ${before} to ${await drops6(host1)}`);
    // the same frame from a member is delivered: the crafted frame is valid
    const member = await drops6(host1);
    assert.deepEqual(await inject(host2.netns, host2.address, toC1(), [c.c1!.netns]), [true], 'host2\'s frame did not reach c1');
    assert.equal(await drops6(host1), member);
  });

  it('owes that to table ip6 vxnet_underlay: without it the stranger gets in, and the agent puts it back', async () => {
    // the agent stopped (its kernel state stays, fail-static), so that nothing repairs the table meanwhile
    await cluster.stopAgent(host1);
    assert.equal((await cluster.exec(host1.netns, ['nft', 'delete', 'table', 'ip6', UNDERLAY6_TABLE])).code, 0);
    assert.deepEqual(await inject(stranger.netns, stranger.address, toC1(), [c.c1!.netns]), [true], 'without the table the crafted frame is delivered');
    await cluster.startAgent(host1);
    await until('the agent to put the table back', async () => (await cluster.exec(host1.netns, ['nft', 'list', 'table', 'ip6', UNDERLAY6_TABLE])).code === 0 || undefined, 10_000);
    assert.deepEqual(await members6(host1), [host2.address, host3.address].sort());
    assert.deepEqual(await inject(stranger.netns, stranger.address, toC1(), [c.c1!.netns]), [false]);
    // and a foreign deletion while it runs is repaired within moments (nft monitor, table-cache.ts)
    assert.equal((await cluster.exec(host1.netns, ['nft', 'delete', 'table', 'ip6', UNDERLAY6_TABLE])).code, 0);
    await until('the running agent to repair the table', async () => (await cluster.exec(host1.netns, ['nft', 'list', 'table', 'ip6', UNDERLAY6_TABLE])).code === 0 || undefined, 10_000);
  });

  it('never lets a member\'s frame with another network\'s VNI into blue', async () => {
    // red's VNI, addressed to blue's c1: it lands on red's bridge (flooded to c2, proving it was decapsulated)
    assert.deepEqual(await inject(host2.netns, host2.address, { ...toC1(), vni: 2000 }, [c.c1!.netns, c.c2!.netns]), [false, true], 'seen in [c1 (blue), c2 (red)]');
    // red's VNI to red's gateway MAC: host1 would route it into blue, and the isolation rules drop it
    const routed = await inject(host2.netns, host2.address, { ...toC1(), vni: 2000, dstMac: '02:78:c0:a8:02:01', srcIp: '192.168.2.77' }, [c.c1!.netns]);
    assert.deepEqual(routed, [false], 'a red frame routed by host1 reached blue');
  });

  it('carries an encrypted network inside WireGuard over IPv6: MTU 1500 - 80 - 50, nothing readable on the underlay', { skip: wireguardMissing }, async () => {
    const secret = await client.createNetwork({ name: 'secret', vni: 3100, encrypted: true, subnets: [{ cidr: '192.168.31.0/24' }] });
    assert.equal(secret.mtu, 1370);
    Object.assign(c, await attachWithApi(cluster, client, [['s1', 'host1', 'secret'], ['s2', 'host2', 'secret']]));
    const pattern = '76786e65742d73697821212121212121';
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      assert.ok(await pings(cluster, c.s1!.netns, c.s2!.endpoint.ip, ['-p', pattern]), 's1 -> s2 through WireGuard');
      assert.ok(await pings(cluster, c.s1!.netns, c.s2!.endpoint.ip, ['-M', 'do', '-s', '1342']), '1342 + 28 = 1370 passes with DF');
    });
    let wireguard = 0;
    for (const frame of frames) {
      assert.ok(!Buffer.from(frame).includes(Buffer.from(pattern, 'hex')), 'the ping payload was readable on the underlay');
      const eth = decodeEthernet(frame);
      if (eth.ethertype !== ETHERTYPE_IPV6) continue;
      assert.equal(decapsulateIpv6(eth.payload, [VXLAN_PORT]), undefined, 'VXLAN in clear on the underlay');
      const ip = decodeIpv6(eth.payload);
      if (ip.nextHeader === 17 && decodeUdp(ip.payload).dstPort === 51820) wireguard++;
    }
    assert.ok(wireguard >= 4, `WireGuard datagrams over IPv6: ${wireguard}`);
  });

  it('carries IPv6-only and dual-stack networks over the IPv6 underlay: ping6 and TCP, no NDP crossing, 1430 with DF', async () => {
    // The containers' namespaces have IPv6 switched off (the kit's default): the agent turns it on for the
    // interfaces it adds (endpoint-setup.ts ipv6Sysctls), as it must for a namespace made that way.
    await client.createNetwork({ name: 'six', vni: 3200, subnets: [{ cidr: 'fd00:62::/64' }] });
    await client.createNetwork({ name: 'dual', vni: 3300, subnets: [{ cidr: '192.168.33.0/24' }, { cidr: 'fd00:63::/64' }] });
    Object.assign(c, await attachWithApi(cluster, client, [['x1', 'host1', 'six'], ['x3', 'host3', 'six'], ['d1', 'host1', 'dual'], ['d2', 'host2', 'dual']]));
    const v6 = (label: string) => endpointAddresses(c[label]!.endpoint).find((a) => a.ip.includes(':'))!.ip;
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      assert.ok(await pings(cluster, c.x1!.netns, v6('x3')), 'six: x1 -> x3 over IPv6');
      assert.ok(await pings(cluster, c.d1!.netns, v6('d2')), 'dual: d1 -> d2 over IPv6');
      assert.ok(await pings(cluster, c.d1!.netns, c.d2!.endpoint.ip), 'dual: d1 -> d2 over IPv4');
      // 1430 inside: 1382 bytes of ICMPv6 data + 8 + 40
      assert.ok(await pings(cluster, c.x1!.netns, v6('x3'), ['-M', 'do', '-s', '1382']), '1430-byte IPv6 packet with DF');
      assert.equal(await pings(cluster, c.x1!.netns, v6('x3'), ['-M', 'do', '-s', '1383']), false, 'one byte more does not pass');
    });
    assert.equal(await pings(cluster, c.x1!.netns, v6('d2')), false, 'six must not reach dual');
    let echoes = 0;
    for (const frame of frames) {
      const eth = decodeEthernet(frame);
      if (eth.ethertype !== ETHERTYPE_IPV6) continue;
      const vxlan = decapsulateIpv6(eth.payload, [VXLAN_PORT]);
      if (!vxlan) continue;
      const inner = decodeEthernet(vxlan.inner);
      if (inner.ethertype !== ETHERTYPE_IPV6) continue;
      const ip = decodeIpv6(inner.payload);
      if (ip.nextHeader !== IPPROTO_ICMPV6) continue;
      const type = decodeIcmpv6(ip.payload).type;
      assert.ok(![133, 134, 135, 136, 137].includes(type), `neighbour discovery type ${type} crossed the underlay inside VXLAN`);
      if (type === ICMPV6_ECHO_REQUEST) echoes++;
    }
    assert.ok(echoes >= 4, `IPv6 echo requests in VXLAN in IPv6 on the underlay: ${echoes}`);
    const server = cluster.spawn(c.d2!.netns, [process.execPath, '-e', TCP6_ECHO_SERVER, '7000'], { label: 'echo6' });
    try {
      await server.waitFor(/listening/, 5000);
      const result = await cluster.exec(c.d1!.netns, [process.execPath, '-e', TCP_ECHO_CLIENT, v6('d2'), '7000', 'ipv6 over ipv6']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), 'ipv6 over ipv6');
    } finally {
      await server.stop();
    }
  });

  it('refuses a node of the other family, saying which family the cluster uses', async () => {
    const token = join(cluster.tmpDir, 'stranger-join.token');
    writeFileSync(token, `${cluster.manager.workerToken}\n`, { mode: 0o600 });
    const agent = cluster.spawn(stranger.netns, [
      process.execPath, DEFAULT_CLI_PATH, 'agent', '--manager', cluster.manager.url, '--token-file', token,
      '--state-dir', join(cluster.tmpDir, 'stranger-agent'), '--advertise-addr', stranger.controlAddress!, '--name', 'host4', '--no-cni',
    ], { label: 'agent of the wrong family' });
    try {
      await agent.waitFor(/node host4 advertises the IPv4 underlay address 10\.99\.0\.14, but this cluster's nodes use IPv6 underlay addresses/, 20_000);
    } finally {
      await agent.stop('SIGTERM');
    }
    assert.deepEqual((await client.listNodes()).map((n) => n.name), ['host1', 'host2', 'host3']);
  });
});
