/**
 * Tokens: where requests carry them, and the cache in front of the application registry (hits, cached
 * misses, store failures not cached, one query for concurrent lookups, raw tokens never kept).
 */
import test from 'ava';
import { GrpcMetadata as Metadata } from '../../services/common/grpc.ts';
import { UnavailableError } from '../../services/common/errors.ts';
import { hashToken, type Application } from '../../services/collector/applications.ts';
import { MAX_TOKEN_LENGTH, TokenCache, tokenFromGrpc, tokenFromHttp } from '../../services/collector/receiver/tokens.ts';

test('HTTP: query X-BK-TOKEN, header X-BK-TOKEN, Basic bkmonitor:<token>, Bearer — in that order', (t) => {
  const q = (s = '') => new URLSearchParams(s);
  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  t.is(tokenFromHttp({}, q('X-BK-TOKEN=from-query')), 'from-query');
  t.is(tokenFromHttp({ 'x-bk-token': 'from-header' }, q('X-BK-TOKEN=from-query')), 'from-query');
  t.is(tokenFromHttp({ 'x-bk-token': 'from-header', authorization: 'Bearer b' }, q()), 'from-header');
  t.is(tokenFromHttp({ authorization: basic('bkmonitor', 'from-basic') }, q()), 'from-basic');
  t.is(tokenFromHttp({ authorization: basic('someone', 'x') }, q()), undefined, 'Basic auth only for user bkmonitor');
  t.is(tokenFromHttp({ authorization: 'Bearer from-bearer' }, q()), 'from-bearer');
  t.is(tokenFromHttp({ authorization: 'bearer  spaced ' }, q()), 'spaced');
  t.is(tokenFromHttp({ authorization: 'Token x' }, q()), undefined);
  t.is(tokenFromHttp({}, q()), undefined);
});

test('gRPC metadata: x-bk-token, then authorization Bearer', (t) => {
  const md = (pairs: [string, string][]) => {
    const m = new Metadata();
    for (const [k, v] of pairs) m.set(k, v);
    return m;
  };
  t.is(tokenFromGrpc(md([['x-bk-token', 'a'], ['authorization', 'Bearer b']])), 'a');
  t.is(tokenFromGrpc(md([['authorization', 'Bearer b']])), 'b');
  t.is(tokenFromGrpc(md([])), undefined);
});

const app: Application = {
  id: 1,
  bkBizId: 2,
  appName: 'shop',
  appAlias: '',
  description: '',
  traceRetentionDays: 7,
  tokenHint: 'bkst_abc',
  tracesDataId: 0,
  metricsDataId: 0,
  logsDataId: 0,
  profilesDataId: 0,
  rateLimitQps: undefined,
  rateLimitBurst: undefined,
  tailSampling: false,
  tailSamplingConfig: {},
  virtualMetric: false,
  provisionedFlows: [],
  isEnabled: true,
  createdAt: new Date(0),
};

function registry(known: Record<string, Application>) {
  const lookups: string[] = [];
  let failing = false;
  return {
    lookups,
    fail: (on: boolean) => (failing = on),
    lookup: async (hash: string): Promise<Application | undefined> => {
      lookups.push(hash);
      await new Promise((r) => setImmediate(r));
      if (failing) throw new Error('connection refused');
      return known[hash];
    },
  };
}

test('hits and misses are cached; lookups go by hash; concurrent lookups share one query', async (t) => {
  const reg = registry({ [hashToken('good')]: app });
  const results: string[] = [];
  const cache = new TokenCache({ lookup: reg.lookup, ttlMs: 60_000, missTtlMs: 60_000, maxEntries: 100, onResult: (r) => results.push(r) });
  const [a, b] = await Promise.all([cache.resolve('good'), cache.resolve('good')]);
  t.is(a, app);
  t.is(b, app);
  t.deepEqual(reg.lookups, [hashToken('good')], 'one query, by hash');
  t.is(await cache.resolve('good'), app);
  t.is(await cache.resolve('bad'), undefined);
  t.is(await cache.resolve('bad'), undefined);
  t.is(reg.lookups.length, 2, 'the miss is remembered');
  t.true(results.includes('hit') && results.includes('unknown') && results.includes('miss'));
  t.is(await cache.resolve('x'.repeat(MAX_TOKEN_LENGTH + 1)), undefined);
  t.is(reg.lookups.length, 2, 'an over-long token is refused without a query');
  cache.clear();
  await cache.resolve('good');
  t.is(reg.lookups.length, 3, 'clear() forgets');
});

test('misses expire sooner than hits', async (t) => {
  const reg = registry({ [hashToken('good')]: app });
  const cache = new TokenCache({ lookup: reg.lookup, ttlMs: 60_000, missTtlMs: 1, maxEntries: 100 });
  await cache.resolve('good');
  await cache.resolve('bad');
  await new Promise((r) => setTimeout(r, 20));
  await cache.resolve('good');
  await cache.resolve('bad');
  t.deepEqual(reg.lookups, [hashToken('good'), hashToken('bad'), hashToken('bad')]);
});

test('a store failure is UnavailableError and is not cached', async (t) => {
  const reg = registry({ [hashToken('good')]: app });
  const cache = new TokenCache({ lookup: reg.lookup, ttlMs: 60_000, missTtlMs: 60_000, maxEntries: 100 });
  reg.fail(true);
  const err = await t.throwsAsync(cache.resolve('good'), { instanceOf: UnavailableError });
  t.is(err?.message, 'the database is unavailable');
  t.regex(String((err?.cause as Error | undefined)?.message), /connection refused/);
  t.false(err?.message.includes('good'), 'the token is not in the message');
  reg.fail(false);
  t.is(await cache.resolve('good'), app);
});

test('the cache holds hashes, not tokens, and stays bounded', async (t) => {
  const reg = registry({});
  const cache = new TokenCache({ lookup: reg.lookup, ttlMs: 60_000, missTtlMs: 60_000, maxEntries: 10 });
  for (let i = 0; i < 50; i++) await cache.resolve(`token-${i}`);
  t.is(cache.size(), 10);
});
