import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig } from '../../../services/agent/config-engine.ts';
import type { ConfigProblem } from '../../../services/common/errors.ts';
import { basereportType, LAST_PUBLISH_KEY, parseBasereport } from '../../../services/agent/tasks/basereport.ts';
import { exceptionbeatType, parseCheckBit, parseExceptionbeat } from '../../../services/agent/tasks/exceptionbeat.ts';
import { parseProcCustom, ProcCustomTask } from '../../../services/agent/tasks/proccustom.ts';
import { parseProcConf, PROCESSBEAT_FILE, procconfType } from '../../../services/agent/tasks/procconf.ts';
import { parseProcessbeat, PIDSTORE_KEY, processbeatType } from '../../../services/agent/tasks/processbeat.ts';
import { parseProcSync, procsyncType } from '../../../services/agent/tasks/procsync.ts';
import { parseStatic, StaticTask, staticType } from '../../../services/agent/tasks/static.ts';
import type { MetricsOutput, EventOutput } from '../../../services/agent/task.ts';
import { formatDateTime } from '../../../services/agent/host/goformat.ts';
import { baseConfig, fakeContext, FakeClock, FIXTURES, fixtureHost } from './helpers.ts';

const TYPES = [basereportType, staticType, exceptionbeatType, processbeatType, procconfType, procsyncType];

test('the reference template sections parse with their values and no problem', (t) => {
  const loaded = loadAgentConfig(join(FIXTURES, '..', '..', 'fixtures', 'reference-bkmonitorbeat.conf'), { types: TYPES });
  const byType = new Map(loaded.tasks.map((x) => [x.config.type, x.config as unknown as Record<string, unknown>]));
  const br = byType.get('basereport') as unknown as ReturnType<typeof parseBasereport>;
  t.is(br.dataId, 1001);
  t.like(br.options, { periodMs: 60_000, cpu: { statTimes: 4, reportFlag: false }, mem: { infoTimes: 1 }, reportRoute: false, timeTolerateS: 59 });
  t.is(br.options.disk.collectAllDevice, true);
  t.deepEqual(br.options.disk.mountpointBlackList.map(String), ['/docker/', '/container/', '/k8s/', '/kubelet/', '/blueking/']);
  t.is(br.options.disk.fsTypeWhiteList.length, 18);
  t.deepEqual(br.options.net.forceReportList.map(String), ['/bond/']);
  t.is(br.options.net.blackList.length, 8);
  const ex = byType.get('exceptionbeat') as unknown as ReturnType<typeof parseExceptionbeat>;
  t.like(ex.options, { diskSpace: true, diskReadOnly: true, corefile: true, oom: true, checkDiskRoIntervalMs: 60_000, checkDiskSpaceIntervalMs: 60_000, usedMaxDiskSpacePercent: 95, freeMinDiskSpaceGiB: 10, oomReportGapMs: 60_000 });
  t.deepEqual(ex.options.diskRoBlackList.map(String), ['/docker/', '/container/', '/k8s/', '/kubelet/', '/blueking/']);
  const st = byType.get('static') as unknown as ReturnType<typeof parseStatic>;
  t.like(st, { dataId: 1100010, checkPeriodMs: 60_000, reportPeriodMs: 6 * 3_600_000 });
  t.deepEqual(st.options.virtualIfaceWhitelist, ['bond1']);
  const pc = byType.get('procconf') as unknown as ReturnType<typeof parseProcConf>;
  t.like(pc, { perfDataId: 1007, portDataId: 1013, convergePid: true, hostFilePath: '/var/lib/gse/host/hostid', dstDir: '/usr/local/gse/plugins/etc/bkmonitorbeat' });
  t.false(byType.has('procsync'), 'the template leaves procsync commented out');
});

