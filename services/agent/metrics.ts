/**
 * The agent's Prometheus series (served on the admin port's `/metrics`, beside the process metrics every
 * service has). The reference has no Prometheus endpoint (§A2.7); these cover what its logs, heartbeat
 * counters and libgse counters told.
 */
import { counter, gauge, histogram, type Counter, type Gauge, type Histogram, type Registry } from '../common/metrics.ts';

export interface AgentMetrics {
  /** Runs by task type and outcome: ok, error, timeout, cancelled, skipped. */
  readonly taskRuns: Counter<'task_type' | 'status'>;
  readonly taskRunSeconds: Histogram<'task_type'>;
  /** Configured tasks by type (all schedulers). */
  readonly tasks: Gauge<'task_type'>;
  /** Records acknowledged by Kafka, by topic kind (events, metrics). */
  readonly published: Counter<'kind'>;
  /** Records written to the on-disk spool (every record passes through it). */
  readonly spooled: Counter<'kind'>;
  /** Outputs not published, by reason (spool_full, spool_write, status_not_ok, bad_status, no_dataid, no_records, invalid). */
  readonly dropped: Counter<'reason'>;
  readonly spoolBytes: Gauge;
  /** Records in the spool not yet acknowledged by Kafka. */
  readonly spoolRecords: Gauge;
  /** Outputs waiting in the channel between tasks and the publisher. */
  readonly queueDepth: Gauge;
  /** 1 while the last send to Kafka succeeded, 0 while sends fail. */
  readonly kafkaUp: Gauge;
  /** Child task files by status of the last load (loaded, skipped, duplicate). */
  readonly childFiles: Gauge<'status'>;
  /** Configuration reloads by result (ok, failed). */
  readonly reloads: Counter<'result'>;
}

export function agentMetrics(registry: Registry): AgentMetrics {
  return {
    taskRuns: counter(registry, { name: 'bkstream_task_run_total', help: 'Agent task runs by task type and outcome (ok, error, timeout, cancelled, skipped)', labelNames: ['task_type', 'status'] }),
    taskRunSeconds: histogram(registry, { name: 'bkstream_task_run_seconds', help: 'Duration of agent task runs', labelNames: ['task_type'], buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120] }),
    tasks: gauge(registry, { name: 'bkstream_agent_tasks', help: 'Configured agent tasks by type', labelNames: ['task_type'] }),
    published: counter(registry, { name: 'bkstream_agent_records_published_total', help: 'Records acknowledged by Kafka, by kind (events, metrics)', labelNames: ['kind'] }),
    spooled: counter(registry, { name: 'bkstream_agent_records_spooled_total', help: 'Records written to the on-disk spool (every record passes through it before Kafka)', labelNames: ['kind'] }),
    dropped: counter(registry, { name: 'bkstream_agent_records_dropped_total', help: 'Task outputs not published, by reason', labelNames: ['reason'] }),
    spoolBytes: gauge(registry, { name: 'bkstream_agent_spool_bytes', help: 'Bytes of the on-disk spool' }),
    spoolRecords: gauge(registry, { name: 'bkstream_agent_spool_records', help: 'Records in the spool not yet acknowledged by Kafka' }),
    queueDepth: gauge(registry, { name: 'bkstream_agent_queue_depth', help: 'Task outputs waiting in the channel to the publisher' }),
    kafkaUp: gauge(registry, { name: 'bkstream_agent_kafka_up', help: '1 while sends to Kafka succeed, 0 while they fail' }),
    childFiles: gauge(registry, { name: 'bkstream_agent_child_configs', help: 'Child task files of the last configuration load, by status (loaded, skipped, duplicate)', labelNames: ['status'] }),
    reloads: counter(registry, { name: 'bkstream_agent_reloads_total', help: 'Configuration reloads by result (ok, failed)', labelNames: ['result'] }),
  };
}
