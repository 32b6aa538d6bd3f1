/** The command lines of `vxnet trace` and `vxnet ui`: typed commands, and one-sentence usage errors. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../../src/cli/command.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';

const ENV = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 'tok-env' };
const CONN = { url: 'unix:/run/vxnet.sock', token: 'tok-env' };
const parse = (line: string) => parseCommandLine(line.split(' '), ENV);
const usage = (line: string, message: string) =>
  assert.throws(() => parse(line), (err: unknown) => err instanceof UsageError && err.message === message);

describe('vxnet trace', () => {
  test('to an endpoint id or an address; --probe with its count; --json', () => {
    assert.deepEqual(parse('trace blue --from aaa --to bbb'), { kind: 'trace', connection: CONN, json: false, network: 'blue', from: 'aaa', to: { endpoint: 'bbb' } });
    assert.deepEqual(parse('trace blue --from aaa --to 192.168.1.3 --probe --json'), {
      kind: 'trace', connection: CONN, json: true, network: 'blue', from: 'aaa', to: { ip: '192.168.1.3' }, probe: 3,
    });
    assert.equal((parse('trace blue --from a --to b --probe --count 20 --timeout 9') as { probe?: number }).probe, 20);
  });

  test('usage errors', () => {
    usage('trace blue --to b', '"vxnet trace" needs --from; run "vxnet trace --help" for its flags.');
    usage('trace blue --from a --to b --count 2', '--count goes with --probe.');
    usage('trace blue --from a --to b --probe --count 21', '--count must be from 1 to 20, not 21.');
    usage('trace blue --from a --to b --timeout 0', '--timeout must be from 1 to 60 seconds, not 0.');
  });
});

describe('vxnet ui', () => {
  test('loopback only, 127.0.0.1:7948 unless told', () => {
    assert.deepEqual(parse('ui'), { kind: 'ui', connection: CONN, listen: { kind: 'tcp', host: '127.0.0.1', port: 7948 } });
    assert.deepEqual((parse('ui --listen [::1]:0') as { listen: unknown }).listen, { kind: 'tcp', host: '::1', port: 0 });
    usage('ui --listen 0.0.0.0:7948', '--listen 0.0.0.0:7948 is not a loopback address: the dashboard is served on 127.0.0.1 or ::1 only.');
    usage('ui --listen :7948', '--listen :7948 is not a loopback address: the dashboard is served on 127.0.0.1 or ::1 only.');
    usage('ui --listen localhost', '--listen localhost is invalid: expected ADDR:PORT.');
  });
});
