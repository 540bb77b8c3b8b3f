/**
 * The schedulers on an injected clock (§A2 and errata 1, 2, 3, 10, 11): alignment, ordering, catch-up
 * after a stall, overlap and its guard, persistence across a restart, reload by identity, isolation of
 * throwing and hanging tasks, the listen / keyword / check / cron schedulers, concurrency limits.
 */
import test from 'ava';
import { silentLogger } from '../../services/common/log.ts';
import { ManualClock, settle } from '../../services/agent/clock.ts';
import { alignOffsetMs, checkTimeKey, formatCheckTime, goTruncate, GO_EPOCH_OFFSET_MS, initialCheckTime } from '../../services/agent/schedulers/align.ts';
import { CheckScheduler } from '../../services/agent/schedulers/check.ts';
import { CronScheduler } from '../../services/agent/schedulers/cron.ts';
import { DaemonScheduler } from '../../services/agent/schedulers/daemon.ts';
import { keywordScheduler } from '../../services/agent/schedulers/keyword.ts';
import { ListenScheduler } from '../../services/agent/schedulers/listen.ts';
import { ConcurrencyLimiter, WeightedSemaphore } from '../../services/agent/schedulers/semaphore.ts';
import { configured, probeTypes, recordingEnv } from './kit.ts';

const T0 = Date.UTC(2024, 0, 1, 0, 0, 0); // a minute boundary, also a multiple of every divisor of a day

function daemon(clock: ManualClock, env = recordingEnv(clock)) {
  return { env, scheduler: new DaemonScheduler({ env, state: env.state, checkIntervalMs: 500, logger: silentLogger }) };
}

test('alignment: Go Truncate counts from year 1, not from the Unix epoch (errata 1)', (t) => {
  t.is(GO_EPOCH_OFFSET_MS, 62_135_596_800_000);
  // Periods dividing a day agree with epoch alignment.
  const t1 = T0 + 37_123;
  t.is(goTruncate(t1, 60_000), T0);
  t.is(goTruncate(t1, 10_000), T0 + 30_000);
  // 7 s: 62 135 596 800 mod 7 = 4, so Go's grid is 4 s off the epoch's (3 s mod 7).
  t.is(62_135_596_800 % 7, 4);
  const epochGrid7 = t1 - (t1 % 7_000);
  t.is(goTruncate(t1, 7_000), t1 - ((t1 + GO_EPOCH_OFFSET_MS) % 7_000));
  t.not(goTruncate(t1, 7_000), epochGrid7);
  t.is(((goTruncate(t1, 7_000) - epochGrid7) % 7_000 + 7_000) % 7_000, 3_000);
  // 70 s: 60 s off.
  t.is(62_135_596_800 % 70, 60);
  const epochGrid70 = t1 - (t1 % 70_000);
  t.is(((goTruncate(t1, 70_000) - epochGrid70) % 70_000 + 70_000) % 70_000, 10_000);
});

test('alignment: the per-task offset (taskID + second) mod 30, int32 and sign-keeping like Go', (t) => {
  // Period 60 s: a stable second inside every minute.
  t.is(initialCheckTime(T0 + 42_000, 60_000, 101, undefined), T0 + 11_000);
  t.is(initialCheckTime(T0 + 42_000, 60_000, 88, undefined), T0 + 28_000);
  t.is(initialCheckTime(T0 + 42_000, 60_000, 30, undefined), T0);
  // Errata 2: under a minute the offset follows the window's second and may exceed the period.
  t.is(initialCheckTime(T0 + 41_000, 10_000, 25, undefined), T0 + 40_000 + 5_000, '(25 + 40) mod 30 = 5');
  t.is(initialCheckTime(T0 + 31_000, 10_000, 25, undefined), T0 + 30_000 + 25_000, '(25 + 30) mod 30 = 25 s, more than the 10 s period');
  // int32 wrap-around of taskID + second, then Go's remainder keeps the sign: a negative offset.
  t.is(alignOffsetMs(2_147_483_647, T0 + 5_000), -4_000);
  t.is(alignOffsetMs(-7, T0), -7_000);
});

