/**
 * Passes that never overlap, for a loop that brings something in line with a view (the agent's kernel
 * reconcile, the Docker network sync). Requests made while a pass runs cause exactly one more pass, not one
 * each: a burst of changes costs two passes at the most. A failed pass is tried again after a backoff delay
 * (core/backoff.ts), and the next success starts the delays over.
 */
import { Backoff, type BackoffOptions } from './backoff.ts';

export interface SerialPassesOptions {
  /** delays before another try of a failed pass */
  retry: BackoffOptions;
  /** false once the owner stopped (its signal aborted): requests are dropped and no further pass starts */
  active: () => boolean;
  /** let the process exit while a retry waits (a daemon part that does not keep its process alive) */
  unrefRetry?: boolean;
}

export class SerialPasses {
  readonly #pass: () => Promise<void>;
  readonly #o: SerialPassesOptions;
  readonly #retry: Backoff;
  #dirty = false;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** `pass` reports its own outcome with failed() or succeeded(); a rejection escapes to whoever awaits idle() */
  constructor(pass: () => Promise<void>, options: SerialPassesOptions) {
    this.#pass = pass;
    this.#o = options;
    this.#retry = new Backoff(options.retry);
  }

  /** consecutive failed passes */
  get failures(): number {
    return this.#retry.failures;
  }

  /** Requests a pass. */
  schedule(): void {
    if (!this.#o.active()) return;
    this.#dirty = true;
    if (!this.#running) this.#running = this.#loop().finally(() => (this.#running = undefined));
  }

  /** Resolves once no pass is running or pending. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** The pass failed: another is requested after the next backoff delay, which is returned. */
  failed(): number {
    const delay = this.#retry.next();
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.schedule(), delay);
    if (this.#o.unrefRetry) this.#timer.unref();
    return delay;
  }

  /** The pass succeeded: the next failure waits the shortest delay again. */
  succeeded(): void {
    this.#retry.reset();
  }

  /** Drops a pending retry (when the owner stops). */
  stop(): void {
    clearTimeout(this.#timer);
  }

  async #loop(): Promise<void> {
    while (this.#dirty && this.#o.active()) {
      this.#dirty = false;
      await this.#pass();
    }
  }
}
