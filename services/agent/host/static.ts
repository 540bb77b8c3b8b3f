/**
 * Host static information (reference §A5.13): CPU count and model, memory, disk capacity, network
 * interfaces and system identity, the report/check schedule and the change detection that decide when it
 * is sent. The discovery service turns `data.net.interface[].addrs` into `cmdb_host` rows.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { readCpuInfo } from './cpu.ts';
import { readBlockDevices, readPartitions, readUsage } from './disk.ts';
import { readVirtualMemory } from './mem.ts';
import { type InterfaceAddrsFn, nodeInterfaceAddrs, readInterfaces, virtualInterfaces } from './net.ts';
import type { HostPaths } from './paths.ts';
import { nodeUname, readHostname, readPlatform, systemType, type Uname } from './system.ts';

/** The static report (the document's `data` without `timestamp`, `apiVer`, `oper`); keys sorted as Go marshals maps. */
export interface StaticReport {
  cpu?: { model: string; total: number };
  disk?: { total: number };
  mem?: { total: number };
  net?: { interface: { addrs: string[]; mac: string; name: string }[] };
  system?: { arch: string; hostname: string; kernelVersion: string; os: string; platVer: string; platform: string; sysType: string };
}

export interface StaticOptions {
  /** Virtual interfaces (under /sys/devices/virtual/net) reported anyway, by exact name. */
  readonly virtualIfaceWhitelist: readonly string[];
  /** Interfaces left out when their name contains any of these. */
  readonly virtualIfaceBlacklist: readonly string[];
}

export interface StaticEnvironment {
  readonly paths: HostPaths;
  readonly uname?: Uname;
  readonly interfaceAddrs?: InterfaceAddrsFn;
  /** Where a part that could not be read is reported (the part is left out of the document). */
  readonly onError?: (part: string, err: unknown) => void;
}

/** Sum of the capacity of mounted real block devices (deduplicated by device), bytes. */
async function diskTotal(paths: HostPaths): Promise<number> {
  const disks = readBlockDevices(paths.procRoot);
  const seen = new Set<string>();
  let total = 0;
  for (const p of readPartitions(paths, true)) {
    if (!disks.has(p.device)) {
      if (!p.device.includes('/dev/mapper')) continue;
      let target: string;
      try {
        target = realpathSync(join(paths.devRoot, p.device.slice('/dev'.length)));
      } catch {
        continue;
      }
      if (target.startsWith(paths.devRoot + '/')) target = `/dev${target.slice(paths.devRoot.length)}`;
      if (!disks.has(target)) continue;
    }
    if (seen.has(p.device)) continue;
    seen.add(p.device);
    try {
      total += (await readUsage(paths, p.mountpoint)).total;
    } catch {
      // an unreadable mount point does not count
    }
  }
  return total;
}

/** Collects the static report; a part that fails is left out and passed to `onError`. */
export async function collectStatic(env: StaticEnvironment, opts: StaticOptions): Promise<StaticReport> {
  const { paths } = env;
  const uname = env.uname ?? nodeUname();
  const report: StaticReport = {};
  const part = async (name: string, f: () => Promise<void> | void): Promise<void> => {
    try {
      await f();
    } catch (err) {
      env.onError?.(name, err);
    }
  };
  await part('cpu', () => {
    const infos = readCpuInfo(paths.procRoot, paths.sysRoot);
    report.cpu = { model: infos.length === 0 ? 'unknown' : infos[0]!.modelName, total: infos.length };
  });
  await part('disk', async () => {
    report.disk = { total: await diskTotal(paths) };
  });
  await part('mem', () => {
    report.mem = { total: readVirtualMemory(paths.procRoot).total };
  });
  await part('net', () => {
    const virtual = virtualInterfaces(paths.sysRoot);
    if (!virtual) throw new Error(`cannot list ${join(paths.sysRoot, 'devices/virtual/net')}`);
    const white = new Set(opts.virtualIfaceWhitelist);
    const list = readInterfaces(paths.sysRoot, env.interfaceAddrs ?? nodeInterfaceAddrs)
      .filter((i) => !virtual.has(i.name) || white.has(i.name))
      .filter((i) => !opts.virtualIfaceBlacklist.some((b) => i.name.includes(b)));
    report.net = { interface: list.map((i) => ({ addrs: (i.addrs ?? []).map((a) => a.addr), mac: i.hardwareaddr, name: i.name })) };
  });
  await part('system', () => {
    const [platform, , platVer] = readPlatform(paths);
    report.system = {
      arch: uname.machine === 'arm' || uname.machine === 'aarch64' ? 'arm' : 'x86',
      hostname: readHostname(paths.procRoot),
      kernelVersion: uname.release,
      os: 'linux',
      platVer,
      platform,
      sysType: systemType(uname.machine),
    };
  });
  return report;
}

/** SHA-1 of the report, for "send only when changed". */
export function staticHash(report: StaticReport): string {
  return createHash('sha1').update(JSON.stringify(report)).digest('hex');
}

/** The event body `{data: {..., apiVer, oper, timestamp}, dataid}` (keys sorted as Go marshals maps). */
export function staticDocument(dataId: number, report: StaticReport, timestampS: number, oper: 'add' | 'update'): Record<string, unknown> {
  const data: Record<string, unknown> = { ...report, apiVer: 'v1.0', oper, timestamp: timestampS };
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(data).sort()) sorted[k] = data[k];
  return { data: sorted, dataid: dataId };
}

/**
 * When static data is sent (the reference's Status): the first report at once, the second after a random
 * pause of 0–3599 s, then every `reportPeriod`; between reports, a check every `checkPeriod` that sends
 * only when the data changed. `oper` is `add` until the random pause has been served. Times are whole
 * seconds, as the reference keeps them.
 */
export class StaticSchedule {
  readonly #checkPeriodS: number;
  readonly #reportPeriodS: number;
  readonly #random: () => number;
  #lastCheckS = 0;
  #lastReportS = 0;
  #firstReport = true;
  #pendingS = 0;

  /** `random` returns the pause in whole seconds, 0–3599 (injectable for tests). */
  constructor(checkPeriodMs: number, reportPeriodMs: number, random: () => number = () => Math.floor(Math.random() * 3600)) {
    this.#checkPeriodS = checkPeriodMs / 1000;
    this.#reportPeriodS = reportPeriodMs / 1000;
    this.#random = random;
  }

  get oper(): 'add' | 'update' {
    return this.#firstReport ? 'add' : 'update';
  }

  shouldReport(nowMs: number): boolean {
    const since = nowMs / 1000 - this.#lastReportS;
    if (this.#firstReport) return this.#pendingS === 0 || since > this.#pendingS;
    return since > this.#reportPeriodS;
  }

  shouldCheck(nowMs: number): boolean {
    return this.#lastCheckS === 0 || nowMs / 1000 - this.#lastCheckS > this.#checkPeriodS;
  }

  reported(timestampS: number): void {
    if (this.#firstReport) {
      if (this.#pendingS === 0) this.#pendingS = this.#random();
      else this.#firstReport = false;
    }
    this.#lastReportS = timestampS;
  }

  checked(timestampS: number): void {
    this.#lastCheckS = timestampS;
  }
}
