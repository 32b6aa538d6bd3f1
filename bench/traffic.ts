/**
 * Container-to-container traffic, shared by both data-plane sections of `npm run bench`: iperf3 with one TCP
 * stream and with several parallel streams (`-P N`), and ping RTT, between two network namespaces given by
 * path (/run/netns/NAME of a simulated host or container, /proc/PID/ns/net of a Docker container). They are
 * entered with nsenter, which changes only the network namespace, so both kinds work alike.
 *
 * Rounds are interleaved: each round measures every path once, in reverse order every other round, so that
 * drift of the shared machine (another job starting or stopping) lands on all paths alike instead of on
 * whichever path happens to come last. The spread of the rounds is reported as the run-to-run noise.
 */
import { spawn } from 'node:child_process';
import { run } from '../src/testkit/processes.ts';
import { fixed, median, spread } from './stats.ts';

export interface TrafficPath {
  name: string;
  /** network namespace paths of the client and the server */
  client: string;
  server: string;
  /** the server's address as the client reaches it */
  target: string;
  /** puts this path's setting in place just before each of its measurements (paths sharing devices, bench/encrypt.ts) */
  prepare?: () => Promise<void>;
}

export interface TrafficOptions {
  rounds: number;
  /** iperf3 duration of each measurement */
  seconds: number;
  /** parallel TCP streams of the multi-stream measurement */
  streams: number;
  log: (line: string) => void;
}

/** Every round's figure, in round order. */
export interface TrafficRounds {
  singleGbps: number[];
  multiGbps: number[];
  /** mean and minimum of each round's pings: the minimum is the path's own cost, least disturbed by load */
  rttMs: number[];
  rttMinMs: number[];
  /**
   * CPU time of both iperf3 processes per Gbit of the single stream (ms): on veth pairs the whole path
   * (bridge, hooks, VXLAN, underlay) runs in their softirq context, so this is the path's cost, and it
   * moves far less with the load of a shared machine than the throughput does
   */
  singleCpuMsPerGbit: number[];
}

export interface TrafficSummary {
  name: string;
  /** medians of the rounds */
  singleGbps: number;
  multiGbps: number;
  rttMs: number;
  rttMinMs: number;
  singleCpuMsPerGbit: number;
  /** (max − min) / median of the rounds */
  singleNoise: number;
  multiNoise: number;
  rttNoise: number;
  rttMinNoise: number;
  singleCpuNoise: number;
}

const IPERF_PORT = '5301';

export async function measureTraffic(paths: readonly TrafficPath[], options: TrafficOptions): Promise<Map<string, TrafficRounds>> {
  const results = new Map(paths.map((p) => [p.name, { singleGbps: [], multiGbps: [], rttMs: [], rttMinMs: [], singleCpuMsPerGbit: [] } as TrafficRounds]));
  for (let round = 0; round < options.rounds; round++) {
    for (const path of round % 2 === 0 ? paths : [...paths].reverse()) {
      const r = results.get(path.name)!;
      await path.prepare?.();
      const single = await iperf(path, options.seconds, 1);
      r.singleGbps.push(single.gbps);
      r.singleCpuMsPerGbit.push(single.cpuMsPerGbit);
      r.multiGbps.push((await iperf(path, options.seconds, options.streams)).gbps);
      const rtt = await pingRtt(path);
      r.rttMs.push(rtt.mean);
      r.rttMinMs.push(rtt.min);
      options.log(
        `  round ${round + 1} ${path.name}: ${fixed(r.singleGbps.at(-1)!, 2)} Gbit/s (1 stream), ` +
          `${fixed(r.multiGbps.at(-1)!, 2)} Gbit/s (${options.streams} streams), ${fixed(r.rttMs.at(-1)! * 1000, 0)} µs (min ${fixed(r.rttMinMs.at(-1)! * 1000, 0)} µs)`,
      );
    }
  }
  return results;
}

export function summariseTraffic(paths: readonly TrafficPath[], results: ReadonlyMap<string, TrafficRounds>): TrafficSummary[] {
  return paths.map((p) => {
    const r = results.get(p.name)!;
    return {
      name: p.name,
      singleGbps: median(r.singleGbps),
      multiGbps: median(r.multiGbps),
      rttMs: median(r.rttMs),
      rttMinMs: median(r.rttMinMs),
      singleCpuMsPerGbit: median(r.singleCpuMsPerGbit),
      singleNoise: spread(r.singleGbps),
      multiNoise: spread(r.multiGbps),
      rttNoise: spread(r.rttMs),
      rttMinNoise: spread(r.rttMinMs),
      singleCpuNoise: spread(r.singleCpuMsPerGbit),
    };
  });
}

/** Half the range of the rounds relative to their median, as "±N%". */
export const noise = (relativeSpread: number): string => `±${fixed(relativeSpread * 50, 0)}%`;

async function iperf(path: TrafficPath, seconds: number, streams: number): Promise<{ gbps: number; cpuMsPerGbit: number }> {
  const server = spawn('nsenter', [`--net=${path.server}`, 'iperf3', '-s', '-1', '-p', IPERF_PORT, '--forceflush'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => server.once('close', () => resolve()));
  let serverOutput = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`iperf3 -s in ${path.server} did not start: ${serverOutput.slice(-300)}`)), 5000);
      const onData = (chunk: Buffer) => {
        serverOutput += chunk.toString();
        if (/listening/i.test(serverOutput)) {
          clearTimeout(timer);
          resolve();
        }
      };
      server.stdout!.on('data', onData);
      server.stderr!.on('data', onData);
      server.once('close', () => reject(new Error(`iperf3 -s in ${path.server} exited: ${serverOutput.slice(-300)}`)));
    });
    const argv = ['nsenter', `--net=${path.client}`, 'iperf3', '-c', path.target, '-p', IPERF_PORT, '-t', String(seconds), '-P', String(streams), '-J'];
    const result = await run(argv, { timeoutMs: (seconds + 15) * 1000 });
    if (result.code !== 0) throw new Error(`iperf3 -P ${streams} to ${path.target} (${path.name}) failed: ${result.stdout.slice(-300)}${result.stderr.slice(-300)}`);
    const json = JSON.parse(result.stdout) as {
      end: { sum_received: { bits_per_second: number }; cpu_utilization_percent?: { host_total: number; remote_total: number } };
    };
    const gbps = json.end.sum_received.bits_per_second / 1e9;
    const cpu = json.end.cpu_utilization_percent;
    // percent of the wall time, per process: (percent / 100) CPU-seconds per second, per Gbit/s
    return { gbps, cpuMsPerGbit: cpu ? ((cpu.host_total + cpu.remote_total) * 10) / gbps : Number.NaN };
  } finally {
    // the next measurement binds the same port, maybe in the same namespace: wait until this server is gone
    server.kill();
    await exited;
  }
}

async function pingRtt(path: TrafficPath): Promise<{ mean: number; min: number }> {
  const result = await run(['nsenter', `--net=${path.client}`, 'ping', '-c', '200', '-i', '0.005', '-q', path.target]);
  const match = /= ([\d.]+)\/([\d.]+)\//.exec(result.stdout);
  if (!match) throw new Error(`ping to ${path.target} (${path.name}) failed: ${result.stdout}${result.stderr}`);
  return { mean: Number(match[2]), min: Number(match[1]) };
}
