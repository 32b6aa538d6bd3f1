/**
 * Exponential backoff, the one used by every retry loop in vxnet (agent watch and registration, pass
 * retries, certificate join and renewal, Docker network sync).
 *
 * The delay of the n-th consecutive failure (n from 0) is `minMs * 2^n`, never above `maxMs`. With `jitter`
 * the delay is drawn uniformly from [0, that ceiling] ("full jitter"): when a manager restarts, a thousand
 * agents lose their watch in the same instant and would otherwise come back in lockstep, one wave per
 * doubling; spreading each wave over the whole window lets the manager take them a few at a time.
 */

export interface BackoffOptions {
  /** the delay after the first failure (its ceiling, with jitter) */
  minMs: number;
  /** no delay is longer than this */
  maxMs: number;
  /** draw each delay from [0, ceiling] instead of waiting the ceiling itself */
  jitter?: boolean;
  /** a number in [0, 1); Math.random by default (tests pass their own) */
  random?: () => number;
}

/** Calling the manager until it answers (it may start long after the agent): 100 ms, 200 ms, ... 5 s. */
export const MANAGER_RETRY: Readonly<BackoffOptions> = { minMs: 100, maxMs: 5_000 };

export class Backoff {
  readonly #min: number;
  readonly #max: number;
  readonly #jitter: boolean;
  readonly #random: () => number;
  #failures = 0;
  #ceiling: number;

  constructor(options: BackoffOptions) {
    if (!(options.minMs > 0 && options.maxMs >= options.minMs)) {
      throw new RangeError(`Backoff: need 0 < minMs <= maxMs, got ${options.minMs} and ${options.maxMs}`);
    }
    this.#min = options.minMs;
    this.#max = options.maxMs;
    this.#jitter = options.jitter ?? false;
    this.#random = options.random ?? Math.random;
    this.#ceiling = this.#min;
  }

  /** consecutive failures counted since the last reset (each next() is one) */
  get failures(): number {
    return this.#failures;
  }

  /** the ceiling of the delay next() returned last (the delay itself without jitter) */
  get ceiling(): number {
    return this.#ceiling;
  }

  /**
   * The delay to wait after one more failure. `maxMs` lowers the cap for this call only (a certificate
   * renewal retries faster as its expiry nears).
   */
  next(maxMs = this.#max): number {
    const cap = Math.max(this.#min, Math.min(this.#max, maxMs));
    // a bounded exponent keeps the product finite after thousands of failures (the cap wins long before)
    this.#ceiling = Math.min(this.#min * 2 ** Math.min(this.#failures, 40), cap);
    this.#failures++;
    return this.#jitter ? Math.round(this.#random() * this.#ceiling) : this.#ceiling;
  }

  /** after a success: the next failure waits `minMs` again */
  reset(): void {
    this.#failures = 0;
    this.#ceiling = this.#min;
  }
}

/**
 * Whether a failed call found nothing listening at the manager's address (it is down or restarting): the
 * kernel refused the connection, which costs the manager nothing however often it is tried. Any other
 * failure (a connection reset during the TLS handshake, no answer in time, a silent stream) came from a
 * manager that is up and perhaps overloaded. Looks at the error, the cause it wraps, and Node's wording.
 */
export function nothingListening(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOENT' || /\bECONNREFUSED\b/.test(e.message)) return true;
  }
  return false;
}

/** Waits `ms`, or less when `signal` aborts; never rejects (callers look at the signal afterwards). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

export interface RetryOptions {
  backoff: Backoff;
  signal: AbortSignal;
  /** whether a failure is worth another try (default: every failure is) */
  retryable?: (err: unknown) => boolean;
  /** told of each failure that will be retried, and of the delay before the next try */
  onRetry?: (err: unknown, delayMs: number) => void;
}

/**
 * Calls `fn` until it resolves, waiting a backoff delay after each failure. Rejects with the failure when it
 * is not retryable, and with the signal's reason once the signal aborts.
 */
export async function retryWithBackoff<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { backoff, signal } = options;
  for (;;) {
    signal.throwIfAborted();
    try {
      const value = await fn();
      backoff.reset();
      return value;
    } catch (err) {
      if (signal.aborted) throw err;
      if (options.retryable && !options.retryable(err)) throw err;
      const delay = backoff.next();
      options.onRetry?.(err, delay);
      await pause(delay, signal);
    }
  }
}
