/**
 * The agent's node identity against a real manager (TLS on 127.0.0.1): joining with the token, the state
 * directory it leaves (modes included), restarts without a token, refusals that say why, and renewal.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CA_FILE, CERT_FILE, KEY_FILE, type IdentityOptions, keepRenewed, obtainCredentials } from '../../src/agent/identity.ts';
import { ManagerClient } from '../../src/client/client.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { RunningManager } from '../../src/manager/main.ts';
import { startTlsManager } from './support/manager.ts';

describe('agent identity', () => {
  let dir: string;
  let manager: RunningManager;
  let url: string;

  before(async () => ({ dir, manager, url } = await startTlsManager('vxnet-identity-', { certLifetimeMs: 3000 })));
  after(() => manager.close());

  const options = (stateDir: string, extra: Partial<IdentityOptions> = {}): IdentityOptions & { lines: string[] } => {
    const lines: string[] = [];
    return { managerUrl: url, stateDir, name: 'n1', log: (l) => lines.push(l), lines, ...extra };
  };

  async function rejection(promise: Promise<unknown>): Promise<VxnetError> {
    const err = await promise.then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof VxnetError, `expected a VxnetError, got ${String(err)}`);
    return err;
  }

  test('joins with the token, keeps key and certificate in a private state directory, and needs no token afterwards', async () => {
    const stateDir = join(dir, 'state-a', 'agent');
    const first = options(stateDir, { token: manager.tokens.worker });
    const credentials = await obtainCredentials(first, AbortSignal.timeout(10_000));
    assert.equal(credentials.identity.name, 'n1');
    assert.equal(credentials.ca, manager.caCertificate);
    assert.match(first.lines.join('\n'), /joined the cluster as node n1 \(certificate serial [0-9A-F]+, valid until /);
    assert.equal(statSync(stateDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(stateDir, KEY_FILE)).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(stateDir, CERT_FILE), 'utf8'), credentials.cert);
    assert.equal(readFileSync(join(stateDir, CA_FILE), 'utf8'), manager.caCertificate);
    assert.ok(new X509Certificate(credentials.cert).checkPrivateKey((await import('node:crypto')).createPrivateKey(credentials.key)));

    const again = options(stateDir);
    const stored = await obtainCredentials(again, AbortSignal.timeout(10_000));
    assert.equal(stored.cert, credentials.cert);
    assert.match(again.lines[0] ?? '', /^using the node certificate in /);

    const renamed = await rejection(obtainCredentials(options(stateDir, { name: 'n2' }), AbortSignal.timeout(10_000)));
    assert.equal(renamed.code, 'unauthorized');
    assert.match(renamed.message, /\(it is the certificate of node n1\): start the agent with --token/);
  });

  test('refuses a manager whose CA does not match the token, and tokens of the wrong form', async () => {
    const wrong = `VXN1-${'2'.repeat(64)}-${manager.tokens.worker.slice(70)}`;
    const stateDir = join(dir, 'state-b');
    const err = await rejection(obtainCredentials(options(stateDir, { token: wrong }), AbortSignal.timeout(10_000)));
    assert.equal(err.code, 'untrusted_manager');
    assert.match(err.message, new RegExp(`^the manager at ${url.replace(/\./g, '\\.')} presented a CA that does not match the token`));
    assert.throws(() => statSync(join(stateDir, CERT_FILE)), /ENOENT/);
    const malformed = await rejection(obtainCredentials(options(stateDir, { token: 'vxnet-worker-abc' }), AbortSignal.timeout(10_000)));
    assert.equal(malformed.code, 'bad_request');
  });

  test('a broken state directory is replaced by a new join when a token is given, and reported otherwise', async () => {
    const stateDir = join(dir, 'state-c');
    await obtainCredentials(options(stateDir, { token: manager.tokens.worker }), AbortSignal.timeout(10_000));
    writeFileSync(join(stateDir, KEY_FILE), (await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const err = await rejection(obtainCredentials(options(stateDir), AbortSignal.timeout(10_000)));
    assert.match(err.message, /node\.key is not the key of node\.pem/);
    const rejoin = options(stateDir, { token: manager.tokens.worker });
    await obtainCredentials(rejoin, AbortSignal.timeout(10_000));
    assert.match(rejoin.lines.join('\n'), /not using the node certificate .*node\.key is not the key of node\.pem; joining again/);
  });

  test('renews at two thirds of the lifetime, stores each certificate, and the client keeps working past the first expiry', async () => {
    const stateDir = join(dir, 'state-d');
    const opts = options(stateDir, { token: manager.tokens.worker });
    const initial = await obtainCredentials(opts, AbortSignal.timeout(10_000));
    const client = new ManagerClient({ url, ca: initial.ca, cert: initial.cert, key: initial.key });
    const stop = new AbortController();
    const renewing = keepRenewed(client, initial, opts, stop.signal);
    try {
      await client.registerNode({ name: 'n1', address: '192.0.2.1', mtu: 1500 });
      const deadline = initial.identity.notAfter.getTime() + 1500;
      while (Date.now() < deadline) {
        await client.heartbeat('n1', { reconciledRevision: 0 });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const renewals = opts.lines.filter((l) => l.startsWith('renewed the node certificate'));
      assert.ok(renewals.length >= 1, opts.lines.join('\n'));
      const stored = new X509Certificate(readFileSync(join(stateDir, CERT_FILE)));
      assert.notEqual(stored.serialNumber, initial.identity.serialNumber);
      assert.ok(stored.validToDate > initial.identity.notAfter);
      assert.equal(stored.subject, 'O=vxnet-worker\nCN=n1');
    } finally {
      stop.abort();
      await renewing;
      client.close();
    }
  });
});
