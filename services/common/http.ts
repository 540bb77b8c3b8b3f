/**
 * The small HTTP server every service exposes: `/metrics`, `/livez`, `/readyz` (and `/healthz`, the
 * same as `/readyz`), plus whatever JSON routes the service adds (the discovery query API, the
 * orchestrator API, the collector's admin API, bkdata-sim). Errors thrown by a route are mapped to
 * statuses through the one table in errors.ts; a client sees {@link clientMessage}, never a stack or a
 * driver's message with addresses (5xx are logged in full).
 *
 * With `auth` (an {@link Authenticator}: SECURITY.md), every route but the health and metrics ones is
 * checked, in this order, before its body is read:
 * 1. `Host` (and `Origin`, when a browser sends one) must name an IP address or an allowed host name
 *    (BKSTREAM_ALLOWED_HOSTS), else 403 — a DNS-rebinding page cannot reach the API under its own name;
 * 2. the route's {@link Route.access}: `public`, `authenticated`, `admin`, or `{ app }`. Undeclared, a
 *    route whose pattern has `biz` and `app` groups is readable with that application's token (or an
 *    admin token), any other needs an admin token: a service adopts authentication in one line and
 *    nothing is left open by default. No or unknown token → 401, a valid one that does not grant it → 403,
 *    a client address that failed too often → 429;
 * 3. a body must be `Content-Type: application/json`, else 415 (a cross-site form or `text/plain` POST
 *    is not read).
 * `GET /api/v1/whoami` answers who a token is (the console signs in with it).
 *
 * With `probes`, readiness is those dependencies' last answers (health.ts) and the service's `health()`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostAllowed, hostOf, tokenFromHeaders, type Access, type AppRef, type Authenticator, type Principal } from './auth.ts';
import { BkError, clientMessage, edgeStatusOf, ForbiddenError, PayloadTooLargeError, PortInUseError, TooManyRequestsError, UnsupportedMediaTypeError, ValidationError } from './errors.ts';
import { Readiness, type Probe } from './health.ts';
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
  /** Who the request's token belongs to (routes of a server with `auth` that are not public). */
  principal?: Principal;
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
  /**
   * Who may call it, on a server with `auth` (module comment). Undeclared: `{ app }` when the pattern has
   * `biz` and `app` groups, `admin` otherwise. Anything but `public` on a server without `auth` is refused
   * at construction.
   */
  access?: Access<HttpRequest>;
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
  /** The service's own readiness checks (dependencies are `probes`). */
  health: () => Health | Promise<Health>;
  routes?: readonly Route[];
  logger: Logger;
  /** Largest request body accepted, bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Checks every route that is not public (module comment); unset = no checks (only public routes allowed). */
  auth?: Authenticator | undefined;
  /** Dependencies probed while the server runs; readiness fails while one does not answer. */
  probes?: readonly Probe[] | undefined;
  /** Probe interval and timeout, ms (HEALTH_PROBE_INTERVAL_MS / HEALTH_PROBE_TIMEOUT_MS). Default 1 000 / 2 000. */
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
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

/** Routes every server has whatever `auth` says: scraping and probes must work without credentials. */
const HEALTH_PATHS = new Set(['/metrics', '/healthz', '/livez', '/readyz']);

/** The application a `biz`/`app` route pattern names (the default `{ app }` rule). */
function appOfParams(req: HttpRequest): AppRef {
  let appName: string;
  try {
    appName = decodeURIComponent(req.params.app ?? '');
  } catch {
    throw new ValidationError('app_name is not valid URL encoding');
  }
  return { bkBizId: Number(req.params.biz), appName };
}

/** The access rule of a route (its own, or the default of the module comment). */
export function accessOf(route: Route, params: Record<string, string>): Access<HttpRequest> {
  if (route.access) return route.access;
  if (typeof route.path === 'string' && HEALTH_PATHS.has(route.path)) return 'public';
  return params.biz !== undefined && params.app !== undefined ? { app: appOfParams } : 'admin';
}

/** Whether a request declares a body (so the Content-Type check applies). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** 403 unless Host (and Origin, if any) name an IP address or an allowed host (DNS rebinding). */
function checkHost(req: IncomingMessage, allowed: readonly string[]): void {
  const host = hostOf(req.headers.host ?? '');
  if (!hostAllowed(host, allowed)) throw new ForbiddenError(`host ${JSON.stringify(host)} is not allowed (BKSTREAM_ALLOWED_HOSTS)`);
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let originHost: string;
  try {
    originHost = new URL(origin).hostname;
  } catch {
    throw new ForbiddenError('the Origin header is not a URL');
  }
  if (!hostAllowed(originHost, allowed)) throw new ForbiddenError(`origin ${JSON.stringify(origin)} is not allowed (BKSTREAM_ALLOWED_HOSTS)`);
}

