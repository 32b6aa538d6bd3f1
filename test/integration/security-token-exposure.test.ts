/**
 * Tokens never on a command line (issue 9, hole 2). The README used to start the agent with
 * `--token "$(cat worker.token)"`: any local user read the token in /proc/PID/cmdline and could join under
 * an existing node's name. Here a real manager and agents run the README's way (`--token-file`), and an
 * unprivileged user (uid 65534, with setpriv) reads /proc/PID/cmdline and /proc/PID/environ of every vxnet
 * process of the run: no token. The old way still works for a one-off but is shown to leak, with a warning;
 * the agent refuses the admin token and ignores an exported VXNET_TOKEN.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NodeStatus } from '../../src/core/model.ts';
import { DEFAULT_CLI_PATH, type Cluster, type SimHost, createCluster } from '../../src/testkit/cluster.ts';
import { findCommand, isRoot, missingTools } from '../../src/testkit/preflight.ts';
import { run } from '../../src/testkit/processes.ts';

const skip = !isRoot()
  ? 'needs root'
  : missingTools().length > 0
    ? missingTools().join('; ')
    : !findCommand('setpriv')
      ? 'needs setpriv (util-linux)'
      : false;

/** What an unprivileged local user sees: `cat` run as uid/gid 65534 without supplementary groups. */
async function readAsNobody(path: string): Promise<{ code: number; text: string }> {
  const result = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'cat', path]);
  return { code: result.code, text: result.stdout };
}

