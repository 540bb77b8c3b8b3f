/**
 * CPU times and CPU information from /proc, in the shapes of gopsutil's `cpu.TimesStat` and
 * `cpu.InfoStat` that basereport marshals (`cpu.per_stat[]`, `cpu.total_stat`, `cpu.cpuinfo[]`), and the
 * usage sampler behind `cpu.per_usage[]` / `cpu.total_usage`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fieldsOf, readLines, readText } from './paths.ts';

/** gopsutil `cpu.TimesStat`: seconds spent per mode (ticks / USER_HZ); `cpu` is `cpu0`… or `cpu-total`. */
export interface CpuTimes {
  cpu: string;
  user: number;
  system: number;
  idle: number;
  nice: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  guest: number;
  guestNice: number;
}

/** gopsutil `cpu.InfoStat` (one per logical CPU on Linux; field names as it marshals them). */
export interface CpuInfo {
  cpu: number;
  vendorId: string;
  family: string;
  model: string;
  stepping: number;
  physicalId: string;
  coreId: string;
  cores: number;
  modelName: string;
  mhz: number;
  cacheSize: number;
  flags: string[] | null;
  microcode: string;
}

/** `CPU implementer` codes of ARM /proc/cpuinfo → vendor (arch/arm64 cputype.h). */
const ARM_IMPLEMENTERS: Record<number, string> = {
  0x41: 'ARM',
  0x42: 'Broadcom',
  0x43: 'Cavium',
  0x44: 'DEC',
  0x46: 'Fujitsu',
  0x48: 'HiSilicon',
  0x49: 'Infineon',
  0x4d: 'Motorola/Freescale',
  0x4e: 'NVIDIA',
  0x50: 'APM',
  0x51: 'Qualcomm',
  0x56: 'Marvell',
  0x61: 'Apple',
  0x69: 'Intel',
  0xc0: 'Ampere',
};

/** USER_HZ: the unit of /proc/stat. 100 on every Linux architecture the agent runs on. */
export const CLOCK_TICKS = 100;

function parseStatLine(line: string): CpuTimes | undefined {
  const f = fieldsOf(line);
  if (f.length < 8 || !(f[0] as string).startsWith('cpu')) return undefined;
  const n = (i: number): number => (f.length > i ? Number(f[i]) / CLOCK_TICKS : 0);
  for (let i = 1; i < Math.min(f.length, 11); i++) if (!Number.isFinite(Number(f[i]))) return undefined;
  return {
    cpu: f[0] === 'cpu' ? 'cpu-total' : (f[0] as string),
    user: n(1),
    system: n(3),
    idle: n(4),
    nice: n(2),
    iowait: n(5),
    irq: n(6),
    softirq: n(7),
    steal: n(8),
    guest: n(9),
    guestNice: n(10),
  };
}

/** The total line (`cpu-total`) and the per-core lines of /proc/stat (gopsutil cpu.Times). */
export function readCpuTimes(procRoot: string): { total: CpuTimes; perCpu: CpuTimes[] } {
  const lines = readLines(join(procRoot, 'stat'));
  if (!lines || lines.length === 0) throw new Error(`cannot read ${join(procRoot, 'stat')}`);
  const total = parseStatLine(lines[0] as string);
  if (!total) throw new Error(`${join(procRoot, 'stat')} has no cpu line`);
  const perCpu: CpuTimes[] = [];
  for (const line of lines.slice(1)) {
    if (!line.startsWith('cpu')) break;
    const t = parseStatLine(line);
    if (t) perCpu.push(t);
  }
  return { total, perCpu };
}

/** t2 − t1 per mode, named after t2 (the reference's calcTimeState). */
export function timesDelta(t1: CpuTimes, t2: CpuTimes): CpuTimes {
  return {
    cpu: t2.cpu,
    user: t2.user - t1.user,
    system: t2.system - t1.system,
    idle: t2.idle - t1.idle,
    nice: t2.nice - t1.nice,
    iowait: t2.iowait - t1.iowait,
    irq: t2.irq - t1.irq,
    softirq: t2.softirq - t1.softirq,
    steal: t2.steal - t1.steal,
    guest: t2.guest - t1.guest,
    guestNice: t2.guestNice - t1.guestNice,
  };
}

