/**
 * The README's walkthroughs, run as written: the code blocks marked `<!-- walkthrough: real-hosts ... -->`
 * and `<!-- walkthrough: docker ... -->` are read from README.md at test time, split into commands, and
 * each command is run against simulated hosts (two host namespaces, the manager in the switch namespace,
 * one real Docker engine per host for the Docker block). Nothing is mirrored here: a renamed flag, a
 * command that changed its output, or a step that no longer works in this order fails the test, and a
 * new kind of line in those blocks fails it too until this file says how to run it.
 *
 * How real-host values map onto the simulated hosts (only values, never flags or words):
 *   10.0.0.1 (the manager host)      → the switch namespace's underlay address (SWITCH_ADDRESS), where the
 *                                      manager runs
 *   10.0.0.11, host1                 → host1's underlay address and name; a line "on every host" runs once
 *                                      per host, with 10.0.0.11/host1 replaced by that host's address/name
 *   /var/lib/vxnet, /etc/vxnet, ~    → folders under the cluster's scratch folder
 *   worker.token, admin.token        → the manager's copies in its --data-dir (the files the README says it saves)
 *   c1, c3 (--netns)                 → container namespaces the test makes (cluster.addContainer)
 *   /run/docker.sock                 → the API socket of that host's engine
 *   `vxnet agent ...`                → `...` is that host's agent command from the first block
 *   busybox                          → the engines' busybox:local image, tagged busybox
 *   `# on hostN`                     → which host's engine a `docker` line runs on (required for docker lines)
 * The agent's defaults that would touch the real machine are given explicitly, pointing into the scratch
 * folder: --state-dir (default /var/lib/vxnet/agent) and --plugin-socket (default
 * /run/docker/plugins/vxnet.sock: each engine here sees its own plugin folder, testkit/docker.ts).
 * `vxnet` is this checkout's CLI (node src/cli/main.ts); CLI lines "from anywhere" run in host1's namespace,
 * over TLS with the token file, as the README sets them up. A trailing `# prints X` is checked against the
 * first line of the command's output.
 *
 * No systemd here: `systemctl enable --now vxnet-manager` (or `vxnet-agent`) runs the block's own "same
 * without systemd" line, `vxnet manager ...` (or `vxnet agent ...`), at that point, and that line is then
 * not run again. `./install.sh` is skipped: test/integration/install.test.ts installs into a prefix, runs a
 * cluster from it and verifies the units.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_CLI_PATH, createCluster, type ChildProcessHandle, type Cluster, type SimHost } from '../../src/testkit/cluster.ts';
import { BUSYBOX_IMAGE, type DockerEngine, destroyDockerCluster, dockerProblems, startDockerEngines } from '../../src/testkit/docker.ts';
import { nsenterArgv } from '../../src/testkit/netns.ts';
import { run, start } from '../../src/testkit/processes.ts';
import { SWITCH_ADDRESS } from '../../src/testkit/topology.ts';

const README = resolve(import.meta.dirname, '../../README.md');

interface Line {
  /** 1-based line number in README.md */
  at: number;
  /** the command words, quotes resolved; `&&`/`;` split into several */
  commands: string[][];
  /** the trailing comment, without `#` */
  comment: string;
}

/** The commands of the block marked `<!-- walkthrough: NAME ... -->`. */
export function walkthrough(readme: string, name: string): Line[] {
  const lines = readme.split('\n');
  const marker = lines.findIndex((l) => l.startsWith(`<!-- walkthrough: ${name}`));
  assert.ok(marker >= 0, `README.md has no <!-- walkthrough: ${name} --> marker`);
  assert.match(lines[marker + 1] ?? '', /^```sh$/, `README.md line ${marker + 2}: the walkthrough marker must come right before a sh block`);
  const out: Line[] = [];
  for (let i = marker + 2; i < lines.length && lines[i] !== '```'; i++) {
    const text = lines[i]!.trim();
    if (text === '' || text.startsWith('#')) continue;
    const { words, comment } = shellWords(text);
    const commands: string[][] = [[]];
    for (const word of words) {
      if (word === '&&' || word === ';') commands.push([]);
      else commands.at(-1)!.push(word);
    }
    out.push({ at: i + 1, commands: commands.filter((c) => c.length > 0), comment });
  }
  return out;
}

