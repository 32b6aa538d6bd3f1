/**
 * LinuxDataplane against real kernels: throwaway network namespaces stand for hosts and containers, the
 * data plane runs inside a "host" namespace (every tool through `nsenter --net=...`), and the assertions
 * read the kernel back. Needs root. Every namespace is deleted afterwards, also when a test fails or the
 * process exits early.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import type { DesiredEndpoint, DesiredNetwork, DesiredState } from '../../src/agent/dataplane.ts';
import { createRunner, execute } from '../../src/agent/kernel/exec.ts';
import { detectUnderlay, preflight } from '../../src/agent/kernel/host.ts';
import { LinuxDataplane } from '../../src/agent/kernel/linux-dataplane.ts';
import { parseFdb, parseLinks, parseNeighbours, readFirewall } from '../../src/agent/kernel/read.ts';
import { desiredEndpoint, desiredNetwork } from '../unit/support/fixtures.ts';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (network namespaces)';

const runId = `${process.pid}${randomBytes(2).toString('hex')}`;
const created: string[] = [];
let counter = 0;

/** A fresh namespace with a unique name: vxk-<pid><random>-<n>. */
async function netns(): Promise<string> {
  const name = `vxk-${runId}-${++counter}`;
  created.push(name);
  await execute(['ip', 'netns', 'add', name]);
  await execute(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}
const path = (ns: string) => `/run/netns/${ns}`;

const dataplanes: LinuxDataplane[] = [];
/** A data plane running inside host namespace `ns`; closed (its `ip monitor` stopped) after the tests. */
function dataplaneIn(ns: string, options: { log?: (line: string) => void } = {}): LinuxDataplane {
  const dataplane = new LinuxDataplane({ run: createRunner({ netns: path(ns) }), ...options });
  dataplanes.push(dataplane);
  return dataplane;
}

function deleteAllSync(): void {
  const present = created.filter((name) => spawnSync('ip', ['netns', 'pids', name]).status === 0);
  if (present.length) spawnSync('ip', ['-force', '-batch', '-'], { input: present.map((n) => `netns del ${n}\n`).join('') });
  created.length = 0;
}
process.on('exit', deleteAllSync);
after(async () => {
  await Promise.all(dataplanes.map((d) => d.close()));
  deleteAllSync();
});

const inNs = (ns: string, argv: string[], input?: string) =>
  execute(['nsenter', `--net=${path(ns)}`, ...argv], input === undefined ? {} : { input });
const links = async (ns: string) => new Map(parseLinks((await inNs(ns, ['ip', '-j', '-d', 'addr', 'show'])).stdout).map((l) => [l.name, l]));

const network = (vni: number, local: string, extra: Partial<DesiredNetwork> = {}): DesiredNetwork => desiredNetwork(vni, { localAddress: local, ...extra });

const endpoint = (id: string, vni: number, container: string, ip: string, extra: Partial<DesiredEndpoint> = {}): DesiredEndpoint =>
  desiredEndpoint(id, vni, ip, { netns: path(container), ...extra });

/** A host namespace with an underlay interface `u0` holding `address`. */
async function host(address = '10.99.0.1'): Promise<string> {
  const h = await netns();
  await inNs(h, ['ip', '-batch', '-'], `link add u0 type veth peer name u0peer\naddr add ${address}/24 dev u0\nlink set u0 up\nlink set u0peer up\n`);
  return h;
}

/** nothing at all, not even the VXLAN peer filter (the agent always wants that one) */
const empty: DesiredState = { networks: [], peers: [], floods: [], endpoints: [], vxlanFilter: { ports: [], allowedSources: [] } };

describe('LinuxDataplane in network namespaces', { skip, concurrency: false }, () => {
  it('passes its own preflight and finds the underlay interface', async () => {
    const h = await host('10.99.0.1');
    const run = createRunner({ netns: path(h) });
    assert.deepEqual(await preflight(run), []);
    assert.deepEqual(await detectUnderlay('10.99.0.1', run), { device: 'u0', mtu: 1500 });
    await assert.rejects(detectUnderlay('10.99.0.77', run), /no interface in this network namespace holds 10\.99\.0\.77; addresses here: 10\.99\.0\.1 \(u0\)/);
    assert.deepEqual([...(await links(h)).keys()].filter((n) => n.startsWith('vxn')), []);
  });

  it('creates bridges, VXLAN devices, entries, an endpoint and the firewall; a second pass changes nothing', async () => {
    const h = await host('10.99.0.1');
    const c = await netns();
    const logs: string[] = [];
    const dataplane = dataplaneIn(h, { log: (l) => logs.push(l) });
    const desired: DesiredState = {
      networks: [
        network(42, '10.99.0.1', { gatewayAddresses: ['192.168.1.1/24', '192.168.10.1/24'], subnets: ['192.168.1.0/24', '192.168.10.0/24'] }),
        network(43, '10.99.0.1', {
          mtu: 1400, multicastGroup: '239.1.1.43', underlayDevice: 'u0', gatewayMac: '02:78:c0:a8:03:01',
          gatewayAddresses: ['192.168.3.1/24'], subnets: ['192.168.3.0/24'], internal: true,
        }),
      ],
      peers: [
        { vxlan: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14', vtep: '10.99.0.2' },
        { vxlan: 'vxnv42', ip: '192.168.1.21', mac: '02:78:c0:a8:01:15', vtep: '10.99.0.3' },
      ],
      floods: [{ vxlan: 'vxnv42', vtep: '10.99.0.2' }, { vxlan: 'vxnv42', vtep: '10.99.0.3' }],
      endpoints: [endpoint('aaaaaaaaaaaa', 42, c, '192.168.1.2', { extraRoutes: ['192.168.10.0/24'], ifname: 'eth7' })],
      vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.2', '10.99.0.3'] },
    };
    const first = await dataplane.reconcile(desired);
    assert.equal(first.error, undefined, logs.join('\n'));
    assert.deepEqual([...first.readyEndpoints], ['aaaaaaaaaaaa']);
    assert.equal(first.endpointErrors.size, 0);

    const l = await links(h);
    const br = l.get('vxnb42')!;
    assert.deepEqual([br.kind, br.mtu, br.mac, br.up, br.ipv4], ['bridge', 1450, '02:78:c0:a8:01:01', true, ['192.168.1.1/24', '192.168.10.1/24']]);
    const vx = l.get('vxnv42')!;
    assert.deepEqual([vx.kind, vx.mtu, vx.master, vx.up], ['vxlan', 1450, 'vxnb42', true]);
    assert.deepEqual(vx.vxlan, { vni: 42, port: 4789, local: '10.99.0.1', ttl: 0, learning: false, proxy: true });
    assert.deepEqual(l.get('vxnv43')!.vxlan, { vni: 43, port: 4789, local: '10.99.0.1', group: '239.1.1.43', device: 'u0', ttl: 5, learning: false, proxy: true });
    assert.equal(l.get('vxnb43')!.mtu, 1400);
    const veth = l.get('vxnhaaaaaaaaaa')!;
    assert.deepEqual([veth.kind, veth.master, veth.mtu, veth.up, veth.peerElsewhere], ['veth', 'vxnb42', 1450, true, true]);

    const neigh = parseNeighbours((await inNs(h, ['ip', '-j', 'neigh', 'show', 'nud', 'permanent'])).stdout);
    assert.deepEqual(neigh.map((n) => `${n.dev} ${n.ip} ${n.mac}`).sort(), [
      'vxnv42 192.168.1.20 02:78:c0:a8:01:14',
      'vxnv42 192.168.1.21 02:78:c0:a8:01:15',
    ]);
    const fdb = parseFdb((await inNs(h, ['bridge', '-j', 'fdb', 'show', 'state', 'permanent'])).stdout);
    assert.deepEqual(fdb.map((f) => `${f.dev} ${f.mac} ${f.dst}`).sort(), [
      'vxnv42 00:00:00:00:00:00 10.99.0.2',
      'vxnv42 00:00:00:00:00:00 10.99.0.3',
      'vxnv42 02:78:c0:a8:01:14 10.99.0.2',
      'vxnv42 02:78:c0:a8:01:15 10.99.0.3',
      'vxnv43 00:00:00:00:00:00 239.1.1.43',
    ]);

    // inside the container namespace
    const inside = parseLinks((await inNs(c, ['ip', '-j', '-d', 'addr', 'show'])).stdout);
    const eth = inside.find((x) => x.name === 'eth7')!;
    assert.deepEqual([eth.mac, eth.mtu, eth.up, eth.ipv4], ['02:78:c0:a8:01:02', 1450, true, ['192.168.1.2/24']]);
    assert.equal(inside.find((x) => x.name === 'lo')!.up, true);
    const routes = (await inNs(c, ['ip', 'route', 'show'])).stdout;
    assert.match(routes, /^default via 192\.168\.1\.1 dev eth7/m);
    assert.match(routes, /^192\.168\.10\.0\/24 via 192\.168\.1\.1 dev eth7/m);

    assert.equal((await inNs(h, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '1');
    const firewall = await readFirewall(createRunner({ netns: path(h) }));
    assert.equal(firewall.present, true);
    assert.match(firewall.hash ?? '', /^[0-9a-f]{16}$/);
    const rules = (await inNs(h, ['nft', 'list', 'table', 'ip', 'vxnet'])).stdout;
    assert.match(rules, /ip saddr 192\.168\.10\.0\/24 oifname != "vxnb42" masquerade/);
    assert.match(rules, /iifname "vxnb43" oifname != "vxnb43" drop/);
    assert.match(rules, /type filter hook input priority raw - 10; policy accept;\n\s*udp dport @vxlan_ports iifname != "vxn\*" ip saddr @vxlan_peers accept/);
    assert.match(rules, /set vxlan_peers \{\s*type ipv4_addr\s*elements = \{ 10\.99\.0\.2, 10\.99\.0\.3 \}/);

    // the container reaches its gateway through the bridge
    assert.equal((await execute(['nsenter', `--net=${path(c)}`, 'ping', '-c', '1', '-W', '2', '192.168.1.1'], { allowFailure: true })).code, 0);

    const second = await dataplane.reconcile(desired);
    assert.deepEqual(second, { changes: 0, endpointErrors: new Map(), readyEndpoints: new Set(['aaaaaaaaaaaa']) });
    const quiet = await dataplane.reconcile(desired); // served from the entry cache: the monitor saw nothing
    assert.equal(quiet.changes, 0);

    // somebody removes entries behind our back: the monitor notices and the next pass puts them back
    await inNs(h, ['ip', 'neigh', 'del', '192.168.1.20', 'dev', 'vxnv42']);
    await inNs(h, ['bridge', 'fdb', 'del', '00:00:00:00:00:00', 'dev', 'vxnv42', 'dst', '10.99.0.3', 'self']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const repaired = await dataplane.reconcile(desired);
    assert.equal(repaired.changes, 2);
    assert.equal((await dataplane.reconcile(desired)).changes, 0);

    // an immutable change recreates the VXLAN device, entries come back, the endpoint is untouched
    const moved = { ...desired, networks: [{ ...desired.networks[0]!, port: 8472 }, desired.networks[1]!] };
    const third = await dataplane.reconcile(moved);
    assert.equal(third.error, undefined);
    assert.ok(logs.some((x) => /recreating vxnv42: port is 4789, want 8472/.test(x)), logs.join('\n'));
    assert.equal((await links(h)).get('vxnv42')!.vxlan!.port, 8472);
    const refilled = parseFdb((await inNs(h, ['bridge', '-j', 'fdb', 'show', 'state', 'permanent'])).stdout);
    assert.equal(refilled.filter((f) => f.dev === 'vxnv42').length, 4);
    assert.deepEqual([...third.readyEndpoints], ['aaaaaaaaaaaa']);
    assert.equal((await dataplane.reconcile(moved)).changes, 0);

    // a mutable change is fixed in place
    const taller = { ...moved, networks: [{ ...moved.networks[0]!, mtu: 1400 }, moved.networks[1]!], endpoints: [{ ...desired.endpoints[0]!, mtu: 1400 }] };
    const fourth = await dataplane.reconcile(taller);
    assert.equal(fourth.error, undefined);
    const after4 = await links(h);
    assert.deepEqual([after4.get('vxnb42')!.mtu, after4.get('vxnv42')!.mtu, after4.get('vxnhaaaaaaaaaa')!.mtu], [1400, 1400, 1400]);
    assert.deepEqual([...fourth.readyEndpoints], ['aaaaaaaaaaaa']);
  });

  it('prunes everything it owns and nothing else', async () => {
    const h = await host('10.99.0.1');
    const c = await netns();
    // somebody else's objects in the same namespace
    await inNs(h, ['ip', '-batch', '-'], 'link add br-keep type bridge\nlink add keep0 type veth peer name keep1\nneigh replace 10.99.0.9 lladdr 02:00:00:00:00:09 dev u0 nud permanent\n');
    await inNs(h, ['nft', '-f', '-'], 'table ip keepme {\n  chain c { type filter hook forward priority 0; policy accept; }\n}\n');
    const dataplane = dataplaneIn(h);
    const desired: DesiredState = {
      networks: [network(42, '10.99.0.1'), network(44, '10.99.0.1', { gatewayAddresses: ['192.168.4.1/24'], subnets: ['192.168.4.0/24'] })],
      peers: [{ vxlan: 'vxnv42', ip: '192.168.1.20', mac: '02:78:c0:a8:01:14', vtep: '10.99.0.2' }],
      floods: [{ vxlan: 'vxnv44', vtep: '10.99.0.2' }],
      endpoints: [endpoint('aaaaaaaaaaaa', 42, c, '192.168.1.2')],
      vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.2'] },
    };
    assert.equal((await dataplane.reconcile(desired)).error, undefined);
    assert.equal([...(await links(h)).keys()].filter((n) => n.startsWith('vxn')).length, 5);

    const pruned = await dataplane.reconcile(empty);
    assert.equal(pruned.error, undefined);
    const l = await links(h);
    assert.deepEqual([...l.keys()].filter((n) => n.startsWith('vxn')), []);
    assert.ok(l.has('br-keep') && l.has('keep0') && l.has('keep1') && l.has('u0'));
    assert.deepEqual(parseLinks((await inNs(c, ['ip', '-j', 'addr', 'show'])).stdout).map((x) => x.name), ['lo']);
    assert.deepEqual(
      parseNeighbours((await inNs(h, ['ip', '-j', 'neigh', 'show', 'nud', 'permanent'])).stdout).map((n) => n.dev),
      ['u0'],
    );
    const tables = (await inNs(h, ['nft', 'list', 'tables'])).stdout;
    assert.doesNotMatch(tables, /vxnet/);
    assert.match(tables, /table ip keepme/);
    assert.equal((await dataplane.reconcile(empty)).changes, 0);
  });

  it('reports a missing target namespace clearly and leaves no veth behind', async () => {
    const h = await host('10.99.0.1');
    const dataplane = dataplaneIn(h);
    const ghost = `/run/netns/vxk-${runId}-missing`;
    const result = await dataplane.reconcile({
      networks: [network(42, '10.99.0.1')], peers: [], floods: [], vxlanFilter: { ports: [4789], allowedSources: [] },
      endpoints: [{ ...endpoint('aaaaaaaaaaaa', 42, 'x', '192.168.1.2'), netns: ghost }],
    });
    assert.deepEqual(result.endpointErrors, new Map([['aaaaaaaaaaaa', `network namespace ${ghost} does not exist`]]));
    assert.deepEqual(result.readyEndpoints, new Set());
    assert.deepEqual([...(await links(h)).keys()].filter((n) => n.startsWith('vxnh') || n.startsWith('vxnc')), []);
  });

  it('undoes an endpoint whose setup fails inside the namespace, and sets it up once the cause is gone', async () => {
    const h = await host('10.99.0.1');
    const c = await netns();
    await inNs(c, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']); // name already taken
    const dataplane = dataplaneIn(h);
    const desired: DesiredState = {
      networks: [network(42, '10.99.0.1')], peers: [], floods: [], endpoints: [endpoint('aaaaaaaaaaaa', 42, c, '192.168.1.2')],
      vxlanFilter: { ports: [4789], allowedSources: [] },
    };
    const result = await dataplane.reconcile(desired);
    assert.match(result.endpointErrors.get('aaaaaaaaaaaa')!, /^configuring eth0 in \/run\/netns\/vxk-.* failed at "link set dev vxncaaaaaaaaaa name eth0": RTNETLINK answers: File exists$/);
    assert.deepEqual([...(await links(h)).keys()].filter((n) => n.startsWith('vxnh') || n.startsWith('vxnc')), []);
    assert.deepEqual(parseLinks((await inNs(c, ['ip', '-j', 'addr', 'show'])).stdout).map((x) => x.name).sort(), ['eth0', 'lo', 'other0']);

    await inNs(c, ['ip', 'link', 'del', 'eth0']);
    const retry = await dataplane.reconcile(desired);
    assert.deepEqual([...retry.readyEndpoints], ['aaaaaaaaaaaa']);
    assert.equal(retry.endpointErrors.size, 0);
  });

  it('programs 10,000 remote peers quickly and then passes with nothing to change quickly (timed inside the namespace)', async (t) => {
    const h = await host('10.99.0.1');
    const module = pathToFileURL(join(import.meta.dirname, '../../src/agent/kernel/linux-dataplane.ts')).href;
    const exec = pathToFileURL(join(import.meta.dirname, '../../src/agent/kernel/exec.ts')).href;
    // Runs inside the host namespace like the agent does (no nsenter per command), and prints timings.
    const script = `
      import { LinuxDataplane } from ${JSON.stringify(module)};
      import { createRunner } from ${JSON.stringify(exec)};
      // counts the reads of all neighbours (each comes with one of all FDB entries)
      const real = createRunner();
      let dumps = 0;
      const counting = { ...real, run: (argv, options) => {
        if (argv.join(' ') === 'ip -j neigh show nud permanent') dumps++;
        return real.run(argv, options);
      } };
      const net = { name: 'big', vni: 42, bridge: 'vxnb42', vxlan: 'vxnv42', port: 4789, mtu: 1450, localAddress: '10.99.0.1',
        gatewayMac: '02:78:c0:a8:01:01', gatewayAddresses: ['172.16.0.1/16'], subnets: ['172.16.0.0/16'], internal: false };
      const peers = [];
      for (let i = 1; i <= 10000; i++) {
        const a = (i >> 8) & 255, b = i & 255;
        peers.push({ vxlan: 'vxnv42', ip: '172.16.' + a + '.' + b, mac: '02:78:ac:10:' + a.toString(16).padStart(2, '0') + ':' + b.toString(16).padStart(2, '0'),
          vtep: '10.99.1.' + (1 + (i % 100)) });
      }
      const floods = Array.from({ length: 100 }, (_, i) => ({ vxlan: 'vxnv42', vtep: '10.99.1.' + (i + 1) }));
      const vxlanFilter = { ports: [4789], allowedSources: floods.map((f) => f.vtep) };
      const desired = { networks: [net], peers, floods, endpoints: [], vxlanFilter };
      const dataplane = new LinuxDataplane({ tuneNeighbourTable: false, run: counting });
      let t0 = performance.now();
      const first = await dataplane.reconcile(desired);
      const program = performance.now() - t0;
      const idle = [];
      let idleChanges = 0;
      for (let i = 0; i < 7; i++) {
        t0 = performance.now();
        const r = await dataplane.reconcile(desired);
        idle.push(performance.now() - t0);
        idleChanges += r.changes;
      }
      // the same without the entry cache: both dumps on every pass
      const dumping = new LinuxDataplane({ tuneNeighbourTable: false, watchEntries: false });
      const idleDumping = [];
      for (let i = 0; i < 7; i++) {
        t0 = performance.now();
        const r = await dumping.reconcile(desired);
        idleDumping.push(performance.now() - t0);
        idleChanges += r.changes;
      }
      idleDumping.sort((a, b) => a - b);
      // change one peer among 10,000
      // a new array, as the renderer makes: a list handed to reconcile is never changed in place
      const moved = peers.slice();
      moved[5000] = { ...peers[5000], vtep: '10.99.2.1' };
      let dumpsBefore = dumps;
      t0 = performance.now();
      const one = await dataplane.reconcile({ ...desired, peers: moved });
      const oneMs = performance.now() - t0;
      const oneDumps = dumps - dumpsBefore;
      // the pass after it: the change was written through to the kept dump, the monitor's report of it is
      // expected, so nothing is read again (before write-through, this pass dumped all entries)
      dumpsBefore = dumps;
      t0 = performance.now();
      const next = await dataplane.reconcile({ ...desired, peers: moved });
      const nextMs = performance.now() - t0;
      const nextDumps = dumps - dumpsBefore;
      const removed = await dataplane.reconcile({ networks: [], peers: [], floods: [], endpoints: [], vxlanFilter: { ports: [], allowedSources: [] } });
      await dataplane.close();
      idle.sort((a, b) => a - b);
      console.log(JSON.stringify({ program, firstChanges: first.changes, firstError: first.error ?? null, idle, idleDumping, idleChanges,
        oneChange: one.changes, oneMs, oneDumps, nextChanges: next.changes, nextMs, nextDumps, removedError: removed.error ?? null }));
    `;
    const child = spawn('nsenter', [`--net=${path(h)}`, process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, out);
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      program: number; firstChanges: number; firstError: string | null; idle: number[]; idleDumping: number[]; idleChanges: number;
      oneChange: number; oneMs: number; oneDumps: number; nextChanges: number; nextMs: number; nextDumps: number;
      removedError: string | null;
    };
    const median = r.idle[Math.floor(r.idle.length / 2)]!;
    const line =
      `10,000 peers (10,000 neighbours + 10,000 FDB + 100 flood entries) programmed from empty in ${r.program.toFixed(0)} ms; ` +
      `no-change pass: median ${median.toFixed(1)} ms, min ${r.idle[0]!.toFixed(1)} ms, max ${r.idle.at(-1)!.toFixed(1)} ms; ` +
      `same pass dumping all entries (no entry cache): median ${r.idleDumping[3]!.toFixed(1)} ms, min ${r.idleDumping[0]!.toFixed(1)} ms; ` +
      `one peer moved: ${r.oneMs.toFixed(1)} ms (${r.oneDumps} dumps); ` +
      `the pass after it: ${r.nextMs.toFixed(1)} ms (${r.nextDumps} dumps)`;
    t.diagnostic(line);
    console.log(`# ${line}`);
    assert.equal(r.firstError, null);
    // 6 link steps (bridge, VXLAN device, 2 link sets, learning off, 1 address) + ip_forward + firewall + anti-spoofing table
    // + 30,100 entries (10,000 neighbours, 10,000 VXLAN FDB entries, 100 flood entries, 10,000 static bridge entries)
    assert.equal(r.firstChanges, 6 + 1 + 1 + 1 + 30100);
    assert.equal(r.idleChanges, 0);
    assert.equal(r.oneChange, 1);
    // behaviour, not timing: neither the change nor the pass after it reads all entries again
    assert.equal(r.oneDumps, 0);
    assert.equal(r.nextChanges, 0);
    assert.equal(r.nextDumps, 0, 'the pass after a one-peer change reuses the written-through dump');
    assert.equal(r.removedError, null);
    // generous bounds for a shared 2-core machine (1.5× the 2 s this had before the static bridge entries made
    // it 30,100 entries instead of 20,100); the figure itself is printed above, `npm run bench` holds the target
    assert.ok(r.program < 3000, `programming took ${r.program} ms`);
    assert.ok(median < 150, `no-change pass took ${median} ms`);
  });

  it('lets containers on two hosts ping each other through VXLAN (unicast with flood list, and multicast)', async () => {
    const h1 = await netns();
    const h2 = await netns();
    const c1 = await netns();
    const c2 = await netns();
    // underlay: one veth pair between the two hosts
    await execute(['ip', 'link', 'add', `vxku${runId}`, 'netns', h1, 'type', 'veth', 'peer', 'name', 'u0', 'netns', h2]);
    await inNs(h1, ['ip', '-batch', '-'], `link set vxku${runId} name u0\naddr add 10.99.0.1/24 dev u0\nlink set u0 up\n`);
    await inNs(h2, ['ip', '-batch', '-'], 'addr add 10.99.0.2/24 dev u0\nlink set u0 up\n');

    const e1 = endpoint('aaaaaaaaaaaa', 42, c1, '192.168.1.2');
    const e2 = endpoint('bbbbbbbbbbbb', 42, c2, '192.168.1.3');
    const m1 = endpoint('cccccccccccc', 43, c1, '192.168.3.2', { ifname: 'eth1', gateway: '192.168.3.1', mac: '02:78:c0:a8:03:02' });
    const m2 = endpoint('dddddddddddd', 43, c2, '192.168.3.3', { ifname: 'eth1', gateway: '192.168.3.1', mac: '02:78:c0:a8:03:03' });
    const state = (self: string, other: string, local: DesiredEndpoint[], remote: DesiredEndpoint[]): DesiredState => ({
      networks: [
        network(42, self),
        network(43, self, { multicastGroup: '239.1.1.43', underlayDevice: 'u0', gatewayMac: '02:78:c0:a8:03:01', gatewayAddresses: ['192.168.3.1/24'], subnets: ['192.168.3.0/24'] }),
      ],
      // every remote endpoint as neighbour + FDB entry (as the agent does); broadcast and unknown destinations
      // go to the other host by head-end replication (unicast network) or to the group (multicast network)
      peers: remote.map((e) => ({ vxlan: e.bridge.replace('vxnb', 'vxnv'), ip: e.address.split('/')[0]!, mac: e.mac, vtep: other })),
      floods: [{ vxlan: 'vxnv42', vtep: other }],
      endpoints: local,
      // only the other host may send VXLAN here
      vxlanFilter: { ports: [4789], allowedSources: [other] },
    });
    // c3 sits on host1's unicast network only, to try to cross over to the other network
    const c3 = await netns();
    const e3 = endpoint('eeeeeeeeeeee', 42, c3, '192.168.1.4');
    const d1 = dataplaneIn(h1);
    const d2 = dataplaneIn(h2);
    const r1 = await d1.reconcile(state('10.99.0.1', '10.99.0.2', [e1, m1, e3], [e2, m2]));
    const r2 = await d2.reconcile(state('10.99.0.2', '10.99.0.1', [e2, m2], [e1, m1]));
    assert.equal(r1.error, undefined);
    assert.equal(r2.error, undefined);
    assert.deepEqual([...r1.readyEndpoints].sort(), ['aaaaaaaaaaaa', 'cccccccccccc', 'eeeeeeeeeeee']);
    assert.deepEqual([...r2.readyEndpoints].sort(), ['bbbbbbbbbbbb', 'dddddddddddd']);

    const ping = async (from: string, to: string) =>
      (await execute(['nsenter', `--net=${path(from)}`, 'ping', '-c', '2', '-i', '0.2', '-W', '2', to], { allowFailure: true })).code;
    /** a ping expected to fail: one try, short wait */
    const blocked = async (from: string, to: string) =>
      (await execute(['nsenter', `--net=${path(from)}`, 'ping', '-c', '1', '-W', '0.5', to], { allowFailure: true })).code !== 0;
    assert.equal(await ping(c1, '192.168.1.3'), 0, 'unicast network: c1 → c2');
    assert.equal(await ping(c2, '192.168.1.2'), 0, 'unicast network: c2 → c1');
    // c1 got c2's MAC from host1's ARP proxy, which answers from the permanent neighbour entry
    const arp = (await inNs(c1, ['ip', 'neigh', 'show', '192.168.1.3'])).stdout;
    assert.match(arp, /lladdr 02:78:c0:a8:01:03/);
    assert.equal(await ping(c2, '192.168.3.2'), 0, 'multicast network: c2 → c1');
    assert.equal(await ping(c1, '192.168.3.3'), 0, 'multicast network: c1 → c2');
    // multicast traffic (no FDB entry for 33:33:00:00:00:01) crosses the underlay through the group: an IPv6
    // all-nodes echo request from c1 arrives in c2 (its ICMPv6 echo counter goes up). (c2's reply cannot come
    // back: the VXLAN proxy also answers neighbour solicitations only from its table, which holds IPv4 only.)
    const echos = async () => Number(/Icmp6InEchos\s+(\d+)/.exec((await inNs(c2, ['cat', '/proc/net/snmp6'])).stdout)?.[1] ?? 0);
    const before = await echos();
    for (let attempt = 0; attempt < 20 && (await echos()) === before; attempt++) {
      await execute(['nsenter', `--net=${path(c1)}`, 'ping', '-6', '-c', '1', '-W', '0.3', 'ff02::1%eth1'], { allowFailure: true });
    }
    assert.ok((await echos()) > before, 'a multicast frame reached the other host through the group');
    // networks are isolated: c3 reaches its own gateway, but neither the other network's gateway nor its containers
    assert.equal(await ping(c3, '192.168.1.1'), 0, 'own gateway');
    assert.ok(await blocked(c3, '192.168.3.1'), 'the other network’s gateway is not reachable');
    assert.ok(await blocked(c3, '192.168.3.2'), 'the other network’s containers are not reachable');
    // and it is our table that blocks them: without it both answer; the next pass puts it back. (The
    // anti-spoofing table goes too: c1 answers c3 from its 192.168.3.2 through eth0, an address eth0 does not hold.)
    await inNs(h1, ['nft', 'delete', 'table', 'ip', 'vxnet']);
    await inNs(h1, ['nft', 'delete', 'table', 'bridge', 'vxnet']);
    assert.equal(await ping(c3, '192.168.3.1'), 0, 'without the table the other gateway answers');
    assert.equal(await ping(c3, '192.168.3.2'), 0, 'without the table the other network answers');
    const restored = await d1.reconcile(state('10.99.0.1', '10.99.0.2', [e1, m1, e3], [e2, m2]));
    assert.equal(restored.changes, 2);
    assert.ok(await blocked(c3, '192.168.3.1'), 'blocked again');
  });
});
