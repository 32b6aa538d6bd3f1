/**
 * Where the OVS data plane finds Open vSwitch and which datapath it uses, checked once at agent start.
 *
 * - The database: `--ovs-db unix:PATH`, default `unix:$OVS_RUNDIR/db.sock` (OVS_RUNDIR defaults to
 *   /var/run/openvswitch), as the OVS tools themselves resolve it.
 * - The bridge's OpenFlow management socket, which `ovs-ofctl` needs: `$OVS_RUNDIR/BRIDGE.mgmt`. Without
 *   OVS_RUNDIR it is looked for next to the database socket, where ovs-vswitchd puts both by default, so a
 *   private OVS (tests) needs only --ovs-db.
 * - The datapath: the kernel datapath (`system`) where the kernel has the openvswitch module, otherwise the
 *   userspace one (`netdev`). Userspace tunnelling sends and receives VXLAN through an OVS bridge holding
 *   the host's underlay address (OVS routes and resolves the outer header itself), so with `netdev` the
 *   interface holding the advertise address must be such a bridge's port; the agent refuses to start
 *   otherwise and says how to set it up.
 */
import { dirname } from 'node:path';
import { VxnetError } from '../../core/errors.ts';
import type { Runner } from '../kernel/exec.ts';
import { OVS_BRIDGE } from './flows.ts';
import { parseOvsdbTable } from './state.ts';

export const DEFAULT_OVS_RUNDIR = '/var/run/openvswitch';

export type DatapathType = 'netdev' | 'system';

export interface OvsTarget {
  /** `unix:PATH` of ovsdb-server, for `ovs-vsctl --db=` */
  readonly db: string;
  /** `unix:PATH` of vxnet's bridge's OpenFlow management socket, for `ovs-ofctl` */
  readonly bridgeControl: string;
}

/** Resolves the database and management socket from `--ovs-db` and the environment. */
export function ovsTarget(db: string | undefined, env: NodeJS.ProcessEnv = process.env): OvsTarget {
  if (db !== undefined && !/^unix:\/./.test(db)) throw new VxnetError('bad_request', `--ovs-db must be unix:ABSOLUTE-PATH (the ovsdb-server socket), not "${db}".`);
  const envRundir = env['OVS_RUNDIR'] || undefined;
  const rundir = envRundir ?? (db !== undefined ? dirname(db.slice('unix:'.length)) : DEFAULT_OVS_RUNDIR);
  return { db: db ?? `unix:${rundir}/db.sock`, bridgeControl: `unix:${rundir}/${OVS_BRIDGE}.mgmt` };
}

export const OVS_TOOLS = [
  { name: 'ovs-vsctl', argv: ['ovs-vsctl', '--version'], pkg: 'openvswitch-switch' },
  { name: 'ovs-ofctl', argv: ['ovs-ofctl', '--version'], pkg: 'openvswitch-switch' },
  { name: 'ethtool', argv: ['ethtool', '--version'], pkg: 'ethtool' },
] as const;

export interface OvsStartup {
  readonly datapath: DatapathType;
  /** one line for the log: what was found and chosen */
  readonly report: string;
}

/**
 * Checks the tools and the database, chooses the datapath and, for the userspace one, that the underlay
 * interface is an OVS bridge's port. Throws one sentence naming what is missing.
 */
export async function checkOvsHost(run: Runner, target: OvsTarget, underlayDevice: string, signal?: AbortSignal): Promise<OvsStartup> {
  const missing: string[] = [];
  const tools = await Promise.all(OVS_TOOLS.map((tool) => run.run(tool.argv, { allowFailure: true, signal })));
  OVS_TOOLS.forEach((tool, i) => {
    if (tools[i]!.code === 127) missing.push(`${tool.name} is missing: install the Debian package ${tool.pkg}.`);
  });
  if (missing.length) throw new VxnetError('internal', `this host cannot run the OVS data plane: ${missing.join(' ')}`);
  const vsctl = (args: string[]) => run.run(['ovs-vsctl', `--db=${target.db}`, '--timeout=10', ...args], { allowFailure: true, signal });
  const version = tools[0]!.stdout.split('\n')[0]?.trim() ?? '';
  const types = await vsctl(['--format=json', '--columns=datapath_types', 'list', 'Open_vSwitch']);
  if (types.code !== 0) {
    throw new VxnetError('internal', `Open vSwitch's database at ${target.db} cannot be reached (${types.stderr.trim() || `exit ${types.code}`}): start ovsdb-server and ovs-vswitchd, or give --ovs-db.`);
  }
  const row = parseOvsdbTable(types.stdout)[0] ?? {};
  const offered = Array.isArray(row['datapath_types']) ? (row['datapath_types'] as unknown[]).map(String) : [String(row['datapath_types'] ?? '')];
  const kernelModule = await run.exists('/sys/module/openvswitch');
  const datapath: DatapathType = kernelModule && offered.includes('system') ? 'system' : 'netdev';
  if (datapath === 'netdev' && !offered.includes('netdev')) {
    throw new VxnetError('internal', `Open vSwitch offers neither the kernel datapath (no openvswitch module) nor the userspace one (datapath types: ${offered.join(', ') || 'none'}).`);
  }
  const why = datapath === 'system' ? 'the kernel has the openvswitch module' : 'the kernel has no openvswitch module';
  if (datapath === 'netdev') {
    const bridge = await vsctl(['iface-to-br', underlayDevice]);
    const own = await vsctl(['br-exists', underlayDevice]);
    if (bridge.code !== 0 && own.code !== 0) {
      throw new VxnetError(
        'internal',
        `the userspace datapath (${why}) sends VXLAN through an OVS bridge holding the underlay address, but ${underlayDevice} is not on one: ` +
          `create a bridge with datapath_type=netdev, add the physical interface as its port and move the address to the bridge.`,
      );
    }
  }
  return { datapath, report: `OVS data plane: bridge ${OVS_BRIDGE}, ${datapath === 'system' ? 'kernel' : 'userspace'} datapath (${datapath}): ${why}; ${version}` };
}
