import test from 'ava';
import { BasereportCollector, type BasereportOptions, WARMUP_PAUSE_MS } from '../../../services/agent/host/basereport.ts';
import { hostPaths } from '../../../services/agent/host/paths.ts';
import { collectStatic, StaticSchedule, staticDocument, staticHash } from '../../../services/agent/host/static.ts';
import { fixtureHost, procStat, statfsOf, VirtualClock } from './helpers.ts';

const none: RegExp[] = [];
function options(over: Partial<BasereportOptions> = {}): BasereportOptions {
  return {
    periodMs: 60_000,
    cpu: { statTimes: 4, reportFlag: false },
    mem: { infoTimes: 1, specialSource: false },
    net: { statTimes: 4, revertProtectNumber: 100, skipVirtualInterface: false, whiteList: none, blackList: none, forceReportList: none },
    disk: { statTimes: 1, collectAllDevice: true, diskWhiteList: none, diskBlackList: none, partitionWhiteList: none, partitionBlackList: none, mountpointWhiteList: none, mountpointBlackList: none, fsTypeWhiteList: [/ext/, /xfs/], fsTypeBlackList: none, ioSkipPartition: false, dropDuplicateDevice: false },
    reportCrontab: false,
    reportHosts: false,
    reportRoute: false,
    timeTolerateS: 59,
    ...over,
  };
}

const addrs = (): Record<string, string[]> => ({ lo: ['127.0.0.1/8'], eth0: ['10.0.0.5/24', 'fe80::5054:ff:fe12:3456/64'], docker0: ['172.17.0.1/16'], bond0: ['10.1.0.5/24'] });

test('basereport collector: warm-up, then 4 cpu samples 15 s apart keeping the busiest (a later equal peak wins), net peaks, background parts from the previous run', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  h.statfs.set('/', statfsOf(0xef53, 1_000_000, 400_000, 350_000));
  h.statfs.set('/data', statfsOf(0x58465342, 2_000_000, 1_000_000, 1_000_000));
  const collector = new BasereportCollector(options(), { paths: h.paths, uname: { release: '5.15.0-91-generic', machine: 'x86_64' }, interfaceAddrs: addrs });
  const clock = new VirtualClock();
  t.is(await clock.drive(collector.collect(clock)), undefined, 'warm-up');
  t.true(clock.ms - Date.UTC(2024, 0, 2, 3, 4, 0) >= WARMUP_PAUSE_MS);
  // cumulative ticks per 15 s bucket: busy deltas 10 %, 80 % (over 10 s), 30 %, 80 % (over 20 s)
  const start = clock.ms;
  const steps: [number, number][] = [
    [100, 900],
    [800, 200],
    [300, 700],
    [1600, 400],
  ];
  const cumulative = (k: number): [number, number] => {
    let [busy, idle] = [1000, 8000];
    for (const [db, di] of steps.slice(0, k + 1)) [busy, idle] = [busy + db, idle + di];
    return [busy, idle];
  };
  clock.onTick = (ms) => {
    const k = Math.min(3, Math.floor((ms - start) / 15_000));
    const [busy, idle] = cumulative(k);
    h.write('proc/stat', procStat([busy, 0, 0, idle, 0, 0, 0, 0, 0, 0], [[busy / 2, 0, 0, idle / 2, 0, 0, 0, 0, 0, 0], [busy / 2, 0, 0, idle / 2, 0, 0, 0, 0, 0, 0]]));
    const extra = [0, 150_000, 300_000, 900_000][k] as number;
    h.write('proc/net/dev', `Inter-|\n face |\n  eth0: ${50_000_000 + extra} ${40_000 + extra / 100} 0 0 0 0 0 0 ${20_000_000 + extra} ${30_000 + extra / 100} 0 0 0 0 0 0\n`);
  };
  const [busy0, idle0] = cumulative(0);
  h.write('proc/stat', procStat([busy0, 0, 0, idle0, 0, 0, 0, 0, 0, 0], [[busy0 / 2, 0, 0, idle0 / 2, 0, 0, 0, 0, 0, 0], [busy0 / 2, 0, 0, idle0 / 2, 0, 0, 0, 0, 0, 0]]));
  const data = await clock.drive(collector.collect(clock));
  t.truthy(data);
  if (!data) return;
  t.is(data.cpu?.total_usage, 80);
  t.is(data.cpu?.total_stat.user, 16, 'the later of the two 80 % samples');
  t.deepEqual(data.cpu?.per_usage, [80, 80]);
  t.deepEqual(data.cpu?.cpuinfo[0]?.flags, [], 'flags emptied without report_flag');
  const eth0 = data.net?.dev.find((d) => d.name === 'eth0');
  t.is(eth0?.speedRecv, 40_000, 'the round with 600 000 bytes over 15 s');
  t.is(eth0?.speedSent, 40_000);
  t.deepEqual(
    data.net?.interface.map((i) => i.name),
    ['lo', 'eth0', 'docker0', 'bond0', 'veth1a2b'],
  );
  t.like(data.net?.netstat, { listen: 2, established: 1 });
  t.like(data.mem?.meminfo, { total: 16_000_000 * 1024 });
  t.deepEqual([data.mem?.swap_in, data.mem?.swap_out], [0, 0]);
  t.deepEqual(data.load, { load_avg: { load1: 1.5, load5: 0.8, load15: 0.4 }, per_cpu_load: 0.75 });
  t.deepEqual([data.country, data.city], ['Asia', 'Shanghai']);
  // disk: the warm-up's result (collect_all_device off then, so physical filesystems only)
  t.deepEqual(
    data.disk?.partition.map((p) => p.mountpoint),
    ['/', '/data'],
  );
  t.deepEqual(Object.keys(data.disk?.diskstat ?? {}), ['dm-0', 'sda', 'sda1']);
  t.like(data.disk?.usage[0], { path: '/', fstype: 'ext2/ext3', total: 4_096_000_000 });
  t.like(data.system?.info, { hostname: 'fixture-host', procs: 6, procsZombie: 1, platform: 'ubuntu', systemtype: '64-bit', kernelArch: 'x86_64' });
  t.like(data.env, { allocated_files: 3264, login_user: 2, crontab: [] });
});

