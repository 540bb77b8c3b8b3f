/**
 * The span mix of the discovery benchmark: 200 services × 50 endpoints, traces of ~9 spans (http entry,
 * http/grpc calls between services, mysql/redis clients, kafka producer → consumer, calls to an external
 * `peer.service`), 3 hosts/instances per service, server spans carrying their caller's address with an
 * ephemeral port. Deterministic (seeded).
 */
import type { Span } from '../services/common/records.ts';

const SERVICES = 200;
const ENDPOINTS = 50;
const HOSTS = 3;

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LANGS = ['go', 'java', 'python', 'nodejs'];
const hex = (r: () => number, n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(r() * 16).toString(16);
  return s;
};

export function* traces(total: number): Generator<Span[]> {
  const r = rng(42);
  const base = Date.now() * 1000 - 600_000_000;
  let made = 0;
  let n = 0;
  while (made < total) {
    const traceId = hex(r, 32);
    const t0 = base + n++ * 50;
    const spans: Span[] = [];
    const mk = (svc: number, kind: number, name: string, parent: string, attributes: Span['attributes'], offset: number, dur: number): Span => {
      const host = Math.floor(r() * HOSTS);
      const ip = `10.${svc >> 8}.${svc & 255}.${host + 1}`;
      const s: Span = {
        bk_biz_id: 2,
        app_name: 'bench',
        trace_id: traceId,
        span_id: hex(r, 16),
        parent_span_id: parent,
        span_name: name,
        kind,
        start_time: t0 + offset,
        end_time: t0 + offset + dur,
        elapsed_time: dur,
        status: { code: r() < 0.02 ? 2 : 0, message: '' },
        trace_state: '',
        attributes,
        resource: {
          'service.name': `svc-${svc}`,
          'telemetry.sdk.name': 'opentelemetry',
          'telemetry.sdk.language': LANGS[svc % 4] as string,
          'telemetry.sdk.version': '1.28.0',
          'net.host.ip': ip,
          'net.host.name': `svc-${svc}-${host}`,
          'bk.instance.id': `${LANGS[svc % 4]}:svc-${svc}:svc-${svc}-${host}:${ip}:8080`,
        },
        events: r() < 0.1 ? [{ name: 'exception', timestamp: t0 + offset + 1, attributes: { 'exception.type': 'TimeoutError', 'exception.message': 'upstream timed out' } }] : [],
        links: [],
        client_ip: ip,
      };
      spans.push(s);
      return s;
    };
    // The caller's address on server spans, as HTTP and gRPC server instrumentations with the older
    // semantic conventions record it: an ephemeral port per connection.
    const caller = (svc: number): Span['attributes'] => ({ 'net.peer.ip': `10.${svc >> 8}.${svc & 255}.1`, 'net.peer.port': 40_000 + Math.floor(r() * 20_000) });
    const gateway = Math.floor(r() * 20);
    const ep = Math.floor(r() * ENDPOINTS);
    const method = ep % 3 === 0 ? 'POST' : 'GET';
    const root = mk(gateway, 2, `${method} /api/svc-${gateway}/r${ep}`, '', { 'http.method': method, 'http.route': `/api/svc-${gateway}/r${ep}`, 'http.status_code': 200, 'net.peer.ip': '10.255.0.1', 'net.peer.port': 40_000 + Math.floor(r() * 20_000) }, 0, 20_000);
    for (let call = 0; call < 2; call++) {
      // Each gateway calls a fixed handful of services, as real call graphs do.
      const callee = 20 + ((gateway * 9 + Math.floor(r() * 9)) % (SERVICES - 20));
      const cep = Math.floor(r() * ENDPOINTS);
      const grpc = callee % 2 === 0;
      const attrs: Span['attributes'] = grpc ? { 'rpc.system': 'grpc', 'rpc.service': `svc${callee}.Api`, 'rpc.method': `M${cep}` } : { 'http.method': 'GET', 'http.route': `/svc-${callee}/r${cep}`, 'http.status_code': 200 };
      const name = grpc ? `svc${callee}.Api/M${cep}` : `GET /svc-${callee}/r${cep}`;
      const client = mk(gateway, 3, name, root.span_id, attrs, 1_000 + call * 8_000, 7_000);
      const server = mk(callee, 2, name, client.span_id, { ...attrs, ...caller(gateway) }, 1_200 + call * 8_000, 6_500);
      const db = callee % 3 === 0 ? 'redis' : 'mysql';
      mk(callee, 3, db === 'redis' ? 'GET' : `SELECT t${cep % 10}`, server.span_id, { 'db.system': db, 'db.statement': 'SELECT ?', 'net.peer.name': `${db}-${callee % 7}`, 'net.peer.port': db === 'redis' ? 6379 : 3306 }, 1_500 + call * 8_000, 2_000);
      if (callee % 4 === 0) {
        const producer = mk(callee, 4, 'orders publish', server.span_id, { 'messaging.system': 'kafka', 'messaging.destination': 'orders', 'net.peer.name': 'kafka-0' }, 4_000 + call * 8_000, 500);
        const consumerSvc = 20 + ((callee * 7) % (SERVICES - 20));
        mk(consumerSvc, 5, 'orders process', producer.span_id, { 'messaging.system': 'kafka', 'messaging.destination': 'orders' }, 5_000 + call * 8_000, 3_000);
      }
    }
    if (gateway % 5 === 0) mk(gateway, 3, 'POST /charge', root.span_id, { 'http.method': 'POST', 'peer.service': 'payment-gw', 'http.status_code': 200 }, 17_000, 2_000);
    made += spans.length;
    yield spans;
  }
}

