/**
 * LinuxDataplane with a network namespace per network against real kernels: two "host" namespaces joined by
 * a veth underlay, a "container" namespace on each, the data plane running in each host through nsenter.
 * Proves where each device lives, that frames cross, that a new data plane (an agent restart) adopts
 * everything with no change, and that removing the network removes its namespace. Needs root; everything is
 * deleted afterwards, also when a test fails.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DesiredState } from '../../src/agent/dataplane.ts';
import { createRunner, execute } from '../../src/agent/kernel/exec.ts';
import { LinuxDataplane } from '../../src/agent/kernel/linux-dataplane.ts';
import { parseLinks } from '../../src/agent/kernel/read.ts';
import { desiredEndpoint, desiredNetwork } from '../unit/support/fixtures.ts';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (network namespaces)';

const id = `vxq-${process.pid}${randomBytes(2).toString('hex')}`;
const names = { h1: `${id}-h1`, h2: `${id}-h2`, c1: `${id}-c1`, c2: `${id}-c2` };
const prefix = (host: string) => `${host}-n`;
const path = (ns: string) => `/run/netns/${ns}`;

function deleteAllSync(): void {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const ours = listed.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${id}-`));
  if (ours.length) spawnSync('ip', ['-force', '-batch', '-'], { input: ours.map((n) => `netns del ${n}\n`).join('') });
}
process.on('exit', deleteAllSync);

const sh = (argv: string[], input?: string) => execute(argv, input === undefined ? {} : { input });
const linksIn = async (ns: string) => new Map(parseLinks((await sh(['ip', '-n', ns, '-j', '-d', 'addr', 'show'])).stdout).map((l) => [l.name, l]));
const ping = async (from: string, to: string) => (await execute(['ip', 'netns', 'exec', from, 'ping', '-c', '2', '-W', '2', to], { allowFailure: true })).code === 0;

function stateOf(local: string, remote: string, container: string, epId: string, ip: string, peerIp: string, peerMac: string): DesiredState {
  return {
    networks: [desiredNetwork(42, { localAddress: local })],
    peers: [{ vxlan: 'vxnv42', ip: peerIp, mac: peerMac, vtep: remote }],
    floods: [{ vxlan: 'vxnv42', vtep: remote }],
    endpoints: [desiredEndpoint(epId, 42, ip, { netns: path(container) })],
    vxlanFilter: { ports: [4789], allowedSources: [remote] },
  };
}

describe('LinuxDataplane with a network namespace per network', { skip, concurrency: false }, () => {
  const dataplanes: LinuxDataplane[] = [];
  const dataplane = (host: string) => {
    const made = new LinuxDataplane({ run: createRunner({ netns: path(host) }), networkNamespaces: { prefix: prefix(host) } });
    dataplanes.push(made);
    return made;
  };
  const s1 = stateOf('10.99.0.1', '10.99.0.2', names.c1, 'aaaaaaaaaaaa', '192.168.1.2', '192.168.1.3', '02:78:c0:a8:01:03');
  const s2 = stateOf('10.99.0.2', '10.99.0.1', names.c2, 'bbbbbbbbbbbb', '192.168.1.3', '192.168.1.2', '02:78:c0:a8:01:02');

  before(async () => {
    for (const ns of Object.values(names)) {
      await sh(['ip', 'netns', 'add', ns]);
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await sh(['ip', '-n', names.h1, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u0', 'netns', names.h2]);
    await sh(['ip', '-n', names.h1, '-batch', '-'], 'addr add 10.99.0.1/24 dev u0\nlink set u0 up\n');
    await sh(['ip', '-n', names.h2, '-batch', '-'], 'addr add 10.99.0.2/24 dev u0\nlink set u0 up\n');
  });
  after(async () => {
    await Promise.all(dataplanes.map((d) => d.close()));
    deleteAllSync();
  });

  it('puts the bridge, the VXLAN device and the host ends in the network namespace, the gateway in the host', async () => {
    const [r1, r2] = await Promise.all([dataplane(names.h1).reconcile(s1), dataplane(names.h2).reconcile(s2)]);
    assert.equal(r1.error, undefined);
    assert.equal(r2.error, undefined);
    assert.deepEqual([...r1.readyEndpoints], ['aaaaaaaaaaaa']);
    const inside = await linksIn(`${prefix(names.h1)}42`);
    assert.equal(inside.get('vxnb42')?.kind, 'bridge');
    assert.deepEqual([inside.get('vxnv42')?.kind, inside.get('vxnv42')?.master, inside.get('vxnv42')?.learning], ['vxlan', 'vxnb42', false]);
    assert.deepEqual([inside.get('vxng42')?.master, inside.get('vxnhaaaaaaaaaa')?.master], ['vxnb42', 'vxnb42']);
    assert.deepEqual(inside.get('vxnb42')?.ipv4, []);
    const host = await linksIn(names.h1);
    const gateway = host.get('vxnb42')!;
    assert.deepEqual([gateway.kind, gateway.mac, gateway.ipv4], ['veth', '02:78:c0:a8:01:01', ['192.168.1.1/24']]);
    assert.ok(![...host.keys()].some((n) => n.startsWith('vxnv') || n.startsWith('vxnh')), 'no VXLAN device or port in the host namespace');
    // the VXLAN socket stays on the host's underlay: the host namespace listens on 4789
    const sockets = await sh(['ip', 'netns', 'exec', names.h1, 'ss', '-uln']);
    assert.match(sockets.stdout, /:4789\b/);
    const entries = await sh(['bridge', '-n', `${prefix(names.h1)}42`, 'fdb', 'show', 'dev', 'vxnv42']);
    assert.match(entries.stdout, /02:78:c0:a8:01:03 dst 10\.99\.0\.2 (link-netnsid \d+ )?self permanent/);
  });

  it('carries frames across hosts and to the gateway', async () => {
    assert.ok(await ping(names.c1, '192.168.1.3'), 'c1 → c2 across the underlay');
    assert.ok(await ping(names.c1, '192.168.1.1'), 'c1 → its gateway');
  });

  it('checks anti-spoofing inside the network namespace: a forged source gets nowhere', async () => {
    await sh(['ip', '-n', names.c1, 'addr', 'add', '192.168.1.77/24', 'dev', 'eth0']);
    try {
      const forged = await execute(['ip', 'netns', 'exec', names.c1, 'ping', '-c', '2', '-W', '1', '-I', '192.168.1.77', '192.168.1.3'], { allowFailure: true });
      assert.notEqual(forged.code, 0);
      const counters = await sh(['nsenter', `--net=${path(`${prefix(names.h1)}42`)}`, 'nft', 'list', 'chain', 'bridge', 'vxnet', 'antispoof']);
      assert.match(counters.stdout, /packets [1-9]\d* bytes \d+ drop comment "IPv4 source is not the endpoint's"/);
    } finally {
      await sh(['ip', '-n', names.c1, 'addr', 'del', '192.168.1.77/24', 'dev', 'eth0']);
    }
  });

  it('a new data plane (an agent restart) adopts everything and changes nothing', async () => {
    const result = await dataplane(names.h1).reconcile(s1);
    assert.equal(result.error, undefined);
    assert.equal(result.changes, 0);
    assert.deepEqual([...result.readyEndpoints], ['aaaaaaaaaaaa']);
  });

  it('removes the namespace with the network, and the gateway with it', async () => {
    const result = await dataplane(names.h1).reconcile({ ...s1, networks: [], peers: [], floods: [], endpoints: [] });
    assert.equal(result.error, undefined);
    const listed = (await sh(['ip', 'netns', 'list'])).stdout;
    assert.doesNotMatch(listed, new RegExp(`${prefix(names.h1)}42`));
    assert.ok(![...(await linksIn(names.h1)).keys()].some((n) => n.startsWith('vxn')));
  });
});
