/**
 * Control-plane identity in the manager: who may call what (in-process through the whole HTTP pipeline,
 * with certificates checked against the CA as a handshake would), joining, renewal and token rotation, and
 * the same rules over a real TLS listener with client certificates.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inject } from '../../src/manager/http.ts';
import { type RunningManager, serverAltNames, startManager } from '../../src/manager/main.ts';
import { subjectFor } from '../../src/pki/identity.ts';
import { createCertificate, generateKeyPair } from '../../src/pki/x509.ts';
import { temporaryDirectory } from './support/temporary.ts';
import { injectInto, startSocketManager } from './support/manager.ts';

const tempDir = () => temporaryDirectory('vxnet-auth-');

const publicPem = () => {
  const keys = generateKeyPair();
  return { keys, publicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }) as string };
};

describe('authorization rules', () => {
  let manager: RunningManager;
  let dataDir: string;
  const call = injectInto(() => manager);
  /** joins a node (or an admin) and returns its certificate PEM */
  const joinAs = async (name: string, token: string, role?: 'worker' | 'admin') => {
    const r = await call({ method: 'POST', path: '/v1/join', token, body: { name, publicKey: publicPem().publicKey, ...(role ? { role } : {}) } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.certificate as string;
  };
  let host1: string;
  let host2: string;
  let endpointOfHost2: string;
  let endpointOfHost1: string;

  before(async () => {
    ({ manager, dataDir } = await startSocketManager('vxnet-auth-'));
    host1 = await joinAs('host1', manager.tokens.worker);
    host2 = await joinAs('host2', manager.tokens.worker);
    for (const [name, address] of [['host1', '192.0.2.11'], ['host2', '192.0.2.12'], ['host3', '192.0.2.13']] as const) {
      await manager.service.registerNode({ name, address, mtu: 1500 });
    }
    await manager.service.createNetwork({ name: 'blue', vni: 100 });
    await manager.service.createNetwork({ name: 'red', vni: 200 });
    endpointOfHost1 = (await manager.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' }, { waitMs: 0 })).id;
    endpointOfHost2 = (await manager.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c2' }, { waitMs: 0 })).id;
    await manager.service.createEndpoint({ network: 'red', node: 'host2', netns: 'c3' }, { waitMs: 0 });
  });
  after(() => manager.close());

  test('the join answer: a worker certificate for the name, the CA, the expiry', async () => {
    const { publicKey } = publicPem();
    const r = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'host9', publicKey } });
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body).sort(), ['ca', 'certificate', 'name', 'notAfter', 'role']);
    assert.equal(r.body.ca, manager.caCertificate);
    assert.deepEqual([r.body.role, r.body.name], ['worker', 'host9']);
    const cert = new X509Certificate(r.body.certificate);
    assert.equal(cert.subject, 'O=vxnet-worker\nCN=host9');
    assert.ok(cert.checkIssued(new X509Certificate(manager.caCertificate)));
    assert.equal(cert.publicKey.export({ type: 'spki', format: 'pem' }), publicKey);
    const days = (cert.validToDate.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, `30 days by default, got ${days}`);
    assert.equal(r.body.notAfter, cert.validToDate.toISOString());
  });

  test('a worker certificate acts for its own node only', async () => {
    const rev = manager.service.state.revision;
    const own = await call({ method: 'POST', path: '/v1/nodes', certificate: host1, body: { name: 'host1', address: '192.0.2.11', mtu: 1500 } });
    assert.equal(own.status, 200);
    const forbidden: [string, string, unknown?][] = [
      ['POST', '/v1/nodes', { name: 'host2', address: '192.0.2.99', mtu: 1500 }],
      ['POST', '/v1/nodes/host2/heartbeat', { reconciledRevision: 1 }],
      ['PUT', `/v1/endpoints/${endpointOfHost2}/status`, { status: 'error', message: 'sabotage' }],
      ['POST', '/v1/networks', { name: 'evil' }],
      ['DELETE', '/v1/networks/blue'],
      ['POST', '/v1/endpoints', { network: 'blue', node: 'host1', netns: 'x' }],
      ['DELETE', `/v1/endpoints/${endpointOfHost1}`],
      ['POST', '/v1/tokens/worker/rotate'],
      ['GET', '/v1/networks/red'],
      ['GET', '/v1/endpoints'],
      ['GET', '/v1/endpoints?node=host2'],
      ['GET', '/v1/endpoints?network=red'],
    ];
    for (const [method, path, body] of forbidden) {
      const r = await call({ method, path, certificate: host1, ...(body === undefined ? {} : { body }) });
      assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'forbidden');
    }
    assert.equal(manager.service.state.revision, rev, 'nothing changed');
    assert.equal(manager.service.getEndpoint(endpointOfHost2).status, 'pending');
    const messages = await Promise.all([
      call({ method: 'PUT', path: `/v1/endpoints/${endpointOfHost2}/status`, certificate: host1, body: { status: 'ready' } }),
      call({ method: 'POST', path: '/v1/networks', certificate: host1, body: { name: 'x' } }),
    ]);
    assert.equal(messages[0].body.error.message, 'node host1 may only report the status of endpoints of its own node, not of node host2.');
    // without the right an admin grants (docs/security.md, hole 4)
    assert.equal(
      messages[1].body.error.message,
      'node host1 may not create networks: an administrator grants that with "vxnet node update host1 --allow-network-create".',
    );
  });

  test('a worker certificate does what its agent needs, and reads what its watch would show', async () => {
    const ok: [string, string, unknown?][] = [
      ['GET', '/v1/info'],
      ['GET', '/v1/ca'],
      ['GET', '/v1/nodes'],
      ['GET', '/v1/nodes/host2'],
      ['POST', '/v1/nodes/host1/heartbeat', { reconciledRevision: 1 }],
      ['PUT', `/v1/endpoints/${endpointOfHost1}/status`, { status: 'ready' }],
      ['GET', '/v1/networks'], // the definitions, as a networks=all watch shows them (hole 4)
      ['GET', '/v1/networks/blue'],
      ['GET', '/v1/endpoints?node=host1'],
      ['GET', '/v1/endpoints?network=blue'],
      ['GET', `/v1/endpoints/${endpointOfHost2}`], // on blue, where host1 takes part
    ];
    for (const [method, path, body] of ok) {
      const r = await call({ method, path, certificate: host1, ...(body === undefined ? {} : { body }) });
      assert.ok(r.status === 200 || r.status === 204, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    assert.equal(manager.service.getEndpoint(endpointOfHost1).status, 'ready');
  });

  test('the worker token only joins; the admin token and an admin certificate do everything', async () => {
    const worker = manager.tokens.worker;
    for (const [method, path] of [['GET', '/v1/info'], ['GET', '/v1/nodes'], ['POST', '/v1/nodes/host1/heartbeat']] as const) {
      const r = await call({ method, path, token: worker, body: { reconciledRevision: 1 } });
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.match(r.body.error.message, /^the worker token only admits POST \/v1\/join/);
    }
    const refused = await call({ method: 'POST', path: '/v1/join', token: worker, body: { name: 'ops', role: 'admin', publicKey: publicPem().publicKey } });
    assert.equal(refused.status, 403);
    const adminCert = await joinAs('ops', manager.tokens.admin, 'admin');
    assert.equal(new X509Certificate(adminCert).subject, 'O=vxnet-admin\nCN=ops');
    const created = await call({ method: 'POST', path: '/v1/networks', certificate: adminCert, body: { name: 'green' } });
    assert.equal(created.status, 201);
    assert.equal((await call({ method: 'GET', path: '/v1/networks', token: manager.tokens.admin })).status, 200);
    // an admin may act for any node (vxnet tools on the manager host, tests)
    assert.equal((await call({ method: 'POST', path: '/v1/nodes/host3/heartbeat', token: manager.tokens.admin, body: { reconciledRevision: 1 } })).status, 204);
  });

  test('401: no credentials, unknown tokens, tokens of another cluster, certificates the CA did not issue or that expired', async () => {
    assert.equal((await call({ method: 'GET', path: '/v1/ca' })).status, 200, 'GET /v1/ca is public');
    for (const path of ['/v1/info', '/v1/nowhere']) {
      const r = await call({ method: 'GET', path });
      assert.equal(r.status, 401, path);
      assert.match(r.body.error.message, /needs a client certificate of this cluster or the admin token/);
    }
    assert.equal((await call({ method: 'POST', path: '/v1/join', body: { name: 'x', publicKey: 'x' } })).status, 401);
    const other = `VXN1-${'0'.repeat(64)}-${manager.tokens.worker.slice(70)}`;
    const r1 = await call({ method: 'POST', path: '/v1/join', token: other, body: { name: 'x', publicKey: publicPem().publicKey } });
    assert.equal(r1.status, 401);
    assert.match(r1.body.error.message, /another cluster's CA digest/);
    assert.equal((await call({ method: 'GET', path: '/v1/info', token: 'vxnet-admin-old-format' })).status, 401);

    // a certificate with the right subject from another CA
    const foreignCa = generateKeyPair();
    const now = Date.now();
    const foreignCaCert = new X509Certificate(createCertificate({
      subject: { organization: 'vxnet', commonName: 'impostor' },
      publicKey: foreignCa.publicKey,
      selfSignKey: foreignCa.privateKey,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3_600_000),
      isCa: true,
    }));
    const leaf = (issuer: { certificate: X509Certificate; privateKey: ReturnType<typeof createPrivateKey> }, notBefore: number, notAfter: number) =>
      createCertificate({
        subject: subjectFor('admin', 'mallory'),
        publicKey: generateKeyPair().publicKey,
        issuer,
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
        extendedKeyUsage: ['clientAuth'],
      });
    const forged = leaf({ certificate: foreignCaCert, privateKey: foreignCa.privateKey }, now - 60_000, now + 3_600_000);
    const r2 = await call({ method: 'GET', path: '/v1/info', certificate: forged });
    assert.equal(r2.status, 401);
    assert.equal(r2.body.error.message, 'the client certificate is not valid for this cluster (it is not signed by the cluster CA).');
    // signed by the real CA (its key is in DATA_DIR), but expired
    const ca = { certificate: new X509Certificate(manager.caCertificate), privateKey: createPrivateKey(readFileSync(join(dataDir, 'ca.key'))) };
    const expired = leaf(ca, now - 7_200_000, now - 3_600_000);
    const r3 = await call({ method: 'GET', path: '/v1/info', certificate: expired });
    assert.equal(r3.status, 401);
    assert.match(r3.body.error.message, /it expired at/);
  });

  test('join refuses bad names and keys that are not ECDSA P-256 public keys', async () => {
    const token = manager.tokens.worker;
    const cases: [unknown, RegExp][] = [
      [{ name: 'bad/name', publicKey: publicPem().publicKey }, /node name "bad\/name" is invalid/],
      [{ name: 'n', publicKey: 'not a key' }, /must be a PEM public key/],
      [{ name: 'n' }, /"publicKey" is required/],
      [{ name: 'n', publicKey: publicPem().publicKey, role: 'root' }, /"role" must be "worker" or "admin"/],
    ];
    const { generateKeyPairSync } = await import('node:crypto');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    cases.push([{ name: 'n', publicKey: rsa }, /must be an ECDSA P-256 public key/]);
    for (const [body, pattern] of cases) {
      const r = await call({ method: 'POST', path: '/v1/join', token, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.body.error.message, pattern);
    }
  });

  test('renewal: same identity, new key and serial; only for the holder of a certificate', async () => {
    const { keys, publicKey } = publicPem();
    const r = await call({ method: 'POST', path: '/v1/certificates/renew', certificate: host2, body: { publicKey } });
    assert.equal(r.status, 200);
    const renewed = new X509Certificate(r.body.certificate);
    const old = new X509Certificate(host2);
    assert.equal(renewed.subject, old.subject);
    assert.notEqual(renewed.serialNumber, old.serialNumber);
    assert.ok(renewed.checkPrivateKey(keys.privateKey));
    const none = await call({ method: 'POST', path: '/v1/certificates/renew', token: manager.tokens.admin, body: { publicKey } });
    assert.equal(none.status, 403);
    assert.equal((await call({ method: 'POST', path: '/v1/certificates/renew', token: manager.tokens.worker, body: { publicKey } })).status, 403);
  });

  test('token rotation: the old token is refused at once, the new one is saved; certificates are unaffected', async () => {
    const oldWorker = manager.tokens.worker;
    const rotated = await call({ method: 'POST', path: '/v1/tokens/worker/rotate', token: manager.tokens.admin });
    assert.equal(rotated.status, 200);
    assert.equal(rotated.body.role, 'worker');
    const newWorker: string = rotated.body.token;
    assert.equal(newWorker.slice(0, 69), oldWorker.slice(0, 69), 'same CA digest');
    assert.notEqual(newWorker, oldWorker);
    assert.equal(readFileSync(join(dataDir, 'worker.token'), 'utf8'), `${newWorker}\n`);
    assert.equal(statSync(join(dataDir, 'worker.token')).mode & 0o777, 0o600);
    const body = { name: 'late', publicKey: publicPem().publicKey };
    assert.equal((await call({ method: 'POST', path: '/v1/join', token: oldWorker, body })).status, 401);
    assert.equal((await call({ method: 'POST', path: '/v1/join', token: newWorker, body })).status, 200);
    assert.equal((await call({ method: 'POST', path: '/v1/nodes/host1/heartbeat', certificate: host1, body: { reconciledRevision: 1 } })).status, 204);

    const oldAdmin = manager.tokens.admin;
    const r = await call({ method: 'POST', path: '/v1/tokens/admin/rotate', token: oldAdmin });
    assert.equal(r.status, 200);
    assert.equal((await call({ method: 'GET', path: '/v1/networks', token: oldAdmin })).status, 401);
    assert.equal((await call({ method: 'GET', path: '/v1/networks', token: r.body.token })).status, 200);
    assert.equal((await call({ method: 'POST', path: '/v1/tokens/root/rotate', token: r.body.token })).status, 400);
  });
});

describe('the TLS listener', () => {
  let manager: RunningManager;
  let port: number;
  let node: { cert: string; key: string };

  before(async () => {
    const dir = tempDir();
    manager = await startManager({ dataDir: join(dir, 'data'), listen: ['127.0.0.1:0'] });
    port = Number(manager.addresses[0]!.split(':')[1]);
    const { keys, publicKey } = publicPem();
    const joined = await inject(
      { service: manager.service, hub: manager.hub, security: manager.security },
      { method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'n1', publicKey } },
    );
    node = { cert: joined.body.certificate, key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  });
  after(() => manager.close());

  function get(path: string, options: { cert?: string; key?: string; token?: string; method?: string; body?: unknown } = {}) {
    return new Promise<{ status: number; body: any; peer: X509Certificate | undefined }>((resolve, reject) => {
      const text = options.body === undefined ? undefined : JSON.stringify(options.body);
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: options.method ?? 'GET',
          ca: [manager.caCertificate],
          agent: false,
          ...(options.cert ? { cert: options.cert, key: options.key } : {}),
          headers: {
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            ...(text ? { 'content-type': 'application/json' } : {}),
          },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: data ? JSON.parse(data) : undefined, peer: (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate() }));
        },
      );
      req.on('error', reject);
      req.end(text);
    });
  }

  test('serves TLS with a manager certificate for the listen address, chained to the CA', async () => {
    const r = await get('/v1/ca');
    assert.equal(r.status, 200);
    assert.equal(r.body.digest, manager.caDigest);
    assert.equal(r.peer?.subject, 'O=vxnet-manager\nCN=vxnet-manager');
    assert.equal(r.peer?.subjectAltName, 'IP Address:127.0.0.1');
  });

  test('no client certificate: 401; the worker token: 403; the node certificate: its own node only', async () => {
    const anonymous = await get('/v1/info');
    assert.equal(anonymous.status, 401);
    const token = await get('/v1/info', { token: manager.tokens.worker });
    assert.equal(token.status, 403);
    const own = await get('/v1/nodes', { ...node, method: 'POST', body: { name: 'n1', address: '192.0.2.1', mtu: 1500 } });
    assert.equal(own.status, 200);
    const other = await get('/v1/nodes', { ...node, method: 'POST', body: { name: 'n2', address: '192.0.2.2', mtu: 1500 } });
    assert.equal(other.status, 403);
    const watchOther = await get('/v1/agent/watch?node=n2', node);
    assert.equal(watchOther.status, 403);
    assert.equal((await get('/v1/info', { token: manager.tokens.admin })).status, 200);
  });

  test('on a kept-alive connection the certificate is read once, yet a node removed meanwhile is refused at its next request', async () => {
    const { keys, publicKey } = publicPem();
    const joined = await inject(
      { service: manager.service, hub: manager.hub, security: manager.security },
      { method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'n9', publicKey } },
    );
    const held = { cert: joined.body.certificate as string, key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
    const { Agent } = await import('node:https');
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: [manager.caCertificate], ...held });
    const send = (path: string, body: unknown) =>
      new Promise<{ status: number; body: any; port: number }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          let data = '';
          const local = res.socket.localPort!;
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: data ? JSON.parse(data) : undefined, port: local }));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
    try {
      const registered = await send('/v1/nodes', { name: 'n9', address: '192.0.2.9', mtu: 1500 });
      assert.equal(registered.status, 200, JSON.stringify(registered.body));
      assert.equal((await send('/v1/nodes/n9/heartbeat', { reconciledRevision: 0 })).status, 204);
      await manager.service.deleteNode('n9');
      const refused = await send('/v1/nodes/n9/heartbeat', { reconciledRevision: 0 });
      assert.equal(refused.port, registered.port, 'the same connection');
      assert.equal(refused.status, 401, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, 'certificate_revoked');
    } finally {
      agent.destroy();
    }
  });

  test('a plain HTTP request to the TLS port gets no API answer', async () => {
    const { request: plain } = await import('node:http');
    const outcome = await new Promise<string>((resolve) => {
      const req = plain({ host: '127.0.0.1', port, path: '/v1/ca' }, (res) => resolve(`HTTP ${res.statusCode}`));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
    assert.doesNotMatch(outcome, /^HTTP 2/);
  });
});

describe('serverAltNames', () => {
  test('the listen addresses; every local address for a wildcard; extra names', () => {
    assert.deepEqual(serverAltNames(['10.99.0.1:7400', 'unix:/run/x.sock'], []), { dns: [], ip: ['10.99.0.1'] });
    assert.deepEqual(serverAltNames(['m.example:7400'], ['192.0.2.7', 'alias.example']), { dns: ['m.example', 'alias.example'], ip: ['192.0.2.7'] });
    const wildcard = serverAltNames([':7400'], []);
    assert.ok(wildcard.ip.includes('127.0.0.1'));
    assert.ok(wildcard.dns.includes('localhost'));
  });
});
