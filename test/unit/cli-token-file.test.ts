/**
 * Tokens off the command line (issue 9, hole 2): --token-file and VXNET_TOKEN_FILE wherever a token is
 * taken, the agent's refusal of VXNET_TOKEN and of the admin token, its warning for --token, and
 * --admin-token-file for the Docker integration.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { obtainCredentials } from '../../src/agent/identity.ts';
import { UsageError } from '../../src/cli/command.ts';
import { joinTokenNotes, type AgentCommand } from '../../src/cli/commands/agent.ts';
import { tokenOf } from '../../src/cli/context.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import type { Command } from '../../src/cli/registry.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { RunningManager } from '../../src/manager/main.ts';
import { runCli, stubManager } from './support/cli.ts';
import { startTlsManager } from './support/manager.ts';
import { temporaryDirectory } from './support/temporary.ts';

const MANAGER = 'unix:/run/vxnet.sock';

function parse(line: string, env: Record<string, string>): Command {
  return parseCommandLine(line.split(' '), env);
}

function usageError(line: string, pattern: RegExp, env: Record<string, string> = {}): void {
  assert.throws(
    () => parse(line, env),
    (err: unknown) => err instanceof UsageError && pattern.test(err.message) && !err.message.includes('\n'),
    line,
  );
}

const connectionOf = (c: Command): unknown => (c as { connection: unknown }).connection;

const dir = temporaryDirectory('vxnet-token-file-');

function tokenFile(name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return path;
}

describe('--token-file and VXNET_TOKEN_FILE (parsing)', () => {
  test('every command with connection flags takes --token-file or VXNET_TOKEN_FILE; the file is read when the command runs', () => {
    assert.deepEqual(connectionOf(parse('network ls --token-file /etc/vxnet/admin.token', { VXNET_MANAGER: MANAGER })), {
      url: MANAGER,
      tokenFile: { path: '/etc/vxnet/admin.token', from: '--token-file' },
    });
    assert.deepEqual(connectionOf(parse('node ls', { VXNET_MANAGER: MANAGER, VXNET_TOKEN_FILE: '/t' })), {
      url: MANAGER,
      tokenFile: { path: '/t', from: 'VXNET_TOKEN_FILE' },
    });
    assert.deepEqual(connectionOf(parse('token rotate worker --token-file=/t', { VXNET_MANAGER: MANAGER })), {
      url: MANAGER,
      tokenFile: { path: '/t', from: '--token-file' },
    });
  });

  test('a flag wins over the environment; two flags, or two variables, are a usage error', () => {
    assert.deepEqual(connectionOf(parse('network ls --token-file /t', { VXNET_MANAGER: MANAGER, VXNET_TOKEN: 'env' })), {
      url: MANAGER,
      tokenFile: { path: '/t', from: '--token-file' },
    });
    assert.deepEqual(connectionOf(parse('network ls --token abc', { VXNET_MANAGER: MANAGER, VXNET_TOKEN_FILE: '/t' })), { url: MANAGER, token: 'abc' });
    usageError('network ls --token abc --token-file /t', /^pass the token with --token or --token-file, not both\.$/, { VXNET_MANAGER: MANAGER });
    usageError('network ls', /^both VXNET_TOKEN and VXNET_TOKEN_FILE are set: unset one of them\.$/, {
      VXNET_MANAGER: MANAGER,
      VXNET_TOKEN: 'x',
      VXNET_TOKEN_FILE: '/t',
    });
    usageError('network ls --token-file=', /^--token-file needs a non-empty value\.$/, { VXNET_MANAGER: MANAGER });
  });

  test('without any token the error names both ways', () => {
    usageError('network ls', /^no token given: pass --token TOKEN or set VXNET_TOKEN for a one-off call, or name a file holding it with --token-file FILE or VXNET_TOKEN_FILE/, {
      VXNET_MANAGER: MANAGER,
    });
  });

  test('the manager takes no token on its command line, and a token file only to join managers on etcd', () => {
    usageError('manager --data-dir /d --listen unix:/s --token t', /^unknown flag --token for "vxnet manager"/);
    usageError('manager --data-dir /d --listen unix:/s --token-file /t', /^--etcd-ca, --etcd-cert, --etcd-key and --token-file go with --store etcd:\/\/\.\.\.$/);
  });

  test('the agent never reads VXNET_TOKEN: it notes it, and takes --token, --token-file or VXNET_TOKEN_FILE', () => {
    const agent = 'agent --manager https://10.0.0.1:7400 --advertise-addr 10.0.0.11';
    const ignored = parse(agent, { VXNET_TOKEN: 'VXN1-exported' }) as AgentCommand;
    assert.deepEqual(ignored.connection, { url: 'https://10.0.0.1:7400' });
    assert.equal(ignored.envTokenIgnored, true);
    assert.equal(Object.hasOwn(parse(agent, {}), 'envTokenIgnored'), false);
    assert.deepEqual((parse(agent, { VXNET_TOKEN: 'x', VXNET_TOKEN_FILE: '/w' }) as AgentCommand).connection, {
      url: 'https://10.0.0.1:7400',
      tokenFile: { path: '/w', from: 'VXNET_TOKEN_FILE' },
    });
    assert.deepEqual((parse(`${agent} --token-file /w`, {}) as AgentCommand).connection, {
      url: 'https://10.0.0.1:7400',
      tokenFile: { path: '/w', from: '--token-file' },
    });
    assert.deepEqual((parse(`${agent} --token w`, {}) as AgentCommand).connection, { url: 'https://10.0.0.1:7400', token: 'w' });
  });

  test('the agent takes the admin token only from --admin-token-file, for the Docker integration', () => {
    const agent = 'agent --manager https://10.0.0.1:7400 --advertise-addr 10.0.0.11 --token-file /w';
    const c = parse(`${agent} --docker-socket /run/docker.sock --admin-token-file /etc/vxnet/admin.token`, {}) as AgentCommand;
    assert.equal(c.adminTokenFile, '/etc/vxnet/admin.token');
    assert.deepEqual(c.connection, { url: 'https://10.0.0.1:7400', tokenFile: { path: '/w', from: '--token-file' } });
    usageError(`${agent} --admin-token-file /a`, /^--admin-token-file needs --docker-socket: only the Docker integration creates networks with it\.$/);
  });
});

describe("the agent's notes about its join token", () => {
  test('--token: a warning that every local user can read it, and where the token came from', () => {
    const notes = joinTokenNotes({ connection: { url: 'https://m:1', token: 'VXN1-secret' } });
    assert.match(notes[0]!, /^warning: a token given with --token is visible to every local user in \/proc\/PID\/cmdline \(ps shows it\) for as long as the agent runs; give it with --token-file FILE \(mode 0600\) instead\.$/);
    assert.equal(notes[1], 'join token (needed only to join) from --token');
    assert.ok(!notes.join('\n').includes('VXN1-secret'));
  });

  test('a file: where from, and no warning; an exported VXNET_TOKEN: said to be ignored', () => {
    assert.deepEqual(joinTokenNotes({ connection: { url: 'https://m:1', tokenFile: { path: '/w', from: 'VXNET_TOKEN_FILE' } } }), [
      'join token (needed only to join) from the file /w (VXNET_TOKEN_FILE)',
    ]);
    assert.deepEqual(joinTokenNotes({ connection: { url: 'https://m:1' }, envTokenIgnored: true }), [
      'VXNET_TOKEN is set but the agent does not read it: give the join token with --token-file FILE or VXNET_TOKEN_FILE.',
    ]);
  });
});

describe('reading a token file', () => {
  const conn = (path: string) => ({ url: MANAGER, tokenFile: { path, from: '--token-file' as const } });

  test('its content, trimmed of the newline and spaces around it', () => {
    assert.equal(tokenOf(conn(tokenFile('a.token', 'VXN1-abc\n'))), 'VXN1-abc');
    assert.equal(tokenOf({ url: MANAGER, token: 'given' }), 'given');
    assert.equal(tokenOf({ url: MANAGER }), undefined);
  });

  test('refused in one sentence: open to others, empty, or a token with spaces inside', () => {
    const refused = (path: string, pattern: RegExp) =>
      assert.throws(() => tokenOf(conn(path)), (err: unknown) => err instanceof VxnetError && pattern.test(err.message) && !err.message.includes('VXN1'));
    refused(tokenFile('open.token', 'VXN1-abc\n', 0o644), /^the token file \(--token-file\) .*open\.token is open to other users \(mode 0644\): run "chmod 600 .*open\.token"\.$/);
    refused(tokenFile('empty.token', ' \n'), /^the token file \(--token-file\) .*empty\.token is empty\.$/);
    refused(tokenFile('spaced.token', 'VXN1 abc\n'), /holds spaces or control characters inside the token\.$/);
  });
});

describe('the CLI with a token file, in-process against a stub manager', () => {
  const TOKEN = 'VXN1-from-a-file';
  const seen: (string | undefined)[] = [];
  const stub = stubManager((req, res) => {
    seen.push(req.headers.authorization);
    const ok = req.headers.authorization === `Bearer ${TOKEN}`;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(ok ? '[]' : JSON.stringify({ error: { code: 'unauthorized', message: 'unknown token.' } }));
  });

  test('--token-file and VXNET_TOKEN_FILE send the file content as the bearer token', async () => {
    const file = tokenFile('cli.token', `${TOKEN}\n`);
    seen.length = 0;
    assert.equal((await runCli(['network', 'ls', '--json', '--manager', stub.url(), '--token-file', file], {})).code, 0);
    assert.equal((await runCli(['network', 'ls', '--json'], { VXNET_MANAGER: stub.url(), VXNET_TOKEN_FILE: file })).code, 0);
    assert.deepEqual(seen, [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
  });

  test('a token file others can read is refused before anything is sent', async () => {
    const file = tokenFile('cli-open.token', `${TOKEN}\n`, 0o640);
    seen.length = 0;
    const out = await runCli(['network', 'ls', '--manager', stub.url(), '--token-file', file], {});
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^vxnet: the token file \(--token-file\) .*cli-open\.token is open to other users \(mode 0640\): run "chmod 600 /);
    assert.deepEqual(seen, []);
  });
});

describe('the agent refuses to join with the admin token', () => {
  let manager: RunningManager;
  let url: string;
  const managerLog: string[] = [];
  before(async () => ({ manager, url } = await startTlsManager('vxnet-token-file-', { log: (l) => managerLog.push(l) })));
  after(() => manager.close());

  test('the admin token: refused with a sentence naming the worker token; nothing is stored', async () => {
    const stateDir = join(dir, 'admin-agent');
    const lines: string[] = [];
    const err = await obtainCredentials({ managerUrl: url, token: manager.tokens.admin, stateDir, name: 'n1', log: (l) => lines.push(l) }, AbortSignal.timeout(10_000)).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof VxnetError, String(err));
    assert.equal(err.code, 'forbidden');
    assert.equal(
      err.message,
      "the agent was given the admin token and never joins with it: give it the worker token (the manager's DATA_DIR/worker.token) with --token-file FILE.",
    );
    assert.ok(!existsSync(join(stateDir, 'node.pem')));
    assert.ok(!managerLog.some((l) => l.includes('issued')), 'no certificate was issued');
  });

  test('the worker token joins as before', async () => {
    const credentials = await obtainCredentials(
      { managerUrl: url, token: manager.tokens.worker, stateDir: join(dir, 'worker-agent'), name: 'n2', log: () => {} },
      AbortSignal.timeout(10_000),
    );
    assert.equal(credentials.identity.name, 'n2');
  });
});
