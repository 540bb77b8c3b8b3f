/**
 * The exposition-format line parser and timestamp rules shared by script and metricbeat, on cases
 * re-created from the Prometheus project's own tests: `model/textparse` promparse_test.go and
 * openmetricsparse_test.go (TestPromParse, TestOpenMetricsParse, the *ParseErrors and null-byte cases) and
 * prometheus/common `expfmt` text_parse_test.go (scenarios 1–3, 5–10 and the error scenarios). The
 * reference parses line by line and accepts what either parser accepts, so every valid line of both suites
 * must parse, and every line both reject must fail.
 */
import test from 'ava';
import { isSkippableLine, parseGoFloat, parseSampleLine, type Sample } from '../../../services/agent/exposition/parse.ts';
import { detectTimestampNs, nsToUnit, resolveTimestampNs, DEFAULT_TIME_OFFSET_MS } from '../../../services/agent/exposition/timestamp.ts';

const plain = (s: Sample): { name: string; labels: Record<string, string>; value: number; ts?: number; tsSeconds?: boolean; ex?: unknown } => ({
  name: s.name,
  labels: { ...s.labels },
  value: s.value,
  ...(s.timestamp ? { ts: s.timestamp.value, tsSeconds: s.timestamp.seconds } : {}),
  ...(s.exemplar ? { ex: { labels: { ...s.exemplar.labels }, value: s.exemplar.value, ...(s.exemplar.timestamp ? { ts: s.exemplar.timestamp.value } : {}) } } : {}),
});

