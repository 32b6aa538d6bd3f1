/**
 * The variants of the encryption section (bench/encrypt.ts, vxnet issue 10): what each setting of the
 * encrypted path is worth, measured side by side with the shipped one and wireguard-go host to host.
 *
 * vxnet's tunnel is one device per host, shared by every encrypted network of the host, so its variants
 * cannot be separate networks (as the forwarding variants of bench/dataplane-variants.ts are): each is a
 * setting put on both hosts' devices just before that row is measured, in the same interleaved rounds.
 * The agent leaves them alone meanwhile: it writes the RPS mask only when it (re)configures the device and
 * never looks at a table that is not its own. Every vxnet row states every setting it depends on, so the
 * order of the rows does not matter.
 *
 *  - RPS (receive packet steering) on the TUN's one queue: over every CPU, off, or on one CPU only (each
 *    host steers to a different one);
 *  - the VXLAN datagrams that go through the tunnel untracked (a raw-priority `notrack` for UDP to the
 *    VXLAN port on the tunnel device, in and out): the reference's TCP is tracked once per packet per host,
 *    vxnet's encrypted frames twice (the VXLAN datagram inside the tunnel, and the WireGuard datagram);
 *    this takes the first of them away;
 *  - wireguard-go's threads at a higher priority (nice -5) than the rest of the machine: on a loaded host its
 *    receiving thread drains its UDP socket sooner (whose overflow is where the tunnel loses packets here).
 */
import type { Cluster } from '../src/testkit/cluster.ts';
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { rpsMask } from '../src/agent/wireguard/render.ts';
import { findWireguardGo } from '../src/agent/wireguard/tunnel.ts';

export interface VxnetSetting {
  /** the RPS mask of each host's TUN queue: every CPU, none, or one CPU per host (host i → CPU i mod n) */
  rps: 'all' | 'off' | 'one';
  /** the VXLAN datagrams through the tunnel skip connection tracking */
  notrack: boolean;
  /** the nice value of every thread of the hosts' wireguard-go (default 0, as the agent starts it) */
  nice?: number;
}

export interface EncryptVariant {
  label: string;
  setting: VxnetSetting;
}

/** The settings measured; `shipped` marks what the agent does (src/agent/wireguard/tunnel.ts). */
export const VXNET_VARIANTS: readonly (EncryptVariant & { shipped?: true })[] = [
  { label: 'vxnet encrypted, as the agent sets it: RPS over every CPU', setting: { rps: 'all', notrack: false }, shipped: true },
  { label: 'vxnet encrypted, RPS off', setting: { rps: 'off', notrack: false } },
  { label: 'vxnet encrypted, RPS on one CPU per host', setting: { rps: 'one', notrack: false } },
  { label: 'vxnet encrypted, RPS over every CPU, VXLAN in the tunnel untracked', setting: { rps: 'all', notrack: true } },
  { label: 'vxnet encrypted, RPS off, VXLAN in the tunnel untracked', setting: { rps: 'off', notrack: true } },
  { label: 'vxnet encrypted, RPS over every CPU, its wireguard-go at nice -5', setting: { rps: 'all', notrack: false, nice: -5 } },
];

/** A table of the bench's own (never the agent's), removed at the end. */
export const NOTRACK_TABLE = 'vxbench_notrack';

export function notrackScript(device: string, port: number): string {
  return [
    `table ip ${NOTRACK_TABLE} {`,
    '\tchain pre {',
    '\t\ttype filter hook prerouting priority raw; policy accept;',
    `\t\tiifname "${device}" udp dport ${port} notrack`,
    '\t}',
    '\tchain out {',
    '\t\ttype filter hook output priority raw; policy accept;',
    `\t\toifname "${device}" udp dport ${port} notrack`,
    '\t}',
    '}',
  ].join('\n');
}

export function maskOf(setting: VxnetSetting, hostIndex: number, cpus: number): string {
  if (setting.rps === 'off') return '0';
  if (setting.rps === 'all') return rpsMask(cpus);
  return (1 << (hostIndex % Math.max(1, Math.min(cpus, 31)))).toString(16);
}

/** Puts `setting` on both hosts' tunnel devices. */
export async function applySetting(
  cluster: Cluster,
  hosts: readonly { netns: string; device: string }[],
  setting: VxnetSetting,
  cpus: number,
  port: number,
): Promise<void> {
  for (const [i, host] of hosts.entries()) {
    const mask = maskOf(setting, i, cpus);
    const steer = await cluster.exec(host.netns, ['sh', '-c', `echo ${mask} > /sys/class/net/${host.device}/queues/rx-0/rps_cpus`]);
    if (steer.code !== 0) throw new Error(`RPS ${mask} on ${host.device}: ${steer.stderr}`);
    // the table is replaced whole, or deleted: `table` first makes the delete valid when it does not exist
    const script = [`table ip ${NOTRACK_TABLE}`, `delete table ip ${NOTRACK_TABLE}`, ...(setting.notrack ? [notrackScript(host.device, port)] : [])].join('\n');
    const nft = await cluster.exec(host.netns, ['nft', '-f', '-'], { input: `${script}\n` });
    if (nft.code !== 0) throw new Error(`nft on ${host.netns}: ${nft.stderr}`);
    // nice is per thread: every thread wireguard-go has now (the Go runtime starts them early and keeps them)
    const pid = findWireguardGo(host.device);
    if (pid === undefined) throw new Error(`no wireguard-go serving ${host.device}`);
    for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), setting.nice ?? 0);
  }
}
