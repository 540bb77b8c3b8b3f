/**
 * The requests of the reference's GSE routing API, checked as the reference's request serializers
 * (bk-monitor `api/gse/default.py`: AddStreamTo, UpdateStreamTo, DeleteStreamTo, QueryStreamTo, AddRoute,
 * UpdateRoute, DeleteRoute, QueryRoute) check them, plus what bkstream needs to publish by them:
 *
 * - field rules as Django REST framework applies them: a required field missing is "This field is
 *   required."; a CharField takes strings (numbers become text; blank only where the reference allows it);
 *   an IntegerField takes integers and integer strings; unknown keys are ignored (ESB's `bk_app_code`,
 *   `bk_username`, `bk_tenant_id`, …);
 * - stricter than the reference, because bkstream publishes to Kafka only: `report_mode` must be `kafka`
 *   (the reference also has redis, pulsar and file), a route target must have `kafka`, ports are 1–65535,
 *   `sasl_mechanisms` and `security_protocol` must be ones the publishers speak, names in one request are
 *   unique.
 *
 * Every problem of a request is reported at once ({@link GseRequestError}), each with its field path.
 */
import { ValidationError } from '../../common/errors.ts';
import { SASL_MECHANISMS, SECURITY_PROTOCOLS, type KafkaStreamTo, type RouteItemDoc, type StorageAddress } from '../../common/gse/records.ts';

export interface FieldProblem {
  /** Dotted path of the field, e.g. `stream_to.kafka.storage_address.0.port`. */
  field: string;
  message: string;
}

/** A request the reference's serializer (or bkstream's stricter rule) refuses. */
export class GseRequestError extends ValidationError {
  readonly problems: readonly FieldProblem[];
  constructor(problems: readonly FieldProblem[]) {
    super(problems.map((p) => `${p.field}: ${p.message}`).join('; '));
    this.problems = problems;
  }
}

export interface Operation {
  operator_name: string;
}

/** A stream_to as add_streamto / update_streamto give it (the password plain, or absent). */
export interface StreamToSpec {
  name: string;
  report_mode: 'kafka';
  data_log_path?: string;
  kafka: KafkaStreamTo;
}

export interface StreamFilter {
  name: string;
  field_index: number;
  field_data_type: 'int' | 'string' | 'bytes';
  field_data_value: string;
  field_separator?: string;
  field_in: 'protocol' | 'data';
}

export type Label = Record<string, unknown>;

export interface AddStreamToRequest {
  metadata: { plat_name: string; label?: Label };
  operation: Operation;
  stream_to: StreamToSpec;
}

export interface UpdateStreamToRequest {
  condition: { stream_to_id: number; plat_name: string };
  operation: Operation;
  specification: { stream_to: StreamToSpec };
}

export interface DeleteStreamToRequest {
  condition: { stream_to_id: number; plat_name: string };
  operation: Operation;
}

export interface QueryStreamToRequest {
  condition: { plat_name: string; stream_to_id?: number; label?: Label };
  operation: Operation;
}

export interface AddRouteRequest {
  metadata: { plat_name: string; label?: Label; channel_id?: number };
  operation: Operation;
  route: RouteItemDoc[];
  stream_filters: StreamFilter[];
}

export interface UpdateRouteRequest {
  condition: { channel_id: number; plat_name: string; label?: Label };
  operation: Operation;
  specification: { route?: RouteItemDoc[]; stream_filters?: StreamFilter[] };
}

export interface DeleteRouteRequest {
  condition: { channel_id: number; plat_name: string; label?: Label };
  operation: { operator_name: string; method: 'all' | 'specification' };
  specification?: { route?: string[]; stream_filters?: string[] };
}

export interface QueryRouteRequest {
  condition: { channel_id: number; plat_name?: string; label?: Label };
  operation: Operation;
}

// ---------------------------------------------------------------------------------------------------------
// field rules (DRF's, and their messages)

const MISSING = Symbol('missing');
type Raw = unknown;

