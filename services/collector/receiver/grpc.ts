/**
 * OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on @grpc/grpc-js.
 *
 * - Messages over `maxMessageBytes` are refused by grpc-js with RESOURCE_EXHAUSTED before they are read.
 * - gzip-compressed messages are accepted (grpc-js decompresses them).
 * - The request arrives undecoded; the {@link ExportHandler} decodes it and its errors become statuses
 *   (receiver/errors.ts).
 */
import { Server, ServerCredentials, type Metadata, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { BkError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import { clientMessage, grpcCodeOf } from './errors.ts';
import { traceServiceDefinition, type ExportResponse } from '../../common/otlp/index.ts';
import type { ExportHandler } from './pipeline.ts';
import { tokenFromGrpc } from './tokens.ts';

export interface GrpcServerOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  handler: ExportHandler;
  logger: Logger;
}

/** `ipv4:1.2.3.4:5678`, `1.2.3.4:5678`, `[::1]:5678` → the address alone. */
export function peerAddress(peer: string): string {
  const s = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracket?.[1]) return bracket[1];
  const i = s.lastIndexOf(':');
  return i > 0 && s.indexOf(':') === i ? s.slice(0, i) : s;
}

export class GrpcReceiver {
  readonly name = 'otlp-grpc';
  readonly #opts: GrpcServerOptions;
  readonly #log: Logger;
  #server: Server | undefined;
  #port = 0;

  constructor(options: GrpcServerOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'otlp-grpc' });
  }

  port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = new Server({
      'grpc.max_receive_message_length': this.#opts.maxMessageBytes,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
    });
    server.addService(traceServiceDefinition(), {
      Export: (call: ServerUnaryCall<Buffer, ExportResponse>, callback: sendUnaryData<ExportResponse>) => {
        this.#export(call.request, call.metadata, call.getPeer()).then(
          (response) => callback(null, response),
          (err: unknown) => callback({ code: grpcCodeOf(err), details: clientMessage(err) }),
        );
      },
    });
    const host = this.#opts.host.includes(':') ? `[${this.#opts.host}]` : this.#opts.host;
    this.#port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${this.#opts.port}`, ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(new BkError('port_in_use', `cannot listen on ${host}:${this.#opts.port} for OTLP/gRPC: ${err.message}`, false, { cause: err }));
        else resolve(port);
      });
    });
    this.#server = server;
    this.#log.info('listening', { host: this.#opts.host, port: this.#port });
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
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, timeoutMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.#log.info('stopped');
  }
}
