/**
 * The demo shop: small services calling each other over real HTTP and gRPC on 127.0.0.1, each traced
 * with the OpenTelemetry SDK under its own service name (telemetry.ts):
 *
 *   frontend   HTTP  GET /shop/checkout, GET /shop/products/{id}
 *     ├─ HTTP → recommendations (not instrumented: a remote service, `peer.service`)
 *     └─ HTTP → checkout  POST /api/checkout
 *                 ├─ gRPC → payment  Charge  ─ INSERT (db.system=postgresql)
 *                 └─ orders publish (messaging.system=kafka) ⇢ fulfillment: orders process ─ UPDATE (postgresql)
 *
 * Some charges are declined and some database calls are slow (payment.ts), some products are unknown
 * (404), some reservations fail (orders.ts): errors and latency show on the map and in the traces.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { OrdersQueue } from './orders.ts';
import { PaymentClient, PaymentServer } from './payment.ts';
import { contextOf, traceparent, type DemoTelemetry, type Protocol } from './telemetry.ts';

/** How the shop misbehaves, shares 0..1 (and the random source, for tests). */
export interface ShopBehaviour {
  declineRate: number;
  slowRate: number;
  notFoundRate: number;
  fulfillmentFailRate: number;
  random: () => number;
}

export const DEFAULT_BEHAVIOUR: ShopBehaviour = { declineRate: 0.08, slowRate: 0.05, notFoundRate: 0.05, fulfillmentFailRate: 0.03, random: Math.random };

/** The demo's service names. */
export const SHOP_SERVICES = ['frontend', 'checkout', 'payment', 'fulfillment'] as const;
export type ShopService = (typeof SHOP_SERVICES)[number];

/** The OTLP protocol each service exports with: both of the receiver's listeners are used. */
const PROTOCOL: Record<ShopService, Protocol> = { frontend: 'http', checkout: 'grpc', payment: 'grpc', fulfillment: 'http' };

const VERSION = '1.4.2';

class Listening {
  readonly #server: Server;

