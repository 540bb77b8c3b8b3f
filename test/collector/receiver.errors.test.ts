/**
 * The receiver's answers to bad and partial input over gRPC and HTTP, against the real broker: tokens,
 * rate limits, sizes, malformed bodies, partial success — and what reached Kafka in each case.
 */
import test from 'ava';
import { grpcStatus as status } from '../../services/common/grpc.ts';
import { gzipSync } from 'node:zlib';
import { request as httpRequest } from 'node:http';
import { createApplication, rotateToken } from '../../services/collector/applications.ts';
import { decodeStatus, encodeRequest } from '../../services/common/otlp/index.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { closeFileStore, fileStore, grpcExport, httpPost, metricValue, readSpans, startReceiver } from './helpers.ts';
import { kv } from './otlp-fixtures.ts';

test.after.always(closeFileStore);

const PROTOBUF = { 'content-type': 'application/x-protobuf' };

let spanSeq = 0;
function span(valid = true): Record<string, unknown> {
  spanSeq++;
  const id = spanSeq.toString(16).padStart(16, '0');
  return {
    traceId: valid ? Buffer.from(`${id}${id}`, 'hex') : Buffer.alloc(16),
    spanId: Buffer.from(id, 'hex'),
    name: `op-${spanSeq}`,
    kind: 2,
    startTimeUnixNano: '1763700000000000000',
    endTimeUnixNano: '1763700000001000000',
  };
}

function group(n: number, resource: Record<string, unknown>[] = [], valid = true): Record<string, unknown> {
  return { resource: { attributes: [kv('service.name', { stringValue: 'svc' }), ...resource] }, scopeSpans: [{ spans: Array.from({ length: n }, () => span(valid)) }] };
}

function request(...groups: Record<string, unknown>[]): Buffer {
  return encodeRequest({ resourceSpans: groups });
}

test('no token or an unknown token: UNAUTHENTICATED / 401 with a google.rpc.Status, nothing published', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const body = request(group(3));
  const none = await grpcExport(kit, body);
  t.is(none.code, status.UNAUTHENTICATED);
  t.regex(none.details, /no application token \(x-bk-token header/);
  const unknown = await grpcExport(kit, body, 'bkst_not-a-real-token');
  t.is(unknown.code, status.UNAUTHENTICATED);
  t.regex(unknown.details, /unknown or disabled application token/);
  t.false(unknown.details.includes('bkst_not-a-real-token'), 'the token is not echoed');

  const proto = await httpPost(kit.httpUrl, body, { ...PROTOBUF, 'x-bk-token': 'wrong' });
  t.is(proto.status, 401);
  t.is(proto.headers.get('content-type'), 'application/x-protobuf');
  t.deepEqual(decodeStatus(proto.body), { code: status.UNAUTHENTICATED, message: 'unknown or disabled application token' });
  const json = await httpPost(kit.httpUrl, JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '01'.repeat(16), spanId: '02'.repeat(8), name: 'x' }] }] }] }), { 'content-type': 'application/json' });
  t.is(json.status, 401);
  t.deepEqual(JSON.parse(json.body.toString()), { code: status.UNAUTHENTICATED, message: 'no application token (x-bk-token header, Bearer authorization, or the bk.data.token resource attribute)' });

  // The HTTP request with a wrong header token is refused before its body is read: its spans are never seen.
  t.is(await metricValue(kit.registry, 'bkstream_receiver_spans_rejected_total', { reason: 'invalid_token' }), 3);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_spans_rejected_total', { reason: 'no_token' }), 4);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'unauthenticated' }), 4);
  const admin = kit.bus.admin();
  await admin.start();
  t.true((await admin.watermarks(kit.topic)).every((w) => w.high === '0'), 'nothing reached Kafka');
  await admin.stop();
});

test('tokens per resource group: bk.data.token overrides the request token, a bad group is removed, partial_success counts it', async (t) => {
  const store = await fileStore();
  const kit = await startReceiver(t, { store });
  const other = await createApplication(store, { bkBizId: 9, appName: uniqueName('other') });
  const reader = await readSpans(t, kit.bus, kit.topic);
  const body = request(
    group(2, [kv('bk.data.token', { stringValue: other.token })]),
    group(3),
    group(4, [kv('bk.data.token', { stringValue: 'bkst_bad' })]),
  );
  const res = await grpcExport(kit, body, kit.token);
  t.is(res.code, status.OK);
  t.is(res.response?.partialSuccess?.rejectedSpans, 4);
  t.regex(res.response?.partialSuccess?.errorMessage ?? '', /4 unknown or disabled application token/);
  const spans = await waitFor('5 spans', () => (reader.spans().length >= 5 ? reader.spans() : undefined));
  t.is(spans.length, 5);
  const byApp = (app: string) => spans.filter((s) => s.app_name === app);
  t.is(byApp(other.application.appName).length, 2);
  t.true(byApp(other.application.appName).every((s) => s.bk_biz_id === 9));
  t.is(byApp(kit.app.appName).length, 3);
  t.true(spans.every((s) => !('bk.data.token' in s.resource)), 'the token attribute is not published');

  const http = await httpPost(kit.httpUrl, body, { ...PROTOBUF, authorization: `Bearer ${kit.token}` });
  t.is(http.status, 200);
  t.is(http.headers.get('content-type'), 'application/x-protobuf');
  t.true(http.body.length > 0, 'partial_success is in the body');
});

