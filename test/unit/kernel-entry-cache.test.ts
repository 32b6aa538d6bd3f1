/** The entry cache: when a neighbour/FDB dump may be reused, on captured monitor output and a fake runner. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  applyEntrySteps,
  concernsOwnedVxlan,
  EntryCache,
  expectedLines,
  monitorLineKey,
  parseNeighbourEvent,
} from '../../src/agent/kernel/entry-cache.ts';
import type { RunOptions, RunResult, Runner, Watch } from '../../src/agent/kernel/exec.ts';
import { isSubscribed, NFTABLES_EVENTS } from '../../src/agent/kernel/monitor.ts';
import type { FdbStep, NeighbourStep } from '../../src/agent/kernel/plan.ts';
import { BRIDGE_ENTRY, parseFdb, parseNeighbours, type EntryState, type LinkState } from '../../src/agent/kernel/read.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/kernel', name), 'utf8');

describe('isSubscribed (/proc/net/netlink)', () => {
  const table = fixture('proc-net-netlink.txt');
  const pid = Number(fixture('proc-net-netlink.pid'));

  it('finds the monitor’s route socket with the neighbour group', () => {
    assert.equal(isSubscribed(table, pid), true);
  });

  it('is false for another pid and for a socket without the neighbour group', () => {
    assert.equal(isSubscribed(table, pid + 1), false);
    assert.equal(isSubscribed(table.replace(new RegExp(`(\\s${pid}\\s+)00000004`), '$100000001'), pid), false);
  });

  it('finds an nft monitor by its netfilter socket with the nftables group (captured: groups 0x140)', () => {
    const nft = 'sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n000000006371a9d8 12  6255       00000140 0        0        0     2        0        1608150\n';
    assert.equal(isSubscribed(nft, 6255, NFTABLES_EVENTS), true);
    assert.equal(isSubscribed(nft, 6255), false, 'not a route socket');
    assert.equal(isSubscribed(nft.replace('00000140', '00000100'), 6255, NFTABLES_EVENTS), false, 'trace group only');
  });
});

describe('concernsOwnedVxlan (ip monitor neigh lines)', () => {
  it('flags neighbour and FDB events of vxnv devices, additions and deletions, and nothing else', () => {
    const lines = fixture('ip-monitor-neigh.txt').trim().split('\n');
    assert.deepEqual(lines.map(concernsOwnedVxlan), [true, true, true, true, true, false]);
    assert.equal(concernsOwnedVxlan('192.168.1.5 dev vxnb42 lladdr 02:78:c0:a8:01:05 REACHABLE'), false);
  });
});

/** The batches test/fixtures/kernel/capture-monitor.sh ran, as steps (two rounds of neighbours + FDB). */
const Z = '00:00:00:00:00:00';
const round1: { neighbours: NeighbourStep[]; fdb: FdbStep[] } = {
  neighbours: [
    { op: 'neigh-replace', dev: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14' },
    { op: 'neigh-replace', dev: 'vxnv42', ip: '192.168.1.21', mac: '02:78:c0:a8:01:15' },
  ],
  fdb: [
    { op: 'fdb-replace', dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: '10.99.0.2' },
    { op: 'fdb-replace', dev: 'vxnv42', mac: '02:78:c0:a8:01:15', dst: '10.99.0.3' },
    { op: 'fdb-append', dev: 'vxnv42', mac: Z, dst: '10.99.0.2' },
    { op: 'fdb-append', dev: 'vxnv42', mac: Z, dst: '10.99.0.3' },
  ],
};
const round2: { neighbours: NeighbourStep[]; fdb: FdbStep[] } = {
  neighbours: [
    { op: 'neigh-del', dev: 'vxnv42', ip: '192.168.1.20' },
    { op: 'neigh-replace', dev: 'vxnv42', ip: '192.168.1.21', mac: '02:78:c0:a8:01:16' },
  ],
  fdb: [
    { op: 'fdb-del', dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: '10.99.0.2' },
    { op: 'fdb-del', dev: 'vxnv42', mac: Z, dst: '10.99.0.3' },
    { op: 'fdb-replace', dev: 'vxnv42', mac: '02:78:c0:a8:01:15', dst: '10.99.0.4' },
  ],
};
const writeLines = fixture('ip-monitor-neigh-writes.txt').trimEnd().split('\n');
const foreignLines = fixture('ip-monitor-neigh-foreign.txt').trimEnd().split('\n');
/** the entries the kernel held after a round, as a dump reads them (owned devices only) */
const kernelAfter = (round: 1 | 2): EntryState => ({
  neighbours: parseNeighbours(fixture(`ip-neigh-after-writes-${round}.json`)).filter((e) => e.dev.startsWith('vxnv')),
  fdb: parseFdb(fixture(`bridge-fdb-after-writes-${round}.json`)).filter((e) => e.dev.startsWith('vxnv')),
});
const sorted = (entries: EntryState) => ({
  neighbours: entries.neighbours.map((e) => `${e.dev} ${e.ip} ${e.mac}`).sort(),
  fdb: entries.fdb.map((e) => `${e.dev} ${e.mac} ${e.dst}`).sort(),
});

describe('parseNeighbourEvent (captured ip monitor neigh lines)', () => {
  it('reads neighbours, VXLAN FDB entries (address = destination), deletions and bridge entries without an address', () => {
    assert.deepEqual(parseNeighbourEvent(writeLines[0]!), {
      deleted: false, address: '192.168.1.20', dev: 'vxnv42', lladdr: '02:78:c0:a8:01:14', state: 'PERMANENT',
    });
    assert.deepEqual(parseNeighbourEvent(writeLines[2]!), {
      deleted: false, address: '10.99.0.2', dev: 'vxnv42', lladdr: '02:78:c0:a8:01:14', state: 'NOARP PERMANENT',
    });
    assert.deepEqual(parseNeighbourEvent(writeLines[6]!), { deleted: false, address: '192.168.1.20', dev: 'vxnv42', state: 'FAILED' });
    assert.deepEqual(parseNeighbourEvent(writeLines[7]!), { deleted: true, address: '192.168.1.20', dev: 'vxnv42', state: 'FAILED' });
    assert.deepEqual(parseNeighbourEvent(writeLines[10]!), {
      deleted: true, address: '10.99.0.3', dev: 'vxnv42', lladdr: '00:00:00:00:00:00', state: 'NOARP PERMANENT',
    });
    assert.deepEqual(parseNeighbourEvent(foreignLines[4]!), { deleted: false, dev: 'vxnv42', lladdr: '02:78:c0:a8:01:98', state: 'NOARP' });
    for (const line of [...writeLines, ...foreignLines, ...fixture('ip-monitor-neigh.txt').trimEnd().split('\n')]) {
      assert.notEqual(parseNeighbourEvent(line), undefined, line);
    }
  });

  it('rejects what is not a neighbour line', () => {
    for (const line of ['', 'netlink receive error No buffer space available (105)', 'Deleted', '10.0.0.1 dev', 'miss 10.0.0.1 dev vxnv42 lladdr']) {
      assert.equal(parseNeighbourEvent(line), undefined, line);
    }
  });
});

describe('expectedLines and applyEntrySteps (against what the kernel printed and held)', () => {
  it('predicts exactly the lines our batches caused, in order', () => {
    const expected = [...round1.neighbours, ...round1.fdb, ...round2.neighbours, ...round2.fdb].flatMap(expectedLines);
    assert.deepEqual(expected, writeLines.map(monitorLineKey));
  });

  it('predicts none of the lines somebody else caused, even a neighbour shaped like one of our FDB entries', () => {
    const ours = new Set([...round1.neighbours, ...round1.fdb, ...round2.neighbours, ...round2.fdb].flatMap(expectedLines));
    // 10.99.0.4 lladdr 02:78:c0:a8:01:15 is also the destination and MAC of our last FDB replace
    assert.match(foreignLines[0]!, /^10\.99\.0\.4 dev vxnv42 lladdr 02:78:c0:a8:01:15 PERMANENT/);
    for (const line of foreignLines) assert.equal(ours.has(monitorLineKey(line)!), false, line);
  });

  it('brings a dump to what the kernel then held', () => {
    const after1 = applyEntrySteps({ neighbours: [], fdb: [] }, round1.neighbours, round1.fdb);
    assert.deepEqual(sorted(after1), sorted(kernelAfter(1)));
    const after2 = applyEntrySteps(kernelAfter(1), round2.neighbours, round2.fdb);
    assert.deepEqual(sorted(after2), sorted(kernelAfter(2)));
    assert.deepEqual(sorted(applyEntrySteps(after1, round2.neighbours, round2.fdb)), sorted(kernelAfter(2)));
  });

  it('keeps untouched entries and the order of one MAC’s destinations, and leaves the input alone', () => {
    const before: EntryState = {
      neighbours: [{ dev: 'vxnv1', ip: '10.0.0.1', mac: '02:00:00:00:00:01' }],
      fdb: [
        { dev: 'vxnv1', mac: Z, dst: '192.0.2.1' },
        { dev: 'vxnv1', mac: '02:00:00:00:00:01', dst: '192.0.2.1' },
        { dev: 'vxnv1', mac: Z, dst: '192.0.2.2' },
        { dev: 'vxnv2', mac: '02:00:00:00:00:01', dst: '192.0.2.9' },
      ],
    };
    const copy = structuredClone(before);
    const after = applyEntrySteps(before, [{ op: 'neigh-replace', dev: 'vxnv2', ip: '10.0.0.1', mac: '02:00:00:00:00:02' }], [
      { op: 'fdb-append', dev: 'vxnv1', mac: Z, dst: '192.0.2.3' },
      { op: 'fdb-del', dev: 'vxnv1', mac: Z, dst: '192.0.2.1' },
      { op: 'fdb-replace', dev: 'vxnv2', mac: '02:00:00:00:00:01', dst: '192.0.2.8' },
      { op: 'fdb-append', dev: 'vxnv1', mac: '02:00:00:00:00:01', dst: '192.0.2.7' }, // unicast: the kernel ignores it
    ]);
    assert.deepEqual(before, copy);
    assert.deepEqual(after.neighbours, [
      { dev: 'vxnv1', ip: '10.0.0.1', mac: '02:00:00:00:00:01' },
      { dev: 'vxnv2', ip: '10.0.0.1', mac: '02:00:00:00:00:02' },
    ]);
    // the group's remaining destinations, in order, in the places the group had
    assert.deepEqual(after.fdb, [
      { dev: 'vxnv1', mac: Z, dst: '192.0.2.2' },
      { dev: 'vxnv1', mac: '02:00:00:00:00:01', dst: '192.0.2.1' },
      { dev: 'vxnv1', mac: Z, dst: '192.0.2.3' },
      { dev: 'vxnv2', mac: '02:00:00:00:00:01', dst: '192.0.2.8' },
    ]);
    assert.equal(after.fdb[1], before.fdb[1], 'an untouched entry is kept as it is');
    const removed = applyEntrySteps(after, [{ op: 'neigh-del', dev: 'vxnv1', ip: '10.0.0.1' }], [
      { op: 'fdb-del', dev: 'vxnv1', mac: Z, dst: '192.0.2.2' },
      { op: 'fdb-del', dev: 'vxnv1', mac: Z, dst: '192.0.2.3' },
    ]);
    assert.deepEqual(removed.neighbours, [{ dev: 'vxnv2', ip: '10.0.0.1', mac: '02:00:00:00:00:02' }]);
    assert.deepEqual(removed.fdb, [after.fdb[1], after.fdb[3]]);
  });
});

class FakeWatch implements Watch {
  readonly pid = 4242;
  stopped = false;
  #resolve!: (code: number) => void;
  readonly exited = new Promise<number>((resolve) => (this.#resolve = resolve));
  onLine: (line: string, stream: 'stdout' | 'stderr') => void = () => {};
  stop() {
    this.stopped = true;
    this.#resolve(143);
  }
  exit(code: number) {
    this.#resolve(code);
  }
}

class FakeRunner implements Runner {
  dumps = 0;
  watches: FakeWatch[] = [];
  subscribed = true;
  async run(argv: readonly string[], _options?: RunOptions): Promise<RunResult> {
    const line = argv.join(' ');
    if (line.startsWith('ip -j neigh')) this.dumps++;
    return { argv, code: 0, stdout: '[]', stderr: '' };
  }
  watch(argv: readonly string[], onLine: (line: string, stream: 'stdout' | 'stderr') => void): Watch {
    assert.deepEqual(argv, ['ip', 'monitor', 'neigh']);
    const watch = new FakeWatch();
    watch.onLine = onLine;
    this.watches.push(watch);
    return watch;
  }
  async readFile(path: string) {
    assert.equal(path, '/proc/net/netlink');
    return this.subscribed ? `sk Eth Pid Groups\n0000 0 4242 00000004 0 0 0 2 0 1\n` : 'sk Eth Pid Groups\n';
  }
  async writeFile() {}
  async exists() {
    return true;
  }
}

const vxlan = (index: number): Map<string, LinkState> =>
  new Map([['vxnv42', { name: 'vxnv42', index, kind: 'vxlan', mtu: 1450, up: true, mac: '', peerElsewhere: false, ipv4: [] }]]);

/** one pass as LinuxDataplane does it: reuse if possible, else dump and bind */
async function pass(cache: EntryCache, links = vxlan(7)): Promise<'reused' | 'dumped'> {
  await cache.prepare();
  const reused = cache.cached();
  if (reused && cache.stillValid(links)) return 'reused';
  await cache.dump();
  cache.bind(links);
  return 'dumped';
}

describe('the bridge’s static entries on the VXLAN port (vxnet issue 9, hole 3)', () => {
  it('expects the lines the kernel prints for them (no destination, NOARP) and keeps them apart from the VXLAN device’s', () => {
    const add: FdbStep = { op: 'fdb-static', dev: 'vxnv42', mac: '02:78:c0:a8:01:16', dst: BRIDGE_ENTRY };
    const del: FdbStep = { op: 'fdb-static-del', dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: BRIDGE_ENTRY };
    // what ip monitor neigh printed for bridge fdb replace/del ... master static on kernel 6.18
    assert.deepEqual(expectedLines(add), [monitorLineKey('dev vxnv42 lladdr 02:78:c0:a8:01:16 NOARP ')]);
    assert.deepEqual(expectedLines(del), [monitorLineKey('Deleted dev vxnv42 lladdr 02:78:c0:a8:01:14 NOARP ')]);
    const before: EntryState = {
      neighbours: [],
      fdb: [
        { dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: '10.99.0.2' },
        { dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: BRIDGE_ENTRY },
      ],
    };
    assert.deepEqual(applyEntrySteps(before, [], [del, add]).fdb, [
      { dev: 'vxnv42', mac: '02:78:c0:a8:01:14', dst: '10.99.0.2' },
      { dev: 'vxnv42', mac: '02:78:c0:a8:01:16', dst: BRIDGE_ENTRY },
    ]);
  });
});

describe('EntryCache', () => {
  it('dumps until the monitor is subscribed, then reuses the dump while no event concerns owned devices', async () => {
    const run = new FakeRunner();
    const cache = new EntryCache(run);
    assert.equal(await pass(cache), 'dumped');
    assert.equal(await pass(cache), 'reused');
    run.watches[0]!.onLine('10.99.0.9 dev u0 lladdr 02:00:00:00:00:09 PERMANENT', 'stdout');
    assert.equal(await pass(cache), 'reused');
    run.watches[0]!.onLine('Deleted 192.168.1.22 dev vxnv42 FAILED', 'stdout');
    assert.equal(await pass(cache), 'dumped');
    assert.equal(await pass(cache), 'reused');
    assert.equal(run.watches.length, 1);
    await cache.close();
    assert.equal(run.watches[0]!.stopped, true);
  });

  it('dumps again when invalidated, on monitor errors, for a recreated device and after the resync interval', async () => {
    let now = 1_000;
    const run = new FakeRunner();
    const cache = new EntryCache(run, { now: () => now, resyncMs: 30_000 });
    await pass(cache);
    assert.equal(await pass(cache), 'reused');
    cache.invalidate();
    assert.equal(await pass(cache), 'dumped');
    run.watches[0]!.onLine('netlink receive error No buffer space available (105)', 'stderr');
    assert.equal(await pass(cache), 'dumped');
    assert.equal(await pass(cache, vxlan(8)), 'dumped'); // same name, new ifindex
    assert.equal(await pass(cache, vxlan(8)), 'reused');
    now += 30_001;
    assert.equal(await pass(cache, vxlan(8)), 'dumped');
    await cache.close();
  });

  it('never reuses a dump when the monitor exits or does not subscribe, and restarts it later', async () => {
    let now = 1_000;
    const run = new FakeRunner();
    const logs: string[] = [];
    const cache = new EntryCache(run, { now: () => now, log: (l) => logs.push(l) });
    await pass(cache);
    run.watches[0]!.exit(1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await pass(cache), 'dumped');
    assert.equal(await pass(cache), 'dumped');
    assert.match(logs.join('\n'), /ip monitor neigh exited \(code 1\)/);
    now += 5_001;
    assert.equal(await pass(cache), 'dumped'); // restarted, subscribed before this dump
    assert.equal(await pass(cache), 'reused');
    assert.equal(run.watches.length, 2);
    await cache.close();

    const deaf = new FakeRunner();
    deaf.subscribed = false;
    const other = new EntryCache(deaf, { log: (l) => logs.push(l) });
    assert.equal(await pass(other), 'dumped');
    assert.equal(await pass(other), 'dumped');
    assert.equal(deaf.watches[0]!.stopped, true);
    assert.match(logs.join('\n'), /did not subscribe/);
    await other.close();
  });

  it('after a write-through, reuses the updated dump while only the lines of our own writes arrive', async () => {
    const run = new FakeRunner();
    const cache = new EntryCache(run);
    const monitor = (line: string) => run.watches[0]!.onLine(line, 'stdout');
    assert.equal(await pass(cache), 'dumped');
    cache.expect(round1.neighbours, round1.fdb);
    monitor(writeLines[0]!); // the monitor may print before the batch is seen to end
    cache.applied(round1.neighbours, round1.fdb);
    for (const line of writeLines.slice(1, 6)) monitor(line);
    assert.equal(await pass(cache), 'reused');
    assert.deepEqual(sorted(cache.cached()!), sorted(kernelAfter(1)));

    // the next round's lines arrive after the following pass has begun: still ours
    cache.expect(round2.neighbours, round2.fdb);
    cache.applied(round2.neighbours, round2.fdb);
    assert.equal(await pass(cache), 'reused');
    for (const line of writeLines.slice(6)) monitor(line);
    assert.equal(await pass(cache), 'reused');
    assert.deepEqual(sorted(cache.cached()!), sorted(kernelAfter(2)));
    assert.equal(run.dumps, 1);
    await cache.close();
  });

  it('dumps again for any owned-device line nobody expected, and for a second copy of an expected one', async () => {
    for (const line of foreignLines.filter(concernsOwnedVxlan)) {
      const run = new FakeRunner();
      const cache = new EntryCache(run);
      await pass(cache);
      cache.expect(round2.neighbours, round2.fdb);
      cache.applied(round2.neighbours, round2.fdb);
      run.watches[0]!.onLine(line, 'stdout');
      assert.equal(await pass(cache), 'dumped', line);
      await cache.close();
    }
    const run = new FakeRunner();
    const cache = new EntryCache(run);
    await pass(cache);
    cache.expect(round1.neighbours, []);
    cache.applied(round1.neighbours, []);
    run.watches[0]!.onLine(writeLines[0]!, 'stdout');
    assert.equal(await pass(cache), 'reused');
    run.watches[0]!.onLine(writeLines[0]!, 'stdout');
    assert.equal(await pass(cache), 'dumped');
    await cache.close();
  });

  it('forgets expected lines after a few seconds, on invalidation and when the monitor restarts', async () => {
    let now = 1_000;
    const run = new FakeRunner();
    const cache = new EntryCache(run, { now: () => now, expectMs: 5_000 });
    await pass(cache);
    cache.expect(round1.neighbours, round1.fdb);
    cache.applied(round1.neighbours, round1.fdb);
    now += 4_000;
    run.watches[0]!.onLine(writeLines[0]!, 'stdout');
    assert.equal(await pass(cache), 'reused');
    now += 1_001; // the rest never came in time
    run.watches[0]!.onLine(writeLines[1]!, 'stdout');
    assert.equal(await pass(cache), 'dumped');

    cache.expect(round1.neighbours, round1.fdb);
    cache.invalidate(); // e.g. a line of the batch failed: none of its lines is trusted
    assert.equal(await pass(cache), 'dumped');
    run.watches[0]!.onLine(writeLines[2]!, 'stdout');
    assert.equal(await pass(cache), 'dumped');

    cache.expect(round1.neighbours, round1.fdb);
    run.watches[0]!.exit(1);
    await new Promise((resolve) => setImmediate(resolve));
    now += 5_001; // retry backoff over: a new monitor starts, with nothing expected
    assert.equal(await pass(cache), 'dumped');
    assert.equal(run.watches.length, 2);
    run.watches[1]!.onLine(writeLines[3]!, 'stdout');
    assert.equal(await pass(cache), 'dumped');
    await cache.close();
  });

  it('does not write through to a dump that is already void', async () => {
    const run = new FakeRunner();
    const cache = new EntryCache(run);
    await pass(cache);
    cache.expect(round1.neighbours, round1.fdb);
    run.watches[0]!.onLine('10.99.0.9 dev vxnv42 lladdr 02:00:00:00:00:09 PERMANENT', 'stdout');
    cache.applied(round1.neighbours, round1.fdb);
    assert.equal(cache.cached(), undefined);
    assert.equal(await pass(cache), 'dumped');
    assert.deepEqual(cache.cached(), { neighbours: [], fdb: [] });
    await cache.close();
  });

  it('is not used with a runner that cannot watch', async () => {
    const run = new FakeRunner();
    const plain: Runner = { run: run.run.bind(run), readFile: run.readFile.bind(run), writeFile: run.writeFile.bind(run), exists: run.exists.bind(run) };
    const cache = new EntryCache(plain);
    assert.equal(await pass(cache), 'dumped');
    assert.equal(await pass(cache), 'dumped');
  });
});
