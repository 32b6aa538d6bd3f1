/**
 * The agent: one per host. It registers its node, keeps a watch on the manager for what concerns this node,
 * and runs one reconcile loop that makes the data plane match the desired state rendered from that view.
 *
 * Fail-static by design: the kernel is only ever changed by a reconcile pass, a pass only runs once a
 * snapshot has been received, and losing the manager changes nothing — the agent keeps its last view,
 * retries with backoff, and reconciles against the fresh snapshot when the stream comes back (or against
 * the changes it missed, when the manager still has them: src/manager/watch-resume.ts).
 *
 * Passes are coalesced: changes arriving while a pass runs mark the loop dirty and one more pass follows,
 * so a burst of N changes costs a few passes, not N.
 */
import type { Endpoint, EndpointStatusRequest, RegisterNodeRequest } from '../core/model.ts';
import { Backoff, MANAGER_RETRY, nothingListening, pause, retryWithBackoff } from '../core/backoff.ts';
import { SerialPasses } from '../core/passes.ts';
import { messageOf, VxnetError } from '../core/errors.ts';
import type { AgentOptions } from './agent-options.ts';
import type { DesiredEndpoint, ReconcileResult } from './dataplane.ts';
import { containerEndpoints, desiredState } from './desired.ts';
import { StatusReporter } from './status-reports.ts';
import { ClusterView } from './view.ts';

export type { AgentManagerApi, AgentOptions, ContainerNamespaces, WatchOptions } from './agent-options.ts';

/** the outcome of a ready endpoint in #reported (any other outcome is an error message) */
const READY = Symbol('ready');
/** A watch that has carried nothing for this long is given up and opened again (the manager pings every 10 s). */
export const WATCH_IDLE_MS = 30_000;
/**
 * Reconnecting the watch after the manager went away. A withdrawn MAC must leave every peer within 2 s, also
 * right after a manager restart, so while nothing listens at the manager's address an agent never waits more
 * than 1 s; jittered, because every agent of the cluster lost its stream in the same instant (bench/scale:
 * 1,000 agents on one manager).
 */
const WATCH_RECONNECT_MAX_MS = 1_000;
/**
 * The same when the manager is up but failed the attempt (a handshake it cut, no answer, a silent stream):
 * it is most likely overloaded, as when a thousand agents start at once, and retrying every second kept it
 * so (bench/scale: each retry a TLS handshake the manager pays for, cold start twice as long).
 */
const WATCH_BUSY_RECONNECT_MAX_MS = 5_000;
/** a node removed from the manager asks again this often (it is an administrator's doing, not an outage) */
const REMOVED_RETRY_MS = 5_000;
/** a failed pass is retried after 200 ms, 400 ms, ... (a pass caused by a new change may come earlier) */
const PASS_RETRY_MIN_MS = 200;
const PASS_RETRY_MAX_MS = 30_000;

