/**
 * What `vxnet capture` does once its command line is understood (capture.ts): read the cluster's names,
 * then decode frames from tcpdump or a pcap file. A module of its own so that the decoders load only for a
 * capture.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { describeRecord, endpointKey, formatFrame, NO_NAMES, type CaptureNames, type CapturedFrame } from '../../capture/describe.ts';
import { PcapStream } from '../../capture/stream.ts';
import { VxnetError } from '../../core/errors.ts';
import { VXLAN_PORT } from '../../core/model.ts';
import { readPcapHeader, pcapRecords, writePcap, PCAP_GLOBAL_HEADER_LENGTH, type PcapRecord } from '../../packet/pcap.ts';
import { UsageError, type CommandContext } from '../command.ts';
import { withClient } from '../context.ts';
import type { CaptureCommand } from './capture.ts';

export async function runCapture(command: CaptureCommand, ctx: CommandContext): Promise<number> {
  const { names, ports } = await lookUpNames(command);
  const vni = networkFilter(command.network, names);
  const shown: PcapRecord[] = [];
  let output: { fd: number; linkType: number } | undefined;
  const show = (record: PcapRecord, linkType: number): boolean => {
    const frame = describeRecord(record, linkType, ports, names);
    if (!frame || (vni !== undefined && frame.vni !== vni)) return false;
    ctx.stdout(`${command.json ? JSON.stringify(frame satisfies CapturedFrame) : formatFrame(frame)}\n`);
    if (command.write !== undefined) {
      output ??= { fd: openSync(command.write, 'w', 0o600), linkType };
      if (shown.length === 0) writeSync(output.fd, writePcap([], { linkType }));
      writeSync(output.fd, writePcap([record], { linkType }).subarray(PCAP_GLOBAL_HEADER_LENGTH));
    }
    shown.push(record);
    return true;
  };
  try {
    if (command.read !== undefined) {
      const bytes = readPcapFile(command.read);
      const { linkType } = readPcapHeader(bytes);
      for (const record of pcapRecords(bytes)) {
        if (show(record, linkType) && shown.length === command.count) break;
      }
    } else {
      await live(command, ports, ctx, show, () => shown.length);
    }
  } finally {
    if (output) closeSync(output.fd);
  }
  return 0;
}

/** The cluster's names and VXLAN ports, when a token is configured; otherwise none and the default port. */
async function lookUpNames(command: CaptureCommand): Promise<{ names: CaptureNames; ports: number[] }> {
  if (!command.connection) return { names: NO_NAMES, ports: [VXLAN_PORT] };
  const [networks, endpoints] = await withClient(command.connection, (client) => Promise.all([client.listNetworks(), client.listEndpoints()]));
  const vniOf = new Map(networks.map((n) => [n.name, n.vni]));
  const label = (ep: (typeof endpoints)[number]) => ep.container ?? (ep.netns !== undefined ? basename(ep.netns) : ep.id);
  return {
    names: {
      networks: new Map(networks.map((n) => [n.vni, n.name])),
      endpoints: new Map(endpoints.flatMap((ep) => (vniOf.has(ep.network) ? [[endpointKey(vniOf.get(ep.network)!, ep.ip), label(ep)] as const] : []))),
    },
    ports: [...new Set([VXLAN_PORT, ...networks.map((n) => n.port)])],
  };
}

/** The VNI --network names, if given. */
function networkFilter(network: string | undefined, names: CaptureNames): number | undefined {
  if (network === undefined) return undefined;
  if (/^[0-9]+$/.test(network)) return Number(network);
  for (const [vni, name] of names.networks) if (name === network) return vni;
  if (names === NO_NAMES) throw new UsageError(`--network ${network}: a network name needs the manager (--manager and a token); give its VNI instead.`);
  throw new VxnetError('not_found', `network ${network} does not exist.`);
}

function readPcapFile(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new VxnetError('bad_request', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
  }
}

/** Captures with tcpdump until `count` frames were shown, tcpdump ends, or the command is interrupted. */
async function live(
  command: CaptureCommand,
  ports: readonly number[],
  ctx: CommandContext,
  show: (record: PcapRecord, linkType: number) => boolean,
  shownCount: () => number,
): Promise<void> {
  const filter = ports.map((port) => `udp port ${port}`).join(' or ');
  // -U: a record as soon as it is captured; -s 0: whole frames; -n: no name lookups
  // node:child_process (with node:net and node:dgram) is taken here, not imported: only a live capture
  // spawns anything, and a --read of a file needs none of them.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const tcpdump = spawn('tcpdump', ['-i', command.interface, '-U', '-n', '-s', '0', '-w', '-', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stream = new PcapStream();
  let stderr = '';
  let stopped = false;
  const stop = () => {
    stopped = true;
    tcpdump.kill('SIGTERM');
  };
  ctx.signal.addEventListener('abort', stop, { once: true });
  tcpdump.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  tcpdump.stdout.on('data', (chunk: Buffer) => {
    if (stopped) return;
    for (const record of stream.push(chunk)) {
      if (show(record, stream.header!.linkType) && shownCount() === command.count) return stop();
    }
  });
  const exit = await new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((resolve) => {
    tcpdump.on('error', (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
    tcpdump.on('close', (code) => resolve({ code }));
  });
  ctx.signal.removeEventListener('abort', stop);
  if (exit.error?.code === 'ENOENT') throw new VxnetError('bad_request', 'vxnet capture needs tcpdump: apt-get install tcpdump.');
  if (exit.error) throw new VxnetError('internal', `tcpdump could not be started: ${exit.error.message}.`);
  if (!stopped && exit.code !== 0) {
    const reason = stderr.split('\n').find((line) => /error|No such device|permission/i.test(line)) ?? stderr.trim().split('\n').at(-1) ?? '';
    throw new VxnetError('bad_request', `capturing on ${command.interface} failed: ${reason.replace(/^tcpdump: /, '')}.`.replace(/\.\.$/, '.'));
  }
}
