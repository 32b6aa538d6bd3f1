/**
 * Raw manager API calls from inside a simulated host, for the security tests that play an attacker: each
 * call is one `tls-probe.ts` run (node:https, no client library in between), with whatever credentials the
 * attacker holds: a node's certificate from its agent's state directory, a key pair it made itself and the
 * certificate a join gave it, or a bearer token.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, SimHost } from '../../../src/testkit/cluster.ts';
import { generateKeyPair } from '../../../src/pki/x509.ts';

const PROBE = join(import.meta.dirname, 'tls-probe.ts');

export interface RawAnswer {
  status?: number;
  body?: any;
  error?: string;
}

/** Where a client certificate and its key are, as files. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface RawRequest {
  path: string;
  method?: string;
  body?: unknown;
  token?: string;
  /** a client certificate for the TLS handshake */
  as?: CertificateFiles;
}

/** One request to the manager's TLS listener from `host`'s namespace. */
export async function rawCall(cluster: Cluster, host: SimHost, request: RawRequest): Promise<RawAnswer> {
  const args = {
    url: cluster.manager.url,
    path: request.path,
    method: request.method ?? 'GET',
    ca: cluster.manager.caFile,
    ...(request.as ?? {}),
    ...(request.token ? { token: request.token } : {}),
    ...(request.body === undefined ? {} : { body: request.body }),
  };
  const result = await cluster.exec(host.netns, [process.execPath, PROBE, JSON.stringify(args)], { timeoutMs: 15_000 });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as RawAnswer;
}

/** The certificate and key an agent keeps in its state directory. */
export function nodeCertificate(cluster: Cluster, host: SimHost): CertificateFiles {
  const dir = cluster.agentStateDir(host);
  return { cert: join(dir, 'node.pem'), key: join(dir, 'node.key') };
}

/**
 * A key pair of the attacker's own, its private key saved under `label`, and the PEM public key to send
 * with a join; `save(certificate)` stores what a join answered, for use with `as`.
 */
export function attackerKeys(cluster: Cluster, label: string): { publicKey: string; save(certificate: string): CertificateFiles } {
  const keys = generateKeyPair();
  const key = join(cluster.tmpDir, `${label}.key`);
  writeFileSync(key, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  return {
    publicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    save(certificate) {
      const cert = join(cluster.tmpDir, `${label}.pem`);
      writeFileSync(cert, certificate);
      return { cert, key };
    },
  };
}
