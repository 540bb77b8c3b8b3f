/**
 * The discover-rule model (README: How it works › Rules and field addressing): rows of
 * `apm_discover_rule` compiled into rules, the per-application rule set (app rules before global ones),
 * rule matching, and topo key construction.
 */
import { accessor, joinPair, keyPair, keyString, truthy, type Accessor, type DiscoverySpan, type KeyPair } from './fields.ts';

export const TOPO_SERVICE = 'service';
export const TOPO_COMPONENT = 'component';
export const TOPO_REMOTE_SERVICE = 'remote_service';
export const CATEGORY_OTHER = 'other';
export const CATEGORY_HTTP = 'http';
export const UNKNOWN_COMPONENT = 'unknown.service-component';

/** A row of `apm_discover_rule`. */
export interface RuleRow {
  bk_biz_id: number;
  app_name: string;
  type: string;
  category_id: string | null;
  topo_kind: string | null;
  predicate_key: string | null;
  instance_key: string | null;
  endpoint_key: string | null;
  sort: number;
}

export interface Field {
  /** The dotted key as written in the rule (`attributes.db.system`). */
  readonly key: string;
  readonly pair: KeyPair;
  readonly get: Accessor;
}

export interface Rule {
  readonly type: string;
  readonly categoryId: string;
  readonly topoKind: string;
  readonly sort: number;
  /** All must be truthy for the rule to match; the first one's value is "the predicate value". */
  readonly predicate: readonly Field[];
  readonly instanceKeys: readonly Field[];
  /** Absent when the rule has no endpoint key. */
  readonly endpoint: Field | undefined;
}

/** The rules one application sees, grouped as the discoverers use them. */
export interface RuleSet {
  /** `category` rules except the first `other` one, app rules first, each group by `sort`. */
  readonly category: readonly Rule[];
  /** The fallback: the first rule whose category is `other`. */
  readonly other: Rule;
  /** `category` + `other` filtered to topo kind `component`, in order. */
  readonly component: readonly Rule[];
  readonly system: readonly Rule[];
  readonly platform: readonly Rule[];
  readonly sdk: readonly Rule[];
}

/** The 12 built-in global rules (README: How it works › Rules and field addressing), as seeded by migration 0001. */
export const BUILTIN_RULES: readonly RuleRow[] = [
  ['category', 'db', 'component', 'attributes.db.system', 'attributes.db.system,attributes.net.peer.name,attributes.net.peer.ip,attributes.net.peer.port', 'span_name', 0],
  ['category', 'messaging', 'component', 'attributes.messaging.system', 'attributes.messaging.system,attributes.net.peer.name,attributes.net.peer.ip,attributes.net.peer.port', 'span_name', 1],
  ['category', 'async_backend', 'service', 'attributes.messaging.destination', 'resource.service.name', 'span_name', 2],
  ['category', 'rpc', 'service', 'attributes.trpc.namespace', 'resource.service.name', 'span_name', 3],
  ['category', 'rpc', 'service', 'attributes.rpc.system', 'resource.service.name', 'span_name', 4],
  ['category', 'http', 'service', 'attributes.http.method', 'resource.service.name', 'span_name', 5],
  ['category', 'other', 'service', '', 'resource.service.name', 'span_name', 6],
  ['system', 'trpc', 'service', 'attributes.trpc.namespace', 'attributes.trpc.namespace', '', 0],
  ['system', 'grpc', 'service', 'attributes.rpc.system', 'attributes.rpc.system', '', 1],
  ['platform', 'k8s', 'service', 'resource.k8s.bcs.cluster.id,resource.k8s.pod.name,resource.k8s.namespace.name', 'resource.k8s.bcs.cluster.id,resource.k8s.pod.name,resource.k8s.namespace.name', '', 0],
  ['platform', 'node', 'service', 'resource.net.host.ip', 'resource.net.host.ip', '', 1],
  ['sdk', '', 'service', 'resource.telemetry.sdk.name', 'resource.target', '', 0],
].map(([type, category_id, topo_kind, predicate_key, instance_key, endpoint_key, sort]) => ({
  bk_biz_id: 0,
  app_name: '',
  type: type as string,
  category_id: category_id as string,
  topo_kind: topo_kind as string,
  predicate_key: predicate_key as string,
  instance_key: instance_key as string,
  endpoint_key: endpoint_key as string,
  sort: sort as number,
}));

function field(key: string): Field {
  const pair = keyPair(key);
  return { key: joinPair(pair), pair, get: accessor(pair) };
}

