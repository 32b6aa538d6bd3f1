/**
 * `vxnet trace NET --from ENDPOINT --to ENDPOINT|IP [--probe] [--json]`: where a packet between two
 * endpoints would stop, read from the kernels of both hosts through their agents (the manager relays the
 * request down each agent's watch stream: src/manager/watch-stream.ts). The judgement is pure
 * (src/trace/judge.ts); with --probe the source's agent sends real pings and the counters on the path show
 * where they were lost (src/trace/probe.ts). Exit status 0 when no hop fails, 1 when one does, like ping.
 */
import { VxnetError } from '../../core/errors.ts';
import type { Endpoint } from '../../core/model.ts';
import { connection, has, integer, required, UsageError, type CommandModule, type Connection } from '../command.ts';
import { parseIPv4 } from '../../core/ipv4.ts';

export const DEFAULT_PROBE_COUNT = 3;

export interface TraceCommand {
  kind: 'trace';
  connection: Connection;
  json: boolean;
  network: string;
  from: string;
  /** an endpoint id, or an IPv4 address */
  to: { endpoint: string } | { ip: string };
  /** packets to send with --probe; absent: no probe */
  probe?: number;
  /** seconds each agent has to answer */
  timeoutSeconds?: number;
}

export const trace: CommandModule<TraceCommand> = {
  path: 'trace',
  summary: 'walk the path between two endpoints on both hosts\' kernels and say where a packet would stop',
  args: ['NETWORK'],
  synopsis: 'NETWORK --from ENDPOINT_ID --to ENDPOINT_ID|IP [--probe] [--count N] [--timeout SECONDS]',
  flags: [
    { name: 'from', kind: 'string', value: 'ENDPOINT_ID', help: 'the endpoint the packet leaves from' },
    { name: 'to', kind: 'string', value: 'ENDPOINT_ID|IP', help: 'the endpoint (or an address on the network) it goes to' },
    { name: 'probe', kind: 'boolean', help: 'also send real pings from the source endpoint and report where they were seen' },
    { name: 'count', kind: 'integer', value: 'N', help: `pings to send with --probe (default: ${DEFAULT_PROBE_COUNT}, at most 20)` },
    { name: 'timeout', kind: 'integer', value: 'SECONDS', help: 'how long each agent has to answer (default: 5)' },
  ],
  connection: true,
  json: true,
  build(p) {
    const from = required(p, 'from');
    const to = required(p, 'to');
    const count = integer(p, 'count');
    const timeout = integer(p, 'timeout');
    if (count !== undefined && !has(p, 'probe')) throw new UsageError('--count goes with --probe.');
    if (count !== undefined && (count < 1 || count > 20)) throw new UsageError(`--count must be from 1 to 20, not ${count}.`);
    if (timeout !== undefined && (timeout < 1 || timeout > 60)) throw new UsageError(`--timeout must be from 1 to 60 seconds, not ${timeout}.`);
    return {
      kind: 'trace',
      connection: connection(p),
      json: has(p, 'json'),
      network: p.positionals[0]!,
      from,
      to: parseIPv4(to) !== undefined ? { ip: to } : { endpoint: to },
      ...(has(p, 'probe') ? { probe: count ?? DEFAULT_PROBE_COUNT } : {}),
      ...(timeout !== undefined ? { timeoutSeconds: timeout } : {}),
    };
  },
  async run(command, ctx) {
    const { runTrace } = await import('../../trace/run.ts');
    const { withClient } = await import('../context.ts');
    const { formatJson } = await import('../format.ts');
    const { formatTrace } = await import('../../trace/format.ts');
    const answer = await withClient(command.connection, (client) => runTrace(client, command, ctx.signal));
    ctx.stdout(command.json ? formatJson(answer) : formatTrace(answer.trace, answer.probe));
    return answer.trace.ok ? 0 : 1;
  },
};

/** The endpoint `id` of `network` among `endpoints`, or a not-found error in one sentence. */
export function endpointIn(endpoints: readonly Endpoint[], network: string, id: string, flag: string): Endpoint {
  const found = endpoints.find((e) => e.id === id);
  if (!found) throw new VxnetError('endpoint_not_found', `${flag}: endpoint ${id} does not exist on network ${network}.`);
  return found;
}
