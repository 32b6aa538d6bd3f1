/**
 * `vxnet cni install`: puts the plugin where CNI runtimes look. The executable is a two-line shell script
 * that starts the plugin's own entry (src/cni/main.ts, or its chunk in an installation) on this vxnet's
 * Node.js, so a plugin call never loads the CLI. It is written as `vxnet-cni`, and `vxnet` links to it:
 * runtimes run the executable named by the configuration's `"type": "vxnet"`.
 */
import { UsageError, one, type CommandModule } from '../command.ts';

export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
export const CNI_EXECUTABLE = 'vxnet-cni';
/** The name runtimes look up: the configuration's `type`. */
export const CNI_TYPE_LINK = 'vxnet';

export interface CniInstallCommand {
  kind: 'cni install';
  binDir: string;
}

/** The plugin script: the paths are quoted for sh (a single quote inside one is closed, escaped and reopened). */
export function pluginScript(node: string, entry: string): string {
  const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  return `#!/bin/sh\n# vxnet's CNI plugin (written by "vxnet cni install")\nexec ${q(node)} ${q(entry)} "$@"\n`;
}

export const cniInstall: CommandModule<CniInstallCommand> = {
  path: 'cni install',
  summary: 'install the CNI plugin (vxnet-cni) where CNI runtimes look for plugins',
  args: [],
  synopsis: '[--bin-dir DIR]',
  flags: [{ name: 'bin-dir', kind: 'string', value: 'DIR', help: `the runtime's plugin directory (default: ${DEFAULT_CNI_BIN_DIR})` }],
  connection: false,
  json: false,

  build(p) {
    const binDir = one(p, 'bin-dir') ?? DEFAULT_CNI_BIN_DIR;
    if (!binDir.startsWith('/')) throw new UsageError(`--bin-dir needs an absolute path, not "${binDir}".`);
    return { kind: 'cni install', binDir };
  },

  async run(command, ctx) {
    const { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { fileURLToPath } = await import('node:url');
    const entry = fileURLToPath(new URL('../../cni/main.ts', import.meta.url));
    const target = join(command.binDir, CNI_EXECUTABLE);
    const link = join(command.binDir, CNI_TYPE_LINK);
    mkdirSync(command.binDir, { recursive: true });
    // Written aside and renamed: a runtime starting the plugin meanwhile sees the old one or the new one.
    const tmp = `${target}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, pluginScript(process.execPath, entry), { mode: 0o755 });
      chmodSync(tmp, 0o755);
      renameSync(tmp, target);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    const linkTmp = `${link}.tmp-${process.pid}`;
    rmSync(linkTmp, { force: true });
    symlinkSync(CNI_EXECUTABLE, linkTmp);
    renameSync(linkTmp, link);
    ctx.stdout(`installed ${target} (and ${link}, the name of the configuration's "type")\n`);
    return 0;
  },
};
