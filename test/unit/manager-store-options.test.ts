/**
 * Choosing the store and the managers: `--store etcd://...` and its companions on `vxnet manager`, the
 * comma-separated manager lists clients take, and `vxnet migrate` — bad input gets one sentence and nothing
 * starts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { existsSync } from 'node:fs';
import { parseManagerUrls } from '../../src/client/manager-url.ts';
import { UsageError } from '../../src/cli/command.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { startManager } from '../../src/manager/main.ts';
import { parseStoreUrl } from '../../src/manager/store/open.ts';
import { temporaryDirectory } from './support/temporary.ts';

const parse = (line: string) => parseCommandLine(line.split(' '), {});

describe('store and manager lists', () => {
  test('etcd:// lists its members, with 2379 as the default port', () => {
    assert.deepEqual(parseStoreUrl('etcd://10.0.0.1:2379,10.0.0.2,etcd-c.example:32379'), {
      kind: 'etcd',
      endpoints: ['10.0.0.1:2379', '10.0.0.2:2379', 'etcd-c.example:32379'],
    });
    assert.deepEqual(parseStoreUrl('etcd://[fd00::1]:2379').endpoints, ['[fd00::1]:2379']);
    for (const [text, message] of [
      ['sqlite:/var/lib/vxnet', /--store must be etcd:\/\/HOST:PORT/],
      ['etcd://a:2379,,b', /"" in --store is not HOST:PORT of an etcd member\.$/],
      ['etcd://a:99999', /"a:99999" in --store is not HOST:PORT/],
      ['etcd://a b:2379', /is not HOST:PORT/],
      ['etcd://a:2379,a', /names an etcd member twice/],
    ] as const) {
      assert.throws(() => parseStoreUrl(text), message, text);
    }
  });

  test('vxnet manager: --store goes with the etcd flags, and a bad URL stops it before it touches DATA_DIR', async () => {
    const ok = parse('manager --data-dir /d --listen unix:/s --store etcd://a:2379 --token-file /t --etcd-ca /ca');
    assert.deepEqual(ok, { kind: 'manager', dataDir: '/d', listen: ['unix:/s'], store: 'etcd://a:2379', etcdCa: '/ca', tokenFile: '/t' });
    assert.throws(() => parse('manager --data-dir /d --listen unix:/s --token-file /t'), (err: unknown) => err instanceof UsageError && /go with --store etcd:/.test(err.message));
    assert.throws(() => parse('manager --data-dir /d --listen unix:/s --store etcd://a --etcd-cert /c'), /--etcd-cert and --etcd-key go together/);
    assert.throws(() => parse('manager --data-dir /d --listen unix:/s --store etcd://a --etcd-cert /c --etcd-key /k'), /--etcd-cert needs --etcd-ca/);
    const dataDir = join(temporaryDirectory('vxnet-store-options-'), 'never');
    await assert.rejects(startManager({ dataDir, listen: ['unix:/nonexistent/x.sock'], store: 'etcd://a:2379,,b' }), /is not HOST:PORT of an etcd member/);
    assert.equal(existsSync(dataDir), false);
    await assert.rejects(startManager({ dataDir, listen: ['unix:/nonexistent/x.sock'], tokenFile: '/t' }), /^Error: --token-file is for joining a cluster kept in etcd/);
    assert.equal(existsSync(dataDir), false);
  });

  test('vxnet migrate needs --from and --to', () => {
    assert.deepEqual(parse('migrate --from /d --to etcd://a:2379'), { kind: 'migrate', from: '/d', to: 'etcd://a:2379' });
    assert.throws(() => parse('migrate --to etcd://a:2379'), /needs --from/);
  });

  test('a manager list: every URL checked, one kind, no repeats', () => {
    assert.deepEqual(
      parseManagerUrls('https://10.0.0.1:7400, https://10.0.0.2:7400').map((t) => t.url),
      ['https://10.0.0.1:7400', 'https://10.0.0.2:7400'],
    );
    assert.throws(() => parseManagerUrls('https://10.0.0.1:7400,unix:/run/vxnet.sock'), /mix kinds of URL/);
    assert.throws(() => parseManagerUrls('https://10.0.0.1:7400,https://10.0.0.1:7400'), /names one manager twice/);
    assert.throws(() => parseManagerUrls('https://10.0.0.1:7400,'), /the manager URL is empty/);
    assert.throws(() => parse('network ls --manager https://a:7400,ftp://b --token t'), /is not supported/);
  });
});
