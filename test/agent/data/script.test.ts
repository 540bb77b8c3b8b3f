/**
 * script (reference §A5.7, errata 8/13, gather-up §A7.2) against real scripts the tests write: good, bad,
 * blank, huge and slow output, a script whose forked child outlives it (killed with the process group),
 * pipelines, `user_env` and `$VAR` expansion, the working directory, exit failures, missing executables.
 * Outputs are checked through a recording TaskContext (MetricBatch records with the reference's fields and
 * gather-up codes).
 */
import test from 'ava';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keepOneDimension, parseCommandLine, scriptType, type ScriptConfig, ScriptOutput } from '../../../services/agent/tasks/script.ts';
import { gatherUps, parseTask, problemsOf, recordingContext, tempDir } from './helpers.ts';

function script(dir: string, name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

async function runScript(config: ScriptConfig, opts: { keepOneDimension?: boolean; raw?: Record<string, unknown> } = {}): Promise<ReturnType<typeof recordingContext>> {
  const rec = recordingContext(opts);
  await scriptType.create(config).run(rec.ctx);
  return rec;
}

test('good output: samples grouped by timestamp and labels into flat records; gather-up 0 with value groups + 1', async (t) => {
  const dir = tempDir(t);
  const nowS = Math.floor(Date.now() / 1000);
  const cmd = script(
    dir,
    'good.sh',
    `cat <<'EOF'
# HELP cpu_usage CPU usage
# TYPE cpu_usage gauge
cpu_usage{cpu_name="core1"} 90
cpu_idle{cpu_name="core1"} 10
cpu_usage{cpu_name="core2"} 70 ${nowS - 30}

disk_used{mount="/"} 1.5e3 ${(nowS - 60) * 1000}
req_total{path="/a"} 3 # {trace_id="abc",span_id="def"} 1 ${nowS - 5}.5
EOF`,
  );
  const config = parseTask(t, scriptType, { command: cmd }, { labels: [{ bk_target_ip: '10.0.0.1', bk_target_cloud_id: '0' }] });
  t.is(config.timestampUnit, 's');
  const before = Date.now();
  const rec = await runScript(config);
  const batches = rec.metrics('script');
  t.is(batches.length, 1, 'one MetricBatch per run');
  const batch = batches[0]!;
  t.is(batch.dataId, 1500001);
  t.is(batch.target, '0:127.0.0.1');
  const byMetric = (name: string) => batch.records.filter((r) => name in r.metrics);
  const core1 = byMetric('cpu_usage').find((r) => r.dimensions.cpu_name === 'core1')!;
  t.deepEqual(core1.metrics, { cpu_usage: 90, cpu_idle: 10 }, 'same timestamp and labels → one record');
  t.deepEqual(core1.dimensions, { cpu_name: 'core1', bk_biz_id: '2', bk_target_ip: '10.0.0.1', bk_target_cloud_id: '0' });
  t.true(core1.timestamp >= Math.floor(before / 1000) * 1000 && core1.timestamp <= Date.now(), 'no timestamp → now, in s');
  t.is(core1.timestamp % 1000, 0, 'timestamp_unit s');
  t.is(byMetric('cpu_usage').find((r) => r.dimensions.cpu_name === 'core2')!.timestamp, (nowS - 30) * 1000, 'seconds detected');
  t.is(byMetric('disk_used')[0]!.timestamp, (nowS - 60) * 1000, 'milliseconds detected');
  const req = byMetric('req_total')[0]!;
  t.is(req.dimensions.bk_trace_id, 'abc');
  t.is(req.dimensions.bk_span_id, 'def');
  t.is(req.dimensions.bk_trace_value, '1');
  t.is(req.dimensions.bk_trace_timestamp, String(nowS - 5), 'exemplar timestamp in the unit');
  t.is(batch.records.length, 4);
  t.deepEqual(
    gatherUps(rec.outputs).map((g) => [g.code, g.name, g.value]),
    [['0', 'Ok', 5]],
  );
  const gu = gatherUps(rec.outputs)[0]!;
  t.deepEqual(gu.dims, { task_id: '42', bk_collect_type: 'script', bk_biz_id: '2', bkm_up_code: '0', bkm_up_code_name: 'Ok', bk_target_ip: '10.0.0.1', bk_target_cloud_id: '0' });
});

test('label groups: every record repeated once per group', async (t) => {
  const dir = tempDir(t);
  const cmd = script(dir, 'g.sh', 'echo "m 1"');
  const config = parseTask(t, scriptType, { command: cmd }, { labels: [{ bk_target_ip: '1.1.1.1' }, { bk_target_ip: '2.2.2.2' }] });
  const rec = await runScript(config);
  t.deepEqual(
    rec.metrics('script')[0]!.records.map((r) => r.dimensions.bk_target_ip),
    ['1.1.1.1', '2.2.2.2'],
  );
  t.is(gatherUps(rec.outputs)[0]!.value, 2, 'value counts groups, not label copies');
});

test('bad lines: valid lines still sent, NaN/Inf rejected, gather-up 2502', async (t) => {
  const dir = tempDir(t);
  const cmd = script(dir, 'bad.sh', `echo 'ok_metric 1'\necho 'not a metric line'\necho 'nan_metric NaN'\necho 'inf_metric +Inf'\necho 'broken{a="b} 1' >&2\necho 'ok_two{x="y"} 2'`);
  const rec = await runScript(parseTask(t, scriptType, { command: cmd }));
  t.deepEqual(
    rec.metrics('script')[0]!.records.map((r) => r.metrics).sort((a, b) => Object.keys(a)[0]!.localeCompare(Object.keys(b)[0]!)),
    [{ ok_metric: 1 }, { ok_two: 2 }],
  );
  t.deepEqual(gatherUps(rec.outputs).map((g) => [g.code, g.name, g.value]), [['2502', 'InvalidPromFormat', 1]]);
});

test('stderr lines are parsed too (the reference captures stdout and stderr in one buffer)', async (t) => {
  const dir = tempDir(t);
  const cmd = script(dir, 'err.sh', `echo 'from_stdout 1'\necho 'from_stderr 2' >&2`);
  const rec = await runScript(parseTask(t, scriptType, { command: cmd }));
  const names = rec.metrics('script')[0]!.records.flatMap((r) => Object.keys(r.metrics)).sort();
  t.deepEqual(names, ['from_stderr', 'from_stdout']);
});

test('blank output → 2303 and no series', async (t) => {
  const dir = tempDir(t);
  const cmd = script(dir, 'blank.sh', `printf '\\n   \\n\\t\\n'`);
  const rec = await runScript(parseTask(t, scriptType, { command: cmd }));
  t.deepEqual(rec.metrics('script'), []);
  t.deepEqual(gatherUps(rec.outputs).map((g) => [g.code, g.name]), [['2303', 'ScriptNoOutput']]);
});

test('huge output: 60 000 distinct series in records of metrics_batch_size groups', async (t) => {
  const dir = tempDir(t);
  const cmd = script(dir, 'huge.sh', `i=0; awk 'BEGIN { for (i = 0; i < 60000; i++) printf "huge_metric{idx=\\"%d\\",pad=\\"%s\\"} %d\\n", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i }'`);
  const rec = await runScript(parseTask(t, scriptType, { command: cmd }), { raw: { metrics_batch_size: 5000 } });
  const batches = rec.metrics('script');
  t.is(batches.length, 12);
  t.is(batches.reduce((n, b) => n + b.records.length, 0), 60_000);
  const last = batches[11]!.records.at(-1)!;
  t.is(last.metrics.huge_metric, 59_999);
  t.deepEqual(gatherUps(rec.outputs).map((g) => [g.code, g.value]), [['0', 60_001]]);
});

test('slow script: killed at the timeout, gather-up 2304, no series', async (t) => {
  const dir = tempDir(t);
  const cmd = script(dir, 'slow.sh', `echo 'early 1'\nsleep 30\necho 'late 2'`);
  const config = parseTask(t, scriptType, { command: cmd }, { timeoutMs: 700 });
  const started = Date.now();
  const rec = await runScript(config);
  const took = Date.now() - started;
  t.true(took >= 650 && took < 3_500, `returned after the timeout and the kill (${took} ms)`);
  t.deepEqual(rec.metrics('script'), [], 'a timed-out run sends no series (the reference discards its output)');
  t.deepEqual(gatherUps(rec.outputs).map((g) => [g.code, g.name]), [['2304', 'ScriptRunTimeout']]);
});

test('a forked child that outlives the script keeps its stdout open: the run times out and the whole process group is killed', async (t) => {
  const dir = tempDir(t);
  const pidFile = join(dir, 'child.pid');
  const cmd = script(dir, 'fork.sh', `sh -c 'echo $$ > ${pidFile}; sleep 60; echo orphan 1' &\necho 'parent_metric 1'\nexit 0`);
  const rec = await runScript(parseTask(t, scriptType, { command: cmd }, { timeoutMs: 800 }));
  t.deepEqual(gatherUps(rec.outputs).map((g) => g.code), ['2304']);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  t.true(pid > 0);
  // Dead: gone, or a zombie (killed, not yet reaped by the init process it was handed to — which may take
  // a while: kill(pid, 0) still succeeds on a zombie).
  const dead = (): boolean => {
    try {
      return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return true;
    }
  };
  for (let i = 0; i < 150 && !dead(); i++) await new Promise((r) => setTimeout(r, 20));
  t.true(dead(), 'the child was killed with the group');
});

test('exit status ≠ 0 → 2301; a missing executable → 2301 without starting anything', async (t) => {
  const dir = tempDir(t);
  const failing = script(dir, 'fail.sh', `echo 'm 1'\nexit 3`);
  let rec = await runScript(parseTask(t, scriptType, { command: failing }));
  t.deepEqual(rec.metrics('script'), []);
  t.deepEqual(gatherUps(rec.outputs).map((g) => [g.code, g.name]), [['2301', 'ScriptRunFailed']]);
  rec = await runScript(parseTask(t, scriptType, { command: `${join(dir, 'nope.sh')} arg` }));
  t.deepEqual(gatherUps(rec.outputs).map((g) => g.code), ['2301']);
  rec = await runScript(parseTask(t, scriptType, { command: `echo 'm 1' | no-such-binary-here` }));
  t.deepEqual(gatherUps(rec.outputs).map((g) => g.code), ['2301']);
});

test('pipelines, user_env, $VAR expansion (user_env before the agent env) and work_dir', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'data.txt'), 'b_metric 2\na_metric 1\n');
  const config = parseTask(t, scriptType, {
    command: 'cat data.txt | sort | sed "s/metric/$SUFFIX/" | grep ${KEEP}',
    user_env: { SUFFIX: 'value', KEEP: 'a_' },
    work_dir: dir,
  });
  const rec = await runScript(config);
  t.deepEqual(rec.metrics('script')[0]!.records.map((r) => r.metrics), [{ a_value: 1 }]);
  const envScript = script(dir, 'env.sh', `echo "env_metric{from=\\"$FROM_ENV\\",home=\\"$HOME\\"} 1"`);
  const rec2 = await runScript(parseTask(t, scriptType, { command: envScript, user_env: { FROM_ENV: 'user_env' } }));
  t.is(rec2.metrics('script')[0]!.records[0]!.dimensions.from, 'user_env', 'user_env is exported to the process');
  t.is(rec2.metrics('script')[0]!.records[0]!.dimensions.home, process.env.HOME ?? '');
});

