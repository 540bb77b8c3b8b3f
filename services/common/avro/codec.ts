/**
 * Avro records in single-object encoding, over avsc and the schema files in `schemas/`.
 *
 * Wire format (Avro spec, "Single-object encoding"): `C3 01`, the 8-byte little-endian CRC-64-AVRO
 * (Rabin) fingerprint of the writer schema's Parsing Canonical Form, then the Avro binary body.
 *
 * - {@link SchemaRegistry} loads every `<name>.v<N>.avsc` file and indexes it by full name, version and
 *   fingerprint.
 * - {@link Codec} writes with one schema (the latest version by default) and reads any registered
 *   version of the same record through a cached resolver, so v1 records are readable by a v2 reader.
 * - Unknown fingerprints raise {@link UnknownSchemaError}; a bad marker, truncation, trailing bytes or an
 *   undecodable body raise {@link CorruptRecordError}. Neither is retriable: the bus dead-letters them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type avro from 'avsc';
import { CorruptRecordError, SchemaMismatchError, UnknownSchemaError, ValidationError } from '../errors.ts';
import type { RecordName, RecordTypes } from '../records.ts';
import { fingerprintBytes, rabin64 } from './fingerprint.ts';
import { canonicalForm, parseSchema } from './types.ts';
import { checkSingleObjectHeader, fingerprintKey, HEADER_BYTES, MAGIC } from './wire.ts';

export const SCHEMAS_DIR = resolve(import.meta.dirname, '../../../schemas');

export interface SchemaEntry {
  /** Full record name, e.g. `bkstream.SpanBatch`. */
  readonly fullName: string;
  /** Short record name, e.g. `SpanBatch`. */
  readonly name: string;
  readonly version: number;
  readonly file: string;
  readonly type: avro.Type;
  /** Unsigned CRC-64-AVRO as 16 hex digits (big-endian reading). */
  readonly fingerprint: string;
  /** The 10-byte single-object header: marker + little-endian fingerprint. */
  readonly header: Buffer;
}

const FILE_PATTERN = /^(?<base>[a-z0-9-]+)\.v(?<version>\d+)\.avsc$/;

export class SchemaRegistry {
  readonly #byFingerprint = new Map<string, SchemaEntry>();
  readonly #byName = new Map<string, SchemaEntry[]>();

  /** Loads every `*.v<N>.avsc` of the given directories (default: the project's `schemas/`). */
  static load(dirs: readonly string[] = [SCHEMAS_DIR]): SchemaRegistry {
    const registry = new SchemaRegistry();
    for (const dir of dirs) {
      for (const file of readdirSync(dir).sort()) {
        const m = FILE_PATTERN.exec(file);
        if (!m?.groups) continue;
        const path = join(dir, file);
        registry.add(readFileSync(path, 'utf8'), Number(m.groups.version), path);
      }
    }
    return registry;
  }

  /** Registers one schema version. */
  add(schemaText: string, version: number, file = '(inline)'): SchemaEntry {
    let type: avro.Type;
    try {
      type = parseSchema(schemaText);
    } catch (err) {
      throw new ValidationError(`${file}: invalid Avro schema: ${(err as Error).message}`, { cause: err });
    }
    const fullName = type.name;
    if (!fullName) throw new ValidationError(`${file}: top-level schema must be a named record`);
    const fp = rabin64(canonicalForm(type));
    const entry: SchemaEntry = {
      fullName,
      name: fullName.slice(fullName.lastIndexOf('.') + 1),
      version,
      file,
      type,
      fingerprint: fp.toString(16).padStart(16, '0'),
      header: Buffer.concat([MAGIC, fingerprintBytes(fp)]),
    };
    const versions = this.#byName.get(entry.name) ?? [];
    if (versions.some((v) => v.version === version)) {
      throw new ValidationError(`${file}: ${entry.name} v${version} is registered twice`);
    }
    versions.push(entry);
    versions.sort((a, b) => a.version - b.version);
    this.#byName.set(entry.name, versions);
    this.#byFingerprint.set(fingerprintKey(entry.header, 2), entry);
    return entry;
  }

  /** The newest version of a record, or a specific one. */
  get(name: string, version?: number): SchemaEntry {
    const versions = this.#byName.get(name);
    const entry = version === undefined ? versions?.at(-1) : versions?.find((v) => v.version === version);
    if (!entry) throw new ValidationError(`no schema ${name}${version === undefined ? '' : ` v${version}`} in the registry`);
    return entry;
  }

