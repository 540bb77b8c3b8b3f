/**
 * OTLP/HTTP: `POST /v1/traces` (and the reference's alias `/v1/trace`) on a plain node:http server,
 * because bodies are raw protobuf or JSON (the common JSON-only HTTP helper does not fit).
 *
 * - `Content-Type: application/x-protobuf` (or `application/protobuf`) → binary OTLP; `application/json`
 *   or none → OTLP/JSON; anything else → 415.
 * - `Content-Encoding: gzip` / `deflate` are decompressed, bounded by the same limit as the body.
 * - A `Content-Length` over the limit is refused with 413 before the body is read; a body that grows past
 *   it while streaming too.
 * - Slow clients cannot hold the receiver (SECURITY.md, "Slow clients"): a token in the headers (or the
 *   query) is checked before any body byte is read — unknown: 401 at once, the connection closed — and
 *   only then are body bytes reserved against the in-flight bound as they arrive. A request without one
 *   (its token may be a `bk.data.token` resource attribute) is read only while fewer than
 *   COLLECTOR_HTTP_MAX_UNAUTHENTICATED_REQUESTS such requests are (else 429), outside that bound. Headers
 *   must arrive within COLLECTOR_HTTP_HEADERS_TIMEOUT_S, the whole request within
 *   COLLECTOR_HTTP_REQUEST_TIMEOUT_S (else 408), an idle connection closes after
 *   COLLECTOR_HTTP_IDLE_TIMEOUT_S, and of the connections that have not shown a valid header token at
 *   most COLLECTOR_HTTP_MAX_UNAUTHENTICATED_CONNECTIONS stay open (a new one closes the oldest).
 * - The client IP is `X-Forwarded-For`'s first address (else the peer); `X-BK-METADATA` pairs go to the
 *   resources (request-meta.ts).
 * - Errors answer with a `google.rpc.Status` in the request's format (status and code from the shared
 *   table of services/common/errors.ts) and, for 429 / 503, `Retry-After`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import { clientMessage, edgeStatusOf, PayloadTooLargeError, PortInUseError, UnsupportedMediaTypeError, ValidationError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import { RateLimitedError, UnauthenticatedError } from './errors.ts';
import { encodeResponse, encodeStatus, responseJson, type ExportResponse } from '../../common/otlp/index.ts';
import type { ExportHandler } from './export-service.ts';
import type { BodyFormat } from './pipeline.ts';
import { tokenFromHttp } from './tokens.ts';
import { clientIpFromHttp, metadataFromHttp } from './request-meta.ts';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

export const TRACES_PATHS = new Set(['/v1/traces', '/v1/trace']);

export interface HttpReceiverOptions {
  host: string;
  port: number;
  maxBodyBytes: number;
  handler: ExportHandler;
  logger: Logger;
  /** Time to send the request headers, s. Default 10. */
  headersTimeoutS?: number;
  /** Time to send a whole request, s. Default 30. */
  requestTimeoutS?: number;
  /** A connection without traffic for this long is closed, s. Default 30. */
  idleTimeoutS?: number;
  /** Open connections that have not shown a valid header token, at most (the oldest is closed). Default 64. */
  maxUnauthenticatedConnections?: number;
  /** Requests without a header token read at once, at most (more: 429). Default 8. */
  maxUnauthenticatedRequests?: number;
  /** Told when a connection is closed to make room (for metrics). */
  onEvicted?: () => void;
}

function formatOf(contentType: string | undefined): BodyFormat {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/x-protobuf' || type === 'application/protobuf') return 'protobuf';
  if (type === '' || type === 'application/json') return 'json';
  throw new UnsupportedMediaTypeError(`unsupported Content-Type ${JSON.stringify(type)}: use application/x-protobuf or application/json`);
}

/**
 * Reads a body, calling `onChunk` with each chunk's size first (it may throw to refuse). Refusing or
 * passing `limit` rejects at once; the rest of the body is then discarded, not buffered.
 */
