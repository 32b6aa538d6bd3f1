/**
 * The stand-in a stopping agent leaves on the plugin socket (src/docker/stand-in.ts), served in this process:
 * discovery answered as the plugin does, every other call refused at once with the agent-down sentence, and
 * gone as soon as its socket is replaced.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { agentDownSentence, standInArgv, standInMain } from '../../src/docker/stand-in.ts';

function post(socketPath: string, call: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: `/${call}`, method: 'POST', agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

describe('plugin stand-in while the agent is stopped', () => {
  it('answers discovery like the plugin, refuses the rest with the sentence, and leaves once its socket is replaced', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxnet-stand-in-'));
    const socket = join(dir, 'vxnet.sock');
    const sentence = agentDownSentence('host1');
    assert.equal(sentence, 'the vxnet agent on this host (node host1) is not running, so Docker cannot use vxnet networks here: start it with "systemctl start vxnet-agent" or run "vxnet agent ..." again.');
    try {
      const served = standInMain(socket, sentence, 20);
      for (let i = 0; i < 100; i++) {
        try {
          await post(socket, 'Plugin.Activate');
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      assert.deepEqual(await post(socket, 'Plugin.Activate'), { Implements: ['NetworkDriver', 'IpamDriver'] });
      assert.deepEqual(await post(socket, 'IpamDriver.GetDefaultAddressSpaces'), { LocalDefaultAddressSpace: 'vxnet', GlobalDefaultAddressSpace: 'vxnet' });
      assert.deepEqual(await post(socket, 'IpamDriver.RequestAddress'), { Error: sentence });
      assert.deepEqual(await post(socket, 'NetworkDriver.CreateEndpoint'), { Err: sentence });
      // a starting agent replaces the socket: the stand-in notices and ends
      rmSync(socket);
      const agent = createServer((_req, res) => res.end('{}'));
      await new Promise<void>((resolve) => agent.listen(socket, resolve));
      await served;
      // and a stand-in never takes a socket someone answers on
      await standInMain(socket, sentence, 20);
      assert.deepEqual(await post(socket, 'Plugin.Activate'), {});
      agent.closeAllConnections();
      await new Promise((resolve) => agent.close(resolve));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs as node -e from its own source; as a transient unit when the agent is a systemd service', () => {
    const plain = standInArgv('/run/docker/plugins/vxnet.sock', 'host1', {});
    assert.equal(plain[0], process.execPath);
    assert.equal(plain[1], '-e');
    assert.match(plain[2]!, /^\(async function standInMain\(/);
    assert.match(plain[2]!, /"\/run\/docker\/plugins\/vxnet\.sock", "the vxnet agent on this host \(node host1\)/);
    const unit = standInArgv('/run/docker/plugins/vxnet.sock', 'host1', { INVOCATION_ID: 'abc' });
    if (unit[0] !== process.execPath) assert.deepEqual(unit.slice(1, 3), ['--collect', '--quiet']);
  });
});
