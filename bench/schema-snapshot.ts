/**
 * What checking a watch snapshot against its schema costs (src/core/schema/check.ts): a snapshot of 18,000
 * endpoints on 20 networks and 1,000 nodes, the most an agent of the 1,000-agent scale harness receives,
 * parsed from JSON, then checked by valibot's own `safeParse` and by the compiled check the client uses.
 *
 *   node bench/schema-snapshot.ts [ENDPOINTS]
 */
import * as v from 'valibot';
import { check } from '../src/core/schema/check.ts';
import { WatchMessageSchema } from '../src/core/schema/watch.ts';

const count = Number(process.argv[2] ?? 18_000);
const endpoints = Array.from({ length: count }, (_, i) => ({
  id: i.toString(16).padStart(12, '0'),
  network: `net${i % 20}`,
  node: `sim${i % 1000}`,
  netns: `/run/netns/n1-${i}`,
  ifname: 'eth0',
  ip: `10.${i % 20}.${(i >> 8) & 255}.${i & 255}`,
  prefix: 16,
  gateway: `10.${i % 20}.0.1`,
  mac: '02:78:0a:01:00:00',
  status: 'ready',
  createdAt: '2026-01-01T00:00:00.000Z',
}));
const nodes = Array.from({ length: 1000 }, (_, i) => ({
  name: `sim${i}`,
  address: `10.99.${i >> 8}.${i & 255}`,
  mtu: 1500,
  registeredAt: '2026-01-01T00:00:00.000Z',
}));
const networks = Array.from({ length: 20 }, (_, i) => ({
  name: `net${i}`,
  vni: 4097 + i,
  subnets: [{ cidr: `10.${i}.0.0/16`, gateway: `10.${i}.0.1` }],
  mtu: 1450,
  port: 4789,
  internal: false,
  createdAt: '2026-01-01T00:00:00.000Z',
}));
const line = JSON.stringify({ type: 'snapshot', revision: 9, nodes, networks, endpoints });

function median(label: string, run: () => void): void {
  const times: number[] = [];
  for (let i = 0; i < 21; i++) {
    const started = performance.now();
    run();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  console.log(`${label.padEnd(28)} median ${times[10]!.toFixed(1).padStart(6)} ms   min ${times[0]!.toFixed(1).padStart(6)} ms`);
}

console.log(`snapshot of ${count} endpoints, ${(line.length / 1e6).toFixed(1)} MB`);
const message: unknown = JSON.parse(line);
median('JSON.parse', () => JSON.parse(line));
median('valibot safeParse', () => {
  if (!v.safeParse(WatchMessageSchema, message).success) throw new Error('refused');
});
median('compiled check', () => {
  if (!check(WatchMessageSchema, message, 'watch line').ok) throw new Error('refused');
});
