/**
 * `vxnet migrate`: a stopped single manager's SQLite store, CA and tokens moved into a real etcd (one member
 * on loopback); a manager started on etcd with the same DATA_DIR serves the same cluster, with revisions
 * continuing above the old ones.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main } from '../../src/cli/main.ts';
import { startManager } from '../../src/manager/main.ts';
import { ETCD_BINARY, type EtcdCluster, startSingleEtcd } from '../../src/testkit/etcd.ts';
import { registerNodes } from './support/manager.ts';
import { temporaryDirectory } from './support/temporary.ts';

const skip = existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;
let etcd: EtcdCluster | undefined;
let scratch: string;

before(async () => {
  scratch = temporaryDirectory('vxnet-migrate-');
  if (!skip) etcd = await startSingleEtcd({ scratch });
});
after(async () => {
  await etcd?.stop();
});

test('a SQLite cluster moved to etcd keeps its id, CA, tokens, addresses, and revisions going up', { ...(skip ? { skip } : {}) }, async () => {
  const dataDir = join(scratch, 'dir');
  const listen = [`unix:${join(scratch, 'm.sock')}`];
  const before = await startManager({ dataDir, listen });
  await registerNodes(before.service, ['host1']);
  await before.service.createNetwork({ name: 'blue', subnets: [{ cidr: '10.5.0.0/24' }] });
  const endpoint = await before.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
  const oldRevision = before.service.info().revision;
  await before.close();

  const url = `etcd://${etcd!.endpoints()[0]}`;
  const out: string[] = [];
  const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => out.push(t) };
  assert.equal(await main(['migrate', '--from', dataDir, '--to', url], {}, io), 0, out.join('\n'));
  assert.match(out.join('\n'), /^migrated \d+ keys \(revision \d+\) with the CA and tokens of /);
  // only into an empty store
  out.length = 0;
  assert.equal(await main(['migrate', '--from', dataDir, '--to', url], {}, io), 1);
  assert.match(out.join('\n'), /already holds vxnet data under \/vxnet: migrate only into an empty store/);

  const after_ = await startManager({ dataDir, listen, store: url });
  try {
    assert.equal(after_.clusterId, before.clusterId);
    assert.equal(after_.caDigest, before.caDigest);
    assert.equal(after_.security.tokens.roleOf(before.tokens.admin), 'admin');
    assert.equal(after_.service.getEndpoint(endpoint.id).ip, endpoint.ip);
    assert.ok(after_.service.info().revision > oldRevision);
    const next = await after_.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2' });
    assert.notEqual(next.ip, endpoint.ip);
    assert.ok(after_.service.info().revision > oldRevision);
  } finally {
    await after_.close();
  }
});
