/**
 * The basereport document (reference §A5.9): cpu, mem, net sampled several times per period keeping the
 * peak, disk / system / env collected in the background (each report carries the previous completed
 * result), load, and the envelope's date fields. {@link BasereportCollector.collect} is called once per
 * run; the first call is the warm-up (collects with one sample each, waits 5 s, returns nothing) so that
 * every later report has deltas over a real interval.
 */
import type { Logger } from '../../common/log.ts';
import { type Clock, waitTick } from './clock.ts';
import { CpuSampler, type CpuInfo, type CpuSample, dmiProcessor, logicalCpuCount, readCpuInfo } from './cpu.ts';
import {
  type DiskFilter,
  type DiskStat,
  deriveDiskRates,
  filterDiskStats,
  filterPartitions,
  type Partition,
  readDiskStats,
  readPartitions,
  readUsage,
  type Usage,
} from './disk.ts';
import { type EnvReport, readEnv } from './env.ts';
import { formatDateTime, localOffsetMinutes, zoneHours } from './goformat.ts';
import { applyIegMeminfo, readSwapMemory, readVirtualMemory, type SwapMemory, type VirtualMemory } from './mem.ts';
import {
  devStats,
  type InterfaceAddrsFn,
  type InterfaceStat,
  keepInterface,
  keepPeak,
  type NetDevStat,
  type NetFilter,
  NetSpeedTracker,
  nodeInterfaceAddrs,
  ProtocolStatTracker,
  readCarrierCollisions,
  readInterfaces,
  readIoCounters,
  readProtoCounters,
  virtualInterfaces,
} from './net.ts';
import { type HostPaths, readText } from './paths.ts';
import { countTcpStates, type TcpStateCounts } from './sockets.ts';
import { nodeUname, readLoadAvg, readSystemInfo, type SystemInfo, type Uname, type LoadAvg } from './system.ts';

/** basereport's own settings (reference BasereportConfig), already defaulted. */
export interface BasereportOptions {
  readonly periodMs: number;
  readonly cpu: { readonly statTimes: number; readonly reportFlag: boolean };
  readonly mem: { readonly infoTimes: number; readonly specialSource: boolean };
  readonly net: NetFilter & { readonly statTimes: number; readonly revertProtectNumber: number };
  readonly disk: DiskFilter & { readonly statTimes: number; readonly collectAllDevice: boolean };
  readonly reportCrontab: boolean;
  readonly reportHosts: boolean;
  readonly reportRoute: boolean;
  /** `time_tolerate` (s, default 59): a report exactly this many seconds after the previous waits 1 s. */
  readonly timeTolerateS: number;
}

/** What the collector reads besides the file roots (injectable for tests). */
export interface BasereportEnvironment {
  readonly paths: HostPaths;
  readonly uname?: Uname;
  readonly interfaceAddrs?: InterfaceAddrsFn;
  readonly logger?: Logger;
}

export interface CpuReport {
  cpuinfo: CpuInfo[];
  per_usage: number[];
  total_usage: number;
  per_stat: CpuSample['per_stat'];
  total_stat: CpuSample['total_stat'];
}

export interface MemReport {
  swap_in: number;
  swap_out: number;
  meminfo: VirtualMemory;
  vmstat: SwapMemory | null;
}

export interface NetReport {
  interface: InterfaceStat[];
  dev: NetDevStat[];
  netstat: TcpStateCounts;
  protocolstat: Record<string, Record<string, number>> | null;
}

export interface DiskReport {
  diskstat: Record<string, DiskStat>;
  partition: Partition[];
  usage: Usage[];
}

/** The basereport document's `data` (field order as the reference marshals it). */
export interface BasereportData {
  timezone: number;
  datetime: string;
  utctime: string;
  country: string;
  city: string;
  cpu: CpuReport | null;
  env: EnvReport | null;
  disk: DiskReport | null;
  load: { load_avg: LoadAvg; per_cpu_load: number } | null;
  mem: MemReport | null;
  net: NetReport | null;
  system: { info: SystemInfo } | null;
}

/** A background job whose last completed result is what each report carries (the reference's JobMgr). */
class BackgroundJob<T> {
  #running = false;
  #result: T | undefined;
  #json: string | undefined;

  readonly #name: string;
  readonly #logger: Logger | undefined;

  constructor(name: string, logger: Logger | undefined) {
    this.#name = name;
    this.#logger = logger;
  }

