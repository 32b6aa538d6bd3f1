/**
 * The output side of the watch sessions: what a session has to send, written as fast as its connection
 * takes it and no faster. A snapshot or burst is an iterator of pieces of about PIECE_BYTES, the next one
 * written when the connection has sent the last (a drain notification, or a poll for sinks without one);
 * lines that arrive meanwhile queue behind it and count as unsent output. A session whose unsent output
 * passes the bound, or whose sink throws, is dropped: its agent reconnects and starts from a snapshot.
 * Which session gets which line is the hub's business (watch-hub.ts).
 */
import { randomUUID } from 'node:crypto';
import { VxnetError } from '../core/errors.ts';

/** Where a session's lines go (an HTTP response in production, an array in tests). */
export interface WatchSink {
  /** text: whole lines, or for a snapshot or burst streamed in pieces, consecutive pieces of them */
  write(line: string): void;
  /** bytes accepted by write() but not yet sent */
  readonly bufferedBytes: number;
  /** calls `listener` once when what was written has been sent (without it, the hub polls bufferedBytes) */
  onDrain?(listener: () => void): void;
  /** ends the connection; the hub has already forgotten the session */
  close(reason: string): void;
}

/** One watch connection, as the hub keeps it. */
export interface Session {
  node: string;
  sink: WatchSink;
  open: boolean;
  /** `networks=all`: every network, not only those where the node has endpoints (endpoints stay filtered) */
  allNetworks: boolean;
  /** waiting for its snapshot (over budget): nothing is sent until then */
  waiting?: boolean;
  /**
   * Output behind a snapshot or burst being streamed, in order: pieces of it come from an iterator as the
   * connection drains, and lines that arrive meanwhile wait their turn.
   */
  queue?: (Iterator<string> | string)[];
  /** bytes of the lines (not the streamed pieces) in `queue`: they count as unsent output */
  queuedBytes?: number;
  /** waiting for the connection to drain before the next piece */
  stalled?: boolean;
}

/**
 * Snapshots and bursts are written in pieces of about this size, the next one when the connection has sent
 * the previous: a connection never holds more than that of them, in the JS heap or below it in TLS buffers.
 */
const PIECE_BYTES = 64 * 1024;
/** how often sessions without a drain notification are looked at again */
const STALL_POLL_MS = 20;

export interface SessionOutputOptions {
  maxBufferedBytes: number;
  log: (line: string) => void;
  /** the hub forgets a session that failed or fell behind (the output then closes its sink) */
  drop: (session: Session) => void;
  /** whether the session's snapshot still counts against the budget (checked when a streamed output ends) */
  sendingSnapshot: (session: Session) => boolean;
  /** its snapshot is written whole */
  snapshotWritten: (session: Session) => void;
}

export class SessionOutput {
  readonly #o: SessionOutputOptions;
  /** sessions whose sink cannot tell when it drained, polled */
  readonly #polled = new Set<Session>();
  #poll: NodeJS.Timeout | undefined;

  constructor(options: SessionOutputOptions) {
    this.#o = options;
  }

  /** Queues `output` behind whatever the session still has to send, and sends what the connection takes. */
  stream(session: Session, output: Iterator<string>): void {
    (session.queue ??= []).push(output);
    this.#pump(session);
  }

  /** Writes queued output while the connection keeps up; otherwise waits for it to drain. */
  #pump(session: Session): void {
    const queue = session.queue;
    while (queue && queue.length > 0 && session.open) {
      if (session.sink.bufferedBytes >= PIECE_BYTES) {
        this.#stall(session);
        return;
      }
      const head = queue[0]!;
      let text: string;
      if (typeof head === 'string') {
        queue.shift();
        session.queuedBytes = (session.queuedBytes ?? 0) - head.length;
        text = head;
      } else {
        const next = head.next();
        if (next.done) {
          queue.shift();
          if (this.#o.sendingSnapshot(session) && !queue.some((item) => typeof item !== 'string')) this.#o.snapshotWritten(session);
          continue;
        }
        text = next.value;
      }
      if (!this.#write(session, text)) return;
    }
    if (queue && session.open) {
      session.queue = undefined;
      session.queuedBytes = 0;
    }
  }

  #stall(session: Session): void {
    if (session.stalled) return;
    session.stalled = true;
    const resume = () => {
      session.stalled = false;
      this.#polled.delete(session);
      this.#pump(session);
    };
    if (session.sink.onDrain) {
      session.sink.onDrain(resume);
      return;
    }
    this.#polled.add(session);
    this.#poll ??= setInterval(() => {
      for (const s of [...this.#polled]) {
        if (!s.open) this.#polled.delete(s);
        else if (s.sink.bufferedBytes < PIECE_BYTES) {
          s.stalled = false;
          this.#polled.delete(s);
          this.#pump(s);
        }
      }
      if (this.#polled.size === 0) {
        clearInterval(this.#poll);
        this.#poll = undefined;
      }
    }, STALL_POLL_MS);
  }