/** Collects problems while reading one request. */
class Reader {
  readonly problems: FieldProblem[] = [];

  fail(field: string, message: string): typeof MISSING {
    this.problems.push({ field, message });
    return MISSING;
  }

  /** The value of `key`, or MISSING (after a "required" problem when `required`). */
  field(obj: Record<string, Raw>, path: string, key: string, required: boolean): unknown {
    const v = obj[key];
    if (v === undefined || v === null) return required ? this.fail(join(path, key), 'This field is required.') : MISSING;
    return v;
  }

  dict(obj: Record<string, Raw>, path: string, key: string, required: boolean): Record<string, Raw> | typeof MISSING {
    const v = this.field(obj, path, key, required);
    if (v === MISSING) return MISSING;
    if (typeof v !== 'object' || Array.isArray(v)) return this.fail(join(path, key), `Invalid data. Expected a dictionary, but got ${typeName(v)}.`);
    return v as Record<string, Raw>;
  }

  str(obj: Record<string, Raw>, path: string, key: string, required: boolean, options: { allowBlank?: boolean; maxLength?: number } = {}): string | typeof MISSING {
    const v = this.field(obj, path, key, required);
    if (v === MISSING) return MISSING;
    if (typeof v !== 'string' && (typeof v !== 'number' || !Number.isFinite(v))) return this.fail(join(path, key), 'Not a valid string.');
    const s = String(v).trim();
    if (s === '' && !options.allowBlank) return this.fail(join(path, key), 'This field may not be blank.');
    if (options.maxLength !== undefined && s.length > options.maxLength) return this.fail(join(path, key), `Ensure this field has no more than ${options.maxLength} characters.`);
    return s;
  }

  int(obj: Record<string, Raw>, path: string, key: string, required: boolean, bounds: { min?: number; max?: number } = {}): number | typeof MISSING {
    const v = this.field(obj, path, key, required);
    if (v === MISSING) return MISSING;
    let n: number | undefined;
    if (typeof v === 'number' && Number.isSafeInteger(v)) n = v;
    else if (typeof v === 'string' && /^\s*-?\d{1,15}\s*$/.test(v)) n = Number(v.trim());
    if (n === undefined) return this.fail(join(path, key), 'A valid integer is required.');
    if (bounds.min !== undefined && n < bounds.min) return this.fail(join(path, key), `Ensure this value is greater than or equal to ${bounds.min}.`);
    if (bounds.max !== undefined && n > bounds.max) return this.fail(join(path, key), `Ensure this value is less than or equal to ${bounds.max}.`);
    return n;
  }

  choice<T extends string>(obj: Record<string, Raw>, path: string, key: string, required: boolean, choices: readonly T[]): T | typeof MISSING {
    const v = this.field(obj, path, key, required);
    if (v === MISSING) return MISSING;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) return this.fail(join(path, key), `"${String(v)}" is not a valid choice.`);
    return v as T;
  }

  list(obj: Record<string, Raw>, path: string, key: string, required: boolean): Raw[] | typeof MISSING {
    const v = this.field(obj, path, key, required);
    if (v === MISSING) return MISSING;
    if (!Array.isArray(v)) return this.fail(join(path, key), `Expected a list of items but got type "${typeName(v)}".`);
    return v as Raw[];
  }
}

function join(path: string, key: string | number): string {
  return path === '' ? String(key) : `${path}.${key}`;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'boolean') return 'bool';
  return typeof v === 'object' ? 'dict' : typeof v;
}

function given<T>(v: T | typeof MISSING): v is T {
  return v !== MISSING;
}

/** Sets `out[key]` when the value was given. */
function put<O extends object, K extends keyof O>(out: O, key: K, v: O[K] | typeof MISSING): void {
  if (v !== MISSING) out[key] = v;
}

/** The request body as an object; anything else is refused at once (there are no fields to report). */
function body(raw: unknown): Record<string, Raw> {
  if (raw === undefined) throw new GseRequestError([{ field: 'body', message: 'This field is required.' }]);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new GseRequestError([{ field: 'body', message: `Invalid data. Expected a dictionary, but got ${typeName(raw)}.` }]);
  return raw as Record<string, Raw>;
}

