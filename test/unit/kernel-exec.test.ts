/**
 * The runner's choke point lets its caller exit as soon as the work is done: a program that cannot be
 * started leaves no timer behind (Node's own spawn timeout stayed armed in that case and held the process
 * for the whole 120 s default). Checked in a child node process, since a leak in this one would only show
 * as a slow test run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { execute, HostToolError } from '../../src/agent/kernel/exec.ts';
import { ERROR_STATUS, VxnetError } from '../../src/core/errors.ts';

const EXEC = resolve(import.meta.dirname, '../../src/agent/kernel/exec.ts');

describe('execute', () => {
  it('answers 127 at once for a program that does not exist', async () => {
    const result = await execute(['/nonexistent/vxnet-no-such-tool', 'x'], { allowFailure: true });
    assert.equal(result.code, 127);
    assert.equal(result.stderr, '/nonexistent/vxnet-no-such-tool: command not found');
  });

  it('throws HostToolError with a catalogue code, the argv, the exit code and stderr when a tool fails', async () => {
    await assert.rejects(execute(['/nonexistent/vxnet-no-such-tool', 'x']), (err: unknown) => {
      assert.ok(err instanceof HostToolError);
      assert.equal(err.message, '/nonexistent/vxnet-no-such-tool x failed (exit 127): /nonexistent/vxnet-no-such-tool: command not found');
      assert.deepEqual([err.code, ERROR_STATUS[err.code], err.argv, err.exitCode], ['host_tool_failed', 500, ['/nonexistent/vxnet-no-such-tool', 'x'], 127]);
      // the edges answer it as an internal failure, as before it had a code
      assert.equal(err instanceof VxnetError, false);
      return true;
    });
  });

  it('leaves nothing that keeps the process alive after a missing program, nor after a run that ended', () => {
    const script = [
      `import { execute } from ${JSON.stringify(EXEC)};`,
      `const missing = await execute(['/nonexistent/vxnet-no-such-tool'], { allowFailure: true });`,
      `const ran = await execute(['/bin/true']);`,
      `console.log(JSON.stringify([missing.code, ran.code]));`,
    ].join('\n');
    const started = performance.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    const ms = performance.now() - started;
    assert.equal(child.status, 0, `the child failed: ${child.stderr}`);
    assert.equal(child.stdout.trim(), '[127,0]');
    assert.ok(ms < 5_000, `the child process ended ${ms.toFixed(0)} ms after it started (under 5 s expected)`);
  });
});
