/**
 * `bkstream up --demo` (services/cli/demo/): the demo shop's traffic, made with the OpenTelemetry SDK over
 * real HTTP and gRPC on loopback, reaches a real collector and Kafka as spans of several services with the
 * span kinds and attributes discovery classifies (HTTP, gRPC, PostgreSQL, Kafka), parents across services
 * and errors; the demo application is registered (again: its token rotated), and its tail-sampling flow,
 * submitted on the orchestrator's command topic, reaches `success` against bkdata-sim.
 */
import test from 'ava';
import type { Span } from '../../services/common/records.ts';
import { DEMO_APP, ensureDemoApp, tailSamplingCommand } from '../../services/cli/demo/app.ts';
import { createDemo } from '../../services/cli/demo/demo.ts';
import { DEFAULT_BEHAVIOUR, DemoShop, SHOP_SERVICES } from '../../services/cli/demo/shop.ts';
import { contextOf, DemoTelemetry, traceparent } from '../../services/cli/demo/telemetry.ts';
import { ShopTraffic } from '../../services/cli/demo/traffic.ts';
import { trace } from '@opentelemetry/api';
import { hashToken } from '../../services/common/auth.ts';
import { readSpans, startReceiver } from '../collector/helpers.ts';
import { waitFor } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { setup } from '../orchestrator/kit.ts';

/** A seeded random source (mulberry32), so a run's mix of errors is the same every time. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const KIND = { SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;
const serviceOf = (s: Span): string => String(s.resource['service.name']);

/** What a run of the shop must have produced: the checks the map, traces and discovery depend on. */
function shopCoverage(spans: readonly Span[]): Record<string, boolean> {
  const byId = new Map(spans.map((s) => [`${s.trace_id}/${s.span_id}`, s]));
  const parentOf = (s: Span): Span | undefined => byId.get(`${s.trace_id}/${s.parent_span_id}`);
  return {
    services: SHOP_SERVICES.every((name) => spans.some((s) => serviceOf(s) === name)),
    httpServer: spans.some((s) => serviceOf(s) === 'frontend' && s.kind === KIND.SERVER && s.attributes['http.route'] === '/shop/checkout'),
    remoteService: spans.some((s) => s.kind === KIND.CLIENT && s.attributes['peer.service'] === 'recommendations'),
    httpAcrossServices: spans.some((s) => serviceOf(s) === 'checkout' && s.kind === KIND.SERVER && parentOf(s)?.kind === KIND.CLIENT && serviceOf(parentOf(s) as Span) === 'frontend'),
    grpcAcrossServices: spans.some((s) => serviceOf(s) === 'payment' && s.kind === KIND.SERVER && s.attributes['rpc.system'] === 'grpc' && serviceOf(parentOf(s) ?? s) === 'checkout'),
    postgres: spans.some((s) => s.kind === KIND.CLIENT && s.attributes['db.system'] === 'postgresql' && serviceOf(s) === 'payment'),
    kafkaPair: spans.some((s) => s.kind === KIND.CONSUMER && s.attributes['messaging.system'] === 'kafka' && serviceOf(s) === 'fulfillment' && parentOf(s)?.kind === KIND.PRODUCER && serviceOf(parentOf(s) as Span) === 'checkout'),
    errors: spans.some((s) => s.status.code === 2 && serviceOf(s) === 'payment') && spans.some((s) => s.status.code === 2 && serviceOf(s) === 'frontend'),
    slow: spans.some((s) => s.attributes['db.system'] === 'postgresql' && s.elapsed_time >= 300_000),
  };
}