  /** The writer schema named by a single-object header, if registered. */
  byHeader(buf: Buffer): SchemaEntry | undefined {
    return this.#byFingerprint.get(fingerprintKey(buf, 2));
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  versions(name: string): readonly SchemaEntry[] {
    return this.#byName.get(name) ?? [];
  }
}

// ---------------------------------------------------------------------------------------------------------
// Codec

let defaultRegistry: SchemaRegistry | undefined;
/** The registry of the project's `schemas/`, loaded once. */
export function schemas(): SchemaRegistry {
  defaultRegistry ??= SchemaRegistry.load();
  return defaultRegistry;
}

/** Encodes and decodes one record type. Not shared between threads; cheap to create. */
export class Codec<T> {
  readonly schema: SchemaEntry;
  readonly #registry: SchemaRegistry;
  readonly #resolvers = new Map<SchemaEntry, avro.Resolver>();
  #scratch = Buffer.allocUnsafe(64 * 1024);

  /** `name` is the short record name; `version` defaults to the newest. */
  constructor(name: string, options: { registry?: SchemaRegistry; version?: number } = {}) {
    this.#registry = options.registry ?? schemas();
    this.schema = this.#registry.get(name, options.version);
  }

  /** Single-object encoding of `value`; throws {@link ValidationError} if it does not fit the schema. */
  encode(value: T): Buffer {
    const { type, header } = this.schema;
    for (;;) {
      header.copy(this.#scratch, 0);
      let end: number;
      try {
        end = type.encode(value, this.#scratch, HEADER_BYTES);
      } catch (err) {
        throw new ValidationError(`value does not fit ${this.schema.name} v${this.schema.version}: ${describeInvalid(type, value) ?? (err as Error).message}`, { cause: err });
      }
      if (end > 0) return Buffer.from(this.#scratch.subarray(0, end));
      // avsc returns the negated missing size when the buffer is too small.
      this.#scratch = Buffer.allocUnsafe(Math.max(this.#scratch.length * 2, this.#scratch.length - end + HEADER_BYTES));
    }
  }

  /**
   * Decodes a single-object record written with any registered version of this record, resolved to
   * this codec's (reader) version.
   */
  decode(buf: Buffer): T {
    checkSingleObjectHeader(buf);
    const writer = this.#registry.byHeader(buf);
    if (!writer) throw new UnknownSchemaError(buf.readBigUInt64LE(2).toString(16).padStart(16, '0'));
    const resolver = writer === this.schema ? undefined : this.#resolver(writer);
    let decoded: { value: unknown; offset: number };
    try {
      decoded = this.schema.type.decode(buf, HEADER_BYTES, resolver);
    } catch (err) {
      if (err instanceof CorruptRecordError) throw err;
      throw new CorruptRecordError(`body does not decode as ${writer.name} v${writer.version}: ${(err as Error).message}`, { cause: err });
    }
    if (decoded.offset < 0) throw new CorruptRecordError(`truncated ${writer.name} v${writer.version} body`);
    if (decoded.offset !== buf.length) {
      throw new CorruptRecordError(`${buf.length - decoded.offset} trailing bytes after ${writer.name} v${writer.version} body`);
    }
    return decoded.value as T;
  }

  /** Whether a value fits the schema (used by tests and producers that validate before sending). */
  isValid(value: unknown): value is T {
    return this.schema.type.isValid(value);
  }

  #resolver(writer: SchemaEntry): avro.Resolver {
    let r = this.#resolvers.get(writer);
    if (!r) {
      try {
        r = this.schema.type.createResolver(writer.type);
      } catch (err) {
        throw new SchemaMismatchError(
          `${writer.name} v${writer.version} cannot be read as ${this.schema.name} v${this.schema.version}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      this.#resolvers.set(writer, r);
    }
    return r;
  }
}

/** A typed codec for one of the project's record types. */
export function codecFor<N extends RecordName>(name: N, options?: { registry?: SchemaRegistry; version?: number }): Codec<RecordTypes[N]> {
  return new Codec<RecordTypes[N]>(name, options);
}

/** The first path in `value` that does not fit `type`, for error messages. */
function describeInvalid(type: avro.Type, value: unknown): string | undefined {
  let found: string | undefined;
  type.isValid(value, {
    errorHook: (path: string[], any: unknown) => {
      found ??= `${path.join('.') || '(root)'} = ${JSON.stringify(any)?.slice(0, 80)}`;
    },
  });
  return found;
}
