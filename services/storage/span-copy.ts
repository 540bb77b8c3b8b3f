/**
 * SpanBatch records straight to COPY text: the span consumers' decoder on PostgreSQL.
 *
 * One pass over each span's Avro bytes writes its storage row — the typed columns, and the attribute,
 * resource, event and link maps as JSON — in COPY's text format into one Buffer per record, with no span
 * object and, for ASCII and valid UTF-8 text, no JavaScript string in between. The row is the one
 * `spanRow` (span-rows.ts) makes of the span avsc decodes, as stored: the same text after COPY's escaping,
 * and JSON that PostgreSQL's jsonb reads to the same value (JSON.stringify's escapes; keys in the order
 * of the bytes, duplicates included — jsonb keeps a key's last value, as the decoded object does).
 *
 * - Validation: the record is read with a reader compiled from the schema (common/avro/reader.ts), which
 *   accepts what avsc's decoder accepts (a record it refuses throws, and the bus dead-letters it), before
 *   its bytes are transcoded; records of an older registered version are resolved to the newest first.
 * - Text: NUL removed (PostgreSQL's text and jsonb refuse it), `\`, tab, newline and CR escaped for COPY,
 *   `"`, `\` and control characters escaped for JSON. A string that is not valid UTF-8 is decoded as avsc
 *   decodes it (Node's UTF-8 decoder, U+FFFD for what is invalid) and written from that string.
 * - Values: bytes as base64 strings, doubles as JSON.stringify writes them (NaN and ±Infinity as null).
 * - The few spans whose maps the byte path cannot mirror exactly — a key holding NUL (two keys may then
 *   collide, in the decoded object's key order) or a key `__proto__` (which the decoded object does not
 *   keep as a key) — are decoded with avsc and written from `spanRow`, the very code of the other path.
 * - `service_name` (resource `service.name` when a string) and `category` (span-rows.ts `categoryOf`) are
 *   taken while the maps are written, last occurrence of a key winning as in the decoded object.
 *
 * A row is written in {@link SPAN_COPY_COLUMNS} order without its last column, the retention class, which
 * the span ingest appends once the application's retention is known (span-ingest.ts).
 */
import { checkSingleObjectHeader, Codec, HEADER_BYTES, readBlockCount, readResult, schemas, type AvroType, type SchemaEntry, type SchemaRegistry } from '../common/avro/index.ts';
import { compileRecordReader, type FieldCapture, type SlotReader } from '../common/avro/reader.ts';
import type { Decoder } from '../common/bus/index.ts';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError } from '../common/errors.ts';
import type { Span } from '../common/records.ts';
import { copyText } from '../common/store/copy.ts';
import { clean, copyRowBody, rowFacts, spanRow, statusCodeOf, type SpanFacts, type SpanRow } from './span-rows.ts';

const WHAT = 'SpanBatch body';

/** Slots of the span being read (positions and lengths of strings, numbers, where values start). */
const S = {
  BIZ: 0,
  APP_AT: 1,
  APP_LEN: 2,
  TRACE_AT: 3,
  TRACE_LEN: 4,
  SPAN_AT: 5,
  SPAN_LEN: 6,
  PARENT_AT: 7,
  PARENT_LEN: 8,
  NAME_AT: 9,
  NAME_LEN: 10,
  KIND: 11,
  START: 12,
  END: 13,
  ELAPSED: 14,
  STATUS_AT: 15,
  STATE_AT: 16,
  STATE_LEN: 17,
  ATTRIBUTES_AT: 18,
  RESOURCE_AT: 19,
  EVENTS_AT: 20,
  LINKS_AT: 21,
  CLIENT_AT: 22,
  CLIENT_LEN: 23,
} as const;
const SLOTS = 24;

const CAPTURES: Readonly<Record<string, FieldCapture>> = {
  bk_biz_id: { slot: S.BIZ, kind: 'number' },
  app_name: { slot: S.APP_AT, kind: 'bytes' },
  trace_id: { slot: S.TRACE_AT, kind: 'bytes' },
  span_id: { slot: S.SPAN_AT, kind: 'bytes' },
  parent_span_id: { slot: S.PARENT_AT, kind: 'bytes' },
  span_name: { slot: S.NAME_AT, kind: 'bytes' },
  kind: { slot: S.KIND, kind: 'number' },
  start_time: { slot: S.START, kind: 'number' },
  end_time: { slot: S.END, kind: 'number' },
  elapsed_time: { slot: S.ELAPSED, kind: 'number' },
  status: { slot: S.STATUS_AT, kind: 'start' },
  trace_state: { slot: S.STATE_AT, kind: 'bytes' },
  attributes: { slot: S.ATTRIBUTES_AT, kind: 'start' },
  resource: { slot: S.RESOURCE_AT, kind: 'start' },
  events: { slot: S.EVENTS_AT, kind: 'start' },
  links: { slot: S.LINKS_AT, kind: 'start' },
  client_ip: { slot: S.CLIENT_AT, kind: 'bytes' },
};

