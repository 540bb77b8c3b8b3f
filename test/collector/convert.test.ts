/**
 * Span conversion facts (bk-collector's resource_filter assemble; the collector README, "Interfaces") on
 * the object path: µs times computed exactly, hex ids, typed flat attributes, the resource filter,
 * rejected spans.
 */
import test from 'ava';
import { flattenAttributes, int64Value, MAX_FLATTEN_DEPTH } from '../../services/collector/receiver/attributes.ts';
import { convertSpan, filterResource, hexId, nanosToMicros, SpanRejection } from '../../services/collector/receiver/convert.ts';
import { decodeJsonRequest, decodeRequest, encodeRequest, type KeyValue, type OtlpSpan } from '../../services/common/otlp/index.ts';
import { decodedLong, kv } from './otlp-fixtures.ts';

/** Longs as protobufjs decodes 64-bit integers (long.js). */
const Long = { fromString: decodedLong };

/** KeyValues as protobufjs gives them (through an encode/decode round trip). */
function decodedAttributes(attrs: Record<string, unknown>[]): KeyValue[] {
  const body = encodeRequest({ resourceSpans: [{ resource: { attributes: attrs } }] });
  return decodeRequest(body).resourceSpans?.[0]?.resource?.attributes ?? [];
}

test('ns → µs is exact for Long, decimal string and number, and floors', (t) => {
  const ns = 1_763_700_000_123_456_789n;
  t.is(nanosToMicros(ns.toString()), 1_763_700_000_123_456);
  t.is(nanosToMicros(Long.fromString(ns.toString(), true)), 1_763_700_000_123_456);
  t.is(nanosToMicros(Long.fromString('999', true)), 0);
  t.is(nanosToMicros('999'), 0);
  t.is(nanosToMicros('1000'), 1);
  t.is(nanosToMicros(1_500), 1);
  t.is(nanosToMicros(undefined), 0);
  // every ns of a range around a 2^32 boundary, against BigInt arithmetic
  for (let d = -1500n; d <= 1500n; d += 7n) {
    const v = 0x1_8000_0000_0000_0000n / 4n + d;
    t.is(nanosToMicros(Long.fromString(v.toString(), true)), Number(v / 1000n));
  }
  t.throws(() => nanosToMicros('18446744073709551615'), { instanceOf: SpanRejection, message: /out of range/ });
  t.throws(() => nanosToMicros(Long.fromString('18446744073709551615', true)), { instanceOf: SpanRejection });
  t.throws(() => nanosToMicros('-5'), { instanceOf: SpanRejection });
});

test('ids are lower-case hex; an empty id is the empty string', (t) => {
  t.is(hexId(Buffer.from([0xab, 0x01, 0xff])), 'ab01ff');
  t.is(hexId(new Uint8Array([0x0a])), '0a');
  t.is(hexId(Buffer.alloc(0)), '');
  t.is(hexId(undefined), '');
});

test('attributes: typed values, key-value lists flattened to dotted keys, nested arrays as JSON, blank keys dropped', (t) => {
  const attrs = decodedAttributes([
    kv('s', { stringValue: 'x' }),
    kv('b', { boolValue: true }),
    kv('i', { intValue: '42' }),
    kv('i.big', { intValue: '9223372036854775807' }),
    kv('i.edge', { intValue: '9007199254740991' }),
    kv('d', { doubleValue: 0.5 }),
    kv('d.whole', { doubleValue: 3 }),
    kv('bytes', { bytesValue: Buffer.from([1, 2]) }),
    kv('empty', {}),
    kv('novalue', undefined),
    kv('list', { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 1 }, { boolValue: false }, {}] } }),
    kv('nested.list', { arrayValue: { values: [{ arrayValue: { values: [{ intValue: 1 }] } }, { kvlistValue: { values: [kv('k', { stringValue: 'v' })] } }] } }),
    kv('http', { kvlistValue: { values: [kv('method', { stringValue: 'GET' }), kv('request', { kvlistValue: { values: [kv('size', { intValue: 10 })] } })] } }),
    kv('', { stringValue: 'dropped' }),
    kv('   ', { stringValue: 'dropped' }),
  ]);
  t.deepEqual(flattenAttributes(attrs), {
    s: 'x',
    b: true,
    i: 42,
    'i.big': '9223372036854775807',
    'i.edge': '9007199254740991',
    d: 0.5,
    'd.whole': 3,
    bytes: Buffer.from([1, 2]),
    empty: null,
    novalue: null,
    list: ['a', 1, false, null],
    'nested.list': '[[1],{"k":"v"}]',
    'http.method': 'GET',
    'http.request.size': 10,
  });
});

test(`key-value lists deeper than ${MAX_FLATTEN_DEPTH} levels stay one JSON string`, (t) => {
  let value: Record<string, unknown> = { stringValue: 'leaf' };
  for (let i = 0; i < MAX_FLATTEN_DEPTH + 2; i++) value = { kvlistValue: { values: [kv(`l${i}`, value)] } };
  const flat = flattenAttributes(decodedAttributes([kv('deep', value)]));
  const keys = Object.keys(flat);
  t.is(keys.length, 1);
  const key = keys[0] as string;
  t.is(key.split('.').length, MAX_FLATTEN_DEPTH + 1);
  t.is(typeof flat[key], 'string');
  t.regex(flat[key] as string, /"leaf"/);
});

test('int64 values: numbers where avsc round-trips them as longs, the rest their decimal string', (t) => {
  t.is(int64Value(Long.fromString('9007199254740990')), 9_007_199_254_740_990);
  t.is(int64Value(Long.fromString('9007199254740991')), '9007199254740991');
  t.is(int64Value(Long.fromString('-4503599627370496')), -4_503_599_627_370_496);
  t.is(int64Value(Long.fromString('-4503599627370497')), '-4503599627370497', 'avsc cannot round-trip longs below -2^52');
  t.is(int64Value('123'), 123);
  t.is(int64Value('123456789012345678901'), '123456789012345678901');
});

