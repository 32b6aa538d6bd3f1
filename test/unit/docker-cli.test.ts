/** The command line of the Docker integration: the agent's link to an engine, attach/detach --container. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../../src/cli/command.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import type { Command } from '../../src/cli/registry.ts';

const ENV = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 'tok-env' };

function parse(line: string): Command {
  return parseCommandLine(line.split(' '), ENV);
}

function usageError(line: string, pattern: RegExp): void {
  assert.throws(
    () => parse(line),
    (err: unknown) => err instanceof UsageError && pattern.test(err.message),
  );
}

describe('CLI: Docker', () => {
  test('agent --docker-socket links it to an engine; --plugin-socket moves the plugin', () => {
    const c = parse('agent --advertise-addr 10.0.0.2 --docker-socket /run/docker.sock --plugin-socket /run/x/vxnet.sock');
    assert.equal(c.kind, 'agent');
    assert.equal((c as Extract<Command, { kind: 'agent' }>).dockerSocket, '/run/docker.sock');
    assert.equal((c as Extract<Command, { kind: 'agent' }>).pluginSocket, '/run/x/vxnet.sock');
    assert.equal((parse('agent --advertise-addr 10.0.0.2') as Extract<Command, { kind: 'agent' }>).dockerSocket, undefined);
    usageError('agent --advertise-addr 10.0.0.2 --plugin-socket /run/x.sock', /--plugin-socket needs --docker-socket/);
    usageError('agent --advertise-addr 10.0.0.2 --docker-socket docker.sock', /--docker-socket needs an absolute path/);
  });

  test('attach --container: a container of the node\'s engine, instead of --netns', () => {
    assert.deepEqual(parse('attach blue --node host1 --container web --ip 10.1.0.9'), {
      kind: 'attach',
      connection: { url: 'unix:/run/vxnet.sock', token: 'tok-env' },
      json: false,
      request: { network: 'blue', node: 'host1', container: 'web', ip: '10.1.0.9' },
      waitSeconds: 30,
    });
    usageError('attach blue --node host1 --container web --netns c1', /takes --netns or --container, not both/);
    usageError('attach blue --node host1', /needs --netns NAME\|PATH or --container NAME\|ID/);
    usageError('attach blue --node host1 --container w/eb', /container "w\/eb" is invalid/);
  });

  test('detach --container finds the endpoint by the container as it was attached', () => {
    const c = parse('detach blue --node host1 --container web') as Extract<Command, { kind: 'detach' }>;
    assert.deepEqual([c.container, c.netns, c.ifname], ['web', undefined, 'eth0']);
    const n = parse('detach blue --node host1 --netns c1') as Extract<Command, { kind: 'detach' }>;
    assert.deepEqual([n.container, n.netns], [undefined, '/run/netns/c1']);
  });
});
