/**
 * The discovery projection of spans decoded by avsc: the newest `SpanBatch` schema reduced to the fields
 * discovery reads (fields.ts `SPAN_FIELDS`). Avro schema resolution skips the other fields (events,
 * links, status, ...) instead of building objects for them. The span consumers read records with
 * span-view.ts instead; {@link spanBatchReader} is the slow path the view is proven against (tests) and
 * the benchmark's detail line.
 */
import { readFileSync } from 'node:fs';
import { Codec, parseSchema, SchemaRegistry, type AvroType } from '../common/avro/index.ts';
import { SPAN_FIELD_NAMES, type DiscoverySpan } from './fields.ts';

export interface DiscoverySpanBatch {
  spans: DiscoverySpan[];
}

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
  const keep = new Set<string>(SPAN_FIELD_NAMES);
  span.fields = span.fields.filter((f) => keep.has(f.name));
  return JSON.stringify(schema);
}

/** The projection as an avsc type (a SpanBatch whose spans carry only discovery's fields). */
export function spanProjection(registry: SchemaRegistry): AvroType {
  return parseSchema(projectionSchema(registry));
}

/** A codec reading any registered SpanBatch version into the discovery projection (adds the projection to `registry`). */
export function spanBatchReader(registry: SchemaRegistry = SchemaRegistry.load()): Codec<DiscoverySpanBatch> {
  registry.add(projectionSchema(registry), PROJECTION_VERSION, `${registry.get('SpanBatch').file} (discovery projection)`);
  return new Codec<DiscoverySpanBatch>('SpanBatch', { registry, version: PROJECTION_VERSION });
}
