/**
 * One http probe request the way the reference's client makes it (tasks/http/gather.go NewClient +
 * GatherURL), on node:http / node:https so that the connection really goes to the resolved IP:
 *
 * - The URL's host is connected at `pinIp` (a custom `lookup`, so the Host header, SNI and certificate
 *   check still use the URL's name). Redirects to the same host:port stay pinned; redirects elsewhere
 *   resolve normally. (The reference's pin map is keyed by IP, so it only pins URLs that already hold an
 *   IP and otherwise lets its dialer resolve the name again: bkstream probes the IP it reports.)
 * - No keep-alive (`Connection: close`), a fresh connection per request; `Accept-Charset: utf-8`, then
 *   the configured headers (a `Host` header is ignored, as Go's client ignores it); `User-Agent:
 *   Go-http-client/1.1` and `Accept-Encoding: gzip` unless configured, as the reference's Go client
 *   sends them, so server-side rules written for it keep matching. A gzip body is decoded; when the
 *   client asked for gzip itself the Content-Length header is dropped (Go's transparent decoding), so
 *   `content_length` is then 0 as in the reference.
 * - Redirects followed (at most 10; 301/302/303 turn into GET without a body unless HEAD, 307/308 keep
 *   method and body; cookies set along the way are sent back to the same host; Authorization and Cookie
 *   headers are not carried to another host).
 * - `timeoutMs` bounds the whole exchange from the request's start, body read included (Go's
 *   Client.Timeout); response headers are capped at `bufferSize` bytes (MaxResponseHeaderBytes).
 * - `proxy`: http URLs are sent to the proxy in absolute form, https URLs through a CONNECT tunnel to
 *   the URL's host:port (the proxy resolves; the pin does not apply), as Go's transport does.
 * - TLS: the certificate is verified unless `insecure` (`insecure_skip_verify`); a failed verification
 *   is a transport error, like every other (the task reports 1200 ResponseFailed, as the reference).
 *
 * Every connection takes a unit of the socket budget (budget.ts) while open.
 */
import type * as Http from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import net, { isIP, type Socket } from 'node:net';
import tls from 'node:tls';
import { createGunzip } from 'node:zlib';
import type { SocketBudget } from './budget.ts';
import type { IpType } from './targets.ts';

// `node:http` through require: an ESM import of it makes Node read every export of the module, which
// loads its lazy WebSocket / EventSource getters and with them undici (~5 MB of RSS, README "Benchmark").
const http = createRequire(import.meta.url)('node:http') as typeof Http;

const MAX_REDIRECTS = 10;
const SENSITIVE = new Set(['authorization', 'www-authenticate', 'cookie', 'cookie2']);

export interface HttpProbeRequest {
  readonly url: string;
  readonly method: string;
  /** Configured headers in order (values already `base64://`-decoded). */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
  /** The IP the URL's host is connected at. */
  readonly pinIp: string;
  readonly timeoutMs: number;
  /** Response header cap and body read cap, bytes. */
  readonly bufferSize: number;
  readonly proxy?: URL;
  readonly insecure: boolean;
  readonly ipType: IpType;
  /** Whether the body is read (a response is expected). */
  readonly readBody: boolean;
  /** The run's signal: aborts the request (a `TimeoutError` reason counts as the request's timeout). */
  readonly signal: AbortSignal;
  /** The agent's probe sockets: each connection holds one while open. */
  readonly sockets: SocketBudget;
}

export interface HttpProbeResponse {
  readonly statusCode: number;
  /** Go's `Response.Status`: `"200 OK"`. */
  readonly status: string;
  readonly headers: IncomingMessage['headers'];
  /** Set when the body was read: at most `bufferSize` bytes, gzip decoded. */
  readonly body?: Buffer;
  /** The body could not be read (the reference does not judge these: status -1, error_code 1). */
  readonly bodyError?: { readonly message: string; readonly timeout: boolean };
  /** A gzip body whose stream could not be opened (the reference's gzip.NewReader failure: 1200). */
  readonly gzipError?: string;
}

