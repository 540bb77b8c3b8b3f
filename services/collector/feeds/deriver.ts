/**
 * RED metrics derived from spans, as bk-collector's `traces_deriver/duration` makes them with the config
 * the reference's APM platform generates, and as its metrics converter writes them (the collector README,
 * "Feeds"). The virtual-metric clean reads `metrics.bk_apm_duration`, `target`, `timestamp` and the
 * `dimension` keys.
 *
 * The rules (bk-monitor `apm/core/platform_config.py` `list_metric_config` over the built-in
 * `ApmMetricDimension` rows, `apm/models/config.py`): per span kind (server, client, producer, consumer) and
 * predicate key, the dimensions to take. Matching (bkmonitor-datalink `processor/tracesderiver`
 * `dimension_matcher.go`, `config.go`): a kind's predicate keys are tried in descending string order; an
 * `attributes.*` key matches when the attribute's string form is not empty, the empty key always matches
 * (it sorts last); the first match gives its rule's span attributes (only those present) and span fields
 * (`span_name`, `kind`, `status.code` as decimal text). Then every `resource.*` dimension of any rule that
 * the resource has, and `app_name` (the token's application). Unspecified and internal spans derive nothing.
 *
 * The data point: the span's duration in **ns** (`CalcSpanDuration`: end − start, 0 when it ends before it
 * starts), at the span's end time. The converter (`converter/metrics.go`) writes it as
 * `{metrics: {bk_apm_duration: ns}, target, timestamp: end in ms, dimension}`, the dimension keys with dots
 * turned into underscores through its fixed table — which maps `http.flavor` to **`http_favor`** (sic, so
 * the clean's `http_flavor` stays empty, as in the reference) — plus `scope_name: ""` (the derived
 * metrics' instrumentation scope has no name); `target` is the `target` dimension or the collector's
 * identity (`bk-collector` where it has no host identity).
 */
import type { FeedSpan } from './reference-span.ts';
import { attributeValueString, spanAttribute, valueString } from './reference-span.ts';
import { APDEX_ATTRIBUTE } from './apdex.ts';

/** The metric the `duration` operation derives. */
export const DURATION_METRIC = 'bk_apm_duration';
/** `define.Identity()` without a host identity. */
export const DEFAULT_TARGET = 'bk-collector';

/** One rule of the deriver's config: the span kind (`SPAN_KIND_*`), predicate key and dimensions. */
export interface DeriverRule {
  kind: string;
  predicateKey: string;
  dimensions: readonly string[];
}

const COMMON = [
  'resource.bk.instance.id', 'span_name', 'kind', 'status.code', 'resource.service.name', 'resource.service.version',
  'resource.telemetry.sdk.name', 'resource.telemetry.sdk.version', 'resource.telemetry.sdk.language', 'attributes.peer.service',
  'attributes.apdex_type',
];
const HTTP = 'attributes.http.method';
const RPC = 'attributes.rpc.system';
const DB = 'attributes.db.system';
const MESSAGING = 'attributes.messaging.system';
const a = (...keys: string[]): string[] => keys.map((k) => `attributes.${k}`);
const RPC_DIMS = a('rpc.method', 'rpc.service', 'rpc.system', 'rpc.grpc.status_code');
const PEER = a('net.peer.name', 'net.peer.ip', 'net.peer.port');

/** The platform's rules (built-in `ApmMetricDimension` rows; tRPC and platform extras off, their defaults). */
export const PLATFORM_RULES: readonly DeriverRule[] = [
  { kind: 'SPAN_KIND_SERVER', predicateKey: '', dimensions: COMMON },
  { kind: 'SPAN_KIND_SERVER', predicateKey: HTTP, dimensions: [...COMMON, ...a('http.server_name', 'http.method', 'http.scheme', 'http.flavor', 'http.status_code')] },
  { kind: 'SPAN_KIND_SERVER', predicateKey: RPC, dimensions: [...COMMON, ...RPC_DIMS] },
  { kind: 'SPAN_KIND_CLIENT', predicateKey: '', dimensions: COMMON },
  { kind: 'SPAN_KIND_CLIENT', predicateKey: HTTP, dimensions: [...COMMON, ...a('http.method', 'http.status_code')] },
  { kind: 'SPAN_KIND_CLIENT', predicateKey: RPC, dimensions: [...COMMON, ...RPC_DIMS] },
  { kind: 'SPAN_KIND_CLIENT', predicateKey: DB, dimensions: [...COMMON, ...a('db.name', 'db.operation', 'db.system'), ...PEER] },
  { kind: 'SPAN_KIND_PRODUCER', predicateKey: '', dimensions: COMMON },
  {
    kind: 'SPAN_KIND_PRODUCER',
    predicateKey: MESSAGING,
    dimensions: [...COMMON, ...a('messaging.system', 'messaging.destination', 'messaging.destination_kind'), ...PEER, ...a('celery.action', 'celery.task_name')],
  },
  { kind: 'SPAN_KIND_CONSUMER', predicateKey: '', dimensions: COMMON },
  { kind: 'SPAN_KIND_CONSUMER', predicateKey: MESSAGING, dimensions: [...COMMON, ...PEER, ...a('messaging.system', 'celery.state', 'celery.action')] },
];

/** ptrace `SpanKind.String()`. */
const KIND_NAMES = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];

