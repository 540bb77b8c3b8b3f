/**
 * The reference's filters (`FilterOperator`, `APMQueryFilterMixin._build_filters`) compiled to SQL.
 *
 * A filter is `{ key, operator, value: [...], options?: { is_wildcard, group_relation } }`; a list of
 * filters is AND-ed, and `{ and: [...] }` / `{ or: [...] }` nest groups. Operators:
 *
 * | operator | meaning (values are a list) |
 * | --- | --- |
 * | `equal` | the field equals one of the values (all of them with `group_relation: "and"`) |
 * | `not_equal` | the field equals none of the values (a missing field matches); with `""` among the values the field must also exist |
 * | `exists` / `not exists` | the field is present and not empty / absent or empty (values ignored) |
 * | `between` | `value[0] <= field < value[1]` |
 * | `like` / `not_like` | the field contains one of the values; with `is_wildcard` the value is a pattern (`*`, `?`) matched whole |
 * | `gt` `gte` `lt` `lte` | compared with `value[0]` (numbers for numeric fields) |
 * | `logic` | `error` on traces: the trace has errors (others: no condition, as the reference) |
 *
 * Fields are a catalog per listing ({@link SPAN_FIELDS}, {@link TRACE_FIELDS}) plus `attributes.<key>`
 * and `resource.<key>` (JSONB). Every bad filter is a ValidationError naming the filter's key.
 */
import { ValidationError } from '../common/errors.ts';

export type FieldType = 'text' | 'int' | 'bool';

export interface Field {
  /** SQL expression (a column of the listing's table alias). */
  sql: string;
  type: FieldType;
  /** The column may be NULL (trace entry-service fields before a server span arrived). */
  nullable?: boolean;
}

export const SPAN_FIELDS: Record<string, Field> = {
  trace_id: { sql: 's.trace_id', type: 'text' },
  span_id: { sql: 's.span_id', type: 'text' },
  parent_span_id: { sql: 's.parent_span_id', type: 'text' },
  span_name: { sql: 's.span_name', type: 'text' },
  kind: { sql: 's.kind', type: 'int' },
  start_time: { sql: 's.start_time', type: 'int' },
  end_time: { sql: 's.end_time', type: 'int' },
  elapsed_time: { sql: 's.elapsed_time', type: 'int' },
  'status.code': { sql: 's.status_code', type: 'int' },
  'status.message': { sql: 's.status_message', type: 'text' },
  trace_state: { sql: 's.trace_state', type: 'text' },
  'resource.service.name': { sql: 's.service_name', type: 'text' },
  category: { sql: 's.category', type: 'text' },
};
/** The reference's KEY_REPLACE_FIELDS of SpanQuery. */
export const SPAN_ALIASES: Record<string, string> = { duration: 'elapsed_time' };

export const TRACE_FIELDS: Record<string, Field> = {
  trace_id: { sql: 't.trace_id', type: 'text' },
  trace_duration: { sql: 't.trace_duration', type: 'int' },
  service_count: { sql: 't.service_count', type: 'int' },
  span_count: { sql: 't.span_count', type: 'int' },
  error: { sql: 't.error', type: 'bool' },
  error_count: { sql: 't.error_count', type: 'int' },
  min_start_time: { sql: 't.min_start_time', type: 'int' },
  max_end_time: { sql: 't.max_end_time', type: 'int' },
  span_max_duration: { sql: 't.span_max_duration', type: 'int' },
  span_min_duration: { sql: 't.span_min_duration', type: 'int' },
  root_service: { sql: 't.root_service', type: 'text', nullable: true },
  root_service_span_id: { sql: 't.root_service_span_id', type: 'text', nullable: true },
  root_service_span_name: { sql: 't.root_service_span_name', type: 'text', nullable: true },
  root_service_status_code: { sql: 't.root_service_status_code', type: 'int', nullable: true },
  root_service_category: { sql: 't.root_service_category', type: 'text', nullable: true },
  root_service_kind: { sql: 't.root_service_kind', type: 'int', nullable: true },
  root_span_id: { sql: 't.root_span_id', type: 'text' },
  root_span_name: { sql: 't.root_span_name', type: 'text' },
  root_span_service: { sql: 't.root_span_service', type: 'text' },
  root_span_kind: { sql: 't.root_span_kind', type: 'int' },
};
/** The reference's KEY_REPLACE_FIELDS of TraceQuery. */
export const TRACE_ALIASES: Record<string, string> = { duration: 'trace_duration' };

