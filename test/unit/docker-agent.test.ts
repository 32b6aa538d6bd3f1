/**
 * The agent's side of the Docker integration, without a kernel: handed-over endpoints in the desired state,
 * the planner and the renderer (the container end stays in the host namespace until Docker moves it, and
 * must then count as present wherever it is), container endpoints resolved through the engine, and the
 * readiness wait the plugin's Join uses.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deviceNames, type DesiredEndpoint, type DesiredState } from '../../src/agent/dataplane.ts';
import { desiredState } from '../../src/agent/desired.ts';
import { planReconcile } from '../../src/agent/kernel/plan.ts';
import type { ActualState, LinkState } from '../../src/agent/kernel/read.ts';
import { renderEndpointCreate } from '../../src/agent/kernel/render.ts';
import { ClusterView } from '../../src/agent/view.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { Endpoint, Network, Node, WatchMessage } from '../../src/core/model.ts';
import { EngineContainerNamespaces } from '../../src/docker/containers.ts';
import { blueNetwork, runScriptedAgent, twoNodes } from './support/fixtures.ts';
import { until } from './support/until.ts';
import { temporaryDirectory } from './support/temporary.ts';

const self = { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' };
const nodes: Node[] = twoNodes;
const blue: Network = blueNetwork('');

function endpoint(id: string, target: Partial<Endpoint>, ip = '192.168.1.2', node = 'host1'): Endpoint {
  const last = Number(ip.split('.')[3]);
  return {
    id,
    network: 'blue',
    node,
    ifname: 'eth0',
    ip,
    prefix: 24,
    gateway: '192.168.1.1',
    mac: `02:78:c0:a8:01:${last.toString(16).padStart(2, '0')}`,
    status: 'pending',
    createdAt: '',
    ...target,
  };
}

const DOCKER_EP = 'd'.repeat(64);

/** the watch's first message: both nodes, network blue and `endpoints` */
function snapshot(endpoints: Endpoint[]): WatchMessage {
  return { type: 'snapshot', revision: 1, nodes, networks: [blue], endpoints };
}

describe('desired state for Docker endpoints', () => {
  it('a Docker endpoint has no namespace (handed over); a container endpoint gets the resolved one, or is left out', () => {
    const view = new ClusterView();
    view.apply(
      snapshot([
        endpoint('aaaaaaaaaaaa', { docker: DOCKER_EP, ifname: 'eth' }, '192.168.1.2'),
        endpoint('bbbbbbbbbbbb', { container: 'web' }, '192.168.1.3'),
        endpoint('cccccccccccc', { container: 'gone' }, '192.168.1.4'),
        endpoint('dddddddddddd', { netns: '/run/netns/c1' }, '192.168.1.5'),
      ]),
    );
    const desired = desiredState(view, self, new Map([['web', '/proc/4242/ns/net']]));
    const byId = new Map(desired.endpoints.map((e) => [e.id, e]));
    assert.equal(byId.get('aaaaaaaaaaaa')!.netns, undefined);
    assert.equal(byId.get('aaaaaaaaaaaa')!.peerVeth, 'vxncaaaaaaaaaa');
    assert.equal(byId.get('bbbbbbbbbbbb')!.netns, '/proc/4242/ns/net');
    assert.equal(byId.has('cccccccccccc'), false);
    assert.equal(byId.get('dddddddddddd')!.netns, '/run/netns/c1');
  });
});

function handover(id: string): DesiredEndpoint {
  return {
    id,
    bridge: deviceNames.bridge(1000),
    hostVeth: deviceNames.hostVeth(id),
    peerVeth: deviceNames.peerVeth(id),
    ifname: 'eth',
    mac: '02:78:c0:a8:01:02',
    address: '192.168.1.2/24',
    gateway: '192.168.1.1',
    mtu: 1450,
    extraRoutes: [],
  };
}

function stateWith(endpoints: DesiredEndpoint[]): DesiredState {
  return {
    networks: [
      {
        name: 'blue',
        vni: 1000,
        bridge: 'vxnb1000',
        vxlan: 'vxnv1000',
        port: 4789,
        mtu: 1450,
        localAddress: '10.99.0.11',
        gatewayMac: '02:78:c0:a8:01:01',
        gatewayAddresses: ['192.168.1.1/24'],
        subnets: ['192.168.1.0/24'],
        internal: false,
      },
    ],
    peers: [],
    floods: [],
    endpoints,
    vxlanFilter: { ports: [], allowedSources: [] },
  };
}

