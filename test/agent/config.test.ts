/**
 * The config engine against the reference's rules (§A3, errata 6, 8, 10): every default and clamp, every
 * invalid input of the main file (fatal, all problems at once) and of child files (skipped, reported),
 * identity and duplicates, durations, and the reference template's keys accepted.
 */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../services/common/errors.ts';
import { loadAgentConfig, type LoadedConfig } from '../../services/agent/config-engine.ts';
import { formatDuration, parseDurationValue, parseGoDuration } from '../../services/agent/duration.ts';
import { probeTypes, tempDir } from './kit.ts';

const MAIN_HEAD = `
bkmonitorbeat:
  node_id: 0
  ip: 127.0.0.1
  bk_cloud_id: 0
  bk_biz_id: 2
  mode: daemon
  heart_beat:
    global_dataid: 1100001
`;

interface Fixture {
  dir: string;
  main: string;
  child(name: string, text: string): string;
  load(): LoadedConfig;
}

/** A main file (MAIN_HEAD + `extra`, indented under bkmonitorbeat) and an include directory `conf.d`. */
function fixture(t: Parameters<typeof tempDir>[0], extra = '', options: { head?: string; include?: boolean } = {}): Fixture {
  const dir = tempDir(t);
  const main = join(dir, 'bkmonitorbeat.conf');
  mkdirSync(join(dir, 'conf.d'));
  const include = options.include === false ? '' : '  include: conf.d\n';
  writeFileSync(main, (options.head ?? MAIN_HEAD) + include + extra);
  const { types } = probeTypes();
  return {
    dir,
    main,
    child(name, text) {
      const p = join(dir, 'conf.d', name);
      writeFileSync(p, text);
      return p;
    },
    load: () => loadAgentConfig(main, { types }),
  };
}

