/**
 * Moves a single manager's SQLite store (DATA_DIR/vxnet.db, with its CA and tokens) into etcd, so that
 * several managers can then share it: `vxnet migrate --from DIR --to etcd://...`.
 *
 * The manager must be stopped (the SQLite store is opened exclusively and refuses otherwise) and the etcd
 * prefix must be empty. Every key is copied as it is (addresses, VNIs, node identities: all unchanged);
 * revisions keep their meaning because the etcd store is given a revision offset first (etcd.ts), so every
 * revision it reports afterwards is above the last one SQLite gave out. The CA and the tokens are put in
 * etcd the way the first manager of an etcd cluster does (shared-secrets.ts), from DIR's own files: the same
 * CA, the same tokens, so agents and operators notice nothing. Keys go in batches under etcd's default
 * limit of 128 operations per transaction.
 */
import { join } from 'node:path';
import { EtcdStore, type EtcdStoreOptions } from './etcd.ts';
import { establishSharedSecrets } from './shared-secrets.ts';
import { SqliteStore } from './sqlite.ts';

const BATCH = 100;

export interface MigrationResult {
  keys: number;
  /** the last SQLite revision; etcd's revisions continue above it */
  revision: number;
}

export async function migrateToEtcd(dataDir: string, etcd: EtcdStoreOptions, dbFile: string): Promise<MigrationResult> {
  const source = new SqliteStore(join(dataDir, dbFile));
  const target = new EtcdStore(etcd);
  const where = `etcd at ${etcd.endpoints.join(',')}`;
  try {
    const list = await source.list('');
    const cluster = list.kvs.find((kv) => kv.key === '/meta/cluster');
    if (!cluster) throw new Error(`${join(dataDir, dbFile)} holds no vxnet cluster: nothing to migrate.`);
    if ((await target.list('')).kvs.length > 0) {
      throw new Error(`${where} already holds vxnet data under ${target.prefix}: migrate only into an empty store.`);
    }
    await target.setRevisionOffset(list.revision);
    for (let i = 0; i < list.kvs.length; i += BATCH) {
      const batch = list.kvs.slice(i, i + BATCH);
      const res = await target.txn(
        batch.map((kv) => ({ key: kv.key, modRevision: 0 })),
        batch.map((kv) => ({ type: 'put', key: kv.key, value: kv.value })),
      );
      if (!res.succeeded) throw new Error(`another writer changed ${where} during the migration; empty ${target.prefix} and run it again.`);
    }
    const { clusterId } = JSON.parse(cluster.value) as { clusterId: string };
    await establishSharedSecrets(target, { dataDir, storeName: where, commonName: `vxnet cluster CA ${clusterId}` });
    return { keys: list.kvs.length, revision: list.revision };
  } finally {
    await source.close();
    await target.close();
  }
}
