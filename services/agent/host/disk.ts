/**
 * Disks for basereport's `disk` section and for exceptionbeat / static: /proc/diskstats counters and
 * their per-second derivatives, the mount table (gopsutil disk.Partitions) and statfs usage (gopsutil
 * disk.Usage), with the reference's disk / partition / mount point / fs type lists.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { goBase } from './goformat.ts';
import { exists, fieldsOf, type HostPaths, onRootfs, readLines, readLink, readText } from './paths.ts';

const SECTOR = 512;

/** basereport `disk.diskstat[<name>]` (the reference's DiskStats: counters, bytes, ms, and derived rates). */
export interface DiskStat {
  readCount: number;
  mergedReadCount: number;
  writeCount: number;
  mergedWriteCount: number;
  readBytes: number;
  writeBytes: number;
  readTime: number;
  writeTime: number;
  iopsInProgress: number;
  ioTime: number;
  weightedIO: number;
  name: string;
  serialNumber: string;
  label: string;
  major: number;
  minor: number;
  readSectors: number;
  writeSectors: number;
  speedIORead: number;
  speedByteRead: number;
  speedIOWrite: number;
  speedByteWrite: number;
  util: number;
  avgrq_sz: number;
  avgqu_sz: number;
  await: number;
  svctm: number;
}

/** gopsutil `disk.PartitionStat`. */
export interface Partition {
  device: string;
  mountpoint: string;
  fstype: string;
  opts: string[];
}

/** gopsutil `disk.UsageStat` (bytes; percents 0–100). */
export interface Usage {
  path: string;
  fstype: string;
  total: number;
  free: number;
  used: number;
  usedPercent: number;
  inodesTotal: number;
  inodesUsed: number;
  inodesFree: number;
  inodesUsedPercent: number;
}

/** A device's serial as gopsutil finds it: udev's ID_SERIAL, else sysfs model_serial of the whole disk. */
function serialNumber(paths: HostPaths, name: string, major: number, minor: number): string {
  if (!exists(join(paths.devRoot, name))) return '';
  const udev = readText(onRootfs(paths, `/run/udev/data/b${major}:${minor}`));
  if (udev !== undefined) {
    for (const line of udev.split('\n')) {
      const kv = line.split('=');
      if (kv.length === 2 && kv[0] === 'E:ID_SERIAL') return kv[1] as string;
    }
  }
  const dev = join(paths.sysRoot, `dev/block/${major}:0/device`);
  const model = readText(join(dev, 'model'));
  const serial = readText(join(dev, 'serial'));
  return model && serial ? `${model}_${serial}` : '';
}

/** /proc/diskstats (devices whose counters are all zero are left out, as gopsutil does). */
export function readDiskStats(paths: HostPaths): Map<string, DiskStat> {
  const file = join(paths.procRoot, 'diskstats');
  const lines = readLines(file);
  if (!lines) throw new Error(`cannot read ${file}`);
  const out = new Map<string, DiskStat>();
  for (const line of lines) {
    const f = fieldsOf(line);
    if (f.length < 14) continue;
    const n = (i: number): number => Number(f[i]);
    const counters = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map(n);
    if (counters.some((v) => !Number.isFinite(v)) || !Number.isFinite(n(0)) || !Number.isFinite(n(1))) throw new Error(`malformed ${file} line: ${line}`);
    if (counters.every((v) => v === 0)) continue;
    const name = f[2] as string;
    const readBytes = n(5) * SECTOR;
    const writeBytes = n(9) * SECTOR;
    out.set(name, {
      readCount: n(3),
      mergedReadCount: n(4),
      writeCount: n(7),
      mergedWriteCount: n(8),
      readBytes,
      writeBytes,
      readTime: n(6),
      writeTime: n(10),
      iopsInProgress: n(11),
      ioTime: n(12),
      weightedIO: n(13),
      name,
      serialNumber: serialNumber(paths, name, n(0), n(1)),
      label: (readText(join(paths.sysRoot, `block/${name}/dm/name`)) ?? '').trim(),
      major: n(0),
      minor: n(1),
      readSectors: readBytes / SECTOR,
      writeSectors: writeBytes / SECTOR,
      speedIORead: 0,
      speedByteRead: 0,
      speedIOWrite: 0,
      speedByteWrite: 0,
      util: 0,
      avgrq_sz: 0,
      avgqu_sz: 0,
      await: 0,
      svctm: 0,
    });
  }
  return out;
}

