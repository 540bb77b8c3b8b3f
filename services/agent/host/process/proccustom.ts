/**
 * proccustom (reference §A5.14, custom process monitoring): processes chosen by command-line patterns (or
 * one pid file), named by `process_name`, with dimensions extracted by `extract_pattern`; one perf record
 * per label group that names a target, and with `port_detect` one port record per listening socket whose
 * `alive` says whether a TCP connection to it succeeds within 3 s.
 */
import { Socket } from 'node:net';
import { goBase } from '../goformat.ts';
import { findAllSubmatch, goRegExp, subexpNames } from '../goregexp.ts';
import type { FileSocket } from '../sockets.ts';
import type { PerfStat } from './perf.ts';
import type { ProcMeta } from './procs.ts';

/** The compiled patterns of one proccustom task; a pattern that does not compile is left out (as the reference logs and ignores it). */
export class ProcCustomPatterns {
  readonly #match: RegExp | undefined;
  readonly #exclude: RegExp | undefined;
  readonly #name: RegExp | undefined;
  readonly #namePattern: string;
  readonly #nameGroups: number;
  readonly #dims: RegExp | undefined;
  readonly #dimNames: string[];
  readonly invalid: { key: string; pattern: string; error: string }[] = [];

  constructor(p: { matchPattern: string; excludePattern: string; processName: string; extractPattern: string }) {
    const compile = (key: string, pattern: string): RegExp | undefined => {
      if (pattern === '') return undefined;
      try {
        return goRegExp(pattern);
      } catch (err) {
        this.invalid.push({ key, pattern, error: (err as Error).message });
        return undefined;
      }
    };
    this.#match = compile('match_pattern', p.matchPattern);
    this.#exclude = compile('exclude_pattern', p.excludePattern);
    this.#name = compile('process_name', p.processName);
    this.#namePattern = p.processName;
    this.#nameGroups = subexpNames(p.processName).length - 1;
    this.#dims = compile('extract_pattern', p.extractPattern);
    this.#dimNames = subexpNames(p.extractPattern);
  }

  /** Not excluded, and the match pattern finds the command line (no match pattern: nothing matches). */
  matches(cmd: string): boolean {
    if (this.#exclude?.test(cmd)) return false;
    return this.#match ? this.#match.test(cmd) : false;
  }

  /** `process_name`: the last group of the last match; the pattern itself when it has no groups; basename(argv0) when unset. */
  processName(cmd: string): string {
    if (!this.#name) {
      const argv0 = cmd.trim().split(/\s+/)[0] ?? '';
      return argv0 === '' ? '' : goBase(argv0);
    }
    if (this.#nameGroups === 0) return this.#namePattern;
    let last = '';
    for (const m of findAllSubmatch(this.#name, cmd)) for (const g of m) last = g;
    return last;
  }

  /** Named groups of `extract_pattern` (the last match wins). */
  dimensions(cmd: string): Record<string, string> {
    const out: Record<string, string> = {};
    if (!this.#dims) return out;
    for (const m of findAllSubmatch(this.#dims, cmd)) {
      m.forEach((value, i) => {
        const name = this.#dimNames[i];
        if (i > 0 && name) out[name] = value;
      });
    }
    return out;
  }
}

/** One time-series record of proccustom (the reference's `{timestamp, target, dimension, metrics}`). */
export interface ProcCustomRecord {
  /** `<bk_target_cloud_id>:<bk_target_ip>` of the label group. */
  target: string;
  /** Whole seconds, as the reference stamps them. */
  timestampS: number;
  dimensions: Record<string, string>;
  metrics: Record<string, number>;
}

/** The perf metrics of a process (absent parts are left out, like the reference's map). */
export function perfMetrics(perf: PerfStat): Record<string, number> {
  const m: Record<string, number> = {};
  if (perf.mem) Object.assign(m, { memory_size: perf.mem.size, memory_rss_bytes: perf.mem.resident, memory_rss_pct: perf.mem.percent, memory_share: perf.mem.share });
  if (perf.cpu) Object.assign(m, { cpu_start_time: perf.cpu.startTime, cpu_user: perf.cpu.user, cpu_system: perf.cpu.sys, cpu_total_ticks: perf.cpu.total, cpu_total_pct: perf.cpu.percent });
  if (perf.fd) Object.assign(m, { fd_open: perf.fd.open, fd_limit_soft: perf.fd.softLimit, fd_limit_hard: perf.fd.hardLimit });
  if (perf.io) Object.assign(m, { io_read_bytes: perf.io.readBytes, io_write_bytes: perf.io.writeBytes, io_read_speed: perf.io.readSpeed, io_write_speed: perf.io.writeSpeed });
  return m;
}

export interface RecordContext {
  readonly tags: Readonly<Record<string, string>>;
  readonly labels: readonly Readonly<Record<string, string>>[];
  readonly nowMs: number;
}

/** One record per label group carrying `bk_target_cloud_id` and `bk_target_ip`; dimensions: tags, extracted, process, label keys. */
export function recordsFor(base: Record<string, string>, metrics: Record<string, number>, ctx: RecordContext): ProcCustomRecord[] {
  const out: ProcCustomRecord[] = [];
  for (const label of ctx.labels) {
    const cloud = label['bk_target_cloud_id'];
    const ip = label['bk_target_ip'];
    if (cloud === undefined || ip === undefined) continue;
    out.push({ target: `${cloud}:${ip}`, timestampS: Math.floor(ctx.nowMs / 1000), dimensions: { ...base, ...label }, metrics: { ...metrics } });
  }
  return out;
}

/** The process dimensions shared by perf and port records. */
export function processDimensions(ctx: RecordContext, extracted: Record<string, string>, pid: string, processName: string, username: string): Record<string, string> {
  return { ...ctx.tags, ...extracted, pid, process_name: processName, process_username: username };
}

/** Whether a TCP connection to ip:port succeeds within `timeoutMs`. */
export type TouchFn = (ip: string, port: number, timeoutMs: number) => Promise<boolean>;

export const tcpTouch: TouchFn = (ip, port, timeoutMs) =>
  new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect({ host: ip, port }, () => done(true));
  });

export const TOUCH_TIMEOUT_MS = 3_000;

/**
 * `{address, port, alive}` per LISTEN socket of the process (UDP sockets are not probed); a wildcard
 * address is probed on the host's first address of that family. No socket: one entry with empty address
 * and port and alive 0 (reference errata 18).
 */
export async function probeListeners(conns: readonly FileSocket[], ips: { v4: string[]; v6: string[] }, touch: TouchFn): Promise<{ address: string; port: string; alive: number }[]> {
  const out: { address: string; port: string; alive: number }[] = [];
  for (const c of conns) {
    if (c.status !== 'LISTEN' && c.status !== '0A') continue;
    let ip: string | undefined = c.saddr;
    if (c.saddr === '0.0.0.0') ip = ips.v4[0];
    else if (c.saddr === '::') ip = ips.v6[0];
    const alive = ip !== undefined && (await touch(ip, c.sport, TOUCH_TIMEOUT_MS)) ? 1 : 0;
    out.push({ address: c.saddr, port: String(c.sport), alive });
  }
  return out.length > 0 ? out : [{ address: '', port: '', alive: 0 }];
}

/** The perf records of one matched process. */
export function perfRecords(meta: ProcMeta, perf: PerfStat, patterns: ProcCustomPatterns, ctx: RecordContext, pid: string): ProcCustomRecord[] {
  const dims = processDimensions(ctx, patterns.dimensions(meta.cmd), pid, patterns.processName(meta.cmd), meta.username);
  return recordsFor(dims, perfMetrics(perf), ctx);
}