test('oversized requests: RESOURCE_EXHAUSTED over the gRPC limit; 413 by Content-Length, while streaming, and after gunzip', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore(), env: { COLLECTOR_MAX_GRPC_MESSAGE_BYTES: '65536', COLLECTOR_MAX_HTTP_BODY_BYTES: '65536' } });
  const big = request(group(1500));
  t.true(big.length > 65_536);
  const grpc = await grpcExport(kit, big, kit.token);
  t.is(grpc.code, status.RESOURCE_EXHAUSTED);
  t.is((await grpcExport(kit, request(group(2)), kit.token)).code, status.OK, 'a normal request still passes');

  const declared = await httpPost(kit.httpUrl, big, { ...PROTOBUF, 'x-bk-token': kit.token });
  t.is(declared.status, 413);
  t.regex(decodeStatus(declared.body).message, /exceeds the limit of 65536 bytes/);

  // chunked: no Content-Length, the limit is found while reading
  const streamed = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(kit.httpUrl, { method: 'POST', headers: { ...PROTOBUF, 'x-bk-token': kit.token, 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    for (let i = 0; i < big.length; i += 8192) req.write(big.subarray(i, i + 8192));
    req.end();
  });
  t.is(streamed, 413);

  const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024));
  t.true(bomb.length < 65_536);
  const gz = await httpPost(kit.httpUrl, bomb, { ...PROTOBUF, 'content-encoding': 'gzip', 'x-bk-token': kit.token });
  t.is(gz.status, 413);
  t.regex(decodeStatus(gz.body).message, /decompressed body exceeds/);
  t.true((await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'too_large' })) >= 3);
});

test('malformed bodies: INVALID_ARGUMENT / 400 with a message; unsupported types 415', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const garbage = Buffer.from([0x0a, 0xff, 0xff, 0x01, 0x02]);
  const grpc = await grpcExport(kit, garbage, kit.token);
  t.is(grpc.code, status.INVALID_ARGUMENT);
  t.regex(grpc.details, /^malformed OTLP protobuf: length \d+ runs past the end/);

  const proto = await httpPost(kit.httpUrl, garbage, { ...PROTOBUF, 'x-bk-token': kit.token });
  t.is(proto.status, 400);
  t.regex(decodeStatus(proto.body).message, /^malformed OTLP protobuf/);

  const json = await httpPost(kit.httpUrl, '{"resourceSpans": [', { 'content-type': 'application/json', 'x-bk-token': kit.token });
  t.is(json.status, 400);
  t.regex((JSON.parse(json.body.toString()) as { message: string }).message, /^malformed OTLP JSON: /);

  const badIds = await httpPost(kit.httpUrl, '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}', { 'content-type': 'application/json', 'x-bk-token': kit.token });
  t.is(badIds.status, 400);
  t.regex(badIds.body.toString(), /traceId must be a hex string/);

  const badGzip = await httpPost(kit.httpUrl, Buffer.from('not gzip'), { ...PROTOBUF, 'content-encoding': 'gzip', 'x-bk-token': kit.token });
  t.is(badGzip.status, 400);
  const type = await httpPost(kit.httpUrl, 'x', { 'content-type': 'text/plain', 'x-bk-token': kit.token });
  t.is(type.status, 415);
  t.is((JSON.parse(type.body.toString()) as { code: number }).code, status.INVALID_ARGUMENT, 'the shared edge table: 415 / INVALID_ARGUMENT');
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'unsupported_media_type' }), 1);
  t.is((await fetch(kit.httpUrl)).status, 405);
  t.is((await fetch(kit.httpUrl.replace('/v1/traces', '/v1/metrics'), { method: 'POST', body: '{}' })).status, 404);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'invalid_argument' }), 5);
});

test('invalid spans are rejected alone (partial_success); all invalid is INVALID_ARGUMENT', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const reader = await readSpans(t, kit.bus, kit.topic);
  const mixed = { resource: { attributes: [] }, scopeSpans: [{ spans: [span(), span(false), span()] }] };
  const res = await grpcExport(kit, encodeRequest({ resourceSpans: [mixed] }), kit.token);
  t.is(res.code, status.OK);
  t.is(res.response?.partialSuccess?.rejectedSpans, 1);
  t.regex(res.response?.partialSuccess?.errorMessage ?? '', /1 invalid span \(trace_id must be 16 bytes, not all zero\)/);
  await waitFor('the 2 valid spans', () => reader.spans().length === 2);

  const allBad = await grpcExport(kit, request(group(2, [], false)), kit.token);
  t.is(allBad.code, status.INVALID_ARGUMENT);
  t.regex(allBad.details, /2 invalid span/);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_spans_rejected_total', { reason: 'invalid_span' }), 3);
});