type SchemaType = AvroType & {
  typeName: string;
  underlyingType?: SchemaType;
  fields?: { name: string; type: SchemaType }[];
  itemsType?: SchemaType;
  valuesType?: SchemaType;
  types?: SchemaType[];
};

/** A compact description of a type's structure (names of fields, kinds of values). */
function shape(type: SchemaType): string {
  const t = type.underlyingType ?? type;
  switch (t.typeName) {
    case 'record':
      return `{${(t.fields ?? []).map((f) => `${f.name}:${shape(f.type)}`).join(',')}}`;
    case 'array':
      return `[${shape(t.itemsType as SchemaType)}]`;
    case 'map':
      return `map<${shape(t.valuesType as SchemaType)}>`;
    default:
      return t.typeName.startsWith('union') ? `(${(t.types ?? []).map(shape).join('|')})` : t.typeName;
  }
}

const SCALAR = 'null|boolean|long|double|string|bytes';
const VALUE = `(${SCALAR}|[(${SCALAR})])`;
/** The SpanBatch this transcoder writes rows of (schemas/span.v1.avsc). */
const SPAN_BATCH_SHAPE =
  `{spans:[{bk_biz_id:long,app_name:string,trace_id:string,span_id:string,parent_span_id:string,span_name:string,kind:int,` +
  `start_time:long,end_time:long,elapsed_time:long,status:{code:int,message:string},trace_state:string,attributes:map<${VALUE}>,` +
  `resource:map<${VALUE}>,events:[{name:string,timestamp:long,attributes:map<${VALUE}>}],` +
  `links:[{trace_id:string,span_id:string,trace_state:string,attributes:map<${VALUE}>}],client_ip:string}]}`;

/** Attribute keys that decide the span's category (span-rows.ts `categoryOf`), in the order of its bits. */
const MARKERS = ['db.system', 'messaging.system', 'messaging.destination', 'rpc.system', 'http.method', 'http.request.method', 'celery.action', 'celery.task_name'].map((k) => Buffer.from(k, 'latin1'));
const SERVICE_NAME = Buffer.from('service.name', 'latin1');
const HTTP_STATUS = Buffer.from('http.status_code', 'latin1');
const RPC_STATUS = Buffer.from('rpc.grpc.status_code', 'latin1');
const PROTO = Buffer.from('__proto__', 'latin1');

/** `categoryOf` over the marker bits (bit i set: MARKERS[i]'s last value is truthy). */
function category(marks: number): (typeof CATEGORY_NAMES)[number] {
  if (marks & 1) return 'db';
  if (marks & 6) return 'messaging';
  if (marks & 8) return 'rpc';
  if (marks & 48) return 'http';
  if (marks & 192) return 'async_backend';
  return 'other';
}

function sameBytes(src: Buffer, at: number, len: number, key: Buffer): boolean {
  if (len !== key.length) return false;
  for (let i = 0; i < len; i++) if (src[at + i] !== key[i]) return false;
  return true;
}

/** Length of the valid UTF-8 sequence starting at `i` (its first byte ≥ 0x80), or 0 if it is not one. */
function utf8Sequence(src: Buffer, i: number, end: number): number {
  const b0 = src[i] as number;
  if (b0 < 0xc2) return 0;
  if (b0 < 0xe0) return i + 1 < end && ((src[i + 1] as number) & 0xc0) === 0x80 ? 2 : 0;
  if (b0 < 0xf0) {
    if (i + 2 >= end) return 0;
    const b1 = src[i + 1] as number;
    if (((src[i + 2] as number) & 0xc0) !== 0x80) return 0;
    if (b0 === 0xe0) return b1 >= 0xa0 && b1 <= 0xbf ? 3 : 0;
    if (b0 === 0xed) return b1 >= 0x80 && b1 <= 0x9f ? 3 : 0;
    return (b1 & 0xc0) === 0x80 ? 3 : 0;
  }
  if (b0 > 0xf4 || i + 3 >= end) return 0;
  const b1 = src[i + 1] as number;
  if (((src[i + 2] as number) & 0xc0) !== 0x80 || ((src[i + 3] as number) & 0xc0) !== 0x80) return 0;
  if (b0 === 0xf0) return b1 >= 0x90 && b1 <= 0xbf ? 4 : 0;
  if (b0 === 0xf4) return b1 >= 0x80 && b1 <= 0x8f ? 4 : 0;
  return (b1 & 0xc0) === 0x80 ? 4 : 0;
}

