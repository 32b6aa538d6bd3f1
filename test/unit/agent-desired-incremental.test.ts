/**
 * desiredState renders only what changed since the last pass (see RenderCache in desired.ts). These tests
 * drive one view through long random sequences of watch messages and check after every message that the
 * incremental result is exactly what rendering a fresh view of the same state gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredState } from '../../src/agent/dataplane.ts';
import { desiredState } from '../../src/agent/desired.ts';
import { ClusterView } from '../../src/agent/view.ts';
import type { Endpoint, Network, Node, WatchMessage } from '../../src/core/model.ts';

const self = { name: 'n0', address: '10.99.0.1', underlayDevice: 'eth0' };

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function network(i: number, vni = 100 + i, multicast = false): Network {
  return {
    name: `net${i}`,
    vni,
    subnets: [{ cidr: `10.${i}.0.0/16`, gateway: `10.${i}.0.1` }],
    mtu: 1450,
    port: 4789,
    internal: false,
    ...(multicast ? { multicastGroup: '239.1.1.1' } : {}),
    createdAt: '',
  };
}

function node(i: number, address = `10.99.0.${i + 1}`): Node {
  return { name: `n${i}`, address, mtu: 1500, registeredAt: '' };
}

/** A fresh view holding what `view` holds: the reference rendering. */
function rebuilt(view: ClusterView): ClusterView {
  const fresh = new ClusterView();
  fresh.apply({
    type: 'snapshot',
    revision: view.revision,
    nodes: [...view.nodes.values()],
    networks: [...view.networks.values()],
    endpoints: [...view.networks.keys()].flatMap((name) => view.endpointsOf(name)),
  });
  return fresh;
}

/** Order-independent form (the order of peers can differ after a node becomes known; nothing else). */
function canonical(state: DesiredState): unknown {
  const byText = <T>(items: readonly T[]) => items.map((x) => JSON.stringify(x)).sort();
  return { ...state, peers: byText(state.peers), floods: byText(state.floods), endpoints: byText(state.endpoints) };
}

