/**
 * Crash-safe state: a real manager process takes a burst of 1,000 writes (endpoint creates with wait=0,
 * network creates, endpoint and network deletes; 16 in flight at a time) and is killed with SIGKILL in the
 * middle of it. Restarted on the same data directory, it must open cleanly and hold every write it
 * acknowledged (and none it acknowledged deleting), with no address allocated twice — also for the
 * addresses it hands out after the restart. Finally the store file itself is checked: SQLite's integrity
 * check, and every claim key (`/ipam/`, `/attachments/`, `/vnis/`) matching exactly the resources holding it.
 *
 * No agents are needed: nodes are registered through the API, and wait=0 answers as soon as the endpoint is
 * committed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, Network } from '../../src/core/model.ts';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';

const WRITES = 1000;
const CONCURRENCY = 16;
const BASE_NETWORKS = ['base0', 'base1', 'base2', 'base3'];
const NODES = ['n1', 'n2', 'n3'];

type Outcome = 'acked' | 'refused' | 'unknown';

describe('manager killed (-9) during a burst of 1,000 writes', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await createCluster({ hosts: 1, outside: false, startDaemons: false });
    await cluster.startManager();
    for (const [i, name] of NODES.entries()) {
      const answer = await cluster.api('POST', '/v1/nodes', { name, address: `10.99.0.${100 + i}`, mtu: 1500 });
      assert.equal(answer.status, 200, answer.text);
    }
    for (const [i, name] of BASE_NETWORKS.entries()) {
      const answer = await cluster.api('POST', '/v1/networks', { name, subnets: [{ cidr: `10.${10 + i}.0.0/22` }] });
      assert.equal(answer.status, 201, answer.text);
    }
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('restarts cleanly with every acknowledged write and no address allocated twice', async (t) => {
    // What the test knows for sure, from the answers it got.
    const createdEndpoints = new Map<string, Endpoint>();
    const endpointDeletes = new Map<string, Outcome>();
    const createdNetworks = new Set<string>();
    const networkDeletes = new Map<string, Outcome>();
    const deletable: string[] = [];
    const deletableNetworks: string[] = [];
    const outcomes: Record<Outcome, number> = { acked: 0, refused: 0, unknown: 0 };
    const refusals: string[] = [];
    const killAfter = 300 + Math.floor(Math.random() * 300);
    let killed: Promise<void> | undefined;
    let ackedAtKill = 0;
    let inFlight = 0;
    let inFlightAtKill = 0;

    const call = async (method: string, path: string, body?: unknown): Promise<{ outcome: Outcome; body: unknown }> => {
      let answer;
      inFlight++;
      try {
        answer = await cluster.api(method, path, body);
      } catch {
        return { outcome: 'unknown', body: undefined }; // connection refused or cut: committed or not, we cannot know
      } finally {
        inFlight--;
      }
      if (answer.status >= 200 && answer.status < 300) return { outcome: 'acked', body: answer.body };
      refusals.push(`${method} ${path} -> ${answer.status} ${answer.text}`);
      return { outcome: 'refused', body: answer.body };
    };

    const write = async (i: number): Promise<void> => {
      const kind = i % 20;
      let outcome: Outcome;
      if (kind >= 17 && kind <= 18 && deletable.length > 0) {
        const id = deletable.splice(Math.floor(Math.random() * deletable.length), 1)[0]!;
        outcome = (await call('DELETE', `/v1/endpoints/${id}?wait=0`)).outcome;
        endpointDeletes.set(id, outcome);
      } else if (kind === 19 && deletableNetworks.length > 0) {
        const name = deletableNetworks.shift()!;
        outcome = (await call('DELETE', `/v1/networks/${name}`)).outcome;
        networkDeletes.set(name, outcome);
      } else if (kind >= 14 && kind <= 16) {
        const name = `net${i}`;
        const result = await call('POST', '/v1/networks', { name });
        outcome = result.outcome;
        if (outcome === 'acked') {
          createdNetworks.add(name);
          deletableNetworks.push(name);
        }
      } else {
        const request = { network: BASE_NETWORKS[i % BASE_NETWORKS.length], node: NODES[i % NODES.length], netns: `/run/netns/crash${i}` };
        const result = await call('POST', '/v1/endpoints?wait=0', request);
        outcome = result.outcome;
        if (outcome === 'acked') {
          const endpoint = result.body as Endpoint;
          createdEndpoints.set(endpoint.id, endpoint);
          deletable.push(endpoint.id);
        }
      }
      outcomes[outcome]++;
      if (outcomes.acked >= killAfter && !killed) {
        ackedAtKill = outcomes.acked;
        inFlightAtKill = inFlight;
        killed = cluster.stopManager('SIGKILL');
      }
    };

    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < WRITES) await write(next++);
      }),
    );
    await killed;
    const burstMs = performance.now() - started;
    t.diagnostic(
      `${WRITES} writes in ${burstMs.toFixed(0)} ms, manager killed after ${ackedAtKill} acknowledgements with ${inFlightAtKill} in flight: ` +
        `${outcomes.acked} acknowledged, ${outcomes.unknown} without an answer, ${outcomes.refused} refused`,
    );
    assert.ok(killed, 'the manager was killed during the burst');
    assert.deepEqual(refusals, [], 'no write was refused before the crash');
    assert.ok(inFlightAtKill > 0 && outcomes.unknown > 0, 'writes were in flight when the manager was killed');

    const restartAt = performance.now();
    await cluster.startManager();
    t.diagnostic(`restarted on the same data directory in ${(performance.now() - restartAt).toFixed(0)} ms`);

    const networks = (await cluster.api<Network[]>('GET', '/v1/networks')).body;
    const endpoints = (await cluster.api<Endpoint[]>('GET', '/v1/endpoints')).body;
    const networkNames = new Set(networks.map((n) => n.name));
    const byId = new Map(endpoints.map((e) => [e.id, e]));

    let checked = 0;
    for (const [id, created] of createdEndpoints) {
      const deleted = endpointDeletes.get(id);
      if (deleted === 'acked') assert.equal(byId.has(id), false, `acknowledged delete of ${id} holds`);
      else if (deleted === undefined) {
        const found = byId.get(id);
        assert.ok(found, `acknowledged endpoint ${id} (${created.ip}) is present`);
        assert.deepEqual([found.network, found.node, found.ip, found.mac], [created.network, created.node, created.ip, created.mac]);
        checked++;
      }
    }
    for (const name of createdNetworks) {
      const deleted = networkDeletes.get(name);
      if (deleted === 'acked') assert.equal(networkNames.has(name), false, `acknowledged delete of network ${name} holds`);
      else if (deleted === undefined) assert.ok(networkNames.has(name), `acknowledged network ${name} is present`);
    }
    for (const name of BASE_NETWORKS) assert.ok(networkNames.has(name));
    assertUnique(endpoints, 'after the restart');
    assertUnique(networks.map((n) => ({ network: 'vni', ip: String(n.vni) })), 'VNIs after the restart');
    t.diagnostic(`${checked} acknowledged endpoints verified in place, ${endpoints.length} endpoints and ${networks.length} networks in the store`);

    // The allocator was rebuilt from the store: new addresses never collide with ones held before the crash.
    const more = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        cluster.api<Endpoint>('POST', '/v1/endpoints?wait=0', {
          network: BASE_NETWORKS[i % BASE_NETWORKS.length],
          node: NODES[i % NODES.length],
          netns: `/run/netns/after${i}`,
        }),
      ),
    );
    assert.deepEqual(more.filter((a) => a.status !== 201).map((a) => a.text), []);
    const all = (await cluster.api<Endpoint[]>('GET', '/v1/endpoints')).body;
    assert.equal(all.length, endpoints.length + 200);
    assertUnique(all, 'after 200 more attaches');

    // The store file: intact, and every claim key belongs to exactly the resource that holds it.
    await cluster.stopManager('SIGTERM');
    const db = new DatabaseSync(join(cluster.manager.dataDir, 'vxnet.db'));
    try {
      assert.deepEqual(db.prepare('PRAGMA integrity_check').all().map((row) => row.integrity_check), ['ok']);
      const kv = new Map(
        (db.prepare('SELECT key, value FROM kv').all() as { key: string; value: string }[]).map((r) => [r.key, r.value]),
      );
      const problems: string[] = [];
      const storedEndpoints = [...kv].filter(([k]) => k.startsWith('/endpoints/')).map(([, v]) => JSON.parse(v) as Endpoint);
      const storedNetworks = [...kv].filter(([k]) => k.startsWith('/networks/')).map(([, v]) => JSON.parse(v) as Network);
      const endpointById = new Map(storedEndpoints.map((e) => [e.id, e]));
      for (const e of storedEndpoints) {
        if (kv.get(`/ipam/${e.network}/${e.ip}`) !== e.id) problems.push(`endpoint ${e.id} does not hold its address ${e.ip}`);
        if (!kv.has(`/networks/${e.network}`)) problems.push(`endpoint ${e.id} on missing network ${e.network}`);
        if (!kv.has(`/nodes/${e.node}`)) problems.push(`endpoint ${e.id} on missing node ${e.node}`);
      }
      const claims = [...kv].filter(([k]) => /^\/(ipam|attachments|vnis)\//.test(k));
      const attachmentsPerEndpoint = new Map<string, number>();
      for (const [key, value] of claims) {
        if (key.startsWith('/ipam/')) {
          const [network, ip] = key.slice('/ipam/'.length).split('/');
          const holder = endpointById.get(value);
          if (!holder || holder.network !== network || holder.ip !== ip) problems.push(`orphan address claim ${key} = ${value}`);
        } else if (key.startsWith('/attachments/')) {
          if (!endpointById.has(value)) problems.push(`orphan interface claim ${key} = ${value}`);
          attachmentsPerEndpoint.set(value, (attachmentsPerEndpoint.get(value) ?? 0) + 1);
        } else if (kv.get(`/networks/${value}`) === undefined || (JSON.parse(kv.get(`/networks/${value}`)!) as Network).vni !== Number(key.slice('/vnis/'.length))) {
          problems.push(`orphan VNI claim ${key} = ${value}`);
        }
      }
      for (const e of storedEndpoints) if (attachmentsPerEndpoint.get(e.id) !== 1) problems.push(`endpoint ${e.id} holds ${attachmentsPerEndpoint.get(e.id) ?? 0} interface claims`);
      for (const n of storedNetworks) if (kv.get(`/vnis/${n.vni}`) !== n.name) problems.push(`network ${n.name} does not hold VNI ${n.vni}`);
      const markers = [...kv.keys()].filter((k) => k.startsWith('/deleting/') || k.startsWith('/removing-nodes/'));
      assert.deepEqual(problems, []);
      assert.deepEqual(markers, [], 'no delete marker survives a restart');
      t.diagnostic(`store: integrity ok, ${storedEndpoints.length} endpoints, ${claims.length} claim keys, all consistent`);
    } finally {
      db.close();
    }
  });
});

function assertUnique(endpoints: { network: string; ip: string }[], when: string): void {
  const seen = new Map<string, number>();
  for (const e of endpoints) seen.set(`${e.network} ${e.ip}`, (seen.get(`${e.network} ${e.ip}`) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  assert.deepEqual(twice, [], `addresses allocated twice ${when}`);
}
