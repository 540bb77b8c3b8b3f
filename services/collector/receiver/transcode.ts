/**
 * The fast path for binary OTLP: ExportTraceServiceRequest bytes → Avro span records, without building
 * the intermediate objects (protobufjs messages, Long objects, span records). Strings are copied as the
 * UTF-8 bytes they already are, ids are hex-encoded straight into the output, a group's resource map is
 * written once and copied into each of its spans.
 *
 * It produces what the object path produces (`decodeRequest` → `convertSpan` → `SpanWriter`): the same
 * records, field by field, once decoded (tests compare both on SDK-generated and hand-made requests).
 * Two differences in bytes only: a duplicated attribute key is written twice (the decoder keeps the last,
 * as the object path does), and entries keep their wire order.
 *
 * Field numbers come from the official .proto files through protobufjs reflection, not from constants
 * copied here. Malformed input (truncated, lengths past the end, bad wire types) throws
 * {@link ValidationError} before anything of the request is used.
 */
import { ValidationError } from '../../common/errors.ts';
import type { Attributes } from '../../common/records.ts';
import { MAX_FLATTEN_DEPTH, plainValue } from './attributes.ts';
import { filterResource } from './convert.ts';
import { otlpType, type AnyValue, type KeyValue } from '../../common/otlp/index.ts';
import { AVRO_LONG_MAX, AvroWriter, isAvroLong } from '../../common/avro/index.ts';
import { writeAttributes, writeNumber } from './span-avro.ts';

// ---------------------------------------------------------------------------------------------------------
// Field numbers, from the official protos.

function ids<const K extends string>(typeName: string, fields: readonly K[]): Record<K, number> {
  const type = otlpType(typeName);
  const out = {} as Record<K, number>;
  for (const f of fields) {
    const field = type.fields[f];
    if (!field) throw new Error(`${typeName} has no field ${f}`);
    out[f] = field.id;
  }
  return out;
}

