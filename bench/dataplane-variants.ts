/**
 * What each change to vxnet's forwarding path is worth (vxnet issue 19), measured in the Docker section of
 * `npm run bench` on the same hosts, the same engines and in the same interleaved rounds as Swarm's overlay.
 *
 * Every variant is a vxnet network of its own, so that all of them are measured side by side:
 *  - `vxnet`: as the agent programs it;
 *  - "as before issue 19": the same network with its bridge taken out of the sets of chain `untracked` and
 *    of `same_bridge` (so its frames are tracked and walk every rule, as before), and the conntrack rule of
 *    DOCKER-USER put first again for it;
 *  - "as before, bridge nf_call_iptables 0": that, plus the bridge options that Swarm's bridges carry. The
 *    bridge then still hands its frames to iptables (the kernel ORs the option with the namespace's
 *    `bridge-nf-call-iptables`, which Docker keeps at 1): DOCKER-USER's counters show it;
 *  - "GRO on its veths" (candidate (c), offloads): vxnet's veths and VXLAN devices already carry the very
 *    feature flags of Swarm's (`ethtool -k` compared device by device: identical), so the one offload left to
 *    try is GRO on both ends of each container's veth, which turns the veth into a NAPI device that merges
 *    what it receives. A shipped vxnet network otherwise, with its untracked path.
 * The agent leaves those changes alone while the measurements run: it replaces table ip vxnet only when the
 * hash of its rules changes (no network is created or removed meanwhile), and the bench checks afterwards
 * that the variants were still in place.
 *
 * "Without Docker's iptables rules": Docker's tables (ip/ip6 filter and nat of iptables-nft) are deleted on
 * both hosts and every path is measured again; vxnet's own table stays, as on a host without Docker.
 */
import { rangesWithout } from '../src/agent/kernel/nftables.ts';
import { formatCidr, maskOf, parseIPv4 } from '../src/core/ipv4.ts';
import { run, runChecked } from '../src/testkit/processes.ts';
import { fixed, ratio } from './stats.ts';
import { noise, type TrafficPath, type TrafficSummary } from './traffic.ts';

export const SWARM_LABEL = 'Swarm overlay';
export const VXNET_LABEL = 'vxnet';
export const HAND_BUILT_LABEL = 'hand-built kernel VXLAN';
export const HAND_SANDBOX_LABEL = "hand-built, bridge and VXLAN device in a namespace of their own (Swarm's layout)";
export const BEFORE_LABEL = 'vxnet as before issue 19 (bridged traffic tracked, every rule walked)';
export const NF_CALL_LABEL = 'vxnet as before, bridge nf_call_iptables 0';

export const GRO_LABEL = 'vxnet, GRO on both ends of its veths';

export const MTU_1450_LABEL = 'vxnet at MTU 1450, as Swarm';

export interface VariantNetwork {
  network: string;
  vni: number;
  /** the first two bytes of its /16 */
  prefix: string;
  label: string;
  /** what is undone: the forwarding path of issue 19, that and the bridge option, or the derived MTU */
  kind: 'tracked' | 'nf-call' | 'gro' | 'mtu-1450';
}

/** The variants of the forwarding path next to the shipped network (VNI 100). */
export const FORWARDING_VARIANTS: readonly VariantNetwork[] = [
  { network: 'vxbefore', vni: 101, prefix: '10.76', label: BEFORE_LABEL, kind: 'tracked' },
  { network: 'vxnfcall', vni: 102, prefix: '10.75', label: NF_CALL_LABEL, kind: 'nf-call' },
  { network: 'vxgro', vni: 104, prefix: '10.73', label: GRO_LABEL, kind: 'gro' },
];

/** On a jumbo underlay: the same network at Swarm's MTU, created with `mtu: 1450`. */
export const MTU_VARIANTS: readonly VariantNetwork[] = [{ network: 'vxmtu1450', vni: 103, prefix: '10.74', label: MTU_1450_LABEL, kind: 'mtu-1450' }];

export const bridgeOf = (vni: number) => `vxnb${vni}`;

/** One set of measurements: every path, with the MTU of its client's interface. */
export interface Phase {
  title: string;
  mtus: Map<string, number>;
  summary: TrafficSummary[];
}

const inHost = (netns: string, argv: string[]) => ['ip', 'netns', 'exec', netns, ...argv];

