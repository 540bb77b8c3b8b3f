/** Every Prometheus series bkdata-sim exports (README, Metrics), declared in one place. */
import { counter, type Counter, type Registry } from '../common/metrics.ts';

export interface SimMetrics {
  /** BKData API calls answered, by API (`unknown` for a path no API has) and outcome (calls.ts). */
  calls: Counter<'api' | 'outcome'>;
  /** Raw records the running cleans read, by result table and outcome (`cleaned`, `failed`, `empty`). */
  cleanRecords: Counter<'result_table_id' | 'outcome'>;
  /** Result-table rows the running cleans made. */
  cleanRows: Counter<'result_table_id'>;
}

export function simMetrics(registry: Registry): SimMetrics {
  return {
    calls: counter(registry, { name: 'bkstream_bkdata_sim_calls_total', help: 'BKData API calls answered by bkdata-sim, by API and outcome', labelNames: ['api', 'outcome'] }),
    cleanRecords: counter(registry, { name: 'bkstream_bkdata_sim_clean_records_total', help: 'Raw records read by the running cleans, by result table and outcome (cleaned, failed, empty)', labelNames: ['result_table_id', 'outcome'] }),
    cleanRows: counter(registry, { name: 'bkstream_bkdata_sim_clean_rows_total', help: 'Result-table rows made by the running cleans', labelNames: ['result_table_id'] }),
  };
}