  constructor(handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>) {
    this.#server = createServer((req, res) => {
      handler(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

function traceparentOf(req: IncomingMessage): string | undefined {
  const v = req.headers.traceparent;
  return Array.isArray(v) ? v[0] : v;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A SERVER span for an HTTP request, ended with its status (5xx is an error). */
function serverSpan(tracer: Tracer, req: IncomingMessage, route: string, port: number): Span {
  return tracer.startSpan(`${req.method ?? 'GET'} ${route}`, {
    kind: SpanKind.SERVER,
    attributes: {
      'http.method': req.method ?? 'GET',
      'http.route': route,
      'http.target': req.url ?? '/',
      'http.scheme': 'http',
      'http.flavor': '1.1',
      'http.user_agent': req.headers['user-agent'] ?? '',
      'net.host.ip': '127.0.0.1',
      'net.host.port': port,
    },
  }, contextOf(traceparentOf(req)));
}

function endHttp(span: Span, status: number, message?: string): void {
  span.setAttribute('http.status_code', status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
  span.end();
}

/** An HTTP call in a CLIENT span, with the trace context in `traceparent`; resolves with the status and body. */
async function httpCall(tracer: Tracer, parent: Context, method: string, url: string, options: { route: string; body?: unknown; peerService?: string }): Promise<{ status: number; body: unknown }> {
  const target = new URL(url);
  const span = tracer.startSpan(`${method} ${options.route}`, {
    kind: SpanKind.CLIENT,
    attributes: {
      'http.method': method,
      'http.url': url,
      'net.peer.name': target.hostname,
      'net.peer.port': Number(target.port),
      ...(options.peerService ? { 'peer.service': options.peerService } : {}),
    },
  }, parent);
  try {
    const res = await fetch(url, {
      method,
      headers: { traceparent: traceparent(span.spanContext()), ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(5_000),
    });
    const body: unknown = await res.json().catch(() => undefined);
    span.setAttribute('http.status_code', res.status);
    if (res.status >= 400) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${res.status}` });
    return { status: res.status, body };
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}

/** Counts of what the shop answered. */
export interface ShopCounts {
  checkouts: number;
  failedCheckouts: number;
  productViews: number;
}

/** The shop's servers; `start()` listens on free loopback ports, `stop()` closes them and drains the queue. */
export class DemoShop {
  readonly name = 'demo-shop';
  readonly counts: ShopCounts = { checkouts: 0, failedCheckouts: 0, productViews: 0 };
  readonly #telemetry: DemoTelemetry;
  readonly #behaviour: ShopBehaviour;
  readonly #frontend: Listening;
  readonly #checkout: Listening;
  readonly #recommendations: Listening;
  readonly #payment: PaymentServer;
  readonly #orders: OrdersQueue;
  #paymentClient: PaymentClient | undefined;
  #orderSeq = 0;

  constructor(telemetry: DemoTelemetry, behaviour: ShopBehaviour = DEFAULT_BEHAVIOUR) {
    this.#telemetry = telemetry;
    this.#behaviour = behaviour;
    this.#frontend = new Listening((req, res) => this.#serveFrontend(req, res));
    this.#checkout = new Listening((req, res) => this.#serveCheckout(req, res));
    this.#recommendations = new Listening(async (_req, res) => {
      await sleep(5 + Math.round(behaviour.random() * 25));
      reply(res, 200, { items: ['sku-1', 'sku-7', 'sku-9'] });
    });
    this.#payment = new PaymentServer(() => this.#tracer('payment'), { declineRate: behaviour.declineRate, slowRate: behaviour.slowRate, slowMs: [300, 900], random: behaviour.random });
    this.#orders = new OrdersQueue(() => this.#tracer('fulfillment'), { random: behaviour.random, failRate: behaviour.fulfillmentFailRate });
  }

  /** The frontend's base URL (where traffic goes), once started. */
  frontendUrl(): string {
    return `http://127.0.0.1:${this.#frontend.port()}`;
  }

  /** Each service and its loopback address, once started. */
  addresses(): Record<string, string> {
    return {
      frontend: `http://127.0.0.1:${this.#frontend.port()}`,
      checkout: `http://127.0.0.1:${this.#checkout.port()}`,
      payment: `grpc://127.0.0.1:${this.#payment.port()}`,
      recommendations: `http://127.0.0.1:${this.#recommendations.port()}`,
    };
  }

  /** Orders fulfillment consumed so far. */
  fulfilled(): number {
    return this.#orders.consumed();
  }

  async start(): Promise<void> {
    await this.#recommendations.start();
    await this.#payment.start();
    this.#paymentClient ??= new PaymentClient(this.#payment.port());
    await this.#orders.start();
    await this.#checkout.start();
    await this.#frontend.start();
  }

  /** Stops intake first (frontend, checkout), then the rest; every step runs even if one fails. */
  async stop(): Promise<void> {
    const steps = [
      () => this.#frontend.stop(),
      () => this.#checkout.stop(),
      () => this.#orders.stop(),
      async () => {
        this.#paymentClient?.close();
        this.#paymentClient = undefined;
      },
      () => this.#payment.stop(),
      () => this.#recommendations.stop(),
    ];
    const failures: unknown[] = [];
    for (const step of steps) await step().catch((err: unknown) => failures.push(err));
    if (failures.length > 0) throw new AggregateError(failures, 'demo shop: stop failed');
  }

  #tracer(service: ShopService): Tracer {
    const port = { frontend: this.#frontend, checkout: this.#checkout, payment: this.#payment, fulfillment: undefined }[service]?.port() ?? 0;
    return this.#telemetry.tracer({ name: service, version: VERSION, port, protocol: PROTOCOL[service] });
  }

  async #serveFrontend(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const tracer = this.#tracer('frontend');
    const path = new URL(req.url ?? '/', 'http://demo').pathname;
    const route = path === '/shop/checkout' ? '/shop/checkout' : path.startsWith('/shop/products/') ? '/shop/products/{id}' : undefined;
    if (!route) {
      reply(res, 404, { error: 'not found' });
      return;
    }
    const span = serverSpan(tracer, req, route, this.#frontend.port());
    const ctx = trace.setSpan(contextOf(traceparentOf(req)), span);
    try {
      const recs = await httpCall(tracer, ctx, 'GET', `http://127.0.0.1:${this.#recommendations.port()}/api/recommendations`, { route: '/api/recommendations', peerService: 'recommendations' });
      if (route === '/shop/products/{id}') {
        this.counts.productViews++;
        const status = this.#behaviour.random() < this.#behaviour.notFoundRate ? 404 : 200;
        reply(res, status, status === 200 ? { product: path.slice('/shop/products/'.length), recommendations: recs.body } : { error: 'unknown product' });
        endHttp(span, status);
        return;
      }
      const order = { order_id: `order-${++this.#orderSeq}`, amount_cents: 500 + Math.round(this.#behaviour.random() * 20_000), card: '4111111111111111' };
      const result = await httpCall(tracer, ctx, 'POST', `http://127.0.0.1:${this.#checkout.port()}/api/checkout`, { route: '/api/checkout', body: order });
      const status = result.status < 300 ? 200 : 502;
      reply(res, status, result.body);
      endHttp(span, status, status === 502 ? 'checkout failed' : undefined);
    } catch (err) {
      reply(res, 500, { error: (err as Error).message });
      endHttp(span, 500, (err as Error).message);
    }
  }

  async #serveCheckout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const tracer = this.#tracer('checkout');
    if (req.method !== 'POST' || req.url !== '/api/checkout') {
      reply(res, 404, { error: 'not found' });
      return;
    }
    const span = serverSpan(tracer, req, '/api/checkout', this.#checkout.port());
    const ctx = trace.setSpan(contextOf(traceparentOf(req)), span);
    this.counts.checkouts++;
    try {
      const order = JSON.parse(await readBody(req)) as { order_id: string; amount_cents: number; card: string };
      const client = this.#paymentClient;
      if (!client) throw new Error('payment client closed');
      const payment = await client.charge(tracer, ctx, order);
      this.#orders.publish(tracer, ctx, order.order_id);
      reply(res, 201, { order_id: order.order_id, payment_id: payment.payment_id });
      endHttp(span, 201);
    } catch (err) {
      this.counts.failedCheckouts++;
      const message = (err as { details?: string }).details ?? (err as Error).message;
      reply(res, 502, { error: `payment failed: ${message}` });
      endHttp(span, 502, `payment failed: ${message}`);
    }
  }
}
