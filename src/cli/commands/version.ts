/** `vxnet version` (and `vxnet --version`). */
import { readFileSync } from 'node:fs';
import type { CommandModule } from '../command.ts';

export interface VersionCommand {
  kind: 'version';
}

export const version: CommandModule<VersionCommand> = {
  path: 'version',
  summary: 'print the version',
  args: [],
  synopsis: '',
  flags: [],
  connection: false,
  json: false,
  build: () => ({ kind: 'version' }),
  async run(_command, ctx) {
    ctx.stdout(`vxnet ${packageVersion()}\n`);
    return 0;
  },
};

/** The version in package.json, read when asked so that other commands do not pay for it. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}
