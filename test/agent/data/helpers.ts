/**
 * A recording TaskContext for the data-task tests: real time, outputs collected in order, an in-memory
 * state store, the reference's gather-up data id. Tests drive a task through its TaskType (parse + create)
 * the way the config engine does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { ConfigProblem } from '../../../services/common/errors.ts';
import { silentLogger } from '../../../services/common/log.ts';
import type { BaseTaskConfig, EventOutput, GlobalSettings, HostTopology, MetricsOutput, StateStore, TaskContext, TaskOutput, TaskType } from '../../../services/agent/task.ts';

export const GATHER_UP_DATA_ID = 1100017;

export class MemoryState implements StateStore {
  readonly map = new Map<string, string>();
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  set(key: string, value: string): void {
    this.map.set(key, value);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}

export interface Recording {
  ctx: TaskContext;
  outputs: TaskOutput[];
  controller: AbortController;
  metrics(eventType?: string): MetricsOutput[];
  events(eventType?: string): EventOutput[];
  /** Resolves once `pred` holds over the outputs (polling), or rejects after `timeoutMs`. */
  waitFor(pred: (outputs: TaskOutput[]) => boolean, timeoutMs?: number): Promise<void>;
}

export interface RecordingOptions {
  raw?: Record<string, unknown>;
  keepOneDimension?: boolean;
  state?: StateStore;
  signal?: AbortSignal;
  /** The host's CMDB topology the context gives (`ctx.topology`); none by default. */
  topology?: () => HostTopology | undefined;
}

export function recordingContext(options: RecordingOptions = {}): Recording {
  const outputs: TaskOutput[] = [];
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([controller.signal, options.signal]) : controller.signal;
  const global: GlobalSettings = {
    mode: 'daemon',
    gatherUpDataId: GATHER_UP_DATA_ID,
    disableNetlink: false,
    keepOneDimension: options.keepOneDimension ?? false,
    hostIdPath: '',
    include: '',
    paths: { proc: '/proc', sys: '/sys', rootfs: '/' },
    raw: options.raw ?? {},
  };
  const ctx: TaskContext = {
    signal,
    now: () => Date.now(),
    sleep: (ms) =>
      new Promise<void>((resolve, reject) => {
        if (signal.aborted) {
          reject(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
          return;
        }
        const t = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        }, ms);
        const onAbort = (): void => {
          clearTimeout(t);
          reject(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    emit: async (o) => {
      outputs.push(o);
    },
    acquire: async () => () => undefined,
    requestReload: () => undefined,
    state: options.state ?? new MemoryState(),
    host: { ip: '127.0.0.1', bkCloudId: 0, bkBizId: 2, hostname: 'test-host', bkHostId: 7, bkAgentId: 'agent-1', nodeId: '0:127.0.0.1' },
    global,
    agent: { version: 'test', startedAtMs: Date.now(), reloadTotal: () => 0, runningTasks: () => ({}) },
    logger: silentLogger,
    ...(options.topology ? { topology: options.topology } : {}),
  };
  return {
    ctx,
    outputs,
    controller,
    metrics: (eventType) => outputs.filter((o): o is MetricsOutput => o.kind === 'metrics' && (eventType === undefined || o.eventType === eventType)),
    events: (eventType) => outputs.filter((o): o is EventOutput => o.kind === 'event' && (eventType === undefined || o.eventType === eventType)),
    async waitFor(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred(outputs)) {
        if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; ${outputs.length} outputs`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** A cleaned base config as the engine would give it. */
export function baseConfig(type: string, over: Partial<BaseTaskConfig> = {}): BaseTaskConfig {
  return {
    type,
    taskId: 42,
    bkBizId: 2,
    dataId: 1500001,
    periodMs: 60_000,
    timeoutMs: 10_000,
    availableDurationMs: 10_000,
    labels: [],
    tags: {},
    ident: `${type}-test`,
    ...over,
  };
}

/** Parses an entry with a type's `parse`, failing the test on any problem. */
export function parseTask<C extends BaseTaskConfig>(t: ExecutionContext, type: TaskType<C>, raw: Record<string, unknown>, base: Partial<BaseTaskConfig> = {}): C {
  const problems: ConfigProblem[] = [];
  const config = type.parse(raw, baseConfig(type.type, base), problems, {});
  t.deepEqual(problems, [], 'no config problems');
  return config;
}

/** The problems `parse` reports for an entry. */
export function problemsOf<C extends BaseTaskConfig>(type: TaskType<C>, raw: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  type.parse(raw, baseConfig(type.type), problems, {});
  return problems;
}

/** A temporary directory removed when the test ends. */
export function tempDir(t: ExecutionContext, prefix = 'bkstream-data-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The gather-up records emitted so far: [code, value] pairs. */
export function gatherUps(outputs: readonly TaskOutput[]): { code: string; name: string; value: number; dims: Record<string, string> }[] {
  return outputs
    .filter((o): o is MetricsOutput => o.kind === 'metrics' && o.eventType === 'gather_up')
    .flatMap((o) => o.records.map((r) => ({ code: r.dimensions.bkm_up_code as string, name: r.dimensions.bkm_up_code_name as string, value: r.metrics.bkm_gather_up as number, dims: { ...r.dimensions } })));
}
