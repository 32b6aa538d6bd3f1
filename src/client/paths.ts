/** How the client writes a request's path and query: path segments encoded, query parameters left out when undefined, wait times checked. */
import { VxnetError } from '../core/errors.ts';
import { DEFAULT_WAIT_SECONDS } from '../core/model.ts';

export function waitSecondsOf(value: number | undefined): number {
  const wait = value ?? DEFAULT_WAIT_SECONDS;
  if (!Number.isSafeInteger(wait) || wait < 0) {
    throw new VxnetError('bad_request', `the wait time must be a whole number of seconds, 0 or more (got ${String(value)}).`);
  }
  return wait;
}

export function segment(value: string): string {
  return encodeURIComponent(value);
}

export function queryString(query: Record<string, string | number | boolean | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}
