/**
 * The small HTTP server every service exposes: `/metrics`, `/healthz`, plus whatever JSON routes the
 * service adds (the discovery query API, the orchestrator API, the collector's admin API, bkdata-sim).
 * Errors thrown by a route are mapped to statuses through the one table in errors.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BkError, edgeStatusOf, errorMessage, PayloadTooLargeError, PortInUseError, ValidationError } from './errors.ts';
import type { Logger } from './log.ts';
import type { Registry } from './metrics.ts';

export interface HttpRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** Named groups of the route's pattern. */
  params: Record<string, string>;
  headers: IncomingMessage['headers'];
  /** The body parsed as JSON (only read for POST/PUT/PATCH/DELETE; `undefined` when empty). */
  body: unknown;
  raw: IncomingMessage;
}

export interface HttpResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path, or a pattern with named groups: `/^\/api\/v1\/apps\/(?<biz>\d+)$/`. */
  path: string | RegExp;
  handle: (req: HttpRequest) => Promise<HttpResponse> | HttpResponse;
}

export interface Health {
  ok: boolean;
  /** Component name → state, shown on /healthz. */
  checks?: Record<string, unknown>;
}

export interface HttpServerOptions {
  host?: string;
  port: number;
  registry: Registry;
  health: () => Health | Promise<Health>;
  routes?: readonly Route[];
  logger: Logger;
  /** Largest request body accepted, bytes. Default 1 MiB. */
  maxBodyBytes?: number;
}

export interface HttpServer {
  readonly server: Server;
  /** The port actually bound (useful with port 0). */
  port(): number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function json(status: number, body: unknown): HttpResponse {
  return { status, body };
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PayloadTooLargeError(`request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ValidationError('request body is not valid JSON');
  }
}

function match(route: Route, method: string, path: string): Record<string, string> | undefined {
  if (route.method !== method) return undefined;
  if (typeof route.path === 'string') return route.path === path ? {} : undefined;
  const m = route.path.exec(path);
  if (!m) return undefined;
  return { ...(m.groups ?? {}) };
}

/** The HTTP status an error maps to (the shared table of errors.ts). */
export function statusOf(err: unknown): number {
  return edgeStatusOf(err).http;
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const log = options.logger.child({ component: 'http' });
  const routes: Route[] = [
    {
      method: 'GET',
      path: '/metrics',
      handle: async () => ({
        status: 200,
        body: await options.registry.metrics(),
        headers: { 'content-type': options.registry.contentType },
      }),
    },
    {
      method: 'GET',
      path: '/healthz',
      handle: async () => {
        const h = await options.health();
        return { status: h.ok ? 200 : 503, body: { status: h.ok ? 'ok' : 'unavailable', ...(h.checks ? { checks: h.checks } : {}) } };
      },
    },
    ...(options.routes ?? []),
  ];

  const send = (res: ServerResponse, r: HttpResponse): void => {
    const isText = typeof r.body === 'string';
    const payload = r.body === undefined ? '' : isText ? (r.body as string) : JSON.stringify(r.body);
    res.writeHead(r.status, {
      'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json',
      ...r.headers,
    });
    res.end(payload);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    void (async () => {
      try {
        let params: Record<string, string> | undefined;
        const route = routes.find((r) => (params = match(r, method, url.pathname)) !== undefined);
        if (!route || !params) {
          const allowed = routes.some((r) => match({ ...r, method: method as Route['method'] }, method, url.pathname));
          send(res, json(allowed ? 405 : 404, { error: allowed ? 'method not allowed' : 'not found' }));
          return;
        }
        const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)
          ? await readBody(req, options.maxBodyBytes ?? 1 << 20)
          : undefined;
        send(res, await route.handle({ method, path: url.pathname, query: url.searchParams, params, headers: req.headers, body, raw: req }));
      } catch (err) {
        const status = statusOf(err);
        if (status >= 500) log.error('request failed', { method, path: url.pathname, err });
        send(res, json(status, { error: errorMessage(err), ...(err instanceof BkError ? { code: err.code } : {}) }));
      }
    })();
  });
  // Keep-alive sockets would hold stop() open; close idle ones promptly.
  server.keepAliveTimeout = 5_000;

  let started = false;
  return {
    server,
    port: () => (server.address() as AddressInfo | null)?.port ?? options.port,
    async start() {
      if (started) return;
      const host = options.host ?? '127.0.0.1';
      await new Promise<void>((resolve, reject) => {
        const fail = (err: NodeJS.ErrnoException): void => {
          reject(err.code === 'EADDRINUSE' || err.code === 'EACCES' ? new PortInUseError('HTTP', host, options.port, err) : err);
        };
        server.once('error', fail);
        server.listen(options.port, host, () => {
          server.off('error', fail);
          resolve();
        });
      });
      started = true;
      log.info('listening', { host: options.host ?? '127.0.0.1', port: (server.address() as AddressInfo).port });
    },
    async stop() {
      if (!started) return;
      started = false;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
