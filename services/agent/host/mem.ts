/**
 * Memory and swap from /proc/meminfo and /proc/vmstat, in the shapes of gopsutil's
 * `mem.VirtualMemoryStat` (basereport `mem.meminfo`) and `mem.SwapMemoryStat` (`mem.vmstat`), all bytes.
 */
import { join } from 'node:path';
import { fieldsOf, readLines, readText } from './paths.ts';

/** gopsutil `mem.VirtualMemoryStat` (bytes; `usedPercent` 0–100). BSD/macOS-only fields stay 0. */
export interface VirtualMemory {
  total: number;
  available: number;
  used: number;
  usedPercent: number;
  free: number;
  active: number;
  inactive: number;
  wired: number;
  laundry: number;
  buffers: number;
  cached: number;
  writeBack: number;
  dirty: number;
  writeBackTmp: number;
  shared: number;
  slab: number;
  sreclaimable: number;
  sunreclaim: number;
  pageTables: number;
  swapCached: number;
  commitLimit: number;
  committedAS: number;
  highTotal: number;
  highFree: number;
  lowTotal: number;
  lowFree: number;
  swapTotal: number;
  swapFree: number;
  mapped: number;
  vmallocTotal: number;
  vmallocUsed: number;
  vmallocChunk: number;
  hugePagesTotal: number;
  hugePagesFree: number;
  hugePagesRsvd: number;
  hugePagesSurp: number;
  hugePageSize: number;
}

/** gopsutil `mem.SwapMemoryStat`: swap sizes in bytes; the vmstat page counters × 4096. */
export interface SwapMemory {
  total: number;
  used: number;
  free: number;
  usedPercent: number;
  sin: number;
  sout: number;
  pgIn: number;
  pgOut: number;
  pgFault: number;
  pgMajFault: number;
}

/** VirtualMemory's fields in the order gopsutil declares (and marshals) them. */
const VM_KEYS: (keyof VirtualMemory)[] = [
  'total', 'available', 'used', 'usedPercent', 'free', 'active', 'inactive', 'wired', 'laundry', 'buffers', 'cached',
  'writeBack', 'dirty', 'writeBackTmp', 'shared', 'slab', 'sreclaimable', 'sunreclaim', 'pageTables', 'swapCached',
  'commitLimit', 'committedAS', 'highTotal', 'highFree', 'lowTotal', 'lowFree', 'swapTotal', 'swapFree', 'mapped',
  'vmallocTotal', 'vmallocUsed', 'vmallocChunk', 'hugePagesTotal', 'hugePagesFree', 'hugePagesRsvd', 'hugePagesSurp',
  'hugePageSize',
];

/** meminfo keys (kB) → VirtualMemory fields. */
const KB_FIELDS: Record<string, keyof VirtualMemory> = {
  MemTotal: 'total',
  MemFree: 'free',
  MemAvailable: 'available',
  Buffers: 'buffers',
  Cached: 'cached',
  Active: 'active',
  Inactive: 'inactive',
  Writeback: 'writeBack',
  WritebackTmp: 'writeBackTmp',
  Dirty: 'dirty',
  Shmem: 'shared',
  Slab: 'slab',
  SReclaimable: 'sreclaimable',
  SUnreclaim: 'sunreclaim',
  PageTables: 'pageTables',
  SwapCached: 'swapCached',
  CommitLimit: 'commitLimit',
  Committed_AS: 'committedAS',
  HighTotal: 'highTotal',
  HighFree: 'highFree',
  LowTotal: 'lowTotal',
  LowFree: 'lowFree',
  SwapTotal: 'swapTotal',
  SwapFree: 'swapFree',
  Mapped: 'mapped',
  VmallocTotal: 'vmallocTotal',
  VmallocUsed: 'vmallocUsed',
  VmallocChunk: 'vmallocChunk',
  Hugepagesize: 'hugePageSize',
};
/** meminfo keys that are counts, not kB. */
const COUNT_FIELDS: Record<string, keyof VirtualMemory> = {
  HugePages_Total: 'hugePagesTotal',
  HugePages_Free: 'hugePagesFree',
  HugePages_Rsvd: 'hugePagesRsvd',
  HugePages_Surp: 'hugePagesSurp',
};

/** Parses /proc/meminfo into `key → number` (kB values still in kB). */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const parts = line.split(':');
    if (parts.length !== 2) continue;
    const v = Number((parts[1] as string).trim().replace(' kB', ''));
    if (Number.isFinite(v)) out.set((parts[0] as string).trim(), v);
  }
  return out;
}

