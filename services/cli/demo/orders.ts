/**
 * The demo shop's order queue: checkout publishes each paid order (a PRODUCER span, messaging.system=kafka,
 * destination `orders`) and the `fulfillment` service consumes it a little later (a CONSUMER span whose
 * parent is the producer span, carried in the message's `traceparent`, then a database UPDATE span). The
 * queue lives in memory: the spans describe the Kafka topic the shop would use, nothing is sent to a broker.
 */
import { SpanKind, SpanStatusCode, trace, type Context, type Tracer } from '@opentelemetry/api';
import { contextOf, traceparent } from './telemetry.ts';

export const ORDERS_TOPIC = 'orders';

interface Message {
  orderId: string;
  headers: { traceparent: string };
  /** When fulfillment may take it, ms since the epoch. */
  dueAt: number;
}

const messagingAttributes = (operation: string): Record<string, string | number> => ({
  'messaging.system': 'kafka',
  'messaging.destination': ORDERS_TOPIC,
  'messaging.destination.name': ORDERS_TOPIC,
  'messaging.destination_kind': 'topic',
  'messaging.operation': operation,
  'net.peer.name': '127.0.0.1',
  'net.peer.port': 9092,
});

/** The queue with its consumer (the fulfillment service); `start` polls it, `stop` drains what is due. */
export class OrdersQueue {
  readonly name = 'demo-orders';
  readonly #queue: Message[] = [];
  readonly #consumerTracer: () => Tracer;
  readonly #random: () => number;
  readonly #failRate: number;
  #timer: NodeJS.Timeout | undefined;
  #consumed = 0;

  constructor(consumerTracer: () => Tracer, options: { random: () => number; failRate: number }) {
    this.#consumerTracer = consumerTracer;
    this.#random = options.random;
    this.#failRate = options.failRate;
  }

  /** Orders consumed so far. */
  consumed(): number {
    return this.#consumed;
  }

  /** Publishes an order: a PRODUCER span of `tracer` under `parent`. */
  publish(tracer: Tracer, parent: Context, orderId: string): void {
    const span = tracer.startSpan(`${ORDERS_TOPIC} publish`, { kind: SpanKind.PRODUCER, attributes: { ...messagingAttributes('publish'), 'messaging.message.id': orderId } }, parent);
    this.#queue.push({ orderId, headers: { traceparent: traceparent(span.spanContext()) }, dueAt: Date.now() + 20 + Math.round(this.#random() * 150) });
    span.end();
  }

  async start(): Promise<void> {
    this.#timer ??= setInterval(() => this.#poll(false), 25);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#poll(true);
  }

  #poll(all: boolean): void {
    const now = Date.now();
    while (this.#queue.length > 0 && (all || (this.#queue[0] as Message).dueAt <= now)) this.#consume(this.#queue.shift() as Message);
  }

  #consume(message: Message): void {
    const tracer = this.#consumerTracer();
    const start = Date.now();
    const span = tracer.startSpan(`${ORDERS_TOPIC} process`, { kind: SpanKind.CONSUMER, startTime: start, attributes: { ...messagingAttributes('process'), 'messaging.message.id': message.orderId } }, contextOf(message.headers.traceparent));
    const db = tracer.startSpan('UPDATE shop.inventory', {
      kind: SpanKind.CLIENT,
      startTime: start + 1,
      attributes: {
        'db.system': 'postgresql',
        'db.name': 'shop',
        'db.user': 'fulfillment',
        'db.operation': 'UPDATE',
        'db.sql.table': 'inventory',
        'db.statement': 'UPDATE inventory SET reserved = reserved + 1 WHERE sku = $1',
        'net.peer.name': 'inventory-db',
        'net.peer.port': 5432,
      },
    }, trace.setSpan(contextOf(message.headers.traceparent), span));
    const took = 3 + Math.round(this.#random() * 20);
    if (this.#random() < this.#failRate) {
      db.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock detected' });
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'reservation failed: deadlock detected' });
    }
    db.end(start + took);
    span.end(start + took + 1);
    this.#consumed++;
  }
}