const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Bytes a JSON string (1) and a text column (2) write as they are, inside COPY text. */
const PLAIN = new Uint8Array(256);
for (let b = 1; b < 0x80; b++) {
  PLAIN[b] = (b >= 0x20 && b !== 0x22 && b !== 0x5c ? 1 : 0) | (b !== 9 && b !== 10 && b !== 13 && b !== 0x5c ? 2 : 0);
}
const NUL = /\u0000/g;
/** What follows each string field of a link. */
const LINK_FIELDS = [',"span_id":', ',"trace_state":', ',"attributes":'] as const;

/** Fields of a span in {@link SpanCopyBatch.nums} (offsets are into the batch's text). */
export const F = {
  /** The row: its text range. */
  ROW_AT: 0,
  ROW_END: 1,
  BIZ: 2,
  /** Index into the batch's apps. */
  APP: 3,
  /** Set by the span ingest. */
  RETENTION: 4,
  START: 5,
  END: 6,
  ELAPSED: 7,
  KIND: 8,
  STATUS: 9,
  /** Index of the category in CATEGORY_NAMES. */
  CATEGORY: 10,
  /** 1 when parent_span_id is not empty. */
  HAS_PARENT: 11,
  /** The entry-service status code the stored attributes give (pieces.ts `SpanFacts.status_attr`), NaN for none. */
  STATUS_ATTR: 12,
  /** Text ranges (as COPY text) of trace_id, span_id, span_name, service_name. */
  TRACE_AT: 13,
  TRACE_END: 14,
  SPAN_AT: 15,
  SPAN_END: 16,
  NAME_AT: 17,
  NAME_END: 18,
  SERVICE_AT: 19,
  SERVICE_END: 20,
} as const;
const STRIDE = 21;

/** span-rows.ts `categoryOf` values, by index. */
export const CATEGORY_NAMES = ['http', 'rpc', 'db', 'messaging', 'async_backend', 'other'] as const;

/** A text field of a row as stored: its COPY text unescaped. */
function unescaped(text: Buffer, at: number, end: number): string {
  const s = text.toString('utf8', at, end);
  for (let i = at; i < end; i++) {
    if (text[i] === 0x5c) return s.replace(/\\(.)/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c));
  }
  return s;
}

/**
 * The spans of one SpanBatch record as COPY rows, held as bytes and numbers (no object per span, so the
 * many spans waiting for a write cost the garbage collector little): span i's row is
 * `text[nums[i * STRIDE + F.ROW_AT], …ROW_END)` (no retention class yet), with its values beside it.
 */
export class SpanCopyBatch {
  readonly text: Buffer;
  readonly count: number;
  readonly nums: Float64Array;
  /** app_name as decoded (what retention is looked up by), and as stored, by index. */
  readonly apps: readonly string[];
  readonly storedApps: readonly string[];
  /** Spans written from span objects (span-copy.ts's exact path): their values as stored. */
  readonly fallbacks: ReadonlyMap<number, SpanFacts> | undefined;

  constructor(text: Buffer, count: number, nums: Float64Array, apps: string[], storedApps: string[], fallbacks: Map<number, SpanFacts> | undefined) {
    this.text = text;
    this.count = count;
    this.nums = nums;
    this.apps = apps;
    this.storedApps = storedApps;
    this.fallbacks = fallbacks;
  }

  num(i: number, field: number): number {
    return this.nums[i * STRIDE + field] as number;
  }

  setRetention(i: number, days: number): void {
    this.nums[i * STRIDE + F.RETENTION] = days;
  }

  /** A text field (`F.TRACE_AT`, `F.SPAN_AT`, `F.NAME_AT`, `F.SERVICE_AT`) as stored. */
  field(i: number, at: number): string {
    const base = i * STRIDE;
    return unescaped(this.text, this.nums[base + at] as number, this.nums[base + at + 1] as number);
  }

  /** Whether text field `at` of spans i and j holds the same bytes. */
  sameField(i: number, j: number, at: number): boolean {
    const n = this.nums;
    const a = n[i * STRIDE + at] as number;
    const b = n[j * STRIDE + at] as number;
    const len = (n[i * STRIDE + at + 1] as number) - a;
    if (len !== (n[j * STRIDE + at + 1] as number) - b) return false;
    const t = this.text;
    for (let k = 0; k < len; k++) if (t[a + k] !== t[b + k]) return false;
    return true;
  }

