/**
 * Which of several managers (sharing one etcd store) a client talks to: the one that answered last, and
 * the next ones in order when it cannot be reached. Only a failure to reach a manager moves on (refused,
 * reset, cut: the errors `unreachable()` marks); a manager that answers, even with an error such as 503
 * while etcd has no quorum, is believed — the others would answer the same.
 */
import { VxnetError } from '../core/errors.ts';

const UNREACHED = new WeakSet<object>();

/** Marks `err` (a transport failure in the client's words) as "that manager could not be reached". */
export function unreachable<E>(err: E): E {
  if (err instanceof VxnetError && err.code === 'unavailable') UNREACHED.add(err);
  return err;
}

export class Failover<T extends { url: string }> {
  readonly members: readonly T[];
  #current = 0;

  constructor(members: readonly T[]) {
    if (members.length === 0) throw new RangeError('Failover needs at least one member.');
    this.members = members;
  }

  get current(): T {
    return this.members[this.#current]!;
  }

  /** Runs `attempt` on the current member, then on each next one while it could not be reached. */
  async run<R>(attempt: (member: T) => Promise<R>, signal: AbortSignal | undefined): Promise<R> {
    const n = this.members.length;
    const start = this.#current;
    let last: unknown;
    for (let k = 0; k < n; k++) {
      const index = (start + k) % n;
      try {
        const result = await attempt(this.members[index]!);
        this.#current = index;
        return result;
      } catch (err) {
        last = err;
        if (n === 1 || signal?.aborted || !(err instanceof Object) || !UNREACHED.has(err)) throw err;
      }
    }
    const urls = this.members.map((m) => m.url).join(', ');
    throw new VxnetError('unavailable', `none of the managers (${urls}) could be reached; the last said: ${(last as Error).message}`, { cause: last });
  }

  /** `member` dropped a long-lived stream: the next attempt starts at the member after it. */
  movePast(member: T): void {
    const index = this.members.indexOf(member);
    if (index === this.#current && this.members.length > 1) this.#current = (index + 1) % this.members.length;
  }
}
