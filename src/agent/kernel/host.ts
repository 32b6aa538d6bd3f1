/**
 * Facts about the host the agent needs before its first pass: which interface carries the underlay
 * address (its MTU bounds the overlay MTU; multicast networks need it as the VXLAN `dev`), and whether the
 * tools and kernel features the data plane depends on are there, so that a missing one is one clear
 * sentence at start-up instead of a cryptic batch failure later.
 */
import { messageOf, VxnetError } from '../../core/errors.ts';
import { formatIPv6, parseIPv6 } from '../../core/ipv6.ts';
import { createRunner, type Runner } from './exec.ts';
import { parseLinks } from './read.ts';

/**
 * Pure: every address in an `ip -j addr show` dump with its interface: IPv4, and IPv6 in RFC 5952 text
 * (an IPv6 underlay, docs/architecture.md). Link-local IPv6 addresses are left out: no node registers one.
 */
export function interfaceAddresses(dump: string): { device: string; mtu: number; address: string }[] {
  const mtus = new Map(parseLinks(dump).map((l) => [l.name, l.mtu]));
  const items: unknown = dump.trim() === '' ? [] : JSON.parse(dump);
  if (!Array.isArray(items)) return [];
  const found: { device: string; mtu: number; address: string }[] = [];
  for (const item of items as { ifname?: unknown; addr_info?: unknown }[]) {
    if (typeof item?.ifname !== 'string' || !Array.isArray(item.addr_info)) continue;
    for (const addr of item.addr_info as { family?: unknown; local?: unknown; scope?: unknown }[]) {
      if (typeof addr?.local !== 'string' || (addr.family !== 'inet' && addr.family !== 'inet6')) continue;
      if (addr.family === 'inet6' && addr.scope === 'link') continue;
      const v6 = addr.family === 'inet6' ? parseIPv6(addr.local) : undefined;
      if (addr.family === 'inet6' && v6 === undefined) continue;
      found.push({ device: item.ifname, mtu: mtus.get(item.ifname) ?? 0, address: v6 === undefined ? addr.local : formatIPv6(v6) });
    }
  }
  return found;
}

/** Pure: the interface holding `address` (IPv4, or IPv6 in canonical text) in an `ip -j addr show` dump. */
export function findUnderlay(dump: string, address: string): { device: string; mtu: number } | undefined {
  const hit = interfaceAddresses(dump).find((a) => a.address === address);
  return hit ? { device: hit.device, mtu: hit.mtu } : undefined;
}

/** Finds the interface holding the given IPv4 or IPv6 address in the current network namespace. */
export async function detectUnderlay(address: string, run: Runner = createRunner()): Promise<{ device: string; mtu: number }> {
  const result = await run.run(['ip', '-j', 'addr', 'show']);
  const found = findUnderlay(result.stdout, address);
  if (!found) {
    const held = interfaceAddresses(result.stdout)
      .filter((a) => a.device !== 'lo')
      .map((a) => `${a.address} (${a.device})`);
    throw new VxnetError(
      'invalid_address',
      `no interface in this network namespace holds ${address}; addresses here: ${held.join(', ') || 'none'}.`,
    );
  }
  return found;
}

const TOOLS: ReadonlyArray<{ argv: string[]; name: string; pkg: string }> = [
  { argv: ['ip', '-V'], name: 'ip', pkg: 'iproute2' },
  { argv: ['bridge', '-V'], name: 'bridge', pkg: 'iproute2' },
  { argv: ['nft', '--version'], name: 'nft', pkg: 'nftables' },
  { argv: ['nsenter', '--version'], name: 'nsenter', pkg: 'util-linux' },
  // the entry cache's `ip monitor` runs under setpriv --pdeathsig (exec.ts)
  { argv: ['setpriv', '--version'], name: 'setpriv', pkg: 'util-linux' },
];

/** Throwaway devices, one per kind the data plane creates; names use the owned prefix, so a leftover is pruned. */
const DEVICE_PROBES: ReadonlyArray<{ what: string; module: string; config: string; argv: (pid: number) => string[] }> = [
  {
    what: 'VXLAN devices', module: 'vxlan', config: 'CONFIG_VXLAN',
    argv: (pid) => [`vxnprobe${pid}`.slice(0, 15), 'type', 'vxlan', 'id', '16777215', 'dstport', '4789', 'nolearning'],
  },
  { what: 'bridges', module: 'bridge', config: 'CONFIG_BRIDGE', argv: (pid) => [`vxnpb${pid}`.slice(0, 15), 'type', 'bridge'] },
  {
    what: 'veth pairs', module: 'veth', config: 'CONFIG_VETH',
    argv: (pid) => [`vxnpv${pid}`.slice(0, 15), 'type', 'veth', 'peer', 'name', `vxnpp${pid}`.slice(0, 15)],
  },
];

/**
 * nftables features the table `ip vxnet` needs (nftables.ts), each probed by one transaction that adds a
 * throwaway table and deletes it again: the kernel checks (and loads) every chain type and expression while
 * nothing is ever left behind. The peer filter comes first: without it the agent attaches nothing.
 */