function problemsOf(fn: () => unknown): { key: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

test('durations: Go duration strings, plain numbers as seconds, numeric strings as seconds', (t) => {
  t.is(parseGoDuration('500ms'), 500);
  t.is(parseGoDuration('10s'), 10_000);
  t.is(parseGoDuration('1m'), 60_000);
  t.is(parseGoDuration('1h30m'), 5_400_000);
  t.is(parseGoDuration('1.5h'), 5_400_000);
  t.is(parseGoDuration('2us'), 0.002);
  t.is(parseGoDuration('-3s'), -3_000);
  t.is(parseGoDuration('0'), 0);
  t.is(parseDurationValue(60), 60_000);
  t.is(parseDurationValue('60'), 60_000);
  t.is(parseDurationValue(0.5), 500);
  for (const bad of ['', '10', '1x', 's', '1m5', 'ten seconds']) t.throws(() => parseGoDuration(bad), undefined, bad);
  t.throws(() => parseDurationValue(true));
  t.is(formatDuration(60_000), '1m0s');
  t.is(formatDuration(500), '500ms');
});

test('main file: the code defaults of every key', (t) => {
  const f = fixture(t, '', {
    head: `
bkmonitorbeat:
  node_id: 0
  ip: 10.0.0.1
  bk_cloud_id: 3
  bk_biz_id: 2
`,
    include: false,
  });
  const { main, tasks, children, warnings } = f.load();
  t.is(main.mode, 'check', 'the code default mode is check');
  t.is(main.checkIntervalMs, 500);
  t.is(main.cleanUpTimeoutMs, 1_000);
  t.is(main.eventBufferSize, 10);
  t.false(main.keepOneDimension);
  t.is(main.metricsBatchSize, 1024);
  t.is(main.maxMetricBatches, 5000);
  t.is(main.hostIdPath, '/var/lib/gse/host/hostid');
  t.is(main.cmdbLevelMaxLength, 10);
  t.false(main.ignoreCmdbLevel);
  t.false(main.disableNetlink);
  t.deepEqual(main.heartBeat, { globalDataId: 0, childDataId: 0, dataId: 0, periodMs: 60_000, publishImmediately: true });
  t.is(main.gatherUpDataId, 0);
  t.is(main.include, '');
  t.false(main.multiChildDir);
  t.deepEqual(main.concurrencyLimits, {});
  t.is(main.ip, '10.0.0.1');
  t.is(main.bkCloudId, 3);
  t.deepEqual(tasks, []);
  t.deepEqual(children, []);
  t.deepEqual(warnings, []);
});

test('main file: every problem is listed at once, each with its key', (t) => {
  const f = fixture(t, `
  mode: sometimes
  check_interval: 0s
  clean_up_timeout: 500ms
  event_buffer_size: 0
  heart_beat:
    period: 100ms
  probe_task:
    tasks:
      - period: 5s
  solo_task:
    task_id: 9
    period: 1x
`, {
    head: `
bkmonitorbeat:
  ip: ""
`,
  });
  const problems = problemsOf(() => f.load());
  const keys = problems.map((p) => p.key).sort();
  t.deepEqual(keys, [
    'bkmonitorbeat.bk_biz_id',
    'bkmonitorbeat.bk_cloud_id',
    'bkmonitorbeat.check_interval',
    'bkmonitorbeat.clean_up_timeout',
    'bkmonitorbeat.event_buffer_size',
    'bkmonitorbeat.heart_beat.period',
    'bkmonitorbeat.ip',
    'bkmonitorbeat.mode',
    'bkmonitorbeat.node_id',
    'bkmonitorbeat.probe_task.dataid',
    'bkmonitorbeat.probe_task.tasks[0].task_id',
    'bkmonitorbeat.solo_task.period',
  ]);
  t.regex(problems.find((p) => p.key === 'bkmonitorbeat.mode')?.message ?? '', /daemon, check, cron/);
});

test('main file: daemon mode needs a heartbeat data id; an unreadable or non-YAML file is one problem', (t) => {
  const f = fixture(t, '', {
    head: `
bkmonitorbeat:
  node_id: 0
  ip: 127.0.0.1
  bk_cloud_id: 0
  bk_biz_id: 2
  mode: daemon
`,
  });
  t.deepEqual(problemsOf(() => f.load()).map((p) => p.key), ['bkmonitorbeat.heart_beat.global_dataid']);
  writeFileSync(f.main, 'bkmonitorbeat: [unclosed');
  t.regex(problemsOf(() => f.load())[0]?.message ?? '', /cannot parse YAML/);
  writeFileSync(f.main, 'output.bkpipe: {}\n');
  t.deepEqual(problemsOf(() => f.load()).map((p) => p.key), ['bkmonitorbeat']);
  t.deepEqual(problemsOf(() => loadAgentConfig(join(f.dir, 'missing.conf'), { types: [] })).map((p) => p.key), ['AGENT_CONFIG']);
});

test('settings bkstream does not need are accepted with one warning each, never an error', (t) => {
  const f = fixture(t, `
  admin_addr: localhost:56060
  jsonlib: jsoniter
  multi_tenant_tasks: ["basereport"]
  enable_multi_tenant: true
  gse_message_endpoint: /var/run/ipc.state.report
  timesync_task:
    dataid: 1100030
    task_id: 98
    period: 1m
  something_new: 1
`, {
    head: `
output.bkpipe:
  synccfg: true
  endpoint: /var/run/ipc.state.report
  hostid: 42
path.logs: /var/log/gse
path.data: /var/lib/gse
logging.level: error
resource_limit:
  enabled: true
  cpu: 1
seccomp.enabled: false
${MAIN_HEAD}`,
  });
  const { warnings, main } = f.load();
  const keys = warnings.map((w) => w.split(':')[0]).sort();
  t.deepEqual(keys, [
    'bkmonitorbeat.admin_addr',
    'bkmonitorbeat.enable_multi_tenant',
    'bkmonitorbeat.gse_message_endpoint',
    'bkmonitorbeat.jsonlib',
    'bkmonitorbeat.multi_tenant_tasks',
    'bkmonitorbeat.something_new',
    'bkmonitorbeat.timesync_task',
    'logging.level',
    'output.bkpipe',
    'path.data',
    'path.logs',
    'resource_limit',
    'seccomp.enabled',
  ]);
  t.is(main.bkpipe.hostId, 42, 'output.bkpipe.hostid is read as host identity');
});

test('concurrency limits: defaults 100000 / 1000; a missing per_task gets its default, not the reference\'s blocking 0 (errata 3)', (t) => {
  const f = fixture(t, `
  concurrency_limit:
    task:
      http: { per_instance: 50, per_task: 5 }
      tcp: { per_instance: 7 }
      udp: {}
`);
  const { main, warnings } = f.load();
  t.deepEqual(main.concurrencyLimits, {
    http: { perInstance: 50, perTask: 5 },
    tcp: { perInstance: 7, perTask: 1000 },
    udp: { perInstance: 100000, perTask: 1000 },
  });
  t.is(warnings.filter((w) => w.includes('per_task')).length, 2);
});

test('list tasks: defaults period 10s, timeout 3s, available_duration = timeout, data id from the section', (t) => {
  const f = fixture(t, `
  probe_task:
    dataid: 1009
    tasks:
      - task_id: 1
`);
  const [task] = f.load().tasks;
  t.like(task?.config, { type: 'probe', taskId: 1, dataId: 1009, periodMs: 10_000, timeoutMs: 3_000, availableDurationMs: 3_000, bkBizId: 0, source: 'main:probe_task' });
  t.deepEqual(task?.config.labels, []);
  t.deepEqual(task?.config.tags, {});
  t.is(task?.scheduler, 'main');
});

test('list tasks: the clamps in the reference\'s order', (t) => {
  const f = fixture(t, `
  probe_task:
    dataid: 1009
    max_timeout: 30s
    min_period: 3s
    tasks:
      - { task_id: 1, period: 1m, timeout: 40s }
      - { task_id: 2, period: 1s, timeout: 2s }
      - { task_id: 3, period: 5s, timeout: 10s, available_duration: 8s }
      - { task_id: 4, period: 60, timeout: 10, dataid: 77 }
      - { task_id: 5, period: 1m }
`);
  const byId = new Map(f.load().tasks.map((x) => [x.config.taskId, x.config]));
  t.like(byId.get(1), { periodMs: 60_000, timeoutMs: 30_000, availableDurationMs: 40_000 }, 'timeout above max_timeout → max_timeout (available_duration kept from before)');
  t.like(byId.get(2), { periodMs: 3_000, timeoutMs: 2_000 }, 'period below min_period → min_period');
  t.like(byId.get(3), { periodMs: 5_000, timeoutMs: 5_000, availableDurationMs: 8_000 }, 'timeout above period → period');
  t.like(byId.get(4), { periodMs: 60_000, timeoutMs: 10_000, dataId: 77 }, 'plain numbers are seconds; a task data id wins');
  t.like(byId.get(5), { timeoutMs: 3_000, availableDurationMs: 3_000 }, 'no timeout → 3 s default, not max_timeout');
});

test('list tasks: meta max_timeout / min_period under 1 s fall back to 3 s / 10 s; the type may set other meta defaults', (t) => {
  const f = fixture(t, `
  probe_task:
    dataid: 1
    max_timeout: 0.5
    min_period: 0s
    tasks:
      - { task_id: 1, period: 2s, timeout: 20s }
`);
  t.like(f.load().tasks[0]?.config, { periodMs: 10_000, timeoutMs: 3_000 });
  const { types } = probeTypes();
  const probe = types.find((x) => x.type === 'probe');
  if (!probe) throw new Error('no probe type');
  const withMeta = types.map((x) => (x === probe ? { ...probe, metaDefaults: { maxTimeoutMs: 100_000, minPeriodMs: 3_000 } } : x));
  t.like(loadAgentConfig(f.main, { types: withMeta }).tasks[0]?.config, { periodMs: 3_000, timeoutMs: 3_000 });
});

test('labels: every group is kept; a bk_biz_id label is the task\'s biz; conflicting or bad ones are problems', (t) => {
  const f = fixture(t, `
  probe_task:
    dataid: 1
    tasks:
      - task_id: 1
        bk_biz_id: 5
        labels:
          - { bk_biz_id: "7", bk_target_ip: "10.0.0.1" }
          - { bk_biz_id: "7", bk_target_ip: "10.0.0.2" }
        tags: { team: a }
`);
  const [task] = f.load().tasks;
  t.is(task?.config.bkBizId, 7);
  t.is(task?.config.labels.length, 2);
  t.deepEqual(task?.config.tags, { team: 'a' });
  writeFileSync(f.main, `${MAIN_HEAD}  probe_task:
    dataid: 1
    tasks:
      - task_id: 1
        labels: [{ bk_biz_id: "7" }, { bk_biz_id: "8" }]
      - task_id: 2
        labels: [{ bk_biz_id: "x" }]
`);
  const problems = problemsOf(() => f.load());
  t.deepEqual(problems.map((p) => p.key), ['bkmonitorbeat.probe_task.tasks[0].labels', 'bkmonitorbeat.probe_task.tasks[1].labels']);
  t.regex(problems[0]?.message ?? '', /conflicting/);
});

test('identity: key order and label order do not matter; any field does', (t) => {
  const f = fixture(t);
  const a = f.child('a.conf', 'type: probe\nname: n\nversion: "1"\ndataid: 1\ntasks:\n  - { task_id: 1, period: 1m, labels: [{x: "1", y: "2"}], extra: {b: 1, a: 2} }\n');
  const first = f.load().tasks[0]?.config.ident;
  writeFileSync(a, 'version: "1"\nname: n\ntype: probe\ndataid: 1\ntasks:\n  - { extra: {a: 2, b: 1}, labels: [{y: "2", x: "1"}], period: 60s, task_id: 1 }\n');
  t.is(f.load().tasks[0]?.config.ident, first, 'reordered keys, same values (60s = 1m)');
  writeFileSync(a, 'type: probe\nname: n\nversion: "1"\ndataid: 1\ntasks:\n  - { task_id: 1, period: 1m, labels: [{x: "1", y: "2"}], extra: {b: 1, a: 3} }\n');
  t.not(f.load().tasks[0]?.config.ident, first, 'a changed field');
  writeFileSync(a, 'type: probe\nname: n\nversion: "2"\ndataid: 1\ntasks:\n  - { task_id: 1, period: 1m, labels: [{x: "1", y: "2"}], extra: {b: 1, a: 2} }\n');
  t.not(f.load().tasks[0]?.config.ident, first, 'the file\'s version is part of a child task\'s identity');
});

test('single-instance sections: not cleaned, fixed ident unless the type hashes, the type\'s emptiness rule, a missing period defaults with a warning', (t) => {
  const f = fixture(t, `
  solo_task:
    task_id: 88
    dataid: 1100030
    period: 1m
  hashed_task:
    task_id: 3
    dataid: 5
`);
  const { tasks, warnings } = f.load();
  const solo = tasks.find((x) => x.config.type === 'solo');
  const hashed = tasks.find((x) => x.config.type === 'hashed');
  t.like(solo?.config, { ident: 'solo', taskId: 88, periodMs: 60_000, timeoutMs: 0, availableDurationMs: 0 });
  t.regex(hashed?.config.ident ?? '', /^[0-9a-f]{40}$/);
  t.is(hashed?.config.periodMs, 10_000);
  t.true(warnings.some((w) => w.startsWith('bkmonitorbeat.hashed_task.period')));
  writeFileSync(f.main, `${MAIN_HEAD}  solo_task:\n    task_id: 88\n    dataid: 0\n    period: 1m\n`);
  t.deepEqual(f.load().tasks, [], 'dataid 0: the type says there is no task');
});

test('child files: every file is read whatever its name (errata 6), in name order; sub-directories only with multi_child_dir', (t) => {
  const f = fixture(t);
  f.child('zz-no-extension', 'type: probe\nname: z\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 3 }]\n');
  f.child('a.yaml', 'type: probe\nname: a\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 1 }]\n');
  mkdirSync(join(f.dir, 'conf.d', 'sub'));
  writeFileSync(join(f.dir, 'conf.d', 'sub', 'b.conf'), 'type: probe\nname: b\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 2 }]\n');
  t.deepEqual(f.load().tasks.map((x) => x.config.taskId), [1, 3]);
  writeFileSync(f.main, `${MAIN_HEAD}  include: conf.d\n  multi_child_dir: true\n`);
  t.deepEqual(f.load().tasks.map((x) => x.config.taskId), [1, 2, 3]);
});

test('child files: a bad file is skipped and reported with its problems; the others load', (t) => {
  const f = fixture(t, `
  probe_task:
    dataid: 1
    tasks: [{ task_id: 100 }]
`);
  const good = f.child('01-good.conf', 'type: probe\nname: good\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 1 }]\n');
  const empty = f.child('02-empty.conf', '\n');
  const yaml = f.child('03-yaml.conf', 'type: probe\nname: [oops\n');
  const unknown = f.child('04-unknown.conf', 'type: nosuch\nname: x\nversion: "1"\n');
  const noName = f.child('05-noname.conf', 'type: probe\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 5 }]\n');
  const noVersion = f.child('06-noversion.conf', 'type: probe\nname: x\ndataid: 1\ntasks: [{ task_id: 6 }]\n');
  const badTask = f.child('07-badtask.conf', 'type: probe\nname: x\nversion: "1"\ndataid: 1\ntasks:\n  - { task_id: 7 }\n  - { task_id: 8, timeout: soon }\n');
  const badParse = f.child('08-badparse.conf', 'type: probe\nname: x\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 9, fail_parse: 1 }]\n');
  const noData = f.child('09-nodataid.conf', 'type: probe\nname: x\nversion: "1"\ntasks: [{ task_id: 10 }]\n');
  const notMap = f.child('10-list.conf', '- a\n- b\n');
  const { tasks, children } = f.load();
  t.deepEqual(tasks.map((x) => x.config.taskId), [100, 1]);
  const by = new Map(children.map((c) => [c.path, c]));
  t.is(by.get(good)?.status, 'loaded');
  for (const p of [empty, yaml, unknown, noName, noVersion, badTask, badParse, noData, notMap]) t.is(by.get(p)?.status, 'skipped', p);
  t.regex(by.get(empty)?.problems[0]?.message ?? '', /empty/);
  t.regex(by.get(unknown)?.problems[0]?.message ?? '', /unknown task type "nosuch"/);
  t.deepEqual(by.get(noName)?.problems.map((p) => p.key), [`${noName}:name`]);
  t.deepEqual(by.get(noVersion)?.problems.map((p) => p.key), [`${noVersion}:version`]);
  t.deepEqual(by.get(badTask)?.problems.map((p) => p.key), [`${badTask}:tasks[1].timeout`], 'one bad task skips the whole file');
  t.deepEqual(by.get(badParse)?.problems.map((p) => p.key), [`${badParse}:tasks[0].fail_parse`], 'the type\'s problems are keyed under the entry');
  t.deepEqual(by.get(noData)?.problems.map((p) => p.key), [`${noData}:dataid`]);
});

test('duplicates: a child file repeating a task of an earlier file is dropped whole; main and child tasks dedupe by ident, first wins', (t) => {
  const f = fixture(t);
  const task = 'type: probe\nname: same\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 1 }]\n';
  f.child('a.conf', task);
  const dup = f.child('b.conf', 'type: probe\nname: same\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 1 }, { task_id: 2 }]\n');
  const self = f.child('c.conf', 'type: probe\nname: c\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 3 }, { task_id: 3 }]\n');
  const { tasks, children } = f.load();
  t.deepEqual(tasks.map((x) => x.config.taskId), [1], 'task 2 goes with its file');
  t.is(children.find((c) => c.path === dup)?.status, 'duplicate');
  t.is(children.find((c) => c.path === self)?.status, 'duplicate', 'a file repeating its own task too');
});

test('the single-instance ident of a child file is hashed with its name, type and version', (t) => {
  const f = fixture(t, `
  solo_task:
    task_id: 1
    dataid: 1
    period: 1m
`);
  f.child('solo.conf', 'type: solo\nname: solo_task\nversion: "1.0.0"\ntask_id: 1\ndataid: 1\nperiod: 1m\n');
  const [main, child] = f.load().tasks;
  t.is(main?.config.ident, 'solo');
  t.regex(child?.config.ident ?? '', /^[0-9a-f]{40}$/);
  t.is(child?.config.source, join(f.dir, 'conf.d', 'solo.conf'));
});

test('routing: each type goes to the scheduler it names; a relative include is resolved against the main file', (t) => {
  const f = fixture(t, `
  listener_task:
    dataid: 1
    tasks: [{ task_id: 1 }]
  words_task:
    dataid: 1
    tasks: [{ task_id: 2 }]
`);
  const { tasks, main } = f.load();
  t.deepEqual(tasks.map((x) => [x.config.type, x.scheduler]), [['listener', 'listen'], ['words', 'keyword']]);
  t.is(main.include, join(f.dir, 'conf.d'));
});

test('the reference template\'s main file, rendered for a host, loads with warnings only', (t) => {
  const loaded = loadAgentConfig(join(import.meta.dirname, 'fixtures', 'reference-bkmonitorbeat.conf'), { types: probeTypes().types });
  t.is(loaded.main.mode, 'daemon');
  t.is(loaded.main.heartBeat.globalDataId, 1100001);
  t.is(loaded.main.gatherUpDataId, 1100017);
  t.is(loaded.main.bkpipe.hostId, 12);
  t.true(loaded.warnings.length >= 10);
  t.true(loaded.warnings.some((w) => w.startsWith('output.bkpipe')));
  t.true(loaded.warnings.some((w) => w.startsWith('bkmonitorbeat.timesync_task')));
});
