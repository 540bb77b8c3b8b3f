/** Test kit of the host readers: a writable copy of the fixture host tree, a fake clock and a fake statfs. */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../../services/agent/host/clock.ts';
import { type HostPaths, hostPaths, type StatFs } from '../../../services/agent/host/paths.ts';
import type { BaseTaskConfig, TaskContext, TaskOutput } from '../../../services/agent/task.ts';
import { silentLogger } from '../../../services/common/log.ts';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

export interface FixtureHost {
  readonly root: string;
  readonly paths: HostPaths;
  /** Writes (or replaces) a file under the copied tree, e.g. `proc/stat`. */
  readonly write: (rel: string, content: string) => void;
  /** statfs answers per mount point (as passed to statfs, i.e. under `rootfs`). */
  readonly statfs: Map<string, StatFs>;
  readonly cleanup: () => void;
}

/**
 * A fresh copy of `fixtures/<name>` with paths pointing into it. Symlinks (`/proc/<pid>/exe`, `fd/N`,
 * `/dev/mapper/*`) are listed in `<name>.links` and made in the copy: committed links to `/` would send
 * test-file globbing through the real filesystem.
 */
export function fixtureHost(name = 'host1'): FixtureHost {
  const root = mkdtempSync(join(tmpdir(), 'bk-host-'));
  cpSync(join(FIXTURES, name), root, { recursive: true });
  for (const line of readFileSync(join(FIXTURES, `${name}.links`), 'utf8').split('\n')) {
    const [link, target] = line.split(' -> ');
    if (!link || target === undefined) continue;
    mkdirSync(dirname(join(root, link)), { recursive: true });
    symlinkSync(target, join(root, link));
  }
  for (const pid of readdirSync(join(root, 'proc'))) {
    if (/^\d+$/.test(pid) && !existsSync(join(root, 'proc', pid, 'fd'))) mkdirSync(join(root, 'proc', pid, 'fd'));
  }
  const statfs = new Map<string, StatFs>();
  const paths = hostPaths({
    procRoot: join(root, 'proc'),
    sysRoot: join(root, 'sys'),
    etcRoot: join(root, 'etc'),
    devRoot: join(root, 'dev'),
    rootfs: root,
    statfs: async (p) => {
      const s = statfs.get(p.slice(root.length) || '/');
      if (!s) throw Object.assign(new Error(`ENOENT: statfs ${p}`), { code: 'ENOENT' });
      return s;
    },
  });
  return {
    root,
    paths,
    statfs,
    write(rel, content) {
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      writeFileSync(join(root, rel), content);
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A statfs answer: `blocks` of 4 KiB, `bfree` free, `bavail` available to users. */
export function statfsOf(type: number, blocks: number, bfree: number, bavail: number, files = 1000, ffree = 900): StatFs {
  return { type, bsize: 4096, blocks, bfree, bavail, files, ffree };
}

/** A clock whose sleeps advance time at once (and are recorded). */
export class FakeClock implements Clock {
  ms: number;
  readonly sleeps: number[] = [];
  constructor(startMs = Date.UTC(2024, 0, 2, 3, 4, 5)) {
    this.ms = startMs;
  }
  now(): number {
    return this.ms;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.ms += ms;
  }
}

/** Replaces lines of a /proc/stat-like text: `cpu` lines given as arrays of ticks. */
export function procStat(total: number[], perCpu: number[][]): string {
  return [`cpu  ${total.join(' ')}`, ...perCpu.map((c, i) => `cpu${i} ${c.join(' ')}`), 'ctxt 987654', 'btime 1700000000', 'processes 4321', 'procs_running 3', 'procs_blocked 1', ''].join('\n');
}

/** A TaskContext over a fixture host: a fake clock, a recording emit, an in-memory state store. */
export interface FakeContext extends TaskContext {
  readonly outputs: TaskOutput[];
  readonly reloads: string[];
  readonly clock: FakeClock;
  readonly controller: AbortController;
  readonly kv: Map<string, string>;
  /** Called on every sleep (after the clock moved); may abort or do work. */
  onSleep?: (ctx: FakeContext) => Promise<void> | void;
}

export function fakeContext(h: { paths: HostPaths; root: string }, over: { include?: string; clock?: FakeClock; gatherUpDataId?: number } = {}): FakeContext {
  const clock = over.clock ?? new FakeClock();
  const controller = new AbortController();
  const kv = new Map<string, string>();
  const outputs: TaskOutput[] = [];
  const reloads: string[] = [];
  const ctx: FakeContext = {
    outputs,
    reloads,
    clock,
    controller,
    kv,
    signal: controller.signal,
    now: () => clock.now(),
    async sleep(ms: number) {
      if (controller.signal.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
      await clock.sleep(ms);
      await ctx.onSleep?.(ctx);
      if (controller.signal.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
    },
    async emit(o: TaskOutput) {
      outputs.push(o);
    },
    acquire: async () => () => undefined,
    requestReload: (reason: string) => {
      reloads.push(reason);
    },
    state: {
      get: (k: string) => kv.get(k),
      set: (k: string, v: string) => {
        kv.set(k, v);
      },
      delete: (k: string) => {
        kv.delete(k);
      },
    },
    host: { ip: '10.0.0.5', bkCloudId: 0, bkBizId: 2, hostname: 'fixture-host', bkHostId: 12, bkAgentId: 'agent-12', nodeId: '0:10.0.0.5' },
    global: {
      mode: 'daemon',
      gatherUpDataId: over.gatherUpDataId ?? 1100017,
      disableNetlink: false,
      keepOneDimension: false,
      hostIdPath: '',
      include: over.include ?? '',
      paths: { proc: h.paths.procRoot, sys: h.paths.sysRoot, rootfs: h.root },
      raw: {},
    },
    agent: { version: 'test', startedAtMs: clock.now() - 1000, reloadTotal: () => 0, runningTasks: () => ({}) },
    logger: silentLogger,
  };
  return ctx;
}

/** The cleaned base of a task for parse tests. */
export function baseConfig(type: string, over: Partial<BaseTaskConfig> = {}): BaseTaskConfig {
  return { type, taskId: 101, bkBizId: 2, dataId: 1001, periodMs: 60_000, timeoutMs: 0, availableDurationMs: 0, labels: [], tags: {}, ident: type, ...over };
}

/**
 * A clock for concurrent sleepers: `sleep` waits for its due time, and `drive` moves time to the next
 * due timer whenever the work has nothing else to do (so parallel sampling loops interleave as they would
 * in real time). `onTick` runs at each new time, before the sleeper resumes.
 */
export class VirtualClock implements Clock {
  ms: number;
  onTick?: (ms: number) => void;
  readonly #timers: { due: number; resolve: () => void }[] = [];
  constructor(startMs = Date.UTC(2024, 0, 2, 3, 4, 0)) {
    this.ms = startMs;
  }
  now(): number {
    return this.ms;
  }
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#timers.push({ due: this.ms + ms, resolve }));
  }
  async drive<T>(work: Promise<T>): Promise<T> {
    let done = false;
    void work.then(
      () => (done = true),
      () => (done = true),
    );
    while (!done) {
      await new Promise((r) => setImmediate(r));
      if (done || this.#timers.length === 0) continue;
      this.#timers.sort((a, b) => a.due - b.due);
      const next = this.#timers.shift() as { due: number; resolve: () => void };
      this.ms = Math.max(this.ms, next.due);
      this.onTick?.(this.ms);
      next.resolve();
    }
    return work;
  }
}
