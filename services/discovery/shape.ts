/**
 * Span shapes: the discoverers are pure functions of a span's fields that the rules and discoverers
 * read, of the rule set, and of two lookups (cmdb hosts, topo node kinds). Spans with the same values of
 * these fields — the same "shape" — produce the same rows and the same pairing facts as long as the
 * lookups they read have not changed (each shape remembers the versions of the lookups its discovery
 * read; most spans never read node kinds, so learning a new node does not void their shapes). The pipeline keeps
 * a bounded LRU of shapes: a span whose shape was processed less than the touch interval ago skips the
 * discoverers (every row they would emit is already written or queued within the touch interval) and
 * takes its pairing facts from the cache. This is what makes per-span cost small: one hash and one cache
 * lookup instead of one per discovered row.
 */
import type { ClassifiedSpan } from './classify.ts';
import { relationChild, relationParent } from './discoverers/relation.ts';
import { remoteChild, remoteParent } from './discoverers/remote-service-relation.ts';
import { rootRow } from './discoverers/root-endpoint.ts';
import { keyPair, SCALAR_FIELDS, SPAN_FIELD_NAMES, SPAN_FIELDS, type DiscoverySpan } from './fields.ts';
import { Hasher } from './hash.ts';
import { BoundedIdMap } from './id-table.ts';
import type { RootEndpointRow } from './records.ts';
import type { Field, Rule, RuleSet } from './rules.ts';
import { readBlockCount, readLong } from '../common/avro/index.ts';
import { FIELD_SLOTS, hashMapEntries, Slot, type SpanView } from './span-view.ts';
import type { ChildFacts, ParentFacts } from './window.ts';

/** Fields the discoverers read besides those the rules name. */
const FIXED_FIELDS = [
  'resource.service.name', 'resource.net.host.ip', 'resource.bk.instance.id', 'resource.telemetry.sdk.name', 'resource.telemetry.sdk.version',
  'resource.telemetry.sdk.language', 'attributes.peer.service', 'attributes.net.host.ip', 'attributes.db.system', 'attributes.messaging.system',
  'attributes.rpc.system', 'attributes.http.method', 'attributes.messaging.destination',
];

/**
 * Map keys looked up by their UTF-8 bytes, without making a string: candidates by byte length, compared
 * from the end (keys of one family share prefixes such as `http.`).
 */
export class KeyTable {
  readonly #byLength: ({ bytes: Buffer; index: number }[] | undefined)[] = [];
  readonly #keys: readonly string[];

