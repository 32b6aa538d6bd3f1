/**
 * One pass of the kernel data plane with a namespace per network (netns.ts; LinuxDataplane chooses it). The
 * order is that of the layout without namespaces (linux-dataplane.ts), with the namespaces in it:
 *   1. sysctls; the namespaces of new networks (`ip netns add`, br_netfilter off inside)
 *   2. the host's firewall (`nft -f -`: table ip vxnet with the VXLAN peer filter; the host keeps no bridge
 *      table), then each network's anti-spoofing elements (`nsenter --net nft -f -`, side by side), before
 *      any link changes: fail closed as there (no new VXLAN device without the filter, no new endpoint of a
 *      network without its anti-spoofing table)
 *   3. links: deletions inside the namespaces, then one `ip -batch` in the host namespace (gateways, VXLAN
 *      devices made and moved), then one `ip -n NS -batch` per namespace (bridge, ports, learning off)
 *   4. entries: `ip -n NS -batch` and `bridge -n NS -batch` per namespace, side by side, written through to
 *      the namespace's entry cache (entry-writes.ts)
 *   5. new endpoints: host ends made in their network's namespace, attached there; when the pass changes no
 *      device and makes no namespace (an attach to a network already here), they are prepared while steps 2-4
 *      run, and only the attach waits for them, as in the layout without namespaces
 *   6. namespaces of networks gone: their VXLAN device first (its VNI and port are free at once), then the
 *      namespace with everything in it
 */
import { messageOf } from '../../core/errors.ts';
import { deviceNames, type DesiredEndpoint, type DesiredNetwork, type DesiredState, type ReconcileResult } from '../dataplane.ts';
import { planAntispoof, portBindings, type AntispoofState } from './antispoof.ts';
import { isGone, linkFailure, runBatch, vxlanPorts } from './batch.ts';
import type { EntryCache } from './entry-cache.ts';
import { writeEntries } from './entry-writes.ts';
import { attachEndpoints, prepareEndpoints, type PreparedEndpoints } from './endpoint-setup.ts';
import type { Runner } from './exec.ts';
import { enableIpv6, isIpv6AddressStep } from './ipv6-firewall.ts';
import { desiredPerNetwork, inNamespace, NETNS_SYSCTLS, netnsPath, networkNamespace, planHost, type NamespaceState } from './netns.ts';
import { effectiveVxlanFilter } from './nftables.ts';
import { planReconcile, validDesired, type LinkStep, type Plan } from './plan.ts';
import type { ActualState, TablesState } from './read.ts';
import { renderLinkStep } from './render.ts';

export interface NamespacedPass {
  run: Runner;
  log: (line: string) => void;
  concurrency: number;
  prefix: string;
  /** step 1 of every pass: forwarding and the neighbour table's limits */
  sysctls(networks: readonly DesiredNetwork[], enableForwarding: boolean, result: ReconcileResult, errors: string[]): Promise<void>;
  /** the host's tables; `down`: why nothing new may be attached */
  firewall(
    networks: readonly DesiredNetwork[],
    installed: TablesState,
    filter: DesiredState['vxlanFilter'],
    result: ReconcileResult,
    errors: string[],
    signal?: AbortSignal,
  ): Promise<{ tables: TablesState; down?: string }>;
  /** our own transaction (process `pid`) on namespace `name`'s anti-spoofing table, so that only others' ask for a pass */
  antispoofWritten?(name: string, pid: number | undefined, after: AntispoofState): void;
  /** namespace `name` is about to be deleted: nothing of ours may keep running inside it */
  namespaceGone?(name: string): Promise<void>;
  /** the cache of namespace `name`'s entries, to write through to (entry-writes.ts); none: they are read every pass */
  entryCache?(name: string): EntryCache | undefined;
  /**
   * Whether namespace `name`'s entries need no diff: its dump was reused this pass, and the last pass found
   * them as wanted for the very same network, peers and floods (`part`), see LinuxDataplane.
   */
  entriesSettled?(name: string, part: DesiredState): boolean;
  /** after the pass: `part` if namespace `name` needed nothing at all and the pass had no error, else undefined */
  settled?(name: string, part: DesiredState | undefined): void;
}