describe('incremental desired state', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`equals a fresh rendering after every message of a random sequence (seed ${seed})`, () => {
      const random = rng(seed);
      const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
      const view = new ClusterView();
      const nodes = Array.from({ length: 6 }, (_, i) => node(i));
      const networks = Array.from({ length: 4 }, (_, i) => network(i, 100 + i, i === 3));
      let revision = 1;
      let next = 0;
      const live = new Map<string, Endpoint>();
      view.apply({ type: 'snapshot', revision, nodes: nodes.slice(0, 4), networks: networks.slice(0, 2), endpoints: [] });
      const inView = new Set(['net0', 'net1']);
      for (let step = 0; step < 600; step++) {
        revision++;
        const roll = random();
        let message: WatchMessage;
        if (roll < 0.45 && inView.size > 0) {
          const net = pick([...inView]);
          const i = next++;
          const ep: Endpoint = {
            id: `e${String(i).padStart(11, '0')}`,
            network: net,
            node: pick(nodes).name, // sometimes a node not (yet) in the view
            netns: `/run/netns/c${i}`,
            ifname: 'eth0',
            ip: `10.${net.slice(3)}.${(i >> 8) & 255}.${(i & 255) + 2 > 255 ? 2 : (i & 255) + 2}`,
            prefix: 16,
            gateway: `10.${net.slice(3)}.0.1`,
            mac: `02:78:0a:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
            status: 'pending',
            createdAt: '',
          };
          live.set(ep.id, ep);
          message = { type: 'endpoint', revision, endpoint: ep };
        } else if (roll < 0.75 && live.size > 0) {
          const ep = pick([...live.values()]);
          live.delete(ep.id);
          message = { type: 'endpoint-deleted', revision, id: ep.id, network: ep.network };
        } else if (roll < 0.8 && live.size > 0) {
          const ep = pick([...live.values()]);
          const updated = { ...ep, status: 'ready' as const };
          live.set(ep.id, updated);
          message = { type: 'endpoint', revision, endpoint: updated };
        } else if (roll < 0.87) {
          const i = Math.floor(random() * nodes.length);
          if (i !== 0 && random() < 0.5) nodes[i] = node(i, `10.98.${step & 255}.${i + 1}`);
          message = { type: 'node', revision, node: nodes[i]! };
        } else if (roll < 0.9) {
          message = { type: 'node-deleted', revision, name: pick(nodes.slice(1)).name };
        } else if (roll < 0.95) {
          const i = Math.floor(random() * networks.length);
          if (random() < 0.3) networks[i] = network(i, 200 + step, i === 3);
          inView.add(networks[i]!.name);
          message = { type: 'network', revision, network: networks[i]! };
        } else {
          const name = pick([...inView, 'net9']);
          inView.delete(name);
          for (const [id, ep] of live) if (ep.network === name) live.delete(id);
          message = { type: 'network-forgotten', revision, name };
        }
        view.apply(message);
        // not every message is followed by a pass: passes coalesce
        if (random() < 0.6) {
          const incremental = desiredState(view, self);
          const reference = desiredState(rebuilt(view), self);
          assert.deepEqual(canonical(incremental), canonical(reference), `step ${step}: ${message.type}`);
        }
      }
    });
  }

  it('keeps the peer order of the view when nothing unusual happens', () => {
    const view = new ClusterView();
    const net = network(1);
    const nodes = [node(0), node(1), node(2)];
    const ep = (i: number, n: number): Endpoint => ({
      id: `e${String(i).padStart(11, '0')}`,
      network: net.name,
      node: `n${n}`,
      netns: `/run/netns/c${i}`,
      ifname: 'eth0',
      ip: `10.1.0.${i + 2}`,
      prefix: 16,
      gateway: '10.1.0.1',
      mac: `02:78:0a:01:00:${(i + 2).toString(16).padStart(2, '0')}`,
      status: 'pending',
      createdAt: '',
    });
    view.apply({ type: 'snapshot', revision: 1, nodes, networks: [net], endpoints: [ep(0, 0), ep(1, 1), ep(2, 2)] });
    desiredState(view, self);
    view.apply({ type: 'endpoint', revision: 2, endpoint: ep(3, 1) });
    view.apply({ type: 'endpoint-deleted', revision: 3, id: ep(1, 1).id, network: net.name });
    view.apply({ type: 'endpoint', revision: 4, endpoint: ep(4, 2) });
    assert.deepEqual(desiredState(view, self), desiredState(rebuilt(view), self));
  });

  it('a local endpoint follows its container\'s namespace from pass to pass', () => {
    const view = new ClusterView();
    const net = network(1);
    const ep: Endpoint = {
      id: 'e00000000001',
      network: net.name,
      node: 'n0',
      netns: '',
      container: 'web',
      ifname: 'eth0',
      ip: '10.1.0.2',
      prefix: 16,
      gateway: '10.1.0.1',
      mac: '02:78:0a:01:00:02',
      status: 'pending',
      createdAt: '',
    };
    view.apply({ type: 'snapshot', revision: 1, nodes: [node(0)], networks: [net], endpoints: [ep] });
    assert.equal(desiredState(view, self, new Map([['web', '/proc/10/ns/net']])).endpoints[0]?.netns, '/proc/10/ns/net');
    assert.equal(desiredState(view, self, new Map([['web', '/proc/11/ns/net']])).endpoints[0]?.netns, '/proc/11/ns/net');
    assert.deepEqual(desiredState(view, self, new Map()).endpoints, []);
    view.apply({ type: 'endpoint', revision: 2, endpoint: { ...ep, status: 'ready' } });
    assert.equal(desiredState(view, self, new Map([['web', '/proc/12/ns/net']])).endpoints[0]?.netns, '/proc/12/ns/net');
  });

  it('a pass after one change does not render the other peers again', () => {
    const view = new ClusterView();
    const net = network(1);
    const endpoints: Endpoint[] = [];
    for (let i = 0; i < 2000; i++) {
      endpoints.push({
        id: `e${String(i).padStart(11, '0')}`,
        network: net.name,
        node: i === 0 ? 'n0' : 'n1',
        netns: `/run/netns/c${i}`,
        ifname: 'eth0',
        ip: `10.1.${i >> 8}.${(i & 255) + 1}`,
        prefix: 16,
        gateway: '10.1.0.1',
        mac: '02:78:0a:01:00:02',
        status: 'pending',
        createdAt: '',
      });
    }
    view.apply({ type: 'snapshot', revision: 1, nodes: [node(0), node(1)], networks: [net], endpoints });
    const first = desiredState(view, self);
    view.apply({ type: 'endpoint-deleted', revision: 2, id: endpoints[5]!.id, network: net.name });
    const second = desiredState(view, self);
    assert.equal(second.peers.length, first.peers.length - 1);
    // the same peer objects: nothing was rendered again
    const before = new Set(first.peers);
    assert.ok(second.peers.every((p) => before.has(p)));
  });
});
