/**
 * `npm run bench:cli`: how long a `vxnet` call takes, next to the floor of any Node.js program.
 *
 * Builds the tarball and installs it into a temporary prefix (packaging/temp-install.ts; `--prefix DIR`
 * measures an existing installation instead), starts a real manager in this process (unix socket and TLS
 * on 127.0.0.1), then runs each command --runs times (default 50), the commands interleaved round by round
 * so that the machine's noise hits them alike, and prints p50/p99 and the ratio of each p50 to that of
 * `node -e 0` on the same Node.js. The same commands run from source (bin/vxnet, type stripping) show what
 * the build buys; with Node's compile cache off (the launcher turns it on), what the cache adds. Over TLS,
 * the CLI's cache keeps the pinned CA and the TLS session, so the plain TLS row resumes the session the call
 * before kept; the rows beside it show a first call (nothing cached) and a full handshake with the CA cached.
 *
 * Where a TLS call's extra ~30 ms over the unix socket went (installed build, Node 24.21, OpenSSL 3.5, stage
 * timestamps of single calls on a nearly idle machine): loading node:tls, which loads all of node:crypto,
 * 12–14 ms; node:https on top of node:http 0.3 ms; the first secure context 2 ms, plus 2–5 ms where
 * NODE_EXTRA_CA_CERTS names a bundle (Node parses it although vxnet passes its own CA, which alone is
 * trusted: checked); the TLS socket and ClientHello 3 ms; the handshake (X25519MLKEM768, ECDSA P-256 server
 * key, already the cheap kind) 1–3 ms, and the tickets the manager sends after it ~2 ms before the
 * answer; `--cpu-prof` shows no JSON or table cost of note. A resumed handshake saves ~0.8 ms of the CLI's CPU (2.5 → 1.7 ms, warm) and the
 * manager's signature; loading the API's schemas only once the request is on the wire lets that work
 * overlap the manager's. The rest is Node's: no startup snapshot may hold node:tls (`--build-snapshot` fails).
 *
 * Issue 17's second pass (A/B of CPU time, user + sys from wait4, 30–40 interleaved runs each on the shared,
 * loaded machine, so as ratios): three changes kept. The launchers unset NODE_EXTRA_CA_CERTS (docs/security.md):
 * a TLS call's CPU 1.32× → 1.24× of the unix call's (211 → 199 ms under load). main exits once stdout and
 * stderr are flushed rather than when the loop runs dry: Node's teardown (environment cleanup, the heap
 * unmapped page by page) came after the answer was printed, 26 → 5 ms from output to exit under strace; both
 * together, TLS 244 → 221 ms of CPU (0.91×) and 2.55× → 2.31× the CPU of `node -e 0`. And the installed
 * launcher turns Node's compile cache on, as bin/vxnet did (packaging/launcher-env.sh): CPU −2 to −6% for
 * TLS, unix and --version calls, wall −4 to −6% (30 runs; the previous pass's rows showed −3 to −4%). Tried and left:
 * a user-land V8 snapshot (node:http cannot be in one either: `--build-snapshot` aborts in
 * CheckGlobalAndEternalHandles; only vxnet's own JS could be, a CommonJS rebuild for a few ms at most);
 * `--min-semi-space-size` 2/4/16 (no scavenge left, no gain; 16 MB costs page faults), `--single-threaded-gc`,
 * `--single-threaded`, `--max-opt=0/1`, `--v8-pool-size=0` (none faster, the last three slower);
 * `--use-openssl-ca` (the bundled roots are parsed either way: ~2 ms); one bundle file instead of chunks
 * (1.12× the CPU: parsing the daemons' code), and the CLI as the only entry point (the same 29 modules: the
 * chunks follow its own lazy imports). The /bin/sh launcher costs ~1–2 ms, less than the bundle it drops
 * (row "no launcher").
 *
 * Issue 17's third pass: the ~48 ms a unix-socket call costs over `node -e 0` are the client's. The manager's
 * side of one `GET /v1/networks`, 300 requests each on new connections from a warm client: 0.40 ms of manager
 * CPU over the unix socket, 1.43 ms over TLS with a full handshake, 1.10 ms resumed (the admin token is one
 * SHA-256 and a constant-time compare, src/manager/tokens.ts: no KDF). On a resumed connection the manager's
 * new ticket comes after the answer (warm client: head at 4.3 ms, ticket at 7.8), so no call waits for it.
 * Stage marks in single TLS calls (a loaded machine, so as shares of the time from main.js's first line to
 * the exit): ~60% until the request is made (the command's modules, the client, node:http, node:https with
 * node:tls and node:crypto, the kept CA and session read), ~20% the first TLS connection's setup until its
 * socket (secure context, TLSSocket), ~10% connect and handshake (the schemas load meanwhile), ~6% the answer
 * printed and the exit. Two changes kept: a command line naming one command loads that
 * command's module alone (src/cli/command-index.ts), not the registry's 25 and help (a 59 KB chunk: 29 → 25
 * files for `network ls`); and the launcher runs Node with --preserve-symlinks(-main), so the ESM loader
 * takes no real path of main.js and each chunk (install.sh). Together, A/B against the previous build in one
 * interleaved run of 40 (load average 16-38): TLS p50 1.90× → 1.80× of `node -e 0`, CPU 2.14× → 1.95×;
 * unix 1.83× → 1.76×, CPU 1.68× → 1.65×. Tried and left: `tls.setDefaultCACertificates([CA])` instead of
 * `ca` (the first secure context costs the same ~2 ms); fewer files through fewer dynamic entries (every
 * daemon behind one entry: 26 → 20 files; the CLI's own lazy modules behind another too: 15 files but 58 KB
 * more JS): CPU within ±3%, noise, not kept; building the CNI plugin apart (the same 26 files here); a
 * larger first semi-space again (2, 4, 8 MB: no gain). Node's own share: node:tls loads node:crypto whole
 * (argon2 and key classes set up, WebCrypto's algorithm table built), ~14 ms quiet in either order.
 *
 * Targets (vxnet issue 17): `vxnet --version` within 1.3× of `node -e 0`; `vxnet network ls` against a
 * running manager under 150 ms. A benchmark, not a test: it prints, it asserts nothing.
 *
 * `npm run bench` runs the same measurement as its section `cli` (measureCliStart, below).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { TlsSessionStore } from '../src/client/tls-session.ts';
import { startManager } from '../src/manager/main.ts';
import { parseToken } from '../src/pki/token.ts';
import { installTemporarily, type TempInstall } from '../packaging/temp-install.ts';
import { distribution, fixed, ratio } from './stats.ts';

const ROOT = resolve(import.meta.dirname, '..');

interface Case {
  label: string;
  argv: string[];
  env?: Record<string, string>;
  /** variables removed from this process's environment for the command */
  unset?: readonly string[];
  target?: string;
}

