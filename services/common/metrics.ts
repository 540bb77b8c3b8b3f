/**
 * Prometheus metrics (prom-client): a registry per service and the counter/gauge/histogram factories.
 * The HTTP server that exposes them (`/metrics`, `/healthz`) is `http.ts`.
 *
 * Each service makes its own {@link Registry} (no global state, so tests can run several services in one
 * process); metric names are prefixed `bkstream_`.
 */
import client from 'prom-client';

export type Registry = client.Registry;
export type Counter<L extends string = string> = client.Counter<L>;
export type Gauge<L extends string = string> = client.Gauge<L>;
export type Histogram<L extends string = string> = client.Histogram<L>;

/** A registry with the default process metrics (RSS, CPU, event-loop lag) of this process. */
export function createRegistry(defaultLabels: Record<string, string> = {}): Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels(defaultLabels);
  // prom-client samples event-loop delay with a 10 ms timer by default, ~0.4 % of a core in every
  // process (half of the host agent's CPU budget); 100 ms still shows lag worth alerting on.
  client.collectDefaultMetrics({ register: registry, prefix: 'bkstream_', eventLoopMonitoringPrecision: 100 });
  return registry;
}

interface MetricOpts<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

/** Returns the already-registered metric of that name, so two components may ask for the same one. */
function existing<T>(registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}

export function counter<L extends string>(registry: Registry, opts: MetricOpts<L>): Counter<L> {
  return existing<Counter<L>>(registry, opts.name) ??
    new client.Counter<L>({ name: opts.name, help: opts.help, labelNames: opts.labelNames ?? [], registers: [registry] });
}

export function gauge<L extends string>(
  registry: Registry,
  opts: MetricOpts<L> & { collect?: (this: Gauge<L>) => void | Promise<void> },
): Gauge<L> {
  return existing<Gauge<L>>(registry, opts.name) ??
    new client.Gauge<L>({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames ?? [],
      registers: [registry],
      ...(opts.collect ? { collect: opts.collect } : {}),
    });
}

/** Latency buckets in seconds, 1 ms … 60 s. */
export const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function histogram<L extends string>(
  registry: Registry,
  opts: MetricOpts<L> & { buckets?: number[] },
): Histogram<L> {
  return existing<Histogram<L>>(registry, opts.name) ??
    new client.Histogram<L>({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames ?? [],
      buckets: opts.buckets ?? SECONDS_BUCKETS,
      registers: [registry],
    });
}
