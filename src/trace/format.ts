/** `vxnet trace` in words: one line per hop, then where the packet would stop and what the probe saw. */
import type { TraceResult } from './judge.ts';
import type { ProbeResult } from './probe.ts';

const MARK = { ok: 'ok', fail: 'FAIL', warn: 'warn', unknown: '?' } as const;

export function formatTrace(trace: TraceResult, probe?: ProbeResult): string {
  const to = trace.to.endpoint ? `${trace.to.ip} (endpoint ${trace.to.endpoint} on ${trace.to.node})` : trace.to.ip;
  const lines = [`trace on network ${trace.network}: ${trace.from.ip} (endpoint ${trace.from.endpoint} on ${trace.from.node}) → ${to}`, ''];
  const hopWidth = Math.max(...trace.hops.map((h) => h.hop.length), 3);
  const nodeWidth = Math.max(...trace.hops.map((h) => h.node.length), 4);
  trace.hops.forEach((h, i) => {
    lines.push(`${String(i + 1).padStart(2)}. ${MARK[h.status].padEnd(4)} ${h.hop.padEnd(hopWidth)} ${h.node.padEnd(nodeWidth)} ${h.detail}`);
  });
  lines.push('');
  lines.push(trace.stop ? `stops at ${trace.stop.hop} on ${trace.stop.node}: ${trace.stop.detail}` : 'path ok: no hop would stop the packet.');
  if (probe) {
    lines.push('', `probe: ${probe.sent} sent, ${probe.received} answered`);
    for (const s of probe.sightings) {
      const seen = s.seen === 'unknown' ? '?   ' : s.seen ? 'seen' : 'MISS';
      lines.push(`  ${seen} ${s.what} (${s.device} ${s.counter} on ${s.node}${s.delta !== undefined ? `, +${s.delta}` : ''})`);
    }
    lines.push(`  ${probe.verdict}`);
  }
  return `${lines.join('\n')}\n`;
}
