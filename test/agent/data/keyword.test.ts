/**
 * keyword (reference §A5.11, §A2.5) on real files the tests write: appends, keyword rules with named groups
 * and filters, a file found by a later rescan, rotation by rename, copy-truncate, GBK, close_inactive,
 * exclude_files, retain_file_bytes for a task added later, and an agent restart in the middle (no loss, no
 * re-read) through a shared state store. Documents are checked in the reference's event shape.
 */
import test from 'ava';
import { appendFileSync, copyFileSync, renameSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import { keywordType, type KeywordConfig } from '../../../services/agent/tasks/keyword.ts';
import type { EventOutput, StateStore } from '../../../services/agent/task.ts';
import { silentLogger } from '../../../services/common/log.ts';
import { sharedInput } from '../../../services/agent/tail/input.ts';
import { MemoryState, parseTask, problemsOf, recordingContext, tempDir } from './helpers.ts';

interface Running {
  rec: ReturnType<typeof recordingContext>;
  stop(): Promise<void>;
}

/** Starts the task; resolves once the shared input finished its first scan. */
async function start(config: KeywordConfig, state: StateStore = new MemoryState()): Promise<Running> {
  const rec = recordingContext({ state });
  const running = keywordType.create(config).run(rec.ctx);
  const input = sharedInput(state, silentLogger);
  const scans = input.scans;
  while (input.scans <= scans) await sleep(10);
  return {
    rec,
    async stop() {
      rec.controller.abort(new DOMException('task removed', 'AbortError'));
      await running;
    },
  };
}

type Rec = { event_name: string; event: { count: number; content: string }; dimension: Record<string, string>; target: string; timestamp: number };

function recordsOf(events: EventOutput[]): Rec[] {
  return events.flatMap((e) => (e.body as { data: Rec[] }).data);
}

/** Total count per event name (and optional dimension filter) across all reports. */
function total(events: EventOutput[], name: string, pred: (r: Rec) => boolean = () => true): number {
  return recordsOf(events)
    .filter((r) => r.event_name === name && pred(r))
    .reduce((n, r) => n + r.event.count, 0);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function kw(t: Parameters<typeof parseTask>[0], raw: Record<string, unknown>, base: Record<string, unknown> = {}): KeywordConfig {
  return parseTask(t, keywordType, { report_period: '200ms', scan_frequency: '50ms', ...raw }, base);
}

const lines = (prefix: string, n: number): string => Array.from({ length: n }, (_, i) => `${prefix} ${i}\n`).join('');

test('appended lines are matched by rules with named groups; filters apply; one document per key in the reference shape', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'app.log');
  writeFileSync(file, 'ERROR old line before the task started\n');
  const config = kw(t, {
    paths: [join(dir, '*.log')],
    keywords: [
      { name: 'error', pattern: 'ERROR (?P<module>\\w+): (?P<msg>.*)' },
      { name: 'any_error', pattern: 'ERROR' },
    ],
    filter_patterns: ['ignored'],
    target: 'host-a',
  });
  const task = await start(config);
  t.teardown(() => task.stop());
  appendFileSync(file, 'INFO ok\nERROR db: timeout\nERROR db: timeout\nERROR web: 500\nERROR db: ignored here\npartial ERROR');
  await task.rec.waitFor((o) => total(o as EventOutput[], 'any_error') >= 3);
  await sleep(250);
  const events = task.rec.events('keyword');
  t.is(total(events, 'any_error'), 3, 'the old line, the filtered line and the partial line are not counted');
  const db = recordsOf(events).find((r) => r.event_name === 'error' && r.dimension.module === 'db')!;
  t.deepEqual(db.event, { count: 2, content: 'ERROR db: timeout' });
  t.deepEqual(db.dimension, { module: 'db', msg: 'timeout', file_path: file });
  t.is(db.target, 'host-a');
  t.true(Math.abs(db.timestamp - Date.now()) < 5_000 && db.timestamp % 1000 === 0, 'ms unit, second resolution');
  const e = events.find((x) => (x.body as { data: Rec[] }).data[0]!.dimension.module === 'web')!;
  t.is(e.eventType, 'keyword');
  t.is(e.dataId, 1500001);
  t.deepEqual(Object.keys(e.body).sort(), ['data', 'dataid']);
  t.is((e.body as { dataid: number }).dataid, 1500001);
  appendFileSync(file, ' done\n');
  await task.rec.waitFor((o) => total(o as EventOutput[], 'any_error') >= 4);
  t.is(recordsOf(task.rec.events('keyword')).filter((r) => r.event_name === 'any_error').at(-1)!.event.content, 'partial ERROR done', 'the partial line waited for its newline');
});

