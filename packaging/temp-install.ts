/**
 * Builds the tarball (`npm run dist`) and installs it with install.sh into a fresh temporary folder, as an
 * operator would on a host but with PREFIX and SYSCONFDIR under that folder and no Debian packages: for
 * test/integration/install.test.ts and bench/cli-start.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { dist } from './build.ts';

const ROOT = resolve(import.meta.dirname, '..');

export interface TempInstall {
  /** the temporary folder holding everything below */
  readonly dir: string;
  readonly tarball: string;
  /** install.sh --prefix: bin/vxnet, lib/vxnet/, share/doc/vxnet/ */
  readonly prefix: string;
  /** install.sh --sysconfdir: systemd/system/vxnet-*.service, default/vxnet-*, vxnet/ */
  readonly sysconfdir: string;
  /** PREFIX/bin/vxnet */
  readonly vxnet: string;
  /** the Node.js the installation runs on */
  readonly node: string;
  /** runs install.sh again with the same folders and more arguments (e.g. --uninstall); returns its stdout */
  installSh(args: readonly string[]): string;
  /** deletes the folder; idempotent */
  remove(): void;
}

export async function installTemporarily(): Promise<TempInstall> {
  const tarball = await dist();

  const dir = mkdtempSync(join(tmpdir(), 'vxnet-install-'));
  const prefix = join(dir, 'usr');
  const sysconfdir = join(dir, 'etc');
  const installSh = (args: readonly string[]): string =>
    execFileSync(join(ROOT, 'install.sh'), ['--prefix', prefix, '--sysconfdir', sysconfdir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    installSh(['--from', tarball, '--no-packages']);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    tarball,
    prefix,
    sysconfdir,
    vxnet: join(prefix, 'bin', 'vxnet'),
    node: join(prefix, 'lib', 'vxnet', 'node', 'bin', 'node'),
    installSh,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