test('defaults and problems of the host task types, each keyed', (t) => {
  const problems: ConfigProblem[] = [];
  const br = parseBasereport({ cpu: { stat_times: 0 }, net: { interface_black_list: ['veth', '(bad'] }, disk: { stat_times: -1 } }, baseConfig('basereport'), problems);
  t.like(br.options, { cpu: { statTimes: 4 }, mem: { infoTimes: 1 }, net: { statTimes: 4 }, disk: { statTimes: 1 }, timeTolerateS: 59 });
  t.deepEqual(br.options.net.blackList.map(String), ['/veth/']);
  t.deepEqual(
    problems.map((p) => p.key),
    ['net.interface_black_list[1]'],
  );
  problems.length = 0;
  const st = parseStatic({ check_period: '10s', report_period: '30m' }, baseConfig('static'), problems);
  t.like(st, { checkPeriodMs: 60_000, reportPeriodMs: 6 * 3_600_000 }, 'clamped as the reference cleans them');
  const ex = parseExceptionbeat({ check_bit: 'C_FOO', corefile_match_regex: '(' }, baseConfig('exceptionbeat'), problems);
  t.deepEqual(
    problems.map((p) => p.key),
    ['check_bit', 'corefile_match_regex'],
  );
  t.like(ex.options, { checkDiskRoIntervalMs: 3_600_000, usedMaxDiskSpacePercent: 90, freeMinDiskSpaceGiB: 10, oomReportGapMs: 60_000, corefilePattern: '' });
  t.false(exceptionbeatType.enabled?.(ex) ?? true);
  t.deepEqual(parseCheckBit(''), { diskSpace: true, diskReadOnly: true, corefile: true, oom: true });
  t.deepEqual(parseCheckBit('C_DISK_RO|C_OOM'), { diskSpace: false, diskReadOnly: true, corefile: false, oom: true });
  t.deepEqual(parseCheckBit('C_DISKRO'), { diskSpace: false, diskReadOnly: true, corefile: false, oom: false });
  problems.length = 0;
  const pb = parseProcessbeat({ perfdataid: 1007, processes: [{ name: 'nginx', ports: [80, 'x'], bind_info: [{ ip: '0.0.0.0', ports: [443], protocol: 'tcp' }] }, 'bad'] }, baseConfig('processbeat'), problems);
  t.deepEqual(
    problems.map((p) => p.key),
    ['processes[0].ports[1]', 'processes[1]'],
  );
  t.deepEqual(pb.processes[0], { name: 'nginx', displayname: '', protocol: '', ports: [80], paramregex: '', bindip: '', bind_info: [{ ip: '0.0.0.0', ports: [443], protocol: 'tcp' }] });
  t.true(processbeatType.enabled?.(pb));
  t.false(processbeatType.enabled?.({ ...pb, perfDataId: 0 }));
  problems.length = 0;
  parseProcCustom({ match_pattern: '(java', extract_pattern: '(?P<app>\\w+)' }, baseConfig('proccustom'), problems);
  t.deepEqual(
    problems.map((p) => p.key),
    ['match_pattern'],
  );
  t.false(procsyncType.enabled?.(parseProcSync({}, baseConfig('procsync', { taskId: 0 }), [])) ?? true);
  t.false(procconfType.enabled?.(parseProcConf({}, baseConfig('procconf'), [])) ?? true);
});

test('basereport run: warm-up sends nothing, then one document per run with every section; one per wall-clock minute', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  h.statfs.set('/', { type: 0xef53, bsize: 4096, blocks: 1000, bfree: 500, bavail: 400, files: 100, ffree: 50 });
  const clock = new FakeClock(Date.UTC(2024, 0, 2, 3, 4, 0));
  const ctx = fakeContext(h, { clock });
  const task = basereportType.create(parseBasereport({}, baseConfig('basereport'), []));
  await task.run(ctx);
  t.deepEqual(ctx.outputs, []);
  t.true(clock.sleeps.includes(5000), 'the warm-up pauses 5 s');
  clock.ms = Date.UTC(2024, 0, 2, 3, 5, 0);
  clock.sleeps.length = 0;
  await task.run(ctx);
  t.is(ctx.outputs.length, 1);
  const out = ctx.outputs[0] as EventOutput;
  t.like(out, { kind: 'event', eventType: 'basereport', dataId: 1001, taskId: 101 });
  t.deepEqual(Object.keys(out.body), ['data', 'dataid', 'type']);
  const data = out.body['data'] as Record<string, unknown>;
  t.deepEqual(Object.keys(data), ['timezone', 'datetime', 'utctime', 'country', 'city', 'cpu', 'env', 'disk', 'load', 'mem', 'net', 'system']);
  t.is(data['utctime'], formatDateTime(clock.ms, 0), 'stamped when the sampling ends');
  t.deepEqual(clock.sleeps.filter((s) => s === 15_000).length >= 3, true, 'four cpu/net samples 15 s apart');
  t.is(ctx.kv.get(LAST_PUBLISH_KEY), String(Date.UTC(2024, 0, 2, 3, 5, 0) / 1000));
  const runMs = clock.ms - Date.UTC(2024, 0, 2, 3, 5, 0);
  // a run that ends in the minute of the last report sends nothing
  clock.ms = Date.UTC(2024, 0, 2, 3, 10, 0);
  ctx.kv.set(LAST_PUBLISH_KEY, String(Math.floor((clock.ms + runMs) / 1000)));
  await task.run(ctx);
  t.is(ctx.outputs.length, 1);
  clock.ms = Date.UTC(2024, 0, 2, 3, 12, 0);
  await task.run(ctx);
  t.is(ctx.outputs.length, 2);
});

