/**
 * What vxnet's forwarding path is worth next to its references (vxnet issue 19), measured in the Docker section
 * of `npm run bench` on the same hosts, the same engines and in the same interleaved rounds as Swarm's overlay:
 * vxnet as the agent programs it (each network's bridge and VXLAN device in a namespace of its own), the
 * hand-built path in the host namespace, and the same hand-built path in Swarm's layout (a namespace of its own).
 *
 * The variants measured before the agent moved its bridges into namespaces (bridged traffic tracked again, the
 * bridge option nf_call_iptables 0, GRO on the veths) changed a bridge in the host namespace; with nothing of a
 * network's frames left there they have nothing to undo, so they are no longer rows. What each was worth is
 * kept in docs/architecture.md ("Forwarding path of a frame") and bench/results/issue19-run*.md.
 *
 * "Without Docker's iptables rules": Docker's tables (ip/ip6 filter and nat of iptables-nft) are deleted on
 * both hosts and every path is measured again; vxnet's own table stays, as on a host without Docker.
 */
import { run } from '../src/testkit/processes.ts';
import { fixed, ratio } from './stats.ts';
import { noise, type TrafficPath, type TrafficSummary } from './traffic.ts';

export const SWARM_LABEL = 'Swarm overlay';
export const VXNET_LABEL = 'vxnet';
export const HAND_BUILT_LABEL = 'hand-built kernel VXLAN';
export const HAND_SANDBOX_LABEL = "hand-built, bridge and VXLAN device in a namespace of their own (Swarm's layout)";
export const MTU_1450_LABEL = 'vxnet at MTU 1450, as Swarm';

export interface VariantNetwork {
  network: string;
  vni: number;
  /** the first two bytes of its /16 */
  prefix: string;
  label: string;
  /** what is undone: the derived MTU */
  kind: 'mtu-1450';
}

/** On a jumbo underlay: the same network at Swarm's MTU, created with `mtu: 1450`. */
export const MTU_VARIANTS: readonly VariantNetwork[] = [{ network: 'vxmtu1450', vni: 103, prefix: '10.74', label: MTU_1450_LABEL, kind: 'mtu-1450' }];

/** One set of measurements: every path, with the MTU of its client's interface. */
export interface Phase {
  title: string;
  mtus: Map<string, number>;
  summary: TrafficSummary[];
}

const inHost = (netns: string, argv: string[]) => ['ip', 'netns', 'exec', netns, ...argv];

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
