/**
 * Merging what spans say about a topo node. Every merge here is commutative and associative, so the
 * result does not depend on the order spans arrive in, on how they are split between flushes, or on how
 * many discovery instances share the work (the reference's "last span wins" is order-dependent).
 *
 * - extra_data: the (category, kind, predicate_value) of the best-ranked category wins (db, messaging,
 *   async_backend, rpc, http, custom categories, then `other`, then none), ties broken by kind and by
 *   predicate value (non-empty first, then the smaller: values are raw typed JSON values, compared as
 *   strings when both are, else by their JSON text); `service_language` is the smallest non-empty one,
 *   else null (no SDK language), else `''`. So `other` never overwrites a real category, as in the reference.
 * - system / sdk: union by name; per key of extra_data the smallest non-empty value.
 * - platform: k8s before node before others (then by name); same name → extra_data merged per key.
 * - source: `trace` added to whatever the row had.
 */
import type { JsonValue, NamedEntry, NodeExtra, NodeRow } from './records.ts';

const RANK = new Map<string, number>([['db', 0], ['messaging', 1], ['async_backend', 2], ['rpc', 3], ['http', 4]]);

function categoryRank(category: string): number {
  return RANK.get(category) ?? (category === 'other' ? 6 : category === '' ? 7 : 5);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Non-empty values first (null and `''` are empty), then the smaller; typed values by their JSON text. */
function compareValue(a: JsonValue, b: JsonValue): number {
  const ea = a === null || a === '';
  const eb = b === null || b === '';
  if (ea || eb) return ea === eb ? (a === b ? 0 : a === null ? -1 : 1) : ea ? 1 : -1;
  if (typeof a === 'string' && typeof b === 'string') return compareText(a, b);
  return compareText(JSON.stringify(a), JSON.stringify(b));
}

function smallerValue<V extends JsonValue>(a: V, b: V): V {
  return compareValue(a, b) <= 0 ? a : b;
}

function compareExtra(a: NodeExtra, b: NodeExtra): number {
  return categoryRank(a.category) - categoryRank(b.category) || compareText(a.category, b.category) || compareText(a.kind, b.kind) || compareValue(a.predicate_value, b.predicate_value);
}

export function mergeExtra(a: NodeExtra | undefined, b: NodeExtra | undefined): NodeExtra | undefined {
  if (!a) return b;
  if (!b) return a;
  const best = compareExtra(a, b) <= 0 ? a : b;
  const language = smallerValue(a.service_language, b.service_language);
  return best.service_language === language ? best : { ...best, service_language: language };
}

function mergeExtraData(a: Record<string, JsonValue>, b: Record<string, JsonValue>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    out[k] = Object.hasOwn(a, k) ? (Object.hasOwn(b, k) ? smallerValue(a[k] ?? null, b[k] ?? null) : (a[k] ?? null)) : (b[k] ?? null);
  }
  return out;
}

export function mergeEntries(a: readonly NamedEntry[] | undefined, b: readonly NamedEntry[] | undefined): NamedEntry[] | undefined {
  if (!a || a.length === 0) return b ? [...b] : undefined;
  if (!b || b.length === 0) return [...a];
  const byName = new Map<string, NamedEntry>();
  for (const e of [...a, ...b]) {
    const seen = byName.get(e.name);
    byName.set(e.name, seen ? { name: e.name, extra_data: mergeExtraData(seen.extra_data, e.extra_data) } : e);
  }
  return [...byName.values()].sort((x, y) => compareText(x.name, y.name));
}

const PLATFORM_RANK = new Map<string, number>([['k8s', 0], ['node', 1]]);

export function mergePlatform(a: NamedEntry | undefined, b: NamedEntry | undefined): NamedEntry | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.name === b.name) return { name: a.name, extra_data: mergeExtraData(a.extra_data, b.extra_data) };
  const order = (PLATFORM_RANK.get(a.name) ?? 2) - (PLATFORM_RANK.get(b.name) ?? 2) || compareText(a.name, b.name);
  return order <= 0 ? a : b;
}

/** Merges two contributions to the same node. */
export function mergeNode(a: NodeRow, b: NodeRow): NodeRow {
  const extra = mergeExtra(a.extra, b.extra);
  const system = mergeEntries(a.system, b.system);
  const platform = mergePlatform(a.platform, b.platform);
  const sdk = mergeEntries(a.sdk, b.sdk);
  return {
    topo_key: a.topo_key,
    ...(extra ? { extra } : {}),
    ...(system ? { system } : {}),
    ...(platform ? { platform } : {}),
    ...(sdk ? { sdk } : {}),
  };
}

/** A node as stored: the JSON columns of apm_topo_node. */
export interface StoredNode {
  extra_data: Record<string, unknown>;
  system: NamedEntry[];
  platform: NamedEntry | Record<string, never>;
  sdk: NamedEntry[];
  source: string[];
}

const EMPTY_STORED: StoredNode = { extra_data: {}, system: [], platform: {}, sdk: [], source: [] };

function asText(v: unknown): string | null {
  return v === null || v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v);
}

/** A stored JSON value as it is (absent → null). */
function asJson(v: unknown): JsonValue {
  return v === undefined ? null : (v as JsonValue);
}

function storedExtra(x: Record<string, unknown>): NodeExtra | undefined {
  if (x.category === undefined && x.kind === undefined) return undefined;
  return { category: asText(x.category) ?? '', kind: asText(x.kind) ?? '', predicate_value: asJson(x.predicate_value), service_language: asText(x.service_language) };
}

function storedEntries(v: unknown): NamedEntry[] {
  if (!Array.isArray(v)) return [];
  return v.filter((e): e is NamedEntry => typeof e === 'object' && e !== null && typeof (e as NamedEntry).name === 'string')
    .map((e) => ({ name: e.name, extra_data: Object.fromEntries(Object.entries(e.extra_data ?? {}).map(([k, x]) => [k, asJson(x)])) }));
}

function storedPlatform(v: unknown): NamedEntry | undefined {
  if (typeof v !== 'object' || v === null || typeof (v as NamedEntry).name !== 'string') return undefined;
  return storedEntries([v])[0];
}

/**
 * The stored node after merging a contribution into it. Keys of extra_data / platform that discovery
 * does not own (written by other sources) are kept.
 */
export function mergeIntoStored(stored: StoredNode | undefined, row: NodeRow): StoredNode {
  const s = stored ?? EMPTY_STORED;
  const extra = mergeExtra(storedExtra(s.extra_data), row.extra);
  const before = storedPlatform(s.platform);
  const platform = mergePlatform(before, row.platform);
  return {
    extra_data: { ...s.extra_data, ...(extra ?? {}) },
    system: mergeEntries(storedEntries(s.system), row.system) ?? [],
    // Keys other sources keep on the platform (e.g. k8s workloads) survive while the platform stays the same.
    platform: platform ? (before?.name === platform.name ? ({ ...s.platform, ...platform }) : platform) : s.platform,
    sdk: mergeEntries(storedEntries(s.sdk), row.sdk) ?? [],
    source: s.source.includes('trace') ? s.source : [...s.source, 'trace'],
  };
}
