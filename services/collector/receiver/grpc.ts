/**
 * OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on the shared gRPC server
 * (services/common/grpc.ts).
 *
 * - Messages over `maxMessageBytes` are refused by grpc-js with RESOURCE_EXHAUSTED before they are read.
 * - gzip-compressed messages are accepted (grpc-js decompresses them).
 * - The request arrives undecoded and goes straight to the {@link ExportHandler}, which decodes it; its
 *   errors become statuses through the shared table (services/common/errors.ts); a rate-limited call's
 *   RESOURCE_EXHAUSTED carries a RetryInfo (`grpc-status-details-bin`, retry-info.ts) so clients retry.
 * - The client IP is the peer's address; metadata `x-bk-metadata` pairs go to the resources (request-meta.ts).
 */
import { clientMessage, edgeStatusOf } from '../../common/errors.ts';
import { GrpcMetadata, GrpcServer, peerAddress, type handleUnaryCall, type Metadata } from '../../common/grpc.ts';
import type { Logger } from '../../common/log.ts';
import { traceServiceDefinition, type ExportResponse } from '../../common/otlp/index.ts';
import type { ExportHandler } from './export-service.ts';
import { tokenFromGrpc } from './tokens.ts';
import { RateLimitedError } from './errors.ts';
import { metadataFromGrpc } from './request-meta.ts';
import { statusWithRetryInfo } from './retry-info.ts';

/** Largest answer (an ExportTraceServiceResponse is small; grpc-js's default). */
const MAX_SEND_BYTES = 4 * 1024 * 1024;

export interface GrpcReceiverOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  handler: ExportHandler;
  logger: Logger;
}

/** `ipv4:1.2.3.4:5678` → the address alone (the shared helper of common/grpc.ts). */
export { peerAddress };

export class GrpcReceiver {
  readonly name = 'otlp-grpc';
  readonly #opts: GrpcReceiverOptions;
  readonly #log: Logger;
  readonly #server: GrpcServer;
  #listening = false;

  constructor(options: GrpcReceiverOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'otlp-grpc' });
    this.#server = new GrpcServer({ what: 'OTLP/gRPC', host: options.host, port: options.port, maxReceiveBytes: options.maxMessageBytes, maxSendBytes: MAX_SEND_BYTES });
    const exportCall: handleUnaryCall<Buffer, ExportResponse> = (call, callback) => {
      this.#export(call.request, call.metadata, call.getPeer()).then(
        (res) => callback(null, res),
        (err: unknown) => {
          const code = edgeStatusOf(err).grpc;
          const details = clientMessage(err);
          if (!(err instanceof RateLimitedError)) {
            callback({ code, details });
            return;
          }
          // Throttled: RetryInfo tells OTLP clients to retry after the delay (without it they drop the data).
          const metadata = new GrpcMetadata();
          metadata.set('grpc-status-details-bin', statusWithRetryInfo(code, details, err.retryAfterS));
          callback({ code, details, metadata });
        },
      );
    };
    this.#server.addService(traceServiceDefinition(), { Export: exportCall });
  }

  /** The port bound (useful when configured as 0; still known after stop); 0 before start. */
  port(): number {
    return this.#server.port();
  }

  async start(): Promise<void> {
    if (this.#listening) return;
    await this.#server.start();
    this.#listening = true;
    this.#log.info('listening', { host: this.#opts.host, port: this.port() });
  }

  async #export(body: Buffer, metadata: Metadata, peer: string): Promise<ExportResponse> {
    const h = this.#opts.handler;
    try {
      h.reserve(body.length);
    } catch (err) {
      h.refused('grpc', err, body.length);
      throw err;
    }
    try {
      return await h.export({ protocol: 'grpc', format: 'protobuf', body, token: tokenFromGrpc(metadata), clientIp: peerAddress(peer), metadata: metadataFromGrpc(metadata) }, body.length);
    } finally {
      h.release(body.length);
    }
  }

  /** Stops taking calls and waits up to `timeoutMs` for those in flight, then cancels the rest. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    await this.#server.stop(timeoutMs);
    this.#log.info('stopped');
  }
}
