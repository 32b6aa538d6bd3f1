/**
 * Containers find each other by name across hosts (vxnet issue 12), on 3 simulated hosts with real agents:
 * every network's gateway answers DNS on every host where the network has an endpoint. Queries are asked
 * from inside the container namespaces with vxnet's own codec (src/agent/dns/query.ts); the agents forward
 * what is not a vxnet name to a test resolver in the "outside" namespace (their --resolv-conf).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { createCluster, type ChildProcessHandle, type Cluster } from '../../src/testkit/cluster.ts';
import { cliOk } from './support/setup.ts';

const QUERY = resolve(import.meta.dirname, '../../src/agent/dns/query.ts');
const CODEC = resolve(import.meta.dirname, '../../src/packet/dns.ts');
const OUTSIDE_NAME = 'outside.example';
const OUTSIDE_ANSWER = '203.0.113.77';

/** The test resolver: `outside.example` is 203.0.113.77, every other name NXDOMAIN; logs each name asked. */
const RESOLVER = `
import { createSocket } from 'node:dgram';
import { decodeDns, encodeDns } from ${JSON.stringify(CODEC)};
const socket = createSocket('udp4');
socket.on('message', (bytes, from) => {
  const q = decodeDns(new Uint8Array(bytes));
  const name = q.questions[0]?.name ?? '';
  console.log('asked ' + name);
  const known = name.toLowerCase() === ${JSON.stringify(OUTSIDE_NAME)};
  const answers = known ? [{ name, type: 1, class: 1, ttl: 60, address: ${JSON.stringify(OUTSIDE_ANSWER)} }] : [];
  socket.send(encodeDns({ ...q, response: true, recursionAvailable: true, rcode: known ? 0 : 3, answers }), from.port, from.address);
});
socket.bind(53, '0.0.0.0', () => console.log('listening'));
`;

interface Answer {
  timeout?: true;
  rcode?: number;
  answers?: { address?: string; target?: string }[];
}