// promparse_test.go TestPromParse: every sample line with its expected name, labels, value and timestamp.
const promValid: [string, string, Record<string, string>, number, number?][] = [
  ['go_gc_duration_seconds{quantile="0"} 4.9351e-05', 'go_gc_duration_seconds', { quantile: '0' }, 4.9351e-05],
  ['go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05', 'go_gc_duration_seconds', { quantile: '0.25' }, 7.424100000000001e-05],
  ['go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05', 'go_gc_duration_seconds', { quantile: '0.5', a: 'b' }, 8.3835e-05],
  ['go_gc_duration_seconds{quantile="0.8", a="b"} 8.3835e-05', 'go_gc_duration_seconds', { quantile: '0.8', a: 'b' }, 8.3835e-05],
  ['go_gc_duration_seconds{ quantile="0.9", a="b"} 8.3835e-05', 'go_gc_duration_seconds', { quantile: '0.9', a: 'b' }, 8.3835e-05],
  ['wind_speed{A="2",c="3"} 12345', 'wind_speed', { A: '2', c: '3' }, 12345],
  ['go_gc_duration_seconds{ quantile="1.0", a="b" } 8.3835e-05', 'go_gc_duration_seconds', { quantile: '1.0', a: 'b' }, 8.3835e-05],
  ['go_gc_duration_seconds { quantile="1.0", a="b" } 8.3835e-05', 'go_gc_duration_seconds', { quantile: '1.0', a: 'b' }, 8.3835e-05],
  ['go_gc_duration_seconds { quantile= "1.0", a= "b", } 8.3835e-05', 'go_gc_duration_seconds', { quantile: '1.0', a: 'b' }, 8.3835e-05],
  ['go_gc_duration_seconds { quantile = "1.0", a = "b" } 8.3835e-05', 'go_gc_duration_seconds', { quantile: '1.0', a: 'b' }, 8.3835e-05],
  ['go_gc_duration_seconds { quantile = "2.0" a = "b" } 8.3835e-05', 'go_gc_duration_seconds', { quantile: '2.0', a: 'b' }, 8.3835e-05],
  ['go_gc_duration_seconds_count 99', 'go_gc_duration_seconds_count', {}, 99],
  ['some:aggregate:rate5m{a_b="c"}\t1', 'some:aggregate:rate5m', { a_b: 'c' }, 1],
  ['go_goroutines 33  \t123123', 'go_goroutines', {}, 33, 123123],
  ['_metric_starting_with_underscore 1', '_metric_starting_with_underscore', {}, 1],
  ['testmetric{_label_starting_with_underscore="foo"} 1', 'testmetric', { _label_starting_with_underscore: 'foo' }, 1],
  ['testmetric{label="\\"bar\\""} 1', 'testmetric', { label: '"bar"' }, 1],
  ['null_byte_metric{a="abc\x00"} 1', 'null_byte_metric', { a: 'abc\x00' }, 1],
  // TestUTF8PromParse
  ['{"go.gc_duration_seconds",quantile="0"} 4.9351e-05', 'go.gc_duration_seconds', { quantile: '0' }, 4.9351e-05],
  ['{ "go.gc_duration_seconds", quantile= "1.0", a= "b", } 8.3835e-05', 'go.gc_duration_seconds', { quantile: '1.0', a: 'b' }, 8.3835e-05],
  ['{"go.gc_duration_seconds_count"} 99', 'go.gc_duration_seconds_count', {}, 99],
  [
    '{"Heizölrückstoßabdämpfung 10€ metric with \\"interesting\\" {character\\nchoices}","strange©™\\n\'quoted\' \\"name\\""="6"} 10.0',
    'Heizölrückstoßabdämpfung 10€ metric with "interesting" {character\nchoices}',
    { 'strange©™\n\'quoted\' "name"': '6' },
    10,
  ],
  // expfmt text_parse_test.go scenarios 1–3, 5, 7, 8, 10
  ['minimal_metric 1.234', 'minimal_metric', {}, 1.234],
  ['another_metric -3e3 103948', 'another_metric', {}, -3000, 103948],
  ['no_labels{} 3', 'no_labels', {}, 3],
  ['name {labelname="val2",basename="base\\"v\\\\al\\nue"} 0.23 1234567890', 'name', { labelname: 'val2', basename: 'base"v\\al\nue' }, 0.23, 1234567890],
  ['name2{labelname="val2"\t,basename   =   "basevalue2"\t\t} +Inf 54321', 'name2', { labelname: 'val2', basename: 'basevalue2' }, Infinity, 54321],
  ['name2{ labelname = "val1" , }-Inf', 'name2', { labelname: 'val1' }, -Infinity],
  ['decoy -1 -2', 'decoy', {}, -1, -2],
  ['my_summary_sum{n1="val2"} 08 15', 'my_summary_sum', { n1: 'val2' }, 8, 15],
  ['  my_summary{n1="val1",n2="val2",quantile="-12.34",} 7', 'my_summary', { n1: 'val1', n2: 'val2', quantile: '-12.34' }, 7],
  ['{"my.noncompliant.metric","label.name"="value"} 1', 'my.noncompliant.metric', { 'label.name': 'value' }, 1],
  ['{"gauge.name","name.1"="Björn","name*2"="佖佥"} 3.14e+42', 'gauge.name', { 'name.1': 'Björn', 'name*2': '佖佥' }, 3.14e42],
  ['{labelname="value", "my.noncompliant.metric"} 1', 'my.noncompliant.metric', { labelname: 'value' }, 1],
  ['{"my\\"noncompliant\\nmetric\\\\","label\\"name\\n"="value"} 1', 'my"noncompliant\nmetric\\', { 'label"name\n': 'value' }, 1],
];

for (const [i, [line, name, labels, value, ts]] of promValid.entries()) {
  test(`Prometheus text-format line ${i} parses: ${line.slice(0, 60)}`, (t) => {
    const s = plain(parseSampleLine(line));
    t.is(s.name, name);
    t.deepEqual(s.labels, labels);
    t.is(s.value, value);
    t.is(s.ts, ts);
    if (ts !== undefined) t.false(s.tsSeconds, 'integer timestamps are kept as written for unit detection');
  });
}

