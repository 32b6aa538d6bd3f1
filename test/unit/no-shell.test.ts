/**
 * Names never reach a shell. Two proofs that cost nothing:
 * - statically, no source file under src/ uses a child_process function that goes through a shell (exec,
 *   execSync) or passes a `shell` option to the ones that do not, and none outside the test kit runs `sh -c`;
 * - dynamically, the kernel runner's choke point (execute) hands every argv element to the program as it is:
 *   shell syntax in an argument is printed back literally and runs nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { createRunner, execute } from '../../src/agent/kernel/exec.ts';
import { temporaryDirectory } from './support/temporary.ts';

const SRC = resolve(import.meta.dirname, '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('no shell anywhere', () => {
  it('imports only spawn, spawnSync and fork from child_process, and never passes a shell option', () => {
    const files = sources(SRC);
    assert.ok(files.length > 20, `found the sources (${files.length} files)`);
    const problems: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const name = relative(SRC, file);
      for (const match of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"](?:node:)?child_process['"]/g)) {
        const imported = match[1]!.split(',').map((s) => s.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]!).filter(Boolean);
        for (const fn of imported) {
          if (!['spawn', 'spawnSync', 'fork', 'ChildProcess', 'SpawnOptions'].includes(fn)) problems.push(`${name} imports ${fn}`);
        }
      }
      if (/import\s+\*\s+as\s+\w+\s+from\s*['"](?:node:)?child_process['"]/.test(text)) problems.push(`${name} imports all of child_process`);
      if (/require\(\s*['"](?:node:)?child_process['"]\s*\)/.test(text)) problems.push(`${name} requires child_process`);
      // `shell: true`, `shell: '/bin/sh'`, `shell: someVariable,` (prose such as "a shell: no ..." is fine)
      if (/\bshell\s*:\s*(true\b|['"`]|[\w.]+\s*[,}])/.test(text)) problems.push(`${name} passes a shell option`);
      // The test kit (not shipped to any node) may run a fixed script with its values as positional arguments.
      const product = !name.startsWith('testkit/');
      if (product && /['"`](?:\/bin\/)?(?:ba)?sh['"`]\s*,\s*['"`]-c['"`]/.test(text)) problems.push(`${name} runs sh -c`);
    }
    assert.deepEqual(problems, []);
  });

  it('passes shell syntax in an argument through literally, running nothing', async () => {
    const dir = temporaryDirectory('vxnet-noshell-');
    const marker = join(dir, 'pwned');
    const payloads = [
      `x; touch ${marker}`,
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `x && touch ${marker}`,
      `x | touch ${marker}`,
      `x\ntouch ${marker}`,
      `> ${marker}`,
    ];
    for (const payload of payloads) {
      const result = await execute(['/bin/echo', payload]);
      assert.equal(result.stdout, `${payload}\n`, 'echo got the argument exactly as given');
    }
    const runner = createRunner();
    const viaRunner = await runner.run(['/bin/echo', `$(touch ${marker})`, `;touch ${marker}`]);
    assert.equal(viaRunner.stdout, `$(touch ${marker}) ;touch ${marker}\n`);
    assert.equal(existsSync(marker), false, 'no payload ran');
    // A whole command line given as one argv element is a program name that does not exist, not a command.
    const oneString = await execute([`/bin/touch ${marker}`], { allowFailure: true });
    assert.equal(oneString.code, 127);
    assert.equal(existsSync(marker), false);
  });
});
