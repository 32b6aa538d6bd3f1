/**
 * How the etcd store words its failures. Every failure becomes one sentence with the `unavailable` code
 * (HTTP 503). Losing quorum shows as timeouts, "no leader" or refused connections depending on which member
 * a retry reached, so those all get the same sentence; the client's own wording stays in `cause` for the logs.
 */
import { VxnetError } from '../../core/errors.ts';
import { CompactedError } from './store.ts';

/**
 * Errors after which etcd may or may not have applied the request (losing quorum shows as any of these). The
 * client stops calling members that failed for a while ("the circuit breaker is open"): none answered then.
 */
const NO_ANSWER = /no answer within|UNAVAILABLE|DEADLINE|ECONNREFUSED|leader|timed out|timeout|circuit breaker/i;

const detailOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** True unless etcd answered with a refusal: the request may have been applied. */
export function isNoAnswer(err: unknown): boolean {
  return NO_ANSWER.test(detailOf(err)) || (err instanceof Error && err.cause !== undefined && NO_ANSWER.test(detailOf(err.cause)));
}

/** `err` as the one sentence a user sees; `endpoints` name the cluster. */
export function unavailable(err: unknown, endpoints: readonly string[]): Error {
  if (err instanceof VxnetError || err instanceof CompactedError) return err;
  const where = `the cluster store (etcd at ${endpoints.join(',')})`;
  const detail = detailOf(err);
  const message = NO_ANSWER.test(detail)
    ? `${where} did not complete the request: it has no quorum or none of its members answered; writes resume once a majority of its members is reachable.`
    : `${where} refused the request: ${detail.split('\n')[0]!.replace(/\s+/g, ' ').replace(/[.\s]+$/, '')}.`;
  return new VxnetError('unavailable', message, { cause: err });
}