/**
 * CPU time of this process's waited-for children so far (utime + stime of /proc/self/stat, in clock ticks of
 * 10 ms): summed over the runs of a command it gives its mean CPU time, which the other work on a shared
 * machine disturbs far less than the wall clock.
 */
function childCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime are fields 16 and 17 of proc(5); fields[0] here is field 3.
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

/** The options the installed launcher gives Node before main.js (install.sh writes its `exec` line). */
function launcherNodeFlags(launcher: string): string[] {
  const exec = /^exec "[^"]+"((?: --[a-z-]+)*) "[^"]+\/main\.js"/m.exec(readFileSync(launcher, 'utf8'));
  if (!exec) throw new Error(`${launcher}: no exec line of node and main.js; update bench/cli-start.ts with install.sh.`);
  return exec[1]!.trim().split(' ').filter((flag) => flag !== '');
}

/** Wall-clock milliseconds from spawn to exit; rejects on a non-zero exit (a broken command measures nothing). */
function timed(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolvePromise(ms);
      else reject(new Error(`${argv.join(' ')} exited with ${String(code)}: ${stderr.trim()}`));
    });
  });
}

export interface CliStartOptions {
  /** runs per command (default 50) */
  runs?: number;
  /** measure an existing installation instead of a temporary one */
  prefix?: string;
}

export interface CliStartRow {
  label: string;
  p50Ms: number;
  p99Ms: number;
  /** p50 ÷ that of `node -e 0` */
  ratio: number;
  meanCpuMs: number;
  target?: string;
}

export interface CliStartReport {
  runs: number;
  prefix: string;
  rows: CliStartRow[];
  /** a title line, a blank line and the table */
  markdown: string[];
}

