/** The token-bucket limiter (reference rate_limiter, token_bucket) on a fake clock. */
import test from 'ava';
import { effectiveLimit, RateLimiter } from '../../services/collector/receiver/ratelimit.ts';

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

test('burst at once, then qps per second', (t) => {
  const c = clock();
  const limiter = new RateLimiter({ now: c.now });
  const limit = { qps: 10, burst: 20 };
  let allowed = 0;
  for (let i = 0; i < 50; i++) if (limiter.take('a', limit)) allowed++;
  t.is(allowed, 20);
  c.advance(500);
  allowed = 0;
  for (let i = 0; i < 50; i++) if (limiter.take('a', limit)) allowed++;
  t.is(allowed, 5);
  t.true(limiter.take('b', limit), 'tokens have their own buckets');
});

test('qps 0 is unlimited, qps < 0 rejects everything, a burst below qps is raised to qps + 1', (t) => {
  const limiter = new RateLimiter({ now: clock().now });
  for (let i = 0; i < 1000; i++) t.true(limiter.take('x', { qps: 0, burst: 0 }));
  t.false(limiter.take('y', { qps: -1, burst: 100 }));
  t.deepEqual(effectiveLimit({ qps: 10, burst: 2 }), { qps: 10, burst: 11 });
  t.deepEqual(effectiveLimit({ qps: 10, burst: 50 }), { qps: 10, burst: 50 });
  let allowed = 0;
  for (let i = 0; i < 50; i++) if (limiter.take('z', { qps: 10, burst: 2 })) allowed++;
  t.is(allowed, 11);
});

test('a changed limit starts a fresh bucket', (t) => {
  const limiter = new RateLimiter({ now: clock().now });
  t.true(limiter.take('a', { qps: 1, burst: 1 }));
  t.false(limiter.take('a', { qps: 1, burst: 1 }));
  t.true(limiter.take('a', { qps: 5, burst: 5 }));
});
