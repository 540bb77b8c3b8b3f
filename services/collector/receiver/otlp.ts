/**
 * The OTLP trace protocol, from the official opentelemetry-proto v1.4.0 files shipped in the npm package
 * `@elastic/mockotlpserver` (`opentelemetry/proto/**`): protobufjs decodes request bodies (gRPC and
 * HTTP) and encodes responses; @grpc/proto-loader supplies the gRPC service definition.
 *
 * Decoded requests are protobufjs messages: camelCase fields, ids as Buffers, 64-bit integers as Long
 * objects (exact, unlike JS numbers), repeated fields default to empty arrays and the AnyValue oneof
 * names its set field in `value`. OTLP/JSON bodies are turned into the same messages (ids are hex in
 * OTLP/JSON, base64 in the generic protobuf JSON mapping, so they are converted first).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { ValidationError } from '../../common/errors.ts';

const require = createRequire(import.meta.url);

/** Directory holding `opentelemetry/proto/**` (the official protos, v1.4.0). */
export const PROTO_DIR = dirname(require.resolve('@elastic/mockotlpserver/package.json'));
export const TRACE_SERVICE_PROTO = 'opentelemetry/proto/collector/trace/v1/trace_service.proto';
const PACKAGE = 'opentelemetry.proto.collector.trace.v1';

// ---------------------------------------------------------------------------------------------------------
// The decoded shapes the receiver reads (a subset of the messages, as protobufjs produces them).

/** A 64-bit integer: a Long from protobufjs, or a decimal string / number. */
export interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
  toString(radix?: number): string;
}
export type Int64 = LongLike | string | number;

export type AnyValueKind = 'stringValue' | 'boolValue' | 'intValue' | 'doubleValue' | 'arrayValue' | 'kvlistValue' | 'bytesValue';

export interface AnyValue {
  /** Which member of the oneof is set (protobufjs virtual oneof field). */
  value?: AnyValueKind;
  stringValue?: string;
  boolValue?: boolean;
  intValue?: Int64;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] } | null;
  kvlistValue?: { values?: KeyValue[] } | null;
  bytesValue?: Uint8Array;
}

export interface KeyValue {
  key?: string;
  value?: AnyValue | null;
}

export interface OtlpEvent {
  timeUnixNano?: Int64;
  name?: string;
  attributes?: KeyValue[];
}

export interface OtlpLink {
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  traceState?: string;
  attributes?: KeyValue[];
}

export interface OtlpSpan {
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  traceState?: string;
  parentSpanId?: Uint8Array;
  name?: string;
  kind?: number;
  startTimeUnixNano?: Int64;
  endTimeUnixNano?: Int64;
  attributes?: KeyValue[];
  events?: OtlpEvent[];
  links?: OtlpLink[];
  status?: { code?: number; message?: string } | null;
}

export interface ScopeSpans {
  spans?: OtlpSpan[];
}

export interface ResourceSpans {
  resource?: { attributes?: KeyValue[] } | null;
  scopeSpans?: ScopeSpans[];
}

export interface TraceRequest {
  resourceSpans?: ResourceSpans[];
}

export interface ExportResponse {
  partialSuccess?: { rejectedSpans: number; errorMessage: string };
}

// ---------------------------------------------------------------------------------------------------------
// protobufjs types

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
root.loadSync(TRACE_SERVICE_PROTO, { keepCase: false });
root.resolveAll();
const RequestType = root.lookupType(`${PACKAGE}.ExportTraceServiceRequest`);
const ResponseType = root.lookupType(`${PACKAGE}.ExportTraceServiceResponse`);

/** A message type of the loaded protos, e.g. `opentelemetry.proto.trace.v1.Span`. */
export function otlpType(name: string): protobuf.Type {
  return root.lookupType(name);
}

// google.rpc.Status, the body of OTLP/HTTP errors (its `details` are not used here).
const StatusType = new protobuf.Type('Status')
  .add(new protobuf.Field('code', 1, 'int32'))
  .add(new protobuf.Field('message', 2, 'string'));
new protobuf.Root().define('google.rpc').add(StatusType);

/** Decodes a binary ExportTraceServiceRequest; throws {@link ValidationError} saying what is wrong. */
export function decodeRequest(body: Uint8Array): TraceRequest {
  try {
    return RequestType.decode(body) as unknown as TraceRequest;
  } catch (err) {
    throw new ValidationError(`malformed OTLP protobuf: ${(err as Error).message}`, { cause: err });
  }
}

/** Encodes a request (clients, tests and the benchmark). */
export function encodeRequest(request: unknown): Buffer {
  const message = RequestType.fromObject(request as Record<string, unknown>);
  return Buffer.from(RequestType.encode(message).finish());
}

export function encodeResponse(response: ExportResponse): Buffer {
  if (!response.partialSuccess) return Buffer.alloc(0);
  return Buffer.from(ResponseType.encode(ResponseType.fromObject(response as Record<string, unknown>)).finish());
}

