/**
 * The demo shop's `payment` service: a real gRPC server on loopback (payment.proto, served through
 * services/common/grpc.ts) that checkout calls. Each Charge is a SERVER span with a CLIENT database span
 * under it (db.system=postgresql; no database is contacted, the span records the INSERT it stands for).
 * Some charges are declined (FAILED_PRECONDITION, an error span with the exception recorded) and some
 * database calls are slow, so the service map shows errors and latency.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { GrpcMetadata, GrpcServer, grpcCredentials, grpcStatus, loadService, type Metadata, type ServiceClientConstructor, type ServiceError } from '../../common/grpc.ts';
import { contextOf, traceparent } from './telemetry.ts';

export const PAYMENT_SERVICE = 'bkstream.demo.payment.v1.Payment';
export const CHARGE_PATH = `/${PAYMENT_SERVICE}/Charge`;

export interface ChargeRequest {
  order_id: string;
  amount_cents: number;
  card: string;
}

export interface ChargeReply {
  payment_id: string;
  status: string;
}

let definition: ServiceClientConstructor | undefined;

/** The Payment service (loaded once from payment.proto). */
export function paymentDefinition(): ServiceClientConstructor {
  definition ??= loadService(join(import.meta.dirname, 'payment.proto'), PAYMENT_SERVICE, { keepCase: true, longs: Number, defaults: true });
  return definition;
}

/** How the payment service behaves. */
export interface PaymentBehaviour {
  /** Share of charges declined (0..1). */
  declineRate: number;
  /** Share of database calls that are slow (0..1). */
  slowRate: number;
  /** A slow database call's extra time, ms: between `[min, max]`. */
  slowMs: readonly [number, number];
  random: () => number;
}

const between = (random: () => number, [min, max]: readonly [number, number]): number => min + Math.round(random() * (max - min));

/** The payment gRPC server. */
export class PaymentServer {
  readonly name = 'demo-payment';
  readonly #server = new GrpcServer({ what: 'the demo payment service', host: '127.0.0.1', port: 0 });
  readonly #tracer: () => Tracer;
  readonly #behaviour: PaymentBehaviour;
  #seq = 0;

  /** `tracer` is asked for after start (the service's resource names its port). */
  constructor(tracer: () => Tracer, behaviour: PaymentBehaviour) {
    this.#tracer = tracer;
    this.#behaviour = behaviour;
    const service = paymentDefinition().service;
    this.#server.addService(service, {
      Charge: (call: { request: ChargeRequest; metadata: Metadata }, callback: (err: Partial<ServiceError> | null, reply?: ChargeReply) => void) => {
        this.#charge(call.request, call.metadata).then(
          (reply) => callback(null, reply),
          (err: unknown) => callback({ code: grpcStatus.FAILED_PRECONDITION, details: err instanceof Error ? err.message : String(err) }),
        );
      },
    });
  }

  port(): number {
    return this.#server.port();
  }

  start(): Promise<void> {
    return this.#server.start();
  }

  stop(): Promise<void> {
    return this.#server.stop(2_000);
  }

  async #charge(req: ChargeRequest, metadata: Metadata): Promise<ChargeReply> {
    const tracer = this.#tracer();
    const parent = contextOf(String(metadata.get('traceparent')[0] ?? ''));
    const span = tracer.startSpan(`${PAYMENT_SERVICE}/Charge`, {
      kind: SpanKind.SERVER,
      attributes: { 'rpc.system': 'grpc', 'rpc.service': PAYMENT_SERVICE, 'rpc.method': 'Charge', 'net.host.ip': '127.0.0.1', 'net.host.port': this.port(), 'order.id': req.order_id },
    }, parent);
    const { random } = this.#behaviour;
    try {
      const db = tracer.startSpan('INSERT shop.payments', {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system': 'postgresql',
          'db.name': 'shop',
          'db.user': 'payment',
          'db.operation': 'INSERT',
          'db.sql.table': 'payments',
          'db.statement': 'INSERT INTO payments (order_id, amount_cents, status) VALUES ($1, $2, $3)',
          'net.peer.name': 'payments-db',
          'net.peer.port': 5432,
        },
      }, trace.setSpan(parent, span));
      await sleep(random() < this.#behaviour.slowRate ? between(random, this.#behaviour.slowMs) : between(random, [2, 12]));
      db.end();
      if (random() < this.#behaviour.declineRate) {
        const err = new Error(`card ${req.card.slice(-4)} declined`);
        span.recordException(err);
        span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
        span.setAttribute('rpc.grpc.status_code', grpcStatus.FAILED_PRECONDITION);
        throw err;
      }
      span.setAttribute('rpc.grpc.status_code', grpcStatus.OK);
      return { payment_id: `pay-${++this.#seq}`, status: 'captured' };
    } finally {
      span.end();
    }
  }
}

/** Checkout's client of the payment service. */
export class PaymentClient {
  readonly #client: InstanceType<ServiceClientConstructor>;
  readonly #port: number;

  constructor(port: number) {
    this.#port = port;
    this.#client = new (paymentDefinition())(`127.0.0.1:${port}`, grpcCredentials.createInsecure());
  }

  /** One Charge call inside a CLIENT span of `tracer` under `parent`'s context; rejects with the gRPC error. */
  charge(tracer: Tracer, parent: Parameters<Tracer['startSpan']>[2], req: ChargeRequest): Promise<ChargeReply> {
    const span = tracer.startSpan(`${PAYMENT_SERVICE}/Charge`, {
      kind: SpanKind.CLIENT,
      attributes: { 'rpc.system': 'grpc', 'rpc.service': PAYMENT_SERVICE, 'rpc.method': 'Charge', 'net.peer.name': '127.0.0.1', 'net.peer.port': this.#port },
    }, parent);
    const metadata = new GrpcMetadata();
    metadata.set('traceparent', traceparent(span.spanContext()));
    const def = paymentDefinition().service.Charge;
    if (!def) throw new Error('payment.proto has no Charge');
    return new Promise<ChargeReply>((resolve, reject) => {
      this.#client.makeUnaryRequest(CHARGE_PATH, def.requestSerialize, def.responseDeserialize as (b: Buffer) => ChargeReply, req, metadata, { deadline: Date.now() + 5_000 }, (err, reply) => {
        span.setAttribute('rpc.grpc.status_code', err ? err.code : grpcStatus.OK);
        if (err || !reply) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: err?.details ?? 'no reply' });
          span.end();
          reject(err ?? new Error('no reply'));
          return;
        }
        span.end();
        resolve(reply);
      });
    });
  }

  close(): void {
    this.#client.close();
  }
}