test('static run: first report add, checks send only on change, the random pause ends the add phase', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const clock = new FakeClock(Date.UTC(2024, 0, 2, 0, 0, 0));
  const ctx = fakeContext(h, { clock });
  const task = new StaticTask(parseStatic({}, baseConfig('static', { dataId: 1100010 }), []), () => 600);
  await task.run(ctx);
  t.is(ctx.outputs.length, 1);
  const body = (ctx.outputs[0] as EventOutput).body as { data: Record<string, unknown>; dataid: number };
  t.is(body.dataid, 1100010);
  t.deepEqual(Object.keys(body.data), ['apiVer', 'cpu', 'disk', 'mem', 'net', 'oper', 'system', 'timestamp']);
  t.like(body.data, { apiVer: 'v1.0', oper: 'add', timestamp: Date.UTC(2024, 0, 2) / 1000, cpu: { model: 'Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz', total: 2 }, mem: { total: 16_000_000 * 1024 } });
  t.like(body.data['system'], { arch: 'x86', hostname: 'fixture-host', os: 'linux', platform: 'ubuntu', platVer: '22.04' });
  t.is((ctx.outputs[0] as EventOutput).cmdbLevel, false);
  clock.ms += 61_000;
  await task.run(ctx);
  t.is(ctx.outputs.length, 1, 'checked, unchanged: nothing sent');
  h.write('proc/sys/kernel/hostname', 'renamed-host\n');
  clock.ms += 61_000;
  await task.run(ctx);
  t.is(ctx.outputs.length, 2, 'changed: sent at once');
  t.like(((ctx.outputs[1] as EventOutput).body as { data: Record<string, unknown> }).data, { oper: 'add', system: { hostname: 'renamed-host' } });
  // as in the reference, a report sent on change ends the add phase: the next is a periodic update
  clock.ms += 601_000;
  await task.run(ctx);
  t.is(ctx.outputs.length, 2);
  clock.ms += 6 * 3_600_000;
  await task.run(ctx);
  t.is(ctx.outputs.length, 3);
  t.is(((ctx.outputs[2] as EventOutput).body as { data: Record<string, unknown> }).data['oper'], 'update');
});