function done<T>(r: Reader, value: T): T {
  if (r.problems.length > 0) throw new GseRequestError(r.problems);
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// pieces

const NAME_MAX = 128;
const PLAT_MAX = 64;

function operation(r: Reader, o: Record<string, Raw>): Operation {
  const op = r.dict(o, '', 'operation', true);
  const name = given(op) ? r.str(op, 'operation', 'operator_name', true, { maxLength: NAME_MAX }) : MISSING;
  return { operator_name: given(name) ? name : '' };
}

function label(r: Reader, o: Record<string, Raw>, path: string): Label | typeof MISSING {
  return r.dict(o, path, 'label', false);
}

function storageAddresses(r: Reader, k: Record<string, Raw>, path: string): StorageAddress[] {
  const list = r.list(k, path, 'storage_address', true);
  if (!given(list)) return [];
  const here = join(path, 'storage_address');
  if (list.length === 0) r.fail(here, 'This list may not be empty.');
  const out: StorageAddress[] = [];
  list.forEach((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      r.fail(join(here, i), `Invalid data. Expected a dictionary, but got ${typeName(item)}.`);
      return;
    }
    const a = item as Record<string, Raw>;
    const ip = r.str(a, join(here, i), 'ip', true, { maxLength: 253 });
    const port = r.int(a, join(here, i), 'port', true, { min: 1, max: 65_535 });
    if (given(ip) && given(port)) out.push({ ip, port });
  });
  return out;
}

function streamToSpec(r: Reader, s: Record<string, Raw>, path: string): StreamToSpec {
  const name = r.str(s, path, 'name', true, { maxLength: NAME_MAX });
  const mode = r.choice(s, path, 'report_mode', true, ['kafka', 'redis', 'pulsar', 'file'] as const);
  if (given(mode) && mode !== 'kafka') r.fail(join(path, 'report_mode'), `"${mode}" is not supported by bkstream: its publishers write to Kafka only (report_mode kafka).`);
  const dataLogPath = r.str(s, path, 'data_log_path', false);
  const kPath = join(path, 'kafka');
  const k = r.dict(s, path, 'kafka', given(mode) && mode === 'kafka');
  const kafka: KafkaStreamTo = { storage_address: [] };
  if (given(k)) {
    kafka.storage_address = storageAddresses(r, k, kPath);
    put(kafka, 'sasl_username', r.str(k, kPath, 'sasl_username', false, { allowBlank: true, maxLength: NAME_MAX }));
    // The password is taken as given (no trimming): a SASL password may begin or end with a space.
    const passwd = k.sasl_passwd;
    if (passwd !== undefined && passwd !== null) {
      if (typeof passwd !== 'string') r.fail(join(kPath, 'sasl_passwd'), 'Not a valid string.');
      else kafka.sasl_passwd = passwd;
    }
    const mech = r.str(k, kPath, 'sasl_mechanisms', false, { allowBlank: true });
    if (given(mech) && mech !== '' && !SASL_MECHANISMS.includes(mech.toUpperCase())) r.fail(join(kPath, 'sasl_mechanisms'), `"${mech}" is not supported: one of ${SASL_MECHANISMS.join(', ')}.`);
    put(kafka, 'sasl_mechanisms', given(mech) && mech !== '' ? mech.toUpperCase() : MISSING);
    const proto = r.str(k, kPath, 'security_protocol', false, { allowBlank: true });
    if (given(proto) && proto !== '' && !SECURITY_PROTOCOLS.includes(proto.toUpperCase())) r.fail(join(kPath, 'security_protocol'), `"${proto}" is not supported: one of ${SECURITY_PROTOCOLS.join(', ')}.`);
    put(kafka, 'security_protocol', given(proto) && proto !== '' ? proto.toUpperCase() : MISSING);
  }
  return { name: given(name) ? name : '', report_mode: 'kafka', ...(given(dataLogPath) ? { data_log_path: dataLogPath } : {}), kafka };
}

