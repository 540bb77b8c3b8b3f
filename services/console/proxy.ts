/**
 * The thin proxy from the browser to the other services' APIs: `/api/<upstream>/<path>` is forwarded,
 * streamed both ways, to `<upstream URL>/api/v1/<path>` when the method and path are on the upstream's
 * list below (anything else is 404 here, so the console cannot be used to reach an upstream's admin or
 * fault-injection routes). The browser's `Authorization` header is forwarded as it is; the console adds
 * no credentials of its own. Upstream answers get `Cache-Control: no-store` (they are per-token data).
 */
import { request as httpRequest, Agent as HttpAgent, type ClientRequest, type IncomingMessage, type ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import type { ConsoleMetrics } from './metrics.ts';

export const UPSTREAMS = ['discovery', 'storage', 'orchestrator', 'collector'] as const;
export type UpstreamName = (typeof UPSTREAMS)[number];
type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

const APP = String.raw`/apps/-?\d+/[^/]+`;
const FLOW = String.raw`/flows/-?\d+/[^/]+/[a-z_]+`;
const allow = (method: Method, path: string): [Method, RegExp] => [method, new RegExp(`^${path}$`)];

/** What each upstream may be asked through the console (paths after `/api/v1`). */
export const PROXY_ROUTES: Readonly<Record<UpstreamName, readonly [Method, RegExp][]>> = {
  discovery: [allow('GET', `${APP}/(endpoints|hosts|instances|nodes|relations|remote-service-relations|root-endpoints)`)],
  storage: [
    allow('GET', `${APP}/(traces|spans|options|aggregate)`),
    allow('POST', `${APP}/(traces|spans|options|aggregate)`),
    allow('GET', `${APP}/traces/[^/]+`),
    allow('GET', '/apps'),
    allow('GET', '/traces/[^/]+'),
    allow('GET', '/metrics/query'),
    allow('GET', '/events'),
  ],
  orchestrator: [allow('GET', '/flows'), allow('POST', '/flows'), allow('GET', FLOW), allow('POST', `${FLOW}/retry`), allow('GET', '/breakers')],
  collector: [allow('GET', '/apps'), allow('POST', '/apps'), allow('GET', APP), allow('PATCH', APP), allow('POST', `${APP}/rotate-token`), allow('DELETE', APP)],
};

/** Whether the console forwards `method path` (path after `/api/v1`) to `upstream`. */
export function proxyAllows(upstream: UpstreamName, method: string, path: string): boolean {
  return PROXY_ROUTES[upstream].some(([m, re]) => m === method && re.test(path));
}

/** Request headers passed on to the upstream (no cookies, no Origin: the console checked it). */
const FORWARD_REQUEST = ['accept', 'authorization', 'content-type', 'content-length', 'x-request-id'];
/** Answer headers passed back to the browser. */
const FORWARD_RESPONSE = ['content-type', 'content-length', 'www-authenticate', 'retry-after'];

export interface ProxyOptions {
  upstreams: Readonly<Record<UpstreamName, string>>;
  timeoutMs: number;
  maxBodyBytes: number;
  metrics: ConsoleMetrics;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export class Proxy {
  readonly #o: ProxyOptions;
  readonly #bases: Record<UpstreamName, URL>;
  readonly #http = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  readonly #https = new HttpsAgent({ keepAlive: true, maxSockets: 64 });

  constructor(options: ProxyOptions) {
    this.#o = options;
    this.#bases = Object.fromEntries(UPSTREAMS.map((u) => [u, new URL(options.upstreams[u])])) as Record<UpstreamName, URL>;
  }

  /**
   * Forwards one call; `rest` is the path after `/api/<upstream>` (it becomes `/api/v1<rest>`). Answers
   * 404 for a route off the list, 413 for a body over the limit, 502 when the upstream cannot be reached,
   * 504 when it does not answer in time; otherwise the upstream's status and body, streamed.
   */
  handle(req: IncomingMessage, res: ServerResponse, upstream: UpstreamName, rest: string, search: string): void {
    const { metrics } = this.#o;
    const method = req.method ?? 'GET';
    if (!proxyAllows(upstream, method, rest)) {
      metrics.refused.inc({ reason: 'route' });
      sendJson(res, 404, { error: `the console does not forward ${method} ${rest} to ${upstream}` });
      req.resume();
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > this.#o.maxBodyBytes) {
      metrics.refused.inc({ reason: 'too_large' });
      sendJson(res, 413, { error: `request body exceeds ${this.#o.maxBodyBytes} bytes` });
      req.resume();
      return;
    }
    const base = this.#bases[upstream];
    const target = new URL(base);
    target.pathname = `${base.pathname.replace(/\/$/, '')}/api/v1${rest}`;
    target.search = search;
    const headers: OutgoingHttpHeaders = {};
    for (const h of FORWARD_REQUEST) {
      const v = req.headers[h];
      if (v !== undefined) headers[h] = v;
    }
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    headers['x-forwarded-host'] = req.headers.host ?? '';
    headers['x-forwarded-proto'] = 'http';
    const https = target.protocol === 'https:';
    const started = performance.now();
    let settled = false;
    const finish = (reason?: 'unreachable' | 'timeout' | 'aborted', status?: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (reason) metrics.proxyFailures.inc({ upstream, reason });
      else metrics.proxied.inc({ upstream, method, code: String(status) });
      metrics.proxySeconds.observe({ upstream }, (performance.now() - started) / 1000);
    };
    const withBody = method === 'POST' || method === 'PATCH' || declared > 0 || req.headers['transfer-encoding'] !== undefined;
    let out: ClientRequest;
    const timer = setTimeout(() => {
      finish('timeout');
      out.destroy();
      sendJson(res, 504, { error: `${upstream} API did not answer within ${this.#o.timeoutMs} ms` });
    }, this.#o.timeoutMs);
    const send = (retry: boolean): void => {
      out = (https ? httpsRequest : httpRequest)(target, { method, headers, agent: https ? this.#https : this.#http });
      out.on('response', (answer) => {
        if (res.headersSent || settled) {
          answer.resume();
          return;
        }
        const h: OutgoingHttpHeaders = { 'cache-control': 'no-store' };
        for (const name of FORWARD_RESPONSE) {
          const v = answer.headers[name];
          if (v !== undefined) h[name] = v;
        }
        res.writeHead(answer.statusCode ?? 502, h);
        answer.pipe(res);
        answer.on('end', () => finish(undefined, answer.statusCode));
        answer.on('error', () => {
          finish('unreachable');
          res.destroy();
        });
      });
      out.on('error', (err: NodeJS.ErrnoException) => {
        if (settled || res.headersSent) return;
        // A kept-alive connection the upstream closed just as it was reused: a call without a body is sent again, once.
        if (retry && !withBody && out.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
          send(false);
          return;
        }
        finish('unreachable');
        sendJson(res, 502, { error: `${upstream} API is unreachable` });
      });
      if (!withBody) out.end();
    };
    send(true);
    res.on('close', () => {
      if (!res.writableFinished && !settled) {
        finish('aborted');
        out.destroy();
      }
    });
    if (!withBody) {
      req.resume();
      return;
    }
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (out.destroyed) return;
      size += chunk.length;
      if (size > this.#o.maxBodyBytes && !settled) {
        metrics.refused.inc({ reason: 'too_large' });
        finish('aborted');
        out.destroy();
        sendJson(res, 413, { error: `request body exceeds ${this.#o.maxBodyBytes} bytes` });
        req.resume();
        return;
      }
      if (!out.write(chunk)) {
        req.pause();
        out.once('drain', () => req.resume());
      }
    });
    req.on('end', () => out.end());
    req.on('error', () => out.destroy());
  }

  /** Closes idle upstream connections. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}
