/**
 * OvsDataplane: the agent's Dataplane on a host that runs Open vSwitch. Same desired state as the Linux
 * data plane, same guarantees (control-plane forwarding, isolation by VNI, the VXLAN peer allow-list,
 * anti-spoofing, egress NAT), programmed through OVS's own tools.
 *
 * One bridge per host (`vxnovs`), not one per network: a VXLAN port with `key=flow remote_ip=flow` serves
 * every network on its UDP port, so one tunnel port per UDP port and one set of tables carry all networks,
 * isolated by the VNI (tun_id in, reg0 inside); per-network bridges would need a tunnel port each, and
 * OVS allows only one tunnel port per UDP port and remote setting. Flows: flows.ts.
 *
 * Per network, an internal port named like the Linux data plane's bridge (`vxnb<VNI>`) holds the gateway
 * addresses with the network's gateway MAC; the kernel routes through it, so egress NAT and the isolation
 * between networks are the very nftables table the kernel path installs (kernel/nftables.ts, keyed by
 * interface name). Per local endpoint, a veth pair as on kernel hosts (kernel/endpoint-setup.ts), its host
 * end a port of the bridge marked `external_ids:vxnet-endpoint=ID` (the "setup completed" mark).
 *
 * A pass: read OVSDB, the vxn* links and the nftables table (in parallel); nftables first (fail closed: no
 * new endpoint while it cannot be installed); one `ovs-vsctl` transaction for the bridge, tunnel and gateway
 * ports; the gateway ports' addresses; new endpoints (veth, container side, `tx off`, port); then the flows,
 * rendered whole and compared with the switch's by `ovs-ofctl diff-flows`, replaced only when they differ,
 * atomically (`--bundle replace-flows`, which itself sends only the flows that differ: a restarted agent
 * changes nothing that is right); last, ports nobody wants (once no flow names them). The flows are read
 * back on every pass, so ovs-vswitchd restarting (it keeps no flows) is repaired on the next pass.
 *
 * Checksums (found here, docs/architecture.md "Open vSwitch hosts"): a veth hands a frame over with its
 * TCP/UDP checksum still to be filled in (checksum offload); the kernel fills it in only when the frame leaves
 * through a device that cannot, but the userspace datapath reads frames from a raw socket and forwards them
 * as they are, so a container's TCP arrived with a wrong checksum at the far end. So the container end of
 * every veth on an OVS host gets `ethtool -K IF tx off`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { messageOf } from '../../core/errors.ts';
import { OWNED_NFT_TABLE, type Dataplane, type DesiredEndpoint, type DesiredState, type ReconcileResult } from '../dataplane.ts';
import { runBatch } from '../kernel/batch.ts';
import { createRunner, type Runner } from '../kernel/exec.ts';
import { prepareEndpoints } from '../kernel/endpoint-setup.ts';
import { planFirewall } from '../kernel/nftables.ts';
import { IP_FORWARD, parseFirewall, type FirewallState } from '../kernel/read.ts';
import { OVS_BRIDGE, renderFlows, supported } from './flows.ts';
import type { DatapathType, OvsTarget } from './host.ts';
import { parseKernelLinks, parseOvsState, planGatewayPorts, planPorts, portNumbers, type KernelLink, type OvsState } from './state.ts';

/**
 * The userspace datapath reads a port's frames from a raw socket, and the kernel still receives them on the
 * host veth as well: it answered a container's ARP for its gateway with the veth's own MAC and then routed
 * the container's packets itself, past OVS and past the isolation rules, which match the gateway ports.
 * So the host ends have ARP off, and this chain drops every IPv4 packet the kernel receives on one of them
 * (nothing legitimate does on an OVS host: a container's traffic reaches the kernel through its gateway port).
 */
export const PORT_GUARD_CHAIN = 'ovs_ports';

export function portGuardScript(): string {
  return (
    `add chain ip vxnet ${PORT_GUARD_CHAIN} { type filter hook prerouting priority raw - 20; policy accept; }\n` +
    `flush chain ip vxnet ${PORT_GUARD_CHAIN}\n` +
    `add rule ip vxnet ${PORT_GUARD_CHAIN} iifname "vxnh*" counter drop comment "a container port: only through OVS"\n`
  );
}