export type HttpProbeResult =
  | { readonly kind: 'response'; readonly response: HttpProbeResponse }
  /** The request could not be built (reference 1103). */
  | { readonly kind: 'build-error'; readonly message: string }
  /** Connect, TLS, send or header errors (reference url.Error: 1101 when `timeout`, else 1200). */
  | { readonly kind: 'transport-error'; readonly message: string; readonly timeout: boolean }
  /** The run was stopped (not its deadline): no result. */
  | { readonly kind: 'cancelled' };

/** A method token (Go validMethod). */
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Go's url.Error op for a method: `Get`, `Post`. */
function op(method: string): string {
  return method.slice(0, 1) + method.slice(1).toLowerCase();
}

interface Hop {
  url: URL;
  method: string;
  body: Buffer;
  headers: Map<string, { name: string; values: string[] }>;
}

function addHeader(h: Hop['headers'], name: string, value: string): void {
  const key = name.toLowerCase();
  const e = h.get(key);
  if (e) e.values.push(value);
  else h.set(key, { name, values: [value] });
}

function hostKey(u: URL): string {
  return `${u.protocol}//${u.host}`;
}

/** Runs one probe request. Never throws. */
export async function httpProbe(req: HttpProbeRequest): Promise<HttpProbeResult> {
  if (!METHOD.test(req.method)) return { kind: 'build-error', message: `net/http: invalid method ${JSON.stringify(req.method)}` };
  let first: URL;
  try {
    first = new URL(req.url);
  } catch (err) {
    return { kind: 'build-error', message: `parse ${JSON.stringify(req.url)}: ${(err as Error).message}` };
  }
  if (first.protocol !== 'http:' && first.protocol !== 'https:') {
    return { kind: 'transport-error', message: `${op(req.method)} ${JSON.stringify(req.url)}: unsupported protocol scheme ${JSON.stringify(first.protocol.replace(/:$/, ''))}`, timeout: false };
  }
  const headers: Hop['headers'] = new Map();
  addHeader(headers, 'Accept-Charset', 'utf-8');
  for (const [name, value] of req.headers) if (name.toLowerCase() !== 'host') addHeader(headers, name, value);
  if (!headers.has('user-agent')) addHeader(headers, 'User-Agent', 'Go-http-client/1.1');
  const askedGzip = !headers.has('accept-encoding') && !headers.has('range') && req.method !== 'HEAD';
  if (askedGzip) addHeader(headers, 'Accept-Encoding', 'gzip');

  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new DOMException('request timeout', 'TimeoutError'));
  }, req.timeoutMs);
  const onRun = (): void => {
    const reason: unknown = req.signal.reason;
    if (reason instanceof Error && reason.name === 'TimeoutError') timedOut = true;
    ctl.abort(reason);
  };
  if (req.signal.aborted) onRun();
  else req.signal.addEventListener('abort', onRun, { once: true });
  const jar = new Map<string, Map<string, string>>();
  try {
    let hop: Hop = { url: first, method: req.method, body: req.body, headers };
    for (let redirects = 0; ; redirects++) {
      const cookies = jar.get(hostKey(hop.url));
      const res = await exchange(req, hop, first, cookies, ctl.signal);
      if ('error' in res) {
        if (ctl.signal.aborted && !timedOut) return { kind: 'cancelled' };
        const timeout = timedOut || res.timeout;
        const what = timeout ? `timeout exceeded while ${res.phase}` : res.error;
        return { kind: 'transport-error', message: `${op(hop.method)} ${JSON.stringify(hop.url.href)}: ${what}`, timeout };
      }
      const msg = res.message;
      storeCookies(jar, hop.url, msg.headers['set-cookie']);
      const location = msg.headers.location;
      const code = msg.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(code) && location !== undefined) {
        msg.destroy();
        res.release();
        if (redirects + 1 > MAX_REDIRECTS) {
          return { kind: 'transport-error', message: `${op(hop.method)} ${JSON.stringify(location)}: stopped after ${MAX_REDIRECTS} redirects`, timeout: false };
        }
        let next: URL;
        try {
          next = new URL(location, hop.url);
        } catch (err) {
          return { kind: 'transport-error', message: `${op(hop.method)} ${JSON.stringify(hop.url.href)}: failed to parse Location header ${JSON.stringify(location)}: ${(err as Error).message}`, timeout: false };
        }
        const keepBody = code === 307 || code === 308;
        const method = keepBody || hop.method === 'GET' || hop.method === 'HEAD' ? hop.method : 'GET';
        const nextHeaders: Hop['headers'] = new Map();
        const sameHost = next.hostname === hop.url.hostname;
        for (const [key, e] of hop.headers) {
          if (!sameHost && SENSITIVE.has(key)) continue;
          if (!keepBody && (key === 'content-type' || key === 'content-length')) continue;
          nextHeaders.set(key, { name: e.name, values: [...e.values] });
        }
        nextHeaders.delete('referer');
        if (hop.url.protocol === next.protocol || next.protocol === 'https:') addHeader(nextHeaders, 'Referer', hop.url.href);
        hop = { url: next, method, body: keepBody ? hop.body : Buffer.alloc(0), headers: nextHeaders };
        continue;
      }
      try {
        return { kind: 'response', response: await readResponse(msg, req, askedGzip, ctl.signal, () => timedOut) };
      } finally {
        msg.destroy();
        res.release();
      }
    }
  } finally {
    clearTimeout(timer);
    req.signal.removeEventListener('abort', onRun);
  }
}

