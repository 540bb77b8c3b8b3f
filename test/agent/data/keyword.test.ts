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
import { KeywordCounter, keywordType, literalOf, requiredLiteral, unnamedGroups, type KeywordConfig } from '../../../services/agent/tasks/keyword.ts';
import { goRegExp } from '../../../services/agent/host/goregexp.ts';
import type { EventOutput, StateStore } from '../../../services/agent/task.ts';
import { silentLogger } from '../../../services/common/log.ts';
import { LineScanner, MAX_SCAN_BYTES } from '../../../services/agent/tail/bytescan.ts';
import { lineBatch, sharedInput, splitLines } from '../../../services/agent/tail/input.ts';
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

// ---- the literal pre-check and the batch path: same results as running every regex on every line ----

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pieces lines are made of: rule literals and near misses, multi-byte text, invalid and truncated UTF-8, `\r`, separators. */
const FRAGMENTS: readonly (string | readonly number[])[] = [
  'ERROR db: request 42 failed', 'ERROR web: request x failed', 'aa', 'bb', 'ERROR ', 'INFO ', 'db', 'web', ': request ', ': ', 'request ', '42', ' 7', ' failed', ' timeout', 'time', 'out', 'healthcheck', 'SKIP', 'skip',
  '5abc', 'abc', ']xy', 'axy', 'xy', 'Abc', 'bc', 'a{,5}bc', ',5', 'ab.d', 'ab.cd', 'abd', 'xyzz', 'xzwzz', 'xwzz', 'zz', '1.2', '10.0.0.1',
  '失败：', '密码错误', '中文', '😀', '😀😀x', 'x', '\uFFFD', ' ', '\r', '\t', '|', '||', '=', 'k=1', 'end\r', 'end', 'a\rb',
  [0xff], [0xe4], [0xc3], [0xf0, 0x9f], [0xef, 0xbf, 0xbd], [0xe5, 0xa4], [0xed, 0xa0, 0x80],
];

function generateLines(seed: number, n: number, encode: (s: string) => Buffer = (s) => Buffer.from(s)): Buffer[] {
  const rand = rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const parts: Buffer[] = [];
    const k = Math.floor(rand() * 9);
    for (let j = 0; j < k; j++) {
      const f = FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)]!;
      parts.push(typeof f === 'string' ? encode(f) : Buffer.from(f));
    }
    out.push(Buffer.concat(parts));
  }
  return out;
}

/**
 * The documents the reference's processing gives for `lines` (bytes, without newlines): each line decoded
 * on its own, a trailing `\r` removed, any matching filter drops it, then every rule's regex — no pre-checks
 * — and counts + last line per `<file>||<rule>||<group>=<value>||…` key, in first-seen order.
 */
function referenceDocs(config: KeywordConfig, file: string, lines: readonly Buffer[]): unknown[] {
  const cache = new Map<string, { rule: string; count: number; content: string; dimension: Record<string, string> }>();
  for (const bytes of lines) {
    let text = config.encoding === 'utf-8' ? bytes.toString('utf8') : iconv.decode(bytes, config.encoding);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (config.filterPatterns.some((f) => f.re.test(text))) continue;
    for (const rule of config.rules) {
      const m = rule.re.exec(text);
      if (!m) continue;
      let key = `${file}||${rule.name}||`;
      const dimension: Record<string, string> = {};
      for (let i = 1; i < rule.groups.length; i++) {
        const g = rule.groups[i]!;
        if (g === '') continue;
        dimension[g] = m[i] ?? '';
        key += `${g}=${m[i] ?? ''}||`;
      }
      const c = cache.get(key);
      if (c) {
        c.count++;
        c.content = text;
      } else cache.set(key, { rule: rule.name, count: 1, content: text, dimension: { ...dimension, file_path: file } });
    }
  }
  return [...cache.values()].map((c) => ({ dataid: config.dataId, data: [{ event_name: c.rule, event: { count: c.count, content: c.content }, dimension: c.dimension, target: config.target, timestamp: 1_700_000_000_000 }] }));
}

