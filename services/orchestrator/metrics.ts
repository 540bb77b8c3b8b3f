/**
 * Every Prometheus series the orchestrator exports (README, Metrics), declared in one place and handed to
 * the parts that update them. The breakers' own series (`bkstream_breaker_state{breaker}`,
 * `bkstream_breaker_calls_total{breaker,result}`) come with each breaker (services/common/breaker.ts).
 */
import { counter, gauge, histogram, type Counter, type Gauge, type Histogram, type Registry } from '../common/metrics.ts';

export interface OrchestratorMetrics {
  /** Flow commands by source (kafka, http, grpc) and outcome (accepted, duplicate, stale, invalid, unknown_application). */
  commands: Counter<'source' | 'outcome'>;
  /** Flow status transitions by flow type and new status. */
  transitions: Counter<'flow_type' | 'status'>;
  /** Step attempts by step and outcome (the step log's status). */
  stepAttempts: Counter<'step' | 'outcome'>;
  /** Duration of step attempts. */
  stepSeconds: Histogram<'step'>;
  /** Flows this instance is running right now. */
  activeFlows: Gauge;
  /** flow.status records sent to Kafka. */
  statusPublished: Counter;
  /** BKData API calls by family, API and outcome (ok, business_error, unavailable, rejected). */
  bkdataCalls: Counter<'family' | 'api' | 'outcome'>;
  /** BKData API call latency by family. */
  bkdataCallSeconds: Histogram<'family'>;
  /** GSE routing API calls by api (add_streamto, …, query_route) and outcome (ok, invalid, not_found, conflict, unavailable, internal). */
  gseCalls: Counter<'api' | 'outcome'>;
  /** Records sent to <prefix>.gse.routes by kind (stream_to, route) and op (set, delete). */
  gseRoutesPublished: Counter<'kind' | 'op'>;
  /** Keys of <prefix>.gse.routes changed in the store and not yet published. */
  gseRoutesPending: Gauge;
}

export function orchestratorMetrics(registry: Registry): OrchestratorMetrics {
  return {
    commands: counter(registry, { name: 'bkstream_flow_commands_total', help: 'Flow commands by source and outcome (accepted, duplicate, stale, invalid, unknown_application)', labelNames: ['source', 'outcome'] }),
    transitions: counter(registry, { name: 'bkstream_flow_transitions_total', help: 'Flow status transitions by flow type and new status', labelNames: ['flow_type', 'status'] }),
    stepAttempts: counter(registry, { name: 'bkstream_flow_step_attempts_total', help: 'Step attempts by step and outcome', labelNames: ['step', 'outcome'] }),
    stepSeconds: histogram(registry, { name: 'bkstream_flow_step_seconds', help: 'Duration of step attempts', labelNames: ['step'] }),
    activeFlows: gauge(registry, { name: 'bkstream_flow_active', help: 'Flows this instance is running right now' }),
    statusPublished: counter(registry, { name: 'bkstream_flow_status_published_total', help: 'flow.status records sent to Kafka' }),
    bkdataCalls: counter(registry, {
      name: 'bkstream_bkdata_calls_total',
      help: 'BKData API calls by family, API and outcome (ok, business_error, unavailable, rejected)',
      labelNames: ['family', 'api', 'outcome'],
    }),
    bkdataCallSeconds: histogram(registry, { name: 'bkstream_bkdata_call_seconds', help: 'BKData API call latency by family', labelNames: ['family'] }),
    gseCalls: counter(registry, { name: 'bkstream_gse_api_calls_total', help: 'GSE routing API calls by api and outcome (ok, invalid, not_found, conflict, unavailable, internal)', labelNames: ['api', 'outcome'] }),
    gseRoutesPublished: counter(registry, { name: 'bkstream_gse_routes_published_total', help: 'Records sent to the GSE routes topic by kind (stream_to, route) and op (set, delete)', labelNames: ['kind', 'op'] }),
    gseRoutesPending: gauge(registry, { name: 'bkstream_gse_routes_pending', help: 'GSE routes topic keys changed in the store and not yet published' }),
  };
}
