/**
 * Texts the reference (bk-monitor) writes into BKData node configs, written out here line by line from
 * its source (bkmonitor/dataflow/task/apm_metrics.py), independently of the orchestrator's builders: the
 * tests compare the builders' output with them byte for byte (a node whose text differs is updated and
 * its dataflow restarted when a dataflow the reference created is adopted).
 */

const DIMENSIONS = [
  'apdex_type', 'bk_instance_id', 'kind', 'service_name', 'span_name', 'status_code', 'telemetry_sdk_language',
  'telemetry_sdk_name', 'telemetry_sdk_version', 'target', 'peer_service', 'http_server_name', 'http_method',
  'http_scheme', 'http_flavor', 'http_status_code', 'rpc_method', 'rpc_service', 'rpc_system', 'rpc_grpc_status_code',
  'db_name', 'db_operation', 'db_system', 'messaging_system', 'messaging_destination', 'messaging_destination_kind',
  'celery_action', 'celery_task_name',
];

function metricSql(select: readonly string[], from: string): string {
  const dimLines = DIMENSIONS.map((d, i) => (i < DIMENSIONS.length - 1 ? `${d},` : d));
  return [...select, ...dimLines, `from ${from}`, 'GROUP BY', ...dimLines].join('\n');
}

/** The SQL of the virtual metric's "聚合指标计算" node reading `from`. */
export function referenceAggSql(from: string): string {
  return metricSql([
    'SELECT count(*) as bk_apm_count,',
    'max(bk_apm_duration) as bk_apm_max_duration,',
    'sum(bk_apm_duration) as bk_apm_sum_duration,',
    "sum(IF(status_code='2', 1, 0)) as bk_apm_error_count,",
    "sum(IF(apdex_type='frustrated', 1, 0)) as bk_apm_frustrated_count,",
    "sum(IF(apdex_type='satisfied', 1, 0)) as bk_apm_satisfied_count,",
    "sum(IF(apdex_type='tolerating', 1, 0)) as bk_apm_tolerating_count,",
    "sum(IF(kind='2' OR kind='4', 1, 0)) as bk_apm_call_count,",
    "sum(IF(kind='3' OR kind='5', 1, 0)) as bk_apm_request_count,",
  ], from);
}

/** The SQL of the virtual metric's "平均值指标计算" node reading `from`. */
export function referenceAvgSql(from: string): string {
  return metricSql([
    'SELECT',
    '(sum(bk_apm_sum_duration) / sum(bk_apm_count)) as bk_apm_avg_duration,',
    '(sum(bk_apm_error_count) / sum(bk_apm_count)) as bk_apm_error_rate,',
    '(cast((sum(bk_apm_satisfied_count)+sum(bk_apm_tolerating_count) * 0.5) AS DOUBLE)/sum(bk_apm_count)) as bk_apm_apdex,',
  ], from);
}