function allBusy(t: CpuTimes): [number, number] {
  // Linux counts guest time inside user time, so it is taken out of the total (gopsutil getAllBusy).
  const total = t.user + t.system + t.idle + t.nice + t.iowait + t.irq + t.softirq + t.steal;
  return [total, total - t.idle - t.iowait];
}

/** Busy percentage between two samples (gopsutil calculateBusy): 0 when busy did not grow, 100 when total did not. */
export function busyPercent(t1: CpuTimes, t2: CpuTimes): number {
  const [all1, busy1] = allBusy(t1);
  const [all2, busy2] = allBusy(t2);
  if (busy2 <= busy1) return 0;
  if (all2 <= all1) return 100;
  return Math.min(100, Math.max(0, ((busy2 - busy1) / (all2 - all1)) * 100));
}

/** One CPU sample of basereport: deltas and usage against the previous sample. */
export interface CpuSample {
  per_usage: number[];
  total_usage: number;
  per_stat: CpuTimes[];
  total_stat: CpuTimes;
}

/**
 * Keeps the previous /proc/stat reading and turns each new one into deltas and usage (the reference's
 * getCPUStatUsage; the first reference point is taken when the sampler is created, as the reference does
 * at process start).
 */
export class CpuSampler {
  readonly #procRoot: string;
  #last: { total: CpuTimes; perCpu: CpuTimes[] } | undefined;

  constructor(procRoot: string) {
    this.#procRoot = procRoot;
    try {
      this.#last = readCpuTimes(procRoot);
    } catch {
      this.#last = undefined;
    }
  }

