/** `vxnet cni config` and `vxnet cni install`, and the agent's --cni-socket flag. */
import { execFile } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { pluginScript } from '../../src/cli/commands/cni-install.ts';

async function vxnet(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {}, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

describe('vxnet cni', () => {
  test('agent: --no-cni turns the plugin off; without a flag the command names no socket (the agent serves the default)', () => {
    const base = ['agent', '--manager', 'https://10.0.0.1:7443', '--advertise-addr', '10.0.0.2'];
    const plain = parseCommandLine(base, {}) as { cniSocket?: string; noCni?: true };
    const off = parseCommandLine([...base, '--no-cni'], {}) as { cniSocket?: string; noCni?: true };
    assert.deepEqual([plain.cniSocket, plain.noCni, off.noCni], [undefined, undefined, true]);
  });

  test('cni config prints the conflist, with the socket only when it is not the default, and portmap chained unless --no-portmap', async () => {
    const portmap = { type: 'portmap', capabilities: { portMappings: true }, snat: true };
    const plain = await vxnet(['cni', 'config', 'blue']);
    assert.equal(plain.code, 0);
    assert.deepEqual(JSON.parse(plain.out), { cniVersion: '1.0.0', name: 'blue', plugins: [{ type: 'vxnet', network: 'blue' }, portmap] });
    const own = await vxnet(['cni', 'config', 'blue', '--socket', '/tmp/h1/cni.sock']);
    assert.deepEqual(JSON.parse(own.out).plugins, [{ type: 'vxnet', network: 'blue', socket: '/tmp/h1/cni.sock' }, portmap]);
    const bare = await vxnet(['cni', 'config', 'blue', '--no-portmap']);
    assert.deepEqual(JSON.parse(bare.out).plugins, [{ type: 'vxnet', network: 'blue' }]);
  });

  test('cni config and install refuse bad input with one sentence (exit 2)', async () => {
    assert.deepEqual(await vxnet(['cni', 'config', 'blue', '--socket', 'cni.sock']), { code: 2, out: '', err: 'vxnet: --socket needs an absolute path, not "cni.sock".\n' });
    const name = await vxnet(['cni', 'config', 'no/slash']);
    assert.equal(name.code, 2);
    assert.match(name.err, /^vxnet: network name "no\/slash" is invalid/);
    assert.equal((await vxnet(['cni', 'install', '--bin-dir', 'bin'])).err, 'vxnet: --bin-dir needs an absolute path, not "bin".\n');
    assert.throws(() => parseCommandLine(['agent', '--manager', 'https://10.0.0.1:7443', '--advertise-addr', '10.0.0.2', '--cni-socket', 'cni.sock'], {}), /^UsageError: --cni-socket needs an absolute path, not "cni\.sock"\.$/);
    assert.throws(
      () => parseCommandLine(['agent', '--manager', 'https://10.0.0.1:7443', '--advertise-addr', '10.0.0.2', '--cni-socket', '/run/a.sock', '--no-cni'], {}),
      /^UsageError: --no-cni and --cni-socket exclude each other: the first serves no CNI plugin, the second says where to serve it\.$/,
    );
  });

  test('cni install writes vxnet-cni and links vxnet (the configuration\'s type) to it; the script runs the plugin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxnet-cni-bin-'));
    try {
      const bin = join(dir, 'cni', 'bin');
      const installed = await vxnet(['cni', 'install', '--bin-dir', bin]);
      assert.equal(installed.code, 0, installed.err);
      assert.equal(statSync(join(bin, 'vxnet-cni')).mode & 0o777, 0o755);
      assert.ok(lstatSync(join(bin, 'vxnet')).isSymbolicLink());
      assert.equal(readlinkSync(join(bin, 'vxnet')), 'vxnet-cni');
      assert.match(readFileSync(join(bin, 'vxnet-cni'), 'utf8'), /src\/cni\/main\.ts' "\$@"\n$/);
      assert.equal((await vxnet(['cni', 'install', '--bin-dir', bin])).code, 0, 'installing again replaces both');
      const version = await new Promise<string>((resolve, reject) => {
        const child = execFile(join(bin, 'vxnet'), [], { env: { CNI_COMMAND: 'VERSION' } }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
        child.stdin!.end('{"cniVersion":"1.0.0"}');
      });
      assert.equal(JSON.parse(version).cniVersion, '1.0.0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the plugin executable loads its own modules (src/cni/) and nothing else of vxnet (no CLI, no manager client)', async () => {
    const script = `
      import { registerHooks } from 'node:module';
      const loaded = [];
      registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r; } });
      process.on('exit', () => process.stderr.write(JSON.stringify(loaded)));
      await import(${JSON.stringify(new URL('../../src/cni/main.ts', import.meta.url).href)});
    `;
    const loaded = await new Promise<string[]>((resolve, reject) => {
      const child = execFile(process.execPath, ['--input-type=module', '-e', script], { env: { CNI_COMMAND: 'VERSION' } }, (err, _stdout, stderr) => {
        if (err) reject(err);
        else resolve(JSON.parse(stderr) as string[]);
      });
      child.stdin!.end('{"cniVersion":"1.0.0"}');
    });
    const own = loaded.filter((url) => url.startsWith('file:')).map((url) => url.replace(/.*\/src\//, ''));
    assert.deepEqual(own.sort(), ['cni/agent-api.ts', 'cni/main.ts', 'cni/plugin.ts', 'cni/protocol.ts', 'cni/socket.ts']);
  });

  test('the plugin script quotes its paths for sh', () => {
    assert.equal(pluginScript("/opt/it's/node", '/x/main.js').split('\n')[2], `exec '/opt/it'\\''s/node' '/x/main.js' "$@"`);
  });
});
