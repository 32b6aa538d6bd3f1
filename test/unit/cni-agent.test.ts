/** The agent's side of the CNI plugin (src/agent/cni-server.ts): ADD/DEL/CHECK against a fake manager, and the socket end to end. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CniService, CniRefusal, parseRequest, serveCni, startCniPlugin, type CniManagerApi } from '../../src/agent/cni-server.ts';
import { parseGcRequest, parseNetworkRequest } from '../../src/agent/cni-requests.ts';
import { CNI_RECORDS_FILE } from '../../src/agent/cni-records.ts';
import { parseAddrShow, type InterfaceState } from '../../src/agent/cni-inspect.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { CreateEndpointRequest, Endpoint } from '../../src/core/model.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-cni-'));
  dirs.push(dir);
  return dir;
}

/** A manager that keeps endpoints in a map; `down` makes every call fail as an unreachable manager does. */
class FakeManager implements CniManagerApi {
  endpoints = new Map<string, Endpoint>();
  requests: CreateEndpointRequest[] = [];
  down = false;
  networks = new Set(['blue']);
  #next = 2;
  async createEndpoint(req: CreateEndpointRequest): Promise<Endpoint> {
    this.#reachable();
    this.requests.push(req);
    if (!this.networks.has(req.network)) throw new VxnetError('network_not_found', `network "${req.network}" does not exist.`);
    if (req.ip === '192.168.1.1') throw new VxnetError('address_reserved', '192.168.1.1 is the gateway of network blue.');
    const n = this.#next++;
    const endpoint: Endpoint = {
      id: `ep${n}`, network: req.network, node: req.node, netns: req.netns!, ...(req.cni !== undefined ? { cni: req.cni } : {}), ifname: req.ifname ?? 'eth0', ip: req.ip ?? `192.168.1.${n}`, prefix: 24,
      gateway: '192.168.1.1', mac: `02:42:c0:a8:01:0${n}`, status: 'ready', createdAt: '2026-01-01T00:00:00Z',
    };
    this.endpoints.set(endpoint.id, endpoint);
    return endpoint;
  }
  async deleteEndpoint(id: string): Promise<void> {
    this.#reachable();
    if (!this.endpoints.delete(id)) throw new VxnetError('endpoint_not_found', `endpoint ${id} does not exist.`);
  }
  async listEndpoints(filter?: { network?: string; node?: string }): Promise<Endpoint[]> {
    this.#reachable();
    if (filter?.network !== undefined && !this.networks.has(filter.network)) throw new VxnetError('network_not_found', `network "${filter.network}" does not exist.`);
    return [...this.endpoints.values()].filter((e) => (!filter?.network || e.network === filter.network) && (!filter?.node || e.node === filter.node));
  }
  #reachable(): void {
    if (this.down) throw new VxnetError('unavailable', 'cannot reach the manager at https://10.0.0.1:7443: connect ECONNREFUSED');
  }
}

const REQ = { containerId: 'c1', netns: '/run/netns/netns-c1', ifname: 'eth0', network: 'blue' };

type Inspect = (netns: string, ifname: string) => Promise<InterfaceState | undefined>;
const INSPECT_OK: Inspect = async () => ({ mac: '02:42:c0:a8:01:02', addresses: ['192.168.1.2/24'] });

function service(api: FakeManager, dir = stateDir(), inspect: Inspect = INSPECT_OK) {
  return new CniService({ api, node: 'host1', stateDir: dir, log: () => {}, inspect, netnsExists: () => true });
}

async function refusal(promise: Promise<unknown>): Promise<CniRefusal> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CniRefusal, String(err));
    return err;
  }
  assert.fail('no refusal');
}

