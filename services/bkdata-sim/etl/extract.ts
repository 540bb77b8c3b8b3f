/**
 * BKData's databus ETL (the clean's `json_config`; README, Cleans), interpreted as bk-base's
 * databus-pipe-extractor runs it, as a pure function of the config and one record's text.
 *
 * The config's `extract` is a tree of nodes: `fun` (`from_json`, `iterate`), `access` (`access_obj`,
 * `access_pos`), `assign` (`assign_obj`, `assign_json`, `assign_pos`, `assign_value`) and `branch`. Compiling
 * it builds the schema the way BKData does: every assign adds its fields to the current level, every
 * `iterate` opens a nested level (ending in its internal `_iteration_idx`). Running it fills positional
 * values per level; a level's rows are its own values times each row of its (last) nested level, and a
 * level whose values are incomplete yields none — which is how BKData drops what it could not read.
 *
 * Failures follow BKData's classes: a missing key (`AccessByKeyFailedError`), a wrong shape
 * (`NotMapDataError`, `NotListDataError`) fail the item being iterated (or the record, above any
 * iterate); an unconvertible value (`TypeConversionError`) leaves the field null and is reported; a null
 * where Java dereferences one (a null list element, `"null"` as the record) fails the record.
 */
import { isJObject, javaDouble, JsonSyntaxError, javaToString, parseJava, type JValue } from './java-json.ts';
import { javaTrim, TimeFormatError, timeTransformer, type TimeConf, type TimeTransformer } from './time.ts';

// ---------------------------------------------------------------------------------------------------------
// errors (BKData's PipeExtractorException family keeps its class names: they are what BKData reports)

export class PipeError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** A Java exception outside PipeExtractorException (a NullPointerException): the whole record fails. */
export class RecordError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export interface EtlFailure {
  /** BKData's error class, e.g. `AccessByKeyFailedError`, `TypeConversionError`, `TimeFormatError`. */
  error: string;
  message: string;
}

// ---------------------------------------------------------------------------------------------------------
// schema

export const FIELD_TYPES = ['string', 'text', 'int', 'long', 'double', 'bigint', 'bigdecimal'] as const;

export class EtlField {
  readonly name: string;
  readonly type: string;
  readonly isDimension: boolean;
  readonly isJson: boolean;
  readonly isInternal: boolean;
  constructor(name: string, type: string, opts: { isDimension?: boolean; isJson?: boolean; isInternal?: boolean } = {}) {
    this.name = name;
    this.type = type.toLowerCase();
    this.isDimension = opts.isDimension ?? false;
    this.isJson = opts.isJson ?? false;
    this.isInternal = opts.isInternal ?? false;
  }
  /** Fields are found by equality (Java's Field.equals), the last equal one winning. */
  get key(): string {
    return `${this.name}|${this.type}|${this.isDimension}|${this.isJson}|${this.isInternal}`;
  }
}

/** One level of the schema: fields and nested levels (one per `iterate`), in the order compiled. */
export class Level {
  readonly slots: (EtlField | Level)[] = [];
  readonly #index = new Map<string | Level, number>();

  append(slot: EtlField | Level): void {
    this.slots.push(slot);
    this.#index.set(slot instanceof Level ? slot : slot.key, this.slots.length - 1);
  }

  indexOf(slot: EtlField | Level): number {
    const i = this.#index.get(slot instanceof Level ? slot : slot.key);
    if (i === undefined) throw new RecordError('IllegalArgumentException', 'field does not exist');
    return i;
  }

  /** The flattened fields: this level's, then its last nested level's (BKData flattens only that one). */
  flatten(): EtlField[] {
    const own = this.slots.filter((s): s is EtlField => s instanceof EtlField);
    const inner = this.slots.findLast((s): s is Level => s instanceof Level);
    return inner ? [...own, ...inner.flatten()] : own;
  }
}

// ---------------------------------------------------------------------------------------------------------
// values

type Values = unknown[];

interface RunCtx {
  schema: Level;
  values: Values;
  failures: EtlFailure[];
}

function setValue(ctx: RunCtx, slot: EtlField | Level, value: unknown): void {
  const i = ctx.schema.indexOf(slot);
  while (ctx.values.length < i + 1) ctx.values.push(null);
  ctx.values[i] = value;
}

