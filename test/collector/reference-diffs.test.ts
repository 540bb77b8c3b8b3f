/**
 * Behaviours matched with bk-collector's receiver and processors (issue 20, item 4; the collector README,
 * "Differences from the reference"): the client IP (`X-Forwarded-For`), `X-BK-METADATA` into resource
 * attributes, the shared global rate-limit bucket with per-application overrides, an export without
 * resource groups, and the status codes of bad tokens and rate limits (with RetryInfo over gRPC) — the
 * real receiver over loopback OTLP/HTTP and OTLP/gRPC, plus the pieces on their own.
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { createBreaker } from '../../services/common/breaker.ts';
import { grpcCredentials, GrpcMetadata as Metadata, grpcStatus as status, type ServiceError } from '../../services/common/grpc.ts';
import { decodeResponse, decodeStatus, encodeRequest, EXPORT_PATH, traceServiceClient } from '../../services/common/otlp/index.ts';
import type { Span } from '../../services/common/records.ts';
import { createApplication, hashToken, type Application } from '../../services/collector/applications.ts';
import { SpanBatcher } from '../../services/collector/receiver/batcher.ts';
import { isKafkaFailure, RateLimitedError, UnauthenticatedError } from '../../services/collector/receiver/errors.ts';
import { TracePipeline, type ExportRequest } from '../../services/collector/receiver/pipeline.ts';
import { bucketOf, RateLimiter, SHARED_BUCKET } from '../../services/collector/receiver/ratelimit.ts';
import { addMetadata, clientIpFromHttp, parseMetadata } from '../../services/collector/receiver/request-meta.ts';
import { RETRY_INFO_TYPE_URL, statusWithRetryInfo } from '../../services/collector/receiver/retry-info.ts';
import { TokenCache } from '../../services/collector/receiver/tokens.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { RecordingSender } from './doubles.ts';
import { closeFileStore, fileStore, httpPost, metricValue, readSpans, startReceiver, type ReceiverKit } from './helpers.ts';
import { kv } from './otlp-fixtures.ts';

test.after.always(closeFileStore);

const PROTOBUF = { 'content-type': 'application/x-protobuf' };

let spanSeq = 0;
function span(name: string): Record<string, unknown> {
  spanSeq++;
  const id = (0x5000 + spanSeq).toString(16).padStart(16, '0');
  return { traceId: Buffer.from(`${id}${id}`, 'hex'), spanId: Buffer.from(id, 'hex'), name, kind: 2, startTimeUnixNano: '1763700000000000000', endTimeUnixNano: '1763700000001000000' };
}

function group(names: string[], resource: Record<string, unknown>[] = []): Record<string, unknown> {
  return { resource: { attributes: [kv('service.name', { stringValue: 'svc' }), ...resource] }, scopeSpans: [{ spans: names.map(span) }] };
}

function request(...groups: Record<string, unknown>[]): Buffer {
  return encodeRequest({ resourceSpans: groups });
}

interface Call {
  code: number;
  details: string;
  trailer: Metadata | undefined;
}

/** One raw Export call (grpc-js, no SDK), keeping the error's trailing metadata. */
function grpcCall(kit: Pick<ReceiverKit, 'grpcUrl'>, body: Buffer, metadata: Record<string, string>): Promise<Call> {
  const Client = traceServiceClient();
  const client = new Client(kit.grpcUrl.replace('http://', ''), grpcCredentials.createInsecure());
  const md = new Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => decodeResponse(b), body, md, { deadline: Date.now() + 60_000 }, (err: ServiceError | null) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details, trailer: err.metadata } : { code: status.OK, details: '', trailer: undefined });
    });
  });
}

// A hand-made protobuf reader for the RetryInfo check (independent of the encoder under test).
function fields(buf: Buffer): Map<number, (number | Buffer)[]> {
  const out = new Map<number, (number | Buffer)[]>();
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++] as number;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    let value: number | Buffer;
    if ((tag & 7) === 2) {
      const len = varint();
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else value = varint();
    out.set(tag >>> 3, [...(out.get(tag >>> 3) ?? []), value]);
  }
  return out;
}

