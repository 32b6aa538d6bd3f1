/**
 * The processes of the scale harness: the real manager (`vxnet manager`, as an operator starts it) with a
 * sampler of its CPU time and memory from /proc, and the worker pool that hosts the simulated agents.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AgentSpec, type Counters, type Delivery, type Expectation, type FromWorker, type Memory, type ToWorker, zeroCounters } from './protocol.ts';

const ROOT = join(import.meta.dirname, '..', '..');
/** USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux architecture node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcSample {
  /** wall clock, ms */
  t: number;
  /** user + system CPU time so far, ms */
  cpuMs: number;
  /** resident set size, bytes */
  rss: number;
  /** peak resident set size so far (VmHWM), bytes */
  peakRss: number;
}

/** CPU time and memory of a process, from /proc/PID/stat and /proc/PID/status. */
export function readProc(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name may contain spaces and parentheses: fields are counted after the last ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { t: Date.now(), cpuMs: (ticks * 1000) / CLOCK_TICKS_PER_SECOND, rss: kib('VmRSS'), peakRss: kib('VmHWM') };
}

export interface ManagerProcess {
  url: string;
  dataDir: string;
  pid: number;
  adminToken: string;
  workerToken: string;
  /** samples every 250 ms since start */
  samples: ProcSample[];
  sample(): ProcSample;
  stop(): Promise<void>;
}

/**
 * `nodeOptions`: extra options for node itself, e.g. ["--cpu-prof", "--cpu-prof-dir=DIR"] to profile the manager;
 * `managerOptions`: extra options of `vxnet manager` (`--store etcd://...`, `--token-file` to join).
 */
