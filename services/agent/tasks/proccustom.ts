/**
 * `proccustom` (reference §A5.14; custom process monitoring, the `monitor_process` child files procsync
 * writes): processes matched by command-line patterns or a pid file, as time series — perf metrics per
 * process and label group (target `<cloud>:<ip>`), with `port_detect` one `alive` series per listening
 * socket — then a `bkm_gather_up` record. Unless `disable_mapping`, the `pid` dimension is a stable fake pid.
 */
import { readFileSync } from 'node:fs';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { defaultIps } from '../host/net.ts';
import { PidMapper } from '../host/process/mapping.ts';
import { ProcPerf } from '../host/process/perf.ts';
import { perfRecords, probeListeners, processDimensions, type ProcCustomRecord, ProcCustomPatterns, recordsFor, tcpTouch, type TouchFn } from '../host/process/proccustom.ts';
import { type ProcMeta, ProcReader } from '../host/process/procs.ts';
import { hostPathsFromRoots } from '../host/paths.ts';
import { listeningSockets } from '../host/sockets.ts';
import type { BaseTaskConfig, MetricsOutput, Task, TaskContext, TaskType } from '../task.ts';
import { Codes, gatherUpOutput } from './gather-up.ts';

export interface ProcCustomConfig extends BaseTaskConfig {
  readonly portDataId: number;
  readonly matchPattern: string;
  readonly processName: string;
  readonly extractPattern: string;
  readonly excludePattern: string;
  readonly pidPath: string;
  /** Parsed; the reference's filter on it has no effect, so it has none here either. */
  readonly procMetric: readonly string[];
  readonly portDetect: boolean;
  readonly ports: readonly string[];
  readonly listenPortOnly: boolean;
  readonly reportUnexpectedPort: boolean;
  readonly disableMapping: boolean;
}

export function parseProcCustom(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): ProcCustomConfig {
  const f = fields(raw, problems, '');
  const config: ProcCustomConfig = {
    ...base,
    portDataId: f.int('port_dataid', { default: 0 }),
    matchPattern: f.str('match_pattern'),
    processName: f.str('process_name'),
    extractPattern: f.str('extract_pattern'),
    excludePattern: f.str('exclude_pattern'),
    pidPath: f.str('pid_path'),
    procMetric: f.strings('proc_metric'),
    portDetect: f.bool('port_detect', false),
    ports: f.strings('ports'),
    listenPortOnly: f.bool('listen_port_only', false),
    reportUnexpectedPort: f.bool('report_unexpected_port', false),
    disableMapping: f.bool('disable_mapping', false),
  };
  for (const bad of new ProcCustomPatterns(config).invalid) f.problem(bad.key, `is not a valid regular expression: ${bad.error}`);
  return config;
}

/** Groups records by target into MetricBatch outputs (a label group's target is part of the record key). */
function outputs(config: ProcCustomConfig, dataId: number, records: readonly ProcCustomRecord[]): MetricsOutput[] {
  const byTarget = new Map<string, MetricsOutput['records'][number][]>();
  for (const r of records) {
    const list = byTarget.get(r.target) ?? [];
    list.push({ timestamp: r.timestampS * 1000, metrics: r.metrics, dimensions: r.dimensions });
    byTarget.set(r.target, list);
  }
  return [...byTarget].map(([target, recs]) => ({ kind: 'metrics', eventType: 'proccustom', dataId, bkBizId: config.bkBizId, taskId: config.taskId, target, records: recs }));
}

export class ProcCustomTask implements Task<ProcCustomConfig> {
  readonly config: ProcCustomConfig;
  readonly #patterns: ProcCustomPatterns;
  readonly #mapper = new PidMapper();
  readonly #touch: TouchFn;
  #reader: ProcReader | undefined;
  #perf: ProcPerf | undefined;

  /** `touch` is the TCP probe of `alive` (tests inject one). */
  constructor(config: ProcCustomConfig, touch: TouchFn = tcpTouch) {
    this.config = config;
    this.#patterns = new ProcCustomPatterns(config);
    this.#touch = touch;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const paths = hostPathsFromRoots(ctx.global.paths);
    const reader = (this.#reader ??= new ProcReader({ procRoot: paths.procRoot, etcRoot: paths.etcRoot, now: () => ctx.now() }));
    const perf = (this.#perf ??= new ProcPerf({ procRoot: paths.procRoot, bootTimeS: () => reader.bootTimeS() }));
    let matched: ProcMeta[];
    if (c.pidPath !== '') {
      let pid: number;
      try {
        pid = Number(readFileSync(c.pidPath, 'utf8').trim());
        if (!Number.isInteger(pid)) throw new Error(`not a pid: ${readFileSync(c.pidPath, 'utf8').trim()}`);
      } catch (err) {
        ctx.logger.warn('proccustom: pid file not readable', { task_id: c.taskId, pid_path: c.pidPath, err });
        return;
      }
      try {
        matched = [reader.meta(pid)];
      } catch (err) {
        ctx.logger.warn('proccustom: process of the pid file not found', { task_id: c.taskId, pid, err });
        return;
      }
    } else {
      const all = await reader.all();
      perf.prune(new Set(all.map((m) => m.pid)));
      matched = all.filter((m) => this.#patterns.matches(m.cmd));
      if (matched.length === 0) {
        ctx.logger.debug('proccustom: no process matched', { task_id: c.taskId });
        return;
      }
    }
    const now = ctx.now();
    const rc = { tags: c.tags, labels: c.labels, nowMs: now };
    const fake = (m: ProcMeta): string => {
      if (c.disableMapping) return String(m.pid);
      return String(this.#mapper.fakePid({ pid: m.pid, name: this.#patterns.processName(m.cmd), params: '' }));
    };
    if (c.dataId > 0) {
      if (!c.disableMapping) this.#mapper.refresh(matched.map((m) => ({ pid: m.pid, name: this.#patterns.processName(m.cmd), params: '' })));
      for (const m of matched) {
        for (const out of outputs(c, c.dataId, perfRecords(m, perf.stat(m.pid, now), this.#patterns, rc, fake(m)))) await ctx.emit(out);
      }
    }
    if (c.portDetect && c.portDataId > 0) {
      const sockets = listeningSockets(paths.procRoot, matched.map((m) => m.pid));
      const ips = defaultIps();
      for (const m of matched) {
        const conns = [...(sockets.tcp.get(m.pid) ?? []), ...(sockets.udp.get(m.pid) ?? []), ...(sockets.tcp6.get(m.pid) ?? []), ...(sockets.udp6.get(m.pid) ?? [])];
        const dims = processDimensions(rc, this.#patterns.dimensions(m.cmd), fake(m), this.#patterns.processName(m.cmd), m.username);
        const records: ProcCustomRecord[] = [];
        for (const p of await probeListeners(conns, ips, this.#touch)) {
          records.push(...recordsFor({ ...dims, listen_address: p.address, listen_port: p.port }, { alive: p.alive }, rc));
        }
        for (const out of outputs(c, c.portDataId, records)) await ctx.emit(out);
      }
    }
    const up = gatherUpOutput(ctx.global.gatherUpDataId, c, Codes.OK, ctx.now());
    if (up) await ctx.emit(up);
  }
}

export const proccustomType: TaskType<ProcCustomConfig> = {
  type: 'proccustom',
  scheduler: 'main',
  shape: 'single',
  section: 'proccustom_task',
  fixedIdent: false,
  skipIfRunning: true,
  enabled: (c) => c.dataId !== 0,
  parse: (raw, base, problems) => parseProcCustom(raw, base, problems),
  create: (config) => new ProcCustomTask(config),
};
