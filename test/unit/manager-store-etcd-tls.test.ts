/**
 * TLS to etcd (`--etcd-ca/--etcd-cert/--etcd-key`): a real etcd that requires client certificates, with a
 * test CA made by src/pki. The store and a manager work with the certificate; without it they are refused.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { VxnetError } from '../../src/core/errors.ts';
import { startManager } from '../../src/manager/main.ts';
import { EtcdStore } from '../../src/manager/store/etcd.ts';
import { createCertificate, generateKeyPair } from '../../src/pki/x509.ts';
import { ETCD_BINARY, type EtcdCluster, type EtcdTlsFiles, startSingleEtcd } from '../../src/testkit/etcd.ts';
import { temporaryDirectory } from './support/temporary.ts';

const skip = existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;
let etcd: EtcdCluster | undefined;
let scratch: string;
let files: EtcdTlsFiles;

/** A CA and one certificate for 127.0.0.1 that serves etcd and also authenticates its clients. */
function makeCertificates(dir: string): EtcdTlsFiles {
  const now = Date.now();
  const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };
  const caKeys = generateKeyPair();
  const caPem = createCertificate({ subject: { organization: 'vxnet test', commonName: 'etcd test CA' }, publicKey: caKeys.publicKey, selfSignKey: caKeys.privateKey, isCa: true, ...validity });
  const keys = generateKeyPair();
  const pem = createCertificate({
    subject: { organization: 'vxnet test', commonName: 'etcd' },
    publicKey: keys.publicKey,
    issuer: { certificate: new X509Certificate(caPem), privateKey: caKeys.privateKey },
    extendedKeyUsage: ['serverAuth', 'clientAuth'],
    altNames: { ip: ['127.0.0.1'] },
    ...validity,
  });
  const out = { ca: join(dir, 'ca.pem'), cert: join(dir, 'etcd.pem'), key: join(dir, 'etcd.key') };
  writeFileSync(out.ca, caPem);
  writeFileSync(out.cert, pem);
  writeFileSync(out.key, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  return out;
}

before(async () => {
  if (skip) return;
  scratch = temporaryDirectory('vxnet-etcd-tls-');
  files = makeCertificates(scratch);
  etcd = await startSingleEtcd({ scratch, tls: files });
});
after(async () => {
  await etcd?.stop();
});

test('with the CA and a client certificate the store works; without the certificate etcd refuses it', { ...(skip ? { skip } : {}) }, async () => {
  const tls = { ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) };
  const store = new EtcdStore({ endpoints: etcd!.endpoints(), tls, prefix: '/tls' });
  try {
    const res = await store.txn([{ key: '/k', modRevision: 0 }], [{ type: 'put', key: '/k', value: 'v' }]);
    assert.equal(res.succeeded, true);
    assert.equal((await store.get('/k'))?.value, 'v');
  } finally {
    await store.close();
  }
  const anonymous = new EtcdStore({ endpoints: etcd!.endpoints(), tls: { ca: tls.ca }, prefix: '/tls', requestTimeoutMs: 1500 });
  try {
    await assert.rejects(anonymous.get('/k'), (err: unknown) => err instanceof VxnetError && err.code === 'unavailable');
  } finally {
    await anonymous.close();
  }
});

test('a manager started with --etcd-ca/--etcd-cert/--etcd-key serves from etcd over TLS', { ...(skip ? { skip } : {}) }, async () => {
  const manager = await startManager({
    dataDir: join(scratch, 'manager'),
    listen: [`unix:${join(scratch, 'm.sock')}`],
    store: `etcd://${etcd!.endpoints()[0]}`,
    etcdTls: files,
  });
  try {
    await manager.service.createNetwork({ name: 'blue', subnets: [{ cidr: '10.3.0.0/24' }] });
    assert.deepEqual(manager.service.listNetworks().map((n) => n.name), ['blue']);
  } finally {
    await manager.close();
  }
});