export const OPERATORS = ['equal', 'not_equal', 'exists', 'not exists', 'between', 'like', 'not_like', 'gt', 'gte', 'lt', 'lte', 'logic'] as const;
export type Operator = (typeof OPERATORS)[number];

export interface Filter {
  key: string;
  operator: Operator;
  value: (string | number | boolean)[];
  options: { is_wildcard?: boolean; group_relation?: 'and' | 'or' };
}
export type FilterNode = Filter | { and: FilterNode[] } | { or: FilterNode[] };

/** Collects `$n` parameters. */
export class Params {
  readonly values: unknown[];

  constructor(initial: unknown[] = []) {
    this.values = [...initial];
  }

  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

function fail(key: string, message: string): never {
  throw new ValidationError(`filter ${JSON.stringify(key)}: ${message}`);
}

/** Parses the request's `filters` (a list, or one node) into nodes; throws naming the bad filter. */
export function parseFilters(raw: unknown, where = 'filters', depth = 0): FilterNode[] {
  if (raw === undefined || raw === null) return [];
  if (depth > 8) throw new ValidationError(`${where}: nested more than 8 levels`);
  const list = Array.isArray(raw) ? (raw as unknown[]) : [raw];
  return list.map((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ValidationError(`${where}[${i}] must be an object`);
    const o = item as Record<string, unknown>;
    if ('and' in o || 'or' in o) {
      const op = 'and' in o ? 'and' : 'or';
      if (!Array.isArray(o[op])) throw new ValidationError(`${where}[${i}].${op} must be a list of filters`);
      const children = parseFilters(o[op], `${where}[${i}].${op}`, depth + 1);
      return op === 'and' ? { and: children } : { or: children };
    }
    if (typeof o.key !== 'string' || o.key === '') throw new ValidationError(`${where}[${i}].key must be a non-empty string`);
    const key = o.key;
    if (typeof o.operator !== 'string' || !(OPERATORS as readonly string[]).includes(o.operator)) {
      fail(key, `unsupported operator ${JSON.stringify(o.operator)} (one of ${OPERATORS.join(', ')})`);
    }
    const value = o.value === undefined ? [] : Array.isArray(o.value) ? o.value : [o.value];
    for (const v of value) if (!['string', 'number', 'boolean'].includes(typeof v)) fail(key, 'values must be strings, numbers or booleans');
    const options = (o.options ?? {}) as Record<string, unknown>;
    if (typeof options !== 'object' || Array.isArray(options)) fail(key, 'options must be an object');
    const relation = options.group_relation;
    if (relation !== undefined && relation !== 'and' && relation !== 'or') fail(key, 'options.group_relation must be "and" or "or"');
    return {
      key,
      operator: o.operator as Operator,
      value: value as (string | number | boolean)[],
      options: { ...(options.is_wildcard === true ? { is_wildcard: true } : {}), ...(relation ? { group_relation: relation } : {}) },
    };
  });
}

export interface Catalog {
  fields: Record<string, Field>;
  aliases: Record<string, string>;
  /** Column holding `attributes` / `resource` JSONB, or a builder for fields that live on spans (traces). */
  json: (prefix: 'attributes' | 'resource', key: string, cond: (col: string, k: string) => string) => string;
  /** `logic` operator: the condition for a key, or undefined for none. */
  logic?: (key: string) => string | undefined;
  /** Fields without a column here that are answered through spans (traces: span_name, kind). */
  viaSpans?: (key: string, cond: (catalog: Catalog) => string) => string | undefined;
}

function numberOf(key: string, v: string | number | boolean): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n)) fail(key, `${JSON.stringify(v)} is not a number`);
  return n;
}

function boolOf(key: string, v: string | number | boolean): boolean {
  if (v === true || v === 'true' || v === 1 || v === '1') return true;
  if (v === false || v === 'false' || v === 0 || v === '0') return false;
  return fail(key, `${JSON.stringify(v)} is not true or false`);
}

function typed(key: string, f: Field, v: string | number | boolean): string | number | boolean {
  if (f.type === 'int') return numberOf(key, v);
  if (f.type === 'bool') return boolOf(key, v);
  return String(v);
}

