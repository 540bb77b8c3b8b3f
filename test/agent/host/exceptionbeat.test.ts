import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreAggregator, CoreDirWatcher, CoreFileParser, corefileExtra, readCorePattern, readCoreUsesPid, splitCorePattern } from '../../../services/agent/host/exception/corefile.ts';
import { checkDiskReadOnly, checkDiskSpace, roStateKey } from '../../../services/agent/host/exception/disk.ts';
import { ExceptionMessages, extraOf } from '../../../services/agent/host/exception/event.ts';
import { KmsgReader, OomAggregator, oomDisabledReason, OomParser, parseKmsgRecord } from '../../../services/agent/host/exception/oom.ts';
import { ExceptionbeatRunner, type ExceptionbeatOptions } from '../../../services/agent/host/exception/runner.ts';
import { formatDateTime } from '../../../services/agent/host/goformat.ts';
import { hostPaths } from '../../../services/agent/host/paths.ts';
import { silentLogger, type Logger } from '../../../services/common/log.ts';
import { FakeClock, FIXTURES, fixtureHost, statfsOf } from './helpers.ts';

const host = { bizId: 2, cloudId: 0, ip: '10.0.0.5' };

test('alarm messages: one per extra, the GSE basic-alarm shape, raw id per bulk, event_time moved into the envelope', (t) => {
  const m = new ExceptionMessages();
  const now = Date.UTC(2024, 0, 2, 3, 4, 5);
  const [first] = m.bulk(1000, '10.0.0.5', [extraOf(host, 6, { disk: '/' })], now);
  t.deepEqual(first, {
    dataid: 1000,
    isdst: 0,
    server: '10.0.0.5',
    time: formatDateTime(now, -new Date(now).getTimezoneOffset()),
    timezone: Math.trunc(-new Date(now).getTimezoneOffset() / 60) + 0,
    utctime: formatDateTime(now, -new Date(now).getTimezoneOffset()),
    utctime2: '2024-01-02 03:04:05',
    value: [{ event_desc: '', event_raw_id: 0, event_source_system: '', event_time: formatDateTime(now, -new Date(now).getTimezoneOffset()), event_title: '', event_type: 'gse_basic_alarm_type', extra: { bizid: 2, cloudid: 0, disk: '/', host: '10.0.0.5', type: 6 } }],
  });
  const two = m.bulk(1000, '10.0.0.5', [extraOf(host, 7, { event_time: '1700000000' }), extraOf(host, 7, {})], now);
  t.is(two.length, 2);
  t.deepEqual(two.map((x) => (x['value'] as { event_raw_id: number }[])[0]?.event_raw_id), [1, 1]);
  t.is(two[0]?.['utctime2'], '2023-11-14 22:13:20');
  t.false('event_time' in ((two[0]?.['value'] as { extra: Record<string, unknown> }[])[0]?.extra ?? {}));
  t.is(two[1]?.['utctime2'], '2023-11-14 22:13:20', 'quirk kept: the UTC time of an earlier item stays for the rest of the bulk');
});

test('disk space (type 6): physical mounts at or over the percent limit with less free space than the floor, sizes in KiB', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  h.statfs.set('/', statfsOf(0xef53, 1_000_000, 40_000, 30_000));
  h.statfs.set('/data', statfsOf(0x58465342, 10_000_000, 4_000_000, 4_000_000));
  const extras = await checkDiskSpace(h.paths, host, 95, 10);
  t.deepEqual(extras, [
    {
      avail: (30_000 * 4096) / 1024,
      bizid: 2,
      cloudid: 0,
      disk: '/',
      file_system: '/dev/sda1',
      free: 3,
      fstype: 'ext4',
      host: '10.0.0.5',
      size: (1_000_000 * 4096) / 1024,
      type: 6,
      used: (960_000 * 4096) / 1024,
      used_percent: 97,
    },
  ]);
  t.deepEqual(await checkDiskSpace(h.paths, host, 95, 0), [], 'enough free space: no alarm whatever the percent');
  t.is((await checkDiskSpace(h.paths, host, 50, 10)).length, 1, '/data at 60 % has more than 10 GiB free');
});

