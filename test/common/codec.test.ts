import test from 'ava';
import { resolve } from 'node:path';
import { Codec, codecFor, HEADER_BYTES, rabin64, SCHEMAS_DIR, SchemaRegistry, schemas } from '../../services/common/avro/index.ts';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError, ValidationError } from '../../services/common/errors.ts';
import type { RecordName, SpanBatch } from '../../services/common/records.ts';
import { SAMPLES, sampleSpan } from '../helpers/records.ts';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/schemas');

test('CRC-64-AVRO matches the Avro specification test vectors', (t) => {
  // From Avro's share/test/data/schema-tests.txt.
  t.is(BigInt.asIntN(64, rabin64('"null"')), 7195948357588979594n);
  t.is(BigInt.asIntN(64, rabin64('"boolean"')), -6970731678124411036n);
  t.is(BigInt.asIntN(64, rabin64('"int"')), 8247732601305521295n);
});

test('schema fingerprints equal the Java reference (Apache Avro 1.12.1 SchemaNormalization.parsingFingerprint64)', (t) => {
  const expected: Record<string, string> = {
    AgentEvent: 'e52bbb90dab7adf2',
    FlowCommand: 'ffc00c3f14c3d3f3',
    FlowStatus: 'a5265e8f6876161f',
    MetricBatch: 'af4e35411a936fc2',
    SpanBatch: 'fc9900a0eb48cc8c',
  };
  const reg = SchemaRegistry.load([SCHEMAS_DIR]);
  t.deepEqual(reg.names().sort(), Object.keys(expected).sort());
  for (const [name, fp] of Object.entries(expected)) t.is(reg.get(name).fingerprint, fp, name);
});

for (const name of Object.keys(SAMPLES) as RecordName[]) {
  test(`${name} round-trips through single-object encoding`, (t) => {
    const codec: Codec<unknown> = codecFor(name);
    const value = SAMPLES[name]();
    t.true(codec.isValid(value));
    const buf = codec.encode(value);
    t.deepEqual([...buf.subarray(0, 2)], [0xc3, 0x01]);
    t.deepEqual(buf.subarray(2, HEADER_BYTES), Buffer.from(codec.schema.fingerprint, 'hex').reverse());
    // decoded records are avsc record instances: compare their data, not their prototypes
    t.deepEqual(structuredClone(codec.decode(buf)), structuredClone(value));
  });
}

test('typed attribute values keep their JS types, and the wire keeps long vs double', (t) => {
  const codec = codecFor('SpanBatch');
  const attributes = { int: 42, neg: -7, double: 0.5, big: 1e20, nan: Number.NaN, bool: false, nil: null, str: 'x', bytes: Buffer.from([1, 2]), list: ['a', 1, 2.5, true, null] };
  const out = codec.decode(codec.encode({ spans: [sampleSpan({ attributes })] }));
  t.deepEqual(out.spans[0]?.attributes, attributes);
  // The union branch index after the key tells long (2) from double (3): find "int" then its branch byte.
  const withInt = codec.encode({ spans: [sampleSpan({ attributes: { i: 1 }, resource: {}, events: [] })] });
  const withDouble = codec.encode({ spans: [sampleSpan({ attributes: { i: 1.5 }, resource: {}, events: [] })] });
  t.not(withInt.length, withDouble.length); // long 1 is one byte, double is eight
});

test('a v1 record is readable by a v2 reader (defaults fill the new fields)', (t) => {
  const registry = SchemaRegistry.load([SCHEMAS_DIR, FIXTURES]);
  const v1 = new Codec<SpanBatch>('SpanBatch', { registry, version: 1 });
  const v2 = new Codec<{ source: string; spans: (SpanBatch['spans'][number] & { sampled: boolean })[] }>('SpanBatch', { registry });
  t.is(v2.schema.version, 2);
  const original = SAMPLES.SpanBatch();
  const read = v2.decode(v1.encode(original));
  t.is(read.source, 'unknown');
  t.true(read.spans.every((s) => s.sampled));
  t.deepEqual(read.spans.map((s) => s.attributes), original.spans.map((s) => s.attributes));
  // and v2 records are readable by v2 directly
  t.is(v2.decode(v2.encode({ ...read, source: 'collector' })).source, 'collector');
});

test('decoding names what is wrong, with typed errors', (t) => {
  const codec = codecFor('SpanBatch');
  const good = codec.encode(SAMPLES.SpanBatch());

  t.throws(() => codec.decode(Buffer.from('{"spans":[]}')), { instanceOf: CorruptRecordError, message: /marker/ });
  t.throws(() => codec.decode(Buffer.from([0xc3, 0x01, 1])), { instanceOf: CorruptRecordError, message: /shorter/ });

  const unknown = Buffer.from(good);
  unknown.writeBigUInt64LE(0x0123456789abcdefn, 2);
  const err = t.throws(() => codec.decode(unknown), { instanceOf: UnknownSchemaError });
  t.is(err?.fingerprint, '0123456789abcdef');

  t.throws(() => codec.decode(good.subarray(0, good.length - 5)), { instanceOf: CorruptRecordError, message: /truncated|decode/ });
  t.throws(() => codec.decode(Buffer.concat([good, Buffer.from([0, 0])])), { instanceOf: CorruptRecordError, message: /trailing/ });

  // a corrupt array block count must fail fast instead of looping or allocating
  const huge = Buffer.concat([good.subarray(0, HEADER_BYTES), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])]);
  t.throws(() => codec.decode(huge), { instanceOf: CorruptRecordError, message: /block count/ });
});

test('a record of another schema is a typed mismatch, not a crash', (t) => {
  const status = codecFor('FlowStatus').encode(SAMPLES.FlowStatus());
  t.throws(() => codecFor('SpanBatch').decode(status), { instanceOf: SchemaMismatchError });
});

test('encoding a value that does not fit names the field', (t) => {
  const codec = codecFor('SpanBatch');
  const bad = { spans: [{ ...sampleSpan(), kind: 'server' }] } as unknown as SpanBatch;
  t.throws(() => codec.encode(bad), { instanceOf: ValidationError, message: /kind/ });
});

test('the registry rejects duplicate versions and unnamed schemas', (t) => {
  const reg = new SchemaRegistry();
  reg.add('{"type":"record","name":"A","fields":[]}', 1);
  t.throws(() => reg.add('{"type":"record","name":"A","fields":[]}', 1), { message: /twice/ });
  t.throws(() => reg.add('"string"', 1), { message: /named record/ });
  t.throws(() => reg.add('{"type":"nope"}', 1), { message: /invalid Avro schema/ });
  t.throws(() => schemas().get('Nope'), { message: /no schema Nope/ });
});

test('large batches grow the scratch buffer', (t) => {
  const codec = codecFor('SpanBatch');
  const batch: SpanBatch = { spans: Array.from({ length: 2000 }, (_, i) => sampleSpan({ span_id: i.toString(16).padStart(16, '0') })) };
  const buf = codec.encode(batch);
  t.true(buf.length > 64 * 1024);
  t.is(codec.decode(buf).spans.length, 2000);
});