/** `%`/`_`/`\` escaped; `*` and `?` become wildcards when `wildcard`. */
function likePattern(v: string, wildcard: boolean): string {
  const escaped = v.replace(/[\\%_]/g, (c) => `\\${c}`);
  return wildcard ? escaped.replace(/\*/g, '%').replace(/\?/g, '_') : `%${escaped}%`;
}

function join(parts: string[], op: 'AND' | 'OR'): string {
  if (parts.length === 0) return op === 'AND' ? 'true' : 'false';
  return parts.length === 1 ? (parts[0] as string) : `(${parts.join(` ${op} `)})`;
}

/** A condition on a typed column. */
function columnCondition(f: Filter, field: Field, p: Params): string {
  const key = f.key;
  const col = field.sql;
  const rel = f.options.group_relation === 'and' ? 'AND' : 'OR';
  const exists = field.type === 'text' ? (field.nullable ? `(${col} IS NOT NULL AND ${col} <> '')` : `${col} <> ''`) : field.nullable ? `${col} IS NOT NULL` : 'true';
  const values = (): (string | number | boolean)[] => {
    if (f.value.length === 0) fail(key, `${f.operator} needs at least one value`);
    return f.value.map((v) => typed(key, field, v));
  };
  switch (f.operator) {
    case 'exists':
      return exists;
    case 'not exists':
      return `NOT ${exists}`;
    case 'equal':
      return join(values().map((v) => `${col} = ${p.add(v)}`), rel);
    case 'not_equal': {
      const conds = values().map((v) => `${col} IS DISTINCT FROM ${p.add(v)}`);
      if (f.value.includes('')) conds.push(exists);
      return join(conds, 'AND');
    }
    case 'between': {
      if (f.value.length !== 2) fail(key, 'between needs two values [from, to]');
      const [lo, hi] = values();
      return `(${col} >= ${p.add(lo)} AND ${col} < ${p.add(hi)})`;
    }
    case 'like':
    case 'not_like': {
      const conds = values().map((v) => `${field.type === 'text' ? col : `${col}::text`} LIKE ${p.add(likePattern(String(v), f.options.is_wildcard === true))}`);
      const c = join(conds, rel);
      return f.operator === 'like' ? c : `NOT COALESCE(${c}, false)`;
    }
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      const [v] = values();
      const op = { gt: '>', gte: '>=', lt: '<', lte: '<=' }[f.operator];
      return `${col} ${op} ${p.add(v)}`;
    }
    case 'logic':
      return 'true';
  }
}

/** The JSON values an equality on a JSONB key may meet: the string, and the number or boolean it spells. */
function jsonCandidates(v: string | number | boolean): unknown[] {
  const out: unknown[] = [v];
  if (typeof v === 'string') {
    if (v.trim() !== '' && Number.isFinite(Number(v))) out.push(Number(v));
    if (v === 'true' || v === 'false') out.push(v === 'true');
  } else {
    out.push(String(v));
  }
  return out;
}

/** A condition on one key of a JSONB column (`col` is the column, `k` the key). */
function jsonCondition(f: Filter, col: string, k: string, p: Params): string {
  const key = f.key;
  const rel = f.options.group_relation === 'and' ? 'AND' : 'OR';
  let keyRef: string | undefined;
  const keyParam = (): string => (keyRef ??= `${p.add(k)}::text`);
  const pathParam = (): string => p.add(`$."${k.replace(/["\\]/g, (c) => `\\${c}`)}"`);
  const exists = (): string => `${col} @? ${pathParam()}::jsonpath`;
  const needValues = (): (string | number | boolean)[] => {
    if (f.value.length === 0) fail(key, `${f.operator} needs at least one value`);
    return f.value;
  };
  const equals = (v: string | number | boolean): string => join(jsonCandidates(v).map((c) => `${col} @> ${p.add(JSON.stringify({ [k]: c }))}::jsonb`), 'OR');
  const num = (): string => `(CASE WHEN jsonb_typeof(${col} -> ${keyParam()}) = 'number' THEN (${col} ->> ${keyParam()})::numeric END)`;
  switch (f.operator) {
    case 'exists':
      return exists();
    case 'not exists':
      return `NOT (${exists()})`;
    case 'equal':
      return join(needValues().map(equals), rel);
    case 'not_equal': {
      const conds = needValues().map((v) => `NOT ${equals(v)}`);
      if (f.value.includes('')) conds.push(exists());
      return join(conds, 'AND');
    }
    case 'between': {
      if (f.value.length !== 2) fail(key, 'between needs two values [from, to]');
      const [lo, hi] = f.value.map((v) => numberOf(key, v));
      return `(${num()} >= ${p.add(lo)} AND ${num()} < ${p.add(hi)})`;
    }
    case 'like':
    case 'not_like': {
      const c = join(needValues().map((v) => `(${col} ->> ${keyParam()}) LIKE ${p.add(likePattern(String(v), f.options.is_wildcard === true))}`), rel);
      return f.operator === 'like' ? c : `NOT COALESCE(${c}, false)`;
    }
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      const op = { gt: '>', gte: '>=', lt: '<', lte: '<=' }[f.operator];
      return `${num()} ${op} ${p.add(numberOf(key, needValues()[0] as string | number | boolean))}`;
    }
    case 'logic':
      return 'true';
  }
}

