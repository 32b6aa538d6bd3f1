/**
 * Which store a manager runs on: SQLite in DATA_DIR (the default, one manager), or etcd for several
 * managers (`--store etcd://HOST:PORT,HOST:PORT,...`, with `--etcd-ca/--etcd-cert/--etcd-key` for TLS).
 */
import { isIP } from 'node:net';

export interface EtcdLocation {
  kind: 'etcd';
  /** `host:port` of each member, as given (the port defaults to 2379) */
  endpoints: string[];
}

/** etcd's client port (IANA-registered 2379). Defined here, not in etcd.ts: the CLI loads this file at every start, and etcd.ts loads the gRPC client. */
export const ETCD_CLIENT_PORT = 2379;

const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

/** Parses `etcd://A:2379,B:2379,C:2379`; the error is one sentence naming what is wrong. */
export function parseStoreUrl(text: string): EtcdLocation {
  const match = /^etcd:\/\/(.+)$/.exec(text.trim());
  if (!match) throw new Error(`--store must be etcd://HOST:PORT[,HOST:PORT...] (got "${text}"); without --store the manager keeps its store in --data-dir.`);
  const endpoints = match[1]!.split(',').map((member) => {
    const parsed = /^(\[[0-9A-Fa-f:]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(member);
    const host = parsed?.[1];
    const port = parsed?.[2] === undefined ? ETCD_CLIENT_PORT : Number(parsed[2]);
    const bare = host?.replace(/^\[(.*)\]$/, '$1');
    if (!parsed || bare === undefined || !(isIP(bare) !== 0 || HOST.test(bare)) || port < 1 || port > 65_535) {
      throw new Error(`"${member}" in --store is not HOST:PORT of an etcd member.`);
    }
    return `${host}:${port}`;
  });
  if (new Set(endpoints).size !== endpoints.length) throw new Error('--store names an etcd member twice.');
  return { kind: 'etcd', endpoints };
}
