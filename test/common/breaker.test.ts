import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { BreakerOpenError, CallTimeoutError, createBreaker } from '../../services/common/breaker.ts';
import { UnavailableError, ValidationError } from '../../services/common/errors.ts';
import { createRegistry } from '../../services/common/metrics.ts';

const fast = { resetTimeoutMs: 100, volumeThreshold: 2, errorThresholdPercentage: 50, rollingWindowMs: 10_000 };

test('retriable failures open the breaker; open calls fail fast; a half-open success closes it', async (t) => {
  const registry = createRegistry();
  const b = createBreaker({ name: 'dep', ...fast, registry });
  t.teardown(() => b.shutdown());
  let calls = 0;
  const failing = async (): Promise<never> => {
    calls++;
    throw new UnavailableError('503');
  };
  await t.throwsAsync(b.fire(failing));
  await t.throwsAsync(b.fire(failing));
  t.is(b.state(), 'open');
  await t.throwsAsync(b.fire(failing), { instanceOf: BreakerOpenError });
  t.is(calls, 2, 'no call reaches the dependency while open');
  t.regex(await registry.metrics(), /bkstream_breaker_state\{breaker="dep"\} 2/);
  await sleep(150);
  t.is(b.state(), 'half_open');
  t.is(await b.fire(async () => 'ok'), 'ok');
  t.is(b.state(), 'closed');
  t.regex(await registry.metrics(), /bkstream_breaker_calls_total\{breaker="dep",result="rejected"\} 1/);
});

test('business errors (non-retriable) pass through without opening it', async (t) => {
  const b = createBreaker({ name: 'biz', ...fast });
  t.teardown(() => b.shutdown());
  for (let i = 0; i < 10; i++) {
    await t.throwsAsync(b.fire(async () => {
      throw new ValidationError('400');
    }), { instanceOf: ValidationError });
  }
  t.is(b.state(), 'closed');
});

test('a slow call times out, its signal is aborted, and the timeout counts as a failure', async (t) => {
  const b = createBreaker({ name: 'slow', ...fast, timeoutMs: 30 });
  t.teardown(() => b.shutdown());
  let aborted = false;
  const slow = (signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      signal.addEventListener('abort', () => {
        aborted = true;
        resolve();
      });
    });
  await t.throwsAsync(b.fire(slow), { instanceOf: CallTimeoutError });
  t.true(aborted);
  await t.throwsAsync(b.fire(slow), { instanceOf: CallTimeoutError });
  t.is(b.state(), 'open');
});

test('half-open lets exactly one trial through', async (t) => {
  const b = createBreaker({ name: 'trial', ...fast });
  t.teardown(() => b.shutdown());
  for (let i = 0; i < 2; i++) await t.throwsAsync(b.fire(async () => { throw new UnavailableError('x'); }));
  await sleep(150);
  let calls = 0;
  const gate = Promise.withResolvers<void>();
  const trial = b.fire(async () => {
    calls++;
    await gate.promise;
  });
  await t.throwsAsync(b.fire(async () => { calls++; }), { instanceOf: BreakerOpenError });
  gate.resolve();
  await trial;
  t.is(calls, 1);
  t.is(b.state(), 'closed');
});
