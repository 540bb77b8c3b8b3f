/**
 * bkdata-sim's clean interpreter (services/bkdata-sim/etl/) against the exact cleans the orchestrator
 * registers (its own builders make the requests here) and hand-written records in the reference formats:
 * bk-collector's trace GSE envelope and its derived-metric batch. Expected rows are written out field by
 * field as bk-base's databus (databus-pipe-extractor + TransformCleaner) makes them; where the sim had to
 * decide, services/bkdata-sim/README.md ("Cleans") says so.
 */
import test from 'ava';
import { compileClean, type CompiledClean } from '../../services/bkdata-sim/etl/clean.ts';
import { compileEtl } from '../../services/bkdata-sim/etl/extract.ts';
import { javaDouble, parseJava, writeJackson } from '../../services/bkdata-sim/etl/java-json.ts';
import { displayTime, timeTransformer } from '../../services/bkdata-sim/etl/time.ts';
import * as tail from '../../services/orchestrator/kinds/tail-sampling.ts';
import * as metric from '../../services/orchestrator/kinds/virtual-metric.ts';
import { app, BATCH, ENVELOPE, POINT_B, settings, SPAN_A, SPAN_B } from './clean-records.ts';


/** The clean as the orchestrator registers it (json_config as the JSON text it sends). */
function orchestratorClean(kind: typeof tail | typeof metric): CompiledClean {
  const params = kind.cleanParams(app, settings, 1_500_001);
  const { clean, problems } = compileClean(params);
  if (!clean) throw new Error(problems.join('; '));
  return clean;
}

/** 2025-12-02 16:05:30 CST, when the clean runs (localTime is this minute). */
const NOW = Date.UTC(2025, 11, 2, 8, 5, 30);
const buf = (s: string): Buffer => Buffer.from(s, 'utf8');

test('tail sampling: each span of a GSE envelope is a row with span_id, trace_id, the span as Jackson JSON text, datetime and the time columns', (t) => {
  const clean = orchestratorClean(tail);
  t.deepEqual(clean.columns, ['span_id', 'trace_id', 'span_info', 'datetime', 'timestamp', 'dtEventTime', 'dtEventTimeStamp', 'localTime']);
  const out = clean.apply(buf(ENVELOPE), NOW);
  t.deepEqual(out.failures, []);
  const eventMs = Date.UTC(2025, 11, 2, 8, 5, 4); // datetime read as UTC+8 (conf timezone 8)
  const time = { timestamp: eventMs / 1000, dtEventTime: '2025-12-02 16:05:04', dtEventTimeStamp: eventMs, localTime: '2025-12-02 16:05:00' };
  t.deepEqual(out.rows, [
    {
      span_id: 'a1b2c3d4e5f60718',
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      // Key order kept, 1.0 stays a double, the big integer exact, non-ASCII escaped upper-case (ESCAPE_NON_ASCII).
      span_info: SPAN_A.replace('购物车', '\\u8D2D\\u7269\\u8F66'),
      datetime: '2025-12-02 16:05:04',
      ...time,
    },
    {
      span_id: '0000000000000002',
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      // 1e3 is a double: Java writes 1000.0; 0.0001 is below 10^-3: 1.0E-4.
      span_info: SPAN_B.replace('déjà', 'd\\u00E9j\\u00E0').replace('1e3', '1000.0').replace('0.0001', '1.0E-4'),
      datetime: '2025-12-02 16:05:04',
      ...time,
    },
  ]);
});

