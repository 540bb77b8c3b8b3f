/** Every Prometheus series bkdata-sim exports (README, Metrics), declared in one place. */
import { counter, type Counter, type Registry } from '../common/metrics.ts';

export interface SimMetrics {
  /** BKData API calls answered, by API (`unknown` for a path no API has) and outcome (calls.ts). */
  calls: Counter<'api' | 'outcome'>;
}

export function simMetrics(registry: Registry): SimMetrics {
  return {
    calls: counter(registry, { name: 'bkstream_bkdata_sim_calls_total', help: 'BKData API calls answered by bkdata-sim, by API and outcome', labelNames: ['api', 'outcome'] }),
  };
}
