/** Every Prometheus series the console exports (README, Metrics), declared in one place. */
import { counter, histogram, type Counter, type Histogram, type Registry } from '../common/metrics.ts';

export interface ConsoleMetrics {
  /** Proxied calls answered by an upstream, by upstream, method and HTTP status code. */
  proxied: Counter<'upstream' | 'method' | 'code'>;
  /** Time from receiving a proxied call to the end of the upstream's answer, by upstream. */
  proxySeconds: Histogram<'upstream'>;
  /** Proxied calls the upstream did not answer: `unreachable` (502), `timeout` (504), `aborted` (client went away). */
  proxyFailures: Counter<'upstream' | 'reason'>;
  /** Requests refused before any upstream saw them: `host` (403), `origin` (403), `media_type` (415), `too_large` (413), `route` (404). */
  refused: Counter<'reason'>;
  /** Front-end files served, by HTTP status code. */
  assets: Counter<'code'>;
}

export function consoleMetrics(registry: Registry): ConsoleMetrics {
  return {
    proxied: counter(registry, { name: 'bkstream_console_proxied_total', help: 'API calls proxied to an upstream and answered by it, by upstream, method and status code', labelNames: ['upstream', 'method', 'code'] }),
    proxySeconds: histogram(registry, { name: 'bkstream_console_proxy_seconds', help: 'time of a proxied call until the end of the upstream answer, seconds', labelNames: ['upstream'] }),
    proxyFailures: counter(registry, { name: 'bkstream_console_proxy_failures_total', help: 'proxied calls an upstream did not answer, by upstream and reason (unreachable, timeout, aborted)', labelNames: ['upstream', 'reason'] }),
    refused: counter(registry, { name: 'bkstream_console_refused_total', help: 'requests refused by the console itself, by reason (host, origin, media_type, too_large, route)', labelNames: ['reason'] }),
    assets: counter(registry, { name: 'bkstream_console_assets_total', help: 'front-end files served, by status code', labelNames: ['code'] }),
  };
}