/** Compiles one row. A null predicate key never matches (the reference would throw). */
export function compileRule(row: RuleRow): Rule {
  const predicateKeys = (row.predicate_key ?? '').split(',');
  return {
    type: row.type,
    categoryId: row.category_id ?? '',
    topoKind: row.topo_kind ?? '',
    sort: row.sort,
    predicate: predicateKeys.map(field),
    instanceKeys: row.instance_key ? row.instance_key.split(',').map(field) : [],
    endpoint: row.endpoint_key ? field(row.endpoint_key) : undefined,
  };
}

/** The built-in `other` rule, used when an application's rules have none (the reference fails instead). */
const FALLBACK_OTHER = compileRule(BUILTIN_RULES.find((r) => r.category_id === CATEGORY_OTHER) as RuleRow);

function byScopeThenSort(a: RuleRow, b: RuleRow): number {
  const scope = (r: RuleRow): number => (r.bk_biz_id === 0 && r.app_name === '' ? 1 : 0);
  return scope(a) - scope(b) || a.sort - b.sort;
}

/**
 * Builds an application's rule set from its own rows and the global rows (any order): app rules first,
 * then global rules, each ordered by `sort` (no de-duplication, as the reference).
 */
export function buildRuleSet(rows: readonly RuleRow[]): RuleSet & { readonly fallbackOther: boolean } {
  const sorted = [...rows].sort(byScopeThenSort).map(compileRule);
  const ofType = (type: string): Rule[] => sorted.filter((r) => r.type === type);
  const categoryAll = ofType('category');
  // The reference picks "the" other rule among all rows of the requested types: for category lookups the
  // first category row whose category is `other`.
  const otherIndex = categoryAll.findIndex((r) => r.categoryId === CATEGORY_OTHER);
  const other = otherIndex >= 0 ? (categoryAll[otherIndex] as Rule) : FALLBACK_OTHER;
  const category = categoryAll.filter((r) => r.categoryId !== CATEGORY_OTHER);
  return {
    category,
    other,
    component: [...category, other].filter((r) => r.topoKind === TOPO_COMPONENT),
    system: ofType('system'),
    platform: ofType('platform'),
    sdk: ofType('sdk'),
    fallbackOther: otherIndex < 0,
  };
}

/** Whether every predicate field of `rule` is truthy on the span. */
export function predicateHolds(rule: Rule, span: DiscoverySpan): boolean {
  for (const f of rule.predicate) if (!truthy(f.get(span))) return false;
  return true;
}

/** The first rule whose predicate holds (and `extra` accepts), else `fallback`. */
export function matchRule(span: DiscoverySpan, rules: readonly Rule[], fallback: Rule, extra?: (rule: Rule) => boolean): Rule;
export function matchRule(span: DiscoverySpan, rules: readonly Rule[], fallback?: undefined, extra?: (rule: Rule) => boolean): Rule | undefined;
export function matchRule(span: DiscoverySpan, rules: readonly Rule[], fallback?: Rule, extra?: (rule: Rule) => boolean): Rule | undefined {
  for (const r of rules) if (predicateHolds(r, span) && (!extra || extra(r))) return r;
  return fallback;
}

/** The raw value of the rule's first predicate field. */
export function predicateValue(rule: Rule, span: DiscoverySpan): unknown {
  return rule.predicate[0]?.get(span);
}

/**
 * The topo key of a span under a rule (reference `get_topo_instance_key`): a component rule in simple
 * mode gives the predicate value (the caller prefixes the service); a remote-service rule starts with
 * its category; otherwise the instance-key values joined by `:`.
 */
export function topoKey(rule: Rule, span: DiscoverySpan, simple = true): string {
  if (rule.topoKind === TOPO_COMPONENT && simple && rule.predicate.length > 0) {
    const v = predicateValue(rule, span);
    return v === undefined ? UNKNOWN_COMPONENT : keyString(v);
  }
  const parts: string[] = rule.topoKind === TOPO_REMOTE_SERVICE ? [rule.categoryId] : [];
  for (const f of rule.instanceKeys) parts.push(keyString(f.get(span)));
  return parts.join(':');
}

/** The node key a span has under its matched rule: components are prefixed with the calling service. */
export function nodeKey(rule: Rule, span: DiscoverySpan, service: string): string {
  const key = topoKey(rule, span);
  return rule.topoKind === TOPO_COMPONENT ? `${service}-${key}` : key;
}
