import test from 'ava';
import { UnavailableError, ValidationError } from '../../services/common/errors.ts';
import { backoffDelay, drainLoop, retry, retryDefaults } from '../../services/common/retry.ts';

test('test mode uses fast defaults', (t) => {
  t.is(process.env.NODE_ENV, 'test');
  t.is(retryDefaults.initialDelayMs, 10);
  t.is(retryDefaults.maxDelayMs, 200);
});

test('backoff grows exponentially, is capped, and jitter stays within bounds', (t) => {
  const noJitter = { initialDelayMs: 100, maxDelayMs: 1000, jitter: 0 };
  t.deepEqual([1, 2, 3, 4, 5].map((a) => backoffDelay(a, noJitter)), [100, 200, 400, 800, 1000]);
  t.is(backoffDelay(3, { initialDelayMs: 100, jitter: 1, random: () => 0 }), 0);
  t.is(backoffDelay(3, { initialDelayMs: 100, maxDelayMs: 10_000, jitter: 1, random: () => 0.5 }), 200);
  t.is(backoffDelay(3, { initialDelayMs: 100, maxDelayMs: 10_000, jitter: 0.5, random: () => 0 }), 200);
});

test('retries retriable errors until success', async (t) => {
  let calls = 0;
  const retries: number[] = [];
  const out = await retry(async () => {
    if (++calls < 3) throw new UnavailableError('down');
    return 'ok';
  }, { onRetry: (_e, attempt) => retries.push(attempt) });
  t.is(out, 'ok');
  t.deepEqual(retries, [1, 2]);
});

test('does not retry non-retriable errors', async (t) => {
  let calls = 0;
  await t.throwsAsync(retry(async () => {
    calls++;
    throw new ValidationError('bad');
  }), { instanceOf: ValidationError });
  t.is(calls, 1);
});

test('gives up after the budget with the last error', async (t) => {
  let calls = 0;
  await t.throwsAsync(retry(async () => {
    calls++;
    throw new UnavailableError(`down ${calls}`);
  }, { retries: 2 }), { message: 'down 3' });
  t.is(calls, 3);
});

test('an abort stops the waiting and rethrows the real failure', async (t) => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20);
  await t.throwsAsync(retry(async () => {
    throw new UnavailableError('down');
  }, { retries: 100, initialDelayMs: 1000, maxDelayMs: 1000, jitter: 0, signal: ac.signal }), { message: 'down' });
});

test('drainLoop: drains again at once while batches come full, idles otherwise, retries a failed drain with backoff, ends when not running', async (t) => {
  const results: (number | Error)[] = [500, 3, new Error('broker down'), 7];
  const calls: string[] = [];
  let running = true;
  const stop = new AbortController();
  await drainLoop({
    running: () => running,
    drainOnce: async () => {
      const r = results.shift();
      calls.push(`drain ${r instanceof Error ? 'error' : String(r)}`);
      if (r === undefined) {
        running = false;
        return 0;
      }
      if (r instanceof Error) throw r;
      return r;
    },
    more: (sent) => sent === 500,
    idle: async () => {
      calls.push('idle');
    },
    signal: stop.signal,
    onError: (err, failures) => calls.push(`error ${failures}: ${(err as Error).message}`),
  });
  t.deepEqual(calls, ['drain 500', 'drain 3', 'idle', 'drain error', 'error 1: broker down', 'drain 7', 'idle', 'drain undefined', 'idle']);
});
