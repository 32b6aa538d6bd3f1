/**
 * `docker network create -d vxnet -o encrypt` with real Docker engines (vxnet issue 10), one per simulated
 * host, each linked to its host's agent: the option makes an encrypted vxnet network, containers on two
 * hosts reach each other over it, and what crosses the underlay is WireGuard only — no VXLAN of its VNI, no
 * byte of the page a container serves. A value the option does not take is refused through Docker's own
 * error, leaving no network behind.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { tunnelDeviceName } from '../../src/agent/wireguard/render.ts';
import type { Network } from '../../src/core/model.ts';
import { decodeEthernet, ETHERTYPE_IPV4 } from '../../src/packet/ethernet.ts';
import { decodeIpv4 } from '../../src/packet/ipv4.ts';
import { decodeUdp } from '../../src/packet/udp.ts';
import { decapsulate } from '../../src/packet/vxlan.ts';
import { BUSYBOX_IMAGE, INDEX_HTML, dockerAgentArgs, dockerProblems } from '../../src/testkit/docker.ts';
import { findCommand } from '../../src/testkit/preflight.ts';
import { dockerSuite } from './support/docker-cluster.ts';
import { capture, until } from './support/probes.ts';

const VNI = 4141;
const problems = [dockerProblems(), ...['wireguard-go', 'wg', 'tcpdump'].filter((tool) => !findCommand(tool)).map((tool) => `missing ${tool}`)].filter(Boolean);

describe('docker network create -d vxnet -o encrypt', { skip: problems.length > 0 ? problems.join('; ') : false }, () => {
  const suite = dockerSuite({
    cluster: { hosts: 2, outside: false, prefix: 'vxencd' },
    // the admin token, so that docker network create may create vxnet networks
    agent: (e) => ({ adminToken: true, args: dockerAgentArgs(e) }),
    networks: [],
  });
  let devices: string[] = [];

  before(() => {
    devices = suite.cluster.hosts.map((host) => tunnelDeviceName(suite.cluster.agentStateDir(host)));
  });
  // after the suite's own after (hooks run in the order registered): wireguard-go's control sockets are
  // machine-wide and outlive its namespaces
  after(() => {
    for (const device of devices) rmSync(`/var/run/wireguard/${device}.sock`, { force: true });
  });

  it('makes an encrypted network whose containers on two hosts talk through WireGuard only', async () => {
    await suite.engine(1).dockerOk(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--subnet', '10.41.0.0/24', '-o', `vni=${VNI}`, '-o', 'encrypt', 'sealed']);
    const sealed = await until('vxnet network sealed', async () => (await suite.admin.listNetworks()).find((n: Network) => n.name === 'sealed'), 10_000);
    assert.equal(sealed.encrypted, true);
    assert.equal(sealed.mtu, 1390, 'the MTU leaves room for WireGuard (60) and VXLAN (50)');
    await until('sealed on host2', async () => (await suite.engine(2).dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes('sealed'), 10_000);

    await suite.engine(1).dockerOk(['run', '-d', '--name', 'vault', '--network', 'sealed', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    const ip = await suite.engine(1).dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "sealed").IPAddress}}', 'vault']);
    assert.match(await suite.engine(1).dockerOk(['exec', 'vault', 'ip', '-o', 'link', 'show', 'eth0']), /mtu 1390/);
    await suite.engine(2).dockerOk(['run', '-d', '--name', 'visitor', '--network', 'sealed', BUSYBOX_IMAGE, 'sleep', '3600']);
    let fetched = { code: -1, stdout: '', stderr: '' };
    const frames = await capture(suite.cluster, suite.cluster.host('host1').netns, 'eth0', [], async () => {
      // the first packets wait for the tunnel's first handshake (busybox wget has no working -T here: it crashes)
      fetched = await until('the page over the encrypted network', async () => {
        const r = await suite.engine(2).docker(['exec', 'visitor', 'wget', '-qO-', `http://${ip}/`]);
        return r.code === 0 ? r : undefined;
      }, 20_000);
    });
    assert.equal(fetched.stdout, INDEX_HTML, fetched.stderr);

    let wireguard = 0;
    const vnis: number[] = [];
    let clear = 0;
    for (const frame of frames) {
      if (Buffer.from(frame).includes(INDEX_HTML.trim())) clear++;
      const vxlan = decapsulate(frame);
      if (vxlan) vnis.push(vxlan.vni);
      try {
        const ethernet = decodeEthernet(frame);
        if (ethernet.ethertype !== ETHERTYPE_IPV4) continue;
        const ipv4 = decodeIpv4(ethernet.payload);
        if (ipv4.protocol === 17 && decodeUdp(ipv4.payload).dstPort === 51820) wireguard++;
      } catch {
        // not a whole IPv4/UDP frame
      }
    }
    assert.ok(wireguard > 0, 'the traffic went through WireGuard');
    assert.deepEqual(vnis.filter((vni) => vni === VNI), [], 'no VXLAN frame of the encrypted network on the underlay');
    assert.equal(clear, 0, 'the page is never readable on the wire');
    await suite.engine(1).dockerOk(['rm', '-f', 'vault']);
    await suite.engine(2).dockerOk(['rm', '-f', 'visitor']);
  });

  it('refuses a value -o encrypt does not take, in one sentence through Docker, leaving no network', async () => {
    const result = await suite.engine(1).docker(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--subnet', '10.42.0.0/24', '-o', 'encrypt=maybe', 'unsure']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /option "-o encrypt" takes no value or true\/false, not "maybe"/);
    assert.ok(!(await suite.admin.listNetworks()).some((n: Network) => n.name === 'unsure'));
    assert.ok(!(await suite.engine(1).dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes('unsure'));
  });
});