const diff = (now: number, before: number): number => (before > now ? 0 : now - before);

/**
 * Derives rates from two diskstats readings `intervalS` seconds apart (the reference's deltaCount):
 * IOPS and bytes per second, `util` = Δio_ticks / interval / 1000 (a 0–1 fraction; 0 when the device
 * claims more busy time than wall time), `avgqu_sz`, and per completed I/O `svctm`, `await` (ms) and
 * `avgrq_sz` (sectors). Devices only in `current` keep zero rates.
 */
export function deriveDiskRates(last: ReadonlyMap<string, DiskStat>, current: Map<string, DiskStat>, intervalS: number): void {
  const interval = Math.trunc(intervalS) === 0 ? 1 : intervalS;
  for (const [name, prev] of last) {
    const cur = current.get(name);
    if (!cur) continue;
    const dReads = diff(cur.readCount, prev.readCount);
    const dWrites = diff(cur.writeCount, prev.writeCount);
    cur.speedIORead = dReads / interval;
    cur.speedByteRead = diff(cur.readBytes, prev.readBytes) / interval;
    cur.speedIOWrite = dWrites / interval;
    cur.speedByteWrite = diff(cur.writeBytes, prev.writeBytes) / interval;
    const completed = dReads + dWrites;
    const dIoTime = diff(cur.ioTime, prev.ioTime);
    if (completed === 0) {
      cur.svctm = 0;
      cur.await = 0;
      cur.avgrq_sz = 0;
    } else {
      cur.svctm = dIoTime / completed;
      cur.await = (diff(cur.readTime, prev.readTime) + diff(cur.writeTime, prev.writeTime)) / completed;
      cur.avgrq_sz = (diff(cur.readSectors, prev.readSectors) + diff(cur.writeSectors, prev.writeSectors)) / completed;
    }
    cur.avgqu_sz = diff(cur.weightedIO, prev.weightedIO) / interval / 1000;
    cur.util = dIoTime / 1000 > interval ? 0 : dIoTime / interval / 1000;
  }
}