/** Feeds `lines` to `counter` as the input would, in batches of random sizes (to `most` lines). */
function feed(counter: KeywordCounter, file: string, lines: readonly Buffer[], encoding: string, seed: number, most = 300): number {
  const rand = rng(seed);
  let batches = 0;
  for (let i = 0; i < lines.length; batches++) {
    const n = 1 + Math.floor(rand() * most);
    const region = Buffer.concat(lines.slice(i, i + n).flatMap((l, j) => (j === 0 ? [l] : [Buffer.from('\n'), l])));
    counter.batch(file, lineBatch(region, encoding));
    i += n;
  }
  return batches;
}

const TRICKY_RULES = [
  { name: 'error', pattern: 'ERROR (?P<module>\\w+): request \\d+ failed' },
  { name: 'timeout', pattern: 'timeout' },
  { name: 'time', pattern: 'time(out)?' },
  { name: 'posix', pattern: '[[:digit:]]abc' },
  { name: 'bracket', pattern: '[]a]xy' },
  { name: 'hex', pattern: '\\x41bc' },
  { name: 'brace', pattern: 'a{,5}bc' },
  { name: 'dotted', pattern: 'ab\\.c?d' },
  { name: 'group', pattern: 'x(?P<g>y|z)?w?zz' },
  { name: 'dup', pattern: '失败：(?P<reason>\\S*)' },
  { name: 'dup', pattern: '失败：(?P<reason>密码)' },
  { name: 'emoji', pattern: '😀😀+x' },
  { name: 'replacement', pattern: '\uFFFD\uFFFD' },
  { name: 'cr', pattern: 'end\r' },
  { name: 'newline', pattern: 'a\nb' },
  { name: 'pipes', pattern: '(?P<a>[|]*)\\|\\|(?P<b>=?)k' },
];

test('requiredLiteral: a substring every match holds, or none — counted repetitions, Go classes, escapes with arguments', (t) => {
  const cases: [string, string, boolean][] = [
    ['ERROR (?P<module>\\w+): request \\d+ failed', ': request ', false],
    ['timeout', 'timeout', true],
    ['x\\.y\\-z', 'x.y-z', true],
    ['xa{2,3}', '', false],
    ['\\d{1,3}\\.\\d{1,3}', '', false],
    ['[[:digit:]]abc', 'abc', false],
    ['[]a]xy', 'xy', false],
    ['[^]a]zz', 'zz', false],
    ['\\x41bc', 'bc', false],
    ['\\x{263a}bc', 'bc', false],
    ['\\p{Greek}', '', false],
    ['\\pLxy', 'xy', false],
    ['abc?', 'ab', false],
    ['ab*?cd', 'cd', false],
    ['a|b', '', false],
    ['(a|b)cd', 'cd', false],
    ['(?i)abc', '', false],
    ['(?i:ab)cd', 'cd', false],
    ['\\Qa.b\\E', '', false],
    ['a{,5}bc', ',5', false],
    ['^line', 'line', false],
  ];
  for (const [pattern, literal, exact] of cases) {
    t.is(requiredLiteral(pattern), literal, pattern);
    t.deepEqual(literalOf(pattern), { literal, exact }, pattern);
  }
});

test('unnamedGroups makes named groups plain and leaves classes, escapes and lookbehinds alone', (t) => {
  t.is(unnamedGroups('ERROR (?<module>\\w+): (?<msg>.*)'), 'ERROR (\\w+): (.*)');
  t.is(unnamedGroups('[(?<x>]a(?<y>b)'), '[(?<x>]a(b)');
  t.is(unnamedGroups('\\(?<z>c)'), '\\(?<z>c)');
  t.is(unnamedGroups('(?<=a)(?<!b)(?:c)(?<n1>d)'), '(?<=a)(?<!b)(?:c)(d)');
  t.is(unnamedGroups('[\\](?<q>]x'), '[\\](?<q>]x');
});

test('requiredLiteral holds on generated lines: every match contains the literal; an exact literal matches exactly the lines holding it', (t) => {
  const patterns = [...TRICKY_RULES.map((r) => r.pattern), 'xa{2,3}', '\\d{1,3}\\.\\d{1,3}', '[^]a]xy', '\\pLbc', '(?P<k>[a-z]+)=(?P<v>\\d+)', 'e\\{,5\\}', 'ab*?d'];
  const texts = generateLines(7, 20_000).map((b) => b.toString('utf8'));
  let matched = 0;
  for (const pattern of patterns) {
    const re = goRegExp(pattern);
    const { literal, exact } = literalOf(pattern);
    for (const text of texts) {
      const m = re.test(text);
      if (m) matched++;
      if (m && literal !== '') t.true(text.includes(literal), `${pattern} matched ${JSON.stringify(text)} without ${JSON.stringify(literal)}`);
      if (exact) t.is(m, text.includes(literal));
    }
  }
  t.true(matched > 5_000, 'the lines exercise the patterns');
});

