/**
 * A manager's session with etcd, for the store's session keys (Op `session` in store.ts): one lease, granted
 * at the first session key and renewed by the etcd client at a third of its TTL. A manager that dies stops
 * renewing it, and etcd deletes every key attached to it one TTL later; the watches deliver those deletes as
 * any other. A lease lost while the manager lives (cut off from etcd for longer than the TTL) is reported and
 * replaced at the next session key; the keys it held are gone by then, which whoever held them finds out
 * from the compares on them.
 */
import type { Etcd3, Lease } from 'etcd3';

/**
 * The TTL of a manager's lease: how long the removal markers of a manager that died keep a network delete or
 * node removal from being started again. Well above a leader election (~1.5 s here, when no lease can be
 * renewed; etcd extends every lease's TTL when a new leader takes over).
 */
export const SESSION_TTL_SECONDS = 10;

export class EtcdSession {
  #client: Etcd3;
  #ttl: number;
  #onLost: (err: Error) => void;
  #lease: Lease | undefined;
  #id: Promise<string> | undefined;
  #closed = false;

  constructor(client: Etcd3, options: { ttlSeconds: number; onLost: (err: Error) => void }) {
    this.#client = client;
    this.#ttl = options.ttlSeconds;
    this.#onLost = options.onLost;
  }

  /** The lease id to attach session keys to; `grant` bounds the request (the store's timeout). */
  id(grant: (request: () => Promise<string>) => Promise<string>): Promise<string> {
    if (this.#id) return this.#id;
    const lease = this.#client.lease(this.#ttl);
    const forget = () => {
      if (this.#lease !== lease) return;
      this.#lease = undefined;
      this.#id = undefined;
    };
    lease.on('lost', (err: Error) => {
      if (this.#lease !== lease || this.#closed) return;
      forget();
      this.#onLost(new Error(`this manager's etcd lease was lost (${err.message}); the removal markers it held are gone`));
    });
    this.#lease = lease;
    this.#id = grant(() => lease.grant()).catch((err: unknown) => {
      forget();
      throw err;
    });
    return this.#id;
  }

  /** Ends the session: a manager that stops lets go of its session keys at once rather than one TTL later. */
  async close(): Promise<void> {
    this.#closed = true;
    const lease = this.#lease;
    this.#lease = undefined;
    if (!lease) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([lease.revoke().catch(() => {}), new Promise((r) => (timer = setTimeout(r, 1000)))]);
    clearTimeout(timer);
  }
}