/** Go's strconv.Unquote of a mount table field (octal escapes such as `\040` for a space). */
function unescapeMount(s: string): string {
  if (!s.includes('\\')) return s;
  let ok = true;
  const out = s.replace(/\\(?:([0-7]{3})|x([0-9a-fA-F]{2})|(.))/g, (_m, oct?: string, hex?: string, ch?: string) => {
    if (oct) return String.fromCharCode(parseInt(oct, 8));
    if (hex) return String.fromCharCode(parseInt(hex, 16));
    const simple: Record<string, string> = { n: '\n', t: '\t', '\\': '\\', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', "'": "'", '"': '"' };
    const v = simple[ch ?? ''];
    if (v === undefined) ok = false;
    return v ?? '';
  });
  return ok ? out : s;
}

/** Filesystems the kernel supports without `nodev` (plus zfs), from /proc/filesystems. */
function physicalFsTypes(procRoot: string): string[] | undefined {
  const lines = readLines(join(procRoot, 'filesystems'));
  if (!lines) return undefined;
  const out: string[] = [];
  for (const line of lines) {
    if (!line.startsWith('nodev')) out.push(line.trim());
    else {
      const t = line.split('\t');
      if (t.length === 2 && t[1] === 'zfs') out.push('zfs');
    }
  }
  return out;
}

/**
 * The mount table as gopsutil's disk.Partitions reads it: /proc/1/mountinfo (falling back to
 * /proc/self), options with `bind` for sub-tree mounts and the `major:minor` appended; `all = false`
 * keeps only physical filesystems. `/dev/mapper/*` links and `/dev/root` are resolved to their devices.
 */
export function readPartitions(paths: HostPaths, all: boolean): Partition[] {
  let lines: string[] | undefined;
  let useMounts = false;
  for (const dir of ['1', 'self']) {
    lines = readLines(join(paths.procRoot, dir, 'mountinfo'));
    if (lines) break;
    lines = readLines(join(paths.procRoot, dir, 'mounts'));
    if (lines) {
      useMounts = true;
      break;
    }
  }
  if (!lines) throw new Error(`cannot read the mount table under ${paths.procRoot}`);
  const fs = physicalFsTypes(paths.procRoot);
  if (!fs && !all) throw new Error(`cannot read ${join(paths.procRoot, 'filesystems')}`);
  const out: Partition[] = [];
  for (const line of lines) {
    let d: Partition;
    if (useMounts) {
      const f = fieldsOf(line);
      if (f.length < 4) continue;
      d = { device: f[0] as string, mountpoint: unescapeMount(f[1] as string), fstype: f[2] as string, opts: fieldsOf(f[3] as string) };
      if (!all && (d.device === 'none' || !(fs ?? []).includes(d.fstype))) continue;
    } else {
      const parts = line.split(' - ');
      if (parts.length !== 2) throw new Error(`found invalid mountinfo line: ${line}`);
      const f = fieldsOf(parts[0] as string);
      const blockId = f[2] as string;
      const opts = (f[5] ?? '').split(',');
      if (f[3] !== undefined && f[3] !== '' && f[3] !== '/') opts.push('bind');
      opts.push(blockId);
      const g = fieldsOf(parts[1] as string);
      d = { device: g[1] ?? '', mountpoint: unescapeMount(f[4] ?? ''), fstype: g[0] ?? '', opts };
      if (!all && (d.device === 'none' || !(fs ?? []).includes(d.fstype))) continue;
      if (d.device.startsWith('/dev/mapper/')) {
        try {
          const real = realpathSync(join(paths.devRoot, d.device.slice('/dev'.length)));
          d.device = real.startsWith(paths.devRoot + '/') ? `/dev${real.slice(paths.devRoot.length)}` : real;
        } catch {
          // an unresolvable link keeps its name
        }
      }
      if (d.device === '/dev/root') {
        const link = readLink(join(paths.sysRoot, 'dev/block', blockId));
        if (link !== undefined) d.device = `/dev/${goBase(link)}`;
      }
    }
    out.push(d);
  }
  return out;
}

/** statfs magic numbers → the names gopsutil reports as `usage[].fstype` ('' when unknown, e.g. overlay). */
const FS_MAGIC: Record<number, string> = {
  0xadf5: 'adfs', 0xadff: 'affs', 0x5346414f: 'afs', 0x09041934: 'anon-inode FS', 0x61756673: 'aufs',
  0x42465331: 'befs', 0x62646576: 'bdevfs', 0x1badface: 'bfs', 0x42494e4d: 'binfmt_misc', 0xcafe4a11: 'bpf',
  0x9123683e: 'btrfs', 0x00c36400: 'ceph', 0x0027e0eb: 'cgroupfs', 0x63677270: 'cgroup2fs', 0xff534d42: 'cifs',
  0x73757245: 'coda', 0x62656570: 'configfs', 0x28cd3d45: 'cramfs', 0x64626720: 'debugfs', 0x1373: 'devfs',
  0x1cd1: 'devpts', 0xf15f: 'ecryptfs', 0xde5e81e4: 'efivarfs', 0x00414a53: 'efs', 0x137d: 'ext',
  0xef53: 'ext2/ext3', 0xef51: 'ext2', 0xf2f52010: 'f2fs', 0x4006: 'fat', 0x19830326: 'fhgfs', 0x65735546: 'fuseblk',
  0x65735543: 'fusectl', 0x0bad1dea: 'futexfs', 0x1161970: 'gfs/gfs2', 0x47504653: 'gpfs', 0x4244: 'hfs',
  0x482b: 'hfsplus', 0xf995e849: 'hpfs', 0x958458f6: 'hugetlbfs', 0x9660: 'isofs', 0x4004: 'isofs', 0x4000: 'isofs',
  0x3153464a: 'jfs', 0x6b414653: 'k-afs', 0x0bd00bd0: 'lustre', 0x137f: 'minix', 0x138f: 'minix (30 char.)',
  0x2468: 'minix v2', 0x2478: 'minix v2 (30 char.)', 0x4d5a: 'minix3', 0x19800202: 'mqueue', 0x4d44: 'msdos',
  0x6969: 'nfs', 0x6e667364: 'nfsd', 0x3434: 'nilfs', 0x6e736673: 'nsfs', 0x5346544e: 'ntfs', 0x7461636f: 'ocfs2',
  0x9fa1: 'openprom', 0xaad7aaea: 'panfs', 0x50495045: 'pipefs', 0x9fa0: 'proc', 0x6165676c: 'pstorefs',
  0x002f: 'qnx4', 0x68191122: 'qnx6', 0x858458f6: 'ramfs', 0x52654973: 'reiserfs', 0x7275: 'romfs',
  0x67596969: 'rpc_pipefs', 0x73636673: 'securityfs', 0xf97cff8c: 'selinux', 0x517b: 'smb', 0x534f434b: 'sockfs',
  0x73717368: 'squashfs', 0x62656572: 'sysfs', 0x012ff7b6: 'sysv2', 0x012ff7b5: 'sysv4', 0x01021994: 'tmpfs',
  0x74726163: 'tracefs', 0x15013346: 'udf', 0x00011954: 'ufs', 0x54190100: 'ufs', 0x9fa2: 'usbdevfs',
  0x01021997: 'v9fs', 0xbacbacbc: 'vmhgfs', 0xa501fcf5: 'vxfs', 0x565a4653: 'vzfs', 0xabba1974: 'xenfs',
  0x58465342: 'xfs', 0x012fd16d: 'xia', 0x2fc12fc1: 'zfs',
};

/** gopsutil disk.Usage of a mount point (statfs through `paths.rootfs`). */
export async function readUsage(paths: HostPaths, mountpoint: string): Promise<Usage> {
  const s = await paths.statfs(onRootfs(paths, mountpoint));
  const total = s.blocks * s.bsize;
  const free = s.bavail * s.bsize;
  const used = (s.blocks - s.bfree) * s.bsize;
  const u: Usage = {
    path: unescapeMount(mountpoint),
    fstype: FS_MAGIC[s.type >>> 0] ?? '',
    total,
    free,
    used,
    usedPercent: used + free === 0 ? 0 : (used / (used + free)) * 100,
    inodesTotal: s.files,
    inodesUsed: 0,
    inodesFree: s.ffree,
    inodesUsedPercent: 0,
  };
  if (u.inodesTotal < u.inodesFree) return u;
  u.inodesUsed = u.inodesTotal - u.inodesFree;
  u.inodesUsedPercent = u.inodesTotal === 0 ? 0 : (u.inodesUsed / u.inodesTotal) * 100;
  return u;
}

/** basereport's disk lists (regex find matches). */
export interface DiskFilter {
  readonly diskWhiteList: readonly RegExp[];
  readonly diskBlackList: readonly RegExp[];
  readonly partitionWhiteList: readonly RegExp[];
  readonly partitionBlackList: readonly RegExp[];
  readonly mountpointWhiteList: readonly RegExp[];
  readonly mountpointBlackList: readonly RegExp[];
  readonly fsTypeWhiteList: readonly RegExp[];
  readonly fsTypeBlackList: readonly RegExp[];
  readonly ioSkipPartition: boolean;
  readonly dropDuplicateDevice: boolean;
}

const inList = (name: string, list: readonly RegExp[]): boolean => list.some((re) => re.test(name));
const passes = (name: string, white: readonly RegExp[], black: readonly RegExp[]): boolean =>
  white.length > 0 ? inList(name, white) : black.length > 0 ? !inList(name, black) : true;

const PARTITION_NAME = /^.*?([A-Za-z]+)[0-9]+$/;

/** The disk a partition belongs to by name (`sda1` → `sda`), '' when the name does not look like one. */
export function diskNameOf(name: string): string {
  return PARTITION_NAME.exec(name)?.[1] ?? '';
}

const devName = (device: string): string => /^\/dev\/(.+)$/.exec(device)?.[1] ?? device;

/** Whether a diskstats entry is a partition: /sys/dev/block/<maj:min>/partition exists, or the name looks like one. */
function isPartition(paths: HostPaths, stat: DiskStat): boolean {
  return exists(join(paths.sysRoot, 'dev/block', `${stat.major}:${stat.minor}`, 'partition')) || PARTITION_NAME.test(stat.name);
}

/** The reference's FilterDiskIoStats: disk lists on disks; partition lists and the fs-type list on partitions. */
export function filterDiskStats(paths: HostPaths, stats: Map<string, DiskStat>, filter: DiskFilter, mounts: readonly Partition[]): Map<string, DiskStat> {
  const out = new Map<string, DiskStat>();
  for (const [name, stat] of stats) {
    if (!isPartition(paths, stat)) {
      if (!passes(name, filter.diskWhiteList, filter.diskBlackList)) continue;
    } else {
      if (filter.ioSkipPartition) continue;
      if (!passes(diskNameOf(name), filter.diskWhiteList, filter.diskBlackList)) continue;
      if (!passes(name, filter.partitionWhiteList, filter.partitionBlackList)) continue;
      if (mounts.some((m) => devName(m.device) === name && !passes(m.fstype, filter.fsTypeWhiteList, filter.fsTypeBlackList))) continue;
    }
    out.set(name, stat);
  }
  return out;
}

/** The reference's FilterPartitions: disk, partition, mount point and fs-type lists, then optional device de-duplication. */
export function filterPartitions(partitions: readonly Partition[], filter: DiskFilter): Partition[] {
  const seen = new Set<string>();
  const out: Partition[] = [];
  for (const p0 of partitions) {
    const p = { ...p0, mountpoint: p0.mountpoint.replaceAll('\\040', ' ') };
    const disk = diskNameOf(p.device);
    if (disk !== '' && !passes(disk, filter.diskWhiteList, filter.diskBlackList)) continue;
    if (!passes(devName(p.device), filter.partitionWhiteList, filter.partitionBlackList)) continue;
    if (!passes(p.mountpoint, filter.mountpointWhiteList, filter.mountpointBlackList)) continue;
    if (!passes(p.fstype, filter.fsTypeWhiteList, filter.fsTypeBlackList)) continue;
    if (filter.dropDuplicateDevice) {
      if (seen.has(p.device)) continue;
      seen.add(p.device);
    }
    out.push(p);
  }
  return out;
}

/** Block devices of /proc/partitions as `/dev/<name>` (static's set of real disks). */
export function readBlockDevices(procRoot: string): Set<string> {
  const out = new Set<string>();
  let text: string;
  try {
    text = readFileSync(join(procRoot, 'partitions'), 'latin1');
  } catch {
    return out;
  }
  text.split('\n').forEach((line, i) => {
    const f = fieldsOf(line);
    if (i > 0 && f.length === 4) out.add(`/dev/${f[3]}`);
  });
  return out;
}
