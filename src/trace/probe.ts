/**
 * `vxnet trace --probe`: where a real packet was seen. The source's agent pings the target from the
 * endpoint's namespace; the counters of the devices on the path, read on both hosts before and after, show
 * how far the requests and the replies got: the first device whose counter grew by less than the number of
 * packets sent is where they were lost. Counters also count other traffic, so a busy device may claim to have
 * seen a probe that it did not; a device that did not count them surely did not see them.
 */
import type { Endpoint } from '../core/model.ts';
import type { DiagnoseReport } from '../core/schema/diagnose.ts';
import { deviceNames } from '../agent/dataplane.ts';
import { portOf } from './judge.ts';

export interface Sighting {
  /** what the counter stands for, e.g. "request entered the VXLAN device" */
  what: string;
  node: string;
  device: string;
  counter: 'rx' | 'tx';
  /** packets counted meanwhile; undefined when the counter could not be read */
  delta?: number;
  seen: boolean | 'unknown';
}

export interface ProbeResult {
  sent: number;
  received: number;
  error?: string;
  sightings: Sighting[];
  /** one sentence: where the packets were lost, or that they made it */
  verdict: string;
  /** VXLAN datagrams the target's allow-list dropped meanwhile */
  allowListDrops?: number;
}

export interface ProbeInput {
  vni: number;
  from: Endpoint;
  to: Endpoint;
  probe: { sent: number; received: number; error?: string };
  sourceBefore: DiagnoseReport;
  sourceAfter: DiagnoseReport;
  /** the target's node, read before and after (absent: the same node, or it could not be read) */
  targetBefore?: DiagnoseReport;
  targetAfter?: DiagnoseReport;
}

export function judgeProbe(input: ProbeInput): ProbeResult {
  const { from, to, probe } = input;
  const vxlan = deviceNames.vxlan(input.vni);
  const vethA = portOf(from);
  const vethB = portOf(to);
  const sameNode = from.node === to.node;
  const a = [input.sourceBefore, input.sourceAfter] as const;
  const b = sameNode ? a : ([input.targetBefore, input.targetAfter] as const);
  type Reports = readonly [DiagnoseReport | undefined, DiagnoseReport | undefined];
  type End = { role: 'source' | 'target'; reports: Reports; veth: string };
  type Step = readonly [what: string, reports: Reports, device: string, counter: 'rx' | 'tx'];
  // The reply retraces the request with the ends swapped. The host end of a veth receives (rx) what the
  // container sends and transmits (tx) what it gets; across nodes the VXLAN devices encapsulate (tx) and
  // decapsulate (rx) in between.
  const leg = (what: 'request' | 'reply', out: End, back: End): Step[] => [
    [`${what} left the ${out.role} container`, out.reports, out.veth, 'rx'],
    ...(sameNode
      ? []
      : ([
          [`${what} was encapsulated by the ${out.role} VXLAN device`, out.reports, vxlan, 'tx'],
          [`${what} was decapsulated by the ${back.role} VXLAN device`, back.reports, vxlan, 'rx'],
        ] satisfies Step[])),
    [`${what} reached the ${back.role} container`, back.reports, back.veth, 'tx'],
  ];
  const source: End = { role: 'source', reports: a, veth: vethA };
  const target: End = { role: 'target', reports: b, veth: vethB };
  const path = [...leg('request', source, target), ...leg('reply', target, source)];
  const sightings: Sighting[] = path.map(([what, [before, after], device, counter]) => {
    const node = after?.node ?? before?.node ?? (what.includes('target') ? to.node : from.node);
    const count = (r: DiagnoseReport | undefined) => {
      const stats = r?.links.find((l) => l.name === device)?.stats;
      return stats === undefined ? undefined : counter === 'rx' ? stats.rxPackets : stats.txPackets;
    };
    const was = count(before);
    const now = count(after);
    if (was === undefined || now === undefined) return { what, node, device, counter, seen: 'unknown' as const };
    const delta = now - was;
    return { what, node, device, counter, delta, seen: delta >= probe.sent };
  });
  const drops =
    input.targetBefore?.firewall.drops !== undefined && input.targetAfter?.firewall.drops !== undefined
      ? input.targetAfter.firewall.drops - input.targetBefore.firewall.drops
      : undefined;
  return {
    sent: probe.sent,
    received: probe.received,
    ...(probe.error !== undefined ? { error: probe.error } : {}),
    sightings,
    verdict: verdictOf(probe, sightings, drops),
    ...(drops !== undefined ? { allowListDrops: drops } : {}),
  };
}

function verdictOf(probe: ProbeInput['probe'], sightings: readonly Sighting[], drops: number | undefined): string {
  if (probe.error !== undefined) return `the probe could not be sent: ${probe.error}`;
  if (probe.sent > 0 && probe.received === probe.sent) return `all ${probe.sent} probes were answered.`;
  const lost = sightings.findIndex((s) => s.seen === false);
  const dropped = drops !== undefined && drops > 0 ? ` (the target's VXLAN allow-list dropped ${drops})` : '';
  if (lost === -1) return `${probe.received} of ${probe.sent} probes were answered; no counter on the path shows where the rest went.`;
  const at = sightings[lost]!;
  const last = lost > 0 ? sightings[lost - 1]! : undefined;
  const after = last ? `after "${last.what}" (${last.device} on ${last.node})` : 'before anything on the path counted them';
  return `${probe.received} of ${probe.sent} probes were answered: lost ${after}, not counted where the ${at.what} (${at.device} ${at.counter} on ${at.node})${dropped}.`;
}
