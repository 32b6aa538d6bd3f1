/**
 * Setting up new local endpoints, in as few processes as possible: one `ip -batch` in the host namespace
 * for all veth pairs (peers handed to their namespaces), one `nsenter --net=PATH ip -batch -` per endpoint
 * (a few at a time), one `ip -batch` to attach them all. The last step enslaves and raises the host end in
 * one netlink message: the "setup completed" mark the planner reads back (plan.ts). What a failed endpoint
 * created is undone; deleting the host end removes the peer wherever it is.
 *
 * With a namespace per network (netns.ts, `namespaceOf`), the host end is made in the network's namespace in
 * the same message, and attached (or undone) by one `ip -n NS -batch` per network. A container's pair is
 * then made by the process inside the container that configures it (its first line sends the host end to
 * the network's namespace): two processes per endpoint on the way to the attach, not three. An endpoint with
 * IPv6 keeps the pair made from the host: its sysctls must be set between creation and configuration.
 *
 * Two phases, so that the data plane can prepare endpoints (veth pairs, the container side) while its
 * firewall transaction and entry batches run, and attach them only once those are in place.
 */
import { allAddresses, type DesiredEndpoint, type ReconcileResult } from '../dataplane.ts';
import { isGone, runBatch } from './batch.ts';
import { parseBatchErrors, type Runner } from './exec.ts';
import { inNamespace } from './netns.ts';
import { batchInput, renderEndpointAttach, renderEndpointCreate, renderEndpointCreateInside, renderEndpointInside, renderEndpointUndo } from './render.ts';

/**
 * Endpoints whose veth pairs exist and whose container side is configured (steps A and B), not yet on
 * their bridge: nothing reaches them or leaves them until attachEndpoints puts the host end on the bridge.
 */
export interface PreparedEndpoints {
  readonly candidates: readonly DesiredEndpoint[];
  /** endpoints that failed (already reported) */
  readonly failed: Set<DesiredEndpoint>;
  /** endpoints with a veth pair of ours to delete if they end up failed */
  readonly undo: Set<DesiredEndpoint>;
}

/**
 * Steps A and B. Safe to run while the firewall transaction and the network's entries are written: until
 * its host end is attached (attachEndpoints), a port carries no frame, so the anti-spoofing elements only
 * have to be in place by then.
 */
export async function prepareEndpoints(
  run: Runner,
  log: (line: string) => void,
  concurrency: number,
  endpoints: readonly DesiredEndpoint[],
  result: ReconcileResult,
  signal?: AbortSignal,
  namespaceOf: (ep: DesiredEndpoint) => string | undefined = () => undefined,
): Promise<PreparedEndpoints> {
  const failed = new Set<DesiredEndpoint>();
  const undo = new Set<DesiredEndpoint>();
  const fail = (ep: DesiredEndpoint, message: string) => {
    reportFailure(log, result, ep, message);
    failed.add(ep);
  };

  // The target namespace must exist before anything is created for the endpoint (handed-over Docker
  // endpoints have none: their peer stays here until libnetwork moves it).
  const exists = await Promise.all(endpoints.map((ep) => (ep.netns === undefined ? true : run.exists(ep.netns))));
  const candidates = endpoints.filter((ep, i) => {
    if (!exists[i]) reportFailure(log, result, ep, `network namespace ${ep.netns} does not exist`);
    return exists[i];
  });
  if (candidates.length === 0) return { candidates, failed, undo };

  // A container's endpoint whose host end goes to a network namespace, and that needs no sysctl between the
  // pair's creation and its configuration, is made from inside the container with its configuration (B)
  const direct = new Set(candidates.filter((ep) => ep.netns !== undefined && namespaceOf(ep) !== undefined && ipv6Sysctls(ep) === undefined));

  // A: the other veth pairs, peers handed to their namespaces (one batch in the host namespace)
  const lines: string[] = [];
  const owner: DesiredEndpoint[] = [];
  for (const ep of candidates) {
    if (direct.has(ep)) continue;
    for (const line of renderEndpointCreate(ep, namespaceOf(ep))) {
      lines.push(line);
      owner.push(ep);
    }
  }
  const create = await runBatch(run, ['ip'], lines, signal); // no process when every pair is made inside
  owner.forEach((ep, i) => {
    const message = create.failures.get(i) ?? (create.stopped && i > create.stopped.after ? create.stopped.message : undefined);
    const isAdd = lines[i]!.startsWith('link add');
    if (message === undefined) {
      if (isAdd) undo.add(ep);
      return;
    }
    if (!failed.has(ep)) fail(ep, `creating the veth pair failed at "${lines[i]}": ${message}`);
    if (isAdd && create.stopped && i > create.stopped.after) undo.add(ep); // fate unknown: clean up anyway
  });

  // B: inside each namespace, a few at a time (not for handed-over endpoints: Docker configures those)
  const inside = candidates.filter((ep) => !failed.has(ep) && ep.netns !== undefined);
  await mapLimit(inside, concurrency, async (ep) => {
    const sysctls = ipv6Sysctls(ep);
    if (sysctls) {
      const res = await run.run(['nsenter', `--net=${ep.netns!}`, ...sysctls], { signal, allowFailure: true });
      if (res.code !== 0) {
        fail(ep, `turning on IPv6 without router advertisements on ${ep.peerVeth} in ${ep.netns} failed: ${res.stderr.trim() || `exit code ${res.code}`}`);
        return;
      }
    }
    const creates = direct.has(ep);
    const script = creates ? [renderEndpointCreateInside(ep, namespaceOf(ep)!), ...renderEndpointInside(ep)] : renderEndpointInside(ep);
    const res = await run.run(['nsenter', `--net=${ep.netns!}`, 'ip', '-batch', '-'], {
      input: batchInput(script),
      signal,
      allowFailure: true,
    });
    if (res.code === 0) {
      if (creates) undo.add(ep);
      return;
    }
    const parsed = parseBatchErrors(res.stderr);
    const at = parsed.failures[0];
    const where = at ? ` at "${script[at.line] ?? '?'}"` : '';
    const message = at?.message || parsed.trailing || `exit code ${res.code}`;
    if (creates && at?.line === 0) {
      fail(ep, `creating the veth pair failed at "${script[0]}": ${message}`);
      return;
    }
    if (creates) undo.add(ep); // made (or fate unknown): clean up anyway
    fail(ep, `configuring ${ep.ifname} in ${ep.netns} failed${where}: ${message}`);
  });
  return { candidates, failed, undo };
}

