/**
 * LinuxDataplane's apply logic against a recording fake runner: which commands a pass issues, in which
 * order, and how failures are attributed, undone and reported. (The real kernel is exercised by
 * test/integration/kernel-dataplane.test.ts.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DesiredEndpoint, DesiredNetwork, DesiredState } from '../../src/agent/dataplane.ts';
import { HostToolError, type RunOptions, type RunResult, type Runner } from '../../src/agent/kernel/exec.ts';
import { LinuxDataplane, WRITE_THROUGH_MAX_STEPS } from '../../src/agent/kernel/linux-dataplane.ts';
import { renderFirewall } from '../../src/agent/kernel/nftables.ts';
import { ANTISPOOF_HASH } from '../../src/agent/kernel/antispoof.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');

type Reply = Partial<RunResult> | undefined;

class FakeRunner implements Runner {
  readonly calls: { argv: string[]; input?: string }[] = [];
  readonly files = new Map<string, string>([['/proc/sys/net/ipv4/ip_forward', '1\n']]);
  readonly writes: [string, string][] = [];
  readonly namespaces = new Set<string>();
  links = '[]';
  neighbours = '[]';
  fdb = '[]';
  firewall: Reply = { code: 1, stderr: 'Error: No such file or directory\nlist table ip vxnet\n' };
  antispoof: Reply = { code: 1, stderr: 'Error: No such file or directory\nlist table bridge vxnet\n' };
  /** replies to anything else; default: success */
  handler: (argv: string[], input?: string) => Reply = () => undefined;

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call = { argv: [...argv], ...(options.input !== undefined ? { input: options.input } : {}) };
    this.calls.push(call);
    const line = argv.join(' ');
    let reply: Reply;
    if (line === 'ip -j -d addr show') reply = { stdout: this.links };
    else if (line === 'ip -j neigh show nud permanent') reply = { stdout: this.neighbours };
    else if (line === 'bridge -j fdb show state static') reply = { stdout: this.fdb };
    else if (line === 'nft -j list table ip vxnet') reply = this.firewall;
    else if (line === 'nft -j list table bridge vxnet') reply = this.antispoof;
    else reply = this.handler(call.argv, options.input);
    const result: RunResult = { argv, code: reply?.code ?? 0, stdout: reply?.stdout ?? '', stderr: reply?.stderr ?? '', pid: this.pid() };
    if (result.code !== 0 && !options.allowFailure) throw new HostToolError(argv, result.code, result.stderr);
    return result;
  }
  async readFile(path: string) {
    return this.files.get(path);
  }
  async writeFile(path: string, content: string) {
    this.writes.push([path, content]);
    this.files.set(path, content);
  }
  async exists(path: string) {
    return this.namespaces.has(path);
  }
  /** the pid the latest call ran as */
  pid(): number {
    return 5000 + this.calls.length;
  }
  /** calls other than the reads of a pass */
  writesOnly() {
    return this.calls.filter((c) => !/^(ip -j -d addr show|ip -j neigh show|bridge -j fdb show|nft -j list)/.test(c.argv.join(' ')));
  }
}

