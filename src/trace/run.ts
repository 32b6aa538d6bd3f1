/**
 * The I/O of `vxnet trace` (src/cli/commands/trace.ts): the manager's view of the network, then both hosts'
 * kernels read through their agents, in parallel; with --probe, the target read again after the source's
 * agent has pinged. Everything is judged by the pure functions of judge.ts and probe.ts.
 */
import type { ManagerClient } from '../client/client.ts';
import type { DiagnoseReport, DiagnoseRequest } from '../core/schema/diagnose.ts';
import { messageOf } from '../core/errors.ts';
import type { Endpoint } from '../core/model.ts';
import { endpointIn, type TraceCommand } from '../cli/commands/trace.ts';
import { judgeTrace, type Reading, type TraceResult } from './judge.ts';
import { judgeProbe, type ProbeResult } from './probe.ts';

export interface TraceAnswer {
  trace: TraceResult;
  probe?: ProbeResult;
}

export async function runTrace(client: ManagerClient, command: TraceCommand, signal: AbortSignal): Promise<TraceAnswer> {
  const [network, nodes] = await Promise.all([client.inspectNetwork(command.network, signal), client.listNodes(signal)]);
  const endpoints = network.endpoints;
  const from = endpointIn(endpoints, network.name, command.from, '--from');
  const toEndpoint = 'endpoint' in command.to ? endpointIn(endpoints, network.name, command.to.endpoint, '--to') : undefined;
  const to: Endpoint | { ip: string } = toEndpoint ?? { ip: (command.to as { ip: string }).ip };
  const target: Endpoint | undefined = toEndpoint ?? endpoints.find((e) => e.ip === to.ip);
  const about = [from, ...(target ? [target] : [])];
  const request: DiagnoseRequest = { network: network.name, macs: about.map((e) => e.mac), ips: about.map((e) => e.ip) };
  
  const read = async (node: string, req: DiagnoseRequest): Promise<Reading> => {
    try {
      return { report: await client.diagnose(node, req, command.timeoutSeconds, signal) };
    } catch (err) {
      if (signal.aborted) throw err;
      return { error: messageOf(err) };
    }
  };
  const remote = target !== undefined && target.node !== from.node ? target.node : undefined;
  const [source, targetReading] = await Promise.all([read(from.node, request), remote !== undefined ? read(remote, request) : undefined]);
  const trace = judgeTrace({ network, endpoints, nodes, from, to, source, ...(targetReading ? { target: targetReading } : {}) });
  if (command.probe === undefined) return { trace };
  const notSent = (error: string): TraceAnswer => ({ trace, probe: { sent: 0, received: 0, error, sightings: [], verdict: `the probe could not be sent: ${error}` } });
  if (!target) return notSent(`no endpoint of network ${network.name} has ${to.ip}, so no counter on the path can see a probe.`);
  if (!('report' in source)) return notSent(`the agent of ${from.node} did not answer.`);

  const probed = await read(from.node, { ...request, probe: { endpoint: from.id, to: target.ip, count: command.probe } });
  const after = remote !== undefined && targetReading && 'report' in targetReading ? await read(remote, request) : undefined;
  const report = (r: Reading | undefined): DiagnoseReport | undefined => (r && 'report' in r ? r.report : undefined);
  const sourceAfter = report(probed);
  if (!sourceAfter) return notSent('error' in probed ? probed.error : 'no answer');
  const targetBefore = report(targetReading);
  const targetAfter = report(after);
  const probe = judgeProbe({
    vni: network.vni,
    from,
    to: target,
    probe: sourceAfter.probe ?? { sent: 0, received: 0, error: 'the agent did not run the probe' },
    sourceBefore: source.report,
    sourceAfter,
    ...(targetBefore ? { targetBefore } : {}),
    ...(targetAfter ? { targetAfter } : {}),
  });
  return { trace, probe };
}