function retryDelaySeconds(statusBin: Buffer): { code: number; message: string; typeUrl: string; seconds: number } {
  const s = fields(statusBin);
  const any = fields(s.get(3)?.[0] as Buffer);
  const retryInfo = fields(any.get(2)?.[0] as Buffer);
  const duration = fields((retryInfo.get(1)?.[0] as Buffer | undefined) ?? Buffer.alloc(0));
  return {
    code: (s.get(1)?.[0] as number | undefined) ?? 0,
    message: (s.get(2)?.[0] as Buffer).toString(),
    typeUrl: (any.get(1)?.[0] as Buffer).toString(),
    seconds: (duration.get(1)?.[0] as number | undefined) ?? 0,
  };
}

// ---- the pieces ------------------------------------------------------------------------------------------

test('X-BK-METADATA: comma-separated k=v pairs, trimmed; malformed and empty pairs skipped; the last of a key wins; never bk.data.token', (t) => {
  t.deepEqual(parseMetadata(' env = prod ,region=gz,bad,a=b=c, =x,y= ,k=1,k=2,bk.data.token=leak'), { env: 'prod', region: 'gz', k: '2' });
  t.is(parseMetadata(''), undefined);
  t.is(parseMetadata(undefined), undefined);
  t.is(parseMetadata('nothing,useful='), undefined);
  const resource: Record<string, string | number> = { 'service.name': 'svc', 'bk.instance.id': '::::', empty: '' };
  addMetadata(resource, { 'service.name': 'other', 'bk.instance.id': 'x', empty: 'filled', env: 'prod' });
  t.deepEqual(resource, { 'service.name': 'svc', 'bk.instance.id': '::::', empty: '', env: 'prod' }, 'only missing keys are added (an empty value is not missing)');
});

test('client IP: the first X-Forwarded-For address when it is an IP, else the peer', (t) => {
  const req = (xff: string[] | undefined, peer = '10.1.1.1') => ({ headersDistinct: xff ? { 'x-forwarded-for': xff } : {}, socket: { remoteAddress: peer } }) as unknown as Parameters<typeof clientIpFromHttp>[0];
  t.is(clientIpFromHttp(req(['203.0.113.7, 10.0.0.1'])), '203.0.113.7');
  t.is(clientIpFromHttp(req([' 2001:db8::1 '])), '2001:db8::1');
  t.is(clientIpFromHttp(req(['198.51.100.2', '203.0.113.9'])), '198.51.100.2', 'the first header');
  t.is(clientIpFromHttp(req(['unknown, 10.0.0.1'])), '10.1.1.1', 'not an address: the peer');
  t.is(clientIpFromHttp(req(undefined)), '10.1.1.1');
});

test('buckets: applications without limits share one; a qps or a burst of its own gives an application its own bucket', (t) => {
  const global = { qps: 2000, burst: 4000 };
  t.deepEqual(bucketOf({ id: 7, rateLimitQps: undefined, rateLimitBurst: undefined }, global), { key: SHARED_BUCKET, limit: global, shared: true });
  t.deepEqual(bucketOf({ id: 7, rateLimitQps: 5, rateLimitBurst: undefined }, global), { key: 'app:7', limit: { qps: 5, burst: 4000 }, shared: false });
  t.deepEqual(bucketOf({ id: 8, rateLimitQps: undefined, rateLimitBurst: 9 }, global), { key: 'app:8', limit: { qps: 2000, burst: 9 }, shared: false });
});

test('RetryInfo: a google.rpc.Status with one Any(RetryInfo{retry_delay})', (t) => {
  const decoded = retryDelaySeconds(statusWithRetryInfo(8, 'slow down — ü', 3));
  t.deepEqual(decoded, { code: 8, message: 'slow down — ü', typeUrl: RETRY_INFO_TYPE_URL, seconds: 3 });
  t.is(retryDelaySeconds(statusWithRetryInfo(8, 'x'.repeat(300), 200)).seconds, 200, 'multi-byte lengths and delays');
});

// ---- the pipeline on a fake clock ----------------------------------------------------------------------

