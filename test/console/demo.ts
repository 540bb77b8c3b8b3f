/**
 * Demo traffic for the console tests: traces made with the real OpenTelemetry SDK and exported over
 * OTLP/HTTP (protobuf) with an application's token, and agent documents (heartbeats, basereport,
 * uptime probes, exceptions) enveloped by the agent's own code and produced straight to the events topic.
 */
import { context, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { envelope, type EnvelopeContext } from '../../services/agent/envelope.ts';
import { extraOf, ExceptionMessages } from '../../services/agent/host/exception/event.ts';
import type { HostIdentity, StateStore, TaskOutput } from '../../services/agent/task.ts';
import { globalHeartbeat } from '../../services/agent/tasks/heartbeat.ts';
import type { BrokerKit } from '../helpers/kafka.ts';

const SERVICES = ['gateway', 'order-svc', 'billing'] as const;

/** One tracer per service (each its own resource), collecting finished spans in memory. */
function tracers(): { tracer: (service: (typeof SERVICES)[number]) => Tracer; finished: () => ReadableSpan[]; shutdown: () => Promise<void> } {
  const memory = new InMemorySpanExporter();
  const providers = new Map(SERVICES.map((s, i) => [s, new NodeTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': s, 'service.version': '1.2.0', 'net.host.ip': `10.0.0.${i + 1}`, 'net.host.port': 8080 + i, 'host.name': `web-${i + 1}` })),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  })]));
  return {
    tracer: (s) => (providers.get(s) as NodeTracerProvider).getTracer('bkstream-console-demo', '1.0.0'),
    finished: () => memory.getFinishedSpans(),
    shutdown: async () => {
      for (const p of providers.values()) await p.shutdown();
    },
  };
}

/** Spans per demo trace. */
export const SPANS_PER_TRACE = 7;

/**
 * `count` checkout traces ending before now: gateway GET /checkout → order-svc POST /orders → mysql
 * INSERT and a kafka publish consumed by billing; gateway also calls the external payment-gw. Every
 * fourth trace's INSERT fails (with a `retry` event). Returns the trace ids, oldest first.
 */
export function demoTraces(count: number, nowMs = Date.now()): { spans: ReadableSpan[]; traceIds: string[] } {
  const t = tracers();
  const traceIds: string[] = [];
  const at = (ms: number): Date => new Date(ms);
  for (let i = 0; i < count; i++) {
    const t0 = nowMs - 60_000 - (count - i) * 200;
    const gw = t.tracer('gateway');
    const root = gw.startSpan('GET /checkout', { kind: SpanKind.SERVER, startTime: at(t0), attributes: { 'http.method': 'GET', 'http.route': '/checkout', 'http.status_code': 200, 'user.tier': i % 2 === 0 ? 'gold' : 'basic' } });
    traceIds.push(root.spanContext().traceId);
    const rootCtx = trace.setSpan(context.active(), root);
    const call = gw.startSpan('POST /orders', { kind: SpanKind.CLIENT, startTime: at(t0 + 2), attributes: { 'http.method': 'POST', 'http.url': 'http://order-svc/orders' } }, rootCtx);
    const order = t.tracer('order-svc').startSpan('POST /orders', { kind: SpanKind.SERVER, startTime: at(t0 + 4), attributes: { 'http.method': 'POST', 'http.route': '/orders' } }, trace.setSpan(context.active(), call));
    const orderCtx = trace.setSpan(context.active(), order);
    const db = t.tracer('order-svc').startSpan('INSERT orders', { kind: SpanKind.CLIENT, startTime: at(t0 + 6), attributes: { 'db.system': 'mysql', 'db.statement': 'INSERT INTO orders VALUES (?)', 'net.peer.name': 'db.local', 'net.peer.port': 3306 } }, orderCtx);
    if (i % 4 === 3) {
      db.addEvent('retry', { attempt: 2 }, at(t0 + 9));
      db.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock found' });
    }
    db.end(at(t0 + 14));
    const publish = t.tracer('order-svc').startSpan('orders publish', { kind: SpanKind.PRODUCER, startTime: at(t0 + 15), attributes: { 'messaging.system': 'kafka', 'messaging.destination': 'orders' } }, orderCtx);
    publish.end(at(t0 + 17));
    const consume = t.tracer('billing').startSpan('orders process', { kind: SpanKind.CONSUMER, startTime: at(t0 + 20), attributes: { 'messaging.system': 'kafka', 'messaging.destination': 'orders' } }, trace.setSpan(context.active(), publish));
    consume.end(at(t0 + 35));
    order.end(at(t0 + 18));
    call.end(at(t0 + 19));
    const charge = gw.startSpan('POST /charge', { kind: SpanKind.CLIENT, startTime: at(t0 + 20), attributes: { 'http.method': 'POST', 'peer.service': 'payment-gw' } }, rootCtx);
    charge.end(at(t0 + 30));
    root.end(at(t0 + 32));
  }
  const spans = t.finished();
  void t.shutdown();
  return { spans, traceIds };
}

/** Exports spans over OTLP/HTTP protobuf with `x-bk-token`, as an SDK configured from the console's snippet would. */
export async function exportOtlp(url: string, token: string, spans: ReadableSpan[]): Promise<void> {
  const exporter = new OTLPTraceExporter({ url, headers: { 'x-bk-token': token }, timeoutMillis: 30_000 });
  try {
    for (let i = 0; i < spans.length; i += 500) {
      const batch = spans.slice(i, i + 500);
      await new Promise<void>((resolve, reject) => {
        exporter.export(batch, (r) => (r.error || Number(r.code) !== 0 ? reject(r.error ?? new Error('export failed')) : resolve()));
      });
    }
  } finally {
    await exporter.shutdown();
  }
}

/** The demo hosts. */
export const HOSTS: readonly HostIdentity[] = [
  { ip: '10.0.0.1', bkCloudId: 0, bkBizId: 2, hostname: 'web-1', bkHostId: 101, bkAgentId: '0:10.0.0.1', nodeId: '0:10.0.0.1' },
  { ip: '10.0.0.2', bkCloudId: 0, bkBizId: 2, hostname: 'web-2', bkHostId: 102, bkAgentId: '0:10.0.0.2', nodeId: '0:10.0.0.2' },
];

function memoryState(): StateStore {
  const m = new Map<string, string>();
  return { get: (k) => m.get(k), set: (k, v) => void m.set(k, v), delete: (k) => void m.delete(k) };
}

/** A basereport document's data with the figures the console charts (the rest of the reference document left out). */
function basereportData(i: number): Record<string, unknown> {
  return {
    cpu: { total_usage: 20 + (i % 10) * 3, per_usage: [18, 24] },
    mem: { meminfo: { total: 8 << 30, used: (3 + (i % 3)) << 30, usedPercent: 40 + (i % 5) } },
    disk: { usage: [{ path: '/', fstype: 'ext4', usedPercent: 55.5 }, { path: '/data', fstype: 'xfs', usedPercent: 71 + (i % 2) }] },
    net: { dev: [{ name: 'lo', speedRecv: 9e9, speedSent: 9e9 }, { name: 'eth0', speedRecv: 120_000 + i * 1_000, speedSent: 80_000 + i * 500 }] },
    load: { load_avg: { load1: 0.5 + (i % 4) / 10, load5: 0.6, load15: 0.7 }, per_cpu_load: 0.25 },
  };
}

/**
 * Half an hour of agent output for both hosts, one report a minute: heartbeats (version, task counts),
 * basereport documents, http uptime results (one failed), a disk-full exception.
 */
export function agentOutputs(nowMs = Date.now()): { host: HostIdentity; output: TaskOutput; at: number }[] {
  const out: { host: HostIdentity; output: TaskOutput; at: number }[] = [];
  const minutes = 30;
  for (const host of HOSTS) {
    for (let i = 0; i < minutes; i++) {
      const at = nowMs - (minutes - 1 - i) * 60_000 - 5_000;
      out.push({ host, at, output: globalHeartbeat({ dataId: 1_100_001, bkHostId: host.bkHostId, version: '3.6.0', startedAtMs: nowMs - 3 * 3_600_000, tasks: 7, configLoadAtMs: nowMs - 3_600_000, published: 1_000 + i * 20, errors: 2, configErrorCode: 0, errorTasks: 0 }, at) });
      out.push({ host, at, output: { kind: 'event', eventType: 'basereport', dataId: 1_001, taskId: 101, timestampMs: at, body: { data: basereportData(i), dataid: 1_001, type: 'basereport' } } });
      if (i % 5 === 0) {
        const ok = i !== 25;
        out.push({
          host,
          at,
          output: {
            kind: 'event', eventType: 'http', dataId: 1_008, taskId: 9, timestampMs: at, status: ok ? 0 : 3,
            dimensions: { target: 'http://127.0.0.1:9/health' }, metrics: { available: ok ? 1 : 0, task_duration: ok ? 12 : 3000 },
            body: { dataid: 1_008, bk_biz_id: 2, task_id: 9, timestamp: Math.floor(at / 1000), task_type: 'http', status: ok ? 0 : 3, error_code: ok ? 0 : 3003, available: ok ? 1 : 0, task_duration: ok ? 12 : 3000, url: 'http://127.0.0.1:9/health', method: 'GET', response_code: ok ? 200 : 0 },
          },
        });
      }
    }
    const [alarm] = new ExceptionMessages().bulk(1_000, host.ip, [extraOf({ bizId: 2, cloudId: 0, ip: host.ip }, 6, { disk: '/data', free: 2, used_percent: 97 })], nowMs - 120_000);
    out.push({ host, at: nowMs - 120_000, output: { kind: 'event', eventType: 'exceptionbeat', dataId: 1_000, taskId: 2, cmdbLevel: false, timestampMs: nowMs - 120_000, body: alarm as Record<string, unknown> } });
  }
  return out;
}

/** Envelopes agent outputs with the agent's publisher code and produces them to the events and metrics topics. */
export async function produceAgentOutputs(kit: BrokerKit, topics: { events: string; metrics: string }, outputs: ReturnType<typeof agentOutputs>): Promise<number> {
  const state = memoryState();
  const byTopic = new Map<string, { key: string; value: Buffer }[]>();
  for (const { host, output, at } of outputs) {
    const ctx: EnvelopeContext = { host, cmdbLevel: undefined, topics, state, now: () => at };
    const e = envelope(output, ctx);
    if (!e.ok) throw new Error(`${output.eventType} not enveloped: ${e.reason} ${e.detail ?? ''}`);
    const list = byTopic.get(e.topic) ?? [];
    list.push({ key: e.key, value: e.value });
    byTopic.set(e.topic, list);
  }
  let n = 0;
  for (const [topic, messages] of byTopic) {
    await kit.produce(topic, messages);
    n += messages.length;
  }
  return n;
}
