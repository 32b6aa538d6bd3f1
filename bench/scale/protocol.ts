/**
 * Messages between the scale harness (bench/scale/run.ts) and its worker processes (bench/scale/worker.ts),
 * over the IPC channel of child_process.fork. Times are milliseconds on the shared wall clock
 * (performance.timeOrigin + performance.now(): every process on the machine reads the same clock).
 */

export const now = (): number => performance.timeOrigin + performance.now();

export interface AgentSpec {
  /** host index in the topology */
  index: number;
  name: string;
  address: string;
}

/** An agent's desired state must reach these counts (peers = remote endpoints, locals = own endpoints). */
export type Expectation = [agentIndex: number, peers: number, locals: number];

export type ToWorker =
  /** `token`: the worker token (an https manager: the join token each agent gets its certificate with) */
  | { type: 'init'; managerUrl: string; token: string; agents: AgentSpec[]; stateDir: string }
  /** starts every agent of the worker (Agent.run) */
  | { type: 'start' }
  | { type: 'expect'; expectations: Expectation[] }
  /** while on, every endpoint an agent gains or loses is reported (see Delivery) */
  | { type: 'record'; on: boolean }
  | { type: 'counters'; id: number }
  /** garbage-collects, then answers with memory figures */
  | { type: 'memory'; id: number }
  | { type: 'digests'; id: number }
  | { type: 'stop' };

/**
 * One endpoint gained (op 0) or lost (op 1) by one agent: when the watch message arrived, and when the agent
 * handed a desired state reflecting it to its data plane ("has it").
 */
export type Delivery = [agentIndex: number, op: 0 | 1, network: string, ip: string, arrivedAt: number, programmedAt: number];

export interface Counters {
  /** non-ping watch messages received by all agents of the worker */
  messages: number;
  /** bytes received on watch connections (HTTP framing included) */
  watchBytes: number;
  /** bytes received and sent on the agents' other API connections (heartbeats, status reports) */
  apiBytes: number;
  heartbeats: number;
  statusReports: number;
  statusAcks: number;
  passes: number;
  /** cumulative CPU time of the worker process, ms */
  cpuMs: number;
  reconnects: number;
  /** lines the agents logged (failures, retries, reconcile summaries) */
  agentLogs: number;
  /** now, not a count: the agents' own endpoints that their views show as ready (the manager's word) */
  readyLocal: number;
}

/** Every counter at zero: the start of a worker's tally, and of a sum. */
export function zeroCounters(): Counters {
  return {
    messages: 0,
    watchBytes: 0,
    apiBytes: 0,
    heartbeats: 0,
    statusReports: 0,
    statusAcks: 0,
    passes: 0,
    cpuMs: 0,
    reconnects: 0,
    agentLogs: 0,
    readyLocal: 0,
  };
}

export interface Memory {
  heapUsed: number;
  rss: number;
  external: number;
  /** remote endpoints in the desired states of the worker's agents */
  peers: number;
  agents: number;
}

export type FromWorker =
  /** `joinMs`: how long getting the agents' node certificates took (0 without TLS) */
  | { type: 'ready'; baseline: Memory; joinMs: number }
  | { type: 'deliveries'; list: Delivery[] }
  /** every agent reached its expectation; `syncMs` per agent from its start (when started in this round) */
  | { type: 'converged'; at: number; syncMs: number[] }
  | { type: 'counters'; id: number; counters: Counters }
  | { type: 'memory'; id: number; memory: Memory }
  | { type: 'digests'; id: number; digests: [agentIndex: number, peers: number, digest: number][] }
  | { type: 'log'; line: string };
