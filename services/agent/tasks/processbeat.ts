/**
 * `processbeat` (reference §A5.14; CMDB processes, perf data id 1007, port data id 1013): the processes
 * procconf writes from the CMDB hostid file — their performance (`perf`) and the health of their
 * configured ports (`processes`). With `converge_pid` the pids are stable fake pids; the fake → real map
 * is kept in the state store under `pidstore` (the reference's `.pidstore` file), rewritten every minute.
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields, isMap } from '../config-fields.ts';
import { formatDateTime, localOffsetMinutes, zoneHours } from '../host/goformat.ts';
import { PidMapper, PidStore } from '../host/process/mapping.ts';
import { ProcPerf } from '../host/process/perf.ts';
import { collectPortStats, perfItems, type ProcessConfig, ProcessMatcher } from '../host/process/processbeat.ts';
import { ProcReader } from '../host/process/procs.ts';
import { hostPathsFromRoots } from '../host/paths.ts';
import { listeningSockets } from '../host/sockets.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';

export interface ProcessbeatConfig extends BaseTaskConfig {
  readonly perfDataId: number;
  readonly portDataId: number;
  readonly topDataId: number;
  readonly processes: readonly ProcessConfig[];
  readonly convergePid: boolean;
  readonly maxNoListenPorts: number;
  readonly disable: boolean;
}

/** State-store key of the fake → real pid lines. */
export const PIDSTORE_KEY = 'pidstore';
const PIDSTORE_EVERY_MS = 60_000;

function ports(f: ReturnType<typeof fields>, key: string): number[] {
  const out: number[] = [];
  for (const [i, p] of f.strings(key).entries()) {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0 || n > 65535) f.problem(`${key}[${i}]`, `must be a port number, got ${JSON.stringify(p)}`);
    else out.push(n);
  }
  return out;
}

export function parseProcessbeat(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): ProcessbeatConfig {
  const f = fields(raw, problems, '');
  const list = raw['processes'];
  const processes: ProcessConfig[] = [];
  if (list !== undefined && list !== null && !Array.isArray(list)) f.problem('processes', 'must be a list');
  for (const [i, item] of (Array.isArray(list) ? list : []).entries()) {
    if (!isMap(item)) {
      f.problem(`processes[${i}]`, 'must be a mapping');
      continue;
    }
    const p = fields(item, problems, `processes[${i}]`);
    const binds = item['bind_info'];
    processes.push({
      name: p.str('name'),
      displayname: p.str('displayname'),
      protocol: p.str('protocol'),
      ports: ports(p, 'ports'),
      paramregex: p.str('paramregex'),
      bindip: p.str('bindip'),
      bind_info: (Array.isArray(binds) ? binds : []).filter(isMap).map((b, j) => {
        const r = fields(b, problems, `processes[${i}].bind_info[${j}]`);
        return { ip: r.str('ip'), ports: ports(r, 'ports'), protocol: r.str('protocol') };
      }),
    });
  }
  return {
    ...base,
    perfDataId: f.int('perfdataid', { default: 0 }),
    portDataId: f.int('portdataid', { default: 0 }),
    topDataId: f.int('topdataid', { default: 0 }),
    processes,
    convergePid: f.bool('converge_pid', false),
    maxNoListenPorts: f.int('max_nolisten_ports', { default: 0 }),
    disable: f.bool('disable', false),
  };
}

/** The reference's processbeat event map: `{data, dataid, datetime, timezone, type, utctime}`. */
export function processbeatDocument(dataId: number, data: Record<string, unknown>, nowMs: number): Record<string, unknown> {
  const offset = localOffsetMinutes(nowMs);
  return { data, dataid: dataId, datetime: formatDateTime(nowMs, offset), timezone: zoneHours(offset), type: 'processbeat', utctime: formatDateTime(nowMs, 0) };
}

export class ProcessbeatTask implements Task<ProcessbeatConfig> {
  readonly config: ProcessbeatConfig;
  readonly #matcher: ProcessMatcher;
  readonly #mapper = new PidMapper();
  readonly #pidStore = new PidStore();
  #reader: ProcReader | undefined;
  #perf: ProcPerf | undefined;
  #pidStoreAt = 0;
  #warnedRegex = false;

  constructor(config: ProcessbeatConfig) {
    this.config = config;
    this.#matcher = new ProcessMatcher(config.processes);
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    if (c.disable) return;
    const paths = hostPathsFromRoots(ctx.global.paths);
    const reader = (this.#reader ??= new ProcReader({ procRoot: paths.procRoot, etcRoot: paths.etcRoot, now: () => ctx.now() }));
    const perf = (this.#perf ??= new ProcPerf({ procRoot: paths.procRoot, bootTimeS: () => reader.bootTimeS() }));
    if (!this.#warnedRegex && this.#matcher.invalid.length > 0) {
      this.#warnedRegex = true;
      ctx.logger.warn('processbeat: paramregex does not compile; those processes never match', { patterns: this.#matcher.invalid });
    }
    const metas = await reader.all();
    const now = ctx.now();
    const matched = this.#matcher.match(metas);
    perf.prune(new Set(metas.map((m) => m.pid)));
    if (c.perfDataId !== 0) {
      const items = perfItems(c.processes, matched, (pid) => perf.stat(pid, now), now, c.convergePid ? { mapper: this.#mapper, pidStore: this.#pidStore } : undefined);
      await ctx.emit({ kind: 'event', eventType: 'processbeat', dataId: c.perfDataId, taskId: c.taskId, body: processbeatDocument(c.perfDataId, { perf: items.length > 0 ? items : null }, now) });
    }
    if (c.portDataId !== 0) {
      const sockets = listeningSockets(paths.procRoot, [...new Set(matched.map((m) => m.meta.pid))]);
      const processes = collectPortStats(c.processes, matched, sockets, { maxNoListenPorts: c.maxNoListenPorts });
      await ctx.emit({ kind: 'event', eventType: 'processbeat', dataId: c.portDataId, taskId: c.taskId, body: processbeatDocument(c.portDataId, { processes }, now) });
    }
    if (c.convergePid && now - this.#pidStoreAt >= PIDSTORE_EVERY_MS) {
      const text = this.#pidStore.take();
      if (text !== '') ctx.state.set(PIDSTORE_KEY, text);
      this.#pidStoreAt = now;
    }
  }
}

export const processbeatType: TaskType<ProcessbeatConfig> = {
  type: 'processbeat',
  scheduler: 'main',
  shape: 'single',
  section: 'processbeat_task',
  fixedIdent: false,
  skipIfRunning: true,
  enabled: (c) => !c.disable && c.processes.length > 0 && (c.portDataId !== 0 || c.topDataId !== 0 || c.perfDataId !== 0),
  parse: (raw, base, problems) => parseProcessbeat(raw, base, problems),
  create: (config) => new ProcessbeatTask(config),
};