/** The host namespace as read: its owned links, tables and forwarding (no entries: none live there). */
export type HostState = Omit<ActualState, 'neighbours' | 'fdb'>;

interface NetworkPass {
  net: DesiredNetwork;
  /** the network's part of the desired state */
  part: DesiredState;
  name: string;
  space: NamespaceState | undefined;
  plan: Plan;
}

export async function applyNamespaced(
  ctx: NamespacedPass,
  desired: DesiredState,
  host: HostState,
  spaces: ReadonlyMap<number, NamespaceState>,
  result: ReconcileResult,
  errors: string[],
  signal?: AbortSignal,
): Promise<void> {
  const { run, log, prefix } = ctx;
  const valid = validDesired(desired);
  for (const r of valid.rejected) {
    if (r.kind === 'endpoint') result.endpointErrors.set(r.key, r.reason);
    else errors.push(`${r.kind} ${r.key}: ${r.reason}`);
  }
  const networks = valid.networks;
  // Docker's container ends wait in the host namespace until libnetwork takes them
  // and a rejected network's gateway is left alone, like its devices
  const keep = new Set([...valid.protectedNames, ...valid.endpoints.filter((ep) => ep.netns === undefined).map((ep) => ep.peerVeth)]);
  const hostPlan = planHost(networks, host.links, spaces, prefix, keep);
  for (const note of hostPlan.notes) log(note);
  const parts = desiredPerNetwork(desired);
  const passes: NetworkPass[] = networks.map((net) => {
    const part = parts.get(net.bridge)!;
    const name = networkNamespace(prefix, net.vni);
    const space = spaces.get(net.vni);
    const actual: ActualState = {
      links: new Map(space?.links), // a copy: a kept read (link-cache.ts) must stay as read
      neighbours: space?.neighbours ?? [],
      fdb: space?.fdb ?? [],
      firewall: { present: false },
      ipForward: true,
    };
    const namespace = { name, gatewayPort: deviceNames.gatewayPort(net.vni), gatewayFresh: hostPlan.gatewayFresh.has(net.bridge) };
    const entriesSettled = space !== undefined && (ctx.entriesSettled?.(name, part) ?? false);
    return { net, part, name, space, plan: planReconcile(part, actual, { namespace, entriesSettled }) };
  });
  for (const { plan } of passes) {
    for (const note of plan.notes) log(note);
    // networks and endpoints were validated above; what is left are entries
    for (const r of plan.rejected) if (r.kind !== 'network' && r.kind !== 'endpoint') errors.push(`${r.kind} ${r.key}: ${r.reason}`);
  }

  // 1. sysctls; namespaces of new networks
  if (networks.length > 0) await ctx.sysctls(networks, !host.ipForward, result, errors);
  const vniOf = new Map(networks.map((n) => [n.bridge, n.vni]));
  const namespaceOf = (ep: DesiredEndpoint) => networkNamespace(prefix, vniOf.get(ep.bridge)!);
  // 5a. with every namespace there and no device to create or change (an attach to a network already here:
  // the common case), new endpoints are prepared (veth pairs, container side) while the tables and entries
  // are written, as in the layout without namespaces: a host end carries nothing until attached in 5b
  const creating = passes.flatMap((p) => p.plan.endpoints.create);
  let preparing: Promise<PreparedEndpoints> | undefined;
  if (creating.length > 0 && hostPlan.steps.length === 0 && passes.every((p) => p.space !== undefined && p.plan.links.length === 0)) {
    preparing = prepareEndpoints(run, log, ctx.concurrency, creating, result, signal, namespaceOf);
    preparing.catch(() => {}); // awaited in 5b; an early failure of this pass must not leave it unhandled
  }
  const failedNetworks = new Map<string, string>();
  const failedEndpoints = new Map<string, string>();
  await Promise.all(
    passes.filter((p) => p.space === undefined).map(async (p) => {
      const add = await run.run(['ip', 'netns', 'add', p.name], { signal, allowFailure: true });
      if (add.code !== 0 && !/File exists/.test(add.stderr)) {
        const message = `creating network namespace ${p.name} failed: ${add.stderr.trim() || `exit code ${add.code}`}`;
        failedNetworks.set(p.net.bridge, message);
        errors.push(message);
        log(message);
        return;
      }
      await run.run(['nsenter', `--net=${netnsPath(p.name)}`, 'sysctl', '-q', '-e', '-w', ...NETNS_SYSCTLS], { signal, allowFailure: true });
      result.changes++;
      log(`created network namespace ${p.name}`);
    }),
  );

  // 2. the host's firewall, then each network's anti-spoofing, before any link
  const inside = [...spaces.values()].flatMap((s) => [...s.links.values()]);
  const wanted = effectiveVxlanFilter(desired.vxlanFilter, networks, vxlanPorts(inside));
  errors.push(...wanted.rejected);
  const installed: TablesState = { firewall: host.firewall, antispoof: host.antispoof ?? { present: false, macs: [], ips: [] } };
  const firewall = await ctx.firewall(networks, installed, wanted.filter, result, errors, signal);
  const antispoofDown = new Map<string, string>();
  await Promise.all(
    passes.map(async (p) => {
      if (failedNetworks.has(p.net.bridge)) return;
      const have = p.space?.antispoof ?? { present: false, macs: [], ips: [] };
      const antispoof = planAntispoof(portBindings(p.plan.local), have, valid.protectedNames);
      if (antispoof.lines.length === 0) return;
      try {
        const { pid } = await inNamespace(run, p.name).run(['nft', '-f', '-'], { input: antispoof.lines.map((line) => `${line}\n`).join(''), signal });
        ctx.antispoofWritten?.(p.name, pid, antispoof.after);
        result.changes += antispoof.changes;
      } catch (err) {
        if (signal?.aborted) throw err;
        const message = `applying the anti-spoofing table in ${p.name} failed: ${messageOf(err)}`;
        errors.push(message);
        log(message);
        antispoofDown.set(p.net.bridge, `${message}; no new endpoint of this network is attached until it is`);
      }
    }),
  );

  // 3. links
  const held = (s: LinkStep) => firewall.down !== undefined && (s.op === 'vxlan-add' || s.op === 'link-netns');
  if (firewall.down !== undefined) {
    // fail closed: no new VXLAN device, so no new socket
    for (const p of passes) if (p.plan.links.some((s) => s.op === 'vxlan-add')) failedNetworks.set(p.net.bridge, firewall.down);
  }
  const usable = (p: NetworkPass) => !failedNetworks.has(p.net.bridge);
  const apply = async (runner: Runner, steps: readonly LinkStep[]): Promise<void> => {
    if (!steps.length) return;
    const lines = steps.map(renderLinkStep);
    const outcome = await runBatch(runner, ['ip'], lines, signal);
    steps.forEach((step, i) => {
      let message = outcome.failures.get(i);
      if (message === undefined && outcome.stopped && i > outcome.stopped.after) message = `not known to be applied, ip stopped early: ${outcome.stopped.message}`;
      if (message === undefined) {
        result.changes++;
        if (step.op === 'link-del' && !step.network) log(`deleted ${step.name} (${step.why})`);
        return;
      }
      if (step.op === 'link-del' && isGone(message)) return;
      linkFailure(log, step, `"${lines[i]}": ${message}`, failedNetworks, failedEndpoints, errors);
    });
  };
  const moved = (s: LinkStep) => s.op === 'vxlan-add' || s.op === 'link-netns';
  await Promise.all(passes.filter(usable).map((p) => apply(inNamespace(run, p.name), p.plan.links.filter((s) => s.op === 'link-del'))));
  const hostSteps = hostPlan.steps.filter((s) => !isIpv6AddressStep(s));
  const hostDels = hostSteps.filter((s) => s.op === 'link-del');
  const moves = passes.filter(usable).flatMap((p) => p.plan.links.filter((s) => moved(s) && !held(s)));
  await apply(run, [...hostDels, ...moves, ...hostSteps.filter((s) => s.op !== 'link-del')]);
  await Promise.all(passes.filter(usable).map((p) => apply(inNamespace(run, p.name), p.plan.links.filter((s) => s.op !== 'link-del' && !moved(s)))));
  // IPv6 on the VXLAN device of an IPv6 network once it is in its namespace (where new devices have none)
  await Promise.all(
    passes.filter((p) => usable(p) && p.net.subnets.some((c) => c.includes(':')) && p.plan.links.some((s) => s.op === 'link-netns')).map(async (p) => {
      const set = await run.run(['nsenter', `--net=${netnsPath(p.name)}`, 'sysctl', '-q', '-w', `net.ipv6.conf.${p.net.vxlan}.disable_ipv6=0`], { signal, allowFailure: true });
      if (set.code !== 0) errors.push(`enabling IPv6 on ${p.net.vxlan} in ${p.name} failed: ${set.stderr.trim() || `exit code ${set.code}`}`);
    }),
  );
  // IPv6 gateways: on for the host end of a new (or newly addressed) gateway first (ipv6-firewall.ts)
  const ipv6Steps = hostPlan.steps.filter(isIpv6AddressStep);
  const ipv6Gateways = networks.filter(
    (n) => !failedNetworks.has(n.bridge) && n.gatewayAddresses.some((c) => c.includes(':')) && (hostPlan.gatewayFresh.has(n.bridge) || ipv6Steps.some((s) => s.dev === n.bridge)),
  );
  if (ipv6Gateways.length) result.changes += await enableIpv6(run, ipv6Gateways.map((n) => n.bridge), log, errors);
  await apply(run, ipv6Steps);

  // links written in a namespace (devices created, moved in or deleted): its entries may have gone with them
  for (const p of passes) if (p.plan.links.length > 0) ctx.entryCache?.(p.name)?.invalidate();

  // 4. entries, per namespace
  await Promise.all(
    passes.filter(usable).map((p) =>
      writeEntries({ run: inNamespace(run, p.name), cache: ctx.entryCache?.(p.name), neighbours: p.plan.neighbours, fdb: p.plan.fdb, log }, result, errors, signal),
    ),
  );

  // 5. endpoints
  for (const p of passes) {
    for (const id of p.plan.endpoints.adopted) {
      const failure = failedEndpoints.get(id);
      if (failure) result.endpointErrors.set(id, failure);
      else result.readyEndpoints.add(id);
    }
  }
  const refused = (ep: DesiredEndpoint) => firewall.down ?? antispoofDown.get(ep.bridge) ?? failedEndpoints.get(ep.id) ?? failedNetworks.get(ep.bridge);
  if (!preparing) {
    const toCreate = creating.filter((ep) => {
      const reason = refused(ep);
      if (reason !== undefined) result.endpointErrors.set(ep.id, reason);
      return reason === undefined;
    });
    if (toCreate.length) preparing = prepareEndpoints(run, log, ctx.concurrency, toCreate, result, signal, namespaceOf);
  }
  // 5b. attach them, once the tables and entries are in place
  if (preparing) result.changes += await attachEndpoints(run, log, await preparing, refused, result, signal, namespaceOf);

  const clean = errors.length === 0 && result.endpointErrors.size === 0;
  for (const p of passes) {
    const quiet = p.space !== undefined && p.plan.links.length === 0 && p.plan.neighbours.length === 0 && p.plan.fdb.length === 0 && p.plan.endpoints.create.length === 0;
    ctx.settled?.(p.name, clean && quiet ? p.part : undefined);
  }

  // 6. namespaces of networks gone (a rejected network's is left alone, like its devices)
  const kept = new Set(desired.networks.map((n) => n.vni));
  for (const [vni, space] of spaces) {
    if (kept.has(vni)) continue;
    const vxlan = deviceNames.vxlan(vni);
    await ctx.namespaceGone?.(space.name);
    // its devices are deleted here and now (the VXLAN device first): the kernel tears a deleted namespace
    // down in the background, and the containers' ends of the veths would linger until it has
    const owned = [...space.links.keys()].sort((a, b) => Number(b === vxlan) - Number(a === vxlan));
    if (owned.length) await runBatch(inNamespace(run, space.name), ['ip'], owned.map((name) => `link del dev ${name}`), signal);
    const del = await run.run(['ip', 'netns', 'del', space.name], { signal, allowFailure: true });
    if (del.code === 0) {
      result.changes++;
      log(`deleted network namespace ${space.name} (no longer desired)`);
    } else {
      errors.push(`deleting network namespace ${space.name} failed: ${del.stderr.trim() || `exit code ${del.code}`}`);
    }
  }
}