/** Takes `bridge` out of the untracked path on one host and puts DOCKER-USER's conntrack match first for it. */
export async function trackAgain(hostNetns: string, bridge: string): Promise<void> {
  const addrs = JSON.parse((await runChecked(inHost(hostNetns, ['ip', '-j', 'addr', 'show', 'dev', bridge]))).stdout) as {
    addr_info: { family: string; local: string; prefixlen: number }[];
  }[];
  const gateways = addrs[0]!.addr_info.filter((a) => a.family === 'inet');
  const subnet = (a: { local: string; prefixlen: number }) => formatCidr({ network: (parseIPv4(a.local)! & maskOf(a.prefixlen)) >>> 0, prefix: a.prefixlen });
  const ranges = gateways.flatMap((g) => rangesWithout(subnet(g), gateways.map((x) => x.local)));
  const script = [
    `delete element ip vxnet bridged { ${ranges.map((r) => `"${bridge}" . ${r}`).join(', ')} }`,
    `delete element ip vxnet same_bridge { "${bridge}" . "${bridge}" }`,
  ].join('\n');
  await runChecked(inHost(hostNetns, ['nft', '-f', '-']), { input: script + '\n' });
  await runChecked(inHost(hostNetns, ['iptables', '-w', '5', '-I', 'DOCKER-USER', '1', '-o', bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']));
}

export async function bridgeNfCallOff(hostNetns: string, bridge: string): Promise<void> {
  await runChecked(inHost(hostNetns, ['ip', 'link', 'set', bridge, 'type', 'bridge', 'nf_call_iptables', '0', 'nf_call_ip6tables', '0', 'nf_call_arptables', '0']));
}

/** GRO on the host end of every container veth on `bridge` and on the container's end (eth0 in `container`). */
export async function vethGroOn(hostNetns: string, bridge: string, container: string): Promise<void> {
  const ports = JSON.parse((await runChecked(inHost(hostNetns, ['ip', '-j', 'link', 'show', 'master', bridge]))).stdout) as { ifname: string }[];
  for (const { ifname } of ports.filter((p) => p.ifname.startsWith('vxnh'))) await runChecked(inHost(hostNetns, ['ethtool', '-K', ifname, 'gro', 'on']));
  await runChecked(['nsenter', `--net=${container}`, 'ethtool', '-K', 'eth0', 'gro', 'on']);
}

/** Whether GRO is still on for the container end (nothing of vxnet's turns it off; checked all the same). */
export async function groStillOn(container: string): Promise<boolean> {
  const features = await run(['nsenter', `--net=${container}`, 'ethtool', '-k', 'eth0']);
  return /generic-receive-offload: on/.test(features.stdout);
}

/** Whether `bridge` is still out of the untracked path (the agent did not put it back). */
export async function stillTracked(hostNetns: string, bridge: string): Promise<boolean> {
  const listed = await runChecked(inHost(hostNetns, ['nft', 'list', 'set', 'ip', 'vxnet', 'bridged']));
  return !listed.stdout.includes(`"${bridge}"`);
}

/** Packets of `bridge`'s frames that passed DOCKER-USER (the conntrack rule trackAgain put there). */
export async function dockerUserPackets(hostNetns: string, bridge: string): Promise<number | undefined> {
  const listed = await run(inHost(hostNetns, ['iptables', '-w', '5', '-vnxL', 'DOCKER-USER']));
  const line = listed.stdout.split('\n').find((l) => l.includes(` ${bridge} `) && l.includes('ctstate'));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

/** Deletes Docker's iptables-nft tables on a host (vxnet's table ip vxnet stays). */
export async function dropDockerRules(hostNetns: string): Promise<void> {
  for (const table of ['ip filter', 'ip nat', 'ip6 filter', 'ip6 nat']) {
    await run(inHost(hostNetns, ['nft', 'delete', 'table', ...table.split(' ')]));
  }
}

export async function interfaceMtu(path: TrafficPath): Promise<number> {
  const result = await run(['nsenter', `--net=${path.client}`, 'ip', '-j', 'link', 'show', 'eth0']);
  return (JSON.parse(result.stdout || '[{}]') as { mtu?: number }[])[0]?.mtu ?? Number.NaN;
}

/** One table: every phase's paths, each against Swarm and the hand-built path of the same phase. */
export function phasesMarkdown(phases: readonly Phase[], streams: number): string[] {
  const lines = [
    `| setting | path | MTU | TCP 1 stream | ÷ Swarm | ÷ hand-built | TCP ${streams} streams | ÷ Swarm | ÷ hand-built | ping RTT (mean) | ÷ Swarm | ÷ hand-built | ping RTT (min) | ÷ Swarm | ÷ hand-built | CPU per Gbit, 1 stream | ÷ Swarm | ÷ hand-built |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const phase of phases) {
    const find = (label: string) => phase.summary.find((s) => s.name === label);
    const swarm = find(SWARM_LABEL);
    const hand = find(HAND_BUILT_LABEL);
    const vs = (value: number, pick: (s: TrafficSummary) => number) =>
      `${swarm ? ratio(value, pick(swarm)) : ''} | ${hand ? ratio(value, pick(hand)) : ''}`;
    for (const s of phase.summary) {
      const us = (v: number) => `${fixed(v * 1000, 0)} µs`;
      lines.push(
        `| ${phase.title} | ${s.name} | ${phase.mtus.get(s.name) ?? ''} | ` +
          `${fixed(s.singleGbps, 2)} Gbit/s (${noise(s.singleNoise)}) | ${vs(s.singleGbps, (x) => x.singleGbps)} | ` +
          `${fixed(s.multiGbps, 2)} Gbit/s (${noise(s.multiNoise)}) | ${vs(s.multiGbps, (x) => x.multiGbps)} | ` +
          `${us(s.rttMs)} (${noise(s.rttNoise)}) | ${vs(s.rttMs, (x) => x.rttMs)} | ` +
          `${us(s.rttMinMs)} (${noise(s.rttMinNoise)}) | ${vs(s.rttMinMs, (x) => x.rttMinMs)} | ` +
          `${fixed(s.singleCpuMsPerGbit, 0)} ms (${noise(s.singleCpuNoise)}) | ${vs(s.singleCpuMsPerGbit, (x) => x.singleCpuMsPerGbit)} |`,
      );
    }
  }
  lines.push(
    '',
    'ping RTT (min): the fastest of 200 pings, the path\'s own cost; CPU per Gbit: CPU time of both iperf3 processes per Gbit of the single ' +
      'stream (on veth pairs the whole path runs in their softirq context). Both move far less than throughput with the load of a shared machine. ' +
      '÷ Swarm and ÷ hand-built compare with those paths in the same setting; below 1.00× is better for RTT and CPU.',
  );
  return lines;
}
