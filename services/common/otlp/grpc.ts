/**
 * OTLP/gRPC: the trace service's definition for servers and its client constructor, over the vendored
 * protos and the gRPC plumbing of services/common/grpc.ts.
 */
import { loadService, type ProtoLoaderOptions, type ServiceClientConstructor, type ServiceDefinition } from '../grpc.ts';
import { decodeResponse, encodeResponse } from './codec.ts';
import { PROTO_DIR, TRACE_SERVICE_PACKAGE, TRACE_SERVICE_PROTO } from './protos.ts';
import type { ExportResponse } from './types.ts';

const SERVICE = `${TRACE_SERVICE_PACKAGE}.TraceService`;
const LOADER_OPTIONS: ProtoLoaderOptions = { keepCase: false, longs: String, defaults: false, oneofs: true };

/** The full gRPC method path. */
export const EXPORT_PATH = `/${SERVICE}/Export`;

/**
 * The `TraceService` client constructor (a grpc-js Client whose `makeUnaryRequest` reaches
 * {@link EXPORT_PATH} with any serializers), for OTLP/gRPC clients.
 */
export function traceServiceClient(options: ProtoLoaderOptions = LOADER_OPTIONS): ServiceClientConstructor {
  return loadService(TRACE_SERVICE_PROTO, SERVICE, options, [PROTO_DIR]);
}

/**
 * `TraceService` for a gRPC server. The request is handed over undecoded (a Buffer), so the receiver
 * counts its bytes, decodes it itself and answers INVALID_ARGUMENT with a message when it is malformed
 * (grpc-js would answer INTERNAL for a deserializer error).
 */
export function traceServiceDefinition(): ServiceDefinition {
  const exportMethod = traceServiceClient().service.Export;
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