  /**
   * Span i's values as stored (pieces.ts), its retention class included. Given the values of span `j` of
   * this batch (the span before it, usually of the same trace), strings of the same bytes are shared.
   */
  facts(i: number, j = -1, before?: SpanFacts): SpanFacts {
    const retention = this.num(i, F.RETENTION);
    const fallback = this.fallbacks?.get(i);
    if (fallback) return { ...fallback, retention_days: retention };
    const attr = this.num(i, F.STATUS_ATTR);
    const same = j >= 0 && before !== undefined && !this.fallbacks?.has(j);
    return {
      bk_biz_id: this.num(i, F.BIZ),
      app_name: this.storedApps[this.num(i, F.APP)] as string,
      retention_days: retention,
      trace_id: same && this.sameField(i, j, F.TRACE_AT) ? before.trace_id : this.field(i, F.TRACE_AT),
      span_id: this.field(i, F.SPAN_AT),
      span_name: same && this.sameField(i, j, F.NAME_AT) ? before.span_name : this.field(i, F.NAME_AT),
      service_name: same && this.sameField(i, j, F.SERVICE_AT) ? before.service_name : this.field(i, F.SERVICE_AT),
      kind: this.num(i, F.KIND),
      start_time: this.num(i, F.START),
      end_time: this.num(i, F.END),
      elapsed_time: this.num(i, F.ELAPSED),
      status_code: this.num(i, F.STATUS),
      category: CATEGORY_NAMES[this.num(i, F.CATEGORY)] as string,
      has_parent: this.num(i, F.HAS_PARENT) === 1,
      status_attr: Number.isNaN(attr) ? null : attr,
    };
  }
}

/** A span of a {@link SpanCopyBatch}, as the span flusher queues it. */
export class SpanLine {
  readonly batch: SpanCopyBatch;
  readonly i: number;

  constructor(batch: SpanCopyBatch, i: number) {
    this.batch = batch;
    this.i = i;
  }

  get retention_days(): number {
    return this.batch.num(this.i, F.RETENTION);
  }

  get start_time(): number {
    return this.batch.num(this.i, F.START);
  }

  get end_time(): number {
    return this.batch.num(this.i, F.END);
  }
}

/** What the span flusher queues: rows made from span objects (PGlite, tests) or transcoded (PostgreSQL). */
export type StoredSpan = SpanRow | SpanLine;

/** Where a map's value of a key that matters was (branch -1: the key is absent). */
interface Captured {
  branch: number;
  num: number;
  at: number;
  len: number;
}

/** Reads SpanBatch bodies of the newest version and writes their spans' rows. Not reentrant (one per decoder). */
export class SpanTranscoder {
  readonly #readSpan: SlotReader;
  readonly #spanType: AvroType;
  readonly #slots = new Float64Array(SLOTS);
  /** Scratch values of the record being read (copied out at its end). */
  #nums = new Float64Array(STRIDE * 256);
  readonly #result = readResult();
  #src: Buffer = Buffer.alloc(0);
  #out: Buffer = Buffer.allocUnsafe(256 * 1024);
  #o = 0;
  /** The long just read by {@link #long}. */
  #v = 0;
  /** Of the value just written by {@link #value}: its union branch, truthy as categoryOf counts it, a long's or double's value, a string's or bytes' position and length. */
  #branch = 0;
  #truthy = false;
  #num = 0;
  #strAt = -1;
  #strLen = 0;
  /** Of the span being written: the last `http.status_code` and `rpc.grpc.status_code` attribute values. */
  readonly #http: Captured = { branch: -1, num: 0, at: 0, len: 0 };
  readonly #rpc: Captured = { branch: -1, num: 0, at: 0, len: 0 };
  /** Of the span being written: category marker bits, resource `service.name` string position (-1: none) and length. */
  #marks = 0;
  #serviceAt = -1;
  #serviceLen = 0;

  constructor(latest: SchemaEntry) {
    const batch = latest.type as SchemaType;
    const found = shape(batch);
    if (found !== SPAN_BATCH_SHAPE) {
      throw new TypeError(`${latest.file}: services/storage/span-copy.ts writes rows of SpanBatch as ${SPAN_BATCH_SHAPE}, not ${found}: teach it the new version`);
    }
    const span = (batch.fields?.[0]?.type as SchemaType).itemsType as SchemaType;
    this.#spanType = span;
    this.#readSpan = compileRecordReader(span, CAPTURES, WHAT);
  }

