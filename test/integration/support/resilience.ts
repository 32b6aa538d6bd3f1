/**
 * Continuous traffic for the resilience tests, and a readout of the peer entries vxnet programs.
 *
 * Traffic is two independent probes between two containers, both running for a fixed time:
 * - `ping -i 0.01`: one echo every 10 ms; any packet lost while something is restarted shows up in the
 *   summary line ("N packets transmitted, M received");
 * - a TCP stream: the client writes a known byte pattern (4 KiB every 5 ms), the server echoes it, the client
 *   checks every byte that comes back and reports what it sent and got, the longest pause between two echoes
 *   (a retransmission timeout would show as >= 200 ms) and any socket error (a reset is ECONNRESET).
 */
import assert from 'node:assert/strict';
import type { ChildProcessHandle, Cluster, SimHost } from '../../../src/testkit/cluster.ts';
import { listNetns } from '../../../src/testkit/netns.ts';
import { attachWithCli, cliOk } from './setup.ts';

// one definition, the kit's; the resilience tests import it from here with the rest of their support
export { sleep } from '../../../src/testkit/processes.ts';

export const TCP_STREAM_SERVER = `
const net = require('node:net');
const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('error', (e) => console.log('server socket error ' + (e.code || e.message)));
  s.pipe(s);
});
server.listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening'));
`;

export const TCP_STREAM_CLIENT = `
const net = require('node:net');
const [host, port, durationText] = process.argv.slice(1);
const duration = Number(durationText);
const CHUNK = 4096;
let sent = 0, received = 0, mismatch = 0, maxGapMs = 0, last = 0, error = null, done = false;
const pattern = (offset, n) => { const b = Buffer.allocUnsafe(n); for (let i = 0; i < n; i++) b[i] = (offset + i) % 251; return b; };
const socket = net.connect({ host, port: Number(port) });
socket.setNoDelay(true);
socket.on('connect', () => {
  console.log('connected');
  const start = Date.now();
  last = start;
  const timer = setInterval(() => {
    if (Date.now() - start >= duration) { clearInterval(timer); socket.end(); return; }
    socket.write(pattern(sent, CHUNK));
    sent += CHUNK;
  }, 5);
});
socket.on('data', (d) => {
  const now = Date.now();
  maxGapMs = Math.max(maxGapMs, now - last);
  last = now;
  for (let i = 0; i < d.length; i++) if (d[i] !== (received + i) % 251) { mismatch++; break; }
  received += d.length;
});
const finish = () => {
  if (done) return;
  done = true;
  console.log('result ' + JSON.stringify({ sent, received, mismatch, maxGapMs, error }));
  process.exit(error || mismatch || sent !== received ? 1 : 0);
};
socket.on('end', finish);
socket.on('error', (e) => { error = e.code || e.message; finish(); });
`;

export interface StreamResult {
  sent: number;
  received: number;
  mismatch: number;
  maxGapMs: number;
  error: string | null;
}

export interface TrafficResult {
  ping: { transmitted: number; received: number; lost: number; summary: string; endedAt: number };
  stream: StreamResult;
}

export interface Traffic {
  /** waits until both probes have run their course */
  result(): Promise<TrafficResult>;
}

/** Network blue with container c1 on host1 and c3 (192.168.1.3) on host2, made with the CLI: namespaces and c3's address. */
export async function blueAcrossTwoHosts(cluster: Cluster): Promise<{ c1: string; c3: string; c3ip: string }> {
  await cliOk(cluster, ['network', 'create', 'blue', '--vni', '1000', '--subnet', '192.168.1.0/24']);
  const attached = await attachWithCli(cluster, [['c1', 'host1', 'blue'], ['c3', 'host2', 'blue']]);
  assert.equal(attached.c3!.ip, '192.168.1.3');
  return { c1: attached.c1!.netns, c3: attached.c3!.netns, c3ip: attached.c3!.ip };
}