describe('CNI on the agent', () => {
  test('ADD makes the endpoint attach --netns makes, for its own node, and records it', async () => {
    const api = new FakeManager();
    const dir = stateDir();
    const attached = await service(api, dir).add({ ...REQ, ip: '192.168.1.7' });
    assert.deepEqual(api.requests, [{ network: 'blue', node: 'host1', netns: '/run/netns/netns-c1', ifname: 'eth0', cni: 'c1', ip: '192.168.1.7' }]);
    assert.deepEqual(attached, { ifname: 'eth0', mac: '02:42:c0:a8:01:02', ip: '192.168.1.7', prefix: 24, gateway: '192.168.1.1' });
    const records = JSON.parse(readFileSync(join(dir, CNI_RECORDS_FILE), 'utf8'));
    assert.deepEqual(records, [{ containerId: 'c1', ifname: 'eth0', network: 'blue', netns: '/run/netns/netns-c1', endpointId: 'ep2' }]);
    assert.equal(statSync(join(dir, CNI_RECORDS_FILE)).mode & 0o777, 0o600);
  });

  test('ADD twice for one container interface is refused; the manager\'s refusals keep their meaning', async () => {
    const api = new FakeManager();
    const cni = service(api);
    await cni.add(REQ);
    const twice = await refusal(cni.add(REQ));
    assert.equal(twice.message, 'container c1 already has interface eth0 on network blue: DEL it first.');
    const missing = await refusal(cni.add({ ...REQ, containerId: 'c2', network: 'red' }));
    assert.deepEqual([missing.cniCode, missing.details, missing.message], [7, 'network_not_found', 'network "red" does not exist.']);
    const gateway = await refusal(cni.add({ ...REQ, containerId: 'c3', ip: '192.168.1.1' }));
    assert.deepEqual([gateway.cniCode, gateway.details], [100, 'address_reserved']);
    api.down = true;
    const down = await refusal(cni.add({ ...REQ, containerId: 'c4' }));
    assert.equal(down.cniCode, 11);
  });

  test('DEL deletes the endpoint and forgets it; a second DEL and a DEL of an unknown container succeed', async () => {
    const api = new FakeManager();
    const cni = service(api);
    await cni.add(REQ);
    await cni.del({ ...REQ, netns: '' });
    assert.equal(api.endpoints.size, 0);
    await cni.del(REQ);
    await cni.del({ ...REQ, containerId: 'never' });
  });

  test('DEL finds an endpoint without a record by its container id, and leaves other namespace endpoints alone', async () => {
    const api = new FakeManager();
    await api.createEndpoint({ network: 'blue', node: 'host1', netns: REQ.netns, ifname: 'eth0' });
    await api.createEndpoint({ network: 'blue', node: 'host1', netns: '/run/netns/other', ifname: 'eth0', cni: 'c1' });
    await service(api).del(REQ);
    assert.deepEqual([...api.endpoints.values()].map((e) => e.netns), [REQ.netns]);
  });

  test('DEL with the manager down succeeds, and the endpoint goes once the manager is back', async () => {
    const api = new FakeManager();
    const dir = stateDir();
    const cni = service(api, dir);
    await cni.add(REQ);
    api.down = true;
    await cni.del(REQ);
    assert.equal(api.endpoints.size, 1);
    assert.equal(JSON.parse(readFileSync(join(dir, CNI_RECORDS_FILE), 'utf8'))[0].pendingDelete, true);
    api.down = false;
    await cni.retryPending();
    assert.equal(api.endpoints.size, 0);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, CNI_RECORDS_FILE), 'utf8')), []);
  });

  test('ADD of a container whose DEL the manager has not heard of yet deletes the old endpoint first', async () => {
    const api = new FakeManager();
    const cni = service(api);
    await cni.add(REQ);
    api.down = true;
    await cni.del(REQ);
    assert.equal((await refusal(cni.add(REQ))).cniCode, 11, 'still unreachable: try again later');
    api.down = false;
    const again = await cni.add(REQ);
    assert.deepEqual([...api.endpoints.keys()], ['ep3']);
    assert.equal(again.ip, '192.168.1.3');
  });

  test('a records file that is not a list stops the agent with the sentence that says what to do', () => {
    const dir = stateDir();
    writeFileSync(join(dir, CNI_RECORDS_FILE), '{oops');
    assert.throws(() => service(new FakeManager(), dir), { message: `${join(dir, CNI_RECORDS_FILE)} does not hold a list of CNI records: fix or remove it (DEL then finds endpoints by container id).` });
  });

  test('a start of the agent releases the endpoints of containers whose namespace went while it was down', async () => {
    const api = new FakeManager();
    const dir = stateDir();
    await service(api, dir).add(REQ);
    const restarted = new CniService({ api, node: 'host1', stateDir: dir, log: () => {}, netnsExists: () => false });
    await restarted.retryPending();
    assert.equal(api.endpoints.size, 0);
  });

  test('CHECK compares the interface in the namespace with the endpoint', async () => {
    const api = new FakeManager();
    let actual: { mac: string; addresses: string[] } | undefined = { mac: '02:42:C0:A8:01:02', addresses: ['192.168.1.2/24'] };
    const cni = service(api, stateDir(), async () => actual);
    await cni.add(REQ);
    assert.equal((await cni.check(REQ)).ip, '192.168.1.2');
    actual = undefined;
    const gone = await refusal(cni.check(REQ));
    assert.deepEqual([gone.cniCode, gone.message], [101, 'interface eth0 is missing in the namespace /run/netns/netns-c1 of container c1.']);
    actual = { mac: '02:00:00:00:00:09', addresses: ['192.168.1.2/24'] };
    assert.match((await refusal(cni.check(REQ))).message, /^interface eth0 of container c1 has MAC 02:00:00:00:00:09, not 02:42:c0:a8:01:02\.$/);
    actual = { mac: '02:42:c0:a8:01:02', addresses: [] };
    assert.match((await refusal(cni.check(REQ))).message, /does not hold 192\.168\.1\.2\/24\.$/);
    api.endpoints.clear();
    assert.equal((await refusal(cni.check(REQ))).message, 'the endpoint ep2 of container c1 no longer exists.');
    assert.equal((await refusal(cni.check({ ...REQ, containerId: 'c9' }))).cniCode, 3);
  });

  test('the socket API checks every request again', () => {
    assert.deepEqual(parseRequest(JSON.stringify({ ...REQ, ip: '192.168.1.5' }), 'ADD'), { ...REQ, ip: '192.168.1.5' });
    assert.equal(parseRequest(JSON.stringify({ ...REQ, netns: '' }), 'DEL').netns, '');
    for (const [body, message] of [
      ['nope', 'the ADD request is not JSON.'],
      ['null', 'the ADD request is not a JSON object.'],
      [JSON.stringify({ ...REQ, netns: '' }), 'the ADD request has no valid "netns".'],
      [JSON.stringify({ ...REQ, ifname: 'x'.repeat(16) }), 'the ADD request has no valid "ifname".'],
      [JSON.stringify({ ...REQ, ip: 'ten' }), 'the ADD request has no valid "ip".'],
    ] as const) {
      assert.throws(() => parseRequest(body, 'ADD'), (err: Error) => err instanceof CniRefusal && err.message === message && err.cniCode === 6);
    }
  });

  test('ip -j addr show of a container interface', () => {
    const json = '[{"ifindex":2,"ifname":"eth0","address":"02:42:c0:a8:01:02","addr_info":[{"family":"inet","local":"192.168.1.2","prefixlen":24},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]';
    assert.deepEqual(parseAddrShow(json), { mac: '02:42:c0:a8:01:02', addresses: ['192.168.1.2/24'] });
  });

  test('the plugin executable talks to the agent\'s socket (mode 0600): ADD, CHECK, DEL as a runtime calls them', async () => {
    const api = new FakeManager();
    const dir = stateDir();
    const socket = join(dir, 'run', 'cni.sock');
    const server = await serveCni(service(api, dir), socket, () => {});
    try {
      assert.equal(statSync(socket).mode & 0o777, 0o600);
      const config = JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'vxnet', socket });
      const run = (command: string, stdin = config) => plugin({ CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: REQ.netns, CNI_IFNAME: 'eth0' }, stdin);
      const add = await run('ADD');
      assert.equal(add.code, 0, add.stdout);
      assert.deepEqual(JSON.parse(add.stdout).interfaces, [{ name: 'eth0', mac: '02:42:c0:a8:01:02', sandbox: REQ.netns }]);
      assert.equal((await run('CHECK')).code, 0);
      const again = await run('ADD');
      assert.equal(again.code, 1);
      assert.equal(JSON.parse(again.stdout).msg, 'container c1 already has interface eth0 on network blue: DEL it first.');
      assert.equal((await run('DEL')).code, 0);
      assert.equal(api.endpoints.size, 0);
    } finally {
      await server.close();
    }
  });
});

