import test from 'ava';
import { busyPercent, CpuSampler, readCpuInfo, readCpuTimes, timesDelta } from '../../../services/agent/host/cpu.ts';
import { applyIegMeminfo, readSwapMemory, readVirtualMemory } from '../../../services/agent/host/mem.ts';
import { hostPaths } from '../../../services/agent/host/paths.ts';
import { fixtureHost, procStat } from './helpers.ts';

test('/proc/stat lines become gopsutil TimesStat in seconds, total named cpu-total', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const { total, perCpu } = readCpuTimes(h.paths.procRoot);
  t.deepEqual(total, { cpu: 'cpu-total', user: 10, system: 5, idle: 80, nice: 0.5, iowait: 1, irq: 0.1, softirq: 0.2, steal: 0.3, guest: 2, guestNice: 0 });
  t.deepEqual(
    perCpu.map((c) => c.cpu),
    ['cpu0', 'cpu1'],
  );
  t.is(perCpu[0]?.user, 6);
  t.is(perCpu[1]?.steal, 0.15);
});

test('the sampler reports deltas and busy % against the previous reading; guest time is not counted twice', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const sampler = new CpuSampler(h.paths.procRoot);
  h.write('proc/stat', procStat([1100, 50, 600, 8300, 100, 10, 20, 30, 250, 0], [[700, 25, 250, 4100, 50, 5, 10, 15, 100, 0], [400, 25, 250, 4000, 50, 5, 10, 15, 100, 0]]));
  const s = sampler.sample();
  t.deepEqual(s.total_stat, { cpu: 'cpu-total', user: 1, system: 1, idle: 3, nice: 0, iowait: 0, irq: 0, softirq: 0, steal: 0, guest: 0.5, guestNice: 0 });
  // busy = user+system (2 s) over user+system+idle (5 s); guest is inside user on Linux and left out of the total
  t.is(s.total_usage, 40);
  t.deepEqual(s.per_usage, [50, 0]);
  t.is(s.per_stat[0]?.idle, 1);
  t.is(s.per_stat[1]?.user, 0);
  // nothing changed: the next sample is all zeros, 0 %
  const again = sampler.sample();
  t.is(again.total_usage, 0);
  t.is(again.total_stat.user, 0);
});

test('busy percentage edge cases follow gopsutil: no busy growth is 0, busy growth without total growth is 100', (t) => {
  const base = { cpu: 'cpu0', user: 10, system: 5, idle: 80, nice: 0, iowait: 1, irq: 0, softirq: 0, steal: 0, guest: 0, guestNice: 0 };
  t.is(busyPercent(base, base), 0);
  t.is(busyPercent(base, { ...base, user: 11, idle: 79 }), 100);
  t.is(busyPercent(base, { ...base, user: 12, idle: 82 }), 50);
  t.deepEqual(timesDelta(base, { ...base, iowait: 3 }).iowait, 2);
});

test('a changed core count restarts the deltas instead of failing', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const sampler = new CpuSampler(h.paths.procRoot);
  h.write('proc/stat', procStat([1100, 50, 600, 8300, 100, 10, 20, 30, 250, 0], [[700, 25, 250, 4100, 50, 5, 10, 15, 100, 0]]));
  const s = sampler.sample();
  t.is(s.per_stat.length, 1);
  t.is(s.total_usage, 0);
});

test('/proc/cpuinfo becomes gopsutil InfoStat per processor; cpuinfo_max_freq overrides MHz', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const info = readCpuInfo(h.paths.procRoot, h.paths.sysRoot);
  t.is(info.length, 2);
  t.deepEqual(info[0], {
    cpu: 0,
    vendorId: 'GenuineIntel',
    family: '6',
    model: '85',
    stepping: 4,
    physicalId: '0',
    coreId: '0',
    cores: 1,
    modelName: 'Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz',
    mhz: 2394.374,
    cacheSize: 28160,
    flags: ['fpu', 'vme', 'de', 'pse', 'sse', 'sse2'],
    microcode: '0x2006a08',
  });
  t.is(info[1]?.mhz, 3700);
  t.is(info[1]?.coreId, '1');
});

