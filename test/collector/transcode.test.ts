/**
 * The binary fast path (transcode.ts) against the object path (protobufjs decode → convertSpan →
 * SpanWriter): the same records once decoded, the same rejections, any field order; malformed input is
 * a ValidationError and nothing else.
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { ValidationError } from '../../services/common/errors.ts';
import type { Span } from '../../services/common/records.ts';
import { convertSpan, filterResource, SpanRejection } from '../../services/collector/receiver/convert.ts';
import { decodeRequest, encodeRequest } from '../../services/common/otlp/index.ts';
import { AvroWriter } from '../../services/common/avro/index.ts';
import { assembleBatch, SpanWriter } from '../../services/collector/receiver/span-avro.ts';
import { groupBytes, scanRequest, SpanTranscoder } from '../../services/collector/receiver/transcode.ts';
import { toPlain } from './helpers.ts';
import { kv, randomRequestBytes, rng, WireWriter } from './otlp-fixtures.ts';

const codec = codecFor('SpanBatch');
const CLIENT = '192.0.2.7';

interface PathResult {
  spans: Span[];
  rejections: string[];
  tokens: (string | undefined)[];
}

/** The fast path: scan, then transcode each span. */
function fast(body: Buffer): PathResult {
  const w = new AvroWriter();
  const transcoder = new SpanTranscoder();
  const rejections: string[] = [];
  let count = 0;
  const groups = scanRequest(body);
  for (const [g, group] of groups.entries()) {
    const shared = groupBytes(g + 1, `app-${g}`, group.resource, CLIENT);
    for (let i = 0; i < group.spans.length; i += 2) {
      const r = transcoder.write(body, group.spans[i] as number, group.spans[i + 1] as number, shared, w);
      if (typeof r === 'string') rejections.push(r);
      else {
        count++;
        t32(w.buf.subarray(r, r + 32).toString('latin1'));
      }
    }
  }
  const spans = codec.decode(assembleBatch(codec.schema.header, count, w.view())).spans;
  return { spans: toPlain(spans), rejections, tokens: groups.map((g) => g.token) };
}

/** The trace id slice the transcoder points at is 32 hex characters. */
function t32(s: string): void {
  if (!/^[0-9a-f]{32}$/.test(s)) throw new Error(`traceAt does not point at a trace id: ${JSON.stringify(s)}`);
}

/** The object path, through the same Avro bytes. */
function slow(body: Buffer): PathResult {
  const request = decodeRequest(body);
  const w = new AvroWriter();
  const writer = new SpanWriter();
  const rejections: string[] = [];
  const tokens: (string | undefined)[] = [];
  let count = 0;
  for (const [g, rs] of (request.resourceSpans ?? []).entries()) {
    const { resource, token } = filterResource(rs.resource?.attributes);
    tokens.push(token);
    const ctx = { bkBizId: g + 1, appName: `app-${g}`, clientIp: CLIENT, resource };
    for (const span of (rs.scopeSpans ?? []).flatMap((s) => s.spans ?? [])) {
      try {
        const converted = convertSpan(span, ctx);
        writer.writeTo(converted, w);
        count++;
      } catch (err) {
        if (!(err instanceof SpanRejection)) throw err;
        rejections.push(err.message);
      }
    }
  }
  const spans = codec.decode(assembleBatch(codec.schema.header, count, w.view())).spans;
  return { spans: toPlain(spans), rejections, tokens };
}

test('the fast path and the object path give the same records for varied requests', (t) => {
  for (let seed = 1; seed <= 60; seed++) {
    const body = randomRequestBytes(seed, 1 + (seed % 3), 15);
    const a = fast(body);
    const b = slow(body);
    t.is(a.spans.length, b.spans.length, `seed ${seed}: span count`);
    t.deepEqual(a.rejections, b.rejections, `seed ${seed}: rejections`);
    t.deepEqual(a.tokens, b.tokens, `seed ${seed}: tokens`);
    for (let i = 0; i < a.spans.length; i++) t.deepEqual(a.spans[i], b.spans[i], `seed ${seed}: span ${i}`);
  }
});

test('a resource token is taken out of the resource, bk.instance.id is assembled, blank parts kept empty', (t) => {
  const body = encodeRequest({
    resourceSpans: [
      {
        resource: {
          attributes: [
            kv('bk.data.token', { stringValue: 'tok-1' }),
            kv('service.name', { stringValue: 'cart' }),
            kv('telemetry.sdk.language', { stringValue: 'java' }),
            kv('net.host.port', { intValue: 9000 }),
          ],
        },
        scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'x' }] }],
      },
    ],
  });
  const a = fast(body);
  t.deepEqual(a.tokens, ['tok-1']);
  t.deepEqual(a.spans[0]?.resource, { 'service.name': 'cart', 'telemetry.sdk.language': 'java', 'net.host.port': 9000, 'bk.instance.id': 'java:cart:::9000' });
  t.deepEqual(slow(body).spans, a.spans);
});

