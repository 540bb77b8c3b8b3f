/**
 * The OTLP trace protocol, the only place that imports protobufjs: the official opentelemetry-proto
 * v1.4.0 files vendored under `schemas/otlp/` (protos.ts), the decoded message shapes (types.ts),
 * binary request/response/status encoding (codec.ts), OTLP/JSON (json.ts), and the gRPC trace service
 * for servers and clients (grpc.ts). The collector receives with it; a service that exports spans
 * encodes with it.
 */
export * from './codec.ts';
export * from './grpc.ts';
export * from './json.ts';
export * from './protos.ts';
export * from './types.ts';
