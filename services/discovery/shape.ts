/**
 * Span shapes: the discoverers are pure functions of a span's fields that the rules and discoverers
 * read, of the rule set, and of two lookups (cmdb hosts, topo node kinds). Spans with the same values of
 * all of these — the same "shape" — produce the same rows and the same pairing facts. The pipeline keeps
 * a bounded LRU of shapes: a span whose shape was processed less than the touch interval ago skips the
 * discoverers (every row they would emit is already written or queued within the touch interval) and
 * takes its pairing facts from the cache. This is what makes per-span cost small: one hash and one cache
 * lookup instead of one per discovered row.
 */
import type { ClassifiedSpan } from './classify.ts';
import { relationChild, relationParent } from './discoverers/relation.ts';
import { remoteChild, remoteParent } from './discoverers/remote-service-relation.ts';
import { rootRow } from './discoverers/root-endpoint.ts';
import { accessor, keyPair, type Accessor, type DiscoverySpan } from './fields.ts';
import * as hash from './hash.ts';
import type { RootEndpointRow } from './records.ts';
import type { Field, RuleSet } from './rules.ts';
import type { ChildFacts, ParentFacts } from './window.ts';

/** Fields the discoverers read besides those the rules name. */
const FIXED_FIELDS = [
  'resource.service.name', 'resource.net.host.ip', 'resource.bk.instance.id', 'resource.telemetry.sdk.name', 'resource.telemetry.sdk.version',
  'resource.telemetry.sdk.language', 'attributes.peer.service', 'attributes.net.host.ip', 'attributes.db.system', 'attributes.messaging.system',
  'attributes.rpc.system', 'attributes.http.method', 'attributes.messaging.destination',
];

interface RuleSetShape {
  serial: number;
  /** Keys of `attributes` / `resource` that discovery reads. */
  attributes: Set<string>;
  resource: Set<string>;
  /** Top-level span fields that rules read (e.g. `span_name` as endpoint key). */
  top: Accessor[];
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
    for (const r of [...rules.category, rules.other, ...rules.system, ...rules.platform, ...rules.sdk]) {
      r.predicate.forEach(add);
      r.instanceKeys.forEach(add);
      add(r.endpoint);
    }
    s = { serial: ++serials, attributes: new Set(), resource: new Set(), top: [] };
    for (const key of [...keys].sort()) {
      const [first, second] = keyPair(key);
      if (first === 'attributes') s.attributes.add(second);
      else if (first === 'resource') s.resource.add(second);
      else s.top.push(accessor([first, second]));
    }
    ruleSets.set(rules, s);
  }
  return s;
}

/**
 * The hash of a span's shape; `lookupVersion` changes when lookup data the discoverers use changes.
 * The attribute and resource maps are walked once, hashing only the keys discovery reads (a keyed
 * lookup per possible field costs more on these dictionary-like objects); absent keys add nothing, so
 * presence is part of the shape.
 */
export function shapeKey(span: DiscoverySpan, rules: RuleSet, lookupVersion: number): number {
  const s = shapeOf(rules);
  hash.begin(s.serial);
  hash.num(lookupVersion);
  hash.num(span.bk_biz_id);
  hash.str(span.app_name);
  hash.num(span.kind);
  hash.num(span.parent_span_id === '' ? 0 : 1);
  for (const get of s.top) hash.value(get(span));
  const attributes = span.attributes;
  for (const k in attributes) {
    if (!s.attributes.has(k)) continue;
    hash.str(k);
    hash.value(attributes[k]);
  }
  hash.num(-1);
  const resource = span.resource;
  for (const k in resource) {
    if (!s.resource.has(k)) continue;
    hash.str(k);
    hash.value(resource[k]);
  }
  return hash.end();
}

/** What the pipeline remembers of a shape: when its rows were last emitted, and its pairing facts. */
export interface Shape extends ParentFacts, ChildFacts {
  /** Event time (s) the discoverers last ran for this shape. */
  seenS: number;
  root: RootEndpointRow | undefined;
}

export function shapeFacts(c: ClassifiedSpan, seenS: number): Shape {
  return {
    bk_biz_id: c.span.bk_biz_id,
    app_name: c.span.app_name,
    seenS,
    relParent: c.filtered ? relationParent(c) : undefined,
    remoteParent: remoteParent(c),
    relChild: c.filtered ? relationChild(c) : undefined,
    remoteChild: remoteChild(c),
    root: rootRow(c),
  };
}

/**
 * A bounded map with approximate LRU eviction in two generations: lookups hit the young map first and
 * promote entries found in the old one; when the young map is full the old one is dropped and the young
 * one becomes old. At most `maxShapes` entries, at a fraction of a full LRU's cost per lookup (this is
 * on the per-span path).
 */
export class ShapeCache {
  readonly #half: number;
  #young = new Map<number, Shape>();
  #old = new Map<number, Shape>();

  constructor(maxShapes: number) {
    this.#half = Math.max(1, Math.floor(maxShapes / 2));
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  get(key: number): Shape | undefined {
    const young = this.#young.get(key);
    if (young !== undefined) return young;
    const old = this.#old.get(key);
    if (old !== undefined) this.set(key, old);
    return old;
  }

  set(key: number, shape: Shape): void {
    if (this.#young.size >= this.#half && !this.#young.has(key)) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, shape);
  }
}
