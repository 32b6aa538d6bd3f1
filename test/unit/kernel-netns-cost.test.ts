/**
 * What a pass costs with a namespace per network, counted in processes against a recording runner that
 * answers every read with what the real tools printed for two settled networks (captured by
 * test/fixtures/kernel/capture-netns.sh: 42 with a local endpoint and two peers, 43 with one peer). The
 * monitors in the host and inside each namespace (`ip monitor link address`, `ip monitor neigh`, `nft monitor`)
 * are fakes the test speaks for.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import type { DesiredState } from '../../src/agent/dataplane.ts';
import type { RunOptions, RunResult, Runner, Watch } from '../../src/agent/kernel/exec.ts';
import { LinuxDataplane } from '../../src/agent/kernel/linux-dataplane.ts';
import { desiredPerNetwork, inNamespace } from '../../src/agent/kernel/netns.ts';
import { NamespaceCaches } from '../../src/agent/kernel/netns-caches.ts';
import { desiredEndpoint, desiredNetwork } from './support/fixtures.ts';

const reads = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'kernel', 'netns-pass-reads.json'), 'utf8')) as Record<string, { code: number; stdout: string; stderr: string }>;
const PID = 4242;
// every monitor subscribed: RTNLGRP_LINK (1) and RTNLGRP_NEIGH (3) on NETLINK_ROUTE, NFNLGRP_NFTABLES (7) on NETLINK_NETFILTER
const NETLINK = `sk Eth Pid Groups\n0000 0 ${PID} 00000005 0 0 0 2 0 1\n0000 12 ${PID} 00000040 0 0 0 2 0 1\n`;

class FakeWatch implements Watch {
  readonly pid = PID;
  #end!: (code: number) => void;
  readonly exited = new Promise<number>((resolve) => (this.#end = resolve));
  readonly argv: readonly string[];
  readonly onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  constructor(argv: readonly string[], onLine: (line: string, stream: 'stdout' | 'stderr') => void) {
    this.argv = argv;
    this.onLine = onLine;
  }
  stop() {
    this.#end(143);
  }
}

/** Every process the data plane starts (monitors and the reads of /proc/net/netlink apart), in order. */
class RecordingKernel implements Runner {
  calls: { argv: string; input?: string }[] = [];
  watches: FakeWatch[] = [];
  #pid = 5000;
  /** a write that does not end before another process (`until`) has started, to prove they run side by side */
  hold: { write: string; until: string } | undefined;
  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const line = argv.join(' ');
    if (line.endsWith(' cat /proc/net/netlink')) return { argv, code: 0, stdout: NETLINK, stderr: '' };
    this.calls.push({ argv: line, ...(options.input !== undefined ? { input: options.input } : {}) });
    if (this.hold?.write === line) {
      const { until } = this.hold;
      for (let i = 0; i < 100 && !this.calls.some((c) => c.argv === until); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(this.calls.some((c) => c.argv === until), `${until} did not start while ${line} ran`);
    }
    if (options.input !== undefined) return { argv, code: 0, stdout: '', stderr: '', pid: this.#pid++ };
    const read = reads[line];
    assert.ok(read, `a read the captured pass did not make: ${line}`);
    return { argv, ...read };
  }
  watch(argv: readonly string[], onLine: (line: string, stream: 'stdout' | 'stderr') => void): Watch {
    const watch = new FakeWatch(argv, onLine);
    this.watches.push(watch);
    return watch;
  }
  /** the `ip monitor neigh` running inside namespace `name` */
  neighbourMonitor(name: string): FakeWatch {
    const found = this.watches.find((w) => w.argv.join(' ') === `nsenter --net=/run/netns/${name} ip monitor neigh`);
    assert.ok(found, `no entry monitor in ${name}`);
    return found;
  }
  async readFile(path: string) {
    return path === '/proc/net/netlink' ? NETLINK : path.endsWith('ip_forward') ? '1\n' : undefined;
  }
  async writeFile() {}
  async exists() {
    return true;
  }
  async listDir(path: string) {
    return path === '/run/netns' ? ['CONTAINER', 'vxnet-42', 'vxnet-43'] : undefined;
  }
  /** the `ip monitor link address` of namespace `name` (undefined: the host's) */
  linkMonitor(name?: string): FakeWatch {
    const argv = name === undefined ? 'ip monitor link address' : `nsenter --net=/run/netns/${name} ip monitor link address`;
    const found = this.watches.find((w) => w.argv.join(' ') === argv);
    assert.ok(found, `no link monitor for ${name ?? 'the host'}: ${this.watches.map((w) => w.argv.join(' ')).join(', ')}`);
    return found;
  }
  /** the calls since the last take */
  take(): string[] {
    const taken = this.calls.map((c) => c.argv);
    this.calls = [];
    return taken;
  }
}

const peer = (third: number, host: number, vtep: string, vni = third === 1 ? 42 : 43) => ({
  vxlan: `vxnv${vni}`,
  ip: `192.168.${third}.${host}`,
  mac: `02:78:c0:a8:0${third}:${host.toString(16).padStart(2, '0')}`,
  vtep,
});
const endpoint = { ...desiredEndpoint('aaaaaaaaaaaa', 42), netns: '/run/netns/CONTAINER' };
const settled: DesiredState = {
  networks: [
    desiredNetwork(42),
    desiredNetwork(43, { gatewayMac: '02:78:c0:a8:03:01', gatewayAddresses: ['192.168.3.1/24'], subnets: ['192.168.3.0/24'] }),
  ],
  peers: [peer(1, 20, '10.99.0.2'), peer(1, 21, '10.99.0.3'), peer(3, 20, '10.99.0.2')],
  floods: [
    { vxlan: 'vxnv42', vtep: '10.99.0.2' },
    { vxlan: 'vxnv42', vtep: '10.99.0.3' },
    { vxlan: 'vxnv43', vtep: '10.99.0.2' },
  ],
  endpoints: [endpoint],
  vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.2', '10.99.0.3'] },
};
const isDump = (argv: string) => / -j (neigh show|fdb show)/.test(argv);

describe('a pass with a namespace per network: what it costs', () => {
  let kernel: RecordingKernel;
  let dataplane: LinuxDataplane;
  beforeEach(async () => {
    kernel = new RecordingKernel();
    dataplane = new LinuxDataplane({ run: kernel, networkNamespaces: { prefix: 'vxnet-' }, tuneNeighbourTable: false });
    const first = await dataplane.reconcile(settled);
    assert.equal(first.error, undefined);
    assert.equal(first.changes, 0, 'the captured kernel is the settled state');
    assert.deepEqual(kernel.take().filter(isDump).sort(), [
      'bridge -n vxnet-42 -j fdb show state static',
      'bridge -n vxnet-43 -j fdb show state static',
      'ip -n vxnet-42 -j neigh show nud permanent',
      'ip -n vxnet-43 -j neigh show nud permanent',
    ]);
    assert.deepEqual(kernel.watches.map((w) => w.argv.join(' ')).filter((a) => a.includes('ip monitor neigh')).sort(), [
      'nsenter --net=/run/netns/vxnet-42 ip monitor neigh',
      'nsenter --net=/run/netns/vxnet-43 ip monitor neigh',
    ]);
  });

  it('reads nothing when nothing changed', async () => {
    const pass = await dataplane.reconcile(settled);
    assert.equal(pass.changes, 0);
    assert.deepEqual(kernel.take(), []);
    await dataplane.close();
  });

  it('reads the links of a place again when its monitor printed anything, and those of every place after a pass that wrote one', async () => {
    kernel.linkMonitor('vxnet-43').onLine('7: vxnh43aaaaaaaa@if2: <BROADCAST,MULTICAST> mtu 1450 qdisc noop state DOWN', 'stdout');
    assert.equal((await dataplane.reconcile(settled)).changes, 0);
    assert.deepEqual(kernel.take(), ['ip -n vxnet-43 -j -d addr show']);
    kernel.linkMonitor().onLine('Deleted 9: vxnb42@if2: <BROADCAST,MULTICAST,UP,LOWER_UP>', 'stdout');
    assert.equal((await dataplane.reconcile(settled)).changes, 0);
    assert.deepEqual(kernel.take(), ['ip -j -d addr show']);
    // a pass that writes a link: the next pass reads every place, whatever the monitors said
    const second = { ...desiredEndpoint('bbbbbbbbbbbb', 42), netns: '/run/netns/CONTAINER2' };
    assert.equal((await dataplane.reconcile({ ...settled, endpoints: [endpoint, second] })).error, undefined);
    kernel.take();
    await dataplane.reconcile({ ...settled, endpoints: [endpoint, second] });
    assert.deepEqual(kernel.take().filter((c) => c.endsWith('-j -d addr show')).sort(), ['ip -j -d addr show', 'ip -n vxnet-42 -j -d addr show', 'ip -n vxnet-43 -j -d addr show']);
    await dataplane.close();
  });

  it("reads a place's links again between passes shortly after its monitor printed a line, so the next pass reads nothing", async () => {
    kernel.linkMonitor().onLine('Deleted 12: vxncbbbbbbbbbb@vxnhbbbbbbbbbb: <BROADCAST,MULTICAST> mtu 1450', 'stdout');
    for (let i = 0; i < 100 && !kernel.calls.some((c) => c.argv === 'ip -j -d addr show'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(kernel.take(), ['ip -j -d addr show'], 'only the host, in the background');
    assert.equal((await dataplane.reconcile(settled)).changes, 0);
    assert.deepEqual(kernel.take(), []);
    await dataplane.close();
  });

  it('reads the links every pass while a monitor is not subscribed', async () => {
    const unsubscribed = new LinuxDataplane({ run: kernel, networkNamespaces: { prefix: 'vxnet-' }, tuneNeighbourTable: false, watchLinks: false });
    assert.equal((await unsubscribed.reconcile(settled)).changes, 0);
    kernel.take();
    assert.equal((await unsubscribed.reconcile(settled)).changes, 0);
    assert.deepEqual(kernel.take().filter((c) => c.endsWith('-j -d addr show')).sort(), ['ip -j -d addr show', 'ip -n vxnet-42 -j -d addr show', 'ip -n vxnet-43 -j -d addr show']);
    await Promise.all([unsubscribed.close(), dataplane.close()]);
  });

  it("costs a settled network no entry dump when another network's peers change, nor the changed one's after its write", async () => {
    const more = { ...settled, peers: [...settled.peers, peer(1, 22, '10.99.0.3')] };
    const change = await dataplane.reconcile(more);
    assert.equal(change.error, undefined);
    assert.ok(change.changes > 0);
    const calls = kernel.take();
    assert.deepEqual(calls.filter(isDump), []);
    assert.ok(!calls.some((c) => c.includes('vxnet-43') && !c.endsWith('-j -d addr show')), `network 43 is only listed:\n${calls.join('\n')}`);
    assert.ok(calls.includes('ip -n vxnet-42 -force -batch -') && calls.includes('bridge -n vxnet-42 -force -batch -'));

    // written through: the next pass finds the new peer in the kept dump although the captured kernel lacks it
    const after = await dataplane.reconcile(more);
    assert.equal(after.changes, 0);
    assert.deepEqual(kernel.take().filter(isDump), []);
    await dataplane.close();
  });

  it("dumps only the namespace whose monitor reported somebody else's change", async () => {
    kernel.neighbourMonitor('vxnet-43').onLine('192.168.3.99 dev vxnv43 lladdr 02:78:c0:a8:03:63 PERMANENT', 'stdout');
    const pass = await dataplane.reconcile(settled);
    assert.equal(pass.error, undefined);
    assert.deepEqual(kernel.take().filter(isDump).sort(), ['bridge -n vxnet-43 -j fdb show state static', 'ip -n vxnet-43 -j neigh show nud permanent']);
    await dataplane.close();
  });

  it('attaches an endpoint to a network already here in three processes, its veth pair made while its anti-spoofing element is written', async () => {
    const second = { ...desiredEndpoint('bbbbbbbbbbbb', 42), netns: '/run/netns/CONTAINER2' };
    kernel.hold = { write: 'nsenter --net=/run/netns/vxnet-42 nft -f -', until: 'nsenter --net=/run/netns/CONTAINER2 ip -batch -' };
    const pass = await dataplane.reconcile({ ...settled, endpoints: [endpoint, second] });
    assert.equal(pass.error, undefined);
    assert.deepEqual([...pass.readyEndpoints].sort(), ['aaaaaaaaaaaa', 'bbbbbbbbbbbb']);
    const container = kernel.calls.find((c) => c.argv === 'nsenter --net=/run/netns/CONTAINER2 ip -batch -');
    const calls = kernel.take();
    // no read: the links are as the last pass read them (the monitors printed nothing since)
    // the veth pair and the container's side are made while the anti-spoofing transaction runs (see hold), by
    // the process that configures the container's side, its host end sent to the network's namespace
    assert.deepEqual([...calls].sort(), ['ip -n vxnet-42 -force -batch -', 'nsenter --net=/run/netns/CONTAINER2 ip -batch -', 'nsenter --net=/run/netns/vxnet-42 nft -f -']);
    assert.match(container!.input!, /^link add name vxncbbbbbbbbbb mtu 1450 address 02:78:c0:a8:01:02 type veth peer name vxnhbbbbbbbbbb mtu 1450 netns vxnet-42\nlink set dev vxncbbbbbbbbbb name eth0\n/);
    assert.equal(calls.at(-1), 'ip -n vxnet-42 -force -batch -', 'the attach comes last');
    await dataplane.close();
  });
});

describe("a network namespace's kept state (NamespaceCaches)", () => {
  it('skips the entry diff only while the dump is reused and the peers and floods are the very same objects', async () => {
    const kernel = new RecordingKernel();
    const caches = new NamespaceCaches({ log: () => {}, watchTables: true, watchEntries: true });
    const inside = inNamespace(kernel, 'vxnet-43');
    const read = () => caches.readers().entries!('vxnet-43', inside, Promise.resolve(new Map()));
    const part = desiredPerNetwork(settled).get('vxnb43')!;
    assert.deepEqual(part.peers, [settled.peers[2]]);
    await read();
    assert.equal(caches.entriesSettled('vxnet-43', part), false, 'a fresh dump');
    caches.settled('vxnet-43', part);
    await read();
    assert.equal(caches.entriesSettled('vxnet-43', desiredPerNetwork(settled).get('vxnb43')!), true, 'new lists of the same peers');
    const remade = { ...settled, peers: settled.peers.map((p) => (p.vxlan === 'vxnv43' ? { ...p } : p)) };
    assert.equal(caches.entriesSettled('vxnet-43', desiredPerNetwork(remade).get('vxnb43')!), false, 'a peer the renderer made anew');
    kernel.neighbourMonitor('vxnet-43').onLine('192.168.3.99 dev vxnv43 lladdr 02:78:c0:a8:03:63 PERMANENT', 'stdout');
    await read();
    assert.equal(caches.entriesSettled('vxnet-43', part), false, "after somebody else's change");
    await read();
    assert.equal(caches.entriesSettled('vxnet-43', part), true);
    caches.settled('vxnet-43', undefined);
    assert.equal(caches.entriesSettled('vxnet-43', part), false, 'a pass with doubt');
    await caches.forget();
  });
});
