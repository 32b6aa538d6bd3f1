/**
 * LinuxDataplane: the Linux kernel implementation of the agent's Dataplane (bridge + VXLAN device per
 * network, veth pair per local endpoint, permanent neighbour + FDB entries per remote endpoint, one
 * nftables table).
 *
 * A pass is: one read of the actual state (dumps in parallel, see read.ts; the two large entry dumps are
 * skipped while `ip monitor neigh` vouches that nothing but our own entry writes changed them, see
 * entry-cache.ts, and the two nftables tables while `nft monitor` vouches the same for them, see
 * table-cache.ts), a pure diff (plan.ts), then at most a handful of batched writes, in this order:
 *   1. sysctls (ip_forward; neighbour GC thresholds once)
 *   2. `nft -f -`: the firewall with the VXLAN peer filter (table ip vxnet) and the anti-spoofing elements of
 *      the endpoints (table bridge vxnet, antispoof.ts) in one transaction, before any link changes, so
 *      that no VXLAN socket vxnet opens and no endpoint it attaches is ever unguarded or unchecked. Fail
 *      closed: when the tables cannot be installed, this pass creates no VXLAN device and attaches no new
 *      endpoint (each pending one is reported with the reason, and the pass is retried); what already runs
 *      stays (fail-static).
 *   3. `ip -batch`: link deletions, creations, attribute fixes (learning off on the VXLAN port), addresses
 *   4. `ip -batch` (neighbours) and `bridge -batch` (FDB: the VXLAN device's and the bridge's static
 *      entries, two processes when there are many, batch.ts) in parallel: entries are in place before a new container comes up, so its first ARP
 *      request is already answered by the proxy. When every line took effect as planned, the steps are
 *      written through to the kept dump (entry-writes.ts), so a pass that changes one peer among 50,000
 *      costs the next pass no dump; after link changes or a batch with any failed line the next pass reads
 *      all entries again
 *   5. per new endpoint: one `ip -batch` in the host namespace for all veth pairs, one
 *      `nsenter --net=PATH ip -batch -` per endpoint, one `ip -batch` to attach them all. When the pass
 *      changes no device (an attach to a network already here: the common case), the first two run while
 *      steps 2-4 do, and only the attach waits for them: an unattached port carries nothing.
 * The filter guards the ports of the VXLAN devices present at the start of the pass too; when step 3
 * deleted the last device using a port nobody wants any more, the table is replaced once more at the end.
 * Nothing is ever flushed and rebuilt; a pass with nothing to change writes nothing.
 * Batches and how their failures are attributed: batch.ts; endpoint setup: endpoint-setup.ts.
 *
 * Why not enter container namespaces each pass: with hundreds of endpoints that would be hundreds of
 * processes per pass. The host end of the veth pair tells whether setup completed (see plan.ts), and a
 * container that goes away takes its namespace, and with it both veth ends, along.
 */
import type { Dataplane, DesiredEndpoint, DesiredNetwork, DesiredState, ReconcileResult } from '../dataplane.ts';
import { messageOf } from '../../core/errors.ts';
import { isGone, linkFailure, runBatch, vxlanPorts } from './batch.ts';
import { writeEntries } from './entry-writes.ts';
import { attachEndpoints, prepareEndpoints, type PreparedEndpoints } from './endpoint-setup.ts';
import { createRunner, type Runner } from './exec.ts';
import { portBindings, type AntispoofState } from './antispoof.ts';
import { effectiveVxlanFilter } from './nftables.ts';
import { devicesNeedingIpv6, enableIpv6, ensureIpv6Forwarding, isIpv6AddressStep } from './ipv6-firewall.ts';
import { planReconcile, type LinkStep } from './plan.ts';
import { EntryCache } from './entry-cache.ts';
import { applyNamespaced, type HostState } from './linux-netns.ts';
import { readNamespaces, type NamespaceState } from './netns.ts';
import { IP_FORWARD, readBase, readEntries, readOwnedLinks, readTables, type ActualState, type TablesState } from './read.ts';
import { NamespaceCaches } from './netns-caches.ts';
import { LinkCache, noticeLinkWrites } from './link-cache.ts';
import { TableCache } from './table-cache.ts';
import { applyTables } from './tables-apply.ts';
import { renderLinkStep } from './render.ts';