function routeItems(r: Reader, list: Raw[], path: string): RouteItemDoc[] {
  const out: RouteItemDoc[] = [];
  const names = new Set<string>();
  list.forEach((raw, i) => {
    const here = join(path, i);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      r.fail(here, `Invalid data. Expected a dictionary, but got ${typeName(raw)}.`);
      return;
    }
    const item = raw as Record<string, Raw>;
    const name = r.str(item, here, 'name', true, { maxLength: NAME_MAX });
    if (given(name)) {
      if (names.has(name)) r.fail(join(here, 'name'), `Duplicate route name "${name}" in this request.`);
      names.add(name);
    }
    const sPath = join(here, 'stream_to');
    const s = r.dict(item, here, 'stream_to', true);
    let streamTo: RouteItemDoc['stream_to'] | undefined;
    if (given(s)) {
      const id = r.int(s, sPath, 'stream_to_id', true, { min: 1 });
      for (const other of ['redis', 'pulsar']) if (s[other] !== undefined) r.fail(join(sPath, other), `"${other}" targets are not supported by bkstream: its publishers write to Kafka only.`);
      const kPath = join(sPath, 'kafka');
      const k = r.dict(s, sPath, 'kafka', true);
      if (given(k)) {
        const topic = r.str(k, kPath, 'topic_name', true, { maxLength: 249 });
        if (given(topic) && !/^[A-Za-z0-9._-]+$/.test(topic)) r.fail(join(kPath, 'topic_name'), `"${topic}" is not a Kafka topic name (letters, digits, ".", "_", "-").`);
        const kafka: RouteItemDoc['stream_to']['kafka'] = { topic_name: given(topic) ? topic : '' };
        put(kafka, 'data_set', r.str(k, kPath, 'data_set', false));
        put(kafka, 'biz_id', r.int(k, kPath, 'biz_id', false));
        put(kafka, 'partition', r.int(k, kPath, 'partition', false, { min: 0 }));
        if (given(id)) streamTo = { stream_to_id: id, kafka };
      }
    }
    const filters: Partial<Pick<RouteItemDoc, 'filter_name_and' | 'filter_name_or'>> = {};
    for (const key of ['filter_name_and', 'filter_name_or'] as const) {
      const l = r.list(item, here, key, false);
      if (!given(l)) continue;
      const names2: string[] = [];
      l.forEach((v, j) => {
        if (typeof v !== 'string' || v.trim() === '') r.fail(join(join(here, key), j), 'Not a valid string.');
        else names2.push(v.trim());
      });
      filters[key] = names2;
    }
    if (given(name) && streamTo) out.push({ name, stream_to: streamTo, ...filters });
  });
  return out;
}

function streamFilters(r: Reader, list: Raw[], path: string): StreamFilter[] {
  const out: StreamFilter[] = [];
  const names = new Set<string>();
  list.forEach((raw, i) => {
    const here = join(path, i);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      r.fail(here, `Invalid data. Expected a dictionary, but got ${typeName(raw)}.`);
      return;
    }
    const f = raw as Record<string, Raw>;
    const name = r.str(f, here, 'name', true, { maxLength: NAME_MAX });
    if (given(name)) {
      if (names.has(name)) r.fail(join(here, 'name'), `Duplicate filter name "${name}" in this request.`);
      names.add(name);
    }
    const index = r.int(f, here, 'field_index', true, { min: 0 });
    const type = r.choice(f, here, 'field_data_type', true, ['int', 'string', 'bytes'] as const);
    const value = r.str(f, here, 'field_data_value', true);
    const sep = r.str(f, here, 'field_separator', false, { allowBlank: true });
    const fieldIn = f.field_in === undefined ? 'protocol' : r.choice(f, here, 'field_in', false, ['protocol', 'data'] as const);
    if (given(name) && given(index) && given(type) && given(value) && given(fieldIn)) {
      out.push({ name, field_index: index, field_data_type: type, field_data_value: value, ...(given(sep) ? { field_separator: sep } : {}), field_in: fieldIn });
    }
  });
  return out;
}

