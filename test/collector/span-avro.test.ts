/**
 * The receiver's Avro span writer against avsc: the same bytes for every field and attribute type, and
 * batches assembled from single spans that decode with the project's codec.
 */
import test from 'ava';
import { resolve } from 'node:path';
import { codecFor, SCHEMAS_DIR, SchemaRegistry } from '../../services/common/avro/index.ts';
import type { Span } from '../../services/common/records.ts';
import { SAMPLE_SPANS } from '../../services/collector/receiver/samples.ts';
import { AVRO_LONG_MAX, AVRO_LONG_MIN, AvroWriter } from '../../services/common/avro/index.ts';
import { assembleBatch, checkSpanWriter, SpanWriter } from '../../services/collector/receiver/span-avro.ts';
import { sampleSpan } from '../helpers/records.ts';
import { toPlain } from './helpers.ts';
import { rng } from './otlp-fixtures.ts';

const codec = codecFor('SpanBatch');

/** Varied spans: every attribute type, long strings (multi-byte lengths), multi-byte characters. */
function variedSpans(n: number): Span[] {
  const r = rng(5);
  const values = [null, true, false, 0, -1, 63, 64, -65, 2 ** 31, -(2 ** 31) - 1, 2 ** 40, AVRO_LONG_MAX, AVRO_LONG_MIN, 0.1, -2.5e-300, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60,
    '', 'a', 'ü'.repeat(40), 'x'.repeat(63), 'x'.repeat(64), 'y'.repeat(5000), '🙂 emoji', Buffer.alloc(0), Buffer.alloc(200, 9), ['a', 1, null, 2.5, false, Buffer.from('z')], []];
  return Array.from({ length: n }, (_, i) => {
    const attributes: Span['attributes'] = {};
    for (let k = 0; k < 1 + (i % 7); k++) attributes[`k${k}.${'ß'.repeat(k)}`] = values[Math.floor(r() * values.length)] as Span['attributes'][string];
    return sampleSpan({
      bk_biz_id: [2, -4220, AVRO_LONG_MIN, AVRO_LONG_MAX][i % 4] as number,
      span_name: 'n'.repeat(i * 3),
      kind: i % 6,
      start_time: 1_763_700_000_000_000 + i,
      end_time: 1_763_700_000_000_000 + i * 1000,
      elapsed_time: i * 999,
      status: { code: i % 3, message: i % 2 ? 'ошибка' : '' },
      attributes,
      resource: i % 2 ? { 'service.name': 's', 'net.host.port': 80 } : {},
      events: i % 3 === 0 ? [] : [{ name: 'e', timestamp: 5, attributes }],
      links: i % 4 === 0 ? [] : [{ trace_id: 'ab', span_id: '', trace_state: 'k=v', attributes: { n: i } }],
    });
  });
}

test('the span writer writes what avsc writes (samples and varied spans)', (t) => {
  t.is(checkSpanWriter(codec, SAMPLE_SPANS), undefined);
  const spans = variedSpans(60);
  t.is(checkSpanWriter(codec, spans), undefined);
  for (const s of spans) t.is(checkSpanWriter(codec, [s]), undefined);
});

test('a batch assembled from spans written one by one decodes to those spans', (t) => {
  const spans = variedSpans(300);
  const w = new AvroWriter(16);
  const writer = new SpanWriter();
  for (const s of spans) writer.writeTo(s, w);
  const batch = codec.decode(assembleBatch(codec.schema.header, spans.length, w.view()));
  t.deepEqual(toPlain(batch.spans), toPlain(spans));
  t.deepEqual(codec.decode(assembleBatch(codec.schema.header, 0, Buffer.alloc(0))).spans, []);
});

test('writeTo reports where the trace id is', (t) => {
  const w = new AvroWriter();
  w.raw(Buffer.from('prefix'));
  const at = new SpanWriter().writeTo(sampleSpan({ bk_biz_id: 123_456_789_012, app_name: 'ünï' }), w);
  t.is(w.buf.subarray(at, at + 32).toString(), sampleSpan().trace_id);
});

test('safe integers avsc cannot round-trip as longs travel as strings', (t) => {
  const attributes = { max: AVRO_LONG_MAX, min: AVRO_LONG_MIN, edge: Number.MAX_SAFE_INTEGER, neg: -Number.MAX_SAFE_INTEGER, below: AVRO_LONG_MIN - 1 };
  const bytes = new SpanWriter().write(sampleSpan({ attributes }));
  const batch = codec.decode(assembleBatch(codec.schema.header, 1, bytes));
  t.deepEqual(toPlain(batch.spans[0]?.attributes), {
    max: AVRO_LONG_MAX,
    min: AVRO_LONG_MIN,
    edge: '9007199254740991',
    neg: '-9007199254740991',
    below: '-4503599627370497',
  });
});

test('a schema version the writer does not follow is detected', (t) => {
  const registry = SchemaRegistry.load([SCHEMAS_DIR, resolve(import.meta.dirname, '../fixtures/schemas')]);
  const v2 = codecFor('SpanBatch', { registry, version: 2 });
  t.regex(checkSpanWriter(v2, SAMPLE_SPANS.map((s) => ({ ...s, sampled: true }))) ?? '', /SpanBatch v2: the span writer differs from avsc at byte \d+/);
  t.regex(checkSpanWriter(codec, [{ ...sampleSpan(), kind: 2 ** 40 }]) ?? '', /does not fit|differs/, 'a value avsc refuses is reported, not thrown');
});