/** Writes a Span message with its fields in reverse order and unknown fields between them. */
function shuffledSpanBytes(): Uint8Array {
  const w = new WireWriter();
  w.varint((99 << 3) | 0).varint(123); // unknown varint
  w.varint((15 << 3) | 2).fork().varint((3 << 3) | 0).varint(2).varint((2 << 3) | 2).string('late status').ldelim(); // status
  w.varint((9 << 3) | 2).fork().varint((2 << 3) | 2).fork().varint((1 << 3) | 2).string('v').ldelim().varint((1 << 3) | 2).string('k').ldelim(); // attribute, value before key
  w.varint((98 << 3) | 5).fixed32(7); // unknown fixed32
  w.varint((8 << 3) | 1).fixed64(1_763_700_000_999_999_999n); // end
  w.varint((7 << 3) | 1).fixed64(1_763_700_000_000_000_999n); // start
  w.varint((6 << 3) | 0).varint(3); // kind
  w.varint((5 << 3) | 2).string('reversed');
  w.varint((2 << 3) | 2).bytes(Buffer.alloc(8, 0xab));
  w.varint((1 << 3) | 2).bytes(Buffer.alloc(16, 0xcd));
  w.varint((97 << 3) | 2).bytes(Buffer.from('unknown bytes'));
  return w.finish();
}

test('fields in any order and unknown fields: both paths agree', (t) => {
  const span = shuffledSpanBytes();
  const w = new WireWriter();
  // scope_spans before resource, resource given twice (the last wins)
  w.varint((1 << 3) | 2).fork();
  w.varint((2 << 3) | 2).fork().varint((2 << 3) | 2).bytes(span).ldelim();
  w.varint((1 << 3) | 2).fork().varint((1 << 3) | 2).fork().varint((1 << 3) | 2).string('service.name').varint((2 << 3) | 2).fork().varint((1 << 3) | 2).string('first').ldelim().ldelim().ldelim();
  w.varint((1 << 3) | 2).fork().varint((1 << 3) | 2).fork().varint((1 << 3) | 2).string('service.name').varint((2 << 3) | 2).fork().varint((1 << 3) | 2).string('second').ldelim().ldelim().ldelim();
  w.ldelim();
  const body = Buffer.from(w.finish());
  const a = fast(body);
  const b = slow(body);
  t.deepEqual(a, b);
  const s = a.spans[0];
  t.is(s?.span_name, 'reversed');
  t.is(s?.kind, 3);
  t.is(s?.start_time, 1_763_700_000_000_000);
  t.is(s?.end_time, 1_763_700_000_999_999);
  t.deepEqual(s?.status, { code: 2, message: 'late status' });
  t.deepEqual(s?.attributes, { k: 'v' });
  t.is(s?.resource['service.name'], 'second');
});

test('malformed protobuf is a ValidationError naming the problem', (t) => {
  const cases: [string, Buffer][] = [
    ['invalid wire type', Buffer.from([0x0f])],
    ['length past the end', Buffer.from([0x0a, 0x7f, 0x01])],
    ['truncated varint', Buffer.from([0x0a, 0x80])],
    ['varint longer than 10 bytes', Buffer.from([0x08, ...Array.from({ length: 11 }, () => 0xff), 0x01])],
  ];
  for (const [what, body] of cases) {
    const err = t.throws(() => scanRequest(body), { instanceOf: ValidationError }, what);
    t.regex(err?.message ?? '', /^malformed OTLP protobuf: /, what);
  }
  // a span whose inside is broken: the scan finds it, the transcoder refuses it
  const bad = encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: 'x' }] }] }] });
  const spanAt = bad.indexOf(Buffer.from('x')) - 2; // the span's `name` tag
  bad[spanAt] = 0x2f; // field 5, wire type 7
  const groups = scanRequest(bad);
  const g = groups[0];
  if (!g) throw new Error('no group');
  t.throws(() => new SpanTranscoder().write(bad, g.spans[0] as number, g.spans[1] as number, groupBytes(1, 'a', {}, ''), new AvroWriter()), { instanceOf: ValidationError });
});

test('truncated and random bytes never throw anything but ValidationError', (t) => {
  const body = randomRequestBytes(7, 2, 5);
  const r = rng(99);
  const inputs: Buffer[] = [];
  for (let cut = 0; cut < body.length; cut += Math.max(1, Math.floor(body.length / 300))) inputs.push(body.subarray(0, cut));
  for (let i = 0; i < 300; i++) inputs.push(Buffer.from(Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256))));
  for (let i = 0; i < 300; i++) {
    const flipped = Buffer.from(body);
    flipped[Math.floor(r() * flipped.length)] = Math.floor(r() * 256);
    inputs.push(flipped);
  }
  let refused = 0;
  for (const input of inputs) {
    try {
      fast(input);
    } catch (err) {
      if (!(err instanceof ValidationError)) {
        t.fail(`${(err as Error).name}: ${(err as Error).message}`);
        return;
      }
      refused++;
    }
  }
  t.true(refused > 0, 'some inputs are refused');
  t.pass();
});