/** Installs (unless `prefix` is given), starts a manager, runs every case `runs` times interleaved. */
export async function measureCliStart(options: CliStartOptions = {}): Promise<CliStartReport> {
  const runs = options.runs ?? 50;
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer (got ${runs}).`);
  let installed: TempInstall | undefined;
  const scratch = mkdtempSync(join(tmpdir(), 'vxnet-bench-cli-'));
  try {
    const prefix = options.prefix ?? (installed = await installTemporarily()).prefix;
    const vxnet = join(prefix, 'bin', 'vxnet');
    const node = join(prefix, 'lib', 'vxnet', 'node', 'bin', 'node');
    const mainJs = join(prefix, 'lib', 'vxnet', 'js', 'main.js');
    const nodeFlags = launcherNodeFlags(vxnet);
    const socket = join(scratch, 'manager.sock');
    const manager = await startManager({ dataDir: join(scratch, 'data'), listen: [`unix:${socket}`, '127.0.0.1:0'] });
    try {
      const tcp = manager.addresses.find((address) => !address.startsWith('unix:'));
      if (!tcp) throw new Error(`the manager listens on no TCP address (${manager.addresses.join(', ')}).`);
      const unixEnv = { VXNET_MANAGER: `unix:${socket}`, VXNET_TOKEN: manager.tokens.admin, XDG_CACHE_HOME: join(scratch, 'cache') };
      // The CLI keeps the pinned CA it fetched (src/client/ca-cache.ts): a scratch cache filled by the first
      // (unmeasured) round, and one under a plain file, where nothing can be kept, for the first call's cost.
      const tlsEnv = { VXNET_MANAGER: `https://${tcp}`, VXNET_TOKEN: manager.tokens.admin, XDG_CACHE_HOME: join(scratch, 'cache') };
      writeFileSync(join(scratch, 'not-a-folder'), '');
      const tlsUncachedEnv = { ...tlsEnv, XDG_CACHE_HOME: join(scratch, 'not-a-folder', 'cache') };
      // The CLI also keeps its TLS session there (src/client/tls-session.ts), so the row above resumes it. This
      // cache holds the CA but cannot keep a session (a folder where the session file would be): every call
      // makes a full handshake, as before sessions were kept.
      const fullHandshakeEnv = { ...tlsEnv, XDG_CACHE_HOME: join(scratch, 'cache-no-session') };
      const tcpUrl = `https://${tcp}`;
      const pin = parseToken(manager.tokens.admin)!.caDigest;
      mkdirSync(new TlsSessionStore(join(scratch, 'cache-no-session', 'vxnet'), { url: tcpUrl, pin, token: manager.tokens.admin }).file, { recursive: true });
      // Every row keeps the launcher's compile cache in the scratch folder (XDG_CACHE_HOME), not the user's.
      const cacheHome = { XDG_CACHE_HOME: join(scratch, 'cache') };
      const noCompileCache = { NODE_DISABLE_COMPILE_CACHE: '1' };
      const noLauncherEnv = { ...tlsEnv, NODE_COMPILE_CACHE: join(scratch, 'cache', 'vxnet', 'node-compile-cache') };
      // A listing with something in it: the answer is parsed and checked like any other.
      await timed([vxnet, 'network', 'create', 'bench', '--vni', '4242', '--subnet', '10.42.0.0/24'], { ...process.env, ...unixEnv });

      const source = join(ROOT, 'bin', 'vxnet');
      const cases: Case[] = [
        { label: '`node -e 0` (the installed Node.js)', argv: [node, '-e', '0'] },
        { label: '`vxnet --version`', argv: [vxnet, '--version'], env: cacheHome, target: '≤ 1.3× node -e 0' },
        { label: '`vxnet --version`, compile cache off', argv: [vxnet, '--version'], env: { ...cacheHome, ...noCompileCache } },
        { label: '`vxnet network ls`, unix socket', argv: [vxnet, 'network', 'ls'], env: unixEnv, target: '< 150 ms' },
        { label: '`vxnet network ls`, unix socket, compile cache off', argv: [vxnet, 'network', 'ls'], env: { ...unixEnv, ...noCompileCache } },
        { label: '`vxnet network ls`, TLS (admin token)', argv: [vxnet, 'network', 'ls'], env: tlsEnv, target: '< 150 ms' },
        { label: '`vxnet network ls`, TLS, CA not cached (a first call)', argv: [vxnet, 'network', 'ls'], env: tlsUncachedEnv },
        { label: '`vxnet network ls`, TLS, CA cached, no kept session (full handshake)', argv: [vxnet, 'network', 'ls'], env: fullHandshakeEnv },
        // The same call without the launcher (PREFIX/bin/vxnet is a /bin/sh script), with the compile cache and
        // the Node flags it would choose: what the shell costs. Then without those flags (install.sh: the real
        // path of every module taken): what they save.
        { label: '`node main.js network ls`, TLS, no launcher', argv: [node, ...nodeFlags, mainJs, 'network', 'ls'], env: noLauncherEnv, unset: ['NODE_EXTRA_CA_CERTS'] },
        ...(nodeFlags.length > 0
          ? [{ label: `\`node main.js network ls\`, TLS, no launcher, without ${nodeFlags.join(' ')}`, argv: [node, mainJs, 'network', 'ls'], env: noLauncherEnv, unset: ['NODE_EXTRA_CA_CERTS'] }]
          : []),
        { label: '`node main.js network ls`, unix socket, no launcher', argv: [node, ...nodeFlags, mainJs, 'network', 'ls'], env: { ...noLauncherEnv, ...unixEnv }, unset: ['NODE_EXTRA_CA_CERTS'] },
        ...(nodeFlags.length > 0
          ? [{ label: `\`node main.js network ls\`, unix socket, no launcher, without ${nodeFlags.join(' ')}`, argv: [node, mainJs, 'network', 'ls'], env: { ...noLauncherEnv, ...unixEnv }, unset: ['NODE_EXTRA_CA_CERTS'] }]
          : []),
        // NODE_EXTRA_CA_CERTS (set on some machines, e.g. this project's CI) makes Node parse that bundle at the
        // first TLS connection although vxnet passes its own CA; the launcher unsets it. What it cost a call:
        ...(process.env.NODE_EXTRA_CA_CERTS
          ? [{ label: '`node main.js network ls`, TLS, no launcher, NODE_EXTRA_CA_CERTS kept', argv: [node, ...nodeFlags, mainJs, 'network', 'ls'], env: noLauncherEnv }]
          : []),
        { label: 'from source: `bin/vxnet --version`', argv: [source, '--version'], env: cacheHome },
        { label: 'from source: `bin/vxnet network ls`, unix socket', argv: [source, 'network', 'ls'], env: unixEnv },
      ];
      const samples = cases.map(() => [] as number[]);
      const cpu = cases.map(() => 0);
      // Three unmeasured rounds first: page cache, the compile cache's first writes, the manager's first requests.
      for (let round = -3; round < runs; round++) {
        for (const [i, c] of cases.entries()) {
          const before = childCpuMs();
          const env: NodeJS.ProcessEnv = { ...process.env, ...c.env };
          for (const name of c.unset ?? []) delete env[name];
          const ms = await timed(c.argv, env);
          if (round >= 0) {
            samples[i]!.push(ms);
            cpu[i]! += childCpuMs() - before;
          }
        }
      }

      // The TLS row's calls must have resumed: the session kept in its cache opens with the token.
      const kept = new TlsSessionStore(join(scratch, 'cache', 'vxnet'), { url: tcpUrl, pin, token: manager.tokens.admin });
      const resumedNote = kept.offer() === undefined ? ' The TLS calls kept no session: they made full handshakes.' : '';
      const floor = distribution(samples[0]!).p50;
      const rows: CliStartRow[] = cases.map((c, i) => {
        const d = distribution(samples[i]!);
        return { label: c.label, p50Ms: d.p50, p99Ms: d.p99, ratio: d.p50 / floor, meanCpuMs: cpu[i]! / runs, ...(c.target ? { target: c.target } : {}) };
      });
      const markdown = [
        `vxnet CLI start-up, ${runs} runs each, interleaved (installed in ${prefix}; Node.js ${process.version} here).${resumedNote}`,
        '',
        '| command | p50 | p99 | p50 ÷ node -e 0 | mean CPU | target |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows.map((r) => `| ${r.label} | ${fixed(r.p50Ms)} ms | ${fixed(r.p99Ms)} ms | ${ratio(r.p50Ms, floor)} | ${fixed(r.meanCpuMs)} ms | ${r.target ?? ''} |`),
      ];
      return { runs, prefix, rows, markdown };
    } finally {
      await manager.close();
    }
  } finally {
    installed?.remove();
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '50' },
      prefix: { type: 'string' },
    },
  });
  const report = await measureCliStart({ runs: Number(values.runs), ...(values.prefix === undefined ? {} : { prefix: values.prefix }) });
  console.log(report.markdown.join('\n'));
}
