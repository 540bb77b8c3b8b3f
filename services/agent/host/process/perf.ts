/**
 * Per-process performance (the reference's procPerfMgr): memory from statm, CPU times and rate, I/O
 * bytes and rate, open files and their limits. CPU and I/O rates need two samples: the first sample of a
 * pid gives none (the document leaves `cpu` / `io` out), later ones are deltas over the wall time between.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { CLOCK_TICKS } from '../cpu.ts';
import { parseMeminfo } from '../mem.ts';
import { fieldsOf, listDir, readText } from '../paths.ts';
import { parseProcStat } from './procs.ts';

export interface MemStat {
  /** Virtual size, bytes. */
  size: number;
  /** Resident set, bytes. */
  resident: number;
  share: number;
  /** resident / MemTotal, a 0–1 fraction. */
  percent: number;
}

export interface CpuStat {
  /** ms since the epoch, whole seconds (gopsutil CreateTime). */
  startTime: number;
  /** ms of CPU time. */
  user: number;
  sys: number;
  total: number;
  /** Δ CPU ms / Δ wall ms: 1 = one core busy. */
  percent: number;
  /** percent / CPUs. */
  normalPercent: number;
}

export interface IoStat {
  readBytes: number;
  writeBytes: number;
  /** bytes per second. */
  readSpeed: number;
  writeSpeed: number;
}

export interface FdStat {
  open: number;
  softLimit: number;
  hardLimit: number;
}

export interface PerfStat {
  mem?: MemStat;
  cpu?: CpuStat;
  io?: IoStat;
  fd?: FdStat;
}

/** 4 KiB pages, as the reference's statm reader assumes. */
const PAGE = 4096;

export interface PerfOptions {
  readonly procRoot: string;
  /** Boot time, s (for start times). */
  readonly bootTimeS: () => number;
  /** CPUs for `norm.pct` (Go runtime.NumCPU); default the process's available parallelism. */
  readonly cpus?: number;
}

export class ProcPerf {
  readonly #procRoot: string;
  readonly #bootTimeS: () => number;
  readonly #cpus: number;
  #totalMem = 0;
  readonly #cpuCache = new Map<number, { tsMs: number; total: number }>();
  readonly #ioCache = new Map<number, { tsMs: number; read: number; write: number }>();

  constructor(opts: PerfOptions) {
    this.#procRoot = opts.procRoot;
    this.#bootTimeS = opts.bootTimeS;
    this.#cpus = opts.cpus ?? availableParallelism();
  }

  /** Everything for one pid at `nowMs`; a part that cannot be read is absent. */
  stat(pid: number, nowMs: number): PerfStat {
    const out: PerfStat = {};
    const mem = this.mem(pid);
    if (mem) out.mem = mem;
    const cpu = this.cpu(pid, nowMs);
    if (cpu) out.cpu = cpu;
    const io = this.io(pid, nowMs);
    if (io) out.io = io;
    const fd = this.fd(pid);
    if (fd) out.fd = fd;
    return out;
  }

  /** Forgets pids not in `alive` (the reference's caches only grow). */
  prune(alive: ReadonlySet<number>): void {
    for (const pid of this.#cpuCache.keys()) if (!alive.has(pid)) this.#cpuCache.delete(pid);
    for (const pid of this.#ioCache.keys()) if (!alive.has(pid)) this.#ioCache.delete(pid);
  }

  mem(pid: number): MemStat | undefined {
    const f = fieldsOf(readText(join(this.#procRoot, String(pid), 'statm')) ?? '');
    if (f.length < 3) return undefined;
    if (this.#totalMem <= 0) this.#totalMem = (parseMeminfo(readText(join(this.#procRoot, 'meminfo')) ?? '').get('MemTotal') ?? 0) * 1024;
    if (this.#totalMem <= 0) return undefined;
    const resident = Number(f[1]) * PAGE;
    return { size: Number(f[0]) * PAGE, resident, share: Number(f[2]) * PAGE, percent: resident / this.#totalMem };
  }

  cpu(pid: number, nowMs: number): CpuStat | undefined {
    const stat = parseProcStat(readText(join(this.#procRoot, String(pid), 'stat')) ?? '');
    if (!stat) return undefined;
    const user = Math.floor((stat.utime / CLOCK_TICKS) * 1000);
    const sys = Math.floor((stat.stime / CLOCK_TICKS) * 1000);
    const total = Math.floor(((stat.utime + stat.stime) / CLOCK_TICKS) * 1000);
    const prev = this.#cpuCache.get(pid);
    this.#cpuCache.set(pid, { tsMs: nowMs, total });
    // First sample, or the counter went back (a new process reusing the pid): no rate yet.
    if (!prev || total < prev.total) return undefined;
    const period = Math.floor(nowMs - prev.tsMs);
    const percent = total > prev.total && period > 0 ? (total - prev.total) / period : 0;
    return {
      startTime: (Math.floor(stat.startTicks / CLOCK_TICKS) + this.#bootTimeS()) * 1000,
      user,
      sys,
      total,
      percent,
      normalPercent: percent / this.#cpus,
    };
  }

  io(pid: number, nowMs: number): IoStat | undefined {
    const text = readText(join(this.#procRoot, String(pid), 'io'));
    if (text === undefined) return undefined;
    let read = 0;
    let write = 0;
    for (const line of text.split('\n')) {
      const f = fieldsOf(line);
      if (f[0] === 'read_bytes:') read = Number(f[1]);
      else if (f[0] === 'write_bytes:') write = Number(f[1]);
    }
    const prev = this.#ioCache.get(pid);
    this.#ioCache.set(pid, { tsMs: nowMs, read, write });
    if (!prev) return undefined;
    const period = (nowMs - prev.tsMs) / 1000;
    return {
      readBytes: read,
      writeBytes: write,
      readSpeed: read > prev.read && period > 0 ? (read - prev.read) / period : 0,
      writeSpeed: write > prev.write && period > 0 ? (write - prev.write) / period : 0,
    };
  }

  fd(pid: number): FdStat | undefined {
    const limits = readText(join(this.#procRoot, String(pid), 'limits'));
    if (limits === undefined) return undefined;
    let softLimit = 0;
    let hardLimit = 0;
    for (const line of limits.split('\n')) {
      if (!line.startsWith('Max open files')) continue;
      const f = fieldsOf(line);
      if (f.length === 6) {
        softLimit = /^\d+$/.test(f[3] as string) ? Number(f[3]) : 0;
        hardLimit = /^\d+$/.test(f[4] as string) ? Number(f[4]) : 0;
      }
      break;
    }
    const fds = listDir(join(this.#procRoot, String(pid), 'fd'));
    if (!fds) return undefined;
    return { open: fds.length, softLimit, hardLimit };
  }
}