/**
 * Steps C and D: attaches the prepared host ends (the "setup completed" mark), except those `refused`
 * names a reason for (their firewall or network could not be set up this pass); undoes what failed
 * endpoints created. Returns how many are ready.
 */
export async function attachEndpoints(
  run: Runner,
  log: (line: string) => void,
  prepared: PreparedEndpoints,
  refused: (ep: DesiredEndpoint) => string | undefined,
  result: ReconcileResult,
  signal?: AbortSignal,
  namespaceOf: (ep: DesiredEndpoint) => string | undefined = () => undefined,
): Promise<number> {
  const { candidates, failed, undo } = prepared;
  for (const ep of candidates) {
    if (failed.has(ep)) continue;
    const reason = refused(ep);
    if (reason === undefined) continue;
    result.endpointErrors.set(ep.id, reason);
    failed.add(ep);
  }

  // C: attach the host ends
  const attach = candidates.filter((ep) => !failed.has(ep));
  await perNamespace(run, attach, namespaceOf, async (inside, group) => {
    const attached = await runBatch(inside, ['ip'], group.map(renderEndpointAttach), signal);
    group.forEach((ep, i) => {
      const message = attached.failures.get(i) ?? (attached.stopped && i > attached.stopped.after ? attached.stopped.message : undefined);
      if (message !== undefined) {
        reportFailure(log, result, ep, `attaching ${ep.hostVeth} to ${ep.bridge} failed: ${message}`);
        failed.add(ep);
      }
    });
  });

  // D: undo what failed endpoints created; deleting the host end removes the peer wherever it is
  const leftovers = [...undo].filter((ep) => failed.has(ep));
  await perNamespace(run, leftovers, namespaceOf, async (inside, group) => {
    const cleanup = await runBatch(inside, ['ip'], group.map(renderEndpointUndo), signal);
    group.forEach((ep, i) => {
      const message = cleanup.failures.get(i);
      if (message !== undefined && !isGone(message)) log(`endpoint ${ep.id}: undo failed: ${message}`);
    });
  });

  let ready = 0;
  for (const ep of attach) {
    if (failed.has(ep)) continue;
    result.readyEndpoints.add(ep.id);
    ready++;
  }
  if (ready) log(`set up ${ready} endpoint${ready === 1 ? '' : 's'}`);
  return ready;
}

/**
 * An endpoint with an IPv6 address gets IPv6 on its interface and takes no router advertisements (issue 15):
 * its address and default route come from the manager, and an RA from anyone else would add a default route
 * or addresses behind vxnet's back. IPv6 is turned on for that one interface because a namespace may have it
 * off by default (`net.ipv6.conf.default.disable_ipv6=1`, which the moved veth inherits): adding the address
 * would then fail with "IPv6 is disabled on this device". Set on the peer before it is renamed and raised
 * (it keeps the settings), RAs off first, so that no RA is ever taken; the bridge's anti-spoofing drops RAs
 * from containers anyway, this covers the rest.
 */
export function ipv6Sysctls(ep: DesiredEndpoint): string[] | undefined {
  if (!allAddresses(ep).some((a) => a.address.includes(':'))) return undefined;
  return ['sysctl', '-q', '-w', `net.ipv6.conf.${ep.peerVeth}.accept_ra=0`, `net.ipv6.conf.${ep.peerVeth}.disable_ipv6=0`];
}

function reportFailure(log: (line: string) => void, result: ReconcileResult, ep: DesiredEndpoint, message: string): void {
  result.endpointErrors.set(ep.id, message);
  log(`endpoint ${ep.id}: ${message}`);
}

/** Runs `fn` once per namespace the endpoints' host ends are in (the host's: undefined), side by side. */
async function perNamespace(
  run: Runner,
  endpoints: readonly DesiredEndpoint[],
  namespaceOf: (ep: DesiredEndpoint) => string | undefined,
  fn: (inside: Runner, group: DesiredEndpoint[]) => Promise<void>,
): Promise<void> {
  const groups = new Map<string | undefined, DesiredEndpoint[]>();
  for (const ep of endpoints) {
    const ns = namespaceOf(ep);
    const group = groups.get(ns);
    if (group) group.push(ep);
    else groups.set(ns, [ep]);
  }
  await Promise.all([...groups].map(([ns, group]) => fn(ns === undefined ? run : inNamespace(run, ns), group)));
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