function app(id: number, name: string, limits: { qps?: number; burst?: number } = {}): Application {
  return {
    id, bkBizId: 2, appName: name, appAlias: '', description: '', traceRetentionDays: 7, tokenHint: '', tracesDataId: 0, metricsDataId: 0, logsDataId: 0, profilesDataId: 0,
    rateLimitQps: limits.qps, rateLimitBurst: limits.burst, tailSampling: false, tailSamplingConfig: {}, virtualMetric: false, provisionedFlows: [], isEnabled: true, createdAt: new Date(0),
  };
}

function pipelineWith(t: { teardown(fn: () => void): void }, apps: Record<string, Application>, global: { qps: number; burst: number }) {
  let now = 0;
  const batcher = new SpanBatcher({ topic: 'spans', header: codecFor('SpanBatch').schema.header, sender: new RecordingSender(), maxBatchBytes: 256 * 1024, maxQueuedBytes: 1 << 20, maxInFlightSends: 2 });
  const breaker = createBreaker({ name: uniqueName('ref-diffs'), timeoutMs: 30_000, resetTimeoutMs: 60_000, volumeThreshold: 3, isFailure: isKafkaFailure });
  t.teardown(() => breaker.shutdown());
  const byHash = new Map(Object.entries(apps).map(([token, a]) => [hashToken(token), a]));
  const tokens = new TokenCache({ lookup: async (hash) => byHash.get(hash), ttlMs: 60_000, missTtlMs: 60_000, maxEntries: 10 });
  const pipeline = new TracePipeline({ tokens, limiter: new RateLimiter({ now: () => now }), defaultRateLimit: global, batcher, partitions: () => 3, breaker });
  const exp = (token: string | undefined, body: Buffer = request(group([`s${++spanSeq}`]))): Promise<unknown> => {
    const req: ExportRequest = { protocol: 'grpc', format: 'protobuf', body, token, clientIp: '127.0.0.1' };
    return pipeline.export(req).then(
      (r) => (r.acceptedSpans > 0 ? 'ok' : r.receivedSpans === 0 ? 'empty' : 'none'),
      (err: unknown) => (err instanceof RateLimitedError ? 'limited' : err instanceof UnauthenticatedError ? 'unauthenticated' : err),
    );
  };
  return { exp, advance: (ms: number) => (now += ms) };
}

test('rate limit: applications without their own limit draw on one shared bucket; an override is a bucket of its own', async (t) => {
  const { exp, advance } = pipelineWith(t, { a: app(1, 'a'), b: app(2, 'b'), own: app(3, 'own', { qps: 1, burst: 1 }) }, { qps: 1, burst: 3 });
  t.deepEqual([await exp('a'), await exp('b'), await exp('a')], ['ok', 'ok', 'ok'], 'the shared burst of 3');
  t.is(await exp('b'), 'limited', 'b finds the bucket a and b share empty');
  t.is(await exp('a'), 'limited');
  t.is(await exp('own'), 'ok', 'an application with its own limit is not held by the shared bucket');
  t.is(await exp('own'), 'limited', 'and its own burst of 1 is spent');
  advance(1000);
  t.is(await exp('b'), 'ok', 'one request per second refills the shared bucket');
  t.is(await exp('a'), 'limited');
  t.is(await exp('own'), 'ok');
});

test('rate limit: one request per bucket per Export, however many groups and applications share it', async (t) => {
  const { exp } = pipelineWith(t, { a: app(1, 'a'), b: app(2, 'b') }, { qps: 1, burst: 2 });
  const twoApps = request(group(['x'], [kv('bk.data.token', { stringValue: 'a' })]), group(['y'], [kv('bk.data.token', { stringValue: 'b' })]));
  t.is(await exp(undefined, twoApps), 'ok', 'a and b in one request take one request from the shared bucket');
  t.is(await exp('a'), 'ok', 'so one is left');
  t.is(await exp('b'), 'limited');
});