  /** `keys[i]` is found as `i`. */
  constructor(keys: readonly string[]) {
    this.#keys = keys;
    keys.forEach((key, index) => {
      const bytes = Buffer.from(key, 'utf8');
      (this.#byLength[bytes.length] ??= []).push({ bytes, index });
    });
  }

  /** The index of the key whose bytes are `buf[at, at + length)`, or -1. */
  find(buf: Buffer, at: number, length: number): number {
    const candidates = this.#byLength[length];
    if (candidates === undefined) return -1;
    next: for (const c of candidates) {
      const k = c.bytes;
      for (let j = length - 1; j >= 0; j--) if (buf[at + j] !== k[j]) continue next;
      return c.index;
    }
    return -1;
  }

  name(index: number): string {
    return this.#keys[index] as string;
  }
}

/** The top-level span fields a rule can read (fields.ts's accessor semantics), with their view slots. */
const TOP_SLOTS: Record<string, { at: Slot; string: boolean }> = Object.fromEntries(
  SPAN_FIELD_NAMES.filter((f) => SCALAR_FIELDS.has(f)).map((f) => [f, { at: FIELD_SLOTS[f], string: SPAN_FIELDS[f] === 'string' }]),
);

export interface RuleSetShape {
  serial: number;
  /** Keys of `attributes` / `resource` that discovery reads. */
  attributes: KeyTable;
  resource: KeyTable;
  /** Top-level span fields that rules read (e.g. `span_name` as endpoint key). */
  top: { at: Slot; string: boolean }[];
  /**
   * Per attribute key (by its index in {@link attributes}), when it is read only as an instance or
   * endpoint key of rules: those rules' attribute predicate keys, one bit mask (of key indexes) per rule
   * — the key counts in a span's shape only when every key of one mask is present, since a rule reads its
   * instance and endpoint keys only once its predicate holds. Empty for a key that always counts.
   * Undefined when the set has more attribute keys than a mask holds (every key then counts).
   */
  conditions: (readonly number[])[] | undefined;
  /** Where {@link hashAttributes} notes each key's value while walking a map (two slots per key). */
  scratch: Int32Array;
}

/** Attribute keys a condition mask can name (bits of a small integer). */
const MASK_KEYS = 30;

/**
 * {@link RuleSetShape.conditions}: a key is unconditional when discovery reads it outside the rules
 * (FIXED_FIELDS), when it is any rule's predicate key, when a rule that reads it has no attribute
 * predicate key (its predicate may hold whatever the attributes are), or when `fallback` reads it (the
 * `other` rule is the category of a span no other rule matches, its predicate unchecked); otherwise it
 * counts when all the attribute predicate keys of one rule that reads it are present (presence being
 * necessary for a predicate to hold, the shape keeps every value discovery can read).
 */
function keyConditions(attributes: readonly string[], rules: readonly Rule[], fallback: Rule): (readonly number[])[] | undefined {
  if (attributes.length > MASK_KEYS) return undefined;
  const index = new Map(attributes.map((k, i) => [k, i]));
  const attributeKey = (f: Field): number | undefined => {
    const [first, second] = keyPair(f.key);
    return first === 'attributes' ? index.get(second) : undefined;
  };
  const always = new Set<number>();
  for (const key of FIXED_FIELDS) {
    const [first, second] = keyPair(key);
    const k = index.get(second);
    if (first === 'attributes' && k !== undefined) always.add(k);
  }
  const masks: number[][] = attributes.map(() => []);
  for (const r of rules) {
    let mask = 0;
    for (const f of r.predicate) {
      const k = attributeKey(f);
      if (k !== undefined) {
        always.add(k);
        mask |= 1 << k;
      }
    }
    if (r === fallback) mask = 0;
    for (const f of [...r.instanceKeys, ...(r.endpoint ? [r.endpoint] : [])]) {
      const k = attributeKey(f);
      if (k === undefined) continue;
      if (mask === 0) always.add(k);
      else masks[k]?.push(mask);
    }
  }
  return masks.map((m, k) => (always.has(k) ? [] : m));
}

const ruleSets = new WeakMap<RuleSet, RuleSetShape>();
let serials = 0;

/** The fields a span's discovery depends on under a rule set (computed once per set). */
function shapeOf(rules: RuleSet): RuleSetShape {
  let s = ruleSets.get(rules);
  if (!s) {
    const keys = new Set(FIXED_FIELDS);
    const add = (f: Field | undefined): void => {
      if (f) keys.add(f.key);
    };
    const all = [...rules.category, rules.other, ...rules.system, ...rules.platform, ...rules.sdk];
    for (const r of all) {
      r.predicate.forEach(add);
      r.instanceKeys.forEach(add);
      add(r.endpoint);
    }
    const attributes: string[] = [];
    const resource: string[] = [];
    const top = new Set<string>();
    for (const key of [...keys].sort()) {
      const [first, second] = keyPair(key);
      if (first === 'attributes') attributes.push(second);
      else if (first === 'resource') resource.push(second);
      else if (!Object.hasOwn(TOP_SLOTS, first) && Object.hasOwn(TOP_SLOTS, second)) top.add(second); // else the accessor reads nothing
    }
    const conditions = keyConditions(attributes, all, rules.other);
    s = {
      serial: ++serials,
      attributes: new KeyTable(attributes),
      resource: new KeyTable(resource),
      top: [...top].map((f) => TOP_SLOTS[f] as { at: Slot; string: boolean }),
      // A set whose keys all count hashes attributes as they come (hashMapEntries).
      conditions: conditions?.some((c) => c.length > 0) ? conditions : undefined,
      scratch: new Int32Array(2 * attributes.length),
    };
    ruleSets.set(rules, s);
  }
  return s;
}

/** Span `i` as discovery reads it under `rules`: only the attribute and resource keys of its shape decoded. */
export function shapeSpan(view: SpanView, i: number, rules: RuleSet): DiscoverySpan {
  const s = shapeOf(rules);
  return view.spanReading(i, s.attributes, s.resource);
}

/** Longest resource encoding {@link ResourceMemo} keeps (longer ones are hashed every time). */
const MEMO_BYTES = 4_096;
/** Resources {@link ResourceMemo} remembers (a power of two). */
const MEMO_SLOTS = 4;
/** Bytes at the end of a remembered encoding compared in JavaScript before the rest is compared natively. */
const TAIL_BYTES = 24;

/**
 * The resource maps hashed last (up to {@link MEMO_SLOTS}), by their encoded bytes, with the lanes of
 * their hashes: spans of one SDK batch share their resource, and a record of one service holds the
 * batches of its few instances interleaved, so a span's resource is almost always one of the last few.
 * An Avro map's encoding delimits itself, so a span whose bytes at the resource's position start with a
 * remembered encoding has that resource. The bytes are copied (a record's buffer may be a slice of a
 * whole fetch response, which the memo must not keep alive). One per caller (the pipeline); reads are
 * synchronous.
 */
export class ResourceMemo {
  readonly #bytes = Buffer.alloc(MEMO_BYTES * MEMO_SLOTS);
  /** Encoded length per slot; -1 for an empty slot. */
  readonly #length = new Int32Array(MEMO_SLOTS).fill(-1);
  readonly #a = new Int32Array(MEMO_SLOTS);
  readonly #b = new Int32Array(MEMO_SLOTS);
  /** The rule-set shape the slots were hashed under (its serial; another empties them). */
  #serial = 0;
  /** The slot that matched or was filled last (tried first), and the next slot to fill. */
  #last = 0;
  #next = 0;
  /** The lanes of the resource's hash after {@link hash}. */
  a = 0;
  b = 0;
  readonly #hash = new Hasher();