/** The network the capture script built (test/fixtures/kernel/capture.sh). */
const net42: DesiredNetwork = {
  name: 'front', vni: 42, bridge: 'vxnb42', vxlan: 'vxnv42', port: 4789, mtu: 1450, localAddress: '10.99.0.1',
  gatewayMac: '02:78:c0:a8:01:01', gatewayAddresses: ['192.168.1.1/24', '192.168.2.1/24'],
  subnets: ['192.168.1.0/24', '192.168.2.0/24'], internal: false,
};
const endpointA: DesiredEndpoint = {
  id: 'aaaaaaaaaaaa', bridge: 'vxnb42', hostVeth: 'vxnhaaaaaaaaaa', peerVeth: 'vxncaaaaaaaaaa', netns: '/run/netns/c1',
  ifname: 'eth0', mac: '02:78:c0:a8:01:02', address: '192.168.1.2/24', gateway: '192.168.1.1', mtu: 1450, extraRoutes: [],
};
const captured: DesiredState = {
  networks: [net42],
  peers: [
    { vxlan: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14', vtep: '10.99.0.2' },
    { vxlan: 'vxnv42', ip: '192.168.1.21', mac: '02:78:c0:a8:01:15', vtep: '10.99.0.3' },
  ],
  floods: [{ vxlan: 'vxnv42', vtep: '10.99.0.2' }, { vxlan: 'vxnv42', vtep: '10.99.0.3' }],
  endpoints: [endpointA],
  vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.2', '10.99.0.3'] },
};

/** The captured namespace without its leftovers, with our firewall installed: converged for `captured`. */
function convergedFake(): FakeRunner {
  const fake = new FakeRunner();
  const leftovers = new Set(['vxnv43', 'vxnhbbbbbbbbbb', 'vxncbbbbbbbbbb']);
  fake.links = JSON.stringify((JSON.parse(fixture('ip-addr-detail.json')) as { ifname: string }[]).filter((l) => !leftovers.has(l.ifname)));
  fake.neighbours = fixture('ip-neigh-permanent.json');
  fake.fdb = fixture('bridge-fdb-permanent.json');
  const { hash } = renderFirewall([net42], captured.vxlanFilter);
  fake.firewall = {
    stdout: JSON.stringify({
      nftables: [
        { table: { family: 'ip', name: 'vxnet', handle: 1 } },
        { rule: { family: 'ip', table: 'vxnet', chain: 'forward', handle: 2, expr: [], comment: `vxnet rules sha256:${hash}` } },
      ],
    }),
  };
  fake.antispoof = { stdout: antispoofTable([['vxnhaaaaaaaaaa', '02:78:c0:a8:01:02', '192.168.1.2']]) };
  return fake;
}

/** `nft -j list table bridge vxnet` with the current rules and these endpoints in its sets. */
function antispoofTable(ports: [string, string, string][]): string {
  const set = (name: string, elem: string[][]) => ({ set: { family: 'bridge', table: 'vxnet', name, ...(elem.length ? { elem: elem.map((concat) => ({ concat })) } : {}) } });
  return JSON.stringify({
    nftables: [
      { table: { family: 'bridge', name: 'vxnet', handle: 2 } },
      set('endpoint_macs', ports.map(([port, mac]) => [port, mac])),
      set('endpoint_ips', ports.map(([port, , ip]) => [port, ip])),
      { rule: { family: 'bridge', table: 'vxnet', chain: 'antispoof', handle: 5, expr: [], comment: `vxnet antispoof sha256:${ANTISPOOF_HASH}` } },
    ],
  });
}

const lines = (input?: string) => (input ?? '').trim().split('\n');

/**
 * Gives the fake an `ip monitor neigh` and an `nft monitor`, both subscribed at once; returns how to make
 * the first print a line (`nft` the second).
 */
function withMonitor(fake: FakeRunner): ((line: string) => void) & { nft: (line: string) => void } {
  const printers = new Map<string, (line: string, stream: 'stdout' | 'stderr') => void>();
  const pids = new Map([['ip monitor neigh', 4242], ['nft monitor', 4243]]);
  (fake as FakeRunner & Pick<Runner, 'watch'>).watch = (argv, onLine) => {
    printers.set(argv.join(' '), onLine);
    let stop = (_code: number) => {};
    const exited = new Promise<number>((resolve) => (stop = resolve));
    return { pid: pids.get(argv.join(' ')), exited, stop: () => stop(143) };
  };
  fake.files.set('/proc/net/netlink', 'sk Eth Pid Groups\n0000 0 4242 00000004 0 0 0 2 0 1\n0001 12 4243 00000040 0 0 0 2 0 1\n');
  return Object.assign((line: string) => printers.get('ip monitor neigh')!(line, 'stdout'), {
    nft: (line: string) => printers.get('nft monitor')!(line, 'stdout'),
  });
}

describe('LinuxDataplane with a fake runner', () => {
  it('reads the state once and writes nothing when the kernel already matches', async () => {
    const fake = convergedFake();
    const result = await new LinuxDataplane({ run: fake, tuneNeighbourTable: false }).reconcile(captured);
    assert.deepEqual(result, { changes: 0, endpointErrors: new Map(), readyEndpoints: new Set(['aaaaaaaaaaaa']) });
    assert.deepEqual(fake.calls.map((c) => c.argv.join(' ')).sort(), [
      'bridge -j fdb show state static',
      'ip -j -d addr show',
      'ip -j neigh show nud permanent',
      'nft -j list table bridge vxnet',
      'nft -j list table ip vxnet',
    ]);
    assert.deepEqual(fake.writes, []);
  });

  it('builds a fresh host in order: sysctl, firewall, links, entries, then endpoints', async () => {
    const fake = new FakeRunner();
    fake.files.set('/proc/sys/net/ipv4/ip_forward', '0\n');
    fake.namespaces.add('/run/netns/c1');
    const logs: string[] = [];
    const result = await new LinuxDataplane({ run: fake, log: (l) => logs.push(l), tuneNeighbourTable: false }).reconcile(captured);
    assert.equal(result.error, undefined);
    assert.deepEqual([...result.readyEndpoints], ['aaaaaaaaaaaa']);
    assert.deepEqual(fake.writes, [['/proc/sys/net/ipv4/ip_forward', '1\n']]);
    const writes = fake.writesOnly();
    assert.deepEqual(
      writes.map((c) => c.argv.join(' ')),
      [
        'nft -f -',
        'ip -force -batch -',
        'ip -force -batch -',
        'bridge -force -batch -',
        'ip -force -batch -',
        'nsenter --net=/run/netns/c1 ip -batch -',
        'ip -force -batch -',
      ],
    );
    assert.match(writes[0]!.input!, /^table ip vxnet\ndelete table ip vxnet\ntable ip vxnet \{/);
    // the anti-spoofing table, with the new endpoint's port in it, in the same transaction, before any veth
    assert.match(writes[0]!.input!, /\ntable bridge vxnet\ndelete table bridge vxnet\ntable bridge vxnet \{\n\tset endpoint_macs \{\n\t\ttype ifname \. ether_addr\n\t\telements = \{ "vxnhaaaaaaaaaa" \. 02:78:c0:a8:01:02 \}/);
    assert.deepEqual(lines(writes[1]!.input), [
      'link add name vxnb42 address 02:78:c0:a8:01:01 mtu 1450 type bridge',
      'link add name vxnv42 mtu 1450 type vxlan id 42 dstport 4789 local 10.99.0.1 nolearning proxy',
      'link set dev vxnb42 up',
      'link set dev vxnv42 master vxnb42 up',
      'link set dev vxnv42 type bridge_slave learning off',
      'addr add 192.168.1.1/24 dev vxnb42',
      'addr add 192.168.2.1/24 dev vxnb42',
    ]);
    assert.equal(lines(writes[2]!.input).length, 2);
    // 2 remote MACs at their VTEPs, 2 flood entries, then the bridge's static entries for the 2 MACs
    assert.deepEqual(lines(writes[3]!.input).slice(4), ['fdb replace 02:78:c0:a8:01:14 dev vxnv42 master static', 'fdb replace 02:78:c0:a8:01:15 dev vxnv42 master static']);
    assert.deepEqual(lines(writes[6]!.input), ['link set dev vxnhaaaaaaaaaa master vxnb42 up']);
    // 7 link steps + forwarding + firewall + anti-spoofing table + 2 neighbours + 6 FDB entries + 1 endpoint
    assert.equal(result.changes, 19);
  });

  it('reports a missing target namespace and creates nothing for that endpoint', async () => {
    const fake = convergedFake();
    const missing = { ...endpointA, id: 'bbbbbbbbbbbb', hostVeth: 'vxnhbbbbbbbbbb', peerVeth: 'vxncbbbbbbbbbb', netns: '/run/netns/x' };
    const result = await new LinuxDataplane({ run: fake, tuneNeighbourTable: false }).reconcile({ ...captured, endpoints: [endpointA, missing] });
    assert.deepEqual(result.endpointErrors, new Map([['bbbbbbbbbbbb', 'network namespace /run/netns/x does not exist']]));
    assert.deepEqual([...result.readyEndpoints], ['aaaaaaaaaaaa']);
    // only its port's anti-spoofing elements (harmless, and in place before the namespace shows up)
    assert.deepEqual(fake.writesOnly().map((c) => [c.argv.join(' '), lines(c.input)]), [[
      'nft -f -',
      ['add element bridge vxnet endpoint_macs { "vxnhbbbbbbbbbb" . 02:78:c0:a8:01:02 }', 'add element bridge vxnet endpoint_ips { "vxnhbbbbbbbbbb" . 192.168.1.2 }'],
    ]]);
  });

  it('undoes an endpoint whose namespace setup fails half-way and reports the failing line', async () => {
    const fake = convergedFake();
    fake.namespaces.add('/run/netns/c2');
    const second = { ...endpointA, id: 'bbbbbbbbbbbb', hostVeth: 'vxnhbbbbbbbbbb', peerVeth: 'vxncbbbbbbbbbb', netns: '/run/netns/c2' };
    fake.handler = (argv) =>
      argv[0] === 'nsenter' ? { code: 1, stderr: 'RTNETLINK answers: File exists\nCommand failed -:1\n' } : undefined;
    const result = await new LinuxDataplane({ run: fake, tuneNeighbourTable: false }).reconcile({ ...captured, endpoints: [endpointA, second] });
    assert.equal(
      result.endpointErrors.get('bbbbbbbbbbbb'),
      'configuring eth0 in /run/netns/c2 failed at "link set dev vxncbbbbbbbbbb name eth0": RTNETLINK answers: File exists',
    );
    assert.ok(!result.readyEndpoints.has('bbbbbbbbbbbb'));
    const writes = fake.writesOnly().filter((c) => c.argv[0] !== 'nft');
    // create the pair with its peer in the namespace, configure inside (fails), no attach, undo
    assert.deepEqual(writes.map((c) => c.argv.join(' ')), ['ip -force -batch -', 'nsenter --net=/run/netns/c2 ip -batch -', 'ip -force -batch -']);
    assert.deepEqual(lines(writes[0]!.input), [
      'link add name vxnhbbbbbbbbbb mtu 1450 type veth peer name vxncbbbbbbbbbb mtu 1450 address 02:78:c0:a8:01:02 netns /run/netns/c2',
    ]);
    assert.deepEqual(lines(writes[2]!.input), ['link del dev vxnhbbbbbbbbbb']);
  });

  it('keeps programming neighbours when ip neigh stops at a bad entry, and names the culprit', async () => {
    const fake = convergedFake();
    const peers = Array.from({ length: 10 }, (_, i) => ({
      vxlan: 'vxnv42', ip: `192.168.1.${100 + i}`, mac: `02:78:c0:a8:01:${(100 + i).toString(16)}`, vtep: '10.99.0.2',
    }));
    const state = { ...captured, peers: [...captured.peers, ...peers] };
    const applied: string[] = [];
    let neighRuns = 0;
    fake.handler = (argv, input) => {
      if (argv.join(' ') !== 'ip -force -batch -' || !input?.startsWith('neigh')) return undefined;
      neighRuns++;
      const batch = lines(input);
      for (const line of batch) {
        if (line.includes('192.168.1.104 ')) {
          // ip neigh exits on the first kernel error: no "Command failed" line
          return { code: 2, stderr: 'Error: Invalid argument.\n' };
        }
        applied.push(line);
      }
      return undefined;
    };
    // the re-read after the stop sees what ran
    const originalRun = fake.run.bind(fake);
    fake.run = async (argv, options) => {
      if (argv.join(' ') === 'ip -j neigh show nud permanent' && applied.length) {
        fake.neighbours = JSON.stringify([
          ...JSON.parse(fixture('ip-neigh-permanent.json')),
          ...applied.map((l) => {
            const [, , ip, , mac] = l.split(' ');
            return { dst: ip, dev: 'vxnv42', lladdr: mac, state: ['PERMANENT'] };
          }),
        ]);
      }
      return originalRun(argv, options);
    };
    const result = await new LinuxDataplane({ run: fake, tuneNeighbourTable: false }).reconcile(state);
    assert.equal(neighRuns, 2);
    assert.equal(applied.length, 9);
    assert.match(result.error!, /1 of 10 neighbour changes failed, first "neigh replace 192\.168\.1\.104 lladdr 02:78:c0:a8:01:68 dev vxnv42 nud permanent": Error: Invalid argument\./);
    // 9 neighbours + 10 FDB entries + 10 static bridge entries
    assert.equal(result.changes, 29);
  });

  it('does not program entries or endpoints of a network whose devices failed, and says why', async () => {
    const fake = new FakeRunner();
    fake.namespaces.add('/run/netns/c1');
    fake.handler = (_argv, input) =>
      input?.startsWith('link add name vxnb42')
        ? { code: 1, stderr: 'Error: A VXLAN device with the specified VNI already exists.\nCommand failed -:2\n' }
        : undefined;
    const result = await new LinuxDataplane({ run: fake, tuneNeighbourTable: false }).reconcile(captured);
    assert.match(result.error!, /"link add name vxnv42 .*": Error: A VXLAN device with the specified VNI already exists\./);
    assert.match(result.endpointErrors.get('aaaaaaaaaaaa')!, /^network device setup failed: /);
    const tools = fake.writesOnly().map((c) => c.argv[0]);
    assert.deepEqual(tools, ['nft', 'ip']);
  });

  it('raises the neighbour GC thresholds once, only where they exist and are lower', async () => {
    const fake = convergedFake();
    fake.files.set('/proc/sys/net/ipv4/neigh/default/gc_thresh1', '128\n');
    fake.files.set('/proc/sys/net/ipv4/neigh/default/gc_thresh2', '512\n');
    fake.files.set('/proc/sys/net/ipv4/neigh/default/gc_thresh3', '100000\n');
    const dataplane = new LinuxDataplane({ run: fake });
    await dataplane.reconcile(captured);
    await dataplane.reconcile(captured);
    assert.deepEqual(fake.writes, [
      ['/proc/sys/net/ipv4/neigh/default/gc_thresh2', '49152\n'],
      ['/proc/sys/net/ipv4/neigh/default/gc_thresh1', '8192\n'],
    ]);
  });

  it('reports an unreadable kernel state as a pass error without writing anything', async () => {
    const fake = convergedFake();
    const originalRun = fake.run.bind(fake);
    fake.run = async (argv, options) => {
      if (argv.join(' ') === 'ip -j -d addr show') throw new HostToolError(argv, 1, 'Cannot open netlink socket: Operation not permitted\n');
      return originalRun(argv, options);
    };
    const result = await new LinuxDataplane({ run: fake }).reconcile(captured);
    assert.match(result.error!, /^reading the kernel state failed: ip -j -d addr show failed \(exit 1\): Cannot open netlink socket/);
    assert.equal(result.changes, 0);
    assert.deepEqual(fake.writesOnly(), []);
  });

  it('serialises overlapping passes', async () => {
    const fake = convergedFake();
    let active = 0;
    let maxActive = 0;
    const originalRun = fake.run.bind(fake);
    fake.run = async (argv, options) => {
      if (argv.join(' ') === 'ip -j -d addr show') {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
      }
      return originalRun(argv, options);
    };
    const dataplane = new LinuxDataplane({ run: fake, tuneNeighbourTable: false });
    await Promise.all([dataplane.reconcile(captured), dataplane.reconcile(captured), dataplane.reconcile(captured)]);
    assert.equal(maxActive, 1);
  });

  it('with the entries vouched for by the monitor and the same lists, changes nothing; a kernel event or a new list is diffed', async () => {
    const fake = convergedFake();
    const monitor = withMonitor(fake);
    const dataplane = new LinuxDataplane({ run: fake, tuneNeighbourTable: false });
    const neighbourWrites = () => fake.writesOnly().filter((c) => c.argv.join(' ') === 'ip -force -batch -');
    assert.equal((await dataplane.reconcile(captured)).changes, 0);
    assert.equal((await dataplane.reconcile({ ...captured, networks: [...captured.networks] })).changes, 0);
    assert.equal(fake.calls.filter((c) => c.argv.join(' ') === 'ip -j neigh show nud permanent').length, 1, 'the dump is reused');

    // the kernel lost an entry and said so: the same lists are diffed against a fresh dump, and it is put back
    const neighbours = JSON.parse(fake.neighbours) as { dst: string; dev: string }[];
    fake.neighbours = JSON.stringify(neighbours.filter((n) => !(n.dev === 'vxnv42' && n.dst === '192.168.1.20')));
    monitor('Deleted 192.168.1.20 dev vxnv42 lladdr 02:78:c0:a8:01:14 PERMANENT');
    const repaired = await dataplane.reconcile(captured);
    assert.equal(repaired.changes, 1);
    assert.deepEqual(lines(neighbourWrites().at(-1)?.input), ['neigh replace 192.168.1.20 lladdr 02:78:c0:a8:01:14 dev vxnv42 nud permanent']);
    fake.neighbours = JSON.stringify(neighbours);

    // settled again, then a new list with one more peer: that peer is programmed
    assert.equal((await dataplane.reconcile(captured)).changes, 0);
    const more = { ...captured, peers: [...captured.peers, { vxlan: 'vxnv42', ip: '192.168.1.22', mac: '02:78:c0:a8:01:16', vtep: '10.99.0.3' }] };
    const added = await dataplane.reconcile(more);
    assert.equal(added.changes, 3); // neighbour, VXLAN FDB entry, static bridge entry
    assert.deepEqual(lines(neighbourWrites().at(-1)?.input), ['neigh replace 192.168.1.22 lladdr 02:78:c0:a8:01:16 dev vxnv42 nud permanent']);
    await dataplane.close();
  });

  it('after changing one peer, the next passes reuse the dump with the change written through; a failed line or a foreign event means a dump', async () => {
    // the fake kernel's entries never change: a pass that dumped would see the old VTEP and write it again
    const fake = convergedFake();
    const monitor = withMonitor(fake);
    const dumps = () => fake.calls.filter((c) => c.argv.join(' ') === 'ip -j neigh show nud permanent').length;
    const fdbWrites = () => fake.writesOnly().filter((c) => c.argv.join(' ') === 'bridge -force -batch -');
    let failFdb = false;
    fake.handler = (argv) => {
      if (argv.join(' ') !== 'bridge -force -batch -') return undefined;
      if (failFdb) return { code: 1, stderr: 'RTNETLINK answers: Invalid argument\nCommand failed -:1\n' };
      // what the kernel prints for it (test/fixtures/kernel/ip-monitor-neigh-writes.txt)
      monitor('10.99.0.4 dev vxnv42 lladdr 02:78:c0:a8:01:15 NOARP PERMANENT ');
      return undefined;
    };
    const dataplane = new LinuxDataplane({ run: fake, tuneNeighbourTable: false });
    assert.equal((await dataplane.reconcile(captured)).changes, 0);
    assert.equal(dumps(), 1);

    const moved = { ...captured, peers: [captured.peers[0]!, { ...captured.peers[1]!, vtep: '10.99.0.4' }] };
    assert.equal((await dataplane.reconcile(moved)).changes, 1);
    assert.deepEqual(lines(fdbWrites().at(-1)?.input), ['fdb replace 02:78:c0:a8:01:15 dev vxnv42 dst 10.99.0.4 self permanent']);
    const written = fake.writesOnly().length;
    assert.equal((await dataplane.reconcile(moved)).changes, 0, 'the cached entries hold the new VTEP');
    assert.equal((await dataplane.reconcile({ ...moved })).changes, 0);
    assert.equal(fake.writesOnly().length, written, 'nothing written after the change');
    assert.equal(dumps(), 1, 'no dump after our own change');

    // moving it back fails: the next pass reads the kernel again (which still has the old VTEP: nothing to do)
    failFdb = true;
    assert.match((await dataplane.reconcile(captured)).error ?? '', /1 of 1 FDB changes failed/);
    failFdb = false;
    assert.equal((await dataplane.reconcile(captured)).changes, 0);
    assert.equal(dumps(), 2);
    assert.equal((await dataplane.reconcile(captured)).changes, 0);
    assert.equal(dumps(), 2);

    // somebody else's change to an owned device: read again
    monitor('Deleted 10.99.0.3 dev vxnv42 lladdr 02:78:c0:a8:01:15 NOARP PERMANENT ');
    assert.equal((await dataplane.reconcile(captured)).changes, 0);
    assert.equal(dumps(), 3);
    await dataplane.close();
  });

  it('reads the nftables tables once while only its own transactions touch them; a foreign one or a failed write means a read', async () => {
    const fake = convergedFake();
    const monitor = withMonitor(fake);
    fake.namespaces.add('/run/netns/c2');
    let failNft = false;
    fake.handler = (argv) => {
      if (argv.join(' ') !== 'nft -f -') return undefined;
      if (failNft) return { code: 1, stderr: 'Error: Could not process rule: No such file or directory\n' };
      // what `nft monitor` prints for our own transaction, before our nft is seen to exit
      monitor.nft('add element bridge vxnet endpoint_macs { "vxnhbbbbbbbbbb" . 02:78:c0:a8:01:03 }');
      monitor.nft(`# new generation 7 by process ${fake.pid()} (nft)`);
      return undefined;
    };
    const tableReads = () => fake.calls.filter((c) => c.argv.join(' ').startsWith('nft -j list table')).length;
    const dataplane = new LinuxDataplane({ run: fake, tuneNeighbourTable: false });
    assert.equal((await dataplane.reconcile(captured)).changes, 0);
    assert.equal(tableReads(), 2, 'both tables read once');

    // an attach: the new port's elements are written on top of the kept state, nothing is read
    const endpointB = { ...endpointA, id: 'bbbbbbbbbbbb', hostVeth: 'vxnhbbbbbbbbbb', peerVeth: 'vxncbbbbbbbbbb', netns: '/run/netns/c2', mac: '02:78:c0:a8:01:03', address: '192.168.1.3/24' };
    const two = { ...captured, endpoints: [endpointA, endpointB] };
    const attached = await dataplane.reconcile(two);
    assert.deepEqual([...attached.readyEndpoints].sort(), ['aaaaaaaaaaaa', 'bbbbbbbbbbbb']);
    assert.equal(tableReads(), 2, 'no table read for the attach');
    // Docker's rules changing elsewhere are no reason to read ours
    monitor.nft('add rule ip filter DOCKER-USER counter return');
    monitor.nft('# new generation 8 by process 31337 (iptables-nft)');
    await dataplane.reconcile(two);
    assert.equal(tableReads(), 2, 'the kept state holds the written elements: nothing to write, nothing to read');
    assert.equal(fake.writesOnly().filter((c) => c.argv[0] === 'nft').length, 1, 'written once');

    // somebody else deletes our table: read again (the fake lists the first port only: the second is put back)
    monitor.nft('delete table bridge vxnet');
    monitor.nft('# new generation 9 by process 31338 (nft)');
    await dataplane.reconcile(two);
    assert.equal(tableReads(), 4);

    // a failed write of ours: read again next time
    failNft = true;
    await dataplane.reconcile(captured);
    failNft = false;
    const reads = tableReads();
    await dataplane.reconcile(captured);
    assert.equal(tableReads(), reads + 2);
    await dataplane.close();
  });

  it('stops the entry monitor during a batch too large to write through, and reads the entries back on the next pass', async () => {
    const fake = convergedFake();
    withMonitor(fake);
    const watch = (fake as FakeRunner & Pick<Runner, 'watch'>).watch!;
    const started: string[] = [];
    const stopped: string[] = [];
    (fake as FakeRunner & Pick<Runner, 'watch'>).watch = (argv, onLine) => {
      const w = watch(argv, onLine);
      started.push(argv.join(' '));
      return { ...w, pid: w.pid, exited: w.exited, stop: () => (stopped.push(argv.join(' ')), w.stop()) };
    };
    const dumps = () => fake.calls.filter((c) => c.argv.join(' ') === 'ip -j neigh show nud permanent').length;
    const dataplane = new LinuxDataplane({ run: fake, tuneNeighbourTable: false });
    await dataplane.reconcile(captured);
    assert.equal(dumps(), 1);
    // 1,400 new peers: a neighbour, a VXLAN FDB entry and a bridge entry each, more than WRITE_THROUGH_MAX_STEPS
    const many = Array.from({ length: 1400 }, (_, i) => ({ vxlan: 'vxnv42', ip: `192.168.${2 + (i >> 8)}.${i & 255}`, mac: `02:78:c0:a9:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, vtep: '10.99.0.2' }));
    const big = { ...captured, peers: [...captured.peers, ...many] };
    assert.ok(big.peers.length * 3 > WRITE_THROUGH_MAX_STEPS);
    await dataplane.reconcile(big);
    assert.deepEqual(stopped, ['ip monitor neigh'], 'the entry monitor was stopped for the batch');
    await dataplane.reconcile(big);
    assert.equal(dumps(), 2, 'the next pass reads the entries back');
    assert.equal(started.filter((a) => a === 'ip monitor neigh').length, 2, 'with a new monitor');
    await dataplane.close();
  });
});

