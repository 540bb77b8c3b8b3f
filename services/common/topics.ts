/**
 * The topics of the README's "Topics and records" table, their default partitions and retention, and config to override them.
 * Names are `${TOPIC_PREFIX}.<name>`.
 */
import { int, type Config, type Field, type Spec } from './config.ts';

export interface TopicDef {
  /** Name without the prefix, e.g. `spans`. */
  readonly name: string;
  readonly partitions: number;
  readonly retentionHours: number;
  readonly doc: string;
  /** `compact`: a table kept on a topic (key → latest value); unset: the broker's default (delete by retention). */
  readonly cleanupPolicy?: 'compact';
}

export const TOPICS = {
  spans: { name: 'spans', partitions: 12, retentionHours: 72, doc: 'Avro SpanBatch, keyed by trace id' },
  spansReplay: { name: 'spans.replay', partitions: 12, retentionHours: 24, doc: 'replayed SpanBatch (backfill)' },
  spansSampled: { name: 'spans.sampled', partitions: 12, retentionHours: 72, doc: 'Avro SpanBatch of the spans the sampler kept, keyed by trace id' },
  metrics: { name: 'metrics', partitions: 6, retentionHours: 24, doc: 'Avro MetricBatch, key bk_biz_id:dataid:target' },
  events: { name: 'events', partitions: 6, retentionHours: 72, doc: 'Avro AgentEvent, key bk_biz_id:dataid' },
  flowCommands: { name: 'flow.commands', partitions: 3, retentionHours: 168, doc: 'Avro FlowCommand, key bk_biz_id:app_name:flow_type' },
  flowStatus: { name: 'flow.status', partitions: 3, retentionHours: 168, doc: 'Avro FlowStatus, same key' },
  dlq: { name: 'dlq', partitions: 3, retentionHours: 336, doc: 'dead letters: original key and bytes, error headers' },
  gseRoutes: { name: 'gse.routes', partitions: 1, retentionHours: 168, cleanupPolicy: 'compact', doc: 'GSE receivers and data id routes (compacted): key stream_to:<id> or route:<channel_id>, JSON value, tombstone on delete' },
} as const satisfies Record<string, TopicDef>;

export type TopicKey = keyof typeof TOPICS;

type TopicsSpec = { [K in TopicKey as `${K}Partitions` | `${K}RetentionHours`]: Field<number> };

/** `TOPIC_<NAME>_PARTITIONS` and `TOPIC_<NAME>_RETENTION_HOURS` for every topic. */
function topicSpec(): TopicsSpec {
  const spec: Spec = {};
  for (const [key, def] of Object.entries(TOPICS)) {
    const env = def.name.toUpperCase().replace(/\./g, '_');
    spec[`${key}Partitions`] = int({ env: `TOPIC_${env}_PARTITIONS`, default: def.partitions, min: 1, max: 1000, doc: `partitions of ${def.name}` });
    spec[`${key}RetentionHours`] = int({ env: `TOPIC_${env}_RETENTION_HOURS`, default: def.retentionHours, min: 1, doc: `retention of ${def.name}, hours` });
  }
  return spec as TopicsSpec;
}

export const topicsSpec = topicSpec();
export type TopicsConfig = Config<typeof topicsSpec>;

/** The full topic name. */
export function topicName(prefix: string, key: TopicKey): string {
  return `${prefix}.${TOPICS[key].name}`;
}

export interface TopicPlan {
  topic: string;
  numPartitions: number;
  retentionMs: number;
  /** Set only for compacted topics (`cleanup.policy=compact`). */
  cleanupPolicy?: 'compact';
}

/** What `npm run topics` creates: every topic with configured partitions and retention. */
export function topicPlan(prefix: string, config?: Record<string, unknown>): TopicPlan[] {
  return (Object.keys(TOPICS) as TopicKey[]).map((key) => {
    const def: TopicDef = TOPICS[key];
    const partitions = config?.[`${key}Partitions`];
    const hours = config?.[`${key}RetentionHours`];
    return {
      topic: topicName(prefix, key),
      numPartitions: typeof partitions === 'number' ? partitions : def.partitions,
      retentionMs: (typeof hours === 'number' ? hours : def.retentionHours) * 3_600_000,
      ...(def.cleanupPolicy ? { cleanupPolicy: def.cleanupPolicy } : {}),
    };
  });
}
