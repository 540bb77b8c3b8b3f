/**
 * The console's HTTP server. The shared one (common/http.ts) parses every body as JSON and has no
 * static files or streaming, so the console has its own, small one:
 *
 * | path | what |
 * | --- | --- |
 * | `GET /`, `GET /assets/…` | the front end (assets.ts) |
 * | `GET /console/settings.json` | what the front end needs to know: refresh interval, OTLP endpoints for the SDK snippet |
 * | `/api/<discovery\|storage\|orchestrator\|collector>/…` | the proxy (proxy.ts) |
 * | `GET /metrics`, `GET /livez`, `GET /readyz`, `GET /healthz` | as every service (ready: the front end is loaded) |
 *
 * Before anything else, the Host header must name this console (loopback names, CONSOLE_HOST, or
 * CONSOLE_ALLOWED_HOSTS), else 403: a page on another origin that rebinds its DNS name to this address
 * gets nothing. The health and metrics paths are answered whatever the Host (a kubelet probe or a scraper
 * names the pod's address; they carry nothing of a user's), as on every service. A proxied call that changes something (POST, DELETE) must come from the console's own
 * origin when the browser says where it comes from (Origin), and a body must be JSON (415 otherwise).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PortInUseError } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { Registry } from '../common/metrics.ts';
import type { Assets } from './assets.ts';
import { LOOPBACK_HOSTS, type ConsoleConfig } from './config.ts';
import type { ConsoleMetrics } from './metrics.ts';
import { UPSTREAMS, type Proxy, type UpstreamName } from './proxy.ts';

/** What the front end reads at start (a `<meta name="bkstream-settings">` of index.html, and `/console/settings.json`); nothing secret. */
export interface FrontEndSettings {
  refreshIntervalMs: number;
  otlpHttpUrl: string;
  otlpGrpcUrl: string;
}

export interface ConsoleServerOptions {
  config: ConsoleConfig;
  assets: Assets;
  proxy: Proxy;
  registry: Registry;
  metrics: ConsoleMetrics;
  logger: Logger;
  /** Whether the assets are loaded (health). */
  ready: () => boolean;
}

const API = /^\/api\/(?<upstream>[a-z]+)(?<rest>\/.*)$/;
/** Answered for any Host: probes and scrapers name the pod's address. */
const HEALTH_PATHS = new Set(['/metrics', '/livez', '/readyz', '/healthz']);

/** The host part of a Host header, lower-cased, without the port (`[::1]:8080` → `[::1]`). */
export function hostName(header: string | undefined): string {
  if (!header) return '';
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon >= 0 ? h.slice(0, colon) : h;
}

/** index.html with the front end's settings in a meta tag (no extra round trip before the first API call). */
export function withSettings(html: string, settings: FrontEndSettings): string {
  const json = JSON.stringify(settings).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return html.replace('</head>', `<meta name="bkstream-settings" content="${json}">\n</head>`);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

export class ConsoleServer {
  readonly server: Server;
  readonly #o: ConsoleServerOptions;
  readonly #allowedHosts: Set<string>;
  readonly #settings: FrontEndSettings;
  #started = false;

  constructor(options: ConsoleServerOptions) {
    this.#o = options;
    const c = options.config;
    this.#allowedHosts = new Set([...LOOPBACK_HOSTS, c.host.includes(':') ? `[${c.host}]` : c.host, ...c.consoleAllowedHosts.map((h) => hostName(h))].map((h) => h.toLowerCase()));
    this.#settings = { refreshIntervalMs: c.refreshIntervalMs, otlpHttpUrl: c.otlpHttpUrl, otlpGrpcUrl: c.otlpGrpcUrl };
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        options.logger.error('request failed', { path: req.url, err });
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5_000;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
  }

  /** The settings the front end is given. */
  settings(): FrontEndSettings {
    return this.#settings;
  }

  port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? this.#o.config.port;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { metrics } = this.#o;
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const health = HEALTH_PATHS.has(path) && (req.method === 'GET' || req.method === 'HEAD');
    if (!health && !this.#allowedHosts.has(hostName(req.headers.host))) {
      metrics.refused.inc({ reason: 'host' });
      send(res, 403, { error: 'this console does not answer for that host name (CONSOLE_ALLOWED_HOSTS)' });
      req.resume();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://console');
    const method = req.method ?? 'GET';
    const api = API.exec(url.pathname);
    if (api?.groups) {
      const upstream = api.groups.upstream as UpstreamName;
      if (!(UPSTREAMS as readonly string[]).includes(upstream)) {
        metrics.refused.inc({ reason: 'route' });
        send(res, 404, { error: `no API ${upstream} (one of ${UPSTREAMS.join(', ')})` });
        req.resume();
        return;
      }
      if (method !== 'GET' && method !== 'HEAD') {
        const origin = req.headers.origin;
        if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}` && origin !== `https://${req.headers.host ?? ''}`) {
          metrics.refused.inc({ reason: 'origin' });
          send(res, 403, { error: 'cross-origin calls that change state are refused' });
          req.resume();
          return;
        }
        const length = Number(req.headers['content-length'] ?? 0);
        const chunked = req.headers['transfer-encoding'] !== undefined;
        const type = String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
        if ((length > 0 || chunked) && type !== 'application/json') {
          metrics.refused.inc({ reason: 'media_type' });
          send(res, 415, { error: 'request bodies must be application/json' });
          req.resume();
          return;
        }
      }
      this.#o.proxy.handle(req, res, upstream, api.groups.rest as string, url.search);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      send(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
      req.resume();
      return;
    }
    switch (url.pathname) {
      case '/livez':
        send(res, 200, { status: 'ok' });
        return;
      case '/readyz':
      case '/healthz': {
        const ok = this.#o.ready();
        send(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', checks: { assets: ok ? 'loaded' : 'not loaded' } });
        return;
      }
      case '/metrics':
        send(res, 200, await this.#o.registry.metrics(), { 'content-type': this.#o.registry.contentType });
        return;
      case '/console/settings.json':
        send(res, 200, this.#settings);
        return;
    }
    if (this.#o.assets.serve(req, res, url.pathname)) {
      metrics.assets.inc({ code: String(res.statusCode) });
      return;
    }
    metrics.assets.inc({ code: '404' });
    send(res, 404, 'not found');
  }

  async start(): Promise<void> {
    if (this.#started) return;
    const { host, port } = this.#o.config;
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException): void => {
        reject(err.code === 'EADDRINUSE' || err.code === 'EACCES' ? new PortInUseError('HTTP', host, port, err) : err);
      };
      this.server.once('error', fail);
      this.server.listen(port, host, () => {
        this.server.off('error', fail);
        resolve();
      });
    });
    this.#started = true;
    this.#o.logger.info('listening', { host, port: this.port() });
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      // Requests in flight get a moment to finish (a proxied call has its own timeout); then they are cut.
      setTimeout(() => this.server.closeAllConnections(), 2_000).unref();
    });
  }
}