export interface OvsDataplaneOptions {
  target: OvsTarget;
  datapath: DatapathType;
  log?: (line: string) => void;
  run?: Runner;
  /** how many endpoint namespaces are configured at the same time (default 4) */
  endpointConcurrency?: number;
  /**
   * A private folder of the agent (its state directory) for the flow files ovs-ofctl reads; without it, a
   * temporary folder removed by close()
   */
  workDir?: string;
}

export class OvsDataplane implements Dataplane {
  readonly #o: OvsDataplaneOptions;
  readonly #run: Runner;
  readonly #log: (line: string) => void;
  #queue: Promise<unknown> = Promise.resolve();
  /** private folder (0700) for the flow files ovs-ofctl reads */
  #flowDir: string | undefined;
  /** the temporary folder made for them when no workDir was given */
  #ownDir: string | undefined;
  /** networks the last pass could not carry, with the reason (logged when they first appear) */
  #refusals = new Set<string>();
  /** the port numbers the last pass read (after its own changes) */
  #ports: Map<string, number> | undefined;
  /** the flow file the last pass left on the switch (undefined: unknown, read the switch back) */
  #installed: string | undefined;

  constructor(options: OvsDataplaneOptions) {
    this.#o = options;
    this.#run = options.run ?? createRunner();
    this.#log = options.log ?? (() => {});
  }

  /** Nothing runs in the background; the switch keeps its state when the agent stops (fail-static). */
  async close(): Promise<void> {
    if (this.#ownDir !== undefined) await rm(this.#ownDir, { recursive: true, force: true });
  }

  /** Passes never overlap: a call waits for the previous one. */
  reconcile(desired: DesiredState, signal?: AbortSignal): Promise<ReconcileResult> {
    const pass = this.#queue.then(() => this.#pass(desired, signal));
    this.#queue = pass.catch(() => {});
    return pass;
  }

  #vsctl(args: readonly string[], signal?: AbortSignal) {
    return this.#run.run(['ovs-vsctl', `--db=${this.#o.target.db}`, '--timeout=10', ...args], { signal });
  }