test('alignment: a stored check time not in the future and at most one period old is continued; otherwise ignored', (t) => {
  const now = T0 + 75_000;
  t.is(initialCheckTime(now, 60_000, 101, formatCheckTime(T0 + 71_000)), T0 + 120_000 + 11_000, 'stored + period, then aligned');
  t.is(initialCheckTime(now, 60_000, 101, formatCheckTime(now + 1_000)), T0 + 60_000 + 11_000, 'future: ignored');
  t.is(initialCheckTime(now, 60_000, 101, formatCheckTime(now - 61_000)), T0 + 60_000 + 11_000, 'older than a period: ignored');
  t.is(initialCheckTime(now, 60_000, 101, 'yesterday'), T0 + 60_000 + 11_000, 'malformed: ignored');
  t.is(formatCheckTime(T0 + 71_999), '2024-01-01T00:01:11Z');
});

test('daemon: due jobs start in check-time order on the tick after their time, every period', async (t) => {
  const clock = new ManualClock(T0 + 1_000);
  const { types, registry } = probeTypes();
  const { scheduler } = daemon(clock);
  // period 60 s: offsets 3 s, 1 s, 2 s into each minute
  scheduler.start([
    configured(types, 'probe', { taskId: 3, periodMs: 60_000 }),
    configured(types, 'probe', { taskId: 1, periodMs: 60_000 }),
    configured(types, 'probe', { taskId: 2, periodMs: 60_000 }),
  ]);
  await clock.advance(125_000);
  await scheduler.stop(1_000);
  const runs = registry.created.flatMap((task) => task.runs.map((r) => ({ id: task.config.taskId, at: r.at }))).sort((a, b) => a.at - b.at);
  t.deepEqual(runs.map((r) => r.id), [1, 2, 3, 1, 2, 3, 1, 2, 3]);
  t.deepEqual(runs.map((r) => r.at - T0), [1_500, 2_000, 3_000, 61_000, 62_000, 63_000, 121_000, 122_000, 123_000], 'the first tick is 500 ms after the start');
});

test('daemon: after a stall a job catches up, one run per tick (next = previous + period), then keeps its cadence', async (t) => {
  const clock = new ManualClock(T0);
  const { types, registry } = probeTypes();
  const { scheduler } = daemon(clock);
  scheduler.start([configured(types, 'probe', { taskId: 30, periodMs: 10_000 })]);
  await clock.advance(20_500); // runs at 0, 10, 20 s
  const task = registry.created[0];
  t.is(task?.runs.length, 3);
  clock.jump(35_000); // the process stalled for 35 s: now 55.5 s, check times 30, 40, 50 s are due
  await clock.advance(1_600);
  const atTicks = (task?.runs ?? []).slice(3).map((r) => r.at - T0);
  t.deepEqual(atTicks, [55_500, 56_000, 56_500], 'the three missed check times run on consecutive ticks');
  await clock.advance(10_000);
  t.deepEqual((task?.runs ?? []).slice(6).map((r) => r.at - T0), [60_000], 'then back on the 10 s grid');
  await scheduler.stop(1_000);
});

test('daemon: runs of a slow task overlap as in the reference; a skipIfRunning type skips while one is going', async (t) => {
  const clock = new ManualClock(T0);
  const { types, registry } = probeTypes();
  let running = 0;
  let peak = 0;
  const slow = async (ctx: { sleep(ms: number): Promise<void> }): Promise<void> => {
    running++;
    peak = Math.max(peak, running);
    try {
      await ctx.sleep(15_000);
    } finally {
      running--;
    }
  };
  registry.behaviours.solo = slow;
  registry.behaviours.guarded = slow;
  const { scheduler } = daemon(clock);
  // single-instance tasks without a timeout: deadline 2 × period = 20 s, so a 15 s run is not cut
  scheduler.start([configured(types, 'solo', { taskId: 30, periodMs: 10_000, timeoutMs: 0 })]);
  await clock.advance(40_500);
  await scheduler.stop(1_000);
  t.is(peak, 2, 'a 15 s run every 10 s: two at a time');
  t.is(registry.created[0]?.runs.length, 5);

  peak = 0;
  const clock2 = new ManualClock(T0);
  const env2 = recordingEnv(clock2);
  const other = daemon(clock2, env2);
  other.scheduler.start([configured(types, 'guarded', { taskId: 30, periodMs: 10_000, timeoutMs: 0 })]);
  await clock2.advance(40_500);
  await other.scheduler.stop(1_000);
  t.is(peak, 1);
  const guarded = registry.created.find((x) => x.config.type === 'guarded');
  t.is(guarded?.runs.length, 3, 'runs at 0.5, 20 and 40 s; 10 and 30 s skipped');
  t.is(env2.runs.filter((r) => r.type === 'guarded' && r.status === 'skipped').length, 2);
});

