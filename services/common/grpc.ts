/**
 * gRPC plumbing over @grpc/grpc-js, the only module services take it from: a server that binds with a
 * clear error and shuts down within a deadline, loading a service definition from a `.proto` file, and
 * the few grpc-js types the edges name. Error → status mapping is the shared table of errors.ts.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Access, Authenticator, Principal } from './auth.ts';
import { clientMessage, edgeStatusOf, PortInUseError } from './errors.ts';

export type { handleUnaryCall, Metadata, sendUnaryData, ServerUnaryCall, ServiceClientConstructor, ServiceDefinition, ServiceError, UntypedServiceImplementation } from '@grpc/grpc-js';
export { Metadata as GrpcMetadata, credentials as grpcCredentials, status as grpcStatus } from '@grpc/grpc-js';
export type ProtoLoaderOptions = protoLoader.Options;

export interface GrpcServerOptions {
  /** What the server serves, for the bind error (`OTLP/gRPC`, `the orchestrator's gRPC API`). */
  what: string;
  host: string;
  port: number;
  /** Largest message received, bytes (grpc-js default 4 MiB). */
  maxReceiveBytes?: number;
  /** Largest message sent, bytes (grpc-js default 4 MiB). */
  maxSendBytes?: number;
}

/** A gRPC server: add services, `start()` binds (PortInUseError naming the address), `stop(ms)` drains then cancels. */
export class GrpcServer {
  readonly #opts: GrpcServerOptions;
  readonly #server: grpc.Server;
  #port = 0;
  #bound = false;

  constructor(options: GrpcServerOptions) {
    this.#opts = options;
    this.#server = new grpc.Server({
      ...(options.maxReceiveBytes === undefined ? {} : { 'grpc.max_receive_message_length': options.maxReceiveBytes }),
      ...(options.maxSendBytes === undefined ? {} : { 'grpc.max_send_message_length': options.maxSendBytes }),
    });
  }

  addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    this.#server.addService(service, implementation);
  }

  /** The port actually bound (useful with port 0); 0 before start. */
  port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    if (this.#bound) return;
    const { host, port, what } = this.#opts;
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(new PortInUseError(what, host, port, err));
        else resolve(bound);
      });
    });
    this.#bound = true;
  }

  /** Stops taking calls and waits up to `timeoutMs` for those in flight, then cancels the rest. Idempotent. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.#bound) return;
    this.#bound = false;
    const server = this.#server;
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
  }
}

/** `ipv4:1.2.3.4:5678`, `1.2.3.4:5678`, `[::1]:5678` → the address alone. */
export function peerAddress(peer: string): string {
  const s = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracket?.[1]) return bracket[1];
  const i = s.lastIndexOf(':');
  return i > 0 && s.indexOf(':') === i ? s.slice(0, i) : s;
}

/** A call's token: metadata `authorization: Bearer <token>`, else `x-bk-token`. */
export function tokenFromMetadata(metadata: grpc.Metadata): string | undefined {
  const first = (key: string): string | undefined => {
    const v = metadata.get(key)[0];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(first('authorization') ?? '')?.[1];
  return bearer ?? first('x-bk-token');
}

/** Who may make a call (auth.ts): the authenticator and the rule, `{ app }` reading the request message. */
export interface CallGuard<Req> {
  auth: Authenticator;
  access: Exclude<Access<Req>, 'public'>;
}

/** Checks a call's metadata against a guard: the principal, or an error of the shared table (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED). */
export async function authorizeCall<Req>(guard: CallGuard<Req>, call: { metadata: grpc.Metadata; getPeer(): string; request: Req }): Promise<Principal> {
  const token = tokenFromMetadata(call.metadata);
  const client = peerAddress(call.getPeer());
  const { access } = guard;
  if (typeof access === 'object') return guard.auth.authorize(token, client, 'app', access.app(call.request));
  return guard.auth.authorize(token, client, access);
}

/**
 * A unary handler around an async function; a thrown error becomes the status of the shared table, with
 * {@link clientMessage} as its details unless `onError` says otherwise. With a `guard`, the call's
 * credentials are checked first.
 */
export function unaryHandler<Req, Res>(fn: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>, onError?: (err: unknown, code: number) => string, guard?: CallGuard<Req>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    (async () => {
      if (guard) await authorizeCall(guard, call);
      return fn(call);
    })().then(
      (res) => callback(null, res),
      (err: unknown) => {
        const code = edgeStatusOf(err).grpc;
        callback({ code, details: onError ? onError(err, code) : clientMessage(err) });
      },
    );
  };
}

/** Loads one service of a `.proto` file: `loadService(path, 'pkg.v1.Service', options)`. */
export function loadService(protoPath: string, serviceName: string, options: protoLoader.Options, includeDirs: readonly string[] = []): grpc.ServiceClientConstructor {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { ...options, includeDirs: [...includeDirs] }));
  let node: unknown = pkg;
  for (const part of serviceName.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function') throw new Error(`${protoPath} has no service ${serviceName}`);
  return node as grpc.ServiceClientConstructor;
}
