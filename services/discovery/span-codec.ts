/**
 * The discovery projection of spans: the newest `SpanBatch` schema reduced to the fields discovery
 * reads. Avro schema resolution skips the other fields (events, links, status, ...) instead of building
 * objects for them. The span consumers read records with span-view.ts and decode single spans into this
 * projection; {@link spanBatchReader} decodes whole records into it (benchmark detail, tests).
 */
import { readFileSync } from 'node:fs';
import { Codec, parseSchema, SchemaRegistry, type AvroType } from '../common/avro/index.ts';
import type { DiscoverySpan } from './fields.ts';

export interface DiscoverySpanBatch {
  spans: DiscoverySpan[];
}

/** The span fields discovery reads (keep in step with {@link DiscoverySpan}). */
export const PROJECTED_FIELDS: readonly (keyof DiscoverySpan)[] = [
  'bk_biz_id', 'app_name', 'trace_id', 'span_id', 'parent_span_id', 'span_name', 'kind', 'start_time', 'end_time', 'elapsed_time', 'attributes', 'resource',
];

/** A version number no schema file uses, so the projection never shadows a real writer version. */
const PROJECTION_VERSION = 1_000_000;

interface RecordSchema {
  fields: { name: string; type: unknown }[];
}

/** The projection's schema text, from the newest SpanBatch version of `registry`. */
function projectionSchema(registry: SchemaRegistry): string {
  const latest = registry.get('SpanBatch');
  const schema = JSON.parse(readFileSync(latest.file, 'utf8')) as { fields: [{ type: { items: RecordSchema } }] };
  const span = schema.fields[0].type.items;
  const keep = new Set<string>(PROJECTED_FIELDS);
  span.fields = span.fields.filter((f) => keep.has(f.name));
  return JSON.stringify(schema);
}

/** The projection as an avsc type (a SpanBatch whose spans carry only {@link PROJECTED_FIELDS}). */
export function spanProjection(registry: SchemaRegistry): AvroType {
  return parseSchema(projectionSchema(registry));
}

/** A codec reading any registered SpanBatch version into the discovery projection (adds the projection to `registry`). */
export function spanBatchReader(registry: SchemaRegistry = SchemaRegistry.load()): Codec<DiscoverySpanBatch> {
  registry.add(projectionSchema(registry), PROJECTION_VERSION, `${registry.get('SpanBatch').file} (discovery projection)`);
  return new Codec<DiscoverySpanBatch>('SpanBatch', { registry, version: PROJECTION_VERSION });
}
