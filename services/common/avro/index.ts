/**
 * Avro for bkstream, the only place that imports avsc: single-object records over `schemas/`
 * (codec.ts), compiled validating readers of any writer schema (reader.ts), the fingerprint that names a writer schema (fingerprint.ts), avsc types with typed numbers
 * and bounded reads (types.ts), and the wire primitives fast paths share (wire.ts).
 */
export * from './codec.ts';
export * from './fingerprint.ts';
export * from './reader.ts';
export * from './types.ts';
export * from './wire.ts';