export class Agent {
  readonly view: ClusterView;
  /** highest revision fully applied to the kernel */
  reconciledRevision = 0;
  readonly #options: AgentOptions;
  readonly #log: (line: string) => void;
  readonly #passLoop = new SerialPasses(() => this.#pass(), {
    retry: { minMs: PASS_RETRY_MIN_MS, maxMs: PASS_RETRY_MAX_MS },
    active: () => !this.#signal?.aborted,
  });
  /** last status reported per local endpoint, so a status is sent once, not on every pass */
  readonly #reported = new Map<string, string | typeof READY>();
  /** the local endpoints of a pass after which each was ready and reported so (see #reportStatuses) */
  #allReported: readonly DesiredEndpoint[] | undefined;
  /** sends them a few at a time, retrying after a backoff (status-reports.ts) */
  readonly #statuses: StatusReporter;
  #signal: AbortSignal | undefined;
  #heartbeatInFlight = false;
  /** a heartbeat is owed as soon as the one in flight returns (see #pass) */
  #heartbeatOwed = false;
  /** the local endpoints of the last pass, to notice one going away */
  #lastLocals: readonly DesiredEndpoint[] = [];
  /** and those left out of it because their container could not be found */
  #lastUnresolved: readonly string[] = [];
  /** the view's epoch at the last pass: the first pass on a new snapshot is reported at once */
  #lastEpoch = -1;
  #passes = 0;
  /** the last pass's outcome: which local endpoints are ready, and why the others are not (waitForEndpoint) */
  #lastResult: ReconcileResult | undefined;
  readonly #passListeners = new Set<() => void>();
  readonly #viewListeners = new Set<() => void>();

  constructor(options: AgentOptions) {
    this.#options = options;
    this.#log = options.log ?? (() => {});
    this.view = new ClusterView({ allNetworks: options.watchAllNetworks ?? false });
    const send = (id: string, report: EndpointStatusRequest, signal?: AbortSignal) => options.api.setEndpointStatus(id, report, signal);
    // a report the manager refused: the next pass may send that endpoint's again, as any not yet reported
    const onDropped = (id: string) => void (this.#reported.delete(id), (this.#allReported = undefined));
    this.#statuses = new StatusReporter({ send, log: this.#log, signal: () => this.#signal, onDropped });
  }

  /** Calls `listener` after every watch message that changed the view; returns the unsubscribe function. */
  onViewChange(listener: () => void): () => void {
    this.#viewListeners.add(listener);
    return () => this.#viewListeners.delete(listener);
  }

  /**
   * Resolves once a reconcile pass has set up local endpoint `id` (the Docker plugin's Join waits for its
   * veth pair); rejects with `attach_failed` and the reason when a pass failed to, `timeout` after `timeoutMs`.
   */
  waitForEndpoint(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const outcome = this.#outcomeOf(id);
        if (outcome === undefined) return false;
        finish();
        if (outcome === true) resolve();
        else reject(new VxnetError('attach_failed', `node ${this.#options.self.name} could not set up endpoint ${id}: ${outcome}`));
        return true;
      };
      const onAbort = (): void => {
        finish();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new VxnetError('timeout', `node ${this.#options.self.name} did not set up endpoint ${id} within ${timeoutMs / 1000} s.`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.#passListeners.delete(listener);
        signal?.removeEventListener('abort', onAbort);
      };
      const listener = (): void => void check();
      if (check()) return;
      if (signal?.aborted) return onAbort();
      this.#passListeners.add(listener);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  get passes(): number {
    return this.#passes;
  }

  async run(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    const { api, self } = this.#options;
    const { wireguard } = this.#options;
    const registration: RegisterNodeRequest = { name: self.name, address: self.address, mtu: this.#options.underlayMtu, ...(wireguard ? { wireguard } : {}) };
    await retryWithBackoff(() => api.registerNode(registration, signal), {
      backoff: new Backoff(MANAGER_RETRY),
      signal,
      onRetry: (err, ms) => this.#log(`warning: register node failed: ${messageOf(err)}; retrying in ${ms} ms`),
    });
    this.#log(`node ${self.name} registered (underlay ${self.address} on ${self.underlayDevice}, mtu ${this.#options.underlayMtu})`);

    const heartbeat = setInterval(() => this.#heartbeat(), this.#options.heartbeatIntervalMs ?? 5_000);
    const resync = setInterval(() => this.schedule(), this.#options.resyncIntervalMs ?? 30_000);
    signal.addEventListener('abort', () => {
      clearInterval(heartbeat);
      clearInterval(resync);
      this.#passLoop.stop();
    });

    const reconnect = new Backoff({ minMs: MANAGER_RETRY.minMs, maxMs: WATCH_BUSY_RECONNECT_MAX_MS, jitter: true });
    let removedLogged = false;
    // when the watch was first lost, to say how long the outage lasted once a snapshot arrives again
    let lostAt: number | undefined;
    const idleMs = this.#options.watchIdleMs ?? WATCH_IDLE_MS;
    // The revision up to which the view holds every change: a snapshot's or a ping's (sent after everything
    // before it), or one below the last change's (the lines of one revision may be cut between them). The next
    // stream resumes after it (src/manager/watch-resume.ts) instead of taking a snapshot.
    let held = 0;
    while (!signal.aborted) {
      let removed = false;
      let failure: string | undefined;
      let busy = false;
      // A manager that is unreachable without a reset (packets dropped, or it restarted while they were) leaves
      // the stream open and silent for ever; the manager pings every 10 s, so a silent stream is a dead one.
      const attempt = new AbortController();
      const abortAttempt = (): void => attempt.abort(signal.reason);
      signal.addEventListener('abort', abortAttempt, { once: true });
      // Any bytes count, not only whole messages: a snapshot of tens of thousands of endpoints is one line that
      // can take longer than that to arrive when a thousand agents sync at once (bench/scale). Receiving only
      // notes the time; one timer looks at it, instead of a timer re-armed for every chunk.
      let lastHeard = performance.now();
      const heard = (): void => {
        lastHeard = performance.now();
      };
      let idleTimer: NodeJS.Timeout | undefined;
      const checkIdle = (): void => {
        const silentMs = performance.now() - lastHeard;
        if (silentMs >= idleMs) attempt.abort(new Error(`the manager has sent nothing for ${idleMs / 1000} s (it pings every 10 s)`));
        else idleTimer = setTimeout(checkIdle, idleMs - silentMs);
      };
      idleTimer = setTimeout(checkIdle, idleMs);
      const since = this.view.synced && held > 0 ? held : undefined;
      let first = true;
      try {
        await api.watch(
          self.name,
          (message) => {
            heard();
            if (message.type === 'diagnose') {
              this.#options.diagnose?.(message, this);
              return;
            }
            if (message.type === 'snapshot') held = message.revision;
            else held = Math.max(held, message.type === 'ping' ? message.revision : message.revision - 1);
            // a resumed stream starts with the changes after `since` or a ping at the manager's revision (one
            // waiting for its snapshot gets pings at revision 0)
            if (first && since !== undefined && message.type !== 'snapshot' && message.revision >= since) {
              removedLogged = false;
              reconnect.reset();
              const outage = lostAt === undefined ? '' : ` after ${((performance.now() - lostAt) / 1000).toFixed(1)} s`;
              this.#log(`node ${self.name} resumed its watch from revision ${since}${outage}: no snapshot needed`);
              lostAt = undefined;
            }
            first = false;
            if (message.type === 'snapshot') {
              removedLogged = false;
              reconnect.reset();
              if (lostAt !== undefined) {
                this.#log(`node ${self.name} reconnected to the manager after ${((performance.now() - lostAt) / 1000).toFixed(1)} s`);
                lostAt = undefined;
              }
            }
            if (this.view.apply(message)) {
              this.schedule();
              for (const listener of this.#viewListeners) listener();
            }
          },
          attempt.signal,
          { ...(this.#options.watchAllNetworks ? { allNetworks: true } : {}), ...(since === undefined ? {} : { since }), onData: heard },
        );
        if (!signal.aborted) {
          this.#log('warning: watch stream ended; reconnecting');
          this.#options.observer?.watchLost();
          lostAt ??= performance.now();
        }
      } catch (err) {
        if (signal.aborted) break;
        const code = (err as { code?: unknown }).code;
        if (code === 'node_not_found' || code === 'certificate_revoked') {
          // Removed with `vxnet node rm` (which also revokes the node's certificate), or the manager lost its
          // store. Re-registering on our own would undo an administrator's removal, so the agent only says so,
          // keeps the kernel as it is and keeps asking.
          if (!removedLogged) this.#log(removedMessage(self.name, code));
          removedLogged = true;
          removed = true;
        } else {
          failure = messageOf(err);
          busy = !nothingListening(err);
          lostAt ??= performance.now();
          this.#options.observer?.watchLost();
        }
      } finally {
        clearTimeout(idleTimer);
        signal.removeEventListener('abort', abortAttempt);
      }
      if (signal.aborted) break;
      const delay = removed ? REMOVED_RETRY_MS : reconnect.next(busy ? WATCH_BUSY_RECONNECT_MAX_MS : WATCH_RECONNECT_MAX_MS);
      // the ceiling is logged: with jitter the delays themselves go up and down
      if (failure !== undefined) this.#log(`watch failed: ${failure}; retrying in ${reconnect.ceiling} ms or less (kernel state is kept)`);
      await pause(delay, signal);
    }
    await this.#passLoop.idle();
    this.#log(`node ${self.name}: agent stopped (kernel state is left as it is)`);
  }

  /** Requests a pass; passes never overlap, and requests made during a pass cause exactly one more. */
  schedule(): void {
    this.#passLoop.schedule();
  }

  /** Resolves once no pass is running or pending (for tests). */
  async idle(): Promise<void> {
    await this.#passLoop.idle();
  }

  async #pass(): Promise<void> {
    if (!this.view.synced) return;
    const revision = this.view.revision;
    const resolved = await this.#resolveContainers();
    const desired = desiredState(this.view, this.#options.self, resolved.namespaces);
    const started = performance.now();
    let result: ReconcileResult;
    try {
      result = await this.#options.dataplane.reconcile(desired, this.#signal);
    } catch (err) {
      result = { changes: 0, endpointErrors: new Map(), readyEndpoints: new Set(), error: messageOf(err) };
    }
    this.#passes++;
    const elapsed = performance.now() - started;
    this.#options.observer?.pass(result, elapsed / 1000, revision);
    const ms = elapsed.toFixed(1);
    if (result.changes > 0 || result.error || result.endpointErrors.size > 0) {
      this.#log(
        (result.error || result.endpointErrors.size > 0 ? 'warning: ' : '') +
        `reconciled revision ${revision}: ${result.changes} changes in ${ms} ms` +
          (result.endpointErrors.size ? `, ${result.endpointErrors.size} endpoint errors` : '') +
          (result.error ? `; error: ${result.error}` : ''),
      );
    }
    for (const [id, reason] of resolved.errors) result.endpointErrors.set(id, reason);
    // the zones changed with the rendering above; sockets follow the bridges the pass made or removed
    this.#options.dns?.sync(this.view, this.#options.self);
    this.#lastResult = result;
    for (const listener of [...this.#passListeners]) listener();
    this.#reportStatuses(desired.endpoints, resolved.errors, result);
    await this.#options.afterPass?.(this.view, this.#signal).catch((err: unknown) => this.#log(`warning: ${messageOf(err)}`));

    if (result.error || result.endpointErrors.size > 0) {
      this.#passLoop.failed();
    } else {
      this.#passLoop.succeeded();
    }
    if (!result.error) {
      this.reconciledRevision = Math.max(this.reconciledRevision, revision);
      if (this.#reportAtOnce(desired.endpoints, resolved.errors)) this.#heartbeat();
    }
  }

  /**
   * Whether this pass's revision is worth a heartbeat now rather than at the next tick. Someone waits for it
   * only when a local endpoint went away (a delete with `wait` answers once this node confirms) or on the
   * first pass of a new snapshot (the node shows as reconciled); anything else waits for the periodic
   * heartbeat. Reporting after every pass made each change to a network of 1,000 hosts cost 1,000 requests
   * to the manager (bench/scale).
   */
  #reportAtOnce(locals: readonly DesiredEndpoint[], unresolved: ReadonlyMap<string, string>): boolean {
    let removed = false;
    // the renderer hands over the same array while no local endpoint changed
    if (locals !== this.#lastLocals) for (const { id } of this.#lastLocals) if (!this.view.endpoints.has(id)) removed = true;
    for (const id of this.#lastUnresolved) if (!this.view.endpoints.has(id)) removed = true;
    this.#lastLocals = locals;
    this.#lastUnresolved = unresolved.size === 0 ? [] : [...unresolved.keys()];
    const fresh = this.#lastEpoch !== this.view.epoch;
    this.#lastEpoch = this.view.epoch;
    return removed || fresh;
  }

  /**
   * The namespaces of the local endpoints attached to Docker containers, by container reference, and the
   * reason for each such endpoint whose container cannot be found (it is then left out of this pass).
   */
  async #resolveContainers(): Promise<{ namespaces: Map<string, string>; errors: Map<string, string> }> {
    const namespaces = new Map<string, string>();
    const errors = new Map<string, string>();
    const self = this.#options.self.name;
    const wanted = containerEndpoints(this.view, this.#options.self);
    if (wanted.length === 0) return { namespaces, errors };
    const resolver = this.#options.containers;
    const failures = new Map<string, string>();
    await Promise.all(
      [...new Set(wanted.map((e) => e.container!))].map(async (ref) => {
        if (!resolver) return;
        try {
          namespaces.set(ref, await resolver.resolve(ref, this.#signal));
        } catch (err) {
          failures.set(ref, messageOf(err));
        }
      }),
    );
    for (const endpoint of wanted) {
      const ref = endpoint.container!;
      if (namespaces.has(ref)) continue;
      errors.set(
        endpoint.id,
        resolver
          ? `container ${ref}: ${failures.get(ref) ?? 'not found'}`
          : `the agent of node ${self} is not linked to a Docker engine (start it with --docker-socket), so it cannot attach container ${ref}`,
      );
    }
    return { namespaces, errors };
  }

  /** Ready (true), the reason it is not, or undefined when the last pass did not get to endpoint `id`. */
  #outcomeOf(id: string): string | true | undefined {
    const result = this.#lastResult;
    if (!result) return undefined;
    return result.endpointErrors.get(id) ?? (result.readyEndpoints.has(id) ? true : undefined);
  }

  /**
   * Tells the manager how each local endpoint fared, once per outcome: `#reported` keeps the last outcome
   * sent per endpoint ("ready" or the error message), and an endpoint the manager already shows with that
   * outcome (after a restart) is not reported again. Runs after every pass: when the local endpoints are
   * the same list as at the last pass, and were all ready then and still are, there is nothing to look at
   * (the usual pass on a busy node, caused by other nodes' endpoints).
   */
  #reportStatuses(locals: readonly DesiredEndpoint[], unresolved: ReadonlyMap<string, string>, result: ReconcileResult): void {
    const allReady = unresolved.size === 0 && result.endpointErrors.size === 0 && result.readyEndpoints.size === locals.length;
    if (allReady && locals === this.#allReported) return;
    for (const id of this.#reported.keys()) {
      if (this.view.endpoints.has(id)) continue;
      this.#reported.delete(id);
      this.#statuses.forget(id);
    }
    for (const { id } of locals) this.#reportStatus(id, result);
    for (const id of unresolved.keys()) this.#reportStatus(id, result);
    this.#allReported = allReady ? locals : undefined;
  }

  #reportStatus(id: string, result: ReconcileResult): void {
    const endpoint: Endpoint | undefined = this.view.endpoints.get(id);
    if (!endpoint) return;
    const failure = result.endpointErrors.get(id);
    if (failure === undefined && !result.readyEndpoints.has(id)) return;
    const outcome = failure ?? READY;
    const sent = this.#reported.get(id);
    if (sent === outcome) return;
    const shown = endpoint.status === 'ready' ? READY : endpoint.status === 'error' ? (endpoint.message ?? '') : undefined;
    if (sent === undefined && shown === outcome) return;
    this.#reported.set(id, outcome);
    const report: EndpointStatusRequest = failure === undefined ? { status: 'ready' } : { status: 'error', message: failure };
    this.#statuses.report(id, report);
  }

  #heartbeat(): void {
    if (this.#signal?.aborted) return;
    if (this.#heartbeatInFlight) {
      // the one in flight may carry an older revision than a waiting delete needs: send another after it
      this.#heartbeatOwed = true;
      return;
    }
    this.#heartbeatInFlight = true;
    this.#heartbeatOwed = false;
    const tunnels = this.#options.tunnels?.();
    this.#options.api
      .heartbeat(this.#options.self.name, { reconciledRevision: this.reconciledRevision, ...(tunnels ? { tunnels } : {}) }, this.#signal)
      .catch(() => {
        // The watch loop reports manager outages; heartbeats just try again on the next tick.
      })
      .finally(() => {
        this.#heartbeatInFlight = false;
        if (this.#heartbeatOwed) this.#heartbeat();
      });
  }
}

/** What the agent says once when the manager no longer knows its node (`vxnet node rm`). */
function removedMessage(node: string, code: 'node_not_found' | 'certificate_revoked'): string {
  return code === 'certificate_revoked'
    ? `node ${node} is no longer registered with the manager: it was removed with "vxnet node rm" and its certificate is revoked; ` +
        'kernel state is left as it is; start the agent with the worker token to join again'
    : `node ${node} is no longer registered with the manager (removed with "vxnet node rm"?): kernel state is left as it is; restart the agent to register the node again`;
}
