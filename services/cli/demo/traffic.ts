/**
 * The demo's shoppers: requests to the demo shop's frontend at a steady rate (about two checkouts for
 * every product view), at most {@link MAX_IN_FLIGHT} at a time. `stop()` stops sending and waits for the
 * requests in flight.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Requests in flight at most; past it a tick is skipped (the shop is slower than the rate). */
export const MAX_IN_FLIGHT = 32;

/** How long `stop()` waits for requests in flight, ms. */
const STOP_WAIT_MS = 3_000;

export interface TrafficCounts {
  sent: number;
  /** Answers with status >= 400, and requests that failed. */
  failed: number;
  skipped: number;
}

export class ShopTraffic {
  readonly name = 'demo-traffic';
  readonly counts: TrafficCounts = { sent: 0, failed: 0, skipped: 0 };
  readonly #baseUrl: () => string;
  readonly #intervalMs: number;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #seq = 0;

  /** `baseUrl` is asked for at start (the frontend's port is known once it listens). */
  constructor(baseUrl: () => string, options: { requestsPerSecond: number; random: () => number }) {
    this.#baseUrl = baseUrl;
    this.#intervalMs = Math.max(1, Math.round(1_000 / options.requestsPerSecond));
    this.#random = options.random;
  }

  async start(): Promise<void> {
    if (this.#timer) return;
    const base = this.#baseUrl();
    this.#timer = setInterval(() => this.#send(base), this.#intervalMs);
    this.#send(base);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const deadline = Date.now() + STOP_WAIT_MS;
    while (this.#inFlight > 0 && Date.now() < deadline) await sleep(20);
  }

  #send(base: string): void {
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      this.counts.skipped++;
      return;
    }
    const n = ++this.#seq;
    const path = this.#random() < 0.65 ? '/shop/checkout' : `/shop/products/sku-${1 + (n % 12)}`;
    this.#inFlight++;
    this.counts.sent++;
    fetch(`${base}${path}`, { headers: { 'user-agent': 'bkstream-demo-shopper/1.0' }, signal: AbortSignal.timeout(10_000) })
      .then(async (res) => {
        await res.arrayBuffer();
        if (res.status >= 400) this.counts.failed++;
      })
      .catch(() => {
        this.counts.failed++;
      })
      .finally(() => {
        this.#inFlight--;
      });
  }
}
