/** The shapes the console reads from the upstream APIs (only the fields it uses). */

/** Collector admin: an application (token hint only). */
export interface Application {
  id: number;
  bkBizId: number;
  appName: string;
  appAlias: string;
  description: string;
  traceRetentionDays: number;
  tokenHint: string;
  tracesDataId: number;
  metricsDataId: number;
  /** Tail sampling switched on, with its flow's keys. */
  tailSampling: boolean;
  tailSamplingConfig: TailSamplingConfig;
  virtualMetric: boolean;
  /** Flow types a create_or_update was ever queued for. */
  provisionedFlows: string[];
  isEnabled: boolean;
  createdAt: string;
}

/** Collector admin: an application's tail-sampling keys (services/collector/app-flows.ts). */
export interface TailSamplingConfig {
  tail_percentage?: number;
  tail_trace_session_gap_min?: number;
  tail_trace_mark_timeout?: number;
  tail_conditions?: { condition?: 'and' | 'or'; key: string; method: string; value: string[] }[];
}

/** Orchestrator: a flow. */
export interface Flow {
  key: string;
  bk_biz_id: number;
  app_name: string;
  flow_type: string;
  desired: string;
  status: string;
  step: string;
  attempt: number;
  message: string;
  waiting_on: string | null;
  operator: string;
  is_finished: boolean;
  finished_time: string | null;
  next_attempt_at: string | null;
  flow_id: number | null;
}

export interface FlowStep {
  step: string;
  status: string;
  attempt: number;
  message: string;
  api_calls: number;
  owner: string;
  started_at: string;
  finished_at: string | null;
}

/** Discovery: a page of a listing. */
export interface Listing<T> {
  total: number;
  page: number;
  page_size: number;
  items: T[];
}

/** Storage: a page of a list. */
export interface Page<T> {
  items: T[];
  next_cursor?: string;
}

/** Storage: a trace of the trace list. */
export interface TraceItem {
  trace_id: string;
  min_start_time: number;
  max_end_time: number;
  trace_duration: number;
  span_count: number;
  service_count: number;
  error: boolean;
  error_count: number;
  root_service: string | null;
  root_service_span_name: string | null;
  root_span_name: string;
  root_span_service: string;
  hierarchy_count?: number;
}

/** Storage: an agent event. */
export interface AgentEventItem {
  event_id: number;
  timestamp: number;
  event_type: string;
  data_id: number;
  bk_biz_id: number;
  task_id: number;
  status: number;
  ip: string;
  bk_cloud_id: number;
  bk_host_id: number;
  hostname: string;
  dimensions: Record<string, string>;
  metrics: Record<string, number>;
  body: unknown;
}
