/**
 * The sampler's policy: the flow config → user_args mapping is the orchestrator's (both derive the same
 * user_args, key for key, from the same configs), user_args are read with Gson's coercions and refused
 * where the job would not start (every problem named), and the Java rules the conditions use.
 */
import test from 'ava';
import { tailSamplingNodes } from '../../services/orchestrator/kinds/tail-sampling.ts';
import type { FlowSettings } from '../../services/orchestrator/config.ts';
import { javaCompare, JavaError, javaExtreme, javaParseDouble, javaRegex } from '../../services/sampler/java.ts';
import { parseUserArgs, PolicyError, userArgsOf } from '../../services/sampler/policy.ts';

const settings = { requiredTempConvertNode: false, flinkCode: 'class X {}', defaultBkBizId: 2, dataExpiresDays: 30 } as unknown as FlowSettings;

function orchestratorUserArgs(config: Record<string, unknown>): Record<string, unknown> {
  const nodes = tailSamplingNodes({ bkBizId: 2, appName: 'shop' }, { data_id: 1, ...config }, settings, '2_bkapm_tail_shop', 'es');
  const flink = nodes.find((n) => n.key === 'flink');
  const args = JSON.parse((flink?.config({ source: 1 }) as { user_args: string }).user_args) as Record<string, unknown>;
  delete args.input_table_id;
  delete args.output_table_id;
  return args;
}

for (const [name, config] of Object.entries({
  defaults: {},
  everything: { tail_percentage: 10, tail_trace_session_gap_min: 5, tail_trace_mark_timeout: 60, tail_conditions: [{ condition: 'and', key: 'status.code', method: 'eq', value: ['2'] }] },
  zero: { tail_percentage: 0 },
})) {
  test(`user_args of a flow config are the orchestrator's: ${name}`, (t) => {
    t.deepEqual(userArgsOf(config), orchestratorUserArgs(config));
  });
}

test('user_args coerce as Gson does and the defaults apply', (t) => {
  const p = parseUserArgs({ ...userArgsOf({}), random_sampling_ratio: '30', trace_session_gap_min: 5.0 });
  t.is(p.randomSamplingRatio, 30);
  t.is(p.sessionGapMin, 5);
  t.is(p.markTimeoutMin, 1440);
  t.is(p.maxSpanCount, 10_000);
  t.deepEqual(p.groups, []);
});

test('user_args the job would not start with name every problem', (t) => {
  const err = t.throws(() => parseUserArgs({ trace_session_gap_min: 1.5, trace_mark_timeout_min: 'x', random_sampling_ratio: true, sampling_conditions: [{ key: 'a' }, { key: 'b' }, { condition: 'xor' }, 5] }), { instanceOf: PolicyError });
  t.deepEqual(err?.problems, [
    'trace_session_gap_min: expected an int, got 1.5',
    'trace_mark_timeout_min: expected an int, got "x"',
    'random_sampling_ratio: expected an int, got true',
    'sampling_conditions[3]: expected an object, got 5',
  ]);
  t.deepEqual(t.throws(() => parseUserArgs({ ...userArgsOf({}), sampling_conditions: [{ key: 'a' }, { key: 'b' }, { condition: 'xor', key: 'c' }] }), { instanceOf: PolicyError })?.problems, [
    'sampling_conditions[1].condition is missing (and/or)',
    'sampling_conditions[2].condition: unsupported connector "xor"',
  ]);
  t.deepEqual(t.throws(() => parseUserArgs({ ...userArgsOf({}), trace_session_gap_min: 0, trace_mark_timeout_min: -3 }), { instanceOf: PolicyError })?.problems, [
    'trace_session_gap_min must be positive (a state TTL), got 0',
    'trace_mark_timeout_min must be positive (a state TTL), got -3',
  ]);
  t.throws(() => parseUserArgs([]), { instanceOf: PolicyError });
  t.throws(() => parseUserArgs({ ...userArgsOf({}), sampling_conditions: 'x' }), { instanceOf: PolicyError });
});

test("Double.parseDouble's syntax", (t) => {
  const ok: [string, number][] = [['1', 1], [' 12 ', 12], ['\t-1.5e1\n', -15], ['1.', 1], ['.5', 0.5], ['+3', 3], ['12d', 12], ['1.5F', 1.5], ['0x1p3', 8], ['0x.8p1', 1], ['-0x1.8P-1', -0.75], ['Infinity', Infinity], ['-Infinity', -Infinity], ['1e400', Infinity]];
  for (const [s, n] of ok) t.is(javaParseDouble(s), n, s);
  t.true(Number.isNaN(javaParseDouble('NaN')));
  for (const bad of ['', ' ', 'abc', '0x10', '1e', 'NaNd', 'infinity', '1_000', '١', '1,5', '0x1p']) t.throws(() => javaParseDouble(bad), { instanceOf: JavaError }, bad);
});

test('Collections.max/min over doubles: -0.0 below 0.0, NaN above everything, empty throws', (t) => {
  t.is(javaCompare(-0, 0), -1);
  t.is(javaCompare(NaN, Infinity), 1);
  t.true(Number.isNaN(javaExtreme([1, NaN, 2], 'max')));
  t.is(javaExtreme([1, NaN, 2], 'min'), 1);
  t.true(Object.is(javaExtreme([0, -0], 'min'), -0));
  t.throws(() => javaExtreme([], 'max'), { instanceOf: JavaError });
});

test('Java regexes become JavaScript regexes that must match the whole value', (t) => {
  const full = (p: string, s: string): boolean => javaRegex(p).test(s);
  t.true(full('GET.*', 'GET /x'));
  t.false(full('GET', 'GET /x'));
  t.true(full('a|ab', 'ab'));
  t.true(full('(?i)get /X', 'GET /x'));
  t.true(full('(?s)a.b', 'a\nb'));
  t.false(full('a.b', 'a\nb'));
  t.false(full('a.b', 'a\u0085b'), "Java's . does not match U+0085");
  t.true(full('\\Q1+1=2\\E', '1+1=2'));
  t.true(full('\\d+\\-\\d+', '10-20'), 'escaped punctuation is a literal');
  t.true(full('a\\sb', 'a\tb'));
  t.false(full('a\\sb', 'a\u00a0b'), "Java's \\s is ASCII whitespace");
  t.true(full('[\\s,]+', ' ,\t'));
  t.true(full('\\p{L}+', '查询'));
  t.true(full('[^a]', 'b'));
  t.true(full('\\p{Alpha}+\\p{Digit}', 'abc1'));
  t.false(full('\\p{Alpha}', 'é'), "Java's POSIX classes are ASCII");
  t.true(full('[\\p{Upper}_]+', 'A_B'));
  t.true(full('\\P{Digit}', 'x'));
  for (const unsupported of ['(', 'a++', '(?>a)', '[a&&b]', '[a[b]]', '\\p{IsLatin}', '[\\P{Digit}]', 'a(?i)b', '(?x)a', '[\\S]', 'a\\']) t.throws(() => javaRegex(unsupported), { instanceOf: JavaError }, unsupported);
});
