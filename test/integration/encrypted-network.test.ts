/**
 * Encrypted networks (vxnet issue 10) end to end: three simulated hosts whose agents carry an encrypted and
 * a plain network side by side. What is on the underlay is decoded with vxnet's own codecs: the encrypted
 * network's frames travel only inside WireGuard, the plain one's stay VXLAN, and a killed wireguard-go
 * lets nothing out in clear (the hosts route by default via the outside namespace, where a leak would go)
 * until the agent has started it again and traffic resumes by itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { publicKeyOf } from '../../src/agent/wireguard/keys.ts';
import { rpsMask, tunnelDeviceName } from '../../src/agent/wireguard/render.ts';
import { ManagerClient } from '../../src/client/client.ts';
import type { NodeStatus } from '../../src/core/model.ts';
import { decodeEthernet, ETHERTYPE_IPV4 } from '../../src/packet/ethernet.ts';
import { decodeIpv4 } from '../../src/packet/ipv4.ts';
import { decodeUdp } from '../../src/packet/udp.ts';
import { decapsulate } from '../../src/packet/vxlan.ts';
import { createCluster, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { findCommand } from '../../src/testkit/preflight.ts';
import { capture, noPacketLostDuring, pings, TCP_ECHO_CLIENT, TCP_ECHO_SERVER, until } from './support/probes.ts';
import { attachWithApi, cliOk, type Attached } from './support/setup.ts';
import { echoRequests, sendVxlan, vxlanEcho } from './support/vxlan-inject.ts';

const SECRET_VNI = 3100;
const PLAIN_VNI = 3200;
/** ping's payload pattern (16 bytes, "vxnet-secret!!!!"): it must never be readable on the wire */
const PATTERN_HEX = '76786e65742d73656372657421212121';
const PATTERN = Buffer.from(PATTERN_HEX, 'hex');
const TCP_TEXT = 'tcp-secret-payload-0123456789';
const WIREGUARD_PORT = 51820;

const missing = ['wireguard-go', 'wg', 'tcpdump'].filter((tool) => !findCommand(tool));

