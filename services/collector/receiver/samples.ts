/**
 * Spans that exercise every field and every attribute type of the span schema: the receiver's start-up
 * check of its Avro writer against avsc (span-avro.ts) runs on them.
 */
import type { Span } from '../../common/records.ts';

const T0 = 1_763_700_000_000_000;

const resource = {
  'service.name': 'order-svc',
  'telemetry.sdk.language': 'go',
  'net.host.port': 8080,
  'bk.instance.id': 'go:order-svc:::8080',
};

export const SAMPLE_SPANS: readonly Span[] = [
  {
    bk_biz_id: -4220,
    app_name: 'payments',
    trace_id: '0123456789abcdef0123456789abcdef',
    span_id: 'fedcba9876543210',
    parent_span_id: '0011223344556677',
    span_name: 'INSERT ledger',
    kind: 3,
    start_time: T0 + 7,
    end_time: T0 + 98_765,
    elapsed_time: 98_758,
    status: { code: 2, message: 'upstream timed out' },
    trace_state: 'rojo=00f067aa0ba902b7',
    attributes: {
      'http.method': 'GET',
      'http.status_code': 504,
      'sampling.ratio': 0.25,
      'big.number': 2 ** 60,
      'negative': -(2 ** 40),
      'nan': Number.NaN,
      'ok': false,
      'nothing': null,
      'raw': Buffer.from([0, 1, 2, 255]),
      'tags': ['a', 1, 2.5, true, null, Buffer.from('x')],
      'empty.list': [],
      'ünïcödé': 'välüe ✓ '.repeat(20),
    },
    resource,
    events: [{ name: 'exception', timestamp: T0 + 100, attributes: { 'exception.type': 'Timeout', 'exception.escaped': true } }],
    links: [{ trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: 'b7ad6b7169203331', trace_state: '', attributes: { 'link.kind': 'follows' } }],
    client_ip: '10.0.1.5',
  },
  {
    bk_biz_id: 9_007_199_254_740_990,
    app_name: '',
    trace_id: 'ffffffffffffffffffffffffffffffff',
    span_id: 'ffffffffffffffff',
    parent_span_id: '00f067aa0ba902b7',
    span_name: 'x'.repeat(300),
    kind: 0,
    start_time: 0,
    end_time: 0,
    elapsed_time: 0,
    status: { code: 0, message: '' },
    trace_state: '',
    attributes: {},
    resource,
    events: [],
    links: [],
    client_ip: '',
  },
];