test('processbeat run: perf then port documents; cpu/io appear from the second run; fake pids and pidstore with converge_pid', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const clock = new FakeClock(Date.UTC(2024, 0, 2, 0, 0, 0));
  const ctx = fakeContext(h, { clock });
  const config = parseProcessbeat(
    {
      perfdataid: 1007,
      portdataid: 1013,
      converge_pid: true,
      processes: [
        { name: 'redis-server', displayname: 'redis', protocol: 'tcp', ports: [6379, 6380], bindip: '127.0.0.1', paramregex: '' },
        { name: 'sshd', displayname: 'ssh', bind_info: [{ ip: '', ports: [22], protocol: 'tcp' }] },
        { name: 'nginx', displayname: 'web' },
      ],
    },
    baseConfig('processbeat'),
    [],
  );
  const task = processbeatType.create(config);
  await task.run(ctx);
  t.is(ctx.outputs.length, 2);
  const perf = (ctx.outputs[0] as EventOutput).body as { data: { perf: Record<string, unknown>[] }; dataid: number; type: string };
  t.like(perf, { dataid: 1007, type: 'processbeat' });
  const redis = perf.data.perf.find((p) => p['name'] === 'redis-server') as Record<string, unknown>;
  t.like(redis, { pid: 0, ppid: 0, pgid: 0, state: 'sleeping', username: 'redis', exists: true, displayname: 'redis', cmdline: '/usr/bin/redis-server 127.0.0.1:6379', fd: { open: 3, limit: { soft: 10032, hard: 10032 } } });
  t.false('cpu' in redis, 'no cpu on the first sample');
  t.deepEqual(perf.data.perf.at(-1), { displayname: 'web', exists: false, name: 'nginx', paramregex: '' });
  const ports = ((ctx.outputs[1] as EventOutput).body as { data: { processes: Record<string, unknown>[] } }).data.processes;
  t.deepEqual(ports[0], { name: 'redis-server', exists: 1, protocol: 'tcp', listen: [6379], nonlisten: [6380], notaccuratelisten: [], bindip: '127.0.0.1', paramregex: '', displayname: 'redis', porthealth: 0 });
  t.like(ports[1], { name: 'sshd', exists: 1, listen: [22], nonlisten: [], porthealth: 1 });
  t.deepEqual(ports[2], { name: 'nginx', exists: 0, protocol: '', listen: null, nonlisten: null, notaccuratelisten: null, bindip: '', paramregex: '', displayname: 'web', porthealth: 1 });
  t.is(ctx.kv.get(PIDSTORE_KEY)?.split('\n').filter(Boolean).sort().join('|'), '0 100/:sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups|0 200/:/usr/bin/redis-server 127.0.0.1:6379');
  // second run 10 s later: the cpu rate over the interval
  h.write('proc/200/stat', readFileSync(join(h.paths.procRoot, '200/stat'), 'utf8').replace(' 3000 1000 ', ' 3500 1000 '));
  clock.ms += 10_000;
  await task.run(ctx);
  const redis2 = ((ctx.outputs[2] as EventOutput).body as { data: { perf: Record<string, unknown>[] } }).data.perf.find((p) => p['name'] === 'redis-server') as Record<string, unknown>;
  t.like(redis2, { cpu: { total: { value: 45_000, pct: 0.5, ticks: 45_000 }, user: { ticks: 35_000 }, system: { ticks: 10_000 } }, io: { read_speed: 0, write_speed: 0, read_bytes: 0, write_bytes: 1_048_576 } });
});

test('proccustom run: matched processes as series per target, fake pid dimension, port alive probes, then gather-up', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const ctx = fakeContext(h);
  const probed: string[] = [];
  const config = parseProcCustom(
    {
      match_pattern: 'java',
      process_name: '-Dapp=(\\w+)',
      extract_pattern: '--port=(?P<port>\\d+)',
      port_detect: true,
      port_dataid: 1500002,
    },
    baseConfig('proccustom', { dataId: 1500001, labels: [{ bk_target_cloud_id: '0', bk_target_ip: '10.0.0.5', team: 'pay' }, { other: 'x' }], tags: { env: 'prod' } }),
    [],
  );
  const task = new ProcCustomTask(config, async (ip, port) => {
    probed.push(`${ip}:${port}`);
    return port === 8080;
  });
  await task.run(ctx);
  const [perf, port, up] = ctx.outputs as MetricsOutput[];
  t.like(perf, { kind: 'metrics', eventType: 'proccustom', dataId: 1500001, target: '0:10.0.0.5' });
  t.deepEqual(perf?.records[0]?.dimensions, { env: 'prod', port: '8080', pid: '0', process_name: 'order', process_username: 'www-data', bk_target_cloud_id: '0', bk_target_ip: '10.0.0.5', team: 'pay' });
  t.like(perf?.records[0]?.metrics, { memory_size: 900_000 * 4096, memory_rss_bytes: 250_000 * 4096, memory_share: 8000 * 4096, fd_open: 3, fd_limit_soft: 0, fd_limit_hard: 0 });
  t.is(perf?.records[0]?.timestamp, Math.floor(ctx.now() / 1000) * 1000);
  t.like(port, { dataId: 1500002, target: '0:10.0.0.5' });
  t.deepEqual(
    port?.records.map((r) => `${r.dimensions['listen_address']}:${r.dimensions['listen_port']}=${r.metrics['alive']}`),
    ['0.0.0.0:80=0', ':::80=0', '10.0.0.5:8080=1'],
  );
  t.is(probed.at(-1), '10.0.0.5:8080');
  t.like(up, { eventType: 'gather_up', dataId: 1100017 });
  t.like(up?.records[0]?.dimensions, { bkm_up_code: '0', bk_collect_type: 'proccustom', task_id: '101' });
});