test('a file created later is found by the rescan and read from its start; exclude_files skips files', async (t) => {
  const dir = tempDir(t);
  const task = await start(kw(t, { paths: [join(dir, '*')], exclude_files: ['\\.skip$'], keywords: [{ name: 'hit', pattern: 'hit' }] }));
  t.teardown(() => task.stop());
  writeFileSync(join(dir, 'new.log'), lines('hit', 5));
  writeFileSync(join(dir, 'other.skip'), lines('hit', 7));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'hit') >= 5);
  await sleep(400);
  t.is(total(task.rec.events('keyword'), 'hit'), 5);
});

test('rotation by rename: the old file is read to its end under its new name, the new file from its start — nothing lost or doubled', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'app.log');
  writeFileSync(file, '');
  const task = await start(kw(t, { paths: [join(dir, 'app.log')], keywords: [{ name: 'n', pattern: '^line' }] }));
  t.teardown(() => task.stop());
  appendFileSync(file, lines('line a', 100));
  renameSync(file, join(dir, 'app.log.1'));
  appendFileSync(join(dir, 'app.log.1'), lines('line b', 20)); // the writer still had the old file open
  writeFileSync(file, lines('line c', 30));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 150);
  await sleep(500);
  const events = task.rec.events('keyword');
  t.is(total(events, 'n'), 150);
  t.is(total(events, 'n', (r) => r.dimension.file_path === file), 150, 'file_path is where the line was read (the old file until the scan saw the rename)');
});

test('rotation by rename into a name the glob matches keeps the offset under the new name', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'svc.log');
  writeFileSync(file, '');
  const task = await start(kw(t, { paths: [join(dir, 'svc.log*')], keywords: [{ name: 'n', pattern: '^l' }] }));
  t.teardown(() => task.stop());
  appendFileSync(file, lines('l1', 10));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 10);
  renameSync(file, `${file}.1`);
  await sleep(200);
  appendFileSync(`${file}.1`, lines('l2', 4));
  writeFileSync(file, lines('l3', 6));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 20);
  await sleep(400);
  const events = task.rec.events('keyword');
  t.is(total(events, 'n'), 20, 'the renamed file was not re-read from the start');
  t.is(total(events, 'n', (r) => r.dimension.file_path === `${file}.1`), 4);
});

test('copy-truncate: a file shorter than the offset is read again from the start', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'ct.log');
  writeFileSync(file, '');
  const task = await start(kw(t, { paths: [join(dir, 'ct.log')], keywords: [{ name: 'n', pattern: '^x' }] }));
  t.teardown(() => task.stop());
  appendFileSync(file, lines('x before', 50));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 50);
  copyFileSync(file, join(dir, 'ct.log.1'));
  truncateSync(file, 0);
  appendFileSync(file, lines('x after', 3));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 53);
  await sleep(300);
  t.is(total(task.rec.events('keyword'), 'n'), 53);
});

test('GBK files are decoded (as GB18030) before matching', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'gbk.log');
  writeFileSync(file, '');
  const task = await start(kw(t, { paths: [file], encoding: 'gbk', keywords: [{ name: 'fail', pattern: '失败：(?P<reason>\\S+)' }] }));
  t.teardown(() => task.stop());
  appendFileSync(file, iconv.encode('登录失败：密码错误\n正常\n登录失败：密码错误\n', 'gbk'));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'fail') >= 2);
  const r = recordsOf(task.rec.events('keyword')).find((x) => x.event_name === 'fail')!;
  t.is(r.dimension.reason, '密码错误');
  t.is(r.event.content, '登录失败：密码错误');
});

test('restart in the middle: offsets persist, nothing is re-read and nothing written while stopped is skipped', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'r.log');
  writeFileSync(file, '');
  const state = new MemoryState();
  const config = kw(t, { paths: [join(dir, '*.log')], keywords: [{ name: 'n', pattern: '^ev' }], report_period: '10s' });
  const first = await start(config, state);
  appendFileSync(file, lines('ev one', 100));
  await sleep(300);
  await first.stop(); // the final report publishes the 100 and commits the offsets
  t.is(total(first.rec.events('keyword'), 'n'), 100);
  appendFileSync(file, lines('ev two', 40)); // written while the agent is down
  writeFileSync(join(dir, 'born-while-down.log'), lines('ev three', 7));
  const second = await start(config, state);
  await sleep(400);
  await second.stop();
  const events = second.rec.events('keyword');
  t.is(total(events, 'n'), 47, 'exactly the 40 appended + 7 in the new file');
  t.deepEqual([...new Set(recordsOf(events).map((r) => r.event.content.split(' ')[1]))].sort(), ['three', 'two']);
});