test('/proc/meminfo becomes VirtualMemoryStat in bytes (Cached includes SReclaimable, used excludes buffers/cache)', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const vm = readVirtualMemory(h.paths.procRoot);
  t.is(vm.total, 16_000_000 * 1024);
  t.is(vm.free, 4_000_000 * 1024);
  t.is(vm.available, 9_000_000 * 1024);
  t.is(vm.buffers, 500_000 * 1024);
  t.is(vm.cached, 3_250_000 * 1024);
  t.is(vm.used, (16_000_000 - 4_000_000 - 500_000 - 3_250_000) * 1024);
  t.is(vm.usedPercent, 51.5625);
  t.is(vm.shared, 50_000 * 1024);
  t.is(vm.sreclaimable, 250_000 * 1024);
  t.is(vm.commitLimit, 10_000_000 * 1024);
  t.is(vm.committedAS, 7_000_000 * 1024);
  t.is(vm.hugePagesTotal, 2, 'HugePages_* are counts, not kB');
  t.is(vm.hugePageSize, 2048 * 1024);
  t.is(vm.vmallocTotal, 34_359_738_367 * 1024);
  t.is(vm.wired, 0);
  t.deepEqual(Object.keys(vm).slice(0, 11), ['total', 'available', 'used', 'usedPercent', 'free', 'active', 'inactive', 'wired', 'laundry', 'buffers', 'cached'], 'gopsutil field order');
});

test('without MemAvailable (kernels < 3.14) available is estimated from zone watermarks or cached + free', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  h.write('proc/meminfo', 'MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n');
  t.is(readVirtualMemory(h.paths.procRoot).available, 300 * 1024);
});

test('swap sizes in bytes and vmstat page counters × 4 KiB', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  t.deepEqual(readSwapMemory(h.paths.procRoot), {
    total: 2_000_000 * 1024,
    used: 500_000 * 1024,
    free: 1_500_000 * 1024,
    usedPercent: 25,
    sin: 10 * 4096,
    sout: 20 * 4096,
    pgIn: 2000 * 4096,
    pgOut: 3000 * 4096,
    pgFault: 500_000 * 4096,
    pgMajFault: 40 * 4096,
  });
});

test('the IEG container meminfo overrides total/free/available/used only when all four lines parse', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const vm = readVirtualMemory(h.paths.procRoot);
  const over = applyIegMeminfo(vm, 'MemTotal: 62914560 kB\nMemFree: 3803636 kB\nMemUsed: 59110924 kB\nMemApp: 33181796 kB\n');
  t.is(over.total, 62914560 * 1024);
  t.is(over.available, (3803636 + 59110924 - 33181796) * 1024);
  t.is(over.used, over.total - over.available);
  t.is(over.buffers, vm.buffers);
  t.is(applyIegMeminfo(vm, 'MemTotal: 1 kB\nMemFree: 2 kB\n'), vm);
});

test('real machine: /proc/stat, cpuinfo and meminfo read with sane values', (t) => {
  const paths = hostPaths();
  const { total, perCpu } = readCpuTimes(paths.procRoot);
  t.true(perCpu.length >= 1);
  t.true(total.idle > 0);
  const info = readCpuInfo(paths.procRoot, paths.sysRoot);
  t.is(info.length, perCpu.length);
  const vm = readVirtualMemory(paths.procRoot);
  t.true(vm.total > 64 * 1024 * 1024);
  t.true(vm.usedPercent > 0 && vm.usedPercent < 100);
  t.true(vm.available <= vm.total);
  const sampler = new CpuSampler(paths.procRoot);
  const s = sampler.sample();
  t.true(s.total_usage >= 0 && s.total_usage <= 100);
  t.is(s.per_usage.length, perCpu.length);
});
