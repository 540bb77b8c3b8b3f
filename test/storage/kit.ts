/** The storage service against the real broker: its topics under a unique prefix, the service on port 0. */
import type { ExecutionContext } from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { MetricBatch, Span, SpanBatch } from '../../services/common/records.ts';
import type { Store } from '../../services/common/store/index.ts';
import { topicPlan } from '../../services/common/topics.ts';
import { createStorage, type StorageService } from '../../services/storage/service.ts';
import { ADMIN_ENV } from '../common/auth-kit.ts';
import { brokers, testBus, uniqueName, waitFor, type BrokerKit } from '../helpers/kafka.ts';

export interface Running {
  service: StorageService;
  prefix: string;
  topics: { spans: string; replay: string; metrics: string; events: string; dlq: string };
  url: string;
  env: NodeJS.ProcessEnv;
}

/** Creates the storage topics under a unique prefix (deleted in teardown). */
export async function storageTopics(t: ExecutionContext, kit: BrokerKit, partitions = 2): Promise<{ prefix: string; topics: Running['topics'] }> {
  const prefix = uniqueName('stor');
  const plan = topicPlan(prefix).filter((p) => /\.(spans|spans\.replay|metrics|events|dlq)$/.test(p.topic)).map((p) => ({ ...p, numPartitions: partitions }));
  await kit.admin.ensureTopics(plan);
  t.teardown(() => kit.admin.deleteTopics(plan.map((p) => p.topic)));
  return { prefix, topics: { spans: `${prefix}.spans`, replay: `${prefix}.spans.replay`, metrics: `${prefix}.metrics`, events: `${prefix}.events`, dlq: `${prefix}.dlq` } };
}

/** Starts the storage service on the prefix and store; stopped in teardown; resolves once every consumer joined. */
export async function startStorage(t: ExecutionContext, kit: BrokerKit, store: Store, where: { prefix: string; topics: Running['topics'] }, env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const fullEnv: NodeJS.ProcessEnv = {
    KAFKA_BROKERS: brokers().join(','),
    TOPIC_PREFIX: where.prefix,
    STORAGE_HTTP_PORT: '0',
    STORAGE_SPANS_GROUP_ID: `${where.prefix}-spans`,
    STORAGE_REPLAY_GROUP_ID: `${where.prefix}-replay`,
    STORAGE_METRICS_GROUP_ID: `${where.prefix}-metrics`,
    STORAGE_EVENTS_GROUP_ID: `${where.prefix}-events`,
    STORAGE_OTLP_GROUP_ID: `${where.prefix}-otlp`,
    STORAGE_REMOTE_WRITE_GROUP_ID: `${where.prefix}-rw`,
    STORAGE_FLUSH_INTERVAL_MS: '50',
    STORAGE_STOP_DRAIN_MS: '1000',
    ...ADMIN_ENV,
    ...env,
  };
  const registry = createRegistry();
  const bus = testBus({ registry });
  const service = await createStorage({ env: fullEnv, logger: silentLogger, registry, store, bus, common: loadConfig(commonSpec, { env: fullEnv }) });
  t.teardown(async () => {
    await service.stop();
    for (const key of ['STORAGE_SPANS_GROUP_ID', 'STORAGE_REPLAY_GROUP_ID', 'STORAGE_METRICS_GROUP_ID', 'STORAGE_EVENTS_GROUP_ID', 'STORAGE_OTLP_GROUP_ID', 'STORAGE_REMOTE_WRITE_GROUP_ID']) {
      await kit.admin.deleteGroup(fullEnv[key] as string).catch(() => undefined);
    }
  });
  await service.start();
  await waitFor('every storage consumer to join its group', () => service.consumers.every((c) => c.joined()), 60_000);
  return { service, prefix: where.prefix, topics: where.topics, url: `http://127.0.0.1:${service.http.port()}`, env: fullEnv };
}

const spanCodec = codecFor('SpanBatch');
const metricCodec = codecFor('MetricBatch');

/** Produces spans keyed by trace id, one SpanBatch record per trace (as the collector does per partition). */
export async function produceSpans(kit: BrokerKit, topic: string, spans: readonly Span[]): Promise<void> {
  const byTrace = new Map<string, Span[]>();
  for (const s of spans) byTrace.set(s.trace_id, [...(byTrace.get(s.trace_id) ?? []), s]);
  await kit.produce(topic, [...byTrace].map(([trace, list]) => ({ key: trace, value: spanCodec.encode({ spans: list } satisfies SpanBatch) })));
}

export async function produceMetrics(kit: BrokerKit, topic: string, batches: readonly MetricBatch[]): Promise<void> {
  await kit.produce(topic, batches.map((b) => ({ key: `${b.bk_biz_id}:${b.data_id}:${b.target}`, value: metricCodec.encode(b) })));
}

/** A host's basereport-derived series as the agent would publish them (cpu, memory, load), one record per minute. */
export function hostMetrics(ip: string, hostname: string, minutes: number, endMs: number): MetricBatch {
  const records = Array.from({ length: minutes }, (_, i) => {
    const ts = Math.floor(endMs / 60_000) * 60_000 - (minutes - 1 - i) * 60_000;
    return { timestamp: ts, metrics: { cpu_usage_pct: 10 + i, mem_used_pct: 50 + i / 2, load1: i / 10 }, dimensions: { device_name: 'total' } };
  });
  return { bk_biz_id: 2, data_id: 1_001, target: `0:${ip}`, agent: { bk_cloud_id: 0, ip, hostname, bk_agent_id: `agent-${hostname}`, bk_host_id: 7 }, records };
}