  /** One `ovs-vsctl` for the bridge, its ports and their interfaces (one JSON document per command). */
  async #readOvs(signal?: AbortSignal): Promise<OvsState> {
    const { stdout } = await this.#vsctl(
      [
        '--format=json',
        '--', '--columns=name,datapath_type,ports', 'list', 'Bridge',
        '--', '--columns=_uuid,interfaces', 'list', 'Port',
        '--', '--columns=_uuid,name,type,options,ofport,external_ids', 'list', 'Interface',
      ],
      signal,
    );
    const [bridges, ports, interfaces] = stdout.split('\n').filter((line) => line.trim() !== '');
    if (interfaces === undefined) throw new Error(`ovs-vsctl answered ${stdout.length} bytes, not three tables`);
    return parseOvsState(bridges!, ports!, interfaces);
  }

  /** Table ip vxnet (its rules' hash) and whether it holds PORT_GUARD_CHAIN, in one `nft -j list`. */
  async #readFirewall(signal?: AbortSignal): Promise<{ firewall: FirewallState; guarded: boolean }> {
    const res = await this.#run.run(['nft', '-j', 'list', 'table', 'ip', OWNED_NFT_TABLE], { signal, allowFailure: true });
    if (res.code !== 0) {
      if (/No such file or directory/.test(res.stderr)) return { firewall: { present: false }, guarded: false };
      return { firewall: { present: false, unreadable: res.stderr.trim() || `exit ${res.code}` }, guarded: false };
    }
    return { firewall: parseFirewall(res.stdout), guarded: res.stdout.includes(`"name": "${PORT_GUARD_CHAIN}"`) || res.stdout.includes(`"name":"${PORT_GUARD_CHAIN}"`) };
  }

  async #readLinks(signal?: AbortSignal): Promise<Map<string, KernelLink>> {
    return parseKernelLinks((await this.#run.run(['ip', '-j', 'addr', 'show'], { signal })).stdout);
  }

  async #pass(desired: DesiredState, signal?: AbortSignal): Promise<ReconcileResult> {
    const result: ReconcileResult = { changes: 0, endpointErrors: new Map(), readyEndpoints: new Set() };
    const errors: string[] = [];
    try {
      await this.#apply(desired, result, errors, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      errors.push(`the OVS data plane failed: ${messageOf(err)}`);
    }
    if (errors.length) result.error = errors.length > 5 ? `${errors.slice(0, 5).join('; ')}; and ${errors.length - 5} more` : errors.join('; ');
    return result;
  }

  async #apply(desired: DesiredState, result: ReconcileResult, errors: string[], signal?: AbortSignal): Promise<void> {
    const refusedNetworks = new Map<string, string>();
    for (const net of desired.networks) {
      const why = supported(net);
      if (why !== undefined) refusedNetworks.set(net.bridge, why);
    }
    // said once in the log and to each endpoint concerned: retrying the pass would not change it
    for (const why of new Set(refusedNetworks.values())) {
      if (!this.#refusals.has(why)) this.#log(why);
    }
    this.#refusals = new Set(refusedNetworks.values());
    const networks = desired.networks.filter((n) => !refusedNetworks.has(n.bridge));
    const endpoints = desired.endpoints.filter((ep) => {
      const why = refusedNetworks.get(ep.bridge);
      if (why !== undefined) result.endpointErrors.set(ep.id, why);
      return why === undefined;
    });

    // A change that only moves flows (a remote endpoint came or went: the common case) goes to the switch
    // while the state is read: rendered with the port numbers the last pass read, so it names only ports
    // that exist; the full rendering below follows if anything else changed.
    const early = this.#ports === undefined || this.#installed === undefined ? undefined : this.#flowText(desired, networks, endpoints, this.#ports);
    const earlyWrite = early !== undefined && early !== this.#installed ? this.#replaceFlows(early, 'ovs-flows-early', signal).catch(() => 0) : Promise.resolve(0);
    const [ovs, links, { firewall, guarded }, earlyChanges] = await Promise.all([
      this.#readOvs(signal),
      this.#readLinks(signal),
      this.#readFirewall(signal),
      earlyWrite,
    ]);
    result.changes += earlyChanges;

    if (networks.length > 0 && (await this.#run.readFile(IP_FORWARD))?.trim() !== '1') {
      await this.#run.writeFile(IP_FORWARD, '1\n');
      result.changes++;
      this.#log('enabled IPv4 forwarding (net.ipv4.ip_forward=1)');
    }

    // nftables: egress NAT, isolation between networks (by the gateway ports' names), the VXLAN filter, and
    // the chain that keeps the kernel off the container ports (PORT_GUARD_CHAIN)
    let firewallDown: string | undefined;
    const plan = planFirewall(networks, firewall, desired.vxlanFilter);
    const wantGuard = plan.action === 'replace' || (plan.action === 'none' && firewall.present);
    const script = (plan.action === 'none' ? '' : plan.script) + (wantGuard && (plan.action === 'replace' || !guarded) ? portGuardScript() : '');
    if (script) {
      try {
        await this.#run.run(['nft', '-f', '-'], { input: script, signal });
        result.changes++;
        if (plan.action === 'replace') this.#log(`installed nftables table ip vxnet (rules ${plan.hash})`);
      } catch (err) {
        if (signal?.aborted) throw err;
        firewallDown = `the nftables table ip vxnet could not be installed: ${messageOf(err)}; no new endpoint is attached until it is`;
        errors.push(firewallDown);
      }
    }

    // OVSDB: bridge, tunnel ports, gateway ports (one transaction: all or nothing)
    const ports = planPorts(networks, endpoints, ovs, links, this.#o.datapath);
    if (ports.ensure.length) {
      await this.#vsctl(ports.ensure.flatMap((command) => ['--', ...command]), signal);
      result.changes += ports.ensure.length;
      this.#log(`set up OVS bridge ${OVS_BRIDGE} ports: ${ports.ensure.map((c) => c.join(' ')).join('; ')}`);
    }
    const gatewayLinks = ports.ensure.length ? await this.#readLinks(signal) : links;
    const gatewayLines = planGatewayPorts(networks, gatewayLinks);
    if (gatewayLines.length) {
      const outcome = await runBatch(this.#run, ['ip'], gatewayLines, signal);
      result.changes += gatewayLines.length - outcome.failures.size;
      for (const [i, message] of outcome.failures) errors.push(`"${gatewayLines[i]}": ${message}`);
    }

    // endpoints: ready ones as they are; new ones get their veth pair, container side and port
    for (const ep of ports.ready) result.readyEndpoints.add(ep.id);
    const attached = firewallDown === undefined ? await this.#createEndpoints(ports.create, ports.staleVeths, result, signal) : [];
    if (firewallDown !== undefined) for (const ep of ports.create) result.endpointErrors.set(ep.id, firewallDown);

    // flows: rendered whole, compared with the switch's, replaced atomically when they differ; ports by
    // number, read back once ovs-vswitchd has given new ports theirs (ovs-vsctl waits for it)
    const present = portNumbers(ports.ensure.length || attached.length ? await this.#readOvs(signal) : ovs);
    for (const name of ports.remove) present.delete(name);
    this.#ports = present;
    const flows = this.#flowText(desired, networks, endpoints, present);
    // just written by the early step of this pass: nothing to compare
    const changed = earlyChanges > 0 && flows === this.#installed ? 0 : await this.#replaceFlows(flows, 'ovs-flows', signal);
    result.changes += changed;
    for (const ep of attached) {
      result.readyEndpoints.add(ep.id);
      result.endpointErrors.delete(ep.id);
    }

    // what nobody wants any more, now that no flow names it
    const wanted = new Set(endpoints.map((ep) => ep.hostVeth));
    const strayVeths = [...links.keys()].filter((name) => name.startsWith('vxnh') && !wanted.has(name));
    if (ports.remove.length) {
      await this.#vsctl(ports.remove.flatMap((name) => ['--', '--if-exists', 'del-port', OVS_BRIDGE, name]), signal);
      result.changes += ports.remove.length;
      this.#log(`removed OVS ports ${ports.remove.join(', ')}`);
    }
    const veths = [...new Set([...strayVeths, ...ports.remove.filter((n) => n.startsWith('vxnh') && links.has(n))])];
    if (veths.length) {
      const outcome = await runBatch(this.#run, ['ip'], veths.map((name) => `link del dev ${name}`), signal);
      result.changes += veths.length - outcome.failures.size;
    }
  }

  /** Veth pairs, container side (with `tx off`), then the host ends as ports; returns those attached. */
  async #createEndpoints(create: readonly DesiredEndpoint[], stale: readonly string[], result: ReconcileResult, signal?: AbortSignal): Promise<DesiredEndpoint[]> {
    if (create.length === 0) return [];
    if (stale.length) await runBatch(this.#run, ['ip'], stale.map((name) => `link del dev ${name}`), signal);
    const prepared = await prepareEndpoints(this.#run, this.#log, this.#o.endpointConcurrency ?? 4, create, result, signal);
    const offloadFailed = new Map<string, string>();
    await Promise.all(
      prepared.candidates
        .filter((ep) => !prepared.failed.has(ep))
        .map(async (ep) => {
          // handed-over Docker endpoints: the peer is still here, and keeps the setting when libnetwork moves it
          const argv = ep.netns === undefined ? ['ethtool', '-K', ep.peerVeth, 'tx', 'off'] : ['nsenter', `--net=${ep.netns}`, 'ethtool', '-K', ep.ifname, 'tx', 'off'];
          const res = await this.#run.run(argv, { signal, allowFailure: true });
          if (res.code !== 0) offloadFailed.set(ep.id, `turning checksum offload off failed (${argv.join(' ')}): ${res.stderr.trim() || `exit ${res.code}`}`);
        }),
    );
    const ready = new Set<DesiredEndpoint>();
    for (const [id, why] of offloadFailed) result.endpointErrors.set(id, why);
    const failed = (ep: DesiredEndpoint) => prepared.failed.has(ep) || offloadFailed.has(ep.id);
    // the host ends go up; until the OVSDB transaction below makes them ports, they carry nothing
    const candidates = prepared.candidates.filter((ep) => !failed(ep));
    const raised = await runBatch(this.#run, ['ip'], candidates.map((ep) => `link set dev ${ep.hostVeth} arp off up`), signal);
    const up = candidates.filter((ep, i) => {
      const message = raised.failures.get(i);
      if (message !== undefined) result.endpointErrors.set(ep.id, `raising ${ep.hostVeth} failed: ${message}`);
      return message === undefined;
    });
    // what failed endpoints created goes again; deleting the host end removes the peer wherever it is
    const undo = [...prepared.undo].filter((ep) => !up.includes(ep));
    if (undo.length) await runBatch(this.#run, ['ip'], undo.map((ep) => `link del dev ${ep.hostVeth}`), signal);
    if (up.length === 0) return [];
    const commands = up.flatMap((ep) => [
      '--', '--if-exists', 'del-port', OVS_BRIDGE, ep.hostVeth,
      '--', 'add-port', OVS_BRIDGE, ep.hostVeth,
      '--', 'set', 'interface', ep.hostVeth, `external_ids:vxnet-endpoint=${ep.id}`,
    ]);
    try {
      await this.#vsctl(commands, signal);
      for (const ep of up) ready.add(ep);
      result.changes += up.length;
      this.#log(`set up ${up.length} endpoint${up.length === 1 ? '' : 's'} on ${OVS_BRIDGE}`);
    } catch (err) {
      if (signal?.aborted) throw err;
      for (const ep of up) result.endpointErrors.set(ep.id, `adding ${ep.hostVeth} to ${OVS_BRIDGE} failed: ${messageOf(err)}`);
    }
    return [...ready];
  }

  #flowText(desired: DesiredState, networks: DesiredState['networks'], endpoints: DesiredState['endpoints'], ports: ReadonlyMap<string, number>): string {
    return `${renderFlows({ ...desired, networks, endpoints }, ports).join('\n')}\n`;
  }

  /**
   * Returns how many flow lines differed (0: the switch was left alone). When the rendered flows differ from
   * those the last pass installed, they go to the switch at once (`replace-flows` itself sends only the flows
   * that differ), and the count is the difference between the two renderings; otherwise `diff-flows` reads
   * the switch's flows back, so a change behind vxnet's back or an ovs-vswitchd restart (which keeps no
   * flows) is repaired. ovs-ofctl reads flows only from a file it can open (not from a pipe or a socket on
   * stdin), so they go to a file in a private folder (the agent's state directory).
   */
  async #replaceFlows(flows: string, name: string, signal?: AbortSignal): Promise<number> {
    const target = this.#o.target.bridgeControl;
    this.#flowDir ??= this.#o.workDir ?? (this.#ownDir = await mkdtemp(join(tmpdir(), 'vxnet-ovs-')));
    const file = join(this.#flowDir, name);
    await writeFile(file, flows, { mode: 0o600 });
    const last = this.#installed;
    this.#installed = undefined;
    let changed: number;
    if (last !== undefined && last !== flows) {
      changed = lineDifference(last, flows);
    } else {
      const diff = await this.#run.run(['ovs-ofctl', '-O', 'OpenFlow14', 'diff-flows', target, file], { signal, allowFailure: true });
      // diff-flows exits 2 when the tables differ, 0 when they are equal
      if (diff.code !== 0 && diff.code !== 2) throw new Error(`ovs-ofctl diff-flows failed (exit ${diff.code}): ${diff.stderr.trim()}`);
      changed = diff.stdout.split('\n').filter((line) => line.startsWith('+') || line.startsWith('-')).length;
    }
    if (changed > 0) {
      await this.#run.run(['ovs-ofctl', '-O', 'OpenFlow14', '--bundle', 'replace-flows', target, file], { signal });
      this.#log(`replaced ${changed} flow line${changed === 1 ? '' : 's'} on ${OVS_BRIDGE}`);
    }
    this.#installed = flows;
    return changed;
  }
}

/** How many lines are in one of the two texts but not the other. */
export function lineDifference(a: string, b: string): number {
  const left = new Set(a.split('\n').filter(Boolean));
  const right = new Set(b.split('\n').filter(Boolean));
  let n = 0;
  for (const line of left) if (!right.has(line)) n++;
  for (const line of right) if (!left.has(line)) n++;
  return n;
}