/** The frames' VXLAN VNIs (UDP 4789) and how many are WireGuard (UDP 51820). */
function classify(frames: readonly Uint8Array[]): { vnis: number[]; wireguard: number; withPattern: number; withText: number } {
  const vnis: number[] = [];
  let wireguard = 0;
  let withPattern = 0;
  let withText = 0;
  for (const frame of frames) {
    const bytes = Buffer.from(frame);
    if (bytes.includes(PATTERN)) withPattern++;
    if (bytes.includes(TCP_TEXT)) withText++;
    try {
      const vxlan = decapsulate(frame);
      if (vxlan) vnis.push(vxlan.vni);
      const ethernet = decodeEthernet(frame);
      if (ethernet.ethertype !== ETHERTYPE_IPV4) continue;
      const ip = decodeIpv4(ethernet.payload);
      if (ip.protocol !== 17) continue;
      const udp = decodeUdp(ip.payload);
      if (udp.srcPort === WIREGUARD_PORT || udp.dstPort === WIREGUARD_PORT) wireguard++;
    } catch {
      // not a whole IPv4/UDP frame: counted by the pattern checks only
    }
  }
  return { vnis, wireguard, withPattern, withText };
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The agent's WireGuard device on a host, if it has one. */
async function tunnelDevice(cluster: Cluster, host: SimHost): Promise<string | undefined> {
  return (await cluster.exec(host.netns, ['ip', '-o', 'link', 'show'])).stdout.match(/^\d+: (vxw[0-9a-f]{10}):/m)?.[1];
}

async function wireguardGoPid(cluster: Cluster, host: SimHost): Promise<number | undefined> {
  const pids = await cluster.exec(host.netns, ['sh', '-c', 'for p in $(ip netns pids "$0"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = wireguard-go ] && echo $p; done', host.netns]);
  const pid = Number(pids.stdout.trim().split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The public keys of a host's WireGuard peers, as its device has them ('' without a device). */
async function peersOfIn(cluster: Cluster, host: SimHost): Promise<string> {
  const device = await tunnelDevice(cluster, host);
  return device ? (await cluster.exec(host.netns, ['wg', 'show', device, 'peers'])).stdout : '';
}

describe('encrypted and plain networks on three hosts', { skip: missing.length > 0 ? `missing ${missing.join(', ')} (setup.sh installs them)` : false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  const c: Record<string, Attached> = {};
  const peersOf = (host: SimHost) => peersOfIn(cluster, host);

  before(async () => {
    cluster = await createCluster({ hosts: 3, outside: true, prefix: 'vxenc' });
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    await cliOk(cluster, ['network', 'create', 'secret', '--encrypt', '--vni', String(SECRET_VNI), '--subnet', '192.168.31.0/24']);
    await client.createNetwork({ name: 'plain', vni: PLAIN_VNI, subnets: [{ cidr: '192.168.32.0/24' }] });
    Object.assign(
      c,
      await attachWithApi(cluster, client, [
        ['s1', 'host1', 'secret'],
        ['s2', 'host2', 'secret'],
        ['s3', 'host3', 'secret'],
        ['p1', 'host1', 'plain'],
        ['p2', 'host2', 'plain'],
      ]),
    );
  });

  after(async () => {
    client?.close();
    const devices = cluster ? cluster.hosts.map((host) => tunnelDeviceName(cluster.agentStateDir(host))) : [];
    await cluster?.destroy();
    // wireguard-go killed with the namespaces (-9) leaves its control socket, which is machine-wide
    for (const device of devices) rmSync(`/var/run/wireguard/${device}.sock`, { force: true });
  });

  it('shows the network as encrypted, with room for WireGuard in its MTU, and each node with its implementation and tunnel address', async () => {
    const networks = await cliOk(cluster, ['network', 'ls']);
    assert.match(networks, /ENCRYPTED/);
    assert.match(networks, /^secret\s+3100\s+192\.168\.31\.0\/24\s+1390\s+4789\s+no\s+-\s+yes$/m);
    assert.match(networks, /^plain\s+3200\s+192\.168\.32\.0\/24\s+1450\s+/m);
    const detail = JSON.parse(await cliOk(cluster, ['network', 'inspect', 'secret'])) as { encrypted?: boolean };
    assert.equal(detail.encrypted, true);
    const nodes = JSON.parse(await cliOk(cluster, ['node', 'ls', '--json'])) as NodeStatus[];
    for (const node of nodes) {
      assert.equal(node.wireguard?.implementation, 'wireguard-go', `${node.name}: this kernel has no WireGuard module`);
      assert.match(node.tunnelAddress ?? '', /^10\.201\.\d+\.\d+$/);
    }
    assert.equal(new Set(nodes.map((n) => n.tunnelAddress)).size, 3, 'tunnel addresses are unique');
    assert.match(await cliOk(cluster, ['node', 'ls']), /WIREGUARD\s+TUNNEL/);
  });

  it('refuses an encrypted network with a multicast group, in one sentence', async () => {
    const result = await cluster.cli(['network', 'create', 'nope', '--encrypt', '--multicast-group', '239.1.1.1']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /an encrypted network cannot use a multicast group: WireGuard carries unicast only/);
  });

  it('reaches the other hosts over ICMP and TCP with nothing but WireGuard on the wire', async () => {
    const host1 = cluster.host('host1');
    const server = cluster.spawn(c.s2!.netns, [process.execPath, '-e', TCP_ECHO_SERVER, '7000'], { label: 'echo' });
    await server.waitFor(/listening/, 5000);
    let tcp = { code: -1, stdout: '', stderr: '' };
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      assert.ok(await pings(cluster, c.s1!.netns, c.s2!.endpoint.ip, ['-p', PATTERN_HEX, '-s', '200']), 's1 -> s2 ping');
      assert.ok(await pings(cluster, c.s1!.netns, c.s3!.endpoint.ip, ['-p', PATTERN_HEX, '-s', '200']), 's1 -> s3 ping');
      tcp = await cluster.exec(c.s1!.netns, [process.execPath, '-e', TCP_ECHO_CLIENT, c.s2!.endpoint.ip, '7000', TCP_TEXT]);
    });
    await server.stop();
    assert.equal(tcp.code, 0, tcp.stderr);
    assert.equal(tcp.stdout.trim(), TCP_TEXT);
    const seen = classify(frames);
    assert.ok(seen.wireguard > 0, 'the traffic went through WireGuard');
    assert.deepEqual(seen.vnis.filter((vni) => vni === SECRET_VNI), [], 'no VXLAN frame of the encrypted network on the underlay');
    assert.equal(seen.withPattern, 0, 'the ping payload is never readable on the wire');
    assert.equal(seen.withText, 0, 'the TCP payload is never readable on the wire');
  });

  it('shows each member\'s tunnel to each other member as up, with its last handshake', async () => {
    type Tunnels = { tunnels?: { from: string; to: string; up: boolean; latestHandshake: string | null }[] };
    const tunnels = await until('every tunnel of network secret reported up', async () => {
      const detail = JSON.parse(await cliOk(cluster, ['network', 'inspect', 'secret'])) as Tunnels;
      return detail.tunnels?.length === 6 && detail.tunnels.every((t) => t.up) ? detail.tunnels : undefined;
    }, 20_000);
    assert.deepEqual(tunnels.map((t) => `${t.from}>${t.to}`), ['host1>host2', 'host1>host3', 'host2>host1', 'host2>host3', 'host3>host1', 'host3>host2']);
    assert.ok(tunnels.every((t) => t.latestHandshake !== null && Date.now() - Date.parse(t.latestHandshake) < 180_000));
    assert.match(await cliOk(cluster, ['node', 'ls']), /^host1\s.*\bwireguard-go\s+10\.201\.\d+\.\d+\s+2\/2$/m);
  });

  it('keeps the plain network on plain VXLAN', async () => {
    const frames = await capture(cluster, cluster.host('host1').netns, 'eth0', [], async () => {
      assert.ok(await pings(cluster, c.p1!.netns, c.p2!.endpoint.ip, ['-p', PATTERN_HEX]), 'p1 -> p2 ping');
    });
    const seen = classify(frames);
    assert.ok(seen.vnis.includes(PLAIN_VNI), 'the plain network is VXLAN on the underlay');
    assert.ok(seen.withPattern > 0, 'and readable there, as plain VXLAN is');
  });

  it('keeps encrypted traffic flowing across an agent restart: the new agent adopts the running wireguard-go', async () => {
    const host1 = cluster.host('host1');
    const before = await wireguardGoPid(cluster, host1);
    await noPacketLostDuring(cluster, c.s1!.netns, c.s2!.endpoint.ip, () => cluster.restartAgent(host1), 'restart-ping');
    assert.equal(await wireguardGoPid(cluster, host1), before, 'the same wireguard-go carries on');
  });

  it('drops the encrypted frames while the tunnel device is down, where the address stays and only the blackhole route stops them', async () => {
    // A down device keeps its address but loses its route: without the blackhole the next match is the
    // default route, out of eth0 towards the outside namespace, in clear.
    const host1 = cluster.host('host1');
    const device = await tunnelDevice(cluster, host1);
    assert.ok(device, 'host1 has its WireGuard device');
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      await cluster.exec(host1.netns, ['ip', 'link', 'set', device, 'down']);
      try {
        await cluster.exec(c.s1!.netns, ['ping', '-i', '0.01', '-c', '100', '-W', '1', '-p', PATTERN_HEX, c.s2!.endpoint.ip]);
      } finally {
        await cluster.exec(host1.netns, ['ip', 'link', 'set', device, 'up']);
      }
    });
    const seen = classify(frames);
    assert.deepEqual(seen.vnis.filter((vni) => vni === SECRET_VNI), [], 'no VXLAN frame of the encrypted network while the device was down');
    assert.equal(seen.withPattern, 0, 'no payload in clear while the device was down');
    assert.ok(await until('s1 reaching s2 again', () => pings(cluster, c.s1!.netns, c.s2!.endpoint.ip, ['-c', '1']), 10_000));
  });

  // wireguard-go here is the one the restarted agent adopted: its death is noticed by polling, not by an exit event
  it('drops the encrypted frames while wireguard-go is dead (kill -9) and resumes by itself once the agent restarted it', async () => {
    const host1 = cluster.host('host1');
    const before = await wireguardGoPid(cluster, host1);
    assert.ok(before, 'wireguard-go runs on host1');
    let after: number | undefined;
    let downMs = 0;
    const frames = await capture(cluster, host1.netns, 'eth0', [], async () => {
      const flood = cluster.spawn(c.s1!.netns, ['ping', '-i', '0.01', '-c', '600', '-W', '1', '-p', PATTERN_HEX, c.s2!.endpoint.ip], { label: 'fast-ping' });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const killed = Date.now();
      await cluster.exec(host1.netns, ['kill', '-9', String(before)]);
      after = await until('a new wireguard-go on host1', async () => {
        const pid = await wireguardGoPid(cluster, host1);
        return pid !== undefined && pid !== before ? pid : undefined;
      }, 10_000);
      await until('s1 reaching s2 again', () => pings(cluster, c.s1!.netns, c.s2!.endpoint.ip, ['-c', '1']), 15_000);
      downMs = Date.now() - killed;
      await flood.stop('SIGINT');
    });
    const seen = classify(frames);
    assert.ok(after !== undefined && after !== before, 'the agent started wireguard-go again');
    assert.deepEqual(seen.vnis.filter((vni) => vni === SECRET_VNI), [], 'no VXLAN frame of the encrypted network while the tunnel was down');
    assert.equal(seen.withPattern, 0, 'no payload in clear while the tunnel was down');
    assert.ok(downMs < 15_000, `reachable again after ${downMs} ms`);
    // the new wireguard-go's TUN is a new device: its receive path is steered off wireguard-go again (tunnel.ts)
    const device = await tunnelDevice(cluster, host1);
    const rps = await cluster.exec(host1.netns, ['cat', `/sys/class/net/${device}/queues/rx-0/rps_cpus`]);
    const bits = (mask: string) => BigInt(`0x${mask.trim().replaceAll(',', '')}`);
    assert.equal(bits(rps.stdout), bits(rpsMask(cpus().length)), `RPS on ${device} after the restart: ${rps.stdout}${rps.stderr}`);
  });

  it('rotates a node\'s key without loss: every member\'s tunnel takes the new key within seconds, 0-1 of 500 pings lost at 10 ms', async (t) => {
    const host2 = cluster.host('host2');
    const keyOf = async () => ((JSON.parse(await cliOk(cluster, ['node', 'ls', '--json'])) as NodeStatus[]).find((n) => n.name === 'host2')!.wireguard!.publicKey);
    const before = await keyOf();
    const ping = cluster.spawn(c.s1!.netns, ['ping', '-i', '0.01', '-c', '500', '-W', '1', c.s2!.endpoint.ip], { label: 'rotate-ping' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const members = [cluster.host('host1'), cluster.host('host3')];
    assert.match(await cliOk(cluster, ['node', 'rotate-key', 'host2']), /^node host2 asked for a new WireGuard key \(rotation 1\)/);
    // the key travels manager -> host2's watch -> new key on its device -> registration -> each member's
    // watch -> its device, where the old key leaves: timed per member from the manager's answer
    const asked = Date.now();
    const arrived = await Promise.all(
      members.map((host) =>
        until(`${host.name}'s tunnel leaving host2's old key for a new one`, async () => {
          const peers = (await peersOf(host)).split('\n').filter((line) => line !== '');
          return peers.length === 2 && !peers.includes(before) ? { peers, ms: Date.now() - asked } : undefined;
        }, 15_000),
      ),
    );
    const after = await keyOf();
    assert.notEqual(after, before, 'host2 registered a new public key');
    for (const [i, host] of members.entries()) {
      assert.ok(arrived[i]!.peers.includes(after), `${host.name} has host2's registered key`);
      t.diagnostic(`${host.name} has host2's new key ${arrived[i]!.ms} ms after rotate-key`);
      assert.ok(arrived[i]!.ms < 10_000, `${host.name} took ${arrived[i]!.ms} ms`);
    }
    await ping.exited;
    const match = /(\d+) packets transmitted, (\d+) received/.exec(ping.output());
    assert.ok(match, ping.output());
    const lost = Number(match[1]) - Number(match[2]);
    t.diagnostic(`rotation under a 10 ms ping: ${lost} of ${match[1]} lost`);
    assert.ok(lost <= 1, `${lost} of ${match[1]} pings lost across the rotation`);
    const file = readFileSync(`${cluster.agentStateDir(host2)}/wireguard.key`, 'utf8').trim();
    assert.equal(publicKeyOf(file), after, 'the key file holds the new private key');
    const refused = await cluster.cli(['node', 'rotate-key', 'nosuchnode']);
    assert.notEqual(refused.code, 0);
  });

  it('takes the encrypted VNI only from the tunnel: the same frame in clear from a member\'s address is dropped, on the plain VNI it arrives', async () => {
    const host1 = cluster.host('host1');
    const host2 = cluster.host('host2');
    const inject = async (vni: number, from: Attached, to: Attached, id: number) => {
      const payload = vxlanEcho({ vni, srcMac: from.endpoint.mac, dstMac: to.endpoint.mac, srcIp: from.endpoint.ip, dstIp: to.endpoint.ip, id });
      const frames = await capture(cluster, to.netns, 'eth0', ['icmp'], () => sendVxlan(cluster, host2.netns, host2.address, host1.address, payload));
      return echoRequests(frames).some((e) => e.id === id);
    };
    assert.equal(await inject(PLAIN_VNI, c.p2!, c.p1!, 0x5101), true, 'the injection reaches a plain network (the control)');
    assert.equal(await inject(SECRET_VNI, c.s2!, c.s1!, 0x5102), false, 'and never the encrypted one');
  });

  it('takes a node whose last endpoint left the encrypted network out of its peers\' tunnels', async () => {
    const nodes = JSON.parse(await cliOk(cluster, ['node', 'ls', '--json'])) as NodeStatus[];
    const host3Key = nodes.find((n) => n.name === 'host3')!.wireguard!.publicKey;
    assert.match(await peersOf(cluster.host('host1')), new RegExp(escape(host3Key)));
    await client.deleteEndpoint(c.s3!.endpoint.id, { waitSeconds: 20 });
    for (const host of [cluster.host('host1'), cluster.host('host2')]) {
      await until(`${host.name} dropping host3 as a peer`, async () => !(await peersOf(host)).includes(host3Key), 10_000);
    }
    await until('host3 removing its tunnel device', async () => (await tunnelDevice(cluster, cluster.host('host3'))) === undefined, 10_000);
    assert.ok(await pings(cluster, c.s1!.netns, c.s2!.endpoint.ip), 's1 -> s2 still');
    // only members take a node's new key: host2 does, host3 (a member no more) keeps no tunnel to take it with
    const rotated = await cliOk(cluster, ['node', 'rotate-key', 'host1', '--json']);
    assert.equal((JSON.parse(rotated) as NodeStatus).keyRotation, 1);
    const host1Key = await until('host1 registering its new key', async () => {
      const key = (JSON.parse(await cliOk(cluster, ['node', 'ls', '--json'])) as NodeStatus[]).find((n) => n.name === 'host1')!.wireguard!.publicKey;
      return key !== nodes.find((n) => n.name === 'host1')!.wireguard!.publicKey ? key : undefined;
    }, 10_000);
    await until('host2 taking host1\'s new key', async () => (await peersOf(cluster.host('host2'))).includes(host1Key), 10_000);
    assert.equal(await peersOf(cluster.host('host3')), '', 'host3 has no tunnel and no peer');
    assert.ok(await until('s1 -> s2 with host1\'s new key', () => pings(cluster, c.s1!.netns, c.s2!.endpoint.ip, ['-c', '1']), 10_000));
  });

  it('lets a non-member, which knows the public keys, complete no handshake', async () => {
    // host3 is no member any more; an attacker there with a key of its own aims at host1's WireGuard
    const host3 = cluster.host('host3');
    const nodes = JSON.parse(await cliOk(cluster, ['node', 'ls', '--json'])) as NodeStatus[];
    const host1 = nodes.find((n) => n.name === 'host1')!;
    const device = `vxwt${cluster.runId.replace(/[^0-9a-z]/g, '').slice(-9)}`;
    const privateKey = (await cluster.exec(host3.netns, ['wg', 'genkey'])).stdout.trim();
    const keyFile = `${cluster.tmpDir}/attacker.key`;
    await cluster.exec(host3.netns, ['sh', '-c', 'umask 077; cat > "$0"', keyFile], { input: `${privateKey}\n` });
    const attacker = cluster.spawn(host3.netns, ['wireguard-go', '-f', device], { label: 'attacker-wg' });
    try {
      await until('the attacker device', async () => (await cluster.exec(host3.netns, ['ip', 'link', 'show', device])).code === 0, 5000);
      for (const argv of [
        ['wg', 'set', device, 'private-key', keyFile, 'peer', host1.wireguard!.publicKey, 'endpoint', `${host1.address}:${host1.wireguard!.port}`, 'allowed-ips', `${host1.tunnelAddress}/32`],
        ['ip', 'addr', 'add', '10.201.255.250/16', 'dev', device],
        ['ip', 'link', 'set', device, 'up'],
      ]) {
        const result = await cluster.exec(host3.netns, argv);
        assert.equal(result.code, 0, `${argv.join(' ')}: ${result.stderr}`);
      }
      assert.equal(await pings(cluster, host3.netns, host1.tunnelAddress!), false, 'host1 answers no non-member');
      const handshakes = (await cluster.exec(host3.netns, ['wg', 'show', device, 'latest-handshakes'])).stdout;
      assert.match(handshakes, /\t0\n?$/, `no handshake completed: ${handshakes}`);
    } finally {
      await cluster.exec(host3.netns, ['ip', 'link', 'del', device]);
      await attacker.stop('SIGKILL');
    }
  });

  it('says so when a member\'s tunnel is down: network inspect warns per tunnel (JSON and stderr), and nothing goes in clear', async () => {
    // host3 joins again with WireGuard's port shut on its side: its tunnels can never complete a handshake
    const host3 = cluster.host('host3');
    const table = `vxblock${cluster.runId.replace(/[^0-9a-z]/g, '').slice(-8)}`;
    const block = `table ip ${table} {\n chain in { type filter hook input priority -300; udp dport ${WIREGUARD_PORT} drop; }\n}\n`;
    const shut = await cluster.exec(host3.netns, ['nft', '-f', '-'], { input: block });
    assert.equal(shut.code, 0, shut.stderr);
    try {
      Object.assign(c, await attachWithApi(cluster, client, [['s3again', 'host3', 'secret']]));
      type Detail = { tunnels?: { from: string; to: string; up: boolean }[]; implementations?: Record<string, string>; warnings?: string[] };
      const detail = await until('the tunnels to host3 reported down', async () => {
        const shown = JSON.parse(await cliOk(cluster, ['network', 'inspect', 'secret'])) as Detail;
        const down = (shown.tunnels ?? []).filter((t) => !t.up).map((t) => `${t.from}>${t.to}`);
        return down.includes('host1>host3') && down.includes('host2>host3') ? shown : undefined;
      }, 20_000);
      assert.deepEqual(detail.implementations, { host1: 'wireguard-go', host2: 'wireguard-go', host3: 'wireguard-go' });
      assert.ok(
        detail.warnings?.some((w) => /^the tunnel from host1 to host3 is down \(no handshake reported\): this network's frames from host1 to host3 are dropped, never sent in clear\.$/.test(w)),
        JSON.stringify(detail.warnings),
      );
      assert.ok(!detail.warnings?.some((w) => /from host1 to host2|from host2 to host1/.test(w)), 'the tunnel between host1 and host2 is up and not warned about');
      const result = await cluster.cli(['network', 'inspect', 'secret']);
      assert.equal(result.code, 0);
      assert.match(result.stderr, /^warning: the tunnel from host1 to host3 is down/m);
      // and the down tunnel leaks nothing: a ping to host3's container finds no path, none in clear either
      const frames = await capture(cluster, cluster.host('host1').netns, 'eth0', [], async () => {
        assert.equal(await pings(cluster, c.s1!.netns, c.s3again!.endpoint.ip, ['-p', PATTERN_HEX]), false, 'no path while the tunnel is down');
      });
      const seen = classify(frames);
      assert.deepEqual(seen.vnis.filter((vni) => vni === SECRET_VNI), [], 'no VXLAN frame of the encrypted network');
      assert.equal(seen.withPattern, 0, 'no payload in clear');
    } finally {
      await cluster.exec(host3.netns, ['nft', 'delete', 'table', 'ip', table]);
    }
  });
});