test('empty exports at the pipeline: no groups → unauthenticated even with a valid token; span-less groups are checked, then acknowledged', async (t) => {
  const { exp } = pipelineWith(t, { a: app(1, 'a') }, { qps: 0, burst: 0 });
  t.is(await exp('a', Buffer.alloc(0)), 'unauthenticated');
  const spanless = encodeRequest({ resourceSpans: [{ resource: { attributes: [kv('service.name', { stringValue: 'svc' })] }, scopeSpans: [] }] });
  t.is(await exp('a', spanless), 'empty');
  t.is(await exp('nope', spanless), 'unauthenticated');
  t.is(await exp(undefined, spanless), 'unauthenticated');
});

// ---- the real receiver over loopback -------------------------------------------------------------------

function byName(spans: Span[], name: string): Span {
  const s = spans.find((x) => x.span_name === name);
  if (!s) throw new Error(`span ${name} not in Kafka`);
  return s;
}

test('loopback: X-Forwarded-For fills client_ip over HTTP only; X-BK-METADATA (header and gRPC metadata) adds missing resource keys', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const reader = await readSpans(t, kit.bus, kit.topic);
  const meta = 'env=prod, region = gz, service.name=override, bk.data.token=leak, bk.instance.id=forged, broken';
  const http = await httpPost(kit.httpUrl, request(group(['h1']), group(['h2'], [kv('env', { stringValue: 'dev' })])), {
    ...PROTOBUF, 'x-bk-token': kit.token, 'x-forwarded-for': '203.0.113.7, 10.0.0.1', 'x-bk-metadata': meta,
  });
  t.is(http.status, 200);
  const json = await httpPost(kit.httpUrl, JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] }, scopeSpans: [{ spans: [{ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), name: 'j1' }] }] }] }), {
    'content-type': 'application/json', 'x-bk-token': kit.token, 'x-forwarded-for': 'unknown', 'X-BK-METADATA': 'team=checkout',
  });
  t.is(json.status, 200);
  const grpc = await grpcCall(kit, request(group(['g1'])), { 'x-bk-token': kit.token, 'x-forwarded-for': '198.51.100.1', 'x-bk-metadata': meta });
  t.is(grpc.code, status.OK);
  await waitFor('4 spans', () => reader.spans().length === 4);
  const spans = reader.spans();
  const h1 = byName(spans, 'h1');
  t.is(h1.client_ip, '203.0.113.7', "X-Forwarded-For's first address");
  t.like(h1.resource, { env: 'prod', region: 'gz', 'service.name': 'svc', 'bk.instance.id': ':svc:::' });
  t.false('bk.data.token' in h1.resource, 'no token through the metadata');
  t.false('broken' in h1.resource);
  t.is(byName(spans, 'h2').resource.env, 'dev', "the resource's own value wins");
  t.is(byName(spans, 'j1').client_ip, '127.0.0.1', 'not an address: the peer');
  t.like(byName(spans, 'j1').resource, { team: 'checkout' });
  const g1 = byName(spans, 'g1');
  t.is(g1.client_ip, '127.0.0.1', 'gRPC: the peer, as the reference (no X-Forwarded-For)');
  t.like(g1.resource, { env: 'prod', region: 'gz', 'service.name': 'svc' });
  t.false('bk.data.token' in g1.resource);
});

