/**
 * Facts about the host the agent needs before its first pass: which interface carries the underlay
 * address (its MTU bounds the overlay MTU; multicast networks need it as the VXLAN `dev`), and whether the
 * tools and kernel features the data plane depends on are there, so that a missing one is one clear
 * sentence at start-up instead of a cryptic batch failure later.
 */
import { VxnetError } from '../../core/errors.ts';
import { createRunner, type Runner } from './exec.ts';
import { parseLinks } from './read.ts';

/** Pure: the interface holding `address` in an `ip -j addr show` dump. */
export function findUnderlay(dump: string, address: string): { device: string; mtu: number } | undefined {
  const link = parseLinks(dump).find((l) => l.ipv4.some((cidr) => cidr.split('/')[0] === address));
  return link ? { device: link.name, mtu: link.mtu } : undefined;
}

/** Finds the interface holding the given IPv4 address in the current network namespace. */
export async function detectUnderlay(address: string, run: Runner = createRunner()): Promise<{ device: string; mtu: number }> {
  const result = await run.run(['ip', '-j', 'addr', 'show']);
  const found = findUnderlay(result.stdout, address);
  if (!found) {
    const held = parseLinks(result.stdout)
      .filter((l) => l.name !== 'lo')
      .flatMap((l) => l.ipv4.map((cidr) => `${cidr.split('/')[0]} (${l.name})`));
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
];

/**
 * Returns one sentence per missing tool or kernel feature; empty when everything is there. The VXLAN
 * probe creates and deletes a throwaway device `vxnprobe<pid>` (owned prefix, so a leftover is pruned).
 */
export async function preflight(run: Runner = createRunner()): Promise<string[]> {
  const problems: string[] = [];
  const present = new Set<string>();
  const results = await Promise.all(TOOLS.map((tool) => run.run(tool.argv, { allowFailure: true })));
  TOOLS.forEach((tool, i) => {
    if (results[i]!.code === 127) problems.push(`${tool.name} is missing: install the Debian package ${tool.pkg}.`);
    else present.add(tool.name);
  });
  if (present.has('ip')) {
    const name = `vxnprobe${process.pid}`.slice(0, 15);
    const add = await run.run(['ip', 'link', 'add', name, 'type', 'vxlan', 'id', '16777215', 'dstport', '4789', 'nolearning'], {
      allowFailure: true,
    });
    if (add.code === 0) {
      await run.run(['ip', 'link', 'del', name], { allowFailure: true });
    } else if (/Unknown device type|not supported|No such file or directory/i.test(add.stderr)) {
      problems.push('the kernel cannot create VXLAN devices: load the vxlan module (CONFIG_VXLAN).');
    } else if (/Operation not permitted/.test(add.stderr)) {
      problems.push('creating network devices is not permitted: run the agent as root (CAP_NET_ADMIN).');
    } else if (!/exists/i.test(add.stderr)) {
      problems.push(`creating a test VXLAN device failed: ${add.stderr.trim() || `exit code ${add.code}`}.`);
    }
  }
  if (present.has('nft')) {
    const list = await run.run(['nft', 'list', 'tables'], { allowFailure: true });
    if (list.code !== 0) {
      problems.push(`nftables is not usable: ${list.stderr.trim() || `exit code ${list.code}`} (kernel needs CONFIG_NF_TABLES).`);
    }
  }
  return problems;
}
