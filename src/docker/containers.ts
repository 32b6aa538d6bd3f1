/**
 * `vxnet attach --container`: the network namespace of a container of this node's Docker engine, found the
 * way `ovs-docker add-port` does it (the container's init pid, then /proc/PID/ns/net), and handed to the
 * agent's ordinary namespace path. The engine is asked once per container; afterwards the pid is trusted as
 * long as /proc/PID/ns/net still names the same namespace (a stopped container's pid can be reused).
 */
import { readlink } from 'node:fs/promises';
import type { ContainerNamespaces } from '../agent/agent.ts';
import type { EngineContainer } from './engine-client.ts';

export interface ContainerEngine {
  inspectContainer(ref: string, signal?: AbortSignal): Promise<EngineContainer | undefined>;
}

export class EngineContainerNamespaces implements ContainerNamespaces {
  readonly #engine: ContainerEngine;
  readonly #proc: string;
  /** container reference → the namespace last resolved for it */
  readonly #cache = new Map<string, { path: string; link: string }>();

  /** `proc`: where /proc is (tests point it elsewhere) */
  constructor(engine: ContainerEngine, options: { proc?: string } = {}) {
    this.#engine = engine;
    this.#proc = options.proc ?? '/proc';
  }

  async resolve(ref: string, signal?: AbortSignal): Promise<string> {
    const cached = this.#cache.get(ref);
    if (cached && (await linkOf(cached.path)) === cached.link) return cached.path;
    this.#cache.delete(ref);
    const container = await this.#engine.inspectContainer(ref, signal);
    if (!container) throw new Error("no such container on this node's Docker engine");
    if (!container.State.Running || !(container.State.Pid > 0)) throw new Error(`it is not running (${container.State.Status})`);
    const path = `${this.#proc}/${container.State.Pid}/ns/net`;
    const link = await linkOf(path);
    if (link === undefined) throw new Error(`its process ${container.State.Pid} is gone`);
    this.#cache.set(ref, { path, link });
    return path;
  }
}

/** "net:[4026532281]": which namespace the path names right now, or undefined when the process is gone. */
async function linkOf(path: string): Promise<string | undefined> {
  try {
    return await readlink(path);
  } catch {
    return undefined;
  }
}
