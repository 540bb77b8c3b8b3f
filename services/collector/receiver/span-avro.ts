/**
 * A fast Avro writer for `Span` records, and SpanBatch assembly from spans written one at a time.
 *
 * Why not `codecFor('SpanBatch').encode`: avsc spends ~10 µs per span here (union dispatch of the typed
 * attribute maps), as much as decoding the OTLP request. This writer produces the same bytes in a
 * fraction of that, writes each span as soon as it is converted (so an oversized span is rejected
 * alone, and a batch's exact size is known before it is sent), and writes a group's shared resource map
 * once. `SpanBatch` is a record with one array field, and an Avro array is `count, items…, 0`, so a
 * batch is `header + long(count) + span bytes… + 0`: byte-identical to avsc's encoding of the batch.
 *
 * The writer follows `schemas/span.v1.avsc` field by field. {@link checkSpanWriter} compares its output
 * with avsc's for sample spans; the receiver runs it at start and refuses to run on a mismatch (e.g. a
 * new schema version this writer was not updated for), and the unit tests run it on many samples.
 */
import { AvroWriter, isAvroLong, longBytes, type Codec } from '../../common/avro/index.ts';
import type { AttributeScalar, AttributeValue, Attributes, Span, SpanBatch } from '../../common/records.ts';

/** Union branch indexes of an attribute value (schema order), as their zig-zag varint byte. */
const NULL = 0 << 1;
const BOOLEAN = 1 << 1;
const LONG = 2 << 1;
const DOUBLE = 3 << 1;
const STRING = 4 << 1;
const BYTES = 5 << 1;
const ARRAY = 6 << 1;

function writeScalar(w: AvroWriter, v: AttributeScalar): void {
  if (v === null) w.byte(NULL);
  else if (typeof v === 'string') {
    w.byte(STRING);
    w.string(v);
  } else if (typeof v === 'number') writeNumber(w, v);
  else if (typeof v === 'boolean') {
    w.byte(BOOLEAN);
    w.byte(v ? 1 : 0);
  } else {
    w.byte(BYTES);
    w.bytes(v);
  }
}

/**
 * A number as an attribute union value: a long when avsc round-trips it, a double when it is not a safe
 * integer — and a safe integer outside avsc's long range (2^53 − 1, below −2^52), which fits neither
 * branch of the schema's typed union (safe integers are longs), travels as its decimal string.
 */
export function writeNumber(w: AvroWriter, n: number): void {
  if (isAvroLong(n)) {
    w.byte(LONG);
    w.long(n);
  } else if (Number.isSafeInteger(n)) {
    w.byte(STRING);
    w.string(String(n));
  } else {
    w.byte(DOUBLE);
    w.double(n);
  }
}

function writeValue(w: AvroWriter, v: AttributeValue): void {
  if (Array.isArray(v)) {
    w.byte(ARRAY);
    if (v.length > 0) {
      w.long(v.length);
      for (const item of v) writeScalar(w, item);
    }
    w.byte(0);
  } else writeScalar(w, v);
}

export function writeAttributes(w: AvroWriter, attrs: Attributes): void {
  const keys = Object.keys(attrs);
  if (keys.length > 0) {
    w.long(keys.length);
    for (const key of keys) {
      w.string(key);
      writeValue(w, attrs[key] as AttributeValue);
    }
  }
  w.byte(0);
}

/**
 * Writes spans; remembers the bytes of the last resource map written, so the spans of one resource
 * group (which share the resource object) copy it instead of writing it again.
 */
export class SpanWriter {
  readonly #own = new AvroWriter();
  readonly #res = new AvroWriter(4 * 1024);
  #lastResource: Attributes | undefined;

  /** The span's Avro bytes: a view valid until the next call. */
  write(span: Span): Buffer {
    this.#own.reset();
    this.writeTo(span, this.#own);
    return this.#own.view();
  }

  /** Appends the span to `w`; returns the offset of its trace id's characters in `w.buf`. */
  writeTo(span: Span, w: AvroWriter): number {
    w.long(span.bk_biz_id);
    w.string(span.app_name);
    const traceAt = w.pos + 1; // a trace id (32 characters) has a one-byte length
    w.string(span.trace_id);
    w.string(span.span_id);
    w.string(span.parent_span_id);
    w.string(span.span_name);
    w.long(span.kind);
    w.long(span.start_time);
    w.long(span.end_time);
    w.long(span.elapsed_time);
    w.long(span.status.code);
    w.string(span.status.message);
    w.string(span.trace_state);
    writeAttributes(w, span.attributes);
    if (span.resource !== this.#lastResource) {
      this.#res.reset();
      writeAttributes(this.#res, span.resource);
      this.#lastResource = span.resource;
    }
    w.raw(this.#res.view());
    if (span.events.length > 0) {
      w.long(span.events.length);
      for (const e of span.events) {
        w.string(e.name);
        w.long(e.timestamp);
        writeAttributes(w, e.attributes);
      }
    }
    w.byte(0);
    if (span.links.length > 0) {
      w.long(span.links.length);
      for (const l of span.links) {
        w.string(l.trace_id);
        w.string(l.span_id);
        w.string(l.trace_state);
        writeAttributes(w, l.attributes);
      }
    }
    w.byte(0);
    w.string(span.client_ip);
    return traceAt;
  }
}

/**
 * One single-object-encoded SpanBatch from `count` spans whose Avro bytes are concatenated in `items`.
 * `header` is the 10-byte single-object header of the SpanBatch schema.
 */
export function assembleBatch(header: Buffer, count: number, items: Uint8Array): Buffer {
  if (count === 0) return Buffer.concat([header, Buffer.from([0])]);
  const countBytes = longBytes(count);
  const out = Buffer.allocUnsafe(header.length + countBytes.length + items.length + 1);
  header.copy(out, 0);
  countBytes.copy(out, header.length);
  out.set(items, header.length + countBytes.length);
  out[out.length - 1] = 0;
  return out;
}

/**
 * Checks that {@link SpanWriter} + {@link assembleBatch} produce exactly what `codec` (SpanBatch) does
 * for `samples`; returns a description of the first difference, or undefined when they agree.
 */
export function checkSpanWriter(codec: Codec<SpanBatch>, samples: readonly Span[]): string | undefined {
  const writer = new SpanWriter();
  const parts: Buffer[] = [];
  for (const span of samples) parts.push(Buffer.from(writer.write(span)));
  const ours = assembleBatch(codec.schema.header, samples.length, Buffer.concat(parts));
  let theirs: Buffer;
  try {
    theirs = codec.encode({ spans: [...samples] });
  } catch (err) {
    return `SpanBatch v${codec.schema.version}: avsc refuses the sample spans: ${(err as Error).message}`;
  }
  if (ours.equals(theirs)) return undefined;
  let i = 0;
  while (i < ours.length && ours[i] === theirs[i]) i++;
  return `SpanBatch v${codec.schema.version}: the span writer differs from avsc at byte ${i} (${ours.length} vs ${theirs.length} bytes)`;
}