/** Starts a 10 ms ping and a TCP stream from `from` to `toIp` (a server is started in `toNetns`), for `durationMs`. */
export async function startTraffic(
  cluster: Cluster,
  from: string,
  toNetns: string,
  toIp: string,
  durationMs: number,
  port = 7100,
): Promise<Traffic> {
  const server = cluster.spawn(toNetns, [process.execPath, '-e', TCP_STREAM_SERVER, String(port)], { label: 'stream server' });
  await server.waitFor(/listening/, 5000);
  // ping -i 0.01 sends every ~16 ms on these machines (timer granularity), not every 10 ms.
  const count = Math.round(durationMs / 16);
  const ping = cluster.spawn(from, ['ping', '-i', '0.01', '-c', String(count), '-q', toIp], { label: 'ping' });
  const client = cluster.spawn(from, [process.execPath, '-e', TCP_STREAM_CLIENT, toIp, String(port), String(durationMs)], {
    label: 'stream client',
  });
  await client.waitFor(/connected/, 5000);
  return {
    async result() {
      let endedAt = 0;
      const [, clientExit] = await Promise.all([ping.exited.then(() => (endedAt = Date.now())), client.exited]);
      await server.stop('SIGKILL');
      return { ping: { ...pingSummary(ping), endedAt }, stream: streamResult(client, clientExit.code) };
    },
  };
}

/**
 * What the resilience tests prove of their traffic: it is reported (as test diagnostics), and not one ping
 * was lost, the TCP stream saw no reset or other error, and every byte came back intact.
 */
export function assertNoLoss(t: { diagnostic(message: string): void }, { ping, stream }: TrafficResult): void {
  t.diagnostic(`ping -i 0.01: ${ping.transmitted} sent, ${ping.received} received, ${ping.lost} lost (${ping.summary})`);
  t.diagnostic(`TCP stream: ${stream.sent} bytes sent, ${stream.received} echoed, longest pause ${stream.maxGapMs} ms, error: ${stream.error ?? 'none'}`);
  assert.equal(ping.lost, 0, `pings lost: ${ping.summary}`);
  assert.equal(stream.error, null, 'no TCP reset or other socket error');
  assert.equal(stream.mismatch, 0, 'every echoed byte is right');
  assert.equal(stream.received, stream.sent, 'every byte sent came back');
}

function pingSummary(ping: ChildProcessHandle): Omit<TrafficResult['ping'], 'endedAt'> {
  const summary = ping.output();
  const match = /(\d+) packets transmitted, (\d+) received/.exec(summary);
  if (!match) throw new Error(`ping printed no summary:\n${summary}`);
  const transmitted = Number(match[1]);
  const received = Number(match[2]);
  return { transmitted, received, lost: transmitted - received, summary: summary.split('\n').filter((l) => /packets|rtt/.test(l)).join('; ') };
}

function streamResult(client: ChildProcessHandle, code: number | null): StreamResult {
  const line = /result (\{.*\})/.exec(client.output());
  if (!line) throw new Error(`the TCP stream client ended without a result (exit ${code}):\n${client.output()}`);
  return JSON.parse(line[1]!) as StreamResult;
}

/** Permanent FDB and neighbour entries on the vxnet VXLAN devices of a host, as sorted lines. */
export async function peerEntries(cluster: Cluster, host: SimHost): Promise<{ fdb: string[]; neigh: string[] }> {
  // the VXLAN devices are in the networks' namespaces (the agent's --netns-prefix HOST-n)
  const spaces = listNetns().filter((name) => name.startsWith(`${host.netns}-n`));
  const read = async (argv: string[]) => (await Promise.all(spaces.map((ns) => cluster.exec(ns, argv)))).flatMap((r) => JSON.parse(r.stdout || '[]') as unknown[]);
  const [fdb, neigh] = await Promise.all([read(['bridge', '-j', 'fdb', 'show']), read(['ip', '-j', 'neigh', 'show', 'nud', 'permanent'])]);
  const fdbEntries = (fdb as { mac: string; ifname: string; dst?: string }[])
    .filter((e) => e.ifname?.startsWith('vxnv') && e.dst !== undefined)
    .map((e) => `${e.ifname} ${e.mac} dst ${e.dst}`);
  const neighEntries = (neigh as { dst: string; dev: string; lladdr?: string }[])
    .filter((e) => e.dev?.startsWith('vxnv'))
    .map((e) => `${e.dev} ${e.dst} ${e.lladdr ?? ''}`);
  return { fdb: fdbEntries.sort(), neigh: neighEntries.sort() };
}

/** The lines of a daemon's output (all incarnations kept by the kit) that match `pattern`. */
export function logLines(cluster: Cluster, label: string, pattern: RegExp): string[] {
  return (cluster.daemon(label)?.output() ?? '').split('\n').filter((line) => pattern.test(line));
}
