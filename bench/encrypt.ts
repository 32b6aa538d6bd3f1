/**
 * The encryption section of `npm run bench` (vxnet issue 10): container to container across two simulated
 * hosts on an encrypted vxnet network, next to its ceiling and its neighbours, in one run of interleaved
 * rounds (bench/traffic.ts):
 *
 *  - underlay: host to host on the veth, no tunnel at all;
 *  - wireguard-go host to host: a tunnel made by hand between the same hosts, the same wireguard-go and the
 *    same MTU as vxnet's device (1440 on a 1500 underlay), TCP straight through it. This is the ceiling of
 *    any encrypted path here, and the reference of the target (encrypted vxnet ≥ 0.9× of it);
 *  - the same with RPS on its TUN over every CPU, as vxnet sets its own (src/agent/wireguard/tunnel.ts), and
 *    the same with GOMAXPROCS=1 (wireguard-go's own parallelism, on a machine whose CPUs it shares with the
 *    other host's wireguard-go and both iperf3s);
 *  - vxnet plain: the same hosts' plain VXLAN network;
 *  - vxnet encrypted: VXLAN inside vxnet's own WireGuard tunnel, once as the agent sets it up and once per
 *    variant of bench/encrypt-variants.ts (RPS off, RPS on one CPU per host, the VXLAN datagrams inside the
 *    tunnel exempt from connection tracking, its wireguard-go at nice -5), each setting put on both hosts
 *    just before its row is measured. Four loaded runs and what they decided: docs/security.md.
 *
 * The kernel WireGuard path is not measurable on this machine (no module: "Unknown device type"), so it is
 * reported as such rather than guessed. The section checks the inner MTU arithmetic it relies on: a full
 * inner frame must cross the encrypted network with DF set, i.e. without fragmentation anywhere.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { generatePrivateKey, publicKeyOf } from '../src/agent/wireguard/keys.ts';
import { rpsMask, tunnelDeviceName } from '../src/agent/wireguard/render.ts';
import { ManagerClient } from '../src/client/client.ts';
import { tunnelMtu } from '../src/core/wireguard.ts';
import { createCluster, type ChildProcessHandle, type Cluster } from '../src/testkit/cluster.ts';
import { fixed, ratio } from './stats.ts';
import { applySetting, NOTRACK_TABLE, VXNET_VARIANTS } from './encrypt-variants.ts';
import { measureTraffic, noise, summariseTraffic, type TrafficPath, type TrafficSummary } from './traffic.ts';

/** A row of the table: a path (with the setting it puts in place before each measurement), and whether it is the agent's. */
interface Row {
  path: TrafficPath;
  shipped?: true;
}

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

/**
 * The hand-made reference tunnels: addresses outside vxnet's tunnel range (whose blackhole route covers
 * 10.201/16), a port each; the second one with the receive steering vxnet gives its own device, the third
 * with wireguard-go limited to one thread running Go code at a time.
 */
const REFERENCES = [
  { tag: 'a', net: '172.31.250', port: 51999, rps: false, env: [] },
  { tag: 'b', net: '172.31.249', port: 51998, rps: true, env: [] },
  { tag: 'c', net: '172.31.248', port: 51997, rps: false, env: ['GOMAXPROCS=1'] },
] as const;
const TARGET = 0.9;