test('disk read-only (type 3): a writable mount seen before and now read-only is reported every check; white list reports, black list silences', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const kv = new Map<string, string>();
  const state = { get: (k: string) => kv.get(k), set: (k: string, v: string) => void kv.set(k, v) };
  t.deepEqual(checkDiskReadOnly(h.paths, host, state, [], []), [], 'nothing seen writable before');
  t.true(kv.has(roStateKey({ device: '/dev/dm-0', fstype: 'xfs', mountpoint: '/data', opts: [] })));
  t.false(kv.has(roStateKey({ device: '/dev/dm-0', fstype: 'xfs', mountpoint: '/mnt/bind', opts: [] })), 'read-only mounts are not remembered');
  const mountinfo = readFileSync(join(h.paths.procRoot, '1/mountinfo'), 'utf8');
  h.write('proc/1/mountinfo', mountinfo.replace('/ /data rw,noatime', '/ /data ro,noatime'));
  const ro = checkDiskReadOnly(h.paths, host, state, [], []);
  t.deepEqual(ro, [{ bizid: 2, cloudid: 0, host: '10.0.0.5', ro: [{ fs: '/dev/dm-0', position: '/data', type: 'xfs' }], type: 3 }]);
  t.is(checkDiskReadOnly(h.paths, host, state, [], []).length, 1, 'still read-only: reported again');
  t.deepEqual(checkDiskReadOnly(h.paths, host, state, [], [/data/]), [], 'black-listed');
  t.deepEqual(
    checkDiskReadOnly(h.paths, host, state, [/^\/mnt/], []).map((e) => (e['ro'] as { position: string }[])[0]?.position),
    ['/data', '/mnt/bind', '/mnt/my disk'],
  );
});

test('core pattern: directory and name pattern; pipes and relative names have no directory; core_uses_pid', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  t.deepEqual(splitCorePattern(readCorePattern(h.paths.procRoot, '') ?? ''), { dir: '/data/corefile', pattern: 'core_%e_%s_%t' });
  t.deepEqual(splitCorePattern('/cores/core.%E.%p'), { dir: '/cores', pattern: 'core.%E.%p' });
  t.is(splitCorePattern('|/usr/share/apport/apport %p %s %c'), undefined);
  t.is(splitCorePattern('core'), undefined);
  t.is(readCorePattern(h.paths.procRoot, '/tmp/x/core-%e'), '/tmp/x/core-%e');
  t.false(readCoreUsesPid(h.paths.procRoot));
});

test('core file names parse into executable, executable path, signal name and time; ambiguous parts are left out', (t) => {
  const p = new CoreFileParser('core_%e_%s_%t', false);
  t.deepEqual(p.parse('/data/corefile/core_nginx_11_1700000000'), { ok: true, dimensions: { executable: 'nginx', signal: 'SIGSEGV', event_time: '1700000000' } });
  t.deepEqual(p.parse('/data/corefile/something-else'), { ok: false, dimensions: {} });
  t.deepEqual(new CoreFileParser('core.%E.%p.%s', false).parse('/c/core.!usr!sbin!nginx.123.6'), { ok: true, dimensions: { executable_path: '/usr/sbin/nginx', signal: 'SIGABRT', executable: 'nginx' } });
  t.deepEqual(new CoreFileParser('core_%e_%h', false).parse('/c/core_my_app_host'), { ok: true, dimensions: {} }, 'my_app vs my: ambiguous, dropped');
  t.deepEqual(new CoreFileParser('core-%e', true).parse('/c/core-redis.4242'), { ok: true, dimensions: { executable: 'redis' } }, 'core_uses_pid strips .<pid>');
  t.false(new CoreFileParser('core-%e', true).parse('/c/core-redis').ok);
  t.deepEqual(new CoreFileParser('%e%p', false).parse('/c/anything'), { ok: true, dimensions: {} }, 'no delimiter between specifiers: every file counts');
  const re = new CoreFileParser('core_%e_%s_%t', false, /^core_/);
  t.deepEqual(re.parse('/c/core_x'), { ok: true, dimensions: {} }, 'with corefile_match_regex the base name decides');
  t.false(re.parse('/c/dump').ok);
  t.like(corefileExtra(host, '/c/core_x', { executable: 'x' }), { corefile: '/c/core_x', filesize: 0, executable: 'x', type: 7 });
});

