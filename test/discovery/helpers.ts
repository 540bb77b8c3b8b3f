/**
 * Discovery test kit: spans built like the reference's fixtures, rule sets, spans run through the
 * production pipeline into a recording sink, a discovery service on a unique topic prefix (topics
 * deleted in teardown) over a given store, and store readers.
 */
import type { ExecutionContext } from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import type { Span, SpanBatch } from '../../services/common/records.ts';
import type { Store } from '../../services/common/store/index.ts';
import { topicPlan } from '../../services/common/topics.ts';
import { NodeKinds } from '../../services/discovery/dedupe.ts';
import type { CmdbLookup } from '../../services/discovery/discoverers/host.ts';
import type { NodeKindLookup } from '../../services/discovery/discoverers/relation.ts';
import { Ticket } from '../../services/discovery/flusher.ts';
import { SpanPipeline } from '../../services/discovery/pipeline.ts';
import { buildRuleSet, BUILTIN_RULES, type RuleRow, type RuleSet } from '../../services/discovery/rules.ts';
import { createDiscovery, type DiscoveryService } from '../../services/discovery/service.ts';
import { spanBatchView } from '../../services/discovery/span-view.ts';
import { brokers, testBus, uniqueName, type BrokerKit } from '../helpers/kafka.ts';
import { sampleSpan } from '../helpers/records.ts';
import { RecordingSink } from './recording-sink.ts';
import { ADMIN_ENV } from '../common/auth-kit.ts';

export const T0 = 1_763_700_000_000_000; // µs

const spanCodec = codecFor('SpanBatch');

export const defaultRules: RuleSet = buildRuleSet(BUILTIN_RULES);

export function rulesWith(extra: Partial<RuleRow>[]): RuleSet {
  return buildRuleSet([...BUILTIN_RULES, ...extra.map((r) => ({ bk_biz_id: 2, app_name: 'shop', type: 'category', category_id: null, topo_kind: null, predicate_key: null, instance_key: null, endpoint_key: null, sort: 0, ...r }))]);
}

let seq = 0;
/** A span with only the given attributes/resource (no sample noise). */
export function span(overrides: Partial<Omit<Span, 'attributes' | 'resource'>> & { attributes?: Span['attributes']; resource?: Span['resource'] } = {}): Span {
  seq++;
  return sampleSpan({
    trace_id: 'a'.repeat(32),
    span_id: seq.toString(16).padStart(16, '0'),
    parent_span_id: '',
    span_name: 'op',
    kind: 2,
    start_time: T0,
    end_time: T0 + 1_000,
    elapsed_time: 1_000,
    events: [],
    ...overrides,
    attributes: overrides.attributes ?? {},
    resource: overrides.resource ?? { 'service.name': 'order-svc' },
  });
}

export interface DiscoverOptions {
  rules?: RuleSet;
  cmdb?: CmdbLookup;
  kinds?: NodeKindLookup;
}

const spanViews = spanBatchView();

/**
 * What production discovers from the given spans: one SpanBatch record read by the span view, through
 * the pipeline (shapes, classification, the discoverers, the partition window) into a recording sink,
 * and the window settled afterwards (pairs met, traces' root endpoints emitted).
 */
export async function discover(spans: readonly Span[], options: DiscoverOptions = {}): Promise<RecordingSink> {
  const rules = options.rules ?? defaultRules;
  const cmdb = options.cmdb ?? { host: () => undefined };
  const kinds = options.kinds ?? { nodeKind: () => undefined };
  const sink = new RecordingSink();
  let clock = 0;
  const pipeline = new SpanPipeline({
    lookups: { ensure: () => undefined, rules: () => rules, cmdbVersion: 0, host: (biz, ip) => cmdb.host(biz, ip), nodeKind: (biz, app, key) => kinds.nodeKind(biz, app, key) },
    sink,
    nodeKinds: new NodeKinds(100),
    flusher: { ticket: () => new Ticket((settled) => settled()), nudge: () => {} },
    window: { ttlMs: 100, maxItems: 100_000 },
    touchIntervalMs: 60_000,
    maxShapes: 1_000,
    maxQueuedBatches: 2,
    logger: silentLogger,
    now: () => clock,
  });
  const raw = spanCodec.encode({ spans: [...spans] } satisfies SpanBatch);
  const result = await pipeline.handle({
    topic: 't',
    partition: 0,
    records: [{ topic: 't', partition: 0, offset: '0', key: null, value: spanViews.decode(raw), timestamp: 0, headers: {}, raw }],
    lastOffset: '0',
    heartbeat: async () => {},
    isStale: () => false,
  });
  await pipeline.idle();
  clock += 1_000;
  pipeline.expire();
  await result?.durable; // settled: processed, and every window entry paired or expired
  return sink;
}