test('daemon: the check time is stored as it advances, so a restart keeps the schedule (no second run in the same period)', async (t) => {
  const clock = new ManualClock(T0 + 5_000);
  const { types, registry } = probeTypes();
  const first = daemon(clock);
  const entry = configured(types, 'probe', { taskId: 7, periodMs: 60_000 });
  first.scheduler.start([entry]);
  await clock.advance(65_000); // runs at 7 s and 67 s; now 70 s
  await first.scheduler.stop(1_000);
  t.is(first.env.state.get(checkTimeKey('probe', 7)), formatCheckTime(T0 + 67_000));

  await clock.advance(20_000); // down for 20 s: restarted at 90 s, inside the minute that already ran
  const second = daemon(clock, first.env);
  second.scheduler.start([entry]);
  t.is(second.scheduler.schedule()[0]?.checkTime, T0 + 127_000, 'continues at stored + period');
  await clock.advance(40_000);
  await second.scheduler.stop(1_000);
  const all = registry.created.flatMap((x) => x.runs.map((r) => r.at - T0)).sort((a, b) => a - b);
  t.deepEqual(all, [7_000, 67_000, 127_000], 'no run lost or doubled across the restart');

  // Without the stored time the restarted job is aligned from now: 67 s, already past, runs at once.
  const clock2 = new ManualClock(T0 + 90_000);
  const fresh = daemon(clock2);
  const { types: types2, registry: registry2 } = probeTypes();
  fresh.scheduler.start([configured(types2, 'probe', { taskId: 7, periodMs: 60_000 })]);
  await clock2.advance(1_000);
  await fresh.scheduler.stop(1_000);
  t.is(registry2.created[0]?.runs.length, 1, 'a second run in the minute that had already run');
});

test('daemon: reload keeps unchanged tasks (same object, same schedule), rebuilds changed ones in place, stops removed ones, adds new ones', async (t) => {
  const clock = new ManualClock(T0);
  const { types, registry } = probeTypes();
  const { scheduler, env } = daemon(clock);
  const keep = configured(types, 'probe', { taskId: 1, periodMs: 60_000 });
  const solo = configured(types, 'solo', { taskId: 2, periodMs: 60_000, ident: 'solo' }, 'v1');
  const gone = configured(types, 'probe', { taskId: 3, periodMs: 60_000 });
  const edited = configured(types, 'probe', { taskId: 4, periodMs: 60_000, ident: 'probe-4-old' });
  scheduler.start([keep, solo, gone, edited]);
  await clock.advance(61_000);
  const before = new Map(scheduler.schedule().map((s) => [s.ident, s.checkTime]));
  const created = registry.created.length;
  const [keepTask, soloTask, goneTask, editedTask] = registry.created;

  scheduler.reload([
    keep,
    configured(types, 'solo', { taskId: 2, periodMs: 60_000, ident: 'solo' }, 'v2'),
    configured(types, 'probe', { taskId: 4, periodMs: 60_000, ident: 'probe-4-new' }),
    configured(types, 'probe', { taskId: 5, periodMs: 60_000 }),
  ]);
  await settle();
  const after = new Map(scheduler.schedule().map((s) => [s.ident, s.checkTime]));
  t.is(after.get('probe-1'), before.get('probe-1'), 'unchanged: same check time');
  t.is(after.get('solo'), before.get('solo'), 'same ident, new config: same check time');
  t.is(after.get('probe-4-new'), before.get('probe-4-old'), 'edited (new ident): continues the old cadence through the stored check time (errata 10)');
  t.false(after.has('probe-3'));
  t.is(registry.created.length, created + 3, 'new objects only for the rebuilt solo, the edited and the added task');
  t.false(keepTask?.stopped);
  t.true(soloTask?.stopped);
  t.true(goneTask?.stopped);
  t.true(editedTask?.stopped);
  await clock.advance(60_000);
  t.is(keepTask?.runs.length, 3, 'the kept task object keeps running (1, 61, 121 s)');
  t.is(goneTask?.runs.length, 1, 'the removed task does not run again');
  t.is(env.runs.filter((r) => r.status !== 'ok').length, 0);
  await scheduler.stop(1_000);
});