  sample(): CpuSample {
    const now = readCpuTimes(this.#procRoot);
    let last = this.#last;
    // A missing or differently sized previous reading is replaced by the current one (deltas of 0).
    if (!last || last.perCpu.length !== now.perCpu.length) last = now;
    const per_stat = now.perCpu.map((t, i) => timesDelta(last.perCpu[i] as CpuTimes, t));
    const total_stat = timesDelta(last.total, now.total);
    const per_usage = now.perCpu.map((t, i) => {
      const u = busyPercent(last.perCpu[i] as CpuTimes, t);
      return u < 0 || Math.trunc(u) > 100 ? 0 : u;
    });
    let total_usage = busyPercent(last.total, now.total);
    if (total_usage < 0 || total_usage > 100) total_usage = 0;
    this.#last = now;
    return { per_usage, total_usage, per_stat, total_stat };
  }
}

/** /proc/cpuinfo as gopsutil's cpu.Info reads it (one entry per `processor`), `cpuinfo_max_freq` overriding MHz. */
export function readCpuInfo(procRoot: string, sysRoot: string): CpuInfo[] {
  const lines = readLines(join(procRoot, 'cpuinfo')) ?? [];
  const out: CpuInfo[] = [];
  let processorName = '';
  const fresh = (): CpuInfo => ({
    cpu: -1,
    vendorId: '',
    family: '',
    model: '',
    stepping: 0,
    physicalId: '',
    coreId: '',
    cores: 1,
    modelName: '',
    mhz: 0,
    cacheSize: 0,
    flags: null,
    microcode: '',
  });
  let c = fresh();
  const finish = (info: CpuInfo): void => {
    if (info.coreId === '') {
      const core = readText(join(sysRoot, `devices/system/cpu/cpu${info.cpu}/topology/core_id`));
      if (core !== undefined) info.coreId = core.split('\n')[0] as string;
    }
    const max = readText(join(sysRoot, `devices/system/cpu/cpu${info.cpu}/cpufreq/cpuinfo_max_freq`));
    if (max !== undefined) {
      const v = Number((max.split('\n')[0] as string).trim());
      if (Number.isFinite(v) && (max.split('\n')[0] as string).trim() !== '') {
        info.mhz = v / 1000;
        if (info.mhz > 9999) info.mhz /= 1000;
      }
    }
    out.push(info);
  };
  for (const line of lines) {
    const parts = line.split(':');
    if (parts.length < 2) continue;
    const key = (parts[0] as string).trim();
    const value = (parts[1] as string).trim();
    switch (key) {
      case 'Processor':
        processorName = value;
        break;
      case 'processor':
      case 'cpu number': {
        if (c.cpu >= 0) finish(c);
        c = fresh();
        c.modelName = processorName;
        const n = Number.parseInt(value, 10);
        if (!Number.isFinite(n)) return out;
        c.cpu = n;
        break;
      }
      case 'vendorId':
      case 'vendor_id':
        c.vendorId = value;
        if (value.includes('S390')) processorName = 'S390';
        break;
      case 'CPU implementer': {
        const v = Number(value);
        const vendor = Number.isInteger(v) ? ARM_IMPLEMENTERS[v] : undefined;
        if (vendor !== undefined) c.vendorId = vendor;
        break;
      }
      case 'cpu family':
        c.family = value;
        break;
      case 'model':
      case 'CPU part':
        c.model = value;
        break;
      case 'Model Name':
      case 'model name':
      case 'cpu':
        c.modelName = value;
        if (value.includes('POWER')) {
          c.model = value.split(' ')[0] as string;
          c.family = 'POWER';
          c.vendorId = 'IBM';
        }
        break;
      case 'stepping':
      case 'revision':
      case 'CPU revision': {
        const v = key === 'revision' ? (value.split('.')[0] as string) : value;
        const n = Number.parseInt(v, 10);
        if (!/^[-+]?\d+$/.test(v)) return out;
        c.stepping = n;
        break;
      }
      case 'cpu MHz':
      case 'clock':
      case 'cpu MHz dynamic': {
        const v = Number(value.replace('MHz', ''));
        if (Number.isFinite(v) && value.replace('MHz', '').trim() !== '') c.mhz = v;
        break;
      }
      case 'cache size': {
        const v = value.replace(' KB', '');
        if (!/^[-+]?\d+$/.test(v)) return out;
        c.cacheSize = Number(v);
        break;
      }
      case 'physical id':
        c.physicalId = value;
        break;
      case 'core id':
        c.coreId = value;
        break;
      case 'flags':
      case 'Features':
        c.flags = value.split(/[, ]/).filter((s) => s !== '');
        break;
      case 'microcode':
        c.microcode = value;
        break;
    }
  }
  if (c.cpu >= 0) finish(c);
  return out;
}

/** The number of `processor` lines of /proc/cpuinfo (the logical CPU count gopsutil's cpu.Info yields). */
export function logicalCpuCount(procRoot: string): number {
  const text = readText(join(procRoot, 'cpuinfo')) ?? '';
  let n = 0;
  for (const line of text.split('\n')) if (/^processor\s*:\s*\d+/.test(line)) n++;
  return n;
}

/**
 * The first processor's version string and maximum speed (MHz) from the SMBIOS table (what the reference
 * asks `dmidecode` for when /proc/cpuinfo lacks a model or a frequency): `unknown` / -1 when unreadable.
 */
export function dmiProcessor(sysRoot: string): { model: string; mhz: number } {
  const fallback = { model: 'unknown', mhz: -1 };
  let table: Buffer;
  try {
    table = readFileSync(join(sysRoot, 'firmware/dmi/tables/DMI'));
  } catch {
    return fallback;
  }
  let off = 0;
  while (off + 4 <= table.length) {
    const type = table[off] as number;
    const length = table[off + 1] as number;
    if (length < 4) break;
    // The string set follows the formatted area and ends with two NULs.
    let end = off + length;
    while (end + 1 < table.length && !(table[end] === 0 && table[end + 1] === 0)) end++;
    if (type === 4 && length > 0x15) {
      const strings = table.subarray(off + length, end).toString('latin1').split('\0');
      const idx = table[off + 0x10] as number;
      const model = idx > 0 ? (strings[idx - 1] ?? '').trim() : '';
      return { model, mhz: table.readUInt16LE(off + 0x14) };
    }
    if (type === 127) break;
    off = end + 2;
  }
  return fallback;
}