describe('DNS names across 3 hosts', () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let resolver: ChildProcessHandle;
  const dir = mkdtempSync('/tmp/vxnet-dns-names-');
  const resolvConf = join(dir, 'resolv.conf');
  const ns: Record<string, string> = {};
  const ip: Record<string, string> = {};

  /** one query from inside namespace `from` */
  async function ask(from: string, server: string, name: string, type = 'A', extra: string[] = []): Promise<Answer> {
    const result = await cluster.exec(ns[from]!, [process.execPath, QUERY, server, name, type, ...extra], { timeoutMs: 10_000 });
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as Answer;
  }
  const addresses = (a: Answer): string[] => (a.answers ?? []).map((r) => r.address ?? r.target ?? '').sort();

  async function attach(label: string, node: string, network: string, flags: string[]): Promise<void> {
    ns[label] = await cluster.addContainer(label);
    const printed = await cliOk(cluster, ['attach', network, '--node', node, '--netns', ns[label]!, ...flags]);
    ip[label] = printed.trim().split('/')[0]!;
  }

  before(async () => {
    // empty until the resolver runs: the agents read it again when it changes
    writeFileSync(resolvConf, '');
    cluster = await createCluster({ hosts: 3, outside: true, agentArgs: ['--resolv-conf', resolvConf], daemonTimeoutMs: 60_000 });
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    resolver = cluster.spawn(cluster.outside!.netns, [process.execPath, '--input-type=module', '-e', RESOLVER], { label: 'resolver' });
    await resolver.waitFor(/listening/, 10_000);
    writeFileSync(resolvConf, `# the test resolver in the outside namespace\nnameserver ${cluster.outside!.address}\n`);
    await client.createNetwork({ name: 'blue', vni: 1100, subnets: [{ cidr: '192.168.10.0/24' }] });
    await client.createNetwork({ name: 'red', vni: 1200, subnets: [{ cidr: '192.168.20.0/24' }] });
    await attach('web', 'host1', 'blue', ['--name', 'web', '--alias', 'api']);
    await attach('db', 'host2', 'blue', ['--name', 'db', '--alias', 'api']);
    await attach('client', 'host3', 'blue', ['--name', 'client']);
    await attach('peer1', 'host1', 'blue', ['--name', 'peer1']);
    // red on host3 too: its gateway lives on the same host as blue's client
    await attach('secret', 'host3', 'red', ['--name', 'secret']);
  });

  after(async () => {
    client?.close();
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resolves NAME and NAME.NETWORK of a container on another host, over UDP and TCP', async () => {
    assert.deepEqual(addresses(await ask('client', '192.168.10.1', 'web')), [ip.web!]);
    assert.deepEqual(addresses(await ask('client', '192.168.10.1', 'db.blue')), [ip.db!]);
    assert.deepEqual(addresses(await ask('web', '192.168.10.1', 'CLIENT.blue', 'A', ['--tcp'])), [ip.client!]);
  });

  it('gives every endpoint sharing an alias, and answers reverse lookups', async () => {
    assert.deepEqual(addresses(await ask('client', '192.168.10.1', 'api')), [ip.web!, ip.db!].sort());
    const reverse = ip.db!.split('.').reverse().join('.') + '.in-addr.arpa';
    assert.deepEqual(addresses(await ask('web', '192.168.10.1', reverse, 'PTR')), ['db.blue']);
  });

  it("does not resolve another network's names, neither through its own gateway nor through the other's", async () => {
    // through blue's gateway: not blue's, so forwarded, and the outside resolver knows no such name
    const bare = await ask('client', '192.168.10.1', 'secret');
    assert.deepEqual(addresses(bare), []);
    assert.equal(bare.rcode, 3, 'NXDOMAIN');
    assert.deepEqual(addresses(await ask('client', '192.168.10.1', 'secret.red')), []);
    // red's gateway answers red's own container on that host (so it is up: the next query could be answered)...
    assert.deepEqual(addresses(await ask('secret', '192.168.20.1', 'secret')), [ip.secret!]);
    // ...but a container of blue on the same host that sends to red's gateway gets nothing at all
    const crossing = await ask('client', '192.168.20.1', 'secret');
    assert.equal(crossing.timeout, true, `blue's client must get no answer from red's gateway: ${JSON.stringify(crossing)}`);
    const crossingTcp = await ask('client', '192.168.20.1', 'secret', 'A', ['--tcp']);
    assert.equal(crossingTcp.timeout, true, 'nor over TCP');
  });

  it('forwards other names, unchanged, to the resolvers of the host', async () => {
    const answer = await ask('client', '192.168.10.1', OUTSIDE_NAME);
    assert.deepEqual(addresses(answer), [OUTSIDE_ANSWER]);
    assert.match(resolver.output(), new RegExp(`asked ${OUTSIDE_NAME.replace('.', '\\.')}`));
  });

  it('detach and re-attach on another host: the new address answers everywhere within 2 s, the old never again', async (t) => {
    const watchers = ['client', 'peer1'].map((from) =>
      cluster.spawn(ns[from]!, [process.execPath, QUERY, '192.168.10.1', 'web', 'A', '--every=50'], { label: `watch-${from}` }),
    );
    try {
      await Promise.all(watchers.map((w) => w.waitFor(new RegExp(ip.web!.replace(/\./g, '\\.')), 10_000)));
      const oldIp = ip.web!;
      const web = (await client.listEndpoints({ network: 'blue' })).find((e) => e.name === 'web')!;
      await client.deleteEndpoint(web.id, { waitSeconds: 20 });
      const detached = Date.now();
      // another address than the old one (the lowest free address would be the same)
      await attach('web2', 'host2', 'blue', ['--name', 'web', '--ip', '192.168.10.50']);
      const attached = Date.now();
      const newIp = ip.web2!;
      assert.notEqual(newIp, oldIp);
      await new Promise((r) => setTimeout(r, 2_500));
      for (const watcher of watchers) {
        const lines = watcher
          .stdout()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { t: number; addresses?: string[] });
        const oldSeen = lines.filter((l) => l.addresses?.includes(oldIp)).map((l) => l.t);
        const lastOld = Math.max(...oldSeen);
        assert.ok(lastOld - detached < 2_000, `${watcher.label}: the old address answered ${lastOld - detached} ms after the detach`);
        const firstNew = lines.find((l) => l.addresses?.includes(newIp));
        assert.ok(firstNew, `${watcher.label}: the new address never answered`);
        assert.ok(firstNew.t - attached < 2_000, `${watcher.label}: the new address answered ${firstNew.t - attached} ms after the attach`);
        assert.ok(lastOld < firstNew.t, `${watcher.label}: the old address answered after the new one`);
        assert.deepEqual(lines.at(-1)!.addresses, [newIp]);
        t.diagnostic(`${watcher.label}: old address last answered ${lastOld - detached} ms after the detach returned, new one first ${firstNew.t - attached} ms after the attach returned`);
      }
    } finally {
      await Promise.all(watchers.map((w) => w.stop()));
    }
  });
});
