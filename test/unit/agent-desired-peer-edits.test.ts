/**
 * The peer list handed to the data plane is the last one with the networks' peer changes replayed (one peer
 * added, replaced or dropped in a copy), not built again from every network's map (desired-peers.ts). It
 * must be exactly, in order, what a fresh rendering gives, with several networks, one change or a burst of
 * them between passes; and a new array whenever it changed, the same one when not: the kernel data plane
 * skips its entry diff when it is handed the very array it had.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { desiredState } from '../../src/agent/desired.ts';
import { ClusterView } from '../../src/agent/view.ts';
import type { Endpoint, Network, Node } from '../../src/core/model.ts';

const self = { name: 'n0', address: '10.99.0.1', underlayDevice: 'eth0' };
const nodes: Node[] = Array.from({ length: 5 }, (_, i) => ({ name: `n${i}`, address: `10.99.0.${i + 1}`, mtu: 1500, registeredAt: '' }));
const net = (i: number): Network => {
  const subnet = `10.${i}.0`;
  return { name: `net${i}`, vni: 100 + i, subnets: [{ cidr: `${subnet}.0/16`, gateway: `${subnet}.1` }], mtu: 1450, port: 4789, internal: false, createdAt: '' };
};
const ep = (n: number, i: number, node: number, macByte = 0): Endpoint => ({
  id: `e${n}-${i}`,
  network: `net${n}`,
  node: `n${node}`,
  netns: `/run/netns/c${n}-${i}`,
  ifname: 'eth0',
  ip: `10.${n}.${i >> 8}.${(i & 255) + 2}`,
  prefix: 16,
  gateway: `10.${n}.0.1`,
  mac: `02:78:${macByte.toString(16).padStart(2, '0')}:0${n}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  status: 'ready',
  createdAt: '',
});

/** A fresh view holding what `view` holds: the reference rendering. */
function rebuilt(view: ClusterView): ClusterView {
  const fresh = new ClusterView();
  const endpoints = [...view.networks.keys()].flatMap((name) => view.endpointsOf(name));
  fresh.apply({ type: 'snapshot', revision: view.revision, nodes: [...view.nodes.values()], networks: [...view.networks.values()], endpoints });
  return fresh;
}

describe('edited peer lists', () => {
  it('equal a fresh rendering, in order, after adds, replacements and drops, one or many between passes', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const view = new ClusterView();
    const endpoints = [0, 1].flatMap((n) => [ep(n, 0, 0), ...Array.from({ length: 40 }, (_, i) => ep(n, i + 1, 1 + (i % 4)))]);
    view.apply({ type: 'snapshot', revision: 1, nodes, networks: [net(0), net(1)], endpoints });
    const live = new Map(endpoints.filter((e) => e.node !== 'n0').map((e) => [e.id, e]));
    let revision = 1;
    let next = 100;
    let last = desiredState(view, self).peers;
    for (let pass = 0; pass < 300; pass++) {
      // mostly one message per pass (the edit path), sometimes a burst longer than the edits it allows
      const burst = random() < 0.85 ? 1 : 1 + Math.floor(random() * 12);
      let changed = false;
      for (let k = 0; k < burst; k++) {
        revision++;
        const roll = random();
        const ids = [...live.keys()];
        if (roll < 0.4 || ids.length === 0) {
          const e = ep(random() < 0.7 ? 0 : 1, next++, 1 + Math.floor(random() * 4));
          live.set(e.id, e);
          view.apply({ type: 'endpoint', revision, endpoint: e });
          changed = true;
        } else if (roll < 0.75) {
          const e = live.get(ids[Math.floor(random() * ids.length)]!)!;
          live.delete(e.id);
          view.apply({ type: 'endpoint-deleted', revision, id: e.id, network: e.network });
          changed = true;
        } else if (roll < 0.9) {
          // a new MAC or another host: the peer is replaced in its place
          const old = live.get(ids[Math.floor(random() * ids.length)]!)!;
          const e = { ...old, node: `n${1 + Math.floor(random() * 4)}`, mac: ep(0, 0, 0, 1 + Math.floor(random() * 200)).mac };
          changed ||= e.node !== old.node || e.mac !== old.mac;
          live.set(e.id, e);
          view.apply({ type: 'endpoint', revision, endpoint: e });
        } else {
          // status only: no peer changes
          const old = live.get(ids[Math.floor(random() * ids.length)]!)!;
          const e = { ...old, status: old.status === 'ready' ? ('pending' as const) : ('ready' as const) };
          live.set(e.id, e);
          view.apply({ type: 'endpoint', revision, endpoint: e });
        }
      }
      const peers = desiredState(view, self).peers;
      assert.deepEqual(peers, desiredState(rebuilt(view), self).peers, `pass ${pass}`);
      assert.equal(peers.length, live.size);
      if (changed) assert.notEqual(peers, last, `pass ${pass}: a changed list must be a new array`);
      else assert.equal(peers, last, `pass ${pass}: an unchanged list must be the same array`);
      last = peers;
    }
  });
});
