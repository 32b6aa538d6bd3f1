/** The entry cache: when a neighbour/FDB dump may be reused, on captured monitor output and a fake runner. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { concernsOwnedVxlan, EntryCache, isSubscribed } from '../../src/agent/kernel/entry-cache.ts';
import type { RunOptions, RunResult, Runner, Watch } from '../../src/agent/kernel/exec.ts';
import type { LinkState } from '../../src/agent/kernel/read.ts';

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
});

describe('concernsOwnedVxlan (ip monitor neigh lines)', () => {
  it('flags neighbour and FDB events of vxnv devices, additions and deletions, and nothing else', () => {
    const lines = fixture('ip-monitor-neigh.txt').trim().split('\n');
    assert.deepEqual(lines.map(concernsOwnedVxlan), [true, true, true, true, true, false]);
    assert.equal(concernsOwnedVxlan('192.168.1.5 dev vxnb42 lladdr 02:78:c0:a8:01:05 REACHABLE'), false);
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

  it('dumps again after our own writes, on monitor errors, for a recreated device and after the resync interval', async () => {
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

  it('is not used with a runner that cannot watch', async () => {
    const run = new FakeRunner();
    const plain: Runner = { run: run.run.bind(run), readFile: run.readFile.bind(run), writeFile: run.writeFile.bind(run), exists: run.exists.bind(run) };
    const cache = new EntryCache(plain);
    assert.equal(await pass(cache), 'dumped');
    assert.equal(await pass(cache), 'dumped');
  });
});
