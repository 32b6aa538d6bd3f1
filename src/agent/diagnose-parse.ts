/**
 * Pure parsers for what `vxnet trace` reads beyond what a reconcile pass reads (read.ts): link counters,
 * the elements of one nftables set, and the drop rules of other people's tables. Tested on outputs captured
 * from iproute2 6.1 and nftables 1.0.6 (test/fixtures/kernel/capture-trace.sh).
 */
import { UNDERLAY6_TABLE } from './kernel/underlay6.ts';
import type { ForeignDrop } from '../core/schema/diagnose.ts';
import { OWNED_NFT_TABLE } from './dataplane.ts';

type Json = Record<string, unknown>;

export interface LinkStats {
  rxPackets: number;
  txPackets: number;
  rxDropped: number;
  txDropped: number;
}

const num = (value: unknown): number => (typeof value === 'number' ? value : 0);

function nftItems(text: string, what: string): Json[] {
  const value: unknown = JSON.parse(text);
  const items = (value as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new Error(`${what}: expected {"nftables": [...]}`);
  return items.filter((item): item is Json => typeof item === 'object' && item !== null);
}

/** `ip -j -s link show` → packet counters by link name. */
export function parseLinkStats(text: string): Map<string, LinkStats> {
  const out = new Map<string, LinkStats>();
  const value: unknown = text.trim() === '' ? [] : JSON.parse(text);
  if (!Array.isArray(value)) throw new Error('ip -j -s link show: expected a JSON array');
  for (const item of value as Json[]) {
    const name = item.ifname;
    const stats = (item.stats64 ?? item.stats) as { rx?: Json; tx?: Json } | undefined;
    if (typeof name !== 'string' || !stats) continue;
    out.set(name, { rxPackets: num(stats.rx?.packets), txPackets: num(stats.tx?.packets), rxDropped: num(stats.rx?.dropped), txDropped: num(stats.tx?.dropped) });
  }
  return out;
}

/** `nft -j list set FAMILY TABLE NAME` → its plain elements as text (addresses, ports); ranges and concatenations are left out. */
export function parseSetElements(text: string): string[] {
  const out: string[] = [];
  for (const item of nftItems(text, 'nft -j list set')) {
    const set = item.set as Json | undefined;
    if (!set || !Array.isArray(set.elem)) continue;
    for (const element of set.elem) if (typeof element === 'string' || typeof element === 'number') out.push(String(element));
  }
  return out;
}

/** Hooks an overlay packet crosses on a host (prerouting/input/forward/output/postrouting, netdev ingress). */
const HOOKS = new Set(['ingress', 'prerouting', 'input', 'forward', 'output', 'postrouting']);

/**
 * `nft -j list ruleset` → every drop or reject in a base chain of a table that is not vxnet's, and every base
 * chain whose policy is drop. Rules of regular chains reached by a jump are not followed: `--probe` finds
 * what they drop by the counters instead.
 */
export function parseForeignDrops(text: string): ForeignDrop[] {
  const items = nftItems(text, 'nft -j list ruleset');
  // table ip6 vxnet_underlay is the allow-list over an IPv6 underlay (kernel/underlay6.ts), vxnet's too
  const ours = (family: unknown, table: unknown) =>
    (table === OWNED_NFT_TABLE && (family === 'ip' || family === 'bridge')) || (table === UNDERLAY6_TABLE && family === 'ip6');
  const hooks = new Map<string, string>();
  const out: ForeignDrop[] = [];
  for (const item of items) {
    const chain = item.chain as Json | undefined;
    if (!chain || ours(chain.family, chain.table) || typeof chain.hook !== 'string' || !HOOKS.has(chain.hook)) continue;
    hooks.set(`${String(chain.family)} ${String(chain.table)} ${String(chain.name)}`, chain.hook);
    if (chain.policy === 'drop') {
      out.push({ family: String(chain.family), table: String(chain.table), chain: String(chain.name), hook: chain.hook, rule: 'policy drop', narrowed: false });
    }
  }
  for (const item of items) {
    const rule = item.rule as Json | undefined;
    if (!rule || !Array.isArray(rule.expr)) continue;
    const hook = hooks.get(`${String(rule.family)} ${String(rule.table)} ${String(rule.chain)}`);
    if (hook === undefined) continue;
    const exprs = rule.expr as Json[];
    if (!exprs.some((e) => 'drop' in e || 'reject' in e)) continue;
    let udpPort: number | undefined;
    let narrowed = false;
    const words: string[] = [];
    let packets: number | undefined;
    for (const e of exprs) {
      if ('match' in e) {
        const match = e.match as Json;
        const left = describeOperand(match.left);
        const right = describeOperand(match.right);
        const op = match.op === '==' || match.op === 'in' ? '' : `${String(match.op)} `;
        words.push(`${left} ${op}${right}`);
        if (left === 'udp dport' && match.op === '==' && typeof match.right === 'number') udpPort = match.right;
        else if (!((left === 'meta l4proto' || left === 'ip protocol') && right === 'udp')) narrowed = true;
      } else if ('counter' in e) {
        words.push('counter');
        packets = num((e.counter as Json | null)?.packets);
      } else if ('drop' in e) words.push('drop');
      else if ('reject' in e) words.push('reject');
      else {
        words.push(Object.keys(e)[0] ?? '?');
        narrowed = true;
      }
    }
    out.push({
      family: String(rule.family),
      table: String(rule.table),
      chain: String(rule.chain),
      hook,
      rule: words.join(' '),
      ...(udpPort !== undefined ? { udpPort } : {}),
      narrowed,
      ...(packets !== undefined ? { packets } : {}),
    });
  }
  return out;
}

/** One side of an nft JSON match in nft's own words, as far as the common forms go. */
function describeOperand(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (typeof value !== 'object' || value === null) return '?';
  const o = value as Json;
  if (o.payload) {
    const p = o.payload as Json;
    return `${String(p.protocol)} ${String(p.field)}`;
  }
  if (o.meta) {
    const key = String((o.meta as Json).key);
    return key === 'iifname' || key === 'oifname' || key === 'iif' || key === 'oif' ? key : `meta ${key}`;
  }
  if (o.prefix) {
    const p = o.prefix as Json;
    return `${String(p.addr)}/${String(p.len)}`;
  }
  if (Array.isArray(o.set)) return `{ ${o.set.map(describeOperand).join(', ')} }`;
  if (Array.isArray(o.range)) return o.range.map(describeOperand).join('-');
  return Object.keys(o)[0] ?? '?';
}