export async function encryptedDataPlane(options: EncryptBenchOptions): Promise<EncryptBenchResult> {
  const { log } = options;
  log(`encryption: iperf3 ${options.seconds}s (1 and ${options.streams} streams) × ${options.rounds} rounds per path, ping RTT ...`);
  const cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxbenc' });
  const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  const running: ChildProcessHandle[] = [];
  const devices: string[] = [];
  try {
    const [h1, h2] = [cluster.host('host1'), cluster.host('host2')];
    await client.createNetwork({ name: 'open', subnets: [{ cidr: '10.88.0.0/24' }] });
    const sealed = await client.createNetwork({ name: 'sealed', encrypted: true, subnets: [{ cidr: '10.89.0.0/24' }] });
    const [o1, o2, s1, s2] = await Promise.all(['o1', 'o2', 's1', 's2'].map((name) => cluster.addContainer(name)));
    const attach = (network: string, node: string, netns: string) => client.createEndpoint({ network, node, netns: netns! }, { waitSeconds: 20 });
    const [, eo2, , es2] = await Promise.all([attach('open', 'host1', o1!), attach('open', 'host2', o2!), attach('sealed', 'host1', s1!), attach('sealed', 'host2', s2!)]);

    // the reference: wireguard-go host to host, by hand, with vxnet's device MTU; and the same with the
    // receive steering vxnet gives its own device (tunnel.ts), to tell what that is worth from the rest
    for (const reference of REFERENCES) {
      const pair: string[] = [];
      for (const [i, host] of [h1, h2].entries()) {
        const device = `vxbwg${cluster.runId.replace(/[^0-9a-z]/g, '').slice(-7)}${reference.tag}${i + 1}`;
        pair.push(device);
        devices.push(device);
        running.push(cluster.spawn(host.netns, ['env', 'LOG_LEVEL=error', ...reference.env, 'wireguard-go', '-f', device], { label: `reference wireguard-go ${device}` }));
      }
      const keys = [generatePrivateKey(), generatePrivateKey()];
      for (const [i, host] of [h1, h2].entries()) {
        const other = [h1, h2][1 - i]!;
        const keyFile = join(cluster.tmpDir, `reference-${reference.tag}${i + 1}.key`);
        writeFileSync(keyFile, `${keys[i]}\n`, { mode: 0o600 });
        await waitFor(cluster, host.netns, ['ip', 'link', 'show', pair[i]!], `${pair[i]} on ${host.name}`);
        const wg = ['wg', 'set', pair[i]!, 'listen-port', String(reference.port), 'private-key', keyFile];
        wg.push('peer', publicKeyOf(keys[1 - i]!), 'endpoint', `${other.address}:${reference.port}`, 'allowed-ips', `${reference.net}.${2 - i}/32`);
        const steps = [wg, ['ip', 'addr', 'add', `${reference.net}.${i + 1}/24`, 'dev', pair[i]!], ['ip', 'link', 'set', pair[i]!, 'mtu', String(tunnelMtu(cluster.underlayMtu)), 'up']];
        // cluster.exec enters with `ip netns exec`, whose /sys is the host's own
        if (reference.rps) {
          const maskFile = join(cluster.tmpDir, 'rps-mask');
          writeFileSync(maskFile, `${rpsMask(cpus().length)}\n`);
          steps.push(['cp', maskFile, `/sys/class/net/${pair[i]}/queues/rx-0/rps_cpus`]);
        }
        for (const argv of steps) {
          const result = await cluster.exec(host.netns, argv);
          if (result.code !== 0) throw new Error(`${argv.join(' ')} on ${host.name}: ${result.stderr}`);
        }
      }
      await waitFor(cluster, h1.netns, ['ping', '-c', '1', '-W', '1', `${reference.net}.2`], `the reference tunnel ${reference.tag}`);
    }
    await waitFor(cluster, s1!, ['ping', '-c', '1', '-W', '1', es2!.ip], 'the encrypted network');
    // a full inner frame with DF crosses without fragmentation: the MTU leaves room for VXLAN and WireGuard
    const full = sealed.mtu - 28;
    const df = await cluster.exec(s1!, ['ping', '-c', '3', '-W', '2', '-M', 'do', '-s', String(full), es2!.ip]);
    if (df.code !== 0) throw new Error(`a ${sealed.mtu}-byte packet with DF did not cross the encrypted network: ${df.stdout}${df.stderr}`);
    log(`  encrypted network MTU ${sealed.mtu}: a ${sealed.mtu}-byte packet with DF crosses (no fragmentation)`);

    const ns = (name: string) => `/run/netns/${name}`;
    const tunnels = [h1, h2].map((host) => ({ netns: host.netns, device: tunnelDeviceName(cluster.agentStateDir(host)) }));
    const cpuCount = cpus().length;
    const vxlanPort = 4789;
    const encrypted = (label: string) => ({ name: label, client: ns(s1!), server: ns(s2!), target: es2!.ip });
    const rows: Row[] = [
      { path: { name: 'underlay (host ⇄ host veth)', client: ns(h1.netns), server: ns(h2.netns), target: h2.address } },
      { path: { name: 'wireguard-go host ⇄ host (the ceiling)', client: ns(h1.netns), server: ns(h2.netns), target: `${REFERENCES[0].net}.2` } },
      { path: { name: 'wireguard-go host ⇄ host, RPS on its TUN over every CPU', client: ns(h1.netns), server: ns(h2.netns), target: `${REFERENCES[1].net}.2` } },
      { path: { name: 'wireguard-go host ⇄ host, GOMAXPROCS=1', client: ns(h1.netns), server: ns(h2.netns), target: `${REFERENCES[2].net}.2` } },
      { path: { name: 'vxnet plain', client: ns(o1!), server: ns(o2!), target: eo2!.ip } },
      ...VXNET_VARIANTS.map((variant) => ({
        path: { ...encrypted(variant.label), prepare: () => applySetting(cluster, tunnels, variant.setting, cpuCount, vxlanPort) },
        ...(variant.shipped ? { shipped: true as const } : {}),
      })),
    ];
    const paths = rows.map((r) => r.path);
    const rounds = await measureTraffic(paths, options);
    const summary = summariseTraffic(paths, rounds);
    return {
      json: { rounds: options.rounds, seconds: options.seconds, streams: options.streams, mtu: sealed.mtu, paths: summary, raw: Object.fromEntries(rounds) },
      markdown: markdownOf(summary, rows, options, sealed.mtu),
    };
  } finally {
    client.close();
    await Promise.all(running.map((p) => p.stop('SIGKILL')));
    for (const host of cluster.hosts) await cluster.exec(host.netns, ['nft', 'delete', 'table', 'ip', NOTRACK_TABLE]).catch(() => undefined);
    devices.push(...cluster.hosts.map((host) => tunnelDeviceName(cluster.agentStateDir(host))));
    await cluster.destroy();
    // wireguard-go's control sockets are machine-wide: the hand-made ones and vxnet's own
    for (const device of devices) rmSync(`/var/run/wireguard/${device}.sock`, { force: true });
  }
}