const REQ = ids('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest', ['resourceSpans']);
const RS = ids('opentelemetry.proto.trace.v1.ResourceSpans', ['resource', 'scopeSpans']);
const SS = ids('opentelemetry.proto.trace.v1.ScopeSpans', ['spans']);
const SPAN = ids('opentelemetry.proto.trace.v1.Span', [
  'traceId', 'spanId', 'traceState', 'parentSpanId', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano', 'attributes', 'events', 'links', 'status',
]);
const EVENT = ids('opentelemetry.proto.trace.v1.Span.Event', ['timeUnixNano', 'name', 'attributes']);
const LINK = ids('opentelemetry.proto.trace.v1.Span.Link', ['traceId', 'spanId', 'traceState', 'attributes']);
const STATUS = ids('opentelemetry.proto.trace.v1.Status', ['message', 'code']);
const KV = ids('opentelemetry.proto.common.v1.KeyValue', ['key', 'value']);
const ANY = ids('opentelemetry.proto.common.v1.AnyValue', ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue']);
const LIST = ids('opentelemetry.proto.common.v1.ArrayValue', ['values']);
const KVLIST = ids('opentelemetry.proto.common.v1.KeyValueList', ['values']);

const ResourceType = otlpType('opentelemetry.proto.resource.v1.Resource');
const AnyValueType = otlpType('opentelemetry.proto.common.v1.AnyValue');

// Wire types
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;

// Avro union branches of an attribute value, as zig-zag bytes (see span-avro.ts)
const B_NULL = 0;
const B_BOOLEAN = 2;
const B_STRING = 8;
const B_BYTES = 10;
const B_ARRAY = 12;

function malformed(what: string): never {
  throw new ValidationError(`malformed OTLP protobuf: ${what}`);
}

// ---------------------------------------------------------------------------------------------------------
// Wire reading

/** Cursor over a protobuf message `buf[pos, end)`. Varints of 64 bits land in `lo` / `hi`. */
class Reader {
  buf: Buffer;
  pos: number;
  end: number;
  lo = 0;
  hi = 0;

  constructor(buf: Buffer, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** Points the reader at `buf[pos, end)`; returns it (callers save and restore `pos`/`end` around nested reads). */
  at(pos: number, end: number): this {
    this.pos = pos;
    this.end = end;
    return this;
  }

  /** A varint's low 32 bits (unsigned); the rest of a 10-byte varint is skipped. */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    let shift = 0;
    for (;;) {
      if (pos >= this.end) malformed('truncated varint');
      const b = buf[pos++] as number;
      if (shift < 32) value |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7;
      if (shift >= 70) malformed('varint longer than 10 bytes');
    }
    this.pos = pos;
    return value >>> 0;
  }

  /** A 64-bit varint into `lo` / `hi` (two's complement halves, unsigned). */
  varint64(): void {
    const buf = this.buf;
    let pos = this.pos;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (;;) {
      if (pos >= this.end) malformed('truncated varint');
      const b = buf[pos++] as number;
      const bits = b & 0x7f;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= bits << 28;
        hi |= bits >>> 4;
      } else if (shift < 64) hi |= bits << (shift - 32);
      if (b < 0x80) break;
      shift += 7;
      if (shift >= 70) malformed('varint longer than 10 bytes');
    }
    this.pos = pos;
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  fixed64(): void {
    if (this.pos + 8 > this.end) malformed('truncated fixed64');
    this.lo = this.buf.readUInt32LE(this.pos);
    this.hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
  }

  /** Reads a length prefix; returns the end of the field's bytes (which start at `pos`). */
  len(): number {
    const n = this.uint32();
    const end = this.pos + n;
    if (end > this.end) malformed(`length ${n} runs past the end of its message`);
    return end;
  }

  skip(wireType: number, depth = 0): void {
    switch (wireType) {
      case VARINT:
        this.uint32();
        return;
      case I64:
        if (this.pos + 8 > this.end) malformed('truncated fixed64');
        this.pos += 8;
        return;
      case LEN:
        this.pos = this.len();
        return;
      case I32:
        if (this.pos + 4 > this.end) malformed('truncated fixed32');
        this.pos += 4;
        return;
      case SGROUP:
        if (depth > 32) malformed('groups nested too deeply');
        for (;;) {
          const tag = this.uint32();
          if ((tag & 7) === EGROUP) return;
          this.skip(tag & 7, depth + 1);
        }
      default:
        malformed(`invalid wire type ${wireType} at offset ${this.pos}`);
    }
  }
}

/** `hi`/`lo` (unsigned 64-bit ns) → µs, exactly; -1 when past what an Avro long holds. */
function micros(lo: number, hi: number): number {
  const us = hi * 4_294_967 + Math.floor((hi * 296 + lo) / 1000);
  return us <= AVRO_LONG_MAX ? us : -1;
}

/** A signed 64-bit varint as a JS number when an Avro long holds it, else its decimal string. */
function int64(lo: number, hi: number): number | string {
  const signedHi = hi | 0;
  if (signedHi < 2_097_152 && signedHi >= -2_097_152) {
    const n = signedHi * 4_294_967_296 + lo;
    if (isAvroLong(n)) return n;
  }
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString();
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0')).map((s) => s.charCodeAt(0) | (s.charCodeAt(1) << 8));

/** Writes `buf[start, end)` as an Avro string of lower-case hex. */
function writeHex(w: AvroWriter, buf: Buffer, start: number, end: number): void {
  const n = end - start;
  w.long(n * 2);
  w.ensure(n * 2);
  const out = w.buf;
  let p = w.pos;
  for (let i = start; i < end; i++) {
    const pair = HEX[buf[i] as number] as number;
    out[p++] = pair & 0xff;
    out[p++] = pair >>> 8;
  }
  w.pos = p;
}

/** Writes `buf[start, end)` (UTF-8 already) as an Avro string or bytes. */
function writeRaw(w: AvroWriter, buf: Buffer, start: number, end: number): void {
  const n = end - start;
  w.long(n);
  w.ensure(n);
  if (n < 48) {
    // a JS loop beats Buffer#copy's call overhead on short strings
    const out = w.buf;
    let p = w.pos;
    for (let i = start; i < end; i++) out[p++] = buf[i] as number;
  } else buf.copy(w.buf, w.pos, start, end);
  w.pos += n;
}

function isZero(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Whether a key is empty or whitespace only (as `String.prototype.trim` sees it). */
function blankKey(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = buf[i] as number;
    if (b >= 0x80) return buf.toString('utf8', start, end).trim().length === 0;
    if (b !== 0x20 && (b < 0x09 || b > 0x0d)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Request scan

/** One ResourceSpans of a request: its resource (after resource_filter) and where its spans are. */
export interface GroupScan {
  /** Flat resource attributes with `bk.instance.id` assembled and the token dropped. */
  resource: Attributes;
  /** The `bk.data.token` resource attribute, if set. */
  token: string | undefined;
  /** Offsets of each Span message: start, end, start, end, ... */
  spans: number[];
}

/** Finds the groups of a binary request and the spans of each; throws {@link ValidationError} when malformed. */
export function scanRequest(buf: Buffer): GroupScan[] {
  const groups: GroupScan[] = [];
  const r = new Reader(buf, 0, buf.length);
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag >>> 3 === REQ.resourceSpans && (tag & 7) === LEN) {
      const end = r.len();
      groups.push(scanGroup(buf, r.pos, end));
      r.pos = end;
    } else r.skip(tag & 7);
  }
  return groups;
}

function scanGroup(buf: Buffer, start: number, end: number): GroupScan {
  const r = new Reader(buf, start, end);
  let resStart = -1;
  let resEnd = -1;
  const spans: number[] = [];
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== LEN || (field !== RS.resource && field !== RS.scopeSpans)) {
      r.skip(tag & 7);
      continue;
    }
    const fieldEnd = r.len();
    if (field === RS.resource) {
      resStart = r.pos;
      resEnd = fieldEnd;
    } else {
      const s = new Reader(buf, r.pos, fieldEnd);
      while (s.pos < s.end) {
        const t = s.uint32();
        if (t >>> 3 === SS.spans && (t & 7) === LEN) {
          const spanEnd = s.len();
          spans.push(s.pos, spanEnd);
          s.pos = spanEnd;
        } else s.skip(t & 7);
      }
    }
    r.pos = fieldEnd;
  }
  let kvs: KeyValue[] | undefined;
  if (resStart >= 0) {
    try {
      kvs = (ResourceType.decode(buf.subarray(resStart, resEnd)) as unknown as { attributes?: KeyValue[] }).attributes;
    } catch (err) {
      malformed(`resource: ${(err as Error).message}`);
    }
  }
  return { ...filterResource(kvs), spans };
}

// ---------------------------------------------------------------------------------------------------------
// Span transcoding

/** Where one span's parts are in the request, collected before writing (the wire order is free). */
class SpanFields {
  traceS = -1;
  traceE = -1;
  spanS = -1;
  spanE = -1;
  parentS = -1;
  parentE = -1;
  nameS = -1;
  nameE = -1;
  stateS = -1;
  stateE = -1;
  statusS = -1;
  statusE = -1;
  kind = 0;
  startLo = 0;
  startHi = 0;
  endLo = 0;
  endHi = 0;
  readonly attrs: number[] = [];
  readonly events: number[] = [];
  readonly links: number[] = [];

  reset(): void {
    this.traceS = this.traceE = this.spanS = this.spanE = this.parentS = this.parentE = -1;
    this.nameS = this.nameE = this.stateS = this.stateE = this.statusS = this.statusE = -1;
    this.kind = this.startLo = this.startHi = this.endLo = this.endHi = 0;
    this.attrs.length = 0;
    this.events.length = 0;
    this.links.length = 0;
  }
}

/** What one group's spans share: bytes written before and after the per-span fields. */
export interface GroupBytes {
  /** Avro of `bk_biz_id` and `app_name`. */
  head: Buffer;
  /** Avro of the resource map. */
  resource: Buffer;
  /** Avro of `client_ip`. */
  tail: Buffer;
}

export function groupBytes(bkBizId: number, appName: string, resource: Attributes, clientIp: string): GroupBytes {
  const w = new AvroWriter(1024);
  w.long(bkBizId);
  w.string(appName);
  const head = Buffer.from(w.view());
  w.reset();
  writeAttributes(w, resource);
  const res = Buffer.from(w.view());
  w.reset();
  w.string(clientIp);
  return { head, resource: res, tail: Buffer.from(w.view()) };
}

/** Transcodes spans into an {@link AvroWriter}, one Avro `Span` after the other. */
export class SpanTranscoder {
  readonly #f = new SpanFields();
  /** Attribute entries of the map being written (its count must precede them). */
  readonly #entries = new AvroWriter(8 * 1024);
  /** One reader for all nested reads of attributes (saved and restored around each). */
  readonly #r = new Reader(Buffer.alloc(0), 0, 0);
  readonly #v = new ValueRef();
  readonly #items: number[] = [];
  #count = 0;

  /**
   * Writes the span at `buf[start, end)` to `out`. Returns the offset in `out.buf` of its trace id's 32
   * hex characters, or a rejection message (the span is then not written). Throws
   * {@link ValidationError} when the bytes are malformed.
   */
  write(buf: Buffer, start: number, end: number, g: GroupBytes, out: AvroWriter): number | string {
    const f = this.#f;
    f.reset();
    const r = new Reader(buf, start, end);
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wt = tag & 7;
      if (wt === LEN) {
        const e = r.len();
        const s = r.pos;
        r.pos = e;
        if (field === SPAN.traceId) {
          f.traceS = s;
          f.traceE = e;
        } else if (field === SPAN.spanId) {
          f.spanS = s;
          f.spanE = e;
        } else if (field === SPAN.parentSpanId) {
          f.parentS = s;
          f.parentE = e;
        } else if (field === SPAN.name) {
          f.nameS = s;
          f.nameE = e;
        } else if (field === SPAN.traceState) {
          f.stateS = s;
          f.stateE = e;
        } else if (field === SPAN.attributes) f.attrs.push(s, e);
        else if (field === SPAN.events) f.events.push(s, e);
        else if (field === SPAN.links) f.links.push(s, e);
        else if (field === SPAN.status) {
          f.statusS = s;
          f.statusE = e;
        }
      } else if (wt === I64 && field === SPAN.startTimeUnixNano) {
        r.fixed64();
        f.startLo = r.lo;
        f.startHi = r.hi;
      } else if (wt === I64 && field === SPAN.endTimeUnixNano) {
        r.fixed64();
        f.endLo = r.lo;
        f.endHi = r.hi;
      } else if (wt === VARINT && field === SPAN.kind) f.kind = r.uint32() | 0;
      else r.skip(wt);
    }

    if (f.traceE - f.traceS !== 16 || isZero(buf, f.traceS, f.traceE)) return 'trace_id must be 16 bytes, not all zero';
    if (f.spanE - f.spanS !== 8 || isZero(buf, f.spanS, f.spanE)) return 'span_id must be 8 bytes, not all zero';
    if (f.parentS >= 0 && f.parentE - f.parentS !== 0 && f.parentE - f.parentS !== 8) return 'parent_span_id must be empty or 8 bytes';
    const startUs = micros(f.startLo, f.startHi);
    const endUs = micros(f.endLo, f.endHi);
    if (startUs < 0 || endUs < 0) return 'timestamp is out of range';

    // status: message and code
    let statusCode = 0;
    let msgS = 0;
    let msgE = 0;
    if (f.statusS >= 0) {
      const s = new Reader(buf, f.statusS, f.statusE);
      while (s.pos < s.end) {
        const tag = s.uint32();
        if (tag >>> 3 === STATUS.code && (tag & 7) === VARINT) statusCode = s.uint32() | 0;
        else if (tag >>> 3 === STATUS.message && (tag & 7) === LEN) {
          const e = s.len();
          msgS = s.pos;
          msgE = e;
          s.pos = e;
        } else s.skip(tag & 7);
      }
    }
    // Events are validated (their timestamps) before anything is written.
    const eventCount = f.events.length / 2;

    const mark = out.pos;
    out.raw(g.head);
    const traceAt = out.pos + 1; // after the one-byte length of 32 characters
    writeHex(out, buf, f.traceS, f.traceE);
    writeHex(out, buf, f.spanS, f.spanE);
    if (f.parentS >= 0) writeHex(out, buf, f.parentS, f.parentE);
    else out.byte(0);
    if (f.nameS >= 0) writeRaw(out, buf, f.nameS, f.nameE);
    else out.byte(0);
    out.long(f.kind);
    out.long(startUs);
    out.long(endUs);
    out.long(endUs > startUs ? endUs - startUs : 0);
    out.long(statusCode);
    writeRaw(out, buf, msgS, msgE);
    if (f.stateS >= 0) writeRaw(out, buf, f.stateS, f.stateE);
    else out.byte(0);
    this.#attributes(buf, f.attrs, out);
    out.raw(g.resource);
    if (eventCount > 0) {
      out.long(eventCount);
      const ev = f.events;
      for (let i = 0; i < ev.length; i += 2) {
        if (!this.#event(buf, ev[i] as number, ev[i + 1] as number, out)) {
          out.pos = mark;
          return 'timestamp is out of range';
        }
      }
    }
    out.byte(0);
    if (f.links.length > 0) {
      out.long(f.links.length / 2);
      const ls = f.links;
      for (let i = 0; i < ls.length; i += 2) this.#link(buf, ls[i] as number, ls[i + 1] as number, out);
    }
    out.byte(0);
    out.raw(g.tail);
    return traceAt;
  }

  #event(buf: Buffer, start: number, end: number, out: AvroWriter): boolean {
    const r = new Reader(buf, start, end);
    let nameS = 0;
    let nameE = 0;
    let lo = 0;
    let hi = 0;
    const attrs: number[] = [];
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wt = tag & 7;
      if (wt === LEN && field === EVENT.name) {
        nameE = r.len();
        nameS = r.pos;
        r.pos = nameE;
      } else if (wt === LEN && field === EVENT.attributes) {
        const e = r.len();
        attrs.push(r.pos, e);
        r.pos = e;
      } else if (wt === I64 && field === EVENT.timeUnixNano) {
        r.fixed64();
        lo = r.lo;
        hi = r.hi;
      } else r.skip(wt);
    }
    const us = micros(lo, hi);
    if (us < 0) return false;
    writeRaw(out, buf, nameS, nameE);
    out.long(us);
    this.#attributes(buf, attrs, out);
    return true;
  }

  #link(buf: Buffer, start: number, end: number, out: AvroWriter): void {
    const r = new Reader(buf, start, end);
    let tS = 0;
    let tE = 0;
    let sS = 0;
    let sE = 0;
    let stS = 0;
    let stE = 0;
    const attrs: number[] = [];
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if ((tag & 7) !== LEN) {
        r.skip(tag & 7);
        continue;
      }
      const e = r.len();
      if (field === LINK.traceId) {
        tS = r.pos;
        tE = e;
      } else if (field === LINK.spanId) {
        sS = r.pos;
        sE = e;
      } else if (field === LINK.traceState) {
        stS = r.pos;
        stE = e;
      } else if (field === LINK.attributes) attrs.push(r.pos, e);
      r.pos = e;
    }
    writeHex(out, buf, tS, tE);
    writeHex(out, buf, sS, sE);
    writeRaw(out, buf, stS, stE);
    this.#attributes(buf, attrs, out);
  }

  /** An Avro attribute map from KeyValue messages at `kvs` (start, end pairs). */
  #attributes(buf: Buffer, kvs: readonly number[], out: AvroWriter): void {
    if (kvs.length === 0) {
      out.byte(0);
      return;
    }
    const entries = this.#entries;
    entries.reset();
    this.#count = 0;
    this.#r.buf = buf;
    for (let i = 0; i < kvs.length; i += 2) this.#keyValue(buf, kvs[i] as number, kvs[i + 1] as number, undefined, 0);
    if (this.#count > 0) {
      out.long(this.#count);
      out.raw(entries.view());
    }
    out.byte(0);
  }

  /**
   * One KeyValue at `buf[start, end)` into the entries. A key-value list is flattened: its keys are
   * written after `prefix` (the dotted path so far, as UTF-8 bytes).
   */
  #keyValue(buf: Buffer, start: number, end: number, prefix: Buffer | undefined, depth: number): void {
    const r = this.#r;
    const savedPos = r.pos;
    const savedEnd = r.end;
    r.at(start, end);
    let kS = 0;
    let kE = 0;
    let vS = -1;
    let vE = -1;
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if ((tag & 7) !== LEN || (field !== KV.key && field !== KV.value)) {
        r.skip(tag & 7);
        continue;
      }
      const e = r.len();
      if (field === KV.key) {
        kS = r.pos;
        kE = e;
      } else {
        vS = r.pos;
        vE = e;
      }
      r.pos = e;
    }
    const v = this.#v;
    if (vS >= 0) readAnyValue(r.at(vS, vE), v);
    else v.kind = 0;
    r.at(savedPos, savedEnd);
    if (blankKey(buf, kS, kE)) return;

    if (v.kind === ANY.kvlistValue && depth < MAX_FLATTEN_DEPTH) {
      const path = joinKey(prefix, buf, kS, kE);
      const listS = v.start;
      const listE = v.end;
      r.at(listS, listE);
      while (r.pos < r.end) {
        const tag = r.uint32();
        if (tag >>> 3 === KVLIST.values && (tag & 7) === LEN) {
          const e = r.len();
          const next = e;
          this.#keyValue(buf, r.pos, e, path, depth + 1);
          r.at(next, listE);
        } else r.skip(tag & 7);
      }
      r.at(savedPos, savedEnd);
      return;
    }
    const w = this.#entries;
    this.#count++;
    if (prefix === undefined) writeRaw(w, buf, kS, kE);
    else {
      const path = joinKey(prefix, buf, kS, kE);
      writeRaw(w, path, 0, path.length);
    }
    if (v.kind === ANY.arrayValue) this.#array(buf, vS, vE, v.start, v.end);
    else if (v.kind === ANY.kvlistValue) {
      // a list nested deeper than MAX_FLATTEN_DEPTH: one JSON string, as the object path does
      w.byte(B_STRING);
      w.string(JSON.stringify(plainValue(decodeAnyValue(buf, vS, vE))));
    } else writeScalar(w, buf, v);
  }

  /** An array value: Avro array of scalars, or a JSON string when it holds arrays or lists. */
  #array(buf: Buffer, vS: number, vE: number, start: number, end: number): void {
    const w = this.#entries;
    const r = this.#r;
    const savedPos = r.pos;
    const savedEnd = r.end;
    const items = this.#items;
    items.length = 0;
    r.at(start, end);
    while (r.pos < r.end) {
      const tag = r.uint32();
      if (tag >>> 3 === LIST.values && (tag & 7) === LEN) {
        const e = r.len();
        items.push(r.pos, e);
        r.pos = e;
      } else r.skip(tag & 7);
    }
    const mark = w.pos;
    w.byte(B_ARRAY);
    if (items.length > 0) w.long(items.length / 2);
    const v = this.#v;
    let nested = false;
    for (let i = 0; i < items.length; i += 2) {
      readAnyValue(r.at(items[i] as number, items[i + 1] as number), v);
      if (v.kind === ANY.arrayValue || v.kind === ANY.kvlistValue) {
        nested = true;
        break;
      }
      writeScalar(w, buf, v);
    }
    r.at(savedPos, savedEnd);
    if (!nested) {
      w.byte(0);
      return;
    }
    w.pos = mark;
    const value = decodeAnyValue(buf, vS, vE);
    w.byte(B_STRING);
    w.string(JSON.stringify((value.arrayValue?.values ?? []).map((x) => plainValue(x))));
  }
}