test('daemon: a throwing, a rejecting and a hanging task do not affect the others; the hanging one is cut at its timeout', async (t) => {
  const clock = new ManualClock(T0);
  const { types, registry } = probeTypes();
  registry.behaviours['probe:1'] = () => {
    throw new TypeError('sync bug');
  };
  registry.behaviours['probe:2'] = async () => Promise.reject(new Error('async failure'));
  const hangSignals: AbortSignal[] = [];
  registry.behaviours['probe:3'] = (ctx) => {
    hangSignals.push(ctx.signal);
    return new Promise<void>(() => undefined); // never settles, ignores its signal
  };
  const { scheduler, env } = daemon(clock);
  scheduler.start([1, 2, 3, 30].map((id) => configured(types, 'probe', { taskId: id, periodMs: 10_000, timeoutMs: 2_000 })));
  await clock.advance(49_000); // five periods: runs at 0-3, 10-13, ..., 40-43 s
  const byId = (id: number) => registry.created.find((x) => x.config.taskId === id);
  t.is(byId(30)?.runs.length, 5, 'the healthy task ran every period');
  for (const id of [1, 2, 3]) t.is(byId(id)?.runs.length, 5, `task ${id} was started every period regardless`);
  t.is(env.runs.filter((r) => r.status === 'error').length, 10);
  t.is(env.runs.filter((r) => r.status === 'timeout').length, 5);
  t.is(env.runs.filter((r) => r.status === 'ok').length, 5);
  t.true(hangSignals.every((s) => s.aborted), 'the hanging runs were told to stop at their timeout');
  await scheduler.stop(100);
});

test('listen: the first start is delayed 10 s; a run that returns or throws is restarted 10 s later; reload diffs by identity', async (t) => {
  const clock = new ManualClock(T0);
  const { types, registry } = probeTypes();
  let calls = 0;
  registry.behaviours.listener = async (ctx) => {
    calls++;
    if (calls === 2) throw new Error('listener crashed');
    if (calls >= 3) await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
  };
  const env = recordingEnv(clock);
  const s = new ListenScheduler({ env, logger: silentLogger });
  const a = configured(types, 'listener', { taskId: 1 });
  s.start([a]);
  await clock.advance(9_999);
  t.is(calls, 0);
  await clock.advance(1);
  t.is(calls, 1, 'started after 10 s');
  await clock.advance(10_000);
  t.is(calls, 2, 'returned: restarted after 10 s');
  await clock.advance(10_000);
  t.is(calls, 3, 'threw: restarted after 10 s, now listening');
  const listening = registry.created[0];
  s.reload([a, configured(types, 'listener', { taskId: 2 })]);
  await clock.advance(10_000);
  t.is(registry.created.length, 2, 'unchanged listener kept, the new one created');
  t.false(listening?.stopped);
  s.reload([configured(types, 'listener', { taskId: 2 })]);
  await settle();
  t.true(listening?.runs[listening.runs.length - 1]?.signal.aborted, 'the removed listener is cancelled');
  t.true(listening?.stopped);
  t.deepEqual(s.counts(), { listener: 1 });
  await s.stop(1_000);
});

