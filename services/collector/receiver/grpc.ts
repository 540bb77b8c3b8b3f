/**
 * OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on the shared gRPC server
 * (services/common/grpc.ts).
 *
 * - Messages over `maxMessageBytes` are refused by grpc-js with RESOURCE_EXHAUSTED before they are read.
 * - gzip-compressed messages are accepted (grpc-js decompresses them).
 * - The request arrives undecoded and goes straight to the {@link ExportHandler}, which decodes it; its
 *   errors become statuses through the shared table (services/common/errors.ts).
 */
import { clientMessage } from '../../common/errors.ts';
import { GrpcServer, peerAddress, unaryHandler, type Metadata } from '../../common/grpc.ts';
import type { Logger } from '../../common/log.ts';
import { traceServiceDefinition, type ExportResponse } from '../../common/otlp/index.ts';
import type { ExportHandler } from './export-service.ts';
import { tokenFromGrpc } from './tokens.ts';

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
    this.#server.addService(traceServiceDefinition(), {
      Export: unaryHandler<Buffer, ExportResponse>(
        (call) => this.#export(call.request, call.metadata, call.getPeer()),
        (err) => clientMessage(err),
      ),
    });
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
      return await h.export({ protocol: 'grpc', format: 'protobuf', body, token: tokenFromGrpc(metadata), clientIp: peerAddress(peer) }, body.length);
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