test('timestamp_unit ms and ns; unknown units fall back to ms (reference handler fallback)', async (t) => {
  const dir = tempDir(t);
  const nowMs = Date.now() - 1234;
  const cmd = script(dir, 'ts.sh', `echo 'm 1 ${nowMs}'`);
  for (const [unit, expected] of [['ms', nowMs], ['ns', nowMs], ['s', Math.floor(nowMs / 1000) * 1000], ['weird', nowMs]] as const) {
    const config = parseTask(t, scriptType, { command: cmd, timestamp_unit: unit });
    const rec = await runScript(config);
    t.is(rec.metrics('script')[0]!.records[0]!.timestamp, expected, unit);
  }
});

test('keep_one_dimension keeps a metric only in the first group with the same dimension names', (t) => {
  const out = new ScriptOutput('s', Date.now(), 60_000);
  for (const l of ['a{x="1"} 1', 'b{x="1"} 2', 'a{x="2"} 3', 'c{x="2"} 4', 'a{y="1"} 5']) out.line(l);
  const kept = keepOneDimension(out.groups());
  t.deepEqual(
    kept.map((g) => [g.labels, g.metrics]),
    [
      [{ x: '1' }, { a: 1, b: 2 }],
      [{ x: '2' }, { c: 4 }],
      [{ y: '1' }, { a: 5 }],
    ],
  );
});

