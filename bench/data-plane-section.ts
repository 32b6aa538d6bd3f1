/**
 * What the data-plane sections of `npm run bench` built on bench/traffic.ts share: their options and result,
 * a cluster with an admin client for the length of the section, and the interleaved rounds over the
 * section's paths with the JSON and the table each such section reports. bench/ipv6.ts and
 * bench/ipv6-underlay.ts use it.
 */
import { ManagerClient } from '../src/client/client.ts';
import { withCluster, type Cluster, type ClusterOptions } from '../src/testkit/cluster.ts';
import { fixed, ratio } from './stats.ts';
import { measureTraffic, noise, summariseTraffic, type TrafficOptions, type TrafficPath, type TrafficSummary } from './traffic.ts';

export type DataPlaneOptions = TrafficOptions;

export interface DataPlaneResult {
  json: Record<string, unknown>;
  markdown: string[];
}

/** Runs `fn` with a new cluster and an admin client over the manager's socket; closes both afterwards. */
export function withAdminClient<T>(options: ClusterOptions, fn: (cluster: Cluster, client: ManagerClient) => Promise<T>): Promise<T> {
  return withCluster(options, async (cluster) => {
    const client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    try {
      return await fn(cluster, client);
    } finally {
      client.close();
    }
  });
}

/** `options.rounds` interleaved rounds over `paths`, their summary, and the section's JSON with the VXLAN paths' MTU. */
export async function measureSection(
  paths: readonly TrafficPath[],
  options: DataPlaneOptions,
  mtu: number,
): Promise<{ summary: TrafficSummary[]; json: Record<string, unknown> }> {
  const rounds = await measureTraffic(paths, options);
  const summary = summariseTraffic(paths, rounds);
  return {
    summary,
    json: { rounds: options.rounds, seconds: options.seconds, streams: options.streams, mtu, paths: summary, raw: Object.fromEntries(rounds) },
  };
}

/**
 * The section's table: each path's single- and multi-stream throughput (to `digits` decimals) and ping RTT,
 * each next to its ratio to `reference`, which the header names.
 */
export function comparisonTable(summary: readonly TrafficSummary[], reference: TrafficSummary, referenceName: string, streams: number, digits: number): string[] {
  const gbps = (value: number, spread: number) => `${fixed(value, digits)} Gbit/s (${noise(spread)})`;
  return [
    `| path | TCP 1 stream | vs ${referenceName} | TCP ${streams} streams | vs ${referenceName} | ping RTT | vs ${referenceName} |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.name} | ${gbps(s.singleGbps, s.singleNoise)} | ${ratio(s.singleGbps, reference.singleGbps)} | ${gbps(s.multiGbps, s.multiNoise)} | ` +
        `${ratio(s.multiGbps, reference.multiGbps)} | ${fixed(s.rttMs * 1000, 0)} µs (${noise(s.rttNoise)}) | ${ratio(s.rttMs, reference.rttMs)} |`,
    ),
  ];
}
