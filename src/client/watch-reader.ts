/**
 * Reading the manager's watch stream (docs/api.md, "Watch"): NDJSON, one message per line, each checked
 * against its message type's schema before the agent sees it. A snapshot is a single line of megabytes, so
 * lines are reassembled from chunks without rescanning what has arrived already.
 */
import type { IncomingMessage } from 'node:http';
import { VxnetError } from '../core/errors.ts';
import type { WatchMessage } from '../core/model.ts';

/** Type-only: the schemas module is loaded lazily by the client (src/client/client.ts, loadSchemas). */
export type Schemas = typeof import('../core/schema/index.ts');

export interface WatchReading {
  /** the manager's URL, for error sentences */
  url: string;
  schemas: Schemas;
  onMessage: (message: WatchMessage) => void;
  /** called whenever bytes arrive (a liveness signal that does not wait for a whole line) */
  onData?: () => void;
  /** the error for a stream that ended before the server finished it */
  cut: (err: unknown) => VxnetError;
}

/**
 * Delivers every line of `res` until the server ends the stream (resolves), or the stream is cut, a line is
 * malformed or onMessage throws (rejects), or `signal` aborts (rejects with its reason). Ends the answer on
 * failure.
 */
export function readWatchLines(res: IncomingMessage, signal: AbortSignal, reading: WatchReading): Promise<void> {
  const { url, schemas } = reading;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else {
        res.destroy();
        reject(err);
      }
    };
    const onAbort = (): void => finish(signal.reason);
    if (signal.aborted) {
      finish(signal.reason);
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });

    // setEncoding keeps a multi-byte character that straddles two chunks intact.
    res.setEncoding('utf8');
    // The start of a line still incomplete, in pieces: a snapshot is one line of megabytes, and appending
    // to one string and searching it again from the start at every chunk cost O(n²) (bench/scale: seconds
    // of an agent's CPU for a 15 MB snapshot). Only each new chunk is searched.
    let pending: string[] = [];
    const deliver = (line: string): boolean => {
      if (line.trim() === '') return true;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        const excerpt = line.length > 80 ? `${line.slice(0, 40)}…${line.slice(-40)}` : line;
        finish(new VxnetError('internal', `the manager at ${url} sent a malformed watch line (${line.length} characters: ${JSON.stringify(excerpt)}).`));
        return false;
      }
      const type = typeof message === 'object' && message !== null ? (message as { type?: unknown }).type : undefined;
      if (typeof type !== 'string') {
        finish(new VxnetError('internal', `the manager at ${url} sent a watch line without a message type.`));
        return false;
      }
      // a message type this client does not know comes from a newer manager: nothing here can act on it
      if (!schemas.WATCH_MESSAGE_TYPES.has(type)) return true;
      const checked = schemas.check(schemas.WatchMessageSchema, message, `${type} message`);
      if (!checked.ok) {
        finish(new VxnetError('internal', `the manager at ${url} sent a watch line that does not fit the API: ${checked.sentence}`));
        return false;
      }
      try {
        reading.onMessage(checked.value);
      } catch (err) {
        finish(err);
        return false;
      }
      return true;
    };
    const onData = reading.onData;
    res.on('data', (chunk: string) => {
      onData?.();
      let start = 0;
      let newline = chunk.indexOf('\n');
      while (newline !== -1 && !settled) {
        const piece = chunk.slice(start, newline);
        const line = pending.length === 0 ? piece : pending.join('') + piece;
        pending = [];
        if (!deliver(line)) return;
        start = newline + 1;
        newline = chunk.indexOf('\n', start);
      }
      if (start < chunk.length && !settled) pending.push(start === 0 ? chunk : chunk.slice(start));
    });
    res.on('end', () => {
      if (settled) return;
      // The last line may lack its newline; anything else incomplete is reported by JSON.parse.
      if (deliver(pending.join(''))) finish();
    });
    res.on('error', (err) => finish(reading.cut(err)));
    res.on('close', () => {
      if (!res.complete) finish(reading.cut(undefined));
    });
  });
}