test('rate limit per token: RESOURCE_EXHAUSTED / 429 with Retry-After once the burst is spent; other tokens unaffected', async (t) => {
  const store = await fileStore();
  const kit = await startReceiver(t, { store, app: { rateLimitQps: 1, rateLimitBurst: 2 } });
  const free = await createApplication(store, { bkBizId: 2, appName: uniqueName('free') });
  const body = request(group(1));
  // All at once, so the bucket (2 requests, refilled at 1/s) cannot refill in between on a slow machine.
  const [grpc, http] = await Promise.all([
    Promise.all(Array.from({ length: 6 }, () => grpcExport(kit, body, kit.token))),
    Promise.all(Array.from({ length: 4 }, () => httpPost(kit.httpUrl, body, { ...PROTOBUF, 'x-bk-token': kit.token }))),
  ]);
  const ok = grpc.filter((r) => r.code === status.OK).length + http.filter((r) => r.status === 200).length;
  t.true(ok >= 2, 'the burst passes');
  const limitedGrpc = grpc.filter((r) => r.code === status.RESOURCE_EXHAUSTED);
  const limitedHttp = http.filter((r) => r.status === 429);
  t.is(ok + limitedGrpc.length + limitedHttp.length, 10, 'nothing else than OK or the rate limit');
  t.true(limitedGrpc.length > 0 && limitedHttp.length > 0);
  t.regex(limitedGrpc[0]?.details ?? '', /rate limit of application 2\/shop-.* reached \(1 requests\/s, burst 2\)/);
  t.is(limitedHttp[0]?.headers.get('retry-after'), '1');
  t.is((await grpcExport(kit, body, free.token)).code, status.OK, 'an application without its own limit draws on the shared bucket, not this one');
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'rate_limited' }), limitedGrpc.length + limitedHttp.length);
});

test('requests without resource groups are refused, as the reference; gzip bodies and Basic auth work; JSON answers are OTLP/JSON', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const reader = await readSpans(t, kit.bus, kit.topic);
  t.is((await grpcExport(kit, Buffer.alloc(0), kit.token)).code, status.UNAUTHENTICATED, 'nothing to authenticate (reference-diffs.test.ts has the details)');
  const gz = await httpPost(kit.httpUrl, gzipSync(request(group(2))), {
    ...PROTOBUF,
    'content-encoding': 'gzip',
    authorization: `Basic ${Buffer.from(`bkmonitor:${kit.token}`).toString('base64')}`,
  });
  t.is(gz.status, 200);
  t.is(gz.body.length, 0, 'full success: an empty ExportTraceServiceResponse');
  const json = await httpPost(kit.httpUrl, JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), name: 'j' }] }] }] }), {
    'content-type': 'application/json',
    'x-bk-token': kit.token,
  });
  t.is(json.status, 200);
  t.deepEqual(JSON.parse(json.body.toString()), {});
  await waitFor('3 spans', () => reader.spans().length === 3);
  t.deepEqual(reader.spans().map((s) => s.client_ip), ['127.0.0.1', '127.0.0.1', '127.0.0.1']);
});

test('admin: /metrics, /healthz, and /-/reload applies a rotated token at once', async (t) => {
  const store = await fileStore();
  const kit = await startReceiver(t, { store, env: { COLLECTOR_TOKEN_CACHE_TTL_MS: '600000' } });
  const body = request(group(2));
  t.is((await grpcExport(kit, body, kit.token)).code, status.OK);
  const metrics = await (await fetch(`${kit.adminUrl}/metrics`)).text();
  for (const name of [
    'bkstream_receiver_requests_total',
    'bkstream_receiver_spans_received_total',
    'bkstream_receiver_spans_accepted_total',
    'bkstream_receiver_spans_rejected_total',
    'bkstream_receiver_received_bytes_total',
    'bkstream_receiver_export_seconds_bucket',
    'bkstream_receiver_queue_bytes',
    'bkstream_receiver_inflight_sends',
    'bkstream_breaker_state',
  ]) {
    t.true(metrics.includes(name), name);
  }
  t.false(metrics.includes(kit.token), 'no token in the metrics');
  const health = await fetch(`${kit.adminUrl}/healthz`);
  t.is(health.status, 200);
  t.like(await health.json(), { status: 'ok', dependencies: { database: 'ok', kafka: 'ok' }, checks: { kafka: 'ready', breaker: 'closed', partitions: kit.partitions } });

  const rotated = await rotateToken(store, kit.app.bkBizId, kit.app.appName);
  t.is((await grpcExport(kit, body, kit.token)).code, status.OK, 'the old token is still cached');
  t.is((await fetch(`${kit.adminUrl}/-/reload`, { method: 'POST' })).status, 401, 'reloading needs an admin token');
  t.is((await fetch(`${kit.adminUrl}/-/reload`, { method: 'POST', headers: { authorization: `Bearer ${kit.adminToken}` } })).status, 200);
  t.is((await grpcExport(kit, body, kit.token)).code, status.UNAUTHENTICATED, 'after reload the old token is refused');
  t.is((await grpcExport(kit, body, rotated.token)).code, status.OK);
});