test('loopback: the global limit is one shared bucket (here: reject all) and an application override is its own; codes 429 / RESOURCE_EXHAUSTED with Retry-After and RetryInfo, 401 / UNAUTHENTICATED', async (t) => {
  const store = await fileStore();
  const kit = await startReceiver(t, { store, env: { COLLECTOR_RATE_LIMIT_QPS: '-1' } });
  const other = await createApplication(store, { bkBizId: 2, appName: uniqueName('other') });
  const own = await createApplication(store, { bkBizId: 2, appName: uniqueName('own'), rateLimitQps: 0 });
  const body = request(group(['r1']));

  const limited = await grpcCall(kit, body, { 'x-bk-token': kit.token });
  t.is(limited.code, status.RESOURCE_EXHAUSTED);
  t.regex(limited.details, /shared rate limit \(applications without their own\) of application 2\/shop-/);
  const bin = limited.trailer?.get('grpc-status-details-bin')[0];
  t.true(Buffer.isBuffer(bin), 'the status details travel as grpc-status-details-bin');
  t.deepEqual(retryDelaySeconds(bin as Buffer), { code: status.RESOURCE_EXHAUSTED, message: limited.details, typeUrl: RETRY_INFO_TYPE_URL, seconds: 1 });
  t.is((await grpcCall(kit, body, { 'x-bk-token': other.token })).code, status.RESOURCE_EXHAUSTED, 'every application without its own limit');
  const http429 = await httpPost(kit.httpUrl, body, { ...PROTOBUF, 'x-bk-token': other.token });
  t.is(http429.status, 429);
  t.is(http429.headers.get('retry-after'), '1');
  t.is(decodeStatus(http429.body).code, status.RESOURCE_EXHAUSTED);
  t.is((await grpcCall(kit, body, { 'x-bk-token': own.token })).code, status.OK, 'an override (unlimited) is a bucket of its own');
  t.is((await httpPost(kit.httpUrl, request(group(['r2'])), { ...PROTOBUF, 'x-bk-token': own.token })).status, 200);

  const bad = await grpcCall(kit, body, { 'x-bk-token': 'bkst_not-a-token' });
  t.is(bad.code, status.UNAUTHENTICATED);
  t.is(bad.trailer?.get('grpc-status-details-bin').length ?? 0, 0, 'no RetryInfo: not worth retrying');
  const http401 = await httpPost(kit.httpUrl, body, { ...PROTOBUF, 'x-bk-token': 'bkst_not-a-token' });
  t.is(http401.status, 401);
  t.is(http401.headers.get('retry-after'), null);
  t.is(decodeStatus(http401.body).code, status.UNAUTHENTICATED);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'rate_limited' }), 3);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'unauthenticated' }), 2);
});

test('loopback: an export without resource groups is refused as the reference refuses it (401 / UNAUTHENTICATED); span-less groups are OK and counted as empty', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const reader = await readSpans(t, kit.bus, kit.topic);
  const none = await grpcCall(kit, Buffer.alloc(0), { 'x-bk-token': kit.token });
  t.is(none.code, status.UNAUTHENTICATED);
  t.regex(none.details, /no resource spans/);
  const proto = await httpPost(kit.httpUrl, encodeRequest({ resourceSpans: [] }), { ...PROTOBUF, 'x-bk-token': kit.token });
  t.is(proto.status, 401);
  t.deepEqual(decodeStatus(proto.body), { code: status.UNAUTHENTICATED, message: 'the request has no resource spans: nothing to authenticate' });
  const json = await httpPost(kit.httpUrl, '{}', { 'content-type': 'application/json', 'x-bk-token': kit.token });
  t.is(json.status, 401);
  t.is((JSON.parse(json.body.toString()) as { code: number }).code, status.UNAUTHENTICATED);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'unauthenticated' }), 3);

  const spanless = encodeRequest({ resourceSpans: [{ resource: { attributes: [kv('service.name', { stringValue: 'svc' })] }, scopeSpans: [{ spans: [] }] }] });
  const grpcOk = await grpcCall(kit, spanless, { 'x-bk-token': kit.token });
  t.is(grpcOk.code, status.OK);
  const httpOk = await httpPost(kit.httpUrl, spanless, { ...PROTOBUF, 'x-bk-token': kit.token });
  t.is(httpOk.status, 200);
  t.is(httpOk.body.length, 0, 'an empty ExportTraceServiceResponse');
  t.is((await grpcCall(kit, spanless, { 'x-bk-token': 'bkst_not-a-token' })).code, status.UNAUTHENTICATED, 'span-less groups still pass the token check');
  t.is(await metricValue(kit.registry, 'bkstream_receiver_requests_total', { outcome: 'empty' }), 2);
  t.is(await metricValue(kit.registry, 'bkstream_receiver_spans_received_total'), 0);
  // Something with a span afterwards, to show nothing of the above reached Kafka.
  t.is((await grpcCall(kit, request(group(['after'])), { 'x-bk-token': kit.token })).code, status.OK);
  await waitFor('the span', () => reader.spans().length >= 1);
  t.deepEqual(reader.spans().map((s) => s.span_name), ['after']);
});