/** gopsutil mem.VirtualMemory from /proc/meminfo (Cached includes SReclaimable; Used = Total − Free − Buffers − Cached). */
export function readVirtualMemory(procRoot: string): VirtualMemory {
  const text = readText(join(procRoot, 'meminfo'));
  if (text === undefined) throw new Error(`cannot read ${join(procRoot, 'meminfo')}`);
  const table = parseMeminfo(text);
  const vm = Object.fromEntries(VM_KEYS.map((k) => [k, 0])) as unknown as VirtualMemory;
  for (const [key, value] of table) {
    const kb = KB_FIELDS[key];
    if (kb) vm[kb] = value * 1024;
    const count = COUNT_FIELDS[key];
    if (count) vm[count] = value;
  }
  vm.cached += vm.sreclaimable;
  if (!table.has('MemAvailable')) {
    const activeFile = table.get('Active(file)');
    const inactiveFile = table.get('Inactive(file)');
    vm.available =
      activeFile !== undefined && inactiveFile !== undefined && table.has('SReclaimable')
        ? estimateAvailable(procRoot, vm, (activeFile + inactiveFile) * 1024)
        : vm.cached + vm.free;
  }
  vm.used = Math.max(0, vm.total - vm.free - vm.buffers - vm.cached);
  vm.usedPercent = vm.total > 0 ? (vm.used / vm.total) * 100 : 0;
  return vm;
}

/** MemAvailable for kernels before 3.14, as gopsutil estimates it from the zones' low watermarks. */
function estimateAvailable(procRoot: string, vm: VirtualMemory, pageCache: number): number {
  const lines = readLines(join(procRoot, 'zoneinfo'));
  if (!lines) return vm.free + vm.cached;
  let low = 0;
  for (const line of lines) {
    const f = fieldsOf(line);
    if (f[0]?.startsWith('low')) low += Number(f[1]) || 0;
  }
  low *= 4096;
  let avail = vm.free - low;
  avail += pageCache - Math.min(Math.floor(pageCache / 2), low);
  avail += vm.sreclaimable - Math.min(vm.sreclaimable / 2, low);
  return Math.max(0, avail);
}

/**
 * The IEG rich-container override (`/dev/shm/ieg_dockervm_meminfo`: MemTotal/MemFree/MemUsed/MemApp in
 * kB): all four must be present, then total, free, available, used and usedPercent are recomputed.
 */
export function applyIegMeminfo(vm: VirtualMemory, text: string | undefined): VirtualMemory {
  if (text === undefined) return vm;
  const got = new Map<string, number>();
  for (const line of text.split('\n')) {
    const parts = fieldsOf(line);
    if (parts.length !== 2 && parts.length !== 3) continue;
    const v = Number(parts[1]);
    if (!/^\d+$/.test(parts[1] as string)) continue;
    if (['MemTotal:', 'MemFree:', 'MemUsed:', 'MemApp:'].includes(parts[0] as string)) got.set(parts[0] as string, v * 1024);
  }
  if (got.size !== 4) return vm;
  const total = got.get('MemTotal:') as number;
  const free = got.get('MemFree:') as number;
  const available = free + ((got.get('MemUsed:') as number) - (got.get('MemApp:') as number));
  const out = { ...vm };
  Object.assign(out, { total, free, available, used: total - available, usedPercent: ((total - available) / total) * 100 });
  return out;
}

/** gopsutil mem.SwapMemory: sizes from /proc/meminfo (the sysinfo(2) figures), counters from /proc/vmstat. */
export function readSwapMemory(procRoot: string): SwapMemory {
  const meminfo = readText(join(procRoot, 'meminfo'));
  if (meminfo === undefined) throw new Error(`cannot read ${join(procRoot, 'meminfo')}`);
  const table = parseMeminfo(meminfo);
  const total = (table.get('SwapTotal') ?? 0) * 1024;
  const free = (table.get('SwapFree') ?? 0) * 1024;
  const swap: SwapMemory = {
    total,
    used: total - free,
    free,
    usedPercent: total !== 0 ? ((total - free) / total) * 100 : 0,
    sin: 0,
    sout: 0,
    pgIn: 0,
    pgOut: 0,
    pgFault: 0,
    pgMajFault: 0,
  };
  const keys: Record<string, keyof SwapMemory> = {
    pswpin: 'sin',
    pswpout: 'sout',
    pgpgin: 'pgIn',
    pgpgout: 'pgOut',
    pgfault: 'pgFault',
    pgmajfault: 'pgMajFault',
  };
  for (const line of readLines(join(procRoot, 'vmstat')) ?? []) {
    const f = fieldsOf(line);
    const key = keys[f[0] ?? ''];
    if (key && f.length >= 2 && /^\d+$/.test(f[1] as string)) swap[key] = Number(f[1]) * 4 * 1024;
  }
  return swap;
}
