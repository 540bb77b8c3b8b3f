/**
 * The sampler's in-place SpanBatch reader and its writer: ids, application and bytes of every span agree
 * with avsc's decode; the span as a document gives the reference document's values (status, dotted
 * attribute keys, bytes as base64, arrays, missing keys); concatenated spans decode back to the same spans;
 * records that would not decode throw (the bus dead-letters them).
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import type { Span } from '../../services/common/records.ts';
import { isDocObject, type DocObject } from '../../services/sampler/document.ts';
import { SampledBatchWriter, spanBatchDecoder } from '../../services/sampler/span-batch.ts';
import { sampleSpan } from '../helpers/records.ts';

const codec = codecFor('SpanBatch');
const decoder = spanBatchDecoder();

function spans(): Span[] {
  return [
    sampleSpan({ span_id: '0000000000000001', status: { code: 2, message: 'boom' }, trace_state: 'k=v', attributes: { 'http.status_code': 500, ratio: 0.25, ok: true, raw: Buffer.from('hi'), tags: ['a', 'b'], one: ['x'], nothing: null, 'http.method': 'GET' } }),
    sampleSpan({ span_id: '0000000000000002', app_name: 'другое', bk_biz_id: 7, trace_id: 'b'.repeat(32), span_name: '查询' }),
    sampleSpan({ span_id: '0000000000000003', app_name: 'другое', bk_biz_id: 7 }),
  ];
}

test('ids, application and bytes of every span agree with avsc', (t) => {
  const list = spans();
  const view = decoder.decode(codec.encode({ spans: list }));
  t.is(view.count, 3);
  list.forEach((s, i) => {
    t.is(view.traceId(i), s.trace_id);
    t.is(view.spanId(i), s.span_id);
    t.is(view.bizId(i), s.bk_biz_id);
    t.is(view.appName(i), s.app_name);
    const [from, to] = view.traceIdRange(i);
    t.is(view.buf.toString('utf8', from, to), s.trace_id);
  });
  t.false(view.sameApp(0, 1));
  t.true(view.sameApp(1, 2));
});

test('a span reads as the reference document', (t) => {
  const view = decoder.decode(codec.encode({ spans: spans() }));
  const doc = view.document(0);
  const obj = (v: unknown): DocObject => {
    if (!isDocObject(v as never)) throw new Error('not an object');
    return v as DocObject;
  };
  t.is(doc.get('span_name'), 'GET /api/orders/{id}');
  t.is(doc.get('kind'), 2);
  t.is(doc.get('elapsed_time'), 12_345);
  t.is(doc.get('trace_state'), 'k=v');
  t.is(doc.get('parent_span_id'), '');
  const status = obj(doc.get('status'));
  t.is(status.get('code'), 2);
  t.is(status.get('message'), 'boom');
  t.is(status.get('other'), undefined);
  const attrs = obj(doc.get('attributes'));
  t.is(attrs.get('http.status_code'), 500);
  t.is(attrs.get('ratio'), 0.25);
  t.is(attrs.get('ok'), true);
  t.is(attrs.get('raw'), Buffer.from('hi').toString('base64'));
  t.deepEqual(attrs.get('tags'), ['a', 'b']);
  t.deepEqual(attrs.get('one'), ['x']);
  t.is(attrs.get('nothing'), null);
  t.is(attrs.get('absent'), undefined);
  t.is(obj(doc.get('resource')).get('service.name'), 'order-svc');
  t.deepEqual(doc.get('events'), []);
  t.deepEqual(doc.get('links'), []);
  for (const notInTheDocument of ['bk_biz_id', 'app_name', 'client_ip', 'attributes.http.method']) t.is(doc.get(notInTheDocument), undefined, notInTheDocument);
  t.is(view.document(1).get('span_name'), '查询');
});

test('the writer concatenates span bytes into records that decode to the same spans, split by size', (t) => {
  const record = codec.encode({ spans: [...spans(), ...spans()] });
  const list = codec.decode(record).spans;
  const view = decoder.decode(record);
  const bytes = Array.from({ length: view.count }, (_, i) => view.bytes(i));
  const one: Buffer[] = [];
  new SampledBatchWriter({ maxRecordBytes: 1 << 20 }).write(bytes, (value) => one.push(Buffer.from(value)));
  t.is(one.length, 1);
  t.deepEqual(codec.decode(one[0] as Buffer).spans, list);
  const small: { value: Buffer; first: number }[] = [];
  new SampledBatchWriter({ maxRecordBytes: (bytes[0] as Buffer).length * 2 + 40 }).write(bytes, (value, first) => small.push({ value: Buffer.from(value), first }));
  t.true(small.length >= 3, `${small.length} records`);
  t.deepEqual(small.flatMap((r) => codec.decode(r.value).spans), list);
  t.deepEqual(small.map((r) => r.first), small.map((_, i) => small.slice(0, i).reduce((n, r) => n + codec.decode(r.value).spans.length, 0)));
  const huge: Buffer[] = [];
  new SampledBatchWriter({ maxRecordBytes: 1024 }).write(bytes.slice(0, 1), (value) => huge.push(Buffer.from(value)));
  t.deepEqual(codec.decode(huge[0] as Buffer).spans, list.slice(0, 1), 'a span larger than the bound gets a record of its own');
});

test('records that would not decode throw', (t) => {
  const good = codec.encode({ spans: spans() });
  t.throws(() => decoder.decode(Buffer.from('not avro')));
  t.throws(() => decoder.decode(good.subarray(0, good.length - 5)));
  t.throws(() => decoder.decode(Buffer.concat([good, Buffer.from([0])])));
  t.throws(() => decoder.decode(codecFor('AgentEvent').encode({ event_type: 'x', data_id: 1, bk_biz_id: 2, task_id: 0, timestamp: 1, agent: { bk_cloud_id: 0, ip: '', hostname: '', bk_agent_id: '', bk_host_id: 0 }, status: 0, body: '{}' } as never)));
});