test('traceparent round-trips: the remote parent a header names, ROOT_CONTEXT for a malformed one', (t) => {
  const sc = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
  t.is(traceparent(sc), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  const parent = trace.getSpanContext(contextOf(traceparent(sc)));
  t.deepEqual(parent, { ...sc, isRemote: true });
  t.is(trace.getSpanContext(contextOf('garbage')), undefined);
  t.is(trace.getSpanContext(contextOf(undefined)), undefined);
});

test('the demo shop\'s traffic reaches Kafka: four services over HTTP and gRPC, PostgreSQL and Kafka spans, errors and slow calls', async (t) => {
  const kit = await startReceiver(t);
  const read = await readSpans(t, kit.bus, kit.topic);
  const telemetry = new DemoTelemetry({ grpcUrl: kit.grpcUrl, httpUrl: kit.httpUrl, token: kit.token }, { exportDelayMs: 100, hostIp: '127.0.0.1' });
  const shop = new DemoShop(telemetry, { ...DEFAULT_BEHAVIOUR, declineRate: 0.25, slowRate: 0.15, random: seeded(7) });
  const traffic = new ShopTraffic(() => shop.frontendUrl(), { requestsPerSecond: 25, random: seeded(11) });
  t.teardown(async () => {
    await traffic.stop();
    await shop.stop();
    await telemetry.shutdown();
  });
  await shop.start();
  for (const address of Object.values(shop.addresses())) t.regex(address, /^(http|grpc):\/\/127\.0\.0\.1:\d+$/, 'loopback only');
  await traffic.start();
  const coverage = await waitFor('spans of every kind the demo makes', () => {
    const c = shopCoverage(read.spans());
    return Object.values(c).every(Boolean) ? c : undefined;
  }, 45_000, 200).catch((err: unknown) => {
    t.log(shopCoverage(read.spans()));
    throw err;
  });
  t.true(Object.values(coverage).every(Boolean));
  await traffic.stop();
  await shop.stop();
  await telemetry.shutdown();
  t.true(traffic.counts.sent > 0);
  t.true(shop.counts.failedCheckouts > 0, 'some checkouts fail (declined cards)');
  t.true(shop.fulfilled() > 0);
  t.is(telemetry.counts.failed, 0, telemetry.counts.lastError);
  // Everything exported, including the last batches flushed at shutdown, reached Kafka.
  await waitFor('every exported span in Kafka', () => read.spans().length >= telemetry.counts.exported, 30_000, 100);
  const spans = read.spans();
  t.true(spans.every((s) => s.bk_biz_id === kit.app.bkBizId && s.app_name === kit.app.appName), 'all under the token\'s application');
  t.true(spans.every((s) => typeof s.resource['bk.instance.id'] === 'string' && s.resource['net.host.ip'] === '127.0.0.1'));
  // Stop is idempotent.
  await shop.stop();
  await traffic.stop();
  await telemetry.shutdown();
});

test('the demo application: registered once, a later run rotates its token; its tail-sampling command uses its traces data id', async (t) => {
  const store = await pgliteStore(t, { migrated: true });
  const first = await ensureDemoApp(store);
  t.true(first.created);
  t.is(first.application.appName, DEMO_APP.appName);
  t.is(first.application.tracesDataId, DEMO_APP.tracesDataId);
  const second = await ensureDemoApp(store);
  t.false(second.created);
  t.not(second.token, first.token);
  const { rows } = await store.query<{ token_hash: string }>('SELECT token_hash FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2', [DEMO_APP.bkBizId, DEMO_APP.appName]);
  t.is(rows[0]?.token_hash, hashToken(second.token), 'only the newest token is valid');
  const command = tailSamplingCommand(second.application, 1_000);
  t.like(command, { action: 'create_or_update', flow_type: 'tail_sampling', bk_biz_id: 2, app_name: 'demo-shop', requested_at: 1_000 });
  t.is((JSON.parse(command.config) as { data_id: number }).data_id, DEMO_APP.tracesDataId);
  t.is((JSON.parse(tailSamplingCommand({ ...second.application, tracesDataId: 0 }).config) as { data_id: number }).data_id, DEMO_APP.tracesDataId, 'an app without a data id gets the demo\'s');
});

test('bkstream up --demo: the demo app\'s spans reach Kafka and its tail-sampling flow reaches success against bkdata-sim', async (t) => {
  const { kit: broker, prefix, store } = await setup(t);
  const receiver = await startReceiver(t, { store });
  const read = await readSpans(t, receiver.bus, receiver.topic);
  const said: string[] = [];
  const demo = createDemo({
    store,
    bus: broker.bus,
    topicPrefix: prefix,
    otlp: { grpcUrl: receiver.grpcUrl, httpUrl: receiver.httpUrl },
    requestsPerSecond: 20,
    exportDelayMs: 100,
    flowPollMs: 100,
    flowTimeoutMs: 60_000,
    behaviour: { random: seeded(3) },
    print: (line) => said.push(line),
  });
  t.teardown(() => demo.stop());
  await demo.stop(); // safe before start
  await demo.start();
  const app = demo.app();
  t.is(app?.application.appName, DEMO_APP.appName);
  t.true(said.some((l) => l.includes(`its token (shown once): ${app?.token ?? '?'}`)));
  const flow = await demo.flow();
  t.is(flow?.status, 'success', flow?.message);
  await waitFor('the flow\'s outcome printed', () => said.some((l) => l === 'demo: tail-sampling flow of 2/demo-shop: success'), 5_000);
  await waitFor('spans of every demo service under the demo app', () => {
    const mine = read.spans().filter((s) => s.app_name === DEMO_APP.appName && s.bk_biz_id === DEMO_APP.bkBizId);
    return SHOP_SERVICES.every((name) => mine.some((s) => serviceOf(s) === name));
  }, 45_000, 200);
  t.true(read.spans().filter((s) => s.app_name === DEMO_APP.appName).every((s) => s.resource['net.host.ip'] === '127.0.0.1'), 'the host agent\'s default host');
  t.true(demo.stats().requests > 0);
  await demo.stop();
  await demo.stop();
  t.is(demo.stats().requests, 0, 'stopped: nothing left running');
});

test('with a real BKData (no local bkdata-sim) the demo submits no flow, and its traffic still flows', async (t) => {
  const receiver = await startReceiver(t);
  const said: string[] = [];
  const demo = createDemo({
    store: receiver.store,
    bus: receiver.bus,
    topicPrefix: receiver.prefix,
    otlp: { grpcUrl: undefined, httpUrl: receiver.httpUrl },
    submitFlow: false,
    requestsPerSecond: 20,
    exportDelayMs: 100,
    print: (line) => said.push(line),
  });
  t.teardown(() => demo.stop());
  await demo.start();
  t.is(demo.flow(), undefined);
  t.true(said.some((l) => l.startsWith('demo: no tail-sampling flow submitted')));
  await waitFor('spans exported over OTLP/HTTP alone', () => demo.stats().spans.exported > 20, 30_000, 100);
  t.is(demo.stats().spans.failed, 0, demo.stats().spans.lastError);
  await demo.stop();
});