const NFT_PROBES: ReadonlyArray<{ problem: string; family: 'ip' | 'bridge'; body: string[] }> = [
  {
    problem: 'nftables cannot hold the VXLAN peer filter (kernel needs nf_tables with sets and counters)',
    family: 'ip',
    body: [
      'set ports { type inet_service; elements = { 4789 }; }',
      'set peers { type ipv4_addr; elements = { 192.0.2.1 }; }',
      'chain input { type filter hook input priority raw - 10; policy accept; ' +
        'udp dport @ports iifname != "vxn*" ip saddr @peers accept; udp dport @ports counter drop; }',
      'chain forward { type filter hook forward priority filter - 10; policy accept; iifname "vxnb*" oifname != "vxnb*" drop; }',
      'chain vxlan_forward { type filter hook forward priority raw - 10; policy accept; udp dport @ports ip daddr @peers iifname != "eth0" counter drop; }',
    ],
  },
  {
    problem: 'nftables cannot hold the anti-spoofing rules (kernel needs nf_tables for bridges, CONFIG_NF_TABLES_BRIDGE)',
    family: 'bridge',
    body: [
      'set macs { type ifname . ether_addr; elements = { "vxnh0" . 02:00:00:00:00:01 }; }',
      'set ips { type ifname . ipv4_addr; elements = { "vxnh0" . 192.0.2.1 }; }',
      'chain antispoof { type filter hook prerouting priority -300; policy accept; iifname . ether saddr != @macs counter drop; ' +
        'ether type ip iifname . ip saddr != @ips drop; ether type arp iifname . arp saddr ip != @ips drop; }',
    ],
  },
  {
    problem: 'nftables cannot masquerade (kernel needs CONFIG_NFT_NAT and CONFIG_NFT_MASQ)',
    family: 'ip',
    body: ['chain postrouting { type nat hook postrouting priority srcnat; policy accept; ip saddr 192.0.2.0/24 oifname != "vxnb*" masquerade; }'],
  },
];

/** The first line of an nft error without its "/dev/stdin:3:1-20: " position. */
const nftError = (stderr: string, code: number): string =>
  stderr.trim().split('\n')[0]?.replace(/^\S+:\d+:\d+-\d+:\s*/, '') || `exit code ${code}`;

/**
 * Returns one sentence per missing tool or kernel feature; empty when everything is there. The device
 * probes create and delete throwaway devices (`vxnprobe<pid>`, `vxnpb<pid>`, `vxnpv<pid>`), the nftables
 * probes a throwaway table inside one transaction.
 */
export async function preflight(run: Runner = createRunner()): Promise<string[]> {
  const problems = new Set<string>();
  const present = new Set<string>();
  const results = await Promise.all(TOOLS.map((tool) => run.run(tool.argv, { allowFailure: true })));
  TOOLS.forEach((tool, i) => {
    if (results[i]!.code === 127) problems.add(`${tool.name} is missing: install the Debian package ${tool.pkg}.`);
    else present.add(tool.name);
  });
  if (present.has('ip')) {
    for (const probe of DEVICE_PROBES) {
      const argv = probe.argv(process.pid);
      const add = await run.run(['ip', 'link', 'add', ...argv], { allowFailure: true });
      if (add.code === 0) {
        await run.run(['ip', 'link', 'del', argv[0]!], { allowFailure: true });
      } else if (/Unknown device type|not supported|No such file or directory/i.test(add.stderr)) {
        problems.add(`the kernel cannot create ${probe.what}: load the ${probe.module} module (${probe.config}).`);
      } else if (/Operation not permitted/.test(add.stderr)) {
        problems.add('creating network devices is not permitted: run the agent as root (CAP_NET_ADMIN).');
      } else if (!/exists/i.test(add.stderr)) {
        problems.add(`creating a test ${probe.module} device failed: ${add.stderr.trim() || `exit code ${add.code}`}.`);
      }
    }
  }
  if (present.has('nft')) {
    const list = await run.run(['nft', 'list', 'tables'], { allowFailure: true });
    if (list.code !== 0) {
      problems.add(`nftables is not usable: ${list.stderr.trim() || `exit code ${list.code}`} (kernel needs CONFIG_NF_TABLES).`);
    } else {
      const table = `vxnprobe${process.pid}`;
      for (const probe of NFT_PROBES) {
        const script = [`table ${probe.family} ${table} {`, ...probe.body.map((line) => `\t${line}`), '}', `delete table ${probe.family} ${table}`, ''].join('\n');
        const result = await run.run(['nft', '-f', '-'], { input: script, allowFailure: true });
        if (result.code !== 0) problems.add(`${probe.problem}: ${nftError(result.stderr, result.code)}.`);
      }
    }
  }
  return [...problems];
}

/** Docker's values (moby ostweaks_linux.go): room for tens of thousands of neighbours. */
export const NEIGHBOUR_GC_THRESHOLDS: ReadonlyArray<readonly [string, number]> = [
  ['/proc/sys/net/ipv4/neigh/default/gc_thresh3', 65536],
  ['/proc/sys/net/ipv4/neigh/default/gc_thresh2', 49152],
  ['/proc/sys/net/ipv4/neigh/default/gc_thresh1', 8192],
];

/** Raises the neighbour GC thresholds to NEIGHBOUR_GC_THRESHOLDS where they are lower; returns how many it changed. */
export async function raiseNeighbourLimits(run: Runner, log: (line: string) => void, errors: string[]): Promise<number> {
  let changes = 0;
  for (const [path, value] of NEIGHBOUR_GC_THRESHOLDS) {
    try {
      const current = await run.readFile(path);
      if (current === undefined || Number(current.trim()) >= value) continue;
      await run.writeFile(path, `${value}\n`);
      changes++;
      log(`raised ${path} from ${current.trim()} to ${value}`);
    } catch (err) {
      errors.push(`raising ${path} failed: ${messageOf(err)}`);
    }
  }
  return changes;
}
