/**
 * Open vSwitch in a simulated host: a private ovsdb-server and ovs-vswitchd per host, with their database,
 * sockets and logs in the cluster's scratch folder (OVS_RUNDIR, OVS_LOGDIR, OVS_DBDIR, OVS_SYSCONFDIR all
 * point there), so a test never touches a system OVS. Both run in the foreground as the cluster's tracked
 * processes, so destroy() ends them with everything else.
 *
 * The machine has no openvswitch kernel module, so the datapath is the userspace one, whose tunnels need the
 * underlay interface inside a `datapath_type=netdev` bridge holding the host's address: `eth0` becomes a
 * port of bridge `ulbr0` (not vxnet's: the agent never touches it) and the address and default route move
 * to `ulbr0`, which takes eth0's MAC (as an operator would set `other-config:hwaddr`).
 *
 * Checksums: the simulated underlay is made of veths, which hand frames over with checksums left to a NIC
 * that does not exist (offload); the kernel fills them in only when a frame leaves through a device without
 * the offload. A real NIC fills them in on the wire; OVS's userspace datapath reads the frames as they are
 * and drops VXLAN with a wrong UDP checksum. So the switch port facing an OVS host gets `tx off`, which is
 * what a NIC does, and kernel hosts keep their VXLAN UDP checksums (docs/architecture.md, "Open vSwitch hosts").
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, SimHost } from './cluster.ts';
import { runChecked, sleep, type ChildProcessHandle } from './processes.ts';
import { nsenterArgv } from './netns.ts';
import { OUTSIDE_ADDRESS, UNDERLAY_DEVICE, UNDERLAY_PREFIX_LENGTH, switchPort } from './topology.ts';

/** The OVS bridge holding a simulated OVS host's underlay address. */
export const OVS_UNDERLAY_BRIDGE = 'ulbr0';

export interface OvsHost {
  readonly host: SimHost;
  /** OVS_RUNDIR and friends */
  readonly dir: string;
  /** `unix:PATH` of its ovsdb-server */
  readonly db: string;
  /** the agent's arguments for this host */
  readonly agentArgs: readonly string[];
  /** ovs-vswitchd's process id: on the userspace datapath its main thread forwards every frame of kernel ports */
  readonly vswitchdPid: number | undefined;
  /** `ovs-ofctl ARGS` against this host's switch; stdout */
  ofctl(args: readonly string[]): Promise<string>;
  /** `ovs-vsctl --db=... ARGS`; stdout */
  vsctl(args: readonly string[]): Promise<string>;
}

/** Starts Open vSwitch in `host` and puts its underlay into an OVS bridge. Its agent is not started. */
export async function startOvs(cluster: Cluster, host: SimHost): Promise<OvsHost> {
  const dir = join(cluster.tmpDir, `${host.name}-ovs`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const vars = ['OVS_RUNDIR', 'OVS_LOGDIR', 'OVS_DBDIR', 'OVS_SYSCONFDIR'].map((name) => `${name}=${dir}`);
  const env = { ...process.env, ...Object.fromEntries(vars.map((v) => v.split('=') as [string, string])) };
  const db = `unix:${join(dir, 'db.sock')}`;
  await runChecked(['ovsdb-tool', 'create', join(dir, 'conf.db'), '/usr/share/openvswitch/vswitch.ovsschema'], { env });
  const daemons: ChildProcessHandle[] = [];
  daemons.push(
    cluster.spawn(host.netns, ['env', ...vars, 'ovsdb-server', join(dir, 'conf.db'), `--remote=punix:${join(dir, 'db.sock')}`, `--unixctl=${join(dir, 'ovsdb-server.ctl')}`], {
      label: 'ovsdb-server',
    }),
  );
  const vsctl = async (args: readonly string[]) => (await runChecked(['ovs-vsctl', `--db=${db}`, '--timeout=20', ...args], { env, timeoutMs: 30_000 })).stdout;
  await until(() => vsctl(['--no-wait', 'init']), daemons, 'ovsdb-server to listen');
  const vswitchd = cluster.spawn(host.netns, ['env', ...vars, 'ovs-vswitchd', db, `--unixctl=${join(dir, 'ovs-vswitchd.ctl')}`], { label: 'ovs-vswitchd' });
  daemons.push(vswitchd);
  const inHost = (argv: readonly string[]) => runChecked(nsenterArgv(host.netns, argv));
  // The bridge takes eth0's MAC, and eth0 (which keeps receiving alongside OVS) answers no ARP: OVS ends a
  // tunnel only for frames to the bridge's own MAC, and a peer that had learnt eth0's MAC for the host's
  // address (the kernel answers ARP on any interface by default) had its VXLAN dropped.
  const link = JSON.parse((await inHost(['ip', '-j', 'link', 'show', UNDERLAY_DEVICE])).stdout) as { address: string }[];
  await inHost(['sysctl', '-qw', `net.ipv4.conf.${UNDERLAY_DEVICE}.arp_ignore=1`]);
  const bridge = ['add-br', OVS_UNDERLAY_BRIDGE, '--', 'set', 'bridge', OVS_UNDERLAY_BRIDGE, 'datapath_type=netdev', `other-config:hwaddr=${link[0]!.address}`];
  await until(() => vsctl([...bridge, '--', 'add-port', OVS_UNDERLAY_BRIDGE, UNDERLAY_DEVICE]), daemons, 'ovs-vswitchd');
  const cidr = `${host.address}/${UNDERLAY_PREFIX_LENGTH}`;
  await inHost(['ip', 'addr', 'del', cidr, 'dev', UNDERLAY_DEVICE]);
  await inHost(['ip', 'addr', 'add', cidr, 'dev', OVS_UNDERLAY_BRIDGE]);
  await inHost(['ip', 'link', 'set', OVS_UNDERLAY_BRIDGE, 'up']);
  if (cluster.outside) await inHost(['ip', 'route', 'replace', 'default', 'via', OUTSIDE_ADDRESS, 'dev', OVS_UNDERLAY_BRIDGE]);
  await runChecked(nsenterArgv(cluster.switchNetns, ['ethtool', '-K', switchPort(host), 'tx', 'off']));
  return {
    host,
    dir,
    db,
    agentArgs: ['--dataplane', 'ovs', '--ovs-db', db],
    // env(1) execs ovs-vswitchd, so the spawned process is the daemon itself
    vswitchdPid: vswitchd.pid,
    vsctl,
    ofctl: async (args) => (await runChecked(['ovs-ofctl', ...args], { env, timeoutMs: 30_000 })).stdout,
  };
}

async function until(probe: () => Promise<unknown>, daemons: readonly ChildProcessHandle[], what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const dead = daemons.find((d) => d.exitInfo);
    if (dead) throw new Error(`${dead.label} exited while waiting for ${what}: ${dead.output().split('\n').slice(-5).join(' / ')}`);
    try {
      await probe();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
    await sleep(100);
  }
}
