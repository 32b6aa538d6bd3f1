/**
 * How the store talks to etcd: the etcd3 client's options (endpoints, TLS, per-attempt deadline) and the
 * delay before a broken watch stream is opened again.
 *
 * Why the watch delay is ours. The client's default is an exponential backoff that grows to 30 s while a
 * member stays unreachable and starts again from its lowest step only once a stream is back. A manager whose
 * member was down for a few seconds thus often waited up to 30 s more after the member returned before its
 * watch — and every agent's watch hub fed by it — moved again (the compacted-watch unit test took 33 s instead
 * of 3 s now and then). Trying again is one small gRPC call, so the wait is capped at WATCH_RETRY_MAX_MS.
 */
import type { IOptions } from 'etcd3';

/** First wait before a broken watch stream is opened again; doubled per failed attempt up to the cap. */
export const WATCH_RETRY_FIRST_MS = 100;
/** The longest a watch stays closed after its member is back (see the top of this file). */
export const WATCH_RETRY_MAX_MS = 1_000;

/** The shape of cockatiel's IBackoff that etcd3's watch manager uses: a duration and the step after it. */
export interface WatchBackoff {
  readonly duration: number;
  next(context?: unknown): WatchBackoff;
}

/** Doubling from `firstMs`, capped at `maxMs`; `next()` from the factory gives the first step. */
export function cappedBackoff(firstMs = WATCH_RETRY_FIRST_MS, maxMs = WATCH_RETRY_MAX_MS): WatchBackoff {
  const step = (ms: number): WatchBackoff => ({ duration: ms, next: () => step(Math.min(maxMs, ms * 2)) });
  // the factory itself: the watch manager calls next() on it for the first step and after each success
  return { duration: firstMs, next: () => step(firstMs) };
}

export interface EtcdTls {
  /** PEM of the CA that signed etcd's server certificates */
  ca: Buffer;
  /** client certificate and key (PEM) when etcd requires client authentication */
  cert?: Buffer;
  key?: Buffer;
}

/** The etcd3 client's options; `attemptMs` bounds one attempt of a unary request (the client retries). */
export function clientOptions(endpoints: string[], tls: EtcdTls | undefined, dialMs: number, attemptMs: number): IOptions {
  const scheme = tls ? 'https' : 'http';
  const options: IOptions = {
    hosts: endpoints.map((e) => `${scheme}://${e}`),
    dialTimeout: dialMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + attemptMs }),
    faultHandling: { watchBackoff: cappedBackoff() },
  };
  if (tls) {
    options.credentials = {
      rootCertificate: tls.ca,
      ...(tls.key ? { privateKey: tls.key } : {}),
      ...(tls.cert ? { certChain: tls.cert } : {}),
    };
  }
  return options;
}
