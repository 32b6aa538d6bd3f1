/**
 * The control-plane scale report inside `npm run bench`'s report. That harness (`npm run bench:scale`,
 * bench/scale/run.ts) runs about 7 minutes on every CPU, so the bench includes its latest written report
 * (bench/results/NAME.{md,json}) instead of starting it, and says when that report was made.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface ScaleReport {
  markdown: string[];
  json: Record<string, unknown>;
}

type Json = any;

/** The headline figures of a scale report, each one the harness's own (absent ones are left out). */
export function scaleSummary(r: Json): Record<string, unknown> {
  const fanout: Json[] = Array.isArray(r.fanout) ? r.fanout : [];
  return {
    date: r.date,
    label: r.label || undefined,
    commit: r.machine?.commit,
    topology: r.topology && { hosts: r.topology.hosts, networks: r.topology.networks, endpoints: r.topology.endpoints },
    changeToEveryAgentMs: r.churn?.untilEveryAgentMs,
    changesPerSecond: r.churn?.rate,
    messagesPerInterestedHost: r.churn?.messagesPerInterestedHost,
    messagesPerHostByNetworkSize: fanout.map((s) => ({ hosts: s.hosts, messagesPerHost: s.messagesPerChange / s.hosts })),
    managerPeakRssMiB: r.manager?.peakRssMiB,
    agentHeapBytesPerRemoteEndpoint: r.newcomer?.heapBytesPerPeer,
    agentRssBytesPerRemoteEndpoint: r.newcomer?.rssBytesPerPeer,
    newAgentSyncMs: r.newcomer?.syncMs && { endpoints: r.newcomer.remoteEndpoints, ...r.newcomer.syncMs },
    agentsWithExpectedPeers: r.verify && `${r.verify.checked - r.verify.mismatched} of ${r.verify.checked}`,
  };
}

/** Reads bench/results/NAME.{md,json}; undefined when the markdown is not there. */
export async function loadScaleReport(resultsDir: string, name: string): Promise<ScaleReport | undefined> {
  const mdPath = join(resultsDir, `${name}.md`);
  const jsonPath = join(resultsDir, `${name}.json`);
  let md: string;
  try {
    md = await readFile(mdPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let full: Json;
  try {
    full = JSON.parse(await readFile(jsonPath, 'utf8'));
  } catch {
    full = undefined; // a report without its JSON still has its tables; its date then comes from the file
  }
  const date: string = typeof full?.date === 'string' ? full.date : (await stat(mdPath)).mtime.toISOString();
  const source = `bench/results/${name}.md`;
  const commit = full?.machine?.commit ? `, commit ${full.machine.commit}` : '';
  const markdown = [
    `Produced by \`npm run bench:scale\` (bench/scale/run.ts, about 7 minutes on all CPUs), not by this run: ` +
      `the report of ${date.slice(0, 16).replace('T', ' ')} UTC${commit}, read from ${source} ` +
      '(`npm run bench -- --with-scale` runs it first).',
    '',
    ...md.trimEnd().split('\n'),
    '',
  ];
  return { markdown, json: { source: `bench/results/${name}.json`, ...(full ? scaleSummary(full) : { date }) } };
}
