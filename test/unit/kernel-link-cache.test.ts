/**
 * Keeping a place's links between passes while `ip monitor link address` vouches for them
 * (src/agent/kernel/link-cache.ts), against a fake monitor the test speaks for.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Runner, Watch } from '../../src/agent/kernel/exec.ts';
import { LinkCache, LINKS_KEEP_MS, mayChangeLinks } from '../../src/agent/kernel/link-cache.ts';
import type { LinkState } from '../../src/agent/kernel/read.ts';

const PID = 77;

function fakeKernel(subscribed: boolean) {
  let onLine: ((line: string, stream: 'stdout' | 'stderr') => void) | undefined;
  let end: (code: number) => void = () => {};
  const run: Runner = {
    run: async () => assert.fail('no process expected'),
    watch: (_argv, handler) => {
      onLine = handler;
      const exited = new Promise<number>((resolve) => (end = resolve));
      return { pid: PID, exited, stop: () => end(143) } satisfies Watch;
    },
    readFile: async (path) => (path === '/proc/net/netlink' ? `sk Eth Pid Groups\n0000 0 ${PID} ${subscribed ? '00000001' : '00000004'} 0 0 0 2 0 1\n` : undefined),
    writeFile: async () => {},
    exists: async () => true,
  };
  return { run, print: (line: string) => onLine!(line, 'stdout'), exit: () => end(1) };
}

const links = (n: number): ReadonlyMap<string, LinkState> => new Map([[`vxnh${n}`, { name: `vxnh${n}`, index: n, kind: 'veth', mtu: 1450, up: true, mac: '02:00:00:00:00:01', peerElsewhere: true, ipv4: [] }]]);

describe('LinkCache', () => {
  it('reuses a read while the monitor printed nothing, and reads again after a line, an invalidation or LINKS_KEEP_MS', async () => {
    const kernel = fakeKernel(true);
    let now = 1_000;
    let reads = 0;
    const cache = new LinkCache(kernel.run, async () => links(++reads), { now: () => now });
    await cache.prepare();
    assert.equal((await cache.read()).has('vxnh1'), true);
    assert.equal((await cache.read()).has('vxnh1'), true, 'kept');
    kernel.print('5: vxnh9@if2: <BROADCAST,MULTICAST> mtu 1450 state DOWN');
    assert.equal((await cache.read()).has('vxnh2'), true, 'read after an event');
    cache.invalidate();
    assert.equal((await cache.read()).has('vxnh3'), true, 'read after an invalidation');
    now += LINKS_KEEP_MS;
    assert.equal((await cache.read()).has('vxnh4'), true, 'read once the kept one is too old');
    assert.equal(reads, 4);
    await cache.close();
  });

  it('does not keep a read during which the monitor printed something or the data plane invalidated', async () => {
    const kernel = fakeKernel(true);
    let reads = 0;
    let during = (): void => kernel.print('Deleted 5: vxnh9@if2: <BROADCAST,MULTICAST>');
    const cache = new LinkCache(kernel.run, async () => {
      during();
      return links(++reads);
    });
    await cache.prepare();
    await cache.read();
    during = () => cache.invalidate();
    await cache.read();
    during = () => {};
    await cache.read();
    await cache.read();
    assert.equal(reads, 3);
    await cache.close();
  });

  it('refreshes only a dropped read, and only while the monitor can vouch for it', async () => {
    const kernel = fakeKernel(true);
    let reads = 0;
    const cache = new LinkCache(kernel.run, async () => links(++reads));
    await cache.refresh();
    assert.equal(reads, 0, 'no monitor yet');
    await cache.prepare();
    await cache.refresh();
    await cache.refresh();
    assert.equal(reads, 1);
    cache.invalidate();
    await cache.refresh();
    assert.equal((await cache.read()).has('vxnh2'), true);
    assert.equal(reads, 2);
    await cache.close();
  });

  it('keeps nothing while the monitor is not subscribed or has exited', async () => {
    let reads = 0;
    const unsubscribed = new LinkCache(fakeKernel(false).run, async () => links(++reads), { log: () => {} });
    await unsubscribed.prepare();
    await unsubscribed.read();
    await unsubscribed.read();
    assert.equal(reads, 2);
    await unsubscribed.close();

    const kernel = fakeKernel(true);
    const cache = new LinkCache(kernel.run, async () => links(++reads), { log: () => {} });
    await cache.prepare();
    await cache.read();
    kernel.exit();
    await new Promise((resolve) => setImmediate(resolve));
    await cache.read();
    assert.equal(reads, 4);
    await cache.close();
  });
});

describe('mayChangeLinks', () => {
  it('tells reads, tables and entry batches from anything that may change a link', () => {
    assert.equal(mayChangeLinks(['ip', '-n', 'vxnet-42', '-j', '-d', 'addr', 'show']), false);
    assert.equal(mayChangeLinks(['nsenter', '--net=/run/netns/vxnet-42', 'nft', '-f', '-'], 'add element bridge vxnet x { 1 }\n'), false);
    assert.equal(mayChangeLinks(['bridge', '-n', 'vxnet-42', '-force', '-batch', '-'], 'fdb replace 02:00:00:00:00:01 dev vxnv42 dst 10.0.0.2 self permanent\n'), false);
    assert.equal(mayChangeLinks(['ip', '-n', 'vxnet-42', '-force', '-batch', '-'], 'neigh replace 10.1.0.2 lladdr 02:00:00:00:00:01 dev vxnv42 nud permanent\n'), false);
    assert.equal(mayChangeLinks(['ip', '-n', 'vxnet-42', '-force', '-batch', '-'], 'neigh replace 10.1.0.2 lladdr 02:00:00:00:00:01 dev vxnv42 nud permanent\nlink set dev vxnh1 up\n'), true);
    assert.equal(mayChangeLinks(['nsenter', '--net=/run/netns/c1', 'ip', '-batch', '-'], 'link add name vxnc1 type veth peer name vxnh1 netns vxnet-42\n'), true);
    assert.equal(mayChangeLinks(['ip', 'netns', 'add', 'vxnet-42']), true);
    assert.equal(mayChangeLinks(['ip', '-force', '-batch', '-'], ''), true);
  });
});