describe('STATUS and GC on the agent', () => {
  test('STATUS succeeds when the manager answers and knows the network; else the refusal says why', async () => {
    const api = new FakeManager();
    const cni = service(api);
    await cni.status({ network: 'blue' });
    const unknown = await refusal(cni.status({ network: 'green' }));
    assert.deepEqual([unknown.cniCode, unknown.message, unknown.details], [7, 'network "green" does not exist.', 'network_not_found']);
    api.down = true;
    assert.equal((await refusal(cni.status({ network: 'blue' }))).cniCode, 11);
  });

  test('GC deletes the CNI endpoints the runtime no longer lists, also those without a record, and nothing else', async () => {
    const api = new FakeManager();
    const dir = stateDir();
    api.networks.add('red');
    const cni = service(api, dir);
    const kept = await cni.add({ ...REQ, containerId: 'keep' });
    await cni.add({ ...REQ, containerId: 'gone1', netns: '/run/netns/g1' });
    await cni.add({ ...REQ, containerId: 'other-net', netns: '/run/netns/o1', network: 'red' });
    // an endpoint the manager has for this node without a record (a lost state directory), and a plain namespace one
    const lost = await api.createEndpoint({ network: 'blue', node: 'host1', netns: '/run/netns/l1', cni: 'lost', ifname: 'eth0' });
    const plain = await api.createEndpoint({ network: 'blue', node: 'host1', netns: '/run/netns/p1', ifname: 'eth0' });
    const elsewhere = await api.createEndpoint({ network: 'blue', node: 'host2', netns: '/run/netns/x1', cni: 'x1', ifname: 'eth0' });
    const result = await cni.gc({ network: 'blue', valid: [{ containerId: 'keep', ifname: 'eth0' }] });
    assert.equal(result.deleted, 2);
    const left = [...api.endpoints.values()].map((e) => e.cni ?? `plain ${e.id}`).sort();
    assert.deepEqual(left, ['keep', 'other-net', `plain ${plain.id}`, 'x1'].sort());
    assert.ok(api.endpoints.has(elsewhere.id) && !api.endpoints.has(lost.id));
    assert.equal((await cni.check({ ...REQ, containerId: 'keep', netns: REQ.netns })).ip, kept.ip);
    const records = JSON.parse(readFileSync(join(dir, CNI_RECORDS_FILE), 'utf8')) as { containerId: string }[];
    assert.deepEqual(records.map((r) => r.containerId).sort(), ['keep', 'other-net']);
  });

  test('GC with the manager down succeeds and deletes the stale endpoints once it is back', async () => {
    const api = new FakeManager();
    const cni = service(api);
    await cni.add({ ...REQ, containerId: 'gone' });
    api.down = true;
    assert.deepEqual(await cni.gc({ network: 'blue', valid: [] }), { deleted: 1 });
    assert.equal(api.endpoints.size, 1);
    api.down = false;
    await cni.retryPending();
    assert.equal(api.endpoints.size, 0);
  });

  test('the STATUS and GC requests on the socket are checked', () => {
    assert.deepEqual(parseGcRequest('{"network":"blue","valid":[{"containerId":"c1","ifname":"eth0"}]}'), { network: 'blue', valid: [{ containerId: 'c1', ifname: 'eth0' }] });
    for (const [text, message] of [
      ['{"network":"blue"}', 'the GC request has no valid "valid" list of {containerId, ifname}.'],
      ['{"network":"blue","valid":[{"containerId":"c/1","ifname":"eth0"}]}', 'the GC request has no valid "valid" list of {containerId, ifname}.'],
      ['{"valid":[]}', 'the GC request has no valid "network".'],
      ['[]', 'the GC request is not a JSON object.'],
    ] as const) {
      assert.throws(() => parseGcRequest(text), (err: Error) => err instanceof CniRefusal && err.cniCode === 6 && err.message === message);
    }
    assert.throws(() => parseNetworkRequest('{"network":"no/slash"}', 'STATUS'), { message: 'the STATUS request has no valid "network".' });
  });
});