test('core alarms: the first per executable/signal at once with count 1, later ones counted and sent after the 1-minute gap', (t) => {
  const agg = new CoreAggregator(60_000);
  const e = (x: string): Record<string, unknown> => ({ executable: x, signal: 'SIGSEGV' });
  t.like(agg.add(e('nginx'), 0), { count: 1 });
  t.is(agg.add(e('nginx'), 10_000), undefined);
  t.is(agg.add(e('nginx'), 20_000), undefined);
  t.like(agg.add(e('redis'), 20_000), { executable: 'redis', count: 1 });
  t.deepEqual(agg.flush(50_000), []);
  t.deepEqual(agg.flush(60_001), [{ executable: 'nginx', signal: 'SIGSEGV', count: 2 }]);
  t.deepEqual(agg.flush(200_000), [], 'nothing counted since');
  t.like(agg.add(e('nginx'), 300_000), { count: 1 }, 'after the gap a new one goes at once');
});

test('the core directory watch reports new files (not directories), and a missing directory is reported, not thrown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cores-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const seen: string[] = [];
  const errors: unknown[] = [];
  const w = new CoreDirWatcher((f) => seen.push(f), (e) => errors.push(e));
  t.teardown(() => w.close());
  t.false(w.watch(join(dir, 'missing')));
  t.is(errors.length, 1);
  t.true(w.watch(dir));
  mkdirSync(join(dir, 'subdir'));
  writeFileSync(join(dir, 'core_app_11_1700000000'), 'x');
  for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(seen, [join(dir, 'core_app_11_1700000000')]);
});

test('kernel log: records parsed; a real OOM block (global, memcg and pre-5.0 formats) becomes kills counted per process', (t) => {
  const lines = readFileSync(join(FIXTURES, 'kmsg-oom.txt'), 'utf8').split('\n').filter(Boolean);
  t.deepEqual(parseKmsgRecord('6,1,2000,-;hello\n SUBSYSTEM=x\n'), { priority: 6, sequence: 1, timestampUs: 2000, message: 'hello' });
  t.is(parseKmsgRecord('garbage'), undefined);
  const boot = Date.UTC(2024, 0, 1);
  const parser = new OomParser();
  const kills = lines.flatMap((l) => {
    const r = parseKmsgRecord(l);
    const k = r && parser.feed(r.message, boot + r.timestampUs / 1000);
    return k ? [k] : [];
  });
  t.deepEqual(kills, [
    { pid: 4242, processName: 'stress', timeOfDeathMs: boot + 5000.101, containerName: '/', victimContainerName: '/', constraint: '' },
    { pid: 777, processName: 'java', timeOfDeathMs: boot + 7000.05, containerName: '/kubepods/burstable/pod123', victimContainerName: '/kubepods/burstable/pod123/abc', constraint: 'CONSTRAINT_MEMCG' },
    { pid: 888, processName: 'nginx', timeOfDeathMs: boot + 9000.003, containerName: '/docker/abc', victimContainerName: '/docker/abc', constraint: '' },
  ]);
  const agg = new OomAggregator(boot + 6000);
  for (const k of [...kills, { ...kills[1]!, pid: 778 }]) agg.add(host, k);
  t.deepEqual(agg.flush(), [
    { bizid: 2, cloudid: 0, constraint: 'CONSTRAINT_MEMCG', host: '10.0.0.5', message: '系统发生OOM异常事件', oom_memcg: '/kubepods/burstable/pod123', process: 'java', task: 'java', task_memcg: '/kubepods/burstable/pod123/abc', total: 2, type: 9 },
    { bizid: 2, cloudid: 0, constraint: '', host: '10.0.0.5', message: '系统发生OOM异常事件', oom_memcg: '/docker/abc', process: 'nginx', task: 'nginx', task_memcg: '/docker/abc', total: 1, type: 9 },
  ], 'kills before the agent started are ignored');
  t.deepEqual(agg.flush(), []);
});