/** The converter's fixed key table (`utils.dotToUnderline`), typo included; other keys: dots → underscores. */
const DOT_TO_UNDERLINE: Readonly<Record<string, string>> = {
  'service.name': 'service_name',
  'service.version': 'service_version',
  'status.code': 'status_code',
  'bk.instance.id': 'bk_instance_id',
  'telemetry.sdk.name': 'telemetry_sdk_name',
  'telemetry.sdk.version': 'telemetry_sdk_version',
  'telemetry.sdk.language': 'telemetry_sdk_language',
  'db.name': 'db_name',
  'db.operation': 'db_operation',
  'db.system': 'db_system',
  'net.host.port': 'net_host_port',
  'net.host.name': 'net_host_name',
  'net.peer.name': 'net_peer_name',
  'net.peer.ip': 'net_peer_ip',
  'net.peer.port': 'net_peer_port',
  'http.scheme': 'http_scheme',
  'http.method': 'http_method',
  'http.flavor': 'http_favor',
  'http.status_code': 'http_status_code',
  'http.server_name': 'http_server_name',
  'rpc.method': 'rpc_method',
  'rpc.service': 'rpc_service',
  'rpc.system': 'rpc_system',
  'rpc.grpc.status_code': 'rpc_grpc_status_code',
  'peer.service': 'peer_service',
  'messaging.system': 'messaging_system',
  'messaging.destination': 'messaging_destination',
  'messaging.destination_kind': 'messaging_destination_kind',
  'celery.action': 'celery_action',
  'celery.state': 'celery_state',
  'celery.task_name': 'celery_task_name',
};

export function dimensionKey(key: string): string {
  return DOT_TO_UNDERLINE[key] ?? key.replaceAll('.', '_');
}

/** One item of the metrics message's `data`. */
export interface DerivedMetric {
  metrics: Record<string, number>;
  target: string;
  /** Span end, ms. */
  timestamp: number;
  dimension: Record<string, string>;
}

interface KindRules {
  /** Predicate keys, descending. */
  predicateKeys: string[];
  attributes: Map<string, string[]>;
  methods: Map<string, string[]>;
}

const ATTRIBUTES = 'attributes.';
const RESOURCE = 'resource.';

function addUnique(list: string[], v: string): void {
  if (!list.includes(v)) list.push(v);
}

/** The `duration` operation of the traces deriver, with the converter's output shape. */
export class DurationDeriver {
  readonly #kinds = new Map<string, KindRules>();
  readonly #resourceKeys: string[] = [];
  readonly #target: string;

  constructor(options: { rules?: readonly DeriverRule[]; target?: string } = {}) {
    this.#target = options.target ?? DEFAULT_TARGET;
    for (const rule of options.rules ?? PLATFORM_RULES) {
      let k = this.#kinds.get(rule.kind);
      if (!k) {
        k = { predicateKeys: [], attributes: new Map(), methods: new Map() };
        this.#kinds.set(rule.kind, k);
      }
      addUnique(k.predicateKeys, rule.predicateKey);
      k.predicateKeys.sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
      const attrs = k.attributes.get(rule.predicateKey) ?? [];
      const methods = k.methods.get(rule.predicateKey) ?? [];
      for (const dim of rule.dimensions) {
        if (dim === '') continue;
        if (dim.startsWith(RESOURCE)) addUnique(this.#resourceKeys, dim.slice(RESOURCE.length));
        else if (dim.startsWith(ATTRIBUTES)) addUnique(attrs, dim.slice(ATTRIBUTES.length));
        else addUnique(methods, dim);
      }
      k.attributes.set(rule.predicateKey, attrs);
      k.methods.set(rule.predicateKey, methods);
    }
  }

  /** The metric of one span, or undefined when no rule matches it. */
  derive(s: FeedSpan): DerivedMetric | undefined {
    const kind = s.span.kind ?? 0;
    const rules = this.#kinds.get(KIND_NAMES[kind] ?? '') ?? this.#kinds.get('');
    if (!rules) return undefined;
    const attr = (key: string): string | undefined => {
      if (key === APDEX_ATTRIBUTE && s.apdex !== undefined) return s.apdex;
      const v = spanAttribute(s.span, key);
      return v === undefined ? undefined : valueString(v);
    };
    const dims = new Map<string, string>();
    let found = false;
    for (const pk of rules.predicateKeys) {
      if (pk.startsWith(ATTRIBUTES)) {
        const v = attr(pk.slice(ATTRIBUTES.length));
        if (v === undefined || v === '') continue;
      } else if (pk !== '') continue; // resource or span-field predicates are not supported by the reference either
      found = true;
      for (const key of rules.attributes.get(pk) ?? []) {
        const v = attr(key);
        if (v !== undefined) dims.set(key, v);
      }
      for (const key of rules.methods.get(pk) ?? []) dims.set(key, this.#method(s, key));
      break;
    }
    if (!found) return undefined;
    const resource = s.group.resource;
    for (const key of this.#resourceKeys) {
      const v = resource[key];
      if (v !== undefined) dims.set(key, attributeValueString(v));
    }
    dims.set('app_name', s.group.appName);
    const dimension: Record<string, string> = {};
    for (const [k, v] of dims) dimension[dimensionKey(k)] = v;
    dimension.scope_name = '';
    return {
      metrics: { [DURATION_METRIC]: s.times.durationNs },
      target: dimension.target ?? this.#target,
      timestamp: Math.floor(s.times.endUs / 1000),
      dimension,
    };
  }

  #method(s: FeedSpan, key: string): string {
    switch (key) {
      case 'span_name':
        return s.span.name ?? '';
      case 'kind':
        return String(s.span.kind ?? 0);
      case 'status.code':
        return String(s.span.status?.code ?? 0);
      case 'span_id':
      case 'trace_id': {
        const b = key === 'span_id' ? s.span.spanId : s.span.traceId;
        return b ? Buffer.from(b).toString('hex') : '';
      }
      default:
        return '';
    }
  }
}
