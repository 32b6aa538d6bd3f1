import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { runManager, startManager } from '../../src/manager/main.ts';
import { temporaryDirectory } from './support/temporary.ts';

function get(socketPath: string, path: string, token: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: data ? JSON.parse(data) : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check());
}

test('first start initialises the cluster and prints the tokens once; later starts reuse them silently', async () => {
  const root = temporaryDirectory('vxnet-main-');
  const dataDir = join(root, 'data');
  const socket = join(root, 'm.sock');

  const lines1: string[] = [];
  const ac1 = new AbortController();
  const run1 = runManager({ dataDir, listen: [`unix:${socket}`], log: (l) => lines1.push(l) }, ac1.signal);
  await waitFor(() => lines1.some((l) => l.startsWith('manager listening on ')));
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
  const admin = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const worker = readFileSync(join(dataDir, 'worker.token'), 'utf8').trim();
  // VXN1-<sha256 of the CA certificate>-<secret>, the same CA digest in both
  assert.match(admin, /^VXN1-[0-9a-f]{64}-[a-z2-7]{52}$/);
  assert.match(worker, /^VXN1-[0-9a-f]{64}-[a-z2-7]{52}$/);
  assert.equal(admin.slice(0, 69), worker.slice(0, 69));
  assert.notEqual(admin, worker);
  assert.equal(statSync(join(dataDir, 'ca.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dataDir, 'admin.token')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dataDir, 'worker.token')).mode & 0o777, 0o600);
  assert.ok(existsSync(join(dataDir, 'vxnet.db')));
  assert.ok(lines1.some((l) => l.includes(admin)));
  assert.ok(lines1.some((l) => l.includes(worker)));
  assert.ok(lines1.some((l) => l === `manager listening on unix:${socket} (cluster ${lines1.find((x) => x.startsWith('initialised cluster '))!.split(' ')[2]})`));
  const info1 = await get(socket, '/v1/info', admin);
  assert.equal(info1.status, 200);
  ac1.abort();
  await run1;
  assert.ok(!existsSync(socket), 'the socket is removed at shutdown');

  const lines2: string[] = [];
  const ac2 = new AbortController();
  const run2 = runManager({ dataDir, listen: [`unix:${socket}`], log: (l) => lines2.push(l) }, ac2.signal);
  await waitFor(() => lines2.some((l) => l.startsWith('manager listening on ')));
  assert.ok(!lines2.some((l) => l.includes(admin) || l.includes(worker)), 'tokens are not printed again');
  const info2 = await get(socket, '/v1/info', admin);
  assert.equal(info2.body.clusterId, info1.body.clusterId);
  ac2.abort();
  await run2;
});

test('state survives a restart; a second manager on the same data directory is refused', async () => {
  const root = temporaryDirectory('vxnet-main-');
  const dataDir = join(root, 'data');
  const a = await startManager({ dataDir, listen: [`unix:${join(root, 'a.sock')}`] });
  await a.service.createNetwork({ name: 'blue', vni: 77 });
  await assert.rejects(startManager({ dataDir, listen: [`unix:${join(root, 'b.sock')}`] }), /in use by another process/);
  assert.ok(!existsSync(join(root, 'b.sock')));
  await a.close();
  const b = await startManager({ dataDir, listen: [`unix:${join(root, 'a.sock')}`] });
  try {
    assert.equal(b.service.getNetwork('blue').vni, 77);
    assert.equal(b.clusterId, a.clusterId);
  } finally {
    await b.close();
  }
});

test('an already aborted signal starts nothing', async () => {
  const root = temporaryDirectory('vxnet-main-');
  await runManager({ dataDir: join(root, 'data'), listen: [`unix:${join(root, 's')}`] }, AbortSignal.abort());
  assert.ok(!existsSync(join(root, 'data')));
});