/** The oneof member of an AnyValue set last on the wire: its field number and where its value is. */
class ValueRef {
  /** Field number of the member, 0 for none. */
  kind = 0;
  start = 0;
  end = 0;
  lo = 0;
  hi = 0;
}

function readAnyValue(r: Reader, v: ValueRef): void {
  v.kind = 0;
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (wt === LEN && (field === ANY.stringValue || field === ANY.arrayValue || field === ANY.kvlistValue || field === ANY.bytesValue)) {
      v.end = r.len();
      v.start = r.pos;
      r.pos = v.end;
      v.kind = field;
    } else if (wt === VARINT && (field === ANY.boolValue || field === ANY.intValue)) {
      r.varint64();
      v.lo = r.lo;
      v.hi = r.hi;
      v.kind = field;
    } else if (wt === I64 && field === ANY.doubleValue) {
      v.start = r.pos;
      r.fixed64();
      v.kind = field;
    } else r.skip(wt);
  }
}

/** `prefix.key` as UTF-8 bytes (`key` alone without a prefix). */
function joinKey(prefix: Buffer | undefined, buf: Buffer, kS: number, kE: number): Buffer {
  if (prefix === undefined) return Buffer.from(buf.subarray(kS, kE));
  const key = Buffer.allocUnsafe(prefix.length + 1 + kE - kS);
  prefix.copy(key, 0);
  key[prefix.length] = 0x2e; // '.'
  buf.copy(key, prefix.length + 1, kS, kE);
  return key;
}