function actualWith(links: LinkState[]): ActualState {
  const base: LinkState[] = [
    { name: 'vxnb1000', index: 1, kind: 'bridge', mtu: 1450, up: true, mac: '02:78:c0:a8:01:01', peerElsewhere: false, ipv4: ['192.168.1.1/24'] },
    {
      name: 'vxnv1000', index: 2, kind: 'vxlan', mtu: 1450, up: true, master: 'vxnb1000', mac: '66:00:00:00:00:01', peerElsewhere: false, ipv4: [],
      vxlan: { vni: 1000, port: 4789, local: '10.99.0.11', ttl: 0, learning: false, proxy: true },
    },
  ];
  return { links: new Map([...base, ...links].map((l) => [l.name, l])), neighbours: [], fdb: [], firewall: { present: false }, ipForward: true };
}

const hostEnd = (id: string, extra: Partial<LinkState> = {}): LinkState => ({
  name: deviceNames.hostVeth(id), index: 10, kind: 'veth', mtu: 1450, up: true, master: 'vxnb1000', mac: '66:00:00:00:00:02', peerElsewhere: false, peer: deviceNames.peerVeth(id), ipv4: [], ...extra,
});
const containerEnd = (id: string): LinkState => ({
  name: deviceNames.peerVeth(id), index: 11, kind: 'veth', mtu: 1450, up: false, mac: '02:78:c0:a8:01:02', peerElsewhere: false, peer: deviceNames.hostVeth(id), ipv4: [],
});

describe('the planner and renderer with handed-over endpoints', () => {
  it('creates the pair and leaves the container end here (no move, no configuration inside)', () => {
    const ep = handover('aaaaaaaaaaaa');
    assert.deepEqual(renderEndpointCreate(ep), [
      'link add name vxnhaaaaaaaaaa mtu 1450 type veth peer name vxncaaaaaaaaaa mtu 1450 address 02:78:c0:a8:01:02',
    ]);
    const plan = planReconcile(stateWith([ep]), actualWith([]));
    assert.deepEqual(plan.endpoints.create.map((e) => e.id), ['aaaaaaaaaaaa']);
  });

  it('a pair whose container end still waits for Docker is present: kept, container end not pruned', () => {
    const plan = planReconcile(stateWith([handover('aaaaaaaaaaaa')]), actualWith([hostEnd('aaaaaaaaaaaa'), containerEnd('aaaaaaaaaaaa')]));
    assert.deepEqual(plan.links, []);
    assert.deepEqual(plan.endpoints, { create: [], adopted: ['aaaaaaaaaaaa'] });
  });

  it('a pair whose container end Docker moved away is present too', () => {
    const moved = hostEnd('aaaaaaaaaaaa', { peerElsewhere: true });
    delete moved.peer;
    const plan = planReconcile(stateWith([handover('aaaaaaaaaaaa')]), actualWith([moved]));
    assert.deepEqual(plan.links, []);
    assert.deepEqual(plan.endpoints.adopted, ['aaaaaaaaaaaa']);
  });

  it('a pair that was never attached is made again; an unwanted pair goes with one delete', () => {
    const half = planReconcile(stateWith([handover('aaaaaaaaaaaa')]), actualWith([hostEnd('aaaaaaaaaaaa', { up: false, master: undefined as never }), containerEnd('aaaaaaaaaaaa')]));
    assert.deepEqual(half.links.map((s) => s.op === 'link-del' && s.name), ['vxnhaaaaaaaaaa']);
    assert.deepEqual(half.endpoints.create.map((e) => e.id), ['aaaaaaaaaaaa']);
    const stale = planReconcile(stateWith([]), actualWith([hostEnd('aaaaaaaaaaaa'), containerEnd('aaaaaaaaaaaa')]));
    // the container end is not deleted on its own: it goes with its host end
    assert.deepEqual(stale.links.filter((s) => s.op === 'link-del').map((s) => s.op === 'link-del' && s.name), ['vxnhaaaaaaaaaa']);
  });

  it('an ordinary endpoint whose peer never left is still set up again', () => {
    const ep = { ...handover('aaaaaaaaaaaa'), netns: '/run/netns/c1', ifname: 'eth0' };
    const plan = planReconcile(stateWith([ep]), actualWith([hostEnd('aaaaaaaaaaaa'), containerEnd('aaaaaaaaaaaa')]));
    assert.deepEqual(plan.endpoints.create.map((e) => e.id), ['aaaaaaaaaaaa']);
  });
});

