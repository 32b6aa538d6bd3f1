/**
 * `vxnet capture`: the VXLAN frames on this host's underlay, one line each, decoded with vxnet's own codecs
 * (src/capture/describe.ts), with the network of each VNI and the endpoint of each inner address when the
 * manager can be asked (a token is configured). Live from `tcpdump -w -` (it holds the capture privileges
 * and BPF; vxnet only reads its pcap stream), or from a pcap file with --read; --write keeps the frames
 * shown as a pcap file Wireshark opens.
 */
import { connection, connectionOf, ENV_MANAGER, has, integer, one, UsageError, type CommandModule, type Connection } from '../command.ts';

export interface CaptureCommand {
  kind: 'capture';
  /** the manager to ask for names, when one and a token are configured (a capture needs neither) */
  connection?: Connection;
  interface: string;
  /** a network name, or a VNI */
  network?: string;
  count?: number;
  read?: string;
  write?: string;
  json: boolean;
}

export const capture: CommandModule<CaptureCommand> = {
  path: 'capture',
  summary: "show the VXLAN frames on this host's underlay, decoded, with network and endpoint names",
  args: [],
  synopsis: '[--interface IF] [--network NET] [--count N] [--read FILE.pcap] [--write FILE]',
  flags: [
    { name: 'interface', kind: 'string', value: 'IF', help: 'where to capture (default: any)' },
    { name: 'network', kind: 'string', value: 'NET', help: 'only this network (a name needs the manager; a VNI does not)' },
    { name: 'count', kind: 'integer', value: 'N', help: 'stop after N frames' },
    { name: 'read', kind: 'string', value: 'FILE', help: 'decode a pcap file instead of capturing' },
    { name: 'write', kind: 'string', value: 'FILE', help: 'also write the frames shown to FILE (pcap, for Wireshark)' },
  ],
  connection: true,
  json: true,

  build(p) {
    const count = integer(p, 'count');
    if (count !== undefined && count < 1) throw new UsageError('--count must be at least 1.');
    const read = one(p, 'read');
    const iface = one(p, 'interface');
    if (read !== undefined && iface !== undefined) throw new UsageError('--read decodes a file: it takes no --interface.');
    const command: CaptureCommand = { kind: 'capture', interface: iface ?? 'any', json: has(p, 'json') };
    if (one(p, 'manager') !== undefined || (p.env[ENV_MANAGER] ?? '') !== '') {
      const configured = connectionOf(p);
      if (configured.token !== undefined || configured.tokenFile !== undefined) command.connection = connection(p);
    }
    for (const [key, value] of [['network', one(p, 'network')], ['read', read], ['write', one(p, 'write')]] as const) if (value !== undefined) command[key] = value;
    if (count !== undefined) command.count = count;
    return command;
  },

  // The decoders, the pcap codec and tcpdump's handling load only for a capture: every command's module
  // loads with the command table on every CLI call (capture-run.ts).
  run: async (command, ctx) => (await import('./capture-run.ts')).runCapture(command, ctx),
};