function writeIntOrString(w: AvroWriter, n: number | string): void {
  if (typeof n === 'string') {
    w.byte(B_STRING);
    w.string(n);
  } else writeNumber(w, n);
}

/** A scalar AnyValue (not an array or list) as an attribute union value. */
function writeScalar(w: AvroWriter, buf: Buffer, v: ValueRef): void {
  const kind = v.kind;
  if (kind === 0) w.byte(B_NULL);
  else if (kind === ANY.stringValue) {
    w.byte(B_STRING);
    writeRaw(w, buf, v.start, v.end);
  } else if (kind === ANY.intValue) writeIntOrString(w, int64(v.lo, v.hi));
  else if (kind === ANY.doubleValue) writeNumber(w, buf.readDoubleLE(v.start));
  else if (kind === ANY.boolValue) {
    w.byte(B_BOOLEAN);
    w.byte(v.lo !== 0 || v.hi !== 0 ? 1 : 0);
  } else {
    w.byte(B_BYTES);
    writeRaw(w, buf, v.start, v.end);
  }
}

function decodeAnyValue(buf: Buffer, start: number, end: number): AnyValue {
  try {
    return AnyValueType.decode(buf.subarray(start, end)) as unknown as AnyValue;
  } catch (err) {
    return malformed(`attribute value: ${(err as Error).message}`);
  }
}