test('command line: shell words, quotes, escapes, $VAR splitting; unsupported shell syntax is a config problem', (t) => {
  const env = (n: string): string => ({ A: 'x y', B: 'b' })[n] ?? '';
  t.deepEqual(parseCommandLine(`echo 'a b' "c $B" d\\ e $A`, env), [['echo', 'a b', 'c b', 'd e', 'x', 'y']]);
  t.deepEqual(parseCommandLine(`a|b  |  c -x`, env), [['a'], ['b'], ['c', '-x']]);
  t.deepEqual(parseCommandLine(`echo '$A' "\${B}x"`, env), [['echo', '$A', 'bx']]);
  t.deepEqual(parseCommandLine(`echo $UNSET end`, env), [['echo', 'end']]);
  for (const bad of ['a; b', 'a && b', 'a > f', 'a < f', 'a &', 'echo `id`', 'echo $(id)', '"unterminated', "'x", 'a | | b', '| a', 'a |', '']) {
    t.throws(() => parseCommandLine(bad, env), undefined, bad);
  }
  t.deepEqual(problemsOf(scriptType, { command: 'a; b' }).map((p) => p.key), ['command']);
  t.deepEqual(problemsOf(scriptType, {}).map((p) => p.key), ['command']);
  t.deepEqual(problemsOf(scriptType, { command: '/bin/true', time_offset: 'soon' }).map((p) => p.key), ['time_offset']);
});

test('stop while running: the process group is killed and nothing is sent', async (t) => {
  const dir = tempDir(t);
  const marker = join(dir, 'marker');
  const cmd = script(dir, 'long.sh', `sleep 2\ntouch ${marker}`);
  const rec = recordingContext();
  const run = scriptType.create(parseTask(t, scriptType, { command: cmd })).run(rec.ctx);
  setTimeout(() => rec.controller.abort(new DOMException('task removed', 'AbortError')), 200);
  await run;
  t.deepEqual(rec.outputs, []);
  await new Promise((r) => setTimeout(r, 2_300));
  t.false(existsSync(marker), 'the script was killed');
});