/** 32 two-character literals, none containing another: more than a line scanner takes. */
const MANY_RULES = ['ER', 'RR', 'RO', 'OR', 'db', 'we', 'eb', 're', 'eq', 'qu', 'ue', 'es', 'st', 'ti', 'im', 'me', 'ou', 'ut', 'fa', 'ai', 'il', 'le', 'ed', 'he', 'ea', 'al', 'lt', 'th', 'hc', 'ch', 'ck', 'ab'].map((p, i) => ({ name: `many${i % 7}`, pattern: p }));

test('batch: the byte scan, the text search, the plain path and line by line give the same documents as every regex on every line (generated lines, UTF-8)', (t) => {
  const file = '/var/log/x||y.log';
  const variants = [
    // a literal with U+FFFD: batches with invalid UTF-8 are searched in their text, valid ones in bytes
    { keywords: TRICKY_RULES, filter_patterns: ['healthcheck', '(?i)skip'] },
    // no U+FFFD: every batch in bytes, invalid UTF-8 included
    { keywords: TRICKY_RULES.filter((r) => r.name !== 'replacement'), filter_patterns: ['失败：密'] },
    { keywords: TRICKY_RULES.slice(0, 2), filter_patterns: ['healthcheck'] },
    { keywords: [{ name: 'newline', pattern: 'a\nb' }] },
    // more literals than a scanner takes: the text search
    { keywords: MANY_RULES, filter_patterns: ['skip'] },
    // a rule without a literal: every line is run
    { keywords: [...TRICKY_RULES, { name: 'kv', pattern: '(?P<k>[a-z]+)=(?P<v>\\d+)' }, { name: 'backref', pattern: '(?P<w>[a-z])\\1' }, { name: 'kref', pattern: '(?P<w>[a-z])\\k<w>' }], filter_patterns: ['\\d{2}'] },
  ];
  const hitRules = new Set<string>();
  for (const [v, raw] of variants.entries()) {
    const config = kw(t, { paths: ['/x'], ...raw });
    for (let seed = 1; seed <= 4; seed++) {
      const lines = generateLines(seed * 100 + v, 3_000);
      const bytes = new KeywordCounter(config);
      const small = new KeywordCounter(config);
      const text = new KeywordCounter(config, { bytes: false });
      const plain = new KeywordCounter(config, { precheck: false });
      const single = new KeywordCounter(config, { precheck: false });
      t.is(bytes.prechecked, v < 5, `variant ${v} pre-checks`);
      t.is(bytes.bytewise, v < 3, `variant ${v} scans bytes`);
      t.false(text.bytewise);
      t.false(plain.prechecked);
      const batches = feed(bytes, file, lines, 'utf-8', seed);
      const smallBatches = feed(small, file, lines, 'utf-8', seed + 2, 4);
      feed(text, file, lines, 'utf-8', seed + 3);
      feed(plain, file, lines, 'utf-8', seed + 1);
      for (const l of splitLines(Buffer.concat(lines.flatMap((l, i) => (i === 0 ? [l] : [Buffer.from('\n'), l]))).toString('utf8'))) single.line(file, l);
      const expected = referenceDocs(config, file, lines);
      const now = 1_700_000_000_000;
      t.deepEqual(bytes.drain(now), expected, `variant ${v} seed ${seed}: byte scan`);
      t.deepEqual(small.drain(now), expected, `variant ${v} seed ${seed}: byte scan, small batches`);
      t.deepEqual(text.drain(now), expected, `variant ${v} seed ${seed}: text search`);
      t.deepEqual(plain.drain(now), expected, `variant ${v} seed ${seed}: plain`);
      t.deepEqual(single.drain(now), expected, `variant ${v} seed ${seed}: line by line`);
      for (const c of [bytes, small, text, plain]) t.is(c.lines, lines.length);
      t.is(bytes.hits, plain.hits);
      t.is(text.byteBatches, 0);
      if (v === 0) t.true(small.byteBatches > smallBatches / 10 && small.byteBatches < smallBatches, 'the valid UTF-8 batches in bytes, the others in text');
      if (v === 1 || v === 2) t.deepEqual([bytes.byteBatches, small.byteBatches], [batches, smallBatches], 'every batch in bytes');
      for (const d of expected) hitRules.add((d as { data: Rec[] }).data[0]!.event_name);
    }
  }
  const names = [...new Set(TRICKY_RULES.map((r) => r.name))].filter((n) => n !== 'newline');
  t.deepEqual([...hitRules].sort(), [...names, 'kv', 'backref', 'kref', ...new Set(MANY_RULES.map((r) => r.name))].sort(), 'every rule (but the one that cannot match a line) was hit');
});

