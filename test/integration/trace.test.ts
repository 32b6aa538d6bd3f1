/**
 * `vxnet trace` against real simulated hosts (issue 16): the manager relays each diagnose request down the
 * agents' watch streams and the agents read their real kernels. A healthy path is ok, in words and JSON, and
 * a probe sees its pings on every device; then deliberately broken hops are found and named: an FDB entry
 * deleted behind the agent's back (the agent repairs entries at its next full pass, up to 30 s later, so
 * the trace runs right after the delete and the delete is repeated if a pass happened to come between), a
 * drop rule in somebody else's nftables table on the target host (the probe then shows where the pings were
 * lost), and last a stopped agent. Needs root.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManagerClient } from '../../src/client/client.ts';
import { createCluster, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { adminWithNetworks, type Attached, attachWithApi, BLUE, tearDown } from './support/setup.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';

interface TraceJson {
  trace: { ok: boolean; stop?: { hop: string; node: string; detail: string }; hops: { hop: string; node: string; status: string; detail: string }[] };
  probe?: { sent: number; received: number; verdict: string; sightings: { what: string; node: string; seen: boolean | string }[] };
}

describe('vxnet trace', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let host1: SimHost;
  let host2: SimHost;
  let attached: Record<string, Attached>;

  const trace = async (args: readonly string[]): Promise<{ code: number; json: TraceJson; stderr: string }> => {
    const result = await cluster.cli(['trace', 'blue', ...args, '--json'], { timeoutMs: 30_000 });
    assert.ok(result.stdout !== '', `no output (exit ${result.code}): ${result.stderr}`);
    return { code: result.code, json: JSON.parse(result.stdout) as TraceJson, stderr: result.stderr };
  };

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxtrc' });
    [host1, host2] = [cluster.host(1), cluster.host(2)];
    client = await adminWithNetworks(cluster, [BLUE]);
    attached = await attachWithApi(cluster, client, [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue'], ['c3', 'host1', 'blue']]);
  });

  after(() => tearDown(cluster, client));

  it('a healthy path across hosts is ok at every hop, and a probe is seen on every device', async () => {
    const c1 = attached.c1!.endpoint;
    const c2 = attached.c2!.endpoint;
    const { code, json } = await trace(['--from', c1.id, '--to', c2.id, '--probe']);
    assert.equal(code, 0, JSON.stringify(json.trace.stop));
    assert.equal(json.trace.ok, true);
    assert.deepEqual(json.trace.hops.filter((h) => h.status === 'fail'), []);
    for (const hop of ['agent', 'veth', 'antispoof', 'bridge', 'neighbour', 'fdb', 'vxlan', 'mtu', 'allow-list', 'firewall', 'return-entry', 'endpoint']) {
      assert.ok(json.trace.hops.some((h) => h.hop === hop && h.status === 'ok'), `hop ${hop} is judged ok`);
    }
    assert.equal(json.probe!.sent, 3);
    assert.equal(json.probe!.received, 3);
    assert.equal(json.probe!.sightings.length, 8);
    assert.ok(json.probe!.sightings.every((s) => s.seen === true), JSON.stringify(json.probe));
    // the same in words; and to an address instead of an endpoint id, on one host
    const words = await cluster.cli(['trace', 'blue', '--from', c1.id, '--to', attached.c3!.endpoint.ip]);
    assert.equal(words.code, 0, words.stderr);
    assert.match(words.stdout, /^trace on network blue: 192\.168\.1\.\d+ \(endpoint \w+ on host1\) → /);
    assert.match(words.stdout, /^path ok: no hop would stop the packet\.$/m);
  });

  it('names a deleted FDB entry on the source host', async () => {
    const c1 = attached.c1!.endpoint;
    const c2 = attached.c2!.endpoint;
    let found: TraceJson | undefined;
    // the agent puts the entry back at its next full pass (every 30 s): delete again if one came in between
    for (let attempt = 0; attempt < 3 && !found; attempt++) {
      // in the network's namespace (the agent's --netns-prefix HOST-n, VNI 1000), where the VXLAN device is
      const del = await cluster.exec(`${host1.netns}-n1000`, ['bridge', 'fdb', 'del', c2.mac, 'dev', 'vxnv1000', 'dst', host2.address, 'self']);
      assert.equal(del.code, 0, del.stderr);
      const { code, json } = await trace(['--from', c1.id, '--to', c2.id]);
      if (!json.trace.ok) {
        assert.equal(code, 1);
        found = json;
      }
    }
    assert.ok(found, 'the trace saw the entry missing');
    assert.equal(found.trace.stop!.hop, 'fdb');
    assert.equal(found.trace.stop!.node, 'host1');
    assert.match(found.trace.stop!.detail, new RegExp(`^missing entry: no FDB entry for ${c2.mac} on vxnv1000 of host1`));
    // the agent's next pass repairs it (a change on the network makes one now), and the trace says so
    await client.createEndpoint({ network: 'blue', node: 'host2', netns: await cluster.addContainer('c4') }, { waitSeconds: 20 });
    const repaired = await trace(['--from', c1.id, '--to', c2.id]);
    assert.equal(repaired.code, 0, JSON.stringify(repaired.json.trace.stop));
  });

  it('names a drop rule in another table on the target host, and the probe shows where the pings were lost', async () => {
    const c1 = attached.c1!.endpoint;
    const c2 = attached.c2!.endpoint;
    const rules = 'table inet vxtrcblock {\n chain inbound {\n  type filter hook input priority 0; policy accept;\n  udp dport 4789 counter drop\n }\n}\n';
    const add = await cluster.exec(host2.netns, ['nft', '-f', '-'], { input: rules });
    assert.equal(add.code, 0, add.stderr);
    try {
      const { code, json } = await trace(['--from', c1.id, '--to', c2.id, '--probe', '--count', '2']);
      assert.equal(code, 1);
      assert.equal(json.trace.stop!.hop, 'firewall');
      assert.equal(json.trace.stop!.node, 'host2');
      assert.match(json.trace.stop!.detail, /^firewall: drops incoming VXLAN on host2: table inet vxtrcblock chain inbound \(hook input\): udp dport 4789 counter drop\.$/);
      assert.equal(json.probe!.sent, 2);
      assert.equal(json.probe!.received, 0);
      const seen = json.probe!.sightings.map((s) => s.seen);
      assert.deepEqual(seen.slice(0, 3), [true, true, false], JSON.stringify(json.probe));
      assert.match(json.probe!.verdict, /lost after "request was encapsulated by the source VXLAN device" \(vxnv1000 on host1\)/);
    } finally {
      await cluster.exec(host2.netns, ['nft', 'delete', 'table', 'inet', 'vxtrcblock']);
    }
  });

  it('refuses an unknown endpoint with one sentence', async () => {
    const result = await cluster.cli(['trace', 'blue', '--from', 'nosuch', '--to', attached.c2!.endpoint.id]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'vxnet: --from: endpoint nosuch does not exist on network blue.\n');
  });

  it('names a stopped agent (last: host2 stays without its agent)', async () => {
    await cluster.stopAgent(host2);
    const { code, json } = await trace(['--from', attached.c1!.endpoint.id, '--to', attached.c2!.endpoint.id]);
    assert.equal(code, 1);
    assert.equal(json.trace.stop!.hop, 'agent');
    assert.equal(json.trace.stop!.node, 'host2');
    assert.match(json.trace.stop!.detail, /^agent down: node host2 .* its kernel could not be read \(the agent of node host2 is not connected to the manager/);
    // what host1 holds is still judged
    assert.ok(json.trace.hops.some((h) => h.hop === 'fdb' && h.node === 'host1' && h.status === 'ok'));
  });
});