function fail(ctx: RunCtx, err: Error): void {
  ctx.failures.push({ error: err.name, message: err.message });
}

/**
 * What a field holds after conversion: a string; a JSON object (json fields); int and long as bigint
 * (Java Integer/Long), double as number; bigint and bigdecimal fields as their decimal text.
 */
export type FieldValue = null | string | number | bigint | JValue;

const INT_MIN = -(2n ** 31n);
const INT_MAX = 2n ** 31n - 1n;
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

/** Java's `(int)` / `(long)` of a double: NaN → 0, saturating, toward zero. */
function castDouble(d: number, bits: 32 | 64): bigint {
  if (Number.isNaN(d)) return 0n;
  const [min, max] = bits === 32 ? [INT_MIN, INT_MAX] : [LONG_MIN, LONG_MAX];
  if (d === Infinity) return max;
  if (d === -Infinity) return min;
  const v = BigInt(Math.trunc(d));
  return v < min ? min : v > max ? max : v;
}

/** Java's Double.parseDouble (decimal forms; hexadecimal literals are not read by the sim). */
function parseJavaDouble(text: string): number {
  const m = /^([+-]?)(NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFdD]?$/.exec(text);
  if (!m) throw new Error(`For input string: "${text}"`);
  const v = m[2] === 'NaN' ? NaN : m[2] === 'Infinity' ? Infinity : Number(m[2]);
  return m[1] === '-' ? -v : v;
}

/** BKData's trimStringToInteger: cut at the first `.` (empty parts skipped), drop every `"`. */
function trimToInteger(s: string): string {
  let v = s;
  if (v.includes('.')) {
    const parts = v.split('.').filter((p) => p !== '');
    if (parts.length === 0) throw new Error(`For input string: "${s}"`);
    v = parts[0] as string;
  }
  return v.replaceAll('"', '');
}

function parseIntegral(text: string, min: bigint, max: bigint): bigint {
  if (!/^[+-]?\d+$/.test(text)) throw new Error(`For input string: "${text}"`);
  const v = BigInt(text);
  if (v < min || v > max) throw new Error(`For input string: "${text}"`);
  return v;
}

function parseNumber(type: string, data: JValue): FieldValue {
  const conversion = (why: string): PipeError => new PipeError('TypeConversionError', `can not convert ${javaToString(data)} to ${type}. ${why}`);
  if (typeof data === 'string') {
    const t = javaTrim(data);
    if (t === '' || t.toLowerCase() === 'null') return null;
    try {
      switch (type) {
        case 'int':
          return parseIntegral(trimToInteger(t), INT_MIN, INT_MAX);
        case 'long':
          return parseIntegral(trimToInteger(t), LONG_MIN, LONG_MAX);
        case 'double':
          return parseJavaDouble(t);
        case 'bigint':
          return parseIntegral(trimToInteger(t), -(2n ** 4096n), 2n ** 4096n).toString();
        default: {
          const text = t.replaceAll('"', '');
          parseJavaDouble(text);
          return text;
        }
      }
    } catch (err) {
      throw conversion(`err: ${(err as Error).message}`);
    }
  }
  if (typeof data === 'bigint') {
    switch (type) {
      case 'int':
        return BigInt.asIntN(32, data);
      case 'long':
        return BigInt.asIntN(64, data);
      case 'double':
        return Number(data);
      default:
        return data.toString();
    }
  }
  if (typeof data === 'number') {
    switch (type) {
      case 'int':
        return castDouble(data, 32);
      case 'long':
        return castDouble(data, 64);
      case 'double':
        return data;
      case 'bigint':
        return trimToInteger(javaDouble(data));
      default:
        return javaDouble(data);
    }
  }
  throw conversion(`data type: ${data === null ? 'null' : Array.isArray(data) ? 'ArrayList' : isJObject(data) ? 'LinkedHashMap' : 'Boolean'}`);
}