/** Lines of `piece` holding any of `literals`, with the bits of those they hold; and its newlines (bytes, by hand). */
function scanReference(piece: Buffer, literals: readonly Buffer[]): { newlines: number; records: number[][] } {
  const records: number[][] = [];
  let newlines = 0;
  for (let start = 0, i = 0; i <= piece.length; i++) {
    if (i < piece.length && piece[i] !== 10) continue;
    const line = piece.subarray(start, i);
    let found = 0;
    for (const [k, l] of literals.entries()) if (line.indexOf(l) >= 0) found |= 1 << k;
    if (found !== 0) records.push([start, i, found]);
    if (i < piece.length) newlines++;
    start = i + 1;
  }
  return { newlines, records };
}

test('LineScanner: newlines and the lines holding literals (with which) as a by-hand search finds them — random bytes and literals, short to 70 bytes, pieces to MAX_SCAN_BYTES', (t) => {
  const rand = rng(11);
  const alphabet = Buffer.from('ab\n\r:xyz \x00\xff\xe4');
  const pick = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]!));
  let records = 0;
  for (let round = 0; round < 600; round++) {
    const literals: Buffer[] = [];
    const wanted = 1 + Math.floor(rand() * (round % 50 === 0 ? 30 : 4));
    for (let tries = 0; literals.length < wanted && tries < 1000; tries++) {
      const l = Buffer.from(pick(1 + Math.floor(rand() * (rand() < 0.2 ? 70 : 4))).filter((b) => b !== 10));
      if (l.length > 0 && !literals.some((o) => o.includes(l) || l.includes(o))) literals.push(l);
    }
    const scanner = new LineScanner(literals);
    for (let piece = 0; piece < 4; piece++) {
      const bytes = pick(piece === 0 && round % 100 === 0 ? MAX_SCAN_BYTES : Math.floor(rand() * (rand() < 0.05 ? MAX_SCAN_BYTES : 400)));
      // a literal or two planted, some at a piece's start or end
      for (let j = 0; j < 3; j++) {
        const l = literals[Math.floor(rand() * literals.length)]!;
        if (l.length <= bytes.length) l.copy(bytes, j === 0 ? 0 : j === 1 ? bytes.length - l.length : Math.floor(rand() * (bytes.length - l.length + 1)));
      }
      const n = scanner.scan(bytes);
      const got = Array.from({ length: n }, (_, r) => [...scanner.records.subarray(scanner.at + 3 * r, scanner.at + 3 * r + 3)]);
      const want = scanReference(bytes, literals);
      records += n;
      if (JSON.stringify(got) !== JSON.stringify(want.records) || scanner.newlines !== want.newlines) {
        t.fail(`literals ${JSON.stringify(literals.map((l) => [...l]))}, piece of ${bytes.length} bytes: got ${scanner.newlines} newlines, ${JSON.stringify(got).slice(0, 300)}; want ${want.newlines}, ${JSON.stringify(want.records).slice(0, 300)}`);
        return;
      }
    }
  }
  t.true(records > 10_000);
  t.throws(() => new LineScanner([Buffer.from('ab')]).scan(Buffer.alloc(MAX_SCAN_BYTES + 1)), { instanceOf: RangeError });
  t.throws(() => new LineScanner([]));
  t.throws(() => new LineScanner([Buffer.from('a\nb')]));
});