  /** Starts `work` unless the previous one still runs, and returns a deep copy of the last result. */
  kick(work: () => Promise<T>): T | null {
    if (!this.#running) {
      this.#running = true;
      work().then(
        (r) => {
          this.#result = r;
          this.#json = undefined;
          this.#running = false;
        },
        (err: unknown) => {
          this.#running = false;
          this.#logger?.warn(`basereport ${this.#name} collection failed`, { err });
        },
      );
    }
    if (this.#result === undefined) return null;
    this.#json ??= JSON.stringify(this.#result);
    return JSON.parse(this.#json) as T;
  }

  /** Whether a run is in progress (tests wait for it). */
  get running(): boolean {
    return this.#running;
  }
}

/** A country and city from /etc/sysconfig/clock `ZONE="Asia/Shanghai"`, else /etc/timezone. */
export function readLocation(paths: HostPaths): { country: string; city: string } {
  const clock = readText(`${paths.etcRoot}/sysconfig/clock`);
  const split = (zone: string): { country: string; city: string } => {
    const parts = zone.split('/');
    return parts.length === 2 ? { country: parts[0] as string, city: (parts[1] as string).trim() } : { country: '', city: '' };
  };
  if (clock === undefined) return { country: '', city: '' };
  for (const line of clock.split('\n')) {
    const words = line.split('=');
    if (words[0] === 'ZONE') return split((words[1] ?? '').replace(/^"+|"+$/g, ''));
  }
  const tz = readText(`${paths.etcRoot}/timezone`);
  return tz === undefined ? { country: '', city: '' } : split(tz);
}

const FAST_STAT_TIMES = 1;
/** The warm-up's pause after collecting (the reference's FastBasereportConfig period). */
export const WARMUP_PAUSE_MS = 5_000;
/** The swap paging window. */
const SWAP_WINDOW_MS = 1_000;

export class BasereportCollector {
  readonly #opts: BasereportOptions;
  readonly #env: BasereportEnvironment;
  readonly #paths: HostPaths;
  readonly #cpu: CpuSampler;
  readonly #netSpeed = new NetSpeedTracker();
  readonly #proto = new ProtocolStatTracker();
  readonly #diskJob: BackgroundJob<DiskReport>;
  readonly #systemJob: BackgroundJob<{ info: SystemInfo }>;
  readonly #envJob: BackgroundJob<EnvReport>;
  #diskLast: Map<string, DiskStat> | undefined;
  #diskLastMs: number | undefined;
  #lastDateS = 0;
  #warmedUp = false;
  #clock: Clock | undefined;

  constructor(opts: BasereportOptions, env: BasereportEnvironment) {
    this.#opts = opts;
    this.#env = env;
    this.#paths = env.paths;
    this.#cpu = new CpuSampler(env.paths.procRoot);
    this.#diskJob = new BackgroundJob('disk', env.logger);
    this.#systemJob = new BackgroundJob('system', env.logger);
    this.#envJob = new BackgroundJob('env', env.logger);
  }

  /** Whether a background job (disk, system, env) is still running. */
  get busy(): boolean {
    return this.#diskJob.running || this.#systemJob.running || this.#envJob.running;
  }

  /**
   * One run: the warm-up on the first call (returns undefined after collecting once and pausing 5 s),
   * the report's `data` afterwards.
   */
  async collect(clock: Clock): Promise<BasereportData | undefined> {
    this.#clock = clock;
    if (!this.#warmedUp) {
      const o = this.#opts;
      await this.#collect(clock, {
        ...o,
        periodMs: WARMUP_PAUSE_MS,
        cpu: { ...o.cpu, statTimes: FAST_STAT_TIMES },
        mem: { ...o.mem, infoTimes: FAST_STAT_TIMES },
        net: { ...o.net, statTimes: FAST_STAT_TIMES },
        disk: { ...o.disk, statTimes: FAST_STAT_TIMES, collectAllDevice: false },
      });
      this.#warmedUp = true;
      await clock.sleep(WARMUP_PAUSE_MS);
      return undefined;
    }
    return this.#collect(clock, this.#opts);
  }