test('keyword: chains start at once and are kept while unchanged', async (t) => {
  const clock = new ManualClock(T0);
  const { types, registry } = probeTypes();
  registry.behaviours.words = async (ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
  const s = keywordScheduler({ env: recordingEnv(clock), logger: silentLogger });
  const w = configured(types, 'words', { taskId: 1 });
  s.start([w]);
  await settle();
  t.is(registry.created[0]?.runs.length, 1);
  s.reload([w]);
  await settle();
  t.is(registry.created.length, 1);
  s.reload([configured(types, 'words', { taskId: 1 }, 'changed')]);
  await settle();
  t.is(registry.created.length, 2, 'a changed chain is rebuilt');
  t.true(registry.created[0]?.stopped);
  await s.stop(1_000);
});

test('check: every task once, one after the other in ident order; a hanging one is cut at its deadline', async (t) => {
  const clock = new ManualClock(T0);
  const { types, registry } = probeTypes();
  const order: number[] = [];
  registry.behaviours.probe = async (ctx) => {
    order.push(ctx.now() - T0);
  };
  registry.behaviours['probe:2'] = (ctx) => {
    order.push(ctx.now() - T0);
    return new Promise<void>(() => undefined);
  };
  const env = recordingEnv(clock);
  const s = new CheckScheduler({ env, logger: silentLogger });
  s.start([3, 1, 2].map((id) => configured(types, 'probe', { taskId: id, timeoutMs: 3_000 })));
  const done = s.finished();
  await clock.advance(3_000);
  const results = await done;
  t.deepEqual(results.map((r) => [r.entry.config.taskId, r.status]), [[1, 'ok'], [2, 'timeout'], [3, 'ok']]);
  t.deepEqual(order, [0, 0, 3_000], 'task 3 waited for task 2');
  await s.stop();
});

test('cron: every task runs at start, then every period from its last fire time truncated to the second', async (t) => {
  const clock = new ManualClock(T0 + 400);
  const { types, registry } = probeTypes();
  const s = new CronScheduler({ env: recordingEnv(clock), logger: silentLogger });
  s.start([configured(types, 'probe', { taskId: 1, periodMs: 10_000 })]);
  await clock.advance(30_000);
  t.deepEqual(registry.created[0]?.runs.map((r) => r.at - T0), [400, 10_000, 20_000, 30_000]);
  s.reload([configured(types, 'probe', { taskId: 2, periodMs: 5_000 })]);
  await clock.advance(5_000);
  t.true(registry.created[0]?.stopped, 'a reload rebuilds everything');
  t.is(registry.created[1]?.runs.length, 2);
  await s.stop(1_000);
});

test('semaphore: FIFO weights; a request larger than the size waits until aborted', async (t) => {
  const s = new WeightedSemaphore(3);
  await s.acquire(2);
  const order: string[] = [];
  void s.acquire(2).then(() => order.push('big'));
  void s.acquire(1).then(() => order.push('small'));
  await settle();
  t.deepEqual(order, [], 'the small one waits behind the big one (FIFO)');
  s.release(2);
  await settle();
  t.deepEqual(order, ['big', 'small']);
  s.release(3);
  const ctl = new AbortController();
  const tooBig = s.acquire(4, ctl.signal);
  ctl.abort(new Error('run ended'));
  await t.throwsAsync(tooBig, { message: 'run ended' });
  t.is(s.used, 0);
});

test('concurrency limits: per task and per instance at once; the first is given back when the second fails; per-task semaphores go with their last run', async (t) => {
  const limiter = new ConcurrencyLimiter({ http: { perInstance: 4, perTask: 2 } });
  const ctl = new AbortController();
  const a1 = limiter.forRun('http', 'a');
  const a2 = limiter.forRun('http', 'a');
  const b = limiter.forRun('http', 'b');
  const r1 = await a1.acquire(2, ctl.signal);
  const rb = await b.acquire(1, ctl.signal);
  t.is(limiter.semaphore('http_per_instance')?.used, 3, 'per instance is shared: 2 + 1');
  let got = false;
  const blocked = a2.acquire(1, ctl.signal);
  void blocked.then(() => (got = true), () => undefined);
  await settle();
  t.false(got, 'task a is at its per-task limit of 2');
  t.is(limiter.semaphore('http_per_instance')?.used, 4, 'the per-instance unit is held while waiting on the per-task one');
  const b2 = limiter.forRun('http', 'b');
  let b2got = false;
  const b2wait = b2.acquire(1, ctl.signal);
  void b2wait.then(() => (b2got = true), () => undefined);
  await settle();
  t.false(b2got, 'task b waits on the per-instance limit of 4');
  ctl.abort(new Error('timeout'));
  await t.throwsAsync(blocked);
  await t.throwsAsync(b2wait);
  t.is(limiter.semaphore('http_per_instance')?.used, 3, 'the failed acquire gave its per-instance unit back');
  r1();
  rb();
  t.is(limiter.semaphore('http_per_instance')?.used, 0);
  a1.done();
  t.truthy(limiter.semaphore('http_per_task_a'), 'another run of a is still active');
  a2.done();
  t.is(limiter.semaphore('http_per_task_a'), undefined, 'gone with the last run');
  b.done();
  b2.done();
  const free = limiter.forRun('tcp', 'x');
  const release = await free.acquire(1_000_000, new AbortController().signal);
  release();
  t.pass('a type without a limit never waits');
});