/** The agent of host1 on scripts; a container whose namespace is /proc/666/ns/net fails to be set up. */
async function runAgent(options: Parameters<typeof runScriptedAgent>[0] = {}) {
  const running = await runScriptedAgent(options);
  running.dataplane.failures.set('/proc/666/ns/net', 'setting up the veth pair failed');
  return running;
}

describe('agent: Docker-linked', () => {
  it('watches every network when linked to Docker', async () => {
    const a = await runAgent({ watchAllNetworks: true });
    try {
      assert.equal((a.api.watchOptions as { allNetworks?: boolean }).allNetworks, true);
      assert.equal(a.agent.view.allNetworks, true);
    } finally {
      await a.stop();
    }
  });

  it('waitForEndpoint resolves when a pass set the endpoint up, rejects with the reason or on timeout', async () => {
    const a = await runAgent({ containers: { resolve: async (ref) => (ref === 'bad' ? '/proc/666/ns/net' : '/proc/1/ns/net') } });
    try {
      const ready = a.agent.waitForEndpoint('aaaaaaaaaaaa', 2000);
      const failed = a.agent.waitForEndpoint('bbbbbbbbbbbb', 2000);
      a.api.push!(snapshot([endpoint('aaaaaaaaaaaa', { docker: DOCKER_EP, ifname: 'eth' }), endpoint('bbbbbbbbbbbb', { container: 'bad' }, '192.168.1.3')]));
      await ready;
      await assert.rejects(failed, (err: unknown) => err instanceof VxnetError && err.code === 'attach_failed' && /veth pair failed/.test(err.message));
      await assert.rejects(a.agent.waitForEndpoint('cccccccccccc', 50), (err: unknown) => err instanceof VxnetError && err.code === 'timeout');
    } finally {
      await a.stop();
    }
  });

  it('a container endpoint on an agent without Docker fails with a clear reason; an unknown container too', async () => {
    for (const [containers, pattern] of [
      [undefined, /not linked to a Docker engine \(start it with --docker-socket\)/],
      [{ resolve: async () => Promise.reject(new Error("no such container on this node's Docker engine")) }, /container web: no such container/],
    ] as const) {
      const a = await runAgent(containers ? { containers } : {});
      try {
        a.api.push!(snapshot([endpoint('aaaaaaaaaaaa', { container: 'web' })]));
        await until(() => a.api.statuses.length > 0, 'a status report');
        const [id, status] = a.api.statuses[0]!;
        assert.equal(id, 'aaaaaaaaaaaa');
        assert.equal(status.status, 'error');
        assert.match(status.message!, pattern);
        assert.equal(a.dataplane.calls.at(-1)!.endpoints.length, 0);
      } finally {
        await a.stop();
      }
    }
  });
});

describe('container namespaces from the engine', () => {
  const dir = temporaryDirectory('vxnet-proc-');
  const fakeProc = (pid: number, ns: string) => {
    mkdirSync(join(dir, String(pid), 'ns'), { recursive: true });
    rmSync(join(dir, String(pid), 'ns', 'net'), { force: true });
    symlinkSync(ns, join(dir, String(pid), 'ns', 'net'));
  };

  it('asks the engine once, then trusts the pid while it names the same namespace', async () => {
    const asked: string[] = [];
    let pid = 100;
    const engine = {
      async inspectContainer(ref: string) {
        asked.push(ref);
        return ref === 'web' ? { Id: 'x', Name: '/web', State: { Running: true, Pid: pid, Status: 'running' } } : undefined;
      },
    };
    fakeProc(100, 'net:[1]');
    const namespaces = new EngineContainerNamespaces(engine, { proc: dir });
    assert.equal(await namespaces.resolve('web'), join(dir, '100/ns/net'));
    assert.equal(await namespaces.resolve('web'), join(dir, '100/ns/net'));
    assert.deepEqual(asked, ['web']);
    // the process is gone and its pid names another namespace now: ask again
    fakeProc(100, 'net:[2]');
    pid = 101;
    fakeProc(101, 'net:[3]');
    assert.equal(await namespaces.resolve('web'), join(dir, '101/ns/net'));
    assert.deepEqual(asked, ['web', 'web']);
    await assert.rejects(namespaces.resolve('nope'), /no such container/);
  });

  it('refuses a container that is not running', async () => {
    const engine = { inspectContainer: async () => ({ Id: 'x', Name: '/web', State: { Running: false, Pid: 0, Status: 'exited' } }) };
    await assert.rejects(new EngineContainerNamespaces(engine, { proc: dir }).resolve('web'), /not running \(exited\)/);
  });
});