test('basereport collector: a report exactly time_tolerate seconds after the previous one waits a second', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const fast = options({ periodMs: 60_000, cpu: { statTimes: 1, reportFlag: true }, net: { ...options().net, statTimes: 1 } });
  const collector = new BasereportCollector(fast, { paths: h.paths, interfaceAddrs: addrs });
  const clock = new VirtualClock(Date.UTC(2024, 0, 2, 3, 4, 0));
  await clock.drive(collector.collect(clock));
  const first = await clock.drive(collector.collect(clock));
  t.deepEqual(first?.cpu?.cpuinfo[0]?.flags, ['fpu', 'vme', 'de', 'pse', 'sse', 'sse2'], 'report_flag keeps the flags');
  const firstEnd = clock.ms;
  // the next collection takes 1 s (swap window): start it so that it ends 59 s after the previous stamp
  clock.ms = firstEnd + 58_000;
  const second = await clock.drive(collector.collect(clock));
  t.is(clock.ms - firstEnd, 60_000, 'waited the extra second');
  t.is(second?.utctime, new Date(firstEnd + 59_000).toISOString().slice(0, 19).replace('T', ' '), 'the stamp keeps the first reading');
});

test('static collection: cpu, memory, disk capacity of real block devices (mapper resolved, devices once), interfaces without virtual ones unless white-listed', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  h.statfs.set('/', statfsOf(0xef53, 1_000_000, 400_000, 350_000));
  h.statfs.set('/data', statfsOf(0x58465342, 2_000_000, 1_000_000, 1_000_000));
  const errors: string[] = [];
  const env = { paths: h.paths, uname: { release: '5.15.0-91-generic', machine: 'aarch64' }, interfaceAddrs: addrs, onError: (part: string) => void errors.push(part) };
  const report = await collectStatic(env, { virtualIfaceWhitelist: ['bond0'], virtualIfaceBlacklist: [] });
  t.deepEqual(report, {
    cpu: { model: 'Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz', total: 2 },
    disk: { total: 4_096_000_000 + 8_192_000_000 },
    mem: { total: 16_000_000 * 1024 },
    net: {
      interface: [
        { addrs: ['10.0.0.5/24', 'fe80::5054:ff:fe12:3456/64'], mac: '52:54:00:12:34:56', name: 'eth0' },
        { addrs: ['10.1.0.5/24'], mac: '52:54:00:ab:cd:ef', name: 'bond0' },
      ],
    },
    system: { arch: 'arm', hostname: 'fixture-host', kernelVersion: '5.15.0-91-generic', os: 'linux', platVer: '22.04', platform: 'ubuntu', sysType: 'arm-64bit' },
  });
  t.deepEqual(errors, []);
  const filtered = await collectStatic(env, { virtualIfaceWhitelist: ['bond0'], virtualIfaceBlacklist: ['bond'] });
  t.deepEqual(
    filtered.net?.interface.map((i) => i.name),
    ['eth0'],
  );
  t.not(staticHash(report), staticHash(filtered));
  t.is(staticHash(report), staticHash(JSON.parse(JSON.stringify(report)) as typeof report));
  t.deepEqual(Object.keys(staticDocument(1100010, report, 1700000000, 'add')), ['data', 'dataid']);
});

test('static schedule: first at once, second after the random pause, then every report period; checks every check period', (t) => {
  const s = new StaticSchedule(60_000, 6 * 3_600_000, () => 1200);
  const at = (sec: number): number => sec * 1000;
  t.true(s.shouldReport(at(1000)));
  t.is(s.oper, 'add');
  s.reported(1000);
  t.false(s.shouldReport(at(2000)));
  t.true(s.shouldCheck(at(2000)));
  s.checked(2000);
  t.false(s.shouldCheck(at(2060)));
  t.true(s.shouldCheck(at(2061)));
  t.true(s.shouldReport(at(2201)));
  t.is(s.oper, 'add');
  s.reported(2201);
  t.is(s.oper, 'update');
  t.false(s.shouldReport(at(2201 + 6 * 3600)));
  t.true(s.shouldReport(at(2202 + 6 * 3600)));
});

test('real machine: one basereport collection with real sampling finishes with every section', async (t) => {
  const none2: RegExp[] = [];
  const collector = new BasereportCollector(
    options({ periodMs: 400, cpu: { statTimes: 2, reportFlag: false }, net: { statTimes: 2, revertProtectNumber: 100, skipVirtualInterface: true, whiteList: none2, blackList: none2, forceReportList: none2 } }),
    { paths: hostPaths() },
  );
  const real = { now: () => Date.now(), sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 200))) };
  t.is(await collector.collect(real), undefined);
  for (let i = 0; i < 100 && collector.busy; i++) await new Promise((r) => setTimeout(r, 20));
  const data = await collector.collect(real);
  t.truthy(data?.cpu && data.mem && data.net && data.load && data.disk && data.system && data.env);
  t.true((data?.cpu?.total_usage ?? -1) >= 0 && (data?.cpu?.total_usage ?? 101) <= 100);
  t.true((data?.mem?.meminfo.usedPercent ?? -1) > 0);
  t.true((data?.system?.info.procs ?? 0) > 1);
  t.regex(data?.datetime ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  t.true(data?.disk?.usage.every((u) => u.usedPercent >= 0 && u.usedPercent <= 100));
});
