/**
 * Disk alarms of exceptionbeat: space (type 6) and read-only mounts (type 3), both over the physical
 * filesystems of the mount table (gopsutil disk.Partitions(false)).
 */
import { type Partition, readPartitions, readUsage } from '../disk.ts';
import type { HostPaths } from '../paths.ts';
import { type AlarmHost, EXCEPTION_TYPE, type Extra, extraOf } from './event.ts';

const GIB = 1024 * 1024 * 1024;

/** Mounts whose use is at least `usedMaxPercent` % and whose free space is under `freeMinGiB` GiB (sizes in KiB). */
export async function checkDiskSpace(paths: HostPaths, host: AlarmHost, usedMaxPercent: number, freeMinGiB: number): Promise<Extra[]> {
  const out: Extra[] = [];
  for (const p of readPartitions(paths, false)) {
    let u;
    try {
      u = await readUsage(paths, p.mountpoint);
    } catch {
      continue;
    }
    const rounded = Math.round(u.usedPercent);
    if (u.usedPercent >= usedMaxPercent && u.free < freeMinGiB * GIB) {
      out.push(
        extraOf(host, EXCEPTION_TYPE.diskSpace, {
          disk: u.path,
          file_system: p.device,
          fstype: p.fstype,
          avail: Math.floor(u.free / 1024),
          size: Math.floor(u.total / 1024),
          used: Math.floor(u.used / 1024),
          free: 100 - rounded,
          used_percent: rounded,
        }),
      );
    }
  }
  return out;
}

/** The persisted part of the read-only check (the reference's libgse KV store). */
export interface RoState {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

/** State key of a mount: device, fs type and mount point (a change of any of them is a different mount). */
export const roStateKey = (p: Partition): string => `exceptionbeat_diskro:${p.device}-${p.fstype}-${p.mountpoint}`;

const isReadOnly = (p: Partition): boolean => p.opts.includes('ro');
const matches = (mountpoint: string, rules: readonly RegExp[]): boolean => rules.some((re) => re.test(mountpoint));

/**
 * Read-only mounts to report (one extra each): a mount that is read-only and was seen writable before
 * (its writable state is kept in `state` and never removed, so it is reported on every check while it
 * stays read-only), or read-only and on the white list; the black list silences a mount entirely.
 */
export function checkDiskReadOnly(
  paths: HostPaths,
  host: AlarmHost,
  state: RoState,
  whiteList: readonly RegExp[],
  blackList: readonly RegExp[],
): Extra[] {
  const out: Extra[] = [];
  for (const p of readPartitions(paths, false)) {
    let report = isReadOnly(p) && matches(p.mountpoint, whiteList);
    if (matches(p.mountpoint, blackList)) continue;
    if (isReadOnly(p) && state.get(roStateKey(p)) !== undefined) report = true;
    if (report) out.push(extraOf(host, EXCEPTION_TYPE.diskReadOnly, { ro: [{ fs: p.device, position: p.mountpoint, type: p.fstype }] }));
    if (!isReadOnly(p)) {
      state.set(roStateKey(p), JSON.stringify({ device: p.device, mount_point: p.mountpoint, file_system: p.fstype, options: p.opts }));
    }
  }
  return out;
}
