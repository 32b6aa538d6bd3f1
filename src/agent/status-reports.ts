/**
 * The agent's endpoint status reports to its manager, a few at a time, each endpoint's latest outcome only,
 * retried after a backoff when the manager did not take it.
 *
 * Why not one request per outcome, at once, and again at the next pass when it failed: when every agent
 * starts at once (a cold start, a manager cluster back from an outage) each sent all its endpoints' reports
 * together, more than the managers could answer within the clients' timeout; the ones that timed out were
 * sent again at the next pass, which on a starting agent comes every few hundred milliseconds, while the
 * managers were still working through the first ones (bench:scale with 3 managers on etcd: 424,558 reports
 * for 100,000 endpoints). Here an agent has at most MAX_IN_FLIGHT reports out, a report still waiting is
 * replaced by a newer outcome of its endpoint, and a failed one waits out a jittered backoff instead of the
 * next pass. A manager that answers with a refusal (the endpoint is gone, say) is believed: not retried.
 */
import { Backoff } from '../core/backoff.ts';
import { VxnetError, messageOf } from '../core/errors.ts';
import type { EndpointStatusRequest } from '../core/model.ts';

/** Reports out at once per agent; enough for a steady trickle, few enough to never swamp a manager. */
export const MAX_IN_FLIGHT = 4;
/** after failures: 0.5 s, 1 s, 2 s, ... 30 s, each drawn from [0, that] (core/backoff.ts) */
const RETRY = { minMs: 500, maxMs: 30_000, jitter: true } as const;
/** Failures that say nothing about the report itself: the manager was unreachable, slow or busy. */
const TRANSIENT = new Set(['unavailable', 'timeout', 'internal']);

export interface StatusReporterOptions {
  send: (id: string, report: EndpointStatusRequest, signal?: AbortSignal) => Promise<void>;
  log: (line: string) => void;
  /** aborted: the retries end (the agent stopping) */
  signal?: () => AbortSignal | undefined;
  /** a report that will not be retried (the manager refused it): the agent may report that endpoint again */
  onDropped?: (id: string) => void;
  backoff?: Backoff;
}

export class StatusReporter {
  readonly #o: StatusReporterOptions;
  readonly #backoff: Backoff;
  /** the latest outcome still to send per endpoint, in the order first queued */
  readonly #queue = new Map<string, EndpointStatusRequest>();
  #inFlight = 0;
  /** no report goes out before this time (after a failure) */
  #pausedUntil = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: StatusReporterOptions) {
    this.#o = options;
    this.#backoff = options.backoff ?? new Backoff(RETRY);
  }

  /** Sends `report` for endpoint `id` as soon as a slot is free, instead of any report still queued for it. */
  report(id: string, report: EndpointStatusRequest): void {
    this.#queue.delete(id);
    this.#queue.set(id, report);
    this.#pump();
  }

  /** The endpoint is gone: whatever is still queued for it is not sent. */
  forget(id: string): void {
    this.#queue.delete(id);
  }

  /** reports waiting for a slot or a retry (for tests and logs) */
  get pending(): number {
    return this.#queue.size;
  }

  #pump(): void {
    if (this.#o.signal?.()?.aborted) return;
    const wait = this.#pausedUntil - Date.now();
    if (wait > 0) {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, wait);
      this.#timer.unref?.();
      return;
    }
    while (this.#inFlight < MAX_IN_FLIGHT && this.#queue.size > 0) {
      const [id, report] = this.#queue.entries().next().value as [string, EndpointStatusRequest];
      this.#queue.delete(id);
      this.#inFlight++;
      void this.#send(id, report).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #send(id: string, report: EndpointStatusRequest): Promise<void> {
    try {
      await this.#o.send(id, report, this.#o.signal?.());
      this.#backoff.reset();
    } catch (err) {
      if (this.#o.signal?.()?.aborted) return;
      const transient = !(err instanceof VxnetError) || TRANSIENT.has(err.code);
      if (!transient) {
        this.#o.log(`warning: the manager refused the status of endpoint ${id}: ${messageOf(err)}`);
        this.#o.onDropped?.(id);
        return;
      }
      // a newer outcome queued meanwhile wins; otherwise this one goes again after the pause
      if (!this.#queue.has(id)) this.#queue.set(id, report);
      const delay = this.#backoff.next();
      this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + delay);
      if (this.#backoff.failures === 1) this.#o.log(`warning: could not report status of endpoint ${id}: ${messageOf(err)}; retrying in ${Math.round(delay)} ms`);
    }
  }
}