  /** The record body at `pos` (the whole rest of `buf`) as rows; throws {@link CorruptRecordError} as avsc's decoder would. */
  read(buf: Buffer, pos: number): SpanCopyBatch {
    this.#src = buf;
    this.#o = 0;
    const r = this.#result;
    const slots = this.#slots;
    let nums = this.#nums;
    const apps: string[] = [];
    const storedApps: string[] = [];
    let fallbacks: Map<number, SpanFacts> | undefined;
    let app = -1;
    let appAt = -1;
    let appLen = -1;
    let count = 0;
    for (;;) {
      pos = readBlockCount(buf, pos, r, WHAT);
      let n = r.value;
      if (n === 0) break;
      const blockEnd = r.blockEnd;
      while (n-- > 0) {
        const begin = pos;
        pos = this.#readSpan(buf, pos, slots, 0);
        const at = slots[S.APP_AT] as number;
        const len = slots[S.APP_LEN] as number;
        if (len !== appLen || buf.compare(buf, appAt, appAt + len, at, at + len) !== 0) {
          const name = buf.toString('utf8', at, at + len);
          app = apps.indexOf(name);
          if (app < 0) {
            app = apps.length;
            apps.push(name);
            storedApps.push(clean(name));
          }
          appAt = at;
          appLen = len;
        }
        if ((count + 1) * STRIDE > nums.length) {
          const grown = new Float64Array(nums.length * 2);
          grown.set(nums);
          nums = grown;
          this.#nums = grown;
        }
        const base = count * STRIDE;
        nums[base + F.APP] = app;
        nums[base + F.ROW_AT] = this.#o;
        const fallback = this.#row(begin, nums, base);
        nums[base + F.ROW_END] = this.#o;
        if (fallback) (fallbacks ??= new Map()).set(count, fallback);
        count++;
      }
      if (blockEnd !== -1 && pos !== blockEnd) throw new CorruptRecordError(`${WHAT}: block size does not match its items`);
    }
    if (pos !== buf.length) throw new CorruptRecordError(`${WHAT}: ${buf.length - pos} trailing bytes`);
    const text = Buffer.allocUnsafe(this.#o);
    this.#out.copy(text, 0, 0, this.#o);
    return new SpanCopyBatch(text, count, nums.slice(0, count * STRIDE), apps, storedApps, fallbacks);
  }

  /**
   * Writes the row of the span read into the slots (its bytes start at `begin`) and its values into
   * `nums[base + F.…]`; returns the span's values when it was written from the decoded span object.
   */
  #row(begin: number, nums: Float64Array, base: number): SpanFacts | undefined {
    const sl = this.#slots;
    const start = this.#o;
    nums[base + F.BIZ] = sl[S.BIZ] as number;
    this.#number(sl[S.BIZ] as number);
    this.#tab();
    this.#text(sl[S.APP_AT] as number, sl[S.APP_LEN] as number);
    this.#tab();
    nums[base + F.TRACE_AT] = this.#o;
    this.#text(sl[S.TRACE_AT] as number, sl[S.TRACE_LEN] as number);
    nums[base + F.TRACE_END] = this.#o;
    this.#tab();
    nums[base + F.SPAN_AT] = this.#o;
    this.#text(sl[S.SPAN_AT] as number, sl[S.SPAN_LEN] as number);
    nums[base + F.SPAN_END] = this.#o;
    this.#tab();
    nums[base + F.HAS_PARENT] = this.#text(sl[S.PARENT_AT] as number, sl[S.PARENT_LEN] as number) ? 1 : 0;
    this.#tab();
    nums[base + F.NAME_AT] = this.#o;
    this.#text(sl[S.NAME_AT] as number, sl[S.NAME_LEN] as number);
    nums[base + F.NAME_END] = this.#o;
    this.#tab();
    nums[base + F.KIND] = sl[S.KIND] as number;
    this.#number(sl[S.KIND] as number);
    this.#tab();
    nums[base + F.START] = sl[S.START] as number;
    this.#number(sl[S.START] as number);
    this.#tab();
    nums[base + F.END] = sl[S.END] as number;
    this.#number(sl[S.END] as number);
    this.#tab();
    nums[base + F.ELAPSED] = sl[S.ELAPSED] as number;
    this.#number(sl[S.ELAPSED] as number);
    this.#tab();
    let p = this.#long(sl[S.STATUS_AT] as number);
    nums[base + F.STATUS] = this.#v;
    this.#number(this.#v);
    this.#tab();
    p = this.#long(p);
    this.#text(p, this.#v);
    this.#tab();
    this.#text(sl[S.STATE_AT] as number, sl[S.STATE_LEN] as number);
    this.#tab();
    this.#marks = 0;
    this.#serviceAt = -1;
    this.#http.branch = -1;
    this.#rpc.branch = -1;
    if (
      this.#map(sl[S.ATTRIBUTES_AT] as number, 1) < 0 ||
      !this.#tab() ||
      this.#map(sl[S.RESOURCE_AT] as number, 2) < 0 ||
      !this.#tab() ||
      this.#events(sl[S.EVENTS_AT] as number) < 0 ||
      !this.#tab() ||
      this.#links(sl[S.LINKS_AT] as number) < 0
    ) {
      // a map the byte path cannot mirror exactly: the span as the other path writes it
      this.#o = start;
      const row = spanRow(this.#spanType.decode(this.#src, begin).value as Span, 0);
      this.#string(copyRowBody(row));
      return rowFacts(row);
    }
    this.#tab();
    this.#text(sl[S.CLIENT_AT] as number, sl[S.CLIENT_LEN] as number);
    this.#tab();
    nums[base + F.SERVICE_AT] = this.#o;
    if (this.#serviceAt >= 0) this.#text(this.#serviceAt, this.#serviceLen);
    nums[base + F.SERVICE_END] = this.#o;
    this.#tab();
    const cat = category(this.#marks);
    nums[base + F.CATEGORY] = CATEGORY_NAMES.indexOf(cat);
    this.#latin1(cat);
    const attr = statusCodeOf(this.#statusText(this.#http) ?? this.#statusText(this.#rpc));
    nums[base + F.STATUS_ATTR] = attr ?? Number.NaN;
    return undefined;
  }

  /** The string at `at` as stored (decoded as avsc decodes it, NUL removed). */
  #stored(at: number, len: number): string {
    return clean(this.#src.toString('utf8', at, at + len));
  }

  /** `attributes->>key` of a captured value as stored: null for an absent key, JSON null (and NaN, ±Infinity); otherwise its text. */
  #statusText(c: Captured): string | null {
    switch (c.branch) {
      case -1:
      case 0:
        return null;
      case 1:
        return c.num ? 'true' : 'false';
      case 2:
        return String(c.num);
      case 3:
        return Number.isFinite(c.num) ? String(c.num) : null;
      case 4:
        return this.#stored(c.at, c.len);
      case 5:
        return this.#src.toString('base64', c.at, c.at + c.len);
      default:
        return '[]';
    }
  }

  #ensure(n: number): void {
    if (this.#o + n <= this.#out.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#out.length * 2, this.#o + n));
    this.#out.copy(next, 0, 0, this.#o);
    this.#out = next;
  }

  #byte(b: number): void {
    this.#ensure(1);
    this.#out[this.#o++] = b;
  }

  /** A tab (returns true, to chain in conditions). */
  #tab(): boolean {
    this.#byte(9);
    return true;
  }

  #latin1(s: string): void {
    this.#ensure(s.length);
    this.#o += this.#out.write(s, this.#o, 'latin1');
  }