export { detectUnderlay, NEIGHBOUR_GC_THRESHOLDS, preflight } from './host.ts';
import { raiseNeighbourLimits } from './host.ts';

export interface LinuxDataplaneOptions {
  log?: (line: string) => void;
  run?: Runner;
  /**
   * Raise the neighbour table GC thresholds to Docker's values (8192/49152/65536) when they are lower.
   * Those sysctls exist only in the initial network namespace and are global. Default true.
   */
  tuneNeighbourTable?: boolean;
  /** how many endpoint namespaces are configured at the same time (default 4) */
  endpointConcurrency?: number;
  /**
   * Reuse the last neighbour/FDB dump while `ip monitor neigh` reports no change (see entry-cache.ts).
   * Default true; without it every pass dumps all entries.
   */
  watchEntries?: boolean;
  /**
   * Reuse the last read of the nftables tables while `nft monitor` reports no change by anyone else (see
   * table-cache.ts). Default true; without it every pass reads both tables.
   */
  watchTables?: boolean;
  /**
   * With a namespace per network: reuse the last read of the host's and each namespace's links while
   * `ip monitor link address` there reports no change and no pass wrote a link since (see link-cache.ts).
   * Default true; without it every pass reads them.
   */
  watchLinks?: boolean;
  /** somebody else changed the kernel state a pass keeps (a foreign nftables transaction): run a pass */
  onDrift?: () => void;
  /**
   * A network namespace per network, named PREFIX<VNI> (netns.ts, linux-netns.ts); absent: every network's
   * devices in the agent's own namespace. Each network namespace then has an entry cache of its own.
   */
  networkNamespaces?: { prefix: string };
}

export { WRITE_THROUGH_MAX_STEPS } from './entry-writes.ts';

/** How long after a pass that wrote the links are read again (see #refreshLinks). */
const LINK_REFRESH_PAUSE_MS = 15;
/** ... and after a link monitor printed a line: at most this often while somebody keeps changing links */
const LINK_EVENT_PAUSE_MS = 100;

export class LinuxDataplane implements Dataplane {
  readonly #run: Runner;
  readonly #log: (line: string) => void;
  readonly #tune: boolean;
  readonly #concurrency: number;
  readonly #entries: EntryCache | undefined;
  readonly #tables: TableCache | undefined;
  readonly #namespaces: { prefix: string } | undefined;
  /** the host namespace's links, with a namespace per network */
  readonly #hostLinks: LinkCache | undefined;
  /** the pending background read of dropped links (#refreshLinks) */
  #refreshing: { at: number; timer: NodeJS.Timeout } | undefined;
  /** per network namespace, its anti-spoofing table and entries kept between passes */
  readonly #spaces: NamespaceCaches;
  #tuned = false;
  #queue: Promise<unknown> = Promise.resolve();
  /** what the last pass wanted, when it found every entry as wanted and wrote nothing (see #entriesSettled) */
  #settled: Pick<DesiredState, 'networks' | 'peers' | 'floods'> | undefined;