test('OpenMetrics lines (openmetricsparse_test.go TestOpenMetricsParse): float-second timestamps and exemplars', (t) => {
  t.deepEqual(plain(parseSampleLine('go_goroutines 33 123.123')), { name: 'go_goroutines', labels: {}, value: 33, ts: 123.123, tsSeconds: true });
  t.deepEqual(plain(parseSampleLine('hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4')), {
    name: 'hhh_bucket',
    labels: { le: '+Inf' },
    value: 1,
    ex: { labels: { id: 'histogram-bucket-test' }, value: 4 },
  });
  t.deepEqual(plain(parseSampleLine('ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123')), {
    name: 'ggh_bucket',
    labels: { le: '+Inf' },
    value: 1,
    ex: { labels: { id: 'gaugehistogram-bucket-test', xx: 'yy' }, value: 4, ts: 123.123 },
  });
  t.deepEqual(plain(parseSampleLine('smr_seconds_count 2.0 # {id="summary-count-test"} 1 123.321')).ex, { labels: { id: 'summary-count-test' }, value: 1, ts: 123.321 });
  t.deepEqual(plain(parseSampleLine('foo_total{a="b"} 17.0 1520879607.789 # {id="counter-test"} 5')), {
    name: 'foo_total',
    labels: { a: 'b' },
    value: 17,
    ts: 1520879607.789,
    tsSeconds: true,
    ex: { labels: { id: 'counter-test' }, value: 5 },
  });
  t.deepEqual(plain(parseSampleLine('quotedexemplar2_count 1 # {"id.thing"="histogram-count-test",other="hello"} 4')).ex, {
    labels: { 'id.thing': 'histogram-count-test', other: 'hello' },
    value: 4,
  });
  t.deepEqual(plain(parseSampleLine('ss{A="a"} 0')), { name: 'ss', labels: { A: 'a' }, value: 0 });
  t.deepEqual(plain(parseSampleLine('something_created 1520430001')), { name: 'something_created', labels: {}, value: 1520430001 });
  // `detectTimestampNs` turns 1520879607.789 s into ms, like the OpenMetrics parser's ts*1000.
  t.is(detectTimestampNs({ value: 1520879607.789, seconds: true }) / 1e6, 1520879607789);
});

// Lines both parsers reject (TestPromParseErrors, TestOpenMetricsParseErrors, TestPromNullByteHandling,
// expfmt testTextParseError), as single lines.
const invalid: string[] = [
  'a',
  "a{b='c'} 1",
  'a{b=',
  'a{\xff="foo"} 1',
  '{"a", "b = "c"}',
  'a true',
  'something_weird{problem="',
  'empty_label_name{=""} 0',
  'foo 1_2',
  'foo 0x1p-3',
  'foo 0x1P-3',
  'foo 0 1_2',
  '{a="ok"} 1',
  'a 1 1 1',
  'a 1 1z',
  'a{,b="c"} 1',
  'a{b="c",,d="e"} 1',
  'custom_metric_total 1 # {aa=bb}',
  'custom_metric_total 1 # {aa="bb"}',
  'custom_metric_total 1 # {bb}',
  'custom_metric_total 1 # {aa="bb",,cc="dd"} 1',
  'custom_metric_total 1 # {aa="bb"} 1_2',
  'custom_metric_total 1 # {aa="bb"} true',
  'custom_metric_total 1 # {aa="bb",cc=}',
  'a 1 NaN',
  'a 1 -Inf',
  'a 1 Inf',
  'hhh_bucket{le="+Inf"} 1 # {aa="bb"} 4 NaN',
  'a{b=\x00"ssss"} 1',
  'a{b\x00="hiih"}\t1',
  'a\x00{b="ddd"} 1',
  'a 0 1\x00',
  'metric{@="bla"} 3.14',
  'metric{__name__="bla"} 3.14',
  'metric{label+="bla"} 3.14',
  'metric{label=bla} 3.14',
  'metric{label="bla"+} 3.14',
  'metric{label="bla"} 3.14 2 3',
  'metric{label="bla"} blubb',
  '@invalidmetric{label="bla"} 3.14 2',
  '{label="bla"} 3.14 2',
  'foo 0B1',
  'foo 0O1',
  'foo 0X1',
  'foo 0x1',
  'metric{label="bla",label="bla"} 3.14',
  '{"one.name","another.name"} 3.14',
  '{"metric.name".label="bla"} 3.14',
  '9',
];