export interface Running {
  service: DiscoveryService;
  prefix: string;
  topics: { spans: string; replay: string; events: string; dlq: string };
  registry: Registry;
  url(path: string): string;
}

/** Creates the topics of a fresh prefix (deleted in teardown). */
export async function discoveryTopics(t: ExecutionContext, kit: BrokerKit, partitions = 3): Promise<{ prefix: string; topics: Running['topics'] }> {
  const prefix = uniqueName('disc');
  const plan = topicPlan(prefix).filter((p) => /\.(spans|spans\.replay|events|dlq)$/.test(p.topic)).map((p) => ({ ...p, numPartitions: partitions }));
  await kit.admin.ensureTopics(plan);
  t.teardown(() => kit.admin.deleteTopics(plan.map((p) => p.topic)));
  return { prefix, topics: { spans: `${prefix}.spans`, replay: `${prefix}.spans.replay`, events: `${prefix}.events`, dlq: `${prefix}.dlq` } };
}

/** Fast settings for tests: short flush interval and pairing window, port 0, quick group sessions. */
export const TEST_ENV: NodeJS.ProcessEnv = {
  DISCOVERY_HTTP_PORT: '0',
  DISCOVERY_FLUSH_INTERVAL_MS: '100',
  DISCOVERY_PAIRING_TTL_MS: '300',
  DISCOVERY_STOP_DRAIN_MS: '1000',
  DISCOVERY_SWEEP_INTERVAL_MS: '3600000',
  // The admin token the query API accepts (test/common/auth-kit.ts).
  ...ADMIN_ENV,
};

/** Starts a discovery service on the given prefix and store; stopped in teardown (unless stopped before). */
export async function startDiscovery(
  t: ExecutionContext,
  kit: BrokerKit,
  store: Store,
  where: { prefix: string; topics: Running['topics'] },
  env: NodeJS.ProcessEnv = {},
): Promise<Running> {
  const fullEnv: NodeJS.ProcessEnv = {
    KAFKA_BROKERS: brokers().join(','),
    TOPIC_PREFIX: where.prefix,
    DISCOVERY_GROUP_ID: `${where.prefix}-g`,
    DISCOVERY_REPLAY_GROUP_ID: `${where.prefix}-replay`,
    DISCOVERY_EVENTS_GROUP_ID: `${where.prefix}-events`,
    ...TEST_ENV,
    ...env,
  };
  // The service's own bus on its registry, as in production (consumer lag and DLQ counts are the bus's).
  const registry = createRegistry();
  const bus = testBus({ registry });
  const service = await createDiscovery({ env: fullEnv, logger: silentLogger, registry, store, bus, common: loadConfig(commonSpec, { env: fullEnv }) });
  t.teardown(async () => {
    await service.stop();
    for (const g of [fullEnv.DISCOVERY_GROUP_ID, fullEnv.DISCOVERY_REPLAY_GROUP_ID, fullEnv.DISCOVERY_EVENTS_GROUP_ID]) await kit.admin.deleteGroup(g as string);
  });
  await service.start();
  return { service, prefix: where.prefix, topics: where.topics, registry, url: (path) => `http://127.0.0.1:${service.http.port()}${path}` };
}

/** Produces spans keyed by trace id (one SpanBatch record per trace, as the receiver does per partition). */
export async function produceSpans(kit: BrokerKit, topic: string, spans: readonly Span[]): Promise<void> {
  const byTrace = new Map<string, Span[]>();
  for (const s of spans) byTrace.set(s.trace_id, [...(byTrace.get(s.trace_id) ?? []), s]);
  await kit.produce(topic, [...byTrace].map(([trace, list]) => ({ key: trace, value: spanCodec.encode({ spans: list } satisfies SpanBatch) })));
}

/** Rows of a table without ids and bookkeeping columns, sorted, for comparisons. */
export async function tableRows(store: Store, table: string, drop: string[] = []): Promise<Record<string, unknown>[]> {
  const { rows } = await store.query<Record<string, unknown>>(`SELECT * FROM ${table}`);
  const cleaned = rows.map((r) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) {
      if (['id', 'created_at', 'updated_at', 'key_md5', ...drop].includes(k)) continue;
      out[k] = v instanceof Date ? v.toISOString() : v;
    }
    return out;
  });
  return cleaned.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

export async function count(store: Store, table: string): Promise<number> {
  const { rows } = await store.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]?.n ?? 0;
}
