/** Sample records of every schema, for tests and benchmarks. */
import type { AgentEvent, AgentInfo, FlowCommand, FlowStatus, MetricBatch, Span, SpanBatch } from '../../services/common/records.ts';

const T0 = 1_763_700_000_000_000; // µs, Nov 2025

export function sampleSpan(overrides: Partial<Span> = {}): Span {
  return {
    bk_biz_id: 2,
    app_name: 'shop',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    span_id: '00f067aa0ba902b7',
    parent_span_id: '',
    span_name: 'GET /api/orders/{id}',
    kind: 2,
    start_time: T0,
    end_time: T0 + 12_345,
    elapsed_time: 12_345,
    status: { code: 0, message: '' },
    trace_state: '',
    attributes: {
      'http.method': 'GET',
      'http.route': '/api/orders/{id}',
      'http.status_code': 200,
      'http.scheme': 'https',
      'net.peer.ip': '10.0.3.7',
      'net.peer.port': 51234,
      'http.request_content_length': 0,
      'sampling.ratio': 0.25,
      'feature.flags': ['a', 'b'],
    },
    resource: {
      'service.name': 'order-svc',
      'service.version': '1.4.2',
      'telemetry.sdk.name': 'opentelemetry',
      'telemetry.sdk.language': 'go',
      'telemetry.sdk.version': '1.28.0',
      'net.host.ip': '10.0.1.5',
      'net.host.name': 'order-7d9f',
      'net.host.port': 8080,
      'bk.instance.id': 'go:order-svc:order-7d9f:10.0.1.5:8080',
    },
    events: [{ name: 'cache.miss', timestamp: T0 + 100, attributes: { key: 'order:42' } }],
    links: [],
    client_ip: '10.0.1.5',
    ...overrides,
  };
}

export function sampleSpanBatch(n = 3): SpanBatch {
  return {
    spans: Array.from({ length: n }, (_, i) =>
      sampleSpan({ span_id: (i + 1).toString(16).padStart(16, '0'), parent_span_id: i === 0 ? '' : '0000000000000001', kind: i === 0 ? 2 : 3 }),
    ),
  };
}

const agent: AgentInfo = { bk_cloud_id: 0, ip: '10.0.1.5', hostname: 'order-7d9f', bk_agent_id: '0200000000525400', bk_host_id: 42 };

export function sampleMetricBatch(): MetricBatch {
  return {
    bk_biz_id: 2,
    data_id: 1001,
    target: '0:10.0.1.5',
    agent,
    records: [
      { timestamp: 1_763_700_000_000, metrics: { 'cpu.usage': 12.5, 'mem.used': 1_073_741_824 }, dimensions: { device_name: 'cpu-total' } },
      { timestamp: 1_763_700_060_000, metrics: { 'cpu.usage': 14.25 }, dimensions: {} },
    ],
  };
}

export function sampleAgentEvent(): AgentEvent {
  return {
    event_type: 'static',
    data_id: 1_100_010,
    bk_biz_id: 2,
    task_id: 0,
    timestamp: 1_763_700_000_000,
    agent,
    status: 0,
    dimensions: {},
    metrics: {},
    body: JSON.stringify({ net: { interface: [{ name: 'eth0', addrs: ['10.0.1.5/24'], mac: '52:54:00:12:34:56' }] } }),
  };
}

export function sampleFlowCommand(): FlowCommand {
  return {
    command_id: 'cmd-1',
    action: 'create_or_update',
    flow_type: 'tail_sampling',
    bk_biz_id: 2,
    app_name: 'shop',
    config: JSON.stringify({ tail_percentage: 10, tail_conditions: [] }),
    operator: 'admin',
    requested_at: 1_763_700_000_000,
  };
}

export function sampleFlowStatus(): FlowStatus {
  return {
    flow_key: '2:shop:tail_sampling',
    command_id: 'cmd-1',
    bk_biz_id: 2,
    app_name: 'shop',
    flow_type: 'tail_sampling',
    step: 'deploy_data_source',
    status: 'running',
    attempt: 1,
    message: '',
    at: 1_763_700_000_000,
  };
}

/** One sample of each record type, by schema name. */
export const SAMPLES = {
  SpanBatch: sampleSpanBatch,
  MetricBatch: sampleMetricBatch,
  AgentEvent: sampleAgentEvent,
  FlowCommand: sampleFlowCommand,
  FlowStatus: sampleFlowStatus,
} as const;