  #string(s: string): void {
    this.#ensure(s.length * 3);
    this.#o += this.#out.write(s, this.#o, 'utf8');
  }

  /** A zig-zag varint at `p` into #v (the record was validated: no bounds to check); returns the position after it. */
  #long(p: number): number {
    const src = this.#src;
    let b = src[p++] as number;
    let n = b & 0x7f;
    if (b > 0x7f) {
      let k = 128;
      do {
        b = src[p++] as number;
        n += (b & 0x7f) * k;
        k *= 128;
      } while (b > 0x7f);
    }
    this.#v = n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    return p;
  }

  /** A number as `${n}` writes it. */
  #number(n: number): void {
    this.#ensure(32);
    if (!Number.isSafeInteger(n)) {
      this.#o += this.#out.write(String(n), this.#o, 'latin1');
      return;
    }
    const out = this.#out;
    if (n < 0) {
      out[this.#o++] = 0x2d;
      n = -n;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    let o = this.#o + digits;
    this.#o = o;
    do {
      const q = Math.floor(n / 10);
      out[--o] = 0x30 + (n - q * 10);
      n = q;
    } while (n > 0);
  }

  /** A text column: `copyText(clean(s))` of the string at `at`; whether it is not empty. */
  #text(at: number, len: number): boolean {
    this.#ensure(len * 2);
    const src = this.#src;
    const out = this.#out;
    const start = this.#o;
    let o = start;
    const end = at + len;
    for (let i = at; i < end; i++) {
      const b = src[i] as number;
      if ((PLAIN[b] as number) & 2) {
        out[o++] = b;
      } else if (b === 0x5c) {
        out[o++] = 0x5c;
        out[o++] = 0x5c;
      } else if (b < 0x20) {
        if (b === 9) {
          out[o++] = 0x5c;
          out[o++] = 0x74;
        } else if (b === 10) {
          out[o++] = 0x5c;
          out[o++] = 0x6e;
        } else if (b === 13) {
          out[o++] = 0x5c;
          out[o++] = 0x72;
        }
      } else {
        const n = utf8Sequence(src, i, end);
        if (n === 0) {
          // not valid UTF-8: as avsc decodes it
          this.#o = start;
          this.#string(copyText(src.toString('utf8', at, end).replace(NUL, '')));
          return this.#o > start;
        }
        for (let k = 0; k < n; k++) out[o++] = src[i + k] as number;
        i += n - 1;
      }
    }
    this.#o = o;
    return o > start;
  }

  /**
   * A JSON string of the string at `at` (NUL removed; JSON.stringify's escapes), escaped for COPY. A key
   * holding NUL returns false (the span takes the exact path).
   */
  #jsonString(at: number, len: number, key: boolean): boolean {
    this.#ensure(len * 7 + 2);
    const src = this.#src;
    const out = this.#out;
    const start = this.#o;
    let o = start;
    out[o++] = 0x22;
    const end = at + len;
    for (let i = at; i < end; i++) {
      const b = src[i] as number;
      if ((PLAIN[b] as number) & 1) {
        out[o++] = b;
      } else if (b >= 0x20 && b < 0x80) {
        if (b === 0x22) {
          out[o++] = 0x5c;
          out[o++] = 0x5c;
        } else if (b === 0x5c) {
          out[o++] = 0x5c;
          out[o++] = 0x5c;
          out[o++] = 0x5c;
        }
        out[o++] = b;
      } else if (b < 0x20) {
        if (b === 0) {
          if (key) return false;
          continue;
        }
        out[o++] = 0x5c;
        out[o++] = 0x5c;
        if (b === 8) out[o++] = 0x62;
        else if (b === 9) out[o++] = 0x74;
        else if (b === 10) out[o++] = 0x6e;
        else if (b === 12) out[o++] = 0x66;
        else if (b === 13) out[o++] = 0x72;
        else {
          out[o++] = 0x75;
          out[o++] = 0x30;
          out[o++] = 0x30;
          out[o++] = HEX[b >> 4] as number;
          out[o++] = HEX[b & 15] as number;
        }
      } else {
        const n = utf8Sequence(src, i, end);
        if (n === 0) {
          // not valid UTF-8: as avsc decodes it
          const s = src.toString('utf8', at, end);
          if (key && s.includes('\u0000')) return false;
          this.#o = start;
          this.#string(copyText(JSON.stringify(s.replace(NUL, ''))));
          return true;
        }
        for (let k = 0; k < n; k++) out[o++] = src[i + k] as number;
        i += n - 1;
      }
    }
    out[o++] = 0x22;
    this.#o = o;
    return true;
  }

  /**
   * The map at `p` as a JSON object; `role` 1 (attributes) sets the category marks, 2 (resource) finds
   * `service.name`. Returns the position after the map, or -1 when the span needs the exact path.
   */
  #map(p: number, role: number): number {
    const src = this.#src;
    this.#byte(0x7b);
    let first = true;
    for (;;) {
      p = this.#long(p);
      let n = this.#v;
      if (n === 0) break;
      if (n < 0) {
        n = -n;
        p = this.#long(p);
      }
      while (n-- > 0) {
        p = this.#long(p);
        const kat = p;
        const klen = this.#v;
        if (klen === 9 && sameBytes(src, kat, klen, PROTO)) return -1;
        if (!first) this.#byte(0x2c);
        first = false;
        if (!this.#jsonString(kat, klen, true)) return -1;
        this.#byte(0x3a);
        p = this.#value(kat + klen);
        if (role === 1) {
          for (let m = 0; m < MARKERS.length; m++) {
            if (sameBytes(src, kat, klen, MARKERS[m] as Buffer)) {
              this.#marks = this.#truthy ? this.#marks | (1 << m) : this.#marks & ~(1 << m);
              break;
            }
          }
          if (sameBytes(src, kat, klen, HTTP_STATUS)) this.#capture(this.#http);
          else if (sameBytes(src, kat, klen, RPC_STATUS)) this.#capture(this.#rpc);
        } else if (role === 2 && sameBytes(src, kat, klen, SERVICE_NAME)) {
          this.#serviceAt = this.#branch === 4 ? this.#strAt : -1;
          this.#serviceLen = this.#strLen;
        }
      }
    }
    this.#byte(0x7d);
    return p;
  }

  #capture(c: Captured): void {
    c.branch = this.#branch;
    c.num = this.#num;
    c.at = this.#strAt;
    c.len = this.#strLen;
  }

  /** One attribute value (or array item) as JSON; sets #branch, #truthy, #num, #strAt/#strLen. */
  #value(p: number): number {
    p = this.#long(p);
    const branch = this.#v;
    const after = this.#valueOf(p, branch);
    this.#branch = branch;
    return after;
  }

  #valueOf(p: number, branch: number): number {
    switch (branch) {
      case 0:
        this.#latin1('null');
        this.#truthy = false;
        return p;
      case 1: {
        const b = this.#src[p] as number;
        this.#latin1(b ? 'true' : 'false');
        this.#truthy = b !== 0;
        this.#num = b;
        return p + 1;
      }
      case 2: {
        p = this.#long(p);
        const n = this.#v;
        this.#number(n);
        this.#truthy = n !== 0;
        this.#num = n;
        return p;
      }
      case 3: {
        const d = this.#src.readDoubleLE(p);
        this.#latin1(Number.isFinite(d) ? String(d) : 'null');
        this.#truthy = d !== 0;
        this.#num = d;
        return p + 8;
      }
      case 4: {
        p = this.#long(p);
        const len = this.#v;
        this.#jsonString(p, len, false);
        this.#strAt = p;
        this.#strLen = len;
        this.#truthy = len > 0;
        return p + len;
      }
      case 5: {
        p = this.#long(p);
        const len = this.#v;
        const b64 = this.#src.toString('base64', p, p + len);
        this.#ensure(b64.length + 2);
        this.#out[this.#o++] = 0x22;
        this.#o += this.#out.write(b64, this.#o, 'latin1');
        this.#out[this.#o++] = 0x22;
        this.#truthy = true;
        this.#strAt = p;
        this.#strLen = len;
        return p + len;
      }
      default: {
        this.#byte(0x5b);
        let first = true;
        for (;;) {
          p = this.#long(p);
          let n = this.#v;
          if (n === 0) break;
          if (n < 0) {
            n = -n;
            p = this.#long(p);
          }
          while (n-- > 0) {
            if (!first) this.#byte(0x2c);
            first = false;
            p = this.#value(p);
          }
        }
        this.#byte(0x5d);
        this.#strAt = -1;
        this.#truthy = true;
        return p;
      }
    }
  }

  /** The events array at `p` as span-rows.ts writes it; -1 when the span needs the exact path. */
  #events(p: number): number {
    this.#byte(0x5b);
    let first = true;
    for (;;) {
      p = this.#long(p);
      let n = this.#v;
      if (n === 0) break;
      if (n < 0) {
        n = -n;
        p = this.#long(p);
      }
      while (n-- > 0) {
        this.#latin1(first ? '{"name":' : ',{"name":');
        first = false;
        p = this.#long(p);
        const len = this.#v;
        this.#jsonString(p, len, false);
        p = this.#long(p + len);
        this.#latin1(',"timestamp":');
        this.#number(this.#v);
        this.#latin1(',"attributes":');
        p = this.#map(p, 0);
        if (p < 0) return -1;
        this.#byte(0x7d);
      }
    }
    this.#byte(0x5d);
    return p;
  }

  /** The links array at `p` as span-rows.ts writes it; -1 when the span needs the exact path. */
  #links(p: number): number {
    this.#byte(0x5b);
    let first = true;
    for (;;) {
      p = this.#long(p);
      let n = this.#v;
      if (n === 0) break;
      if (n < 0) {
        n = -n;
        p = this.#long(p);
      }
      while (n-- > 0) {
        this.#latin1(first ? '{"trace_id":' : ',{"trace_id":');
        first = false;
        for (const next of LINK_FIELDS) {
          p = this.#long(p);
          const len = this.#v;
          this.#jsonString(p, len, false);
          p += len;
          this.#latin1(next);
        }
        p = this.#map(p, 0);
        if (p < 0) return -1;
        this.#byte(0x7d);
      }
    }
    this.#byte(0x5d);
    return p;
  }
}

/**
 * The span consumers' decoder on PostgreSQL: single-object SpanBatch records of any registered version
 * into COPY rows; anything avsc would not decode throws (the bus dead-letters it).
 */
export function spanCopyDecoder(registry: SchemaRegistry = schemas()): Decoder<SpanCopyBatch> {
  const latest = registry.get('SpanBatch');
  const transcoder = new SpanTranscoder(latest);
  const full = new Codec<unknown>('SpanBatch', { registry });
  return {
    decode(buf: Buffer): SpanCopyBatch {
      checkSingleObjectHeader(buf);
      const writer = registry.byHeader(buf);
      if (!writer) throw new UnknownSchemaError(buf.readBigUInt64LE(2).toString(16).padStart(16, '0'));
      if (writer.name !== 'SpanBatch') throw new SchemaMismatchError(`${writer.name} v${writer.version} cannot be read as SpanBatch`);
      return transcoder.read(writer === latest ? buf : full.encode(full.decode(buf)), HEADER_BYTES);
    },
  };
}
