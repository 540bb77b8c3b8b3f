/**
 * OTLP/JSON: request bodies parsed into the messages the protobuf decoder gives (ids are hex in OTLP/JSON,
 * base64 in the generic protobuf JSON mapping, so they are converted first), and response bodies.
 */
import { ValidationError } from '../errors.ts';
import { ExportTraceServiceRequest as RequestType } from './protos.ts';
import type { ExportResponse, TraceRequest } from './types.ts';

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

/** OTLP/JSON response body (int64 as a decimal string, as the protobuf JSON mapping writes it). */
export function responseJson(response: ExportResponse): string {
  if (!response.partialSuccess) return '{}';
  const { rejectedSpans, errorMessage } = response.partialSuccess;
  return JSON.stringify({ partialSuccess: { rejectedSpans: String(rejectedSpans), errorMessage } });
}