function readBody(req: IncomingMessage, limit: number, onChunk: (bytes: number) => void): Promise<Buffer[]> {
  return new Promise<Buffer[]>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let failed = false;
    const fail = (err: unknown): void => {
      failed = true;
      chunks.length = 0;
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      bytes += chunk.length;
      if (bytes > limit) {
        fail(new PayloadTooLargeError(`request body exceeds the limit of ${limit} bytes`));
        return;
      }
      try {
        onChunk(chunk.length);
      } catch (err) {
        fail(err);
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (!failed) resolve(chunks);
    });
    req.once('error', (err) => {
      if (!failed) fail(new ValidationError(`reading the request body failed: ${err.message}`));
    });
  });
}

export class HttpReceiver {
  readonly name = 'otlp-http';
  readonly #opts: HttpReceiverOptions;
  readonly #log: Logger;
  readonly #server: Server;
  /** Open connections that have not shown a valid header token, oldest first. */
  readonly #unauthenticated = new Set<Socket>();
  /** Requests without a header token whose bodies are being read. */
  #unauthenticatedRequests = 0;
  #listening = false;

  constructor(options: HttpReceiverOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'otlp-http' });
    const requestTimeoutMs = (options.requestTimeoutS ?? 30) * 1000;
    this.#server = createServer({
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(requestTimeoutMs, (options.headersTimeoutS ?? 10) * 1000),
      // How often Node checks those two timeouts (its default, 30 s, would let a slow client stay twice as long).
      connectionsCheckingInterval: 1_000,
    }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        // #handle answers every error itself; this is a last resort (e.g. the socket died mid-answer).
        this.#log.warn('request handling failed', { err });
        res.destroy();
      });
    });
    const idleMs = (options.idleTimeoutS ?? 30) * 1000;
    this.#server.keepAliveTimeout = Math.min(5_000, idleMs);
    this.#server.timeout = idleMs;
    this.#server.on('timeout', (socket: Socket) => socket.destroy());
    const maxUnauthenticated = options.maxUnauthenticatedConnections ?? 64;
    this.#server.on('connection', (socket: Socket) => {
      this.#unauthenticated.add(socket);
      socket.once('close', () => this.#unauthenticated.delete(socket));
      if (this.#unauthenticated.size > maxUnauthenticated) {
        const oldest = this.#unauthenticated.values().next().value as Socket;
        this.#unauthenticated.delete(oldest);
        oldest.destroy();
        options.onEvicted?.();
      }
    });
  }

  port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? this.#opts.port;
  }

  async start(): Promise<void> {
    if (this.#listening) return;
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException): void => {
        reject(new PortInUseError('OTLP/HTTP', this.#opts.host, this.#opts.port, err));
      };
      this.#server.once('error', fail);
      this.#server.listen(this.#opts.port, this.#opts.host, () => {
        this.#server.off('error', fail);
        resolve();
      });
    });
    this.#listening = true;
    this.#log.info('listening', { host: this.#opts.host, port: this.port() });
  }

  /** Stops accepting connections, lets requests in flight finish for up to `timeoutMs`, then cuts the rest. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.closeAllConnections();
      }, timeoutMs);
      this.#server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.#server.closeIdleConnections();
    });
    this.#log.info('stopped');
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!TRACES_PATHS.has(url.pathname)) {
      req.resume();
      this.#plain(res, 404, 'not found: OTLP traces are POSTed to /v1/traces');
      return;
    }
    if (req.method !== 'POST') {
      req.resume();
      this.#plain(res, 405, 'method not allowed: use POST', { allow: 'POST' });
      return;
    }
    let format: BodyFormat = 'json';
    let reserved = 0;
    let wire = 0;
    let exporting = false;
    let unauthenticated = false;
    const h = this.#opts.handler;
    try {
      format = formatOf(req.headers['content-type']);
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > this.#opts.maxBodyBytes) {
        throw new PayloadTooLargeError(`request body of ${declared} bytes exceeds the limit of ${this.#opts.maxBodyBytes} bytes`);
      }
      const token = tokenFromHttp(req.headers, url.searchParams);
      if (token !== undefined) {
        // Checked before any body byte is read or counted: a bad token costs one cached lookup, not memory.
        if (!(await h.checkToken(token))) throw new UnauthenticatedError('unknown or disabled application token');
        this.#unauthenticated.delete(req.socket);
      } else {
        if (this.#unauthenticatedRequests >= (this.#opts.maxUnauthenticatedRequests ?? 8)) {
          throw new RateLimitedError('too many requests without a token in their headers: send the application token as x-bk-token or "Authorization: Bearer"', 1);
        }
        unauthenticated = true;
        this.#unauthenticatedRequests++;
      }
      // A request without a header token is bounded by the count above, not by the in-flight bytes of
      // authenticated ones: its bytes are reserved only once the whole body is in.
      const chunks = await readBody(req, this.#opts.maxBodyBytes, (n) => {
        wire += n;
        if (unauthenticated) return;
        h.reserve(n);
        reserved += n;
      });
      if (unauthenticated) {
        this.#unauthenticatedRequests--;
        unauthenticated = false;
        h.reserve(wire);
        reserved += wire;
      }
      let body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding === 'gzip' || encoding === 'deflate') {
        body = await this.#decompress(body, encoding);
        h.reserve(body.length);
        reserved += body.length;
      } else if (encoding !== 'identity') {
        throw new ValidationError(`unsupported Content-Encoding ${JSON.stringify(encoding)}: use gzip, deflate or none`);
      }
      exporting = true;
      const response = await h.export({ protocol: 'http', format, body, token, clientIp: clientIpFromHttp(req), metadata: metadataFromHttp(req) }, wire);
      this.#answer(res, format, response);
    } catch (err) {
      if (!exporting) h.refused('http', err, wire);
      this.#fail(req, res, format, err);
    } finally {
      if (unauthenticated) this.#unauthenticatedRequests--;
      if (reserved > 0) h.release(reserved);
    }
  }

  async #decompress(body: Buffer, encoding: 'gzip' | 'deflate'): Promise<Buffer> {
    try {
      const options = { maxOutputLength: this.#opts.maxBodyBytes };
      return encoding === 'gzip' ? await gunzipAsync(body, options) : await inflateAsync(body, options);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new PayloadTooLargeError(`decompressed body exceeds the limit of ${this.#opts.maxBodyBytes} bytes`);
      }
      throw new ValidationError(`cannot ${encoding}-decompress the body: ${(err as Error).message}`);
    }
  }

  #answer(res: ServerResponse, format: BodyFormat, response: ExportResponse): void {
    if (format === 'protobuf') {
      const body = encodeResponse(response);
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': body.length });
      res.end(body);
    } else {
      const body = responseJson(response);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }
  }

  #fail(req: IncomingMessage, res: ServerResponse, format: BodyFormat, err: unknown): void {
    const edge = edgeStatusOf(err);
    const status = edge.http;
    const message = clientMessage(err);
    const headers: Record<string, string | number> = {};
    if (status === 429) headers['retry-after'] = err instanceof RateLimitedError ? err.retryAfterS : 1;
    if (status === 503) headers['retry-after'] = 1;
    // The body was not read to its end: discard the rest and close the connection after the answer.
    if (!req.complete) headers.connection = 'close';
    const code = edge.grpc;
    let body: Buffer;
    if (format === 'protobuf') {
      headers['content-type'] = 'application/x-protobuf';
      body = encodeStatus(code, message);
    } else {
      headers['content-type'] = 'application/json';
      body = Buffer.from(JSON.stringify({ code, message }));
    }
    headers['content-length'] = body.length;
    if (!res.headersSent) res.writeHead(status, headers);
    res.end(body);
    if (!req.complete) req.resume();
  }

  #plain(res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...extra });
    res.end(message);
  }
}