/** Words of one shell line (single and double quotes, `&&`, `;`, a trailing comment); no expansions but `~`. */
function shellWords(text: string): { words: string[]; comment: string } {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      assert.ok(end > i, `unbalanced quote in: ${text}`);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (c === '#' && !inWord) {
      if (inWord) words.push(word);
      return { words, comment: text.slice(i + 1).trim() };
    } else if (c === ';' || (c === '&' && text[i + 1] === '&')) {
      if (inWord) words.push(word);
      words.push(c === ';' ? ';' : '&&');
      if (c === '&') i++;
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return { words, comment: '' };
}

describe('README walkthrough', { skip: dockerProblems(), timeout: 600_000 }, () => {
  let cluster: Cluster;
  let engines: DockerEngine[] = [];
  const readme = readFileSync(README, 'utf8');
  const env: Record<string, string> = {};
  /** each host's agent as the first block started it (argv after `vxnet agent`), and its process */
  const agentArgs = new Map<string, string[]>();
  const agents = new Map<string, ChildProcessHandle>();
  const containers = new Map<string, string>();
  let dirs: { varLib: string; etc: string; home: string };

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxreadme', startDaemons: false });
    const root = cluster.tmpDir;
    dirs = { varLib: join(root, 'var-lib-vxnet'), etc: join(root, 'etc-vxnet'), home: join(root, 'home') };
    mkdirSync(dirs.varLib, { recursive: true, mode: 0o700 });
    mkdirSync(dirs.home, { recursive: true, mode: 0o700 });
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => a.stop('SIGTERM').catch(() => undefined)));
    await destroyDockerCluster(engines, cluster);
  });

  /** Real-host paths and addresses onto this cluster (see the header); `host` for host-specific values. */
  function mapValue(word: string, host: SimHost): string {
    let out = word
      .replaceAll('https://10.0.0.1:', `https://${SWITCH_ADDRESS}:`)
      .replace(/^10\.0\.0\.1:/, `${SWITCH_ADDRESS}:`)
      .replace(/^10\.0\.0\.11$/, host.address)
      .replace(/^host1$/, host.name)
      .replace(/^\/var\/lib\/vxnet(?=\/|$)/, dirs.varLib)
      .replace(/^\/etc\/vxnet(?=\/|$)/, dirs.etc)
      .replace(/^~(?=\/)/, dirs.home)
      .replace(/^(worker|admin)\.token$/, (file) => join(dirs.varLib, file));
    const engine = engines.find((e) => e.host === host);
    if (engine) out = out.replace(/^\/run\/docker\.sock$/, engine.socket);
    // VAR=VALUE (export)
    const eq = out.indexOf('=');
    if (eq > 0 && /^[A-Z_]+$/.test(out.slice(0, eq))) out = `${out.slice(0, eq + 1)}${mapValue(out.slice(eq + 1), host)}`;
    return out;
  }

  function hostOf(comment: string): SimHost | undefined {
    const match = /^on (host\d+)\b/.exec(comment);
    return match ? cluster.host(match[1]!) : undefined;
  }

  async function vxnet(args: string[], host: SimHost): Promise<{ code: number; stdout: string; stderr: string }> {
    return run(nsenterArgv(host.netns, [process.execPath, DEFAULT_CLI_PATH, ...args]), { env: { ...process.env, ...env }, timeoutMs: 60_000 });
  }

  async function containerNetns(name: string): Promise<string> {
    let netns = containers.get(name);
    if (!netns) containers.set(name, (netns = await cluster.addContainer(name)));
    return netns;
  }

  async function startAgent(host: SimHost, args: string[]): Promise<void> {
    const given = new Set(args);
    const extra = [
      ...(given.has('--state-dir') ? [] : ['--state-dir', join(cluster.tmpDir, `${host.name}-agent`)]),
      ...(given.has('--docker-socket') && !given.has('--plugin-socket') ? ['--plugin-socket', engines.find((e) => e.host === host)!.pluginSocket] : []),
      // the agent serves the CNI plugin by default at one path per machine: each simulated host gets its own
      ...(given.has('--cni-socket') || given.has('--no-cni') ? [] : ['--cni-socket', join(cluster.tmpDir, `${host.name}-cni.sock`)]),
      // and names each network's namespace in /run/netns, one folder per machine: each simulated host its own
      ...(given.has('--netns-prefix') || given.has('--no-network-namespaces') ? [] : ['--netns-prefix', `${host.netns}-n`]),
    ];
    await agents.get(host.name)?.stop('SIGTERM');
    const handle = start(nsenterArgv(host.netns, [process.execPath, DEFAULT_CLI_PATH, 'agent', ...args, ...extra]), { label: `${host.name}/agent`, capacity: 500 });
    agents.set(host.name, handle);
    const deadline = Date.now() + 30_000;
    for (;;) {
      assert.equal(handle.exitInfo, undefined, `the agent of ${host.name} exited:\n${handle.output()}`);
      // the test's own look, independent of what the README has set up by then
      const nodes = await vxnet(['node', 'ls', '--json', '--manager', `https://${SWITCH_ADDRESS}:7400`, '--token-file', join(dirs.varLib, 'admin.token')], cluster.host(1));
      const node = nodes.code === 0 ? (JSON.parse(nodes.stdout) as { name: string; state: string; lastSeen: string | null }[]).find((n) => n.name === host.name) : undefined;
      if (node?.state === 'up' && node.lastSeen !== null && Date.parse(node.lastSeen) > deadline - 30_000) return;
      assert.ok(Date.now() < deadline, `node ${host.name} did not come up: ${nodes.stderr}\n${handle.output()}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** Runs one command of a block; `every` is the host a line "on every host" runs for. */
  async function runCommand(words: string[], line: Line, every: SimHost | undefined): Promise<void> {
    const where = `README.md line ${line.at}: ${words.join(' ')}`;
    const host = hostOf(line.comment) ?? every ?? cluster.host(1);
    const [command, ...rest] = words;
    if (command === './install.sh') return; // install.test.ts (see the header)
    if (command === 'install') {
      const result = await run(['install', ...rest.map((w) => mapValue(w, host))]);
      assert.equal(result.code, 0, `${where}: ${result.stderr}`);
      return;
    }
    if (command === 'export') {
      for (const assignment of rest.map((w) => mapValue(w, host))) {
        const eq = assignment.indexOf('=');
        env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
      }
      return;
    }
    if (command === 'docker') {
      const engine = engines.find((e) => e.host === hostOf(line.comment));
      assert.ok(engine, `${where}: a docker line must say "# on hostN"`);
      const result = await engine.docker(rest);
      assert.equal(result.code, 0, `${where} (on ${engine.host.name}): ${result.stderr}\n${cluster.daemonLogs()}`);
      return;
    }
    assert.equal(command, 'vxnet', `${where}: the walkthrough test does not know how to run "${command}"`);
    const [sub] = rest;
    if (sub === 'manager') {
      const handle = cluster.spawn(cluster.switchNetns, [process.execPath, DEFAULT_CLI_PATH, ...rest.map((w) => mapValue(w, host))], { label: 'manager' });
      await handle.waitFor(/listening/i, 30_000);
      return;
    }
    if (sub === 'agent') {
      const hosts = hostOf(line.comment) ? [host] : cluster.hosts;
      for (const target of hosts) {
        let args = rest.slice(1);
        if (args[0] === '...') {
          const first = agentArgs.get(target.name);
          assert.ok(first, `${where}: "vxnet agent ..." needs an agent started before it on ${target.name}`);
          args = [...first, ...args.slice(1)];
        } else {
          args = args.map((w) => mapValue(w, target));
          agentArgs.set(target.name, args);
        }
        await startAgent(target, args.map((w) => mapValue(w, target)));
      }
      return;
    }
    const args = rest.map((w) => mapValue(w, host));
    const netns = args.indexOf('--netns');
    if (netns >= 0) args[netns + 1] = await containerNetns(args[netns + 1]!);
    const result = await vxnet(args, cluster.host(1));
    assert.equal(result.code, 0, `${where}: ${result.stderr}\n${cluster.daemonLogs()}`);
    const printed = /^prints (\S+)/.exec(line.comment);
    if (printed) assert.equal(result.stdout.split('\n')[0], printed[1], where);
  }

  async function runBlock(name: string): Promise<number> {
    let count = 0;
    const lines = walkthrough(readme, name);
    const done = new Set<string[]>();
    for (const line of lines) {
      for (const words of line.commands) {
        if (done.has(words)) continue;
        const unit = words[0] === 'systemctl' ? /^vxnet-(manager|agent)$/.exec(words.at(-1)!) : null;
        if (words[0] === 'systemctl') {
          assert.ok(unit && words.includes('--now'), `README.md line ${line.at}: the walkthrough test only knows systemctl enable --now vxnet-manager|vxnet-agent`);
          // its "same without systemd" line, run now (see the header)
          const same = lines.find((l) => l.commands[0]?.[0] === 'vxnet' && l.commands[0][1] === unit[1]);
          assert.ok(same, `README.md line ${line.at}: no "vxnet ${unit[1]} ..." line in the block does what ${words.join(' ')} does`);
          await runCommand(same.commands[0]!, same, undefined);
          done.add(same.commands[0]!);
        } else {
          await runCommand(words, line, undefined);
        }
        count++;
      }
    }
    return count;
  }

  it('the real-host block runs top to bottom: manager, two agents, a network, attach, detach, rm', async () => {
    const count = await runBlock('real-hosts');
    assert.ok(count >= 10, `only ${count} commands in the real-host block`);
    // what the block leaves: no network, no endpoint (so that the Docker block can make blue again)
    const left = await vxnet(['network', 'ls', '--json'], cluster.host(1));
    assert.deepEqual(JSON.parse(left.stdout), []);
  });

  it('the Docker block runs top to bottom on the same hosts, with a real engine on each', async () => {
    engines = await startDockerEngines(cluster, cluster.hosts);
    await Promise.all(engines.map((e) => e.dockerOk(['tag', BUSYBOX_IMAGE, 'busybox'])));
    const count = await runBlock('docker');
    assert.ok(count >= 10, `only ${count} commands in the Docker block`);
    // the block's own promise: web, db and lone by container name (Docker's are named a moment after Join)
    const deadline = Date.now() + 10_000;
    let endpoints = await vxnet(['endpoint', 'ls', '--network', 'blue'], cluster.host(1));
    const named = (out: string) => /docker:web\s/.test(out) && /docker:db\s/.test(out);
    while (!named(endpoints.stdout)) {
      assert.ok(Date.now() < deadline, `endpoint ls does not name the containers:\n${endpoints.stdout}`);
      await new Promise((r) => setTimeout(r, 300));
      endpoints = await vxnet(['endpoint', 'ls', '--network', 'blue'], cluster.host(1));
    }
    assert.match(endpoints.stdout, /container:lone\s/);
  });

  it('drift is caught: a flag the CLI does not know fails the run with the CLI\'s own sentence', async () => {
    const drifted = readme.replace('vxnet network create blue --vni 1000', 'vxnet network create blue --vni-id 1000');
    const line = walkthrough(drifted, 'real-hosts').find((l) => l.commands[0]?.includes('--vni-id'))!;
    await assert.rejects(runCommand(line.commands[0]!, line, undefined), /unknown flag --vni-id for "vxnet network create"/);
  });
});

/**
 * docs/api.md's curl block, as written, against a real manager (TLS on the switch namespace's address): run
 * by bash (-e, pipefail) in host1's namespace, with 10.0.0.1 mapped as above and HOME a scratch folder that
 * holds the 0600 copy of admin.token the block reads. Every answer must be a resource, never an error.
 */
describe('docs/api.md curl examples', { skip: ['curl', 'jq', 'openssl'].find((c) => !existsSync(`/usr/bin/${c}`)), timeout: 120_000 }, () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await createCluster({ hosts: 1, outside: false, prefix: 'vxcurl', startDaemons: false });
    await cluster.startManager();
    await cluster.startAgent(cluster.host(1));
  });

  after(async () => {
    await cluster?.destroy();
  });

  it('fetch and check the CA, then bearer token and client certificate over TLS, with --cacert only', async () => {
    const api = readFileSync(resolve(import.meta.dirname, '../../docs/api.md'), 'utf8');
    const lines = api.split('\n');
    const marker = lines.findIndex((l) => l.startsWith('<!-- walkthrough: api-curl'));
    assert.ok(marker >= 0 && lines[marker + 1] === '```sh', 'docs/api.md has no marked curl block');
    const end = lines.indexOf('```', marker + 2);
    const block = lines.slice(marker + 2, end).join('\n').replaceAll('10.0.0.1', SWITCH_ADDRESS);
    assert.doesNotMatch(block, / -k | --insecure.*\/v1\/(?!ca)/, 'only GET /v1/ca may skip the server check');
    const home = join(cluster.tmpDir, 'curl-home');
    mkdirSync(join(home, '.config', 'vxnet'), { recursive: true, mode: 0o700 });
    const result = await run(['install', '-m', '0600', join(cluster.manager.dataDir, 'admin.token'), join(home, '.config', 'vxnet', 'admin.token')]);
    assert.equal(result.code, 0, result.stderr);
    const ran = await run(nsenterArgv(cluster.host(1).netns, ['bash', '-e', '-o', 'pipefail', '-c', `cd ${JSON.stringify(home)} && ${block}`]), {
      env: { ...process.env, HOME: home },
      timeoutMs: 60_000,
    });
    assert.equal(ran.code, 0, `the curl block failed: ${ran.stderr}\n${ran.stdout}`);
    assert.doesNotMatch(ran.stdout, /"error"/, ran.stdout);
    // the answers, in order: no networks, network blue, the nodes (seen with the admin client certificate)
    assert.match(ran.stdout, /^\[\]/);
    assert.match(ran.stdout, /"name":\s*"blue"[\s\S]*"vni":\s*1000/);
    assert.match(ran.stdout, /"name":\s*"host1"[\s\S]*"state":\s*"up"/);
    assert.match(readFileSync(join(home, 'admin.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
  });
});