/** 415 unless a declared body is JSON. */
function checkJson(req: IncomingMessage): void {
  if (!hasBody(req)) return;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type !== 'application/json') throw new UnsupportedMediaTypeError(`unsupported Content-Type ${JSON.stringify(type)}: send application/json`);
}

/** The caller's address (failed authentications are counted per address). */
export function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * Checks a request against an access rule (not `public`): returns the principal or throws. Exported for
 * servers that do not use {@link createHttpServer} (the console's proxy) but want the same checks.
 */
export async function authorizeRequest(auth: Authenticator, req: IncomingMessage, access: Exclude<Access<HttpRequest>, 'public'>, request?: HttpRequest): Promise<Principal> {
  checkHost(req, auth.allowedHosts);
  if (typeof access === 'object') {
    if (!request) throw new ForbiddenError('an admin token is required');
    return auth.authorize(tokenFromHeaders(req.headers), clientAddress(req), 'app', access.app(request));
  }
  return auth.authorize(tokenFromHeaders(req.headers), clientAddress(req), access);
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
  const auth = options.auth;
  const readiness = options.probes && options.probes.length > 0
    ? new Readiness({ probes: options.probes, intervalMs: options.probeIntervalMs ?? 1_000, timeoutMs: options.probeTimeoutMs ?? 2_000, logger: options.logger, registry: options.registry })
    : undefined;
  const ready = async (): Promise<HttpResponse> => {
    const h = await options.health();
    const ok = h.ok && (readiness?.ok() ?? true);
    return {
      status: ok ? 200 : 503,
      body: { status: ok ? 'ok' : 'unavailable', ...(readiness ? { dependencies: readiness.checks() } : {}), ...(h.checks ? { checks: h.checks } : {}) },
    };
  };
  const routes: Route[] = [
    {
      method: 'GET',
      path: '/metrics',
      access: 'public',
      handle: async () => ({
        status: 200,
        body: await options.registry.metrics(),
        headers: { 'content-type': options.registry.contentType },
      }),
    },
    { method: 'GET', path: '/livez', access: 'public', handle: () => json(200, { status: 'ok' }) },
    { method: 'GET', path: '/readyz', access: 'public', handle: ready },
    { method: 'GET', path: '/healthz', access: 'public', handle: ready },
    ...(auth ? [whoamiRoute()] : []),
    ...(options.routes ?? []),
  ];
  if (!auth) {
    const guarded = routes.filter((r) => r.access !== undefined && r.access !== 'public');
    if (guarded.length > 0) throw new Error(`routes ${guarded.map((r) => `${r.method} ${String(r.path)}`).join(', ')} need credentials but the server has no auth`);
  }

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
        const request: HttpRequest = { method, path: url.pathname, query: url.searchParams, params, headers: req.headers, body: undefined, raw: req };
        if (auth) {
          const access = accessOf(route, params);
          if (access !== 'public') {
            request.principal = await authorizeRequest(auth, req, access, request);
            checkJson(req);
          }
        }
        request.body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)
          ? await readBody(req, options.maxBodyBytes ?? 1 << 20)
          : undefined;
        send(res, await route.handle(request));
      } catch (err) {
        const status = statusOf(err);
        if (status >= 500) log.error('request failed', { method, path: url.pathname, err });
        const headers: Record<string, string> = {};
        if (err instanceof TooManyRequestsError) headers['retry-after'] = String(err.retryAfterS);
        if (status === 503) headers['retry-after'] = '1';
        // A refused request's body is not read: close the connection rather than drain it.
        if (!req.complete && hasBody(req)) headers.connection = 'close';
        send(res, { status, body: { error: clientMessage(err), ...(err instanceof BkError ? { code: err.code } : {}) }, headers });
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
      log.info('listening', { host: options.host ?? '127.0.0.1', port: (server.address() as AddressInfo).port, auth: auth !== undefined });
      await readiness?.start();
    },
    async stop() {
      if (!started) return;
      started = false;
      await readiness?.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** `GET /api/v1/whoami`: who the request's token is (any valid token). */
function whoamiRoute(): Route {
  return {
    method: 'GET',
    path: '/api/v1/whoami',
    access: 'authenticated',
    handle: (req) => {
      const p = req.principal;
      if (p?.kind === 'app') return json(200, { kind: 'app', bk_biz_id: p.bkBizId, app_name: p.appName });
      return json(200, { kind: 'admin', name: p?.name ?? '' });
    },
  };
}