for (const [i, line] of invalid.entries()) {
  test(`rejected line ${i}: ${JSON.stringify(line).slice(0, 60)}`, (t) => {
    t.throws(() => parseSampleLine(line), { name: 'ExpositionError' });
  });
}

test('values: Go ParseFloat forms; NaN and infinities parse (the tasks reject them), hex and underscores do not', (t) => {
  t.is(parseGoFloat('1e3'), 1000);
  t.is(parseGoFloat('.5'), 0.5);
  t.is(parseGoFloat('5.'), 5);
  t.is(parseGoFloat('+Inf'), Infinity);
  t.is(parseGoFloat('-inf'), -Infinity);
  t.is(parseGoFloat('Infinity'), Infinity);
  t.true(Number.isNaN(parseGoFloat('NaN')));
  t.true(Number.isNaN(parseGoFloat('0x10')));
  t.true(Number.isNaN(parseGoFloat('')));
  t.true(Number.isNaN(parseSampleLine('metric NaN').value));
  t.is(parseSampleLine('metric{a="b"} -Inf').value, -Infinity);
});

test('comment, HELP/TYPE/EOF and blank lines are skippable; sample lines are not', (t) => {
  for (const l of ['', '   ', '# HELP x y', '#', '# EOF', '  # TYPE x counter']) t.true(isSkippableLine(l), l);
  for (const l of ['x 1', '  x 1', '{"a"} 1']) t.false(isSkippableLine(l), l);
});

test('timestamp unit detection (reference tasks/timestamp.go thresholds) and the offset rule', (t) => {
  const now = Date.UTC(2026, 11, 1, 12, 0, 0);
  const nowS = now / 1000;
  t.is(resolveTimestampNs({ value: nowS, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), nowS * 1e9, 'seconds');
  t.is(resolveTimestampNs({ value: now, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), now * 1e6, 'milliseconds');
  t.is(resolveTimestampNs({ value: now * 1000, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), now * 1e6, 'microseconds');
  t.is(nsToUnit(resolveTimestampNs({ value: now * 1e6, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), 'ms'), now, 'nanoseconds');
  t.is(resolveTimestampNs({ value: nowS - 60, seconds: true }, now, DEFAULT_TIME_OFFSET_MS), (nowS - 60) * 1e9, 'OpenMetrics float seconds');
  t.is(detectTimestampNs({ value: 999_999, seconds: false }), 999_999 * 60e9, 'under 1e6: minutes');
  t.is(resolveTimestampNs({ value: 999_999, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), now * 1e6, 'minutes are always older than two years today → now');
  t.is(resolveTimestampNs(undefined, now, DEFAULT_TIME_OFFSET_MS), now * 1e6, 'absent → now');
  t.is(resolveTimestampNs({ value: 0, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), now * 1e6, '0 → now');
  t.is(resolveTimestampNs({ value: nowS - 3 * 365 * 86400, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), now * 1e6, 'older than two years → now');
  t.is(resolveTimestampNs({ value: nowS - 3600, seconds: false }, now, 60_000), now * 1e6, 'older than time_offset → now');
  t.is(resolveTimestampNs({ value: nowS + 86400 * 400, seconds: false }, now, DEFAULT_TIME_OFFSET_MS), (nowS + 86400 * 400) * 1e9, 'future kept');
  t.is(nsToUnit(now * 1e6 + 400_000_000, 's'), nowS, 'truncated to the unit');
  t.is(nsToUnit(now * 1e6, 's'), nowS);
});