test('resource filter: bk.instance.id from language:service:host:ip:port (missing parts empty), token taken out', (t) => {
  const full = filterResource(
    decodedAttributes([
      kv('telemetry.sdk.language', { stringValue: 'python' }),
      kv('service.name', { stringValue: 'api' }),
      kv('net.host.name', { stringValue: 'node-1' }),
      kv('net.host.ip', { stringValue: '10.1.2.3' }),
      kv('net.host.port', { intValue: 8000 }),
      kv('bk.data.token', { stringValue: 'secret' }),
    ]),
  );
  t.is(full.token, 'secret');
  t.false('bk.data.token' in full.resource);
  t.is(full.resource['bk.instance.id'], 'python:api:node-1:10.1.2.3:8000');

  const partial = filterResource(decodedAttributes([kv('service.name', { stringValue: 'api' }), kv('bk.instance.id', { stringValue: 'overwritten' })]));
  t.is(partial.resource['bk.instance.id'], ':api:::', 'the reference keeps empty parts, and upserts');
  t.is(partial.token, undefined);
  t.is(filterResource(undefined).resource['bk.instance.id'], '::::');
  t.is(filterResource(decodedAttributes([kv('bk.data.token', { intValue: 5 })])).token, undefined, 'only a string is a token');
});

const ctx = { bkBizId: 7, appName: 'cart', clientIp: '10.9.9.9', resource: { 'service.name': 'cart' } };

function span(overrides: Partial<OtlpSpan> = {}): OtlpSpan {
  return {
    traceId: Buffer.alloc(16, 0x11),
    spanId: Buffer.alloc(8, 0x22),
    parentSpanId: Buffer.alloc(0),
    name: 'op',
    kind: 2,
    startTimeUnixNano: '1763700000000001999',
    endTimeUnixNano: '1763700000000000999',
    ...overrides,
  };
}

test('a span: biz/app from the token, client ip, status, elapsed never negative', (t) => {
  const s = convertSpan(span(), ctx);
  t.is(s.bk_biz_id, 7);
  t.is(s.app_name, 'cart');
  t.is(s.client_ip, '10.9.9.9');
  t.is(s.trace_id, '11'.repeat(16));
  t.is(s.span_id, '22'.repeat(8));
  t.is(s.parent_span_id, '');
  t.is(s.start_time, 1_763_700_000_000_001);
  t.is(s.end_time, 1_763_700_000_000_000);
  t.is(s.elapsed_time, 0, 'end before start: 0 (the reference wraps around)');
  t.deepEqual(s.status, { code: 0, message: '' });
  t.is(s.resource, ctx.resource, 'the group resource is shared');
});

test('spans that cannot be keyed or stored are rejected with a reason', (t) => {
  const bad: [string, Partial<OtlpSpan>][] = [
    ['trace_id', { traceId: Buffer.alloc(16) }],
    ['trace_id', { traceId: Buffer.alloc(8, 1) }],
    ['trace_id', { traceId: undefined }],
    ['span_id', { spanId: Buffer.alloc(8) }],
    ['span_id', { spanId: Buffer.alloc(16, 1) }],
    ['parent_span_id', { parentSpanId: Buffer.alloc(4, 1) }],
    ['timestamp', { startTimeUnixNano: '99999999999999999999' }],
  ];
  for (const [what, overrides] of bad) {
    t.throws(() => convertSpan(span(overrides), ctx), { instanceOf: SpanRejection, message: new RegExp(what) }, what);
  }
});

test('OTLP/JSON: hex ids, int64 as strings or numbers, enums as integers; malformed JSON names the problem', (t) => {
  const request = decodeJsonRequest(
    JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'web' } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: '5B8EFFF798038103D269B633813FC60C',
                  spanId: 'EEE19B7EC3C1B174',
                  parentSpanId: '',
                  name: 'GET',
                  kind: 2,
                  startTimeUnixNano: '1544712660000000000',
                  endTimeUnixNano: 1544712661000000000,
                  attributes: [{ key: 'n', value: { intValue: '3' } }],
                  links: [{ traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174' }],
                  status: { code: 2 },
                },
              ],
            },
          ],
        },
      ],
    }),
  );
  const otlp = request.resourceSpans?.[0]?.scopeSpans?.[0]?.spans?.[0];
  if (!otlp) throw new Error('no span');
  const s = convertSpan(otlp, ctx);
  t.is(s.trace_id, '5b8efff798038103d269b633813fc60c');
  t.is(s.span_id, 'eee19b7ec3c1b174');
  t.is(s.start_time, 1_544_712_660_000_000);
  t.is(s.end_time, 1_544_712_661_000_000);
  t.deepEqual(s.attributes, { n: 3 });
  t.is(s.links[0]?.trace_id, '5b8efff798038103d269b633813fc60c');
  t.is(s.status.code, 2);

  t.throws(() => decodeJsonRequest('{"resourceSpans": ['), { message: /^malformed OTLP JSON: / });
  t.throws(() => decodeJsonRequest('[]'), { message: /body must be an object/ });
  t.throws(() => decodeJsonRequest('{"resourceSpans": 5}'), { message: /resourceSpans must be an array/ });
  t.throws(() => decodeJsonRequest('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}'), {
    message: /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId must be a hex string/,
  });
  t.throws(() => decodeJsonRequest('{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":5}]}]}]}'), { message: /^malformed OTLP JSON: .*attributes: array expected/ });
});
