/**
 * Binary OTLP/protobuf: ExportTraceServiceRequest bodies (gRPC and HTTP), responses, and the
 * `google.rpc.Status` body of OTLP/HTTP errors.
 */
import protobuf from 'protobufjs';
import { ValidationError } from '../errors.ts';
import { ExportTraceServiceRequest as RequestType, ExportTraceServiceResponse as ResponseType } from './protos.ts';
import type { ExportResponse, TraceRequest } from './types.ts';

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

export function encodeStatus(code: number, message: string): Buffer {
  return Buffer.from(StatusType.encode(StatusType.fromObject({ code, message })).finish());
}

export function decodeStatus(body: Uint8Array): { code: number; message: string } {
  return StatusType.toObject(StatusType.decode(body), { defaults: true }) as { code: number; message: string };
}