function nameList(r: Reader, o: Record<string, Raw>, path: string, key: string): string[] | undefined {
  const l = r.list(o, path, key, false);
  if (!given(l)) return undefined;
  const out: string[] = [];
  l.forEach((v, i) => {
    if ((typeof v !== 'string' && typeof v !== 'number') || String(v).trim() === '') r.fail(join(join(path, key), i), 'Not a valid string.');
    else out.push(String(v).trim());
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// the eight requests

export function parseAddStreamTo(raw: unknown): AddStreamToRequest {
  const r = new Reader();
  const o = body(raw);
  const meta = r.dict(o, '', 'metadata', true);
  const plat = given(meta) ? r.str(meta, 'metadata', 'plat_name', true, { maxLength: PLAT_MAX }) : MISSING;
  const lbl = given(meta) ? label(r, meta, 'metadata') : MISSING;
  const op = operation(r, o);
  const s = r.dict(o, '', 'stream_to', true);
  const streamTo = given(s) ? streamToSpec(r, s, 'stream_to') : undefined;
  return done(r, { metadata: { plat_name: given(plat) ? plat : '', ...(given(lbl) ? { label: lbl } : {}) }, operation: op, stream_to: streamTo as StreamToSpec });
}

function streamToCondition(r: Reader, o: Record<string, Raw>): { stream_to_id: number; plat_name: string } {
  const c = r.dict(o, '', 'condition', true);
  const id = given(c) ? r.int(c, 'condition', 'stream_to_id', true) : MISSING;
  const plat = given(c) ? r.str(c, 'condition', 'plat_name', true, { maxLength: PLAT_MAX }) : MISSING;
  return { stream_to_id: given(id) ? id : 0, plat_name: given(plat) ? plat : '' };
}

export function parseUpdateStreamTo(raw: unknown): UpdateStreamToRequest {
  const r = new Reader();
  const o = body(raw);
  const condition = streamToCondition(r, o);
  const op = operation(r, o);
  const spec = r.dict(o, '', 'specification', true);
  const s = given(spec) ? r.dict(spec, 'specification', 'stream_to', true) : MISSING;
  const streamTo = given(s) ? streamToSpec(r, s, 'specification.stream_to') : undefined;
  return done(r, { condition, operation: op, specification: { stream_to: streamTo as StreamToSpec } });
}

export function parseDeleteStreamTo(raw: unknown): DeleteStreamToRequest {
  const r = new Reader();
  const o = body(raw);
  const condition = streamToCondition(r, o);
  return done(r, { condition, operation: operation(r, o) });
}

export function parseQueryStreamTo(raw: unknown): QueryStreamToRequest {
  const r = new Reader();
  const o = body(raw);
  const c = r.dict(o, '', 'condition', true);
  const plat = given(c) ? r.str(c, 'condition', 'plat_name', true, { maxLength: PLAT_MAX }) : MISSING;
  const id = given(c) ? r.int(c, 'condition', 'stream_to_id', false) : MISSING;
  const lbl = given(c) ? label(r, c, 'condition') : MISSING;
  const op = operation(r, o);
  return done(r, { condition: { plat_name: given(plat) ? plat : '', ...(given(id) ? { stream_to_id: id } : {}), ...(given(lbl) ? { label: lbl } : {}) }, operation: op });
}

export function parseAddRoute(raw: unknown): AddRouteRequest {
  const r = new Reader();
  const o = body(raw);
  const meta = r.dict(o, '', 'metadata', true);
  const plat = given(meta) ? r.str(meta, 'metadata', 'plat_name', true, { maxLength: PLAT_MAX }) : MISSING;
  const lbl = given(meta) ? label(r, meta, 'metadata') : MISSING;
  const channel = given(meta) ? r.int(meta, 'metadata', 'channel_id', false, { min: 1 }) : MISSING;
  const op = operation(r, o);
  const routeList = r.list(o, '', 'route', false);
  const route = given(routeList) ? routeItems(r, routeList, 'route') : [];
  const filterList = r.list(o, '', 'stream_filters', false);
  const filters = given(filterList) ? streamFilters(r, filterList, 'stream_filters') : [];
  return done(r, {
    metadata: { plat_name: given(plat) ? plat : '', ...(given(lbl) ? { label: lbl } : {}), ...(given(channel) ? { channel_id: channel } : {}) },
    operation: op,
    route,
    stream_filters: filters,
  });
}

function routeCondition(r: Reader, o: Record<string, Raw>, platRequired: boolean): { channel_id: number; plat_name: string; label?: Label } {
  const c = r.dict(o, '', 'condition', true);
  const id = given(c) ? r.int(c, 'condition', 'channel_id', true) : MISSING;
  const plat = given(c) ? r.str(c, 'condition', 'plat_name', platRequired, { maxLength: PLAT_MAX }) : MISSING;
  const lbl = given(c) ? label(r, c, 'condition') : MISSING;
  return { channel_id: given(id) ? id : 0, plat_name: given(plat) ? plat : '', ...(given(lbl) ? { label: lbl } : {}) };
}

export function parseUpdateRoute(raw: unknown): UpdateRouteRequest {
  const r = new Reader();
  const o = body(raw);
  const condition = routeCondition(r, o, true);
  const op = operation(r, o);
  const spec = r.dict(o, '', 'specification', true);
  const specification: UpdateRouteRequest['specification'] = {};
  if (given(spec)) {
    const routeList = r.list(spec, 'specification', 'route', false);
    if (given(routeList)) specification.route = routeItems(r, routeList, 'specification.route');
    const filterList = r.list(spec, 'specification', 'stream_filters', false);
    if (given(filterList)) specification.stream_filters = streamFilters(r, filterList, 'specification.stream_filters');
  }
  return done(r, { condition, operation: op, specification });
}

export function parseDeleteRoute(raw: unknown): DeleteRouteRequest {
  const r = new Reader();
  const o = body(raw);
  const condition = routeCondition(r, o, true);
  const op = r.dict(o, '', 'operation', true);
  const name = given(op) ? r.str(op, 'operation', 'operator_name', true, { maxLength: NAME_MAX }) : MISSING;
  const method = given(op) ? r.choice(op, 'operation', 'method', true, ['all', 'specification'] as const) : MISSING;
  const spec = r.dict(o, '', 'specification', false);
  let specification: DeleteRouteRequest['specification'];
  if (given(spec)) {
    const route = nameList(r, spec, 'specification', 'route');
    const filters = nameList(r, spec, 'specification', 'stream_filters');
    specification = { ...(route ? { route } : {}), ...(filters ? { stream_filters: filters } : {}) };
  }
  if (given(method) && method === 'specification' && (specification?.route ?? []).length + (specification?.stream_filters ?? []).length === 0) {
    r.fail('specification', 'method "specification" needs the names of the routes or stream_filters to delete.');
  }
  return done(r, {
    condition,
    operation: { operator_name: given(name) ? name : '', method: given(method) ? method : 'all' },
    ...(specification ? { specification } : {}),
  });
}

export function parseQueryRoute(raw: unknown): QueryRouteRequest {
  const r = new Reader();
  const o = body(raw);
  const c = r.dict(o, '', 'condition', true);
  const id = given(c) ? r.int(c, 'condition', 'channel_id', true) : MISSING;
  const plat = given(c) ? r.str(c, 'condition', 'plat_name', false, { maxLength: PLAT_MAX }) : MISSING;
  const lbl = given(c) ? label(r, c, 'condition') : MISSING;
  const op = operation(r, o);
  return done(r, { condition: { channel_id: given(id) ? id : 0, ...(given(plat) ? { plat_name: plat } : {}), ...(given(lbl) ? { label: lbl } : {}) }, operation: op });
}
