/**
 * IPv6 inside networks over an IPv4 underlay (vxnet issue 15), end to end: a real manager and three real
 * agents, containers as namespaces, real packets. An IPv6-only network ("six"), a dual-stack one ("dual")
 * and a second IPv6-only one ("other", for isolation). Each test states the behaviour it proves; the attack
 * tests perform the attack. The underlay also gets IPv6 addresses (2001:db8:99::/64, documentation prefix,
 * only on the kit's own namespaces) so that the containers' IPv6 egress has somewhere to go: the outside
 * namespace, where what arrives is checked to come from the host (masquerade66).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { endpointAddresses } from '../../src/core/model.ts';
import { decodeEthernet, ETHERTYPE_IPV6 } from '../../src/packet/ethernet.ts';
import { decodeIcmpv6, ICMPV6_ECHO_REQUEST } from '../../src/packet/icmpv6.ts';
import { decodeIpv6, IPPROTO_ICMPV6 } from '../../src/packet/ipv6.ts';
import { decapsulate } from '../../src/packet/vxlan.ts';
import { createCluster, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { capture, noPacketLostDuring, pings, TCP6_ECHO_SERVER, TCP_ECHO_CLIENT } from './support/probes.ts';
import { attachWithApi, cliOk, type Attached } from './support/setup.ts';
import { resolve } from 'node:path';

const QUERY = resolve(import.meta.dirname, '../../src/agent/dns/query.ts');

const skip = isRoot() ? false : 'needs root (network namespaces)';

/** Prints the address each connection came from, then closes it. */
const TCP_PEER_SERVER = `
const net = require('node:net');
net.createServer((s) => { console.log('peer ' + s.remoteAddress); s.end(); }).listen(Number(process.argv[1]), '::', () => console.log('listening'));
`;

const UNDERLAY6 = '2001:db8:99::';
const OUTSIDE6 = `${UNDERLAY6}fe`;
/** Types of neighbour discovery and MLD (RFC 4861, 2710, 3810): none of them may cross the underlay. */
const NDP_AND_MLD = new Set([130, 131, 132, 133, 134, 135, 136, 137, 143]);

/** ICMPv6 (type, addresses) inside an IPv6 payload, or undefined for anything else. */
function icmpv6Of(frame: Uint8Array): { type: number; src: string; dst: string; target?: string } | undefined {
  const eth = decodeEthernet(frame);
  if (eth.ethertype !== ETHERTYPE_IPV6) return undefined;
  const ip = decodeIpv6(eth.payload);
  // MLD comes behind a hop-by-hop header (next header 0, its length in 8-byte units after the first 8)
  let next = ip.nextHeader;
  let payload = ip.payload;
  if (next === 0) {
    next = payload[0]!;
    payload = payload.subarray(8 + payload[1]! * 8);
  }
  if (next !== IPPROTO_ICMPV6) return undefined;
  const message = decodeIcmpv6(payload);
  const target = 'target' in message ? message.target : undefined;
  return { type: message.type, src: ip.src, dst: ip.dst, ...(target !== undefined ? { target } : {}) };
}