/** BKData's Field.castType: a value converted to the field's type, or a TypeConversionError. */
export function castType(field: EtlField, data: JValue | undefined): FieldValue {
  if (data === null || data === undefined) return null;
  switch (field.type) {
    case 'string':
    case 'text':
      if (field.isJson) {
        if (isJObject(data)) return data;
        throw new PipeError('TypeConversionError', `can not convert ${javaToString(data)} to json ${field.type}`);
      }
      return javaToString(data);
    case 'int':
    case 'long':
    case 'double':
    case 'bigint':
    case 'bigdecimal':
      return parseNumber(field.type, data);
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// nodes

type Conf = Record<string, unknown>;

interface EtlNode {
  run(ctx: RunCtx, input: JValue): void;
}

interface Compiler {
  schema: Level;
  problems: string[];
}

const isConf = (v: unknown): v is Conf => typeof v === 'object' && v !== null && !Array.isArray(v);

function at(conf: Conf): string {
  return typeof conf.label === 'string' && conf.label !== '' ? `node ${conf.label}` : `a ${String(conf.type)} node`;
}

/** A node of the tree (null when the config has none there: BKData then does nothing at that point). */
function compileNode(c: Compiler, conf: unknown): EtlNode | null {
  if (conf === null || conf === undefined) return null;
  if (!isConf(conf) || typeof conf.type !== 'string') {
    c.problems.push(`an ETL node must be an object with a type: ${JSON.stringify(conf)}`);
    return null;
  }
  switch (conf.type.toLowerCase()) {
    case 'fun':
      return compileFun(c, conf);
    case 'access':
      return compileAccess(c, conf);
    case 'assign':
      return compileAssign(c, conf);
    case 'branch': {
      if (!Array.isArray(conf.next)) {
        c.problems.push(`${at(conf)}: a branch needs a list of next nodes`);
        return null;
      }
      const next = conf.next.map((n) => compileNode(c, n));
      return { run: (ctx, input) => next.forEach((n) => n?.run(ctx, input)) };
    }
    default:
      c.problems.push(`${at(conf)}: type ${conf.type} is not one of fun, access, assign, branch`);
      return null;
  }
}

function compileFun(c: Compiler, conf: Conf): EtlNode | null {
  switch (conf.method) {
    case 'from_json': {
      const next = compileNode(c, conf.next);
      return {
        run(ctx, input) {
          if (typeof input !== 'string') return;
          let parsed: JValue;
          try {
            parsed = javaTrim(input) === '' ? new Map() : parseJava(input);
          } catch (err) {
            if (!(err instanceof JsonSyntaxError)) throw err;
            fail(ctx, new PipeError('BadJsonObjectError', err.message));
            return;
          }
          if (parsed === null) throw new RecordError('NullPointerException', 'the record is JSON null');
          if (!isJObject(parsed)) {
            fail(ctx, new PipeError('BadJsonObjectError', 'the record is not a JSON object'));
            return;
          }
          next?.run(ctx, parsed);
        },
      };
    }
    case 'iterate': {
      // The nested level is appended before its next nodes compile into it; its index field comes last.
      const level = new Level();
      c.schema.append(level);
      const parent = c.schema;
      c.schema = level;
      const next = compileNode(c, conf.next);
      const args = Array.isArray(conf.args) ? conf.args : [];
      level.append(new EtlField(typeof args[0] === 'string' ? args[0] : '_iteration_idx', 'int', { isInternal: true }));
      c.schema = parent;
      return {
        run(ctx, input) {
          if (!Array.isArray(input)) return;
          const items: Values[] = [];
          setValue(ctx, level, items);
          const parentValues = ctx.values;
          const parentSchema = ctx.schema;
          ctx.schema = level;
          let idx = 1;
          try {
            for (const item of input) {
              if (item === null) throw new RecordError('NullPointerException', 'a null element in the iterated list');
              const sub: Values = [];
              ctx.values = sub;
              if (!next) continue;
              try {
                next.run(ctx, item);
                sub.push(idx++);
                items.push(sub);
              } catch (err) {
                if (!(err instanceof PipeError)) throw err;
                fail(ctx, err);
              }
            }
          } finally {
            ctx.schema = parentSchema;
            ctx.values = parentValues;
          }
          if (items.length === 0) throw new PipeError('EmptyEtlResultError', 'iterate all failed');
        },
      };
    }
    default:
      c.problems.push(`${at(conf)}: method ${String(conf.method)} is not supported by bkdata-sim (from_json, iterate)`);
      return null;
  }
}

function defaultOf(c: Compiler, conf: Conf): { none: boolean; value: FieldValue } {
  const type = typeof conf.default_type === 'string' ? conf.default_type : 'null';
  if (type === 'null') return { none: true, value: null };
  try {
    return { none: false, value: castType(new EtlField(type, type), typeof conf.default_value === 'string' ? conf.default_value : null) };
  } catch {
    c.problems.push(`${at(conf)}: default_value ${JSON.stringify(conf.default_value)} is not a ${type}`);
    return { none: false, value: null };
  }
}

function compileAccess(c: Compiler, conf: Conf): EtlNode | null {
  const next = compileNode(c, conf.next);
  const dflt = defaultOf(c, conf);
  switch (conf.subtype) {
    case 'access_obj': {
      if (typeof conf.key !== 'string') {
        c.problems.push(`${at(conf)}: access_obj needs a key`);
        return null;
      }
      const key = conf.key;
      return {
        run(ctx, input) {
          const v = isJObject(input) ? input.get(key) : undefined;
          if (!isJObject(input) || ((v === undefined || v === null) && dflt.none)) {
            throw new PipeError('AccessByKeyFailedError', `AccessObj failed while trying to access key ${key} as it's null or not exists`);
          }
          const result = input.has(key) ? (v as JValue) : (dflt.value);
          if (result === null) throw new RecordError('NullPointerException', `key ${key} is null`);
          next?.run(ctx, result);
        },
      };
    }
    case 'access_pos': {
      const index = typeof conf.index === 'string' ? Number.parseInt(conf.index, 10) : conf.index;
      if (typeof index !== 'number' || !Number.isInteger(index)) {
        c.problems.push(`${at(conf)}: access_pos needs an integer index`);
        return null;
      }
      return {
        run(ctx, input) {
          if (!Array.isArray(input) || (dflt.none && (input.length <= index || index < 0))) {
            throw new PipeError('AccessByIndexFailedError', `AccessPos failed while trying to access index ${index}`);
          }
          const result = index >= 0 && index < input.length ? (input[index] as JValue) : (dflt.value);
          if (result === null) throw new RecordError('NullPointerException', `index ${index} is null`);
          next?.run(ctx, result);
        },
      };
    }
    default:
      c.problems.push(`${at(conf)}: access subtype ${String(conf.subtype)} is not supported by bkdata-sim (access_obj, access_pos)`);
      return null;
  }
}

function fieldOf(c: Compiler, conf: Conf, kv: unknown, json = false): { field: EtlField; kv: Conf } | undefined {
  if (!isConf(kv) || typeof kv.assign_to !== 'string' || kv.assign_to === '') {
    c.problems.push(`${at(conf)}: every assignment needs assign_to`);
    return undefined;
  }
  const type = typeof kv.type === 'string' ? kv.type.toLowerCase() : 'string';
  if (!(FIELD_TYPES as readonly string[]).includes(type)) c.problems.push(`${at(conf)}: ${kv.assign_to} has type ${type}, not one of ${FIELD_TYPES.join(', ')}`);
  if (json && type !== 'string' && type !== 'text') c.problems.push(`${at(conf)}: ${type} is not string or text type, unable to assign json`);
  return { field: new EtlField(kv.assign_to, type, { isDimension: 'is_dimension' in kv, isJson: json }), kv };
}

/** assign_obj / assign_json: fields by key (several keys for one field: the first non-null value). */
function compileAssignByKey(c: Compiler, conf: Conf, list: unknown[], json: boolean): EtlNode {
  const byName = new Map<string, { field: EtlField; keys: string[] }>();
  for (const item of list) {
    const f = fieldOf(c, conf, item, json);
    if (!f) continue;
    const entry = byName.get(f.field.name) ?? { field: f.field, keys: [] };
    if (!byName.has(f.field.name)) {
      byName.set(f.field.name, entry);
      c.schema.append(f.field);
    }
    entry.keys.push(typeof f.kv.key === 'string' ? f.kv.key : String(f.kv.key));
  }
  const entries = [...byName.values()];
  return {
    run(ctx, input) {
      if (!isJObject(input)) throw new PipeError('NotMapDataError', `${json ? 'assign_json' : 'assign_obj'}: not Map, can't assign by key`);
      for (const { field, keys } of entries) {
        let raw: JValue | undefined;
        for (const k of keys) {
          if (json && k === '__all_keys__') {
            raw = input;
            break;
          }
          const v = input.get(k);
          if (v !== undefined && v !== null) {
            raw = v;
            break;
          }
        }
        let value: FieldValue = null;
        try {
          value = castType(field, raw);
        } catch (err) {
          if (!(err instanceof PipeError)) throw err;
          fail(ctx, err);
        }
        setValue(ctx, field, value);
      }
    },
  };
}

function compileAssign(c: Compiler, conf: Conf): EtlNode | null {
  const list = conf.assign;
  switch (conf.subtype) {
    case 'assign_obj':
    case 'assign_json':
      if (!Array.isArray(list)) {
        c.problems.push(`${at(conf)}: ${conf.subtype} needs a list of assignments`);
        return null;
      }
      return compileAssignByKey(c, conf, list, conf.subtype === 'assign_json');
    case 'assign_pos': {
      if (!Array.isArray(list)) {
        c.problems.push(`${at(conf)}: assign_pos needs a list of assignments`);
        return null;
      }
      const byIndex = new Map<number, EtlField>();
      for (const item of list) {
        const f = fieldOf(c, conf, item);
        if (!f) continue;
        const index = typeof f.kv.index === 'string' ? Number.parseInt(f.kv.index, 10) : f.kv.index;
        if (typeof index !== 'number' || !Number.isInteger(index)) {
          c.problems.push(`${at(conf)}: ${f.field.name} needs an integer index`);
          continue;
        }
        byIndex.set(index, f.field);
        c.schema.append(f.field);
      }
      return {
        run(ctx, input) {
          if (isJObject(input)) throw new PipeError('NotListDataError', `assign_pos: Map is not List, can't assign by position ${[...byIndex.keys()].join(', ')}`);
          for (const [index, field] of byIndex) {
            let value: FieldValue = null;
            try {
              // A scalar is assigned to every position's field; a list element past the end is null.
              value = castType(field, Array.isArray(input) ? input[index] : input);
            } catch (err) {
              if (!(err instanceof PipeError)) throw err;
              fail(ctx, err);
            }
            setValue(ctx, field, value);
          }
        },
      };
    }
    case 'assign_value': {
      const f = fieldOf(c, conf, list);
      if (!f) return null;
      c.schema.append(f.field);
      return {
        run(ctx, input) {
          let value: FieldValue = null;
          try {
            value = castType(f.field, input);
          } catch (err) {
            if (!(err instanceof PipeError)) throw err;
            fail(ctx, err);
          }
          setValue(ctx, f.field, value);
        },
      };
    }
    default:
      c.problems.push(`${at(conf)}: assign subtype ${String(conf.subtype)} is not one of assign_obj, assign_json, assign_pos, assign_value`);
      return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// the ETL

export interface CompiledEtl {
  /** The flattened fields, then the internal time field (`conf.output_field_name`, ms). */
  readonly fields: readonly EtlField[];
  /** Index of the time field in a flattened row; -1: the processing time (`time_field_name: localTime`). */
  readonly timeFieldIndex: number;
  readonly encoding: string;
  readonly compressed: boolean;
  run(text: string, nowMs: number): EtlResult;
}

export interface EtlResult {
  /** Flattened rows (values in `fields` order, the time in ms last). */
  rows: FieldValue[][];
  failures: EtlFailure[];
}

/** Flattened rows of a level's values (BKData's Context.flattenValues). */
function flattenValues(level: Level, values: Values): FieldValue[][] {
  if (values.length !== level.slots.length) return [];
  const own: FieldValue[] = [];
  let inner = -1;
  level.slots.forEach((s, i) => {
    if (s instanceof Level) inner = i;
    else own.push(values[i] as FieldValue);
  });
  if (inner < 0) return [own];
  const items = values[inner] as Values[] | null;
  if (!items) return [];
  const sub = level.slots[inner] as Level;
  return items.flatMap((item) => flattenValues(sub, item)).map((row) => [...own, ...row]);
}

function intConf(conf: Conf, key: string, fallback: number | undefined, problems: string[]): number {
  const v = conf[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    problems.push(`conf.${key} must be an integer`);
    return fallback ?? 0;
  }
  return v;
}

/**
 * Compiles a clean's `json_config` (the object or its JSON text). `problems` lists everything BKData
 * would refuse the config for (and what the sim does not support); with problems the ETL must not run.
 */
export function compileEtl(jsonConfig: unknown): { etl?: CompiledEtl; problems: string[] } {
  let config: unknown = jsonConfig;
  if (typeof jsonConfig === 'string') {
    try {
      config = JSON.parse(jsonConfig);
    } catch {
      return { problems: ['json_config is not JSON'] };
    }
  }
  if (!isConf(config)) return { problems: ['json_config must be an object'] };
  const problems: string[] = [];
  // BKData's databus refuses a config without both (EtlConverter.validateEtlConf).
  if (!isConf(config.extract)) problems.push('json_config.extract is required');
  if (!isConf(config.conf)) problems.push('json_config.conf is required');
  for (const k of ['calculate', 'derive', 'dispatch', 'convert']) if (config[k] !== undefined && config[k] !== null) problems.push(`json_config.${k} is not supported by bkdata-sim`);
  if (problems.length > 0) return { problems };
  const conf = config.conf as Conf;
  const c: Compiler = { schema: new Level(), problems };
  const root = compileNode(c, config.extract);
  const flat = c.schema.flatten();

  const timeFieldName = conf.time_field_name;
  const outputName = timeFieldName === 'localTime' ? 'timestamp' : conf.output_field_name;
  if (typeof timeFieldName !== 'string') problems.push('conf.time_field_name is required');
  if (typeof outputName !== 'string' || outputName === '') problems.push('conf.output_field_name is required');
  let timeFieldIndex = -1;
  if (typeof timeFieldName === 'string' && timeFieldName !== 'localTime') {
    timeFieldIndex = flat.findLastIndex((f) => f.name === timeFieldName);
    if (timeFieldIndex < 0) problems.push(`conf.time_field_name ${timeFieldName} is not a field the ETL assigns`);
  }
  const timeConf: TimeConf = {
    timeFormat: typeof conf.time_format === 'string' ? conf.time_format : '',
    timestampLen: intConf(conf, 'timestamp_len', undefined, problems),
    timezone: conf.timezone === undefined ? 8 : Number(conf.timezone),
    timeRound: intConf(conf, 'time_round', 1, problems),
  };
  if (!Number.isFinite(timeConf.timezone)) problems.push('conf.timezone must be a number');
  if (timeConf.timeRound <= 0) problems.push('conf.time_round must be positive');
  if (timeConf.timestampLen <= 0 && timeConf.timeFormat === '') problems.push('conf: at least one of time_format and timestamp_len is needed');
  const encoding = typeof conf.encoding === 'string' ? conf.encoding : 'UTF8';
  const label = encoding.toUpperCase() === 'UTF8' ? 'utf-8' : encoding;
  try {
    new TextDecoder(label);
  } catch {
    problems.push(`conf.encoding ${encoding} is not an encoding bkdata-sim knows`);
  }
  if (problems.length > 0 || !root) return { problems: problems.length > 0 ? problems : ['json_config.extract has no node'] };

  const fields = [...flat, new EtlField(outputName as string, 'int', { isInternal: true })];
  const transform: TimeTransformer = timeTransformer(timeConf);
  const etl: CompiledEtl = {
    fields,
    timeFieldIndex,
    encoding: label,
    compressed: conf.compressed === 1,
    run(text, nowMs) {
      const ctx: RunCtx = { schema: c.schema, values: [], failures: [] };
      try {
        root.run(ctx, javaTrim(text));
      } catch (err) {
        if (err instanceof RecordError) return { rows: [], failures: [{ error: err.name, message: err.message }] };
        if (!(err instanceof PipeError)) throw err;
        // An iterate whose every item failed already reported them; anything else is the record's failure.
        if (err.name !== 'EmptyEtlResultError') fail(ctx, err);
      }
      const rows: FieldValue[][] = [];
      for (const row of flattenValues(c.schema, ctx.values)) {
        try {
          row.push(timeFieldIndex < 0 ? transform(BigInt(nowMs)) : transform((row[timeFieldIndex] ?? null)));
          rows.push(row);
        } catch (err) {
          if (!(err instanceof TimeFormatError)) throw err;
          fail(ctx, err);
        }
      }
      return { rows, failures: ctx.failures };
    },
  };
  return { etl, problems: [] };
}
