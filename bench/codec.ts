/**
 * bench/codec — Avro single-object encoding vs JSON for a realistic span batch.
 *
 *   npm run bench:codec
 *
 * A SpanBatch of 100 spans (a mix of HTTP server/client, gRPC, database and messaging spans of several
 * services, with the attribute and resource sets an OpenTelemetry SDK produces) is encoded and decoded
 * with the project's codec (services/common/codec.ts) and with JSON.stringify / JSON.parse (to and from
 * UTF-8 bytes, so both sides produce what would go on the wire). The cases alternate in rounds and the
 * median of each is reported. Rates are spans per second; size_ratio = Avro bytes / JSON bytes.
 */
import { codecFor } from '../services/common/avro/index.ts';
import type { Span, SpanBatch } from '../services/common/records.ts';
import { fmt, interleaved, result } from './lib.ts';

const SPANS = 100;
const T0 = 1_763_700_000_000_000;

function hex(n: number, len: number): string {
  return n.toString(16).padStart(len, '0').slice(-len);
}

/** One span of the mix: i picks the service, endpoint and span type. */
export function realisticSpan(i: number, traceId: string): Span {
  const service = `svc-${i % 7}`;
  const kind = [2, 3, 3, 4, 5][i % 5] as number;
  const base: Span = {
    bk_biz_id: 2,
    app_name: 'shop',
    trace_id: traceId,
    span_id: hex(i * 2_654_435_761, 16),
    parent_span_id: i === 0 ? '' : hex((i - 1) * 2_654_435_761, 16),
    span_name: `GET /api/v1/items/{id}/${i % 13}`,
    kind,
    start_time: T0 + i * 1_000,
    end_time: T0 + i * 1_000 + 850 + (i % 17) * 31,
    elapsed_time: 850 + (i % 17) * 31,
    status: { code: i % 23 === 0 ? 2 : 0, message: i % 23 === 0 ? 'deadline exceeded' : '' },
    trace_state: '',
    attributes: {},
    resource: {
      'service.name': service,
      'service.version': '2.3.1',
      'service.namespace': 'shop',
      'telemetry.sdk.name': 'opentelemetry',
      'telemetry.sdk.language': 'java',
      'telemetry.sdk.version': '1.44.1',
      'host.name': `${service}-7d9f8b6c5-x2k4p`,
      'net.host.ip': `10.0.${i % 7}.${10 + (i % 5)}`,
      'net.host.name': `${service}-7d9f8b6c5-x2k4p`,
      'net.host.port': 8080,
      'k8s.pod.name': `${service}-7d9f8b6c5-x2k4p`,
      'k8s.namespace.name': 'prod',
      'bk.instance.id': `java:${service}:${service}-7d9f8b6c5-x2k4p:10.0.${i % 7}.${10 + (i % 5)}:8080`,
    },
    events: [],
    links: [],
    client_ip: `10.0.${i % 7}.${10 + (i % 5)}`,
  };
  switch (i % 4) {
    case 0:
      base.attributes = {
        'http.method': 'GET',
        'http.route': '/api/v1/items/{id}',
        'http.target': `/api/v1/items/${1000 + i}?expand=price`,
        'http.scheme': 'http',
        'http.flavor': '1.1',
        'http.status_code': 200,
        'http.user_agent': 'okhttp/4.12.0',
        'net.peer.ip': '10.0.9.3',
        'net.peer.port': 43512,
        'thread.id': 41,
        'thread.name': 'http-nio-8080-exec-3',
      };
      break;
    case 1:
      base.attributes = {
        'db.system': 'mysql',
        'db.name': 'orders',
        'db.operation': 'SELECT',
        'db.statement': 'SELECT id, status, total FROM orders WHERE customer_id = ? ORDER BY created_at DESC LIMIT ?',
        'net.peer.name': 'mysql-primary.db.svc',
        'net.peer.port': 3306,
        'db.user': 'svc_orders',
      };
      break;
    case 2:
      base.attributes = {
        'rpc.system': 'grpc',
        'rpc.service': 'inventory.v1.InventoryService',
        'rpc.method': 'Reserve',
        'rpc.grpc.status_code': 0,
        'net.peer.name': 'inventory.svc',
        'net.peer.port': 9090,
        'peer.service': 'inventory',
      };
      break;
    default:
      base.attributes = {
        'messaging.system': 'kafka',
        'messaging.destination': 'orders.events',
        'messaging.destination_kind': 'topic',
        'messaging.operation': 'publish',
        'messaging.kafka.partition': i % 12,
        'messaging.message_payload_size_bytes': 512 + i,
      };
      base.events = [{ name: 'message.sent', timestamp: T0 + i * 1_000 + 400, attributes: { 'message.id': `m-${i}` } }];
  }
  return base;
}

export function realisticBatch(n = SPANS, seed = 0): SpanBatch {
  const traceId = hex(seed * 97 + 0x4bf92f35, 8).repeat(4);
  return { spans: Array.from({ length: n }, (_, i) => realisticSpan(i, traceId)) };
}

function main(): void {
  const codec = codecFor('SpanBatch');
  const batch = realisticBatch();
  const avro = codec.encode(batch);
  const json = Buffer.from(JSON.stringify(batch));
  const sizeRatio = avro.length / json.length;

  const rates = interleaved(
    {
      avro_encode: () => codec.encode(batch),
      json_encode: () => Buffer.from(JSON.stringify(batch)),
      avro_decode: () => codec.decode(avro),
      json_decode: () => JSON.parse(json.toString('utf8')) as unknown,
    },
    7,
    700,
  );
  const perSpan = (k: string): number => (rates[k] ?? 0) * SPANS;

  console.log(`span batch of ${SPANS} spans: Avro ${avro.length} B (${fmt(avro.length / SPANS)} B/span), JSON ${json.length} B (${fmt(json.length / SPANS)} B/span)`);
  console.log('median of 7 interleaved rounds, spans per second:');
  for (const [k, v] of Object.entries(rates)) console.log(`  ${k.padEnd(12)} ${fmt(v * SPANS).padStart(10)} spans/s  (${fmt(v)} batches/s)`);
  console.log(`  encode avro/json ${fmt(perSpan('avro_encode') / perSpan('json_encode'))}x, decode avro/json ${fmt(perSpan('avro_decode') / perSpan('json_decode'))}x`);
  result('codec', {
    avro_encode_per_s: perSpan('avro_encode'),
    json_encode_per_s: perSpan('json_encode'),
    avro_decode_per_s: perSpan('avro_decode'),
    json_decode_per_s: perSpan('json_decode'),
    size_ratio: sizeRatio,
  });
}

if (import.meta.main) main();
