/**
 * The encryption section of `npm run bench` (vxnet issue 10): container to container across two simulated
 * hosts on an encrypted vxnet network, next to its ceiling and its neighbours, in one run of interleaved
 * rounds (bench/traffic.ts):
 *
 *  - underlay: host to host on the veth, no tunnel at all;
 *  - wireguard-go host to host: a tunnel made by hand between the same hosts, the same wireguard-go and the
 *    same MTU as vxnet's device (1440 on a 1500 underlay), TCP straight through it. This is the ceiling of
 *    any encrypted path here, and the reference of the target (encrypted vxnet ≥ 0.9× of it);
 *  - vxnet plain: the same hosts' plain VXLAN network;
 *  - vxnet encrypted: VXLAN inside vxnet's own WireGuard tunnel.
 *
 * The kernel WireGuard path is not measurable on this machine (no module: "Unknown device type"), so it is
 * reported as such rather than guessed. The section checks the inner MTU arithmetic it relies on: a full
 * inner frame must cross the encrypted network with DF set, i.e. without fragmentation anywhere.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatePrivateKey, publicKeyOf } from '../src/agent/wireguard/keys.ts';
import { tunnelDeviceName } from '../src/agent/wireguard/render.ts';
import { ManagerClient } from '../src/client/client.ts';
import { tunnelMtu } from '../src/core/wireguard.ts';
import { createCluster, type ChildProcessHandle, type Cluster } from '../src/testkit/cluster.ts';
import { fixed, ratio } from './stats.ts';
import { measureTraffic, noise, summariseTraffic, type TrafficPath, type TrafficSummary } from './traffic.ts';

export interface EncryptBenchOptions {
  rounds: number;
  seconds: number;
  streams: number;
  log: (line: string) => void;
}

export interface EncryptBenchResult {
  json: Record<string, unknown>;
  markdown: string[];
}

/** The hand-made reference tunnel's addresses: outside vxnet's tunnel range, whose blackhole route covers 10.201/16. */
const REFERENCE_NET = '172.31.250';
const REFERENCE_PORT = 51999;
const TARGET = 0.9;