describe('the agent serves the CNI plugin by default', () => {
  test('on the default path without a flag; not at all with --no-cni', async () => {
    const dir = stateDir();
    const lines: string[] = [];
    const options = { api: new FakeManager(), node: 'host1', stateDir: dir, log: (line: string) => lines.push(line) };
    const fallback = join(dir, 'run', 'vxnet', 'cni.sock');
    const server = await startCniPlugin(options, fallback);
    try {
      assert.equal(server?.address, `unix:${fallback}`);
      assert.ok(statSync(fallback).isSocket());
      assert.deepEqual(lines, [`serving the CNI plugin on unix:${fallback}`]);
      assert.equal(await startCniPlugin({ ...options, off: true }, join(dir, 'other.sock')), undefined);
    } finally {
      await server?.close();
    }
  });

  test('a second agent never takes over a served socket: fatal when named, a warning on the default', async () => {
    const dir = stateDir();
    const lines: string[] = [];
    const options = { api: new FakeManager(), node: 'host1', stateDir: dir, log: (line: string) => lines.push(line) };
    const path = join(dir, 'cni.sock');
    const first = await startCniPlugin({ ...options, socket: path });
    try {
      const busy = `another process already serves ${path} (a second agent on this host?): give this agent its own --cni-socket PATH.`;
      await assert.rejects(startCniPlugin({ ...options, socket: path }), { message: busy });
      lines.length = 0;
      assert.equal(await startCniPlugin(options, path), undefined);
      assert.deepEqual(lines, [`warning: the CNI plugin is not served: ${busy} (give --cni-socket PATH, or --no-cni to say it is not wanted)`]);
      // the first agent still answers on its socket
      const answer = await plugin({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'none', CNI_IFNAME: 'eth0' }, JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'vxnet', socket: path }));
      assert.equal(answer.code, 0, answer.stdout);
      assert.equal(answer.stderr, '');
    } finally {
      await first?.close();
    }
  });

  test('a socket file left by a crashed agent is replaced', async () => {
    const dir = stateDir();
    const path = join(dir, 'cni.sock');
    // a socket nobody listens on any more: bound, then the process "died" without removing it
    const { createServer } = await import('node:net');
    const stale = createServer();
    await new Promise<void>((resolve) => stale.listen(path, resolve));
    // closing a node:net server removes its socket file: keep a second name of it, as a killed agent leaves it
    const { linkSync, renameSync } = await import('node:fs');
    linkSync(path, `${path}.keep`);
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    renameSync(`${path}.keep`, path);
    assert.ok(statSync(path).isSocket());
    const server = await startCniPlugin({ api: new FakeManager(), node: 'host1', stateDir: dir, log: () => {}, socket: path });
    await server?.close();
  });
});

function plugin(env: Record<string, string>, stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const main = new URL('../../src/cni/main.ts', import.meta.url).pathname;
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [main], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin);
  });
}
