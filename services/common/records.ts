/**
 * TypeScript shapes of the Avro records in `schemas/` (latest versions). The schemas are the source of
 * truth; `test/common/codec.test.ts` checks a sample of each type against its schema.
 */

/** A scalar attribute value. Integers that are safe JS integers travel as Avro `long`, other numbers as `double`. */
export type AttributeScalar = null | boolean | number | string | Buffer;
/** A typed attribute value; nested OTLP key-value lists are flattened into dotted keys by the receiver. */
export type AttributeValue = AttributeScalar | AttributeScalar[];
/** A flat map with dotted keys (`http.method`, `service.name`). */
export type Attributes = Record<string, AttributeValue>;

export interface SpanStatus {
  /** 0 unset, 1 ok, 2 error. */
  code: number;
  message: string;
}

export interface SpanEvent {
  name: string;
  /** µs since the Unix epoch. */
  timestamp: number;
  attributes: Attributes;
}

export interface SpanLink {
  trace_id: string;
  span_id: string;
  trace_state: string;
  attributes: Attributes;
}

/** Span kinds (OTLP numbering, as stored by the reference). */
export const SpanKind = {
  UNSPECIFIED: 0,
  INTERNAL: 1,
  SERVER: 2,
  CLIENT: 3,
  PRODUCER: 4,
  CONSUMER: 5,
} as const;

export interface Span {
  bk_biz_id: number;
  app_name: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string;
  span_name: string;
  kind: number;
  /** µs since the Unix epoch. */
  start_time: number;
  /** µs since the Unix epoch. */
  end_time: number;
  /** µs. */
  elapsed_time: number;
  status: SpanStatus;
  trace_state: string;
  attributes: Attributes;
  resource: Attributes;
  events: SpanEvent[];
  links: SpanLink[];
  client_ip: string;
}

export interface SpanBatch {
  spans: Span[];
}

export interface AgentInfo {
  bk_cloud_id: number;
  ip: string;
  hostname: string;
  bk_agent_id: string;
  bk_host_id: number;
}

export interface MetricRecord {
  /** ms since the Unix epoch. */
  timestamp: number;
  metrics: Record<string, number>;
  dimensions: Record<string, string>;
}

export interface MetricBatch {
  bk_biz_id: number;
  data_id: number;
  target: string;
  agent: AgentInfo;
  records: MetricRecord[];
}

export interface AgentEvent {
  event_type: string;
  data_id: number;
  bk_biz_id: number;
  task_id: number;
  /** ms since the Unix epoch. */
  timestamp: number;
  agent: AgentInfo;
  status: number;
  dimensions: Record<string, string>;
  metrics: Record<string, number>;
  /** Task-specific document as JSON. */
  body: string;
}

export type FlowAction = 'create_or_update' | 'stop' | 'delete';
export type FlowType = 'tail_sampling' | 'virtual_metric';

export interface FlowCommand {
  command_id: string;
  action: FlowAction;
  flow_type: FlowType;
  bk_biz_id: number;
  app_name: string;
  /** JSON. */
  config: string;
  operator: string;
  /** ms since the Unix epoch. */
  requested_at: number;
}

export interface FlowStatus {
  flow_key: string;
  command_id: string;
  bk_biz_id: number;
  app_name: string;
  flow_type: FlowType;
  step: string;
  status: string;
  attempt: number;
  message: string;
  /** ms since the Unix epoch. */
  at: number;
}

/** Record type name → TS shape, for typed codecs. */
export interface RecordTypes {
  SpanBatch: SpanBatch;
  MetricBatch: MetricBatch;
  AgentEvent: AgentEvent;
  FlowCommand: FlowCommand;
  FlowStatus: FlowStatus;
}
export type RecordName = keyof RecordTypes;
