/** `vxnet migrate`: moves a stopped manager's SQLite store, CA and tokens into etcd (store/migrate.ts). */
import { required, type CommandModule } from '../command.ts';
import { ETCD_TLS_FLAGS, etcdTlsFiles, etcdTlsOf } from './manager.ts';

export interface MigrateCommand {
  kind: 'migrate';
  from: string;
  to: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
}

export const migrate: CommandModule<MigrateCommand> = {
  path: 'migrate',
  summary: "move a stopped manager's store, CA and tokens into etcd, for several managers",
  args: [],
  synopsis: '--from DATA_DIR --to etcd://HOST:PORT,... [--etcd-ca FILE [--etcd-cert FILE --etcd-key FILE]]',
  flags: [
    { name: 'from', kind: 'string', value: 'DIR', help: "the stopped manager's --data-dir" },
    { name: 'to', kind: 'string', value: 'etcd://HOST:PORT,...', help: 'the etcd cluster; it must hold no vxnet data yet' },
    ...ETCD_TLS_FLAGS,
  ],
  connection: false,
  json: false,

  build(p) {
    return { kind: 'migrate', from: required(p, 'from'), to: required(p, 'to'), ...etcdTlsOf(p) };
  },

  async run(command, ctx) {
    const [{ migrateToEtcd }, { parseStoreUrl }, { DB_FILE, readEtcdTls }] = await Promise.all([
      import('../../manager/store/migrate.ts'),
      import('../../manager/store/open.ts'),
      import('../../manager/main.ts'),
    ]);
    const result = await migrateToEtcd(command.from, { endpoints: parseStoreUrl(command.to).endpoints, ...readEtcdTls(etcdTlsFiles(command)) }, DB_FILE);
    ctx.stdout(`migrated ${result.keys} keys (revision ${result.revision}) with the CA and tokens of ${command.from}; start the managers with --store ${command.to}`);
    return 0;
  },
};
