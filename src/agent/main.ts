/**
 * `vxnet agent`: wires the real pieces together — the manager client, the Linux data plane — after a
 * preflight that names any missing tool or kernel feature.
 */
import { hostname } from 'node:os';
import { ManagerClient } from '../client/client.ts';
import { VxnetError } from '../core/errors.ts';
import { requireIPv4 } from '../core/ipv4.ts';
import { requireName } from '../core/names.ts';
import { Agent } from './agent.ts';
import { detectUnderlay, LinuxDataplane, preflight } from './kernel/linux-dataplane.ts';

export interface RunAgentOptions {
  managerUrl: string;
  token: string;
  advertiseAddress: string;
  name?: string;
  log?: (line: string) => void;
}

export async function runAgent(options: RunAgentOptions, signal: AbortSignal): Promise<void> {
  const log = options.log ?? ((line: string) => console.log(line));
  requireIPv4(options.advertiseAddress, 'advertise address');
  const name = requireName(options.name ?? hostname(), 'node');

  const missing = await preflight();
  if (missing.length > 0) throw new VxnetError('internal', `this host cannot run the agent: ${missing.join(' ')}`);

  const underlay = await detectUnderlay(options.advertiseAddress);
  const client = new ManagerClient({ url: options.managerUrl, token: options.token });
  const agent = new Agent({
    api: client,
    dataplane: new LinuxDataplane({ log }),
    self: { name, address: options.advertiseAddress, underlayDevice: underlay.device },
    underlayMtu: underlay.mtu,
    log,
  });
  await agent.run(signal);
}