test('close_inactive closes idle files and reopens them when they change', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'idle.log');
  writeFileSync(file, '');
  const task = await start(kw(t, { paths: [file], close_inactive: '300ms', keywords: [{ name: 'n', pattern: '^z' }] }));
  t.teardown(() => task.stop());
  appendFileSync(file, lines('z1', 2));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 2);
  const old = new Date(Date.now() - 60_000);
  utimesSync(file, old, old);
  await sleep(400);
  appendFileSync(file, lines('z2', 3));
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 5);
  t.is(total(task.rec.events('keyword'), 'n'), 5);
});

test('a task added while the input runs reads existing files from the end minus retain_file_bytes (moved to a line start)', async (t) => {
  const dir = tempDir(t);
  const a = join(dir, 'a.log');
  const b = join(dir, 'b.log');
  writeFileSync(a, '');
  writeFileSync(b, 'hit 1\nhit 2\nhit 3\nhit 4\n');
  const state = new MemoryState();
  const first = await start(kw(t, { paths: [a], keywords: [{ name: 'n', pattern: 'hit' }] }), state);
  t.teardown(() => first.stop());
  const second = await start(kw(t, { paths: [b], keywords: [{ name: 'n', pattern: 'hit' }], retain_file_bytes: 14 }), state);
  t.teardown(() => second.stop());
  await second.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 2);
  await sleep(300);
  t.deepEqual(recordsOf(second.rec.events('keyword')).map((r) => [r.event.count, r.event.content]), [[2, 'hit 4']], 'the last 14 bytes start mid-line: the partial line is skipped');
});

test('time_unit, labels expanded per distinct usable label, long lines cut', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'l.log');
  writeFileSync(file, '');
  const config = kw(
    t,
    { paths: [file], keywords: [{ name: 'n', pattern: '^q' }], time_unit: 's' },
    {
      labels: [
        { bk_target_ip: '10.0.0.1', bk_target_cloud_id: '0', bk_collect_config_id: '9' },
        { bk_target_ip: '10.0.0.1', bk_target_cloud_id: '0', bk_collect_config_id: '9' },
        { bk_target_topo_level: 'module', bk_target_topo_id: '12', bk_collect_config_id: '9' },
        { bk_collect_config_id: '9' },
      ],
    },
  );
  const task = await start(config);
  t.teardown(() => task.stop());
  appendFileSync(file, `q short\nq${'y'.repeat(1_100_000)}\n`);
  await task.rec.waitFor((o) => total(o as EventOutput[], 'n') >= 4);
  const recs = recordsOf(task.rec.events('keyword'));
  t.is(recs.length, 2, 'one key, two usable labels');
  t.deepEqual(recs.map((r) => [r.dimension.bk_target_ip, r.dimension.bk_target_topo_level, r.dimension.bk_target_topo_id]), [['10.0.0.1', '', ''], ['', 'module', '12']]);
  t.is(recs[0]!.event.count, 2);
  t.is(recs[0]!.event.content.length, 1024 * 1024, 'cut at 1 MiB');
  t.true(Math.abs(recs[0]!.timestamp - Date.now() / 1000) < 5, 'seconds');
});

test('config problems name their keys; defaults as the reference cleans them', (t) => {
  t.deepEqual(problemsOf(keywordType, {}).map((p) => p.key), ['paths']);
  t.deepEqual(
    problemsOf(keywordType, { paths: ['/x'], encoding: 'klingon', keywords: [{ pattern: '(' }], filter_patterns: ['['], output_format: 'raw' }).map((p) => p.key).sort(),
    ['encoding', 'filter_patterns[0]', 'keywords[0].name', 'keywords[0].pattern', 'output_format'],
  );
  const c = parseTask(t, keywordType, { paths: [' /var/log/*.log '], keywords: [{ name: 'a', pattern: 'a' }] });
  t.deepEqual(c.paths, ['/var/log/*.log']);
  t.is(c.closeInactiveMs, 3_600_000);
  t.is(c.retainFileBytes, 1024 * 1024);
  t.is(c.timeUnit, 'ms');
  t.is(c.encoding, 'utf-8');
  t.true(c.excludeFiles.some((r) => r.test('/x/a.gz')));
  t.is(parseTask(t, keywordType, { paths: ['/x'], retain_file_bytes: -1 }).retainFileBytes, 0);
  t.is(parseTask(t, keywordType, { paths: ['/x'], encoding: 'GBK' }).encoding, 'gb18030');
});
