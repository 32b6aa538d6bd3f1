/** The command registry: one module per command, and a start-up path that loads only what it needs. */
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { globalFlagsOf, UsageError } from '../../src/cli/command.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { COMMANDS, GROUPS } from '../../src/cli/registry.ts';
import { COMMAND_INDEX, isIndexedGroup } from '../../src/cli/command-index.ts';
import { ERROR_STATUS, VxnetError } from '../../src/core/errors.ts';

describe('CLI command registry', () => {
  test('each command has its own words, and each group its commands', () => {
    const paths = COMMANDS.map((c) => c.path);
    assert.equal(new Set(paths).size, paths.length);
    for (const path of paths) {
      const [first, ...more] = path.split(' ');
      assert.ok(more.length === 0 ? !Object.hasOwn(GROUPS, first!) : Object.hasOwn(GROUPS, first!), path);
    }
    for (const group of Object.keys(GROUPS)) assert.ok(paths.some((p) => p.startsWith(`${group} `)), group);
  });

  test("a command's flags neither repeat nor shadow a global flag it accepts", () => {
    for (const c of COMMANDS) {
      const names = [...c.flags.map((f) => f.name), ...globalFlagsOf(c).map((f) => f.name), 'help'];
      assert.equal(new Set(names).size, names.length, c.path);
    }
  });

  test('every command lists its flags in its help', () => {
    for (const c of COMMANDS) {
      const help = parseCommandLine([...c.path.split(' '), '--help'], {});
      assert.equal(help.kind, 'help');
      for (const flag of c.flags) assert.match((help as { text: string }).text, new RegExp(`--${flag.name}\\b`), c.path);
    }
  });

  test('a usage error is the catalogue code "usage"', () => {
    const err = new UsageError('no command given.');
    assert.ok(err instanceof VxnetError);
    assert.equal(err.code, 'usage');
    assert.equal(ERROR_STATUS.usage, 400);
  });

  test('a flag in an error is shown as typed, short groups whole and never with its value', () => {
    const env = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 't' };
    assert.throws(() => parseCommandLine(['network', 'ls', '-xh'], env), /^UsageError: unknown flag -xh for "vxnet network ls"/);
    assert.throws(() => parseCommandLine(['network', 'rm', 'n', '--forse=s3cr3t'], env), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, /^unknown flag --forse for/);
      return true;
    });
  });

  test('vxnet --version loads neither the parser, the command modules nor the HTTP client', async () => {
    const { out, loaded } = await mainInChild(['--version'], {});
    assert.match(out, /^vxnet \d+\.\d+\.\d+\n$/);
    const cli = loaded.filter((url) => url.includes('/src/cli/')).map((url) => url.replace(/.*\/src\/cli\//, ''));
    assert.deepEqual(cli.sort(), ['commands/version.ts', 'format.ts', 'main.ts']);
    assert.deepEqual(loaded.filter((url) => url.includes('/src/client/')), []);
  });

  test('the command index names every command of the registry, in its order, and loads that very module', async () => {
    assert.deepEqual(Object.keys(COMMAND_INDEX), COMMANDS.map((c) => c.path));
    for (const c of COMMANDS) assert.equal(await COMMAND_INDEX[c.path]!(), c, c.path);
    const firstWords = new Set(COMMANDS.map((c) => c.path.split(' ')[0]!));
    for (const word of firstWords) assert.equal(isIndexedGroup(word), Object.hasOwn(GROUPS, word), word);
  });

  test('vxnet network ls loads its own command module and no other, nor the parser, the registry or help', async () => {
    const { code, err, loaded } = await mainInChild(['network', 'ls'], { VXNET_MANAGER: 'unix:/nonexistent/vxnet.sock', VXNET_TOKEN: 't' });
    // No manager there: the call fails as it would have, after loading what it needs.
    assert.equal(code, 1);
    assert.match(err, /^vxnet: /);
    const cli = new Set(loaded.filter((url) => url.includes('/src/cli/')).map((url) => url.replace(/.*\/src\/cli\//, '')));
    assert.deepEqual([...cli].filter((f) => f.startsWith('commands/')).sort(), ['commands/network-ls.ts', 'commands/version.ts']);
    for (const absent of ['parse.ts', 'registry.ts', 'help.ts']) assert.ok(!cli.has(absent), absent);
  });
});

/** Runs main() in a fresh Node.js process: its exit status, output, and the URL of every module it loaded. */
async function mainInChild(argv: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string; loaded: string[] }> {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r; } });
    const { main } = await import(${JSON.stringify(new URL('../../src/cli/main.ts', import.meta.url).href)});
    let out = '';
    let err = '';
    const code = await main(${JSON.stringify(argv)}, ${JSON.stringify(env)}, { stdout(t) { out += t; }, stderr(t) { err += t; } });
    console.log(JSON.stringify({ code, out, err, loaded }));
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], (error, stdout) => {
      if (error) reject(error);
      else resolve(JSON.parse(stdout) as { code: number; out: string; err: string; loaded: string[] });
    });
  });
}