function storeCookies(jar: Map<string, Map<string, string>>, url: URL, setCookie: string[] | undefined): void {
  if (!setCookie || setCookie.length === 0) return;
  let m = jar.get(hostKey(url));
  if (!m) {
    m = new Map();
    jar.set(hostKey(url), m);
  }
  for (const line of setCookie) {
    const pair = line.split(';', 1)[0] ?? '';
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    m.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
}

type Exchange =
  | { message: IncomingMessage; release: () => void }
  | { error: string; timeout: boolean; phase: string };

/** One hop: connect (pinned when the host is the probed one), send, wait for the response head. */
async function exchange(req: HttpProbeRequest, hop: Hop, first: URL, cookies: Map<string, string> | undefined, signal: AbortSignal): Promise<Exchange> {
  let release: () => void;
  try {
    release = await req.sockets.acquire(signal);
  } catch {
    return { error: 'aborted while waiting for a socket', timeout: false, phase: 'waiting for a socket' };
  }
  const url = hop.url;
  const isHttps = url.protocol === 'https:';
  const port = url.port === '' ? (isHttps ? 443 : 80) : Number(url.port);
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const pinned = hostKey(url) === hostKey(first) ? req.pinIp : undefined;
  const family = req.ipType === 0 ? 0 : req.ipType;
  const literal = isIP(pinned ?? hostname);
  if (family !== 0 && literal !== 0 && literal !== family) {
    release();
    return { error: `dial tcp${family}: address ${pinned ?? hostname}: no suitable address found`, timeout: false, phase: 'dialing' };
  }
  const headerObj: Record<string, string | string[]> = {};
  for (const e of hop.headers.values()) headerObj[e.name] = e.values.length === 1 ? (e.values[0] as string) : e.values;
  if (cookies && cookies.size > 0) {
    const prev = headerObj.Cookie;
    const jarValue = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    headerObj.Cookie = prev === undefined ? jarValue : [prev, jarValue].flat().join('; ');
  }
  if (hop.body.length > 0 || ['POST', 'PUT', 'PATCH'].includes(hop.method)) headerObj['Content-Length'] = String(hop.body.length);

  const proxy = req.proxy;
  // No agent: every request dials its own connection through createConnection (no keep-alive, and none
  // of the agent's pooling work per request).
  const base = {
    method: hop.method,
    headers: headerObj,
    maxHeaderSize: req.bufferSize,
    signal,
  };
  let phase = 'dialing';
  return new Promise<Exchange>((resolve) => {
    let settled = false;
    const finish = (r: Exchange): void => {
      if (settled) return;
      settled = true;
      if ('error' in r) release();
      resolve(r);
    };
    const fail = (err: Error): void => {
      const timeout = err.name === 'TimeoutError' || (err as NodeJS.ErrnoException).code === 'ETIMEDOUT';
      finish({ error: err.message, timeout, phase });
    };
    const send = (r: ClientRequest): void => {
      r.on('socket', (s: Socket) => {
        s.once('connect', () => (phase = 'awaiting headers'));
        s.once('secureConnect', () => (phase = 'awaiting headers'));
      });
      r.on('response', (message) => finish({ message, release }));
      r.on('error', fail);
      r.end(hop.body.length > 0 ? hop.body : undefined);
    };
    try {
      if (proxy && !isHttps) {
        const proxyHeaders = { ...headerObj, Host: url.host, ...proxyAuth(proxy) };
        const proxyPort = proxy.port === '' ? 80 : Number(proxy.port);
        send(http.request({ ...base, headers: proxyHeaders, host: proxy.hostname, port: proxyPort, path: url.href, createConnection: () => net.connect({ host: proxy.hostname, port: proxyPort }) }));
      } else if (proxy && isHttps) {
        const connect = http.request({ method: 'CONNECT', host: proxy.hostname, port: proxy.port === '' ? 80 : Number(proxy.port), path: `${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`, headers: { Host: `${hostname}:${port}`, ...proxyAuth(proxy) }, agent: false, signal });
        connect.on('error', fail);
        connect.on('connect', (res: IncomingMessage, socket: Socket) => {
          if (res.statusCode !== 200) {
            socket.destroy();
            finish({ error: `proxyconnect: ${res.statusCode} ${res.statusMessage ?? ''}`.trim(), timeout: false, phase });
            return;
          }
          phase = 'TLS handshake';
          const tlsSocket = tls.connect({ socket, servername: isIP(hostname) ? undefined : hostname, rejectUnauthorized: !req.insecure });
          send(https.request({ ...base, host: hostname, port, path: url.pathname + url.search, createConnection: () => tlsSocket }));
        });
        connect.end();
      } else {
        // The pinned IP is dialled directly; another host (after a redirect) is resolved by the dial,
        // restricted to the family. Host header, SNI and the certificate check use the URL's name.
        const target = pinned ?? hostname;
        const dial = { host: target, port, ...(pinned === undefined && family !== 0 ? { family } : {}) };
        const createConnection = isHttps
          ? () => tls.connect({ ...dial, servername: isIP(hostname) ? undefined : hostname, rejectUnauthorized: !req.insecure })
          : () => net.connect(dial);
        send((isHttps ? https : http).request({ ...base, host: hostname, port, path: url.pathname + url.search, createConnection }));
      }
    } catch (err) {
      fail(err as Error);
    }
  });
}

function proxyAuth(proxy: URL): Record<string, string> {
  if (proxy.username === '') return {};
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  return { 'Proxy-Authorization': `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
}

/** Status text, headers and (when asked) up to `bufferSize` bytes of the body, gzip decoded. */
async function readResponse(msg: IncomingMessage, req: HttpProbeRequest, askedGzip: boolean, signal: AbortSignal, timedOut: () => boolean): Promise<HttpProbeResponse> {
  const statusCode = msg.statusCode ?? 0;
  const status = `${statusCode} ${msg.statusMessage ?? ''}`.trimEnd();
  const headers = { ...msg.headers };
  const gzip = (msg.headers['content-encoding'] ?? '').toLowerCase() === 'gzip';
  if (gzip && askedGzip) {
    delete headers['content-encoding'];
    delete headers['content-length'];
  }
  if (!req.readBody) return { statusCode, status, headers };
  const source: NodeJS.ReadableStream = gzip ? msg.pipe(createGunzip()) : msg;
  const cap = req.bufferSize;
  const chunks: Buffer[] = [];
  let size = 0;
  let produced = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      source.on('data', (chunk: Buffer) => {
        produced = true;
        const room = cap - size;
        if (room <= 0) return;
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        chunks.push(part);
        size += part.length;
        if (size >= cap) done();
      });
      source.on('end', done);
      source.on('error', (err: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      });
      msg.on('aborted', () => reject(new Error('unexpected EOF')));
      msg.on('error', (err: Error) => reject(err));
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    if (gzip && !produced && typeof e.code === 'string' && e.code.startsWith('Z_')) {
      return { statusCode, status, headers, gzipError: `gzip: ${e.message}` };
    }
    const timeout = timedOut() || e.name === 'TimeoutError';
    return { statusCode, status, headers, body: Buffer.concat(chunks, size), bodyError: { message: timeout ? 'timeout exceeded while reading body' : e.message, timeout } };
  } finally {
    if (source !== msg) (source as unknown as { destroy(): void }).destroy();
  }
  return { statusCode, status, headers, body: Buffer.concat(chunks, size) };
}