test('OOM collection is off inside docker or with the IEG marker', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  t.is(oomDisabledReason(h.paths), undefined);
  h.write('.dockerenv', '');
  t.is(oomDisabledReason(h.paths), undefined, '/.dockerenv alone is not enough');
  h.write('proc/1/sched', 'bash (4242, #threads: 1)\n----\n');
  t.regex(oomDisabledReason(h.paths) ?? '', /pid 1 is not init/);
  h.write('etc/ieg-docker.conf', '');
  t.regex(oomDisabledReason(h.paths) ?? '', /IEG/);
});

function options(over: Partial<ExceptionbeatOptions> = {}): ExceptionbeatOptions {
  return { diskSpace: false, diskReadOnly: false, corefile: false, oom: false, checkDiskRoIntervalMs: 60_000, checkDiskSpaceIntervalMs: 60_000, usedMaxDiskSpacePercent: 90, freeMinDiskSpaceGiB: 10, diskRoWhiteList: [], diskRoBlackList: [], oomReportGapMs: 60_000, corefilePattern: '', ...over };
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const l = { ...silentLogger, lines, warn: (m: string) => void lines.push(m), child: () => l };
  return l;
}

test('runner: disk checks on their interval, an unreadable kernel log reported once, core files from the watched directory, stop on abort', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  h.statfs.set('/', statfsOf(0xef53, 1_000_000, 40_000, 30_000));
  const cores = mkdtempSync(join(tmpdir(), 'cores-'));
  t.teardown(() => rmSync(cores, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2024, 0, 2));
  const logger = recordingLogger();
  const bodies: Record<string, unknown>[] = [];
  const runner = new ExceptionbeatRunner(options({ diskSpace: true, corefile: true, oom: true, corefilePattern: `${cores}/core_%e_%s_%t`, usedMaxDiskSpacePercent: 95 }), {
    paths: h.paths,
    host,
    dataId: 1000,
    state: { get: () => undefined, set: () => undefined },
    logger,
    startupMs: clock.ms,
  });
  let ticks = 0;
  await runner.run(
    {
      now: () => clock.now(),
      async sleep(ms) {
        clock.ms += ms;
        ticks++;
        if (ticks === 3) writeFileSync(join(cores, 'core_redis-server_11_1700000000'), 'core');
        if (ticks >= 3 && ticks < 20) await new Promise((r) => setTimeout(r, 30));
        if (ticks > 125) throw Object.assign(new Error('stop'), { name: 'AbortError' });
      },
    },
    async (body) => void bodies.push(body),
  );
  const types = bodies.map((b) => ((b['value'] as { extra: { type: number } }[])[0]?.extra.type));
  t.deepEqual(types, [7, 6, 6], 'the core file at once; disk space at 60 s and 120 s');
  t.like((bodies[0]?.['value'] as { extra: Record<string, unknown> }[])[0]?.extra, { executable: 'redis-server', signal: 'SIGSEGV', count: 1, corefile: join(cores, 'core_redis-server_11_1700000000') });
  t.is(bodies[0]?.['utctime2'], '2023-11-14 22:13:20', 'the %t time is the event time');
  t.is(logger.lines.filter((l) => l.includes('kernel log')).length, 1, 'the missing /dev/kmsg is reported once');
});

test('real machine: the kernel log opens or fails cleanly; records carry plausible times', (t) => {
  const paths = hostPaths();
  let reader: KmsgReader | undefined;
  try {
    reader = new KmsgReader(paths, Date.now());
  } catch (err) {
    t.regex((err as NodeJS.ErrnoException).code ?? '', /^(EPERM|EACCES|ENOENT)$/);
    return;
  }
  const records = reader.drain(50);
  reader.close();
  for (const { record, timeMs } of records) {
    t.true(Number.isInteger(record.sequence));
    t.true(timeMs <= Date.now() + 1000);
  }
  t.pass();
});
