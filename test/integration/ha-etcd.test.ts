/**
 * Several managers on a real 3-member etcd (issue 11). Hosts 1-3 each run an etcd member and a manager
 * (`--store etcd://...`, the 2nd and 3rd joining with `--token-file`); hosts 4 and 5 run agents given
 * all three managers (`--manager A,B,C`). The test drives the API over the managers' unix sockets with one
 * client given all three, the way the CLI takes VXNET_MANAGER.
 *
 * What it proves: addresses stay unique when attaches go through different managers at once; a manager
 * killed with -9 under a stream of writes loses none it acknowledged, and the CLI and the agents carry on
 * through the others while a ping between the hosts loses nothing; killing the etcd leader pauses writes
 * (an election) and they resume, none lost; without an etcd quorum writes are refused with one sentence
 * while the data plane keeps forwarding, and everything resumes when quorum returns.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { NodeStatus } from '../../src/core/model.ts';
import { type ChildProcessHandle, type Cluster, createCluster, DEFAULT_CLI_PATH, type SimHost } from '../../src/testkit/cluster.ts';
import { ETCD_BINARY, type EtcdCluster, startEtcdCluster } from '../../src/testkit/etcd.ts';
import { nsenterArgv } from '../../src/testkit/netns.ts';
import { run, sleep, start } from '../../src/testkit/processes.ts';
import { MANAGER_PORT } from '../../src/testkit/topology.ts';
import { noPacketLostDuring, until } from './support/probes.ts';

interface HaManager {
  host: SimHost;
  dataDir: string;
  socketUrl: string;
  handle: ChildProcessHandle;
}

const skip = existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;

describe('several managers on a 3-member etcd', { ...(skip ? { skip } : {}) }, () => {
  let cluster: Cluster;
  let etcd: EtcdCluster;
  const managers: HaManager[] = [];
  let admin: ManagerClient;
  let adminTokenFile: string;
  let c4: string;
  let c5: string;
  let c5ip: string;
  /** the agents' processes, whose logs say how each reconnected */
  const agents = new Map<string, ChildProcessHandle>();

  const startManager = async (host: SimHost, joinWith?: string): Promise<HaManager> => {
    const dataDir = join(cluster.tmpDir, `manager-${host.name}`);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const socketUrl = `unix:${join(cluster.tmpDir, `manager-${host.name}.sock`)}`;
    const args = ['manager', '--data-dir', dataDir, '--listen', `${host.address}:${MANAGER_PORT}`, '--listen', socketUrl, '--store', etcd.url];
    if (joinWith) args.push('--token-file', joinWith);
    const handle = start(nsenterArgv(host.netns, [process.execPath, DEFAULT_CLI_PATH, ...args]), { label: `${host.name}/manager` });
    await handle.waitFor(/listening on/, 30_000);
    return { host, dataDir, socketUrl, handle };
  };

  const startAgent = async (host: SimHost, workerToken: string): Promise<void> => {
    const tokenFile = join(cluster.tmpDir, `${host.name}-join.token`);
    writeFileSync(tokenFile, `${workerToken}\n`, { mode: 0o600 });
    const urls = managers.map((m) => `https://${m.host.address}:${MANAGER_PORT}`).join(',');
    const argv = ['agent', '--manager', urls, '--token-file', tokenFile, '--state-dir', cluster.agentStateDir(host), '--advertise-addr', host.address, '--name', host.name,
      // /run/netns is one folder for every simulated host: their networks' namespaces need names of their own
      '--netns-prefix', `${host.netns}-n`];
    agents.set(host.name, start(nsenterArgv(host.netns, [process.execPath, DEFAULT_CLI_PATH, ...argv]), { label: `${host.name}/agent` }));
    await until(`${host.name} up`, async () => (await admin.listNodes()).find((n: NodeStatus) => n.name === host.name && n.state === 'up'), 30_000);
  };

  /** Creates networks <prefix><i>, `concurrency` at a time, until `stop` resolves; what was acknowledged and when. */
  const writeUntil = async (prefix: string, stop: Promise<unknown>, concurrency = 3) => {
    const acked: { name: string; at: number }[] = [];
    const errors: string[] = [];
    let done = false;
    void stop.then(() => (done = true));
    let i = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (!done) {
          const name = `${prefix}${i++}`;
          try {
            await admin.createNetwork({ name, subnets: nextSubnet() });
            acked.push({ name, at: performance.now() });
          } catch (err) {
            errors.push(`${name}: ${(err as Error).message}`);
            await sleep(100);
          }
        }
      }),
    );
    return { acked, errors };
  };

  /** a /24 of 172.16.0.0/12 no other write of this file uses (the default pool holds only 256) */
  let subnets = 0;
  const nextSubnet = () => {
    const i = subnets++;
    return [{ cidr: `172.${16 + (i >> 8)}.${i & 255}.0/24` }];
  };

  const networkNames = async () => new Set((await admin.listNetworks()).map((n) => n.name));

  before(async () => {
    cluster = await createCluster({ hosts: 5, startDaemons: false, prefix: 'vxha' });
    const members = cluster.hosts.slice(0, 3);
    etcd = await startEtcdCluster(
      members.map((h) => ({ name: h.name, address: h.address, clientPort: 2379, peerPort: 2380, netns: h.netns })),
      { scratch: cluster.tmpDir, token: `vxnet-${cluster.runId}` },
    );
    managers.push(await startManager(members[0]!));
    adminTokenFile = join(managers[0]!.dataDir, 'admin.token');
    for (const host of members.slice(1)) managers.push(await startManager(host, adminTokenFile));
    const token = readFileSync(adminTokenFile, 'utf8').trim();
    admin = new ManagerClient({ url: managers.map((m) => m.socketUrl).join(','), token });
    const worker = readFileSync(join(managers[0]!.dataDir, 'worker.token'), 'utf8').trim();
    await Promise.all([startAgent(cluster.host(4), worker), startAgent(cluster.host(5), worker)]);
    await admin.createNetwork({ name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24' }] });
  });

  after(async () => {
    admin?.close();
    await etcd?.stop();
    await cluster?.destroy();
  });

  it('every manager wrote the same admin and worker tokens into its data dir', () => {
    for (const file of ['admin.token', 'worker.token', 'ca.pem']) {
      const texts = new Set(managers.map((m) => readFileSync(join(m.dataDir, file), 'utf8')));
      assert.equal(texts.size, 1, file);
    }
  });

  it('concurrent attaches through different managers get unique addresses, and the containers reach each other', async () => {
    const clients = managers.map((m) => new ManagerClient({ url: m.socketUrl, token: readFileSync(adminTokenFile, 'utf8').trim() }));
    try {
      const placements = Array.from({ length: 12 }, (_, i) => ({ label: `c${i}`, node: i % 2 === 0 ? 'host4' : 'host5' }));
      const netns = await Promise.all(placements.map((p) => cluster.addContainer(p.label)));
      const endpoints = await Promise.all(
        placements.map((p, i) => clients[i % 3]!.createEndpoint({ network: 'blue', node: p.node, netns: netns[i]! }, { waitSeconds: 30 })),
      );
      const ips = endpoints.map((e) => e.ip);
      assert.equal(new Set(ips).size, ips.length, `an address was given twice: ${ips.join(' ')}`);
      assert.ok(endpoints.every((e) => e.status === 'ready'));
      c4 = netns[0]!;
      c5 = netns[1]!;
      c5ip = endpoints[1]!.ip;
      await until('c0 reaches c1', async () => (await cluster.exec(c4, ['ping', '-c', '1', '-W', '1', c5ip])).code === 0, 10_000);
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('kill -9 of a manager under a stream of writes: every acknowledged write is there, CLI and agents carry on, no packet lost', async (t) => {
    const victim = managers[0]!;
    let killedAt = 0;
    let stopWrites!: () => void;
    const writes = writeUntil('k', new Promise<void>((resolve) => (stopWrites = resolve)));
    await noPacketLostDuring(cluster, c4, c5ip, async () => {
      await sleep(300);
      await victim.handle.stop('SIGKILL');
      killedAt = performance.now();
      await sleep(1500);
      stopWrites();
    });
    const { acked, errors } = await writes;
    const present = await networkNames();
    const missing = acked.filter((a) => !present.has(a.name)).map((a) => a.name);
    assert.deepEqual(missing, [], 'acknowledged writes missing');
    assert.ok(acked.some((a) => a.at > killedAt), `no write acknowledged after the kill; errors: ${errors.slice(0, 3).join(' | ')}`);
    t.diagnostic(`manager on ${victim.host.name} killed: ${acked.length} writes acknowledged (${acked.filter((a) => a.at > killedAt).length} after the kill), ${errors.length} failed`);

    // the CLI given every manager carries on
    const cli = await run([process.execPath, DEFAULT_CLI_PATH, 'network', 'ls', '--manager', managers.map((m) => m.socketUrl).join(','), '--token-file', adminTokenFile]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /\bblue\b/);

    // the agents carry on: a new endpoint on host5 is set up (its agent reported it ready) and host4 reaches it
    const fresh = await cluster.addContainer('after-kill');
    const endpoint = await admin.createEndpoint({ network: 'blue', node: 'host5', netns: fresh }, { waitSeconds: 30 });
    assert.equal(endpoint.status, 'ready');
    await until('c0 reaches the container attached after the kill', async () => (await cluster.exec(c4, ['ping', '-c', '1', '-W', '1', endpoint.ip])).code === 0, 10_000);
  });

  it('an agent whose manager is killed resumes its watch on another from the revision it had: no snapshot, no packet lost, and what changed meanwhile arrives', async (t) => {
    // the managers host4's agent has connections to (its watch and its requests go to the same one)
    const ss = await run(nsenterArgv(cluster.host(4).netns, ['ss', '-tnH', 'state', 'established', `( dport = :${MANAGER_PORT} )`]));
    const watched = managers.filter((m) => m.handle.exitInfo === undefined && ss.stdout.includes(`${m.host.address}:${MANAGER_PORT}`));
    assert.ok(watched.length > 0 && watched.length < managers.filter((m) => m.handle.exitInfo === undefined).length, `host4's connections: ${ss.stdout}`);
    const agent4 = agents.get('host4')!;
    const logFrom = agent4.output().length;
    let fresh: { ip: string; status: string } | undefined;
    await noPacketLostDuring(cluster, c4, c5ip, async () => {
      for (const m of watched) await m.handle.stop('SIGKILL');
      // made while host4's agent has no stream: it reaches it only through the resumed one
      const netns = await cluster.addContainer('during-outage');
      fresh = await admin.createEndpoint({ network: 'blue', node: 'host5', netns }, { waitSeconds: 30 });
    });
    assert.equal(fresh?.status, 'ready');
    await until('c0 reaches the container attached during the outage', async () => (await cluster.exec(c4, ['ping', '-c', '1', '-W', '1', fresh!.ip])).code === 0, 10_000);

    const log = agent4.output().slice(logFrom);
    assert.match(log, /node host4 resumed its watch from revision \d+ after [\d.]+ s: no snapshot needed/, log);
    // the line an agent writes when a snapshot follows a lost watch
    assert.doesNotMatch(log, /reconnected to the manager after/, log);
    const survivors = managers.filter((m) => m.handle.exitInfo === undefined);
    const resumed = survivors.map((m) => /watch of node host4 resumed from revision \d+ at \d+: \d+ changes sent, no snapshot/.exec(m.handle.output())?.[0]).find(Boolean);
    assert.ok(resumed, survivors.map((m) => m.handle.output()).join('\n'));
    // what the data plane was asked to change after the kill: the new peer's entries only, no rebuild
    const changes = [...log.matchAll(/reconciled revision \d+: (\d+) changes/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(changes <= 4, log);
    t.diagnostic(`${watched.map((m) => m.host.name).join(',')} killed; ${resumed}; host4 changed ${changes} kernel entries`);
  });

  it('kill -9 of the etcd leader under writes: writes pause, then resume, none lost', async (t) => {
    const leader = await until('an etcd leader', () => etcd.leader(), 10_000);
    let killedAt = 0;
    let stopWrites!: () => void;
    const writes = writeUntil('e', new Promise<void>((resolve) => (stopWrites = resolve)));
    await sleep(500);
    await leader.kill();
    killedAt = performance.now();
    await sleep(6000);
    stopWrites();
    const { acked, errors } = await writes;
    const present = await networkNames();
    assert.deepEqual(acked.filter((a) => !present.has(a.name)).map((a) => a.name), [], 'acknowledged writes missing');
    const after = acked.filter((a) => a.at > killedAt);
    assert.ok(after.length > 0, `writes did not resume after the leader was killed; errors: ${errors.slice(0, 3).join(' | ')}`);
    const ats = acked.map((a) => a.at).sort((x, y) => x - y);
    const longest = Math.max(...ats.slice(1).map((at, i) => at - ats[i]!));
    t.diagnostic(`leader ${leader.name} killed: ${acked.length} writes acknowledged, ${errors.length} refused, longest pause between acknowledgements ${Math.round(longest)} ms`);
    await leader.restart();
  });

  it('etcd quorum lost: writes refused with one sentence, the data plane keeps forwarding; all resumes with quorum', async (t) => {
    const lost = etcd.members.slice(1);
    await noPacketLostDuring(cluster, c4, c5ip, async () => {
      await Promise.all(lost.map((m) => m.kill()));
    });
    const refusal = await admin.createNetwork({ name: 'no-quorum', subnets: nextSubnet() }).then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(refusal instanceof VxnetError, `a write without quorum was not refused: ${String(refusal)}`);
    t.diagnostic(`refused with: ${refusal.message}`);
    assert.equal(refusal.code, 'unavailable');
    assert.match(refusal.message, /^the cluster store \(etcd at [^)]+\) did not complete the request: it has no quorum or none of its members answered; writes resume once a majority of its members is reachable\.$/);
    await Promise.all(lost.map((m) => m.restart()));
    await until('a write accepted once quorum is back', async () => {
      try {
        await admin.createNetwork({ name: 'quorum-back', subnets: nextSubnet() });
        return true;
      } catch (err) {
        return (err as VxnetError).code === 'network_exists';
      }
    }, 30_000);
    assert.equal((await cluster.exec(c4, ['ping', '-c', '3', '-i', '0.2', '-W', '1', c5ip])).code, 0);
  });
});