test('procconf run: hostid → processbeat child file written once, reload asked only when the bytes change', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const dir = mkdtempSync(join(tmpdir(), 'procconf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ctx = fakeContext(h, { include: join(dir, 'include') });
  const task = procconfType.create(parseProcConf({ perfdataid: 1007, portdataid: 1013, converge_pid: true, hostfilepath: join(FIXTURES, 'hostid.json') }, baseConfig('procconf'), []));
  await task.run(ctx);
  const written = readFileSync(join(dir, 'include', PROCESSBEAT_FILE), 'utf8');
  t.true(written.startsWith('type: processbeat\nname: processbeat_task\ntask_id: 0\nversion: 1.0.0\nportdataid: 1013\ntopdataid: 0\nperfdataid: 1007\nperiod: 1m0s\n'));
  t.true(written.includes('    - name: nginx\n      displayname: nginx-web\n      protocol: tcp\n'));
  t.deepEqual(ctx.reloads, ['procconf']);
  await task.run(ctx);
  t.deepEqual(ctx.reloads, ['procconf'], 'same bytes: no rewrite, no reload');
});

test('procsync run: legacy files become proccustom child files; unchanged sources do not reload', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const dir = mkdtempSync(join(tmpdir(), 'procsync-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'processbeat'));
  mkdirSync(join(dir, 'conf'));
  writeFileSync(join(dir, 'processbeat', 'monitor_process_java.yaml'), readFileSync(join(FIXTURES, 'processbeat', 'monitor_process_java.yaml')));
  writeFileSync(join(dir, 'processbeat', 'broken.yaml'), 'period: soon\n');
  writeFileSync(join(dir, 'conf', 'monitor_process_old.conf'), 'stale\n');
  const ctx = fakeContext(h);
  const task = procsyncType.create(parseProcSync({ dst_dir: join(dir, 'conf') }, baseConfig('procsync', { taskId: 104 }), []));
  await task.run(ctx);
  const text = readFileSync(join(dir, 'conf', 'monitor_process_java.yaml'), 'utf8');
  t.regex(text, /^name: proccustom_task\nversion: 1\.0\.0\ntype: proccustom\nperiod: 1m0s\ndataid: 1500001\ntask_id: \d+\n/);
  t.true(Number(/task_id: (\d+)/.exec(text)?.[1]) > 2 ** 29);
  t.throws(() => readFileSync(join(dir, 'conf', 'monitor_process_old.conf')), undefined, 'stale outputs removed');
  t.deepEqual(ctx.reloads, ['procsync']);
  await task.run(ctx);
  t.deepEqual(ctx.reloads, ['procsync']);
});

test('exceptionbeat run: one long run until aborted, alarms as exceptionbeat events with the host identity and no cmdb level', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const ctx = fakeContext(h);
  // every statfs-able physical mount alarms with these limits: only the fixture root's own "/" exists on disk
  const config = parseExceptionbeat({ check_bit: 'C_DISK_SPACE|C_OOM', check_disk_space_interval: 60, used_max_disk_space_percent: 0, free_min_disk_space: 1_000_000 }, baseConfig('exceptionbeat', { dataId: 1000, taskId: 102 }), []);
  t.true(exceptionbeatType.enabled?.(config));
  let sleeps = 0;
  ctx.onSleep = (c) => {
    if (++sleeps > 65) c.controller.abort();
  };
  await exceptionbeatType.create(config).run(ctx);
  t.is(ctx.outputs.length, 1);
  const out = ctx.outputs[0] as EventOutput;
  t.like(out, { kind: 'event', eventType: 'exceptionbeat', dataId: 1000, taskId: 102, cmdbLevel: false });
  t.like(out.body, { dataid: 1000, server: '10.0.0.5', value: [{ event_type: 'gse_basic_alarm_type', extra: { bizid: 2, cloudid: 0, host: '10.0.0.5', type: 6, disk: '/', file_system: '/dev/sda1' } }] });
});
