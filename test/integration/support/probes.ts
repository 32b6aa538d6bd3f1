/**
 * Shared helpers for the end-to-end tests: packet captures decoded with vxnet's own codecs, reachability
 * probes and a listing of every kernel object vxnet owns on a simulated host.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster, SimHost } from '../../../src/testkit/cluster.ts';
import { readPcap } from '../../../src/packet/pcap.ts';

/**
 * Captures on `device` inside `netns` while `traffic` runs; returns the raw frames. Immediate mode matters:
 * without it libpcap hands packets over in blocks once a second, and a short capture ends before any arrive.
 */
export async function capture(
  cluster: Cluster,
  netns: string,
  device: string,
  filter: string[],
  traffic: () => Promise<unknown>,
): Promise<Uint8Array[]> {
  const file = join(cluster.tmpDir, `capture-${Date.now()}-${Math.random().toString(36).slice(2, 7)}.pcap`);
  const tcpdump = cluster.spawn(netns, ['tcpdump', '-i', device, '-n', '--immediate-mode', '-U', '-w', file, ...filter], { label: 'tcpdump' });
  await tcpdump.waitFor(/listening on/, 5000);
  try {
    await traffic();
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    await tcpdump.stop('SIGINT');
  }
  const { records } = readPcap(await readFile(file));
  return records.map((r) => r.data);
}

export async function pings(cluster: Cluster, netns: string, address: string, extra: string[] = []): Promise<boolean> {
  const result = await cluster.exec(netns, ['ping', '-c', '2', '-i', '0.2', '-W', '1', '-q', ...extra, address]);
  return result.code === 0;
}

/**
 * Names of links vxnet owns on a host, plus whether its nftables table holds rules for networks. The VXLAN
 * peer filter (chains vxlan_input and vxlan_forward) stays while an agent has a view of the cluster, networks
 * or not, so a table holding only that is not a leftover of any network (security-vxlan-filter.test.ts checks it).
 */
export async function ownedKernelObjects(cluster: Cluster, host: SimHost): Promise<{ links: string[]; nftTable: boolean }> {
  const links = await cluster.exec(host.netns, ['ip', '-j', 'link', 'show']);
  const names = (JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('vxn'));
  const table = await cluster.exec(host.netns, ['nft', '-j', 'list', 'table', 'ip', 'vxnet']);
  const chains = table.code === 0
    ? (JSON.parse(table.stdout) as { nftables: { chain?: { name: string } }[] }).nftables.flatMap((item) => (item.chain ? [item.chain.name] : []))
    : [];
  return { links: names.sort(), nftTable: chains.some((name) => name !== 'vxlan_input' && name !== 'vxlan_forward') };
}

export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A one-connection TCP echo server inside a namespace, and a client that checks the echo. */
export const TCP_ECHO_SERVER = `
const net = require('node:net');
net.createServer((s) => s.pipe(s)).listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening'));
`;
/** The same on every address, IPv6 included (a dual-stack socket), for IPv6 networks. */
export const TCP6_ECHO_SERVER = `
const net = require('node:net');
net.createServer((s) => s.pipe(s)).listen(Number(process.argv[1]), '::', () => console.log('listening'));
`;
export const TCP_ECHO_CLIENT = `
const net = require('node:net');
const [host, port, text] = process.argv.slice(1);
const socket = net.connect({ host, port: Number(port), timeout: 3000 }, () => socket.end(text));
let echoed = '';
socket.on('data', (d) => (echoed += d));
socket.on('end', () => { console.log(echoed); process.exit(echoed === text ? 0 : 1); });
socket.on('timeout', () => { console.error('timeout'); process.exit(2); });
socket.on('error', (e) => { console.error(e.message); process.exit(3); });
`;

/**
 * Runs a 10 ms ping of 400 packets from `netns` to `address` with `during` in the middle (300 ms after it
 * started), and asserts that not one packet was lost: the fail-static tests' measure.
 */
export async function noPacketLostDuring(cluster: Cluster, netns: string, address: string, during: () => Promise<void>, label = 'ping'): Promise<void> {
  const ping = cluster.spawn(netns, ['ping', '-i', '0.01', '-c', '400', '-W', '1', '-q', address], { label });
  await new Promise((resolve) => setTimeout(resolve, 300));
  await during();
  const exit = await ping.exited;
  const summary = ping.output();
  const match = /(\d+) packets transmitted, (\d+) received/.exec(summary);
  assert.ok(match, summary);
  assert.equal(match[2], match[1], `packets lost: ${summary}`);
  assert.equal(exit.code, 0);
}
