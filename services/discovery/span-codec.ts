/**
 * The reader discovery decodes spans with: the newest `SpanBatch` schema projected onto the fields
 * discovery reads. Avro schema resolution skips the other fields (events, links, status, ...) instead of
 * building objects for them, which roughly halves decoding time. Any registered writer version is
 * readable, exactly as with the full reader.
 */
import { readFileSync } from 'node:fs';
import { Codec, SchemaRegistry } from '../common/codec.ts';
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

/** A codec reading any registered SpanBatch version into the discovery projection. */
export function spanBatchReader(registry: SchemaRegistry = SchemaRegistry.load()): Codec<DiscoverySpanBatch> {
  const latest = registry.get('SpanBatch');
  const schema = JSON.parse(readFileSync(latest.file, 'utf8')) as { fields: [{ type: { items: RecordSchema } }] };
  const span = schema.fields[0].type.items;
  const keep = new Set<string>(PROJECTED_FIELDS);
  span.fields = span.fields.filter((f) => keep.has(f.name));
  registry.add(JSON.stringify(schema), PROJECTION_VERSION, `${latest.file} (discovery projection)`);
  return new Codec<DiscoverySpanBatch>('SpanBatch', { registry, version: PROJECTION_VERSION });
}