export function decodeResponse(body: Uint8Array): ExportResponse {
  const obj = ResponseType.toObject(ResponseType.decode(body), { longs: Number, defaults: false }) as ExportResponse;
  return obj;
}

/** OTLP/JSON response body (int64 as a decimal string, as the protobuf JSON mapping writes it). */
export function responseJson(response: ExportResponse): string {
  if (!response.partialSuccess) return '{}';
  const { rejectedSpans, errorMessage } = response.partialSuccess;
  return JSON.stringify({ partialSuccess: { rejectedSpans: String(rejectedSpans), errorMessage } });
}

export function encodeStatus(code: number, message: string): Buffer {
  return Buffer.from(StatusType.encode(StatusType.fromObject({ code, message })).finish());
}

export function decodeStatus(body: Uint8Array): { code: number; message: string } {
  return StatusType.toObject(StatusType.decode(body), { defaults: true }) as { code: number; message: string };
}

// ---------------------------------------------------------------------------------------------------------
// OTLP/JSON

const HEX = /^[0-9a-fA-F]*$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Replaces a hex id (OTLP/JSON) with its bytes, in place. */
function hexId(obj: Record<string, unknown>, field: string, path: string): void {
  const v = obj[field];
  if (v === undefined || v === null || v === '') return;
  if (typeof v !== 'string' || !HEX.test(v) || v.length % 2 !== 0) {
    throw new ValidationError(`malformed OTLP JSON: ${path}.${field} must be a hex string, got ${JSON.stringify(v)?.slice(0, 80)}`);
  }
  obj[field] = Buffer.from(v, 'hex');
}

function arrayAt(obj: Record<string, unknown>, field: string, path: string): unknown[] {
  const v = obj[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ValidationError(`malformed OTLP JSON: ${path}.${field} must be an array`);
  return v;
}

/**
 * Parses an OTLP/JSON ExportTraceServiceRequest (lowerCamelCase keys, hex trace/span ids, int64 as
 * strings or numbers, enums as integers) into the same message the protobuf decoder gives.
 */
export function decodeJsonRequest(body: Buffer | string): TraceRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    throw new ValidationError(`malformed OTLP JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(doc)) throw new ValidationError('malformed OTLP JSON: the body must be an object');
  arrayAt(doc, 'resourceSpans', '').forEach((rs, i) => {
    const rsPath = `resourceSpans[${i}]`;
    if (!isObject(rs)) throw new ValidationError(`malformed OTLP JSON: ${rsPath} must be an object`);
    arrayAt(rs, 'scopeSpans', rsPath).forEach((ss, j) => {
      const ssPath = `${rsPath}.scopeSpans[${j}]`;
      if (!isObject(ss)) throw new ValidationError(`malformed OTLP JSON: ${ssPath} must be an object`);
      arrayAt(ss, 'spans', ssPath).forEach((span, k) => {
        const spanPath = `${ssPath}.spans[${k}]`;
        if (!isObject(span)) throw new ValidationError(`malformed OTLP JSON: ${spanPath} must be an object`);
        hexId(span, 'traceId', spanPath);
        hexId(span, 'spanId', spanPath);
        hexId(span, 'parentSpanId', spanPath);
        arrayAt(span, 'links', spanPath).forEach((link, l) => {
          const linkPath = `${spanPath}.links[${l}]`;
          if (!isObject(link)) throw new ValidationError(`malformed OTLP JSON: ${linkPath} must be an object`);
          hexId(link, 'traceId', linkPath);
          hexId(link, 'spanId', linkPath);
        });
      });
    });
  });
  try {
    return RequestType.fromObject(doc) as unknown as TraceRequest;
  } catch (err) {
    throw new ValidationError(`malformed OTLP JSON: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------------------
// gRPC

/**
 * `TraceService` for @grpc/grpc-js. The request is handed over undecoded (a Buffer), so the receiver
 * counts its bytes, decodes it itself and answers INVALID_ARGUMENT with a message when it is malformed
 * (grpc-js would answer INTERNAL for a deserializer error).
 */
export function traceServiceDefinition(): ServiceDefinition {
  const pkg = loadSync(TRACE_SERVICE_PROTO, { includeDirs: [PROTO_DIR], keepCase: false, longs: String, defaults: false, oneofs: true });
  const service = pkg[`${PACKAGE}.TraceService`] as ServiceDefinition;
  const exportMethod = service.Export;
  if (!exportMethod) throw new Error(`${TRACE_SERVICE_PROTO} has no TraceService.Export`);
  return {
    Export: {
      ...exportMethod,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (r: ExportResponse) => encodeResponse(r),
      responseDeserialize: (b: Buffer) => decodeResponse(b),
    },
  };
}

/** The full gRPC method path. */
export const EXPORT_PATH = `/${PACKAGE}.TraceService/Export`;