test('tail sampling: what the clean cannot read fails the record or the span, never the clean', (t) => {
  const clean = orchestratorClean(tail);
  const run = (s: string) => clean.apply(buf(s), NOW);
  const errors = (s: string) => run(s).failures.map((f) => f.error);

  t.deepEqual(run('{"datetime":"2025-12-02 16:05:04","items":[').rows, []);
  t.deepEqual(errors('{"datetime":"2025-12-02 16:05:04","items":['), ['BadJsonObjectError']);
  t.deepEqual(errors('[1,2]'), ['BadJsonObjectError'], 'a record that is not an object');
  t.deepEqual(errors(''), ['AccessByKeyFailedError'], 'an empty record is an empty object: no items');
  t.deepEqual(errors('{"datetime":"2025-12-02 16:05:04"}'), ['AccessByKeyFailedError']);
  t.deepEqual(errors('null'), ['NullPointerException']);
  t.deepEqual(run('{"datetime":"2025-12-02 16:05:04","items":[]}'), { rows: [], failures: [] }, 'no spans: no rows, nothing failed (as BKData)');
  t.deepEqual(run('{"datetime":"2025-12-02 16:05:04","items":{"a":1}}'), { rows: [], failures: [] }, 'items not a list: BKData yields nothing');

  // One bad item: the others are cleaned.
  const mixed = run(`{"datetime":"2025-12-02 16:05:04","items":[7,${SPAN_B}]}`);
  t.deepEqual(mixed.rows.map((r) => r.span_id), ['0000000000000002']);
  t.deepEqual(mixed.failures.map((f) => f.error), ['NotMapDataError']);
  t.deepEqual(errors(`{"datetime":"2025-12-02 16:05:04","items":[null,${SPAN_B}]}`), ['NullPointerException'], 'a null span fails the whole record (Java dereferences it)');

  // No datetime (or an unreadable one): every row's time fails, so every row is dropped.
  const noTime = run(`{"items":[${SPAN_A},${SPAN_B}]}`);
  t.deepEqual([noTime.rows.length, noTime.failures.map((f) => f.error)], [0, ['TimeFormatError', 'TimeFormatError']]);
  t.deepEqual(errors(`{"datetime":"yesterday","items":[${SPAN_B}]}`), ['TimeFormatError']);

  // span_id missing: null, no failure (assign_obj of an absent key); a number: its Java text.
  const odd = run('{"datetime":"2025-12-02 16:05:04","items":[{"trace_id":12,"span_id":null}]}');
  t.deepEqual([odd.rows[0]?.span_id, odd.rows[0]?.trace_id, odd.rows[0]?.span_info, odd.failures], [null, '12', '{"trace_id":12,"span_id":null}', []]);
});

test('virtual metric: each derived point is a row with target, time, bk_apm_duration and the 27 dimensions (absent ones null)', (t) => {
  const clean = orchestratorClean(metric);
  const dims = metric.METRIC_DIMENSIONS.filter((d) => d !== 'target');
  t.deepEqual(clean.columns, ['target', 'time', 'bk_apm_duration', ...dims, 'timestamp', 'dtEventTime', 'dtEventTimeStamp', 'localTime']);
  const out = clean.apply(buf(BATCH), NOW);
  t.deepEqual(out.failures, []);
  const nulls = Object.fromEntries(dims.map((d) => [d, null]));
  t.deepEqual(out.rows, [
    {
      target: 'bk-collector',
      time: 1764662704250,
      bk_apm_duration: 250000000,
      ...nulls,
      apdex_type: 'satisfied',
      kind: '2',
      service_name: 'cart',
      span_name: 'GET /cart',
      status_code: '0',
      telemetry_sdk_name: 'opentelemetry',
      http_method: 'GET',
      http_status_code: '200',
      // http_flavor stays null: the reference's converter writes `http_favor`.
      timestamp: 1764662704,
      dtEventTime: '2025-12-02 16:05:04',
      dtEventTimeStamp: 1764662704250,
      localTime: '2025-12-02 16:05:00',
    },
    {
      target: 'bk-collector',
      time: 1764662704020, // a string timestamp is read as a long
      bk_apm_duration: 10000000, // a double duration is cut to a long (Double.longValue)
      ...nulls,
      kind: '3',
      db_system: 'mysql',
      status_code: '2',
      timestamp: 1764662704,
      dtEventTime: '2025-12-02 16:05:04',
      dtEventTimeStamp: 1764662704020,
      localTime: '2025-12-02 16:05:00',
    },
  ]);
});