/** Every process whose command line mentions `marker` (this run's scratch folder): the run's daemons. */
function processesMentioning(marker: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(marker) && cmdline.includes(DEFAULT_CLI_PATH)) found.push({ pid: Number(entry), cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** the secret part of a token (VXN1-<digest>-<secret>): the digest alone is public */
const secretOf = (token: string): string => token.slice(token.lastIndexOf('-') + 1);

describe('tokens are not exposed to other local users', { skip }, () => {
  let cluster: Cluster;
  let host1: SimHost;
  let host2: SimHost;
  let worker: string;
  let admin: string;

  before(async () => {
    cluster = await createCluster({ hosts: 2, startDaemons: false });
    [host1, host2] = cluster.hosts as [SimHost, SimHost];
    await cluster.startManager();
    // the kit starts agents as the README says: --token-file FILE (0600)
    await cluster.startAgent(host1);
    worker = cluster.manager.workerToken;
    admin = cluster.manager.adminToken;
  });

  after(async () => {
    await cluster?.destroy();
  });

  const privateFile = (name: string, text: string): string => {
    const path = join(cluster.tmpDir, name);
    writeFileSync(path, `${text}\n`, { mode: 0o600 });
    chmodSync(path, 0o600);
    return path;
  };

  const agentArgv = (stateDir: string, extra: readonly string[]): string[] => [
    process.execPath,
    DEFAULT_CLI_PATH,
    'agent',
    '--manager',
    cluster.manager.url,
    '--state-dir',
    join(cluster.tmpDir, stateDir),
    '--advertise-addr',
    host2.address,
    '--name',
    host2.name,
    ...extra,
  ];

  async function node(name: string): Promise<NodeStatus | undefined> {
    const answer = await cluster.api<NodeStatus[]>('GET', '/v1/nodes');
    return answer.body.find((n) => n.name === name);
  }

  /** Reads cmdline and environ of every daemon of the run as uid 65534 and returns what it could read. */
  async function whatNobodySees(): Promise<{ pids: number[]; cmdlines: string; environs: string }> {
    const daemons = processesMentioning(cluster.tmpDir);
    let cmdlines = '';
    let environs = '';
    for (const { pid } of daemons) {
      const cmdline = await readAsNobody(`/proc/${pid}/cmdline`);
      assert.equal(cmdline.code, 0, `uid 65534 can read /proc/${pid}/cmdline (that is the exposure)`);
      cmdlines += `${cmdline.text.replaceAll('\0', ' ')}\n`;
      environs += (await readAsNobody(`/proc/${pid}/environ`)).text;
    }
    return { pids: daemons.map((d) => d.pid), cmdlines, environs };
  }

  it("started the README's way (--token-file), no vxnet process shows a token to another user", async () => {
    const seen = await whatNobodySees();
    const labels = processesMentioning(cluster.tmpDir).map((d) => (d.cmdline.includes(' manager ') ? 'manager' : 'agent'));
    assert.ok(labels.includes('manager') && labels.includes('agent'), `the manager and the agent were found: ${labels.join(', ')}`);
    for (const token of [worker, admin]) {
      assert.ok(!seen.cmdlines.includes(secretOf(token)), 'no token in any command line');
      assert.ok(!seen.environs.includes(secretOf(token)), 'no token in any environment');
    }
    assert.match(seen.cmdlines, /--token-file /, 'the agent was given a token file');
    // nor can that user read the files themselves
    for (const file of [join(cluster.tmpDir, `${host1.name}-join.token`), join(cluster.manager.dataDir, 'admin.token')]) {
      const read = await readAsNobody(file);
      assert.notEqual(read.code, 0, `${file} is not readable by uid 65534`);
    }
    assert.match(cluster.daemon('host1/agent')!.output(), /join token \(needed only to join\) from the file .*host1-join\.token \(--token-file\)/);
    assert.doesNotMatch(cluster.daemon('host1/agent')!.output(), /a token given with --token/);
    // the CLI on a host, the README's way: VXNET_TOKEN_FILE names the admin token's file
    const adminFile = privateFile('admin-copy.token', admin);
    const listed = await cluster.exec(host1.netns, ['env', `VXNET_MANAGER=${cluster.manager.url}`, `VXNET_TOKEN_FILE=${adminFile}`, process.execPath, DEFAULT_CLI_PATH, 'node', 'ls', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as NodeStatus[]).map((n) => n.name), ['host1']);
  });

  it('the agent refuses the admin token as its join token, saying to use the worker token', async () => {
    const adminFile = privateFile('admin-as-join.token', admin);
    const result = await cluster.exec(host2.netns, agentArgv('admin-state', ['--token-file', adminFile]), { timeoutMs: 30_000 });
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /vxnet: the agent was given the admin token and never joins with it: give it the worker token \(the manager's DATA_DIR\/worker\.token\) with --token-file FILE\.\n$/,
    );
    assert.ok(!result.stderr.includes(secretOf(admin)));
    assert.ok(!existsSync(join(cluster.tmpDir, 'admin-state', 'node.pem')), 'no certificate');
    assert.doesNotMatch(cluster.daemon('manager')!.output(), /issued the worker certificate of host2/);
    assert.equal(await node('host2'), undefined);
  });

  it('the agent does not join with an exported VXNET_TOKEN, and says it ignores it', async () => {
    const result = await cluster.exec(host2.netns, ['env', `VXNET_TOKEN=${worker}`, ...agentArgv('env-state', [])], { timeoutMs: 30_000 });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /VXNET_TOKEN is set but the agent does not read it: give the join token with --token-file FILE or VXNET_TOKEN_FILE\./);
    assert.match(result.stderr, /vxnet: no usable node certificate in .*env-state \(there is none yet\): start the agent with --token-file FILE/);
    assert.ok(!existsSync(join(cluster.tmpDir, 'env-state', 'node.pem')));
    assert.equal(await node('host2'), undefined);
  });

  it('VXNET_TOKEN_FILE joins, and its agent shows no token either', async () => {
    const file = privateFile('host2-env.token', worker);
    const agent = cluster.spawn(host2.netns, ['env', `VXNET_TOKEN_FILE=${file}`, ...agentArgv('host2-state', [])], { label: 'host2 agent (VXNET_TOKEN_FILE)' });
    await agent.waitFor(/joined the cluster as node host2/, 20_000);
    assert.match(agent.output(), /join token \(needed only to join\) from the file .*host2-env\.token \(VXNET_TOKEN_FILE\)/);
    const seen = await whatNobodySees();
    assert.equal(seen.pids.length, 3, 'manager and two agents');
    for (const token of [worker, admin]) {
      assert.ok(!seen.cmdlines.includes(secretOf(token)));
      assert.ok(!seen.environs.includes(secretOf(token)));
    }
    await agent.stop();
  });

  it('the old way (--token) still works, but every local user reads the token, and the agent warns', async () => {
    const agent = cluster.spawn(host2.netns, agentArgv('host2-state', ['--token', worker]), { label: 'host2 agent (--token)' });
    await agent.waitFor(/using the node certificate in /, 20_000);
    assert.match(
      agent.output(),
      / warn a token given with --token is visible to every local user in \/proc\/PID\/cmdline \(ps shows it\) for as long as the agent runs; give it with --token-file FILE \(mode 0600\) instead\./,
    );
    const seen = await whatNobodySees();
    assert.ok(seen.cmdlines.includes(secretOf(worker)), 'uid 65534 reads the worker token in the agent\'s command line');
    assert.ok(!agent.output().includes(secretOf(worker)), 'the agent itself never prints it');
    await agent.stop();
  });
});
