/** The Linux kernel data plane: public surface for the agent. */
export { LinuxDataplane, NEIGHBOUR_GC_THRESHOLDS, type LinuxDataplaneOptions } from './linux-dataplane.ts';
export { detectUnderlay, findUnderlay, preflight } from './host.ts';
export { createRunner, execute, HostToolError, type RunOptions, type RunResult, type Runner, type RunnerOptions } from './exec.ts';
