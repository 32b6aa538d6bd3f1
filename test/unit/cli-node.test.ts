/**
 * `vxnet node rm NAME [--drain]`, `vxnet manager --node-down-after SECONDS` and
 * `vxnet agent --watch-timeout SECONDS` on the command line.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../../src/cli/command.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';

const env = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 't' };
const parse = (line: string, e: Record<string, string> = env) => parseCommandLine(line.split(' '), e);
const usageError = (line: string, pattern: RegExp) =>
  assert.throws(() => parse(line), (err: unknown) => err instanceof UsageError && pattern.test(err.message));

describe('node rm', () => {
  test('removes a node, with or without --drain', () => {
    assert.deepEqual(parse('node rm host3'), {
      kind: 'node-rm',
      connection: { url: 'unix:/run/vxnet.sock', token: 't' },
      name: 'host3',
      drain: false,
    });
    assert.equal((parse('node rm host3 --drain') as { drain: boolean }).drain, true);
  });

  test('refuses a missing or invalid name, extra arguments and unknown flags', () => {
    usageError('node rm', /^"vxnet node rm" needs NAME/);
    usageError('node rm a;b', /node name "a;b" is invalid/);
    usageError('node rm ../x', /node name "..\/x" is invalid/);
    usageError('node rm h1 h2', /unexpected argument "h2"/);
    usageError('node rm h1 --force', /unknown flag --force/);
  });

  test('is listed in the help of the node group', () => {
    const help = parse('node --help') as { kind: string; text: string };
    assert.equal(help.kind, 'help');
    assert.match(help.text, /node rm\s+remove a node/);
  });
});

describe('manager --node-down-after', () => {
  test('takes whole seconds, 1 to 86400', () => {
    assert.deepEqual(parse('manager --data-dir /d --listen unix:/s --node-down-after 7', {}), {
      kind: 'manager',
      dataDir: '/d',
      listen: ['unix:/s'],
      nodeDownAfterSeconds: 7,
    });
    usageError('manager --data-dir /d --listen unix:/s --node-down-after 0', /from 1 to 86400 seconds/);
    usageError('manager --data-dir /d --listen unix:/s --node-down-after 1.5', /whole number/);
  });
});

describe('agent --watch-timeout', () => {
  const agent = 'agent --manager https://10.0.0.1:7400 --token t --advertise-addr 10.0.0.11';
  test('takes whole seconds, 1 to 3600, and is left out when not given', () => {
    assert.equal((parse(`${agent} --watch-timeout 12`, {}) as { watchTimeoutSeconds?: number }).watchTimeoutSeconds, 12);
    assert.equal(Object.hasOwn(parse(agent, {}), 'watchTimeoutSeconds'), false);
    usageError(`${agent} --watch-timeout 0`, /from 1 to 3600 seconds/);
    usageError(`${agent} --watch-timeout soon`, /whole number/);
  });
});