  async #collect(clock: Clock, o: BasereportOptions): Promise<BasereportData> {
    const log = this.#env.logger;
    const attempt = async <T>(what: string, f: () => Promise<T>): Promise<T | null> => {
      try {
        return await f();
      } catch (err) {
        if (isAbort(err)) throw err;
        log?.warn(`basereport ${what} collection failed`, { err });
        return null;
      }
    };
    const [cpu, mem, net] = await Promise.all([
      attempt('cpu', () => this.#collectCpu(clock, o)),
      attempt('mem', () => this.#collectMem(clock, o)),
      attempt('net', () => this.#collectNet(clock, o)),
    ]);
    const disk = this.#diskJob.kick(() => this.#collectDisk(o));
    const system = this.#systemJob.kick(async () => ({ info: readSystemInfo(this.#paths, this.#now(), this.#env.uname ?? nodeUname()) }));
    const { country, city } = readLocation(this.#paths);
    let load: BasereportData['load'] = null;
    try {
      const avg = readLoadAvg(this.#paths.procRoot);
      const cores = logicalCpuCount(this.#paths.procRoot);
      if (cores > 0) load = { load_avg: avg, per_cpu_load: avg.load1 / cores };
      else log?.warn('basereport load: no cpu cores found');
    } catch (err) {
      log?.warn('basereport load collection failed', { err });
    }
    const env = this.#envJob.kick(async () => {
      const { report, errors } = readEnv(this.#paths, o);
      if (errors.length > 0) log?.debug('basereport env: some values could not be read', { errors });
      return report;
    });
    // time_tolerate: a report exactly `tolerate` s after the previous one waits a second (stamps keep the first reading).
    const t = clock.now();
    const tolerate = o.timeTolerateS > 0 ? o.timeTolerateS : 59;
    if (Math.floor(t / 1000) - this.#lastDateS === tolerate) await clock.sleep(1000);
    this.#lastDateS = Math.floor(clock.now() / 1000);
    const offset = localOffsetMinutes(t);
    return {
      timezone: zoneHours(offset),
      datetime: formatDateTime(t, offset),
      utctime: formatDateTime(t, 0),
      country,
      city,
      cpu,
      env,
      disk,
      load,
      mem,
      net,
      system,
    };
  }

  #now(): number {
    return this.#clock ? this.#clock.now() : Date.now();
  }

  async #collectCpu(clock: Clock, o: BasereportOptions): Promise<CpuReport> {
    const interval = o.periodMs / o.cpu.statTimes;
    const start = clock.now();
    let best: CpuSample | undefined;
    for (let i = 0; i < o.cpu.statTimes; i++) {
      if (i > 0) await waitTick(clock, start, i, interval);
      const once = this.#cpu.sample();
      if (!best || once.total_usage >= best.total_usage) best = once;
    }
    const sample = best as CpuSample;
    let cpuinfo = readCpuInfo(this.#paths.procRoot, this.#paths.sysRoot);
    if (cpuinfo.length === 0) cpuinfo = [{ cpu: 0, vendorId: '', family: '', model: '', stepping: 0, physicalId: '', coreId: '', cores: 0, modelName: '', mhz: 0, cacheSize: 0, flags: null, microcode: '' }];
    const first = cpuinfo[0] as CpuInfo;
    if (first.mhz === 0 || first.model === '' || first.modelName === '') {
      const dmi = dmiProcessor(this.#paths.sysRoot);
      for (const info of cpuinfo) {
        if (info.mhz === 0) info.mhz = dmi.mhz;
        if (info.model === '') info.model = dmi.model;
        if (info.modelName === '') info.modelName = dmi.model;
      }
    }
    if (!o.cpu.reportFlag) for (const info of cpuinfo) info.flags = [];
    return { cpuinfo, per_usage: sample.per_usage, total_usage: sample.total_usage, per_stat: sample.per_stat, total_stat: sample.total_stat };
  }

  async #collectMem(clock: Clock, o: BasereportOptions): Promise<MemReport> {
    const interval = o.periodMs / o.mem.infoTimes;
    const start = clock.now();
    let best: { meminfo: VirtualMemory; vmstat: SwapMemory | null } | undefined;
    for (let i = 0; i < o.mem.infoTimes; i++) {
      if (i > 0) await waitTick(clock, start, i, interval);
      let meminfo = applyIegMeminfo(readVirtualMemory(this.#paths.procRoot), readText(`${this.#paths.devRoot}/shm/ieg_dockervm_meminfo`));
      if (o.mem.specialSource) meminfo = { ...meminfo, usedPercent: (meminfo.used / meminfo.total) * 100 };
      if (!(meminfo.usedPercent >= 0 && meminfo.usedPercent <= 100)) meminfo.usedPercent = 0;
      if (!best || meminfo.usedPercent >= best.meminfo.usedPercent) best = { meminfo, vmstat: readSwapMemory(this.#paths.procRoot) };
    }
    // KB paged in / out over a one-second window.
    const before = readSwapMemory(this.#paths.procRoot);
    await clock.sleep(SWAP_WINDOW_MS);
    const after = readSwapMemory(this.#paths.procRoot);
    const kb = (v: number): number => Math.floor(v / 1024);
    const chosen = best as { meminfo: VirtualMemory; vmstat: SwapMemory | null };
    return {
      swap_in: Math.max(0, kb(after.sin) - kb(before.sin)),
      swap_out: Math.max(0, kb(after.sout) - kb(before.sout)),
      meminfo: chosen.meminfo,
      vmstat: chosen.vmstat,
    };
  }

  async #collectNet(clock: Clock, o: BasereportOptions): Promise<NetReport> {
    const paths = this.#paths;
    const virtual = o.net.skipVirtualInterface ? (virtualInterfaces(paths.sysRoot) ?? new Set<string>()) : new Set<string>();
    const interval = o.periodMs / o.net.statTimes;
    const start = clock.now();
    const peaks = new Map<string, NetDevStat>();
    for (let i = 0; i < o.net.statTimes; i++) {
      if (i > 0) await waitTick(clock, start, i, interval);
      const now = clock.now();
      const counters = readIoCounters(paths.procRoot).filter((c) => keepInterface(c.name, o.net, virtual));
      const round = devStats(counters, readCarrierCollisions(paths.procRoot));
      this.#netSpeed.update(round, now);
      if (this.#netSpeed.reversals > 0) this.#env.logger?.warn('basereport net: interface counters went backwards', { reversals: this.#netSpeed.reversals });
      keepPeak(peaks, round);
    }
    const addrs = this.#env.interfaceAddrs ?? nodeInterfaceAddrs;
    const iface = readInterfaces(paths.sysRoot, addrs).filter((s) => keepInterface(s.name, o.net, virtual));
    let protocolstat: NetReport['protocolstat'] = null;
    try {
      protocolstat = this.#proto.update(readProtoCounters(paths.procRoot, ['udp', 'tcp']));
    } catch (err) {
      this.#env.logger?.debug('basereport net: protocol counters unreadable', { err });
    }
    return { interface: iface, dev: [...peaks.values()], netstat: countTcpStates(paths.procRoot), protocolstat };
  }

  async #collectDisk(o: BasereportOptions): Promise<DiskReport> {
    const paths = this.#paths;
    const clock = this.#clock;
    const interval = o.periodMs / o.disk.statTimes;
    const start = this.#now();
    let diskstat = new Map<string, DiskStat>();
    for (let i = 0; i < o.disk.statTimes; i++) {
      if (i > 0 && clock) await waitTick(clock, start, i, interval);
      const current = readDiskStats(paths);
      const now = this.#now();
      if (this.#diskLast) deriveDiskRates(this.#diskLast, current, this.#diskLastMs === undefined ? 1 : (now - this.#diskLastMs) / 1000);
      this.#diskLast = current;
      this.#diskLastMs = now;
      diskstat = filterDiskStats(paths, current, o.disk, safePartitions(paths, true));
    }
    const partitions = filterPartitions(readPartitions(paths, o.disk.collectAllDevice), o.disk);
    const partition: Partition[] = [];
    const usage: Usage[] = [];
    for (const p of partitions) {
      let u: Usage;
      try {
        u = await readUsage(paths, p.mountpoint);
      } catch {
        continue;
      }
      if (u.usedPercent < 0 || u.usedPercent > 100) continue;
      usage.push(u);
      partition.push(p);
    }
    const sorted: Record<string, DiskStat> = {};
    for (const name of [...diskstat.keys()].sort()) sorted[name] = diskstat.get(name) as DiskStat;
    return { diskstat: sorted, partition, usage };
  }
}

function safePartitions(paths: HostPaths, all: boolean): Partition[] {
  try {
    return readPartitions(paths, all);
  } catch {
    return [];
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/** The event body: `{type: "basereport", dataid, data}` (keys sorted, as Go marshals the map). */
export function basereportDocument(dataId: number, data: BasereportData): Record<string, unknown> {
  return { data, dataid: dataId, type: 'basereport' };
}
