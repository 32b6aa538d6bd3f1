/**
 * Seeing into a running cluster (issue 16), on one set of simulated hosts: Prometheus metrics of real
 * daemons (`--metrics-listen`): a manager and two agents are scraped over plain HTTP, the text is parsed line
 * by line, and the figures are checked against what the test did (networks and endpoints created, passes
 * run, API requests answered, VXLAN frames from a stranger that the allow-list dropped); `vxnet capture` on a
 * host's underlay while containers talk; then `vxnet status` before and after an agent stops (last: it
 * leaves host2 without its agent).
 *
 * Each agent listens on 127.0.0.1:9476 of its own host namespace (a loopback of its own); the manager (in
 * the kit's switch namespace) on port 0, whose port its log line says. Needs root.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { createCluster, DEFAULT_CLI_PATH, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { until } from './support/probes.ts';
import { attachWithApi, type Attached } from './support/setup.ts';
import { sendVxlan, vxlanEcho } from './support/vxlan-inject.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
const AGENT_METRICS = '127.0.0.1:9476';

/** One sample line: `name{labels} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text format strictly enough to fail on a malformed line. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `malformed line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of match[2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[key!] = value!;
    const value = match[3] === '+Inf' ? Infinity : Number(match[3]);
    assert.ok(!Number.isNaN(value), `not a number: ${line}`);
    samples.push({ name: match[1]!, labels, value });
  }
  return { samples, types };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe('metrics and status of a running cluster', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let host1: SimHost;
  let host2: SimHost;
  let managerMetrics: string;
  let attached: Record<string, Attached>;

  /** GET http://ADDRESS/PATH from inside a namespace, with Node's fetch; status and body. */
  const scrape = async (netns: string, address: string, path = '/metrics'): Promise<{ status: number; type: string; body: string }> => {
    const script = `const r = await fetch(${JSON.stringify(`http://${address}${path}`)}); console.log(JSON.stringify({ status: r.status, type: r.headers.get('content-type'), body: await r.text() }));`;
    const result = await cluster.exec(netns, [process.execPath, '--input-type=module', '-e', script]);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as { status: number; type: string; body: string };
  };

  before(async () => {
    cluster = await createCluster({
      hosts: 2,
      outside: true,
      prefix: 'vxmet',
      // down after 10 s without a heartbeat (agents send one every 5 s): the status test waits that long
      managerArgs: ['--metrics-listen', '127.0.0.1:0', '--node-down-after', '10'],
      agentArgs: ['--metrics-listen', AGENT_METRICS],
    });
    [host1, host2] = [cluster.host(1), cluster.host(2)];
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    await client.createNetwork({ name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24' }] });
    attached = await attachWithApi(cluster, client, [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue']]);
    const said = /serving metrics on http:\/\/(127\.0\.0\.1:\d+)\/metrics/.exec(cluster.daemonLogs(200));
    assert.ok(said, `the manager did not say where it serves metrics:\n${cluster.daemonLogs()}`);
    managerMetrics = said[1]!;
  });

  after(async () => {
    client?.close();
    await cluster?.destroy();
  });

  it('the manager: nodes by state, networks, endpoints, watching agents and the requests it answered', async () => {
    const scraped = await scrape(cluster.switchNetns, managerMetrics);
    assert.equal(scraped.status, 200);
    assert.equal(scraped.type, 'text/plain; version=0.0.4; charset=utf-8');
    const { samples, types } = parseExposition(scraped.body);
    assert.equal(value(samples, 'vxnet_manager_nodes', { state: 'up' }), 2);
    assert.equal(value(samples, 'vxnet_manager_nodes', { state: 'down' }), 0);
    assert.equal(value(samples, 'vxnet_manager_networks'), 1);
    assert.equal(value(samples, 'vxnet_manager_endpoints'), 2);
    assert.equal(value(samples, 'vxnet_manager_watch_sessions'), 2);
    assert.equal(value(samples, 'vxnet_manager_http_requests_total', { route: 'POST /v1/networks', code: '201' }), 1);
    assert.equal(value(samples, 'vxnet_manager_http_requests_total', { route: 'POST /v1/endpoints', code: '201' }), 2);
    assert.equal(types.get('vxnet_manager_http_request_duration_seconds'), 'histogram');
    assert.ok((value(samples, 'vxnet_manager_http_request_duration_seconds_count', { route: 'POST /v1/endpoints' }) ?? 0) >= 2);
    // a refusal is counted under its status
    await assert.rejects(client.createNetwork({ name: 'blue', subnets: [{ cidr: '192.168.9.0/24' }] }));
    const again = parseExposition((await scrape(cluster.switchNetns, managerMetrics)).body).samples;
    assert.equal(value(again, 'vxnet_manager_http_requests_total', { route: 'POST /v1/networks', code: '409' }), 1);
  });

  it('an agent: passes, kernel changes, the applied revision, and what its VXLAN allow-list dropped', async () => {
    const { samples, types } = parseExposition((await scrape(host1.netns, AGENT_METRICS)).body);
    assert.ok((value(samples, 'vxnet_agent_reconcile_passes_total', { result: 'ok' }) ?? 0) >= 1);
    assert.ok((value(samples, 'vxnet_agent_kernel_changes_total') ?? 0) > 0, 'the bridge, VXLAN device, endpoint and entries were made');
    assert.equal(types.get('vxnet_agent_reconcile_duration_seconds'), 'histogram');
    assert.equal(value(samples, 'vxnet_agent_reconcile_duration_seconds_bucket', { le: '+Inf' }), value(samples, 'vxnet_agent_reconcile_duration_seconds_count'));
    assert.ok((value(samples, 'vxnet_agent_applied_revision') ?? 0) >= 1);
    const dropsBefore = value(samples, 'vxnet_agent_vxlan_filter_dropped_packets');
    assert.equal(typeof dropsBefore, 'number');

    // a stranger on the underlay sends VXLAN for blue to host1: the filter drops it and the figure says so
    const c1 = attached.c1!.endpoint;
    const c2 = attached.c2!.endpoint;
    const payload = vxlanEcho({ vni: 1000, srcMac: c2.mac, dstMac: c1.mac, srcIp: c2.ip, dstIp: c1.ip, id: 0x6d01 });
    await sendVxlan(cluster, cluster.outside!.netns, cluster.outside!.address, host1.address, payload, 5);
    let dropsAfter = 0;
    await until('the dropped packets figure rises by 5', async () => {
      dropsAfter = value(parseExposition((await scrape(host1.netns, AGENT_METRICS)).body).samples, 'vxnet_agent_vxlan_filter_dropped_packets') ?? 0;
      return dropsAfter >= dropsBefore! + 5;
    });
    // host2 saw nothing of it
    const host2Drops = value(parseExposition((await scrape(host2.netns, AGENT_METRICS)).body).samples, 'vxnet_agent_vxlan_filter_dropped_packets');
    assert.equal(host2Drops, 0);
  });

  it('serves /metrics only, to GET', async () => {
    assert.equal((await scrape(host1.netns, AGENT_METRICS, '/')).status, 404);
    assert.equal((await scrape(host1.netns, AGENT_METRICS, '/v1/networks')).status, 404);
  });

  it('refuses a unix socket or a malformed address with one sentence', async () => {
    for (const [command, flagValue] of [['agent', 'unix:/run/x.sock'], ['manager', 'localhost'], ['agent', '127.0.0.1:99999']] as const) {
      const args = command === 'agent'
        ? ['agent', '--manager', 'https://127.0.0.1:7946', '--advertise-addr', '10.0.0.1', '--metrics-listen', flagValue]
        : ['manager', '--data-dir', '/nonexistent', '--listen', 'unix:/tmp/x.sock', '--metrics-listen', flagValue];
      const result = await cluster.cli(args);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^vxnet: --metrics-listen ${flagValue.replace(/[.:/]/g, '\\$&')} is invalid: .*\\.\\n$`));
    }
  });

  it('vxnet capture: the VXLAN frames on host1 named after the network and the endpoints, live and from its own pcap', async () => {
    const c1 = attached.c1!.endpoint;
    const c2 = attached.c2!.endpoint;
    const env = Object.entries(cluster.cliEnv()).map(([k, v]) => `${k}=${v}`);
    const pcap = `${cluster.tmpDir}/capture.pcap`;
    const capturing = cluster.exec(host1.netns, ['env', ...env, process.execPath, DEFAULT_CLI_PATH, 'capture', '--count', '4', '--json', '--write', pcap], { timeoutMs: 20_000 });
    let done = false;
    void capturing.then(() => (done = true));
    // tcpdump needs a moment to start: ping until the capture has its frames
    for (let i = 0; i < 60 && !done; i++) await cluster.exec(attached.c1!.netns, ['ping', '-c', '1', '-W', '0.3', c2.ip]);
    const result = await capturing;
    assert.equal(result.code, 0, result.stderr);
    const frames = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { vni: number; network?: string; outer: { src: string; dst: string }; inner: { protocol: string; src?: string; srcName?: string; dstName?: string } });
    assert.equal(frames.length, 4);
    for (const frame of frames) {
      assert.equal(frame.vni, 1000);
      assert.equal(frame.network, 'blue');
      assert.deepEqual([frame.outer.src, frame.outer.dst].sort(), [host1.address, host2.address].sort());
    }
    const icmp = frames.find((f) => f.inner.protocol === 'icmp' && f.inner.src === c1.ip);
    assert.ok(icmp, JSON.stringify(frames));
    assert.equal(icmp!.inner.srcName, attached.c1!.netns.split('/').at(-1));
    assert.equal(icmp!.inner.dstName, attached.c2!.netns.split('/').at(-1));
    // the file it wrote holds the same frames, and reads back without the manager (VNI only)
    const reread = await cluster.exec(host1.netns, [process.execPath, DEFAULT_CLI_PATH, 'capture', '--read', pcap]);
    assert.equal(reread.code, 0, reread.stderr);
    const lines = reread.stdout.trim().split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines.join('\n'), new RegExp(` VNI 1000 ICMP ${c1.ip.replace(/\./g, '\\.')} → `));
    // a bad interface is one sentence
    const bad = await cluster.exec(host1.netns, [process.execPath, DEFAULT_CLI_PATH, 'capture', '--interface', 'nosuch0', '--count', '1']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^vxnet: capturing on nosuch0 failed: .+\.\n$/);
  });

  it('vxnet node inspect and endpoint inspect: the peers (VTEPs) a node and an endpoint send to', async () => {
    const node = await cluster.cli(['node', 'inspect', 'host1']);
    assert.equal(node.code, 0, node.stderr);
    const view = JSON.parse(node.stdout) as { name: string; state: string; endpoints: { id: string; network: string; status: string }[]; networks: { name: string; vni: number; peers: unknown[] }[] };
    assert.equal(view.name, 'host1');
    assert.equal(view.state, 'up');
    assert.deepEqual(view.endpoints.map((e) => [e.id, e.network, e.status]), [[attached.c1!.endpoint.id, 'blue', 'ready']]);
    assert.deepEqual(view.networks, [{ name: 'blue', vni: 1000, port: 4789, peers: [{ node: 'host2', address: host2.address, state: 'up', endpoints: 1 }] }]);
    const endpoint = await cluster.cli(['endpoint', 'inspect', attached.c2!.endpoint.id]);
    assert.equal(endpoint.code, 0, endpoint.stderr);
    const ep = JSON.parse(endpoint.stdout) as { node: { name: string; address: string }; network: { vni: number }; peers: { node: string; address: string }[] };
    assert.deepEqual([ep.node.name, ep.node.address, ep.network.vni], ['host2', host2.address, 1000]);
    assert.deepEqual(ep.peers.map((p) => [p.node, p.address]), [['host1', host1.address]]);
    for (const [args, sentence] of [[['node', 'inspect', 'nosuch'], 'node nosuch does not exist.'], [['endpoint', 'inspect', 'ffffffffffff'], 'endpoint ffffffffffff does not exist.']] as const) {
      const missing = await cluster.cli(args);
      assert.equal(missing.code, 1);
      assert.equal(missing.stderr, `vxnet: ${sentence}\n`);
    }
  });

  it('vxnet status: counts, per node, and a stopped agent named as a problem (human and --json)', async () => {
    const healthy = await cluster.cli(['status']);
    assert.equal(healthy.code, 0, healthy.stderr);
    assert.match(healthy.stdout, /^nodes {5}2 \(2 up, 0 down\)$/m);
    assert.match(healthy.stdout, /^networks {2}1$/m);
    assert.match(healthy.stdout, /^endpoints 2 \(2 ready, 0 pending, 0 failed\)$/m);
    assert.match(healthy.stdout, /^host1 +up +1 /m);
    assert.match(healthy.stdout, /^no problems found$/m);

    await cluster.stopAgent(host2);
    const status = await until('host2 shows as down', async () => {
      const result = await cluster.cli(['status', '--json']);
      assert.equal(result.code, 0, result.stderr);
      const parsed = JSON.parse(result.stdout) as { nodes: { down: number }; problems: string[] };
      return parsed.nodes.down === 1 && parsed;
    }, 20_000);
    assert.equal(status.problems.length, 1);
    assert.match(status.problems[0]!, /^node host2 is down \(no heartbeat: last seen \d+s ago\); its endpoints keep forwarding as programmed but get no updates\.$/);
    const human = await cluster.cli(['status']);
    assert.match(human.stdout, /^problems \(1\):\n {2}node host2 is down/m);
  });
});
