/** The sampler's configuration: defaults, a valid fixture, and every invalid fixture's message. */
import test from 'ava';
import { ConfigError } from '../../services/common/errors.ts';
import { loadSamplerConfig } from '../../services/sampler/service.ts';
import { validateSampler } from '../../services/sampler/config.ts';

test('defaults', (t) => {
  const c = loadSamplerConfig({});
  t.is(c.groupId, 'bkstream-sampler');
  t.is(c.httpPort, 8084);
  t.is(c.policyRefreshMs, 10_000);
  t.is(c.maxTraces, 500_000);
  t.is(c.maxBufferedMb, 256);
  t.is(c.maxRecordBytes, 900_000);
});

test('a valid fixture', (t) => {
  const c = loadSamplerConfig({ SAMPLER_GROUP_ID: 'g', SAMPLER_MAX_TRACES: '1000', SAMPLER_MAX_BUFFERED_MB: '8', SAMPLER_POLICY_REFRESH_MS: '500', SAMPLER_EXPIRE_INTERVAL_MS: '100' });
  t.is(c.groupId, 'g');
  t.is(c.maxTraces, 1000);
});

test('every problem is named at once', (t) => {
  const err = t.throws(() => loadSamplerConfig({ SAMPLER_MAX_TRACES: '0', SAMPLER_POLICY_REFRESH_MS: 'soon', SAMPLER_HTTP_PORT: '70000' }), { instanceOf: ConfigError });
  t.deepEqual(err?.problems.map((p) => p.key).sort(), ['SAMPLER_HTTP_PORT', 'SAMPLER_MAX_TRACES', 'SAMPLER_POLICY_REFRESH_MS']);
});

test('cross-field checks: the heap the state bounds need, the expiry interval', (t) => {
  const c = loadSamplerConfig({});
  t.deepEqual(validateSampler(c, 4 * 2 ** 30), []);
  t.deepEqual(validateSampler(c, 256 * 2 ** 20).map((p) => p.key), ['SAMPLER_MAX_BUFFERED_MB']);
  t.regex(validateSampler(c, 256 * 2 ** 20)[0]?.message ?? '', /need about \d+ MB of V8 heap/);
  t.deepEqual(validateSampler({ ...c, expireIntervalMs: 200_000, policyRefreshMs: 10_000 }, 4 * 2 ** 30).map((p) => p.key), ['SAMPLER_EXPIRE_INTERVAL_MS']);
  t.throws(() => loadSamplerConfig({ SAMPLER_EXPIRE_INTERVAL_MS: '200000', SAMPLER_POLICY_REFRESH_MS: '1000' }), { instanceOf: ConfigError });
});