test('batch: the pre-check on GBK text gives the same documents as every regex on every line', (t) => {
  const config = kw(t, { paths: ['/x'], encoding: 'gbk', keywords: [{ name: 'fail', pattern: '失败：(?P<reason>\\S+)' }, { name: 'cn', pattern: '中文' }, { name: 'err', pattern: 'ERROR' }], filter_patterns: ['密码错误x'] });
  const encode = (s: string): Buffer => iconv.encode(s, 'gb18030');
  for (let seed = 1; seed <= 3; seed++) {
    const lines = generateLines(seed, 3_000, encode);
    const fast = new KeywordCounter(config);
    t.true(fast.prechecked);
    feed(fast, '/g.log', lines, 'gb18030', seed);
    const expected = referenceDocs(config, '/g.log', lines);
    t.true(expected.length > 3);
    t.deepEqual(fast.drain(1_700_000_000_000), expected);
  }
});

test('the input hands the same lines to an onLines and an onBatch subscriber; the task counts a file appended in large and odd pieces as every regex on every line', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'gen.log');
  writeFileSync(file, '');
  const config = kw(t, { paths: [file], keywords: TRICKY_RULES, filter_patterns: ['healthcheck'], report_period: '150ms' });
  const state = new MemoryState();
  const task = await start(config, state);
  t.teardown(() => task.stop());
  const input = sharedInput(state, silentLogger);
  const viaLines: string[] = [];
  const viaBatch: string[] = [];
  const unsubscribe = input.subscribe({ id: 'lines', paths: [file], exclude: [], encoding: 'utf-8', closeInactiveMs: 0, retainFileBytes: 0, onLines: (_f, ls) => viaLines.push(...ls) });
  const unsubscribe2 = input.subscribe({ id: 'batch', paths: [file], exclude: [], encoding: 'utf-8', closeInactiveMs: 0, retainFileBytes: 0, onBatch: (_f, b) => viaBatch.push(...b.lines()) });
  t.teardown(async () => {
    await unsubscribe();
    await unsubscribe2();
  });
  await sleep(200);
  // lines longer than a dispatch piece (64 KiB) among them; the first 1.2 MB appended at once (a full 1 MiB read)
  const lines = generateLines(42, 60_000);
  for (const i of [10, 20_000, 40_001, 59_999]) lines[i] = Buffer.concat([lines[i]!, Buffer.from(`timeout ${'y'.repeat(70_000 + i)} 失败：长`)]);
  const content = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]));
  t.true(content.length > 1_400_000);
  const rand = rng(5);
  appendFileSync(file, content.subarray(0, 1_200_000));
  for (let at = 1_200_000; at < content.length; ) {
    const n = 1 + Math.floor(rand() * 40_000);
    appendFileSync(file, content.subarray(at, at + n));
    at += n;
    if (rand() < 0.3) await sleep(20);
  }
  const expected = referenceDocs(config, file, lines) as { data: Rec[] }[];
  const expectedTotal = expected.reduce((n, d) => n + d.data[0]!.event.count, 0);
  const allRecs = (): Rec[] => recordsOf(task.rec.events('keyword'));
  await task.rec.waitFor(() => allRecs().reduce((n, r) => n + r.event.count, 0) >= expectedTotal, 20_000);
  await sleep(300);
  const got = new Map<string, { count: number; content: string }>();
  for (const r of allRecs()) {
    const key = `${r.event_name} ${JSON.stringify(r.dimension)}`;
    const g = got.get(key);
    got.set(key, { count: (g?.count ?? 0) + r.event.count, content: r.event.content });
  }
  const want = new Map(expected.map((d) => [`${d.data[0]!.event_name} ${JSON.stringify(d.data[0]!.dimension)}`, { count: d.data[0]!.event.count, content: d.data[0]!.event.content }]));
  t.deepEqual([...got.entries()].sort(), [...want.entries()].sort());
  await waitUntil(() => viaLines.length >= lines.length && viaBatch.length >= lines.length);
  const decoded = lines.map((b) => b.toString('utf8').replace(/\r$/, ''));
  t.deepEqual(viaLines, decoded);
  t.deepEqual(viaBatch, decoded);
});

async function waitUntil(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(20);
  }
}
