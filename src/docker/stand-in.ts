/**
 * What Docker meets on the plugin socket while the agent is stopped (vxnet issue 17).
 *
 * Docker's plugin client retries a call whose connection fails (socket gone, or nobody listening) after
 * 1, 2, 4 and 8 s, and gives up once the next wait would pass 30 s since the first try (moby
 * pkg/plugins/client.go, callWithRetry and backoff): so `docker run --network blue` with the agent stopped
 * waited 15 s and then printed the raw "dial unix /run/docker/plugins/vxnet.sock: connect: no such file or
 * directory". vxnet's own waits are not involved. Only a process that answers on the socket can make that
 * fast, and the agent is gone: so a stopping agent leaves a stand-in behind, a tiny detached Node.js
 * process that serves the socket and answers every call that would need the agent with one sentence,
 * naming the node and how to start the agent. The discovery calls (activation, capabilities, address
 * spaces) are answered as the plugin does, so Docker keeps its plugin as it was.
 *
 * The stand-in lives until its socket is no longer its own: a starting agent replaces it (listenOn
 * removes a socket it finds and binds a new one), or the folder goes; it checks every second and exits.
 * It never takes a socket someone answers on. An agent that is killed (-9, a crash) leaves no stand-in:
 * under systemd it is restarted within seconds (Restart=on-failure, RestartSec=2s), which Docker's retries
 * outlast, so a `docker run` in that moment still succeeds.
 *
 * Under systemd a process the agent leaves behind belongs to the agent's unit and is stopped with it
 * (KillMode=control-group, the default), so there the stand-in is started as a transient unit of its own
 * (`systemd-run --collect`), when the agent runs as a service (INVOCATION_ID set) and systemd-run exists.
 *
 * The stand-in runs as `node -e`, from standInMain's own source: it must not reference anything outside
 * itself (it takes Node's modules from process.getBuiltinModule), which also keeps it loadable from the
 * bundle of an installation.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

/** How often the stand-in checks that its socket is still its own. */
const CHECK_MS = 1_000;

/** The one sentence every call that needs the agent gets. */
export function agentDownSentence(node: string): string {
  return `the vxnet agent on this host (node ${node}) is not running, so Docker cannot use vxnet networks here: start it with "systemctl start vxnet-agent" or run "vxnet agent ..." again.`;
}

/**
 * Serves `socketPath` with the agent-down answers until the socket is replaced or removed; resolves then,
 * its server left open but unreferenced: closing a unix socket's server unlinks its path, which by then is
 * the new agent's socket. The process then simply exits. Resolves at once when someone already answers
 * there. Self-contained (see the module comment).
 */
export async function standInMain(socketPath: string, sentence: string, checkMs: number): Promise<void> {
  const http = process.getBuiltinModule('node:http');
  const net = process.getBuiltinModule('node:net');
  const fs = process.getBuiltinModule('node:fs');
  const answered = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.on('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
  if (answered) return;
  try {
    if (fs.lstatSync(socketPath).isSocket()) fs.unlinkSync(socketPath);
    else return; // not a socket: not ours to replace
  } catch {
    // nothing there
  }
  const discovery: Record<string, unknown> = {
    'Plugin.Activate': { Implements: ['NetworkDriver', 'IpamDriver'] },
    'NetworkDriver.GetCapabilities': { Scope: 'local', ConnectivityScope: 'global' },
    'IpamDriver.GetCapabilities': { RequiresMACAddress: false, RequiresRequestReplay: false },
    'IpamDriver.GetDefaultAddressSpaces': { LocalDefaultAddressSpace: 'vxnet', GlobalDefaultAddressSpace: 'vxnet' },
  };
  const server = http.createServer((req, res) => {
    req.resume();
    const call = (req.url ?? '/').replace(/^\//, '').split('?')[0]!;
    const body = discovery[call] ?? (call.startsWith('IpamDriver.') ? { Error: sentence } : { Err: sentence });
    // no keep-alive: Docker's next call must open a new connection, which reaches the agent once it is back
    // (a kept connection would still lead here until the stand-in notices its socket was replaced)
    res.writeHead(200, { 'content-type': 'application/vnd.docker.plugins.v1.2+json', connection: 'close' });
    res.end(JSON.stringify(body));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  } catch {
    return; // someone took the path meanwhile
  }
  fs.chmodSync(socketPath, 0o600);
  const ino = fs.statSync(socketPath).ino;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      let still = false;
      try {
        still = fs.statSync(socketPath).ino === ino;
      } catch {
        // gone
      }
      if (still) return;
      clearInterval(timer);
      server.unref();
      resolve();
    }, checkMs);
  });
}

/** The argv that runs the stand-in for `socketPath` (see the module comment for systemd-run). */
export function standInArgv(socketPath: string, node: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const script = `(${standInMain.toString()})(${JSON.stringify(socketPath)}, ${JSON.stringify(agentDownSentence(node))}, ${CHECK_MS}).then(() => process.exit(0));`;
  const command = [process.execPath, '-e', script];
  const systemdRun = ['/usr/bin/systemd-run', '/bin/systemd-run'].find((path) => existsSync(path));
  if ((env['INVOCATION_ID'] ?? '') === '' || systemdRun === undefined) return command;
  return [systemdRun, '--collect', '--quiet', `--description=vxnet plugin stand-in (the agent of ${node} is stopped)`, '--', ...command];
}

/** Leaves the stand-in behind on `socketPath`, detached; never throws (the agent is stopping anyway). */
export function leaveStandIn(socketPath: string, node: string, log: (line: string) => void): void {
  try {
    const [command, ...args] = standInArgv(socketPath, node);
    const child = spawn(command!, args, { detached: true, stdio: 'ignore' });
    child.on('error', (err) => log(`could not leave a stand-in on ${socketPath}: ${err.message}`));
    child.unref();
    log(`left a stand-in on ${socketPath}: until the agent is back, Docker's calls are answered that it is not running`);
  } catch (err) {
    log(`could not leave a stand-in on ${socketPath}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