test('virtual metric: a point without metrics or dimension is dropped, an unreadable duration is null, a bad time drops the row', (t) => {
  const clean = orchestratorClean(metric);
  const run = (points: string[]) => clean.apply(buf(`{"dataid":1,"data":[${points.join(',')}]}`), NOW);
  const noMetrics = run(['{"target":"x","timestamp":1,"dimension":{}}', POINT_B]);
  t.deepEqual([noMetrics.rows.length, noMetrics.failures.map((f) => f.error)], [1, ['AccessByKeyFailedError']]);
  const badDuration = run(['{"metrics":{"bk_apm_duration":"slow"},"target":"x","timestamp":1,"dimension":{"kind":2}}']);
  t.deepEqual([badDuration.rows[0]?.bk_apm_duration, badDuration.rows[0]?.kind, badDuration.failures.map((f) => f.error)], [null, '2', ['TypeConversionError']]);
  const badTime = run(['{"metrics":{"bk_apm_duration":1},"target":"x","timestamp":"soon","dimension":{}}']);
  t.deepEqual([badTime.rows.length, badTime.failures.map((f) => f.error)], [0, ['TypeConversionError', 'TimeFormatError']]);
  t.deepEqual(run([]), { rows: [], failures: [] });
  t.deepEqual(clean.apply(buf('{"dataid":1}'), NOW).failures.map((f) => f.error), ['AccessByKeyFailedError']);
});

test('configs BKData would refuse (or the sim cannot run) are named, all at once', (t) => {
  t.deepEqual(compileEtl('{').problems, ['json_config is not JSON']);
  t.deepEqual(compileEtl({ extract: {} }).problems, ['json_config.conf is required']);
  const conf = { time_format: 'yyyy-MM-dd HH:mm:ss', timezone: 8, time_field_name: 'when', output_field_name: 'timestamp', timestamp_len: 0 };
  const { problems } = compileEtl({
    extract: {
      type: 'fun',
      method: 'from_json',
      next: { type: 'branch', next: [{ type: 'fun', method: 'regex_extract' }, { type: 'assign', subtype: 'assign_obj', assign: [{ type: 'float', assign_to: 'x', key: 'x' }] }, { type: 'teleport' }] },
    },
    conf,
  });
  t.deepEqual(problems, [
    'a fun node: method regex_extract is not supported by bkdata-sim (from_json, iterate)',
    'a assign node: x has type float, not one of string, text, int, long, double, bigint, bigdecimal',
    'a teleport node: type teleport is not one of fun, access, assign, branch',
    'conf.time_field_name when is not a field the ETL assigns',
  ]);
  const okEtl = tail.tailCleanJsonConfig();
  t.deepEqual(compileClean({ json_config: JSON.stringify(okEtl), fields: [...tail.TAIL_CLEAN_FIELDS, { field_name: 'missing', field_type: 'string' }, { field_name: 'span_id', field_type: 'long' }] }).problems, [
    'field missing is not assigned by the ETL',
    'field span_id is long but the ETL makes a string',
  ]);
  t.deepEqual(compileClean({ json_config: JSON.stringify({ ...okEtl, conf: { ...(okEtl.conf as object), output_field_name: 'ts' } }), fields: tail.TAIL_CLEAN_FIELDS }).problems, [
    'conf.output_field_name must be timestamp (the clean\'s time column), not ts',
  ]);
});

