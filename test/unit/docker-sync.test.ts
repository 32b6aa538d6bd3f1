/**
 * The Docker Engine API client against a stand-in engine on a unix socket, and the network sync against a
 * recording engine: a Docker network for every vxnet network, none for networks that are gone, hands off
 * what the plugin is busy with; and the DOCKER-USER rules that let vxnet traffic past Docker's filter.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Runner, RunOptions, RunResult } from '../../src/agent/kernel/exec.ts';
import { ERROR_STATUS } from '../../src/core/errors.ts';
import type { Network } from '../../src/core/model.ts';
import { NetworkCatalogue } from '../../src/docker/catalogue.ts';
import { DockerEngineClient, EngineError, type EngineNetwork, type NetworkCreateSpec } from '../../src/docker/engine-client.ts';
import { DockerNetworkSync, ensureForwardAccept, forwardAcceptRules, specOf } from '../../src/docker/sync.ts';
import { networkRecord } from './support/fixtures.ts';
import { temporaryDirectory } from './support/temporary.ts';

describe('engine client', () => {
  const dir = temporaryDirectory('vxnet-engine-');

  it('speaks the Engine API over the socket: filters, 404 as undefined, the engine\'s error message', async () => {
    const socketPath = join(dir, 'docker.sock');
    const requests: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        requests.push(`${req.method} ${decodeURIComponent(req.url ?? '')}${body ? ` ${body}` : ''}`);
        const json = (status: number, value: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(value));
        };
        if (req.url?.startsWith('/networks?')) return json(200, [{ Id: 'n1', Name: 'blue', Driver: 'vxnet' }]);
        if (req.url === '/networks/n1') return json(200, { Id: 'n1', Name: 'blue', Driver: 'vxnet', Containers: {} });
        if (req.url === '/networks/create') return json(409, { message: 'network with name blue already exists' });
        if (req.method === 'DELETE') return json(404, { message: 'network n2 not found' });
        return json(404, { message: 'No such container: web' });
      });
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    try {
      const engine = new DockerEngineClient({ socketPath });
      assert.deepEqual((await engine.listNetworks({ driver: 'vxnet' })).map((n) => n.Name), ['blue']);
      assert.equal((await engine.inspectNetwork('n1'))?.Name, 'blue');
      assert.equal(await engine.inspectContainer('web'), undefined);
      await engine.removeNetwork('n2'); // gone already: fine
      await assert.rejects(
        engine.createNetwork(specOf(net('blue', ['10.1.0.0/24']))),
        (err: unknown) => err instanceof EngineError && err.status === 409 && err.message === 'network with name blue already exists',
      );
      assert.equal(requests[0], 'GET /networks?filters={"driver":{"vxnet":true}}');
      assert.match(requests.find((r) => r.startsWith('POST /networks/create'))!, /"Driver":"vxnet","CheckDuplicate":true,"Internal":false,"IPAM":\{"Driver":"vxnet","Config":\[\{"Subnet":"10.1.0.0\/24","Gateway":"10.1.0.1"\}\]\}/);
      const gone = new DockerEngineClient({ socketPath: join(dir, 'nothing.sock') });
      await assert.rejects(gone.ping(), (err: unknown) => err instanceof EngineError && err.status === 503 && /cannot reach the Docker engine/.test(err.message));
      // a code of the catalogue, next to the engine's status
      await assert.rejects(gone.ping(), (err: unknown) => err instanceof EngineError && err.code === 'docker_engine_failed' && ERROR_STATUS[err.code] === 502);
    } finally {
      server.close();
    }
  });
});

const net = (name: string, cidrs: string[], extra: Partial<Network> = {}): Network => networkRecord(name, cidrs, { vni: 4100, ...extra });

class FakeEngine {
  networks = new Map<string, EngineNetwork>();
  log: string[] = [];
  next = 1;
  conflictNames = new Set<string>();
  add(name: string, cidrs: string[], containers: string[] = []): string {
    const id = `id${this.next++}`;
    this.networks.set(id, {
      Id: id, Name: name, Driver: 'vxnet', IPAM: { Driver: 'vxnet', Config: cidrs.map((c) => ({ Subnet: c })) },
      Containers: Object.fromEntries(containers.map((c) => [c, { Name: c }])),
    });
    return id;
  }
  async listNetworks(): Promise<EngineNetwork[]> {
    return [...this.networks.values()].map(({ Containers: _c, ...rest }) => rest);
  }
  async inspectNetwork(id: string): Promise<EngineNetwork | undefined> {
    return this.networks.get(id);
  }
  specs: NetworkCreateSpec[] = [];
  async createNetwork(spec: NetworkCreateSpec): Promise<{ Id: string }> {
    if (this.conflictNames.has(spec.Name)) throw new EngineError(409, `network with name ${spec.Name} already exists`);
    this.specs.push(spec);
    this.log.push(`create ${spec.Name} ${spec.IPAM.Config.map((c) => c.Subnet).join(',')} internal=${spec.Internal} vni=${spec.Options.vni}`);
    return { Id: this.add(spec.Name, spec.IPAM.Config.map((c) => c.Subnet)) };
  }
  async removeNetwork(id: string): Promise<void> {
    this.log.push(`remove ${this.networks.get(id)?.Name}`);
    this.networks.delete(id);
  }
  async disconnect(id: string, container: string, force: boolean): Promise<void> {
    this.log.push(`disconnect ${container} from ${this.networks.get(id)?.Name}${force ? ' (force)' : ''}`);
  }
}

function syncWith(networks: Network[], engine: FakeEngine, ready = true) {
  const view = { networks: new Map(networks.map((n) => [n.name, n])) };
  const catalogue = new NetworkCatalogue(view);
  const logs: string[] = [];
  const sync = new DockerNetworkSync({ engine, catalogue, ready: () => ready, log: (l) => logs.push(l) });
  return { view, catalogue, sync, logs };
}

describe('docker network sync', () => {
  const signal = new AbortController().signal;

  it('makes a Docker network for every vxnet network, named and configured like it', async () => {
    const engine = new FakeEngine();
    const { sync, catalogue } = syncWith([net('blue', ['10.1.0.0/24']), net('red', ['10.2.0.0/24', '10.3.0.0/24'], { internal: true, vni: 7 })], engine);
    await sync.pass(signal);
    assert.deepEqual(engine.log, ['create blue 10.1.0.0/24 internal=false vni=4100', 'create red 10.2.0.0/24,10.3.0.0/24 internal=true vni=7']);
    engine.log = [];
    await sync.pass(signal);
    assert.deepEqual(engine.log, [], 'a converged engine gets no change');
    assert.equal(catalogue.binding('id1')?.name, 'blue');
  });

  it('matches by subnets, not by name: a user\'s Docker network of another name counts', async () => {
    const engine = new FakeEngine();
    engine.add('my-blue', ['10.1.0.0/24']);
    const { sync, catalogue } = syncWith([net('blue', ['10.1.0.0/24'])], engine);
    await sync.pass(signal);
    assert.deepEqual(engine.log, []);
    assert.deepEqual(catalogue.binding('id1'), { name: 'blue', cidrs: ['10.1.0.0/24'] });
  });

  it('removes a Docker network whose vxnet network is gone, disconnecting its containers first', async () => {
    const engine = new FakeEngine();
    engine.add('old', ['10.9.0.0/24'], ['c1', 'c2']);
    const { sync, logs } = syncWith([], engine);
    await sync.pass(signal);
    assert.deepEqual(engine.log, ['disconnect c1 from old (force)', 'disconnect c2 from old (force)', 'remove old']);
    assert.match(logs.join('\n'), /removed docker network old: its vxnet network is gone \(disconnected 2 containers\)/);
  });

  it('leaves alone what the plugin is creating, has just created, or has just deleted', async () => {
    const engine = new FakeEngine();
    const pendingId = engine.add('green', ['10.5.0.0/24']);
    engine.add('yellow', ['10.6.0.0/24']);
    const { sync, catalogue } = syncWith([net('blue', ['10.1.0.0/24'])], engine);
    catalogue.addPending(pendingId, ['10.5.0.0/24'], () => new Promise(() => {}));
    catalogue.created('yellow', ['10.6.0.0/24']);
    catalogue.deleted('blue');
    await sync.pass(signal);
    assert.deepEqual(engine.log, []);
  });

  it('a Docker network removed in vain (docker network rm refused) comes back with the reason in a label and a warning', async () => {
    const engine = new FakeEngine();
    const { sync, catalogue, logs } = syncWith([net('blue', ['10.1.0.0/24'])], engine);
    const reason = 'docker network rm cannot delete vxnet network blue from node host2, so its Docker network is restored: use "vxnet network rm blue" instead.';
    catalogue.removalRefused('blue', reason);
    await sync.pass(signal);
    assert.deepEqual(engine.specs.map((s) => s.Labels), [{ 'io.vxnet.network': 'blue', 'io.vxnet.restored': reason }]);
    assert.deepEqual(logs, [`warning: restored docker network blue after a docker network rm on this host: ${reason}`]);
    assert.equal(catalogue.takeRefusedRemoval('blue'), undefined, 'said once');
  });

  it('does nothing before the view is synced; a name taken by another network is reported once', async () => {
    const engine = new FakeEngine();
    const early = syncWith([], engine, false);
    engine.add('old', ['10.9.0.0/24']);
    await early.sync.pass(signal);
    assert.deepEqual(engine.log, []);
    const engine2 = new FakeEngine();
    engine2.conflictNames.add('blue');
    const { sync, logs } = syncWith([net('blue', ['10.1.0.0/24'])], engine2);
    await sync.pass(signal);
    await sync.pass(signal);
    assert.equal(logs.filter((l) => /not created: network with name blue already exists/.test(l)).length, 1);
  });
});

class RecordingRunner implements Runner {
  calls: string[] = [];
  present = new Set<string>();
  chain = true;
  async run(argv: readonly string[], _options?: RunOptions): Promise<RunResult> {
    const line = argv.join(' ');
    this.calls.push(line);
    let code = 0;
    let stdout = '';
    if (argv.includes('-S')) {
      code = this.chain ? 0 : 1;
      stdout = ['-N DOCKER-USER', ...[...this.present].map((rule) => `-A DOCKER-USER ${rule}`)].join('\n') + '\n';
    }
    if (argv.includes('-D')) this.present.delete(argv.slice(argv.indexOf('-D') + 2).join(' '));
    if (argv.includes('-I')) this.present.add(argv.slice(argv.indexOf('-I') + 3).join(' '));
    return { argv, code, stdout, stderr: '' };
  }
  async readFile(): Promise<string | undefined> {
    return undefined;
  }
  async writeFile(): Promise<void> {}
  async exists(): Promise<boolean> {
    return true;
  }
}

describe('DOCKER-USER accept rules', () => {
  it('inserts vxnet\'s rules once, only where Docker filters (the chain exists)', async () => {
    const run = new RecordingRunner();
    assert.equal(await ensureForwardAccept(run, () => {}, ['eth0']), 3);
    assert.equal(await ensureForwardAccept(run, () => {}, ['eth0']), 0);
    assert.deepEqual([...run.present].sort(), forwardAcceptRules(['eth0']).map((r) => r.join(' ')).sort());
    assert.ok(run.calls.includes('iptables -w 5 -I DOCKER-USER 1 -i vxnb+ -o vxnb+ -m comment --comment vxnet -j ACCEPT'));
    assert.ok(run.calls.includes('iptables -w 5 -I DOCKER-USER 1 -i vxnb+ -o eth0 -m comment --comment vxnet -j ACCEPT'));
    const none = new RecordingRunner();
    none.chain = false;
    assert.equal(await ensureForwardAccept(none, () => {}, ['eth0']), 0);
    assert.equal(none.calls.length, 1);
  });

  it('accepts only what vxnet needs: its own bridges, replies, egress; the wide rule of older versions goes (vxnet issue 9)', async () => {
    const run = new RecordingRunner();
    run.present.add('-i vxnb+ -m comment --comment vxnet -j ACCEPT');
    run.present.add('-i br-other -j DROP');
    assert.equal(await ensureForwardAccept(run, () => {}, ['eth0']), 4);
    assert.ok(run.calls.includes('iptables -w 5 -D DOCKER-USER -i vxnb+ -m comment --comment vxnet -j ACCEPT'));
    assert.ok(run.present.has('-i br-other -j DROP'), 'somebody else\'s rule is left alone');
    // an egress interface that went is deleted, a new one added
    assert.equal(await ensureForwardAccept(run, () => {}, ['eth1']), 2);
    assert.ok(!run.present.has('-i vxnb+ -o eth0 -m comment --comment vxnet -j ACCEPT'));
    assert.ok(!run.present.has('-i vxnb+ -m comment --comment vxnet -j ACCEPT'));
  });
});

describe('docker network sync with IPv6 subnets', () => {
  const signal = new AbortController().signal;
  const sixes = (name: string, subnets: { cidr: string; gateway: string }[]) => net(name, [], { subnets });

  it('a dual-stack vxnet network gets a Docker network with IPv6 on and both subnets; an engine spelling them otherwise still matches', async () => {
    const engine = new FakeEngine();
    const dual = sixes('dual', [{ cidr: '10.6.0.0/24', gateway: '10.6.0.1' }, { cidr: 'fd00:6::/64', gateway: 'fd00:6::1' }]);
    const { sync, catalogue } = syncWith([dual], engine);
    await sync.pass(signal);
    assert.equal(engine.specs.length, 1);
    assert.equal(engine.specs[0]!.EnableIPv6, true);
    assert.deepEqual(engine.specs[0]!.IPAM.Config, [{ Subnet: '10.6.0.0/24', Gateway: '10.6.0.1' }, { Subnet: 'fd00:6::/64', Gateway: 'fd00:6::1' }]);
    await sync.pass(signal);
    assert.deepEqual(catalogue.binding('id1'), { name: 'dual', cidrs: ['10.6.0.0/24', 'fd00:6::/64'] });
    assert.equal(engine.specs.length, 1, 'a converged engine gets no change');
    // an IPv4 network's spec is as it always was
    assert.equal(specOf(net('blue', ['10.1.0.0/24'])).EnableIPv6, undefined);
    const other = new FakeEngine();
    other.add('mine', ['10.6.0.0/24', 'FD00:6:0::/64']);
    const again = syncWith([dual], other);
    await again.sync.pass(signal);
    assert.deepEqual(other.log, [], 'the same subnets in another spelling are the same network');
  });

  it('an IPv6-only vxnet network gets no Docker network (Docker gives each an IPv4 subnet), said once; the others are made', async () => {
    const engine = new FakeEngine();
    const { sync, logs } = syncWith([sixes('six', [{ cidr: 'fd00:9::/64', gateway: 'fd00:9::1' }]), net('blue', ['10.1.0.0/24'])], engine);
    await sync.pass(signal);
    await sync.pass(signal);
    assert.deepEqual(engine.log, ['create blue 10.1.0.0/24 internal=false vni=4100']);
    assert.equal(logs.filter((l) => /six: it has IPv6 subnets only/.test(l)).length, 1);
  });
});
