/**
 * `selfstats` (reference §A7.3; `selfstats_task`, data id 1100030, task_id 88, period 1m): the agent's
 * own process statistics as time series with the host dimensions, target `selfstats`.
 *
 * The reference gathers its Go Prometheus registry and keeps a whitelist of `go_*` / `process_*` series.
 * This is a Node process, so the series are mapped (README, "selfstats"): where a Node figure means the
 * same thing the reference's name is kept, otherwise a `nodejs_*` name says what it is:
 *
 * | reference series | here |
 * | --- | --- |
 * | `process_cpu_seconds_total` | user + system CPU seconds of this process |
 * | `process_resident_memory_bytes` | RSS |
 * | `process_open_fds` | entries of /proc/self/fd |
 * | `go_threads` | OS threads of the process (/proc/self/status `Threads`) |
 * | `go_gc_duration_seconds` (summary) | V8 garbage-collection pauses since start: `_sum`, `_count`, quantiles 0, 0.25, 0.5, 0.75, 1 of the last 256 |
 * | `go_memstats_heap_idle_bytes` | V8 heap reserved but unused (`total_heap_size - used_heap_size`) |
 * | `go_goroutines`, `go_info`, `go_memstats_alloc_bytes_total`, `go_memstats_heap_released_bytes`, `go_memstats_next_gc_bytes` | no Node equivalent: not sent; `nodejs_info{version}`, `nodejs_heap_used_bytes`, `nodejs_active_resources` are sent instead |
 * | `bkmonitorbeat_version{version}`, `bkmonitorbeat_uptime`, `bkmonitorbeat_reload_total`, `bkmonitorbeat_running_tasks{task_type}` | same names and meaning |
 */
import { readdir, readFile } from 'node:fs/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { BaseTaskConfig, HostIdentity, MetricsOutput, Task, TaskContext, TaskType } from '../task.ts';

/** The reference's host dimensions (tasks/host_dimension.go). */
export function hostDimensions(host: HostIdentity): Record<string, string> {
  const cloud = String(host.bkCloudId);
  return {
    bk_cloud_id: cloud,
    bk_target_cloud_id: cloud,
    bk_target_ip: host.ip,
    bk_agent_id: host.bkAgentId,
    bk_host_id: String(host.bkHostId),
    bk_biz_id: String(host.bkBizId),
    node_id: `${host.bkCloudId}:${host.ip}`,
    hostname: host.hostname,
  };
}

/** GC pauses observed since the task started (count, sum, and a ring of the last 256 for quantiles). */
class GcPauses {
  count = 0;
  sumSeconds = 0;
  readonly #recent: number[] = [];
  #observer: PerformanceObserver | undefined;

  start(): void {
    if (this.#observer) return;
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const s = e.duration / 1_000;
        this.count++;
        this.sumSeconds += s;
        this.#recent.push(s);
        if (this.#recent.length > 256) this.#recent.shift();
      }
    });
    this.#observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    this.#observer?.disconnect();
    this.#observer = undefined;
  }

  quantiles(): [number, number][] {
    if (this.#recent.length === 0) return [];
    const s = [...this.#recent].sort((a, b) => a - b);
    return [0, 0.25, 0.5, 0.75, 1].map((q) => [q, s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))] as number]);
  }
}

async function openFds(): Promise<number | undefined> {
  try {
    return (await readdir('/proc/self/fd')).length;
  } catch {
    return undefined;
  }
}

async function threads(): Promise<number | undefined> {
  try {
    const m = /^Threads:\s+(\d+)/m.exec(await readFile('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The selfstats records of this process now. */
export async function selfstatsOutput(config: BaseTaskConfig, ctx: Pick<TaskContext, 'now' | 'host' | 'agent'>, gc: Pick<GcPauses, 'count' | 'sumSeconds' | 'quantiles'>): Promise<MetricsOutput> {
  const now = ctx.now();
  const lbs = hostDimensions(ctx.host);
  const records: MetricsOutput['records'][number][] = [];
  const add = (name: string, value: number | undefined, extra: Record<string, string> = {}): void => {
    if (value === undefined || !Number.isFinite(value)) return;
    records.push({ timestamp: now, metrics: { [name]: value }, dimensions: { ...extra, ...lbs } });
  };
  const cpu = process.cpuUsage();
  add('process_cpu_seconds_total', (cpu.user + cpu.system) / 1e6);
  add('process_resident_memory_bytes', process.memoryUsage.rss());
  add('process_open_fds', await openFds());
  add('go_threads', await threads());
  if (gc.count > 0) {
    records.push({ timestamp: now, metrics: { go_gc_duration_seconds_sum: gc.sumSeconds, go_gc_duration_seconds_count: gc.count }, dimensions: { ...lbs } });
    for (const [q, v] of gc.quantiles()) add('go_gc_duration_seconds', v, { quantile: String(q) });
  }
  const heap = getHeapStatistics();
  add('go_memstats_heap_idle_bytes', heap.total_heap_size - heap.used_heap_size);
  add('nodejs_heap_used_bytes', heap.used_heap_size);
  add('nodejs_active_resources', process.getActiveResourcesInfo().length);
  add('nodejs_info', 1, { version: process.version });
  add('bkmonitorbeat_version', 1, { version: ctx.agent.version });
  add('bkmonitorbeat_uptime', (now - ctx.agent.startedAtMs) / 1_000);
  add('bkmonitorbeat_reload_total', ctx.agent.reloadTotal());
  for (const [type, n] of Object.entries(ctx.agent.runningTasks())) add('bkmonitorbeat_running_tasks', n, { task_type: type });
  return { kind: 'metrics', eventType: 'selfstats', dataId: config.dataId, bkBizId: config.bkBizId, taskId: config.taskId, target: 'selfstats', records };
}

class SelfStatsTask implements Task {
  readonly config: BaseTaskConfig;
  readonly #gc = new GcPauses();

  constructor(config: BaseTaskConfig) {
    this.config = config;
    this.#gc.start();
  }

  async run(ctx: TaskContext): Promise<void> {
    await ctx.emit(await selfstatsOutput(this.config, ctx, this.#gc));
  }

  async stop(): Promise<void> {
    this.#gc.stop();
  }
}

export const selfstatsType: TaskType = {
  type: 'selfstats',
  scheduler: 'main',
  shape: 'single',
  section: 'selfstats_task',
  enabled: (config) => config.dataId > 0,
  parse: (_raw, base) => base,
  create: (config) => new SelfStatsTask(config),
};
