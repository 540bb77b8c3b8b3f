/** The consumer's commit bookkeeping without a broker: durable prefix, back-pressure, failures, rebalances. */
import test from 'ava';
import { CommitTracker } from '../../services/common/bus/commit-tracker.ts';

const T = 'spans';

function accept(tracker: CommitTracker, partition: number, first: number, last: number) {
  const epoch = tracker.epoch(T, partition);
  const r = tracker.accept(T, partition, epoch, String(first), String(last), last - first + 1);
  if (!r) throw new Error('stale');
  return r;
}

test('commits only a contiguous durable prefix, in any order of completion', (t) => {
  const tracker = new CommitTracker(1_000);
  const a = accept(tracker, 0, 0, 9).ticket;
  const b = accept(tracker, 0, 10, 19).ticket;
  const c = accept(tracker, 0, 20, 29).ticket;
  t.is(tracker.inFlight(), 30);
  t.deepEqual(tracker.durable(b), { commit: undefined, resume: false }, 'b waits for a');
  t.deepEqual(tracker.durable(a), { commit: '20', resume: false }, 'a and b: commit after b');
  t.deepEqual(tracker.durable(c), { commit: '30', resume: false });
  t.is(tracker.inFlight(), 0);
});

test('partitions are independent', (t) => {
  const tracker = new CommitTracker(1_000);
  const p0 = accept(tracker, 0, 0, 4).ticket;
  const p1 = accept(tracker, 1, 100, 104).ticket;
  t.deepEqual(tracker.durable(p1), { commit: '105', resume: false });
  t.is(tracker.inFlight(), 5);
  t.deepEqual(tracker.durable(p0), { commit: '5', resume: false });
});

test('pauses past the in-flight bound, once, and resumes at half', (t) => {
  const tracker = new CommitTracker(100);
  const first = accept(tracker, 3, 0, 59);
  t.false(first.pause);
  const second = accept(tracker, 3, 60, 119);
  t.true(second.pause, '120 > 100 pauses');
  t.false(accept(tracker, 3, 120, 129).pause, 'already paused: not paused twice');
  t.deepEqual(tracker.paused(), [{ topic: T, partitions: [3] }]);
  t.is(tracker.pausedCount(), 1);
  t.deepEqual(tracker.durable(first.ticket), { commit: '60', resume: false }, '70 in flight: still above half');
  t.deepEqual(tracker.durable(second.ticket), { commit: '120', resume: true }, '10 in flight: resume');
  t.deepEqual(tracker.paused(), []);
});

test('a failure re-reads from the first non-durable batch and voids later news of that epoch', (t) => {
  const tracker = new CommitTracker(1_000);
  const a = accept(tracker, 0, 0, 9).ticket;
  const b = accept(tracker, 0, 10, 19).ticket;
  const c = accept(tracker, 0, 20, 29).ticket;
  t.deepEqual(tracker.durable(a), { commit: '10', resume: false });
  t.deepEqual(tracker.failed(c), { seekTo: '10', resume: false }, 'b is the first not durable');
  t.is(tracker.durable(b), undefined, 'b belongs to the old epoch');
  t.is(tracker.failed(b), undefined);
  t.is(tracker.inFlight(), 0);
  t.is(tracker.accept(T, 0, 0, '10', '19', 10), undefined, 'work started under the old epoch is not accepted');
  const again = accept(tracker, 0, 10, 19).ticket;
  t.deepEqual(tracker.durable(again), { commit: '20', resume: false });
});

test('a failure of a paused partition says to resume it', (t) => {
  const tracker = new CommitTracker(10);
  const a = accept(tracker, 0, 0, 19);
  t.true(a.pause);
  t.deepEqual(tracker.failed(a.ticket), { seekTo: '0', resume: true });
  t.deepEqual(tracker.paused(), []);
});

test('a rebalance voids every in-flight batch of every partition', (t) => {
  const tracker = new CommitTracker(10);
  const a = accept(tracker, 0, 0, 19).ticket;
  const b = accept(tracker, 1, 0, 4).ticket;
  tracker.reset();
  t.is(tracker.inFlight(), 0);
  t.deepEqual(tracker.paused(), []);
  t.is(tracker.durable(a), undefined);
  t.is(tracker.durable(b), undefined);
});

test('an empty batch (every record dead-lettered) still moves the commit past it', (t) => {
  const tracker = new CommitTracker(10);
  const r = tracker.accept(T, 0, tracker.epoch(T, 0), '0', '4', 0);
  t.truthy(r);
  t.deepEqual(r && tracker.durable(r.ticket), { commit: '5', resume: false });
});