  constructor(options: LinuxDataplaneOptions = {}) {
    this.#run = options.run ?? createRunner();
    this.#log = options.log ?? (() => {});
    this.#tune = options.tuneNeighbourTable ?? true;
    this.#concurrency = Math.max(1, options.endpointConcurrency ?? 4);
    this.#namespaces = options.networkNamespaces;
    const watchEntries = options.watchEntries !== false;
    this.#entries = !watchEntries || this.#namespaces ? undefined : new EntryCache(this.#run, { log: this.#log });
    this.#tables = options.watchTables === false ? undefined : new TableCache(this.#run, { log: this.#log, ...(options.onDrift ? { onForeignChange: options.onDrift } : {}) });
    const watchLinks = this.#namespaces !== undefined && options.watchLinks !== false;
    const onLinkEvent = () => this.#refreshLinks(LINK_EVENT_PAUSE_MS);
    this.#hostLinks = watchLinks ? new LinkCache(this.#run, () => readOwnedLinks(this.#run), { log: this.#log, onEvent: onLinkEvent }) : undefined;
    const spaces = { log: this.#log, watchTables: this.#tables !== undefined, watchEntries, watchLinks, onLinkEvent };
    this.#spaces = new NamespaceCaches({ ...spaces, ...(options.onDrift ? { onDrift: options.onDrift } : {}) });
  }

  /**
   * Stops the background monitors (`ip monitor neigh`, `nft monitor`) and waits for them to end. It never keeps the process alive and is
   * killed when the process exits, so this matters mainly for tests that delete the namespace afterwards.
   */
  async close(): Promise<void> {
    if (this.#refreshing) clearTimeout(this.#refreshing.timer);
    this.#refreshing = undefined;
    await Promise.all([this.#entries?.close(), this.#tables?.close(), this.#hostLinks?.close(), this.#spaces.forget()]);
  }

  /**
   * One read of the actual state; the two large entry dumps are skipped when the entry cache vouches for
   * them (`reused`: nothing changed the entries since the dump the previous pass saw), and so are the two
   * nftables tables when the table cache vouches for them.
   */
  async #read(signal?: AbortSignal, underlay6 = false): Promise<{ actual: ActualState; reused: boolean }> {
    const cache = this.#entries;
    const tableCache = this.#tables;
    await Promise.all([cache?.prepare(), tableCache?.prepare()]);
    const read = () => readTables(this.#run, signal, underlay6);
    const tables: TablesState | Promise<TablesState> = tableCache ? (tableCache.cached() ?? tableCache.read(read)) : read();
    if (!cache) {
      const [base, entries] = await Promise.all([readBase(this.#run, signal, tables), readEntries(this.#run, signal)]);
      return { actual: { ...base, ...entries }, reused: false };
    }
    const reading = readBase(this.#run, signal, tables);
    const [base, entries] = await Promise.all([reading, cache.read(reading.then((b) => b.links), signal)]);
    return { actual: { ...base, ...entries.entries }, reused: entries.reused };
  }

  /**
   * Whether the entries need no diff this pass: the last pass found them exactly as wanted and changed
   * nothing at all, the kernel's entries are those it saw (the dump is reused), and the renderer handed over
   * the very same peer and flood lists for the very same networks (it does while none changed). Then the
   * diff would find nothing, and skipping it makes a pass with nothing to do cost the same with 50,000 peers
   * as with 50. Any doubt (a write, an event from the kernel, a new list) means the full diff.
   */
  #entriesSettled(desired: DesiredState, reused: boolean): boolean {
    const settled = this.#settled;
    return (
      reused &&
      settled !== undefined &&
      settled.peers === desired.peers &&
      settled.floods === desired.floods &&
      settled.networks.length === desired.networks.length &&
      settled.networks.every((network, i) => network === desired.networks[i])
    );
  }

  /** Passes never overlap: a call waits for the previous one. */
  reconcile(desired: DesiredState, signal?: AbortSignal): Promise<ReconcileResult> {
    const pass = this.#queue.then(() => this.#pass(desired, signal));
    this.#queue = pass.catch(() => {});
    return pass;
  }

  async #pass(desired: DesiredState, signal?: AbortSignal): Promise<ReconcileResult> {
    const result: ReconcileResult = { changes: 0, endpointErrors: new Map(), readyEndpoints: new Set() };
    const errors: string[] = [];
    signal?.throwIfAborted();

    if (this.#namespaces) return this.#passNamespaced(this.#namespaces.prefix, desired, result, errors, signal);
    let read: { actual: ActualState; reused: boolean };
    try {
      read = await this.#read(signal, desired.vxlanFilter?.ipv6Underlay === true);
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#settled = undefined;
      result.error = `reading the kernel state failed: ${messageOf(err)}`;
      this.#log(result.error);
      return result;
    }

    const entriesSettled = this.#entriesSettled(desired, read.reused);
    this.#settled = undefined;
    try {
      await this.#apply(desired, read.actual, entriesSettled, result, errors, signal);
      if (result.changes === 0 && errors.length === 0 && result.endpointErrors.size === 0) {
        this.#settled = { networks: desired.networks, peers: desired.peers, floods: desired.floods };
      }
    } catch (err) {
      // something unexpected (not a failed line, those are reported above): what was written is unknown
      this.#entries?.invalidate();
      this.#tables?.invalidate();
      if (signal?.aborted) throw err;
      errors.push(`applying changes failed: ${messageOf(err)}`);
    }

    if (errors.length) {
      result.error = errors.length > 5 ? `${errors.slice(0, 5).join('; ')}; and ${errors.length - 5} more` : errors.join('; ');
    }
    // The agent logs one summary line per pass (with the revision it applied); no second one here.
    return result;
  }

  async #apply(
    desired: DesiredState,
    actual: ActualState,
    entriesSettled: boolean,
    result: ReconcileResult,
    errors: string[],
    signal?: AbortSignal,
  ): Promise<void> {
    const plan = planReconcile(desired, actual, { entriesSettled });
    for (const note of plan.notes) this.#log(note);
    for (const r of plan.rejected) {
      if (r.kind === 'endpoint') result.endpointErrors.set(r.key, r.reason);
      else errors.push(`${r.kind} ${r.key}: ${r.reason}`);
    }

    // 1. sysctls
    if (plan.networks.length > 0) await this.#sysctls(plan.networks, plan.enableForwarding, result, errors);

    // 5a. with no device to create or change, new endpoints are prepared (veth pairs, container side) while
    // the firewall and entries are written: a port carries nothing until it is attached in 5b
    let preparing: Promise<PreparedEndpoints> | undefined;
    if (plan.links.length === 0 && plan.endpoints.create.length > 0) {
      preparing = prepareEndpoints(this.#run, this.#log, this.#concurrency, plan.endpoints.create, result, signal);
      preparing.catch(() => {}); // awaited in 5b; an early failure of this pass must not leave it unhandled
    }

    // 2. firewall and VXLAN peer filter, before any link (see the module comment)
    const failedNetworks = new Map<string, string>();
    const failedEndpoints = new Map<string, string>();
    const wanted = effectiveVxlanFilter(desired.vxlanFilter, plan.networks, vxlanPorts(actual.links.values()));
    errors.push(...wanted.rejected);
    const bindings = portBindings(plan.local);
    const ports = { wanted: bindings, keep: plan.untouchable };
    const installed: TablesState = { firewall: actual.firewall, antispoof: actual.antispoof ?? { present: false, macs: [], ips: [] } };
    const firewall = await applyTables({ run: this.#run, log: this.#log, tables: this.#tables }, plan.networks, installed, wanted.filter, ports, result, errors, signal);
    let linkSteps = plan.links;
    if (firewall.down !== undefined) {
      // fail closed: no new (or recreated) VXLAN device, so no new socket; the old device of a recreation stays
      const held = new Set(plan.links.flatMap((s) => (s.op === 'vxlan-add' ? [s.name] : [])));
      linkSteps = plan.links.filter((s) => !('name' in s && held.has(s.name)));
      for (const net of plan.networks) if (held.has(net.vxlan)) failedNetworks.set(net.bridge, firewall.down);
    }

    // 3. links and addresses; IPv6 addresses after IPv6 is on for their device (see ipv6-firewall.ts enableIpv6)
    const gone = new Set<string>();
    const applyLinkSteps = async (steps: readonly LinkStep[]): Promise<void> => {
      if (!steps.length) return;
      const lines = steps.map(renderLinkStep);
      const outcome = await runBatch(this.#run, ['ip'], lines, signal);
      steps.forEach((step, i) => {
        let message = outcome.failures.get(i);
        if (message === undefined && outcome.stopped && i > outcome.stopped.after) {
          message = `not known to be applied, ip stopped early: ${outcome.stopped.message}`;
        }
        if (step.op === 'link-del' && (message === undefined || isGone(message))) gone.add(step.name);
        if (message === undefined) {
          result.changes++;
          if (step.op === 'link-del' && !step.network) this.#log(`deleted ${step.name} (${step.why})`);
          return;
        }
        if (step.op === 'link-del' && isGone(message)) return; // already gone: that is what we wanted
        linkFailure(this.#log, step, `"${lines[i]}": ${message}`, failedNetworks, failedEndpoints, errors);
      });
    };
    const ipv6Addresses = linkSteps.filter(isIpv6AddressStep);
    await applyLinkSteps(linkSteps.filter((s) => !isIpv6AddressStep(s)));
    const ipv6Devices = devicesNeedingIpv6(plan.networks.filter((n) => !failedNetworks.has(n.bridge)), linkSteps);
    if (ipv6Devices.length) result.changes += await enableIpv6(this.#run, ipv6Devices, this.#log, errors);
    await applyLinkSteps(ipv6Addresses);

    // links written (devices created/deleted): entries may have gone with them
    if (linkSteps.length) this.#entries?.invalidate();

    // the filter shrinks only once the devices that needed a port are gone
    if (firewall.down === undefined && gone.size > 0) {
      const remaining = vxlanPorts([...actual.links.values()].filter((l) => !gone.has(l.name)));
      const shrunk = effectiveVxlanFilter(desired.vxlanFilter, plan.networks, remaining).filter;
      await applyTables({ run: this.#run, log: this.#log, tables: this.#tables }, plan.networks, firewall.tables, shrunk, ports, result, errors, signal);
    }

    // 4. entries
    const bridgeOf = new Map(plan.networks.map((n) => [n.vxlan, n.bridge]));
    // entries of a network whose devices could not be set up wait for the next pass
    const usable = <S extends { dev: string }>(steps: S[]): S[] =>
      steps.filter((s) => !failedNetworks.has(bridgeOf.get(s.dev) ?? ''));
    await writeEntries({ run: this.#run, cache: this.#entries, neighbours: usable(plan.neighbours), fdb: usable(plan.fdb), log: this.#log }, result, errors, signal);

    // 5. endpoints
    for (const id of plan.endpoints.adopted) {
      const failure = failedEndpoints.get(id);
      if (failure) result.endpointErrors.set(id, failure);
      else result.readyEndpoints.add(id);
    }
    const refused = (ep: DesiredEndpoint) => firewall.down ?? failedEndpoints.get(ep.id) ?? failedNetworks.get(ep.bridge);
    if (!preparing) {
      const toCreate = plan.endpoints.create.filter((ep) => {
        const reason = refused(ep);
        if (reason !== undefined) result.endpointErrors.set(ep.id, reason);
        return reason === undefined;
      });
      if (toCreate.length) preparing = prepareEndpoints(this.#run, this.#log, this.#concurrency, toCreate, result, signal);
    }
    // 5b. attach them, once the firewall and entries are in place
    if (preparing) result.changes += await attachEndpoints(this.#run, this.#log, await preparing, refused, result, signal);
  }

  async #sysctls(networks: readonly DesiredNetwork[], enableForwarding: boolean, result: ReconcileResult, errors: string[]): Promise<void> {
    if (enableForwarding) {
      try {
        await this.#run.writeFile(IP_FORWARD, '1\n');
        result.changes++;
        this.#log('enabled IPv4 forwarding (net.ipv4.ip_forward=1)');
      } catch (err) {
        errors.push(`enabling IPv4 forwarding failed: ${messageOf(err)}`);
      }
    }
    result.changes += await ensureIpv6Forwarding(this.#run, networks, this.#log, errors);
    if (this.#tune && !this.#tuned) {
      this.#tuned = true;
      result.changes += await raiseNeighbourLimits(this.#run, this.#log, errors);
    }
  }

  /**
   * After a pass that wrote, or a link event (libnetwork moving a container's end out of the host namespace
   * after Join, somebody else's change): the dropped link reads are read again in the background, queued
   * like a pass (never beside one), so that the next attach finds them kept (link-cache.ts). The pause lets
   * the monitors report our own writes first (a read they interrupt is not kept) and bounds the reads while
   * somebody keeps changing links; a sooner refresh replaces a later one.
   */
  #refreshLinks(pauseMs: number): void {
    const at = Date.now() + pauseMs;
    if (this.#refreshing && this.#refreshing.at <= at) return;
    if (this.#refreshing) clearTimeout(this.#refreshing.timer);
    const timer = setTimeout(() => {
      this.#refreshing = undefined;
      const refresh = this.#queue.then(() => Promise.all([this.#hostLinks?.refresh(), this.#spaces.refreshLinks()]));
      this.#queue = refresh.catch(() => {});
    }, pauseMs);
    timer.unref();
    this.#refreshing = { at, timer };
  }

  /** A pass with a namespace per network: the host's state and each network's namespace read, then linux-netns.ts. */
  async #passNamespaced(prefix: string, desired: DesiredState, result: ReconcileResult, errors: string[], signal?: AbortSignal): Promise<ReconcileResult> {
    let host: HostState;
    let spaces: Map<number, NamespaceState>;
    try {
      await Promise.all([this.#tables?.prepare(), this.#hostLinks?.prepare()]);
      const read = () => readTables(this.#run, signal, desired.vxlanFilter?.ipv6Underlay === true);
      const tables = this.#tables ? (this.#tables.cached() ?? this.#tables.read(read)) : read();
      const links = this.#hostLinks ? this.#hostLinks.read() : readOwnedLinks(this.#run, signal);
      [host, spaces] = await Promise.all([readBase(this.#run, signal, tables, links), readNamespaces(this.#run, prefix, signal, this.#spaces.readers(signal))]);
    } catch (err) {
      if (signal?.aborted) throw err;
      result.error = `reading the kernel state failed: ${messageOf(err)}`;
      this.#log(result.error);
      return result;
    }
    const caches = this.#spaces;
    void caches.forget(new Set([...spaces.values()].map((s) => s.name)));
    // the kept links (link-cache.ts) are dropped after a pass that ran anything that may change a link
    const writes = noticeLinkWrites(this.#run);
    const ctx = {
      namespaceGone: (name: string) => caches.gone(name),
      entryCache: (name: string) => caches.entryCache(name),
      entriesSettled: (name: string, part: DesiredState) => caches.entriesSettled(name, part),
      settled: (name: string, part: DesiredState | undefined) => caches.settled(name, part),
      antispoofWritten: (name: string, pid: number | undefined, after: AntispoofState) => caches.antispoofWritten(name, pid, after),
      run: writes.run,
      log: this.#log,
      concurrency: this.#concurrency,
      prefix,
      sysctls: (networks: readonly DesiredNetwork[], forward: boolean, r: ReconcileResult, e: string[]) => this.#sysctls(networks, forward, r, e),
      firewall: (networks: readonly DesiredNetwork[], installed: TablesState, filter: DesiredState['vxlanFilter'], r: ReconcileResult, e: string[], s?: AbortSignal) =>
        applyTables({ run: this.#run, log: this.#log, tables: this.#tables }, networks, installed, filter, undefined, r, e, s),
    };
    try {
      await applyNamespaced(ctx, desired, host, spaces, result, errors, signal);
    } catch (err) {
      this.#tables?.invalidate();
      caches.invalidate();
      this.#hostLinks?.invalidate();
      if (signal?.aborted) throw err;
      errors.push(`applying changes failed: ${messageOf(err)}`);
    } finally {
      if (writes.wrote() && this.#hostLinks) {
        this.#hostLinks.invalidate();
        caches.invalidateLinks();
        this.#refreshLinks(LINK_REFRESH_PAUSE_MS);
      }
    }
    if (errors.length) result.error = errors.length > 5 ? `${errors.slice(0, 5).join('; ')}; and ${errors.length - 5} more` : errors.join('; ');
    return result;
  }
}
