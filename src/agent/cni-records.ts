/**
 * Which endpoint the CNI plugin made for which container interface, kept in the agent's state directory
 * (`cni-endpoints.json`). DEL may come without a namespace (the container is gone), so the container id and
 * interface name are what find the endpoint; the namespace path is kept so that a start of the agent can
 * tell which containers disappeared while it was down. The file is rewritten whole (temporary file, then
 * rename), so a crash leaves either the old or the new list, never half of one.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CNI_RECORDS_FILE = 'cni-endpoints.json';

export interface CniRecord {
  containerId: string;
  ifname: string;
  network: string;
  netns: string;
  endpointId: string;
  /** DEL was answered but the manager could not be told yet: the agent retries */
  pendingDelete?: true;
}

export class CniRecords {
  readonly #path: string;
  readonly #records = new Map<string, CniRecord>();

  constructor(stateDir: string) {
    this.#path = join(stateDir, CNI_RECORDS_FILE);
    let text: string;
    try {
      text = readFileSync(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch {
      list = undefined;
    }
    if (!Array.isArray(list)) throw new Error(`${this.#path} does not hold a list of CNI records: fix or remove it (DEL then finds endpoints by container id).`);
    for (const record of list as CniRecord[]) this.#records.set(keyOf(record.containerId, record.ifname), record);
  }

  get(containerId: string, ifname: string): CniRecord | undefined {
    return this.#records.get(keyOf(containerId, ifname));
  }

  all(): CniRecord[] {
    return [...this.#records.values()];
  }

  /** Records `record` (replacing one for the same container interface) and saves; on failure nothing changed. */
  put(record: CniRecord): void {
    const key = keyOf(record.containerId, record.ifname);
    const before = this.#records.get(key);
    this.#records.set(key, record);
    this.#saveOrRestore(key, before);
  }

  remove(containerId: string, ifname: string): void {
    const key = keyOf(containerId, ifname);
    const before = this.#records.get(key);
    if (!before) return;
    this.#records.delete(key);
    this.#saveOrRestore(key, before);
  }

  #saveOrRestore(key: string, before: CniRecord | undefined): void {
    try {
      const tmp = `${this.#path}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(this.all(), null, 1)}\n`, { mode: 0o600 });
      renameSync(tmp, this.#path);
    } catch (err) {
      if (before) this.#records.set(key, before);
      else this.#records.delete(key);
      throw err;
    }
  }
}

function keyOf(containerId: string, ifname: string): string {
  return `${containerId}/${ifname}`;
}
