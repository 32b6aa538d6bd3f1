/**
 * vxnet issue 9, hole 1: VXLAN injected from containers with a forged source, and spoofing inside a
 * network. Each test performs the attack against real kernels and asserts that it fails (each one
 * succeeded before the fix: the allow-list accepted UDP to 4789 with a member's address from any interface
 * but vxnet's own, and nothing checked what a container sent):
 *  (a) a container on a plain bridge of host1 (docker0-like) sends VXLAN to host1's own underlay address
 *      with red's VNI, claiming host2's address (rp_filter 2, the systemd default);
 *  (b) a container on blue on host2 sends VXLAN with red's VNI to host1, claiming host3's address, and
 *      host2 routes it; the same from its own address (masqueraded to host2's, a member's);
 *  (c) inside blue, a container sends with another IPv4 source, another MAC, and ARP claiming another
 *      endpoint's address.
 * And the legitimate paths still work: a member's VXLAN from the underlay, pings across hosts and to the
 * gateway, the containers' own ARP.
 *
 * VXLAN frames are crafted with vxnet's own codecs (an ICMP echo request inside a VXLAN header) and sent as
 * UDP; whether they arrive is read from a capture in the target container. Needs root; the test kit
 * removes every namespace and process afterwards.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { decodeArp } from '../../src/packet/arp.ts';
import { decodeEthernet, ETHERTYPE_ARP } from '../../src/packet/ethernet.ts';
import { netnsPath } from '../../src/testkit/netns.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { capture, pings } from './support/probes.ts';
import { BLUE, clusterSuite, RED } from './support/setup.ts';
import { echoRequests, sendVxlan, vxlanEcho } from './support/vxlan-inject.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';

describe('anti-spoofing: containers cannot forge sources or reach a VTEP (vxnet issue 9, hole 1)', { skip, concurrency: false }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 3, outside: false, prefix: 'vxspoof' },
    networks: [BLUE, RED],
    attach: [['r1', 'host1', 'red'], ['b1', 'host1', 'blue'], ['bx', 'host1', 'blue'], ['b2', 'host2', 'blue']],
  });
  let plain: string;
  let nextId = 0x6a00;

  before(async () => {
    // a plain bridge on host1 with one container behind it, as docker0 would have (not vxnet's)
    plain = await suite.cluster.addContainer('plain');
    const wire = await suite.cluster.exec(suite.host(1).netns, ['ip', '-batch', '-'], {
      input: [
        'link add plain0 type bridge', 'addr add 172.30.0.1/24 dev plain0', 'link set plain0 up',
        `link add plainp0 type veth peer name eth0 netns ${netnsPath(plain)}`, 'link set plainp0 master plain0 up',
      ].join('\n') + '\n',
    });
    assert.equal(wire.code, 0, wire.stderr);
    const inside = await suite.cluster.exec(plain, ['ip', '-batch', '-'], {
      input: ['addr add 172.30.0.2/24 dev eth0', 'link set eth0 up', 'route add default via 172.30.0.1', `addr add ${suite.host(2).address}/32 dev lo`].join('\n') + '\n',
    });
    assert.equal(inside.code, 0, inside.stderr);
    // loose reverse-path filtering, the systemd default: the forged source is reachable via eth0
    assert.equal((await suite.cluster.exec(suite.host(1).netns, ['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=2', 'net.ipv4.conf.default.rp_filter=2'])).code, 0);
  });

  /** Sends a red echo to r1 as VXLAN from `from` (bound to `source`) to `destination`; whether r1 saw it. */
  async function injectIntoRed(from: string, source: string, destination: string): Promise<boolean> {
    const id = nextId++;
    const to = suite.c.r1!.endpoint;
    const payload = vxlanEcho({ vni: 2000, srcMac: '02:78:c0:a8:02:4d', dstMac: to.mac, srcIp: '192.168.2.77', dstIp: to.ip, id });
    const frames = await capture(suite.cluster, suite.c.r1!.netns, 'eth0', ['icmp'], () => sendVxlan(suite.cluster, from, source, destination, payload));
    return echoRequests(frames).some((e) => e.id === id);
  }

  it('still delivers VXLAN from a member on the underlay, and the containers reach each other and their gateway', async () => {
    assert.equal(await injectIntoRed(suite.host(2).netns, suite.host(2).address, suite.host(1).address), true, 'a member’s frame from the underlay must arrive');
    assert.ok(await pings(suite.cluster, suite.c.b1!.netns, suite.c.b2!.endpoint.ip), 'b1 -> b2 across hosts');
    assert.ok(await pings(suite.cluster, suite.c.bx!.netns, suite.c.b1!.endpoint.ip), 'bx -> b1 on one bridge');
    assert.ok(await pings(suite.cluster, suite.c.b2!.netns, '192.168.1.1'), 'b2 -> its gateway');
    // in the network's namespace (the agent's --netns-prefix HOST-n, blue's VNI 1000)
    const table = await suite.cluster.exec(`${suite.host(1).netns}-n1000`, ['nft', 'list', 'table', 'bridge', 'vxnet']);
    assert.match(table.stdout, /chain antispoof/);
  });

  it('(a) drops VXLAN from a container on a plain bridge of the host claiming a member’s address', async () => {
    assert.equal(await injectIntoRed(plain, suite.host(2).address, suite.host(1).address), false, 'the docker0-like container injected a frame into red');
  });

  it('(b) drops VXLAN a container on another host sends towards a VTEP, forged or masqueraded', async () => {
    // b2 (blue, host2) claims host3's address; host2 would route it to host1, which accepts host3
    assert.equal((await suite.cluster.exec(suite.c.b2!.netns, ['ip', 'addr', 'add', `${suite.host(3).address}/32`, 'dev', 'lo'])).code, 0);
    try {
      assert.equal(await injectIntoRed(suite.c.b2!.netns, suite.host(3).address, suite.host(1).address), false, 'a blue container on host2 injected into red on host1 claiming host3');
    } finally {
      await suite.cluster.exec(suite.c.b2!.netns, ['ip', 'addr', 'del', `${suite.host(3).address}/32`, 'dev', 'lo']);
    }
    // from its own address: masqueraded to host2's, which is a member
    assert.equal(await injectIntoRed(suite.c.b2!.netns, suite.c.b2!.endpoint.ip, suite.host(1).address), false, 'a blue container on host2 injected into red through its host’s masquerade');
  });

  it('(c) drops frames inside a network with another IPv4 source or another MAC, and ARP claiming another address', async () => {
    const bx = suite.c.bx!.netns;
    const b1 = suite.c.b1!.endpoint;
    // a permanent neighbour, so that what is sent is the echo itself and not an ARP request first
    assert.equal((await suite.cluster.exec(bx, ['ip', 'neigh', 'replace', b1.ip, 'lladdr', b1.mac, 'dev', 'eth0', 'nud', 'permanent'])).code, 0);
    // another source address
    assert.equal((await suite.cluster.exec(bx, ['ip', 'addr', 'add', '192.168.1.200/32', 'dev', 'eth0'])).code, 0);
    const forgedIp = await capture(suite.cluster, suite.c.b1!.netns, 'eth0', ['icmp'], () => suite.cluster.exec(bx, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', '192.168.1.200', b1.ip]));
    await suite.cluster.exec(bx, ['ip', 'addr', 'del', '192.168.1.200/32', 'dev', 'eth0']);
    assert.deepEqual(echoRequests(forgedIp).filter((e) => e.src === '192.168.1.200'), [], 'an echo with a forged source reached b1');
    // another MAC
    const own = suite.c.bx!.endpoint.mac;
    assert.equal((await suite.cluster.exec(bx, ['ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:99:99'])).code, 0);
    const forgedMac = await capture(suite.cluster, suite.c.b1!.netns, 'eth0', ['icmp'], () => suite.cluster.exec(bx, ['ping', '-c', '3', '-i', '0.2', '-W', '1', b1.ip]));
    assert.equal((await suite.cluster.exec(bx, ['ip', 'link', 'set', 'eth0', 'address', own])).code, 0);
    assert.deepEqual(echoRequests(forgedMac), [], 'an echo from a forged MAC reached b1');
    // ARP claiming b1's address (what poisons the gateway's and the neighbours' caches)
    const arps = await capture(suite.cluster, suite.c.b1!.netns, 'eth0', ['arp'], () => suite.cluster.exec(bx, ['busybox', 'arping', '-U', '-c', '3', '-I', 'eth0', '-s', b1.ip, '192.168.1.1']));
    const claims = arps.flatMap((frame) => {
      const eth = decodeEthernet(frame);
      if (eth.ethertype !== ETHERTYPE_ARP) return [];
      const arp = decodeArp(eth.payload);
      return arp.senderIp === b1.ip && arp.senderMac !== b1.mac ? [arp] : [];
    });
    assert.deepEqual(claims, [], 'an ARP claiming b1’s address reached b1');
    const gateway = await suite.cluster.exec(suite.host(1).netns, ['ip', 'neigh', 'show', b1.ip, 'dev', 'vxnb1000']);
    assert.doesNotMatch(gateway.stdout, new RegExp(own), 'the gateway believes b1 is at bx’s MAC');
    // and bx itself still works, ARP included
    await suite.cluster.exec(bx, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    assert.ok(await pings(suite.cluster, bx, b1.ip), 'bx -> b1 with its own addresses');
  });
});