export async function encryptedDataPlane(options: EncryptBenchOptions): Promise<EncryptBenchResult> {
  const { log } = options;
  log(`encryption: iperf3 ${options.seconds}s (1 and ${options.streams} streams) × ${options.rounds} rounds per path, ping RTT ...`);
  const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxbenc' });
  const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  const reference: ChildProcessHandle[] = [];
  const devices: string[] = [];
  try {
    const [h1, h2] = [cluster.host('host1'), cluster.host('host2')];
    await client.createNetwork({ name: 'open', subnets: [{ cidr: '10.88.0.0/24' }] });
    const sealed = await client.createNetwork({ name: 'sealed', encrypted: true, subnets: [{ cidr: '10.89.0.0/24' }] });
    const [o1, o2, s1, s2] = await Promise.all(['o1', 'o2', 's1', 's2'].map((name) => cluster.addContainer(name)));
    const attach = (network: string, node: string, netns: string) => client.createEndpoint({ network, node, netns: netns! }, { waitSeconds: 20 });
    const [, eo2, , es2] = await Promise.all([attach('open', 'host1', o1!), attach('open', 'host2', o2!), attach('sealed', 'host1', s1!), attach('sealed', 'host2', s2!)]);

    // the reference: wireguard-go host to host, by hand, with vxnet's device MTU
    for (const [i, host] of [h1, h2].entries()) {
      const device = `vxbwg${cluster.runId.replace(/[^0-9a-z]/g, '').slice(-8)}${i + 1}`;
      devices.push(device);
      reference.push(cluster.spawn(host.netns, ['env', 'LOG_LEVEL=error', 'wireguard-go', '-f', device], { label: `reference wireguard-go ${device}` }));
    }
    const keys = [generatePrivateKey(), generatePrivateKey()];
    for (const [i, host] of [h1, h2].entries()) {
      const other = [h1, h2][1 - i]!;
      const keyFile = join(cluster.tmpDir, `reference-${i + 1}.key`);
      writeFileSync(keyFile, `${keys[i]}\n`, { mode: 0o600 });
      await waitFor(cluster, host.netns, ['ip', 'link', 'show', devices[i]!], `${devices[i]} on ${host.name}`);
      const wg = ['wg', 'set', devices[i]!, 'listen-port', String(REFERENCE_PORT), 'private-key', keyFile];
      wg.push('peer', publicKeyOf(keys[1 - i]!), 'endpoint', `${other.address}:${REFERENCE_PORT}`, 'allowed-ips', `${REFERENCE_NET}.${2 - i}/32`);
      for (const argv of [wg, ['ip', 'addr', 'add', `${REFERENCE_NET}.${i + 1}/24`, 'dev', devices[i]!], ['ip', 'link', 'set', devices[i]!, 'mtu', String(tunnelMtu(cluster.underlayMtu)), 'up']]) {
        const result = await cluster.exec(host.netns, argv);
        if (result.code !== 0) throw new Error(`${argv.join(' ')} on ${host.name}: ${result.stderr}`);
      }
    }
    await waitFor(cluster, h1.netns, ['ping', '-c', '1', '-W', '1', `${REFERENCE_NET}.2`], 'the reference tunnel');
    await waitFor(cluster, s1!, ['ping', '-c', '1', '-W', '1', es2!.ip], 'the encrypted network');
    // a full inner frame with DF crosses without fragmentation: the MTU leaves room for VXLAN and WireGuard
    const full = sealed.mtu - 28;
    const df = await cluster.exec(s1!, ['ping', '-c', '3', '-W', '2', '-M', 'do', '-s', String(full), es2!.ip]);
    if (df.code !== 0) throw new Error(`a ${sealed.mtu}-byte packet with DF did not cross the encrypted network: ${df.stdout}${df.stderr}`);
    log(`  encrypted network MTU ${sealed.mtu}: a ${sealed.mtu}-byte packet with DF crosses (no fragmentation)`);

    const ns = (name: string) => `/run/netns/${name}`;
    const paths: TrafficPath[] = [
      { name: 'underlay (host ⇄ host veth)', client: ns(h1.netns), server: ns(h2.netns), target: h2.address },
      { name: 'wireguard-go host ⇄ host (the ceiling)', client: ns(h1.netns), server: ns(h2.netns), target: `${REFERENCE_NET}.2` },
      { name: 'vxnet plain', client: ns(o1!), server: ns(o2!), target: eo2!.ip },
      { name: 'vxnet encrypted', client: ns(s1!), server: ns(s2!), target: es2!.ip },
    ];
    const rounds = await measureTraffic(paths, { rounds: options.rounds, seconds: options.seconds, streams: options.streams, log });
    const summary = summariseTraffic(paths, rounds);
    return {
      json: { rounds: options.rounds, seconds: options.seconds, streams: options.streams, mtu: sealed.mtu, paths: summary, raw: Object.fromEntries(rounds) },
      markdown: markdownOf(summary, options, sealed.mtu),
    };
  } finally {
    client.close();
    await Promise.all(reference.map((p) => p.stop('SIGKILL')));
    devices.push(...cluster.hosts.map((host) => tunnelDeviceName(cluster.agentStateDir(host))));
    await cluster.destroy();
    // wireguard-go's control sockets are machine-wide: the hand-made ones and vxnet's own
    for (const device of devices) rmSync(`/var/run/wireguard/${device}.sock`, { force: true });
  }
}

function markdownOf(summary: TrafficSummary[], options: EncryptBenchOptions, mtu: number): string[] {
  const [, wg, , sealed] = summary as [TrafficSummary, TrafficSummary, TrafficSummary, TrafficSummary];
  const gbps = (value: number, spread: number) => `${fixed(value, 3)} Gbit/s (${noise(spread)})`;
  return [
    `### Encrypted networks: vxnet over WireGuard vs wireguard-go host to host (2 hosts, median of ${options.rounds} interleaved rounds, ${options.seconds} s iperf3 each)`,
    '',
    `| path | TCP 1 stream | vs wireguard-go | TCP ${options.streams} streams | vs wireguard-go | ping RTT | vs wireguard-go |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.name} | ${gbps(s.singleGbps, s.singleNoise)} | ${ratio(s.singleGbps, wg.singleGbps)} | ${gbps(s.multiGbps, s.multiNoise)} | ` +
        `${ratio(s.multiGbps, wg.multiGbps)} | ${fixed(s.rttMs * 1000, 0)} µs (${noise(s.rttNoise)}) | ${ratio(s.rttMs, wg.rttMs)} |`,
    ),
    '',
    `Target: vxnet encrypted ≥ ${TARGET}× wireguard-go host to host (seen: ${ratio(sealed.singleGbps, wg.singleGbps)} with 1 stream, ` +
      `${ratio(sealed.multiGbps, wg.multiGbps)} with ${options.streams}). The encrypted network's MTU is ${mtu} (underlay 1500 − WireGuard 60 − VXLAN 50), ` +
      'checked to cross without fragmentation. Kernel WireGuard: not measurable here (this kernel has no WireGuard module).',
    '',
  ];
}

async function waitFor(cluster: Cluster, netns: string, argv: string[], what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await cluster.exec(netns, argv);
    if (result.code === 0) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${result.stderr || result.stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
