/** Helpers shared by the agent's tests: temporary directories, task types that record what they do, a run environment. */
import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../services/common/log.ts';
import type { Clock } from '../../services/agent/clock.ts';
import { ConcurrencyLimiter } from '../../services/agent/schedulers/semaphore.ts';
import type { RunEnv, RunStatus } from '../../services/agent/schedulers/runner.ts';
import { MemoryStateStore } from '../../services/agent/state-store.ts';
import type { AgentSelf, BaseTaskConfig, GlobalSettings, HostIdentity, Task, TaskContext, TaskOutput, TaskType } from '../../services/agent/task.ts';
import { sleep } from '../../services/agent/clock.ts';
import type { ConfiguredTask } from '../../services/agent/config-engine.ts';

/** A fresh directory removed after the test. */
export function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'bkstream-agent-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const testHost: HostIdentity = Object.freeze({ ip: '10.0.0.1', bkCloudId: 0, bkBizId: 2, hostname: 'test-host', bkHostId: 7, bkAgentId: 'agent-7', nodeId: '0:10.0.0.1' });

export const testGlobal: GlobalSettings = Object.freeze({
  mode: 'daemon',
  gatherUpDataId: 1100017,
  disableNetlink: false,
  keepOneDimension: false,
  hostIdPath: '/nonexistent/hostid',
  include: '',
  paths: { proc: '/proc', sys: '/sys', rootfs: '/' },
  raw: {},
});

export const testSelf: AgentSelf = { version: 'test', startedAtMs: 0, reloadTotal: () => 0, runningTasks: () => ({}) };

/** A run environment over `clock` whose outputs and run outcomes are recorded; `extra` is added to every context. */
export function recordingEnv(clock: Clock, limiter = new ConcurrencyLimiter({}), extra: Pick<TaskContext, 'topology' | 'probes'> = {}): RunEnv & { outputs: TaskOutput[]; runs: { type: string; status: RunStatus }[]; state: MemoryStateStore } {
  const outputs: TaskOutput[] = [];
  const runs: { type: string; status: RunStatus }[] = [];
  const state = new MemoryStateStore(clock);
  return {
    clock,
    logger: silentLogger,
    limiter,
    outputs,
    runs,
    state,
    context(task: Task, signal: AbortSignal, runLimiter): TaskContext {
      return {
        signal,
        now: () => clock.now(),
        sleep: (ms) => sleep(clock, ms, signal),
        emit: async (o) => {
          outputs.push(o);
        },
        acquire: (n) => runLimiter.acquire(n, signal),
        requestReload: () => undefined,
        state,
        host: testHost,
        global: testGlobal,
        agent: testSelf,
        logger: silentLogger.child({ task: task.config.type }),
        ...extra,
      };
    },
    observe(type, status) {
      runs.push({ type, status });
    },
  };
}

/** A task that records its runs; `behaviour` decides what a run does. */
export interface ProbeTask extends Task {
  readonly runs: { at: number; signal: AbortSignal }[];
  stopped: boolean;
}

export type Behaviour = (ctx: TaskContext, task: ProbeTask) => Promise<void>;

/** Every task created by the types of {@link probeTypes}, in creation order. */
export interface ProbeRegistry {
  readonly created: ProbeTask[];
  /** What runs do, by `<type>:<taskId>` or by type (default: emit one event and return). */
  behaviours: Record<string, Behaviour>;
}

function probeTask(config: BaseTaskConfig, registry: ProbeRegistry): ProbeTask {
  const task: ProbeTask = {
    config,
    runs: [],
    stopped: false,
    async run(ctx) {
      task.runs.push({ at: ctx.now(), signal: ctx.signal });
      const b = registry.behaviours[`${config.type}:${config.taskId}`] ?? registry.behaviours[config.type];
      if (b) await b(ctx, task);
      else await ctx.emit({ kind: 'event', eventType: config.type, dataId: config.dataId, taskId: config.taskId, body: { task_id: config.taskId } });
    },
    async stop() {
      task.stopped = true;
    },
  };
  registry.created.push(task);
  return task;
}

/**
 * Task types for tests: `probe` (list shape, section `probe_task`, main scheduler), `solo` (single shape,
 * section `solo_task`, enabled when dataid > 0), `guarded` (single, skipIfRunning), `hashed` (single, hashed ident), `listener` (listen
 * scheduler), `words` (keyword scheduler). Each parse reads an optional `fail_parse` key as a problem.
 */
export function probeTypes(): { types: TaskType[]; registry: ProbeRegistry } {
  const registry: ProbeRegistry = { created: [], behaviours: {} };
  const parse: TaskType['parse'] = (raw, base, problems) => {
    if (raw.fail_parse !== undefined) problems.push({ key: 'fail_parse', message: 'this entry asks to fail' });
    return base;
  };
  const create = (config: BaseTaskConfig): ProbeTask => probeTask(config, registry);
  return {
    registry,
    types: [
      { type: 'probe', scheduler: 'main', shape: 'list', section: 'probe_task', parse, create },
      { type: 'solo', scheduler: 'main', shape: 'single', section: 'solo_task', enabled: (c) => c.dataId > 0, parse, create },
      { type: 'hashed', scheduler: 'main', shape: 'single', section: 'hashed_task', fixedIdent: false, parse, create },
      { type: 'guarded', scheduler: 'main', shape: 'single', section: 'guarded_task', skipIfRunning: true, parse, create },
      { type: 'listener', scheduler: 'listen', shape: 'list', section: 'listener_task', parse, create },
      { type: 'words', scheduler: 'keyword', shape: 'list', section: 'words_task', parse, create },
    ],
  };
}

/** A configured task built directly (no files): `type` of {@link probeTypes}, base fields overridable. */
export function configured(types: readonly TaskType[], type: string, over: Partial<BaseTaskConfig> & { taskId: number }, fingerprint = 'f1'): ConfiguredTask {
  const t = types.find((x) => x.type === type);
  if (!t) throw new Error(`no test type ${type}`);
  const config: BaseTaskConfig = {
    type,
    bkBizId: 2,
    dataId: 1000 + over.taskId,
    periodMs: 10_000,
    timeoutMs: 3_000,
    availableDurationMs: 3_000,
    labels: [],
    tags: {},
    ident: `${type}-${over.taskId}`,
    ...over,
  };
  return { type: t, config, scheduler: t.scheduler, fingerprint };
}