  /** Leaves the lanes of the resource map at `at` (under the rule-set shape `s`) in {@link a}, {@link b}. */
  hash(view: SpanView, at: number, s: RuleSetShape): void {
    const { buf } = view;
    if (this.#serial !== s.serial) {
      this.#length.fill(-1);
      this.#serial = s.serial;
    }
    const lengths = this.#length;
    const first = this.#last;
    for (let k = 0; k < MEMO_SLOTS; k++) {
      const slot = (first + k) & (MEMO_SLOTS - 1);
      const length = lengths[slot] as number;
      if (length < 0 || at + length > buf.length) continue;
      const from = slot * MEMO_BYTES;
      // The last bytes first, in JavaScript: a map's last value is where resources of one service's
      // instances tend to differ (bk.instance.id), and a native compare costs a call.
      const bytes = this.#bytes;
      let j = length - 1;
      const stop = Math.max(0, length - TAIL_BYTES);
      while (j >= stop && buf[at + j] === bytes[from + j]) j--;
      if (j >= stop) continue;
      if (stop > 0 && buf.compare(bytes, from, from + stop, at, at + stop) !== 0) continue;
      this.a = this.#a[slot] as number;
      this.b = this.#b[slot] as number;
      this.#last = slot;
      return;
    }
    const h = this.#hash;
    h.begin(0);
    const end = hashMapEntries(view, at, s.resource, h);
    this.a = h.a;
    this.b = h.b;
    if (end - at > MEMO_BYTES) return;
    const slot = this.#next;
    this.#next = (slot + 1) & (MEMO_SLOTS - 1);
    lengths[slot] = buf.copy(this.#bytes, slot * MEMO_BYTES, at, end);
    this.#a[slot] = h.a;
    this.#b[slot] = h.b;
    this.#last = slot;
  }
}

/**
 * Hashes span `i`'s shape into the caller's hasher `h`, read from the record's bytes: its key is then the
 * two lanes `h.a`, `h.b` (nothing is allocated). The attribute and resource maps are walked, hashing the
 * index and the encoded value of only the keys discovery reads; absent keys add nothing, so presence is
 * part of the shape. Equal encodings are equal values, so equal keys mean equal discovery (a value
 * encoded two ways only costs a second cache entry). The resource's part is its own hash, which `memo`
 * reuses while consecutive spans carry the same resource.
 */
export function hashShape(view: SpanView, i: number, rules: RuleSet, h: Hasher, memo: ResourceMemo): void {
  const s = shapeOf(rules);
  const { buf } = view;
  h.begin(s.serial);
  h.num(view.at(i, Slot.BIZ));
  const app = view.at(i, Slot.APP_AT);
  h.bytes(buf, app, app + view.at(i, Slot.APP_LEN));
  h.num(view.at(i, Slot.KIND));
  h.num(view.at(i, Slot.PARENT_LEN) === 0 ? 0 : 1);
  for (const f of s.top) {
    if (f.string) {
      const at = view.at(i, f.at);
      h.bytes(buf, at, at + view.at(i, f.at + 1));
    } else {
      h.num(view.at(i, f.at));
    }
  }
  if (s.conditions) hashAttributes(view, view.at(i, Slot.ATTRIBUTES_AT), s, s.conditions, h);
  else hashMapEntries(view, view.at(i, Slot.ATTRIBUTES_AT), s.attributes, h);
  h.num(-1);
  memo.hash(view, view.at(i, Slot.RESOURCE_AT), s);
  h.mix(memo.a);
  h.mix(memo.b);
}

/**
 * Hashes into `h` the attribute entries at `pos` that count in the shape under `s` (see
 * {@link RuleSetShape.conditions}), in key order: each key's index, then its value's encoded bytes (the
 * last entry of a key wins, as when the map is decoded). The view was validated when read.
 */
function hashAttributes(view: SpanView, pos: number, s: RuleSetShape, conditions: readonly (readonly number[])[], h: Hasher): void {
  const { buf, skipValue, read } = view;
  const keys = s.attributes;
  const at = s.scratch;
  let present = 0;
  for (;;) {
    pos = readBlockCount(buf, pos, read, 'SpanBatch body');
    let n = read.value;
    if (n === 0) break;
    while (n-- > 0) {
      pos = readLong(buf, pos, read, 'SpanBatch body');
      const k = keys.find(buf, pos, read.value);
      pos += read.value;
      const end = skipValue(buf, pos);
      if (k >= 0) {
        present |= 1 << k;
        at[2 * k] = pos;
        at[2 * k + 1] = end;
      }
      pos = end;
    }
  }
  for (let k = 0; present >>> k !== 0; k++) {
    if ((present & (1 << k)) === 0) continue;
    const masks = conditions[k] as readonly number[];
    if (masks.length > 0) {
      let holds = false;
      for (const m of masks) if ((present & m) === m) holds = true;
      if (!holds) continue;
    }
    h.num(k);
    h.bytes(buf, at[2 * k] as number, at[2 * k + 1] as number);
  }
}

/** {@link hashShape} as one 53-bit number (tests; the pipeline keys shapes by the two lanes). */
export function shapeKey(view: SpanView, i: number, rules: RuleSet, h: Hasher, memo = new ResourceMemo()): number {
  hashShape(view, i, rules, h, memo);
  return h.end();
}

/** What the pipeline remembers of a shape: when its rows were last emitted, and its pairing facts. */
export interface Shape extends ParentFacts, ChildFacts {
  /** Unique per shape object (ParentFacts/ChildFacts `serial`): what the pairing memo is keyed by. */
  serial: number;
  /** Event time (s) the discoverers last ran for this shape. */
  seenS: number;
  /**
   * The versions of the lookups (cmdb hosts, node kinds) the discoverers read for this shape, -1 for a
   * lookup they did not read: the shape is stale once a lookup it read has changed.
   */
  cmdbVersion: number;
  kindsVersion: number;
  root: RootEndpointRow | undefined;
}

let shapeSerials = 0;

export function shapeFacts(c: ClassifiedSpan, seenS: number, versions: { cmdbVersion: number; kindsVersion: number } = { cmdbVersion: -1, kindsVersion: -1 }): Shape {
  return {
    serial: ++shapeSerials,
    bk_biz_id: c.span.bk_biz_id,
    app_name: c.span.app_name,
    seenS,
    cmdbVersion: versions.cmdbVersion,
    kindsVersion: versions.kindsVersion,
    relParent: c.filtered ? relationParent(c) : undefined,
    remoteParent: remoteParent(c),
    relChild: c.filtered ? relationChild(c) : undefined,
    remoteChild: remoteChild(c),
    root: rootRow(c),
  };
}

/**
 * The shapes seen lately, keyed by the two hash lanes of their shape ({@link hashShape}): a bounded map
 * with approximate LRU eviction in two generations (id-table.ts {@link BoundedIdMap}) — a lookup costs
 * one probe of typed arrays and allocates nothing (this is on the per-span path).
 */
export class ShapeCache extends BoundedIdMap<Shape> {}
