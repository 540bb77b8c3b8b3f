/**
 * A BKData clean as its databus task runs it (bk-base TransformCleaner over the ETL; README, Cleans): the
 * ETL of `json_config` turns one raw record into rows, and each row becomes a result-table row with the
 * clean's `fields` plus the columns BKData adds to every clean's table:
 *
 * - `timestamp`: the row's time (the ETL's time field through `conf`), seconds, Avro int;
 * - `dtEventTimeStamp`: the same time in ms; `dtEventTime`: it as `yyyy-MM-dd HH:mm:ss` in GMT+8;
 * - `localTime`: when the clean ran, to the minute, `yyyy-MM-dd HH:mm:ss` in GMT+8.
 *
 * (`thedate` is not a clean column: BKData's storages add it.) Values take the column's Avro type: a JSON
 * object (`assign_json`) is written as Jackson's JSON text, int/long/double are numbers (a long beyond
 * 2^53 stays a bigint), bigint/bigdecimal columns are decimal text.
 */
import { gunzipSync } from 'node:zlib';
import { compileEtl, type CompiledEtl, type EtlFailure, type FieldValue } from './extract.ts';
import { isJObject, javaToString, writeJackson } from './java-json.ts';
import { displayTime } from './time.ts';

/** A clean's field as the orchestrator sends it (`fields` of databus_cleans). */
export interface CleanFieldConf {
  field_name: string;
  field_type: string;
}

export type RowValue = string | number | bigint | null;
export type CleanRow = Record<string, RowValue>;

export interface CleanOutput {
  rows: CleanRow[];
  /** What BKData reports as bad values: items or rows dropped, fields left null. */
  failures: EtlFailure[];
}

export interface CompiledClean {
  /** The result table's columns in row order. */
  readonly columns: readonly string[];
  apply(value: Buffer, nowMs: number): CleanOutput;
}

/** Columns BKData builds itself; a clean field of one of these names is ignored, as BKData does. */
const SYSTEM_COLUMNS = new Set(['dtEventTime', 'dtEventTimeStamp', 'localTime', 'offset', '_iteration_idx']);
const NUMERIC = new Set(['int', 'long', 'double']);

type Kind = 'string' | 'number' | 'decimal';
const kindOf = (type: string): Kind => (NUMERIC.has(type) ? 'number' : type === 'bigint' || type === 'bigdecimal' ? 'decimal' : 'string');

const toNumber = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

/** A value in its column's Avro type (Avro writes any Number into int/long/double columns). */
function columnValue(type: string, v: FieldValue): RowValue {
  if (v === null) return null;
  if (isJObject(v)) return writeJackson(v);
  if (typeof v === 'boolean' || Array.isArray(v)) return javaToString(v);
  switch (type) {
    case 'int':
      return Number(typeof v === 'bigint' ? BigInt.asIntN(32, v) : BigInt.asIntN(32, BigInt(Math.trunc(Number(v)))));
    case 'long':
      return toNumber(typeof v === 'bigint' ? BigInt.asIntN(64, v) : BigInt(Math.trunc(Number(v))));
    case 'double':
      return Number(v);
    default:
      return typeof v === 'bigint' ? v.toString() : v;
  }
}

/**
 * Compiles a clean (`json_config` and `fields` of its create/update request). `problems` says why it
 * cannot run: what BKData would refuse, or would fail every record on (a field the ETL does not assign,
 * a column whose Avro type the ETL's value cannot take, a time field other than `timestamp`).
 */
export function compileClean(params: { json_config?: unknown; fields?: unknown }): { clean?: CompiledClean; problems: string[] } {
  const { etl, problems } = compileEtl(params.json_config);
  const fields = Array.isArray(params.fields) ? params.fields : [];
  if (!Array.isArray(params.fields)) problems.push('fields must be a list');
  const conf: CleanFieldConf[] = [];
  for (const [i, f] of fields.entries()) {
    const name = (f as Partial<CleanFieldConf> | null)?.field_name;
    const type = (f as Partial<CleanFieldConf> | null)?.field_type;
    if (typeof name !== 'string' || name === '' || typeof type !== 'string') problems.push(`fields[${i}] needs field_name and field_type`);
    else if (!SYSTEM_COLUMNS.has(name) && name !== 'timestamp') conf.push({ field_name: name, field_type: type.toLowerCase() });
  }
  if (!etl) return { problems };
  const columns: { name: string; type: string; index: number }[] = [];
  for (const f of conf) {
    const index = etl.fields.findLastIndex((x) => x.name === f.field_name);
    const produced = etl.fields[index];
    if (!produced) {
      problems.push(`field ${f.field_name} is not assigned by the ETL`);
      continue;
    }
    if (kindOf(f.field_type) !== kindOf(produced.type)) problems.push(`field ${f.field_name} is ${f.field_type} but the ETL makes a ${produced.type}`);
    columns.push({ name: f.field_name, type: f.field_type, index });
  }
  const timeIndex = etl.fields.length - 1;
  if (etl.fields[timeIndex]?.name !== 'timestamp') problems.push(`conf.output_field_name must be timestamp (the clean's time column), not ${etl.fields[timeIndex]?.name}`);
  if (problems.length > 0) return { problems };
  return { clean: cleanOf(etl, columns, timeIndex), problems };
}

function cleanOf(etl: CompiledEtl, columns: { name: string; type: string; index: number }[], timeIndex: number): CompiledClean {
  const decoder = new TextDecoder(etl.encoding);
  return {
    columns: [...columns.map((c) => c.name), 'timestamp', 'dtEventTime', 'dtEventTimeStamp', 'localTime'],
    apply(value, nowMs) {
      let bytes = value;
      if (etl.compressed) {
        try {
          bytes = gunzipSync(value);
        } catch (err) {
          return { rows: [], failures: [{ error: 'IOException', message: (err as Error).message }] };
        }
      }
      const { rows, failures } = etl.run(decoder.decode(bytes), nowMs);
      const localTime = displayTime(Math.floor(nowMs / 60_000) * 60_000);
      return {
        failures,
        rows: rows.map((r) => {
          const row: CleanRow = {};
          for (const c of columns) row[c.name] = columnValue(c.type, r[c.index] ?? null);
          const ms = Number(r[timeIndex]);
          row.timestamp = Number(BigInt.asIntN(32, BigInt(Math.trunc(ms / 1000))));
          row.dtEventTime = displayTime(ms);
          row.dtEventTimeStamp = ms;
          row.localTime = localTime;
          return row;
        }),
      };
    },
  };
}
