/**
 * The OTLP protocol files, vendored under `schemas/otlp/` (the official opentelemetry-proto v1.4.0,
 * Apache-2.0), and the protobufjs root holding their trace messages.
 */
import { join, resolve } from 'node:path';
import protobuf from 'protobufjs';

/** Directory holding `opentelemetry/proto/**` (the official protos, v1.4.0). */
export const PROTO_DIR = resolve(import.meta.dirname, '../../../schemas/otlp');
export const TRACE_SERVICE_PROTO = 'opentelemetry/proto/collector/trace/v1/trace_service.proto';
/** The protobuf package of the trace service and its request/response messages. */
export const TRACE_SERVICE_PACKAGE = 'opentelemetry.proto.collector.trace.v1';

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
root.loadSync(TRACE_SERVICE_PROTO, { keepCase: false });
root.resolveAll();

/** A message type of the loaded protos, e.g. `opentelemetry.proto.trace.v1.Span`. */
export function otlpType(name: string): protobuf.Type {
  return root.lookupType(name);
}

export const ExportTraceServiceRequest = otlpType(`${TRACE_SERVICE_PACKAGE}.ExportTraceServiceRequest`);
export const ExportTraceServiceResponse = otlpType(`${TRACE_SERVICE_PACKAGE}.ExportTraceServiceResponse`);
