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
import type { AgentSelf, GlobalSettings, HostIdentity, Task, TaskContext, TaskOutput } from '../../services/agent/task.ts';
import { sleep } from '../../services/agent/clock.ts';

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

/** A run environment over `clock` whose outputs and run outcomes are recorded. */
export function recordingEnv(clock: Clock, limiter = new ConcurrencyLimiter({})): RunEnv & { outputs: TaskOutput[]; runs: { type: string; status: RunStatus }[]; state: MemoryStateStore } {
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
      };
    },
    observe(type, status) {
      runs.push({ type, status });
    },
  };
}