export async function startManager(dataDir: string, listen: string, nodeOptions: string[] = [], managerOptions: string[] = []): Promise<ManagerProcess> {
  const argv = [...nodeOptions, join(ROOT, 'src', 'cli', 'main.ts'), 'manager', '--data-dir', dataDir, '--listen', listen, ...managerOptions];
  const child = spawn(process.execPath, argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`the manager did not start within 20 s: ${text}`)), 20_000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      text += chunk;
      const match = /manager listening on (\S+?)[, ]/.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
      if (text.length > 100_000) text = text.slice(-10_000);
    });
    child.once('exit', (code) => reject(new Error(`the manager exited (code ${code}): ${text}`)));
  });
  // what the manager says goes to a file next to its data (the harness only reads it to find the address)
  const logFile = join(dataDir, 'manager.log');
  child.stderr!.on('data', (chunk: string) => appendFileSync(logFile, chunk));
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`the manager exited unexpectedly (code ${code}, signal ${signal}); its log: ${logFile}`);
  });
  const samples: ProcSample[] = [];
  const pid = child.pid!;
  const timer = setInterval(() => {
    try {
      samples.push(readProc(pid));
    } catch {
      // the process is gone
    }
  }, 250);
  timer.unref();
  // a manager with a cluster CA serves TLS on TCP (mutual TLS for agents); older ones plain HTTP
  const tls = existsSync(join(dataDir, 'ca.pem'));
  return {
    url: address.startsWith('unix:') ? address : `${tls ? 'https' : 'http'}://${address}`,
    dataDir,
    pid,
    adminToken: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(),
    workerToken: readFileSync(join(dataDir, 'worker.token'), 'utf8').trim(),
    samples,
    sample: () => readProc(pid),
    stop: async () => {
      stopping = true;
      clearInterval(timer);
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

export interface WorkerHandlers {
  onDeliveries(list: Delivery[]): void;
  onLog(line: string): void;
}

/** One worker process hosting a share of the simulated agents. */
export class Worker {
  readonly child: ChildProcess;
  readonly agents: AgentSpec[];
  baseline: Memory | undefined;
  joinMs = 0;
  #nextId = 1;
  #replies = new Map<number, (message: FromWorker) => void>();
  #converged: ((message: Extract<FromWorker, { type: 'converged' }>) => void) | undefined;
  #ready: Promise<void>;

  constructor(
    agents: AgentSpec[],
    managerUrl: string,
    token: string,
    stateDir: string,
    handlers: WorkerHandlers,
    heapMiB: number,
    nodeOptions: string[] = [],
  ) {
    this.agents = agents;
    this.child = fork(join(import.meta.dirname, 'worker.ts'), [], {
      execArgv: ['--expose-gc', `--max-old-space-size=${heapMiB}`, ...nodeOptions],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.#ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`a worker exited early (code ${code})`)));
      this.child.on('message', (raw) => {
        const message = raw as FromWorker;
        switch (message.type) {
          case 'ready':
            this.baseline = message.baseline;
            this.joinMs = message.joinMs;
            resolve();
            return;
          case 'deliveries':
            handlers.onDeliveries(message.list);
            return;
          case 'log':
            handlers.onLog(message.line);
            return;
          case 'converged':
            this.#converged?.(message);
            this.#converged = undefined;
            return;
          default:
            this.#replies.get(message.id)?.(message);
            this.#replies.delete(message.id);
        }
      });
    });
    this.send({ type: 'init', managerUrl, token, agents, stateDir });
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  send(message: ToWorker): void {
    this.child.send(message);
  }

  /** Resolves when every agent of the worker reached the expectation just sent. */
  expect(expectations: Expectation[]): Promise<Extract<FromWorker, { type: 'converged' }>> {
    const promise = new Promise<Extract<FromWorker, { type: 'converged' }>>((resolve) => (this.#converged = resolve));
    this.send({ type: 'expect', expectations });
    return promise;
  }

  #ask<T extends FromWorker>(type: 'counters' | 'memory' | 'digests'): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve) => {
      this.#replies.set(id, (message) => resolve(message as T));
      this.send({ type, id });
    });
  }

  async counters(): Promise<Counters> {
    return (await this.#ask<Extract<FromWorker, { type: 'counters' }>>('counters')).counters;
  }

  async memory(): Promise<Memory> {
    return (await this.#ask<Extract<FromWorker, { type: 'memory' }>>('memory')).memory;
  }

  async digests(): Promise<[number, number, number][]> {
    return (await this.#ask<Extract<FromWorker, { type: 'digests' }>>('digests')).digests;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.send({ type: 'stop' });
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(killer);
  }
}

export function sumCounters(list: Counters[]): Counters {
  const total = zeroCounters();
  for (const c of list) for (const key of Object.keys(total) as (keyof Counters)[]) total[key] += c[key];
  return total;
}

export function diffCounters(after: Counters, before: Counters): Counters {
  const out = { ...after };
  for (const key of Object.keys(out) as (keyof Counters)[]) out[key] -= before[key];
  return out;
}

/**
 * Several managers seen as one by the phases' measurements: CPU time and memory summed (samples paired by
 * order, each manager sampled every 250 ms), the URLs as one `--manager` list; each stays in `members` for the
 * figures per manager.
 */
export function managerGroup(members: ManagerProcess[]): ManagerProcess & { members: ManagerProcess[] } {
  const sum = (samples: ProcSample[]): ProcSample => ({
    t: samples[0]!.t,
    cpuMs: samples.reduce((a, s) => a + s.cpuMs, 0),
    rss: samples.reduce((a, s) => a + s.rss, 0),
    peakRss: samples.reduce((a, s) => a + s.peakRss, 0),
  });
  return {
    members,
    url: members.map((m) => m.url).join(','),
    dataDir: members[0]!.dataDir,
    pid: members[0]!.pid,
    adminToken: members[0]!.adminToken,
    workerToken: members[0]!.workerToken,
    get samples() {
      const n = Math.min(...members.map((m) => m.samples.length));
      return Array.from({ length: n }, (_, i) => sum(members.map((m) => m.samples[i]!)));
    },
    sample: () => sum(members.map((m) => m.sample())),
    stop: async () => {
      await Promise.all(members.map((m) => m.stop()));
    },
  };
}