describe('IPv6 inside networks over an IPv4 underlay (issue 15)', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let host1: SimHost;
  const c: Record<string, Attached> = {};
  const v6 = (label: string) => endpointAddresses(c[label]!.endpoint).find((a) => a.ip.includes(':'))!.ip;
  const v4 = (label: string) => endpointAddresses(c[label]!.endpoint).find((a) => !a.ip.includes(':'))!.ip;

  before(async () => {
    cluster = await createCluster({ hosts: 3, outside: true, ipv6: true, prefix: 'vxsix' });
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    host1 = cluster.host('host1');
    // IPv6 on the underlay for egress only: the hosts route IPv6 out via the outside namespace
    const outside = cluster.outside!;
    const set = await cluster.exec(outside.netns, ['ip', '-6', 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'eth0', 'nodad']);
    assert.equal(set.code, 0, set.stderr);
    for (const host of cluster.hosts) {
      const lines = [`addr add ${UNDERLAY6}${host.index + 10}/64 dev eth0 nodad`, `route add ::/0 via ${OUTSIDE6} dev eth0`];
      const wired = await cluster.exec(host.netns, ['ip', '-batch', '-'], { input: `${lines.join('\n')}\n` });
      assert.equal(wired.code, 0, wired.stderr);
    }
    await client.createNetwork({ name: 'six', vni: 3000, subnets: [{ cidr: 'fd00:60::/64' }] });
    await client.createNetwork({ name: 'dual', vni: 3100, subnets: [{ cidr: '192.168.31.0/24' }, { cidr: 'fd00:61::/64' }] });
    await client.createNetwork({ name: 'other', vni: 3200, subnets: [{ cidr: 'fd00:62::/64' }] });
    Object.assign(
      c,
      await attachWithApi(cluster, client, [
        ['s1', 'host1', 'six'], ['s2', 'host2', 'six'], ['s3', 'host3', 'six'],
        ['d1', 'host1', 'dual'], ['d3', 'host3', 'dual'],
        ['o1', 'host1', 'other'], ['o2', 'host2', 'other'],
      ]),
    );
  });

  after(async () => {
    client?.close();
    await cluster?.destroy();
  });

  it('gives IPv6-only endpoints one IPv6 address and dual-stack ones one per family; attach prints each', async () => {
    assert.equal(c.s1!.endpoint.ip, 'fd00:60::2');
    assert.equal(c.s1!.endpoint.gateway, 'fd00:60::1');
    assert.equal(c.s1!.endpoint.mac, '02:79:00:00:00:02');
    assert.deepEqual(endpointAddresses(c.d1!.endpoint).map((a) => `${a.ip}/${a.prefix}`), ['192.168.31.2/24', 'fd00:61::2/64']);
    const inside = await cluster.exec(c.d1!.netns, ['ip', '-j', 'addr', 'show', 'eth0']);
    const addrs = (JSON.parse(inside.stdout) as { addr_info: { local: string; scope: string }[] }[])[0]!.addr_info;
    assert.deepEqual(addrs.filter((a) => a.scope === 'global').map((a) => a.local).sort(), ['192.168.31.2', 'fd00:61::2']);
    const ra = await cluster.exec(c.s1!.netns, ['sysctl', '-n', 'net.ipv6.conf.eth0.accept_ra']);
    assert.equal(ra.stdout.trim(), '0', 'no router advertisements taken');
    // the CLI: one line per address
    const netns = await cluster.addContainer('dcli');
    const printed = await cliOk(cluster, ['attach', 'dual', '--node', 'host2', '--netns', netns]);
    assert.deepEqual(printed.trim().split('\n'), ['192.168.31.4/24', 'fd00:61::4/64']);
  });

  it('reaches containers on the other hosts over IPv6 (ping6 and TCP), and both families on a dual-stack network', async () => {
    assert.ok(await pings(cluster, c.s1!.netns, v6('s2')), 's1 -> s2');
    assert.ok(await pings(cluster, c.s3!.netns, v6('s1')), 's3 -> s1');
    assert.ok(await pings(cluster, c.d1!.netns, v6('d3')), 'd1 -> d3 over IPv6');
    assert.ok(await pings(cluster, c.d1!.netns, v4('d3')), 'd1 -> d3 over IPv4');
    assert.ok(await pings(cluster, c.s1!.netns, 'fd00:60::1'), 'the gateway answers');
    for (const [from, to] of [['s1', 's2'], ['d3', 'd1']] as const) {
      const server = cluster.spawn(c[to]!.netns, [process.execPath, '-e', TCP6_ECHO_SERVER, '7000'], { label: 'echo6' });
      try {
        await server.waitFor(/listening/, 5000);
        const result = await cluster.exec(c[from]!.netns, [process.execPath, '-e', TCP_ECHO_CLIENT, v6(to), '7000', 'hello over ipv6']);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout.trim(), 'hello over ipv6');
      } finally {
        await server.stop();
      }
    }
  });

  it('isolates IPv6 networks from each other, on the same host and across hosts, gateways included', async () => {
    const [sameHost, crossHost, gateway, dual] = await Promise.all([
      pings(cluster, c.s1!.netns, v6('o1')),
      pings(cluster, c.s1!.netns, v6('o2')),
      pings(cluster, c.s1!.netns, 'fd00:62::1'),
      pings(cluster, c.o1!.netns, v6('d1')),
    ]);
    assert.equal(sameHost, false, 'six s1 must not reach other o1 on the same host');
    assert.equal(crossHost, false, 'six s1 must not reach other o2 on another host');
    assert.equal(gateway, false, "six s1 must not reach other's gateway");
    assert.equal(dual, false, 'other o1 must not reach dual d1');
  });

  it('sends no neighbour discovery across the underlay: solicitations are answered by the local VXLAN proxy', async () => {
    await cluster.exec(c.s1!.netns, ['ip', '-6', 'neigh', 'flush', 'all']);
    await cluster.exec(host1.netns, ['ip', '-6', 'neigh', 'flush', 'dev', 'vxnb3000']);
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      assert.ok(await pings(cluster, c.s1!.netns, v6('s2')));
      assert.ok(await pings(cluster, c.s1!.netns, v6('s3')));
      // an address added with duplicate address detection: a DAD solicitation and an MLD report for its group
      await cluster.exec(c.s1!.netns, ['ip', '-6', 'addr', 'add', 'fd00:60::ffff/64', 'dev', 'eth0']);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await cluster.exec(c.s1!.netns, ['ip', '-6', 'addr', 'del', 'fd00:60::ffff/64', 'dev', 'eth0']);
    });
    let echoes = 0;
    const ndp: string[] = [];
    for (const frame of frames) {
      const packet = decapsulate(frame);
      const inner = packet ? icmpv6Of(packet.inner) : icmpv6Of(frame);
      if (!inner) continue;
      if (packet && inner.type === ICMPV6_ECHO_REQUEST) echoes++;
      // inside VXLAN nothing of NDP or MLD at all; on the underlay itself, nothing about overlay addresses
      if (NDP_AND_MLD.has(inner.type) && (packet || inner.target?.startsWith('fd00:') || inner.src.startsWith('fd00:'))) {
        ndp.push(`${packet ? 'inside VXLAN' : 'underlay'}: type ${inner.type} ${inner.src} -> ${inner.dst}`);
      }
    }
    assert.ok(echoes >= 4, `the pings crossed the underlay (${echoes} echo requests)`);
    assert.deepEqual(ndp, []);
    const neigh = await cluster.exec(c.s1!.netns, ['ip', '-j', '-6', 'neigh', 'show', v6('s2')]);
    assert.equal((JSON.parse(neigh.stdout) as { lladdr: string }[])[0]?.lladdr, c.s2!.endpoint.mac, 'resolved to s2 all the same');
  });

  it('carries 1450-byte IPv6 packets with don\'t-fragment across hosts, and not one byte more', async () => {
    // 1450 (network MTU on a 1500 underlay) - 40 (IPv6) - 8 (ICMPv6) = 1402; IPv6 routers never fragment
    assert.ok(await pings(cluster, c.s1!.netns, v6('s2'), ['-M', 'do', '-s', '1402']), '1402 + 48 = 1450 passes');
    assert.equal(await pings(cluster, c.s1!.netns, v6('s2'), ['-M', 'do', '-s', '1403']), false, '1451 does not fit');
  });

  it('masquerades IPv6 egress to the host\'s own address (NAT66), and keeps internal traffic unNATed', async () => {
    assert.ok(await pings(cluster, c.s1!.netns, OUTSIDE6), 's1 reaches the outside over IPv6');
    const server = cluster.spawn(cluster.outside!.netns, [process.execPath, '-e', TCP_PEER_SERVER, '7100'], { label: 'peer6' });
    try {
      await server.waitFor(/listening/, 5000);
      await cluster.exec(c.s1!.netns, [process.execPath, '-e', "require('node:net').connect(7100, process.argv[1]).on('close', () => process.exit(0)).resume()", OUTSIDE6]);
      await server.waitFor(/peer /, 5000);
      assert.match(server.output(), new RegExp(`peer ${UNDERLAY6}${host1.index + 10}\\b`), 'seen from host1, not from fd00:60::2');
    } finally {
      await server.stop();
    }
    // inside the network the source stays the container's own
    const frames = await capture(cluster, c.s2!.netns, 'eth0', ['icmp6'], () => pings(cluster, c.s1!.netns, v6('s2')));
    const sources = frames.map(icmpv6Of).filter((m) => m?.type === ICMPV6_ECHO_REQUEST).map((m) => m!.src);
    assert.ok(sources.length > 0 && sources.every((s) => s === v6('s1')), `sources ${sources.join(', ')}`);
  });

  it('drops a container that sends with another endpoint\'s IPv6 address (anti-spoofing, the attack performed)', async () => {
    // s3 takes s2's address as a second one and pings s1 from it
    const stolen = v6('s2');
    const host3 = cluster.host('host3');
    const drops = async () => {
      // in the network's namespace (the agent's --netns-prefix HOST-n, six's VNI 3000)
      const chain = await cluster.exec(`${host3.netns}-n3000`, ['nft', '-j', 'list', 'chain', 'bridge', 'vxnet', 'antispoof']);
      const rules = (JSON.parse(chain.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables;
      const rule = rules.find((item) => item.rule?.comment === "IPv6 source is not the endpoint's")?.rule;
      return rule?.expr.find((e) => e.counter)?.counter?.packets ?? -1;
    };
    const before = await drops();
    const add = await cluster.exec(c.s3!.netns, ['ip', '-6', 'addr', 'add', `${stolen}/128`, 'dev', 'eth0', 'nodad']);
    assert.equal(add.code, 0, add.stderr);
    try {
      const frames = await capture(cluster, c.s1!.netns, 'eth0', ['icmp6'], async () => {
        assert.equal(await pings(cluster, c.s3!.netns, v6('s1'), ['-I', stolen]), false, 'the forged pings get no answer');
      });
      const forged = frames.map(icmpv6Of).filter((m) => m?.type === ICMPV6_ECHO_REQUEST && m.src === stolen);
      assert.equal(forged.length, 0, 'no forged echo request reached s1');
      assert.ok((await drops()) >= before + 2, "host3's bridge dropped them as not the endpoint's source");
      assert.ok(await pings(cluster, c.s3!.netns, v6('s1'), ['-I', v6('s3')]), 'its own address still works');
    } finally {
      await cluster.exec(c.s3!.netns, ['ip', '-6', 'addr', 'del', `${stolen}/128`, 'dev', 'eth0']);
    }
  });

  it('answers AAAA for names on IPv6 networks at the gateways, over UDP and TCP, on either family\'s gateway', async () => {
    const ask = async (from: string, server: string, name: string, type: string, extra: string[] = []) => {
      const result = await cluster.exec(c[from]!.netns, [process.execPath, QUERY, server, name, type, ...extra], { timeoutMs: 10_000 });
      assert.equal(result.code, 0, result.stderr);
      return ((JSON.parse(result.stdout) as { answers?: { address?: string }[] }).answers ?? []).map((r) => r.address);
    };
    assert.deepEqual(await ask('s1', 'fd00:60::1', c.s2!.netns, 'AAAA'), [v6('s2')]);
    assert.deepEqual(await ask('s1', 'fd00:60::1', `${c.s3!.netns}.six`, 'AAAA', ['--tcp']), [v6('s3')]);
    assert.deepEqual(await ask('d1', '192.168.31.1', c.d3!.netns, 'AAAA'), [v6('d3')]);
    assert.deepEqual(await ask('d1', 'fd00:61::1', c.d3!.netns, 'A'), [v4('d3')]);
  });

  it('keeps IPv6 traffic flowing while an agent restarts: not one packet lost', async () => {
    await noPacketLostDuring(cluster, c.s1!.netns, v6('s2'), () => cluster.restartAgent(host1), 'ping6');
    assert.ok(await pings(cluster, c.d1!.netns, v6('d3')), 'the dual-stack network too, after the restart');
  });
});