function markdownOf(summary: TrafficSummary[], rows: readonly Row[], options: EncryptBenchOptions, mtu: number): string[] {
  const wg = summary[1]!;
  const steered = summary[2]!;
  const sealed = summary[rows.findIndex((r) => r.shipped)]!;
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
    `Target: vxnet encrypted ≥ ${TARGET}× wireguard-go host to host (seen, as the agent sets it: ${ratio(sealed.singleGbps, wg.singleGbps)} with 1 stream, ` +
      `${ratio(sealed.multiGbps, wg.multiGbps)} with ${options.streams}). The encrypted network's MTU is ${mtu} (underlay 1500 − WireGuard 60 − VXLAN 50), ` +
      'checked to cross without fragmentation. Kernel WireGuard: not measurable here (this kernel has no WireGuard module).',
    '',
    `The vxnet encrypted rows are one network on one tunnel device per host, each row with its setting put on both hosts just before it is ` +
      `measured (bench/encrypt-variants.ts). RPS: the receive path of each decrypted packet (for vxnet: VXLAN, bridge, veth, the container's ` +
      `TCP) runs in a softirq instead of inside wireguard-go's write. The wireguard-go reference with RPS tells what is left of VXLAN inside ` +
      `WireGuard: vxnet encrypted (as the agent sets it) is ${ratio(sealed.singleGbps, steered.singleGbps)} of it with 1 stream, ` +
      `${ratio(sealed.multiGbps, steered.multiGbps)} with ${options.streams} (50 of every 1,440 bytes are VXLAN's: at most 0.96× on bytes alone).`,
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
