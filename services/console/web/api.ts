/**
 * Calls to the console's proxy (`/api/<upstream>/…`, forwarded to `<upstream>/api/v1/…`), each with the
 * session's token as `Authorization: Bearer …`. Errors carry the HTTP status and the upstream's message.
 */
import type { Session } from './session.ts';

export type Upstream = 'discovery' | 'storage' | 'orchestrator' | 'collector';
type QueryValue = string | number | boolean | undefined | readonly string[];

export class ApiError extends Error {
  readonly status: number;
  readonly upstream: Upstream;

  constructor(upstream: Upstream, status: number, message: string) {
    super(message);
    this.upstream = upstream;
    this.status = status;
  }
}

let session: Session | undefined;
let unauthorized: (err: ApiError) => void = () => undefined;

/** The session whose token every call carries (undefined: calls carry none). */
export function setCallSession(s: Session | undefined, onUnauthorized: (err: ApiError) => void): void {
  session = s;
  unauthorized = onUnauthorized;
}

export interface CallOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  query?: Record<string, QueryValue>;
  body?: unknown;
  signal?: AbortSignal | undefined;
}

export function queryString(query: Record<string, QueryValue> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === '') continue;
    if (Array.isArray(v)) for (const item of v as readonly string[]) q.append(k, item);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function call<T>(upstream: Upstream, path: string, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (session) headers.authorization = `Bearer ${session.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/${upstream}${path}${queryString(options.query)}`, {
    method: options.method ?? 'GET',
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    cache: 'no-store',
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    body = text;
  }
  if (!res.ok) {
    const message = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string' ? (body as { error: string }).error : `${res.status} ${res.statusText}`;
    const err = new ApiError(upstream, res.status, `${upstream}: ${message} (${res.status})`);
    if (res.status === 401 || res.status === 403) unauthorized(err);
    throw err;
  }
  return body as T;
}

/** `/apps/{biz}/{app}` with the name escaped. */
export function appPath(bkBizId: number, appName: string): string {
  return `/apps/${bkBizId}/${encodeURIComponent(appName)}`;
}
