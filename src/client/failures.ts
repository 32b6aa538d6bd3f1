/**
 * How the manager's client words what went wrong, always as a VxnetError: the manager's own
 * `{error: {code, message}}` when it answered, `untrusted_manager` when TLS refused it, `unavailable` when
 * it could not be reached or a stream was cut, `timeout` when it did not answer in time.
 */
import { type ErrorCode, VxnetError, isErrorCode } from '../core/errors.ts';
import { HttpFailure, type HttpResponse, MAX_RESPONSE_BYTES } from '../http/client.ts';

/** OpenSSL's certificate verification failures, Node's host name check and ours of the role (trust.ts), as error codes. */
const TLS_TRUST_FAILURE = /^(UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|INVALID_CA|INVALID_PURPOSE|HOSTNAME_MISMATCH|ERR_TLS_CERT_|NOT_A_MANAGER_CERT)/;

/** A transport failure (src/http/client.ts) in the client's words; anything else (an abort's reason) as it is. */
export function failure(url: string, err: unknown, timeoutMs: number | undefined): unknown {
  if (!(err instanceof HttpFailure)) return err;
  switch (err.kind) {
    case 'timeout':
      return new VxnetError('timeout', `the manager at ${url} did not answer within ${formatSeconds(timeoutMs ?? 0)}.`);
    case 'closed':
      return new VxnetError('unavailable', `the client of the manager at ${url} was closed before it answered.`);
    case 'too_large':
      return new VxnetError('internal', `the manager at ${url} sent an answer larger than ${MAX_RESPONSE_BYTES} bytes.`);
    default:
      return unreachable(url, err.cause);
  }
}

function unreachable(url: string, err: unknown): VxnetError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && TLS_TRUST_FAILURE.test(code)) {
    const detail = err instanceof Error && err.message !== code ? `${code}: ${err.message}` : code;
    return new VxnetError('untrusted_manager', `the manager at ${url} presented a certificate this client does not trust (${detail}).`, {
      cause: err,
    });
  }
  const reason = code ?? (err instanceof Error ? err.message : String(err));
  return new VxnetError('unavailable', `cannot reach the manager at ${url}: ${reason}`, { cause: err });
}

export function streamCut(url: string, err: unknown): VxnetError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return new VxnetError('unavailable', `the watch stream from the manager at ${url} was cut${code ? `: ${code}` : '.'}`, {
    cause: err,
  });
}

/** The VxnetError of a non-2xx answer: the manager's own when it sent one. */
export function errorFrom(url: string, response: HttpResponse): VxnetError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(response.body);
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (error && typeof error.message === 'string' && error.message !== '') {
    return new VxnetError(isErrorCode(error.code) ? error.code : 'internal', error.message);
  }
  const code = isErrorCode(error?.code) ? error.code : codeForStatus(response.status);
  return new VxnetError(code, `the manager at ${url} answered HTTP ${response.status} without an error message.`);
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 504:
      return 'timeout';
    default:
      return 'internal';
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