  /** `keepalive`: also to a session still waiting for its snapshot. */
  send(session: Session, text: string, keepalive = false): void {
    if (!session.open || (session.waiting && !keepalive)) return;
    if (session.queue) {
      // behind a snapshot or burst still being streamed: the line waits its turn, and counts as unsent
      session.queue.push(text);
      session.queuedBytes = (session.queuedBytes ?? 0) + text.length;
      this.#checkLag(session);
      return;
    }
    if (this.#write(session, text)) this.#checkLag(session);
  }

  #write(session: Session, text: string): boolean {
    try {
      session.sink.write(text);
      return true;
    } catch (err) {
      this.#o.log(`watch stream of node ${session.node} failed: ${String(err)}`);
      this.#o.drop(session);
      session.sink.close('write failed');
      return false;
    }
  }

  /** A session that falls further behind than the bound is closed: its agent reconnects and starts over. */
  #checkLag(session: Session): void {
    const buffered = session.sink.bufferedBytes + (session.queuedBytes ?? 0);
    if (buffered > this.#o.maxBufferedBytes) {
      this.#o.log(`watch stream of node ${session.node} is not keeping up (${buffered} bytes unsent); closing it`);
      this.#o.drop(session);
      session.sink.close('too slow');
    }
  }

  /** the session is gone: no more polling for it */
  forget(session: Session): void {
    this.#polled.delete(session);
  }

  stop(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
    this.#polled.clear();
  }
}

/**
 * `head`, then `parts` joined by `separator`, then `tail`, as pieces of about PIECE_BYTES (one piece when it
 * all fits). `whole`: the text to send when there are no parts at all.
 */
export function* pieces(head: string, parts: readonly string[], separator: string, tail: string, whole?: string): Generator<string> {
  if (parts.length === 0) {
    yield whole ?? head + tail;
    return;
  }
  let i = 0;
  let prefix = head;
  while (i < parts.length) {
    const start = i;
    // at least one part per piece: a head longer than a piece (the `nodes` of 1,000 nodes are ~100 KB) must
    // not be sent alone, or the next piece would open with a separator where the first part belongs
    let size = prefix.length + parts[i++]!.length;
    while (i < parts.length && size < PIECE_BYTES) size += parts[i++]!.length + separator.length;
    const body = parts.slice(start, i).join(separator);
    yield i < parts.length ? prefix + body : prefix + body + tail;
    prefix = separator;
  }
}

// -----------------------------------------------------------------------------------------------------
// The diagnose relay (`vxnet trace`, src/trace/)

/**
 * Carries an administrator's diagnose request to a node's agent and its answer back. The agent already keeps
 * a watch stream open to the manager, authenticated with its node certificate, so the request rides on it as
 * one `diagnose` line and the answer comes back as `PUT /v1/nodes/:name/diagnose/:id` with the same
 * certificate (routes.ts): agents need no listener of their own, no port is opened on any host, and only the
 * node a request was sent to can answer it. A node without an open stream, or whose agent does not answer in
 * time, is reported as such: that is the "agent down" a trace names.
 */
export interface DiagnoseReportLike {
  node: string;
}

/** diagnose requests waiting for their answer at once; more are refused (each holds an admin's request open) */
export const MAX_PENDING_DIAGNOSES = 64;

export class DiagnoseRelay<Request, Report extends DiagnoseReportLike> {
  readonly #send: (node: string, line: string) => number;
  readonly #pending = new Map<string, { node: string; resolve: (report: Report) => void }>();

  /** `send`: writes a line to the node's watch sessions, returns how many took it (0: none is open) */
  constructor(send: (node: string, line: string) => number) {
    this.#send = send;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Sends `request` to `node`'s agent and resolves with its report; rejects with `unavailable` when no watch
   * stream of the node is open, `timeout` when the agent did not answer within `timeoutMs`.
   */
  ask(node: string, request: Request, timeoutMs: number, signal?: AbortSignal): Promise<Report> {
    if (this.#pending.size >= MAX_PENDING_DIAGNOSES) {
      return Promise.reject(new VxnetError('unavailable', `${MAX_PENDING_DIAGNOSES} diagnose requests are already waiting for their agents; try again shortly.`));
    }
    const id = randomUUID();
    return new Promise<Report>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        finish();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new VxnetError('timeout', `the agent of node ${node} did not answer the diagnose request within ${timeoutMs / 1000} s.`));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, {
        node,
        resolve: (report) => {
          finish();
          resolve(report);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      // the message carries no revision: it changes nothing the agent's view counts (revision 0)
      const sent = this.#send(node, `${JSON.stringify({ type: 'diagnose', revision: 0, id, request })}\n`);
      if (sent === 0) {
        finish();
        reject(new VxnetError('unavailable', `the agent of node ${node} is not connected to the manager (no open watch stream), so its kernel cannot be read.`));
      }
    });
  }

  /** The agent of `node` answers request `id`; an id unknown, answered, expired or sent to another node is not_found. */
  answer(node: string, id: string, report: Report): void {
    const pending = this.#pending.get(id);
    if (!pending || pending.node !== node || report.node !== node) {
      throw new VxnetError('not_found', `no diagnose request ${id} is waiting for node ${node} (it expired or was never sent there).`);
    }
    pending.resolve(report);
  }
}