test('ETL nodes beyond the orchestrator\'s: access_pos, assign_pos, assign_value, defaults, nested iterates (rows are the cartesian product)', (t) => {
  const conf = { time_format: 'Unix Time Stamp(seconds)', timezone: 8, time_field_name: 'ts', output_field_name: 'timestamp', timestamp_len: 10 };
  const { etl, problems } = compileEtl({
    extract: {
      type: 'fun',
      method: 'from_json',
      next: {
        type: 'branch',
        next: [
          { type: 'assign', subtype: 'assign_obj', assign: [{ type: 'long', assign_to: 'ts', key: 't' }] },
          { type: 'access', subtype: 'access_obj', key: 'host', default_type: 'string', default_value: 'none', next: { type: 'assign', subtype: 'assign_value', assign: { type: 'string', assign_to: 'host' } } },
          {
            type: 'access',
            subtype: 'access_obj',
            key: 'groups',
            next: {
              type: 'fun',
              method: 'iterate',
              next: {
                type: 'branch',
                next: [
                  { type: 'access', subtype: 'access_pos', index: 0, next: { type: 'assign', subtype: 'assign_value', assign: { type: 'string', assign_to: 'group' } } },
                  { type: 'access', subtype: 'access_pos', index: 1, next: { type: 'fun', method: 'iterate', next: { type: 'assign', subtype: 'assign_pos', assign: [{ type: 'int', assign_to: 'v', index: 0 }, { type: 'double', assign_to: 'w', index: 1 }] } } },
                ],
              },
            },
          },
        ],
      },
    },
    conf,
  });
  t.deepEqual(problems, []);
  if (!etl) return;
  t.deepEqual(etl.fields.map((f) => f.name), ['ts', 'host', 'group', '_iteration_idx', 'v', 'w', '_iteration_idx', 'timestamp']);
  const out = etl.run('{"t":"1764662704","groups":[["a",[[1,"2.5"],["3"]]],["b",[[4000000000,null]]]]}', NOW);
  t.deepEqual(out.failures, []);
  t.deepEqual(out.rows, [
    [1764662704n, 'none', 'a', 1, 1n, 2.5, 1, 1764662704000],
    [1764662704n, 'none', 'a', 1, 3n, null, 2, 1764662704000],
    // 4000000000 as an int wraps as Java's intValue does.
    [1764662704n, 'none', 'b', 2, -294967296n, null, 1, 1764662704000],
  ]);
});

test('Java forms: Double.toString, Jackson\'s escapes, integral literals exact, key order kept', (t) => {
  t.deepEqual([1, 1.5, 1e7, 9999999.5, 0.001, 0.0001, 1e21, -2.5e-10, 0, -0].map(javaDouble), ['1.0', '1.5', '1.0E7', '9999999.5', '0.001', '1.0E-4', '1.0E21', '-2.5E-10', '0.0', '-0.0']);
  t.is(writeJackson(parseJava('{"b":1,"a":[1.0,-0,12345678901234567890,true,null],"2":"\\u0001\\t\\/é😀"}')), '{"b":1,"a":[1.0,0,12345678901234567890,true,null],"2":"\\u0001\\t/\\u00E9\\uD83D\\uDE00"}');
  t.is(writeJackson(parseJava('{"a":1} trailing text is ignored')), '{"a":1}');
  t.throws(() => parseJava('{"a":01}'));
  t.throws(() => parseJava('{"a":"raw\ttab"}'));
});

test('time: SimpleDateFormat patterns read leniently in the conf timezone; Unix timestamps by length; display in GMT+8', (t) => {
  const pattern = timeTransformer({ timeFormat: 'yyyy-MM-dd HH:mm:ss', timestampLen: 0, timezone: 8, timeRound: 1 });
  t.is(pattern('2025-12-02 16:05:04'), Date.UTC(2025, 11, 2, 8, 5, 4));
  t.is(pattern('2026-13-01 00:00:00 and more'), Date.UTC(2027, 0, 1) - 8 * 3_600_000, 'month 13 rolls over; trailing text ignored');
  t.is(timeTransformer({ timeFormat: 'yyyyMMddHHmm', timestampLen: 0, timezone: 0, timeRound: 60_000 })('202612021605'), Date.UTC(2026, 11, 2, 16, 5));
  t.throws(() => pattern('02/12/2026'), { name: 'TimeFormatError' });
  const len = (n: number) => timeTransformer({ timeFormat: '', timestampLen: n, timezone: 8, timeRound: 1 });
  t.deepEqual([len(13)(1764662704250n), len(10)('1764662704'), len(8)(29411045n), len(16)(' 1764662704250123 ')], [1764662704250, 1764662704000, 1764662700000, 1764662704250]);
  t.throws(() => len(13)(1.76e12), { name: 'TimeFormatError' }, 'a double prints as 1.76E12, which is no long');
  t.is(displayTime(Date.UTC(2026, 11, 31, 16, 0, 0)), '2027-01-01 00:00:00');
});