/** Compiles filter nodes (AND-ed) to a SQL condition, adding parameters to `p`. */
export function compileFilters(nodes: readonly FilterNode[], catalog: Catalog, p: Params): string {
  return join(nodes.map((n) => compileNode(n, catalog, p)), 'AND');
}

function compileNode(node: FilterNode, catalog: Catalog, p: Params): string {
  if ('and' in node) return join(node.and.map((n) => compileNode(n, catalog, p)), 'AND');
  if ('or' in node) return join(node.or.map((n) => compileNode(n, catalog, p)), 'OR');
  const key = catalog.aliases[node.key] ?? node.key;
  const f = key === node.key ? node : { ...node, key };
  if (f.operator === 'logic') return catalog.logic?.(key) ?? 'true';
  const field = catalog.fields[key];
  if (field) return columnCondition(f, field, p);
  for (const prefix of ['attributes', 'resource'] as const) {
    if (key.startsWith(`${prefix}.`) && key.length > prefix.length + 1) {
      return catalog.json(prefix, key.slice(prefix.length + 1), (col, k) => jsonCondition(f, col, k, p));
    }
  }
  const viaSpans = catalog.viaSpans?.(key, (spanCatalog) => compileNode(f, spanCatalog, p));
  if (viaSpans !== undefined) return viaSpans;
  return fail(node.key, `unknown field (fields: ${[...Object.keys(catalog.fields), 'attributes.<key>', 'resource.<key>'].join(', ')})`);
}

/** The SQL expression of a field for grouping and top values (JSONB keys as text). */
export function fieldExpression(key: string, catalog: Catalog, p: Params): { sql: string; type: FieldType } {
  const k = catalog.aliases[key] ?? key;
  const field = catalog.fields[k];
  if (field) return { sql: field.sql, type: field.type };
  for (const prefix of ['attributes', 'resource'] as const) {
    if (k.startsWith(`${prefix}.`) && k.length > prefix.length + 1) {
      return { sql: catalog.json(prefix, k.slice(prefix.length + 1), (col, jk) => `(${col} ->> ${p.add(jk)}::text)`), type: 'text' };
    }
  }
  throw new ValidationError(`unknown field ${JSON.stringify(key)}`);
}

/** Spans of the span listing: table alias `s`. */
export const spanCatalog: Catalog = {
  fields: SPAN_FIELDS,
  aliases: SPAN_ALIASES,
  json: (prefix, key, cond) => cond(`s.${prefix}`, key),
};

/** A condition on the spans of trace `t` (the reference answers span fields on traces from `collections`). */
function traceSpans(cond: string): string {
  return `EXISTS (SELECT 1 FROM storage_span s WHERE s.trace_id = t.trace_id AND s.bk_biz_id = t.bk_biz_id AND s.app_name = t.app_name
    AND s.end_time >= t.min_start_time AND s.end_time <= t.max_end_time AND ${cond})`;
}

/** Trace summaries of the trace listing: table alias `t`; span fields match traces with such a span. */
export const traceCatalog: Catalog = {
  fields: TRACE_FIELDS,
  aliases: TRACE_ALIASES,
  json: (prefix, key, cond) => traceSpans(cond(`s.${prefix}`, key)),
  logic: (key) => (key === 'error' ? 't.error_count <> 0' : undefined),
  viaSpans: (key, cond) => (key in SPAN_FIELDS || key in SPAN_ALIASES ? traceSpans(cond(spanCatalog)) : undefined),
};
