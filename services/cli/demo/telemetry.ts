/**
 * The demo shop's instrumentation on the real OpenTelemetry SDK: one tracer provider per demo service
 * (its own resource: service.name, host, port), exporting through a batch processor to bkstream's OTLP
 * receiver over gRPC or HTTP/protobuf with the demo application's token — what an application configured
 * from the console's SDK snippet does. Trace context crosses the demo's HTTP and gRPC calls as a W3C
 * `traceparent` header / metadata entry. No global state: no global provider, context manager or
 * propagator is registered, so the demo can run beside anything else in the process.
 */
import { hostname } from 'node:os';
import { ROOT_CONTEXT, trace, TraceFlags, type Context, type SpanContext, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { GrpcMetadata } from '../../common/grpc.ts';

/** Where the demo sends its spans, and with which application token. */
export interface OtlpTarget {
  /** OTLP/gRPC endpoint, `http://127.0.0.1:4317`; undefined when the receiver's gRPC listener is off. */
  grpcUrl: string | undefined;
  /** OTLP/HTTP endpoint, `http://127.0.0.1:4318/v1/traces`; undefined when that listener is off. */
  httpUrl: string | undefined;
  token: string;
}

export type Protocol = 'grpc' | 'http';

/** Spans the demo's exporters handed over, and how many of them the receiver refused or never got. */
export interface ExportCounts {
  exported: number;
  failed: number;
  /** The last export error, if any. */
  lastError: string | undefined;
}

/** Counts what an exporter achieves (the SDK's batch processor drops failures silently otherwise). */
class CountingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #counts: ExportCounts;

  constructor(inner: SpanExporter, counts: ExportCounts) {
    this.#inner = inner;
    this.#counts = counts;
  }

  export(spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    this.#inner.export(spans, (result) => {
      if (Number(result.code) === 0) this.#counts.exported += spans.length;
      else {
        this.#counts.failed += spans.length;
        this.#counts.lastError = result.error?.message ?? 'export failed';
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

function exporterFor(target: OtlpTarget, protocol: Protocol): SpanExporter {
  // The service's own protocol when the receiver listens for it, else the other one.
  const useGrpc = target.grpcUrl !== undefined && (protocol === 'grpc' || target.httpUrl === undefined);
  if (useGrpc) {
    const metadata = new GrpcMetadata();
    metadata.set('x-bk-token', target.token);
    return new GrpcExporter({ url: target.grpcUrl, metadata, timeoutMillis: 5_000 });
  }
  return new ProtoExporter({ url: target.httpUrl, headers: { 'x-bk-token': target.token }, timeoutMillis: 5_000 });
}

/** One demo service's identity. */
export interface ServiceIdentity {
  name: string;
  version: string;
  /** The port it serves on (its instance), 0 when it serves nothing. */
  port: number;
  /** The OTLP protocol its exporter uses. */
  protocol: Protocol;
}

/** The demo's tracer providers, one per service, sharing the export counts. */
export class DemoTelemetry {
  readonly counts: ExportCounts = { exported: 0, failed: 0, lastError: undefined };
  readonly #target: OtlpTarget;
  readonly #exportDelayMs: number;
  readonly #hostIp: string;
  readonly #providers = new Map<string, NodeTracerProvider>();

  constructor(target: OtlpTarget, options: { exportDelayMs: number; hostIp: string }) {
    this.#target = target;
    this.#exportDelayMs = options.exportDelayMs;
    this.#hostIp = options.hostIp;
  }

  /** The tracer of a service (its provider is made on first use). */
  tracer(service: ServiceIdentity): Tracer {
    let provider = this.#providers.get(service.name);
    if (!provider) {
      const resource = defaultResource().merge(
        resourceFromAttributes({
          [ATTR_SERVICE_NAME]: service.name,
          [ATTR_SERVICE_VERSION]: service.version,
          'service.instance.id': `${service.name}-${service.port}`,
          'deployment.environment': 'demo',
          'host.name': hostname(),
          // The keys bk-collector's resource filter builds bk.instance.id from, and discovery's host rule reads.
          'net.host.name': hostname(),
          'net.host.ip': this.#hostIp,
          'net.host.port': service.port,
        }),
      );
      const exporter = new CountingExporter(exporterFor(this.#target, service.protocol), this.counts);
      provider = new NodeTracerProvider({
        resource,
        spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: this.#exportDelayMs, maxExportBatchSize: 512, maxQueueSize: 8_192 })],
      });
      this.#providers.set(service.name, provider);
    }
    return provider.getTracer('bkstream-demo', '1.0.0');
  }

  /** Exports what is buffered and shuts every provider down; failures are counted, not thrown. */
  async shutdown(): Promise<void> {
    const providers = [...this.#providers.values()];
    this.#providers.clear();
    await Promise.all(providers.map((p) => p.shutdown().catch((err: unknown) => {
      this.counts.lastError = err instanceof Error ? err.message : String(err);
    })));
  }
}

/** The W3C `traceparent` of a span context. */
export function traceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & TraceFlags.SAMPLED) !== 0 ? '01' : '00'}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The remote parent a `traceparent` names, as a context to start a span in (ROOT_CONTEXT when absent or malformed). */
export function contextOf(header: string | undefined): Context {
  const m = header === undefined ? null : TRACEPARENT.exec(header.trim());
  if (!m) return ROOT_CONTEXT;
  const [, traceId = '', spanId = '', flags = '00'] = m;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true });
}
